//! Code quality against hand-written C: the compiled drop-all, IPv6-drop and 1,100-entry
//! blocklist policies next to C versions compiled by clang -O2 (benches/c/), in the same run:
//! instruction count, verifier-processed instructions, and kernel `BPF_PROG_TEST_RUN`
//! ns/packet (median of 5 runs of 1,000,000 repetitions) on the traffic the policy drops.
//!
//! Each policy is set against every C variant that implements it: the bare one, and — where
//! the policy's own semantics include them — one keeping the same per-rule packet and byte
//! counters (`*_counted.c`), which is the like-for-like comparison. The blocklist runs as a
//! dynamic set (hash per length with a run-time length table) and as a static one (its /24s
//! expanded to /32s: one probe), against C with an LPM trie and with a hash per length.
//!
//! A driver rather than a criterion loop: the kernel times the program itself, and criterion
//! would time the syscall around it. Needs clang and CAP_BPF; says what it skipped otherwise.

// Reason: a bench binary has no public API to document.
#![allow(missing_docs)]

use nfcc_compiler::compile::compile;
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_runtime::{load, Loaded, ProgType};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPEAT: u32 = 1_000_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles a C reference program with clang; `None` (with a message) when clang is missing.
fn clang(name: &str) -> Option<Vec<u8>> {
    let src = root().join("benches/c").join(format!("{name}.c"));
    let out = std::env::temp_dir().join(format!("nfcc-bench-{name}-{}.o", std::process::id()));
    let arch = Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .ok()?;
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    let status = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            &format!("-I/usr/include/{arch}"),
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("skipped {name}: clang failed");
        return None;
    }
    let bytes = std::fs::read(&out).ok();
    let _ = std::fs::remove_file(&out);
    bytes
}

/// Instructions in the object's `xdp` section.
fn c_insns(obj: &[u8]) -> usize {
    use object::{Object, ObjectSection};
    object::File::parse(obj)
        .ok()
        .and_then(|f| f.section_by_name("xdp").map(|s| s.size() as usize / 8))
        .unwrap_or(0)
}

/// Median kernel ns/packet over 5 runs.
fn ns_per_packet(l: &Loaded, frame: &[u8]) -> (u32, u32) {
    let mut v: Vec<u32> = (0..5)
        .map(|_| {
            l.test_run(frame, REPEAT)
                .unwrap_or_else(|e| panic!("test run: {e}"))
                .duration_ns
        })
        .collect();
    v.sort_unstable();
    let verdict = l.test_run(frame, 1).map(|r| r.retval).unwrap_or(u32::MAX);
    (v[2], verdict)
}

/// The blocklist: 1,000 /32 and 100 /24 sources; UDP/53 from them is dropped.
fn blocklist() -> (String, Vec<[u8; 4]>, Vec<[u8; 4]>) {
    let hosts: Vec<[u8; 4]> = (0..1000u32)
        .map(|i| [10, 20 + (i >> 8) as u8, i as u8, 7])
        .collect();
    let nets: Vec<[u8; 4]> = (0..100u32).map(|i| [172, 16, i as u8, 0]).collect();
    let mut items: Vec<String> = hosts
        .iter()
        .map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]))
        .collect();
    items.extend(
        nets.iter()
            .map(|a| format!("{}.{}.{}.0/24", a[0], a[1], a[2])),
    );
    let src = format!(
        "policy blocklist on xdp {{\n  set blocked: ipv4 prefix, capacity 65536, dynamic = {{ {} }}\n  \
         rule dns_block: udp.dport == 53 and ip.src in blocked => drop\n  default pass\n}}\n",
        items.join(", ")
    );
    (src, hosts, nets)
}

fn frame(lit: &str) -> Vec<u8> {
    nfcc_dsl::testing::frame_from_literal(lit).unwrap_or_else(|e| panic!("{lit}: {e}"))
}

