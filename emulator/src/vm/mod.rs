//! The interpreter: eBPF instructions over a checked memory model, with the helpers XDP and TC
//! programs call.
//!
//! Memory is a set of regions at fixed virtual addresses: the packet (below 4 GiB, so that the
//! 32-bit `data`/`data_end` fields of `xdp_md` and `__sk_buff` hold real pointers), the
//! context, the stack (512 bytes per call frame), and one region per map holding its value
//! slab. Every load and store is checked whole — start and end — against its region, and
//! packet accesses against `data..data_end`; anything else stops the run with the instruction
//! index, as the kernel's verifier would have refused the program. Atomic operations, 32-bit
//! jumps, sign-extending loads and moves, byte swaps and bpf-to-bpf calls are implemented.
//! The regions and the checks are in `mem`, which the JIT shares; this module is the
//! machine that runs on them, and the entry points JIT code calls back into it.

use crate::maps::{EmuMap, MapKind, MapShape};
use crate::mem::{
    Mem, FRAME, MAP_HANDLES, MAP_VALUES, MAX_FRAMES, SKB_CTX, SKB_WRITABLE, TAILROOM, XDP_CTX,
};
use crate::{EmuError, Env, Profile, ProgType};
use nfcc_bpf::Helper;

mod helpers;

// The address-space constants callers use to read a run's memory, where they always were.
pub use crate::mem::{CTX_BASE, HEADROOM, PKT_BASE, STACK_BASE};

/// The conformance suite's `unwind` helper (uBPF's), under [`Profile::Conformance`].
pub const UNWIND: i32 = 5;

/// Why a `callx` faults outside the conformance profile (the JIT says the same).
pub(crate) const CALLX_REFUSED: &str =
    "call by register (callx), which the kernel's verifier refuses:";

/// Instructions one run may execute before it is stopped.
pub const BUDGET: u64 = 4_000_000;

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ins {
    /// Opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl From<&nfcc_bpf::insn::Insn> for Ins {
    fn from(i: &nfcc_bpf::insn::Insn) -> Ins {
        Ins {
            code: i.code,
            dst: i.dst,
            src: i.src,
            off: i.off,
            imm: i.imm,
        }
    }
}

