//! A JIT from eBPF to native code on cranelift-codegen: our own translation, over the same
//! checked memory model as the interpreter.
//!
//! Registers become Cranelift variables and arithmetic, jumps and exits become native code;
//! every memory access, atomic and helper call goes through the interpreter's machine state
//! ([`crate::vm`]) by a call, so the JIT checks each access exactly as the interpreter does and
//! the two can be held to each other. A fault sets a flag in the run state; the code tests it
//! after each such call and returns at once. Backward jumps spend fuel, so a loop cannot run
//! forever. bpf-to-bpf calls are not translated (such programs run on the interpreter).
//!
//! The only `unsafe` outside the runtime lives here: calling the generated code, and the
//! `extern "C"` entry points it calls back, which receive the run state as a raw pointer.
#![allow(unsafe_code)]
// Reason: JIT code is entered through a function pointer and calls back into Rust with a raw
// pointer to the run state; both sides are confined to this module.

use crate::vm::{Ins, Vm, BUDGET};
use crate::EmuError;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64, I8};
use cranelift_codegen::ir::{AbiParam, Block, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use std::collections::BTreeSet;
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

/// The run state JIT code receives: a fault flag it tests, and the machine.
#[repr(C)]
struct State<'v, 'a, 'm> {
    /// Non-zero once something failed; `error` says what.
    failed: u64,
    /// Host address of the stack buffer (offset 8).
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

type Entry = unsafe extern "C" fn(*mut u8) -> u64;

/// A compiled program. The module owns the code's memory, so it lives as long as the entry.
pub struct JitProgram {
    entry: Entry,
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
    // SAFETY: JIT code passes back the pointer `JitProgram::run` gave it, to a live `State`.
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

extern "C" fn rt_budget(p: *mut u8) {
    let s = state(p);
    fail(s, EmuError::Budget(BUDGET));
}

impl JitProgram {
    /// Translates and compiles `insns`.
    pub fn compile(insns: &[Ins]) -> Result<JitProgram, JitError> {
        let cg = |e: &dyn std::fmt::Display| JitError::Codegen(e.to_string());
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| cg(&e))?;
        flags.set("is_pic", "false").map_err(|e| cg(&e))?;
        let isa = cranelift_native::builder()
            .map_err(|e| cg(&e))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| cg(&e))?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbol("nfcc_load", rt_load as *const u8);
        jb.symbol("nfcc_store", rt_store as *const u8);
        jb.symbol("nfcc_atomic", rt_atomic as *const u8);
        jb.symbol("nfcc_r0", rt_r0 as *const u8);
        jb.symbol("nfcc_helper", rt_helper as *const u8);
        jb.symbol("nfcc_budget", rt_budget as *const u8);
        jb.symbol("nfcc_end", rt_end as *const u8);
        let mut module = JITModule::new(jb);
        let ptr = module.target_config().pointer_type();
        let sig = |params: &[cranelift_codegen::ir::Type], ret: bool, m: &JITModule| {
            let mut s = m.make_signature();
            s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
            if ret {
                s.returns.push(AbiParam::new(I64));
            }
            s
        };
        let decl =
            |m: &mut JITModule, name: &str, params: &[cranelift_codegen::ir::Type], ret: bool| {
                let s = sig(params, ret, m);
                m.declare_function(name, Linkage::Import, &s)
                    .map_err(|e| cg(&e))
            };
        let f_load = decl(&mut module, "nfcc_load", &[ptr, I64, I64, I64], true)?;
        let f_store = decl(&mut module, "nfcc_store", &[ptr, I64, I64, I64, I64], false)?;
        let f_atomic = decl(
            &mut module,
            "nfcc_atomic",
            &[ptr, I64, I64, I64, I64, I64],
            true,
        )?;
        let f_r0 = decl(&mut module, "nfcc_r0", &[ptr], true)?;
        let f_helper = decl(
            &mut module,
            "nfcc_helper",
            &[ptr, I64, I64, I64, I64, I64, I64, I64],
            true,
        )?;
        let f_budget = decl(&mut module, "nfcc_budget", &[ptr], false)?;
        let f_end = decl(&mut module, "nfcc_end", &[ptr], false)?;

        let mut ctx = module.make_context();
        ctx.func.signature.params.push(AbiParam::new(ptr));
        ctx.func.signature.returns.push(AbiParam::new(I64));
        let mut fctx = FunctionBuilderContext::new();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let r_load = module.declare_func_in_func(f_load, b.func);
            let r_store = module.declare_func_in_func(f_store, b.func);
            let r_atomic = module.declare_func_in_func(f_atomic, b.func);
            let r_r0 = module.declare_func_in_func(f_r0, b.func);
            let r_helper = module.declare_func_in_func(f_helper, b.func);
            let r_budget = module.declare_func_in_func(f_budget, b.func);
            let r_end = module.declare_func_in_func(f_end, b.func);

            // Block leaders: the entry, every jump target, every instruction after a jump.
            let mut leaders = BTreeSet::new();
            leaders.insert(0usize);
            let mut pc = 0;
            while pc < insns.len() {
                let i = insns[pc];
                let class = i.code & 7;
                let width = if i.code == 0x18 { 2 } else { 1 };
                if class == 0x05 || class == 0x06 {
                    let op = i.code & 0xf0;
                    if op != 0x80 && op != 0x90 {
                        let off = if class == 0x06 && op == 0x00 {
                            i64::from(i.imm)
                        } else {
                            i64::from(i.off)
                        };
                        let t = pc as i64 + 1 + off;
                        if t < 0 || t as usize >= insns.len() {
                            return Err(JitError::Unsupported {
                                insn: pc,
                                what: "jump out of the program".into(),
                            });
                        }
                        leaders.insert(t as usize);
                    }
                    if op != 0x80 {
                        leaders.insert(pc + 1);
                    }
                }
                pc += width;
            }
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            let blocks: std::collections::HashMap<usize, Block> = leaders
                .iter()
                .filter(|&&l| l < insns.len())
                .map(|&l| (l, b.create_block()))
                .collect();
            let exit_fail = b.create_block();
            let regs: Vec<Variable> = (0..11).map(|_| b.declare_var(I64)).collect();
            let fuel = b.declare_var(I64);

            b.switch_to_block(entry);
            let st = b.block_params(entry)[0];
            let zero = b.ins().iconst(I64, 0);
            for r in &regs {
                b.def_var(*r, zero);
            }
            let ctx_base = b.ins().iconst(I64, crate::vm::CTX_BASE as i64);
            b.def_var(regs[1], ctx_base);
            let top = b
                .ins()
                .iconst(I64, crate::vm::STACK_BASE as i64 + (512 * 8));
            b.def_var(regs[10], top);
            let f0 = b.ins().iconst(I64, BUDGET as i64);
            b.def_var(fuel, f0);
            b.ins().jump(blocks[&0], &[]);

            // After a fallible call: leave when the state's fault flag is set.
            let check = |b: &mut FunctionBuilder<'_>| {
                let f = b.ins().load(I64, MemFlagsData::trusted(), st, 0);
                let cont = b.create_block();
                b.ins().brif(f, exit_fail, &[], cont, &[]);
                b.switch_to_block(cont);
            };

            let mut pc = 0usize;
            let mut open = false;
            while pc < insns.len() {
                if let Some(&blk) = blocks.get(&pc) {
                    if open {
                        b.ins().jump(blk, &[]);
                    }
                    b.switch_to_block(blk);
                    open = true;
                } else if !open {
                    // Unreachable code after an unconditional jump: skip it.
                    pc += if insns[pc].code == 0x18 { 2 } else { 1 };
                    continue;
                }
                let i = insns[pc];
                let (d, s) = (i.dst as usize, i.src as usize);
                if d > 10 || s > 10 {
                    return Err(JitError::Unsupported {
                        insn: pc,
                        what: "bad register".into(),
                    });
                }
                let class = i.code & 7;
                let pcv = b.ins().iconst(I64, pc as i64);
                match class {
                    0x04 | 0x07 => {
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
                                    return Err(JitError::Unsupported {
                                        insn: pc,
                                        what: "byte swap width".into(),
                                    })
                                }
                            };
                            b.def_var(regs[d], v);
                            pc += 1;
                            continue;
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
                                    return Err(JitError::Unsupported {
                                        insn: pc,
                                        what: "sign-extending move".into(),
                                    })
                                }
                            },
                            0xc0 => b.ins().sshr(a, bb),
                            _ => {
                                return Err(JitError::Unsupported {
                                    insn: pc,
                                    what: format!("alu opcode {:#x}", i.code),
                                })
                            }
                        };
                        let r64 = if wide { r } else { b.ins().uextend(I64, r) };
                        b.def_var(regs[d], r64);
                        pc += 1;
                    }
                    0x05 | 0x06 => {
                        let op = i.code & 0xf0;
                        match op {
                            0x90 => {
                                let r0 = b.use_var(regs[0]);
                                b.ins().return_(&[r0]);
                                open = false;
                                pc += 1;
                            }
                            0x80 => {
                                if i.src != 0 {
                                    return Err(JitError::Unsupported {
                                        insn: pc,
                                        what: "bpf-to-bpf and kfunc calls run on the interpreter"
                                            .into(),
                                    });
                                }
                                let id = b.ins().iconst(I64, i64::from(i.imm));
                                let args: Vec<Value> = (1..6).map(|r| b.use_var(regs[r])).collect();
                                let call = b.ins().call(
                                    r_helper,
                                    &[st, pcv, id, args[0], args[1], args[2], args[3], args[4]],
                                );
                                let r0 = b.inst_results(call)[0];
                                b.def_var(regs[0], r0);
                                // Helpers clobber r1–r5.
                                let z = b.ins().iconst(I64, 0);
                                for r in &regs[1..6] {
                                    b.def_var(*r, z);
                                }
                                check(&mut b);
                                pc += 1;
                            }
                            _ => {
                                let off = if class == 0x06 && op == 0x00 {
                                    i64::from(i.imm)
                                } else {
                                    i64::from(i.off)
                                };
                                let target = (pc as i64 + 1 + off) as usize;
                                let tblk = blocks[&target];
                                if target <= pc {
                                    // A backward jump spends fuel.
                                    let f = b.use_var(fuel);
                                    let f = b.ins().iadd_imm_s(f, -1);
                                    b.def_var(fuel, f);
                                    let out = b.create_block();
                                    let go = b.create_block();
                                    b.ins().brif(f, go, &[], out, &[]);
                                    b.switch_to_block(out);
                                    b.ins().call(r_budget, &[st]);
                                    b.ins().jump(exit_fail, &[]);
                                    b.switch_to_block(go);
                                }
                                if op == 0x00 {
                                    b.ins().jump(tblk, &[]);
                                } else {
                                    let next = blocks[&(pc + 1)];
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
                                        0x30 => {
                                            b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, a, v)
                                        }
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
                                            return Err(JitError::Unsupported {
                                                insn: pc,
                                                what: format!("jump opcode {:#x}", i.code),
                                            })
                                        }
                                    };
                                    b.ins().brif(cond, tblk, &[], next, &[]);
                                }
                                open = false;
                                pc += 1;
                            }
                        }
                    }
                    0x00 => {
                        if i.code != 0x18 || pc + 1 >= insns.len() {
                            return Err(JitError::Unsupported {
                                insn: pc,
                                what: "load form".into(),
                            });
                        }
                        let next = insns[pc + 1];
                        let v: u64 = match i.src {
                            0 => (i.imm as u32 as u64) | ((next.imm as u32 as u64) << 32),
                            1 => (0x400u64 << 32) | (i.imm as u32 as u64),
                            2 => ((0x100u64 + i.imm as u32 as u64) << 32) + next.imm as u32 as u64,
                            _ => {
                                return Err(JitError::Unsupported {
                                    insn: pc,
                                    what: "ld_imm64 source".into(),
                                })
                            }
                        };
                        let c = b.ins().iconst(I64, v as i64);
                        b.def_var(regs[d], c);
                        pc += 2;
                    }
                    0x01 => {
                        let size = match i.code & 0x18 {
                            0x00 => 4,
                            0x08 => 2,
                            0x10 => 1,
                            _ => 8,
                        };
                        let base = b.use_var(regs[s]);
                        let addr = b.ins().iadd_imm_s(base, i64::from(i.off));
                        let mut v = fast_load(&mut b, st, addr, size, |b| {
                            let sz = b.ins().iconst(I64, size);
                            let call = b.ins().call(r_load, &[st, pcv, addr, sz]);
                            let v = b.inst_results(call)[0];
                            check(b);
                            v
                        });
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
                                return Err(JitError::Unsupported {
                                    insn: pc,
                                    what: "load mode".into(),
                                })
                            }
                        }
                        b.def_var(regs[d], v);
                        pc += 1;
                    }
                    0x02 | 0x03 => {
                        let size = match i.code & 0x18 {
                            0x00 => 4,
                            0x08 => 2,
                            0x10 => 1,
                            _ => 8,
                        };
                        let base = b.use_var(regs[d]);
                        let addr = b.ins().iadd_imm_s(base, i64::from(i.off));
                        if class == 0x03 && i.code & 0xe0 == 0xc0 {
                            let src = b.use_var(regs[s]);
                            let r0 = b.use_var(regs[0]);
                            let sr = b.ins().iconst(I64, s as i64);
                            let call = b.ins().call(r_atomic, &[st, pcv, addr, src, r0, sr]);
                            let news = b.inst_results(call)[0];
                            check(&mut b);
                            b.def_var(regs[s], news);
                            let call = b.ins().call(r_r0, &[st]);
                            let r0n = b.inst_results(call)[0];
                            b.def_var(regs[0], r0n);
                        } else {
                            let v = if class == 0x02 {
                                b.ins().iconst(I64, i64::from(i.imm))
                            } else {
                                b.use_var(regs[s])
                            };
                            fast_store(&mut b, st, addr, size, v, |b| {
                                let sz = b.ins().iconst(I64, size);
                                b.ins().call(r_store, &[st, pcv, addr, sz, v]);
                                check(b);
                            });
                        }
                        pc += 1;
                    }
                    _ => {
                        return Err(JitError::Unsupported {
                            insn: pc,
                            what: format!("opcode {:#x}", i.code),
                        })
                    }
                }
            }
            if open {
                // Falling off the end is a fault, as in the interpreter.
                b.ins().call(r_end, &[st]);
                b.ins().jump(exit_fail, &[]);
            }
            b.switch_to_block(exit_fail);
            let z = b.ins().iconst(I64, 0);
            b.ins().return_(&[z]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        let id = module
            .declare_function("nfcc_prog", Linkage::Export, &ctx.func.signature)
            .map_err(|e| cg(&e))?;
        module.define_function(id, &mut ctx).map_err(|e| cg(&e))?;
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(|e| cg(&e))?;
        let code = module.get_finalized_function(id);
        // SAFETY: the function was declared with this signature (one pointer in, i64 out).
        let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code) };
        Ok(JitProgram {
            entry,
            _module: Arc::new(Mutex::new(module)),
        })
    }

    /// Runs the compiled code on a prepared machine; the result is r0, or the first fault.
    pub(crate) fn exec(&self, vm: &mut Vm<'_, '_>) -> Result<u64, EmuError> {
        let (stack, pkt, pkt_lo, pkt_hi) = vm.raw_regions();
        let (ctx, ctx_len, slabs) = vm.raw_ctx_and_maps();
        let mut s = State {
            failed: 0,
            stack,
            pkt,
            pkt_lo,
            pkt_hi,
            ctx,
            ctx_len,
            maps: slabs.as_ptr() as u64,
            nmaps: slabs.len() as u64,
            vm,
            error: None,
        };
        // SAFETY: the code reads the flag at offset 0 of `s` and passes the pointer back to
        // the entry points above, which cast it to the same `State`; `s` outlives the call.
        let r0 = unsafe { (self.entry)((&mut s as *mut State<'_, '_, '_>).cast::<u8>()) };
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
    hook: crate::Hook,
    maps: &mut [crate::maps::EmuMap],
    env: &mut crate::Env,
    frame: &[u8],
) -> Result<crate::vm::RunOutput, EmuError> {
    let code = JitProgram::compile(insns).map_err(|e| EmuError::Jit(e.to_string()))?;
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
    let lo = b.ins().load(I64, flags, st, 24);
    let hi = b.ins().load(I64, flags, st, 32);
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
    let clen = b.ins().load(I64, flags, st, 48);
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
    let nmaps = b.ins().load(I64, flags, st, 64);
    let is_map = b.ins().icmp(IntCC::UnsignedLessThan, idx, nmaps);
    b.ins().brif(is_map, map_blk, &[], slow_blk, &[]);
    b.switch_to_block(map_blk);
    let table = b.ins().load(I64, flags, st, 56);
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
    let sp = b.ins().load(I64, flags, st, 8);
    let p = b.ins().iadd(sp, off);
    results.push(fast(b, p));
    b.ins().jump(merge, &results_args(&results));

    b.switch_to_block(pkt_blk);
    let pp = b.ins().load(I64, flags, st, 16);
    let o = b.ins().iadd_imm_s(addr, -(crate::vm::PKT_BASE as i64));
    let p = b.ins().iadd(pp, o);
    let r = fast(b, p);
    b.ins().jump(merge, &results_args(&[r]));

    b.switch_to_block(ctx_blk);
    let cp = b.ins().load(I64, flags, st, 40);
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

/// A load of `size` bytes, inline for the stack and the packet.
fn fast_load(
    b: &mut FunctionBuilder<'_>,
    st: Value,
    addr: Value,
    size: i64,
    mut slow: impl FnMut(&mut FunctionBuilder<'_>) -> Value,
) -> Value {
    let flags = MemFlagsData::new().with_notrap();
    let mut fast = |b: &mut FunctionBuilder<'_>, p: Value| {
        Some(match size {
            1 => b.ins().uload8(I64, flags, p, 0),
            2 => b.ins().uload16(I64, flags, p, 0),
            4 => b.ins().uload32(flags, p, 0),
            _ => b.ins().load(I64, flags, p, 0),
        })
    };
    let mut slow_opt = |b: &mut FunctionBuilder<'_>| Some(slow(b));
    fast_path(b, st, addr, size, true, &mut fast, &mut slow_opt)
        .unwrap_or_else(|| b.ins().iconst(I64, 0))
}

/// A store of `size` bytes of `v`, inline for the stack and the packet.
fn fast_store(
    b: &mut FunctionBuilder<'_>,
    st: Value,
    addr: Value,
    size: i64,
    v: Value,
    mut slow: impl FnMut(&mut FunctionBuilder<'_>),
) {
    let flags = MemFlagsData::new().with_notrap();
    let mut fast = |b: &mut FunctionBuilder<'_>, p: Value| {
        match size {
            1 => {
                b.ins().istore8(flags, v, p, 0);
            }
            2 => {
                b.ins().istore16(flags, v, p, 0);
            }
            4 => {
                b.ins().istore32(flags, v, p, 0);
            }
            _ => {
                b.ins().store(flags, v, p, 0);
            }
        }
        None
    };
    let mut slow_opt = |b: &mut FunctionBuilder<'_>| {
        slow(b);
        None
    };
    let _ = fast_path(b, st, addr, size, false, &mut fast, &mut slow_opt);
}
