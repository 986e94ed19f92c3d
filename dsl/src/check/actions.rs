//! Actions: a rule's action list — non-terminal actions (`count`, `set`, `dec`, `sample`,
//! `mark`, `balance`) followed by exactly one terminal — and which terminals each hook allows.

use super::{closest, Capabilities, Checker, Decl, Pcx};
use crate::ast::{self, Span, ValueKind};
use crate::checked::*;
use crate::diag::Diagnostic;

impl Checker {
    pub(super) fn terminal_on_hook(&mut self, word: &str, span: Span, pcx: &Pcx) -> bool {
        let ok = match word {
            "tx" | "abort" => pcx.hook == Hook::Xdp,
            _ => true,
        };
        if !ok {
            let help = if word == "tx" {
                "tx bounces a packet out of its port, which only XDP can do; attach on xdp or use `redirect \"IF\"`"
            } else {
                "abort is XDP_ABORTED, which tc does not have; use `drop`"
            };
            self.diags.push(
                Diagnostic::error(
                    "E0106",
                    span,
                    format!("`{word}` is not allowed on {}", pcx.hook.as_str()),
                )
                .with_label(format!("not available on {}", pcx.hook.as_str()))
                .with_help(help),
            );
        }
        ok
    }

    pub(super) fn terminal(&mut self, a: &ast::Action, pcx: &Pcx) -> Option<Terminal> {
        match &a.kind {
            ast::ActionKind::Word(w) => {
                let t = match w.name.as_str() {
                    "pass" => Terminal::Pass,
                    "drop" => Terminal::Drop,
                    "tx" => Terminal::Tx,
                    "abort" => Terminal::Abort,
                    "count" | "sample" | "mark" | "dec" | "redirect" | "balance" | "set" => {
                        let form = match w.name.as_str() {
                            "count" => "count COUNTER",
                            "sample" => "sample N",
                            "mark" => "mark N",
                            "dec" => "dec ip.ttl",
                            "redirect" => "redirect \"IFNAME\"",
                            "balance" => "balance POOL by (FIELDS)",
                            _ => "set FIELD = VALUE",
                        };
                        self.help(
                            "E0112",
                            w.span,
                            format!("`{}` needs an argument", w.name),
                            format!("write `{form}`"),
                        );
                        return None;
                    }
                    other => {
                        let mut d =
                            Diagnostic::error("E0102", w.span, format!("unknown action `{other}`"));
                        d.help = Some(match closest(other, ["pass", "drop", "tx", "abort", "count", "sample", "mark", "redirect", "balance", "set", "dec"]) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => "actions are pass, drop, tx, redirect \"IF\", abort, count NAME, set FIELD = V, dec ip.ttl, sample N, mark N, balance POOL by (FIELDS)".into(),
                        });
                        self.diags.push(d);
                        return None;
                    }
                };
                self.terminal_on_hook(&w.name, w.span, pcx).then_some(t)
            }
            ast::ActionKind::Redirect(name, span) => {
                let name = String::from_utf8_lossy(name).into_owned();
                if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                    self.help(
                        "E0105",
                        *span,
                        format!("`{name}` is not a valid interface name"),
                        "interface names are 1 to 15 characters without `/` or spaces",
                    );
                    return None;
                }
                self.needs(pcx, Capabilities::REDIRECT, a.span);
                Some(Terminal::Redirect(name))
            }
            ast::ActionKind::RedirectXsk(span) => {
                if pcx.hook != Hook::Xdp {
                    self.diags.push(
                        Diagnostic::error(
                            "E0106",
                            *span,
                            format!("`redirect xsk` is not allowed on {}", pcx.hook.as_str()),
                        )
                        .with_label(format!("not available on {}", pcx.hook.as_str()))
                        .with_help(
                            "AF_XDP sockets receive from XDP programs; attach the policy on xdp",
                        ),
                    );
                    return None;
                }
                self.needs(pcx, Capabilities::REDIRECT, a.span);
                Some(Terminal::Xsk)
            }
            _ => None,
        }
    }

    /// Checks an action list; returns the non-terminal actions and the terminal.
    pub(super) fn actions(
        &mut self,
        list: &[ast::Action],
        pcx: &mut Pcx,
        span: Span,
        terminal_optional: bool,
    ) -> (Vec<Action>, Option<Terminal>) {
        let mut actions = Vec::new();
        let mut terminal: Option<(Terminal, Span)> = None;
        let mut balance_span = None;
        let mut encap_span = None;
        let mut broken = false;
        for a in list {
            let is_terminal = matches!(
                &a.kind,
                ast::ActionKind::Word(_)
                    | ast::ActionKind::Redirect(..)
                    | ast::ActionKind::RedirectXsk(_)
            );
            if let (Some(espan), false) = (encap_span, is_terminal) {
                // Later actions would read and rewrite the outer header the packet now has.
                self.diags.push(
                    Diagnostic::error("E0112", a.span, "only the terminal may follow `balance ... encap`")
                        .with_note(espan, "the packet is encapsulated for its backend here")
                        .with_help("put `count`, `set` and the like before `balance`; end with `tx` or `redirect`"),
                );
                broken = true;
            }
            if let Some((_, tspan)) = &terminal {
                let tspan = *tspan;
                self.diags.push(
                    Diagnostic::error("E0112", a.span, "nothing may follow the terminal action")
                        .with_note(tspan, "the terminal action")
                        .with_help("the terminal (pass, drop, tx, redirect, abort) comes last and only once"),
                );
                broken = true;
                continue;
            }
            if is_terminal {
                match self.terminal(a, pcx) {
                    Some(t) => terminal = Some((t, a.span)),
                    None => broken = true,
                }
                continue;
            }
            match &a.kind {
                ast::ActionKind::WithArg(w, v) => match w.name.as_str() {
                    "count" => {
                        let ValueKind::Name(p) = &v.kind else {
                            self.help(
                                "E0103",
                                v.span,
                                "`count` takes a counter name",
                                "write `count NAME` with a declared counter",
                            );
                            broken = true;
                            continue;
                        };
                        let ident = ast::Ident {
                            name: p.text(),
                            span: p.span,
                        };
                        match self.lookup(pcx, &ident, "counter") {
                            Some(Decl::Counter(id)) => actions.push(Action::Count(id)),
                            Some(d) => {
                                self.wrong_kind(
                                    &ident,
                                    d,
                                    "a counter",
                                    "declare `counter NAME: key FIELD`",
                                );
                                broken = true;
                            }
                            None => broken = true,
                        }
                    }
                    "dec" => {
                        let ok = matches!(&v.kind, ValueKind::Name(p) if p.text() == "ip.ttl");
                        if ok {
                            actions.push(Action::DecTtl);
                        } else {
                            self.help(
                                "E0103",
                                v.span,
                                "only `ip.ttl` can be decremented",
                                "write `dec ip.ttl`: it decrements the IPv4 TTL or the IPv6 hop limit, whichever the packet has",
                            );
                            broken = true;
                        }
                    }
                    "sample" => match self.int_value(v, "sample rate", u128::from(u32::MAX)) {
                        Some(0) => {
                            self.help(
                                "E0105",
                                v.span,
                                "`sample 0` samples nothing",
                                "write `sample 1` to sample every packet",
                            );
                            broken = true;
                        }
                        Some(n) => {
                            self.needs(pcx, Capabilities::RINGBUF, a.span);
                            actions.push(Action::Sample(n as u32));
                        }
                        None => broken = true,
                    },
                    "mark" => {
                        if !pcx.hook.is_tc() {
                            self.diags.push(
                                Diagnostic::error("E0106", a.span, "`mark` is not allowed on xdp")
                                    .with_label("the skb mark exists only on tc hooks")
                                    .with_help("attach the policy on `tc ingress` or `tc egress`"),
                            );
                            broken = true;
                            continue;
                        }
                        self.needs(pcx, Capabilities::CTX_META, a.span);
                        match self.int_value(v, "mark", u128::from(u32::MAX)) {
                            Some(n) => actions.push(Action::Mark(n as u32)),
                            None => broken = true,
                        }
                    }
                    _ => broken = true,
                },
                ast::ActionKind::Set(field, v) => {
                    let Some(f) = self.field(field, pcx) else {
                        broken = true;
                        continue;
                    };
                    if !rewritable(f) {
                        self.help(
                            "E0103",
                            field.span,
                            format!("`{}` cannot be rewritten", f.name()),
                            "rewritable fields: eth.src, eth.dst, ip.src, ip.dst, l4.sport, l4.dport, ip.ttl, ip.dscp (and their ipv4./ipv6./tcp./udp. forms)",
                        );
                        broken = true;
                        continue;
                    }
                    match self.scalar(v, f.ty(), &format!("`{}`", f.name())) {
                        Some(s) => actions.push(Action::SetField(f, s)),
                        None => broken = true,
                    }
                }
                ast::ActionKind::Balance {
                    pool,
                    by,
                    sticky,
                    encap,
                    via,
                } => {
                    balance_span = Some(a.span);
                    let id = match self.lookup(pcx, pool, "pool") {
                        Some(Decl::Pool(id)) => Some(id),
                        Some(d) => {
                            self.wrong_kind(
                                pool,
                                d,
                                "a pool",
                                "declare `pool NAME = { ADDR, ... }`",
                            );
                            None
                        }
                        None => None,
                    };
                    let fields = self.field_list(by, pcx);
                    let via_fib = match via {
                        None => false,
                        Some(v) if v.name == "fib" => {
                            self.needs(pcx, Capabilities::FIB, a.span);
                            true
                        }
                        Some(v) => {
                            self.help(
                                "E0102",
                                v.span,
                                format!("unknown `via {}`", v.name),
                                "the only form is `via fib`",
                            );
                            broken = true;
                            false
                        }
                    };
                    let family = id
                        .and_then(|p| pcx.pools[p.index()].backends.first())
                        .map(|b| b.0.family);
                    let encap = match encap {
                        Some(e) => match self.encap(e, family) {
                            Some(e) => {
                                self.needs(pcx, Capabilities::ENCAP, a.span);
                                encap_span = Some(a.span);
                                Some(e)
                            }
                            None => {
                                broken = true;
                                None
                            }
                        },
                        None => None,
                    };
                    let sticky = match sticky {
                        Some(n) => match self.int_value(n, "`sticky` flows", 1 << 24) {
                            Some(0) => {
                                self.help(
                                    "E0105",
                                    n.span,
                                    "`sticky 0` keeps no flows",
                                    "give the flow table's size, e.g. `sticky 64K`",
                                );
                                broken = true;
                                None
                            }
                            Some(n) => {
                                self.needs(pcx, Capabilities::LRU_MAP, a.span);
                                Some(n as u32)
                            }
                            None => {
                                broken = true;
                                None
                            }
                        },
                        None => None,
                    };
                    match (id, fields) {
                        (Some(pool), Some(by)) if !by.is_empty() => actions.push(Action::Balance {
                            pool,
                            by,
                            via_fib,
                            encap,
                            sticky,
                        }),
                        (Some(_), Some(_)) => {
                            self.help(
                                "E0111",
                                a.span,
                                "`balance` needs fields to hash",
                                "write `balance POOL by (ip.src, l4.sport)`",
                            );
                            broken = true;
                        }
                        _ => broken = true,
                    }
                }
                _ => broken = true,
            }
        }
        if let (Some(bspan), Some((t, tspan))) = (balance_span, &terminal) {
            if !matches!(t, Terminal::Tx | Terminal::Redirect(_)) {
                self.diags.push(
                    Diagnostic::error(
                        "E0112",
                        *tspan,
                        format!(
                            "`balance` must end in `tx` or `redirect`, not `{}`",
                            t.name()
                        ),
                    )
                    .with_note(bspan, "the packet is rewritten for a backend here")
                    .with_help("a balanced packet leaves through `tx` (xdp) or `redirect \"IF\"`"),
                );
                broken = true;
            }
        }
        if terminal.is_none() && !terminal_optional && !broken {
            self.diags.push(
                Diagnostic::error("E0112", span, "missing terminal action")
                    .with_label("this ends without pass, drop, tx, redirect or abort")
                    .with_help("end the action list with a terminal, e.g. `=> count c, drop`"),
            );
        }
        if broken {
            // The error has been reported; a placeholder keeps the rest of the policy checked.
            return (actions, Some(Terminal::Pass));
        }
        (actions, terminal.map(|(t, _)| t))
    }
}

