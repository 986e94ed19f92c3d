//! The first differential check: every policy of the examples and test corpora that the
//! compiler accepts is compiled, loaded into the kernel, and every packet of its test blocks
//! is run through `BPF_PROG_TEST_RUN` and through `dsl::eval`; verdict, deciding rule and
//! emitted bytes must agree packet by packet, and counters must agree wherever a test reads
//! one. Policies the compiler refuses are listed (they use constructs still being built).
//!
//! A second pass compiles every policy the checker accepts for the NIC (`--target nfp`) with
//! the NIC's code generator — stack packet vector, atomic statistics, no LPM tries — and
//! holds that code to the evaluator the same way: NIC code is ordinary XDP/TC bytecode, so
//! the host kernel can run it where no NIC is present.
//!
//! Needs CAP_BPF: without it the test prints `skipped: <why>`, or fails when
//! `NFCC_REQUIRE_KERNEL=1`.

mod common;

use nfcc_compiler::compile::compile_with;
use nfcc_dsl::checked::Target;
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_engines::kernel::{compare, KernelEngine};

#[test]
fn kernel_agrees_with_the_evaluator_on_every_test_packet() {
    if let Err(reason) = nfcc_runtime::can_load_bpf() {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
        }
        eprintln!("skipped: differential kernel test: {reason}");
        return;
    }
    let host = run_corpus(None);
    eprintln!(
        "differential (host code): {} policies, {} packets on kernel and evaluator \
         ({} frames too short for the kernel's test runner); not compiled yet: {}",
        host.policies,
        host.packets,
        host.short,
        host.refused.join(", ")
    );
    let nic = run_corpus(Some(Target::Nfp));
    eprintln!(
        "differential (nfp code): {} policies, {} packets; not compiled: {}",
        nic.policies,
        nic.packets,
        nic.refused.join(", ")
    );
    assert!(
        host.policies >= 5,
        "too few policies compiled: {}",
        host.policies
    );
    assert!(
        nic.policies >= 5,
        "too few nfp policies compiled: {}",
        nic.policies
    );
    let problems: Vec<String> = host.problems.into_iter().chain(nic.problems).collect();
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[derive(Default)]
struct Outcome {
    policies: usize,
    packets: usize,
    short: usize,
    refused: Vec<String>,
    problems: Vec<String>,
}

/// Compiles every corpus policy that checks for `target` and compares it with the evaluator.
fn run_corpus(target: Option<Target>) -> Outcome {
    let mut out = Outcome::default();
    for path in common::corpus_files() {
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{name} must check: {diags:?}"));
        for host_policy in &program.policies {
            // For the NIC, each policy is checked alone (the others blanked out, so spans stay
            // put): one policy with a limiter must not keep its neighbours off the NIC.
            let policy = match target {
                None => host_policy.clone(),
                Some(t) => {
                    let alone =
                        nfcc_dsl::testing::policy_alone(&source, &program, &host_policy.name);
                    let (p, _) = check_source(&alone, &CheckOptions { target: Some(t) });
                    match p
                        .and_then(|p| p.policies.into_iter().find(|x| x.name == host_policy.name))
                    {
                        Some(p) => p,
                        // Not every policy can run on the NIC: the offload checker's business.
                        None => continue,
                    }
                }
            };
            let policy = &policy;
            // Compile each policy on its own so one unsupported policy does not hide the others.
            let single = nfcc_dsl::checked::Program {
                policies: vec![policy.clone()],
            };
            let compiled = match compile_with(&single, &name, &source, target, true) {
                Ok(c) => c,
                Err(e) if target.is_some() && e.iter().any(|d| d.code == "E0205") => {
                    out.problems.push(format!("{name}:{}: {e:?}", policy.name));
                    continue;
                }
                Err(_) => {
                    out.refused.push(format!("{name}:{}", policy.name));
                    continue;
                }
            };
            out.policies += 1;
            let mut kernel = KernelEngine::new(&compiled, &policy.name)
                .unwrap_or_else(|e| panic!("{name} ({target:?}): {e}"));
            let (n, s, p) = compare(policy, &mut kernel);
            out.packets += n;
            out.short += s;
            out.problems.extend(
                p.into_iter()
                    .map(|p| format!("{name}:{} ({target:?}): {p}", policy.name)),
            );
        }
    }
    out
}
