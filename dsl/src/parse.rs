//! The parser: pest grammar (`nf.pest`) to the spanned AST of `crate::ast`.
//!
//! A syntax error is reported as one diagnostic at the furthest point pest reached, with the
//! tokens it expected named in words. Malformed literals inside an otherwise well-formed file
//! (an IPv6 group out of range, a prefix written on a MAC) are collected as further
//! diagnostics so one run shows them all.

use crate::ast::*;
use crate::diag::Diagnostic;
use pest::iterators::Pair;
use pest::Parser as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The generated pest parser, kept in its own module because pest generates undocumented items.
mod grammar {
    #![allow(missing_docs)]
    #[derive(pest_derive::Parser)]
    #[grammar = "nf.pest"]
    pub(super) struct NfParser;
}
use grammar::{NfParser, Rule};

/// Parses a whole file. On a syntax error the returned file is empty and the diagnostics say
/// where and what was expected.
pub fn parse(source: &str) -> (File, Vec<Diagnostic>) {
    if source.len() > u32::MAX as usize {
        let d = Diagnostic::error("E0001", Span::new(0, 0), "file is larger than 4 GiB")
            .with_help("split the policy into several files");
        return (File::default(), vec![d]);
    }
    if let Some((at, depth)) = too_deep(source) {
        let d = Diagnostic::error(
            "E0005",
            Span::new(at, at + 1),
            format!("parentheses nested {depth} deep; at most {MAX_NESTING} are allowed"),
        )
        .with_label("too deep")
        .with_help("flatten the predicate: `and`/`or` chains need no parentheses");
        return (File::default(), vec![d]);
    }
    match NfParser::parse(Rule::file, source) {
        Ok(mut pairs) => {
            let mut b = Builder { diags: Vec::new() };
            let file = match pairs.next() {
                Some(p) => b.file(p),
                None => File::default(),
            };
            (file, b.diags)
        }
        Err(e) => (File::default(), vec![syntax_error(source, e)]),
    }
}

/// The deepest parenthesis nesting accepted. Parsing, checking and analysis recurse on nesting,
/// so a bound keeps a hostile file from overflowing the stack; real predicates nest a few deep.
pub const MAX_NESTING: usize = 64;

/// The offset of the first `(` nested deeper than [`MAX_NESTING`], skipping comments and
/// strings, with the depth reached there.
fn too_deep(source: &str) -> Option<(usize, usize)> {
    let bytes = source.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((i, depth));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn syntax_error(source: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    if let Some(d) = non_ascii_name(source, pos) {
        return d;
    }
    let end = source[pos..]
        .char_indices()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(source.len(), |(i, _)| pos + i)
        .max(pos + source[pos..].chars().next().map_or(0, char::len_utf8));
    let found = if pos >= source.len() {
        "end of file".to_string()
    } else {
        format!("`{}`", &source[pos..end])
    };
    let expected: Vec<String> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut v: Vec<String> = positives.iter().filter_map(|r| describe(*r)).collect();
            v.sort();
            v.dedup();
            v
        }
        pest::error::ErrorVariant::CustomError { message } => vec![message.clone()],
    };
    let msg = if expected.is_empty() {
        format!("syntax error: unexpected {found}")
    } else {
        format!(
            "syntax error: expected {}, found {found}",
            join_or(&expected)
        )
    };
    Diagnostic::error("E0002", Span::new(pos, end), msg)
        .with_label("not expected here")
        .with_help(
            "see the grammar in nf-language.md sections 3-7; every item of a policy starts \
             with `set`, `table`, `counter`, `limiter`, `pool`, `rule`, `default` or `test`",
        )
}

