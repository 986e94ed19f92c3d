//! Property test of the whole pipeline against the kernel: random policies, written as `.nf`
//! text by a small seeded generator, must check, compile, pass the kernel verifier, and decide
//! random frames exactly as the reference evaluator does.
//!
//! The generator covers every construct the compiler supports: comparisons of every field of
//! section 4 with `== != < <= > >=`, masked comparisons (`FIELD & MASK OP V`, `FIELD & MASK in
//! {...}`), `in` lists mixing values, prefixes and ranges, `in RANGE`, `in PREFIX`, `in SET` for
//! every set kind (static and dynamic, inlined and in maps), `has`, header presence atoms,
//! `over LIMITER` with keys of one to three fields, `match TABLE` (as an atom and as the
//! verdict of a rule), payload comparisons and `not`/`and`/`or` nested up to depth 4; actions
//! `count`, `mark` (tc), `set FIELD = VALUE`, `dec ip.ttl`, `sample N`, `balance POOL by
//! (FIELDS)` and every terminal the hook allows; on xdp, tc ingress and tc egress, one or two
//! policies per file. Most policies have 1-40 rules; one file in 30 has one of 100-500 rules.
//! `balance ... via fib`, `redirect` table entries, ordering comparisons of IPv6 and MAC
//! addresses, IPv6 ranges and masked prefixes or ranges are not generated: the compiler
//! refuses them with E0201. Any refusal of a generated
//! file by the checker or with E0201 fails the test as a generator bug.
//!
//! Each file is compiled twice. The object as deployed (limiters read the kernel's clock) must
//! load through `nfcc_runtime::load`: the verifier accepts 100%. The object for tests
//! (`compile_opts` with a virtual clock, and a decision tree for every run of box rules —
//! `--classifier tree` — so the classifier meets every generated shape, while the deployed
//! object keeps the compiler's choice: limiters read a clock map that `KernelEngine`
//! sets to the evaluator's frozen clock, so buckets of any rate and burst give the same answers
//! on both) runs 20 random frames per policy, built with
//! `nfcc_dsl::testing::frame_from_literal`, on the kernel (`KernelEngine` through the `Engine`
//! trait, one reset per policy so limiter buckets carry over from frame to frame) and on
//! `nfcc_dsl::eval` (`eval::eval` on a `State`, as `EvalEngine` runs it, so that counters can
//! be read by key): verdict, deciding rule and emitted bytes must agree, and so must every
//! counter entry a frame changed. The same frames also run on the emulator
//! (`nfcc_engines::EmulatorEngine`) with the object as deployed — its
//! `bpf_ktime_get_ns` is the evaluator's clock — held to the same answers. Frames too short
//! for the kernel's test runner are run on no engine, so that limiter buckets stay in step. The evaluator's packet metadata is
//! what `BPF_PROG_TEST_RUN` gives (ifindex 1, the loopback device; queue 0; mark 0).
//!
//! A failure prints the file and the verifier log, or the frame and both answers; the failing
//! policy is then shrunk (rules, declarations, sub-predicates, list items, actions and earlier
//! frames dropped while it keeps failing the same way) and saved as the first free
//! `tests/regressions/verifier-<n>.nf`, a disagreement with a test block that replays the
//! frames and expects the evaluator's answer. `saved_regressions_still_pass` re-runs every file
//! of that directory: each must load, and its test-block frames must agree.
//!
//! `NFCC_PROP_SEED` and `NFCC_PROP_CASES` change the seed and the number of generated files.
//! Needs CAP_BPF: without it the tests print `skipped: <why>`, or fail when
//! `NFCC_REQUIRE_KERNEL=1`.
//!
//! The parts: `rng`, `fields` and `generator` write policies, `frames` writes frames, `runner`
//! runs one file on the kernel, the emulator and the evaluator, `shrink` and `regressions`
//! shrink a failure and save it; the tests themselves are here.

mod fields;
mod frames;
mod generator;
mod regressions;
mod rng;
mod runner;
mod shrink;

