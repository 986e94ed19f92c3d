//! Per-rule placement: which rules a profile can run, why not for the rest, and where the
//! split falls.
//!
//! First match must survive the split, so the NIC stage is the longest prefix of rules the NIC
//! can run (see ../shared/design/offload-nfp.md); every rule after the first one that needs
//! the host runs on the host too, whatever it needs. A table rule whose entries may pass also
//! ends the prefix: the host stage reruns the policy from the top, so a pass decided on the
//! NIC is decided again on the host, and a rule that can both drop and pass could not be
//! counted once.

use crate::Profile;
use nfcc_dsl::ast::Span;
use nfcc_dsl::check::Capabilities;
use nfcc_dsl::checked::{Action, Atom, Expr, Field, Hook, Policy, Rule, Terminal};

/// Where a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the NIC (the NIC stage).
    Nic,
    /// On the host.
    Host,
}

/// One rule's placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePlace {
    /// The rule's name (`default` for the default).
    pub name: String,
    /// The rule's span.
    pub span: Span,
    /// Where it runs.
    pub place: Place,
    /// Why it needs the host (what in it the NIC lacks, each with its span); empty for NIC
    /// rules and for NIC-capable rules that run on the host only because of an earlier rule.
    pub needs_host: Vec<(Span, String)>,
    /// For a NIC-capable rule placed on the host: the reason (the rule that ends the prefix).
    pub after_split: Option<String>,
}

/// The placement of a whole policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Rules in order.
    pub rules: Vec<RulePlace>,
    /// The default.
    pub default: RulePlace,
    /// How many leading rules the NIC stage runs.
    pub nic_prefix: usize,
    /// The whole policy runs on the NIC (every rule and the default): no host stage.
    pub full: bool,
    /// A reason the whole policy stays on the host (its hook), if any.
    pub whole: Option<String>,
}

/// Records `what` at `span` when `profile` lacks `cap`.
fn need(
    out: &mut Vec<(Span, String)>,
    profile: &Profile,
    span: Span,
    cap: Capabilities,
    what: String,
) {
    if !profile.caps.contains(cap) {
        out.push((span, what));
    }
}

