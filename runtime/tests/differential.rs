//! The first differential check: every policy of the examples and test corpora that the
//! compiler accepts is compiled, loaded into the kernel, and every packet of its test blocks
//! is run through `BPF_PROG_TEST_RUN` and through `dsl::eval`; verdict, deciding rule and
//! emitted bytes must agree packet by packet, and counters must agree wherever a test reads
//! one. Policies the compiler refuses are listed (they use constructs still being built).
//!
//! Needs CAP_BPF: without it the test prints `skipped: <why>`, or fails when
//! `NFCC_REQUIRE_KERNEL=1`.

mod common;

use nfcc_compiler::compile::compile_with;
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_runtime::engine::{compare, KernelEngine};

#[test]
fn kernel_agrees_with_the_evaluator_on_every_test_packet() {
    if let Err(reason) = nfcc_runtime::can_load_bpf() {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
        }
        eprintln!("skipped: differential kernel test: {reason}");
        return;
    }
    let (mut compiled_policies, mut packets, mut short, mut refused) = (0, 0, 0, Vec::new());
    let mut problems = Vec::new();
    for path in common::corpus_files() {
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{name} must check: {diags:?}"));
        for policy in &program.policies {
            // Compile each policy on its own so one unsupported policy does not hide the others.
            let single = nfcc_dsl::checked::Program {
                policies: vec![policy.clone()],
            };
            let compiled = match compile_with(&single, &name, &source, None, true) {
                Ok(c) => c,
                Err(_) => {
                    refused.push(format!("{name}:{}", policy.name));
                    continue;
                }
            };
            compiled_policies += 1;
            let mut kernel = KernelEngine::new(&compiled, &policy.name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (n, s, p) = compare(policy, &mut kernel);
            packets += n;
            short += s;
            problems.extend(
                p.into_iter()
                    .map(|p| format!("{name}:{}: {p}", policy.name)),
            );
        }
    }
    eprintln!(
        "differential: {compiled_policies} policies, {packets} packets on kernel and evaluator \
         ({short} frames too short for the kernel's test runner); not compiled yet: {}",
        refused.join(", ")
    );
    assert!(
        compiled_policies >= 5,
        "too few policies compiled: {compiled_policies}"
    );
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
