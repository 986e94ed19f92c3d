//! The engine factory: which executor runs a policy's test blocks, and each built with the
//! object it must run — the emulator and JIT the object as deployed (its clock the
//! evaluator's), the kernel and the testbed the object compiled with a virtual clock map.

use crate::error::DriverError;
use crate::source::compile_program;
use nfcc_compiler::compile::Compiled;
use nfcc_dsl::checked::{Policy, Program, Target};
use nfcc_dsl::testing::{Engine, EvalEngine};
use nfcc_engines::Executor;

/// An engine that can run test blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EngineKind {
    /// The reference evaluator (no compilation).
    Eval,
    /// The compiled program on nfcc's emulator (no kernel, no privileges).
    Emulator,
    /// The compiled program as native code from nfcc's cranelift JIT.
    Jit,
    /// The compiled program on the rbpf crate's interpreter (an independent oracle).
    Rbpf,
    /// The compiled program in the kernel (BPF_PROG_TEST_RUN).
    Kernel,
    /// The real path: each packet sent into a veth testbed where the policy runs, its fate
    /// observed from outside and held to the evaluator (root).
    Testbed,
}

impl EngineKind {
    /// The engine's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Eval => "eval",
            EngineKind::Emulator => "emulator",
            EngineKind::Jit => "jit",
            EngineKind::Rbpf => "rbpf",
            EngineKind::Kernel => "kernel",
            EngineKind::Testbed => "testbed",
        }
    }

    /// Whether it needs the kernel (privileges).
    pub fn needs_kernel(self) -> bool {
        matches!(self, EngineKind::Kernel | EngineKind::Testbed)
    }
}

/// What `nfcc test --engine` asks for: one engine, or a set held to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EngineChoice {
    /// The reference evaluator (no compilation).
    Eval,
    /// The compiled program on nfcc's emulator (no kernel, no privileges).
    Emulator,
    /// The compiled program as native code from nfcc's cranelift JIT.
    Jit,
    /// The compiled program on the rbpf crate's interpreter (an independent oracle).
    Rbpf,
    /// The compiled program in the kernel (BPF_PROG_TEST_RUN).
    Kernel,
    /// Emulator and kernel, each held to the evaluator packet by packet.
    Both,
    /// Evaluator, emulator, JIT, rbpf and kernel.
    All,
    /// The real path: each packet sent into a veth testbed where the policy runs in native
    /// XDP, its fate observed from outside and held to the evaluator (root).
    Testbed,
}

impl EngineChoice {
    /// The engines the choice runs, in order.
    pub fn engines(self) -> Vec<EngineKind> {
        match self {
            EngineChoice::Eval => vec![EngineKind::Eval],
            EngineChoice::Emulator => vec![EngineKind::Emulator],
            EngineChoice::Jit => vec![EngineKind::Jit],
            EngineChoice::Rbpf => vec![EngineKind::Rbpf],
            EngineChoice::Kernel => vec![EngineKind::Kernel],
            EngineChoice::Both => vec![EngineKind::Emulator, EngineKind::Kernel],
            EngineChoice::All => vec![
                EngineKind::Eval,
                EngineKind::Emulator,
                EngineKind::Jit,
                EngineKind::Rbpf,
                EngineKind::Kernel,
            ],
            EngineChoice::Testbed => vec![EngineKind::Testbed],
        }
    }
}

/// Builds engine `kind` for `policy` of the file `label` (text `source`).
pub fn engine_for(
    kind: EngineKind,
    policy: &Policy,
    label: &str,
    source: &str,
) -> Result<Box<dyn Engine>, DriverError> {
    if kind == EngineKind::Eval {
        return Ok(Box::new(EvalEngine::default()));
    }
    let single = Program {
        policies: vec![policy.clone()],
    };
    // The kernel and the testbed run limiters on a virtual clock compiled in; the emulator
    // supplies the clock itself.
    let virtual_clock = matches!(kind, EngineKind::Kernel | EngineKind::Testbed);
    let compiled = compile_program(&single, label, source, None, virtual_clock)?;
    engine_over(kind, policy, label, &compiled)
}

