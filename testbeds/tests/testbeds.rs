//! Testbeds on the real kernel: they clean up after themselves (also on panic), the traffic
//! generator's frames reach the policy on the receiving veth and every one is counted, and a
//! bench of the blocklist policy measures the C and nftables baselines in the same run.
//! The baseline translations are checked without privilege.
//!
//! The kernel tests need root, clang and nft (skip otherwise, or fail under
//! `NFCC_REQUIRE_KERNEL=1`).

use nfcc_testbeds::baseline;
use nfcc_testbeds::bench::{self, Baseline, Row, Subject};
use nfcc_testbeds::Testbed;
use std::process::Command;

fn can_run(test: &str, tools: &[&str]) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t} >/dev/null")])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if root && missing.is_empty() && nfcc_runtime::can_load_bpf().is_ok() {
        return true;
    }
    let reason = format!("needs root, bpf and {}", tools.join(", "));
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the {test} test {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}

fn policy(src: &str) -> nfcc_dsl::checked::Policy {
    let (p, d) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    let p = p.unwrap_or_else(|| panic!("{d:?}"));
    p.policies.into_iter().next().expect("one policy")
}

fn subject(src: &str) -> (Subject, nfcc_dsl::checked::Policy) {
    let pol = policy(src);
    let single = nfcc_dsl::checked::Program {
        policies: vec![pol.clone()],
    };
    let c = nfcc_compiler::compile::compile(&single, "t.nf", src, None)
        .unwrap_or_else(|d| panic!("{d:?}"));
    (
        Subject::policy(pol.name.clone(), &c.object, &c.programs[0]),
        pol,
    )
}

fn exists_ns(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(ns))
}

fn exists_link(dev: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", dev])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn testbeds_are_removed_on_drop_and_on_panic() {
    if !can_run("testbed cleanup", &["ip"]) {
        return;
    }
    let tb = Testbed::new().expect("testbed");
    let (ns, tx) = (tb.ns.clone(), tb.tx.clone());
    assert!(exists_ns(&ns) && exists_link(&tx));
    drop(tb);
    assert!(
        !exists_ns(&ns) && !exists_link(&tx),
        "dropped testbed left {ns}/{tx}"
    );
    let names = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let tb = Testbed::new().expect("testbed");
        *names.lock().expect("lock") = Some((tb.ns.clone(), tb.tx.clone()));
        panic!("a test failing with a testbed up");
    });
    assert!(r.is_err());
    let (ns, tx) = names.lock().expect("lock").clone().expect("names");
    assert!(
        !exists_ns(&ns) && !exists_link(&tx),
        "panicking test left {ns}/{tx}"
    );
}

#[test]
fn generated_frames_reach_the_policy_and_all_are_counted() {
    if !can_run("live-frame generator", &["ip"]) {
        return;
    }
    let (s, _) = subject(
        "policy gen_drop on xdp {\n  rule dns: udp.dport == 53 => drop\n  default drop\n}\n",
    );
    let mix: Vec<Vec<u8>> = ["ipv4() / udp(dport=53)", "ipv4() / tcp(dport=80)"]
        .iter()
        .map(|l| nfcc_dsl::testing::frame_from_literal(l).expect("frame"))
        .collect();
    let tb = Testbed::new().expect("testbed");
    let opts = bench::Options {
        seconds: 0.3,
        runs: 2,
        ..Default::default()
    };
    let m = bench::measure(&tb, &s, &mix, opts, &mut |_, _| {}).expect("measure");
    eprintln!("{m:?}");
    // The stack of the namespace may add a few frames of its own (IPv6 router solicitations).
    assert!(
        m.counted >= m.sent && m.counted <= m.sent + 50,
        "sent {} but the policy counted {}",
        m.sent,
        m.counted
    );
    assert!(m.median_mpps > 0.3, "implausibly slow: {m:?}");
}

#[test]
fn blocklist_bench_measures_c_and_nftables_baselines() {
    if !can_run("bench baselines", &["ip", "clang", "nft"]) {
        return;
    }
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../benches/policies/blocklist.nf"
    ))
    .expect("blocklist.nf");
    let (s, pol) = subject(&src);
    let mix: Vec<Vec<u8>> = [
        "ipv4(src=10.21.3.7) / udp(dport=53)",
        "ipv4(src=172.16.9.9) / udp(dport=53)",
    ]
    .iter()
    .map(|l| nfcc_dsl::testing::frame_from_literal(l).expect("frame"))
    .collect();
    let opts = bench::Options {
        seconds: 0.2,
        runs: 1,
        ..Default::default()
    };
    let rows = bench::run(
        &s,
        &pol,
        &mix,
        &[Baseline::Drop, Baseline::C, Baseline::Nft],
        opts,
        &mut |_, _, _| {},
    )
    .expect("bench");
    let labels: Vec<String> = rows
        .iter()
        .map(|r| match r {
            Row::Measured(m) => {
                assert!(m.median_mpps > 0.1, "{m:?}");
                m.label.clone()
            }
            Row::Skipped { label, why } => panic!("{label} skipped: {why}"),
        })
        .collect();
    assert_eq!(
        labels,
        [
            "blocklist",
            "drop_all.c (clang -O2)",
            "blocklist_lpm.c (clang -O2)",
            "blocklist_hash.c (clang -O2)",
            "nftables, interval set",
            "nftables, hash set per prefix length"
        ]
    );
}

