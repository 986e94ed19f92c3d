//! The chain walk every importer shares: rules already said in the language (or refused),
//! chains inlined the way netfilter (and nftables) walk them — a jump runs the callee's rules
//! (each also needing the jump's match) and goes on after it when none decided; a `return`
//! keeps the rules after it from the packets it matched (they get `not (its match)`), and in
//! the base chain applies the chain's policy; a goto does not come back, so the rules after
//! it get `not (its match)`. The output is the policy's rule lines and the report.

use crate::{Entry, ImportError, Outcome, Report};
use std::collections::{BTreeMap, HashSet};

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Accept.
    Accept,
    /// Drop.
    Drop,
    /// Return.
    Return,
    /// Jump to a chain.
    Jump(String),
    /// Go to a chain.
    Goto(String),
    /// No verdict: the rule only counts.
    None,
}

/// A rule said in `.nf`: the atoms of its predicate (a conjunction; none: always true), its
/// target and its comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Said {
    pub(crate) atoms: Vec<String>,
    pub(crate) target: Target,
    pub(crate) comment: Option<String>,
}

/// A construct that cannot be imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) construct: String,
    pub(crate) reason: String,
}

/// A refusal of `construct` for `reason`.
pub(crate) fn refuse(construct: impl Into<String>, reason: impl Into<String>) -> Refusal {
    Refusal {
        construct: construct.into(),
        reason: reason.into(),
    }
}

/// How one rule was read.
pub(crate) enum Read {
    /// Said in the language.
    Said(Said),
    /// Said as several rules in this order (a verdict map: one per verdict).
    Split(Vec<Said>),
    /// Can never match where the policy runs (why).
    Never(String),
    /// Refused.
    Refused(Refusal),
}

/// One rule of a chain, read.
pub(crate) struct XRule {
    /// Where it is in the input (a line, or a rule's index for JSON).
    pub(crate) line: usize,
    /// As written.
    pub(crate) text: String,
    pub(crate) read: Read,
}

/// A chain of read rules.
pub(crate) struct XChain {
    pub(crate) name: String,
    pub(crate) rules: Vec<XRule>,
}

/// A rule name from a comment, if the comment is a usable identifier.
fn ident(c: &str) -> Option<String> {
    let ok = c.starts_with(|x: char| x.is_ascii_alphabetic() || x == '_')
        && c.chars().all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !matches!(
            c,
            "and" | "or" | "not" | "in" | "over" | "has" | "rule" | "default" | "set" | "table"
        );
    ok.then(|| c.to_string())
}

/// A conjunction of atoms (`ip` when there are none: every packet here is IP).
fn conj(atoms: &[String]) -> String {
    if atoms.is_empty() {
        "ip".to_string()
    } else {
        atoms.join(" and ")
    }
}

struct Walk<'a> {
    chains: &'a [XChain],
    default: &'static str,
    out: Vec<String>,
    names: HashSet<String>,
    report: BTreeMap<usize, Entry>,
    skip: bool,
}

/// The walk's output: the policy's rule lines (and comments for refused rules) and the report.
pub(crate) struct Walked {
    pub(crate) lines: Vec<String>,
    pub(crate) report: Report,
}

/// Walks chain `top` of `chains`, whose policy is `default` (`pass` or `drop`); `skip` keeps
/// refused rules as comments.
pub(crate) fn walk(
    chains: &[XChain],
    top: &str,
    default: &'static str,
    skip: bool,
) -> Result<Walked, ImportError> {
    let mut w = Walk {
        chains,
        default,
        out: Vec::new(),
        names: HashSet::new(),
        report: BTreeMap::new(),
        skip,
    };
    w.chain(top, &[], 0)?;
    w.unreached();
    w.harmless(top);
    Ok(Walked {
        lines: w.out,
        report: Report {
            entries: w.report.into_values().collect(),
        },
    })
}