/// Fills the C blocklists: one LPM trie, or one hash per prefix length.
fn fill_c_maps(c: &Loaded, cname: &str, hosts: &[[u8; 4]], nets: &[[u8; 4]]) {
    let put = |map: &str, k: &[u8]| {
        c.map_update(map, k, &[1])
            .unwrap_or_else(|e| panic!("{cname} {map}: {e}"));
    };
    match cname {
        "blocklist_lpm" => {
            for (addrs, len) in [(hosts, 32u32), (nets, 24)] {
                for a in addrs {
                    let mut k = len.to_le_bytes().to_vec();
                    k.extend_from_slice(a);
                    put("blocked", &k);
                }
            }
        }
        "blocklist_hash" => {
            hosts.iter().for_each(|a| put("blocked32", a));
            nets.iter().for_each(|a| put("blocked24", a));
        }
        _ => {}
    }
}

/// A bench case: label, policy name, source, C references, the frame it drops.
type Case = (
    &'static str,
    &'static str,
    String,
    Vec<&'static str>,
    Vec<u8>,
);

struct Row {
    name: String,
    ours: (usize, Option<u32>, u32),
    c: (usize, Option<u32>, u32),
}

fn main() {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        println!("skipped: code-quality bench: {why}");
        return;
    }
    let baselines = std::fs::read_to_string(root().join("compiler/tests/in/baselines.nf"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (block_src, hosts, nets) = blocklist();
    let static_src = block_src.replace(", dynamic", "");
    let dns = frame("ipv4(src=10.21.3.7) / udp(sport=999, dport=53)");
    let cases: Vec<Case> = vec![
        (
            "drop_all",
            "drop_all",
            baselines.clone(),
            vec!["drop_all", "drop_all_counted"],
            frame("ipv4(src=192.0.2.1) / udp(dport=53)"),
        ),
        (
            "drop_v6",
            "drop_v6",
            baselines,
            vec!["drop_v6", "drop_v6_counted"],
            frame("ipv6() / udp(dport=53)"),
        ),
        (
            "blocklist, dynamic set",
            "blocklist",
            block_src,
            vec!["blocklist_lpm", "blocklist_hash"],
            dns.clone(),
        ),
        (
            "blocklist, static set",
            "blocklist",
            static_src,
            vec!["blocklist_lpm", "blocklist_hash"],
            dns,
        ),
    ];
    let mut rows = Vec::new();
    for (name, policy, src, crefs, pkt) in cases {
        let (program, diags) = check_source(&src, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{name}: {diags:?}"));
        let compiled =
            compile(&program, "bench.nf", &src, None).unwrap_or_else(|e| panic!("{e:?}"));
        let p = compiled
            .programs
            .iter()
            .find(|p| p.name == policy)
            .unwrap_or_else(|| panic!("no program {policy}"));
        let ours = load(&compiled.object, policy, ProgType::Xdp).unwrap_or_else(|e| panic!("{e}"));
        for (m, entries) in &p.maps {
            for (k, v) in entries {
                ours.map_update(&m.name, k, v)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        for cname in crefs {
            // The policy is measured again next to each reference, so that each ratio
            // compares two figures taken moments apart.
            let (ns, verdict) = ns_per_packet(&ours, &pkt);
            assert_eq!(
                verdict, 1,
                "{name}: the compiled policy must drop the bench traffic"
            );
            let Some(cobj) = clang(cname) else {
                println!("skipped: {name}: clang is not available");
                continue;
            };
            let c = load(&cobj, cname, ProgType::Xdp).unwrap_or_else(|e| panic!("{cname}: {e}"));
            fill_c_maps(&c, cname, &hosts, &nets);
            let (cns, cverdict) = ns_per_packet(&c, &pkt);
            assert_eq!(
                cverdict, 1,
                "{cname}: the C reference must drop the bench traffic"
            );
            rows.push(Row {
                name: format!("{name} vs {cname}"),
                ours: (p.insns, ours.verified_insns(), ns),
                c: (c_insns(&cobj), c.verified_insns(), cns),
            });
        }
    }
    println!(
        "{:<52} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>7}",
        "program", "insns", "C insns", "verified", "C verif.", "ns/pkt", "C ns/pkt", "ratio"
    );
    for r in rows {
        let show = |v: Option<u32>| v.map_or("n/a".to_string(), |v| v.to_string());
        println!(
            "{:<52} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>6.2}x",
            r.name,
            r.ours.0,
            r.c.0,
            show(r.ours.1),
            show(r.c.1),
            r.ours.2,
            r.c.2,
            f64::from(r.ours.2) / f64::from(r.c.2.max(1))
        );
    }
}