/// A name with a letter outside ASCII where the parse stopped (`policy naïve on xdp`): said
/// as such, not as the token the grammar expected after the name's ASCII part.
fn non_ascii_name(source: &str, pos: usize) -> Option<Diagnostic> {
    let c = source.get(pos..)?.chars().next()?;
    if c.is_ascii() || !c.is_alphanumeric() {
        return None;
    }
    let name_char = |c: char| c.is_alphanumeric() || c == '_';
    let start = source[..pos]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| name_char(c))
        .last()
        .map_or(pos, |(i, _)| i);
    let end = source[pos..]
        .char_indices()
        .find(|&(_, c)| !name_char(c))
        .map_or(source.len(), |(i, _)| pos + i);
    let name = &source[start..end];
    Some(
        Diagnostic::error(
            "E0002",
            Span::new(start, end),
            format!("syntax error: names are ASCII letters, digits and `_`; `{name}` has `{c}`"),
        )
        .with_label("not an ASCII name")
        .with_help("spell the name in ASCII (the kernel's object and map names are ASCII too)"),
    )
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Names grammar rules in the words a user would use; `None` hides internal rules.
fn describe(r: Rule) -> Option<String> {
    let s = match r {
        Rule::EOI => "end of file",
        Rule::ident | Rule::path => "a name",
        Rule::policy | Rule::kw_policy => "`policy`",
        Rule::const_decl | Rule::kw_const => "`const`",
        Rule::kw_on => "`on`",
        Rule::hook => "a hook (`xdp`, `tc ingress`, `tc egress`)",
        Rule::set_decl
        | Rule::table_decl
        | Rule::counter_decl
        | Rule::limiter_decl
        | Rule::pool_decl
        | Rule::rule
        | Rule::default_decl
        | Rule::test_block
        | Rule::offload_clause => "a declaration, rule, `default` or `test`",
        Rule::pred | Rule::conj | Rule::unary | Rule::presence | Rule::field_atom => "a predicate",
        Rule::kw_and | Rule::kw_or => "`and`/`or`",
        Rule::cmp_op | Rule::in_tail | Rule::has_tail | Rule::cmp_tail => {
            "a comparison (`==`, `in`, `has`, ...)"
        }
        Rule::value | Rule::range | Rule::int | Rule::dec | Rule::hex => "a value",
        Rule::value_list => "`{ values }`",
        Rule::ipv4 | Rule::ipv6 | Rule::prefix4 | Rule::prefix6 => "an address",
        Rule::string => "a string",
        Rule::actions | Rule::act_word | Rule::act_set | Rule::act_arg | Rule::act_balance => {
            "an action"
        }
        Rule::act_redirect | Rule::kw_redirect => "an action",
        Rule::decl_opt | Rule::key_opt | Rule::opt_kv | Rule::opt_flag => "an option",
        Rule::set_kind => "a set kind (`ipv4 prefix`, `port`, `u16`, ...)",
        Rule::packet | Rule::layer => "a packet layer such as `ipv4(...)`",
        Rule::layer_arg => "a layer argument `name=value`",
        Rule::send_stmt | Rule::expect_stmt => "`send` or `expect`",
        Rule::verdict | Rule::expect_verdict => "a verdict",
        Rule::template => "the actions entries may use (`pass | drop`)",
        Rule::entries => "`entries { ... }`",
        Rule::entry | Rule::entry_key => "a table entry `(values) => action`",
        Rule::backend => "a backend address",
        Rule::field_list => "a field or `(fields)`",
        Rule::kw_by => "`by`",
        Rule::kw_x => "`x`",
        _ => return None,
    };
    Some(s.to_string())
}

/// The span of a pair without the whitespace pest's implicit skipping may leave at its end, so
/// carets sit under the text itself.
fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    let trimmed = p.as_str().trim_end().len();
    Span::new(s.start(), s.start() + trimmed)
}

struct Builder {
    diags: Vec<Diagnostic>,
}

