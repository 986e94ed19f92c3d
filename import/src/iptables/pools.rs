//! The values a dump's rules name — addresses and prefixes, ports and range ends, protocols,
//! ICMP types — from which `--verify` draws its packets, so that the rules' edges are tried
//! and not only random traffic.

use super::dump;

/// One rule's values together, so a packet can be made that meets all of its conditions
/// at once (values drawn one by one rarely meet a rule of several conditions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// Source prefix.
    pub src: Option<String>,
    /// Destination prefix.
    pub dst: Option<String>,
    /// Protocol number.
    pub proto: Option<u8>,
    /// Source ports (with each range's ends).
    pub sports: Vec<u16>,
    /// Destination ports (with each range's ends).
    pub dports: Vec<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, Option<u8>)>,
    /// TCP flags the rule asks for (`syn`, `0`, ...), as a packet literal writes them.
    pub flags: Option<String>,
}

/// What the rules name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pools {
    /// An ip6tables dump.
    pub v6: bool,
    /// Addresses and prefixes (`addr/len`), as written.
    pub prefixes: Vec<String>,
    /// Ports, with each range's ends and their neighbours.
    pub ports: Vec<u16>,
    /// Protocol numbers.
    pub protos: Vec<u8>,
    /// ICMP (or ICMPv6) types and codes.
    pub icmp: Vec<(u8, Option<u8>)>,
    /// Each rule's values together.
    pub templates: Vec<Template>,
}

/// `a:b`/`a,b` port lists as ports (a range gives its ends).
pub(crate) fn port_list(v: &str) -> Vec<u16> {
    v.split(',')
        .flat_map(|item| {
            let (a, b) = item.split_once(':').unwrap_or((item, item));
            [a.parse::<u16>().ok(), b.parse::<u16>().ok()]
        })
        .flatten()
        .collect()
}

/// [`pools`] with the members of the ipsets the rules name: every member is a prefix to draw
/// from, and a rule matching a set gets one template per member (at most eight).
pub fn pools_with_sets(text: &str, v6: bool, sets: &crate::ipset::Sets) -> Pools {
    let mut p = pools(text, v6);
    let Ok(tables) = dump::parse(text) else {
        return p;
    };
    for s in sets.0.iter().filter(|s| s.v6 == v6) {
        p.prefixes.extend(s.members.iter().cloned());
    }
    let rules = tables
        .iter()
        .filter(|t| t.name == "filter")
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules);
    for (r, t) in rules.zip(p.templates.clone()) {
        for (i, w) in r.words.windows(3).enumerate() {
            if w[0] != "--match-set" || (i > 0 && r.words[i - 1] == "!") {
                continue;
            }
            let Some(set) = sets.get(&w[1]) else { continue };
            for m in set.members.iter().take(8) {
                let mut t = t.clone();
                if w[2] == "dst" {
                    t.dst = Some(m.clone());
                } else {
                    t.src = Some(m.clone());
                }
                p.templates.push(t);
            }
        }
    }
    p
}

/// The pools of `text`'s filter table (`v6` for an ip6tables dump).
pub fn pools(text: &str, v6: bool) -> Pools {
    let mut p = Pools {
        v6,
        ..Pools::default()
    };
    let Ok(tables) = dump::parse(text) else {
        return p;
    };
    let rules = tables
        .iter()
        .filter(|t| t.name == "filter")
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules);
    for r in rules {
        let mut t = Template::default();
        for (i, w) in r.words.windows(2).enumerate() {
            let negated = i > 0 && r.words[i - 1] == "!";
            if !negated {
                let v = w[1].as_str();
                match w[0].as_str() {
                    "-s" | "--source" => t.src = Some(v.into()),
                    "-d" | "--destination" => t.dst = Some(v.into()),
                    "-p" | "--protocol" => {
                        t.proto = match v {
                            "tcp" => Some(6),
                            "udp" => Some(17),
                            "icmp" => Some(1),
                            "ipv6-icmp" | "icmpv6" => Some(58),
                            n => n.parse().ok(),
                        }
                    }
                    "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                        t.dports = port_list(v)
                    }
                    "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                        t.sports = port_list(v)
                    }
                    "--icmp-type" | "--icmpv6-type" => {
                        let (a, c) = v.split_once('/').map_or((v, None), |(a, c)| (a, Some(c)));
                        t.icmp = a.parse().ok().map(|a| (a, c.and_then(|c| c.parse().ok())));
                    }
                    "--tcp-flags" => {
                        let comp = r.words.get(i + 2).map(String::as_str).unwrap_or("");
                        t.flags = Some(if comp == "NONE" {
                            "0".into()
                        } else {
                            comp.to_ascii_lowercase().replace(',', "|")
                        });
                    }
                    _ => {}
                }
            }
            if w[0] == "--syn" && !negated {
                t.flags = Some("syn".into());
            }
        }
        if r.words.last().is_some_and(|w| w == "--syn") {
            t.flags = Some("syn".into());
        }
        p.templates.push(t);
        for w in r.words.windows(2) {
            let (opt, v) = (w[0].as_str(), w[1].as_str());
            match opt {
                "-s" | "--source" | "-d" | "--destination" => p.prefixes.push(v.to_string()),
                "-p" | "--protocol" => {
                    let n = match v {
                        "tcp" => Some(6),
                        "udp" => Some(17),
                        "icmp" => Some(1),
                        "ipv6-icmp" | "icmpv6" => Some(58),
                        n => n.parse().ok(),
                    };
                    p.protos.extend(n);
                }
                o if o.contains("port") => {
                    for item in v.split(',') {
                        let (a, b) = item.split_once(':').unwrap_or((item, item));
                        for x in [a.parse::<u16>().ok(), b.parse::<u16>().ok()]
                            .into_iter()
                            .flatten()
                        {
                            p.ports
                                .extend([x.saturating_sub(1), x, x.saturating_add(1)]);
                        }
                    }
                }
                "--icmp-type" | "--icmpv6-type" => {
                    let (t, c) = v.split_once('/').map_or((v, None), |(t, c)| (t, Some(c)));
                    if let Ok(t) = t.parse() {
                        p.icmp.push((t, c.and_then(|c| c.parse().ok())));
                    }
                }
                _ => {}
            }
        }
    }
    p.ports.sort_unstable();
    p.ports.dedup();
    p.protos.sort_unstable();
    p.protos.dedup();
    p
}