impl Ins {
    /// Decodes one 8-byte instruction (little-endian).
    pub fn decode(b: &[u8]) -> Ins {
        Ins {
            code: b[0],
            dst: b[1] & 0xf,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutput {
    /// r0 at exit (after the profile's verdict mapping).
    pub retval: u64,
    /// The packet from `data` to `data_end` at exit.
    pub data: Vec<u8>,
    /// `skb->mark` at exit (TC; 0 on XDP).
    pub mark: u32,
    /// The interface `bpf_redirect`/`bpf_redirect_map` chose, if any.
    pub redirect: Option<u32>,
    /// The receive queue whose AF_XDP socket `bpf_redirect_map` on an XSKMAP chose, if any.
    pub xsk: Option<u32>,
    /// Instructions executed.
    pub executed: u64,
}

/// Runs `insns` on `frame`.
pub fn run(
    insns: &[Ins],
    hook: ProgType,
    maps: &mut [EmuMap],
    env: &mut Env,
    frame: &[u8],
) -> Result<RunOutput, EmuError> {
    run_with(
        insns,
        hook,
        maps,
        env,
        frame,
        &mut Buffers::default(),
        |vm| vm.exec(),
    )
}

/// The packet, context and stack buffers of a run, kept between runs so that a packet costs
/// no allocation.
#[derive(Debug, Default)]
pub struct Buffers {
    /// Zero outside `pkt_dirty` between runs, so a run clears only what the last one touched.
    pkt: Vec<u8>,
    pkt_dirty: (usize, usize),
    ctx: Vec<u8>,
    stack: Vec<u8>,
    /// Each map's value slab, as JIT code sees it.
    slabs: Vec<[u64; 3]>,
    /// The maps (address and count of the slice) `slabs` describes, checked against the JIT
    /// code's shapes: an emulator's maps and their slabs never move, so the table is built
    /// once. A copy of the buffers (a copy of the emulator, with other maps) starts without.
    slabs_for: Option<(usize, usize)>,
}

impl Clone for Buffers {
    fn clone(&self) -> Buffers {
        Buffers {
            pkt: self.pkt.clone(),
            pkt_dirty: self.pkt_dirty,
            ctx: self.ctx.clone(),
            stack: self.stack.clone(),
            slabs: Vec::new(),
            slabs_for: None,
        }
    }
}

/// Sets up a run's memory and context, executes it with `exec` (the interpreter, or JIT code
/// working on the same machine state), and collects the result.
pub(crate) fn run_with(
    insns: &[Ins],
    hook: ProgType,
    maps: &mut [EmuMap],
    env: &mut Env,
    frame: &[u8],
    bufs: &mut Buffers,
    exec: impl FnMut(&mut Vm<'_, '_>) -> Result<u64, EmuError>,
) -> Result<RunOutput, EmuError> {
    let o = run_core(insns, hook, maps, env, frame, bufs, 1, exec)?;
    Ok(o.view(bufs).to_output())
}

/// [`run_with`] `repeat` times on one prepared machine, as `BPF_PROG_TEST_RUN`'s repeat does
/// (the frame, its bounds and the context restored before each run; maps, clock and random
/// state carry over), leaving the last run's output packet in `bufs`.
#[allow(clippy::too_many_arguments)]
// Reason: the run's parts, as `run_with` takes them, plus the count.
#[inline(always)]
pub(crate) fn run_core(
    insns: &[Ins],
    hook: ProgType,
    maps: &mut [EmuMap],
    env: &mut Env,
    frame: &[u8],
    bufs: &mut Buffers,
    repeat: u32,
    mut exec: impl FnMut(&mut Vm<'_, '_>) -> Result<u64, EmuError>,
) -> Result<Outcome, EmuError> {
    let Buffers {
        pkt,
        pkt_dirty,
        ctx,
        stack,
        slabs,
        slabs_for,
    } = bufs;
    let maps_key = (maps.as_ptr() as usize, maps.len());
    let slabs_checked = *slabs_for == Some(maps_key);
    // Headroom and tailroom must read as zero: clear what the last run touched, then the
    // buffer is zero but for the frame copied in.
    let (lo, hi) = *pkt_dirty;
    let hi = hi.min(pkt.len()).max(lo);
    if let Some(d) = pkt.get_mut(lo..hi) {
        d.fill(0);
    }
    pkt.resize(HEADROOM + frame.len() + TAILROOM, 0);
    pkt[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let ctx_len = if hook == ProgType::Xdp {
        XDP_CTX
    } else {
        SKB_CTX
    };
    if ctx.len() != ctx_len {
        ctx.clear();
        ctx.resize(ctx_len, 0);
    } else if hook == ProgType::Tc {
        // Only the fields a TC program may write can differ from the last run's; the rest
        // are all set below. (An XDP program cannot write its context.)
        for (a, b) in SKB_WRITABLE {
            ctx[a..b].fill(0);
        }
    }
    // Only the entry frame is cleared: a callee's frame is cleared when it is entered.
    stack.resize(FRAME * MAX_FRAMES, 0);
    // A fixed-size clear: inline vector stores rather than a call.
    if let Some(top) = stack
        .get_mut(FRAME * (MAX_FRAMES - 1)..)
        .and_then(|t| <&mut [u8; FRAME]>::try_from(t).ok())
    {
        *top = [0; FRAME];
    }
    let mut mem = Mem {
        pkt,
        data: HEADROOM,
        data_end: HEADROOM + frame.len(),
        touched: (HEADROOM, HEADROOM + frame.len()),
        ctx,
        hook,
        stack,
        maps,
    };
    mem.sync_ctx();
    let put32 = |ctx: &mut [u8], off: usize, v: u32| {
        ctx[off..off + 4].copy_from_slice(&v.to_le_bytes());
    };
    match hook {
        ProgType::Xdp => {
            put32(mem.ctx, 12, env.ifindex);
            put32(mem.ctx, 16, env.rxq);
        }
        ProgType::Tc => {
            put32(mem.ctx, 8, env.mark);
            // skb->protocol: the frame's ethertype, as eth_type_trans sets it.
            let protocol = match frame.get(12..14) {
                Some(t) => u32::from(u16::from_le_bytes([t[0], t[1]])),
                None => 0,
            };
            put32(mem.ctx, 16, protocol);
            put32(mem.ctx, 36, env.ifindex);
            put32(mem.ctx, 40, env.ifindex);
        }
    }
    let mut vm = Vm {
        insns,
        mem,
        env,
        regs: [0; 11],
        frames: Vec::new(),
        redirect: None,
        xsk: None,
        executed: 0,
        slabs,
        slabs_checked,
        unwound: false,
    };
    let mut r0 = exec(&mut vm);
    if vm.slabs_checked {
        *slabs_for = Some(maps_key);
    }
    for _ in 1..repeat {
        if r0.is_err() {
            break;
        }
        vm.reset(frame);
        r0 = exec(&mut vm);
    }
    // Even after a fault: the buffer stays, and the next run clears what this one touched.
    // Field by field: the two were just stored one by one, and one wide load of both would
    // stall waiting for those stores.
    *pkt_dirty = (
        std::hint::black_box(vm.mem.touched.0),
        std::hint::black_box(vm.mem.touched.1),
    );
    let r0 = r0?;
    let retval = match (vm.env.profile, hook) {
        // The NIC cannot redirect; the driver drops such packets (XDP_ABORTED).
        (Profile::Nfp, ProgType::Xdp) if r0 == 4 => 0,
        _ => r0,
    };
    let mark = if hook == ProgType::Tc {
        u32::from_le_bytes([vm.mem.ctx[8], vm.mem.ctx[9], vm.mem.ctx[10], vm.mem.ctx[11]])
    } else {
        0
    };
    Ok(Outcome {
        retval,
        data: vm.mem.data..vm.mem.data_end,
        mark,
        redirect: vm.redirect,
        xsk: vm.xsk,
        executed: vm.executed,
    })
}

/// A run's result with the output packet left in the buffers (`data`: its range in them).
pub(crate) struct Outcome {
    retval: u64,
    data: std::ops::Range<usize>,
    mark: u32,
    redirect: Option<u32>,
    xsk: Option<u32>,
    executed: u64,
}

impl Outcome {
    /// The result, the packet borrowed from the buffers the run used.
    pub(crate) fn view<'b>(&self, bufs: &'b Buffers) -> RunRef<'b> {
        RunRef {
            retval: self.retval,
            data: bufs.pkt.get(self.data.clone()).unwrap_or(&[]),
            mark: self.mark,
            redirect: self.redirect,
            xsk: self.xsk,
            executed: self.executed,
        }
    }
}

/// What one run produced, the packet borrowed from the emulator's buffers (valid until the
/// next run): a run without copying its output out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRef<'a> {
    /// r0 at exit (after the profile's verdict mapping).
    pub retval: u64,
    /// The packet from `data` to `data_end` at exit.
    pub data: &'a [u8],
    /// `skb->mark` at exit (TC; 0 on XDP).
    pub mark: u32,
    /// The interface `bpf_redirect`/`bpf_redirect_map` chose, if any.
    pub redirect: Option<u32>,
    /// The receive queue whose AF_XDP socket `bpf_redirect_map` on an XSKMAP chose, if any.
    pub xsk: Option<u32>,
    /// Instructions executed.
    pub executed: u64,
}

impl RunRef<'_> {
    /// An owned copy.
    pub fn to_output(&self) -> RunOutput {
        RunOutput {
            retval: self.retval,
            data: self.data.to_vec(),
            mark: self.mark,
            redirect: self.redirect,
            xsk: self.xsk,
            executed: self.executed,
        }
    }
}

