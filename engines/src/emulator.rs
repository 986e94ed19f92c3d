//! The emulator as a test engine: a compiled policy's object loaded into a fresh [`Emulator`]
//! for every test, its maps filled, each packet run by the interpreter, the deciding rule read
//! back from the per-rule statistics map, counters read by key — the same protocol as the
//! kernel engine, without a kernel.
//!
//! The same engine runs the object on the rbpf crate's interpreter instead ([`Executor::Rbpf`],
//! through `nfcc_oracle`), over the same emulated maps: a third-party executor held to the
//! evaluator by the same protocol.
//!
//! Test blocks run with an AF_XDP socket bound on every queue: the object's XSKMAP (of
//! `redirect xsk`) gets an entry for each, and a run that chose one reads as `redirect xsk`.
//!
//! Limiters read `bpf_ktime_get_ns`, which the emulator answers with the evaluator's clock, so
//! the object under test is the one that would be deployed (no virtual-clock map).

use nfcc_compiler::codegen::{named_by_rule, terminal_of_run};
use nfcc_compiler::compile::{Compiled, CompiledProgram};
use nfcc_dsl::checked::{CounterId, Policy, Scalar};
use nfcc_dsl::eval::{Meta, Outcome, State};
use nfcc_dsl::testing::Engine;
use nfcc_emulator::{Emulator, Env, Profile};
use nfcc_oracle::RbpfProgram;

/// Which executor runs the object's program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// The emulator's interpreter, the reference.
    Interpreter,
    /// Native code from the emulator's JIT.
    Jit,
    /// The rbpf crate's interpreter (an independent oracle), over the emulator's maps.
    Rbpf,
}

/// A policy's compiled program in the emulator.
pub struct EmulatorEngine {
    object: Vec<u8>,
    program: CompiledProgram,
    emu: Option<Emulator>,
    /// The object loaded with its maps filled, copied for every test.
    pristine: Option<Emulator>,
    /// The program rewritten for rbpf, with [`Executor::Rbpf`].
    rbpf: Option<RbpfProgram>,
    /// The environment every test starts with (interface, profile, FIB).
    pub env: Env,
    /// What runs the program.
    pub executor: Executor,
    /// Statistics seen so far, when the program leaves its deciding slot in its vector.
    seen: crate::Seen,
}

impl EmulatorEngine {
    /// An engine for policy `name` of a compiled object.
    pub fn new(compiled: &Compiled, name: &str) -> Result<EmulatorEngine, String> {
        let program = compiled
            .programs
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| format!("no program `{name}` in the object"))?;
        Ok(EmulatorEngine {
            object: compiled.object.clone(),
            program,
            emu: None,
            pristine: None,
            rbpf: None,
            env: Env::default(),
            executor: Executor::Interpreter,
            seen: crate::Seen::default(),
        })
    }

    /// A fresh engine for the same program and environment.
    pub fn clone_engine(&self) -> EmulatorEngine {
        EmulatorEngine {
            object: self.object.clone(),
            program: self.program.clone(),
            emu: None,
            pristine: None,
            rbpf: None,
            env: self.env.clone(),
            executor: self.executor,
            seen: crate::Seen::default(),
        }
    }

    /// The same engine running the JIT's native code.
    pub fn with_jit(self) -> EmulatorEngine {
        self.with_executor(Executor::Jit)
    }

    /// The same engine running the program on `executor`.
    pub fn with_executor(mut self, executor: Executor) -> EmulatorEngine {
        self.executor = executor;
        self
    }

    /// The same engine with NIC semantics.
    pub fn with_profile(mut self, profile: Profile) -> EmulatorEngine {
        self.env.profile = profile;
        self
    }

    fn emu(&mut self) -> Result<&mut Emulator, String> {
        self.emu
            .as_mut()
            .ok_or_else(|| "the program is not loaded".to_string())
    }

    /// Per-rule packet counts (rules then the default).
    fn stats(&mut self, rules: usize) -> Result<Vec<u64>, String> {
        let program = self.program.name.clone();
        self.emu()?
            .rule_counts(&program, rules)
            .map_err(|e| e.to_string())
    }
}

impl Engine for EmulatorEngine {
    fn name(&self) -> &str {
        match self.executor {
            Executor::Interpreter => "emulator",
            Executor::Jit => "jit",
            Executor::Rbpf => "rbpf",
        }
    }

