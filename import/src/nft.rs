//! `nft -j list ruleset` output as a `.nf` policy: one base chain hooked on `input` (of an
//! `ip`, `ip6` or `inet` table) and the chains it reaches, walked as nftables walks them
//! (`crate::walk`). Named sets are written inline where a rule uses them.
//!
//! The JSON is read as `serde_json` values and each expression matched by its form; a form
//! not handled here is refused with its JSON path (`nftables[N]`, the rule's index in the
//! document) and the expression, never skipped. Exactness follows nftables' own semantics:
//! `ip saddr` in an `inet` table carries the implicit `meta nfproto ipv4` dependency (so its
//! negation stays false on IPv6), transport-header matches are false on non-first fragments,
//! and `ip6 nexthdr` (the IPv6 header's own next-header field) is refused because the
//! language's `ipv6.nexthdr` is the upper-layer protocol after extension headers.

use crate::walk::{refuse, walk, Read, Refusal, Said, Target, XChain, XRule};
use crate::{checked, ImportError, Imported};
use serde_json::Value;

/// How to import.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy's name.
    pub name: String,
    /// `FAMILY/TABLE/CHAIN` (default: the one filter chain hooked on input).
    pub chain: Option<String>,
    /// Attach on `xdp` (else `tc ingress`).
    pub xdp: bool,
    /// The interface the policy will be attached to (what `iifname` matches are judged
    /// against).
    pub iface: Option<String>,
    /// Import the other rules when some are refused (the refused ones become comments).
    pub skip_unsupported: bool,
    /// Where the ruleset came from, for the header comment.
    pub source: String,
}

/// A named set: its elements as `.nf` list items.
struct NamedSet {
    table: (String, String),
    name: String,
    items: Result<Vec<String>, String>,
}

struct Cx<'a> {
    sets: &'a [NamedSet],
    table: (String, String),
    iface: Option<&'a str>,
}