/// The machine state of one run: memory, environment, registers.
pub(crate) struct Vm<'a, 'm> {
    insns: &'a [Ins],
    mem: Mem<'m>,
    env: &'a mut Env,
    pub(crate) regs: [u64; 11],
    /// Return address and saved r6–r9 of each bpf-to-bpf call.
    frames: Vec<(usize, [u64; 4])>,
    redirect: Option<u32>,
    /// The queue of the AF_XDP socket an XSKMAP redirect chose.
    xsk: Option<u32>,
    pub(crate) executed: u64,
    /// Map slabs for JIT code (a buffer kept from run to run).
    pub(crate) slabs: &'m mut Vec<[u64; 3]>,
    /// Whether `slabs` is filled and the maps' shapes were checked for this machine.
    slabs_checked: bool,
    /// Set when the conformance suite's `unwind` helper got 0: the run stops, r0 = 0.
    pub(crate) unwound: bool,
}

fn sx(v: u64, bits: u32) -> u64 {
    let s = 64 - bits;
    (((v << s) as i64) >> s) as u64
}

impl Vm<'_, '_> {
    pub(crate) fn fault(&self, pc: usize, what: impl Into<String>) -> EmuError {
        EmuError::Fault {
            insn: pc,
            what: what.into(),
        }
    }