    fn meta(&self) -> Meta {
        Meta {
            ifindex: self.env.ifindex,
            rxq: self.env.rxq,
            mark: self.env.mark,
        }
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        // The object is read and its maps filled once; every test starts from a copy.
        if self.pristine.is_none() {
            let mut emu = Emulator::load(&self.object).map_err(|e| e.to_string())?;
            for (map, entries) in &self.program.maps {
                for (k, v) in entries {
                    emu.map_update(&map.name, k, v).map_err(|e| e.to_string())?;
                }
            }
            let xsk_map = nfcc_bpf::layout::xsk_map_name(&self.program.name);
            if self.program.maps.iter().any(|(m, _)| m.name == xsk_map) {
                // Any descriptor will do: the emulator delivers nothing, it records the queue.
                for q in 0..nfcc_bpf::layout::XSK_QUEUES {
                    emu.map_update(&xsk_map, &q.to_le_bytes(), &1u32.to_le_bytes())
                        .map_err(|e| e.to_string())?;
                }
            }
            match self.executor {
                Executor::Jit => {
                    emu.jit_compile(&self.program.name)
                        .map_err(|e| e.to_string())?;
                }
                Executor::Rbpf => {
                    let p =
                        RbpfProgram::new(&emu, &self.program.name).map_err(|e| e.to_string())?;
                    self.rbpf = Some(p);
                }
                Executor::Interpreter => {}
            }
            self.pristine = Some(emu);
        }
        let mut emu = self.pristine.clone().ok_or("the object is not loaded")?;
        self.seen = crate::Seen::default();
        emu.env = self.env.clone();
        // The evaluator's clock: it starts at 1 s and stands still within a test.
        emu.env.clock_ns = State::new(policy).now_ns;
        self.emu = Some(emu);
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let name = self.program.name.clone();
        // The deciding slot from the packet vector when the program has one (see the kernel
        // engine); every rule's statistics otherwise.
        let vector = self
            .emu()?
            .clear_decided(&name)
            .map_err(|e| e.to_string())?;
        let before = if vector {
            Vec::new()
        } else {
            self.stats(self.program.ir.default.1 as usize)?
        };
        let out = match (self.executor, self.rbpf.as_ref(), self.emu.as_mut()) {
            (_, _, None) => return Err("the program is not loaded".into()),
            (Executor::Rbpf, Some(p), Some(emu)) => p.run(emu, frame).map_err(|e| e.to_string()),
            (Executor::Rbpf, None, _) => Err("the program was not prepared for rbpf".into()),
            (Executor::Jit, _, Some(emu)) => emu.run_jit(&name, frame).map_err(|e| e.to_string()),
            (Executor::Interpreter, _, Some(emu)) => {
                emu.run(&name, frame).map_err(|e| e.to_string())
            }
        }?;
        let rule = if vector {
            let emu = self.emu()?;
            let slot = emu
                .decided(&name)
                .map_err(|e| e.to_string())?
                .ok_or("the program decided no rule (it left its vector untouched)")?;
            let stats = nfcc_bpf::layout::stats_map_name(&name);
            let now = emu
                .map_lookup(&stats, &slot.to_le_bytes())
                .map_err(|e| e.to_string())?
                .map_or(0, |v| nfcc_bpf::layout::Counts::sum(&v).packets);
            self.seen.moved(slot, now)?;
            crate::rule_of_slot(&self.program, policy, slot)?
        } else {
            let after = self.stats(self.program.ir.default.1 as usize)?;
            crate::rule_from_counts(&self.program, policy, &before, &after)?
        };
        let mark = (policy.hook.is_tc() && out.mark != self.env.mark).then_some(out.mark);
        let verdict = named_by_rule(
            terminal_of_run(policy.hook, out.retval as u32, out.xsk.is_some(), policy),
            policy,
            rule,
        );
        Ok(Outcome {
            verdict,
            rule,
            packet: out.data,
            mark,
        })
    }

    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String> {
        let program = self.program.name.clone();
        let emu = self.emu()?;
        crate::read_counter(policy, &program, id, key, |m, k| {
            emu.map_lookup(m, k).map_err(|e| e.to_string())
        })
    }
}
