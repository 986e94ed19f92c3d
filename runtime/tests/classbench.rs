//! The 10,000-rule ClassBench ACL (`acl1_10k`) as a policy: compiled, loaded, and held to the
//! reference evaluator on 100,000 packets drawn to hit its rules (each packet is built inside
//! a randomly chosen filter's ranges, so it matches that filter or an earlier, overlapping
//! one). Verdict, deciding rule (from the per-rule statistics) and output bytes must agree on
//! every packet. It also prints the kernel's own `BPF_PROG_TEST_RUN` time per packet for
//! packets deciding early, mid-list, late and at the default — a measurement, not an
//! assertion.
//!
//! `NFCC_CLASSBENCH_PACKETS` changes the packet count. Needs CAP_BPF (skips otherwise, or
//! fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_compiler::compile::compile;
use nfcc_dsl::checked::{RuleRef, Terminal};
use nfcc_dsl::eval::{self, Meta, State};
use nfcc_dsl::import::{classbench_to_nf, ClassbenchActions};
use nfcc_dsl::testing::{frame_from_literal, hex};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_runtime::load;
use nfcc_runtime::ProgType;
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

fn prefix(s: &str) -> (u32, u8) {
    let (a, l) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("bad prefix {s}"));
    let addr: std::net::Ipv4Addr = a.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
    (
        u32::from(addr),
        l.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
    )
}

fn range(s: &str) -> (u16, u16) {
    let (a, b) = s.split_once(':').unwrap_or_else(|| panic!("bad range {s}"));
    let n = |x: &str| x.trim().parse().unwrap_or_else(|e| panic!("{s}: {e}"));
    (n(a), n(b))
}

fn masked(s: &str) -> (u32, u32) {
    let (v, m) = s.split_once('/').unwrap_or_else(|| panic!("bad value {s}"));
    let n = |x: &str| {
        u32::from_str_radix(x.trim().trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    (n(v), n(m))
}

fn filters(text: &str) -> Vec<Filter> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.trim_start_matches('@').split('\t').collect();
            let (p, pm) = masked(cols[4]);
            let (f, fm) = masked(cols[5]);
            Filter {
                src: prefix(cols[0]),
                dst: prefix(cols[1]),
                sport: range(cols[2]),
                dport: range(cols[3]),
                proto: (p as u8, pm as u8),
                flags: (f as u16, fm as u16),
            }
        })
        .collect()
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
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
fn literal(f: &Filter, rng: &mut Rng) -> String {
    let proto = if f.proto.1 == 0xff {
        f.proto.0
    } else {
        [6u8, 17, 1, 47][rng.below(4) as usize]
    };
    let src = rng.in_prefix(f.src);
    let dst = rng.in_prefix(f.dst);
    // The flags column's high byte: TCP flags (or the ICMP type), with wildcard bits random.
    let (fv, fm) = ((f.flags.0 >> 8) as u8, (f.flags.1 >> 8) as u8);
    let flag_byte = (fv & fm) | (rng.next() as u8 & !fm);
    match proto {
        6 => format!(
            "ipv4(src={src}, dst={dst}) / tcp(sport={}, dport={}, flags={flag_byte})",
            rng.within(f.sport),
            rng.within(f.dport)
        ),
        17 => format!(
            "ipv4(src={src}, dst={dst}) / udp(sport={}, dport={})",
            rng.within(f.sport),
            rng.within(f.dport)
        ),
        1 => format!("ipv4(src={src}, dst={dst}) / icmp(type={flag_byte})"),
        p => format!("ipv4(src={src}, dst={dst}, proto={p}) / payload(\"xxxxxxxx\")"),
    }
}

fn xdp_verdict(retval: u32) -> Terminal {
    match retval {
        1 => Terminal::Drop,
        2 => Terminal::Pass,
        3 => Terminal::Tx,
        _ => Terminal::Abort,
    }
}

