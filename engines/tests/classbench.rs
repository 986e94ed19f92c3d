//! The six shared ClassBench sets (acl1, fw1 and ipc1, at 1k and 10k rules), and a set of
//! every family (acl1–5, fw1–5, ipc1–2) drawn by nfcc's generator, as policies,
//! compiled as deployed — the compiler's own classifier choice, which must be a decision tree
//! for every set — and with tuple space search (`--classifier tuples`, which must give
//! tuples), both also laid out as `nfcc load` lays them out (in two halves with a selector,
//! for updates in place), each held to the reference evaluator packet by packet on every executor:
//! the emulator's interpreter, its JIT, rbpf and the kernel (`BPF_PROG_TEST_RUN`). Verdict,
//! deciding rule and output bytes must agree on every packet.
//!
//! After them, the adversarial trace `nfcc_compiler::classify::adversary` derives from the
//! trees' deepest and fullest leaves runs on every executor too, held to the static bound.
//!
//! Traces mix three classes: packets drawn inside a random filter's ranges (that filter or an
//! earlier, overlapping one decides), packets with random headers, and packets no rule can
//! match (IPv6 and ARP: the sets are IPv4-only, so these reach the default).
//!
//! `NFCC_CLASSBENCH_PACKETS` sets the packets per set and build (default 3,000 for the
//! compiler's choice and for tuples in CI; the figure is 100,000). The kernel needs CAP_BPF: without it the kernel column is skipped with
//! its reason, or the test fails under `NFCC_REQUIRE_KERNEL=1`.

use nfcc_compiler::classify::{Choice, Form};
use nfcc_compiler::compile::{compile_opts, Options};
use nfcc_compiler::room::Layout;
use nfcc_dsl::eval::{self, Meta, State};
use nfcc_dsl::testing::{frame_from_literal, Engine};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_engines::{EmulatorEngine, Executor, KernelEngine};
use nfcc_import::classbench::{classbench_to_nf, generate, ClassbenchActions};
use std::time::Instant;

/// One ClassBench filter, as the generator needs it.
struct Filter {
    src: (u32, u8),
    dst: (u32, u8),
    sport: (u16, u16),
    dport: (u16, u16),
    proto: (u8, u8),
    flags: (u16, u16),
}

fn filters(text: &str) -> Vec<Filter> {
    let prefix = |s: &str| -> (u32, u8) {
        let (a, l) = s.split_once('/').expect("a prefix");
        let addr: std::net::Ipv4Addr = a.parse().expect("an address");
        (u32::from(addr), l.parse().expect("a length"))
    };
    let range = |s: &str| -> (u16, u16) {
        let (a, b) = s.split_once(':').expect("a range");
        (
            a.trim().parse().expect("a port"),
            b.trim().parse().expect("a port"),
        )
    };
    let masked = |s: &str| -> (u32, u32) {
        let (v, m) = s.split_once('/').expect("value/mask");
        let n = |x: &str| u32::from_str_radix(x.trim().trim_start_matches("0x"), 16).expect("hex");
        (n(v), n(m))
    };
    text.lines()
        .filter(|l| l.starts_with('@'))
        .map(|l| {
            let c: Vec<&str> = l[1..].split('\t').collect();
            let (p, pm) = masked(c[4]);
            let (f, fm) = masked(c[5]);
            Filter {
                src: prefix(c[0]),
                dst: prefix(c[1]),
                sport: range(c[2]),
                dport: range(c[3]),
                proto: (p as u8, pm as u8),
                flags: (f as u16, fm as u16),
            }
        })
        .collect()
}

mod common;
use common::Rng;

/// Draws within ranges and prefixes.
trait Within {
    fn within(&mut self, r: (u16, u16)) -> u16;
    fn in_prefix(&mut self, p: (u32, u8)) -> std::net::Ipv4Addr;
}

impl Within for Rng {
    fn within(&mut self, (lo, hi): (u16, u16)) -> u16 {
        lo + self.below(u64::from(hi - lo) + 1) as u16
    }
    fn in_prefix(&mut self, (net, len): (u32, u8)) -> std::net::Ipv4Addr {
        let host = if len >= 32 {
            0
        } else {
            (self.next() as u32) & (u32::MAX >> len)
        };
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        std::net::Ipv4Addr::from((net & mask) | host)
    }
}

/// A packet literal inside `f`'s ranges (random where the filter has wildcards).
fn inside(f: &Filter, rng: &mut Rng) -> String {
    let proto = if f.proto.1 == 0xff {
        f.proto.0
    } else {
        [6u8, 17, 1, 47][rng.below(4) as usize]
    };
    let (src, dst) = (rng.in_prefix(f.src), rng.in_prefix(f.dst));
    let (fv, fm) = ((f.flags.0 >> 8) as u8, (f.flags.1 >> 8) as u8);
    let flag_byte = (fv & fm) | (rng.next() as u8 & !fm);
    // ICMP: the low byte is the code.
    let (cv, cm) = (f.flags.0 as u8, f.flags.1 as u8);
    let code = (cv & cm) | (rng.next() as u8 & !cm);
    literal(
        src,
        dst,
        proto,
        (rng.within(f.sport), rng.within(f.dport)),
        (flag_byte, code),
    )
}

