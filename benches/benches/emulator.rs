//! Emulator speed on the examples: criterion times the interpreter and the JIT running each
//! example's test-block frames (packets per second: a whole run per packet), and the JIT's
//! code alone (`run_repeat`: the program repeated on one prepared machine, as the kernel's
//! test runner repeats it). A summary then measures the same in one pass with the kernel's
//! `BPF_PROG_TEST_RUN` time per packet (the kernel's JITed code, timed by the kernel) and
//! prints the ratios, so they compare figures taken together. The kernel part needs CAP_BPF
//! and says when it is skipped.

// Reason: criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nfcc_dsl::checked::{Program, Step};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_emulator::{Emulator, Runner};
use std::path::Path;
use std::time::Instant;

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

/// Repeats per frame when timing the program apart from a run's setup, as the kernel's test
/// runner does with its repeat count.
const REPEAT: u32 = 1000;

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
        g.throughput(Throughput::Elements(
            frames.len() as u64 * u64::from(REPEAT),
        ));
        g.bench_function(format!("{name}/jit-repeat"), |b| {
            b.iter(|| {
                for f in frames {
                    let _ = jit.run_repeat(name, f, REPEAT, Runner::Jit);
                }
            })
        });
    }
    g.finish();
    summary(&cases);
}

/// ns per packet of `f` over the frames, run `rounds` times (the median round).
fn median_ns(rounds: usize, packets: u64, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / packets as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The comparison the issue asks for, measured in this run: per example, the interpreter and
/// the JIT per packet (a whole run: setup, program, result — `run_ref`, which leaves the output
/// packet in place), the JIT's code alone (repeated on one prepared machine), and the kernel's
/// JITed code (`BPF_PROG_TEST_RUN` with a repeat count, timed by the kernel), with the ratios
/// to the kernel.
fn summary(cases: &[Case]) {
    let kernel = match nfcc_runtime::can_load_bpf() {
        Err(why) => {
            println!("skipped: kernel ns/packet for comparison: {why}");
            false
        }
        Ok(()) => true,
    };
    println!(
        "\n{:<16} {:>8} {:>8} {:>9} {:>8} {:>10} {:>11}",
        "policy", "interp", "jit", "jit code", "kernel", "jit/kernel", "code/kernel"
    );
    let (mut worst_run, mut worst_code) = (0f64, 0f64);
    for (name, compiled, frames) in cases {
        let mut emu = loaded_emulator(compiled);
        emu.jit_compile(name).unwrap_or_else(|e| panic!("{e}"));
        let n = frames.len() as u64;
        let reps = 2000usize;
        let interp = median_ns(5, n * 200, || {
            for _ in 0..200 {
                for f in frames {
                    let _ = emu.run_ref(name, f, Runner::Interpreter).map(|r| r.retval);
                }
            }
        });
        let jit = median_ns(5, n * reps as u64, || {
            for _ in 0..reps {
                for f in frames {
                    let _ = emu.run_ref(name, f, Runner::Jit).map(|r| r.retval);
                }
            }
        });
        let code = median_ns(5, n * u64::from(REPEAT) * 20, || {
            for _ in 0..20 {
                for f in frames {
                    let _ = emu.run_repeat(name, f, REPEAT, Runner::Jit);
                }
            }
        });
        let k = if kernel {
            let kind = if compiled.programs[0].section == "xdp" {
                nfcc_runtime::ProgType::Xdp
            } else {
                nfcc_runtime::ProgType::Tc
            };
            let l =
                nfcc_runtime::load(&compiled.object, name, kind).unwrap_or_else(|e| panic!("{e}"));
            for (m, entries) in &compiled.programs[0].maps {
                for (k, v) in entries {
                    l.map_update(&m.name, k, v)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            let mut rounds: Vec<f64> = (0..5)
                .map(|_| {
                    let total: u64 = frames
                        .iter()
                        .filter_map(|f| l.test_run(f, 100_000).ok())
                        .map(|r| u64::from(r.duration_ns))
                        .sum();
                    total as f64 / n.max(1) as f64
                })
                .collect();
            rounds.sort_by(f64::total_cmp);
            Some(rounds[2])
        } else {
            None
        };
        let ratio = |x: f64| k.map_or("-".to_string(), |k| format!("{:.1}x", x / k));
        println!(
            "{name:<16} {interp:>8.0} {jit:>8.0} {code:>9.0} {:>8} {:>10} {:>11}",
            k.map_or("-".to_string(), |k| format!("{k:.0}")),
            ratio(jit),
            ratio(code)
        );
        if let Some(k) = k {
            worst_run = worst_run.max(jit / k);
            worst_code = worst_code.max(code / k);
        }
    }
    println!(
        "ns per packet (medians of 5 rounds); worst ratio to the kernel: {worst_run:.1}x per \
         packet, {worst_code:.1}x for the code alone (goal: 3x)"
    );
}

criterion_group!(benches, bench_emulator);
criterion_main!(benches);
