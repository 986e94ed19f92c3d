//! The pointer-provenance analysis: where each register (and each pointer spilled to the
//! frame) points before each instruction, and the control flow it runs over (each function's
//! entry, its reachable instructions, its blocks).
//!
//! It is what lets the translation skip or shorten checks: a stack access at a known in-frame
//! offset needs none, a map-value access one compare, a likely packet access the packet's
//! bounds first. Only the frame facts stand without a run-time check; for map values and the
//! packet the check in native code confirms the guess (see `access`).

use super::JitError;
use crate::maps::MapShape;
use crate::mem::FRAME;
use crate::vm::Ins;
use std::collections::{BTreeMap, BTreeSet};

/// Where a register points, as far as the analysis can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prov {
    /// Nothing known: a number, or a pointer of unknown origin.
    Unknown,
    /// This function's frame end (r10 at entry) plus a constant.
    Stack(i64),
    /// The context's start plus a constant.
    Ctx(i64),
    /// Read from the context or derived from such a value: probably the packet (a hint for
    /// which check to try first, never trusted).
    Pkt,
    /// The handle of map `m` (from `ld_imm64`).
    MapPtr(u32),
    /// Zero, or the start of one value of map `m`, plus a constant.
    Value(u32, i64),
}

/// What the analysis knows before an instruction: each register's provenance, and that of
/// pointers spilled to 8-byte slots of this function's frame (sorted by offset; slots not
/// listed are unknown), as the kernel's verifier tracks spills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Abs {
    pub(super) regs: [Prov; 11],
    pub(super) slots: Vec<(i64, Prov)>,
}

impl Abs {
    fn slot(&self, at: i64) -> Prov {
        self.slots
            .iter()
            .find(|(o, _)| *o == at)
            .map_or(Prov::Unknown, |(_, p)| *p)
    }

    /// Forgets slots overlapping `[at, at + size)`.
    fn clobber(&mut self, at: i64, size: i64) {
        self.slots.retain(|(o, _)| *o + 8 <= at || *o >= at + size);
    }

    /// A store of `size` bytes through a pointer of provenance `base` plus `off`, of a value
    /// of provenance `value` (a register) or none (an immediate, an atomic).
    fn store(&mut self, base: Prov, off: i64, size: i64, value: Option<Prov>) {
        match base {
            Prov::Stack(o) => {
                let at = o + off;
                self.clobber(at, size);
                if let Some(v) = value.filter(|v| *v != Prov::Unknown) {
                    if size == 8 && at % 8 == 0 && at >= -(FRAME as i64) && at + 8 <= 0 {
                        let i = self.slots.partition_point(|(o, _)| *o < at);
                        self.slots.insert(i, (at, v));
                    }
                }
            }
            // Neither can reach the stack: they point at the context or a map value (or are
            // null), at most `TRACK_LIMIT` away.
            Prov::Ctx(_) | Prov::Value(..) => {}
            _ => self.slots.clear(),
        }
    }

    /// Keeps what `self` and `other` agree on; whether anything changed.
    fn join(&mut self, other: &Abs) -> bool {
        let mut changed = false;
        for (o, x) in self.regs.iter_mut().zip(other.regs) {
            if *o != x && *o != Prov::Unknown {
                *o = Prov::Unknown;
                changed = true;
            }
        }
        let before = self.slots.len();
        self.slots.retain(|s| other.slots.contains(s));
        changed || self.slots.len() != before
    }
}

/// Offsets further than this from a known base are not tracked.
const TRACK_LIMIT: i64 = 1 << 20;

pub(super) fn moved(p: Prov, by: i64) -> Prov {
    let shift = |o: i64| {
        o.checked_add(by)
            .filter(|n| n.abs() < TRACK_LIMIT)
            .ok_or(())
    };
    match p {
        Prov::Stack(o) => shift(o).map_or(Prov::Unknown, Prov::Stack),
        Prov::Ctx(o) => shift(o).map_or(Prov::Unknown, Prov::Ctx),
        Prov::Value(m, o) => shift(o).map_or(Prov::Unknown, |o| Prov::Value(m, o)),
        Prov::Pkt => Prov::Pkt,
        _ => Prov::Unknown,
    }
}

/// Helpers that write no memory a program passes them (so spilled pointers survive them):
/// map lookup, update and delete, the clocks, random numbers, the CPU id, redirects.
const PURE_HELPERS: [i32; 10] = [1, 2, 3, 5, 7, 8, 23, 51, 125, 160];

