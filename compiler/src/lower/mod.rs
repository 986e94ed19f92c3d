//! Lowering: a checked policy to the IR. Fields are canonicalised (`ip.src` with an IPv4 value
//! is `ipv4.src`), deduplicated so each is loaded once, and given the encoding their uses need;
//! constants are converted to that encoding here, at compile time; sets become maps (hash for
//! exact values; for prefixes and ranges a hash probed once per prefix length or an LPM trie,
//! chosen by cost — see `Lower::set_map`) unless they are static and tiny, in which case they
//! are inlined as comparisons.
//!
//! Constructs the code generator cannot emit yet are collected as diagnostics with the span of
//! the construct, so `nfcc compile` names every one of them instead of failing on the first.

use crate::ir::{
    self, Action, Cond, CondId, Encoding, FieldId, FieldLoad, KeyPart, Lengths, MapId, MapPurpose,
    Pred,
};
use crate::prefix::{self, Prefix};
use nfcc_dsl::ast::{CmpOp, Span};
use nfcc_dsl::checked::{self as ck, Atom, Expr, Family, Field, Header, Item, SetKind, Target};
use nfcc_dsl::diag::Diagnostic;
use std::collections::HashMap;

// Defined where code generation can share them without depending on lowering; re-exported at
// their historical paths.
pub use crate::balance::{fnv1a, maglev, MAGLEV_SLOTS};

mod balance;
pub use crate::encoding::{raw_capable, raw_width, to_raw};

/// The IR name of the per-rule statistics map.
pub const STATS_MAP: &str = nfcc_bpf::layout::STATS_MAP;

/// The IR name of a counter's map.
pub fn counter_map(counter: &str) -> String {
    nfcc_bpf::layout::counter_map(counter)
}

/// Static sets of at most this many entries are compared inline instead of through a map.
pub const INLINE_SET_MAX: usize = 4;

/// Lowers one checked policy for `target`.
pub fn lower(policy: &ck::Policy, target: Target) -> Result<ir::Program, Vec<Diagnostic>> {
    lower_with(policy, target, false)
}

/// Lowers one policy; with `virtual_clock`, limiters read the time from a map the test
/// harness sets instead of the kernel's clock.
pub fn lower_with(
    policy: &ck::Policy,
    target: Target,
    virtual_clock: bool,
) -> Result<ir::Program, Vec<Diagnostic>> {
    let mut cx = Lower {
        policy,
        target,
        fields: Vec::new(),
        field_ids: HashMap::new(),
        maps: Vec::new(),
        set_maps: HashMap::new(),
        conds: Vec::new(),
        cond_ids: HashMap::new(),
        errors: Vec::new(),
        keyed_maps: HashMap::new(),
        redirects: Vec::new(),
        xsk: false,
        table_maps: HashMap::new(),
        table_slots: Vec::new(),
        samples: None,
        pool_maps: HashMap::new(),
    };
    let stats = MapId(0);
    cx.maps.push(ir::Map {
        name: STATS_MAP.into(),
        purpose: MapPurpose::RuleStats,
        key_size: 4,
        value_size: 16,
        max_entries: policy.rules.len() as u32 + 1,
        init: Vec::new(),
    });
    let mut rules = Vec::new();
    for (i, r) in policy.rules.iter().enumerate() {
        let pred = cx.expr(&r.expr);
        let actions = cx.actions(&r.actions, r.span);
        let terminal = match &r.terminal {
            Some(t) => cx.terminal(t, r.span),
            // The table's hit decides; the IR keeps a placeholder terminal.
            None => ck::Terminal::Pass,
        };
        let table = match (&r.terminal, r.table) {
            (None, Some(t)) => {
                cx.table_map(t, r.span);
                cx.table_slots
                    .iter()
                    .position(|x| *x == t)
                    .map(|i| i as u32)
            }
            _ => None,
        };
        rules.push(ir::Rule {
            name: r.name.clone(),
            pred,
            actions,
            terminal,
            table,
            stats_index: i as u32,
            span: r.span,
            merged: 0,
        });
    }
    let default_actions = cx.actions(&policy.default.actions, policy.default.span);
    let default_terminal = cx.terminal(&policy.default.terminal, policy.default.span);
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let redirect_map = (!cx.redirects.is_empty()).then(|| {
        let id = MapId(cx.maps.len() as u32);
        cx.maps.push(ir::Map {
            name: nfcc_bpf::layout::REDIRECT_MAP.into(),
            purpose: MapPurpose::RedirectTargets,
            key_size: 4,
            value_size: 4,
            max_entries: cx.redirects.len() as u32,
            init: Vec::new(),
        });
        id
    });
    let xsk_map = cx.xsk.then(|| {
        let id = MapId(cx.maps.len() as u32);
        cx.maps.push(ir::Map {
            name: nfcc_bpf::layout::XSK_MAP.into(),
            purpose: MapPurpose::XskSockets,
            key_size: 4,
            value_size: 4,
            max_entries: nfcc_bpf::layout::XSK_QUEUES,
            init: Vec::new(),
        });
        id
    });
    let clock = (virtual_clock && !policy.limiters.is_empty()).then(|| {
        let id = MapId(cx.maps.len() as u32);
        cx.maps.push(ir::Map {
            name: nfcc_bpf::layout::CLOCK_MAP.into(),
            purpose: MapPurpose::Clock,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            init: Vec::new(),
        });
        id
    });
    Ok(ir::Program {
        clock,
        name: policy.name.clone(),
        hook: policy.hook,
        target,
        fields: cx.fields,
        maps: cx.maps,
        conds: cx.conds,
        rules,
        default: (default_terminal, policy.rules.len() as u32),
        default_actions,
        redirects: cx.redirects,
        redirect_map,
        xsk_map,
        classifiers: Vec::new(),
        updatable: None,
        stats,
    })
}