/// The chain a rule's text jumps or goes to (`-j C`, `-g C`, nft's `jump C`), among `names`.
fn jumps_to<'a>(text: &str, names: &[&'a str]) -> Vec<&'a str> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| matches!(w[0], "-j" | "--jump" | "-g" | "--goto" | "jump" | "goto"))
        .filter_map(|w| names.iter().copied().find(|n| *n == w[1].trim_matches('"')))
        .collect()
}

impl Walk<'_> {
    /// Puts in the report every rule of a chain reached only through a refused rule (and of
    /// the chains those reach): none of them is imported, and the report says which refused
    /// rule keeps them out.
    fn unreached(&mut self) {
        let chains = self.chains;
        let names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        let walked =
            |w: &Walk<'_>, c: &XChain| c.rules.iter().any(|r| w.report.contains_key(&r.line));
        let mut work: Vec<(&str, usize)> = Vec::new();
        for c in chains {
            for r in &c.rules {
                if matches!(r.read, Read::Refused(_)) && self.report.contains_key(&r.line) {
                    work.extend(jumps_to(&r.text, &names).into_iter().map(|to| (to, r.line)));
                }
            }
        }
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some((name, via)) = work.pop() {
            let Some(c) = chains.iter().find(|c| c.name == name) else {
                continue;
            };
            if !seen.insert(name) || walked(self, c) {
                continue;
            }
            for r in &c.rules {
                self.report.entry(r.line).or_insert_with(|| Entry {
                    line: r.line,
                    text: r.text.clone(),
                    outcome: Outcome::Refused {
                        construct: format!("(in chain {name})"),
                        reason: format!(
                            "reached only through the refused rule at line {via}, so not imported"
                        ),
                    },
                });
                let to = match &r.read {
                    Read::Said(Said {
                        target: Target::Jump(t) | Target::Goto(t),
                        ..
                    }) => vec![t.as_str()],
                    _ => jumps_to(&r.text, &names),
                };
                work.extend(to.into_iter().map(|t| (t, via)));
            }
        }
    }

    /// Says of each refused rule of the base chain that cannot change a verdict so: its
    /// verdict is the chain's policy and every rule after it decides the same or nothing
    /// (a packet it would have taken ends the same way without it).
    fn harmless(&mut self, top: &str) {
        let Some(c) = self.chains.iter().find(|c| c.name == top) else {
            return;
        };
        let verdict_of_text = |t: &str| -> Option<&'static str> {
            let w: Vec<&str> = t.split_whitespace().collect();
            w.windows(2)
                .find(|p| matches!(p[0], "-j" | "--jump"))
                .and_then(|p| match p[1] {
                    "ACCEPT" => Some("pass"),
                    "DROP" => Some("drop"),
                    _ => None,
                })
                .or_else(|| {
                    w.last().and_then(|l| match *l {
                        "accept" => Some("pass"),
                        "drop" => Some("drop"),
                        _ => None,
                    })
                })
        };
        let same = |r: &XRule, v: &str| match &r.read {
            Read::Never(_) => true,
            Read::Refused(_) => verdict_of_text(&r.text) == Some(v),
            Read::Said(s) => matches!(
                (&s.target, v),
                (Target::Accept, "pass") | (Target::Drop, "drop") | (Target::None, _)
            ),
            Read::Split(v2) => v2.iter().all(|s| {
                matches!(
                    (&s.target, v),
                    (Target::Accept, "pass") | (Target::Drop, "drop") | (Target::None, _)
                )
            }),
        };
        for (i, r) in c.rules.iter().enumerate() {
            if !matches!(r.read, Read::Refused(_)) || verdict_of_text(&r.text) != Some(self.default)
            {
                continue;
            }
            if c.rules[i + 1..]
                .iter()
                .all(|later| same(later, self.default))
            {
                if let Some(Entry {
                    outcome: Outcome::Refused { reason, .. },
                    ..
                }) = self.report.get_mut(&r.line)
                {
                    reason.push_str(&format!(
                        "; it cannot change any verdict: every rule after it and the chain's policy {} too",
                        if self.default == "drop" { "drop" } else { "accept" }
                    ));
                }
            }
        }
    }

    fn record(&mut self, r: &XRule, outcome: Outcome) {
        let e = self.report.entry(r.line).or_insert_with(|| Entry {
            line: r.line,
            text: r.text.clone(),
            outcome: outcome.clone(),
        });
        if let (Outcome::Imported(v), Outcome::Imported(new)) = (&mut e.outcome, outcome) {
            for n in new {
                if !v.contains(&n) {
                    v.push(n);
                }
            }
        }
    }

    fn unique(&mut self, base: String) -> String {
        let mut n = base.clone();
        let mut k = 2;
        while !self.names.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    }

    fn chain(&mut self, chain: &str, guards: &[String], depth: usize) -> Result<(), ImportError> {
        let chains = self.chains;
        let Some(c) = chains.iter().find(|c| c.name == chain) else {
            return Ok(());
        };
        let mut local: Vec<String> = guards.to_vec();
        'rules: for r in &c.rules {
            let said = match &r.read {
                Read::Refused(refusal) => {
                    if self.skip {
                        self.out.push(format!(
                            "# refused (line {}): `{}`: {}\n    #   {}",
                            r.line, refusal.construct, refusal.reason, r.text
                        ));
                    }
                    self.record(
                        r,
                        Outcome::Refused {
                            construct: refusal.construct.clone(),
                            reason: refusal.reason.clone(),
                        },
                    );
                    continue;
                }
                Read::Never(why) => {
                    self.record(r, Outcome::Skipped(why.clone()));
                    continue;
                }
                Read::Said(s) => std::slice::from_ref(s),
                Read::Split(v) => v.as_slice(),
            };
            for said in said {
                if !self.said(r, said, chain, &mut local, depth)? {
                    break 'rules;
                }
            }
        }
        Ok(())
    }

    /// Writes one said rule of `chain` (whose earlier rules left `local` as the guard);
    /// false when nothing after it in the chain can run.
    fn said(
        &mut self,
        r: &XRule,
        said: &Said,
        chain: &str,
        local: &mut Vec<String>,
        depth: usize,
    ) -> Result<bool, ImportError> {
        {
            let mut pred = local.clone();
            pred.extend(said.atoms.iter().cloned());
            let this = conj(&said.atoms);
            let verdict = match &said.target {
                Target::Accept => Some("pass"),
                Target::Drop => Some("drop"),
                Target::Return if depth == 0 => Some(self.default),
                _ => None,
            };
            if let Some(v) = verdict {
                let base = said.comment.as_deref().and_then(ident).unwrap_or_else(|| {
                    format!(
                        "{}_l{}",
                        chain.to_ascii_lowercase().replace(['-', '.'], "_"),
                        r.line
                    )
                });
                let name = self.unique(base);
                self.out
                    .push(format!("rule {name}: {} => {v}", conj(&pred)));
                self.record(r, Outcome::Imported(vec![name]));
                return Ok(true);
            }
            match &said.target {
                Target::Return => {
                    self.record(r, Outcome::Imported(vec![format!("(return from {chain})")]));
                    if said.atoms.is_empty() {
                        return Ok(false);
                    }
                    local.push(format!("not ({this})"));
                }
                Target::Jump(to) | Target::Goto(to) if depth >= 16 => {
                    return Err(ImportError::Syntax {
                        line: r.line,
                        what: format!("chains nest deeper than 16 at {to} (a loop?)"),
                    });
                }
                Target::Jump(to) => {
                    self.record(r, Outcome::Imported(vec![format!("(jump to {to})")]));
                    self.chain(to, &pred, depth + 1)?;
                }
                Target::Goto(to) => {
                    self.record(r, Outcome::Imported(vec![format!("(goto {to})")]));
                    self.chain(to, &pred, depth + 1)?;
                    if said.atoms.is_empty() {
                        return Ok(false);
                    }
                    local.push(format!("not ({this})"));
                }
                _ => self.record(
                    r,
                    Outcome::Skipped("no verdict: the rule only counts packets".into()),
                ),
            }
        }
        Ok(true)
    }
}