fn literal(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    proto: u8,
    (sport, dport): (u16, u16),
    (flags, code): (u8, u8),
) -> String {
    match proto {
        6 => {
            format!("ipv4(src={src}, dst={dst}) / tcp(sport={sport}, dport={dport}, flags={flags})")
        }
        17 => format!("ipv4(src={src}, dst={dst}) / udp(sport={sport}, dport={dport})"),
        1 => format!("ipv4(src={src}, dst={dst}) / icmp(type={flags}, code={code})"),
        p => format!("ipv4(src={src}, dst={dst}, proto={p}) / payload(\"xxxxxxxx\")"),
    }
}

/// One packet of the trace: inside a rule (70%), random headers (20%), or not IPv4 (10%).
fn packet(fs: &[Filter], rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=6 => inside(&fs[rng.below(fs.len() as u64) as usize], rng),
        7 | 8 => {
            let a = |r: &mut Rng| std::net::Ipv4Addr::from(r.next() as u32);
            let (src, dst) = (a(rng), a(rng));
            let proto = [6u8, 17, 1, 47][rng.below(4) as usize];
            let (s, d, f) = (rng.next() as u16, rng.next() as u16, rng.next() as u8);
            literal(src, dst, proto, (s, d), (f, rng.next() as u8))
        }
        _ if rng.below(2) == 0 => format!(
            "ipv6(src=2001:db8::{:x}, dst=2001:db8::1) / udp(dport={})",
            rng.next() as u16,
            rng.next() as u16
        ),
        _ => "arp()".to_string(),
    }
}

fn kernel_skip(reason: &str) {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the kernel column cannot run: {reason}");
    }
    eprintln!("skipped: classbench on the kernel: {reason}");
}