struct Lower<'a> {
    policy: &'a ck::Policy,
    target: Target,
    fields: Vec<FieldLoad>,
    field_ids: HashMap<FieldLoad, FieldId>,
    maps: Vec<ir::Map>,
    set_maps: HashMap<(ck::SetId, usize), (MapId, Probe)>,
    conds: Vec<Cond>,
    cond_ids: HashMap<Cond, CondId>,
    errors: Vec<Diagnostic>,
    /// Maps of counters and limiters, by their declaration.
    keyed_maps: HashMap<(bool, u32), MapId>,
    /// Redirect target names.
    redirects: Vec<String>,
    /// Whether a terminal is `redirect xsk`.
    xsk: bool,
    /// Maps of tables, by declaration.
    table_maps: HashMap<ck::TableId, MapId>,
    /// Tables in slot order.
    table_slots: Vec<ck::TableId>,
    /// The sample ring, once a `sample` needs it.
    samples: Option<MapId>,
    /// Maglev tables, by pool.
    /// Each pool's maps, made on first use: (Maglev table, dynamic pool's backends and selector).
    pool_maps: HashMap<ck::PoolId, (MapId, Option<ir::DynPool>)>,
}

/// The family-specific field a value of family `fam` on `f` refers to.
fn canonical(f: Field, fam: Family) -> Field {
    match (f, fam) {
        (Field::IpSrc, Family::V4) => Field::Ipv4Src,
        (Field::IpDst, Family::V4) => Field::Ipv4Dst,
        (Field::IpSrc, Family::V6) => Field::Ipv6Src,
        (Field::IpDst, Family::V6) => Field::Ipv6Dst,
        _ => f,
    }
}

