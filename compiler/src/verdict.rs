//! The verdict ABI: the value a program returns for each terminal, per hook and target, and
//! its inverse. Lowering (table entries hold verdicts), the IR passes (merged rules' entries)
//! and code generation all write these values, and the engines that run a program read them
//! back, so the mapping lives here rather than in any one of them; `codegen` re-exports it at
//! its historical paths, `nfcc_compiler::codegen::{verdict, terminal_of}`.

use nfcc_dsl::checked::{Hook, Target, Terminal};

/// Verdict values per hook and target.
pub fn verdict(hook: Hook, target: Target, t: &Terminal) -> i32 {
    match (hook, t) {
        (Hook::Xdp, Terminal::Abort) => 0,
        (Hook::Xdp, Terminal::Drop) => 1,
        (Hook::Xdp, Terminal::Pass) => 2,
        (Hook::Xdp, Terminal::Tx) => 3,
        (Hook::Xdp, Terminal::Redirect(_)) => 4,
        // The NIC refuses TC_ACT_OK; TC_ACT_UNSPEC lets the packet continue just the same.
        (_, Terminal::Pass) if target == Target::Nfp => -1,
        // TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT.
        (_, Terminal::Pass) => 0,
        (_, Terminal::Redirect(_)) => 7,
        (_, _) => 2,
    }
}

/// The verdict a program's return value means on its hook (the inverse of [`verdict`]; a
/// redirect is named when the policy has one target).
pub fn terminal_of(hook: Hook, retval: u32, policy: &nfcc_dsl::checked::Policy) -> Terminal {
    let redirect = || {
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
    match (hook, retval) {
        (Hook::Xdp, 0) => Terminal::Abort,
        (Hook::Xdp, 1) => Terminal::Drop,
        (Hook::Xdp, 2) => Terminal::Pass,
        (Hook::Xdp, 3) => Terminal::Tx,
        (Hook::Xdp, 4) => redirect(),
        (Hook::Xdp, _) => Terminal::Abort,
        // TC_ACT_OK, and TC_ACT_UNSPEC from NIC code (the NIC refuses TC_ACT_OK).
        (_, 0 | u32::MAX) => Terminal::Pass,
        (_, 7) => redirect(),
        (_, _) => Terminal::Drop,
    }
}
