//! `nft -j list ruleset` output as a `.nf` policy: one base chain hooked on `input` (of an
//! `ip`, `ip6` or `inet` table) and the chains it reaches, walked as nftables walks them
//! (`crate::walk`). Named sets and maps are written inline where a rule uses them;
//! concatenations and verdict maps as `expr` says.
//!
//! The JSON is read as `serde_json` values and each expression matched by its form; a form
//! not handled here is refused with its JSON path (`nftables[N]`, the rule's index in the
//! document) and the expression, never skipped. Exactness follows nftables' own semantics:
//! `ip saddr` in an `inet` table carries the implicit `meta nfproto ipv4` dependency (so its
//! negation stays false on IPv6), transport-header matches are false on non-first fragments,
//! and `ip6 nexthdr` (the IPv6 header's own next-header field) is refused because the
//! language's `ipv6.nexthdr` is the upper-layer protocol after extension headers.

use crate::walk::{walk, XChain, XRule};
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

/// A named set or map: its elements as written (a map's as `[key, data]` pairs).
struct NamedSet {
    table: (String, String),
    name: String,
    elems: Vec<Value>,
}

struct Cx<'a> {
    sets: &'a [NamedSet],
    table: (String, String),
    iface: Option<&'a str>,
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
    // Sets and maps alike: a rule names either with `@NAME`.
    let sets: Vec<NamedSet> = items
        .iter()
        .filter_map(|i| i.get("set").or_else(|| i.get("map")))
        .map(|x| NamedSet {
            table: (s(x, "family"), s(x, "table")),
            name: s(x, "name"),
            elems: x
                .get("elem")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
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
        let read = expr::rule(&exprs, comment, &cx);
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
        _ => "    # An inet table sees IPv4 and IPv6 only.\n    rule not_ip: not ip => pass\n",
    };
    let hook = s(base, "hook");
    let traversal = crate::Traversal::of_nft_hook(&hook);
    let mut nf = format!(
        "# Imported by nfcc from {} (nft ruleset, chain {family}/{table}/{}): {} rules imported, {} refused, {} skipped.\n",
        opts.source,
        s(base, "name"),
        report.imported(),
        report.refused(),
        report.entries.len() - report.imported() - report.refused(),
    );
    let who = if hook.is_empty() {
        format!("chain {}", s(base, "name"))
    } else {
        format!("The {hook} hook")
    };
    nf.push_str(
        &traversal
            .header(&who, default)
            .replace("netfilter's", "nftables'"),
    );
    nf.push_str(&format!(
        "# (\"line N\" is the rule's index in the JSON array.)\npolicy {} on {} {{\n{guard}",
        opts.name,
        if opts.xdp { "xdp" } else { "tc ingress" },
    ));
    for l in &walked.lines {
        nf.push_str(&format!("    {l}\n"));
    }
    nf.push_str(&format!("    default {default}\n}}\n"));
    checked(nf, report, traversal)
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

mod expr;
mod pools;
#[cfg(test)]
mod tests;

pub use pools::pools;
