//! Bare programs: instructions without an ELF object, maps or context, run on a block of
//! memory — what the BPF ISA conformance suite's runners (uBPF, rbpf, the kernel's test
//! harness) execute, so that the interpreter and the JIT can be held to that suite.
//!
//! The run is an ordinary one under [`Profile::Conformance`]: the memory is the packet region
//! (so pointer arithmetic over it and checked loads and stores work as for a packet), r1 holds
//! its address and r2 its length (both 0 without memory), helper 5 is the suite's `unwind`
//! and `callx` calls the helper its register names. Nothing here changes how objects run.

use crate::vm::{self, Buffers, Ins};
use crate::{EmuError, Env, Profile, ProgType, Runner};
use nfcc_bpf::insn::Insn;

/// Runs `insns` on `memory` with the interpreter or the JIT; the result is r0 at exit.
pub fn run(insns: &[Insn], memory: &[u8], runner: Runner) -> Result<u64, EmuError> {
    let insns: Vec<Ins> = insns.iter().map(Ins::from).collect();
    let mut env = Env {
        profile: Profile::Conformance,
        ..Env::default()
    };
    let code = match runner {
        Runner::Jit => Some(
            crate::jit::JitProgram::compile_bare(&insns)
                .map_err(|e| EmuError::Jit(e.to_string()))?,
        ),
        Runner::Interpreter => None,
    };
    let out = vm::run_with(
        &insns,
        ProgType::Xdp,
        &mut [],
        &mut env,
        memory,
        &mut Buffers::default(),
        |m| match &code {
            Some(c) => c.exec(m),
            None => m.exec(),
        },
    )?;
    Ok(out.retval)
}
