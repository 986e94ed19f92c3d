//! Declarations: the policy's namespace (sets, tables, counters, limiters and pools share one)
//! and each declaration's kind, options, capacity and contents.

use super::values::Resolved;
use super::{closest, Checker, Decl, Pcx};
use crate::ast::{self, Span};
use crate::checked::*;
use crate::diag::Diagnostic;
use std::collections::HashMap;

/// The capacity of a counter, limiter or dynamic set when none is written.
pub const DEFAULT_CAPACITY: u32 = 65536;

impl Checker {
    pub(super) fn declare(&mut self, pcx: &mut Pcx, name: &ast::Ident, d: Decl) {
        if let Some((prev, prev_span)) = pcx.names.get(&name.name) {
            let what = prev.what();
            let prev_span = *prev_span;
            self.diags.push(
                Diagnostic::error(
                    "E0107",
                    name.span,
                    format!("the name `{}` is declared twice", name.name),
                )
                .with_label(format!("{} with the same name as {what}", d.what()))
                .with_note(prev_span, "first declared here")
                .with_help(
                    "sets, tables, counters, limiters and pools share one namespace; rename one",
                ),
            );
            return;
        }
        pcx.names.insert(name.name.clone(), (d, name.span));
    }

    pub(super) fn lookup(&mut self, pcx: &mut Pcx, name: &ast::Ident, want: &str) -> Option<Decl> {
        match pcx.names.get(&name.name) {
            Some((d, _)) => {
                pcx.used.insert(*d);
                Some(*d)
            }
            None => {
                let cands: Vec<&str> = pcx.names.keys().map(String::as_str).collect();
                let mut d = Diagnostic::error(
                    "E0102",
                    name.span,
                    format!("unknown {want} `{}`", name.name),
                )
                .with_label(format!("no {want} of this name"));
                d.help = Some(match closest(&name.name, cands) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "declare it in the policy: see section 5 of the language reference"
                        .to_string(),
                });
                self.diags.push(d);
                None
            }
        }
    }

    pub(super) fn wrong_kind(&mut self, name: &ast::Ident, found: Decl, want: &str, help: &str) {
        self.diags.push(
            Diagnostic::error(
                "E0118",
                name.span,
                format!("`{}` is {}, not {want}", name.name, found.what()),
            )
            .with_help(help.to_string()),
        );
    }

    pub(super) fn set_decl(&mut self, s: &ast::SetDecl, pcx: &Pcx) -> Set {
        let kind = match (s.kind.name.as_str(), s.prefix.is_some()) {
            ("ipv4", true) => Some(SetKind::Ipv4Prefix),
            ("ipv6", true) => Some(SetKind::Ipv6Prefix),
            ("ipv4", false) => Some(SetKind::Ipv4),
            ("ipv6", false) => Some(SetKind::Ipv6),
            ("port", false) => Some(SetKind::Port),
            ("mac", false) => Some(SetKind::Mac),
            ("u8", false) => Some(SetKind::Uint(8)),
            ("u16", false) => Some(SetKind::Uint(16)),
            ("u32", false) => Some(SetKind::Uint(32)),
            ("u64", false) => Some(SetKind::Uint(64)),
            (k, _) => {
                self.help(
                    "E0103",
                    s.kind.span.to(s.prefix.unwrap_or(s.kind.span)),
                    format!("unknown set kind `{k}{}`", if s.prefix.is_some() { " prefix" } else { "" }),
                    "set kinds are `ipv4 prefix`, `ipv6 prefix`, `ipv4`, `ipv6`, `port`, `mac`, `u8`, `u16`, `u32`, `u64`",
                );
                None
            }
        };
        let mut dynamic = false;
        let mut capacity = None;
        for o in &s.opts {
            match o {
                ast::DeclOpt::Flag(f) if f.name == "dynamic" => dynamic = true,
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    capacity = self
                        .int_value(v, "capacity", u128::from(u32::MAX))
                        .map(|c| (c, v.span));
                }
                other => self.bad_opt(other, "a set", "`capacity N` and `dynamic`"),
            }
        }
        let mut items = Vec::new();
        if let Some(kind) = kind {
            let ty = set_field_type(kind);
            let what = format!("a `{}` set", kind.describe());
            for v in &s.values {
                let Some(item) = self.item(v, ty, &what) else {
                    continue;
                };
                let ok = match (kind, item) {
                    (SetKind::Ipv4Prefix | SetKind::Ipv6Prefix, _) => true,
                    (_, Item::Prefix(..)) => false,
                    (SetKind::Ipv4 | SetKind::Ipv6 | SetKind::Mac, Item::Range(..)) => false,
                    (_, Item::Range(..)) => !dynamic,
                    _ => true,
                };
                if !ok {
                    let help = if matches!(item, Item::Prefix(..)) {
                        format!(
                            "declare the set as `{} prefix` to hold prefixes",
                            kind.describe()
                        )
                    } else if dynamic {
                        "a dynamic set holds single values; list them, or make the set static"
                            .to_string()
                    } else {
                        "list single addresses, or use a prefix set".to_string()
                    };
                    self.help(
                        "E0103",
                        v.span,
                        format!("{what} cannot hold `{item}`"),
                        help,
                    );
                    continue;
                }
                items.push(item);
            }
        }
        let capacity = match capacity {
            Some((c, span)) => {
                if c < items.len() as u128 {
                    self.help(
                        "E0105",
                        span,
                        format!(
                            "capacity {c} is smaller than the {} values listed",
                            items.len()
                        ),
                        format!("use a capacity of at least {}", items.len()),
                    );
                }
                self.capacity_ok(pcx, c, span)
            }
            None if dynamic => self.capacity_ok(
                pcx,
                u128::from(DEFAULT_CAPACITY).max(items.len() as u128),
                s.span,
            ),
            None => self.capacity_ok(pcx, (items.len() as u128).max(1), s.span),
        };
        // Dynamic prefix sets need no LPM trie on the NIC: the compiler keeps them as one hash
        // probe per prefix length, with the lengths in a table the runtime maintains.
        Set {
            name: s.name.name.clone(),
            kind: kind.unwrap_or(SetKind::Uint(64)),
            capacity,
            dynamic,
            items,
            span: s.span,
        }
    }

    fn bad_opt(&mut self, o: &ast::DeclOpt, what: &str, allowed: &str) {
        let (span, name) = match o {
            ast::DeclOpt::Key(_, s) => (*s, "key".to_string()),
            ast::DeclOpt::Valued(n, v) => (n.span.to(v.span), n.name.clone()),
            ast::DeclOpt::Flag(f) => (f.span, f.name.clone()),
        };
        self.help(
            "E0111",
            span,
            format!("`{name}` is not an option of {what}"),
            format!("{what} takes {allowed}"),
        );
    }

    pub(super) fn keyed_opts(
        &mut self,
        name: &ast::Ident,
        opts: &[ast::DeclOpt],
        pcx: &Pcx,
        limiter: bool,
        span: Span,
    ) -> (Vec<Field>, u32, u64, u64) {
        let what = if limiter { "a limiter" } else { "a counter" };
        let allowed = if limiter {
            "`key FIELDS`, `rate N/s`, `burst N` and `capacity N`"
        } else {
            "`key FIELDS` and `capacity N`"
        };
        let mut key = None;
        let mut capacity = DEFAULT_CAPACITY;
        let mut rate = None;
        let mut burst = None;
        let given = |n: &str| {
            opts.iter()
                .any(|o| matches!(o, ast::DeclOpt::Valued(k, _) if k.name == n))
        };
        for o in opts {
            match o {
                ast::DeclOpt::Key(fields, _) => key = self.field_list(fields, pcx),
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    if let Some(c) = self.int_value(v, "capacity", u128::from(u32::MAX)) {
                        capacity = self.capacity_ok(pcx, c, v.span);
                    }
                }
                ast::DeclOpt::Valued(n, v) if limiter && n.name == "rate" => {
                    match self.resolve(v) {
                        Resolved::Rate(r) if (1..=1_000_000_000).contains(&r) => {
                            rate = Some(r as u64)
                        }
                        Resolved::Rate(_) => self.help(
                            "E0105",
                            v.span,
                            "rate must be between 1/s and 1000000000/s",
                            "write a rate such as `1000/s` or `10/ms`",
                        ),
                        Resolved::Invalid => {}
                        _ => self.help(
                            "E0103",
                            v.span,
                            "a rate is written `N/s` or `N/ms`",
                            "write e.g. `rate 1000/s`",
                        ),
                    }
                }
                ast::DeclOpt::Valued(n, v) if limiter && n.name == "burst" => {
                    burst = self.int_value(v, "burst", 1 << 32).map(|b| b as u64);
                    if burst == Some(0) {
                        self.help(
                            "E0105",
                            v.span,
                            "burst must be at least 1",
                            "a bucket of 0 tokens would drop everything; write `burst 1` or more",
                        );
                    }
                }
                other => self.bad_opt(other, what, allowed),
            }
        }
        let key = match key {
            Some(k) => k,
            None => {
                if !opts.iter().any(|o| matches!(o, ast::DeclOpt::Key(..))) {
                    self.help(
                        "E0111",
                        span,
                        format!("{} `{}` needs a `key`", &what[2..], name.name),
                        "add `key FIELD` or `key (FIELD, FIELD)`, e.g. `key ip.src`",
                    );
                }
                vec![]
            }
        };
        if limiter {
            if rate.is_none() && !given("rate") {
                self.help(
                    "E0111",
                    span,
                    format!("limiter `{}` needs a `rate`", name.name),
                    "add e.g. `rate 1000/s`",
                );
            }
            if burst.is_none() && !given("burst") {
                self.help(
                    "E0111",
                    span,
                    format!("limiter `{}` needs a `burst`", name.name),
                    "add e.g. `burst 100`",
                );
            }
        }
        (key, capacity, rate.unwrap_or(1), burst.unwrap_or(1))
    }

    pub(super) fn table_decl(&mut self, t: &ast::TableDecl, pcx: &Pcx) -> Table {
        let key = self.field_list(&t.key, pcx).unwrap_or_default();
        if t.key.is_empty() {
            self.help(
                "E0111",
                t.name.span,
                format!("table `{}` needs a key", t.name.name),
                "write `key (FIELD, ...)`",
            );
        }
        let mut allowed = Vec::new();
        for a in &t.template {
            match a.name.as_str() {
                "pass" | "drop" | "redirect" | "tx" | "abort" => {
                    if let Some(name) = ["pass", "drop", "redirect", "tx", "abort"].into_iter().find(|n| *n == a.name) {
                        allowed.push(name);
                    }
                    self.terminal_on_hook(&a.name, a.span, pcx);
                }
                other => self.help(
                    "E0103",
                    a.span,
                    format!("`{other}` is not an action a table entry can take"),
                    "table entries take a terminal action: `pass`, `drop`, `tx`, `redirect` or `abort`",
                ),
            }
        }
        let mut capacity = None;
        for o in &t.opts {
            match o {
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    capacity = self
                        .int_value(v, "capacity", u128::from(u32::MAX))
                        .map(|c| (c, v.span));
                }
                other => self.bad_opt(other, "a table", "`capacity N`"),
            }
        }
        let mut entries: Vec<(Vec<Scalar>, Terminal)> = Vec::new();
        let mut seen: HashMap<Vec<Scalar>, Span> = HashMap::new();
        for e in &t.entries {
            if e.key.len() != key.len() && !key.is_empty() {
                self.help(
                    "E0103",
                    e.span,
                    format!(
                        "this entry has {} values but the table's key has {} fields",
                        e.key.len(),
                        key.len()
                    ),
                    format!(
                        "write one value per key field: ({})",
                        key.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            }
            let mut vals = Vec::new();
            let mut ok = true;
            for (v, f) in e.key.iter().zip(&key) {
                match self.scalar(v, f.ty(), &format!("`{}`", f.name())) {
                    Some(s) => vals.push(s),
                    None => ok = false,
                }
            }
            let term = self.terminal(&e.action, pcx);
            if term == Some(Terminal::Xsk) {
                self.help(
                    "E0103",
                    e.action.span,
                    "a table entry cannot hand packets to an AF_XDP socket",
                    "`redirect xsk` is a rule's or the default's action: write a rule that \
                     matches these keys with `=> redirect xsk`",
                );
                continue;
            }
            if let Some(term) = &term {
                if !allowed.contains(&term.name()) && !t.template.is_empty() {
                    self.help(
                        "E0103",
                        e.action.span,
                        format!("table `{}` does not allow `{}`", t.name.name, term.name()),
                        format!("its entries may use {}", allowed.join(" | ")),
                    );
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            if let Some(prev) = seen.insert(vals.clone(), e.span) {
                self.diags.push(
                    Diagnostic::error("E0107", e.span, "duplicate table entry")
                        .with_note(prev, "the same key first appears here")
                        .with_help("each key may appear once; remove one of them"),
                );
                continue;
            }
            if let Some(term) = term {
                entries.push((vals, term));
            }
        }
        let capacity = match capacity {
            Some((c, span)) => {
                if c < entries.len() as u128 {
                    self.help(
                        "E0105",
                        span,
                        format!("capacity {c} is smaller than the {} entries", entries.len()),
                        "raise the capacity",
                    );
                }
                self.capacity_ok(pcx, c, span)
            }
            None => self.capacity_ok(pcx, (entries.len() as u128).max(1024), t.span),
        };
        Table {
            name: t.name.name.clone(),
            key,
            allowed,
            capacity,
            entries,
            span: t.span,
        }
    }

    pub(super) fn pool_decl(&mut self, p: &ast::PoolDecl) -> Pool {
        let mut backends = Vec::new();
        let mut family = None;
        for (addr, weight) in &p.backends {
            let Some(a) = self.scalar(addr, FieldType::IpAny, "a pool backend") else {
                continue;
            };
            match family {
                None => family = Some((a.family, addr.span)),
                Some((f, first)) if f != a.family => {
                    self.diags.push(
                        Diagnostic::error("E0104", addr.span, "a pool mixes IPv4 and IPv6 backends")
                            .with_note(first, "the first backend sets the pool's family")
                            .with_help("balance rewrites the destination address in place; use one pool per family"),
                    );
                    continue;
                }
                _ => {}
            }
            let w = match weight {
                Some(w) => match self.int_value(w, "weight", 255) {
                    Some(0) => {
                        self.help(
                            "E0105",
                            w.span,
                            "weight must be at least 1",
                            "remove the backend instead of giving it weight 0",
                        );
                        1
                    }
                    Some(w) => w as u32,
                    None => 1,
                },
                None => 1,
            };
            backends.push((a, w));
        }
        if p.backends.is_empty() {
            self.help(
                "E0111",
                p.name.span,
                format!("pool `{}` has no backends", p.name.name),
                "list at least one backend address (a dynamic pool's first backend also fixes its family)",
            );
        }
        let mut dynamic = false;
        let mut capacity = None;
        for o in &p.opts {
            match o {
                ast::DeclOpt::Flag(f) if f.name == "dynamic" => dynamic = true,
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    capacity = self
                        .int_value(v, "a pool's capacity", u128::from(MAX_POOL_CAPACITY))
                        .map(|c| (c as u32, v.span));
                }
                other => self.bad_opt(other, "a pool", "`dynamic` and `capacity N`"),
            }
        }
        let capacity = match capacity {
            Some((_, span)) if !dynamic => {
                self.help(
                    "E0102",
                    span,
                    "only a dynamic pool takes a capacity",
                    "write `pool NAME: dynamic, capacity N = { ... }`",
                );
                backends.len() as u32
            }
            Some((c, span)) if (c as usize) < backends.len().max(1) => {
                self.help(
                    "E0105",
                    span,
                    format!(
                        "capacity {c} is less than the {} backends declared",
                        backends.len().max(1)
                    ),
                    "give a capacity of at least the declared backends",
                );
                backends.len() as u32
            }
            Some((c, _)) => c,
            None if dynamic => DEFAULT_POOL_CAPACITY.max(backends.len() as u32),
            None => backends.len() as u32,
        };
        Pool {
            name: p.name.name.clone(),
            backends,
            dynamic,
            capacity,
            span: p.span,
        }
    }
}

/// Backends a dynamic pool holds unless its `capacity` says otherwise.
pub const DEFAULT_POOL_CAPACITY: u32 = 64;
/// The most backends a pool holds: Maglev spreads flows evenly while its table (65,537
/// slots) is about a hundred times larger than the pool.
pub const MAX_POOL_CAPACITY: u32 = 1024;

fn set_field_type(kind: SetKind) -> FieldType {
    match kind {
        SetKind::Ipv4Prefix | SetKind::Ipv4 => FieldType::Ipv4,
        SetKind::Ipv6Prefix | SetKind::Ipv6 => FieldType::Ipv6,
        SetKind::Port => FieldType::Uint(16),
        SetKind::Mac => FieldType::Mac,
        SetKind::Uint(b) => FieldType::Uint(b),
    }
}
