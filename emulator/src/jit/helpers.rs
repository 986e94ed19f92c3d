//! Helper calls: lookups in array maps inline, lookups in hash maps and LPM tries with the key
//! read inline and passed by value, other lookups straight into the map, and every other
//! helper through the machine.

use super::access::{access, host_span};
use super::analysis::Prov;
use super::emit::{check, either, reload_bounds, Fx};
use super::JitError;
use crate::maps::{MapKind, MapShape};
use crate::mem::MAP_VALUES;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

// How the JIT treats each map's lookups: JIT knowledge, so here rather than beside the shape
// in `crate::maps`.
impl MapShape {
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

/// A helper call: array-map lookups inline, other lookups straight into the map, the rest
/// through the machine. Helpers clobber r1–r5 (zeroed, as the interpreter does).
pub(super) fn helper_call(
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

/// `callx` in a bare program: the helper whose id register `r` holds, through the machine.
pub(super) fn callx(
    b: &mut FunctionBuilder<'_>,
    fx: &Fx<'_>,
    pc: usize,
    r: usize,
    regs: &[Variable],
) {
    let pcv = b.ins().iconst(I64, pc as i64);
    let idv = b.use_var(regs[r]);
    let args: Vec<Value> = (1..6).map(|r| b.use_var(regs[r])).collect();
    let call = b.ins().call(
        fx.rt.helper,
        &[fx.st, pcv, idv, args[0], args[1], args[2], args[3], args[4]],
    );
    let r0 = b.inst_results(call)[0];
    check(b, fx);
    reload_bounds(b, fx);
    b.def_var(regs[0], r0);
    let z = b.ins().iconst(I64, 0);
    for r in &regs[1..6] {
        b.def_var(*r, z);
    }
}