    fn frame_top(&self) -> u64 {
        STACK_BASE + (FRAME * (MAX_FRAMES - self.frames.len())) as u64
    }

    /// Host addresses and bounds for JIT code's inline accesses: the stack buffer, the packet
    /// buffer (at virtual `PKT_BASE`), and the virtual `data`/`data_end`. The buffers are not
    /// reallocated during a run; the bounds change with `bpf_xdp_adjust_head/tail`.
    #[inline(always)]
    pub(crate) fn raw_regions(&mut self) -> (u64, u64, u64, u64) {
        (
            self.mem.stack.as_mut_ptr() as u64,
            self.mem.pkt.as_mut_ptr() as u64,
            // Each bound read on its own: the two were just stored one by one, and one wide
            // load of both would stall waiting for those stores.
            PKT_BASE + std::hint::black_box(self.mem.data) as u64,
            PKT_BASE + std::hint::black_box(self.mem.data_end) as u64,
        )
    }

    /// The context buffer's host address and length, and the table of map value slabs (host
    /// address, length, value size of each) and its length, for JIT code's inline accesses;
    /// `None` unless the maps have the shapes the code was compiled for. The table stays put
    /// until the next call.
    #[inline(always)]
    pub(crate) fn raw_ctx_and_maps(&mut self, shapes: &[MapShape]) -> Option<(u64, u64, u64, u64)> {
        // The maps cannot change during the machine's life: one check and one table will do.
        // (Callers hand JIT code the maps it was compiled for; the check is cheap insurance.)
        if !self.slabs_checked {
            if self.mem.maps.len() != shapes.len() {
                return None;
            }
            self.slabs.clear();
            let mut same = true;
            for (m, s) in self.mem.maps.iter_mut().zip(shapes) {
                same &= MapShape::of(m) == *s;
                self.slabs.push([
                    m.slab.as_mut_ptr() as u64,
                    m.slab.len() as u64,
                    m.value_size as u64,
                ]);
            }
            if !same {
                return None;
            }
            self.slabs_checked = true;
        }
        Some((
            self.mem.ctx.as_mut_ptr() as u64,
            self.mem.ctx.len() as u64,
            self.slabs.as_ptr() as u64,
            self.slabs.len() as u64,
        ))
    }