/// An engine of kind `kind` for `policy` running `compiled`'s program as it is, without
/// compiling: what `nfcc test OBJ` runs. The kernel and testbed engines hold limiters to the
/// evaluator's frozen time through a virtual clock compiled into the program, so a program
/// without one (an object compiled for deployment) is refused there when it has limiters.
pub fn engine_over(
    kind: EngineKind,
    policy: &Policy,
    label: &str,
    compiled: &Compiled,
) -> Result<Box<dyn Engine>, DriverError> {
    let at = |e: String| DriverError::Environment(format!("{label}: {e}"));
    let clock = nfcc_bpf::layout::clock_map_name(&policy.name);
    let virtual_clock = compiled
        .programs
        .iter()
        .filter(|p| p.name == policy.name)
        .any(|p| p.maps.iter().any(|(m, _)| m.name == clock));
    Ok(match kind {
        EngineKind::Eval => Box::new(EvalEngine::default()),
        EngineKind::Emulator | EngineKind::Jit | EngineKind::Rbpf => {
            if kind == EngineKind::Rbpf {
                // A program rbpf cannot run is refused here, with the instruction or helper and
                // why (exit 2), rather than failing every test block.
                let emu = nfcc_emulator::Emulator::load(&compiled.object)
                    .map_err(|e| at(e.to_string()))?;
                nfcc_oracle::RbpfProgram::new(&emu, &policy.name)?;
            }
            let mut e = nfcc_engines::EmulatorEngine::new(compiled, &policy.name)
                .map_err(at)?
                .with_executor(match kind {
                    EngineKind::Jit => Executor::Jit,
                    EngineKind::Rbpf => Executor::Rbpf,
                    _ => Executor::Interpreter,
                });
            if policy.offload == Some(Target::Nfp) {
                e = e.with_profile(nfcc_emulator::Profile::Nfp);
            }
            Box::new(e)
        }
        EngineKind::Kernel | EngineKind::Testbed
            if !policy.limiters.is_empty() && !virtual_clock =>
        {
            return Err(DriverError::Input(format!(
                "the {} engine runs limiters on a virtual clock compiled into the program, and \
                 this one reads the real clock; `--engine emulator` supplies the clock to the \
                 program as it is",
                kind.name()
            )))
        }
        EngineKind::Testbed => Box::new(
            nfcc_engines::TestbedEngine::new(compiled, &policy.name)
                .map_err(|e| at(e.to_string()))?,
        ),
        EngineKind::Kernel => Box::new(
            nfcc_engines::KernelEngine::new(compiled, &policy.name)
                .map_err(|e| at(e.to_string()))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_expand_to_engines_and_engines_build() {
        assert_eq!(
            EngineChoice::Both.engines(),
            [EngineKind::Emulator, EngineKind::Kernel]
        );
        assert!(EngineChoice::All.engines().contains(&EngineKind::Jit));
        let src = "policy p on xdp {\n  rule r: udp.dport == 53 => drop\n  default pass\n  test \"t\" {\n    send ipv4() / udp(dport=53)\n    expect drop by r\n  }\n}\n";
        let (prog, _) = nfcc_dsl::check_source(src, &Default::default());
        let prog = prog.unwrap_or_else(|| panic!("does not check"));
        for kind in [
            EngineKind::Eval,
            EngineKind::Emulator,
            EngineKind::Jit,
            EngineKind::Rbpf,
        ] {
            let mut e =
                engine_for(kind, &prog.policies[0], "p.nf", src).unwrap_or_else(|e| panic!("{e}"));
            let reports = nfcc_dsl::testing::run_tests(&prog.policies[0], e.as_mut());
            assert!(
                reports.iter().all(|r| r.passed()),
                "{}: {reports:?}",
                kind.name()
            );
        }
    }
}
