//! The boundary between Rust and the generated code: the run state the code receives and its
//! layout, the runtime entry points the code calls back, the table that hands them to the JIT
//! module, and the call into the compiled code.
//!
//! Every `unsafe` of the JIT is here, but for the statement of `JitProgram::compile` that
//! hands this module the compiled entry (`Code::new`). The generated code is entered with a
//! pointer to a [`State`] and passes that pointer, unchanged, as the first argument of every
//! call it makes into an entry point (`translate` gives each call `fx.st`, the entry
//! function's first parameter, which callees receive in turn); each entry point turns it back
//! into the `State` with [`state`], whose contract is that pointer.
#![allow(unsafe_code)]
// Reason: JIT code is entered through a function pointer and calls back into Rust with a raw
// pointer to the run state; both sides are confined to this module.
#![deny(unsafe_op_in_unsafe_fn)]

use crate::maps::MapShape;
use crate::mem::{FRAME, MAX_FRAMES, STACK_BASE};
use crate::vm::{Vm, BUDGET, CALLX_REFUSED};
use crate::EmuError;
use cranelift_jit::JITModule;
use std::sync::{Arc, Mutex};

/// The run state JIT code receives: a fault flag it tests, and the machine.
#[repr(C)]
pub(super) struct State<'v, 'a, 'm> {
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
pub(super) const ST_STACK: i32 = 8;
pub(super) const ST_PKT: i32 = 16;
pub(super) const ST_PKT_LO: i32 = 24;
pub(super) const ST_PKT_HI: i32 = 32;
pub(super) const ST_CTX: i32 = 40;
pub(super) const ST_CTX_LEN: i32 = 48;
pub(super) const ST_MAPS: i32 = 56;
pub(super) const ST_NMAPS: i32 = 64;

// The generated code reads the fields at these offsets (and the fault flag at 0): a layout
// that disagreed would not compile.
const _: () = {
    type S = State<'static, 'static, 'static>;
    assert!(std::mem::offset_of!(S, failed) == 0);
    assert!(std::mem::offset_of!(S, stack) == ST_STACK as usize);
    assert!(std::mem::offset_of!(S, pkt) == ST_PKT as usize);
    assert!(std::mem::offset_of!(S, pkt_lo) == ST_PKT_LO as usize);
    assert!(std::mem::offset_of!(S, pkt_hi) == ST_PKT_HI as usize);
    assert!(std::mem::offset_of!(S, ctx) == ST_CTX as usize);
    assert!(std::mem::offset_of!(S, ctx_len) == ST_CTX_LEN as usize);
    assert!(std::mem::offset_of!(S, maps) == ST_MAPS as usize);
    assert!(std::mem::offset_of!(S, nmaps) == ST_NMAPS as usize);
};

/// Every function of a program is `(state, r0, r1, …, r9, r10) -> r0`: a callee starts with the
/// caller's registers, as in the interpreter (the verifier lets it read only r1–r5 and r10);
/// the entry gets r1 = the context and r10 = the top frame's end.
type Entry =
    unsafe extern "C" fn(*mut u8, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64) -> u64;

/// Compiled code: its entry function, and the module that owns the code's memory, so that the
/// memory lives as long as the entry.
pub(super) struct Code {
    entry: Entry,
    _module: Arc<Mutex<JITModule>>,
}

// SAFETY: the generated code is immutable once finalized and touches only the state it is
// given; the module is only kept alive, never used again.
unsafe impl Send for Code {}
// SAFETY: as for `Send`: nothing is shared but immutable code.
unsafe impl Sync for Code {}

impl Code {
    /// Takes ownership of `module` and of its function at `entry`.
    ///
    /// # Safety
    ///
    /// `entry` must be the address of a function of `module`, finalized, that was declared
    /// with [`Entry`]'s signature (a pointer and eleven i64s in, i64 out, the platform's C
    /// convention) and calls the entry points only as this module's doc says.
    pub(super) unsafe fn new(module: JITModule, entry: *const u8) -> Code {
        // SAFETY: the function has this signature (the caller's contract).
        let entry = unsafe { std::mem::transmute::<*const u8, Entry>(entry) };
        Code {
            entry,
            _module: Arc::new(Mutex::new(module)),
        }
    }