fn rewritable(f: Field) -> bool {
    matches!(
        f,
        Field::EthSrc
            | Field::EthDst
            | Field::IpSrc
            | Field::IpDst
            | Field::Ipv4Src
            | Field::Ipv4Dst
            | Field::Ipv6Src
            | Field::Ipv6Dst
            | Field::L4Sport
            | Field::L4Dport
            | Field::TcpSport
            | Field::TcpDport
            | Field::UdpSport
            | Field::UdpDport
            | Field::IpTtl
            | Field::Ipv4Ttl
            | Field::Ipv6Hoplimit
            | Field::IpDscp
            | Field::Ipv4Dscp
            | Field::Ipv6Dscp
    )
}

impl Checker {
    /// `encap ipip|gue(PORT) [from ADDR]` for a pool of `family` (unknown when the pool is
    /// empty or unresolved).
    fn encap(&mut self, e: &ast::EncapSpec, family: Option<Family>) -> Option<Encap> {
        let kind = match (e.kind.name.as_str(), &e.port) {
            ("ipip", None) => EncapKind::Ipip,
            ("ipip", Some(p)) => {
                self.help(
                    "E0102",
                    p.span,
                    "`encap ipip` takes no port",
                    "write `encap ipip`, or `encap gue(PORT)` for UDP",
                );
                return None;
            }
            ("gue", Some(p)) => {
                match self.int_value(p, "a GUE port", 65535)? {
                    0 => {
                        self.help("E0105", p.span, "port 0 cannot receive GUE", "use the port the backends' fou/gue receiver listens on, e.g. `gue(6080)`");
                        return None;
                    }
                    port => EncapKind::Gue(port as u16),
                }
            }
            ("gue", None) => {
                self.help(
                    "E0102",
                    e.kind.span,
                    "`encap gue` needs the backends' UDP port",
                    "write `encap gue(6080)`",
                );
                return None;
            }
            (other, _) => {
                let help = match closest(other, ["ipip", "gue"]) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "the encapsulations are `ipip` and `gue(PORT)`".into(),
                };
                self.help(
                    "E0102",
                    e.kind.span,
                    format!("unknown encapsulation `{other}`"),
                    help,
                );
                return None;
            }
        };
        let from = match &e.from {
            Some(v) => {
                let a = self.scalar(v, FieldType::IpAny, "an outer source address")?;
                if let Some(f) = family.filter(|f| *f != a.family) {
                    let want = if f == Family::V4 { "IPv4" } else { "IPv6" };
                    self.help(
                        "E0104",
                        v.span,
                        format!("the outer source must be {want}, as the pool's backends are"),
                        "the outer header has the backends' family; give an address of that family",
                    );
                    return None;
                }
                Some(a)
            }
            None => None,
        };
        Some(Encap { kind, from })
    }
}
