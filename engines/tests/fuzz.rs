//! The differential fuzzer over the examples: random and structured packets — every
//! truncation point of every header, IPv4 options and fragments, QinQ, IPv6 extension chains,
//! bad lengths and random byte flips — through the reference evaluator, the emulator's
//! interpreter, its JIT, rbpf and the kernel. Verdict, deciding rule, emitted bytes (and, between evaluator and emulator, the skb
//! mark) must agree on every packet. A disagreement fails the test with the policy, the packet
//! in hex and each engine's answer, and is saved under `tests/regressions/` as the example with
//! a test block replaying that packet (which `saved_regressions_still_pass` keeps running).
//!
//! `NFCC_FUZZ_PACKETS` sets the number of packets (default 30,000 across the examples, a CI
//! budget; the acceptance run used 1,000,000). Without CAP_BPF the kernel is left out
//! and the test says so (or fails under `NFCC_REQUIRE_KERNEL=1`); evaluator and emulator
//! still run.

use nfcc_compiler::compile::{compile, compile_with};
use nfcc_dsl::checked::{Policy, Program, RuleRef};
use nfcc_dsl::eval::{Outcome, State};
use nfcc_dsl::testing::{frame_from_literal, hex, Engine};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_engines::KernelEngine;
use nfcc_engines::{EmulatorEngine, Executor};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;
use common::Rng;

const V4: [&str; 10] = [
    "192.0.2.9",
    "198.51.100.7",
    "10.0.0.1",
    "10.1.2.3",
    "203.0.113.5",
    "172.16.0.1",
    "100.64.1.1",
    "8.8.8.8",
    "224.0.0.5",
    "0.0.0.0",
];
const V6: [&str; 6] = [
    "2001:db8::1",
    "2001:db8:1::5",
    "fe80::1",
    "2001:db8::80",
    "ff02::1",
    "::1",
];
const PORTS: [&str; 12] = [
    "53", "22", "80", "443", "123", "161", "1900", "11211", "8080", "3389", "0", "65535",
];

fn l4(rng: &mut Rng, v6: bool) -> String {
    let (s, d) = (rng.pick(&PORTS), rng.pick(&PORTS));
    let payload = rng.pick(&[
        "",
        " / payload(\"GET / HTTP/1.1\")",
        " / payload(0x0001000000010000)",
        " / payload(\"x\")",
    ]);
    match rng.below(5) {
        0 => {
            let flags = rng.pick(&["syn", "syn|ack", "ack", "rst", "fin|ack", "psh|ack"]);
            format!("tcp(sport={s}, dport={d}, flags={flags}){payload}")
        }
        1 | 2 => format!("udp(sport={s}, dport={d}){payload}"),
        _ if v6 => format!("icmpv6(type={})", rng.pick(&["128", "129", "135", "1"])),
        _ => format!(
            "icmp(type={}, code={})",
            rng.pick(&["8", "0", "3", "11"]),
            rng.below(4)
        ),
    }
}

/// A random structured packet literal.
fn literal(rng: &mut Rng) -> String {
    let mut layers = Vec::new();
    match rng.below(8) {
        0 => layers.push(format!("vlan(id={})", rng.below(4096))),
        1 => {
            layers.push(format!("vlan(id={})", rng.below(4096)));
            layers.push(format!("vlan(id={})", rng.below(4096)));
        }
        _ => {}
    }
    match rng.below(10) {
        0 => layers.push("raw(0x0001080006040001)".into()),
        1..=3 => {
            let ext = ["hop", "routing", "dest", "frag"];
            layers.push(format!(
                "ipv6(src={}, dst={}, hoplimit={})",
                rng.pick(&V6),
                rng.pick(&V6),
                rng.pick(&["1", "64", "255"])
            ));
            for _ in 0..rng.below(3) {
                let k = ext[rng.below(4) as usize];
                if k == "frag" && rng.below(2) == 0 {
                    layers.push(format!("ipv6ext(kind=frag, offset={})", rng.below(3) * 8));
                } else {
                    layers.push(format!("ipv6ext(kind={k})"));
                }
            }
            layers.push(l4(rng, true));
        }
        _ => {
            let mut ip = format!(
                "ipv4(src={}, dst={}, ttl={}",
                rng.pick(&V4),
                rng.pick(&V4),
                rng.pick(&["0", "1", "2", "64", "255"])
            );
            match rng.below(6) {
                0 => ip.push_str(", options=0x0101010101010101"),
                1 => ip.push_str(&format!(", frag_offset={}", rng.below(3))),
                2 => ip.push_str(&format!(", dscp={}", rng.below(64))),
                _ => {}
            }
            ip.push(')');
            layers.push(ip);
            layers.push(l4(rng, false));
        }
    }
    // The Ethernet type follows the first layer; an ARP body needs it said.
    let body = layers.join(" / ");
    if body.starts_with("raw(0x0001080006040001)") {
        format!("eth(type=0x0806) / {body} / raw(0x{})", "00".repeat(20))
    } else {
        body
    }
}

/// Frames for one literal: whole, cut at a random point inside its headers, and with a byte
/// flipped in its headers (bad lengths, versions, IHLs, next headers).
fn frames(rng: &mut Rng, lit: &str) -> Vec<Vec<u8>> {
    let Ok(f) = frame_from_literal(lit) else {
        return vec![];
    };
    let mut out = vec![f.clone()];
    let hdr = f.len().min(90);
    let cut = 14 + rng.below((hdr.saturating_sub(14)) as u64 + 1) as usize;
    out.push(f[..cut.min(f.len())].to_vec());
    let mut m = f.clone();
    if m.len() > 14 {
        let at = 12 + rng.below((hdr - 12) as u64) as usize;
        m[at] ^= 1 << rng.below(8);
        out.push(m);
    }
    out
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "nf"))
        .collect();
    v.sort();
    v
}

