//! The values an nft ruleset names, from which `--verify` draws packets, and one template
//! per rule (per element of a concatenated set) so conjunctions are tried.

use super::expr::{icmp_type, item, proto, val};
use crate::iptables::Template;
use serde_json::Value;
use std::collections::HashMap;

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
        let named: Named<'_> = doc
            .get("nftables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("set").or_else(|| i.get("map")))
            .filter_map(|x| {
                Some((
                    x.get("name")?.as_str()?,
                    x.get("elem")?.as_array()?.as_slice(),
                ))
            })
            .collect();
        for r in rules {
            let exprs = r
                .get("expr")
                .and_then(Value::as_array)
                .map_or(&[][..], |v| v);
            for (t, fam) in templates(exprs, &named) {
                for (i, q) in p.iter_mut().enumerate() {
                    if fam.is_none_or(|v6| v6 == (i == 1)) {
                        q.templates.push(t.clone());
                    }
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

/// Named sets' and maps' elements by name (a rule's `@NAME`).
type Named<'a> = HashMap<&'a str, &'a [Value]>;

/// One rule's values together (see `iptables::Template`), one template per element of a
/// concatenated set or verdict map, each with its family if it has one.
fn templates<'a>(exprs: &'a [Value], named: &Named<'a>) -> Vec<(Template, Option<bool>)> {
    let mut base = (Template::default(), None);
    // (the keys, their elements' values) of the rule's concatenation or map.
    let mut variants = None;
    fn listed<'a>(right: &'a Value, named: &Named<'a>) -> Vec<&'a Value> {
        match right {
            Value::String(s) if s.starts_with('@') => named
                .get(&s[1..])
                .map(|e| e.iter().collect())
                .unwrap_or_default(),
            v => v
                .get("set")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_else(|| vec![v]),
        }
    }
    type Split<'a> = (Vec<&'a Value>, Vec<Vec<&'a Value>>);
    fn split<'a>(keys: &'a Value, elems: Vec<&'a Value>, map: bool) -> Split<'a> {
        let ks: Vec<&Value> = match keys.get("concat").and_then(Value::as_array) {
            Some(parts) => parts.iter().collect(),
            None => vec![keys],
        };
        let values = elems
            .into_iter()
            .take(64)
            .map(|e| if map { e.get(0).unwrap_or(e) } else { e })
            .map(|e| match val(e).get("concat").and_then(Value::as_array) {
                Some(parts) if ks.len() > 1 => parts.iter().collect(),
                _ => vec![val(e)],
            })
            .filter(|v: &Vec<&Value>| v.len() == ks.len())
            .collect();
        (ks, values)
    }
    for e in exprs {
        if let Some(m) = e.get("vmap") {
            variants = Some(split(&m["key"], listed(&m["data"], named), true));
            continue;
        }
        let Some(m) = e.get("match") else { continue };
        if m.get("op")
            .and_then(Value::as_str)
            .is_some_and(|o| o == "!=")
        {
            continue;
        }
        if m["left"].get("concat").is_some() {
            variants = Some(split(&m["left"], listed(&m["right"], named), false));
        } else {
            apply(&mut base, &m["left"], &m["right"]);
        }
    }
    match variants {
        None => vec![base],
        Some((keys, values)) => values
            .iter()
            .map(|vs| {
                let mut t = base.clone();
                for (k, v) in keys.iter().zip(vs) {
                    apply(&mut t, k, v);
                }
                t
            })
            .collect(),
    }
}

/// What `left == right` says of a template.
fn apply((t, fam): &mut (Template, Option<bool>), left: &Value, right: &Value) {
    let first = |v: &Value, kind: &str| -> Option<String> {
        match v.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().find_map(|x| item(x, kind)),
            None => item(v, kind),
        }
    };
    let ports = |v: &Value| -> Vec<u16> {
        let mut out = Vec::new();
        let mut one = |x: &Value| match val(x) {
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
    if let Some(p) = left.get("payload") {
        let proto_name = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let f = p.get("field").and_then(Value::as_str).unwrap_or("");
        match (proto_name, f) {
            ("ip" | "ip6", "saddr" | "daddr") => {
                *fam = Some(proto_name == "ip6");
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
                *fam = Some(v6);
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
