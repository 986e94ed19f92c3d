//! The `nfcc` binary's contract: exit codes of section 9 and what it prints, run as a user
//! would run it. Every case goes through `check`, which runs the binary and compares the exit
//! code and a snapshot of its output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `nfcc ARGS` in the workspace root with `files` written to a scratch folder (named by
/// `{}` in ARGS), checks the exit code and returns stdout+stderr with the scratch path replaced.
fn check(args: &[&str], files: &[(&str, &str)], expect_code: i32) -> String {
    let dir = scratch();
    let out = check_in(&dir, args, files, expect_code);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// A fresh scratch folder, unique across the tests of this process.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nfcc-cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn check_in(dir: &Path, args: &[&str], files: &[(&str, &str)], expect_code: i32) -> String {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write scratch file");
    }
    let d = dir.display().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{}", &d)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_nfcc"))
        .args(&args)
        .current_dir(root())
        .output()
        .expect("nfcc runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .replace(&d, "SCRATCH");
    assert_eq!(
        out.status.code(),
        Some(expect_code),
        "nfcc {args:?} printed:\n{text}"
    );
    text
}

const BAD: &str =
    "policy p on tc ingress {\n  rule r: tcp.dprot == 70000 => tx\n  default pass\n}\n";
const FAILING: &str = "policy p on xdp {\n  rule dns: udp.dport == 53 => drop\n  default pass\n  test \"dns passes?\" {\n    send ipv4(src=10.0.0.1) / udp(dport=53)\n    expect pass\n  }\n}\n";

#[test]
fn check_ok_exits_0() {
    let out = check(&["check", "examples/ddos_guard.nf"], &[], 0);
    insta::assert_snapshot!(out, @"examples/ddos_guard.nf: ok (1 policy, 4 rules, 2 tests)");
}

#[test]
fn check_error_exits_1_with_every_diagnostic() {
    let out = check(&["check", "{}/bad.nf"], &[("bad.nf", BAD)], 1);
    insta::assert_snapshot!(out);
}

#[test]
fn check_counts_say_one_in_the_singular() {
    let one = "policy one on xdp {\n  rule r: udp.dport == 53 => drop\n  default pass\n  test \"t\" {\n    send ipv4() / udp(dport=53)\n    expect drop by r\n  }\n}\n";
    let out = check(&["check", "{}/one.nf"], &[("one.nf", one)], 0);
    assert!(
        out.contains("one.nf: ok (1 policy, 1 rule, 1 test)"),
        "{out}"
    );
    let bad = "policy one on xdp {\n  rule r: udp.dport == 70000 => drop\n  default pass\n}\n";
    let out = check(&["check", "{}/bad1.nf"], &[("bad1.nf", bad)], 1);
    assert!(out.contains("bad1.nf: 1 error, 0 warnings"), "{out}");
}

#[test]
fn missing_file_exits_1() {
    let out = check(&["check", "{}/nope.nf"], &[], 1);
    assert!(out.contains("cannot read SCRATCH/nope.nf"), "{out}");
}

#[test]
fn failing_test_exits_3_and_names_the_packet() {
    let out = check(&["test", "{}/f.nf"], &[("f.nf", FAILING)], 3);
    insta::assert_snapshot!(out);
}

#[test]
fn examples_pass_on_the_emulator_by_default_and_on_the_evaluator() {
    let out = check(
        &["test", "examples/ddos_guard.nf", "examples/edge_ddos.nf"],
        &[],
        0,
    );
    assert!(out.ends_with("emulator: 9 passed, 0 failed\n"), "{out}");
    let out = check(
        &[
            "test",
            "examples/ddos_guard.nf",
            "examples/edge_ddos.nf",
            "--engine",
            "eval",
        ],
        &[],
        0,
    );
    assert!(out.ends_with("eval: 9 passed, 0 failed\n"), "{out}");
}

