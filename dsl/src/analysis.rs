//! Rule-set analysis for warnings: predicates that can never hold, and rules shadowed by an
//! earlier rule whose predicate covers theirs.
//!
//! Predicates are brought to disjunctive normal form over *literals*. A conjunction of literals
//! is summarised as a [`Conj`]: the headers it requires, an interval set per (canonical) field,
//! and "opaque" literals (negations, masks, dynamic sets, limiters, payload, tables) that are
//! only compared syntactically. The analysis is sound and incomplete: a warning is only given
//! when it is certainly true; coverage by the union of several earlier rules is not searched.
//!
//! Real rule sets (ClassBench, firewall exports) are conjunctions of field-in-prefix/range/value
//! atoms, so the common case is a `Conj` with a handful of single-interval constraints; the
//! pairwise coverage test is written to reject in a few comparisons so that 10,000 rules are
//! checked well under a second.

use crate::ast::CmpOp;
use crate::checked::*;
use crate::diag::Diagnostic;

/// The largest DNF the analysis expands; bigger predicates are skipped (no warning).
const MAX_DISJUNCTS: usize = 64;

/// Canonical quantities: `tcp.dport`, `udp.dport` and `l4.dport` are the same quantity given
/// their header, as are `ip.src` with an IPv4 value and `ipv4.src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Quantity {
    Field(Field),
    Src4,
    Dst4,
    Src6,
    Dst6,
    Proto,
    Ttl,
    Dscp,
    Sport,
    Dport,
}

/// The quantity a field measures, and the header its value implies, given the value's family.
fn canonical(f: Field, fam: Family) -> (Quantity, Header) {
    use Field::*;
    match (f, fam) {
        (Ipv4Src, _) | (IpSrc, Family::V4) => (Quantity::Src4, Header::Ipv4),
        (Ipv4Dst, _) | (IpDst, Family::V4) => (Quantity::Dst4, Header::Ipv4),
        (Ipv6Src, _) | (IpSrc, _) => (Quantity::Src6, Header::Ipv6),
        (Ipv6Dst, _) | (IpDst, _) => (Quantity::Dst6, Header::Ipv6),
        (Ipv4Proto, _) => (Quantity::Proto, Header::Ipv4),
        (Ipv6Nexthdr, _) => (Quantity::Proto, Header::Ipv6),
        (IpProto, _) => (Quantity::Proto, Header::Ip),
        (Ipv4Ttl, _) => (Quantity::Ttl, Header::Ipv4),
        (Ipv6Hoplimit, _) => (Quantity::Ttl, Header::Ipv6),
        (IpTtl, _) => (Quantity::Ttl, Header::Ip),
        (Ipv4Dscp, _) => (Quantity::Dscp, Header::Ipv4),
        (Ipv6Dscp, _) => (Quantity::Dscp, Header::Ipv6),
        (IpDscp, _) => (Quantity::Dscp, Header::Ip),
        (TcpSport, _) => (Quantity::Sport, Header::Tcp),
        (UdpSport, _) => (Quantity::Sport, Header::Udp),
        (L4Sport, _) => (Quantity::Sport, Header::L4),
        (TcpDport, _) => (Quantity::Dport, Header::Tcp),
        (UdpDport, _) => (Quantity::Dport, Header::Udp),
        (L4Dport, _) => (Quantity::Dport, Header::L4),
        (f, _) => (Quantity::Field(f), f.header()),
    }
}

/// A sorted list of disjoint inclusive intervals.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Intervals(Vec<(u128, u128)>);

impl Intervals {
    fn full(max: u128) -> Self {
        Intervals(vec![(0, max)])
    }

    fn from_items(items: impl IntoIterator<Item = (u128, u128)>) -> Self {
        let mut v: Vec<(u128, u128)> = items.into_iter().collect();
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Intervals(out)
    }

    fn intersect(&self, other: &Intervals) -> Intervals {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Intervals(out)
    }

