//! `nfcc check` on ClassBench policies: the front end (parse, check, shadowing analysis) must
//! handle a 10,000-rule policy in well under a second in release mode.

// Reason: criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_import::classbench::{classbench_to_nf, ClassbenchActions};
use std::hint::black_box;

fn policy(name: &str) -> String {
    let path = nfcc_benches::classbench_dir().join(name);
    let input =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    classbench_to_nf(&input, name, ClassbenchActions::Alternate)
        .unwrap_or_else(|e| panic!("import {name}: {e}"))
}

fn bench_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("check");
    g.sample_size(10);
    for name in ["acl1_1k", "acl1_10k", "fw1_10k", "ipc1_10k"] {
        let src = policy(name);
        // Fail loudly rather than time an error path.
        let (program, diags) = check_source(&src, &CheckOptions::default());
        assert!(
            program.is_some(),
            "{name} must check: {:?}",
            diags.iter().find(|d| d.is_error())
        );
        g.bench_function(name, |b| {
            b.iter(|| check_source(black_box(&src), &CheckOptions::default()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
