//! The checker: resolves names, types values against fields, checks ranges, address families,
//! hook capabilities and declarations, and lowers the AST to [`crate::checked`].
//!
//! It never stops at the first problem: each check that fails records a diagnostic and the
//! checker carries on with a placeholder, so one run reports every error of a file. Warnings
//! (shadowed rules, always-false predicates, unused declarations) come from `crate::analysis`
//! once the file is otherwise clean.
//!
//! One `Checker` walks the file. Its methods are spread over submodules by the part of the
//! language they check, as naga's `front/wgsl/lower` spreads its lowerer, so that each part can
//! be read (and grown) on its own: `values` (literals, constants, integer widths, address
//! families, ranges), `fields` (field names and the hook's restrictions on them),
//! `declarations` (sets, tables, counters, limiters, pools and their shared namespace),
//! `predicates`, `actions`, `test_blocks` (test statements and packet literals) and
//! `capabilities` (what the target offers). This module holds the entry points, the state the
//! submodules share, and the per-policy driver that calls them in order; `set_items` checks
//! single set values for `nfcc set add` through the same checker.

mod actions;
mod capabilities;
mod declarations;
mod fields;
mod predicates;
mod set_items;
mod test_blocks;
mod values;

pub use capabilities::{Capabilities, HOST_MAX_CAPACITY, NFP_MAX_CAPACITY};
pub use declarations::DEFAULT_CAPACITY;
pub use fields::set_fits_field;
pub use set_items::{parse_set_item, parse_set_item_by_parser};
pub use values::{builtin_constant, hex_bytes};

use crate::analysis;
use crate::ast::{self, Span};
use crate::checked::*;
use crate::diag::Diagnostic;
use predicates::match_table;
use std::collections::{HashMap, HashSet};
use values::Resolved;

/// What a check is run for.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// The target asked for on the command line (`--target`); a policy's own `offload`
    /// clause applies when this is `None`.
    pub target: Option<Target>,
}

/// Parses and checks a source file.
pub fn check_source(source: &str, opts: &CheckOptions) -> (Option<Program>, Vec<Diagnostic>) {
    let (file, mut diags) = crate::parse::parse(source);
    if diags.iter().any(|d| matches!(d.code, "E0002" | "E0005")) {
        return (None, diags);
    }
    let (prog, more) = check(&file, opts);
    let parse_failed = diags.iter().any(Diagnostic::is_error);
    // Rules holding an unreadable literal look always-false to the analysis; those warnings
    // would only repeat the literal's error.
    diags.extend(
        more.into_iter()
            .filter(|d| !(parse_failed && matches!(d.code, "W0001" | "W0002"))),
    );
    let has_errors = diags.iter().any(Diagnostic::is_error);
    (if has_errors { None } else { prog }, diags)
}

/// Checks a parsed file. Returns the checked program when there are no errors.
pub fn check(file: &ast::File, opts: &CheckOptions) -> (Option<Program>, Vec<Diagnostic>) {
    let mut cx = Checker {
        diags: Vec::new(),
        consts: HashMap::new(),
        resolved_consts: HashMap::new(),
        resolving: HashSet::new(),
    };
    for c in &file.consts {
        if cx.consts.contains_key(&c.name.name) {
            cx.diags.push(
                Diagnostic::error(
                    "E0107",
                    c.name.span,
                    format!("constant `{}` is defined twice", c.name.name),
                )
                .with_label("second definition")
                .with_help("rename one of them"),
            );
            continue;
        }
        cx.consts.insert(c.name.name.clone(), c.value.clone());
    }
    let mut policies = Vec::new();
    let mut seen = HashMap::new();
    for p in &file.policies {
        if let Some(prev) = seen.insert(p.name.name.clone(), p.name.span) {
            cx.diags.push(
                Diagnostic::error(
                    "E0107",
                    p.name.span,
                    format!("policy `{}` is defined twice", p.name.name),
                )
                .with_note(prev, "first defined here")
                .with_help("policy names must be unique within a file; rename one"),
            );
        }
        if let Some(pol) = cx.policy(p, opts) {
            policies.push(pol);
        }
    }
    if file.policies.is_empty() && cx.diags.is_empty() {
        cx.diags.push(
            Diagnostic::error("E0119", Span::new(0, 0), "no policy in this file")
                .with_help("add `policy NAME on xdp { ... default pass }`"),
        );
    }
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    if !has_errors {
        for p in &policies {
            analysis::warnings(p, &mut cx.diags);
        }
    }
    cx.diags.sort_by_key(|d| (d.span().start, d.severity));
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    (
        if has_errors {
            None
        } else {
            Some(Program { policies })
        },
        cx.diags,
    )
}

