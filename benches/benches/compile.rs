//! Compile time: ClassBench ACL policies of 100 and 10,000 rules, from checked policy to ELF
//! object (lowering, IR verification, code generation, ELF+BTF). Goals: 100 rules < 20 ms,
//! 10,000 rules < 1 s.

// Reason: criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_import::classbench::{classbench_to_nf, ClassbenchActions};
use std::hint::black_box;

fn policy(rules: usize) -> String {
    let path = nfcc_benches::classbench_dir().join("acl1_10k");
    let input =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let lines: Vec<&str> = input.lines().take(rules).collect();
    classbench_to_nf(&lines.join("\n"), "acl", ClassbenchActions::Alternate)
        .unwrap_or_else(|e| panic!("import: {e}"))
}

fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for rules in [100, 10_000] {
        let src = policy(rules);
        let (program, diags) = check_source(&src, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("must check: {diags:?}"));
        g.bench_function(format!("acl1_{rules}_rules"), |b| {
            b.iter(|| {
                nfcc_compiler::compile::compile(black_box(&program), "acl.nf", &src, None)
                    .unwrap_or_else(|e| panic!("must compile: {e:?}"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
