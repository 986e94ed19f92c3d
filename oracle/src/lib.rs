//! nfcc-oracle: an executor nfcc did not write, held to the ones it did. The rbpf crate's
//! interpreter runs nfcc's objects and third-party ones ([`RbpfProgram`]) and the BPF
//! conformance suite's programs ([`run_bare`]), so that the emulator and the compiler cannot
//! share one misunderstanding of the instruction set unnoticed.
//!
//! rbpf runs programs on host memory with helpers of five registers; what it lacks for XDP and
//! TC programs is supplied the way the kernel supplies it (see `rewrite`): the context's
//! packet pointers rewritten to 64-bit slots (`ctx`), map references resolved to the
//! emulator's maps, whose values the program reads and writes in place, the helpers
//! (`helpers`) on those maps with the emulator's environment (its clock, FIB, random state).
//! A program rbpf cannot run — an instruction it lacks or runs otherwise than the kernel, a
//! helper this engine does not provide — is refused with the instruction and the reason
//! ([`OracleError::Unsupported`], [`OracleError::Helper`]); nothing is skipped silently.
//!
//! Limits stated rather than hidden: rbpf checks only that an access starts inside a map
//! value (not that it ends there), lets a program read any byte of the context-and-packet
//! buffer, has no instruction budget (a program that loops forever hangs the run — the
//! kernel's verifier would have refused it) and does not count instructions.

mod abi;
mod ctx;
mod helpers;
mod rewrite;

pub use rewrite::limitation;

use abi::{Memory, Region};
use helpers::Machine;
use nfcc_bpf::ProgType;
use nfcc_emulator::vm::{Ins, RunOutput};
use nfcc_emulator::{Emulator, Profile};
use rewrite::{Mode, Rewritten};
use std::collections::BTreeMap;

/// Why the rbpf engine could not run a program.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// The program uses an instruction rbpf does not implement, or implements otherwise than
    /// the kernel ([`limitation`]).
    #[error("rbpf cannot run this program: instruction {insn}: {what}")]
    Unsupported {
        /// The instruction's index in the program.
        insn: usize,
        /// What it is and why rbpf cannot run it.
        what: String,
    },
    /// The program calls a helper the rbpf engine does not provide.
    #[error("rbpf cannot run this program: it calls helper {helper}, which the rbpf engine does not provide")]
    Helper {
        /// The helper, by name and id.
        helper: String,
    },
    /// A helper was handed something the run does not own (the kernel's verifier would have
    /// refused the program).
    #[error("rbpf run: a helper faulted: {0}")]
    Fault(String),
    /// rbpf refused the program or stopped the run.
    #[error("rbpf: {0}")]
    Rbpf(#[source] std::io::Error),
    /// rbpf panicked (an arithmetic overflow of its own, say) instead of returning an error.
    #[error("rbpf panicked: {0}")]
    Panic(String),
    /// No program of that name in the object.
    #[error("no program `{0}` in the object")]
    NoProgram(String),
    /// The emulator's analysis of the program failed.
    #[error("cannot analyse the program: {0}")]
    Analysis(String),
}

/// A program of an object loaded into an [`Emulator`], rewritten for rbpf. It runs over that
/// emulator's maps and environment, so the two can be held to each other run for run.
#[derive(Clone, Debug)]
pub struct RbpfProgram {
    hook: ProgType,
    program: Rewritten,
}

impl RbpfProgram {
    /// Prepares `program` of the object `emu` holds.
    pub fn new(emu: &Emulator, program: &str) -> Result<RbpfProgram, OracleError> {
        let (hook, insns) = emu
            .program_code(program)
            .ok_or_else(|| OracleError::NoProgram(program.to_string()))?;
        let ctx_at = nfcc_emulator::jit::context_accesses(insns)
            .map_err(|e| OracleError::Analysis(e.to_string()))?;
        let rewritten = rewrite::rewrite(insns, Mode::Program(hook), &ctx_at)?;
        for &id in &rewritten.helpers {
            helper_for(id, emu.env.profile)?;
        }
        // rbpf's own load-time checks, once.
        rbpf::EbpfVmMbuff::new(Some(&rewritten.code)).map_err(OracleError::Rbpf)?;
        Ok(RbpfProgram {
            hook,
            program: rewritten,
        })
    }

