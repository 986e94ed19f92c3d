//! What translating one function has at hand, and the small pieces of code every part of the
//! translation emits: the fault exit for an untranslated instruction, the fault-flag check
//! after a fallible call, the reload of the packet's bounds, a two-way branch that merges a
//! value.

use super::abi::{Bad, ST_PKT_HI, ST_PKT_LO};
use crate::maps::MapShape;
use crate::vm::Ins;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{Block, FuncRef, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::BTreeMap;

/// The runtime entry points, as the function being built calls them (in the order of
/// `abi::imports`).
#[derive(Clone, Copy)]
pub(super) struct Rt {
    pub(super) load: FuncRef,
    pub(super) store: FuncRef,
    pub(super) atomic: FuncRef,
    pub(super) r0: FuncRef,
    pub(super) helper: FuncRef,
    pub(super) lookup: FuncRef,
    pub(super) lookup_small: FuncRef,
    pub(super) lookup_lpm: FuncRef,
    pub(super) enter: FuncRef,
    pub(super) budget: FuncRef,
    pub(super) end: FuncRef,
    pub(super) bad: FuncRef,
}

/// What translating one function needs at hand.
pub(super) struct Fx<'a> {
    pub(super) shapes: &'a [MapShape],
    pub(super) rt: Rt,
    pub(super) callees: &'a BTreeMap<usize, FuncRef>,
    /// A bare program: `callx` is translated (else it faults, as the verifier refuses it).
    pub(super) bare: bool,
    pub(super) st: Value,
    /// r10 at entry (virtual) and the frame end's host address.
    pub(super) r10: Value,
    pub(super) frame: Value,
    /// Each map's value slab: host address and length, loaded once on entry (slabs never
    /// move during a run).
    pub(super) slabs: Vec<(Value, Value)>,
    /// The context's host address and length, likewise.
    pub(super) ctx: (Value, Value),
    /// The packet buffer's host address minus its virtual address (constant during a run),
    /// and the virtual `data`/`data_end`, reloaded after each call that may move them.
    pub(super) pkt_bias: Value,
    pub(super) plo: Variable,
    pub(super) phi: Variable,
    pub(super) exit_fail: Block,
}

/// Reloads the packet's bounds after a call that may have moved them.
pub(super) fn reload_bounds(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>) {
    let lo = b.ins().load(I64, MemFlagsData::trusted(), fx.st, ST_PKT_LO);
    let hi = b.ins().load(I64, MemFlagsData::trusted(), fx.st, ST_PKT_HI);
    b.def_var(fx.plo, lo);
    b.def_var(fx.phi, hi);
}

/// The parts of [`Fx`] known before the function's entry block exists.
#[derive(Clone, Copy)]
pub(super) struct FxParts<'a> {
    pub(super) insns: &'a [Ins],
    pub(super) shapes: &'a [MapShape],
    pub(super) rt: Rt,
    pub(super) callees: &'a BTreeMap<usize, FuncRef>,
    /// See [`Fx::bare`].
    pub(super) bare: bool,
}

/// Ends the current block with the fault for reason `why`.
pub(super) fn bad(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>, pc: usize, why: Bad) {
    let pcv = b.ins().iconst(I64, pc as i64);
    let index = Bad::ALL.iter().position(|x| *x == why).unwrap_or(0);
    let w = b.ins().iconst(I64, index as i64);
    b.ins().call(fx.rt.bad, &[fx.st, pcv, w]);
    b.ins().jump(fx.exit_fail, &[]);
}

/// After a fallible call: leave when the state's fault flag is set.
pub(super) fn check(b: &mut FunctionBuilder<'_>, fx: &Fx<'_>) {
    let f = b.ins().load(I64, MemFlagsData::trusted(), fx.st, 0);
    let cont = b.create_block();
    b.ins().brif(f, fx.exit_fail, &[], cont, &[]);
    b.switch_to_block(cont);
}

/// `fast` where `ok` holds (everywhere, without a flag), `other` elsewhere: the value the one
/// taken gives.
pub(super) fn either(
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