/// Applies instruction `pc` to what is known before it.
pub(super) fn transfer(insns: &[Ins], pc: usize, a: &mut Abs, shapes: &[MapShape]) {
    let i = insns[pc];
    let (d, s) = (usize::from(i.dst), usize::from(i.src));
    if d > 10 || s > 10 {
        return;
    }
    let class = i.code & 7;
    let op = i.code & 0xf0;
    let reg_src = i.code & 0x08 != 0;
    match class {
        0x07 => {
            a.regs[d] = match (op, reg_src) {
                (0xb0, true) if i.off == 0 => a.regs[s],
                (0x00, false) => moved(a.regs[d], i64::from(i.imm)),
                (0x10, false) => moved(a.regs[d], -i64::from(i.imm)),
                // Packet pointer plus or minus a number: still a packet pointer (a hint).
                (0x00, true) if a.regs[d] == Prov::Pkt || a.regs[s] == Prov::Pkt => Prov::Pkt,
                (0x10, true) if a.regs[d] == Prov::Pkt => Prov::Pkt,
                _ => Prov::Unknown,
            }
        }
        0x04 => a.regs[d] = Prov::Unknown,
        0x00 if i.code == 0x18 => {
            a.regs[d] = match i.src {
                1 => Prov::MapPtr(i.imm as u32),
                2 => insns.get(pc + 1).map_or(Prov::Unknown, |n| {
                    Prov::Value(i.imm as u32, i64::from(n.imm as u32))
                }),
                _ => Prov::Unknown,
            }
        }
        0x01 => {
            let size = access_size(i.code);
            a.regs[d] = match a.regs[s] {
                Prov::Ctx(_) => Prov::Pkt,
                Prov::Stack(o) if size == 8 && i.code & 0xe0 == 0x60 => {
                    a.slot(o + i64::from(i.off))
                }
                _ => Prov::Unknown,
            }
        }
        0x03 if i.code & 0xe0 == 0xc0 => {
            let base = a.regs[d];
            a.regs[s] = Prov::Unknown;
            a.regs[0] = Prov::Unknown;
            a.store(base, i64::from(i.off), access_size(i.code), None);
        }
        0x02 => a.store(a.regs[d], i64::from(i.off), access_size(i.code), None),
        0x03 => {
            let (base, v) = (a.regs[d], a.regs[s]);
            a.store(base, i64::from(i.off), access_size(i.code), Some(v));
        }
        0x05 if op == 0x80 => {
            let lookup = match a.regs[1] {
                Prov::MapPtr(m) if i.src == 0 && i.imm == 1 => shapes
                    .get(m as usize)
                    .filter(|sh| sh.kind.has_values())
                    .map(|_| Prov::Value(m, 0)),
                _ => None,
            };
            a.regs[0] = lookup.unwrap_or(Prov::Unknown);
            a.regs[1..6].fill(Prov::Unknown);
            // A callee or a helper writing through its arguments may overwrite spills.
            if i.src != 0 || !PURE_HELPERS.contains(&i.imm) {
                a.slots.clear();
            }
        }
        _ => {}
    }
}

fn width(i: Ins) -> usize {
    if i.code == 0x18 {
        2
    } else {
        1
    }
}

/// Where the jump at `pc` goes (`gotol`, the 32-bit `ja`, takes its distance from `imm`).
pub(super) fn jump_target(i: Ins, pc: usize) -> i64 {
    let off = if i.code & 7 == 0x06 && i.code & 0xf0 == 0x00 {
        i64::from(i.imm)
    } else {
        i64::from(i.off)
    };
    pc as i64 + 1 + off
}

/// Where control goes after the instruction at `pc` (a call returns to the next one), and
/// whether it falls off the program's end.
pub(super) fn successors(insns: &[Ins], pc: usize) -> Result<(Vec<usize>, bool), JitError> {
    let i = insns[pc];
    let class = i.code & 7;
    let next = pc + width(i);
    let falls = |v: Vec<usize>| -> (Vec<usize>, bool) {
        if next >= insns.len() {
            (v, true)
        } else {
            let mut v = v;
            v.push(next);
            (v, false)
        }
    };
    if class != 0x05 && class != 0x06 {
        return Ok(falls(Vec::new()));
    }
    let op = i.code & 0xf0;
    match op {
        0x90 => Ok((Vec::new(), false)),
        0x80 => Ok(falls(Vec::new())),
        _ => {
            // A jump out of the program faults when taken, as in the interpreter: it has no
            // successor there.
            let t = jump_target(i, pc);
            let target: Vec<usize> = if t < 0 || t as usize >= insns.len() {
                Vec::new()
            } else {
                vec![t as usize]
            };
            if op == 0x00 {
                Ok((target, false))
            } else {
                let (mut v, f) = falls(Vec::new());
                v.extend(target);
                Ok((v, f))
            }
        }
    }
}