    /// Restores the frame, its bounds, the context fields a program may change, and the
    /// registers, for another run on the same machine.
    #[inline(always)]
    fn reset(&mut self, frame: &[u8]) {
        let (lo, hi) = self.mem.touched;
        let hi = hi.min(self.mem.pkt.len()).max(lo);
        self.mem.pkt[lo..hi].fill(0);
        self.mem.pkt.resize(HEADROOM + frame.len() + TAILROOM, 0);
        self.mem.pkt[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        self.mem.data = HEADROOM;
        self.mem.data_end = HEADROOM + frame.len();
        self.mem.touched = (self.mem.data, self.mem.data_end);
        self.mem.sync_ctx();
        if self.mem.hook == ProgType::Tc {
            // The writable fields (mark, queue_mapping, priority, tc_index, cb, tc_classid)
            // go back to their starting values.
            for (a, b) in SKB_WRITABLE {
                self.mem.ctx[a..b].fill(0);
            }
            self.mem.ctx[8..12].copy_from_slice(&self.env.mark.to_le_bytes());
        }
        self.regs = [0; 11];
        self.frames.clear();
        self.redirect = None;
        self.xsk = None;
        self.executed = 0;
        self.unwound = false;
    }

    /// r1 and r2 at entry: the context (and nothing), or under the conformance profile the
    /// memory block (the packet region; 0 when empty) and its length.
    #[inline(always)]
    pub(crate) fn entry_regs(&self) -> (u64, u64) {
        if self.env.profile != Profile::Conformance {
            return (CTX_BASE, 0);
        }
        let len = (self.mem.data_end - self.mem.data) as u64;
        let at = if len == 0 {
            0
        } else {
            PKT_BASE + self.mem.data as u64
        };
        (at, len)
    }

    /// Whether this machine runs bare programs (the conformance profile).
    pub(crate) fn is_bare(&self) -> bool {
        self.env.profile == Profile::Conformance
    }

    /// The helper id of a `callx` through register `r`: only the conformance suite's runner
    /// calls by register; the kernel's verifier refuses the instruction.
    fn callx(&self, pc: usize, r: usize) -> Result<i32, EmuError> {
        if self.env.profile != Profile::Conformance {
            return Err(self.fault(pc, format!("{} {:#x}", CALLX_REFUSED, self.insn_code(pc))));
        }
        Ok(self.regs[r] as i32)
    }

    /// The opcode of instruction `pc` (0 past the end), for fault messages.
    pub(crate) fn insn_code(&self, pc: usize) -> u8 {
        self.insns.get(pc).map_or(0, |i| i.code)
    }

    /// The program's length in instructions.
    pub(crate) fn insns_len(&self) -> usize {
        self.insns.len()
    }

    /// A load for JIT code: the value, or the fault.
    pub(crate) fn jit_load(&mut self, pc: usize, addr: u64, size: usize) -> Result<u64, EmuError> {
        self.mem.load(addr, size).ok_or_else(|| {
            self.fault(
                pc,
                format!("load of {size} bytes at {addr:#x} outside any object"),
            )
        })
    }

    /// A store for JIT code.
    pub(crate) fn jit_store(
        &mut self,
        pc: usize,
        addr: u64,
        size: usize,
        v: u64,
    ) -> Result<(), EmuError> {
        self.mem.store(addr, size, v).ok_or_else(|| {
            self.fault(
                pc,
                format!("store of {size} bytes at {addr:#x} outside any writable object"),
            )
        })
    }

    /// An atomic for JIT code: registers `src` and r0 are read from and written to `regs`.
    pub(crate) fn jit_atomic(&mut self, pc: usize, addr: u64) -> Result<(), EmuError> {
        let i = self.insns[pc];
        self.atomic(pc, i, addr, size_of(i.code))
    }

    /// A helper call for JIT code: arguments in `regs[1..6]`, the result returned.
    pub(crate) fn jit_helper(&mut self, pc: usize, id: i32) -> Result<u64, EmuError> {
        self.helper(pc, id)
    }

    /// `bpf_map_lookup_elem` on map `m` for JIT code, which knew the map when it compiled.
    /// (The NIC has map lookups, so no profile check is due.)
    pub(crate) fn jit_lookup(&mut self, pc: usize, m: usize, key: u64) -> Result<u64, EmuError> {
        self.lookup(pc, m, key)
    }

    /// `bpf_map_lookup_elem` on hash map `m` for JIT code that read the key (at most 16
    /// bytes, little-endian in `key`) itself: the value's address, or 0.
    pub(crate) fn jit_lookup_small(&mut self, m: usize, key: u128) -> u64 {
        let Some(map) = self.mem.maps.get_mut(m) else {
            return 0;
        };
        match map.slot_of_small(key) {
            Some(slot) => ((MAP_VALUES + m as u64) << 32) + (slot * map.value_size) as u64,
            None => 0,
        }
    }

    /// `bpf_map_lookup_elem` on LPM trie `m` (4 or 16 data bytes) for JIT code that read the
    /// key itself: its prefix length and its data as two little-endian words.
    pub(crate) fn jit_lookup_lpm(&mut self, m: usize, len: u32, d0: u64, d1: u64) -> u64 {
        let Some(map) = self.mem.maps.get_mut(m) else {
            return 0;
        };
        match map.slot_of_lpm(len, d0, d1) {
            Some(slot) => ((MAP_VALUES + m as u64) << 32) + (slot * map.value_size) as u64,
            None => 0,
        }
    }

    /// Entering a bpf-to-bpf callee whose frame ends at `top` for JIT code: the same depth
    /// limit as the interpreter's, and the frame cleared.
    pub(crate) fn jit_enter(&mut self, pc: usize, top: u64) -> Result<(), EmuError> {
        // The interpreter refuses the eighth frame, whose top would be the stack's start.
        let lo = top
            .checked_sub(STACK_BASE + FRAME as u64)
            .filter(|_| top > STACK_BASE)
            .map(|lo| lo as usize);
        match lo.and_then(|lo| self.mem.stack.get_mut(lo..lo + FRAME)) {
            Some(f) => {
                f.fill(0);
                Ok(())
            }
            None => Err(self.fault(pc, "call stack too deep")),
        }
    }

    pub(crate) fn exec(&mut self) -> Result<u64, EmuError> {
        (self.regs[1], self.regs[2]) = self.entry_regs();
        self.regs[10] = self.frame_top();
        let mut pc = 0usize;
        loop {
            let Some(&i) = self.insns.get(pc) else {
                return Err(self.fault(pc, "ran past the end of the program"));
            };
            self.executed += 1;
            if self.executed > BUDGET {
                return Err(EmuError::Budget(BUDGET));
            }
            let class = i.code & 7;
            let (d, s) = (i.dst as usize, i.src as usize);
            if d > 10 || s > 10 {
                return Err(self.fault(pc, "bad register"));
            }
            match class {
                0x04 | 0x07 => {
                    let wide = class == 0x07;
                    self.alu(pc, i, wide)?;
                    pc += 1;
                }
                0x05 | 0x06 => {
                    let op = i.code & 0xf0;
                    match op {
                        0x80 => {
                            if class == 0x06 {
                                return Err(self.fault(pc, "call in jmp32 class"));
                            }
                            match i.src {
                                0 => {
                                    let id = if i.code & 0x08 != 0 {
                                        self.callx(pc, d)?
                                    } else {
                                        i.imm
                                    };
                                    let r = self.helper(pc, id)?;
                                    if self.unwound {
                                        return Ok(0);
                                    }
                                    self.regs[0] = r;
                                    // r1–r5 are clobbered (the verifier refuses reading
                                    // them); zero them, as the JIT does.
                                    self.regs[1..6].fill(0);
                                    pc += 1;
                                }
                                1 => {
                                    if self.frames.len() + 1 >= MAX_FRAMES {
                                        return Err(self.fault(pc, "call stack too deep"));
                                    }
                                    let saved =
                                        [self.regs[6], self.regs[7], self.regs[8], self.regs[9]];
                                    self.frames.push((pc + 1, saved));
                                    self.regs[10] = self.frame_top();
                                    let lo = (self.regs[10] - STACK_BASE) as usize - FRAME;
                                    self.mem.stack[lo..lo + FRAME].fill(0);
                                    pc = (pc as i64 + 1 + i64::from(i.imm)) as usize;
                                }
                                _ => return Err(self.fault(pc, "kfunc calls are not emulated")),
                            }
                        }
                        0x90 => match self.frames.pop() {
                            None => return Ok(self.regs[0]),
                            Some((ret, saved)) => {
                                self.regs[1..6].fill(0);
                                self.regs[6..10].copy_from_slice(&saved);
                                self.regs[10] = self.frame_top();
                                pc = ret;
                            }
                        },
                        0x00 => {
                            let off = if class == 0x06 {
                                i64::from(i.imm)
                            } else {
                                i64::from(i.off)
                            };
                            pc = (pc as i64 + 1 + off) as usize;
                        }
                        _ => {
                            let a = self.regs[d];
                            let b = if i.code & 0x08 != 0 {
                                self.regs[s]
                            } else {
                                i.imm as i64 as u64
                            };
                            let (a, b) = if class == 0x06 {
                                (a & 0xffff_ffff, b & 0xffff_ffff)
                            } else {
                                (a, b)
                            };
                            let bits = if class == 0x06 { 32 } else { 64 };
                            let (sa, sb) = (sx(a, bits) as i64, sx(b, bits) as i64);
                            let taken = match op {
                                0x10 => a == b,
                                0x20 => a > b,
                                0x30 => a >= b,
                                0x40 => a & b != 0,
                                0x50 => a != b,
                                0x60 => sa > sb,
                                0x70 => sa >= sb,
                                0xa0 => a < b,
                                0xb0 => a <= b,
                                0xc0 => sa < sb,
                                0xd0 => sa <= sb,
                                _ => {
                                    return Err(
                                        self.fault(pc, format!("bad jump opcode {:#x}", i.code))
                                    )
                                }
                            };
                            pc = if taken {
                                (pc as i64 + 1 + i64::from(i.off)) as usize
                            } else {
                                pc + 1
                            };
                        }
                    }
                }
                0x00 => {
                    // ld_imm64 (the only LD form eBPF keeps).
                    if i.code != 0x18 {
                        return Err(self.fault(pc, format!("unsupported load {:#x}", i.code)));
                    }
                    let Some(next) = self.insns.get(pc + 1) else {
                        return Err(self.fault(pc, "truncated ld_imm64"));
                    };
                    let v = match i.src {
                        0 => (i.imm as u32 as u64) | ((next.imm as u32 as u64) << 32),
                        1 => (MAP_HANDLES << 32) | (i.imm as u32 as u64),
                        2 => ((MAP_VALUES + i.imm as u32 as u64) << 32) + next.imm as u32 as u64,
                        _ => return Err(self.fault(pc, "unsupported ld_imm64 source")),
                    };
                    self.regs[d] = v;
                    pc += 2;
                }
                0x01 => {
                    let size = size_of(i.code);
                    let addr = self.regs[s].wrapping_add(i.off as i64 as u64);
                    let Some(v) = self.mem.load(addr, size) else {
                        return Err(self.fault(
                            pc,
                            format!("load of {size} bytes at {addr:#x} outside any object"),
                        ));
                    };
                    self.regs[d] = match i.code & 0xe0 {
                        0x60 => v,
                        0x80 => sx(v, 8 * size as u32),
                        _ => return Err(self.fault(pc, format!("bad load mode {:#x}", i.code))),
                    };
                    pc += 1;
                }
                0x02 | 0x03 => {
                    let size = size_of(i.code);
                    let addr = self.regs[d].wrapping_add(i.off as i64 as u64);
                    if class == 0x03 && i.code & 0xe0 == 0xc0 {
                        self.atomic(pc, i, addr, size)?;
                    } else {
                        let v = if class == 0x02 {
                            i.imm as i64 as u64
                        } else {
                            self.regs[s]
                        };
                        if self.mem.store(addr, size, v).is_none() {
                            return Err(self.fault(pc, format!("store of {size} bytes at {addr:#x} outside any writable object")));
                        }
                    }
                    pc += 1;
                }
                _ => return Err(self.fault(pc, format!("bad opcode {:#x}", i.code))),
            }
        }
    }

    fn alu(&mut self, pc: usize, i: Ins, wide: bool) -> Result<(), EmuError> {
        let (d, s) = (i.dst as usize, i.src as usize);
        let op = i.code & 0xf0;
        let reg_src = i.code & 0x08 != 0;
        let a = self.regs[d];
        let b = if reg_src {
            self.regs[s]
        } else {
            i.imm as i64 as u64
        };
        let bits: u32 = if wide { 64 } else { 32 };
        let trunc = |v: u64| if wide { v } else { v & 0xffff_ffff };
        let (a, b) = (trunc(a), trunc(b));
        let signed = i.off == 1;
        let r = match op {
            0x00 => a.wrapping_add(b),
            0x10 => a.wrapping_sub(b),
            0x20 => a.wrapping_mul(b),
            0x30 if signed => {
                let (x, y) = (sx(a, bits) as i64, sx(b, bits) as i64);
                if y == 0 {
                    0
                } else {
                    x.wrapping_div(y) as u64
                }
            }
            0x30 => a.checked_div(b).unwrap_or(0),
            0x40 => a | b,
            0x50 => a & b,
            0x60 => a.wrapping_shl((b & u64::from(bits - 1)) as u32),
            0x70 => a.wrapping_shr((b & u64::from(bits - 1)) as u32),
            0x80 => (a as i64).wrapping_neg() as u64,
            0x90 if signed => {
                let (x, y) = (sx(a, bits) as i64, sx(b, bits) as i64);
                if y == 0 {
                    a
                } else {
                    x.wrapping_rem(y) as u64
                }
            }
            0x90 => {
                if b == 0 {
                    a
                } else {
                    a % b
                }
            }
            0xa0 => a ^ b,
            0xb0 => match i.off {
                0 => b,
                8 | 16 | 32 => sx(b, i.off as u32),
                _ => return Err(self.fault(pc, "bad sign-extending move")),
            },
            0xc0 => (sx(a, bits) as i64).wrapping_shr((b & u64::from(bits - 1)) as u32) as u64,
            0xd0 => {
                let width = i.imm as u32;
                if !matches!(width, 16 | 32 | 64) {
                    return Err(self.fault(pc, "bad byte swap width"));
                }
                let v = self.regs[d];
                let swap = wide || reg_src;
                let r = match (width, swap) {
                    (16, true) => u64::from((v as u16).swap_bytes()),
                    (32, true) => u64::from((v as u32).swap_bytes()),
                    (64, true) => v.swap_bytes(),
                    (16, false) => v & 0xffff,
                    (32, false) => v & 0xffff_ffff,
                    _ => v,
                };
                self.regs[d] = r;
                return Ok(());
            }
            _ => return Err(self.fault(pc, format!("bad alu opcode {:#x}", i.code))),
        };
        self.regs[d] = trunc(r);
        Ok(())
    }

    fn atomic(&mut self, pc: usize, i: Ins, addr: u64, size: usize) -> Result<(), EmuError> {
        if size != 4 && size != 8 {
            return Err(self.fault(pc, "atomics are 32 or 64 bits"));
        }
        if self.env.profile == Profile::Nfp && i.imm != 0 {
            return Err(EmuError::NicLacks(format!("atomic operation {:#x}", i.imm)));
        }
        let Some(old) = self.mem.load(addr, size) else {
            return Err(self.fault(pc, format!("atomic at {addr:#x} outside any object")));
        };
        let s = i.src as usize;
        let mask = if size == 8 { u64::MAX } else { 0xffff_ffff };
        let v = self.regs[s] & mask;
        let fetch = i.imm & 1 != 0;
        let new = match i.imm & !1 {
            0x00 => old.wrapping_add(v),
            0x40 => old | v,
            0x50 => old & v,
            0xa0 => old ^ v,
            0xe0 => v,
            0xf0 => {
                // cmpxchg: compare with r0, store when equal, r0 gets the old value.
                let new = if old == self.regs[0] & mask { v } else { old };
                self.regs[0] = old;
                if self.mem.store(addr, size, new & mask).is_none() {
                    return Err(self.fault(pc, "atomic store outside a writable object"));
                }
                return Ok(());
            }
            _ => return Err(self.fault(pc, format!("bad atomic {:#x}", i.imm))),
        };
        if self.mem.store(addr, size, new & mask).is_none() {
            return Err(self.fault(pc, "atomic store outside a writable object"));
        }
        if fetch || i.imm == 0xe1 {
            self.regs[s] = old;
        }
        Ok(())
    }

    fn map_index(&self, pc: usize, handle: u64) -> Result<usize, EmuError> {
        if handle >> 32 != MAP_HANDLES || (handle & 0xffff_ffff) as usize >= self.mem.maps.len() {
            return Err(self.fault(pc, format!("{handle:#x} is not a map")));
        }
        Ok((handle & 0xffff_ffff) as usize)
    }

    fn read(&mut self, pc: usize, addr: u64, len: usize) -> Result<Vec<u8>, EmuError> {
        // An empty buffer may be NULL (`bpf_csum_diff(NULL, 0, ...)`), as in the kernel.
        if len == 0 {
            return Ok(Vec::new());
        }
        self.mem.read_vec(addr, len).ok_or_else(|| {
            self.fault(
                pc,
                format!("helper argument of {len} bytes at {addr:#x} outside any object"),
            )
        })
    }

    /// `bpf_map_lookup_elem(map m, key at addr)`: the value's address, or 0.
    fn lookup(&mut self, pc: usize, m: usize, addr: u64) -> Result<u64, EmuError> {
        let (key_size, array) = (self.mem.maps[m].key_size, self.mem.maps[m].kind.is_array());
        let slot = if array && key_size == 4 {
            // Arrays are indexed directly: no key copy, no hashing.
            let Some(i) = self.mem.load(addr, 4) else {
                return Err(self.fault(pc, "array index outside any object"));
            };
            let map = &self.mem.maps[m];
            (map.kind.has_values() && (i as usize) < map.max_entries).then_some(i as usize)
        } else if key_size <= 64 {
            // The key may live in another map's value: copy it out, without allocating.
            let mut buf = [0u8; 64];
            let Some(key) = self.mem.bytes(addr, key_size, false) else {
                return Err(self.fault(
                    pc,
                    format!("helper argument of {key_size} bytes at {addr:#x} outside any object"),
                ));
            };
            buf[..key_size].copy_from_slice(key);
            self.mem.maps[m].slot_of(&buf[..key_size])
        } else {
            let key = self.read(pc, addr, key_size)?;
            self.mem.maps[m].slot_of(&key)
        };
        let map = &self.mem.maps[m];
        Ok(match slot {
            Some(slot) => ((MAP_VALUES + m as u64) << 32) + (slot * map.value_size) as u64,
            None => 0,
        })
    }
}

fn size_of(code: u8) -> usize {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}