fn icmp_type(name: &str, v6: bool) -> Option<u8> {
    let v4 = [
        ("echo-reply", 0),
        ("destination-unreachable", 3),
        ("source-quench", 4),
        ("redirect", 5),
        ("echo-request", 8),
        ("router-advertisement", 9),
        ("router-solicitation", 10),
        ("time-exceeded", 11),
        ("parameter-problem", 12),
        ("timestamp-request", 13),
        ("timestamp-reply", 14),
    ];
    let v6t = [
        ("destination-unreachable", 1),
        ("packet-too-big", 2),
        ("time-exceeded", 3),
        ("parameter-problem", 4),
        ("echo-request", 128),
        ("echo-reply", 129),
        ("mld-listener-query", 130),
        ("mld-listener-report", 131),
        ("mld-listener-done", 132),
        ("nd-router-solicit", 133),
        ("nd-router-advert", 134),
        ("nd-neighbor-solicit", 135),
        ("nd-neighbor-advert", 136),
        ("nd-redirect", 137),
    ];
    let table: &[(&str, u8)] = if v6 { &v6t } else { &v4 };
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn proto(name: &str) -> Option<u8> {
    Some(match name {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        "sctp" => 132,
        _ => return None,
    })
}

/// One value (number, address, prefix, range, or a name `kind` says how to read) as a `.nf`
/// list item.
fn item(v: &Value, kind: &str) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => match kind {
            "icmp" => icmp_type(s, false).map(|t| t.to_string()),
            "icmpv6" => icmp_type(s, true).map(|t| t.to_string()),
            "proto" => proto(s).map(|p| p.to_string()),
            _ if s.parse::<std::net::IpAddr>().is_ok() => Some(s.clone()),
            _ => s.parse::<u16>().ok().map(|p| p.to_string()),
        },
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let addr = p.get("addr")?.as_str()?;
                let len = p.get("len")?.as_u64()?;
                Some(format!("{addr}/{len}"))
            } else if let Some(Value::Array(r)) = o.get("range") {
                let (a, b) = (item(r.first()?, kind)?, item(r.get(1)?, kind)?);
                (!a.contains(':') && !a.contains('.')).then(|| format!("{a}..{b}"))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The right-hand side as `.nf`: one item, or a list.
fn rhs(v: &Value, kind: &str, cx: &Cx<'_>) -> Result<(String, bool), String> {
    let many = |items: Vec<String>| (format!("{{{}}}", items.join(", ")), true);
    match v {
        Value::String(s) if s.starts_with('@') => {
            let set = cx
                .sets
                .iter()
                .find(|x| x.table == cx.table && x.name == s[1..])
                .ok_or_else(|| format!("no set {s} in this table"))?;
            set.items.clone().map(many)
        }
        Value::Object(o) if o.contains_key("set") => {
            let items: Option<Vec<String>> = o["set"]
                .as_array()
                .map(|a| a.iter().map(|x| item(x, kind)).collect())
                .unwrap_or(None);
            items
                .map(many)
                .ok_or_else(|| "a set element the language cannot hold".into())
        }
        v => {
            let i = item(v, kind).ok_or_else(|| "a value the language cannot hold".to_string())?;
            let set = i.contains('/') || i.contains("..");
            Ok((i, set))
        }
    }
}

/// A `match` expression as an atom.
fn matched(
    m: &Value,
    cx: &Cx<'_>,
    l4: &mut Option<&'static str>,
) -> Result<Result<String, String>, Refusal> {
    let show = || m.to_string();
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let left = m
        .get("left")
        .ok_or_else(|| refuse(show(), "a match without its left side"))?;
    let right = m
        .get("right")
        .ok_or_else(|| refuse(show(), "a match without its right side"))?;
    let bad = |why: &str| refuse(show(), why);
    // (field, header presence, kind of values)
    let (field, header, kind): (String, &str, &str) = if let Some(p) = left.get("payload") {
        let proto_name = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let f = p.get("field").and_then(Value::as_str).unwrap_or("");
        match (proto_name, f) {
            ("ip", "saddr") => ("ip.src".into(), "ipv4", "addr"),
            ("ip", "daddr") => ("ip.dst".into(), "ipv4", "addr"),
            ("ip6", "saddr") => ("ip.src".into(), "ipv6", "addr"),
            ("ip6", "daddr") => ("ip.dst".into(), "ipv6", "addr"),
            ("ip", "protocol") => ("ip.proto".into(), "ipv4", "proto"),
            ("ip6", "nexthdr") => return Err(bad("`ip6 nexthdr` is the IPv6 header's own next-header field; the language's ipv6.nexthdr is the upper-layer protocol after extension headers (write `meta l4proto`)")),
            ("tcp" | "udp", "sport" | "dport") => {
                (format!("{proto_name}.{f}"), if proto_name == "tcp" { "tcp" } else { "udp" }, "port")
            }
            ("th", "sport" | "dport") => match l4 {
                Some(h) => (format!("{h}.{f}"), *h, "port"),
                None => return Err(bad("`th` ports without `meta l4proto tcp|udp` before them")),
            },
            ("icmp", "type" | "code") => (format!("icmp.{f}"), "icmp", if f == "type" { "icmp" } else { "num" }),
            ("icmpv6", "type" | "code") => (format!("icmpv6.{f}"), "icmpv6", if f == "type" { "icmpv6" } else { "num" }),
            _ => return Err(bad("a header field the importer does not map")),
        }
    } else if let Some(k) = left
        .get("meta")
        .and_then(|x| x.get("key"))
        .and_then(Value::as_str)
    {
        match k {
            "l4proto" => {
                if let Some(n) = right.as_str().and_then(proto) {
                    if op == "==" {
                        *l4 = match n {
                            6 => Some("tcp"),
                            17 => Some("udp"),
                            _ => None,
                        };
                    }
                }
                ("ip.proto".into(), "ip", "proto")
            }
            "nfproto" => {
                let fam = match right.as_str() {
                    Some("ipv4") => "ipv4",
                    Some("ipv6") => "ipv6",
                    _ => return Err(bad("an nfproto other than ipv4 or ipv6")),
                };
                return Ok(Ok(if op == "!=" {
                    format!("not {fam}")
                } else {
                    fam.into()
                }));
            }
            "iifname" | "iif" => {
                let name = right
                    .as_str()
                    .ok_or_else(|| bad("an interface that is not a name"))?;
                let eq = op == "==";
                return Ok(match (cx.iface, name == "lo") {
                    (Some(f), _) if (f == name) == eq => Ok("ip".into()),
                    (Some(f), _) => Err(format!("`{k} {op} {name}` never holds on {f}")),
                    (None, true) if !eq => Ok("ip".into()),
                    (None, true) => Err("`iifname lo` matches loopback traffic only, which never reaches the interface the policy is attached to".into()),
                    (None, false) => return Err(bad("an input interface: give --iface IF, the interface the policy will be attached to")),
                });
            }
            _ => return Err(bad("a meta key the importer does not map")),
        }
    } else if left.get("ct").is_some() {
        return Err(bad("connection tracking state is not in the packet: a stateless filter cannot tell established or related from new (put the policy where replies do not pass, or keep this rule in nftables)"));
    } else if let Some(Value::Array(and)) = left.get("&") {
        let is_flags = and.first().and_then(|x| x.get("payload")).is_some_and(|p| {
            p.get("protocol").and_then(Value::as_str) == Some("tcp")
                && p.get("field").and_then(Value::as_str) == Some("flags")
        });
        let names = |v: &Value| -> Option<String> {
            let list: Vec<&str> = match v {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().map(Value::as_str).collect::<Option<_>>()?,
                Value::Number(n) if n.as_u64() == Some(0) => return Some("0".into()),
                _ => return None,
            };
            let ok = list.iter().all(|f| {
                matches!(
                    *f,
                    "fin" | "syn" | "rst" | "psh" | "ack" | "urg" | "ece" | "cwr"
                )
            });
            ok.then(|| list.join("|"))
        };
        let (Some(mask), Some(val)) = (and.get(1).and_then(names), names(right)) else {
            return Err(bad("a bitwise match the importer does not map"));
        };
        if !is_flags {
            return Err(bad("a bitwise match other than TCP flags"));
        }
        let atom = format!("tcp.flags & ({mask}) == {val}");
        return Ok(Ok(match op {
            "==" => format!("tcp and {atom}"),
            "!=" => format!("(tcp and not {atom})"),
            _ => return Err(bad("an operator on TCP flags other than == or !=")),
        }));
    } else {
        return Err(bad("an expression the importer does not map"));
    };
    // `tcp flags syn` (op `in`, a flag list): any of them set.
    let (value, set) = rhs(right, kind, cx).map_err(|why| bad(&why))?;
    let atom = match (op, set) {
        ("==", false) => format!("{field} == {value}"),
        ("==" | "in", true) => format!("{field} in {value}"),
        ("!=", false) => format!("not {field} == {value}"),
        ("!=", true) => format!("not {field} in {value}"),
        ("<" | ">" | "<=" | ">=", false) if kind == "port" || kind == "num" => {
            format!("{field} {op} {value}")
        }
        _ => return Err(bad("an operator the importer does not map")),
    };
    Ok(Ok(if atom.starts_with("not ") {
        format!("({header} and {atom})")
    } else {
        format!("{header} and {atom}")
    }))
}

/// A rule's expressions as a rule.
fn rule(exprs: &[Value], comment: Option<String>, cx: &Cx<'_>) -> Read {
    let mut atoms = Vec::new();
    let mut target = Target::None;
    let mut l4 = None;
    for e in exprs {
        let Some((key, v)) = e.as_object().and_then(|o| o.iter().next()) else {
            return Read::Refused(refuse(e.to_string(), "not an expression"));
        };
        match key.as_str() {
            "match" => match matched(v, cx, &mut l4) {
                Ok(Ok(a)) => {
                    if a != "ip" {
                        atoms.push(a)
                    }
                }
                Ok(Err(never)) => return Read::Never(never),
                Err(r) => return Read::Refused(r),
            },
            "counter" => {}
            "accept" => target = Target::Accept,
            "drop" => target = Target::Drop,
            "return" => target = Target::Return,
            "jump" | "goto" => {
                let Some(t) = v.get("target").and_then(Value::as_str) else {
                    return Read::Refused(refuse(e.to_string(), "a jump without its target"));
                };
                target = if key == "jump" { Target::Jump(t.into()) } else { Target::Goto(t.into()) };
            }
            "reject" => return Read::Refused(refuse("reject", "reject answers the sender (ICMP or RST), which a filter on the receive path cannot do; drop is not the same")),
            "log" => return Read::Refused(refuse("log", "logging: the language has `sample`, which is not a log")),
            "limit" => return Read::Refused(refuse("limit", "rate limits per rule: the language's limiters are keyed token buckets, not the same")),
            k => return Read::Refused(refuse(k, "a statement the importer does not map")),
        }
    }
    Read::Said(Said {
        atoms,
        target,
        comment,
    })
}

/// Imports `json`, `nft -j list ruleset` output.
pub fn import(json: &str, opts: &Options) -> Result<Imported, ImportError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| ImportError::Syntax {
        line: e.line(),
        what: format!("not JSON: {e}"),
    })?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(ImportError::Syntax {
            line: 1,
            what: "no `nftables` array (is this `nft -j list ruleset` output?)".into(),
        })?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let sets: Vec<NamedSet> = items
        .iter()
        .filter_map(|i| i.get("set"))
        .map(|x| {
            let kind = match s(x, "type").as_str() {
                "ipv4_addr" | "ipv6_addr" => "addr",
                "inet_service" => "port",
                "inet_proto" => "proto",
                _ => "other",
            };
            let items = x
                .get("elem")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| item(e, kind))
                        .collect::<Option<Vec<String>>>()
                })
                .unwrap_or(Some(Vec::new()))
                .filter(|_| kind != "other")
                .ok_or_else(|| {
                    format!(
                        "set {} of type {} holds values the language cannot",
                        s(x, "name"),
                        s(x, "type")
                    )
                });
            NamedSet {
                table: (s(x, "family"), s(x, "table")),
                name: s(x, "name"),
                items,
            }
        })
        .collect();
    let chains: Vec<&Value> = items.iter().filter_map(|i| i.get("chain")).collect();
    let base = match &opts.chain {
        Some(path) => chains
            .iter()
            .find(|c| format!("{}/{}/{}", s(c, "family"), s(c, "table"), s(c, "name")) == *path)
            .copied()
            .ok_or_else(|| ImportError::NoChain(path.clone(), chain_list(&chains)))?,
        None => {
            let inputs: Vec<&&Value> = chains
                .iter()
                .filter(|c| {
                    s(c, "hook") == "input"
                        && s(c, "type") == "filter"
                        && matches!(s(c, "family").as_str(), "ip" | "ip6" | "inet")
                })
                .collect();
            match inputs.as_slice() {
                [one] => **one,
                [] => return Err(ImportError::NoChain("(a filter chain hooked on input)".into(), chain_list(&chains))),
                _ => return Err(ImportError::Syntax {
                    line: 1,
                    what: format!("several filter chains hook input ({}): each filters every packet, and nfcc imports one; choose with --chain FAMILY/TABLE/CHAIN after merging them", inputs.iter().map(|c| format!("{}/{}/{}", s(c, "family"), s(c, "table"), s(c, "name"))).collect::<Vec<_>>().join(", ")),
                }),
            }
        }
    };
    let (family, table) = (s(base, "family"), s(base, "table"));
    let default = match s(base, "policy").as_str() {
        "drop" => "drop",
        _ => "pass",
    };
    let cx = Cx {
        sets: &sets,
        table: (family.clone(), table.clone()),
        iface: opts.iface.as_deref(),
    };
    let mut xchains: Vec<XChain> = chains
        .iter()
        .filter(|c| s(c, "family") == family && s(c, "table") == table)
        .map(|c| XChain {
            name: s(c, "name"),
            rules: Vec::new(),
        })
        .collect();
    for (n, i) in items.iter().enumerate() {
        let Some(r) = i.get("rule") else { continue };
        if s(r, "family") != family || s(r, "table") != table {
            continue;
        }
        let exprs = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
        let read = rule(&exprs, comment, &cx);
        let text = format!("nftables[{n}]: {}", Value::Array(exprs));
        if let Some(c) = xchains.iter_mut().find(|c| c.name == s(r, "chain")) {
            c.rules.push(XRule {
                line: n,
                text,
                read,
            });
        }
    }
    let walked = walk(&xchains, &s(base, "name"), default, opts.skip_unsupported)?;
    let report = walked.report;
    if report.refused() > 0 && !opts.skip_unsupported {
        return Err(ImportError::Refused(report));
    }
    let guard = match family.as_str() {
        "ip" => {
            "    # An ip table does not see other families.\n    rule not_ipv4: not ipv4 => pass\n"
        }
        "ip6" => {
            "    # An ip6 table does not see other families.\n    rule not_ipv6: not ipv6 => pass\n"
        }
        _ => "    # The input hook sees IPv4 and IPv6 only.\n    rule not_ip: not ip => pass\n",
    };
    let mut nf = format!(
        "# Imported by nfcc from {} (nft ruleset, chain {family}/{table}/{}): {} rules imported, {} refused, {} skipped.\n\
         # The input hook sees packets addressed to this host; on packets for this host the\n\
         # verdicts below are nftables'. (\"line N\" is the rule's index in the JSON array.)\n\
         policy {} on {} {{\n{guard}",
        opts.source,
        s(base, "name"),
        report.imported(),
        report.refused(),
        report.entries.len() - report.imported() - report.refused(),
        opts.name,
        if opts.xdp { "xdp" } else { "tc ingress" },
    );
    for l in &walked.lines {
        nf.push_str(&format!("    {l}\n"));
    }
    nf.push_str(&format!("    default {default}\n}}\n"));
    checked(nf, report)
}