#[test]
fn every_classbench_set_agrees_on_every_executor() {
    let asked: Option<usize> = std::env::var("NFCC_CLASSBENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok());
    let kernel = nfcc_runtime::can_load_bpf();
    if let Err(why) = &kernel {
        kernel_skip(why);
    }
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data/classbench");
    let mut problems = Vec::new();
    let shared = [
        "acl1_1k", "fw1_1k", "ipc1_1k", "acl1_10k", "fw1_10k", "ipc1_10k",
    ];
    let builds = [
        (Choice::Auto, Form::Tree, 3_000, false),
        (Choice::Tuples, Form::Tuples, 3_000, false),
        // As `nfcc load` lays them out: two halves and a selector.
        (Choice::Auto, Form::Tree, 1_000, true),
        (Choice::Tuples, Form::Tuples, 1_000, true),
    ];
    let mut runs: Vec<(String, String, Choice, Option<Form>, usize, bool)> = Vec::new();
    for set in shared {
        let text = std::fs::read_to_string(dir.join(set))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for (choice, form, count, updatable) in builds {
            runs.push((
                set.to_string(),
                text.clone(),
                choice,
                Some(form),
                count,
                updatable,
            ));
        }
    }
    // Every family, drawn by the generator (2,000 filters, seed 1), as the compiler chooses.
    for family in [
        "acl1", "acl2", "acl3", "acl4", "acl5", "fw1", "fw2", "fw3", "fw4", "fw5", "ipc1", "ipc2",
    ] {
        let seed = std::fs::read_to_string(dir.join("seeds").join(format!("{family}_seed")))
            .unwrap_or_else(|e| panic!("{family}: {e}"));
        let seed = generate::Seed::parse(&seed).unwrap_or_else(|e| panic!("{family}: {e}"));
        let text = generate::to_text(&generate::generate(&seed, 2_000, 1));
        runs.push((
            format!("{family}_2k_s1"),
            text,
            Choice::Auto,
            None,
            400,
            false,
        ));
    }
    for (set, text, choice, form, default_count, updatable) in runs {
        let set = set.as_str();
        let count = asked.unwrap_or(default_count);
        let fs = filters(&text);
        let name = set.replace('_', "");
        let source = classbench_to_nf(&text, &name, ClassbenchActions::Alternate)
            .unwrap_or_else(|e| panic!("import: {e}"));
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{set} must check: {diags:?}"));
        let policy = &program.policies[0];
        let started = Instant::now();
        let opts = Options {
            classifier: choice,
            layout: if updatable {
                Layout::Updatable(None)
            } else {
                Layout::Packed
            },
            ..Options::default()
        };
        let compiled = compile_opts(&program, &format!("{set}.nf"), &source, &opts)
            .unwrap_or_else(|e| panic!("compile {set}: {e:?}"));
        let compile_time = started.elapsed();
        let cp = &compiled.programs[0];
        let trees = cp
            .ir
            .classifiers
            .iter()
            .filter(|d| form.is_none_or(|f| d.form == f))
            .count();
        if let Some(form) = form {
            assert!(trees > 0, "{set}: no {form} classifier with {choice:?}");
        }
        let form = form.map_or("auto".to_string(), |f| f.to_string())
            + if updatable { ", in halves" } else { "" };
        let mut engines: Vec<Box<dyn Engine>> = Vec::new();
        for ex in [Executor::Interpreter, Executor::Jit, Executor::Rbpf] {
            let e = EmulatorEngine::new(&compiled, &name)
                .unwrap_or_else(|e| panic!("{e}"))
                .with_executor(ex);
            engines.push(Box::new(e));
        }
        if kernel.is_ok() {
            engines.push(Box::new(
                KernelEngine::new(&compiled, &name).unwrap_or_else(|e| panic!("{e}")),
            ));
        }
        for e in &mut engines {
            e.reset(policy).unwrap_or_else(|e| panic!("{set}: {e}"));
        }
        // The static bound `compile --stats` prints holds for every packet run.
        let bound = nfcc_bpf::paths::longest_path(&cp.code)
            .unwrap_or_else(|e| panic!("{set}: nfcc's programs have a bound: {e}"));
        let mut counting = nfcc_emulator::Emulator::load(&compiled.object)
            .unwrap_or_else(|e| panic!("{set}: {e}"));
        for (m, entries) in &cp.maps {
            for (k, v) in entries {
                counting
                    .map_update(&m.name, k, v)
                    .unwrap_or_else(|e| panic!("{set}: {e}"));
            }
        }
        let mut most = 0u64;
        let meta = Meta {
            ifindex: 1,
            rxq: 0,
            mark: 0,
        };
        let mut state = State::new(policy);
        let mut rng = Rng(0x6e66_6363_6362_0001 ^ fs.len() as u64);
        let mut defaults = 0;
        let started = Instant::now();
        // Random traffic, then the adversarial trace derived from the trees' deepest leaves.
        let derived: Vec<String> = nfcc_compiler::classify::adversary::witnesses(&cp.ir, 8)
            .iter()
            .map(|w| w.literal())
            .collect();
        let mut most_derived = 0u64;
        for n in 0..count + derived.len() {
            let lit = if n < count {
                packet(&fs, &mut rng)
            } else {
                derived[n - count].clone()
            };
            let frame = frame_from_literal(&lit).unwrap_or_else(|e| panic!("{lit}: {e}"));
            let want = eval::eval(policy, &mut state, &meta, &frame);
            let ran = counting
                .run(&name, &frame)
                .unwrap_or_else(|e| panic!("{set} `{lit}`: {e}"))
                .executed;
            assert!(
                ran <= bound as u64,
                "{set} `{lit}`: ran {ran} instructions, past the bound {bound}"
            );
            if n < count {
                most = most.max(ran);
            } else {
                most_derived = most_derived.max(ran);
            }
            defaults += usize::from(want.rule == nfcc_dsl::checked::RuleRef::Default);
            for e in &mut engines {
                let got = e.run(policy, &frame).unwrap_or_else(|err| {
                    panic!("{set} packet {n} `{lit}` on {}: {err}", e.name())
                });
                if (got.verdict.clone(), got.rule, &got.packet)
                    != (want.verdict.clone(), want.rule, &want.packet)
                {
                    problems.push(format!(
                        "{set} ({form}) packet {n} `{lit}`: eval {} by {:?}, {} {} by {:?}",
                        want.verdict,
                        want.rule,
                        e.name(),
                        got.verdict,
                        got.rule
                    ));
                }
            }
            assert!(problems.len() < 20, "{}", problems.join("\n"));
        }
        // The derived trace is at least as hard as random traffic (within a tenth).
        assert!(
            derived.is_empty() || most_derived * 10 >= most * 9,
            "{set} ({form}): the derived adversarial packets ran at most {most_derived} \
             instructions, random traffic {most}"
        );
        eprintln!(
            "{set} ({form}): {} rules, {} instructions (at most {bound} on a path, {most} seen in \
             random traffic, {most_derived} in {} derived adversarial packets), \
             {trees} classifier run(s), compiled in {:.2} s; \
             {count} packets ({defaults} to the default) agreed on eval and {} in {:.1} s",
            policy.rules.len(),
            cp.insns,
            derived.len(),
            compile_time.as_secs_f64(),
            engines
                .iter()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed().as_secs_f64()
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