    /// Whether every point of `self` is in `other`.
    fn subset_of(&self, other: &Intervals) -> bool {
        let mut j = 0;
        for &(lo, hi) in &self.0 {
            while j < other.0.len() && other.0[j].1 < lo {
                j += 1;
            }
            match other.0.get(j) {
                Some(&(olo, ohi)) if olo <= lo && hi <= ohi => {}
                _ => return false,
            }
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A flat, cache-friendly summary of a conjunction used to reject most pairs before the exact
/// coverage test: the hull of the constraint on five common quantities. If A covers B, then A's
/// headers are a subset of B's and, on every hull quantity A constrains, B's hull lies inside
/// A's; the converse need not hold, so a pass is confirmed by [`Conj::covers`].
#[derive(Clone, Copy, Debug, Default)]
struct Hull {
    headers: u16,
    mask: u8,
    lo: [u32; 5],
    hi: [u32; 5],
}

const HULL_QUANTITIES: [Quantity; 5] = [
    Quantity::Src4,
    Quantity::Dst4,
    Quantity::Dport,
    Quantity::Sport,
    Quantity::Proto,
];

impl Hull {
    fn of(c: &Conj) -> Hull {
        let mut h = Hull {
            headers: c.headers,
            ..Hull::default()
        };
        for (k, q) in HULL_QUANTITIES.iter().enumerate() {
            if let Some((_, iv)) = c.fields.iter().find(|(f, _)| f == q) {
                if let (Some(first), Some(last)) = (iv.0.first(), iv.0.last()) {
                    h.mask |= 1 << k;
                    h.lo[k] = first.0 as u32;
                    h.hi[k] = last.1 as u32;
                }
            }
        }
        h
    }

    /// A necessary condition for `self` to cover `other`.
    #[inline]
    fn may_cover(&self, other: &Hull) -> bool {
        if self.headers & !other.headers != 0 || self.mask & !other.mask != 0 {
            return false;
        }
        (0..5).all(|k| {
            self.mask & (1 << k) == 0 || (self.lo[k] <= other.lo[k] && other.hi[k] <= self.hi[k])
        })
    }
}

/// A literal: an atom or its negation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lit {
    atom: Atom,
    neg: bool,
}

/// A conjunction of literals, summarised.
#[derive(Clone, Debug)]
struct Conj {
    /// Required headers, closed under implication.
    headers: u16,
    /// Interval constraints, sorted by quantity.
    fields: Vec<(Quantity, Intervals)>,
    /// Literals compared syntactically.
    opaque: Vec<Lit>,
    /// The conjunction contains `over`, whose truth depends on state: it covers nothing.
    stateful: bool,
    /// Certainly false.
    never: bool,
}

fn closure(mut h: u16) -> u16 {
    loop {
        let before = h;
        let has = |x: Header| h & x.bit() != 0;
        let mut add = 0u16;
        if has(Header::Ipv4) || has(Header::Ipv6) {
            add |= Header::Ip.bit();
        }
        if has(Header::Tcp) || has(Header::Udp) {
            add |= Header::L4.bit() | Header::Ip.bit();
        }
        if has(Header::Icmp) {
            add |= Header::Ipv4.bit();
        }
        if has(Header::Icmpv6) {
            add |= Header::Ipv6.bit();
        }
        // Every header but packet metadata sits inside an Ethernet frame; `pkt.*` fields hold
        // for frames too short to have one.
        if h & !Header::Pkt.bit() != 0 {
            add |= Header::Eth.bit();
        }
        h |= add;
        if h == before {
            return h;
        }
    }
}

fn headers_conflict(h: u16) -> bool {
    let has = |x: Header| h & x.bit() != 0;
    let l3 = [Header::Ipv4, Header::Ipv6, Header::Arp]
        .iter()
        .filter(|x| has(**x))
        .count();
    let l4 = [Header::Tcp, Header::Udp, Header::Icmp, Header::Icmpv6]
        .iter()
        .filter(|x| has(**x))
        .count();
    l3 > 1 || l4 > 1 || (has(Header::Arp) && has(Header::Ip))
}

fn max_of(q: Quantity) -> u128 {
    let bits = match q {
        Quantity::Field(f) => f.ty().bits(),
        Quantity::Src4 | Quantity::Dst4 => 32,
        Quantity::Src6 | Quantity::Dst6 => 128,
        Quantity::Proto | Quantity::Ttl => 8,
        Quantity::Dscp => 6,
        Quantity::Sport | Quantity::Dport => 16,
    };
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

impl Conj {
    fn new() -> Self {
        Conj {
            headers: 0,
            fields: Vec::new(),
            opaque: Vec::new(),
            stateful: false,
            never: false,
        }
    }

    fn constrain(&mut self, q: Quantity, iv: Intervals) {
        match self.fields.iter_mut().find(|(k, _)| *k == q) {
            Some((_, cur)) => *cur = cur.intersect(&iv),
            None => {
                self.fields.push((q, iv));
            }
        }
    }

    fn add(&mut self, lit: &Lit, policy: &Policy) {
        if let Atom::Over(_) = lit.atom {
            self.stateful = true;
        }
        if lit.neg {
            self.opaque.push(lit.clone());
            return;
        }
        match &lit.atom {
            Atom::Present(h) => self.headers |= h.bit(),
            Atom::Cmp {
                field,
                mask: None,
                op,
                value,
            } => {
                let (q, h) = canonical(*field, value.family);
                self.headers |= h.bit();
                let max = max_of(q);
                let v = value.bits;
                let iv = match op {
                    CmpOp::Eq => Intervals(vec![(v, v)]),
                    CmpOp::Ne => Intervals::from_items(
                        [(v > 0).then(|| (0, v - 1)), (v < max).then(|| (v + 1, max))]
                            .into_iter()
                            .flatten(),
                    ),
                    CmpOp::Lt if v == 0 => Intervals(vec![]),
                    CmpOp::Lt => Intervals(vec![(0, v - 1)]),
                    CmpOp::Le => Intervals(vec![(0, v.min(max))]),
                    CmpOp::Gt if v >= max => Intervals(vec![]),
                    CmpOp::Gt => Intervals(vec![(v + 1, max)]),
                    CmpOp::Ge if v > max => Intervals(vec![]),
                    CmpOp::Ge => Intervals(vec![(v, max)]),
                };
                self.constrain(q, iv);
            }
            Atom::InList {
                field,
                mask: None,
                items,
            } => self.items(*field, items),
            Atom::InSet { field, set } if !policy.sets[set.index()].dynamic => {
                self.items(*field, &policy.sets[set.index()].items);
            }
            other => {
                if let Atom::Cmp { field, .. }
                | Atom::InList { field, .. }
                | Atom::InSet { field, .. }
                | Atom::Has { field, .. } = other
                {
                    self.headers |= field.header().bit();
                }
                self.opaque.push(lit.clone());
            }
        }
    }

    fn items(&mut self, field: Field, items: &[Item]) {
        // Items of each family constrain their own canonical quantity; a list that mixes
        // families (only possible on `ip.*`) is a disjunction over families, kept opaque.
        let fams: std::collections::BTreeSet<Family> = items.iter().map(|i| i.family()).collect();
        if fams.len() > 1 {
            self.headers |= field.header().bit();
            self.opaque.push(Lit {
                atom: Atom::InList {
                    field,
                    mask: None,
                    items: items.to_vec(),
                },
                neg: false,
            });
            return;
        }
        let fam = fams.into_iter().next().unwrap_or(Family::Int);
        let (q, h) = canonical(field, fam);
        self.headers |= h.bit();
        self.constrain(q, Intervals::from_items(items.iter().map(|i| i.bounds())));
    }

    /// Completes the summary: header closure, implied protocol numbers, emptiness.
    fn finish(mut self) -> Conj {
        self.headers = closure(self.headers);
        let hs = self.headers;
        let has = |x: Header| hs & x.bit() != 0;
        let proto = if has(Header::Tcp) {
            Some(Intervals(vec![(6, 6)]))
        } else if has(Header::Udp) {
            Some(Intervals(vec![(17, 17)]))
        } else if has(Header::Icmp) {
            Some(Intervals(vec![(1, 1)]))
        } else if has(Header::Icmpv6) {
            Some(Intervals(vec![(58, 58)]))
        } else if has(Header::L4) {
            Some(Intervals(vec![(6, 6), (17, 17)]))
        } else {
            None
        };
        if let Some(p) = proto {
            self.constrain(Quantity::Proto, p);
        }
        let ethertype = if has(Header::Ipv4) {
            Some(0x0800)
        } else if has(Header::Ipv6) {
            Some(0x86dd)
        } else if has(Header::Arp) {
            Some(0x0806)
        } else {
            None
        };
        if let Some(t) = ethertype {
            self.constrain(Quantity::Field(Field::EthType), Intervals(vec![(t, t)]));
        }
        if has(Header::Ip) && !has(Header::Ipv4) && !has(Header::Ipv6) {
            self.constrain(
                Quantity::Field(Field::EthType),
                Intervals(vec![(0x0800, 0x0800), (0x86dd, 0x86dd)]),
            );
        }
        self.never =
            headers_conflict(self.headers) || self.fields.iter().any(|(_, iv)| iv.is_empty());
        // A full-range constraint says nothing beyond the header it implies, except for the
        // inner VLAN id: a single-tagged frame has `vlan` without it.
        self.fields.retain(|(q, iv)| {
            *q == Quantity::Field(Field::VlanInnerId) || iv.0 != Intervals::full(max_of(*q)).0
        });
        self.fields.sort_by_key(|f| f.0);
        self.opaque.sort_by_key(|l| format!("{l:?}"));
        self
    }

    /// Whether every packet satisfying `other` satisfies `self` (sound, not complete).
    fn covers(&self, other: &Conj) -> bool {
        if self.stateful || self.headers & !other.headers != 0 {
            return false;
        }
        let mut j = 0;
        for (q, iv) in &self.fields {
            while j < other.fields.len() && other.fields[j].0 < *q {
                j += 1;
            }
            match other.fields.get(j) {
                Some((oq, oiv)) if oq == q && oiv.subset_of(iv) => {}
                _ => return false,
            }
        }
        self.opaque.iter().all(|l| other.opaque.contains(l))
    }
}

/// DNF of an expression as lists of literals; `None` when too large.
fn dnf(e: &Expr, neg: bool) -> Option<Vec<Vec<Lit>>> {
    match (e, neg) {
        (Expr::Const(b), n) => Some(if *b != n { vec![vec![]] } else { vec![] }),
        (Expr::Atom(a, _), n) => Some(vec![vec![Lit {
            atom: a.clone(),
            neg: n,
        }]]),
        (Expr::Not(inner), n) => dnf(inner, !n),
        (Expr::And(parts), false) | (Expr::Or(parts), true) => {
            let mut acc: Vec<Vec<Lit>> = vec![vec![]];
            for p in parts {
                let d = dnf(p, neg)?;
                let mut next = Vec::new();
                for a in &acc {
                    for b in &d {
                        let mut c = a.clone();
                        c.extend(b.iter().cloned());
                        next.push(c);
                    }
                }
                if next.len() > MAX_DISJUNCTS {
                    return None;
                }
                acc = next;
            }
            Some(acc)
        }
        (Expr::Or(parts), false) | (Expr::And(parts), true) => {
            let mut acc = Vec::new();
            for p in parts {
                acc.extend(dnf(p, neg)?);
                if acc.len() > MAX_DISJUNCTS {
                    return None;
                }
            }
            Some(acc)
        }
    }
}

/// The predicate of a rule as non-false conjunctions, or `None` when not analysable.
fn summarise(e: &Expr, policy: &Policy) -> Option<Vec<Conj>> {
    let d = dnf(e, false)?;
    Some(
        d.iter()
            .map(|lits| {
                let mut c = Conj::new();
                for l in lits {
                    c.add(l, policy);
                }
                c.finish()
            })
            .filter(|c| !c.never)
            .collect(),
    )
}

/// Where a hull's range of one address quantity lies: unconstrained, spanning /8s, inside one
/// /8, or inside one /16. A range can only contain another whose place is its own or below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Place {
    Any,
    Wide,
    Slash8(u32),
    Slash16(u32),
}

impl Place {
    fn of(h: &Hull, k: usize) -> Place {
        let (lo, hi) = (h.lo[k], h.hi[k]);
        if h.mask & (1 << k) == 0 {
            Place::Any
        } else if lo >> 16 == hi >> 16 {
            Place::Slash16(lo >> 16)
        } else if lo >> 24 == hi >> 24 {
            Place::Slash8(lo >> 24)
        } else {
            Place::Wide
        }
    }

    /// The places of the ranges that may contain a range placed here.
    fn containers(self) -> Vec<Place> {
        match self {
            Place::Any => vec![Place::Any],
            Place::Wide => vec![Place::Any, Place::Wide],
            Place::Slash8(x) => vec![Place::Any, Place::Wide, Place::Slash8(x)],
            Place::Slash16(y) => vec![
                Place::Any,
                Place::Wide,
                Place::Slash8(y >> 8),
                Place::Slash16(y),
            ],
        }
    }
}

/// The hulls of every rule's conjunctions by the places of their source and destination
/// ranges, each list in rule order: the shadow check looks at the lists that may hold a cover
/// instead of at every earlier rule (10^5 rules: seconds, not minutes).
struct HullIndex {
    lists: std::collections::HashMap<(Place, Place), Vec<(usize, usize)>>,
}

impl HullIndex {
    fn new(hulls: &[(usize, Hull)]) -> HullIndex {
        let mut lists: std::collections::HashMap<(Place, Place), Vec<(usize, usize)>> =
            std::collections::HashMap::new();
        for (n, (j, h)) in hulls.iter().enumerate() {
            lists
                .entry((Place::of(h, 0), Place::of(h, 1)))
                .or_default()
                .push((*j, n));
        }
        HullIndex { lists }
    }

    /// The lists of (rule, hull) pairs whose hulls may cover `h`.
    fn candidates<'a>(&'a self, h: &Hull) -> impl Iterator<Item = &'a [(usize, usize)]> + 'a {
        let (src, dst) = (Place::of(h, 0), Place::of(h, 1));
        let pairs: Vec<(Place, Place)> = src
            .containers()
            .into_iter()
            .flat_map(|s| dst.containers().into_iter().map(move |d| (s, d)))
            .collect();
        pairs
            .into_iter()
            .filter_map(|k| self.lists.get(&k).map(Vec::as_slice))
    }
}

/// Adds warnings about `policy`'s rules: always-false predicates (W0002) and shadowed rules
/// (W0001).
pub fn warnings(policy: &Policy, diags: &mut Vec<Diagnostic>) {
    let sums: Vec<Option<Vec<Conj>>> = policy
        .rules
        .iter()
        .map(|r| summarise(&r.expr, policy))
        .collect();
    let hulls: Vec<(usize, Hull)> = sums
        .iter()
        .enumerate()
        .filter_map(|(j, s)| s.as_ref().map(|s| (j, s)))
        .flat_map(|(j, s)| {
            s.iter()
                .filter(|c| !c.stateful)
                .map(move |c| (j, Hull::of(c)))
        })
        .collect();
    let index = HullIndex::new(&hulls);
    for (i, rule) in policy.rules.iter().enumerate() {
        let Some(mine) = &sums[i] else { continue };
        if mine.is_empty() {
            diags.push(
                Diagnostic::warning("W0002", rule.span, format!("rule `{}` can never match", rule.name))
                    .with_label("this predicate is always false")
                    .with_help("it requires headers or values that exclude each other (e.g. `tcp and udp`, `tcp.dport == 1 and tcp.dport == 2`); fix or remove it"),
            );
            continue;
        }
        // Candidates are earlier rules one of whose conjunctions may cover our first one,
        // looked up by where their addresses lie (a rule can only be covered by one whose
        // source and destination ranges contain its own): the earliest that covers wins.
        let first = Hull::of(&mine[0]);
        let covered_by = index
            .candidates(&first)
            .filter_map(|list| {
                let end = list.partition_point(|&(j, _)| j < i);
                list[..end]
                    .iter()
                    .filter(|(_, h)| hulls[*h].1.may_cover(&first))
                    .map(|&(j, _)| j)
                    .find(|&j| {
                        let Some(earlier) = &sums[j] else {
                            return false;
                        };
                        mine.iter().all(|c| earlier.iter().any(|e| e.covers(c)))
                    })
            })
            .min();
        if let Some(j) = covered_by {
            let by = &policy.rules[j];
            diags.push(
                Diagnostic::warning("W0001", rule.span, format!("rule `{}` is shadowed by rule `{}`", rule.name, by.name))
                    .with_label("no packet reaches this rule")
                    .with_note(by.span, "every packet this rule matches is matched here first")
                    .with_help("rules are evaluated in order and the first match wins; move this rule above the other, narrow it, or remove it"),
            );
        }
    }
}
