//! A JIT from eBPF to native code on cranelift-codegen: our own translation, over the same
//! checked memory model as the interpreter.
//!
//! Registers become Cranelift variables; arithmetic, jumps and exits become native code. Memory
//! accesses are checked in native code by the interpreter's rules: first a forward analysis
//! works out where each register points — this function's frame plus a constant, the
//! context plus a constant, zero or one value of a known map plus a constant, probably the
//! packet — so that a stack access at a known in-frame offset needs no run-time check, a
//! map-value access one compare, and the rest the region tests in native code. What those do
//! not cover (context stores, faults) goes through the interpreter's machine ([`crate::vm`])
//! by a call, so the JIT checks each access exactly as the interpreter does and the two can be
//! held to each other. Lookups in array maps are inline, other map lookups call straight into
//! the map, other helpers and atomics go through the machine. Each bpf-to-bpf function becomes
//! a native function (512-byte frames, the interpreter's depth limit, each frame cleared on
//! entry). A fault sets a flag in the run state; the code tests it after each call and returns
//! at once. Backward jumps spend fuel, so a loop cannot run forever.
//!
//! The code is specialised to the maps' shapes (kind, sizes, capacity), which never change
//! once an object is loaded; running it over other maps is refused.
//!
//! For looking inside: `NFCC_JIT_DISASM=1` prints each compiled function's machine code to
//! stderr, and `NFCC_JIT_PERFMAP=1` appends a symbol per eBPF instruction (`ebpf_<index>`) to
//! `/tmp/perf-<pid>.map`, so that `perf report` attributes time in JIT code to instructions.
//!
//! The only `unsafe` outside the runtime lives here: calling the generated code, and the
//! `extern "C"` entry points it calls back, which receive the run state as a raw pointer.
#![allow(unsafe_code)]
// Reason: JIT code is entered through a function pointer and calls back into Rust with a raw
// pointer to the run state; both sides are confined to this module.

use crate::maps::{EmuMap, MapKind};
use crate::vm::{Ins, Vm, BUDGET, CTX_BASE, FRAME, MAP_VALUES, MAX_FRAMES, STACK_BASE};
use crate::EmuError;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64, I8};
use cranelift_codegen::ir::{AbiParam, Block, FuncRef, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Why a program could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// An instruction the JIT does not translate.
    #[error("instruction {insn}: {what}")]
    Unsupported {
        /// Its index.
        insn: usize,
        /// What it is.
        what: String,
    },
    /// Cranelift refused the function.
    #[error("cranelift: {0}")]
    Codegen(String),
}

/// What the JIT knows of a map when it compiles: a map's shape never changes once loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    /// Its kind.
    pub kind: MapKind,
    /// Key bytes.
    pub key_size: usize,
    /// Value bytes.
    pub value_size: usize,
    /// Capacity.
    pub max_entries: usize,
}

impl MapShape {
    /// The shape of `m`.
    pub fn of(m: &EmuMap) -> MapShape {
        MapShape {
            kind: m.kind,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
        }
    }

    /// Whether lookups hash a key of 4, 8 or 16 bytes, which JIT code reads and passes by
    /// value.
    fn small_key_lookup(&self) -> bool {
        matches!(
            self.kind,
            MapKind::Hash | MapKind::PercpuHash | MapKind::LruHash | MapKind::LruPercpuHash
        ) && matches!(self.key_size, 4 | 8 | 16)
    }

    /// Whether this is an LPM trie of IPv4 or IPv6 keys, which JIT code reads and passes by
    /// value.
    fn lpm_key_lookup(&self) -> bool {
        self.kind == MapKind::LpmTrie && matches!(self.key_size, 8 | 20)
    }

    /// Whether lookups are an index into the value slab, which JIT code does inline.
    fn inline_lookup(&self) -> bool {
        matches!(self.kind, MapKind::Array | MapKind::PercpuArray) && self.key_size == 4
    }
}

/// The run state JIT code receives: a fault flag it tests, and the machine.
#[repr(C)]
struct State<'v, 'a, 'm> {
    /// Non-zero once something failed; `error` says what.
    failed: u64,
    /// Host address of the stack buffer, virtual `STACK_BASE` (offset 8).
    stack: u64,
    /// Host address of the packet buffer, virtual `PKT_BASE` (offset 16).
    pkt: u64,
    /// Virtual `data` and `data_end` (offsets 24, 32): inline packet accesses stay inside.
    pkt_lo: u64,
    pkt_hi: u64,
    /// Host address and length of the context (offsets 40, 48): inline loads only.
    ctx: u64,
    ctx_len: u64,
    /// Map value slabs as {host address, length, value size} (offset 56), and how many
    /// (offset 64).
    maps: u64,
    nmaps: u64,
    vm: &'v mut Vm<'a, 'm>,
    error: Option<EmuError>,
}

/// Offsets of [`State`]'s fields that generated code reads.
const ST_STACK: i32 = 8;
const ST_PKT: i32 = 16;
const ST_PKT_LO: i32 = 24;
const ST_PKT_HI: i32 = 32;
const ST_CTX: i32 = 40;
const ST_CTX_LEN: i32 = 48;
const ST_MAPS: i32 = 56;
const ST_NMAPS: i32 = 64;

/// Every function of a program is `(state, r0, r1, …, r9, r10) -> r0`: a callee starts with the
/// caller's registers, as in the interpreter (the verifier lets it read only r1–r5 and r10);
/// the entry gets r1 = the context and r10 = the top frame's end.
type Entry =
    unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64) -> u64;

/// A compiled program. The module owns the code's memory, so it lives as long as the entry.
pub struct JitProgram {
    entry: Entry,
    shapes: Vec<MapShape>,
    _module: Arc<Mutex<JITModule>>,
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JitProgram")
    }
}

// The generated code is immutable once finalized and touches only the state it is given.
unsafe impl Send for JitProgram {}
unsafe impl Sync for JitProgram {}

