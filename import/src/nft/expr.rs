//! One nft rule's expressions as `.nf` atoms and a target: payload and meta matches, named
//! and anonymous sets, concatenations (`ip saddr . tcp dport { 10.0.0.1 . 22 }`, said as a
//! disjunction of conjunctions, one per element) and verdict maps (`tcp dport vmap { 22 :
//! accept, 80 : jump web }`, said as one rule per verdict, in the map's order — a map's keys
//! do not overlap, so the rules' order among themselves does not matter, and a packet whose
//! key is not in the map goes on to the next rule, as in nftables).

use super::Cx;
use crate::walk::{refuse, Read, Refusal, Said, Target};
use serde_json::Value;

pub(crate) fn icmp_type(name: &str, v6: bool) -> Option<u8> {
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

pub(crate) fn proto(name: &str) -> Option<u8> {
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

/// A set element without its decorations: `{"elem": {"val": X, "timeout": ..}}` is `X`.
pub(crate) fn val(v: &Value) -> &Value {
    v.get("elem").and_then(|e| e.get("val")).unwrap_or(v)
}

/// One value (number, address, prefix, range, or a name `kind` says how to read) as a `.nf`
/// list item.
pub(crate) fn item(v: &Value, kind: &str) -> Option<String> {
    match val(v) {
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

/// What a match or map key reads: the field, the header it needs, how its values are read.
#[derive(Clone, Debug)]
struct Key {
    field: String,
    header: &'static str,
    kind: &'static str,
}

impl Key {
    /// `field == v` (or `field in v` for a prefix or range), if the language can hold `v`.
    fn atom(&self, v: &Value) -> Option<String> {
        let i = item(v, self.kind)?;
        let op = if i.contains('/') || i.contains("..") {
            "in"
        } else {
            "=="
        };
        Some(format!("{} {op} {i}", self.field))
    }
}

/// A payload or `meta l4proto` expression as a key; `l4` is the transport protocol an
/// earlier `meta l4proto` fixed (for `th`).
fn key(left: &Value, l4: Option<&'static str>) -> Result<Key, &'static str> {
    let k = |field: String, header, kind| {
        Ok(Key {
            field,
            header,
            kind,
        })
    };
    if let Some(p) = left.get("payload") {
        let proto_name = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let f = p.get("field").and_then(Value::as_str).unwrap_or("");
        match (proto_name, f) {
            ("ip", "saddr") => k("ip.src".into(), "ipv4", "addr"),
            ("ip", "daddr") => k("ip.dst".into(), "ipv4", "addr"),
            ("ip6", "saddr") => k("ip.src".into(), "ipv6", "addr"),
            ("ip6", "daddr") => k("ip.dst".into(), "ipv6", "addr"),
            ("ip", "protocol") => k("ip.proto".into(), "ipv4", "proto"),
            ("ip6", "nexthdr") => Err("`ip6 nexthdr` is the IPv6 header's own next-header field; the language's ipv6.nexthdr is the upper-layer protocol after extension headers (write `meta l4proto`)"),
            ("tcp", "sport" | "dport") => k(format!("tcp.{f}"), "tcp", "port"),
            ("udp", "sport" | "dport") => k(format!("udp.{f}"), "udp", "port"),
            ("th", "sport" | "dport") => match l4 {
                Some(h) => k(format!("{h}.{f}"), h, "port"),
                None => Err("`th` ports without `meta l4proto tcp|udp` before them"),
            },
            ("icmp", "type") => k("icmp.type".into(), "icmp", "icmp"),
            ("icmp", "code") => k("icmp.code".into(), "icmp", "num"),
            ("icmpv6", "type") => k("icmpv6.type".into(), "icmpv6", "icmpv6"),
            ("icmpv6", "code") => k("icmpv6.code".into(), "icmpv6", "num"),
            _ => Err("a header field the importer does not map"),
        }
    } else if left
        .get("meta")
        .and_then(|x| x.get("key"))
        .and_then(Value::as_str)
        == Some("l4proto")
    {
        k("ip.proto".into(), "ip", "proto")
    } else {
        Err("an expression the importer does not map")
    }
}

/// The keys of a (possibly concatenated) expression.
fn keys(left: &Value, l4: Option<&'static str>) -> Result<Vec<Key>, &'static str> {
    match left.get("concat") {
        Some(Value::Array(parts)) => parts.iter().map(|p| key(p, l4)).collect(),
        Some(_) => Err("a concatenation that is not a list"),
        None => key(left, l4).map(|k| vec![k]),
    }
}

/// The headers `keys` need, joined (`ipv4 and tcp`), each once.
fn headers(keys: &[Key]) -> String {
    let mut hs: Vec<&str> = Vec::new();
    for k in keys {
        if !hs.contains(&k.header) {
            hs.push(k.header);
        }
    }
    hs.join(" and ")
}

/// One element of a (possibly concatenated) set as a conjunction over `keys`.
fn tuple(keys: &[Key], v: &Value) -> Option<String> {
    match keys {
        [one] => one.atom(v),
        _ => {
            let parts = val(v).get("concat")?.as_array()?;
            if parts.len() != keys.len() {
                return None;
            }
            let atoms: Option<Vec<String>> =
                keys.iter().zip(parts).map(|(k, p)| k.atom(p)).collect();
            Some(format!("({})", atoms?.join(" and ")))
        }
    }
}

/// Elements as one predicate over `keys`: a list for one key (`f in {a, b}`, or `f == a`
/// for one value), a disjunction of conjunctions for a concatenation.
fn any_of(keys: &[Key], elems: &[&Value]) -> Result<String, String> {
    let cannot = || "a set element the language cannot hold".to_string();
    match keys {
        [k] => {
            let items: Option<Vec<String>> = elems.iter().map(|e| item(e, k.kind)).collect();
            match items.ok_or_else(cannot)?.as_slice() {
                [] => Ok("(not ip)".into()),
                [one] => k
                    .atom(elems[0])
                    .ok_or_else(|| format!("{one}: {}", cannot())),
                many => Ok(format!("{} in {{{}}}", k.field, many.join(", "))),
            }
        }
        _ => {
            let tuples: Option<Vec<String>> = elems.iter().map(|e| tuple(keys, e)).collect();
            let tuples = tuples.ok_or_else(cannot)?;
            Ok(match tuples.len() {
                0 => "(not ip)".into(),
                1 => tuples[0].clone(),
                _ => format!("({})", tuples.join(" or ")),
            })
        }
    }
}

/// The elements a right-hand side names: a named set's or map's, an anonymous set's, or the
/// one value.
fn elements<'v>(right: &'v Value, cx: &Cx<'v>) -> Result<Vec<&'v Value>, String> {
    match right {
        Value::String(s) if s.starts_with('@') => cx
            .sets
            .iter()
            .find(|x| x.table == cx.table && x.name == s[1..])
            .map(|set| set.elems.iter().collect())
            .ok_or_else(|| format!("no set or map {s} in this table")),
        Value::Object(o) if o.contains_key("set") => o["set"]
            .as_array()
            .map(|a| a.iter().collect())
            .ok_or_else(|| "a set that is not a list".into()),
        v => Ok(vec![v]),
    }
}

/// A `match` expression as an atom (`Ok(Err(why))`: it can never hold where the policy runs).
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
    let meta = left
        .get("meta")
        .and_then(|x| x.get("key"))
        .and_then(Value::as_str);
    match meta {
        Some("l4proto") => {
            if let (Some(n), "==") = (right.as_str().and_then(proto), op) {
                *l4 = match n {
                    6 => Some("tcp"),
                    17 => Some("udp"),
                    _ => None,
                };
            }
        }
        Some("nfproto") => {
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
        Some(k @ ("iifname" | "iif")) => {
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
        Some(_) => return Err(bad("a meta key the importer does not map")),
        None => {}
    }
    if left.get("ct").is_some() {
        return Err(bad("connection tracking state is not in the packet: a stateless filter cannot tell established or related from new (put the policy where replies do not pass, or keep this rule in nftables)"));
    }
    if let Some(exthdr) = left.get("exthdr") {
        return exthdr_frag(exthdr, op, right).map(Ok).map_err(bad);
    }
    if let Some(Value::Array(and)) = left.get("&") {
        if let Some(frag) = ip_frag_off(and, op, right) {
            return frag.map(Ok).map_err(bad);
        }
        return tcp_flags(and, op, right).map(Ok).map_err(bad);
    }
    let keys = keys(left, *l4).map_err(bad)?;
    let hdrs = headers(&keys);
    let elems = elements(right, cx).map_err(|why| bad(&why))?;
    let listed = matches!(right, Value::String(s) if s.starts_with('@'))
        || right.get("set").is_some()
        || keys.len() > 1;
    let atom = if listed {
        any_of(&keys, &elems).map_err(|why| bad(&why))?
    } else {
        keys[0]
            .atom(right)
            .ok_or_else(|| bad("a value the language cannot hold"))?
    };
    let atom = match op {
        "==" | "in" => return Ok(Ok(format!("{hdrs} and {atom}"))),
        "!=" => format!("not {atom}"),
        "<" | ">" | "<=" | ">=" if !listed && matches!(keys[0].kind, "port" | "num") => {
            let i =
                item(right, keys[0].kind).ok_or_else(|| bad("a value the language cannot hold"))?;
            return Ok(Ok(format!("{hdrs} and {} {op} {i}", keys[0].field)));
        }
        _ => return Err(bad("an operator the importer does not map")),
    };
    Ok(Ok(format!("({hdrs} and {atom})")))
}

/// `ip frag-off & MASK == VALUE` (or `!=`), when the left side is IPv4's fragment word:
/// the offset alone (mask 0x1fff) is `ip.frag_offset`, the offset with MF (0x3fff) compared
/// with 0 is the `frag` header test. `None` when the left side is something else.
fn ip_frag_off(and: &[Value], op: &str, right: &Value) -> Option<Result<String, &'static str>> {
    let p = and.first()?.get("payload")?;
    if p.get("protocol").and_then(Value::as_str) != Some("ip")
        || p.get("field").and_then(Value::as_str) != Some("frag-off")
    {
        return None;
    }
    let (Some(mask), Some(value)) = (and.get(1).and_then(Value::as_u64), right.as_u64()) else {
        return Some(Err(
            "a fragment-word match whose mask or value is not a number",
        ));
    };
    let atom = match (mask, value) {
        (0x1fff, v) if v <= 0x1fff => format!("ip.frag_offset == {v}"),
        (0x3fff, 0) => "frag".to_string(),
        _ => return Some(Err("a fragment-word mask other than 0x1fff (the offset) or 0x3fff compared with 0 (a fragment): the language has no field for the DF and MF flags alone")),
    };
    // A `==` on 0x3fff against 0 is "not a fragment".
    let negated = (op == "!=") != (mask == 0x3fff);
    Some(match op {
        "==" | "!=" if negated => Ok(format!("(ipv4 and not {atom})")),
        "==" | "!=" => Ok(format!("ipv4 and {atom}")),
        _ => Err("an operator on the fragment word other than == or !="),
    })
}

/// `exthdr frag frag-off != 0`: an IPv6 non-first fragment. nftables' match is false without a
/// fragment header, where `ip.frag_offset` is 0, so only `!= 0` (and `> 0`) is exact.
fn exthdr_frag(exthdr: &Value, op: &str, right: &Value) -> Result<String, &'static str> {
    let name = exthdr.get("name").and_then(Value::as_str);
    let field = exthdr.get("field").and_then(Value::as_str);
    match (name, field, op, right.as_u64()) {
        (Some("frag"), Some("frag-off"), "!=" | ">", Some(0)) => {
            Ok("ipv6 and ip.frag_offset != 0".into())
        }
        (Some("frag"), Some("frag-off"), ..) => Err("a fragment-header offset compared other than `!= 0`: nftables' match needs the fragment header, which an atomic fragment (offset 0, no more fragments) has and the language cannot test"),
        _ => Err("an extension-header match the importer does not map (only `frag frag-off != 0`)"),
    }
}

/// `tcp flags & (MASK) == VALUE` (or `!=`).
fn tcp_flags(and: &[Value], op: &str, right: &Value) -> Result<String, &'static str> {
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
    let (Some(mask), Some(value)) = (and.get(1).and_then(names), names(right)) else {
        return Err("a bitwise match the importer does not map");
    };
    if !is_flags {
        return Err("a bitwise match other than TCP flags");
    }
    let atom = format!("tcp.flags & ({mask}) == {value}");
    match op {
        "==" => Ok(format!("tcp and {atom}")),
        "!=" => Ok(format!("(tcp and not {atom})")),
        _ => Err("an operator on TCP flags other than == or !="),
    }
}

/// A verdict statement (`{"accept": null}`, `{"jump": {"target": "web"}}`, ...) as a target;
/// `None` for `continue`, which decides nothing.
fn verdict(v: &Value) -> Result<Option<Target>, &'static str> {
    let (k, x) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or("not a verdict")?;
    let to = || {
        x.get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or("a jump without its target")
    };
    Ok(Some(match k.as_str() {
        "accept" => Target::Accept,
        "drop" => Target::Drop,
        "return" => Target::Return,
        "continue" => return Ok(None),
        "jump" => Target::Jump(to()?),
        "goto" => Target::Goto(to()?),
        _ => return Err("a verdict the importer does not map (reject, queue)"),
    }))
}

/// A `vmap` statement after the rule's `atoms`: one rule per verdict, its keys as one
/// predicate.
fn vmap(
    m: &Value,
    atoms: &[String],
    comment: &Option<String>,
    cx: &Cx<'_>,
    l4: Option<&'static str>,
) -> Result<Vec<Said>, Refusal> {
    let bad = |why: &str| refuse(m.to_string(), why);
    let keys = keys(
        m.get("key").ok_or_else(|| bad("a map without its key"))?,
        l4,
    )
    .map_err(bad)?;
    let data = m.get("data").ok_or_else(|| bad("a map without its data"))?;
    let pairs = elements(data, cx).map_err(|why| bad(&why))?;
    // Keys grouped by verdict, in the map's order.
    let mut groups: Vec<(Target, Vec<&Value>)> = Vec::new();
    for p in pairs {
        let (Some(k), Some(v)) = (p.get(0), p.get(1)) else {
            return Err(bad(
                "a map element that is not a key and a verdict (a data map?)",
            ));
        };
        let Some(t) = verdict(v).map_err(bad)? else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == t) {
            Some((_, ks)) => ks.push(k),
            None => groups.push((t, vec![k])),
        }
    }
    let hdrs = headers(&keys);
    groups
        .into_iter()
        .map(|(target, ks)| {
            let mut a = atoms.to_vec();
            a.push(format!(
                "{hdrs} and {}",
                any_of(&keys, &ks).map_err(|why| bad(&why))?
            ));
            Ok(Said {
                atoms: a,
                target,
                comment: comment.clone(),
            })
        })
        .collect()
}

/// A rule's expressions as a rule (several for a verdict map).
pub(crate) fn rule(exprs: &[Value], comment: Option<String>, cx: &Cx<'_>) -> Read {
    let mut atoms = Vec::new();
    let mut target = Target::None;
    let mut l4 = None;
    for (i, e) in exprs.iter().enumerate() {
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
            "vmap" if i + 1 == exprs.len() => {
                return match vmap(v, &atoms, &comment, cx, l4) {
                    Ok(rules) => Read::Split(rules),
                    Err(r) => Read::Refused(r),
                }
            }
            "vmap" => return Read::Refused(refuse("vmap", "statements after a verdict map")),
            "accept" | "drop" | "return" | "jump" | "goto" | "continue" => {
                match verdict(e) {
                    Ok(Some(t)) => target = t,
                    Ok(None) => {}
                    Err(why) => return Read::Refused(refuse(e.to_string(), why)),
                }
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
