//! A rule as boxes: the rule's predicate in disjunctive form, each term a box — per
//! dimension an interval and a mask test over the field's numeric value, plus the headers
//! it needs and the ones it forbids. A rule whose predicate holds anything else (a set, a
//! table, a limiter, payload, a field wider than 32 bits) is not a box rule and stays code.
//!
//! Conditions are false when their header is absent (the IR's rule), so a box constraining a
//! field needs that field's header; a negated condition is true when the header is absent,
//! so `not (f == k)` is two terms: the header absent, or present with `f` outside `k`.

use crate::encoding::header_bit;
use crate::ir::{Cond, Encoding, FieldId, Pred, Program, Rule};
use nfcc_dsl::ast::CmpOp;
use nfcc_dsl::checked::{Field, Header, Terminal};

/// Terms a rule may expand to before it is left as code.
const MAX_TERMS: usize = 16;

/// One dimension's constraint: `lo <= x <= hi` and `x & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bound {
    /// Lower bound.
    pub lo: u32,
    /// Upper bound.
    pub hi: u32,
    /// Bits tested.
    pub mask: u32,
    /// What they must be.
    pub value: u32,
}

impl Bound {
    /// No constraint.
    pub const ANY: Bound = Bound {
        lo: 0,
        hi: u32::MAX,
        mask: 0,
        value: 0,
    };

    /// Whether every value of `lo..=hi` satisfies the bound.
    pub fn covers(&self, lo: u32, hi: u32) -> bool {
        self.mask == 0 && self.lo <= lo && hi <= self.hi
    }

    /// Both bounds at once, or `None` when nothing satisfies both.
    fn meet(self, o: Bound) -> Option<Bound> {
        if (self.value ^ o.value) & self.mask & o.mask != 0 {
            return None;
        }
        let b = Bound {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
            mask: self.mask | o.mask,
            value: self.value | o.value,
        };
        (b.lo <= b.hi).then_some(b)
    }
}

/// A box: the packets a term of a rule's predicate holds for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    /// The rule's index in its run.
    pub rule: usize,
    /// Header bits that must be present.
    pub need: u32,
    /// Header bits that must be absent.
    pub forbid: u32,
    /// Per dimension of the run.
    pub dims: Vec<Bound>,
}

/// One literal of a term.
#[derive(Clone, Copy, Debug)]
enum Lit {
    Need(u32),
    Forbid(u32),
    /// A field's header and a bound on its host value.
    On(Field, Bound),
}

/// Whether a field can be a dimension: at most 32 bits, with a presence bit of its own.
pub fn dimension(f: Field) -> bool {
    f.ty().bits() <= 32 && f != Field::VlanInnerId
}

/// A dimension: one field, or fields of headers no packet has together, read from whichever
/// is present (a box on one of them needs its header, so the others' values never matter).
pub type Dim = Vec<Field>;

/// Fields that may share a dimension: the transport header's first and second words.
fn class(f: Field) -> u8 {
    use Field::*;
    match f {
        TcpSport | UdpSport | L4Sport | IcmpType | Icmpv6Type => 1,
        TcpDport | UdpDport | L4Dport | IcmpCode | Icmpv6Code => 2,
        _ => 0,
    }
}

/// The dimension of `dims` that `f` reads, added (or joined) when there is room.
fn dim_of(dims: &mut Vec<Dim>, f: Field, max: usize) -> Option<usize> {
    if let Some(d) = dims.iter().position(|d| d.contains(&f)) {
        return Some(d);
    }
    if class(f) != 0 {
        if let Some(d) = dims.iter().position(|d| class(d[0]) == class(f)) {
            dims[d].push(f);
            return Some(d);
        }
    }
    if dims.len() == max {
        return None;
    }
    dims.push(vec![f]);
    Some(dims.len() - 1)
}

/// Whether `need` asks for two headers no packet has together (IPv4 and IPv6, TCP and UDP,
/// ...): such a term holds for no packet (`ip.proto == 6` on an IPv4 prefix lowers to an IPv6
/// term too, which only costs the tree room).
fn exclusive(need: u32) -> bool {
    use Header::*;
    [&[Ipv4, Ipv6, Arp][..], &[Tcp, Udp, Icmp, Icmpv6][..]]
        .iter()
        .any(|group| group.iter().filter(|h| need & header_bit(**h) != 0).count() > 1)
}

/// Whether `r` can be decided by a classifier entry: no actions, a verdict the box can carry.
pub fn boxable_terminal(r: &Rule) -> bool {
    r.actions.is_empty()
        && r.table.is_none()
        && r.merged == 0
        && matches!(
            r.terminal,
            Terminal::Pass | Terminal::Drop | Terminal::Tx | Terminal::Abort
        )
}

/// The terms of `r`'s predicate (`None`: not a box rule). Each term is a list of literals.
fn terms(p: &Program, pred: &Pred) -> Option<Vec<Vec<Lit>>> {
    match pred {
        Pred::Const(true) => Some(vec![vec![]]),
        Pred::Const(false) => Some(vec![]),
        Pred::Cond(c) => cond(p, &p.conds[c.index()], false),
        Pred::Not(q) => match &**q {
            Pred::Cond(c) => cond(p, &p.conds[c.index()], true),
            Pred::Const(b) => Some(if *b { vec![] } else { vec![vec![]] }),
            _ => None,
        },
        Pred::Or(v) => {
            let mut out = Vec::new();
            for q in v {
                out.extend(terms(p, q)?);
                if out.len() > MAX_TERMS {
                    return None;
                }
            }
            Some(out)
        }
        Pred::And(v) => {
            let mut out = vec![vec![]];
            for q in v {
                let ts = terms(p, q)?;
                let mut next = Vec::new();
                for a in &out {
                    for b in &ts {
                        next.push([a.clone(), b.clone()].concat());
                    }
                }
                if next.len() > MAX_TERMS {
                    return None;
                }
                out = next;
            }
            Some(out)
        }
    }
}