#[test]
fn acl1_10k_agrees_with_the_evaluator_on_100k_packets() {
    if let Err(reason) = nfcc_runtime::can_load_bpf() {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
        }
        eprintln!("skipped: classbench differential: {reason}");
        return;
    }
    let count: usize = std::env::var("NFCC_CLASSBENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data/classbench");
    let text = std::fs::read_to_string(dir.join("acl1_10k"))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let fs = filters(&text);
    let source = classbench_to_nf(&text, "acl", ClassbenchActions::Alternate)
        .unwrap_or_else(|e| panic!("import: {e}"));
    let (program, diags) = check_source(&source, &CheckOptions::default());
    let program = program.unwrap_or_else(|| panic!("acl1_10k must check: {diags:?}"));
    let policy = &program.policies[0];
    assert_eq!(policy.rules.len(), fs.len(), "one rule per filter");
    let started = Instant::now();
    let compiled = compile(&program, "acl1_10k.nf", &source, None)
        .unwrap_or_else(|e| panic!("compile: {e:?}"));
    let compile_time = started.elapsed();
    let loaded = load(&compiled.object, "acl", ProgType::Xdp).unwrap_or_else(|e| panic!("{e}"));
    // Maps with initial entries (the tables of merged rule runs) are filled after loading.
    for (m, entries) in &compiled.programs[0].maps {
        for (k, v) in entries {
            loaded
                .map_update(&m.name, k, v)
                .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        }
    }
    let stats = "acl_nfcc_rule_stats";
    let slot = |i: u32| -> u64 {
        loaded
            .percpu_array_sum(stats, i)
            .unwrap_or_else(|e| panic!("{e}"))
            .first()
            .copied()
            .unwrap_or(0)
    };

    let meta = Meta {
        ifindex: 1,
        rxq: 0,
        mark: 0,
    };
    let mut state = State::new(policy);
    let mut rng = Rng(0x6e66_6363_6163_6c31);
    let mut problems = Vec::new();
    let mut hit_default = 0usize;
    let mut deciding = vec![0usize; 4];
    let started = Instant::now();
    for n in 0..count {
        let f = &fs[rng.below(fs.len() as u64) as usize];
        let lit = literal(f, &mut rng);
        let frame = frame_from_literal(&lit).unwrap_or_else(|e| panic!("{lit}: {e}"));
        let want = eval::eval(policy, &mut state, &meta, &frame);
        let index = match want.rule {
            RuleRef::Rule(id) => id.0,
            RuleRef::Default => policy.rules.len() as u32,
        };
        if want.rule == RuleRef::Default {
            hit_default += 1;
        }
        deciding[(index as usize * 4 / (policy.rules.len() + 1)).min(3)] += 1;
        let before = slot(index);
        let run = loaded.test_run(&frame, 1).unwrap_or_else(|e| panic!("{e}"));
        let after = slot(index);
        let verdict = xdp_verdict(run.retval);
        if verdict != want.verdict || after != before + 1 || run.data_out != want.packet {
            // Find the rule the kernel credited, for the report.
            let credited = (0..=policy.rules.len() as u32)
                .find(|&i| i != index && slot(i) > 0)
                .map_or("?".to_string(), |i| format!("r{i}"));
            problems.push(format!(
                "packet {n} `{lit}` (hex {}): eval {} by {:?}, kernel {verdict} (rule slot {index} \
                 moved {} ; another credited: {credited})",
                hex(&frame),
                want.verdict,
                want.rule,
                after - before
            ));
            if problems.len() >= 10 {
                break;
            }
        }
    }
    let elapsed = started.elapsed();

    // The kernel's own per-packet time, for a packet deciding at each quarter of the list.
    let mut timings = Vec::new();
    for (q, label) in [
        (0usize, "first rules"),
        (1, "second quarter"),
        (3, "last quarter"),
    ] {
        let i = (q * fs.len() / 4 + 7).min(fs.len() - 1);
        let lit = literal(&fs[i], &mut rng);
        let frame = frame_from_literal(&lit).unwrap_or_else(|e| panic!("{e}"));
        let run = loaded
            .test_run(&frame, 2000)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = eval::eval(policy, &mut state, &meta, &frame).rule;
        timings.push(format!("{label} ({r:?}): {} ns", run.duration_ns));
    }
    let default_frame =
        frame_from_literal("ipv4(src=0.0.0.1, dst=0.0.0.2) / udp(sport=1, dport=1)")
            .unwrap_or_else(|e| panic!("{e}"));
    let run = loaded
        .test_run(&default_frame, 2000)
        .unwrap_or_else(|e| panic!("{e}"));
    timings.push(format!(
        "default (all 9,774 rules tried): {} ns",
        run.duration_ns
    ));

    eprintln!(
        "classbench acl1_10k: {} rules, {} instructions, compiled in {:.1} ms, verifier \
         processed {:?}; {count} packets ({hit_default} to the default; deciding quarter of the \
         list {deciding:?}) compared in {:.1} s; kernel test_run per packet: {}",
        fs.len(),
        compiled.programs[0].insns,
        compile_time.as_secs_f64() * 1e3,
        loaded.verified_insns(),
        elapsed.as_secs_f64(),
        timings.join(", ")
    );
    assert!(
        problems.is_empty(),
        "{} disagreements (first 10):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