#[test]
fn junit_output_lists_every_test_and_its_failure() {
    let dir = scratch();
    let xml = dir.join("out.xml");
    let xml_arg = xml.display().to_string();
    check_in(
        &dir,
        &["test", "{}/f.nf", "--junit", &xml_arg],
        &[("f.nf", FAILING)],
        3,
    );
    let text = std::fs::read_to_string(&xml).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("<testsuite name=\"nfcc-emulator\"") && text.contains("<failure"),
        "{text}"
    );
}

#[test]
fn engines_and_commands_not_built_yet_exit_2_and_say_so() {
    // Every test engine exists now: the JIT runs the examples like the others.
    let out = check(
        &["test", "examples/ddos_guard.nf", "--engine", "jit"],
        &[],
        0,
    );
    assert!(out.ends_with("jit: 2 passed, 0 failed\n"), "{out}");
    // `nfcc bench` refuses a mode that does not fit the policy's hook, and says which fit.
    let out = check(
        &["bench", "examples/ddos_guard.nf", "--mode", "tc-ingress"],
        &[],
        1,
    );
    assert!(out.contains("--mode native or generic"), "{out}");
}

#[test]
fn compile_for_the_nic_emits_nic_code_or_names_what_the_nic_lacks() {
    let out = check(
        &[
            "compile",
            "compiler/tests/in/nic.nf",
            "--target",
            "nfp",
            "--emit",
            "asm",
            "-o",
            "-",
        ],
        &[],
        0,
    );
    // Statistics by atomic add, no scratch map, no LPM trie.
    assert!(out.contains("lock *(u64 *)"), "{out}");
    assert!(!out.contains("%="), "{out}");
    let out = check(
        &[
            "compile",
            "examples/ddos_guard.nf",
            "--target",
            "nfp",
            "-o",
            "/dev/null",
        ],
        &[],
        1,
    );
    assert!(
        out.contains("E0117") && out.contains("limiters need bpf_ktime_get_ns"),
        "{out}"
    );
}

#[test]
fn classbench_import_checks_cleanly() {
    let dir = scratch();
    let acl = "../shared/bench-data/classbench/acl1_1k";
    let out = check_in(
        &dir,
        &[
            "import",
            "classbench",
            acl,
            "--actions",
            "alternate",
            "-o",
            "{}/acl.nf",
        ],
        &[],
        0,
    );
    assert!(out.is_empty(), "{out}");
    let out = check_in(&dir, &["check", "--short", "{}/acl.nf"], &[], 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("SCRATCH/acl.nf: ok (1 policy, 942 rules"),
        "{out}"
    );
}

/// `import classbench --generate`: a set drawn from a parameter file, the same for the same
/// seed, as filters or as a policy that checks.
#[test]
fn classbench_sets_are_drawn_from_parameter_files() {
    let dir = scratch();
    let seed = "../shared/bench-data/classbench/seeds/fw3_seed";
    let draw = |s: &str, out: &str| {
        check_in(
            &dir,
            &[
                "import",
                "classbench",
                "--generate",
                seed,
                "--rules",
                "500",
                "--seed",
                s,
                "--filters",
                "-o",
                out,
            ],
            &[],
            0,
        )
    };
    draw("4", "{}/a");
    draw("4", "{}/b");
    draw("5", "{}/c");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("written");
    assert_eq!(read("a"), read("b"), "the same seed, the same set");
    assert_ne!(read("a"), read("c"));
    assert_eq!(read("a").lines().count(), 500);
    check_in(
        &dir,
        &[
            "import",
            "classbench",
            "--generate",
            seed,
            "--rules",
            "500",
            "-o",
            "{}/fw3.nf",
        ],
        &[],
        0,
    );
    let out = check_in(&dir, &["check", "--short", "{}/fw3.nf"], &[], 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("fw3.nf: ok (1 policy, 500 rules"), "{out}");
}