    /// Runs the program on `frame` over `emu`'s maps with its environment (clock, interface,
    /// FIB, random state, profile); the maps and the random state carry over, as in
    /// [`Emulator::run`]. `executed` is 0: rbpf does not count instructions.
    pub fn run(&self, emu: &mut Emulator, frame: &[u8]) -> Result<RunOutput, OracleError> {
        let arrival = ctx::Arrival {
            ifindex: emu.env.ifindex,
            rxq: emu.env.rxq,
            mark: emu.env.mark,
        };
        let mut buf = ctx::buffer(self.hook, &arrival, frame);
        let base = buf.as_ptr() as u64;
        ctx::set_pointers(&mut buf, base, ctx::FRAME_AT, ctx::FRAME_AT + frame.len());
        let maps = std::mem::take(emu.maps_mut());
        let slabs = helpers::slabs(&maps);
        let machine = Machine {
            maps,
            mem: Memory {
                buf: Some(Region {
                    start: base,
                    len: buf.len(),
                }),
                slabs: slabs.clone(),
                stack: None,
            },
            env: emu.env.clone(),
            hook: self.hook,
            redirect: None,
            xsk: None,
            fault: None,
        };
        let profile = emu.env.profile;
        helpers::install(machine);
        let r0 = self.execute(&buf, &slabs, profile);
        let machine = helpers::uninstall();
        if let Some(m) = &machine {
            emu.env.prandom = m.env.prandom;
        }
        let Some(machine) = machine else {
            return Err(OracleError::Fault("the run's state was lost".into()));
        };
        *emu.maps_mut() = machine.maps;
        let r0 = r0?;
        if let Some(f) = machine.fault {
            return Err(OracleError::Fault(f));
        }
        let (d, e) = ctx::bounds(&buf, base, buf.len())
            .ok_or_else(|| OracleError::Fault("the packet pointers are corrupt".into()))?;
        let mark = match self.hook {
            ProgType::Tc => u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]),
            ProgType::Xdp => 0,
        };
        let retval = match (profile, self.hook) {
            // The NIC cannot redirect; the driver drops such packets (XDP_ABORTED).
            (Profile::Nfp, ProgType::Xdp) if r0 == 4 => 0,
            _ => r0,
        };
        Ok(RunOutput {
            retval,
            data: buf[d..e].to_vec(),
            mark,
            redirect: machine.redirect,
            xsk: machine.xsk,
            executed: 0,
        })
    }

    fn execute(&self, buf: &[u8], slabs: &[Region], profile: Profile) -> Result<u64, OracleError> {
        let mut code = self.program.code.clone();
        let starts: Vec<u64> = slabs.iter().map(|s| s.start).collect();
        rewrite::bind_values(&mut code, &self.program.values, &starts)?;
        let mut vm = rbpf::EbpfVmMbuff::new(Some(&code)).map_err(OracleError::Rbpf)?;
        for &id in &self.program.helpers {
            vm.register_helper(id as u32, helper_for(id, profile)?)
                .map_err(OracleError::Rbpf)?;
        }
        for s in slabs.iter().filter(|s| s.len > 0) {
            vm.register_allowed_memory(s.start..s.start + s.len as u64);
        }
        guarded(|| vm.execute_program(&[], buf))
    }
}

fn helper_for(id: i32, profile: Profile) -> Result<helpers::Fn5, OracleError> {
    helpers::helper(id, profile).ok_or_else(|| OracleError::Helper {
        helper: format!("{} (#{id})", nfcc_bpf::Helper::name_of(id)),
    })
}

/// Runs rbpf, turning its panics into errors.
fn guarded(f: impl FnOnce() -> Result<u64, std::io::Error>) -> Result<u64, OracleError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(OracleError::Rbpf),
        Err(p) => Err(OracleError::Panic(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "without a message".into()),
        )),
    }
}

/// Runs a conformance-suite program on `memory` (r1 its address, r2 its length, helper 5
/// the suite's `unwind`): r0 at exit.
pub fn run_bare(insns: &[nfcc_bpf::insn::Insn], memory: &[u8]) -> Result<u64, OracleError> {
    let insns: Vec<Ins> = insns.iter().map(Ins::from).collect();
    let rewritten = rewrite::rewrite(&insns, Mode::Bare { len: memory.len() }, &BTreeMap::new())?;
    let mut vm = rbpf::EbpfVmMbuff::new(Some(&rewritten.code)).map_err(OracleError::Rbpf)?;
    vm.register_helper(nfcc_emulator::vm::UNWIND as u32, helpers::unwind)
        .map_err(OracleError::Rbpf)?;
    let block = memory.to_vec();
    guarded(|| vm.execute_program(&[], &block))
}