use crate::frames::gen_frame;
use crate::generator::{gen_policy, render_file};
use crate::regressions::{regression_text, regressions_dir, save_regression};
use crate::rng::Rng;
use crate::runner::{run_file, Failure, Measured};
use crate::shrink::{shrink, signature};
use nfcc_dsl::checked::{Hook, Step, Target};
use nfcc_dsl::{check_source, CheckOptions};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// The seed used when `NFCC_PROP_SEED` is not set.
const DEFAULT_SEED: u64 = 0x6e66_6363_7665_7269;
/// Files generated when `NFCC_PROP_CASES` is not set.
const DEFAULT_CASES: usize = 150;
/// Random frames run per policy.
const FRAMES_PER_POLICY: usize = 20;
/// At most this many regression files are written per run, one per kind of failure (see
/// `signature`), so that one systematic compiler bug does not flood the directory.
const MAX_SAVED: usize = 8;

/// Returns whether the kernel can be used; prints why not (or panics when the kernel is
/// required) otherwise.
fn kernel_available(test: &str) -> bool {
    match nfcc_runtime::can_load_bpf() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
                panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
            }
            eprintln!("skipped: {test}: {reason}");
            false
        }
    }
}

/// Reads an integer from the environment.
fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn generated_policies_load_and_agree_with_the_evaluator() {
    if !kernel_available("verifier property test") {
        return;
    }
    let seed = env_number("NFCC_PROP_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("NFCC_PROP_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut totals = Measured::default();
    let (mut policies, mut rules_total, mut max_rules) = (0usize, 0usize, 0usize);
    let mut generator_bugs = Vec::new();
    let mut problems = Vec::new();
    let mut saved = Vec::new();
    // Failure signatures and how often each occurred, in order of first occurrence.
    let mut kinds: Vec<(String, usize)> = Vec::new();
    // The signatures of the failures saved as regressions.
    let mut saved_kinds: Vec<String> = Vec::new();
    let hooks = [Hook::Xdp, Hook::TcIngress, Hook::TcEgress];
    let (mut nic_programs, mut nic_compared) = (0usize, 0usize);
    for case in 0..cases {
        // Most files hold one policy of 1-40 rules; one in 30 has 100-500 rules and one in
        // ten holds a second policy, so that objects with several programs load too.
        let big = case % 30 == 29;
        let count = 1 + usize::from(rng.chance(10));
        let mut texts = Vec::new();
        let mut frames = Vec::new();
        for k in 0..count {
            let rules = if big && k == 0 {
                rng.range(100, 500) as usize
            } else {
                rng.range(1, 40) as usize
            };
            let hook = rng.pick(&hooks);
            // One file in four keeps to what the NIC accepts, so NIC code is exercised too.
            let nic = case % 4 == 3;
            texts.push(gen_policy(
                &mut rng,
                &format!("p{case}_{k}"),
                hook,
                rules,
                nic,
            ));
            frames.push(
                (0..FRAMES_PER_POLICY)
                    .map(|_| gen_frame(&mut rng))
                    .collect(),
            );
            policies += 1;
            rules_total += rules;
            max_rules = max_rules.max(rules);
        }
        let source = render_file(&texts);
        let name = format!("case-{case}.nf");
        // Files the checker accepts for the NIC also run as NIC code (stack vector, atomic
        // statistics, no LPM), held to the evaluator on the same frames.
        match run_file(&name, &source, &frames, Some(Target::Nfp)) {
            Ok(m) => {
                nic_programs += m.programs;
                nic_compared += m.compared;
            }
            // Not offloadable, or more packet fields than the NIC's stack holds: refusals the
            // user is told about, not bugs.
            Err(Failure::Check(_)) => {}
            Err(Failure::Compile(m)) if m.contains("E0203") && m.contains("stack bytes") => {}
            Err(f) => problems.push(format!("{name} (nfp code): {}\n{source}", f.describe())),
        }
        match run_file(&name, &source, &frames, None) {
            Ok(m) => {
                totals.programs += m.programs;
                totals.verified.extend(m.verified);
                totals.insns.extend(m.insns);
                totals.compared += m.compared;
                totals.short += m.short;
                totals.trees += m.trees;
                totals.tree_rules += m.tree_rules;
                totals.tuples += m.tuples;
                totals.tuple_rules += m.tuple_rules;
            }
            Err(f @ (Failure::Check(_) | Failure::Refused(_))) => {
                generator_bugs.push(format!("{name}: {}\n{source}", f.describe()));
            }
            Err(f) => {
                // The whole file and failure for the first of each kind; one line for the rest,
                // which are most likely the same bug again.
                let first_of_kind = !kinds.iter().any(|(k, _)| *k == signature(&f));
                if first_of_kind {
                    eprintln!(
                        "FAILURE in {name} (seed {seed:#x}):\n{source}\n{}",
                        f.describe()
                    );
                }
                let failing = match &f {
                    Failure::Load { policy, .. } => texts.iter().find(|t| &t.name == policy),
                    Failure::Disagree(d) => texts.iter().find(|t| t.name == d.policy),
                    // A compiler error names no policy; a file of one policy shrinks as is.
                    Failure::Compile(_) if texts.len() == 1 => texts.first(),
                    _ => None,
                };
                let described = f.describe();
                let mut report = if first_of_kind {
                    format!("{name}: {described}")
                } else {
                    let line = described.lines().next().unwrap_or("");
                    format!("{name}: {line} [{}]", signature(&f))
                };
                // One regression per kind of failure: the rest are most likely the same bug.
                let new_kind = !saved_kinds.contains(&signature(&f));
                if let (Some(p), true) = (failing, new_kind && saved.len() < MAX_SAVED) {
                    saved_kinds.push(signature(&f));
                    let (small, sf) = shrink(p, &f);
                    let text = regression_text(&small, &sf, seed);
                    let path = save_regression(&text);
                    let _ = write!(
                        report,
                        "\nshrunk to ({}):\n{text}{}",
                        path.display(),
                        sf.describe()
                    );
                    saved.push(path);
                } else if first_of_kind {
                    let _ = write!(report, "\n{source}");
                }
                problems.push(report);
                match kinds.iter_mut().find(|(k, _)| *k == signature(&f)) {
                    Some((_, n)) => *n += 1,
                    None => kinds.push((signature(&f), 1)),
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let max_verified = totals.verified.iter().copied().max().unwrap_or(0);
    let max_insns = totals.insns.iter().copied().max().unwrap_or(0);
    eprintln!(
        "verifier property (seed {seed:#x}): {cases} files, {policies} policies \
         ({rules_total} rules, largest {max_rules}), {} programs loaded, max verifier \
         processed insns {max_verified}, max program insns {max_insns}; {} frames compared \
         on kernel, emulator and evaluator ({} too short for the test runner); as NIC code: {nic_programs} \
         programs, {nic_compared} frames; {} kernel programs classified {} rules with trees, {} \
         programs {} rules with tuples; {:.1} s",
        totals.programs,
        totals.compared,
        totals.short,
        totals.trees,
        totals.tree_rules,
        totals.tuples,
        totals.tuple_rules,
        elapsed.as_secs_f64()
    );
    // The classifier must meet the generated policies, or this test says nothing of it.
    assert!(
        cases < 20 || (totals.trees > 0 && totals.tuples > 0),
        "no generated policy was classified with a tree ({}) or with tuples ({})",
        totals.trees,
        totals.tuples
    );
    assert!(
        generator_bugs.is_empty(),
        "{} generated files were refused by the checker or with E0201 (generator bugs):\n{}",
        generator_bugs.len(),
        generator_bugs.join("\n\n")
    );
    assert!(
        problems.is_empty(),
        "{} of {cases} generated files failed (saved: {:?}); by kind:\n{}\n\n{}",
        problems.len(),
        saved,
        kinds
            .iter()
            .map(|(k, n)| format!("{n:5} x {k}"))
            .collect::<Vec<_>>()
            .join("\n"),
        problems.join("\n\n")
    );
}

#[test]
fn saved_regressions_still_pass() {
    if !kernel_available("saved verifier regressions") {
        return;
    }
    let dir = regressions_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "nf"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut problems = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let name = path.display().to_string();
        // The frames are those of the test blocks, built as `nfcc test` builds them.
        let (program, _) = check_source(&source, &CheckOptions::default());
        let frames: Vec<Vec<(String, Vec<u8>)>> = program
            .iter()
            .flat_map(|p| &p.policies)
            .map(|policy| {
                policy
                    .tests
                    .iter()
                    .flat_map(|t| &t.steps)
                    .filter_map(|s| match s {
                        Step::Send { layers, .. } => nfcc_dsl::packet::build(layers)
                            .ok()
                            .map(|f| ("(test block packet)".to_string(), f)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        if let Err(f) = run_file(&name, &source, &frames, None) {
            problems.push(format!("{name}: {}", f.describe()));
        }
    }
    eprintln!("saved verifier regressions: {} files", files.len());
    assert!(
        problems.is_empty(),
        "{} saved regressions fail:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