#[test]
fn compile_writes_an_elf_object_and_text_forms() {
    let dir = scratch();
    let out = check_in(
        &dir,
        &["compile", "examples/ddos_guard.nf", "-o", "{}/d.o"],
        &[],
        0,
    );
    assert!(out.contains("wrote SCRATCH/d.o"), "{out}");
    let bytes = std::fs::read(dir.join("d.o")).expect("object written");
    assert_eq!(&bytes[..4], b"\x7fELF", "an ELF object");
    assert_eq!(
        u16::from_le_bytes([bytes[18], bytes[19]]),
        247,
        "e_machine is EM_BPF"
    );
    check_in(
        &dir,
        &[
            "compile",
            "examples/ddos_guard.nf",
            "--emit",
            "ir",
            "-o",
            "{}/d.ir",
        ],
        &[],
        0,
    );
    let ir = std::fs::read_to_string(dir.join("d.ir")).expect("ir written");
    assert!(ir.starts_with("program ddos_guard on xdp for host"), "{ir}");
    check_in(
        &dir,
        &[
            "compile",
            "examples/ddos_guard.nf",
            "--emit",
            "asm",
            "-o",
            "{}/d.s",
        ],
        &[],
        0,
    );
    let asm = std::fs::read_to_string(dir.join("d.s")).expect("asm written");
    assert!(
        asm.contains("call map_lookup_elem#1") && asm.contains("exit"),
        "{asm}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pcap of frames built from packet literals (the writer is the emulator's, tested there).
fn pcap_of(literals: &[&str]) -> Vec<u8> {
    let records: Vec<nfcc_driver::emulator::pcap::Record> = literals
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let data = nfcc_driver::dsl::testing::frame_from_literal(l).expect("literal");
            nfcc_driver::emulator::pcap::Record {
                ts_sec: 1_700_000_000,
                ts_usec: i as u32,
                orig_len: data.len() as u32,
                data,
            }
        })
        .collect();
    nfcc_driver::emulator::pcap::write(&records)
}

#[test]
fn run_replays_a_pcap_with_verdicts_rules_and_emitted_packets() {
    let dir = scratch();
    let pcap = pcap_of(&[
        "ipv4(src=192.0.2.9, dst=10.0.0.1) / udp(dport=80)",
        "ipv4(src=10.1.2.3, dst=10.0.0.1) / tcp(dport=22)",
        "ipv6() / udp()",
        "ipv4(src=172.16.0.1, dst=10.0.0.1) / tcp(dport=22)",
    ]);
    std::fs::write(dir.join("in.pcap"), pcap).expect("write pcap");
    let d = dir.display().to_string();
    for engine in ["emulator", "jit", "rbpf", "eval"] {
        let out = check_in(
            &dir,
            &[
                "run",
                "examples/ddos_guard.nf",
                "--pcap",
                "{}/in.pcap",
                "--engine",
                engine,
                "--verdicts",
                "{}/v.jsonl",
                "--out",
                "{}/out.pcap",
            ],
            &[],
            0,
        );
        assert!(out.contains("4 packets, 1 emitted"), "{engine}: {out}");
        let lines = std::fs::read_to_string(format!("{d}/v.jsonl")).expect("verdicts");
        assert_eq!(
            lines,
            "{\"index\":0,\"verdict\":\"drop\",\"rule\":\"blocklist\",\"len\":42}\n\
             {\"index\":1,\"verdict\":\"pass\",\"rule\":\"default\",\"len\":54}\n\
             {\"index\":2,\"verdict\":\"drop\",\"rule\":\"no_ipv6\",\"len\":62}\n\
             {\"index\":3,\"verdict\":\"drop\",\"rule\":\"ssh_lan\",\"len\":54}\n",
            "{engine}"
        );
        let emitted = std::fs::read(format!("{d}/out.pcap")).expect("out pcap");
        let recs = nfcc_driver::emulator::pcap::read(&emitted).expect("a pcap");
        assert_eq!(recs.len(), 1, "{engine}");
    }
}

