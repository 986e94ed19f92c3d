//! Baselines a policy is measured against in the same run: XDP drop-all, the equivalent
//! hand-written C (clang -O2) where one exists, and nftables netdev ingress with the same rules
//! where the policy can be said there.
//!
//! Both translations go through [`Plain`], the policy reduced to first-match rules over
//! family, L4 protocol, destination port and IPv4 source sets. A policy using anything else
//! (rewrites, limiters, counters, other fields) has no such baseline, and [`plain`] says which
//! rule stands in the way.

use nfcc_dsl::ast::CmpOp;
use nfcc_dsl::checked::{Atom, Expr, Field, Header, Item, Policy, Terminal};

/// The hand-written C programs (benches/c), embedded so `nfcc bench` works from any directory.
pub const C_SOURCES: &[(&str, &str)] = &[
    ("drop_all", include_str!("../../benches/c/drop_all.c")),
    ("drop_v6", include_str!("../../benches/c/drop_v6.c")),
    ("blocklist_lpm", include_str!("../../benches/c/blocklist_lpm.c")),
    ("blocklist_hash", include_str!("../../benches/c/blocklist_hash.c")),
    ("katran_encap", include_str!("../../benches/c/katran_encap.c")),
    // Not a baseline: the DSR testbed's backends decapsulate with it.
    ("dsr_decap", include_str!("../../benches/c/dsr_decap.c")),
    (
        "xdp_pass",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC(\"xdp\") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    ),
];

/// A map entry to write after loading: (map name, key, value).
pub type MapEntry = (String, Vec<u8>, Vec<u8>);

/// One first-match rule of a [`Plain`] policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlainRule {
    /// Only IPv4 (`Some(4)`) or only IPv6 (`Some(6)`) packets.
    pub family: Option<u8>,
    /// Only UDP (17) or TCP (6).
    pub l4: Option<u8>,
    /// Destination port.
    pub dport: Option<u16>,
    /// IPv4 source prefixes (address, length).
    pub src: Option<Vec<([u8; 4], u8)>>,
    /// Drop (else pass).
    pub drop: bool,
}

/// A policy as first-match rules simple enough for nftables and the C baselines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// The rules in order.
    pub rules: Vec<PlainRule>,
    /// The default drops (else passes).
    pub default_drop: bool,
}

fn v4_items(items: &[Item]) -> Option<Vec<([u8; 4], u8)>> {
    items
        .iter()
        .map(|i| match i {
            Item::Value(s) if s.bits <= u128::from(u32::MAX) => {
                Some(((s.bits as u32).to_be_bytes(), 32))
            }
            Item::Prefix(s, l) if s.bits <= u128::from(u32::MAX) && *l <= 32 => {
                Some(((s.bits as u32).to_be_bytes(), *l))
            }
            _ => None,
        })
        .collect()
}

fn atom(p: &Policy, a: &Atom, r: &mut PlainRule) -> Option<()> {
    match a {
        Atom::Present(Header::Ipv4) => r.family = Some(4),
        Atom::Present(Header::Ipv6) => r.family = Some(6),
        Atom::Present(Header::Udp) => r.l4 = Some(17),
        Atom::Present(Header::Tcp) => r.l4 = Some(6),
        Atom::Cmp {
            field,
            mask: None,
            op: CmpOp::Eq,
            value,
        } => match field {
            Field::UdpDport | Field::TcpDport => {
                r.l4 = Some(if *field == Field::UdpDport { 17 } else { 6 });
                r.dport = Some(u16::try_from(value.bits).ok()?);
            }
            Field::IpSrc | Field::Ipv4Src => {
                r.src = Some(v4_items(&[Item::Value(*value)])?);
            }
            _ => return None,
        },
        Atom::InSet {
            field: Field::IpSrc | Field::Ipv4Src,
            set,
        } => {
            r.src = Some(v4_items(&p.sets.get(set.0 as usize)?.items)?);
        }
        Atom::InList {
            field: Field::IpSrc | Field::Ipv4Src,
            mask: None,
            items,
        } => {
            r.src = Some(v4_items(items)?);
        }
        _ => return None,
    }
    Some(())
}

