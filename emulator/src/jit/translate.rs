//! One eBPF function to Cranelift IR: registers become variables, arithmetic, jumps and exits
//! native code, loads and stores checked accesses (`access`), calls helper calls (`helpers`)
//! or native calls to the callee's function. Backward jumps spend fuel; an instruction that is
//! not translated faults when reached, as in the interpreter.

use super::abi::{Bad, ST_CTX, ST_CTX_LEN, ST_MAPS, ST_PKT, ST_PKT_HI, ST_PKT_LO, ST_STACK};
use super::access::access;
use super::analysis::{access_size, jump_target, successors, transfer, Abs, Func};
use super::emit::{bad, check, reload_bounds, Fx, FxParts};
use super::helpers::{callx, helper_call};
use super::JitError;
use crate::mem::{FRAME, MAP_HANDLES, MAP_VALUES, PKT_BASE, STACK_BASE};
use crate::vm::BUDGET;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64, I8};
use cranelift_codegen::ir::{Block, InstBuilder, MemFlagsData};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::BTreeMap;

/// Translates one function into `b`'s function (signature: state, r1–r9, r10 → r0).
pub(super) fn translate(
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
    let pkt_bias = b.ins().iadd_imm_s(pkt_host, -(PKT_BASE as i64));
    let plo = b.declare_var(I64);
    let phi = b.declare_var(I64);
    let lo = b.ins().load(I64, MemFlagsData::trusted(), st, ST_PKT_LO);
    let hi = b.ins().load(I64, MemFlagsData::trusted(), st, ST_PKT_HI);
    b.def_var(plo, lo);
    b.def_var(phi, hi);
    b.ins().jump(blocks[&func.entry], &[]);
    let fx = Fx {
        bare: fx_parts.bare,
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
                            0 if i.code & 0x08 != 0 => {
                                if !fx.bare {
                                    bad(b, &fx, pc, Bad::Callx);
                                    open = false;
                                    continue 'insns;
                                }
                                callx(b, &fx, pc, d, &regs);
                            }
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
                    1 => (MAP_HANDLES << 32) | (i.imm as u32 as u64),
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