fn answer(o: &Outcome) -> String {
    format!("{} by {:?} out {}", o.verdict, o.rule, hex(&o.packet))
}

/// Saves a disagreement as the example with a test block replaying the packet, expecting the
/// evaluator's answer.
fn save(source: &str, policy: &Policy, frame: &[u8], want: &Outcome) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let _ = std::fs::create_dir_all(&dir);
    let n = (0..)
        .find(|n| !dir.join(format!("fuzz-{n}.nf")).exists())
        .unwrap_or(0);
    let path = dir.join(format!("fuzz-{n}.nf"));
    let by = match want.rule {
        RuleRef::Default => "default".to_string(),
        RuleRef::Rule(id) => policy.rule(id).name.clone(),
    };
    let block = format!(
        "\n    test \"fuzz regression {n}\" {{\n        send raw(0x{})\n        expect {} by {by}\n    }}\n",
        hex(frame),
        want.verdict
    );
    let end = policy.span.end as usize - 1;
    let text = format!("{}{block}{}", &source[..end], &source[end..]);
    let _ = std::fs::write(&path, text);
    path
}

#[test]
fn examples_agree_on_random_and_structured_packets_across_engines() {
    let kernel_ok = match nfcc_runtime::can_load_bpf() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
                panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
            }
            eprintln!("skipped: the kernel engine in the fuzzer: {reason}; evaluator and emulator still run");
            false
        }
    };
    let budget: usize = std::env::var("NFCC_FUZZ_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let files = examples();
    let started = Instant::now();
    let mut rng = Rng(0x6675_7a7a_6e66_6363);
    let (mut packets, mut kernel_packets, mut problems) = (0usize, 0usize, Vec::new());
    let mut rbpf_packets = 0usize;
    let per_policy = budget / files.len().max(1);
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{name}: {diags:?}"));
        for policy in &program.policies {
            let single = Program {
                policies: vec![policy.clone()],
            };
            let deployed =
                compile(&single, &name, &source, None).unwrap_or_else(|e| panic!("{e:?}"));
            let emu =
                EmulatorEngine::new(&deployed, &policy.name).unwrap_or_else(|e| panic!("{e}"));
            let mut emulated = vec![emu.clone_engine(), emu.clone_engine().with_jit()];
            // NIC code counts with atomics, which rbpf lacks (it refuses such programs).
            if policy.offload.is_none() {
                emulated.push(emu.with_executor(Executor::Rbpf));
            }
            let mut kernel = if kernel_ok {
                let tested = compile_with(&single, &name, &source, None, true)
                    .unwrap_or_else(|e| panic!("{e:?}"));
                Some(KernelEngine::new(&tested, &policy.name).unwrap_or_else(|e| panic!("{e}")))
            } else {
                None
            };
            // A fresh state every so many packets, so limiter buckets drain and refill.
            let mut sent = 0;
            while sent < per_policy {
                let meta = emulated[0].meta();
                let mut state = State::new(policy);
                for e in emulated.iter_mut() {
                    e.reset(policy).unwrap_or_else(|x| panic!("{x}"));
                }
                if let Some(k) = kernel.as_mut() {
                    k.reset(policy).unwrap_or_else(|e| panic!("{e}"));
                }
                for _ in 0..500 {
                    let lit = literal(&mut rng);
                    for frame in frames(&mut rng, &lit) {
                        // Every engine runs the same frames, so their state stays in step.
                        if kernel.as_ref().is_some_and(|k| !k.can_run(&frame)) {
                            continue;
                        }
                        let want = nfcc_dsl::eval::eval(policy, &mut state, &meta, &frame);
                        sent += 1;
                        packets += 1;
                        let mut answers = vec![format!("eval: {}", answer(&want))];
                        let mut bad = false;
                        // The interpreter, the JIT and rbpf, over the same object.
                        for e in emulated.iter_mut() {
                            match e.run(policy, &frame) {
                                Ok(got) => {
                                    bad |= got.verdict != want.verdict
                                        || got.rule != want.rule
                                        || got.packet != want.packet
                                        || got.mark.unwrap_or(meta.mark)
                                            != want.mark.unwrap_or(meta.mark);
                                    answers.push(format!("{}: {}", e.name(), answer(&got)));
                                    rbpf_packets += usize::from(e.name() == "rbpf");
                                }
                                Err(x) => {
                                    bad = true;
                                    answers.push(format!("{}: failed: {x}", e.name()));
                                }
                            }
                        }
                        if let Some(k) = kernel.as_mut() {
                            kernel_packets += 1;
                            match k.run(policy, &frame) {
                                Ok(got) => {
                                    bad |= got.verdict != want.verdict
                                        || got.rule != want.rule
                                        || got.packet != want.packet;
                                    answers.push(format!("kernel: {}", answer(&got)));
                                }
                                Err(e) => {
                                    bad = true;
                                    answers.push(format!("kernel: failed: {e}"));
                                }
                            }
                        }
                        if bad && problems.len() < 5 {
                            let saved = save(&source, policy, &frame, &want);
                            problems.push(format!(
                                "{name} policy {}: `{lit}` (hex {}):\n  {}\n  saved as {}",
                                policy.name,
                                hex(&frame),
                                answers.join("\n  "),
                                saved.display()
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "fuzz: {packets} packets across {} examples on evaluator, emulator and JIT, \
         {rbpf_packets} also on rbpf, {kernel_packets} also on the kernel, in {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "disagreements:\n{}",
        problems.join("\n")
    );
}