/// Reduces `p` to a [`Plain`] policy, or says which rule cannot be reduced.
pub fn plain(p: &Policy) -> Result<Plain, String> {
    let mut rules = Vec::new();
    for rule in &p.rules {
        let why = || {
            format!("rule `{}` uses more than nftables and the C baselines express (family, udp/tcp, dport, IPv4 source sets; pass or drop; no actions)", rule.name)
        };
        if !rule.actions.is_empty() {
            return Err(why());
        }
        let drop = match rule.terminal {
            Some(Terminal::Drop) => true,
            Some(Terminal::Pass) => false,
            _ => return Err(why()),
        };
        let mut r = PlainRule {
            drop,
            ..PlainRule::default()
        };
        let atoms: Vec<&Expr> = match &rule.expr {
            Expr::And(xs) => xs.iter().collect(),
            e => vec![e],
        };
        for e in atoms {
            match e {
                Expr::Atom(a, _) => atom(p, a, &mut r).ok_or_else(why)?,
                _ => return Err(why()),
            }
        }
        if r.src.is_some() && r.family == Some(6) {
            return Err(why());
        }
        rules.push(r);
    }
    if !p.default.actions.is_empty() {
        return Err("the default has actions".into());
    }
    let default_drop = match p.default.terminal {
        Terminal::Drop => true,
        Terminal::Pass => false,
        _ => return Err("the default is neither pass nor drop".into()),
    };
    Ok(Plain {
        rules,
        default_drop,
    })
}

/// The map entries that make `benches/c/katran_encap.c` the balancer `p` is: every rule
/// `ip.dst == VIP and tcp.dport|udp.dport == PORT => [count C,] balance POOL by (...) encap
/// ipip [from ADDR], tx` over IPv4 backends of weight 1, the default `pass`; `None` otherwise.
/// The C program hashes with jhash onto a ring (not Maglev) and swaps the MACs (no FIB): the
/// same work per packet — a VIP lookup, a hash, a backend lookup, a per-VIP counter, the
/// outer header with its checksum — that a Katran-like balancer does.
pub fn katran_equivalent(p: &Policy) -> Option<Vec<MapEntry>> {
    use nfcc_dsl::checked::{Action, EncapKind, Family};
    if p.default.terminal != Terminal::Pass || !p.default.actions.is_empty() || p.rules.is_empty() {
        return None;
    }
    let (mut entries, mut first) = (Vec::new(), 0u32);
    for r in &p.rules {
        if r.terminal != Some(Terminal::Tx) {
            return None;
        }
        let balance = match r.actions.as_slice() {
            [Action::Count(_), b] | [b] => b,
            _ => return None,
        };
        let Action::Balance {
            pool,
            encap: Some(e),
            via_fib: false,
            ..
        } = balance
        else {
            return None;
        };
        let backends = &p.pools.get(pool.index())?.backends;
        if e.kind != EncapKind::Ipip
            || backends
                .iter()
                .any(|(a, w)| a.family != Family::V4 || *w != 1)
        {
            return None;
        }
        let (mut vip, mut port) = (None, None);
        let Expr::And(parts) = &r.expr else {
            return None;
        };
        for part in parts {
            match part {
                Expr::Atom(
                    Atom::Cmp {
                        field,
                        mask: None,
                        op: CmpOp::Eq,
                        value,
                    },
                    _,
                ) => match field {
                    Field::IpDst | Field::Ipv4Dst if value.family == Family::V4 => {
                        vip = Some(value.bits as u32)
                    }
                    Field::TcpDport => port = Some((value.bits as u16, 6u8)),
                    Field::UdpDport => port = Some((value.bits as u16, 17u8)),
                    _ => return None,
                },
                _ => return None,
            }
        }
        let (vip, (port, proto)) = (vip?, port?);
        let count = backends.len() as u32;
        if first + count > 64 {
            return None;
        }
        let mut key = vip.to_be_bytes().to_vec();
        key.extend_from_slice(&port.to_be_bytes());
        key.extend_from_slice(&[proto, 0]);
        let mut value = first.to_le_bytes().to_vec();
        value.extend_from_slice(&count.to_le_bytes());
        entries.push(("vips".to_string(), key, value));
        for (i, (a, _)) in backends.iter().enumerate() {
            let slot = (first + i as u32).to_le_bytes().to_vec();
            entries.push((
                "reals".to_string(),
                slot,
                (a.bits as u32).to_be_bytes().to_vec(),
            ));
        }
        first += count;
    }
    Some(entries)
}