/// A declaration name's meaning within a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Decl {
    Set(SetId),
    Table(TableId),
    Counter(CounterId),
    Limiter(LimiterId),
    Pool(PoolId),
}

impl Decl {
    fn noun(self) -> &'static str {
        &self.what()[2..]
    }

    fn what(self) -> &'static str {
        match self {
            Decl::Set(_) => "a set",
            Decl::Table(_) => "a table",
            Decl::Counter(_) => "a counter",
            Decl::Limiter(_) => "a limiter",
            Decl::Pool(_) => "a pool",
        }
    }
}

struct Checker {
    diags: Vec<Diagnostic>,
    consts: HashMap<String, ast::Value>,
    /// Constants already resolved.
    resolved_consts: HashMap<String, Resolved>,
    /// Constants being resolved (for cycle detection).
    resolving: HashSet<String>,
}

/// Per-policy state while checking.
struct Pcx {
    hook: Hook,
    target: Target,
    target_span: Span,
    names: HashMap<String, (Decl, Span)>,
    used: HashSet<Decl>,
    sets: Vec<Set>,
    tables: Vec<Table>,
    counters: Vec<Counter>,
    limiters: Vec<Limiter>,
    pools: Vec<Pool>,
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|&(d, c)| d <= if c.len() <= 4 { 1 } else { 2.max(c.len() / 3) })
        .min()
        .map(|(_, c)| c)
}

