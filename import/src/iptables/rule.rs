//! One rule's options as a `.nf` predicate and a target, or the construct that cannot be said
//! and why.
//!
//! Exactness notes (netfilter's semantics, kept): `-p tcp` is the IP protocol, true for every
//! fragment, so it becomes `ip.proto == 6`, not the `tcp` header atom; port, flag and ICMP
//! matches are false on non-first fragments (the header is absent), and so is their negation
//! — `! --dport 22` becomes `(tcp and not tcp.dport == 22)`, since `.nf`'s `not` alone would be
//! true where the header is absent.

use crate::ipset::Sets;
use crate::walk::{refuse, Refusal, Said, Target};

/// Where a rule may only match certain interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Never {
    /// The rule can never match where the policy runs (the reason).
    Because(String),
}

/// What translation needs to know.
pub struct Context<'a> {
    /// An ip6tables dump.
    pub v6: bool,
    /// The interface the policy is attached to, if given.
    pub iface: Option<&'a str>,
    /// The dump's ipsets.
    pub sets: &'a Sets,
    /// The chains of the table (jump targets).
    pub chains: &'a [String],
}

/// The protocol number of `-p NAME`.
fn proto_number(p: &str, v6: bool) -> Option<u8> {
    Some(match p {
        "tcp" => 6,
        "udp" => 17,
        "icmp" if !v6 => 1,
        "icmpv6" | "ipv6-icmp" if v6 => 58,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        "sctp" => 132,
        "udplite" => 136,
        n => n.parse().ok()?,
    })
}

/// `a:b`, `a:`, `:b`, `a` as a `.nf` list element.
fn port_item(p: &str) -> Option<String> {
    let num = |s: &str, d: u16| {
        if s.is_empty() {
            Some(d)
        } else {
            s.parse::<u16>().ok()
        }
    };
    match p.split_once(':') {
        Some((a, b)) => Some(format!("{}..{}", num(a, 0)?, num(b, 65535)?)),
        None => Some(num(p, 0)?.to_string()),
    }
}

/// A port match on `field` (`tcp.dport`, ...) of `spec` (`22`, `1024:65535`, or a
/// multiport list `53,123,1000:2000`).
fn ports(field: &str, spec: &str) -> Option<String> {
    let items: Option<Vec<String>> = spec.split(',').map(port_item).collect();
    let items = items?;
    Some(match items.as_slice() {
        [one] if !one.contains("..") => format!("{field} == {one}"),
        [one] => format!("{field} in {one}"),
        many => format!("{field} in {{{}}}", many.join(", ")),
    })
}

/// `-s`/`-d` of `addr` as an atom on `field`.
fn address(field: &str, addr: &str, v6: bool) -> Option<String> {
    let (a, len) = match addr.split_once('/') {
        Some((a, l)) => (a, l),
        None => (addr, if v6 { "128" } else { "32" }),
    };
    let ok = if v6 {
        a.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        a.parse::<std::net::Ipv4Addr>().is_ok()
    };
    let len: u8 = len.parse().ok()?;
    if !ok || len > if v6 { 128 } else { 32 } {
        return None;
    }
    Some(match (len, v6) {
        (0, _) => "ip".into(),
        (32, false) | (128, true) => format!("{field} == {a}"),
        _ => format!("{field} in {a}/{len}"),
    })
}

const FLAGS: [(&str, &str); 8] = [
    ("FIN", "fin"),
    ("SYN", "syn"),
    ("RST", "rst"),
    ("PSH", "psh"),
    ("ACK", "ack"),
    ("URG", "urg"),
    ("ECE", "ece"),
    ("CWR", "cwr"),
];

/// `--tcp-flags` lists (`SYN,ACK`, `ALL`, `NONE`) as a `.nf` flag set (`0` for none).
fn flag_set(list: &str) -> Option<String> {
    let names: Vec<&str> = match list {
        "NONE" => return Some("0".into()),
        // netfilter's ALL is the six classic flags.
        "ALL" => vec!["FIN", "SYN", "RST", "PSH", "ACK", "URG"],
        l => l.split(',').collect(),
    };
    let out: Option<Vec<&str>> = names
        .iter()
        .map(|n| FLAGS.iter().find(|(k, _)| k == n).map(|(_, v)| *v))
        .collect();
    Some(out?.join("|"))
}

/// Wraps a header-field atom for negation: false where the header is absent, as netfilter's.
fn negated(header: &str, atom: &str) -> String {
    format!("({header} and not {atom})")
}