fn state<'s>(p: *mut u8) -> &'s mut State<'s, 's, 's> {
    // SAFETY: JIT code passes back the pointer `JitProgram::exec` gave it, to a live `State`.
    unsafe { &mut *(p.cast::<State<'s, 's, 's>>()) }
}

fn fail(s: &mut State<'_, '_, '_>, e: EmuError) -> u64 {
    s.failed = 1;
    s.error = Some(e);
    0
}

extern "C" fn rt_load(p: *mut u8, pc: u64, addr: u64, size: u64) -> u64 {
    let s = state(p);
    match s.vm.jit_load(pc as usize, addr, size as usize) {
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

extern "C" fn rt_store(p: *mut u8, pc: u64, addr: u64, size: u64, v: u64) {
    let s = state(p);
    if let Err(e) = s.vm.jit_store(pc as usize, addr, size as usize, v) {
        fail(s, e);
    }
}

/// Atomics and helpers work on the machine's registers: JIT code writes the ones they read
/// first and reads back the ones they change.
extern "C" fn rt_atomic(p: *mut u8, pc: u64, addr: u64, src: u64, r0: u64, src_reg: u64) -> u64 {
    let s = state(p);
    s.vm.regs[src_reg as usize] = src;
    s.vm.regs[0] = r0;
    match s.vm.jit_atomic(pc as usize, addr) {
        Ok(()) => s.vm.regs[src_reg as usize],
        Err(e) => fail(s, e),
    }
}

extern "C" fn rt_r0(p: *mut u8) -> u64 {
    state(p).vm.regs[0]
}

extern "C" fn rt_helper(
    p: *mut u8,
    pc: u64,
    id: u64,
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
) -> u64 {
    let s = state(p);
    s.vm.regs[1..6].copy_from_slice(&[r1, r2, r3, r4, r5]);
    let r = s.vm.jit_helper(pc as usize, id as i32);
    // A helper may move the packet's bounds (adjust_head/tail).
    let (_, _, lo, hi) = s.vm.raw_regions();
    s.pkt_lo = lo;
    s.pkt_hi = hi;
    match r {
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

extern "C" fn rt_lookup(p: *mut u8, pc: u64, map: u64, key: u64) -> u64 {
    let s = state(p);
    match s.vm.jit_lookup(pc as usize, map as usize, key) {
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

/// A lookup whose key (4, 8 or 16 bytes, checked and read by the JIT code) comes by value.
extern "C" fn rt_lookup_small(p: *mut u8, map: u64, k0: u64, k1: u64) -> u64 {
    let s = state(p);
    s.vm.jit_lookup_small(map as usize, u128::from(k0) | (u128::from(k1) << 64))
}

/// An LPM lookup whose key (prefix length, then 4 or 16 bytes of data, checked and read by the
/// JIT code) comes by value.
extern "C" fn rt_lookup_lpm(p: *mut u8, map: u64, len: u64, d0: u64, d1: u64) -> u64 {
    let s = state(p);
    s.vm.jit_lookup_lpm(map as usize, len as u32, d0, d1)
}

extern "C" fn rt_enter(p: *mut u8, pc: u64, top: u64) {
    let s = state(p);
    if let Err(e) = s.vm.jit_enter(pc as usize, top) {
        fail(s, e);
    }
}

extern "C" fn rt_end(p: *mut u8) {
    let s = state(p);
    let insn = s.vm.insns_len();
    fail(
        s,
        EmuError::Fault {
            insn,
            what: "ran past the end of the program".into(),
        },
    );
}

extern "C" fn rt_bad(p: *mut u8, pc: u64, why: u64) {
    let s = state(p);
    let what = format!(
        "{} {:#x}",
        Bad::ALL
            .get(why as usize)
            .map_or("bad instruction", |b| b.what()),
        s.vm.insn_code(pc as usize)
    );
    fail(
        s,
        EmuError::Fault {
            insn: pc as usize,
            what,
        },
    );
}

extern "C" fn rt_budget(p: *mut u8) {
    let s = state(p);
    fail(s, EmuError::Budget(BUDGET));
}

/// Where a register points, as far as the analysis can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prov {
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
struct Abs {
    regs: [Prov; 11],
    slots: Vec<(i64, Prov)>,
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

fn moved(p: Prov, by: i64) -> Prov {
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
fn transfer(insns: &[Ins], pc: usize, a: &mut Abs, shapes: &[MapShape]) {
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
fn jump_target(i: Ins, pc: usize) -> i64 {
    let off = if i.code & 7 == 0x06 && i.code & 0xf0 == 0x00 {
        i64::from(i.imm)
    } else {
        i64::from(i.off)
    };
    pc as i64 + 1 + off
}

/// Where control goes after the instruction at `pc` (a call returns to the next one), and
/// whether it falls off the program's end.
fn successors(insns: &[Ins], pc: usize) -> Result<(Vec<usize>, bool), JitError> {
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
fn function_entries(insns: &[Ins]) -> Result<BTreeSet<usize>, JitError> {
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
struct Func {
    entry: usize,
    reach: BTreeSet<usize>,
    leaders: BTreeMap<usize, Abs>,
}

/// Whether the instruction ends a block: a jump or an exit (calls return).
fn ends_block(i: Ins) -> bool {
    let class = i.code & 7;
    (class == 0x05 || class == 0x06) && i.code & 0xf0 != 0x80
}

/// Finds what `entry`'s function reaches and runs the provenance analysis over its blocks to
/// a fixpoint (knowledge only shrinks at joins, so it ends).
fn analyse(insns: &[Ins], entry: usize, shapes: &[MapShape]) -> Result<Func, JitError> {
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
        start.regs[1] = Prov::Ctx(0);
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

/// The runtime entry points, as the function being built calls them.
#[derive(Clone, Copy)]
struct Rt {
    load: FuncRef,
    store: FuncRef,
    atomic: FuncRef,
    r0: FuncRef,
    helper: FuncRef,
    lookup: FuncRef,
    lookup_small: FuncRef,
    lookup_lpm: FuncRef,
    enter: FuncRef,
    budget: FuncRef,
    end: FuncRef,
    bad: FuncRef,
}

/// What translating one function needs at hand.
struct Fx<'a> {
    shapes: &'a [MapShape],
    rt: Rt,
    callees: &'a BTreeMap<usize, FuncRef>,
    st: Value,
    /// r10 at entry (virtual) and the frame end's host address.
    r10: Value,
    frame: Value,
    /// Each map's value slab: host address and length, loaded once on entry (slabs never
    /// move during a run).
    slabs: Vec<(Value, Value)>,
    /// The context's host address and length, likewise.
    ctx: (Value, Value),
    /// The packet buffer's host address minus its virtual address (constant during a run),
    /// and the virtual `data`/`data_end`, reloaded after each call that may move them.
    pkt_bias: Value,
    plo: Variable,
    phi: Variable,
    exit_fail: Block,
}

/// Reloads the packet's bounds after a call that may have moved them.
fn reload_bounds(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>) {
    let lo = b.ins().load(I64, MemFlagsData::trusted(), fx.st, ST_PKT_LO);
    let hi = b.ins().load(I64, MemFlagsData::trusted(), fx.st, ST_PKT_HI);
    b.def_var(fx.plo, lo);
    b.def_var(fx.phi, hi);
}

/// Why JIT code stops at an instruction it does not translate: the interpreter faults there
/// too, when (and only when) a run reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    /// Bad register.
    Register,
    /// Byte swap width.
    SwapWidth,
    /// Sign-extending move.
    SignExtendingMove,
    /// Alu opcode.
    AluOpcode,
    /// Call in jmp32 class.
    CallInJmp32,
    /// Kfunc calls are not emulated.
    Kfunc,
    /// Jump opcode.
    JumpOpcode,
    /// Load form.
    LoadForm,
    /// Ld_imm64 source.
    LdImm64Source,
    /// Load mode.
    LoadMode,
    /// Opcode.
    Opcode,
}

impl Bad {
    const ALL: [Bad; 11] = [
        Bad::Register,
        Bad::SwapWidth,
        Bad::SignExtendingMove,
        Bad::AluOpcode,
        Bad::CallInJmp32,
        Bad::Kfunc,
        Bad::JumpOpcode,
        Bad::LoadForm,
        Bad::LdImm64Source,
        Bad::LoadMode,
        Bad::Opcode,
    ];

    fn what(self) -> &'static str {
        match self {
            Bad::Register => "bad register",
            Bad::SwapWidth => "byte swap width",
            Bad::SignExtendingMove => "sign-extending move",
            Bad::AluOpcode => "alu opcode",
            Bad::CallInJmp32 => "call in jmp32 class",
            Bad::Kfunc => "kfunc calls are not emulated",
            Bad::JumpOpcode => "jump opcode",
            Bad::LoadForm => "load form",
            Bad::LdImm64Source => "ld_imm64 source",
            Bad::LoadMode => "load mode",
            Bad::Opcode => "opcode",
        }
    }
}

/// Ends the current block with the fault for reason `why`.
fn bad(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>, pc: usize, why: Bad) {
    let pcv = b.ins().iconst(I64, pc as i64);
    let index = Bad::ALL.iter().position(|x| *x == why).unwrap_or(0);
    let w = b.ins().iconst(I64, index as i64);
    b.ins().call(fx.rt.bad, &[fx.st, pcv, w]);
    b.ins().jump(fx.exit_fail, &[]);
}

/// After a fallible call: leave when the state's fault flag is set.
fn check(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>) {
    let f = b.ins().load(I64, MemFlagsData::trusted(), fx.st, 0);
    let cont = b.create_block();
    b.ins().brif(f, fx.exit_fail, &[], cont, &[]);
    b.switch_to_block(cont);
}

/// A load (`store` None) or a store of `size` bytes at `base + off`, whose base has
/// provenance `prov`.
#[allow(clippy::too_many_arguments)]
// Reason: the access's parts are all needed and have no natural grouping.
fn access(
    b: &mut FunctionBuilder<'_>,
    fx: &Fx<'_>,
    pc: usize,
    prov: Prov,
    base: Value,
    off: i64,
    size: i64,
    store: Option<Value>,
) -> Value {
    let flags = MemFlagsData::new().with_notrap();
    let direct = |b: &mut FunctionBuilder<'_>, p: Value| -> Value {
        match store {
            None => match size {
                1 => b.ins().uload8(I64, flags, p, 0),
                2 => b.ins().uload16(I64, flags, p, 0),
                4 => b.ins().uload32(flags, p, 0),
                _ => b.ins().load(I64, flags, p, 0),
            },
            Some(v) => {
                match size {
                    1 => b.ins().istore8(flags, v, p, 0),
                    2 => b.ins().istore16(flags, v, p, 0),
                    4 => b.ins().istore32(flags, v, p, 0),
                    _ => b.ins().store(flags, v, p, 0),
                };
                v
            }
        }
    };
    let addr = b.ins().iadd_imm_s(base, off);
    let slow = |b: &mut FunctionBuilder<'_>| -> Value {
        let pcv = b.ins().iconst(I64, pc as i64);
        let sz = b.ins().iconst(I64, size);
        let v = match store {
            None => {
                let call = b.ins().call(fx.rt.load, &[fx.st, pcv, addr, sz]);
                b.inst_results(call)[0]
            }
            Some(v) => {
                b.ins().call(fx.rt.store, &[fx.st, pcv, addr, sz, v]);
                v
            }
        };
        check(b, fx);
        v
    };
    // The regions other than a map value's or the packet's, by the interpreter's rules.
    let regions = |b: &mut FunctionBuilder<'_>| -> Value {
        let mut fast = |b: &mut FunctionBuilder<'_>, p: Value| Some(direct(b, p));
        let mut slow_opt = |b: &mut FunctionBuilder<'_>| Some(slow(b));
        fast_path(
            b,
            fx.st,
            addr,
            size,
            store.is_none(),
            &mut fast,
            &mut slow_opt,
        )
        .unwrap_or(addr)
    };
    // The frame, a map value and the packet: `host_span` checks (or, in the frame, proves)
    // the access; a map value failing its check goes to the machine for the fault, a packet
    // guess to the other regions.
    if let Some((ok, host)) = host_span(b, fx, moved(prov, off), addr, size) {
        return either(b, ok, &mut |b| direct(b, host), &mut |b| {
            if prov == Prov::Pkt {
                regions(b)
            } else {
                slow(b)
            }
        });
    }
    match prov {
        // Loads from the context at a known offset.
        Prov::Ctx(o) if store.is_none() && o.checked_add(off).is_some_and(|t| t >= 0) => {
            let t = o + off;
            let (c, clen) = fx.ctx;
            let ok = b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, clen, t + size);
            either(
                b,
                Some(ok),
                &mut |b| {
                    let p = b.ins().iadd_imm_s(c, t);
                    direct(b, p)
                },
                &mut |b| slow(b),
            )
        }
        _ => regions(b),
    }
}

/// `fast` where `ok` holds (everywhere, without a flag), `other` elsewhere: the value the one
/// taken gives.
fn either(
    b: &mut FunctionBuilder<'_>,
    ok: Option<Value>,
    fast: &mut dyn FnMut(&mut FunctionBuilder<'_>) -> Value,
    other: &mut dyn FnMut(&mut FunctionBuilder<'_>) -> Value,
) -> Value {
    let Some(ok) = ok else {
        return fast(b);
    };
    let fast_blk = b.create_block();
    let other_blk = b.create_block();
    let merge = b.create_block();
    let out = b.append_block_param(merge, I64);
    b.ins().brif(ok, fast_blk, &[], other_blk, &[]);
    b.switch_to_block(fast_blk);
    let v = fast(b);
    b.ins()
        .jump(merge, &[cranelift_codegen::ir::BlockArg::Value(v)]);
    b.switch_to_block(other_blk);
    let v = other(b);
    b.ins()
        .jump(merge, &[cranelift_codegen::ir::BlockArg::Value(v)]);
    b.switch_to_block(merge);
    out
}

/// Translates one function into `b`'s function (signature: state, r1–r9, r10 → r0).
fn translate(
    b: &mut FunctionBuilder<'_>,
    fx_parts: FxParts<'_>,
    func: &Func,
) -> Result<(), JitError> {
    let insns = fx_parts.insns;
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    let blocks: BTreeMap<usize, Block> = func
        .leaders
        .keys()
        .map(|&l| (l, b.create_block()))
        .collect();
    let exit_fail = b.create_block();
    let regs: Vec<Variable> = (0..11).map(|_| b.declare_var(I64)).collect();
    let fuel = b.declare_var(I64);

    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let st = params[0];
    for r in 0..11 {
        b.def_var(regs[r], params[r + 1]);
    }
    let r10 = params[11];
    let stack = b.ins().load(I64, MemFlagsData::trusted(), st, ST_STACK);
    let rel = b.ins().iadd_imm_s(r10, -(STACK_BASE as i64));
    let frame = b.ins().iadd(stack, rel);
    let f0 = b.ins().iconst(I64, BUDGET as i64);
    b.def_var(fuel, f0);
    // Read-only during the run and movable: unused ones are dropped, the rest loaded once.
    let trusted = MemFlagsData::trusted().with_readonly().with_can_move();
    let table = b.ins().load(I64, trusted, st, ST_MAPS);
    let slabs = (0..fx_parts.shapes.len() as i32)
        .map(|m| {
            (
                b.ins().load(I64, trusted, table, 24 * m),
                b.ins().load(I64, trusted, table, 24 * m + 8),
            )
        })
        .collect();
    let ctx = (
        b.ins().load(I64, trusted, st, ST_CTX),
        b.ins().load(I64, trusted, st, ST_CTX_LEN),
    );
    let pkt_host = b.ins().load(I64, trusted, st, ST_PKT);
    let pkt_bias = b.ins().iadd_imm_s(pkt_host, -(crate::vm::PKT_BASE as i64));
    let plo = b.declare_var(I64);
    let phi = b.declare_var(I64);
    let lo = b.ins().load(I64, MemFlagsData::trusted(), st, ST_PKT_LO);
    let hi = b.ins().load(I64, MemFlagsData::trusted(), st, ST_PKT_HI);
    b.def_var(plo, lo);
    b.def_var(phi, hi);
    b.ins().jump(blocks[&func.entry], &[]);
    let fx = Fx {
        shapes: fx_parts.shapes,
        rt: fx_parts.rt,
        callees: fx_parts.callees,
        st,
        r10,
        frame,
        slabs,
        ctx,
        pkt_bias,
        plo,
        phi,
        exit_fail,
    };

    let mut open = false;
    let mut known: Option<Abs> = None;
    let mut out_of_program: Vec<Block> = Vec::new();
    'insns: for &pc in &func.reach {
        if let Some(&blk) = blocks.get(&pc) {
            if open {
                b.ins().jump(blk, &[]);
            }
            b.switch_to_block(blk);
            known = func.leaders.get(&pc).cloned();
        } else if !open {
            // Reached only by falling through an instruction that always faults: dead code.
            continue;
        }
        open = true;
        b.set_srcloc(cranelift_codegen::ir::SourceLoc::new(pc as u32));
        let Some(abs) = known.as_mut() else {
            return Err(JitError::Unsupported {
                insn: pc,
                what: "no analysis (internal error)".into(),
            });
        };
        let regs_prov = abs.regs;
        transfer(insns, pc, abs, fx.shapes);
        let i = insns[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        if d > 10 || s > 10 {
            {
                bad(b, &fx, pc, Bad::Register);
                open = false;
                continue 'insns;
            };
        }
        let class = i.code & 7;
        let (_, falls_off) = successors(insns, pc)?;
        match class {
            0x04 | 0x07 => 'alu: {
                let wide = class == 0x07;
                let op = i.code & 0xf0;
                let reg_src = i.code & 0x08 != 0;
                let a64 = b.use_var(regs[d]);
                let b64 = if reg_src {
                    b.use_var(regs[s])
                } else {
                    b.ins().iconst(I64, i64::from(i.imm))
                };
                if op == 0xd0 {
                    let width = i.imm;
                    let swap = wide || reg_src;
                    let v = match (width, swap) {
                        (16, true) => {
                            let x = b.ins().ireduce(cranelift_codegen::ir::types::I16, a64);
                            let x = b.ins().bswap(x);
                            b.ins().uextend(I64, x)
                        }
                        (32, true) => {
                            let x = b.ins().ireduce(I32, a64);
                            let x = b.ins().bswap(x);
                            b.ins().uextend(I64, x)
                        }
                        (64, true) => b.ins().bswap(a64),
                        (16, false) => b.ins().band_imm_u(a64, 0xffff),
                        (32, false) => b.ins().band_imm_u(a64, 0xffff_ffff),
                        (64, false) => a64,
                        _ => {
                            bad(b, &fx, pc, Bad::SwapWidth);
                            open = false;
                            continue 'insns;
                        }
                    };
                    b.def_var(regs[d], v);
                    break 'alu;
                }
                let ty = if wide { I64 } else { I32 };
                let (a, bb) = if wide {
                    (a64, b64)
                } else {
                    (b.ins().ireduce(I32, a64), b.ins().ireduce(I32, b64))
                };
                let signed = i.off == 1;
                let zero_t = b.ins().iconst(ty, 0);
                let one_t = b.ins().iconst(ty, 1);
                let r = match op {
                    0x00 => b.ins().iadd(a, bb),
                    0x10 => b.ins().isub(a, bb),
                    0x20 => b.ins().imul(a, bb),
                    0x30 | 0x90 => {
                        // No traps: division by zero gives 0 (mod: the dividend), and
                        // signed MIN / -1 wraps.
                        let is0 = b.ins().icmp_imm_s(IntCC::Equal, bb, 0);
                        let safe = b.ins().select(is0, one_t, bb);
                        let v = if signed {
                            let neg1 = b.ins().icmp_imm_s(IntCC::Equal, safe, -1);
                            let safe2 = b.ins().select(neg1, one_t, safe);
                            if op == 0x30 {
                                let q = b.ins().sdiv(a, safe2);
                                let na = b.ins().ineg(a);
                                b.ins().select(neg1, na, q)
                            } else {
                                let r = b.ins().srem(a, safe2);
                                b.ins().select(neg1, zero_t, r)
                            }
                        } else if op == 0x30 {
                            b.ins().udiv(a, safe)
                        } else {
                            b.ins().urem(a, safe)
                        };
                        let dz = if op == 0x30 { zero_t } else { a };
                        b.ins().select(is0, dz, v)
                    }
                    0x40 => b.ins().bor(a, bb),
                    0x50 => b.ins().band(a, bb),
                    0x60 => b.ins().ishl(a, bb),
                    0x70 => b.ins().ushr(a, bb),
                    0x80 => b.ins().ineg(a),
                    0xa0 => b.ins().bxor(a, bb),
                    0xb0 => match i.off {
                        0 => bb,
                        8 | 16 | 32 if wide || i.off != 32 => {
                            let t = match i.off {
                                8 => I8,
                                16 => cranelift_codegen::ir::types::I16,
                                _ => I32,
                            };
                            let x = b.ins().ireduce(t, bb);
                            b.ins().sextend(ty, x)
                        }
                        _ => {
                            bad(b, &fx, pc, Bad::SignExtendingMove);
                            open = false;
                            continue 'insns;
                        }
                    },
                    0xc0 => b.ins().sshr(a, bb),
                    _ => {
                        bad(b, &fx, pc, Bad::AluOpcode);
                        open = false;
                        continue 'insns;
                    }
                };
                let r64 = if wide { r } else { b.ins().uextend(I64, r) };
                b.def_var(regs[d], r64);
            }
            0x05 | 0x06 => {
                let op = i.code & 0xf0;
                match op {
                    0x90 => {
                        let r0 = b.use_var(regs[0]);
                        b.ins().return_(&[r0]);
                        open = false;
                    }
                    0x80 => {
                        if class == 0x06 {
                            {
                                bad(b, &fx, pc, Bad::CallInJmp32);
                                open = false;
                                continue 'insns;
                            };
                        }
                        let pcv = b.ins().iconst(I64, pc as i64);
                        match i.src {
                            0 => helper_call(b, &fx, pc, i.imm, &regs_prov, &regs)?,
                            1 => {
                                let target = pc as i64 + 1 + i64::from(i.imm);
                                let Some(&callee) = usize::try_from(target)
                                    .ok()
                                    .and_then(|t| fx.callees.get(&t))
                                else {
                                    // Out of the program: the interpreter faults there.
                                    b.ins().call(fx.rt.end, &[st]);
                                    b.ins().jump(exit_fail, &[]);
                                    open = false;
                                    continue 'insns;
                                };
                                let top = b.ins().iadd_imm_s(fx.r10, -(FRAME as i64));
                                b.ins().call(fx.rt.enter, &[st, pcv, top]);
                                check(b, &fx);
                                let mut args = vec![st];
                                args.extend((0..10).map(|r| b.use_var(regs[r])));
                                args.push(top);
                                let call = b.ins().call(callee, &args);
                                let r0 = b.inst_results(call)[0];
                                check(b, &fx);
                                reload_bounds(b, &fx);
                                b.def_var(regs[0], r0);
                                let z = b.ins().iconst(I64, 0);
                                for r in &regs[1..6] {
                                    b.def_var(*r, z);
                                }
                            }
                            _ => {
                                bad(b, &fx, pc, Bad::Kfunc);
                                open = false;
                                continue 'insns;
                            }
                        }
                    }
                    _ => {
                        let target = jump_target(i, pc);
                        let tblk = match usize::try_from(target).ok().and_then(|t| blocks.get(&t)) {
                            Some(&blk) => blk,
                            None => {
                                // Out of the program: taking the jump faults (the block is
                                // filled in at the end).
                                let out = b.create_block();
                                out_of_program.push(out);
                                out
                            }
                        };
                        if target <= pc as i64 {
                            // A backward jump spends fuel.
                            let f = b.use_var(fuel);
                            let f = b.ins().iadd_imm_s(f, -1);
                            b.def_var(fuel, f);
                            let out = b.create_block();
                            let go = b.create_block();
                            b.ins().brif(f, go, &[], out, &[]);
                            b.switch_to_block(out);
                            b.ins().call(fx.rt.budget, &[st]);
                            b.ins().jump(exit_fail, &[]);
                            b.switch_to_block(go);
                        }
                        if op == 0x00 {
                            b.ins().jump(tblk, &[]);
                        } else {
                            let mut a = b.use_var(regs[d]);
                            let mut v = if i.code & 0x08 != 0 {
                                b.use_var(regs[s])
                            } else {
                                b.ins().iconst(I64, i64::from(i.imm))
                            };
                            if class == 0x06 {
                                a = b.ins().ireduce(I32, a);
                                v = b.ins().ireduce(I32, v);
                            }
                            let cond = match op {
                                0x10 => b.ins().icmp(IntCC::Equal, a, v),
                                0x20 => b.ins().icmp(IntCC::UnsignedGreaterThan, a, v),
                                0x30 => b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, a, v),
                                0x40 => {
                                    let x = b.ins().band(a, v);
                                    b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
                                }
                                0x50 => b.ins().icmp(IntCC::NotEqual, a, v),
                                0x60 => b.ins().icmp(IntCC::SignedGreaterThan, a, v),
                                0x70 => b.ins().icmp(IntCC::SignedGreaterThanOrEqual, a, v),
                                0xa0 => b.ins().icmp(IntCC::UnsignedLessThan, a, v),
                                0xb0 => b.ins().icmp(IntCC::UnsignedLessThanOrEqual, a, v),
                                0xc0 => b.ins().icmp(IntCC::SignedLessThan, a, v),
                                0xd0 => b.ins().icmp(IntCC::SignedLessThanOrEqual, a, v),
                                _ => {
                                    bad(b, &fx, pc, Bad::JumpOpcode);
                                    open = false;
                                    continue 'insns;
                                }
                            };
                            if falls_off {
                                let end = b.create_block();
                                b.ins().brif(cond, tblk, &[], end, &[]);
                                b.switch_to_block(end);
                                b.ins().call(fx.rt.end, &[st]);
                                b.ins().jump(exit_fail, &[]);
                            } else {
                                let next = blocks[&(pc + 1)];
                                b.ins().brif(cond, tblk, &[], next, &[]);
                            }
                        }
                        open = false;
                        continue 'insns;
                    }
                }
            }
            0x00 => {
                if i.code != 0x18 || pc + 1 >= insns.len() {
                    {
                        bad(b, &fx, pc, Bad::LoadForm);
                        open = false;
                        continue 'insns;
                    };
                }
                let next = insns[pc + 1];
                let v: u64 = match i.src {
                    0 => (i.imm as u32 as u64) | ((next.imm as u32 as u64) << 32),
                    1 => (crate::vm::MAP_HANDLES << 32) | (i.imm as u32 as u64),
                    2 => ((MAP_VALUES + i.imm as u32 as u64) << 32) + next.imm as u32 as u64,
                    _ => {
                        bad(b, &fx, pc, Bad::LdImm64Source);
                        open = false;
                        continue 'insns;
                    }
                };
                let c = b.ins().iconst(I64, v as i64);
                b.def_var(regs[d], c);
            }
            0x01 => {
                let size = access_size(i.code);
                let base = b.use_var(regs[s]);
                let mut v = access(b, &fx, pc, regs_prov[s], base, i64::from(i.off), size, None);
                match i.code & 0xe0 {
                    0x60 => {}
                    0x80 => {
                        let t = match size {
                            1 => I8,
                            2 => cranelift_codegen::ir::types::I16,
                            4 => I32,
                            _ => I64,
                        };
                        if t != I64 {
                            let x = b.ins().ireduce(t, v);
                            v = b.ins().sextend(I64, x);
                        }
                    }
                    _ => {
                        bad(b, &fx, pc, Bad::LoadMode);
                        open = false;
                        continue 'insns;
                    }
                }
                b.def_var(regs[d], v);
            }
            0x02 | 0x03 => {
                let size = access_size(i.code);
                let base = b.use_var(regs[d]);
                if class == 0x03 && i.code & 0xe0 == 0xc0 {
                    let addr = b.ins().iadd_imm_s(base, i64::from(i.off));
                    let pcv = b.ins().iconst(I64, pc as i64);
                    let src = b.use_var(regs[s]);
                    let r0 = b.use_var(regs[0]);
                    let sr = b.ins().iconst(I64, s as i64);
                    let call = b.ins().call(fx.rt.atomic, &[st, pcv, addr, src, r0, sr]);
                    let news = b.inst_results(call)[0];
                    check(b, &fx);
                    b.def_var(regs[s], news);
                    let call = b.ins().call(fx.rt.r0, &[st]);
                    let r0n = b.inst_results(call)[0];
                    b.def_var(regs[0], r0n);
                } else {
                    let v = if class == 0x02 {
                        b.ins().iconst(I64, i64::from(i.imm))
                    } else {
                        b.use_var(regs[s])
                    };
                    access(
                        b,
                        &fx,
                        pc,
                        regs_prov[d],
                        base,
                        i64::from(i.off),
                        size,
                        Some(v),
                    );
                }
            }
            _ => {
                bad(b, &fx, pc, Bad::Opcode);
                open = false;
                continue 'insns;
            }
        }
        if open && falls_off {
            // Falling off the end is a fault, as in the interpreter.
            b.ins().call(fx.rt.end, &[st]);
            b.ins().jump(exit_fail, &[]);
            open = false;
        }
    }
    if open {
        return Err(JitError::Unsupported {
            insn: insns.len(),
            what: "function without an end (internal error)".into(),
        });
    }
    for blk in out_of_program {
        b.switch_to_block(blk);
        b.ins().call(fx.rt.end, &[st]);
        b.ins().jump(exit_fail, &[]);
    }
    b.switch_to_block(exit_fail);
    let z = b.ins().iconst(I64, 0);
    b.ins().return_(&[z]);
    b.seal_all_blocks();
    Ok(())
}

/// The parts of [`Fx`] known before the function's entry block exists.
#[derive(Clone, Copy)]
struct FxParts<'a> {
    insns: &'a [Ins],
    shapes: &'a [MapShape],
    rt: Rt,
    callees: &'a BTreeMap<usize, FuncRef>,
}

fn access_size(code: u8) -> i64 {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

/// For `span` bytes at `base` (of provenance `prov`): a flag saying the span lies wholly in the
/// frame, one map value or the packet (by the interpreter's rules; no flag when the analysis
/// proved it), and its host address — for the provenances checked inline; `None` for the rest.
/// Map values: the analysis says the access stays inside one value, and one compare puts it
/// inside map `m`'s slab (an address in another region, or null, is far outside), so that
/// memory safety never rests on the analysis.
fn host_span(
    b: &mut FunctionBuilder<'_>,
    fx: &Fx<'_>,
    prov: Prov,
    base: Value,
    span: i64,
) -> Option<(Option<Value>, Value)> {
    match prov {
        // In this function's own frame: the analysis proved the address, nothing to check.
        Prov::Stack(o) if o >= -(FRAME as i64) && o + span <= 0 => {
            let p = b.ins().iadd_imm_s(fx.frame, o);
            Some((None, p))
        }
        Prov::Value(m, o)
            if fx.shapes.get(m as usize).is_some_and(|sh| {
                sh.max_entries > 0 && o >= 0 && o + span <= sh.value_size as i64
            }) =>
        {
            let (slab, slab_len) = fx.slabs[m as usize];
            let low = b
                .ins()
                .iadd_imm_s(base, -(((MAP_VALUES + u64::from(m)) << 32) as i64));
            let limit = b.ins().iadd_imm_s(slab_len, -span);
            let ok = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, low, limit);
            let p = b.ins().iadd(slab, low);
            Some((Some(ok), p))
        }
        Prov::Pkt => {
            let lo = b.use_var(fx.plo);
            let hi = b.use_var(fx.phi);
            let off = b.ins().isub(base, lo);
            let len = b.ins().isub(hi, lo);
            let starts_inside = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, off, len);
            let room = b.ins().isub(len, off);
            let fits = b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, room, span);
            let ok = b.ins().band(starts_inside, fits);
            let p = b.ins().iadd(fx.pkt_bias, base);
            Some((Some(ok), p))
        }
        _ => None,
    }
}

/// A helper call: array-map lookups inline, other lookups straight into the map, the rest
/// through the machine. Helpers clobber r1–r5 (zeroed, as the interpreter does).
fn helper_call(
    b: &mut FunctionBuilder<'_>,
    fx: &Fx<'_>,
    pc: usize,
    id: i32,
    prov: &[Prov; 11],
    regs: &[Variable],
) -> Result<(), JitError> {
    let pcv = b.ins().iconst(I64, pc as i64);
    let map = match prov[1] {
        Prov::MapPtr(m) if id == nfcc_bpf::Helper::MapLookupElem.id() => {
            fx.shapes.get(m as usize).map(|sh| (m, *sh))
        }
        _ => None,
    };
    let r0 = match map {
        Some((m, sh)) if sh.inline_lookup() => {
            let key = b.use_var(regs[2]);
            let idx = access(b, fx, pc, prov[2], key, 0, 4, None);
            let inside = b
                .ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, idx, sh.max_entries as i64);
            let off = b.ins().imul_imm_u(idx, sh.value_size as i64);
            let base = ((MAP_VALUES + u64::from(m)) << 32) as i64;
            let addr = b.ins().iadd_imm_s(off, base);
            let zero = b.ins().iconst(I64, 0);
            b.ins().select(inside, addr, zero)
        }
        Some((m, sh)) if sh.small_key_lookup() || sh.lpm_key_lookup() => {
            // The key read inline (one check over the whole key) and passed by value.
            let key = b.use_var(regs[2]);
            let mv = b.ins().iconst(I64, i64::from(m));
            let span = sh.key_size as i64;
            // The machine reads the key when the inline check fails, and reports the fault.
            let mut by_address = |b: &mut FunctionBuilder<'_>| {
                let call = b.ins().call(fx.rt.lookup, &[fx.st, pcv, mv, key]);
                let r = b.inst_results(call)[0];
                check(b, fx);
                r
            };
            match host_span(b, fx, prov[2], key, span) {
                Some((ok, host)) => {
                    let flags = MemFlagsData::new().with_notrap();
                    let mut by_value = |b: &mut FunctionBuilder<'_>| {
                        if sh.lpm_key_lookup() {
                            // {u32 prefix length, data}: the data's bytes as they lie in memory.
                            let len = b.ins().uload32(flags, host, 0);
                            let (d0, d1) = if sh.key_size == 8 {
                                (b.ins().uload32(flags, host, 4), b.ins().iconst(I64, 0))
                            } else {
                                (
                                    b.ins().load(I64, flags, host, 4),
                                    b.ins().load(I64, flags, host, 12),
                                )
                            };
                            let call = b.ins().call(fx.rt.lookup_lpm, &[fx.st, mv, len, d0, d1]);
                            b.inst_results(call)[0]
                        } else {
                            let (k0, k1) = match sh.key_size {
                                4 => (b.ins().uload32(flags, host, 0), b.ins().iconst(I64, 0)),
                                8 => (b.ins().load(I64, flags, host, 0), b.ins().iconst(I64, 0)),
                                _ => (
                                    b.ins().load(I64, flags, host, 0),
                                    b.ins().load(I64, flags, host, 8),
                                ),
                            };
                            let call = b.ins().call(fx.rt.lookup_small, &[fx.st, mv, k0, k1]);
                            b.inst_results(call)[0]
                        }
                    };
                    either(b, ok, &mut by_value, &mut by_address)
                }
                None => by_address(b),
            }
        }
        Some((m, _)) => {
            let key = b.use_var(regs[2]);
            let mv = b.ins().iconst(I64, i64::from(m));
            let call = b.ins().call(fx.rt.lookup, &[fx.st, pcv, mv, key]);
            let r0 = b.inst_results(call)[0];
            check(b, fx);
            r0
        }
        None => {
            let idv = b.ins().iconst(I64, i64::from(id));
            let args: Vec<Value> = (1..6).map(|r| b.use_var(regs[r])).collect();
            let call = b.ins().call(
                fx.rt.helper,
                &[fx.st, pcv, idv, args[0], args[1], args[2], args[3], args[4]],
            );
            let r0 = b.inst_results(call)[0];
            check(b, fx);
            reload_bounds(b, fx);
            r0
        }
    };
    b.def_var(regs[0], r0);
    let z = b.ins().iconst(I64, 0);
    for r in &regs[1..6] {
        b.def_var(*r, z);
    }
    Ok(())
}

