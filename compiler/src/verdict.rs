//! The verdict ABI: the value a program returns for each terminal, per hook and target, and
//! its inverse. Lowering (table entries hold verdicts), the IR passes (merged rules' entries)
//! and code generation all write these values, and the engines that run a program read them
//! back, so the mapping lives here rather than in any one of them; `codegen` re-exports it at
//! its historical paths, `nfcc_compiler::codegen::{verdict, terminal_of}`.

use nfcc_bpf::prog::{tc, xdp};
use nfcc_dsl::checked::{Hook, Target, Terminal};

/// Verdict values per hook and target.
pub fn verdict(hook: Hook, target: Target, t: &Terminal) -> i32 {
    match (hook, t) {
        (Hook::Xdp, Terminal::Abort) => xdp::ABORTED as i32,
        (Hook::Xdp, Terminal::Drop) => xdp::DROP as i32,
        (Hook::Xdp, Terminal::Pass) => xdp::PASS as i32,
        (Hook::Xdp, Terminal::Tx) => xdp::TX as i32,
        (Hook::Xdp, Terminal::Redirect(_) | Terminal::Xsk) => xdp::REDIRECT as i32,
        // The NIC refuses TC_ACT_OK; TC_ACT_UNSPEC lets the packet continue just the same.
        (_, Terminal::Pass) if target == Target::Nfp => tc::UNSPEC,
        (_, Terminal::Pass) => tc::OK,
        (_, Terminal::Redirect(_)) => tc::REDIRECT,
        (_, _) => tc::SHOT,
    }
}

/// The verdict a program's return value means on its hook (the inverse of [`verdict`]; a
/// redirect is named when the policy has one target, and is `redirect xsk` when AF_XDP
/// sockets are the policy's only redirect target — an executor that saw the socket map
/// chosen says so itself, see [`terminal_of_run`]).
pub fn terminal_of(hook: Hook, retval: u32, policy: &nfcc_dsl::checked::Policy) -> Terminal {
    // Only a redirect needs the policy read: every other verdict is the value's alone, and a
    // 10,000-rule policy must not be scanned per packet.
    let redirect = || {
        let xsk_only = {
            let mut ts = policy
                .rules
                .iter()
                .filter_map(|r| r.terminal.as_ref())
                .chain([&policy.default.terminal])
                .chain(
                    policy
                        .tables
                        .iter()
                        .flat_map(|t| t.entries.iter().map(|(_, a)| a)),
                );
            let mut any_xsk = false;
            let other = ts.any(|t| {
                any_xsk |= *t == Terminal::Xsk;
                matches!(t, Terminal::Redirect(_))
            });
            any_xsk && !other
        };
        if xsk_only {
            return Terminal::Xsk;
        }
        // The return value does not say which interface; a policy with one target names it.
        let mut names: Vec<&str> = policy
            .rules
            .iter()
            .filter_map(|r| match &r.terminal {
                Some(Terminal::Redirect(n)) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if let Terminal::Redirect(n) = &policy.default.terminal {
            names.push(n);
        }
        for t in &policy.tables {
            for (_, action) in &t.entries {
                if let Terminal::Redirect(n) = action {
                    names.push(n);
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        Terminal::Redirect(match names.as_slice() {
            [one] => (*one).to_string(),
            _ => "?".to_string(),
        })
    };
    use nfcc_bpf::Action;
    // The kernel's reading of the value (TC_ACT_UNSPEC from NIC code is a pass); anything
    // else an XDP program returns aborts, anything else a classifier returns drops.
    match (
        hook,
        crate::compiled::prog_type(hook).action(u64::from(retval)),
    ) {
        (Hook::Xdp, Action::Drop) => Terminal::Drop,
        (Hook::Xdp, Action::Pass) => Terminal::Pass,
        (Hook::Xdp, Action::Tx) => Terminal::Tx,
        (_, Action::Redirect) => redirect(),
        (Hook::Xdp, _) => Terminal::Abort,
        (_, Action::Pass) => Terminal::Pass,
        (_, _) => Terminal::Drop,
    }
}

/// [`terminal_of`] for a run whose executor saw where a redirect went: to an AF_XDP socket
/// (`to_xsk`) or not.
pub fn terminal_of_run(
    hook: Hook,
    retval: u32,
    to_xsk: bool,
    policy: &nfcc_dsl::checked::Policy,
) -> Terminal {
    match terminal_of(hook, retval, policy) {
        Terminal::Redirect(_) | Terminal::Xsk if to_xsk => Terminal::Xsk,
        Terminal::Xsk => terminal_of(hook, retval, &without_xsk(policy)),
        t => t,
    }
}

/// A redirect read from a return value, named by the rule that decided it (`rule`, read from
/// the per-rule statistics): the return value says only "redirect", the deciding rule's own
/// terminal says where (an interface, or the AF_XDP socket). Other verdicts, and rules whose
/// terminal comes from a table, are left as they are.
pub fn named_by_rule(
    t: Terminal,
    policy: &nfcc_dsl::checked::Policy,
    rule: nfcc_dsl::checked::RuleRef,
) -> Terminal {
    use nfcc_dsl::checked::RuleRef;
    if !matches!(t, Terminal::Redirect(_) | Terminal::Xsk) {
        return t;
    }
    let own = match rule {
        RuleRef::Rule(id) => policy.rule(id).terminal.clone(),
        RuleRef::Default => Some(policy.default.terminal.clone()),
    };
    match own {
        Some(o @ (Terminal::Redirect(_) | Terminal::Xsk)) => o,
        _ => t,
    }
}

/// `policy` with its `redirect xsk` terminals read as passes: what names the interface of a
/// redirect that went elsewhere.
fn without_xsk(policy: &nfcc_dsl::checked::Policy) -> nfcc_dsl::checked::Policy {
    let mut p = policy.clone();
    for r in &mut p.rules {
        if r.terminal == Some(Terminal::Xsk) {
            r.terminal = Some(Terminal::Pass);
        }
    }
    if p.default.terminal == Terminal::Xsk {
        p.default.terminal = Terminal::Pass;
    }
    p
}