impl Checker {
    fn err(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, span, msg));
        let n = self.diags.len() - 1;
        &mut self.diags[n]
    }

    fn help(
        &mut self,
        code: &'static str,
        span: Span,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(code, span, msg).with_help(help));
    }

    /// Checks one policy: hook and target, then declarations (all of them first, so rules may
    /// use names declared below them), rules, the default, tests, and unused declarations.
    fn policy(&mut self, p: &ast::Policy, opts: &CheckOptions) -> Option<Policy> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let hook = match p
            .hook
            .words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["xdp"] => Some(Hook::Xdp),
            ["tc", "ingress"] => Some(Hook::TcIngress),
            ["tc", "egress"] => Some(Hook::TcEgress),
            _ => {
                self.help(
                    "E0114",
                    p.hook.span,
                    format!("unknown hook `{}`", p.hook.words.join(" ")),
                    "write `on xdp`, `on tc ingress` or `on tc egress`",
                );
                None
            }
        };
        let mut target = Target::Host;
        let mut target_span = p.name.span;
        for o in &p.offload {
            match o.name.as_str() {
                "nfp" => {
                    target = Target::Nfp;
                    target_span = o.span;
                }
                "host" => target_span = o.span,
                _ => self.help(
                    "E0116",
                    o.span,
                    format!("unknown offload target `{}`", o.name),
                    "the targets are `nfp` (Netronome BPF offload) and `host`",
                ),
            }
        }
        if let Some(t) = opts.target {
            target = t;
        }
        if target == Target::Nfp && hook.is_some_and(Hook::is_tc) {
            // NFP offloads TC cls_bpf too, so a tc hook is allowed; nothing to report.
        }
        let mut pcx = Pcx {
            hook: hook.unwrap_or(Hook::Xdp),
            target,
            target_span,
            names: HashMap::new(),
            used: HashSet::new(),
            sets: vec![],
            tables: vec![],
            counters: vec![],
            limiters: vec![],
            pools: vec![],
        };

        // Declarations first, so rules may use names declared below them.
        for s in &p.sets {
            let id = SetId(pcx.sets.len() as u32);
            self.declare(&mut pcx, &s.name, Decl::Set(id));
            let set = self.set_decl(s, &pcx);
            pcx.sets.push(set);
        }
        for t in &p.tables {
            let id = TableId(pcx.tables.len() as u32);
            self.declare(&mut pcx, &t.name, Decl::Table(id));
            let table = self.table_decl(t, &pcx);
            pcx.tables.push(table);
        }
        for c in &p.counters {
            let id = CounterId(pcx.counters.len() as u32);
            self.declare(&mut pcx, &c.name, Decl::Counter(id));
            let (key, capacity, _, _) = self.keyed_opts(&c.name, &c.opts, &pcx, false, c.span);
            pcx.counters.push(Counter {
                name: c.name.name.clone(),
                key,
                capacity,
                span: c.span,
            });
        }
        for l in &p.limiters {
            let id = LimiterId(pcx.limiters.len() as u32);
            self.declare(&mut pcx, &l.name, Decl::Limiter(id));
            let (key, capacity, rate, burst) =
                self.keyed_opts(&l.name, &l.opts, &pcx, true, l.span);
            self.needs(&pcx, Capabilities::CLOCK, l.span);
            pcx.limiters.push(Limiter {
                name: l.name.name.clone(),
                key,
                rate_per_sec: rate,
                burst,
                capacity,
                span: l.span,
            });
        }
        for pool in &p.pools {
            let id = PoolId(pcx.pools.len() as u32);
            self.declare(&mut pcx, &pool.name, Decl::Pool(id));
            let checked = self.pool_decl(pool);
            pcx.pools.push(checked);
        }

        // Rules.
        let mut rules = Vec::new();
        let mut rule_names: HashMap<&str, Span> = HashMap::new();
        for r in &p.rules {
            if r.name.name == "default" {
                self.help(
                    "E0107",
                    r.name.span,
                    "a rule cannot be named `default`",
                    "`expect ... by default` names the default action; choose another name",
                );
            }
            if let Some(prev) = rule_names.insert(&r.name.name, r.name.span) {
                self.diags.push(
                    Diagnostic::error("E0107", r.name.span, format!("rule `{}` is defined twice", r.name.name))
                        .with_label("second definition")
                        .with_note(prev, "first defined here")
                        .with_help("rule names must be unique in a policy: they name counters and `expect ... by`"),
                );
            }
            let expr = self.pred(&r.pred, &mut pcx);
            let table = match_table(&expr);
            let (actions, terminal) = self.actions(&r.actions, &mut pcx, r.span, table.is_some());
            if terminal.is_none() && table.is_none() {
                continue;
            }
            rules.push(Rule {
                name: r.name.name.clone(),
                expr,
                actions,
                terminal,
                table,
                span: r.span,
            });
        }

        // Default.
        let default = match p.defaults.as_slice() {
            [] => {
                self.help(
                    "E0108",
                    p.name.span,
                    format!("policy `{}` has no `default` action", p.name.name),
                    "add `default pass` or `default drop`: it decides packets no rule matches",
                );
                None
            }
            [d, rest @ ..] => {
                for extra in rest {
                    self.diags.push(
                        Diagnostic::error(
                            "E0109",
                            extra.span,
                            "a policy has exactly one `default`",
                        )
                        .with_label("second default")
                        .with_note(d.span, "first default here")
                        .with_help("remove one of them"),
                    );
                }
                let (actions, terminal) = self.actions(&d.actions, &mut pcx, d.span, false);
                terminal.map(|terminal| DefaultAction {
                    actions,
                    terminal,
                    span: d.span,
                })
            }
        };

        // Tests.
        let mut tests = Vec::new();
        let mut test_names: HashMap<&str, Span> = HashMap::new();
        for t in &p.tests {
            if let Some(prev) = test_names.insert(&t.name, t.name_span) {
                self.diags.push(
                    Diagnostic::error(
                        "E0107",
                        t.name_span,
                        format!("test \"{}\" is defined twice", t.name),
                    )
                    .with_note(prev, "first defined here")
                    .with_help("give each test a distinct name so failures can be told apart"),
                );
            }
            tests.push(self.test_block(t, &pcx, &rules));
        }

        // Unused declarations.
        let mut decls: Vec<(&String, &(Decl, Span))> = pcx.names.iter().collect();
        decls.sort_by_key(|(_, (_, s))| *s);
        for (name, (decl, span)) in decls {
            if !pcx.used.contains(decl) {
                self.diags.push(
                    Diagnostic::warning(
                        "W0003",
                        *span,
                        format!("{} `{name}` is never used", decl.noun()),
                    )
                    .with_help("remove it, or use it in a rule"),
                );
            }
        }

        let errors_after = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        Some(Policy {
            name: p.name.name.clone(),
            hook: hook?,
            offload: (target != Target::Host || !p.offload.is_empty()).then_some(target),
            sets: pcx.sets,
            tables: pcx.tables,
            counters: pcx.counters,
            limiters: pcx.limiters,
            pools: pcx.pools,
            rules,
            default: default?,
            tests,
            span: p.span,
        })
    }
}
