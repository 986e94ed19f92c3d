//! The emulator as a test engine: a compiled policy's object loaded into a fresh [`Emulator`]
//! for every test, its maps filled, each packet run by the interpreter, the deciding rule read
//! back from the per-rule statistics map, counters read by key — the same protocol as the
//! kernel engine, without a kernel.
//!
//! Limiters read `bpf_ktime_get_ns`, which the emulator answers with the evaluator's clock, so
//! the object under test is the one that would be deployed (no virtual-clock map).

use nfcc_compiler::codegen::terminal_of;
use nfcc_compiler::compile::{Compiled, CompiledProgram};
use nfcc_dsl::checked::{CounterId, Policy, Scalar};
use nfcc_dsl::eval::{Meta, Outcome, State};
use nfcc_dsl::testing::Engine;
use nfcc_emulator::{Emulator, Env, Profile};

/// A policy's compiled program in the emulator.
pub struct EmulatorEngine {
    object: Vec<u8>,
    program: CompiledProgram,
    emu: Option<Emulator>,
    /// The object loaded with its maps filled, copied for every test.
    pristine: Option<Emulator>,
    /// The environment every test starts with (interface, profile, FIB).
    pub env: Env,
    /// Run the JIT's native code instead of the interpreter.
    pub jit: bool,
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
            env: Env::default(),
            jit: false,
        })
    }

    /// A fresh engine for the same program and environment.
    pub fn clone_engine(&self) -> EmulatorEngine {
        EmulatorEngine {
            object: self.object.clone(),
            program: self.program.clone(),
            emu: None,
            pristine: None,
            env: self.env.clone(),
            jit: self.jit,
        }
    }

    /// The same engine running the JIT's native code.
    pub fn with_jit(mut self) -> EmulatorEngine {
        self.jit = true;
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
        if self.jit {
            "jit"
        } else {
            "emulator"
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
            if self.jit {
                emu.jit_compile(&self.program.name)
                    .map_err(|e| e.to_string())?;
            }
            self.pristine = Some(emu);
        }
        let mut emu = self.pristine.clone().ok_or("the object is not loaded")?;
        emu.env = self.env.clone();
        // The evaluator's clock: it starts at 1 s and stands still within a test.
        emu.env.clock_ns = State::new(policy).now_ns;
        self.emu = Some(emu);
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let before = self.stats(policy.rules.len())?;
        let name = self.program.name.clone();
        let jit = self.jit;
        let emu = self.emu()?;
        let out = if jit {
            emu.run_jit(&name, frame)
        } else {
            emu.run(&name, frame)
        }
        .map_err(|e| e.to_string())?;
        let after = self.stats(policy.rules.len())?;
        let rule = nfcc_dsl::testing::rule_from_counts(policy, &before, &after)?;
        let mark = (policy.hook.is_tc() && out.mark != self.env.mark).then_some(out.mark);
        Ok(Outcome {
            verdict: terminal_of(policy.hook, out.retval as u32, policy),
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