impl JitProgram {
    /// Translates and compiles `insns`, for maps of these shapes (in the object's order).
    pub fn compile(insns: &[Ins], shapes: &[MapShape]) -> Result<JitProgram, JitError> {
        let cg = |e: &dyn std::fmt::Display| JitError::Codegen(e.to_string());
        if insns.is_empty() {
            return Err(JitError::Unsupported {
                insn: 0,
                what: "an empty program".into(),
            });
        }
        let funcs = function_entries(insns)?
            .into_iter()
            .map(|e| analyse(insns, e, shapes))
            .collect::<Result<Vec<Func>, JitError>>()?;
        if funcs.len() > MAX_FRAMES * 64 {
            return Err(JitError::Unsupported {
                insn: 0,
                what: "too many functions".into(),
            });
        }

        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| cg(&e))?;
        flags.set("is_pic", "false").map_err(|e| cg(&e))?;
        let isa = cranelift_native::builder()
            .map_err(|e| cg(&e))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| cg(&e))?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        // The runtime entry points: symbol, address, i64 arguments after the state, whether
        // it returns a value (in `Rt`'s order).
        let imports: [(&str, *const u8, usize, bool); 12] = [
            ("nfcc_load", rt_load as *const u8, 3, true),
            ("nfcc_store", rt_store as *const u8, 4, false),
            ("nfcc_atomic", rt_atomic as *const u8, 5, true),
            ("nfcc_r0", rt_r0 as *const u8, 0, true),
            ("nfcc_helper", rt_helper as *const u8, 7, true),
            ("nfcc_lookup", rt_lookup as *const u8, 3, true),
            ("nfcc_lookup_small", rt_lookup_small as *const u8, 3, true),
            ("nfcc_lookup_lpm", rt_lookup_lpm as *const u8, 4, true),
            ("nfcc_enter", rt_enter as *const u8, 2, false),
            ("nfcc_budget", rt_budget as *const u8, 0, false),
            ("nfcc_end", rt_end as *const u8, 0, false),
            ("nfcc_bad", rt_bad as *const u8, 2, false),
        ];
        for (name, addr, _, _) in imports {
            jb.symbol(name, addr);
        }
        let mut module = JITModule::new(jb);
        let ptr = module.target_config().pointer_type();
        let decl = |m: &mut JITModule,
                    name: &str,
                    params: &[cranelift_codegen::ir::Type],
                    ret: bool,
                    linkage: Linkage|
         -> Result<FuncId, JitError> {
            let mut s = m.make_signature();
            s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
            if ret {
                s.returns.push(AbiParam::new(I64));
            }
            m.declare_function(name, linkage, &s).map_err(|e| cg(&e))
        };
        let mut rt_ids = Vec::with_capacity(imports.len());
        for (name, _, args, ret) in imports {
            let mut params = vec![ptr];
            params.extend(std::iter::repeat_n(I64, args));
            rt_ids.push(decl(&mut module, name, &params, ret, Linkage::Import)?);
        }
        // Every function: (state, r0, r1, …, r9, r10) -> r0.
        let mut fparams = vec![ptr];
        fparams.extend([I64; 11]);
        let mut ids = BTreeMap::new();
        for f in &funcs {
            let (name, linkage) = if f.entry == 0 {
                ("nfcc_prog".to_string(), Linkage::Export)
            } else {
                (format!("nfcc_fn_{}", f.entry), Linkage::Local)
            };
            ids.insert(f.entry, decl(&mut module, &name, &fparams, true, linkage)?);
        }

        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        let mut srclocs = Vec::new();
        for f in &funcs {
            ctx.func.signature.params.push(AbiParam::new(ptr));
            ctx.func.signature.params.extend([AbiParam::new(I64); 11]);
            ctx.func.signature.returns.push(AbiParam::new(I64));
            let tcfg = module.target_config();
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
                let mut r = |id| module.declare_func_in_func(id, b.func);
                let e: Vec<FuncRef> = rt_ids.iter().map(|id| r(*id)).collect();
                let rt = Rt {
                    load: e[0],
                    store: e[1],
                    atomic: e[2],
                    r0: e[3],
                    helper: e[4],
                    lookup: e[5],
                    lookup_small: e[6],
                    lookup_lpm: e[7],
                    enter: e[8],
                    budget: e[9],
                    end: e[10],
                    bad: e[11],
                };
                let callees: BTreeMap<usize, FuncRef> =
                    ids.iter().map(|(&e, &id)| (e, r(id))).collect();
                translate(
                    &mut b,
                    FxParts {
                        insns,
                        shapes,
                        rt,
                        callees: &callees,
                    },
                    f,
                )?;
                b.finalize(tcfg);
            }
            let dis = std::env::var_os("NFCC_JIT_DISASM").is_some();
            ctx.set_disasm(dis);
            module
                .define_function(ids[&f.entry], &mut ctx)
                .map_err(|e| cg(&e))?;
            if dis {
                if let Some(c) = ctx.compiled_code() {
                    eprintln!("{}", c.vcode.as_deref().unwrap_or(""));
                }
            }
            if std::env::var_os("NFCC_JIT_PERFMAP").is_some() {
                if let Some(c) = ctx.compiled_code() {
                    let v: Vec<(u32, u32, u32)> = c
                        .buffer
                        .get_srclocs_sorted()
                        .iter()
                        .map(|l| (l.start, l.end, l.loc.bits()))
                        .collect();
                    srclocs.push((ids[&f.entry], v));
                }
            }
            module.clear_context(&mut ctx);
        }
        module.finalize_definitions().map_err(|e| cg(&e))?;
        let code = module.get_finalized_function(ids[&0]);
        if !srclocs.is_empty() {
            use std::io::Write;
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(format!("/tmp/perf-{}.map", std::process::id()))
                .map_err(|e| cg(&e))?;
            for (id, locs) in srclocs {
                let base = module.get_finalized_function(id) as u64;
                for (a, e, pc) in locs {
                    let _ = writeln!(out, "{:x} {:x} ebpf_{pc}", base + u64::from(a), e - a);
                }
            }
        }
        // SAFETY: the function was declared with this signature (a pointer and ten i64s in,
        // i64 out, the platform's C convention).
        let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
        Ok(JitProgram {
            entry,
            shapes: shapes.to_vec(),
            _module: Arc::new(Mutex::new(module)),
        })
    }

    /// Runs the compiled code on a prepared machine; the result is r0, or the first fault.
    #[inline(always)]
    pub(crate) fn exec(&self, vm: &mut Vm<'_, '_>) -> Result<u64, EmuError> {
        let Some((ctx, ctx_len, maps, nmaps)) = vm.raw_ctx_and_maps(&self.shapes) else {
            return Err(EmuError::Jit(
                "the code was compiled for maps of other shapes".into(),
            ));
        };
        let (stack, pkt, pkt_lo, pkt_hi) = vm.raw_regions();
        let mut s = State {
            failed: 0,
            stack,
            pkt,
            pkt_lo,
            pkt_hi,
            ctx,
            ctx_len,
            maps,
            nmaps,
            vm,
            error: None,
        };
        let top = STACK_BASE + (FRAME * MAX_FRAMES) as u64;
        // SAFETY: the code reads the fields at the offsets above and passes the pointer back to
        // the entry points, which cast it to the same `State`; `s` and the buffers the table
        // points into outlive the call.
        let r0 = unsafe {
            (self.entry)(
                (&mut s as *mut State<'_, '_, '_>).cast::<u8>(),
                0,
                CTX_BASE,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                top,
            )
        };
        if s.failed != 0 {
            return Err(s.error.take().unwrap_or(EmuError::Fault {
                insn: 0,
                what: "the program ran past its end".into(),
            }));
        }
        Ok(r0)
    }
}

