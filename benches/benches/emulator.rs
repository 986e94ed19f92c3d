//! Emulator speed on the examples: criterion times the interpreter and the JIT running each
//! example's test-block frames (packets per second), and the same frames' kernel `BPF_PROG_TEST_RUN`
//! time per packet (the kernel's JITed code, timed by the kernel) is printed in the same run,
//! so the ratio compares figures taken together. The kernel part needs CAP_BPF and says when
//! it is skipped.

// Reason: criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nfcc_dsl::checked::{Program, Step};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_emulator::Emulator;
use std::path::Path;

/// (policy name, compiled object, map entries, frames) of every example policy.
type Case = (String, nfcc_compiler::compile::Compiled, Vec<Vec<u8>>);

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "nf"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let src = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
        let (program, d) = check_source(&src, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{d:?}"));
        for policy in &program.policies {
            let frames: Vec<Vec<u8>> = policy
                .tests
                .iter()
                .flat_map(|t| &t.steps)
                .filter_map(|s| match s {
                    Step::Send { layers, .. } => nfcc_dsl::packet::build(layers).ok(),
                    _ => None,
                })
                .filter(|f| f.len() >= 54)
                .collect();
            let single = Program {
                policies: vec![policy.clone()],
            };
            let compiled = nfcc_compiler::compile::compile(&single, "e.nf", &src, None)
                .unwrap_or_else(|e| panic!("{e:?}"));
            out.push((policy.name.clone(), compiled, frames));
        }
    }
    out
}

fn loaded_emulator(c: &nfcc_compiler::compile::Compiled) -> Emulator {
    let mut emu = Emulator::load(&c.object).unwrap_or_else(|e| panic!("{e}"));
    for (m, entries) in &c.programs[0].maps {
        for (k, v) in entries {
            emu.map_update(&m.name, k, v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    emu
}

fn bench_emulator(c: &mut Criterion) {
    let cases = cases();
    let mut g = c.benchmark_group("emulator");
    for (name, compiled, frames) in &cases {
        let mut emu = loaded_emulator(compiled);
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(format!("{name}/interpreter"), |b| {
            b.iter(|| {
                for f in frames {
                    let _ = emu.run(name, f);
                }
            })
        });
        let mut jit = loaded_emulator(compiled);
        jit.jit_compile(name).unwrap_or_else(|e| panic!("{e}"));
        g.bench_function(format!("{name}/jit"), |b| {
            b.iter(|| {
                for f in frames {
                    let _ = jit.run_jit(name, f);
                }
            })
        });
    }
    g.finish();
    match nfcc_runtime::can_load_bpf() {
        Err(why) => println!("skipped: kernel ns/packet for comparison: {why}"),
        Ok(()) => {
            for (name, compiled, frames) in &cases {
                let kind = if compiled.programs[0].section == "xdp" {
                    nfcc_runtime::ProgKind::Xdp
                } else {
                    nfcc_runtime::ProgKind::Tc
                };
                let l = nfcc_runtime::load(&compiled.object, name, kind)
                    .unwrap_or_else(|e| panic!("{e}"));
                for (m, entries) in &compiled.programs[0].maps {
                    for (k, v) in entries {
                        l.map_update(&m.name, k, v)
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                }
                let total: u64 = frames
                    .iter()
                    .filter_map(|f| l.test_run(f, 100_000).ok())
                    .map(|r| u64::from(r.duration_ns))
                    .sum();
                println!(
                    "kernel {name}: {:.0} ns/packet (mean over {} frames, 100,000 repetitions each)",
                    total as f64 / frames.len().max(1) as f64,
                    frames.len()
                );
            }
        }
    }
}

criterion_group!(benches, bench_emulator);
criterion_main!(benches);