fn chain_list(chains: &[&Value]) -> String {
    chains
        .iter()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            format!("{}/{}/{}", s("family"), s("table"), s("name"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values a ruleset names, per family (IPv4, IPv6), from which `--verify` draws packets:
/// every address and prefix, every number that can be a port (with its neighbours), the
/// protocols and the ICMP types named.
pub fn pools(json: &str) -> [crate::iptables::Pools; 2] {
    let mut p = [
        crate::iptables::Pools::default(),
        crate::iptables::Pools {
            v6: true,
            ..Default::default()
        },
    ];
    fn visit(v: &Value, p: &mut [crate::iptables::Pools; 2]) {
        match v {
            Value::String(s) => {
                if let Some(n) = proto(s) {
                    p[0].protos.push(n);
                    p[1].protos.push(n);
                }
                if let Some(t) = icmp_type(s, false) {
                    p[0].icmp.push((t, None));
                }
                if let Some(t) = icmp_type(s, true) {
                    p[1].icmp.push((t, None));
                }
                match s.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(_)) => p[0].prefixes.push(s.clone()),
                    Ok(std::net::IpAddr::V6(_)) => p[1].prefixes.push(s.clone()),
                    Err(_) => {}
                }
            }
            Value::Number(n) => {
                if let Some(x) = n.as_u64().and_then(|x| u16::try_from(x).ok()) {
                    for q in p.iter_mut() {
                        q.ports
                            .extend([x.saturating_sub(1), x, x.saturating_add(1)]);
                    }
                }
            }
            Value::Object(o) => {
                if let Some(pre) = o.get("prefix") {
                    if let (Some(a), Some(l)) = (
                        pre.get("addr").and_then(Value::as_str),
                        pre.get("len").and_then(Value::as_u64),
                    ) {
                        let i = usize::from(a.contains(':'));
                        p[i].prefixes.push(format!("{a}/{l}"));
                    }
                }
                // Handles, priorities and counters are not packet values.
                for (k, x) in o {
                    if !matches!(
                        k.as_str(),
                        "handle" | "prio" | "packets" | "bytes" | "prefix"
                    ) {
                        visit(x, p);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| visit(x, p)),
            _ => {}
        }
    }
    if let Ok(doc) = serde_json::from_str::<Value>(json) {
        visit(&doc, &mut p);
        let rules = doc
            .get("nftables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("rule"));
        for r in rules {
            let (t, fam) = template(
                r.get("expr")
                    .and_then(Value::as_array)
                    .map_or(&[][..], |v| v),
            );
            for (i, q) in p.iter_mut().enumerate() {
                if fam.is_none_or(|v6| v6 == (i == 1)) {
                    q.templates.push(t.clone());
                }
            }
        }
    }
    for q in p.iter_mut() {
        q.ports.sort_unstable();
        q.ports.dedup();
        q.protos.sort_unstable();
        q.protos.dedup();
    }
    p
}

/// One rule's values together (see `iptables::Template`), and its family if it has one.
fn template(exprs: &[Value]) -> (crate::iptables::Template, Option<bool>) {
    let mut t = crate::iptables::Template::default();
    let mut fam = None;
    let first = |v: &Value, kind: &str| -> Option<String> {
        match v.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().find_map(|x| item(x, kind)),
            None => item(v, kind),
        }
    };
    let ports = |v: &Value| -> Vec<u16> {
        let mut out = Vec::new();
        let mut one = |x: &Value| match x {
            Value::Number(n) => out.extend(n.as_u64().and_then(|n| u16::try_from(n).ok())),
            Value::Object(o) => {
                if let Some(Value::Array(r)) = o.get("range") {
                    out.extend(
                        r.iter()
                            .filter_map(|n| n.as_u64().and_then(|n| u16::try_from(n).ok())),
                    );
                }
            }
            _ => {}
        };
        match v.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().for_each(&mut one),
            None => one(v),
        }
        out
    };
    for e in exprs {
        let Some(m) = e.get("match") else { continue };
        if m.get("op")
            .and_then(Value::as_str)
            .is_some_and(|o| o == "!=")
        {
            continue;
        }
        let (left, right) = (&m["left"], &m["right"]);
        if let Some(p) = left.get("payload") {
            let proto_name = p.get("protocol").and_then(Value::as_str).unwrap_or("");
            let f = p.get("field").and_then(Value::as_str).unwrap_or("");
            match (proto_name, f) {
                ("ip" | "ip6", "saddr" | "daddr") => {
                    fam = Some(proto_name == "ip6");
                    let v = first(right, "addr");
                    if f == "saddr" {
                        t.src = v;
                    } else {
                        t.dst = v;
                    }
                }
                ("tcp" | "udp", "sport" | "dport") => {
                    t.proto = Some(if proto_name == "tcp" { 6 } else { 17 });
                    if f == "dport" {
                        t.dports = ports(right);
                    } else {
                        t.sports = ports(right);
                    }
                }
                ("th", "dport") => t.dports = ports(right),
                ("th", "sport") => t.sports = ports(right),
                ("icmp" | "icmpv6", "type") => {
                    let v6 = proto_name == "icmpv6";
                    fam = Some(v6);
                    t.proto = Some(if v6 { 58 } else { 1 });
                    t.icmp = first(right, proto_name)
                        .and_then(|x| x.parse().ok())
                        .map(|x| (x, None));
                }
                _ => {}
            }
        } else if left
            .get("meta")
            .and_then(|x| x.get("key"))
            .and_then(Value::as_str)
            == Some("l4proto")
        {
            t.proto = right.as_str().and_then(proto);
        } else if left.get("&").is_some() {
            t.proto = Some(6);
            t.flags = match right {
                Value::String(s) => Some(s.clone()),
                Value::Number(_) => Some("0".into()),
                _ => None,
            };
        }
    }
    (t, fam)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            name: "fw".into(),
            chain: None,
            xdp: true,
            iface: Some("eth0".into()),
            skip_unsupported: true,
            source: "test".into(),
        }
    }

    /// A ruleset of one `inet filter input` chain (policy drop) with these rules' expressions.
    fn ruleset(rules: &[&str]) -> String {
        let mut items = vec![
            r#"{"table":{"family":"inet","name":"filter","handle":1}}"#.to_string(),
            r#"{"chain":{"family":"inet","table":"filter","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"drop"}}"#.to_string(),
        ];
        for r in rules {
            items.push(format!(
                r#"{{"rule":{{"family":"inet","table":"filter","chain":"input","handle":2,"expr":{r}}}}}"#
            ));
        }
        format!(r#"{{"nftables":[{}]}}"#, items.join(","))
    }

    /// Imports one rule and gives its `.nf` line (or the report line of a refusal or skip).
    fn check(rule: &str, expect: &str) {
        let got = import(&ruleset(&[rule]), &opts()).unwrap_or_else(|e| panic!("{e}"));
        let line = got
            .nf
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("rule input_") || l.starts_with("# refused"))
            .map(str::to_string)
            .unwrap_or_else(|| got.report.render());
        assert!(line.contains(expect), "{line}\n{}", got.nf);
    }

    #[test]
    fn matches_keep_nftables_meaning() {
        check(
            r#"[{"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},{"drop":null}]"#,
            "rule input_l2: (ipv4 and not ip.src in 10.0.0.0/8) => drop",
        );
        check(
            r#"[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":{"range":[1,1023]}}},{"accept":null}]"#,
            "ip and ip.proto == 6 and tcp and tcp.dport in 1..1023 => pass",
        );
        check(
            r#"[{"match":{"op":"==","left":{"payload":{"protocol":"icmpv6","field":"type"}},"right":"nd-router-advert"}},{"accept":null}]"#,
            "icmpv6 and icmpv6.type == 134 => pass",
        );
    }

    #[test]
    fn what_cannot_be_said_is_refused_with_the_reason() {
        check(
            r#"[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established"]}},{"accept":null}]"#,
            "connection tracking state is not in the packet",
        );
        check(
            r#"[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"nexthdr"}},"right":"tcp"}},{"accept":null}]"#,
            "the upper-layer protocol after extension headers",
        );
        check(r#"[{"reject":null}]"#, "reject answers the sender");
        check(
            r#"[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth1"}},{"accept":null}]"#,
            "never holds on eth0",
        );
        // Two filter chains on input: each filters every packet; refused as a whole.
        let two = ruleset(&[]).replace(
            "]}",
            r#",{"chain":{"family":"ip","table":"other","name":"in2","handle":3,"type":"filter","hook":"input","prio":10,"policy":"accept"}}]}"#,
        );
        let e = import(&two, &opts())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("several filter chains hook input"), "{e}");
    }
}
