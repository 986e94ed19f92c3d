//! Predicates: short-circuit branches over the packet vector, or — for shallow predicates of
//! plain comparisons — a branch-free 0/1 value, which keeps the verifier's pending states to
//! one per rule. The conditions answered by a single-field set, a table or a limiter are in
//! `lookups`.

use super::asm::Label;
use super::{bit, Gen, INNER_VLAN_BIT, PAYLOAD_BIT};
use crate::ir::{Cond, FieldId, KeyPart, Pred};
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Reg, Size, R0, R1, R2, R3, R4, R5, R6, R8, R9};
use nfcc_dsl::ast::CmpOp;
use nfcc_dsl::checked::{Field, Header, Hook};

impl Gen<'_> {
    /// The nesting depth of a predicate whose conditions can all be computed without branches
    /// (presence, comparisons and ranges of values below 2^63 or equality of any width), or
    /// `None` when it needs branches (map lookups, limiters, payload).
    pub(super) fn pure_depth(&self, p: &Pred) -> Option<usize> {
        match p {
            Pred::Const(_) => Some(0),
            Pred::Not(q) => self.pure_depth(q),
            Pred::And(v) | Pred::Or(v) => v
                .iter()
                .map(|q| self.pure_depth(q).map(|d| d + 1))
                .try_fold(0, |m, d| d.map(|d| m.max(d))),
            Pred::Cond(c) => match &self.p.conds[c.index()] {
                Cond::Present(_) => Some(0),
                Cond::Cmp { op, k, mask, field } => {
                    let wide = self.p.fields[field.index()].field.ty().bits() > 64;
                    let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                    let small = *k < (1 << 62) && mask.is_none_or(|m| m < (1 << 62));
                    (!ordered || (!wide && small)).then_some(0)
                }
                Cond::Range { hi, .. } => (*hi < (1 << 62)).then_some(0),
                _ => None,
            },
        }
    }

    /// The registers holding branch-free results by nesting level; the next one is scratch.
    const LEVELS: [Reg; 5] = [R1, R2, R3, R4, R5];

    /// `d = (d != 0)`, using r0 as scratch.
    fn normalize_bool(&mut self, d: Reg) {
        self.a.emit(Insn::mov64_reg(R0, d));
        self.a.emit(Insn::alu64_imm(Alu::Neg, R0, 0));
        self.a.emit(Insn::alu64_reg(Alu::Or, d, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
    }

    /// Computes `p` as 0 or 1 into `LEVELS[level]` without branches (see `pure_depth`).
    pub(super) fn eval_pure(&mut self, p: &Pred, level: usize) {
        let d = Self::LEVELS[level];
        match p {
            Pred::Const(b) => self.a.emit(Insn::mov64_imm(d, i32::from(*b))),
            Pred::Not(q) => {
                self.eval_pure(q, level);
                self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
            }
            Pred::And(v) | Pred::Or(v) => {
                let and = matches!(p, Pred::And(_));
                self.a.emit(Insn::mov64_imm(d, i32::from(and)));
                for q in v {
                    self.eval_pure(q, level + 1);
                    let op = if and { Alu::And } else { Alu::Or };
                    self.a.emit(Insn::alu64_reg(op, d, Self::LEVELS[level + 1]));
                }
            }
            Pred::Cond(c) => {
                let c = self.p.conds[c.index()].clone();
                let t = Self::LEVELS[level + 1];
                let hdr = match &c {
                    Cond::Present(h) => {
                        self.presence_bool(d, bit(*h));
                        return;
                    }
                    Cond::Cmp { field, .. } | Cond::Range { field, .. } => {
                        let f = self.p.fields[field.index()].field;
                        if f == Field::VlanInnerId {
                            INNER_VLAN_BIT
                        } else {
                            bit(f.header())
                        }
                    }
                    _ => 0,
                };
                match c {
                    Cond::Cmp { field, mask, op, k } => {
                        let slot = self.lay.slots[field.index()];
                        let wide = self.p.fields[field.index()].field.ty().bits() > 64;
                        match op {
                            CmpOp::Eq | CmpOp::Ne => {
                                // x = ((v & m) ^ k) per half, or-ed: zero exactly when equal.
                                let halves = if wide { 2 } else { 1 };
                                for h in 0..halves {
                                    let reg = if h == 0 { d } else { R0 };
                                    self.a.emit(Insn::ldx(Size::DW, reg, R9, slot + 8 * h));
                                    if let Some(m) = mask {
                                        self.load_const(t, (m >> (64 * h)) as u64);
                                        self.a.emit(Insn::alu64_reg(Alu::And, reg, t));
                                    }
                                    self.load_const(t, (k >> (64 * h)) as u64);
                                    self.a.emit(Insn::alu64_reg(Alu::Xor, reg, t));
                                    if h == 1 {
                                        self.a.emit(Insn::alu64_reg(Alu::Or, d, R0));
                                    }
                                }
                                self.normalize_bool(d);
                                if op == CmpOp::Eq {
                                    self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                                }
                            }
                            _ => {
                                // Values and constants are below 2^62, so the sign bit of a
                                // difference is the comparison.
                                self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                                if let Some(m) = mask {
                                    self.load_const(t, m as u64);
                                    self.a.emit(Insn::alu64_reg(Alu::And, R0, t));
                                }
                                // v < k, v >= k, v <= k as v < k + 1, v > k as v >= k + 1.
                                let (k2, negate) = match op {
                                    CmpOp::Ge => (k, true),
                                    CmpOp::Le => (k + 1, false),
                                    CmpOp::Gt => (k + 1, true),
                                    _ => (k, false),
                                };
                                // d = (v - k2) >> 63: 1 when v < k2.
                                self.a.emit(Insn::mov64_reg(d, R0));
                                self.load_const(t, k2 as u64);
                                self.a.emit(Insn::alu64_reg(Alu::Sub, d, t));
                                self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
                                if negate {
                                    self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                                }
                            }
                        }
                    }
                    Cond::Range { field, lo, hi } => {
                        let slot = self.lay.slots[field.index()];
                        // Outside when v < lo or hi < v; each is a sign bit of a difference.
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                        self.a.emit(Insn::mov64_reg(d, R0));
                        self.load_const(t, lo as u64);
                        self.a.emit(Insn::alu64_reg(Alu::Sub, d, t));
                        self.load_const(t, hi as u64);
                        self.a.emit(Insn::alu64_reg(Alu::Sub, t, R0));
                        self.a.emit(Insn::alu64_reg(Alu::Or, d, t));
                        self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
                        self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                    }
                    _ => {}
                }
                if hdr != bit(Header::Pkt) && hdr != 0 {
                    self.presence_bool(t, hdr);
                    self.a.emit(Insn::alu64_reg(Alu::And, d, t));
                }
            }
        }
    }

    /// `d = 1` when any of `bits` is set in the presence word (r8), else 0.
    fn presence_bool(&mut self, d: Reg, bits: i32) {
        self.a.emit(Insn::mov64_reg(d, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, d, bits));
        self.normalize_bool(d);
    }

    /// Emits code that jumps to `target` when `p` evaluates to `when`, else falls through.
    pub(super) fn pred(&mut self, p: &Pred, when: bool, target: Label) {
        match p {
            Pred::Const(b) => {
                if *b == when {
                    self.a.jump(Insn::ja(0), target);
                }
            }
            Pred::Not(q) => self.pred(q, !when, target),
            Pred::And(parts) | Pred::Or(parts) => {
                let is_and = matches!(p, Pred::And(_));
                // `and` jumps out on the first false part; `or` on the first true one.
                if is_and != when {
                    for q in parts {
                        self.pred(q, when, target);
                        if self.a.dead_here() {
                            break;
                        }
                    }
                } else {
                    let skip = self.a.label();
                    if let Some((last, init)) = parts.split_last() {
                        let mut dead = false;
                        for q in init {
                            self.pred(q, !when, skip);
                            if self.a.dead_here() {
                                dead = true;
                                break;
                            }
                        }
                        if !dead {
                            self.pred(last, when, target);
                        }
                    } else if when == is_and {
                        // An empty `and` is true, an empty `or` false.
                        self.a.jump(Insn::ja(0), target);
                    }
                    self.a.bind(skip);
                }
            }
            Pred::Cond(c) => {
                let cond = self.p.conds[c.index()].clone();
                if when {
                    let skip = self.a.label();
                    self.cond(&cond, skip, target);
                    self.a.bind(skip);
                } else {
                    let holds = self.a.label();
                    self.cond(&cond, target, holds);
                    self.a.bind(holds);
                }
            }
        }
    }

    /// Emits a condition test: jumps to `f` when false, to `t` when true (one of them is the
    /// fall-through label bound right after).
    fn cond(&mut self, c: &Cond, f: Label, t: Label) {
        match c {
            Cond::Payload {
                start,
                end,
                bytes,
                negate,
            } => {
                return self.payload(*start, *end, bytes, *negate, f, t);
            }
            Cond::Over {
                map,
                key,
                rate,
                burst,
            } => return self.over(*map, key, *rate, *burst, f, t),
            Cond::Match { map, key, slot } => return self.table_match(*map, key, *slot, f, t),
            Cond::Classify { .. } => return self.classify(c, f, t),
            Cond::InMapKey { key, map } => {
                for part in key {
                    if let KeyPart::Raw(fid, _)
                    | KeyPart::Host(fid, _)
                    | KeyPart::Masked(fid, _, _) = part
                    {
                        self.require(*fid, f);
                    }
                }
                self.build_key(key);
                self.a.emit2(Insn::ld_map(R1, map.0));
                self.a.emit(Insn::mov64_reg(R2, R9));
                self.a
                    .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
                self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                self.a.jump(Insn::ja(0), t);
                return;
            }
            _ => {}
        }
        let hdr = match c {
            Cond::Present(h) => *h,
            Cond::Payload { .. }
            | Cond::Over { .. }
            | Cond::Match { .. }
            | Cond::Classify { .. }
            | Cond::InMapKey { .. } => Header::Pkt,
            Cond::Cmp { field, .. }
            | Cond::Range { field, .. }
            | Cond::InMap { field, .. }
            | Cond::InPrefixHash { field, .. } => self.p.fields[field.index()].field.header(),
        };
        let inner = matches!(c, Cond::Cmp { field, .. } | Cond::Range { field, .. } | Cond::InMap { field, .. }
            if self.p.fields[field.index()].field == Field::VlanInnerId);
        if hdr != Header::Pkt {
            // Presence: (r8 & bit) == 0 means absent, and the condition is false.
            self.a.emit(Insn::mov64_reg(R0, R8));
            self.a.emit(Insn::alu64_imm(
                Alu::And,
                R0,
                if inner { INNER_VLAN_BIT } else { bit(hdr) },
            ));
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        }
        match c {
            Cond::Present(_) => self.a.jump(Insn::ja(0), t),
            Cond::Cmp { field, mask, op, k } => self.cmp(*field, *mask, *op, *k, f, t),
            Cond::Range { field, lo, hi } => {
                let slot = self.lay.slots[field.index()];
                self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                self.load_const(R1, *lo as u64);
                self.a.jump(Insn::jmp_reg(Jmp::Lt, R0, R1, 0), f);
                self.load_const(R1, *hi as u64);
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R1, 0), f);
                self.a.jump(Insn::ja(0), t);
            }
            Cond::InMap { field, map } => self.in_map(*field, *map, f, t),
            Cond::InPrefixHash {
                field,
                map,
                lengths,
            } => self.in_prefix_hash(*field, *map, lengths, f, t),
            Cond::Payload { .. }
            | Cond::Over { .. }
            | Cond::Match { .. }
            | Cond::Classify { .. }
            | Cond::InMapKey { .. } => {}
        }
    }

    fn cmp(&mut self, field: FieldId, mask: Option<u128>, op: CmpOp, k: u128, f: Label, t: Label) {
        let slot = self.lay.slots[field.index()];
        let wide = self.p.fields[field.index()].field.ty().bits() > 64;
        let halves: Vec<(i16, u64, Option<u64>)> = if wide {
            vec![
                (slot, k as u64, mask.map(|m| m as u64)),
                (slot + 8, (k >> 64) as u64, mask.map(|m| (m >> 64) as u64)),
            ]
        } else {
            vec![(slot, k as u64, mask.map(|m| m as u64))]
        };
        // Equality of every half: `==` holds when all are equal, `!=` when one differs.
        let (all_eq_goes, differ_goes) = match op {
            CmpOp::Eq => (t, f),
            CmpOp::Ne => (f, t),
            _ => {
                let (s, kk, m) = halves[0];
                self.a.emit(Insn::ldx(Size::DW, R0, R9, s));
                if let Some(m) = m {
                    self.load_const(R1, m);
                    self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
                }
                self.load_const(R1, kk);
                let j = match op {
                    CmpOp::Lt => Jmp::Lt,
                    CmpOp::Le => Jmp::Le,
                    CmpOp::Gt => Jmp::Gt,
                    _ => Jmp::Ge,
                };
                self.a.jump(Insn::jmp_reg(j, R0, R1, 0), t);
                self.a.jump(Insn::ja(0), f);
                return;
            }
        };
        for (s, kk, m) in halves {
            self.a.emit(Insn::ldx(Size::DW, R0, R9, s));
            if let Some(m) = m {
                self.load_const(R1, m);
                self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
            }
            self.load_const(R1, kk);
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R0, R1, 0), differ_goes);
        }
        self.a.jump(Insn::ja(0), all_eq_goes);
    }

    /// `payload[start..end] ==/!= bytes`.
    fn payload(&mut self, start: u16, end: u16, bytes: &[u8], negate: bool, f: Label, t: Label) {
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, PAYLOAD_BIT));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a
            .emit(Insn::ldx(Size::DW, R3, R9, self.lay.payload_off));
        // Payload offsets are below 16 KiB (six 2 KiB extension headers at most); the mask
        // tells the verifier so.
        self.a.emit(Insn::alu64_imm(Alu::And, R3, 0x3fff));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R3));
        self.a.emit(Insn::mov64_reg(R3, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, i32::from(end)));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R3, R2, 0), f);
        let (eq, differ) = if negate { (f, t) } else { (t, f) };
        let mut at = 0usize;
        while at < bytes.len() {
            let left = bytes.len() - at;
            let (size, n) = match left {
                8.. => (Size::DW, 8),
                4..=7 => (Size::W, 4),
                2..=3 => (Size::H, 2),
                _ => (Size::B, 1),
            };
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(&bytes[at..at + n]);
            self.a
                .emit(Insn::ldx(size, R0, R1, (usize::from(start) + at) as i16));
            self.load_const(R4, u64::from_le_bytes(le));
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R0, R4, 0), differ);
            at += n;
        }
        self.a.jump(Insn::ja(0), eq);
    }
}
