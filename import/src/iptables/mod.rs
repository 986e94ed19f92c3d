//! `iptables-save` / `ip6tables-save` dumps as `.nf` policies: the filter table's chain (INPUT
//! by default) and every user chain it reaches become one first-match rule list.
//!
//! Chains are inlined the way netfilter walks them: `-j CHAIN` runs CHAIN's rules (each also
//! needing the jump's match) and, when none decides, goes on after the jump; a `RETURN` in
//! CHAIN keeps the rules after it from packets it matched (they get `not (its match)`), and in
//! the built-in chain applies the chain's policy; `-g CHAIN` does not come back, so the rules
//! after the goto get `not (its match)`. The built-in chain's policy is the `default`.
//! netfilter's IPv4 tables never see IPv6 or ARP (and the IPv6 ones never see IPv4): the
//! first rule passes the other families, which the dump does not decide.
//!
//! What the language cannot say exactly is refused rule by rule (see `rule`). Only the filter
//! table is read: INPUT sees packets addressed to this host, which is where the policy's
//! verdicts equal netfilter's.

mod dump;
mod pools;
mod rule;

pub use pools::{pools, pools_with_sets, Pools, Template};

use crate::ipset::Sets;
use crate::walk::{walk, Read, XChain, XRule};
use crate::{checked, ImportError, Imported};
use rule::{Context, Never};

/// How to import.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy's name.
    pub name: String,
    /// The chain to import (`INPUT` by default).
    pub chain: String,
    /// Attach on `xdp` (else `tc ingress`).
    pub xdp: bool,
    /// The interface the policy will be attached to (what `-i` rules are judged against).
    pub iface: Option<String>,
    /// The dump's ipsets (`ipset save`).
    pub sets: Sets,
    /// Import the other rules when some are refused (the refused ones become comments).
    pub skip_unsupported: bool,
    /// Where the dump came from, for the header comment.
    pub source: String,
    /// An `ip6tables-save` dump even without the header that says so.
    pub ipv6: bool,
}

/// The `.nf` name of ipset `name`.
pub(crate) fn set_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "set_");
    }
    s
}

/// Whether `text` is an ip6tables dump: its header says so, or IPv6 addresses or ICMPv6 do.
pub fn is_v6(text: &str) -> bool {
    text.contains("ip6tables-save")
        || dump::parse(text).is_ok_and(|tables| {
            tables
                .iter()
                .flat_map(|t| &t.chains)
                .flat_map(|c| &c.rules)
                .any(|r| {
                    r.words.windows(2).any(|w| {
                        (matches!(w[0].as_str(), "-s" | "-d") && w[1].contains(':'))
                            || matches!(w[1].as_str(), "ipv6-icmp" | "icmpv6" | "icmp6")
                    })
                })
        })
}

/// Imports `text`, an `iptables-save` (or `ip6tables-save`) dump.
pub fn import(text: &str, opts: &Options) -> Result<Imported, ImportError> {
    let tables = dump::parse(text)?;
    let filter = tables
        .iter()
        .find(|t| t.name == "filter")
        .ok_or(ImportError::NoFilter)?;
    let names: Vec<String> = filter.chains.iter().map(|c| c.name.clone()).collect();
    let Some(top) = filter.chain(&opts.chain) else {
        return Err(ImportError::NoChain(opts.chain.clone(), names.join(", ")));
    };
    let v6 = opts.ipv6 || is_v6(text);
    let default = match top.policy.as_deref() {
        Some("DROP") => "drop",
        Some("ACCEPT") | None => "pass",
        Some(p) => {
            return Err(ImportError::Syntax {
                line: 0,
                what: format!(
                    "chain {} has policy {p}, which is neither ACCEPT nor DROP",
                    opts.chain
                ),
            })
        }
    };
    let cx = Context {
        v6,
        iface: opts.iface.as_deref(),
        sets: &opts.sets,
        chains: &names,
    };
    let chains: Vec<XChain> = filter
        .chains
        .iter()
        .map(|c| XChain {
            name: c.name.clone(),
            rules: c
                .rules
                .iter()
                .map(|r| XRule {
                    line: r.line,
                    text: r.text.clone(),
                    read: match rule::translate(&r.words, &cx) {
                        Ok(Ok(s)) => Read::Said(s),
                        Ok(Err(Never::Because(why))) => Read::Never(why),
                        Err(refusal) => Read::Refused(refusal),
                    },
                })
                .collect(),
        })
        .collect();
    let walked = walk(&chains, &opts.chain, default, opts.skip_unsupported)?;
    let report = walked.report;
    if report.refused() > 0 && !opts.skip_unsupported {
        return Err(ImportError::Refused(report));
    }
    let family = if v6 { "ipv6" } else { "ipv4" };
    let traversal = crate::Traversal::of_iptables_chain(&opts.chain);
    let mut nf = format!(
        "# Imported by nfcc from {} ({}, filter table, chain {}): {} rules imported, {} refused, {} skipped.\n",
        opts.source,
        if v6 { "ip6tables-save" } else { "iptables-save" },
        opts.chain,
        report.imported(),
        report.refused(),
        report.entries.len() - report.imported() - report.refused(),
    );
    nf.push_str(&traversal.header(&format!("netfilter's {}", opts.chain), default));
    nf.push_str(&format!(
        "policy {} on {} {{\n",
        opts.name,
        if opts.xdp { "xdp" } else { "tc ingress" }
    ));
    for s in &opts.sets.0 {
        if !s.expressible() || s.v6 != v6 {
            continue;
        }
        // An empty set is declared dynamic (filled later with `nfcc set add`).
        let init = if s.members.is_empty() {
            ", dynamic".to_string()
        } else {
            format!(" = {{ {} }}", s.members.join(", "))
        };
        nf.push_str(&format!(
            "    set {}: {family} prefix{init}\n",
            set_name(&s.name)
        ));
    }
    nf.push_str(&format!(
        "    # The {} tables do not see other families.\n    rule not_{family}: not {family} => pass\n",
        if v6 { "IPv6" } else { "IPv4" }
    ));
    for l in &walked.lines {
        nf.push_str(&format!("    {l}\n"));
    }
    nf.push_str(&format!("    default {default}\n}}\n"));
    checked(nf, report, traversal)
}

#[cfg(test)]
mod tests;