impl Builder {
    fn file(&mut self, pair: Pair<'_, Rule>) -> File {
        let mut f = File::default();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::const_decl => {
                    let mut it = p.into_inner().skip(1);
                    let (Some(name), Some(value)) = (it.next(), it.next()) else {
                        continue;
                    };
                    f.consts.push(ConstDecl {
                        name: ident(&name),
                        value: self.value(value),
                    });
                }
                Rule::policy => f.policies.push(self.policy(p)),
                _ => {}
            }
        }
        f
    }

    fn policy(&mut self, pair: Pair<'_, Rule>) -> Policy {
        let span = span_of(&pair);
        let mut it = pair.into_inner().skip(1);
        let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
        let _on = it.next();
        let hook = it.next().map_or(
            HookSpec {
                words: vec![],
                span,
            },
            |h| HookSpec {
                span: span_of(&h),
                words: h.into_inner().map(|w| w.as_str().to_string()).collect(),
            },
        );
        let mut pol = Policy {
            name,
            hook,
            offload: vec![],
            sets: vec![],
            tables: vec![],
            counters: vec![],
            limiters: vec![],
            pools: vec![],
            rules: vec![],
            defaults: vec![],
            tests: vec![],
            span,
        };
        for item in it {
            let ispan = span_of(&item);
            match item.as_rule() {
                Rule::offload_clause => {
                    if let Some(t) = item.into_inner().nth(1) {
                        pol.offload.push(ident(&t));
                    }
                }
                Rule::set_decl => {
                    let mut it = item.into_inner().skip(1).peekable();
                    let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                    let (kind, prefix) = match it.next() {
                        Some(k) => {
                            let mut kit = k.into_inner();
                            let kind = kit.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                            (kind, kit.next().map(|p| span_of(&p)))
                        }
                        None => (missing_ident(), None),
                    };
                    let mut opts = vec![];
                    let mut values = vec![];
                    for p in it {
                        match p.as_rule() {
                            Rule::decl_opt => opts.push(self.decl_opt(p)),
                            Rule::value_list => values = self.value_list(p),
                            _ => {}
                        }
                    }
                    pol.sets.push(SetDecl {
                        name,
                        kind,
                        prefix,
                        opts,
                        values,
                        span: ispan,
                    });
                }
                Rule::counter_decl | Rule::limiter_decl => {
                    let is_counter = item.as_rule() == Rule::counter_decl;
                    let mut it = item.into_inner().skip(1);
                    let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                    let opts = it.map(|p| self.decl_opt(p)).collect();
                    if is_counter {
                        pol.counters.push(CounterDecl {
                            name,
                            opts,
                            span: ispan,
                        });
                    } else {
                        pol.limiters.push(LimiterDecl {
                            name,
                            opts,
                            span: ispan,
                        });
                    }
                }
                Rule::table_decl => pol.tables.push(self.table(item)),
                Rule::pool_decl => {
                    let mut it = item.into_inner().skip(1);
                    let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                    let (mut backends, mut opts) = (vec![], vec![]);
                    for b in it {
                        if b.as_rule() == Rule::decl_opt {
                            opts.push(self.decl_opt(b));
                            continue;
                        }
                        let mut bit = b.into_inner();
                        let Some(addr) = bit.next() else { continue };
                        let addr = self.value(addr);
                        let weight = bit.nth(1).map(|w| self.int_value(w));
                        backends.push((addr, weight));
                    }
                    pol.pools.push(PoolDecl {
                        name,
                        opts,
                        backends,
                        span: ispan,
                    });
                }
                Rule::rule => {
                    let mut it = item.into_inner().skip(1);
                    let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                    let pred = match it.next() {
                        Some(p) => self.pred(p),
                        None => Pred::And(vec![], ispan),
                    };
                    let actions = it.next().map(|a| self.actions(a)).unwrap_or_default();
                    pol.rules.push(Rule_ {
                        name,
                        pred,
                        actions,
                        span: ispan,
                    });
                }
                Rule::default_decl => {
                    let actions = item
                        .into_inner()
                        .nth(1)
                        .map(|a| self.actions(a))
                        .unwrap_or_default();
                    pol.defaults.push(DefaultDecl {
                        actions,
                        span: ispan,
                    });
                }
                Rule::test_block => pol.tests.push(self.test_block(item)),
                _ => {}
            }
        }
        pol
    }

    fn table(&mut self, item: Pair<'_, Rule>) -> TableDecl {
        let span = span_of(&item);
        let mut it = item.into_inner().skip(1);
        let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
        let mut key = vec![];
        let mut template = vec![];
        let mut opts = vec![];
        let mut entries = vec![];
        for p in it {
            match p.as_rule() {
                Rule::key_opt => {
                    if let Some(fl) = p.into_inner().nth(1) {
                        key = fl.into_inner().map(|f| path(&f)).collect();
                    }
                }
                Rule::template => template = p.into_inner().map(|i| ident(&i)).collect(),
                Rule::decl_opt => opts.push(self.decl_opt(p)),
                Rule::entries => {
                    for e in p.into_inner().skip(1) {
                        let espan = span_of(&e);
                        let mut eit = e.into_inner();
                        let Some(k) = eit.next() else { continue };
                        let key = k.into_inner().map(|v| self.value(v)).collect();
                        let action = match eit.next() {
                            Some(a) => self.action(a),
                            None => continue,
                        };
                        entries.push(TableEntry {
                            key,
                            action,
                            span: espan,
                        });
                    }
                }
                _ => {}
            }
        }
        TableDecl {
            name,
            key,
            template,
            opts,
            entries,
            span,
        }
    }

    fn decl_opt(&mut self, p: Pair<'_, Rule>) -> DeclOpt {
        let span = span_of(&p);
        let Some(inner) = p.into_inner().next() else {
            return DeclOpt::Flag(Ident {
                name: String::new(),
                span,
            });
        };
        match inner.as_rule() {
            Rule::key_opt => {
                let fields = inner
                    .into_inner()
                    .nth(1)
                    .map(|fl| fl.into_inner().map(|f| path(&f)).collect())
                    .unwrap_or_default();
                DeclOpt::Key(fields, span)
            }
            Rule::opt_kv => {
                let mut it = inner.into_inner();
                let name = it.next().map(|p| ident(&p)).unwrap_or_else(missing_ident);
                let value = it.next().map_or(
                    Value {
                        kind: ValueKind::Invalid,
                        span,
                    },
                    |v| self.value(v),
                );
                DeclOpt::Valued(name, value)
            }
            _ => DeclOpt::Flag(
                inner
                    .into_inner()
                    .next()
                    .map(|p| ident(&p))
                    .unwrap_or_else(missing_ident),
            ),
        }
    }

    fn pred(&mut self, p: Pair<'_, Rule>) -> Pred {
        let span = span_of(&p);
        match p.as_rule() {
            Rule::pred | Rule::conj => {
                let is_or = p.as_rule() == Rule::pred;
                let mut parts: Vec<Pred> = p
                    .into_inner()
                    .filter(|c| !matches!(c.as_rule(), Rule::kw_or | Rule::kw_and))
                    .map(|c| self.pred(c))
                    .collect();
                if parts.len() == 1 {
                    parts.pop().unwrap_or(Pred::And(vec![], span))
                } else if is_or {
                    Pred::Or(parts, span)
                } else {
                    Pred::And(parts, span)
                }
            }
            Rule::unary => {
                let mut nots = vec![];
                let mut inner = None;
                for c in p.into_inner() {
                    if c.as_rule() == Rule::not_op {
                        nots.push(span_of(&c));
                    } else {
                        inner = Some(self.pred(c));
                    }
                }
                let mut pred = inner.unwrap_or(Pred::And(vec![], span));
                // `not not X` is X: fold pairs so a long run of `not`s builds no deep tree.
                let keep = nots.len() % 2;
                let first = nots.first().copied();
                nots.truncate(keep);
                if let (Some(f), Some(n)) = (first, nots.first_mut()) {
                    *n = f;
                }
                for not_span in nots.into_iter().rev() {
                    let s = not_span.to(pred.span());
                    pred = Pred::Not(Box::new(pred), s);
                }
                pred
            }
            _ => Pred::Atom(self.atom(p)),
        }
    }

    fn atom(&mut self, p: Pair<'_, Rule>) -> Atom {
        let span = span_of(&p);
        let kind_rule = p.as_rule();
        let mut it = p.into_inner();
        let kind = match kind_rule {
            Rule::over_atom => {
                AtomKind::Over(it.nth(1).map(|i| ident(&i)).unwrap_or_else(missing_ident))
            }
            Rule::match_atom => {
                AtomKind::Match(it.nth(1).map(|i| ident(&i)).unwrap_or_else(missing_ident))
            }
            Rule::payload_atom => {
                let mut it = it.skip(1);
                let start = self.next_value(&mut it, span);
                let end = self.next_value(&mut it, span);
                let op = it.next().map_or(CmpOp::Eq, |o| cmp_op(o.as_str()));
                let bytes = self.next_value(&mut it, span);
                AtomKind::Payload {
                    start,
                    end,
                    op,
                    bytes,
                }
            }
            Rule::field_atom => {
                let (field, mask) = match it.next() {
                    Some(fe) => {
                        let mut fit = fe.into_inner();
                        let field = fit
                            .next()
                            .map(|f| path(&f))
                            .unwrap_or_else(|| missing_path(span));
                        let mask = fit.next().map(|m| self.value(m));
                        (field, mask)
                    }
                    None => (missing_path(span), None),
                };
                match it.next() {
                    Some(tail) => {
                        let trule = tail.as_rule();
                        let mut tit = tail.into_inner();
                        match trule {
                            Rule::in_tail => {
                                let target = match tit.nth(1) {
                                    Some(t) if t.as_rule() == Rule::value_list => {
                                        let s = span_of(&t);
                                        InTarget::List(self.value_list(t), s)
                                    }
                                    Some(t) => InTarget::One(self.value(t)),
                                    None => InTarget::List(vec![], span),
                                };
                                AtomKind::In {
                                    field,
                                    mask,
                                    target,
                                }
                            }
                            Rule::has_tail => {
                                let mut tit = tit.skip(1);
                                AtomKind::Has {
                                    field,
                                    flags: self.next_value(&mut tit, span),
                                }
                            }
                            _ => {
                                let op = tit.next().map_or(CmpOp::Eq, |o| cmp_op(o.as_str()));
                                let value = self.next_value(&mut tit, span);
                                if mask.is_some() && op != CmpOp::Eq && op != CmpOp::Ne {
                                    // Ordering comparisons of masked fields are well defined
                                    // (the masked value is compared), so they are accepted.
                                }
                                AtomKind::Cmp {
                                    field,
                                    mask,
                                    op,
                                    value,
                                }
                            }
                        }
                    }
                    None => AtomKind::Presence(field),
                }
            }
            _ => AtomKind::Presence(
                it.next()
                    .map(|f| path(&f))
                    .unwrap_or_else(|| missing_path(span)),
            ),
        };
        Atom { kind, span }
    }

    fn next_value<'i>(
        &mut self,
        it: &mut impl Iterator<Item = Pair<'i, Rule>>,
        span: Span,
    ) -> Value {
        match it.next() {
            Some(v) => self.value(v),
            None => Value {
                kind: ValueKind::Invalid,
                span,
            },
        }
    }

    fn actions(&mut self, p: Pair<'_, Rule>) -> Vec<Action> {
        p.into_inner().map(|a| self.action(a)).collect()
    }

    fn action(&mut self, p: Pair<'_, Rule>) -> Action {
        let span = span_of(&p);
        let kind_rule = p.as_rule();
        let mut it = p.into_inner();
        let kind = match kind_rule {
            Rule::act_set => {
                let mut it = it.skip(1);
                let field = it
                    .next()
                    .map(|f| path(&f))
                    .unwrap_or_else(|| missing_path(span));
                let value = self.next_value(&mut it, span);
                ActionKind::Set(field, value)
            }
            Rule::act_balance => {
                let mut it = it.skip(1);
                let pool = it.next().map(|i| ident(&i)).unwrap_or_else(missing_ident);
                let _by = it.next();
                let by = it
                    .next()
                    .map(|fl| fl.into_inner().map(|f| path(&f)).collect())
                    .unwrap_or_default();
                let (mut sticky, mut encap, mut via) = (None, None, None);
                for opt in it {
                    let ospan = span_of(&opt);
                    let which = opt.as_rule();
                    let mut parts = opt.into_inner().skip(1);
                    match which {
                        Rule::bal_sticky => sticky = parts.next().map(|v| self.value(v)),
                        Rule::bal_via => via = parts.next().map(|i| ident(&i)),
                        _ => {
                            let kind = parts
                                .next()
                                .map(|i| ident(&i))
                                .unwrap_or_else(missing_ident);
                            // A value before `from` is the port, the one after it the address.
                            let (mut port, mut from, mut after_from) = (None, None, false);
                            for p in parts {
                                match p.as_rule() {
                                    Rule::kw_from => after_from = true,
                                    _ if after_from => from = Some(self.value(p)),
                                    _ => port = Some(self.value(p)),
                                }
                            }
                            encap = Some(EncapSpec {
                                kind,
                                port,
                                from,
                                span: ospan,
                            });
                        }
                    }
                }
                ActionKind::Balance {
                    pool,
                    by,
                    sticky,
                    encap,
                    via,
                }
            }
            Rule::act_redirect => {
                let s = it.nth(1);
                let sspan = s.as_ref().map_or(span, span_of);
                match s {
                    Some(x) if x.as_rule() == Rule::kw_xsk => ActionKind::RedirectXsk(sspan),
                    s => ActionKind::Redirect(s.map(|s| self.string(s)).unwrap_or_default(), sspan),
                }
            }
            Rule::act_arg => {
                let word = it.next().map(|i| ident(&i)).unwrap_or_else(missing_ident);
                let arg = match it.next() {
                    Some(a) if a.as_rule() == Rule::path => Value {
                        span: span_of(&a),
                        kind: ValueKind::Name(path(&a)),
                    },
                    Some(a) => self.int_value(a),
                    None => Value {
                        kind: ValueKind::Invalid,
                        span,
                    },
                };
                ActionKind::WithArg(word, arg)
            }
            _ => ActionKind::Word(it.next().map(|i| ident(&i)).unwrap_or_else(missing_ident)),
        };
        Action { kind, span }
    }

    fn test_block(&mut self, p: Pair<'_, Rule>) -> TestBlock {
        let span = span_of(&p);
        let mut it = p.into_inner().skip(1);
        let (name, name_span) = match it.next() {
            Some(s) => {
                let sp = span_of(&s);
                let bytes = self.string(s);
                (String::from_utf8_lossy(&bytes).into_owned(), sp)
            }
            None => (String::new(), span),
        };
        let mut stmts = vec![];
        for s in it {
            let sspan = span_of(&s);
            match s.as_rule() {
                Rule::send_stmt => {
                    let mut count = None;
                    let mut packet = None;
                    for c in s.into_inner().skip(1) {
                        match c.as_rule() {
                            Rule::int => count = Some(self.int_value(c)),
                            Rule::packet => packet = Some(self.packet(c)),
                            _ => {}
                        }
                    }
                    let packet = packet.unwrap_or(PacketLit {
                        layers: vec![],
                        span: sspan,
                    });
                    stmts.push(TestStmt::Send {
                        count,
                        packet,
                        span: sspan,
                    });
                }
                Rule::expect_stmt => {
                    let Some(inner) = s.into_inner().nth(1) else {
                        continue;
                    };
                    match inner.as_rule() {
                        Rule::expect_counter => {
                            let mut cit = inner.into_inner().skip(1);
                            let name = cit.next().map(|i| ident(&i)).unwrap_or_else(missing_ident);
                            let mut key = vec![];
                            let mut value = None;
                            let mut bytes = false;
                            for c in cit {
                                match c.as_rule() {
                                    Rule::value => key.push(self.value(c)),
                                    Rule::int => value = Some(self.int_value(c)),
                                    Rule::count_unit => bytes = c.as_str() == "bytes",
                                    _ => {}
                                }
                            }
                            stmts.push(TestStmt::ExpectCounter {
                                name,
                                key,
                                value: value.unwrap_or(Value {
                                    kind: ValueKind::Invalid,
                                    span: sspan,
                                }),
                                bytes,
                                span: sspan,
                            });
                        }
                        Rule::expect_out => {
                            let packet = inner.into_inner().nth(1).map_or(
                                PacketLit {
                                    layers: vec![],
                                    span: sspan,
                                },
                                |p| self.packet(p),
                            );
                            stmts.push(TestStmt::ExpectOut {
                                packet,
                                span: sspan,
                            });
                        }
                        _ => {
                            let mut count = None;
                            let mut verdict = None;
                            let mut by = None;
                            for c in inner.into_inner() {
                                match c.as_rule() {
                                    Rule::int => count = Some(self.int_value(c)),
                                    Rule::verdict => {
                                        let vspan = span_of(&c);
                                        let mut vit = c.into_inner();
                                        verdict = Some(match vit.next() {
                                            Some(w) if w.as_rule() == Rule::ident => {
                                                VerdictLit::Word(ident(&w))
                                            }
                                            _ => match vit.next() {
                                                Some(x) if x.as_rule() == Rule::kw_xsk => {
                                                    VerdictLit::RedirectXsk(vspan)
                                                }
                                                s => VerdictLit::Redirect(
                                                    s.map(|s| self.string(s)).unwrap_or_default(),
                                                    vspan,
                                                ),
                                            },
                                        });
                                    }
                                    Rule::ident => by = Some(ident(&c)),
                                    _ => {}
                                }
                            }
                            stmts.push(TestStmt::ExpectVerdict {
                                count,
                                verdict: verdict
                                    .unwrap_or_else(|| VerdictLit::Word(missing_ident())),
                                by,
                                span: sspan,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        TestBlock {
            name,
            name_span,
            stmts,
            span,
        }
    }

    fn packet(&mut self, p: Pair<'_, Rule>) -> PacketLit {
        let span = span_of(&p);
        let mut layers = vec![];
        for l in p.into_inner() {
            let lspan = span_of(&l);
            let mut it = l.into_inner();
            let name = it.next().map(|i| ident(&i)).unwrap_or_else(missing_ident);
            let mut args = vec![];
            for a in it {
                let mut ait = a.into_inner();
                let first = ait.next();
                let second = ait.next();
                match (first, second) {
                    (Some(n), Some(v)) => args.push((Some(ident(&n)), self.value(v))),
                    (Some(v), None) => args.push((None, self.value(v))),
                    _ => {}
                }
            }
            layers.push(LayerLit {
                name,
                args,
                span: lspan,
            });
        }
        PacketLit { layers, span }
    }

    fn value_list(&mut self, p: Pair<'_, Rule>) -> Vec<Value> {
        p.into_inner().map(|v| self.value(v)).collect()
    }

    fn int_value(&mut self, p: Pair<'_, Rule>) -> Value {
        let span = span_of(&p);
        Value {
            kind: self.int_kind(p),
            span,
        }
    }

    fn int_kind(&mut self, p: Pair<'_, Rule>) -> ValueKind {
        let span = span_of(&p);
        let mut it = p.into_inner();
        let Some(first) = it.next() else {
            return ValueKind::Invalid;
        };
        if first.as_rule() == Rule::hex {
            return ValueKind::Hex(first.as_str()[2..].to_string());
        }
        let mult: u128 = match it.next().map(|s| s.as_str()) {
            Some("K") => 1 << 10,
            Some("M") => 1 << 20,
            Some("G") => 1 << 30,
            _ => 1,
        };
        match first
            .as_str()
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
        {
            Some(n) => ValueKind::Int(n),
            None => {
                self.diags.push(
                    Diagnostic::error("E0003", span, "integer literal is too large")
                        .with_help("integers in .nf files are at most 128 bits"),
                );
                ValueKind::Invalid
            }
        }
    }

    fn string(&mut self, p: Pair<'_, Rule>) -> Vec<u8> {
        let raw = p.into_inner().next().map_or("", |i| i.as_str());
        let mut out = Vec::with_capacity(raw.len());
        let bytes = raw.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                match bytes[i + 1] {
                    b'x' if i + 3 < bytes.len() => {
                        let hex = &raw[i + 2..i + 4];
                        out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 4;
                        continue;
                    }
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'0' => out.push(0),
                    c => out.push(c),
                }
                i += 2;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    fn value(&mut self, p: Pair<'_, Rule>) -> Value {
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::value | Rule::mask_union => {
                let mut parts: Vec<Value> = p.into_inner().map(|c| self.value(c)).collect();
                if parts.len() == 1 {
                    return parts.pop().unwrap_or(Value {
                        kind: ValueKind::Invalid,
                        span,
                    });
                }
                ValueKind::Union(parts)
            }
            Rule::range => {
                let mut it = p.into_inner();
                let lo = self.next_value(&mut it, span);
                let hi = self.next_value(&mut it, span);
                ValueKind::Range(Box::new(lo), Box::new(hi))
            }
            Rule::int => self.int_kind(p),
            Rule::ipv4 => match p.as_str().parse::<Ipv4Addr>() {
                Ok(a) => ValueKind::Ipv4(a),
                Err(_) => self.bad_literal(span, "invalid IPv4 address", "each of the four parts is 0..=255"),
            },
            Rule::ipv6 => match p.as_str().parse::<Ipv6Addr>() {
                Ok(a) => ValueKind::Ipv6(a),
                Err(_) => self.bad_literal(
                    span,
                    "invalid IPv6 address",
                    "write it in RFC 5952 form, e.g. `2001:db8::1` (at most one `::`, groups of up to 4 hex digits)",
                ),
            },
            Rule::prefix4 | Rule::prefix6 => {
                let is4 = p.as_rule() == Rule::prefix4;
                let mut it = p.into_inner();
                let addr = it.next();
                let len = it.next().and_then(|l| l.as_str().parse::<u32>().ok()).unwrap_or(u32::MAX);
                match addr {
                    Some(a) if is4 => match a.as_str().parse::<Ipv4Addr>() {
                        Ok(a) => ValueKind::Prefix4(a, len),
                        Err(_) => self.bad_literal(span, "invalid IPv4 address", "each of the four parts is 0..=255"),
                    },
                    Some(a) => match a.as_str().parse::<Ipv6Addr>() {
                        Ok(a) => ValueKind::Prefix6(a, len),
                        Err(_) => self.bad_literal(
                            span,
                            "invalid IPv6 address",
                            "write it in RFC 5952 form, e.g. `2001:db8::/32`",
                        ),
                    },
                    None => ValueKind::Invalid,
                }
            }
            Rule::mac => {
                let mut m = [0u8; 6];
                for (i, part) in p.as_str().split(':').enumerate().take(6) {
                    m[i] = u8::from_str_radix(part, 16).unwrap_or(0);
                }
                ValueKind::Mac(m)
            }
            Rule::rate => {
                let mut it = p.into_inner();
                let n = it.next().map(|i| self.int_kind(i));
                let unit = it.next().map_or("s", |u| u.as_str());
                match n {
                    Some(ValueKind::Int(n)) => {
                        let per_s = if unit == "ms" { n.checked_mul(1000) } else { Some(n) };
                        match per_s {
                            Some(r) => ValueKind::Rate(r),
                            None => ValueKind::Invalid,
                        }
                    }
                    Some(ValueKind::Hex(h)) => match u128::from_str_radix(&h, 16) {
                        Ok(n) if unit == "ms" => ValueKind::Rate(n.saturating_mul(1000)),
                        Ok(n) => ValueKind::Rate(n),
                        Err(_) => ValueKind::Invalid,
                    },
                    _ => ValueKind::Invalid,
                }
            }
            Rule::string => ValueKind::Str(self.string(p)),
            Rule::path => ValueKind::Name(path(&p)),
            _ => ValueKind::Invalid,
        };
        Value { kind, span }
    }

    fn bad_literal(&mut self, span: Span, msg: &str, help: &str) -> ValueKind {
        self.diags
            .push(Diagnostic::error("E0004", span, msg).with_help(help));
        ValueKind::Invalid
    }
}

// `Rule` is both the pest rule enum and the AST's rule struct; the alias keeps them apart.
use crate::ast::Rule as Rule_;

fn ident(p: &Pair<'_, Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span_of(p),
    }
}

fn path(p: &Pair<'_, Rule>) -> Path {
    Path {
        parts: p.as_str().split('.').map(str::to_string).collect(),
        span: span_of(p),
    }
}

fn missing_ident() -> Ident {
    Ident {
        name: String::new(),
        span: Span::default(),
    }
}

fn missing_path(span: Span) -> Path {
    Path {
        parts: vec![],
        span,
    }
}

fn cmp_op(s: &str) -> CmpOp {
    match s {
        "!=" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        ">=" => CmpOp::Ge,
        _ => CmpOp::Eq,
    }
}