#[test]
fn run_on_the_kernel_skips_frames_its_test_runner_refuses() {
    if let Err(why) = nfcc_driver::runtime::can_load_bpf() {
        assert!(
            std::env::var_os("NFCC_REQUIRE_KERNEL").is_none_or(|v| v != "1"),
            "NFCC_REQUIRE_KERNEL=1 but the kernel run cannot run: {why}"
        );
        eprintln!("skipped: nfcc run --engine kernel: {why}");
        return;
    }
    let dir = scratch();
    let frame = |l: &str| nfcc_driver::dsl::testing::frame_from_literal(l).expect("literal");
    let records: Vec<_> = [
        frame("ipv4(src=192.0.2.9, dst=10.0.0.1) / udp(dport=80)"),
        vec![0u8; 10],
        frame("ipv4(src=10.1.2.3, dst=10.0.0.1) / tcp(dport=22)"),
    ]
    .into_iter()
    .map(|data| nfcc_driver::emulator::pcap::Record {
        ts_sec: 1_700_000_000,
        ts_usec: 0,
        orig_len: data.len() as u32,
        data,
    })
    .collect();
    std::fs::write(
        dir.join("in.pcap"),
        nfcc_driver::emulator::pcap::write(&records),
    )
    .expect("write pcap");
    let d = dir.display().to_string();
    let out = check_in(
        &dir,
        &[
            "run",
            "examples/ddos_guard.nf",
            "--pcap",
            "{}/in.pcap",
            "--engine",
            "kernel",
            "--verdicts",
            "{}/v.jsonl",
        ],
        &[],
        0,
    );
    assert!(out.contains("3 packets"), "{out}");
    let lines = std::fs::read_to_string(format!("{d}/v.jsonl")).expect("verdicts");
    assert_eq!(
        lines,
        "{\"index\":0,\"verdict\":\"drop\",\"rule\":\"blocklist\",\"len\":42}\n\
         {\"index\":1,\"verdict\":\"skipped\",\"len\":10,\"reason\":\"10 bytes: the kernel's test runner needs 14 (an ethernet header)\"}\n\
         {\"index\":2,\"verdict\":\"pass\",\"rule\":\"default\",\"len\":54}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_bad_inputs_with_one_clear_line() {
    let dir = scratch();
    std::fs::write(dir.join("in.pcap"), pcap_of(&["ipv4() / udp()"])).expect("write");
    std::fs::write(dir.join("not.pcap"), "hello").expect("write");
    std::fs::write(dir.join("trunc.o"), b"\x7fELF\x02\x01\x01").expect("write");
    let out = check_in(
        &dir,
        &["run", "examples/ddos_guard.nf", "--pcap", "{}/not.pcap"],
        &[],
        1,
    );
    assert!(out.contains("not a pcap file"), "{out}");
    let out = check_in(&dir, &["run", "{}/trunc.o", "--pcap", "{}/in.pcap"], &[], 1);
    assert!(out.contains("cannot read the object"), "{out}");
    let out = check_in(&dir, &["run", "/bin/sh", "--pcap", "{}/in.pcap"], &[], 1);
    assert!(out.contains("not eBPF"), "{out}");
    // NIC semantics: the limiter's clock helper does not exist on the NIC.
    std::fs::write(
        dir.join("dns.pcap"),
        pcap_of(&["ipv4(src=10.9.9.9, dst=10.0.0.1) / udp(dport=53)"]),
    )
    .expect("write");
    let out = check_in(
        &dir,
        &[
            "run",
            "examples/ddos_guard.nf",
            "--pcap",
            "{}/dns.pcap",
            "--profile",
            "nfp",
        ],
        &[],
        2,
    );
    assert!(
        out.contains("the NIC cannot run this: helper ktime_get_ns"),
        "{out}"
    );
    // A program rbpf cannot run (NIC code counts with atomics): the instruction and why, exit 2.
    for cmd in [
        vec![
            "run",
            "examples/nic_scrubber.nf",
            "--pcap",
            "{}/in.pcap",
            "--engine",
            "rbpf",
        ],
        vec!["test", "examples/nic_scrubber.nf", "--engine", "rbpf"],
    ] {
        let out = check_in(&dir, &cmd, &[], 2);
        assert!(
            out.contains("rbpf cannot run this program: instruction")
                && out.contains("atomic operations (BPF_ATOMIC), which rbpf does not implement"),
            "{out}"
        );
    }
    let two = "policy a on xdp {\n  default pass\n}\npolicy b on xdp {\n  default drop\n}\n";
    let out = check_in(
        &dir,
        &["run", "{}/two.nf", "--pcap", "{}/in.pcap"],
        &[("two.nf", two)],
        1,
    );
    assert!(out.contains("choose one with --policy"), "{out}");
    let out = check_in(
        &dir,
        &["run", "{}/two.nf", "--pcap", "{}/in.pcap", "--policy", "b"],
        &[("two.nf", two)],
        0,
    );
    assert!(out.contains("default                  drop"), "{out}");
}

#[test]
fn conformance_runs_the_suite_on_every_engine() {
    if !root().join("../shared/conformance/tests").is_dir() {
        eprintln!("no conformance suite beside the workspace: skipped");
        return;
    }
    let dir = scratch();
    let out = check_in(
        &dir,
        &[
            "conformance",
            "../shared/conformance/tests",
            "--engine",
            "interp",
        ],
        &[],
        0,
    );
    assert!(
        out.contains("interp: 313 passed, 0 failed, 0 excluded"),
        "{out}"
    );
    let out = check_in(
        &dir,
        &[
            "conformance",
            "../shared/conformance/tests",
            "--engine",
            "rbpf",
        ],
        &[],
        0,
    );
    assert!(
        out.contains("rbpf: 216 passed, 0 failed, 97 excluded")
            && out.contains("excluded rbpf callx.data: instruction 2: calls by register (callx)"),
        "{out}"
    );
    // A failing file: exit 3, with the expected and the actual r0.
    let out = check_in(
        &dir,
        &["conformance", "{}", "--engine", "all"],
        &[("wrong.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n")],
        3,
    );
    assert!(
        out.contains("FAIL jit wrong.data: expected r0 = 0x2, got r0 = 0x1")
            && out.contains("interp: 0 passed, 1 failed, 0 excluded")
            && out.contains("FAIL rbpf wrong.data: expected r0 = 0x2, got r0 = 0x1"),
        "{out}"
    );
}

#[test]
fn import_iptables_reports_every_rule_and_refuses_unless_asked() {
    let dump = "import/tests/corpus/host_firewall.rules";
    // Refused rules (conntrack, limit+LOG): exit 1, the report, no policy.
    let out = check(&["import", "iptables", dump], &[], 1);
    assert!(
        out.contains("line 9: refused: `-m conntrack`")
            && out.contains("15 rules: 12 imported, 2 refused, 1 skipped")
            && !out.contains("policy host_firewall"),
        "{out}"
    );
    // Skipped on request: the policy, which checks, with the refused rules as comments.
    let out = check(
        &[
            "import",
            "iptables",
            dump,
            "--skip-unsupported",
            "--hook",
            "xdp",
        ],
        &[],
        0,
    );
    assert!(
        out.contains("policy host_firewall on xdp {")
            && out.contains("rule ssh_lan: ")
            && out.contains("# refused (line 18): `-m limit`"),
        "{out}"
    );
}

#[test]
fn import_nft_reports_every_rule_and_refuses_unless_asked() {
    let rules = "import/tests/corpus/host_firewall_nft.json";
    let out = check(&["import", "nft", rules], &[], 1);
    assert!(
        out.contains("refused: `{\"left\":{\"ct\"") && out.contains("1 refused"),
        "{out}"
    );
    let out = check(
        &[
            "import",
            "nft",
            rules,
            "--skip-unsupported",
            "--iface",
            "eth0",
        ],
        &[],
        0,
    );
    assert!(
        out.contains("policy host_firewall_nft on tc ingress {")
            && out.contains("rule ssh_lan: ")
            && out.contains("rule not_ip: not ip => pass"),
        "{out}"
    );
}