/// The C baselines equivalent to `plain`: (C program name, map entries to fill (map, key,
/// value)). Empty when none of benches/c says the same thing.
pub fn c_equivalents(plain: &Plain) -> Vec<(&'static str, Vec<MapEntry>)> {
    match (plain.rules.as_slice(), plain.default_drop) {
        ([], true) => vec![("drop_all", Vec::new())],
        (
            [PlainRule {
                family: Some(6),
                l4: None,
                dport: None,
                src: None,
                drop: true,
            }],
            false,
        ) => vec![("drop_v6", Vec::new())],
        (
            [PlainRule {
                family: None | Some(4),
                l4: Some(17),
                dport: Some(53),
                src: Some(src),
                drop: true,
            }],
            false,
        ) => {
            let lpm = src
                .iter()
                .map(|(a, l)| {
                    let mut k = u32::from(*l).to_le_bytes().to_vec();
                    k.extend_from_slice(a);
                    ("blocked".to_string(), k, vec![1])
                })
                .collect();
            let mut out = vec![("blocklist_lpm", lpm)];
            // The hash variant has one map per length, for /32 and /24 only.
            if src.iter().all(|(_, l)| *l == 32 || *l == 24) {
                let hash = src
                    .iter()
                    .map(|(a, l)| (format!("blocked{l}"), a.to_vec(), vec![1]))
                    .collect();
                out.push(("blocklist_hash", hash));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn ip4(a: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// nftables netdev-ingress rulesets for `plain` on device `dev`: (label, ruleset), the
/// interval-set form first and, when some rule has a source set, the form with one hash set per
/// prefix length (`ip saddr & MASK @set`), which nftables runs faster.
pub fn nft_rulesets(plain: &Plain, dev: &str, table: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let has_sets = plain.rules.iter().any(|r| r.src.is_some());
    for hashed in [false, true] {
        if hashed && !has_sets {
            break;
        }
        let mut sets = String::new();
        let mut body = String::new();
        for (i, r) in plain.rules.iter().enumerate() {
            let mut m = String::new();
            match r.family {
                Some(4) => m.push_str("meta protocol ip "),
                Some(6) => m.push_str("meta protocol ip6 "),
                _ => {}
            }
            let tail = {
                let mut t = String::new();
                match (r.l4, r.dport) {
                    (Some(17), Some(p)) => t.push_str(&format!("udp dport {p} ")),
                    (Some(6), Some(p)) => t.push_str(&format!("tcp dport {p} ")),
                    (Some(17), None) => t.push_str("meta l4proto udp "),
                    (Some(6), None) => t.push_str("meta l4proto tcp "),
                    _ => {}
                }
                t.push_str(if r.drop { "drop" } else { "accept" });
                t
            };
            match &r.src {
                None => body.push_str(&format!("        {m}{tail}\n")),
                Some(src) if !hashed => {
                    let elems: Vec<String> = src
                        .iter()
                        .map(|(a, l)| {
                            if *l == 32 {
                                ip4(a)
                            } else {
                                format!("{}/{l}", ip4(a))
                            }
                        })
                        .collect();
                    sets.push_str(&format!(
                        "    set s{i} {{ type ipv4_addr; flags interval; elements = {{ {} }} }}\n",
                        elems.join(", ")
                    ));
                    body.push_str(&format!("        {m}ip saddr @s{i} {tail}\n"));
                }
                Some(src) => {
                    let mut lens: Vec<u8> = src.iter().map(|(_, l)| *l).collect();
                    lens.sort_unstable_by(|a, b| b.cmp(a));
                    lens.dedup();
                    for l in lens {
                        let elems: Vec<String> = src
                            .iter()
                            .filter(|(_, x)| *x == l)
                            .map(|(a, _)| ip4(a))
                            .collect();
                        sets.push_str(&format!(
                            "    set s{i}_{l} {{ type ipv4_addr; elements = {{ {} }} }}\n",
                            elems.join(", ")
                        ));
                        let mask = if l == 0 {
                            0
                        } else {
                            u32::MAX << (32 - u32::from(l))
                        };
                        let sel = if l == 32 {
                            "ip saddr".to_string()
                        } else {
                            format!("ip saddr & {}", ip4(&mask.to_be_bytes()))
                        };
                        body.push_str(&format!("        {m}{sel} @s{i}_{l} {tail}\n"));
                    }
                }
            }
        }
        let policy = if plain.default_drop { "drop" } else { "accept" };
        let text = format!(
            "table netdev {table} {{\n{sets}    chain ingress {{\n        type filter hook ingress device \"{dev}\" priority 0; policy {policy};\n{body}    }}\n}}\n"
        );
        let label = match (has_sets, hashed) {
            (false, _) => "nftables netdev ingress",
            (true, false) => "nftables, interval set",
            (true, true) => "nftables, hash set per prefix length",
        };
        out.push((label.to_string(), text));
    }
    out
}