/// The entry of every function: the program's start and each bpf-to-bpf call's target.
pub(super) fn function_entries(insns: &[Ins]) -> Result<BTreeSet<usize>, JitError> {
    let mut entries = BTreeSet::from([0usize]);
    let mut pc = 0;
    while pc < insns.len() {
        let i = insns[pc];
        if i.code == 0x85 && i.src == 1 {
            // A call out of the program faults when made (see `translate`).
            let t = pc as i64 + 1 + i64::from(i.imm);
            if t >= 0 && (t as usize) < insns.len() {
                entries.insert(t as usize);
            }
        }
        pc += width(i);
    }
    Ok(entries)
}

/// One function: its reachable instructions, and its blocks' leaders with what is known on
/// entry to each (per-instruction knowledge is recomputed while translating).
pub(super) struct Func {
    pub(super) entry: usize,
    pub(super) reach: BTreeSet<usize>,
    pub(super) leaders: BTreeMap<usize, Abs>,
}

/// Whether the instruction ends a block: a jump or an exit (calls return).
fn ends_block(i: Ins) -> bool {
    let class = i.code & 7;
    (class == 0x05 || class == 0x06) && i.code & 0xf0 != 0x80
}

/// Finds what `entry`'s function reaches and runs the provenance analysis over its blocks to
/// a fixpoint (knowledge only shrinks at joins, so it ends).
/// A bare program's entry gets a memory block in r1 (the packet region) rather than the context.
pub(super) fn analyse(
    insns: &[Ins],
    entry: usize,
    shapes: &[MapShape],
    bare: bool,
) -> Result<Func, JitError> {
    let mut reach = BTreeSet::new();
    let mut leaders_set = BTreeSet::from([entry]);
    let mut todo = vec![entry];
    while let Some(pc) = todo.pop() {
        if !reach.insert(pc) {
            continue;
        }
        let (succ, _) = successors(insns, pc)?;
        if ends_block(insns[pc]) {
            leaders_set.extend(succ.iter().copied());
        }
        todo.extend(succ);
    }
    let mut start = Abs {
        regs: [Prov::Unknown; 11],
        slots: Vec::new(),
    };
    start.regs[10] = Prov::Stack(0);
    if entry == 0 {
        start.regs[1] = if bare { Prov::Pkt } else { Prov::Ctx(0) };
    }
    let mut leaders = BTreeMap::from([(entry, start)]);
    let mut work = vec![entry];
    while let Some(l) = work.pop() {
        let mut a = leaders[&l].clone();
        let mut pc = l;
        let succ = loop {
            transfer(insns, pc, &mut a, shapes);
            let (succ, _) = successors(insns, pc)?;
            if ends_block(insns[pc]) {
                break succ;
            }
            match succ.first() {
                Some(&n) if !leaders_set.contains(&n) => pc = n,
                _ => break succ,
            }
        };
        for n in succ {
            match leaders.get_mut(&n) {
                None => {
                    leaders.insert(n, a.clone());
                    work.push(n);
                }
                Some(old) => {
                    if old.join(&a) {
                        work.push(n);
                    }
                }
            }
        }
    }
    Ok(Func {
        entry,
        reach,
        leaders,
    })
}

/// Every load and store made through a pointer into the context, by instruction index: the
/// context offset it reaches (the pointer's constant plus the instruction's offset). A
/// context pointer is followed through moves, additions of constants and 8-byte spills, as
/// the kernel's verifier follows `PTR_TO_CTX`; a function other than the program's entry
/// starts knowing nothing of its arguments.
pub(crate) fn context_accesses(insns: &[Ins]) -> Result<BTreeMap<usize, i64>, JitError> {
    let mut found = BTreeMap::new();
    for entry in function_entries(insns)? {
        let f = analyse(insns, entry, &[], false)?;
        for (&leader, known) in &f.leaders {
            let mut a = known.clone();
            let mut pc = leader;
            loop {
                let i = insns[pc];
                let (d, s) = (usize::from(i.dst), usize::from(i.src));
                let base = match i.code & 7 {
                    0x01 if s <= 10 => Some(a.regs[s]),
                    0x02 | 0x03 if d <= 10 => Some(a.regs[d]),
                    _ => None,
                };
                if let Some(Prov::Ctx(o)) = base {
                    found.insert(pc, o + i64::from(i.off));
                }
                transfer(insns, pc, &mut a, &[]);
                if ends_block(i) {
                    break;
                }
                match successors(insns, pc)?.0.first() {
                    Some(&n) if !f.leaders.contains_key(&n) => pc = n,
                    _ => break,
                }
            }
        }
    }
    Ok(found)
}

/// The bytes a load or store of this opcode moves.
pub(super) fn access_size(code: u8) -> i64 {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}
