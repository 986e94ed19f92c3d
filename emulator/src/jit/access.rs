//! Memory accesses in native code, checked by the interpreter's rules (those of
//! [`crate::mem`]): what the provenance analysis proved goes straight to the host address, a
//! guessed map value or packet pointer gets one inline check, and the rest is tested region by
//! region in native code; what no inline check covers (context stores, faults) goes to the
//! machine by a call, which checks it exactly as the interpreter does.

use super::abi::{ST_CTX, ST_CTX_LEN, ST_MAPS, ST_NMAPS, ST_PKT, ST_PKT_HI, ST_PKT_LO, ST_STACK};
use super::analysis::{moved, Prov};
use super::emit::{check, either, Fx};
use crate::mem::{CTX_BASE, FRAME, MAP_VALUES, PKT_BASE, STACK_BASE};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// A load (`store` None) or a store of `size` bytes at `base + off`, whose base has
/// provenance `prov`.
#[allow(clippy::too_many_arguments)]
// Reason: the access's parts are all needed and have no natural grouping.
pub(super) fn access(
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

/// For `span` bytes at `base` (of provenance `prov`): a flag saying the span lies wholly in the
/// frame, one map value or the packet (by the interpreter's rules; no flag when the analysis
/// proved it), and its host address — for the provenances checked inline; `None` for the rest.
/// Map values: the analysis says the access stays inside one value, and one compare puts it
/// inside map `m`'s slab (an address in another region, or null, is far outside), so that
/// memory safety never rests on the analysis.
pub(super) fn host_span(
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
    let off = b.ins().iadd_imm_s(addr, -(STACK_BASE as i64));
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
    let coff = b.ins().iadd_imm_s(addr, -(CTX_BASE as i64));
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
    let o = b.ins().iadd_imm_s(addr, -(PKT_BASE as i64));
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