/// Translates a rule's words (after `-A CHAIN`).
pub fn translate(words: &[String], cx: &Context<'_>) -> Result<Result<Said, Never>, Refusal> {
    let mut atoms = Vec::new();
    let mut target = Target::None;
    let mut comment = None;
    let mut proto: Option<u8> = None;
    let mut never = None;
    let mut neg = false;
    let mut i = 0;
    let arg = |i: usize| words.get(i + 1).map(String::as_str);
    while i < words.len() {
        let w = words[i].as_str();
        if w == "!" {
            neg = true;
            i += 1;
            continue;
        }
        let a = arg(i).unwrap_or("");
        let flag = matches!(w, "--syn" | "-f" | "--fragment");
        if a.is_empty() && !flag {
            return Err(refuse(w, "an option without its value"));
        }
        let mut used = 2;
        let l4 = match proto {
            Some(6) => Some("tcp"),
            Some(17) => Some("udp"),
            _ => None,
        };
        match w {
            "-p" | "--protocol" => {
                if a == "all" || a == "0" {
                    if neg {
                        return Ok(Err(Never::Because("`! -p all` matches nothing".into())));
                    }
                } else {
                    let n = proto_number(a, cx.v6)
                        .ok_or_else(|| refuse(format!("-p {a}"), "an unknown protocol"))?;
                    let atom = format!("ip.proto == {n}");
                    atoms.push(if neg { format!("not {atom}") } else { atom });
                    if !neg {
                        proto = Some(n);
                    }
                }
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let field = if w.starts_with("-s") || w == "--source" {
                    "ip.src"
                } else {
                    "ip.dst"
                };
                if a.contains(',') {
                    return Err(refuse(
                        format!("{w} {a}"),
                        "several addresses in one rule (iptables-save writes one rule per address)",
                    ));
                }
                let atom = address(field, a, cx.v6).ok_or_else(|| {
                    refuse(
                        format!("{w} {a}"),
                        "not an address or prefix of the dump's family (or a non-contiguous mask)",
                    )
                })?;
                atoms.push(if neg { format!("not {atom}") } else { atom });
            }
            "-i" | "--in-interface" => {
                let matches = |iface: &str| match a.strip_suffix('+') {
                    Some(p) => iface.starts_with(p),
                    None => iface == a,
                };
                match (cx.iface, a == "lo") {
                    (Some(f), _) if matches(f) != neg => {}
                    (Some(f), _) => never = Some(format!("`{}-i {a}` never holds on {f}", if neg { "! " } else { "" })),
                    (None, true) if neg => {}
                    (None, true) => never = Some("`-i lo` matches loopback traffic only, which never reaches the interface the policy is attached to".into()),
                    (None, false) => return Err(refuse(format!("-i {a}"), "an input interface: give --iface IF, the interface the policy will be attached to")),
                }
            }
            "-o" | "--out-interface" => {
                return Err(refuse(
                    format!("-o {a}"),
                    "an output interface has no meaning for packets coming in",
                ))
            }
            // The second and later fragments (netfilter: a non-zero offset); IPv4 only, as
            // ip6tables has no `-f` (its fragments are `-m frag`).
            "-f" | "--fragment" if !cx.v6 => {
                atoms.push(
                    if neg {
                        "ip.frag_offset == 0"
                    } else {
                        "ip.frag_offset != 0"
                    }
                    .to_string(),
                );
                used = 1;
            }
            "-f" | "--fragment" => {
                return Err(refuse(
                    "-f",
                    "ip6tables has no -f (IPv6 fragments are matched with -m frag)",
                ));
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                target = match (w, a) {
                    (_, "ACCEPT") => Target::Accept,
                    (_, "DROP") => Target::Drop,
                    (_, "RETURN") => Target::Return,
                    ("-g" | "--goto", c) if cx.chains.iter().any(|x| x == c) => Target::Goto(c.into()),
                    (_, c) if cx.chains.iter().any(|x| x == c) => Target::Jump(c.into()),
                    (_, "REJECT") => return Err(refuse("-j REJECT", "REJECT answers the sender (ICMP or RST), which a filter on the receive path cannot do; DROP is not the same")),
                    (_, "LOG" | "NFLOG" | "ULOG") => return Err(refuse(format!("-j {a}"), "logging: the language has `sample`, which is not a log")),
                    (_, t) => return Err(refuse(format!("-j {t}"), "a target that changes or queues packets or state")),
                };
                // Target options (REJECT's --reject-with, ...) are refused with the target.
                used = 2;
            }
            "-m" | "--match" => match a {
                "tcp" | "udp" | "icmp" | "icmp6" | "multiport" | "comment" | "set" | "hl"
                | "ttl" => {}
                "conntrack" | "state" => {
                    return Err(refuse(format!("-m {a}"), "connection tracking state is not in the packet: a stateless filter cannot tell ESTABLISHED or RELATED from NEW (put the policy where replies do not pass, or keep this rule in netfilter)"));
                }
                m => {
                    return Err(refuse(
                        format!("-m {m}"),
                        "a match the language has no equivalent for",
                    ))
                }
            },
            "--dport"
            | "--destination-port"
            | "--sport"
            | "--source-port"
            | "--dports"
            | "--destination-ports"
            | "--sports"
            | "--source-ports"
            | "--ports" => {
                let l4 =
                    l4.ok_or_else(|| refuse(format!("{w} {a}"), "ports without -p tcp or -p udp"))?;
                let bad = || refuse(format!("{w} {a}"), "ports that are not numbers or ranges");
                let atom = if w == "--ports" {
                    let s = ports(&format!("{l4}.sport"), a).ok_or_else(bad)?;
                    let d = ports(&format!("{l4}.dport"), a).ok_or_else(bad)?;
                    format!("({s} or {d})")
                } else {
                    let field = if w.contains("dport") || w.contains("destination") {
                        "dport"
                    } else {
                        "sport"
                    };
                    ports(&format!("{l4}.{field}"), a).ok_or_else(bad)?
                };
                atoms.push(if neg {
                    negated(l4, &atom)
                } else {
                    format!("{l4} and {atom}")
                });
            }
            "--syn" | "--tcp-flags" => {
                if proto != Some(6) {
                    return Err(refuse(w, "TCP flags without -p tcp"));
                }
                let (mask, comp) = if w == "--syn" {
                    used = 1;
                    ("SYN,RST,ACK,FIN".to_string(), "SYN".to_string())
                } else {
                    let c = words
                        .get(i + 2)
                        .ok_or_else(|| refuse(w, "--tcp-flags needs a mask and the flags set"))?;
                    used = 3;
                    (a.to_string(), c.clone())
                };
                let (m, c) = flag_set(&mask).zip(flag_set(&comp)).ok_or_else(|| {
                    refuse(format!("--tcp-flags {mask} {comp}"), "unknown flag names")
                })?;
                let atom = format!("tcp.flags & ({m}) == {c}");
                atoms.push(if neg {
                    negated("tcp", &atom)
                } else {
                    format!("tcp and {atom}")
                });
            }
            "--icmp-type" | "--icmpv6-type" => {
                let h = if cx.v6 { "icmpv6" } else { "icmp" };
                if a == "any" {
                    atoms.push(if neg { "not ip".into() } else { h.to_string() });
                } else {
                    let (t, c) = match a.split_once('/') {
                        Some((t, c)) => (t, Some(c)),
                        None => (a, None),
                    };
                    let t: u8 = t.parse().map_err(|_| {
                        refuse(
                            format!("{w} {a}"),
                            "ICMP type names: iptables-save writes numbers; give numbers",
                        )
                    })?;
                    let mut atom = format!("{h}.type == {t}");
                    if let Some(c) = c {
                        let c: u8 = c.parse().map_err(|_| {
                            refuse(format!("{w} {a}"), "an ICMP code that is not a number")
                        })?;
                        atom = format!("({atom} and {h}.code == {c})");
                    }
                    atoms.push(if neg {
                        negated(h, &atom)
                    } else {
                        format!("{h} and {atom}")
                    });
                }
            }
            "--comment" => comment = Some(a.to_string()),
            "--hl-eq" | "--hl-lt" | "--hl-gt" | "--ttl-eq" | "--ttl-lt" | "--ttl-gt" => {
                let n: u8 = a
                    .parse()
                    .map_err(|_| refuse(format!("{w} {a}"), "a hop limit that is not a number"))?;
                let op = match &w[w.len() - 2..] {
                    "eq" => "==",
                    "lt" => "<",
                    _ => ">",
                };
                let atom = format!("ip.ttl {op} {n}");
                atoms.push(if neg { format!("not {atom}") } else { atom });
            }
            "--match-set" => {
                let dir = words.get(i + 2).map(String::as_str).unwrap_or("");
                used = 3;
                let set = cx.sets.get(a).ok_or_else(|| {
                    refuse(
                        format!("--match-set {a}"),
                        "a set the --ipset file does not define",
                    )
                })?;
                if !set.expressible() {
                    return Err(refuse(
                        format!("--match-set {a} {dir}"),
                        format!("a set of type {}, which the language cannot hold", set.kind),
                    ));
                }
                let field = match dir {
                    "src" => "ip.src",
                    "dst" => "ip.dst",
                    d => {
                        return Err(refuse(
                            format!("--match-set {a} {d}"),
                            "a direction list other than src or dst",
                        ))
                    }
                };
                let atom = format!("{field} in {}", crate::iptables::set_name(a));
                atoms.push(if neg { format!("not {atom}") } else { atom });
            }
            other => return Err(refuse(other, "an option the importer does not know")),
        }
        neg = false;
        i += used;
    }
    if let Some(why) = never {
        return Ok(Err(Never::Because(why)));
    }
    Ok(Ok(Said {
        atoms,
        target,
        comment,
    }))
}