#[test]
fn baselines_translate_what_they_can_and_say_why_not() {
    let pol = policy(
        "policy b on xdp {\n  set s: ipv4 prefix = { 10.0.0.1, 172.16.0.0/24 }\n  rule v6: ipv6 => drop\n  \
         rule dns: udp.dport == 53 and ip.src in s => drop\n  default pass\n}\n",
    );
    let plain = baseline::plain(&pol).expect("plain");
    let sets = baseline::nft_rulesets(&plain, "eth9", "t");
    insta::assert_snapshot!(sets
        .iter()
        .map(|(l, t)| format!("# {l}\n{t}"))
        .collect::<String>());
    assert!(
        baseline::c_equivalents(&plain).is_empty(),
        "no C program does both"
    );
    let blocklist = policy(
        "policy b on xdp {\n  set s: ipv4 prefix = { 10.0.0.1, 172.16.0.0/24 }\n  \
         rule dns: udp.dport == 53 and ip.src in s => drop\n  default pass\n}\n",
    );
    let names: Vec<&str> = baseline::c_equivalents(&baseline::plain(&blocklist).expect("plain"))
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(names, ["blocklist_lpm", "blocklist_hash"]);
    let limited = policy(
        "policy b on xdp {\n  limiter l: key ip.src, rate 10/s, burst 5\n  rule r: over l => drop\n  default pass\n}\n",
    );
    let why = baseline::plain(&limited).expect_err("limiters have no baseline");
    assert!(why.contains("rule `r`"), "{why}");
}

#[test]
fn bench_charts_are_svg() {
    let svg = nfcc_testbeds::plot::bars(
        "blocklist: Mpps",
        "Mpps",
        &[
            ("blocklist (nfcc)".into(), 6.5),
            ("drop_all.c".into(), 8.25),
        ],
    );
    insta::assert_snapshot!(svg);
    let lines = nfcc_testbeds::plot::lines(
        "sweep",
        &[(
            "entries".into(),
            vec![(10.0, 6.6), (1000.0, 6.5), (1e6, 2.0)],
        )],
    );
    assert!(
        lines.starts_with("<svg") && lines.contains("<path d=\"M"),
        "{lines}"
    );
}

#[test]
fn sweep_blocklists_hold_every_entry() {
    let (s, vary) = nfcc_testbeds::sweep::blocklist_subject(1000).expect("subject");
    // 900 /32s and 100 /24s, one hash entry each, plus the length table.
    let set_entries = s
        .entries
        .iter()
        .filter(|(m, _, _)| m == "sweep_set_blocked")
        .count();
    assert_eq!(
        set_entries,
        1000,
        "{:?}",
        s.entries
            .iter()
            .map(|e| &e.0)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert_eq!((vary.offset, vary.count), (26, 900));
}

#[test]
fn bench_runs_in_generic_and_tc_ingress_modes() {
    if !can_run("bench modes", &["ip", "ethtool", "nft", "clang"]) {
        return;
    }
    let mix = vec![nfcc_dsl::testing::frame_from_literal("ipv4() / udp(dport=53)").expect("frame")];
    for (src, mode) in [
        (
            "policy g on xdp {\n  rule dns: udp.dport == 53 => drop\n  default drop\n}\n",
            nfcc_runtime::deploy::AttachMode::Generic,
        ),
        (
            "policy t on tc ingress {\n  rule dns: udp.dport == 53 => drop\n  default drop\n}\n",
            nfcc_runtime::deploy::AttachMode::TcIngress,
        ),
    ] {
        let (s, pol) = subject(src);
        let opts = bench::Options {
            seconds: 0.2,
            runs: 1,
            mode,
            vary: None,
        };
        let rows = bench::run(
            &s,
            &pol,
            &mix,
            &[Baseline::Drop, Baseline::Nft],
            opts,
            &mut |_, _, _| {},
        )
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let Row::Measured(m) = &rows[0] else {
            panic!("{mode:?}: {rows:?}");
        };
        assert!(
            m.median_mpps > 0.1 && m.counted >= m.sent,
            "{mode:?}: {m:?}"
        );
        assert!(
            rows.iter()
                .any(|r| matches!(r, Row::Skipped { why, .. } if why.contains("--mode native"))),
            "{mode:?}: the C baselines say why they were not measured: {rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| matches!(r, Row::Measured(m) if m.label.starts_with("nftables"))),
            "{mode:?}: {rows:?}"
        );
    }
}