/// What in `expr` the profile lacks.
fn expr_needs(p: &Policy, profile: &Profile, e: &Expr, out: &mut Vec<(Span, String)>) {
    match e {
        Expr::Const(_) => {}
        Expr::Not(x) => expr_needs(p, profile, x, out),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| expr_needs(p, profile, x, out)),
        Expr::Atom(a, span) => {
            let span = *span;
            let field_meta =
                |f: &Field| matches!(f, Field::PktIfindex | Field::PktRxq | Field::PktMark);
            match a {
                Atom::Over(l) => {
                    let name = &p.limiters[l.index()].name;
                    need(
                        out,
                        profile,
                        span,
                        Capabilities::CLOCK,
                        format!("limiter `{name}` needs bpf_ktime_get_ns, which the NIC lacks"),
                    );
                }
                Atom::Cmp { field, .. } | Atom::InList { field, .. } | Atom::Has { field, .. }
                    if field_meta(field) =>
                {
                    need(
                        out,
                        profile,
                        span,
                        Capabilities::CTX_META,
                        format!(
                            "`{}` is not in the NIC's context (it carries only the packet bounds)",
                            field.name()
                        ),
                    );
                }
                Atom::InSet { field, set } => {
                    if field_meta(field) {
                        need(
                            out,
                            profile,
                            span,
                            Capabilities::CTX_META,
                            format!("`{}` is not in the NIC's context", field.name()),
                        );
                    }
                    let s = &p.sets[set.index()];
                    if u64::from(s.capacity) > profile.max_map_entries {
                        out.push((
                            span,
                            format!(
                                "set `{}` holds up to {} entries, more than the NIC's {} per map",
                                s.name, s.capacity, profile.max_map_entries
                            ),
                        ));
                    }
                }
                Atom::Match(t) => {
                    let t = &p.tables[t.index()];
                    if u64::from(t.capacity) > profile.max_map_entries {
                        out.push((
                            span,
                            format!(
                                "table `{}` holds up to {} entries, more than the NIC's {} per map",
                                t.name, t.capacity, profile.max_map_entries
                            ),
                        ));
                    }
                    if t.entries
                        .iter()
                        .any(|(_, a)| matches!(a, Terminal::Redirect(_) | Terminal::Xsk))
                    {
                        need(
                            out,
                            profile,
                            span,
                            Capabilities::REDIRECT,
                            format!(
                                "table `{}` has entries that redirect, which the NIC cannot do",
                                t.name
                            ),
                        );
                    }
                }
                Atom::Payload { end, .. } => {
                    // The worst case in front of the payload: Ethernet, two VLAN tags, IPv4
                    // with options, TCP with options.
                    let reach = 14 + 8 + 60 + 60 + u32::from(*end);
                    if reach > profile.packet_reach {
                        out.push((
                            span,
                            format!(
                                "payload bytes up to offset {reach} may lie beyond the NIC's packet reach of {} bytes",
                                profile.packet_reach
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

/// What in a rule's (or the default's) actions and terminal the profile lacks.
fn actions_needs(
    p: &Policy,
    profile: &Profile,
    span: Span,
    actions: &[Action],
    terminal: Option<&Terminal>,
    out: &mut Vec<(Span, String)>,
) {
    for a in actions {
        match a {
            Action::Sample(n) => need(
                out,
                profile,
                span,
                Capabilities::RINGBUF,
                format!("`sample {n}` writes to a ring buffer, which the NIC lacks"),
            ),
            Action::Mark(_) => need(
                out,
                profile,
                span,
                Capabilities::CTX_META,
                "`mark` writes the skb mark, which the NIC's context does not have".into(),
            ),
            Action::Balance {
                pool,
                via_fib: true,
                ..
            } => need(
                out,
                profile,
                span,
                Capabilities::FIB,
                format!(
                    "`balance {} ... via fib` needs bpf_fib_lookup, which the NIC lacks",
                    p.pools[pool.index()].name
                ),
            ),
            Action::Count(c) => {
                let c = &p.counters[c.index()];
                if u64::from(c.capacity) > profile.max_map_entries {
                    out.push((
                        span,
                        format!(
                            "counter `{}` holds up to {} keys, more than the NIC's {} per map",
                            c.name, c.capacity, profile.max_map_entries
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(Terminal::Xsk) = terminal {
        need(
            out,
            profile,
            span,
            Capabilities::REDIRECT,
            "`redirect xsk` needs bpf_redirect_map to an AF_XDP socket, which the NIC lacks".into(),
        );
    }
    if let Some(Terminal::Redirect(to)) = terminal {
        need(
            out,
            profile,
            span,
            Capabilities::REDIRECT,
            format!("`redirect \"{to}\"` needs bpf_redirect, which the NIC lacks"),
        );
    }
}

/// Whether a rule's verdict may be pass (so the NIC stage would hand its packets to the host).
fn may_pass(p: &Policy, r: &Rule) -> bool {
    match (&r.terminal, r.table) {
        (Some(t), _) => *t == Terminal::Pass,
        (None, Some(t)) => p.tables[t.index()]
            .entries
            .iter()
            .any(|(_, a)| *a == Terminal::Pass),
        (None, None) => true,
    }
}

/// Places every rule of `policy` for `profile`.
pub fn place(policy: &Policy, profile: &Profile) -> Placement {
    let whole = match policy.hook {
        Hook::Xdp if profile.xdp => None,
        Hook::TcIngress if profile.tc_ingress => None,
        Hook::TcEgress if profile.tc_egress => None,
        Hook::Xdp => Some(format!("the {} profile runs no XDP programs", profile.name)),
        Hook::TcIngress => Some(
            "the policy is on tc ingress; nfcc deploys NIC stages as XDP (offloaded cls_bpf is not built), so it stays on the host"
                .to_string(),
        ),
        Hook::TcEgress => Some("the policy is on tc egress; a NIC offloads only what it receives".to_string()),
    };
    let mut rules = Vec::new();
    let mut prefix_open = whole.is_none();
    let mut ended_by: Option<String> = whole.clone();
    let mut nic_prefix = 0;
    for r in &policy.rules {
        let mut needs = Vec::new();
        expr_needs(policy, profile, &r.expr, &mut needs);
        actions_needs(
            policy,
            profile,
            r.span,
            &r.actions,
            r.terminal.as_ref(),
            &mut needs,
        );
        let table_pass = r.terminal.is_none() && may_pass(policy, r);
        let place = if prefix_open && needs.is_empty() && !table_pass {
            nic_prefix += 1;
            Place::Nic
        } else {
            Place::Host
        };
        let after_split = (place == Place::Host && needs.is_empty()).then(|| {
            ended_by.clone().unwrap_or_else(|| {
                format!(
                    "table rule `{}` may pass packets, which the host would count again",
                    r.name
                )
            })
        });
        if place == Place::Host && prefix_open {
            prefix_open = false;
            ended_by = Some(if needs.is_empty() {
                format!("runs after rule `{}`, which ends the NIC stage (a table whose entries may pass)", r.name)
            } else {
                format!(
                    "runs after rule `{}`, which needs the host (first match must be kept)",
                    r.name
                )
            });
        }
        rules.push(RulePlace {
            name: r.name.clone(),
            span: r.span,
            place,
            needs_host: needs,
            after_split,
        });
    }
    let mut dneeds = Vec::new();
    actions_needs(
        policy,
        profile,
        policy.default.span,
        &policy.default.actions,
        Some(&policy.default.terminal),
        &mut dneeds,
    );
    let full = prefix_open && dneeds.is_empty();
    let default = RulePlace {
        name: "default".into(),
        span: policy.default.span,
        place: if full { Place::Nic } else { Place::Host },
        after_split: (!full && dneeds.is_empty()).then(|| {
            ended_by
                .clone()
                .unwrap_or_else(|| "packets no NIC rule decides go to the host stage".into())
        }),
        needs_host: dneeds,
    };
    Placement {
        rules,
        default,
        nic_prefix,
        full,
        whole,
    }
}