    /// Runs the code on a prepared machine whose maps have `shapes`; the result is r0, or the
    /// first fault.
    #[inline(always)]
    pub(super) fn run(&self, vm: &mut Vm<'_, '_>, shapes: &[MapShape]) -> Result<u64, EmuError> {
        let Some((ctx, ctx_len, maps, nmaps)) = vm.raw_ctx_and_maps(shapes) else {
            return Err(EmuError::Jit(
                "the code was compiled for maps of other shapes".into(),
            ));
        };
        let (stack, pkt, pkt_lo, pkt_hi) = vm.raw_regions();
        let (r1, r2) = vm.entry_regs();
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
        // SAFETY: `entry` has this signature and its module is alive (`Code::new`'s contract,
        // and `self` holds the module). The code reads the fields at the offsets above and
        // passes the pointer back to the entry points, which cast it to the same `State`;
        // `s` is not touched until the call returns, and it and the buffers the table points
        // into outlive the call.
        let r0 = unsafe {
            (self.entry)(
                (&mut s as *mut State<'_, '_, '_>).cast::<u8>(),
                0,
                r1,
                r2,
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
            // The conformance suite's `unwind` stops the run as a fault does, without one.
            if s.error.is_none() && s.vm.unwound {
                return Ok(0);
            }
            return Err(s.error.take().unwrap_or(EmuError::Fault {
                insn: 0,
                what: "the program ran past its end".into(),
            }));
        }
        Ok(r0)
    }
}

/// The run state behind the pointer an entry point receives.
///
/// # Safety
///
/// `p` must be the pointer [`Code::run`] entered the generated code with, for the run still in
/// progress (the code passes it along unchanged): it points to a live, aligned [`State`]
/// that nothing else references while the returned reference is in use. The caller must not
/// keep the reference past its own return, and must take it at most once.
unsafe fn state<'s>(p: *mut u8) -> &'s mut State<'s, 's, 's> {
    // SAFETY: `p` points to a live `State`, referenced nowhere else (the contract above); the
    // pointer came from `&mut State`, so it is aligned.
    unsafe { &mut *(p.cast::<State<'s, 's, 's>>()) }
}

fn fail(s: &mut State<'_, '_, '_>, e: EmuError) -> u64 {
    s.failed = 1;
    s.error = Some(e);
    0
}

/// A load the inline checks left to the machine, which checks it and reports the fault.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_load(p: *mut u8, pc: u64, addr: u64, size: u64) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    match s.vm.jit_load(pc as usize, addr, size as usize) {
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

/// A store the inline checks left to the machine, likewise.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_store(p: *mut u8, pc: u64, addr: u64, size: u64, v: u64) {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    if let Err(e) = s.vm.jit_store(pc as usize, addr, size as usize, v) {
        fail(s, e);
    }
}

/// Atomics and helpers work on the machine's registers: JIT code writes the ones they read
/// first and reads back the ones they change.
///
/// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_atomic(
    p: *mut u8,
    pc: u64,
    addr: u64,
    src: u64,
    r0: u64,
    src_reg: u64,
) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    s.vm.regs[src_reg as usize] = src;
    s.vm.regs[0] = r0;
    match s.vm.jit_atomic(pc as usize, addr) {
        Ok(()) => s.vm.regs[src_reg as usize],
        Err(e) => fail(s, e),
    }
}

/// r0 after an atomic (a compare-and-exchange writes it).
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_r0(p: *mut u8) -> u64 {
    // SAFETY: as in `rt_load`: the caller passes the pointer of the run in progress.
    unsafe { state(p) }.vm.regs[0]
}

/// A helper call through the machine: the arguments into its registers, the packet's bounds
/// refreshed after.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_helper(
    p: *mut u8,
    pc: u64,
    id: u64,
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    s.vm.regs[1..6].copy_from_slice(&[r1, r2, r3, r4, r5]);
    let r = s.vm.jit_helper(pc as usize, id as i32);
    // A helper may move the packet's bounds (adjust_head/tail).
    let (_, _, lo, hi) = s.vm.raw_regions();
    s.pkt_lo = lo;
    s.pkt_hi = hi;
    match r {
        // `unwind` got 0: leave as a fault does (`Code::run` tells the two apart).
        Ok(_) if s.vm.unwound => {
            s.failed = 1;
            0
        }
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

/// `bpf_map_lookup_elem` on a map known when compiling, the key read (and checked) by the
/// machine.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_lookup(p: *mut u8, pc: u64, map: u64, key: u64) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    match s.vm.jit_lookup(pc as usize, map as usize, key) {
        Ok(v) => v,
        Err(e) => fail(s, e),
    }
}

/// A lookup whose key (4, 8 or 16 bytes, checked and read by the JIT code) comes by value.
///
/// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_lookup_small(p: *mut u8, map: u64, k0: u64, k1: u64) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    s.vm.jit_lookup_small(map as usize, u128::from(k0) | (u128::from(k1) << 64))
}

/// An LPM lookup whose key (prefix length, then 4 or 16 bytes of data, checked and read by the
/// JIT code) comes by value.
///
/// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_lookup_lpm(p: *mut u8, map: u64, len: u64, d0: u64, d1: u64) -> u64 {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    s.vm.jit_lookup_lpm(map as usize, len as u32, d0, d1)
}

/// Entering a bpf-to-bpf callee: the machine's depth limit, and the callee's frame cleared.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_enter(p: *mut u8, pc: u64, top: u64) {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    if let Err(e) = s.vm.jit_enter(pc as usize, top) {
        fail(s, e);
    }
}

/// Running past the program's end, or calling outside it: the interpreter's fault.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_end(p: *mut u8) {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    let insn = s.vm.insns_len();
    fail(
        s,
        EmuError::Fault {
            insn,
            what: "ran past the end of the program".into(),
        },
    );
}

/// An instruction the JIT does not translate was reached: the interpreter's fault, by the
/// reason's index in [`Bad::ALL`].
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_bad(p: *mut u8, pc: u64, why: u64) {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
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

/// Fuel ran out at a backward jump.
////// # Safety
///
/// `p` must be the state pointer of the run in progress, as [`state`] requires.
unsafe extern "C" fn rt_budget(p: *mut u8) {
    // SAFETY: our caller passes the state pointer of the run in progress (this function's
    // contract), and this is the only reference to the state while the call lasts.
    let s = unsafe { state(p) };
    fail(s, EmuError::Budget(BUDGET));
}

/// The runtime entry points, in the order of [`super::emit::Rt`]'s fields: symbol, address,
/// i64 arguments after the state, whether it returns a value.
///
/// Their addresses go nowhere but the JIT module's symbol table, so only generated code calls
/// them, and it always passes its state pointer (see the module's doc): that is their
/// contract.
pub(super) fn imports() -> [(&'static str, *const u8, usize, bool); 12] {
    [
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
    ]
}

/// Why JIT code stops at an instruction it does not translate: the interpreter faults there
/// too, when (and only when) a run reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bad {
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
    /// A call by register outside a bare program.
    Callx,
}

impl Bad {
    pub(super) const ALL: [Bad; 12] = [
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
        Bad::Callx,
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
            Bad::Callx => CALLX_REFUSED,
        }
    }
}