/// Compiles and runs `insns` once, like [`crate::vm::run`] does with the interpreter (for
/// tests that hold the two to each other).
pub fn run(
    insns: &[Ins],
    hook: crate::ProgType,
    maps: &mut [crate::maps::EmuMap],
    env: &mut crate::Env,
    frame: &[u8],
) -> Result<crate::vm::RunOutput, EmuError> {
    let shapes: Vec<MapShape> = maps.iter().map(MapShape::of).collect();
    let code = JitProgram::compile(insns, &shapes).map_err(|e| EmuError::Jit(e.to_string()))?;
    crate::vm::run_with(
        insns,
        hook,
        maps,
        env,
        frame,
        &mut crate::vm::Buffers::default(),
        |m| code.exec(m),
    )
}

/// The host address of the bytes an access covers, when it lies inside the stack, the packet
/// (`data` to `data_end`), the context (loads only) or one map value — the same rules as the
/// interpreter's checks; anything else (context stores, faults) takes `slow`.
fn fast_path(
    b: &mut FunctionBuilder<'_>,
    st: Value,
    addr: Value,
    size: i64,
    load: bool,
    fast: &mut dyn FnMut(&mut FunctionBuilder<'_>, Value) -> Option<Value>,
    slow: &mut dyn FnMut(&mut FunctionBuilder<'_>) -> Option<Value>,
) -> Option<Value> {
    let flags = MemFlagsData::trusted();
    let merge = b.create_block();
    let stack_blk = b.create_block();
    let not_stack = b.create_block();
    let pkt_blk = b.create_block();
    let slow_blk = b.create_block();
    let stack_size = (512 * 8) as i64;
    let off = b.ins().iadd_imm_s(addr, -(crate::vm::STACK_BASE as i64));
    let in_stack = b
        .ins()
        .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, off, stack_size - size);
    b.ins().brif(in_stack, stack_blk, &[], not_stack, &[]);

    b.switch_to_block(not_stack);
    let lo = b.ins().load(I64, flags, st, ST_PKT_LO);
    let hi = b.ins().load(I64, flags, st, ST_PKT_HI);
    let end = b.ins().iadd_imm_s(addr, size);
    let c1 = b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, addr, lo);
    let c2 = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, hi);
    // `end` must not wrap either.
    let c3 = b.ins().icmp(IntCC::UnsignedGreaterThan, end, addr);
    let c = b.ins().band(c1, c2);
    let c = b.ins().band(c, c3);
    let not_pkt = b.create_block();
    b.ins().brif(c, pkt_blk, &[], not_pkt, &[]);

    // The context, for loads (stores to it must pass the writability check).
    b.switch_to_block(not_pkt);
    let ctx_blk = b.create_block();
    let not_ctx = b.create_block();
    let coff = b.ins().iadd_imm_s(addr, -(crate::vm::CTX_BASE as i64));
    let clen = b.ins().load(I64, flags, st, ST_CTX_LEN);
    let cend = b.ins().iadd_imm_s(coff, size);
    let in_ctx = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, cend, clen);
    let not_wrapped = b.ins().icmp(IntCC::UnsignedGreaterThan, cend, coff);
    let in_ctx = b.ins().band(in_ctx, not_wrapped);
    if load {
        b.ins().brif(in_ctx, ctx_blk, &[], not_ctx, &[]);
    } else {
        b.ins().jump(not_ctx, &[]);
    }

    // A map value: within one value of the map's slab.
    b.switch_to_block(not_ctx);
    let map_blk = b.create_block();
    let map_hit = b.create_block();
    let hi32 = b.ins().ushr_imm_u(addr, 32);
    let idx = b.ins().iadd_imm_s(hi32, -0x100);
    let nmaps = b.ins().load(I64, flags, st, ST_NMAPS);
    let is_map = b.ins().icmp(IntCC::UnsignedLessThan, idx, nmaps);
    b.ins().brif(is_map, map_blk, &[], slow_blk, &[]);
    b.switch_to_block(map_blk);
    let table = b.ins().load(I64, flags, st, ST_MAPS);
    let ent_off = b.ins().imul_imm_u(idx, 24);
    let ent = b.ins().iadd(table, ent_off);
    let mptr = b.ins().load(I64, flags, ent, 0);
    let mlen = b.ins().load(I64, flags, ent, 8);
    let vs = b.ins().load(I64, flags, ent, 16);
    let moff = b.ins().band_imm_u(addr, 0xffff_ffff);
    let vs_ok = b.ins().icmp_imm_u(IntCC::NotEqual, vs, 0);
    let one = b.ins().iconst(I64, 1);
    let vs_safe = b.ins().select(vs_ok, vs, one);
    let within = b.ins().urem(moff, vs_safe);
    let wend = b.ins().iadd_imm_s(within, size);
    let in_value = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, wend, vs);
    let mend = b.ins().iadd_imm_s(moff, size);
    let in_slab = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, mend, mlen);
    let ok = b.ins().band(in_value, in_slab);
    let ok = b.ins().band(ok, vs_ok);
    b.ins().brif(ok, map_hit, &[], slow_blk, &[]);

    let mut results = Vec::new();
    b.switch_to_block(stack_blk);
    let sp = b.ins().load(I64, flags, st, ST_STACK);
    let p = b.ins().iadd(sp, off);
    results.push(fast(b, p));
    b.ins().jump(merge, &results_args(&results));

    b.switch_to_block(pkt_blk);
    let pp = b.ins().load(I64, flags, st, ST_PKT);
    let o = b.ins().iadd_imm_s(addr, -(crate::vm::PKT_BASE as i64));
    let p = b.ins().iadd(pp, o);
    let r = fast(b, p);
    b.ins().jump(merge, &results_args(&[r]));

    b.switch_to_block(ctx_blk);
    let cp = b.ins().load(I64, flags, st, ST_CTX);
    let p = b.ins().iadd(cp, coff);
    let r = fast(b, p);
    b.ins().jump(merge, &results_args(&[r]));

    b.switch_to_block(map_hit);
    let p = b.ins().iadd(mptr, moff);
    let r = fast(b, p);
    b.ins().jump(merge, &results_args(&[r]));

    b.switch_to_block(slow_blk);
    let r = slow(b);
    b.ins().jump(merge, &results_args(&[r]));

    let out = if results[0].is_some() {
        let v = b.append_block_param(merge, I64);
        Some(v)
    } else {
        None
    };
    b.switch_to_block(merge);
    out
}

fn results_args(v: &[Option<Value>]) -> Vec<cranelift_codegen::ir::BlockArg> {
    v.iter()
        .flatten()
        .map(|v| cranelift_codegen::ir::BlockArg::Value(*v))
        .collect()
}