impl Lower<'_> {
    fn unsupported(&mut self, span: Span, what: &str) {
        self.errors.push(
            Diagnostic::error(
                crate::codes::NOT_BUILT,
                span,
                format!("the compiler cannot generate code for {what} yet"),
            )
            .with_label("not supported by the code generator yet")
            .with_help(
                "this part of the language is checked and runs on `nfcc test --engine eval`; \
                     eBPF code for it is still being built (issue 3)",
            ),
        );
    }

    fn terminal(&mut self, t: &ck::Terminal, _span: Span) -> ck::Terminal {
        match t {
            ck::Terminal::Redirect(name) if !self.redirects.contains(name) => {
                self.redirects.push(name.clone());
            }
            ck::Terminal::Xsk => self.xsk = true,
            _ => {}
        }
        t.clone()
    }

    /// The key parts of a counter or limiter key, loading the fields they need.
    fn key(&mut self, fields: &[Field]) -> Vec<KeyPart> {
        fields
            .iter()
            .map(|&f| match f.ty() {
                ck::FieldType::IpAny => {
                    let (v4f, v6f) = if f == Field::IpSrc {
                        (Field::Ipv4Src, Field::Ipv6Src)
                    } else {
                        (Field::Ipv4Dst, Field::Ipv6Dst)
                    };
                    KeyPart::Ip {
                        v4: self.field(v4f, Encoding::Raw),
                        v6: self.field(v6f, Encoding::Raw),
                    }
                }
                _ if raw_capable(f) => {
                    KeyPart::Raw(self.field(f, Encoding::Raw), f.key_width() as u32)
                }
                _ => KeyPart::Host(self.field(f, Encoding::Host), f.key_width() as u32),
            })
            .collect()
    }

    /// Key parts of a table key: like a counter key, but `ip.*` carries its family.
    fn table_key(&mut self, fields: &[Field]) -> Vec<KeyPart> {
        self.key(fields)
            .into_iter()
            .map(|k| match k {
                KeyPart::Ip { v4, v6 } => KeyPart::IpTagged { v4, v6 },
                other => other,
            })
            .collect()
    }

    /// The map of a table, with its entries encoded as the code generator builds keys.
    fn table_map(&mut self, t: ck::TableId, span: Span) -> Option<MapId> {
        if let Some(id) = self.table_maps.get(&t) {
            return Some(*id);
        }
        let table = &self.policy.tables[t.index()];
        let mut init = Vec::new();
        for (key, action) in &table.entries {
            let mut k = Vec::new();
            for (f, v) in table.key.iter().zip(key) {
                if f.ty() == ck::FieldType::IpAny {
                    k.push(if v.family == Family::V4 { 4 } else { 6 });
                    let mut addr = [0u8; 16];
                    if v.family == Family::V4 {
                        addr[..4].copy_from_slice(&(v.bits as u32).to_be_bytes());
                    } else {
                        addr = v.bits.to_be_bytes();
                    }
                    k.extend_from_slice(&addr);
                } else {
                    k.extend(v.key_bytes(f.key_width()));
                }
            }
            let verdict = crate::verdict::verdict(self.policy.hook, self.target, action) as u32;
            // The entry's verdict, then (for a redirect) its target's index in the
            // redirect-targets map.
            let mut value = verdict.to_le_bytes().to_vec();
            let target = match self.terminal(action, span) {
                ck::Terminal::Redirect(name) => {
                    self.redirects.iter().position(|n| *n == name).unwrap_or(0) as u32
                }
                _ => 0,
            };
            value.extend_from_slice(&target.to_le_bytes());
            init.push((k, value));
        }
        let key_size = table
            .key
            .iter()
            .map(|f| {
                if f.ty() == ck::FieldType::IpAny {
                    17
                } else {
                    f.key_width() as u32
                }
            })
            .sum::<u32>()
            .max(1);
        let id = MapId(self.maps.len() as u32);
        self.maps.push(ir::Map {
            name: format!("tbl_{}", table.name),
            purpose: MapPurpose::Table,
            key_size,
            value_size: 8,
            max_entries: table.capacity.max(1),
            init,
        });
        self.table_maps.insert(t, id);
        self.table_slots.push(t);
        Some(id)
    }

    fn key_width(fields: &[Field]) -> u32 {
        fields.iter().map(|f| f.key_width() as u32).sum()
    }

    /// The map of counter (`limiter == false`) or limiter `index`.
    fn keyed_map(&mut self, limiter: bool, index: u32) -> MapId {
        if let Some(id) = self.keyed_maps.get(&(limiter, index)) {
            return *id;
        }
        let (name, key, capacity, purpose) = if limiter {
            let l = &self.policy.limiters[index as usize];
            (
                format!("lim_{}", l.name),
                &l.key,
                l.capacity,
                MapPurpose::Limiter,
            )
        } else {
            let c = &self.policy.counters[index as usize];
            (
                counter_map(&c.name),
                &c.key,
                c.capacity,
                MapPurpose::Counter,
            )
        };
        let id = MapId(self.maps.len() as u32);
        self.maps.push(ir::Map {
            name,
            purpose,
            key_size: Self::key_width(key).max(1),
            value_size: 16,
            max_entries: capacity.max(1),
            init: Vec::new(),
        });
        self.keyed_maps.insert((limiter, index), id);
        id
    }

    fn actions(&mut self, actions: &[ck::Action], span: Span) -> Vec<Action> {
        let mut out = Vec::new();
        for a in actions {
            match a {
                ck::Action::Count(id) => {
                    let fields = self.policy.counters[id.index()].key.clone();
                    let map = self.keyed_map(false, id.0);
                    let key = self.key(&fields);
                    out.push(Action::Count { map, key });
                }
                ck::Action::Mark(m) => out.push(Action::Mark(*m)),
                ck::Action::SetField(f, v) => out.push(Action::Rewrite {
                    field: canonical(*f, v.family),
                    value: v.bits,
                }),
                ck::Action::DecTtl => out.push(Action::DecTtl),
                ck::Action::Sample(n) => {
                    let map = *self.samples.get_or_insert_with(|| {
                        let id = MapId(self.maps.len() as u32);
                        self.maps.push(ir::Map {
                            name: nfcc_bpf::layout::SAMPLES_MAP.into(),
                            purpose: MapPurpose::Samples,
                            key_size: 0,
                            value_size: 0,
                            // 256 KiB: a power-of-two number of pages, as ring buffers need.
                            max_entries: 1 << 18,
                            init: Vec::new(),
                        });
                        id
                    });
                    out.push(Action::Sample { n: *n, map });
                }
                ck::Action::Balance {
                    pool,
                    by,
                    via_fib,
                    encap,
                    sticky,
                } => {
                    let b = balance::Spec {
                        pool: *pool,
                        by,
                        via_fib: *via_fib,
                        encap: *encap,
                        sticky: *sticky,
                    };
                    if let Some(a) = self.balance(&b, span) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    fn field(&mut self, field: Field, enc: Encoding) -> FieldId {
        let load = FieldLoad { field, enc };
        if let Some(id) = self.field_ids.get(&load) {
            return *id;
        }
        let id = FieldId(self.fields.len() as u32);
        self.fields.push(load.clone());
        self.field_ids.insert(load, id);
        id
    }

    fn cond(&mut self, c: Cond) -> Pred {
        if let Some(id) = self.cond_ids.get(&c) {
            return Pred::Cond(*id);
        }
        let id = CondId(self.conds.len() as u32);
        self.conds.push(c.clone());
        self.cond_ids.insert(c, id);
        Pred::Cond(id)
    }

    /// Whether evaluating `p` changes state (limiters take tokens, tables record hits).
    fn has_effects(&self, p: &Pred) -> bool {
        match p {
            Pred::Const(_) => false,
            Pred::Cond(c) => matches!(
                self.conds[c.index()],
                Cond::Over { .. } | Cond::Match { .. }
            ),
            Pred::Not(q) => self.has_effects(q),
            Pred::And(v) | Pred::Or(v) => v.iter().any(|q| self.has_effects(q)),
        }
    }

    /// Lowers a predicate, folding constants (an always-false atom, an empty list) so that no
    /// code is generated that can never run: the verifier rejects unreachable instructions.
    fn expr(&mut self, e: &Expr) -> Pred {
        match e {
            Expr::Const(b) => Pred::Const(*b),
            Expr::Atom(a, span) => self.atom(a, *span),
            Expr::Not(inner) => match self.expr(inner) {
                Pred::Const(b) => Pred::Const(!b),
                p => Pred::Not(Box::new(p)),
            },
            Expr::And(parts) | Expr::Or(parts) => {
                let and = matches!(e, Expr::And(_));
                let mut kept = Vec::new();
                for p in parts {
                    match self.expr(p) {
                        // `and` drops trues and is false with a false; `or` the other way.
                        Pred::Const(b) if b == and => {}
                        // Limiters and tables met before the deciding constant still run
                        // (they take tokens, record hits), so they and the constant stay.
                        Pred::Const(b) if kept.iter().any(|q| self.has_effects(q)) => {
                            kept.push(Pred::Const(b));
                            break;
                        }
                        Pred::Const(b) => return Pred::Const(b),
                        q => kept.push(q),
                    }
                }
                match kept.len() {
                    0 => Pred::Const(and),
                    1 => kept.pop().unwrap_or(Pred::Const(and)),
                    _ if and => Pred::And(kept),
                    _ => Pred::Or(kept),
                }
            }
        }
    }

    /// `field OP value` for a single value, in the encoding the operator needs.
    fn compare(
        &mut self,
        f: Field,
        mask: Option<u128>,
        op: CmpOp,
        value: u128,
        span: Span,
    ) -> Pred {
        let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        if raw_capable(f) && !ordered {
            let w = raw_width(f);
            let field = self.field(f, Encoding::Raw);
            return self.cond(Cond::Cmp {
                field,
                mask: mask.map(|m| to_raw(m, w)),
                op,
                k: to_raw(value, w),
            });
        }
        if f.ty().bits() > 64 || f.ty() == ck::FieldType::Mac && ordered {
            // No 128-bit (or raw MAC) ordering in eBPF: the ordered side becomes a range,
            // and the range the prefixes that cover it.
            let bits = f.ty().bits();
            let max = if bits >= 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let range = match (op, mask) {
                (CmpOp::Lt, None) => value.checked_sub(1).map(|v| (0, v)),
                (CmpOp::Le, None) => Some((0, value)),
                (CmpOp::Gt, None) => value.checked_add(1).filter(|v| *v <= max).map(|v| (v, max)),
                (CmpOp::Ge, None) => Some((value, max)),
                _ => {
                    self.unsupported(
                        span,
                        "masked ordering comparisons of IPv6 and MAC addresses",
                    );
                    return Pred::Const(false);
                }
            };
            return match range {
                Some((lo, hi)) => self.range_as_prefixes(f, lo, hi),
                None => Pred::Const(false),
            };
        }
        let field = self.field(f, Encoding::Host);
        self.cond(Cond::Cmp {
            field,
            mask,
            op,
            k: value,
        })
    }

    /// `lo <= f <= hi` as the prefixes covering the range (at most two per bit), each a
    /// masked equality on the raw field: for values eBPF cannot order (IPv6 addresses).
    fn range_as_prefixes(&mut self, f: Field, lo: u128, hi: u128) -> Pred {
        let width = raw_width(f);
        let mut alts: Vec<Pred> = prefix::range_to_prefixes(lo, hi, f.ty().bits())
            .into_iter()
            .map(|p| {
                let field = self.field(f, Encoding::Raw);
                if p.len == 0 {
                    return self.cond(Cond::Present(f.header()));
                }
                let mask = prefix::host_mask(p.len, width);
                self.cond(Cond::Cmp {
                    field,
                    mask: Some(to_raw(mask, width)),
                    op: CmpOp::Eq,
                    k: to_raw(p.bits & mask, width),
                })
            })
            .collect();
        match alts.len() {
            0 => Pred::Const(false),
            1 => alts.pop().unwrap_or(Pred::Const(false)),
            _ => Pred::Or(alts),
        }
    }

    fn atom(&mut self, a: &Atom, span: Span) -> Pred {
        match a {
            Atom::Present(h) => self.cond(Cond::Present(*h)),
            Atom::Cmp {
                field,
                mask,
                op,
                value,
            } => {
                if matches!(
                    field.ty(),
                    ck::FieldType::Ipv4 | ck::FieldType::Ipv6 | ck::FieldType::IpAny
                ) && !family_fits(*field, value.family)
                {
                    return Pred::Const(false);
                }
                let f = canonical(*field, value.family);
                self.compare(f, *mask, *op, value.bits, span)
            }
            Atom::InList { field, mask, items } => self.items(*field, *mask, items, span),
            Atom::InSet { field, set } => {
                let s = &self.policy.sets[set.index()];
                let fam = match s.kind {
                    SetKind::Ipv4Prefix | SetKind::Ipv4 => Family::V4,
                    SetKind::Ipv6Prefix | SetKind::Ipv6 => Family::V6,
                    SetKind::Mac => Family::Mac,
                    _ => Family::Int,
                };
                let f = canonical(*field, fam);
                let ranges = s.items.iter().any(|i| matches!(i, Item::Range(..)));
                // Small static sets are cheaper as comparisons; so are static sets with ranges
                // on fields that are not kept as packet bytes (a map key needs the bytes).
                if !s.dynamic && (s.items.len() <= INLINE_SET_MAX || (ranges && !raw_capable(f))) {
                    let items = s.items.clone();
                    return self.items(*field, None, &items, span);
                }
                if ranges && !raw_capable(f) {
                    self.unsupported(span, "dynamic sets with ranges on computed fields");
                    return Pred::Const(false);
                }
                let (map, probe) = self.set_map(*set, f);
                if raw_capable(f) {
                    let field = self.field(f, Encoding::Raw);
                    match probe {
                        Probe::Map => self.cond(Cond::InMap { field, map }),
                        Probe::Hash(lengths) => self.cond(Cond::InPrefixHash {
                            field,
                            map,
                            lengths,
                        }),
                    }
                } else {
                    // Computed fields and packet metadata are kept in host order; their key is
                    // assembled big-endian, as the map's entries are.
                    let key = self.key(&[f]);
                    self.cond(Cond::InMapKey { key, map })
                }
            }
            Atom::Has { field, bits } => {
                let field_id = self.field(*field, Encoding::Host);
                self.cond(Cond::Cmp {
                    field: field_id,
                    mask: Some(*bits),
                    op: CmpOp::Eq,
                    k: *bits,
                })
            }
            Atom::Over(id) => {
                let l = &self.policy.limiters[id.index()];
                let (fields, rate, burst) = (l.key.clone(), l.rate_per_sec, l.burst);
                let map = self.keyed_map(true, id.0);
                let key = self.key(&fields);
                self.cond(Cond::Over {
                    map,
                    key,
                    rate,
                    burst,
                })
            }
            Atom::Match(t) => {
                let Some(map) = self.table_map(*t, span) else {
                    return Pred::Const(false);
                };
                let slot = self.table_slots.iter().position(|x| x == t).unwrap_or(0) as u32;
                let fields = self.policy.tables[t.index()].key.clone();
                let key = self.table_key(&fields);
                self.cond(Cond::Match { map, key, slot })
            }
            Atom::Payload {
                start,
                end,
                bytes,
                negate,
            } => self.cond(Cond::Payload {
                start: *start,
                end: *end,
                bytes: bytes.clone(),
                negate: *negate,
            }),
        }
    }

    fn items(&mut self, field: Field, mask: Option<u128>, items: &[Item], span: Span) -> Pred {
        let mut alts = Vec::new();
        for item in items {
            if matches!(
                field.ty(),
                ck::FieldType::Ipv4 | ck::FieldType::Ipv6 | ck::FieldType::IpAny
            ) && !family_fits(field, item.family())
            {
                continue;
            }
            let f = canonical(field, item.family());
            let p = match (*item, mask) {
                (Item::Value(v), m) => self.compare(f, m, CmpOp::Eq, v.bits, span),
                (Item::Prefix(net, len), None) => {
                    let width = raw_width(f);
                    let bits = width as u32 * 8;
                    let host_mask = if len == 0 {
                        0
                    } else {
                        (u128::MAX >> (128 - bits)) & !((1u128 << (bits - u32::from(len))) - 1)
                    };
                    if len == 0 {
                        // `/0` only asks for the header.
                        self.cond(Cond::Present(f.header()))
                    } else {
                        self.compare(f, Some(host_mask), CmpOp::Eq, net.bits, span)
                    }
                }
                (Item::Range(lo, hi), None) => {
                    if f.ty().bits() > 64 {
                        self.range_as_prefixes(f, lo.bits, hi.bits)
                    } else {
                        let field = self.field(f, Encoding::Host);
                        self.cond(Cond::Range {
                            field,
                            lo: lo.bits,
                            hi: hi.bits,
                        })
                    }
                }
                (Item::Range(lo, hi), Some(m)) if f.ty().bits() <= 64 => Pred::And(vec![
                    self.compare(f, Some(m), CmpOp::Ge, lo.bits, span),
                    self.compare(f, Some(m), CmpOp::Le, hi.bits, span),
                ]),
                _ => {
                    self.unsupported(span, "masked fields compared with prefixes or wide ranges");
                    Pred::Const(false)
                }
            };
            alts.push(p);
        }
        match alts.len() {
            0 => Pred::Const(false),
            1 => alts.pop().unwrap_or(Pred::Const(false)),
            _ => Pred::Or(alts),
        }
    }

    /// The map (or maps) holding a set for lookups by field `f`, and how to probe it.
    ///
    /// Exact values go to a hash. Prefixes — and ranges, as the prefixes covering them — go
    /// to a prefix hash probed once per length (see [`crate::prefix`]) or to an LPM trie,
    /// whichever is cheaper: the hash when a few probes suffice after expanding short
    /// prefixes within an entry budget, the trie otherwise. The NIC has no trie, so there it
    /// is always the hash. A dynamic set's lengths are read from its length table at run
    /// time, so `nfcc set` can add a prefix of any length.
    fn set_map(&mut self, set: ck::SetId, f: Field) -> (MapId, Probe) {
        // One map per set and key width: a `u32` set tested against a 16-bit and a 32-bit field
        // needs keys of both widths (a dynamic set's updates then go to each of its maps).
        let width = raw_width(f);
        if let Some(x) = self.set_maps.get(&(set, width)) {
            return x.clone();
        }
        let s = &self.policy.sets[set.index()];
        let taken = self.set_maps.keys().any(|(s2, _)| *s2 == set);
        let name = if taken {
            format!("set_{}_w{width}", s.name)
        } else {
            format!("set_{}", s.name)
        };
        let bits = width as u32 * 8;
        let prefix_kind = matches!(s.kind, SetKind::Ipv4Prefix | SetKind::Ipv6Prefix);
        let ranges = s.items.iter().any(|i| matches!(i, Item::Range(..)));
        let result = if !prefix_kind && !ranges {
            let init = s
                .items
                .iter()
                .filter_map(|i| match i {
                    // A value wider than the field can never equal it.
                    Item::Value(v) if fits(v.bits, bits) => {
                        Some((v.bits.to_be_bytes()[16 - width..].to_vec(), vec![1u8]))
                    }
                    _ => None,
                })
                .collect();
            let id = self.push_map(
                &name,
                MapPurpose::ExactSet,
                width as u32,
                1,
                s.capacity.max(1),
                init,
            );
            (id, Probe::Map)
        } else {
            let mut prefixes = Vec::new();
            for item in &s.items {
                match item {
                    Item::Value(v) if fits(v.bits, bits) => prefixes.push(Prefix {
                        len: bits as u8,
                        bits: v.bits,
                    }),
                    Item::Prefix(v, l) if fits(v.bits, bits) && u32::from(*l) <= bits => prefixes
                        .push(Prefix {
                            len: *l,
                            bits: v.bits,
                        }),
                    Item::Value(_) | Item::Prefix(..) => {}
                    Item::Range(lo, hi) => {
                        prefixes.extend(prefix::range_to_prefixes(lo.bits, hi.bits, bits))
                    }
                }
            }
            prefixes.sort_unstable();
            prefixes.dedup();
            let mut counts: Vec<(u8, u64)> = Vec::new();
            for p in &prefixes {
                match counts.last_mut() {
                    Some((l, n)) if *l == p.len => *n += 1,
                    _ => counts.push((p.len, 1)),
                }
            }
            let nic = self.target == Target::Nfp;
            let n = prefixes.len() as u64;
            let entry_cap = if nic {
                nfcc_dsl::check::NFP_MAX_CAPACITY
            } else {
                1 << 18
            };
            let key_size = prefix::key_size(width);
            if s.dynamic {
                let lengths: Vec<u8> = counts.iter().map(|c| c.0).collect();
                // The probe loop is unrolled over every possible length, so wide values stay
                // in a trie on the host.
                if nic || (width <= 4 && lengths.len() <= prefix::MAX_HASH_PROBES) {
                    let init = prefixes
                        .iter()
                        .map(|p| (prefix::key(*p, width), vec![1u8]))
                        .collect();
                    let cap = s.capacity.max(1).max(prefixes.len() as u32);
                    let id = self.push_map(&name, MapPurpose::PrefixHash, key_size, 1, cap, init);
                    // The NIC's map entries are small: there the table keeps a slot per entry.
                    let lengths = if nic {
                        let table = self.push_map(
                            &format!("{name}_lengths"),
                            MapPurpose::PrefixLengths,
                            4,
                            prefix::table_stride(width) as u32,
                            prefix::table_slots(width) as u32 + 1,
                            prefix::length_entries(&lengths, width),
                        );
                        Lengths::Entries(table)
                    } else {
                        let table = self.push_map(
                            &format!("{name}_lengths"),
                            MapPurpose::PrefixLengths,
                            4,
                            prefix::table_size(width),
                            1,
                            vec![(vec![0; 4], prefix::length_table(&lengths, width))],
                        );
                        Lengths::Table(table)
                    };
                    (id, Probe::Hash(lengths))
                } else {
                    let id = self.lpm(&name, &prefixes, width, s.capacity);
                    (id, Probe::Map)
                }
            } else {
                let (lengths, entries) = prefix::plan(&counts, entry_cap.max(n));
                if nic || lengths.len() <= prefix::MAX_HASH_PROBES {
                    let expanded = prefix::expand(&prefixes, &lengths, width);
                    debug_assert!(expanded.len() as u64 <= entries);
                    let init: Vec<_> = expanded
                        .iter()
                        .map(|p| (prefix::key(*p, width), vec![1u8]))
                        .collect();
                    let cap = (init.len() as u32).max(1);
                    let id = self.push_map(&name, MapPurpose::PrefixHash, key_size, 1, cap, init);
                    (id, Probe::Hash(Lengths::Static(lengths)))
                } else {
                    let id = self.lpm(&name, &prefixes, width, s.capacity);
                    (id, Probe::Map)
                }
            }
        };
        self.set_maps.insert((set, width), result.clone());
        result
    }

    /// An LPM trie of `prefixes`.
    fn lpm(&mut self, name: &str, prefixes: &[Prefix], width: usize, capacity: u32) -> MapId {
        let init: Vec<_> = prefixes
            .iter()
            .map(|p| (prefix::key(*p, width), vec![1u8]))
            .collect();
        let cap = capacity.max(1).max(init.len() as u32);
        self.push_map(
            name,
            MapPurpose::PrefixSet,
            prefix::key_size(width),
            1,
            cap,
            init,
        )
    }

    fn push_map(
        &mut self,
        name: &str,
        purpose: MapPurpose,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        init: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> MapId {
        let id = MapId(self.maps.len() as u32);
        self.maps.push(ir::Map {
            name: name.to_string(),
            purpose,
            key_size,
            value_size,
            max_entries,
            init,
        });
        id
    }
}

/// Whether `v` fits in `bits` bits.
fn fits(v: u128, bits: u32) -> bool {
    bits >= 128 || v >> bits == 0
}

/// How a set's map is probed.
#[derive(Clone, Debug)]
enum Probe {
    /// One lookup of the field's bytes (hash) or full-length key (LPM trie).
    Map,
    /// A prefix hash, once per length.
    Hash(Lengths),
}

fn family_fits(f: Field, fam: Family) -> bool {
    match f.ty() {
        ck::FieldType::Ipv4 => fam == Family::V4,
        ck::FieldType::Ipv6 => fam == Family::V6,
        ck::FieldType::IpAny => matches!(fam, Family::V4 | Family::V6),
        _ => true,
    }
}

/// The header whose presence a loaded field needs.
pub fn presence(f: Field) -> Header {
    f.header()
}
