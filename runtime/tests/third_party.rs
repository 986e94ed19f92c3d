//! The emulator is a tool for any XDP program, not only nfcc's: C programs compiled by clang —
//! a Katran-like IP-in-IP balancer (`bpf_xdp_adjust_head`, hashing, per-CPU statistics), an
//! LPM-trie blocklist, a header rewriter (`bpf_csum_diff`, atomics), and the runtime's own test
//! programs, one of them built of bpf-to-bpf calls — run in the kernel (`BPF_PROG_TEST_RUN`), in
//! the emulator's interpreter, in its JIT and on rbpf (the `nfcc_oracle` engine) on the same
//! frames, with the same maps. Return value, output bytes and the maps' contents must be
//! identical. rbpf refuses the rewriter, whose statistics are atomic adds rbpf lacks; that
//! refusal is checked too.
//!
//! Needs CAP_BPF and clang (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_dsl::testing::{frame_from_literal, hex};
use nfcc_emulator::Emulator;
use nfcc_runtime::{load, Loaded, ProgType};
use std::path::Path;
use std::process::Command;

fn skip(reason: &str) -> bool {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
    }
    eprintln!("skipped: third-party programs: {reason}");
    true
}

fn clang(path: &Path) -> Result<Vec<u8>, String> {
    let arch = Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .map_err(|e| format!("clang is not available ({e})"))?;
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    let out = std::env::temp_dir().join(format!(
        "nfcc-3p-{}-{}.o",
        std::process::id(),
        path.file_stem().map_or("x".into(), |s| s.to_string_lossy())
    ));
    let r = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            &format!("-I/usr/include/{arch}"),
            "-c",
        ])
        .arg(path)
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| format!("clang: {e}"))?;
    if !r.status.success() {
        return Err(format!(
            "clang failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    let bytes = std::fs::read(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    Ok(bytes)
}

/// Both engines get the same map entries.
fn put(k: &Loaded, e: &mut Emulator, map: &str, key: &[u8], value: &[u8]) {
    k.map_update(map, key, value)
        .unwrap_or_else(|x| panic!("kernel {map}: {x}"));
    e.map_update(map, key, value)
        .unwrap_or_else(|x| panic!("emulator {map}: {x}"));
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// A random frame from pools that hit every program's interesting paths.
fn frame(rng: &mut Rng) -> (String, Vec<u8>) {
    let src = rng.pick(&[
        "10.0.0.1",
        "10.0.0.2",
        "192.0.2.7",
        "198.51.100.9",
        "203.0.113.77",
        "10.9.8.7",
    ]);
    let dst = rng.pick(&["203.0.113.10", "203.0.113.11", "10.1.1.1", "192.0.2.1"]);
    let ttl = rng.pick(&["0", "1", "2", "64"]);
    let sport = 1024 + rng.next() % 4000;
    let dport = rng.pick(&["53", "80", "443", "5353", "8080"]);
    let l4 = match rng.next() % 5 {
        0 => format!("tcp(sport={sport}, dport={dport}, flags=syn)"),
        1 => format!("udp(sport={sport}, dport={dport}, checksum=0)"),
        2 => "icmp(type=8)".to_string(),
        _ => format!("udp(sport={sport}, dport={dport})"),
    };
    let lit = match rng.next() % 10 {
        0 => format!("ipv6(src=2001:db8::1, dst=2001:db8::2) / {l4}"),
        1 => format!("vlan(id=5) / ipv4(src={src}, dst={dst}, ttl={ttl}) / {l4}"),
        2 => format!("ipv4(src={src}, dst={dst}, ttl={ttl}, options=0x01010101) / {l4}"),
        3 => format!("ipv4(src={src}, dst={dst}, ttl={ttl}, frag_offset=8) / {l4}"),
        4 => format!("ipv4(src={src}, dst={dst}, ttl={ttl}) / {l4} / payload(\"hello world\") / truncate({})", 34 + rng.next() % 20),
        _ => format!("ipv4(src={src}, dst={dst}, ttl={ttl}) / {l4} / payload(\"hello world\")"),
    };
    let lit = lit.replace(", checksum=0", "");
    let f = frame_from_literal(&lit).unwrap_or_else(|e| panic!("{lit}: {e}"));
    (lit, f)
}

fn ip(a: &str) -> [u8; 4] {
    a.parse::<std::net::Ipv4Addr>()
        .unwrap_or_else(|e| panic!("{a}: {e}"))
        .octets()
}

#[test]
fn clang_programs_behave_the_same_in_the_emulator_and_the_kernel() {
    if let Err(reason) = nfcc_runtime::can_load_bpf() {
        if skip(&reason) {
            return;
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let programs: [(&str, &str, ProgType); 8] = [
        ("benches/c/katran_encap.c", "katran_encap", ProgType::Xdp),
        ("benches/c/blocklist_lpm.c", "blocklist_lpm", ProgType::Xdp),
        ("benches/c/rewriter.c", "rewriter", ProgType::Xdp),
        (
            "benches/c/blocklist_hash.c",
            "blocklist_hash",
            ProgType::Xdp,
        ),
        (
            "runtime/tests/progs/xdp_drop_udp.c",
            "xdp_drop_udp",
            ProgType::Xdp,
        ),
        ("runtime/tests/progs/xdp_push.c", "xdp_push", ProgType::Xdp),
        ("runtime/tests/progs/tc_mark.c", "tc_mark", ProgType::Tc),
        (
            "runtime/tests/progs/xdp_calls.c",
            "xdp_calls",
            ProgType::Xdp,
        ),
    ];
    let mut rng = Rng(0x7468_6972_6470_6172);
    let (mut runs, mut problems) = (0usize, Vec::new());
    let (mut rbpf_runs, mut rbpf_refused) = (0usize, Vec::new());
    for (path, name, kind) in programs {
        let obj = match clang(&root.join(path)) {
            Ok(o) => o,
            Err(e) => {
                if skip(&e) {
                    return;
                }
                continue;
            }
        };
        let kernel = load(&obj, name, kind).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut emu = Emulator::load(&obj).unwrap_or_else(|e| panic!("{name}: {e}"));
        match name {
            "katran_encap" => {
                // Two VIPs: 203.0.113.10:80/tcp over reals 0..3, 203.0.113.11:53/udp over 4..5.
                for (vip, port, proto, first, count) in [
                    ("203.0.113.10", 80u16, 6u8, 0u32, 3u32),
                    ("203.0.113.11", 53, 17, 4, 2),
                ] {
                    let mut k = ip(vip).to_vec();
                    k.extend_from_slice(&port.to_be_bytes());
                    k.extend_from_slice(&[proto, 0]);
                    let mut v = first.to_le_bytes().to_vec();
                    v.extend_from_slice(&count.to_le_bytes());
                    put(&kernel, &mut emu, "vips", &k, &v);
                }
                for (slot, real) in [
                    "172.16.0.1",
                    "172.16.0.2",
                    "172.16.0.3",
                    "",
                    "172.16.1.1",
                    "172.16.1.2",
                ]
                .iter()
                .enumerate()
                {
                    if !real.is_empty() {
                        put(
                            &kernel,
                            &mut emu,
                            "reals",
                            &(slot as u32).to_le_bytes(),
                            &ip(real),
                        );
                    }
                }
            }
            "blocklist_lpm" => {
                for (len, a) in [(32u32, "192.0.2.7"), (24, "198.51.100.0"), (8, "10.0.0.0")] {
                    let mut k = len.to_le_bytes().to_vec();
                    k.extend_from_slice(&ip(a));
                    put(&kernel, &mut emu, "blocked", &k, &[1]);
                }
            }
            "blocklist_hash" => {
                put(&kernel, &mut emu, "blocked32", &ip("192.0.2.7"), &[1]);
                put(&kernel, &mut emu, "blocked24", &ip("198.51.100.0"), &[1]);
            }
            _ => {}
        }
        // The JIT runs a copy with the same maps, held to the kernel and the interpreter alike;
        // so does rbpf, on another copy.
        let mut jit = emu.clone();
        jit.jit_compile(name)
            .unwrap_or_else(|e| panic!("{name}: the JIT: {e}"));
        let mut oracle = emu.clone();
        let rbpf = match nfcc_oracle::RbpfProgram::new(&oracle, name) {
            Ok(p) => Some(p),
            Err(nfcc_oracle::OracleError::Unsupported { what, .. })
                if name == "rewriter" && what.starts_with("atomic operations") =>
            {
                rbpf_refused.push(name);
                None
            }
            Err(e) => panic!("{name}: rbpf: {e}"),
        };
        for _ in 0..400 {
            let (lit, f) = frame(&mut rng);
            let k = match kernel.test_run(&f, 1) {
                Ok(r) => r,
                // Frames the kernel's test runner refuses are not compared.
                Err(nfcc_runtime::RuntimeError::FrameTooShort { .. }) => continue,
                Err(e) => panic!("{name} kernel: {e}"),
            };
            let e = match emu.run(name, &f) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{name} `{lit}`: the emulator failed: {e}"));
                    continue;
                }
            };
            match jit.run_jit(name, &f) {
                Ok(j) if (j.retval, &j.data) == (e.retval, &e.data) => {}
                Ok(j) => problems.push(format!(
                    "{name} `{lit}` (hex {}): JIT {} out {}, interpreter {} out {}",
                    hex(&f),
                    j.retval,
                    hex(&j.data),
                    e.retval,
                    hex(&e.data)
                )),
                Err(x) => problems.push(format!("{name} `{lit}`: the JIT failed: {x}")),
            }
            if let Some(p) = &rbpf {
                match p.run(&mut oracle, &f) {
                    Ok(o) if (o.retval, &o.data) == (e.retval, &e.data) => rbpf_runs += 1,
                    Ok(o) => problems.push(format!(
                        "{name} `{lit}` (hex {}): rbpf {} out {}, interpreter {} out {}",
                        hex(&f),
                        o.retval,
                        hex(&o.data),
                        e.retval,
                        hex(&e.data)
                    )),
                    Err(x) => problems.push(format!("{name} `{lit}`: rbpf failed: {x}")),
                }
            }
            runs += 1;
            if k.retval as u64 != e.retval || k.data_out != e.data {
                problems.push(format!(
                    "{name} `{lit}` (hex {}): kernel {} out {}, emulator {} out {}",
                    hex(&f),
                    k.retval,
                    hex(&k.data_out),
                    e.retval,
                    hex(&e.data)
                ));
            }
        }
        // The maps the programs wrote agree too (per-CPU values summed over CPUs).
        for (map, percpu, entries) in [
            ("vip_stats", true, 8u32),
            ("counts", false, 2),
            ("drops", true, 1),
            ("buckets", true, 4),
        ] {
            for i in 0..entries {
                let key = i.to_le_bytes();
                let ev = match emu.map_lookup(map, &key) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(_) => continue, // this program has no such map
                };
                let jv = jit
                    .map_lookup(map, &key)
                    .unwrap_or_else(|e| panic!("{name} {map}: {e}"))
                    .unwrap_or_default();
                if rbpf.is_some() {
                    let rv = oracle
                        .map_lookup(map, &key)
                        .unwrap_or_else(|e| panic!("{name} {map}: {e}"))
                        .unwrap_or_default();
                    if rv != ev {
                        problems.push(format!(
                            "{name}: {map}[{i}] rbpf {} interpreter {}",
                            hex(&rv),
                            hex(&ev)
                        ));
                    }
                }
                if jv != ev {
                    problems.push(format!(
                        "{name}: {map}[{i}] JIT {} interpreter {}",
                        hex(&jv),
                        hex(&ev)
                    ));
                }
                let kv = if percpu {
                    kernel
                        .percpu_array_sum(map, i)
                        .unwrap_or_else(|e| panic!("{name} {map}: {e}"))
                        .iter()
                        .flat_map(|w| w.to_le_bytes())
                        .collect::<Vec<u8>>()
                } else {
                    kernel
                        .map_lookup(map, &key)
                        .unwrap_or_else(|e| panic!("{name} {map}: {e}"))
                        .unwrap_or_default()
                };
                if kv != ev {
                    problems.push(format!(
                        "{name}: {map}[{i}] kernel {} emulator {}",
                        hex(&kv),
                        hex(&ev)
                    ));
                }
            }
        }
    }
    eprintln!(
        "third-party programs: {runs} frames compared between the kernel, the interpreter and \
         the JIT, {rbpf_runs} of them on rbpf too (rbpf refused: {rbpf_refused:?})"
    );
    assert!(runs > 1000, "too few frames compared: {runs}");
    assert!(rbpf_runs > 1000, "too few frames on rbpf: {rbpf_runs}");
    assert_eq!(rbpf_refused, ["rewriter"]);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems[..problems.len().min(15)].join("\n")
    );
}
