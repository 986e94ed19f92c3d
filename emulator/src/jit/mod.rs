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
//! The parts: `abi` is the boundary with the generated code (the run state it receives and
//! its layout, the entry points it calls back, the call into it) and holds the JIT's `unsafe`
//! (the only `unsafe` outside the runtime) but for one statement of [`JitProgram::compile`],
//! which vouches for the compiled entry's signature; `analysis` is the provenance analysis
//! and the control flow it runs over; `translate` turns one function into Cranelift IR, with
//! `access` for checked memory accesses, `helpers` for helper calls and inline lookups,
//! and `emit` for what they all share. This module compiles a program's functions into one
//! native module and runs it.

mod abi;
mod access;
mod analysis;
mod emit;
mod helpers;
mod translate;

use crate::mem::MAX_FRAMES;
use crate::vm::{Ins, Vm};
use crate::EmuError;
use analysis::{analyse, function_entries, Func};
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{AbiParam, FuncRef};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use emit::{FxParts, Rt};
use std::collections::BTreeMap;
use translate::translate;

/// Every load and store through a context pointer in `insns` (instruction index to the
/// context offset reached), from the provenance analysis the JIT compiles with: what an
/// executor with another context layout rewrites, as the kernel's `convert_ctx_access` does.
pub fn context_accesses(insns: &[Ins]) -> Result<BTreeMap<usize, i64>, JitError> {
    analysis::context_accesses(insns)
}

/// What the JIT knows of a map when it compiles (defined beside the maps, which the machine
/// checks against it).
pub use crate::maps::MapShape;

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

/// A compiled program.
pub struct JitProgram {
    code: abi::Code,
    shapes: Vec<MapShape>,
    /// Compiled for a bare program (r1 the memory block, `callx` allowed), run only under
    /// the conformance profile.
    bare: bool,
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JitProgram")
    }
}

impl JitProgram {
    /// Translates and compiles `insns`, for maps of these shapes (in the object's order).
    pub fn compile(insns: &[Ins], shapes: &[MapShape]) -> Result<JitProgram, JitError> {
        JitProgram::compile_for(insns, shapes, false)
    }

    /// Compiles a bare program (no maps), run under [`crate::Profile::Conformance`]: r1 is
    /// the memory block, so the analysis guesses the packet there rather than the context.
    pub(crate) fn compile_bare(insns: &[Ins]) -> Result<JitProgram, JitError> {
        JitProgram::compile_for(insns, &[], true)
    }

    fn compile_for(insns: &[Ins], shapes: &[MapShape], bare: bool) -> Result<JitProgram, JitError> {
        let cg = |e: &dyn std::fmt::Display| JitError::Codegen(e.to_string());
        if insns.is_empty() {
            return Err(JitError::Unsupported {
                insn: 0,
                what: "an empty program".into(),
            });
        }
        let funcs = function_entries(insns)?
            .into_iter()
            .map(|e| analyse(insns, e, shapes, bare))
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
        let imports = abi::imports();
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
                        bare,
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
        // Reason: the JIT's one `unsafe` outside `abi`, where only this function knows how the
        // code was declared.
        #[allow(unsafe_code)]
        // SAFETY: `code` is the finalized `nfcc_prog`, declared above with `Entry`'s signature
        // (`fparams`, one i64 out); every call it makes into an entry point passes its state
        // parameter (`translate`).
        let code = unsafe { abi::Code::new(module, code) };
        Ok(JitProgram {
            code,
            shapes: shapes.to_vec(),
            bare,
        })
    }

    /// Runs the compiled code on a prepared machine; the result is r0, or the first fault.
    #[inline(always)]
    pub(crate) fn exec(&self, vm: &mut Vm<'_, '_>) -> Result<u64, EmuError> {
        if vm.is_bare() != self.bare {
            return Err(EmuError::Jit(
                "the code was compiled for another entry (bare program or object)".into(),
            ));
        }
        self.code.run(vm, &self.shapes)
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
