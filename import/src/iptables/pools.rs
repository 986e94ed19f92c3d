//! The values a dump's rules name — addresses and prefixes, ports and range ends, protocols,
//! ICMP types — from which `--verify` draws its packets, so that the rules' edges are tried
//! and not only random traffic.

use super::dump;

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
