//! The emulator (interpreter and JIT) and the rbpf oracle held to the reference evaluator: every policy of the examples and the test
//! corpora, compiled as deployed (limiters on `bpf_ktime_get_ns`, which the emulator answers
//! with the evaluator's clock), every packet of its test blocks — verdict, deciding rule,
//! emitted bytes, final skb mark and counters must agree. Policies the NIC can run are also
//! compiled for it and run with the NIC profile (rbpf refuses NIC code: it counts with atomic
//! adds, which rbpf lacks). Needs no privileges.

use nfcc_compiler::compile::compile;
use nfcc_dsl::checked::{Program, Target};
use nfcc_dsl::testing::{compare, policy_alone, Engine};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_emulator::Profile;
use nfcc_engines::{EmulatorEngine, Executor};

mod common;

#[test]
fn emulator_agrees_with_the_evaluator_on_every_test_packet() {
    let (mut policies, mut nic_policies, mut packets, mut problems) = (0, 0, 0, Vec::new());
    let (mut rbpf_refused, mut rbpf_packets) = (0, 0);
    for path in common::corpus_files() {
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{name} must check: {diags:?}"));
        for policy in &program.policies {
            let single = Program {
                policies: vec![policy.clone()],
            };
            let compiled = compile(&single, &name, &source, Some(Target::Host))
                .unwrap_or_else(|e| panic!("{name}:{}: {e:?}", policy.name));
            let emu = EmulatorEngine::new(&compiled, &policy.name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            // The interpreter, rbpf and the JIT, each held to the evaluator.
            let rbpf = emu.clone_engine().with_executor(Executor::Rbpf);
            for mut engine in [emu.clone_engine(), rbpf, emu.with_jit()] {
                let (n, _, p) = compare(policy, &mut engine, true);
                packets += n;
                if engine.name() == "rbpf" {
                    rbpf_packets += n;
                }
                let which = engine.name().to_string();
                problems.extend(
                    p.into_iter()
                        .map(|p| format!("{name}:{} ({which}): {p}", policy.name)),
                );
            }
            policies += 1;

            // The same policy as NIC code, where the NIC can run it.
            let text = policy_alone(&source, &program, &policy.name);
            let (nic, _) = check_source(
                &text,
                &CheckOptions {
                    target: Some(Target::Nfp),
                },
            );
            let Some(nic) =
                nic.and_then(|p| p.policies.into_iter().find(|x| x.name == policy.name))
            else {
                continue;
            };
            let single = Program {
                policies: vec![nic.clone()],
            };
            let compiled = match compile(&single, &name, &text, Some(Target::Nfp)) {
                Ok(c) => c,
                // More packet fields than the NIC's stack holds is a refusal, not a bug.
                Err(e) if e.iter().all(|d| d.code == "E0203") => continue,
                Err(e) => panic!("{name}:{} (nfp): {e:?}", policy.name),
            };
            let emu = EmulatorEngine::new(&compiled, &nic.name)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .with_profile(Profile::Nfp);
            // NIC code counts with atomic adds, which rbpf lacks: refused, and said so.
            let mut engines = vec![emu.clone_engine(), emu.clone_engine().with_jit()];
            let loaded = nfcc_emulator::Emulator::load(&compiled.object)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            match nfcc_oracle::RbpfProgram::new(&loaded, &nic.name) {
                Ok(_) => engines.push(emu.with_executor(Executor::Rbpf)),
                Err(nfcc_oracle::OracleError::Unsupported { what, .. })
                    if what.starts_with("atomic operations") =>
                {
                    rbpf_refused += 1
                }
                Err(e) => problems.push(format!("{name}:{} (nfp, rbpf): {e}", policy.name)),
            }
            for mut engine in engines {
                let (n, _, p) = compare(&nic, &mut engine, true);
                packets += n;
                let which = engine.name().to_string();
                problems.extend(
                    p.into_iter()
                        .map(|p| format!("{name}:{} (nfp, {which}): {p}", policy.name)),
                );
            }
            nic_policies += 1;
        }
    }
    eprintln!(
        "emulator differential: {policies} policies as host code (interpreter, rbpf and JIT), \
         {nic_policies} as NIC code (interpreter and JIT; {rbpf_refused} refused by rbpf for \
         their atomics), {packets} packets ({rbpf_packets} on rbpf)"
    );
    assert!(policies >= 30, "too few policies: {policies}");
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