/// A condition (negated when `neg`) as terms.
fn cond(p: &Program, c: &Cond, neg: bool) -> Option<Vec<Vec<Lit>>> {
    let (field, bounds) = match c {
        Cond::Present(h) if *h == Header::Pkt => {
            return Some(if neg { vec![] } else { vec![vec![]] })
        }
        Cond::Present(h) => {
            let b = header_bit(*h);
            return Some(vec![vec![if neg { Lit::Forbid(b) } else { Lit::Need(b) }]]);
        }
        Cond::Cmp { field, mask, op, k } => (*field, cmp(p, *field, *mask, *op, *k, neg)?),
        Cond::Range { field, lo, hi } => {
            let (lo, hi) = (u32::try_from(*lo).ok()?, u32::try_from(*hi).ok()?);
            let b = |lo, hi| Bound {
                lo,
                hi,
                ..Bound::ANY
            };
            let bounds = if !neg {
                vec![b(lo, hi)]
            } else {
                let mut v = Vec::new();
                if lo > 0 {
                    v.push(b(0, lo - 1));
                }
                if hi < u32::MAX {
                    v.push(b(hi + 1, u32::MAX));
                }
                v
            };
            (*field, bounds)
        }
        _ => return None,
    };
    let f = p.fields[field.index()].field;
    if !dimension(f) {
        return None;
    }
    let h = f.header();
    let hb = if h == Header::Pkt { 0 } else { header_bit(h) };
    let mut out: Vec<Vec<Lit>> = bounds
        .into_iter()
        .map(|b| vec![Lit::Need(hb), Lit::On(f, b)])
        .collect();
    if neg && hb != 0 {
        // A negated condition holds when its header is absent.
        out.push(vec![Lit::Forbid(hb)]);
    }
    Some(out)
}

/// A comparison's bounds on the host value (several: a disjunction).
fn cmp(
    p: &Program,
    field: FieldId,
    mask: Option<u128>,
    op: CmpOp,
    k: u128,
    neg: bool,
) -> Option<Vec<Bound>> {
    let load = &p.fields[field.index()];
    let width = load.field.key_width().min(4);
    let full: u32 = if width >= 4 {
        u32::MAX
    } else {
        (1u32 << (8 * width)) - 1
    };
    // Raw constants are the packet's bytes read little-endian: back to the number.
    let host = |v: u128| -> Option<u32> {
        match load.enc {
            Encoding::Host => u32::try_from(v).ok(),
            Encoding::Raw => {
                let b = v.to_le_bytes();
                let mut be = [0u8; 4];
                be[4 - width..].copy_from_slice(&b[..width]);
                Some(u32::from_be_bytes(be))
            }
        }
    };
    let k = host(k)?;
    let op = if neg {
        match op {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Ge => CmpOp::Lt,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
        }
    } else {
        op
    };
    let iv = |lo: u32, hi: u32| Bound {
        lo,
        hi,
        ..Bound::ANY
    };
    if let Some(m) = mask {
        let m = host(m)? & full;
        if op != CmpOp::Eq {
            // `f & m != k` is a union of many masks: left to code.
            return None;
        }
        if k & !m != 0 {
            return Some(vec![]);
        }
        // A prefix of the field's bits is an interval; other masks are tested per box.
        let prefix = (m | !full).leading_ones() + m.trailing_zeros() >= 32;
        return Some(vec![if prefix {
            iv(k, k | (full & !m))
        } else {
            Bound {
                mask: m,
                value: k,
                ..Bound::ANY
            }
        }]);
    }
    Some(match op {
        CmpOp::Eq => vec![iv(k, k)],
        CmpOp::Ne => {
            let mut v = Vec::new();
            if k > 0 {
                v.push(iv(0, k - 1));
            }
            if k < u32::MAX {
                v.push(iv(k + 1, u32::MAX));
            }
            v
        }
        CmpOp::Lt if k == 0 => vec![],
        CmpOp::Lt => vec![iv(0, k - 1)],
        CmpOp::Le => vec![iv(0, k)],
        CmpOp::Gt if k == u32::MAX => vec![],
        CmpOp::Gt => vec![iv(k + 1, u32::MAX)],
        CmpOp::Ge => vec![iv(k, u32::MAX)],
    })
}

/// The boxes of rule number `index` of a run, over `dims` (fields; new ones are appended when
/// there is room for them). `None`: not a box rule, or it needs more dimensions than remain.
pub fn rects(
    p: &Program,
    r: &Rule,
    index: usize,
    dims: &mut Vec<Dim>,
    max_dims: usize,
) -> Option<Vec<Rect>> {
    if !boxable_terminal(r) {
        return None;
    }
    let ts = terms(p, &r.pred)?;
    let mut out = Vec::new();
    let mut added = dims.clone();
    for t in ts {
        let mut rect = Rect {
            rule: index,
            need: 0,
            forbid: 0,
            dims: Vec::new(),
        };
        rect.dims = vec![Bound::ANY; max_dims];
        let mut empty = false;
        for l in t {
            match l {
                Lit::Need(b) => rect.need |= b,
                Lit::Forbid(b) => rect.forbid |= b,
                Lit::On(f, b) => {
                    let d = dim_of(&mut added, f, max_dims)?;
                    match rect.dims[d].meet(b) {
                        Some(m) => rect.dims[d] = m,
                        None => empty = true,
                    }
                }
            }
        }
        if empty || rect.need & rect.forbid != 0 || exclusive(rect.need) {
            continue;
        }
        out.push(rect);
    }
    *dims = added;
    Some(out)
}
