//! Classification at scale: the six shared ClassBench sets (acl1, fw1, ipc1 at 1k and 10k
//! rules) compiled as the compiler chooses (classifier trees), with tuple space search
//! (`--classifier tuples`) and as code (`--classifier linear`, the curve before the
//! classifier), measured in the same run: compile time,
//! instructions, the verifier's processed instructions, classifier map memory, and kernel
//! `BPF_PROG_TEST_RUN` ns/packet by class of packet — inside a random rule (mean and the
//! slowest packet), random headers, and packets no rule matches (IPv6, the default) — next
//! to XDP drop-all, with the ratio of the two compilations.
//!
//! A driver rather than a criterion loop: the kernel times the program itself. Needs CAP_BPF
//! (says so and stops otherwise). `NFCC_BENCH_SETS=acl1_1k,fw1_10k` narrows the sets (a path
//! names a filter file of one's own, `fw3:10000:2` a set drawn by nfcc's generator from the
//! fw3 parameter file with seed 2); `NFCC_BENCH_BUILDS=auto,tuples,tree,linear` chooses
//! the builds (default `auto,tuples,linear`; `NFCC_BENCH_LINEAR=0` leaves out `linear`);
//! `NFCC_BENCH_PACKETS` sets packets per class (default 200; 50 for the linear 10k builds,
//! whose packets take microseconds).
//!
//! The worst case, per build: `bound` is the static bound (the longest path through the
//! program, `nfcc_bpf::paths`), `adv` the most instructions the adversarial search made one
//! packet execute (edges of filters, then one field at a time swapped while the count does not
//! drop; counted by the emulator's interpreter), `adv ns` the slowest of its 20 costliest
//! packets in the kernel.

// Reason: a bench binary has no public API to document.
#![allow(missing_docs)]

use nfcc_compiler::classify::Choice;
use nfcc_compiler::compile::{compile_opts, Compiled, Options};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_import::classbench::{classbench_to_nf, generate, ClassbenchActions};
use nfcc_runtime::{load, Loaded, ProgType};
use std::path::Path;
use std::time::Instant;

/// Repetitions per packet in one test run.
const REPEAT: u32 = 2_000;

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
}

/// A packet inside a ClassBench filter line (`@src dst sport dport proto flags`).
fn inside(line: &str, rng: &mut Rng) -> String {
    let c: Vec<&str> = line[1..].split('\t').collect();
    let addr = |s: &str, rng: &mut Rng| -> std::net::Ipv4Addr {
        let (a, l) = s.split_once('/').expect("prefix");
        let a: u32 = a.parse::<std::net::Ipv4Addr>().expect("address").into();
        let l: u32 = l.parse().expect("length");
        let host = if l >= 32 {
            0
        } else {
            (rng.next() as u32) & (u32::MAX >> l)
        };
        let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
        ((a & mask) | host).into()
    };
    let port = |s: &str, rng: &mut Rng| -> u64 {
        let (a, b) = s.split_once(':').expect("range");
        let (a, b): (u64, u64) = (
            a.trim().parse().expect("port"),
            b.trim().parse().expect("port"),
        );
        a + rng.below(b - a + 1)
    };
    let (src, dst) = (addr(c[0], rng), addr(c[1], rng));
    let (sp, dp) = (port(c[2], rng), port(c[3], rng));
    let (pv, pm) = c[4].split_once('/').expect("proto");
    let p = u8::from_str_radix(pv.trim_start_matches("0x"), 16).expect("hex");
    let wild = u8::from_str_radix(pm.trim_start_matches("0x"), 16).expect("hex") == 0;
    let (fv, fm) = c[5].split_once('/').expect("flags");
    let f = u16::from_str_radix(fv.trim_start_matches("0x"), 16).expect("hex") >> 8;
    let m = u16::from_str_radix(fm.trim_start_matches("0x"), 16).expect("hex") >> 8;
    let flags = (f & m) as u8 | (rng.next() as u8 & !(m as u8));
    match if wild {
        [6, 17][rng.below(2) as usize]
    } else {
        p
    } {
        6 => format!("ipv4(src={src}, dst={dst}) / tcp(sport={sp}, dport={dp}, flags={flags})"),
        17 => format!("ipv4(src={src}, dst={dst}) / udp(sport={sp}, dport={dp})"),
        1 => format!("ipv4(src={src}, dst={dst}) / icmp(type={flags})"),
        p => format!("ipv4(src={src}, dst={dst}, proto={p}) / payload(\"xxxxxxxx\")"),
    }
}

/// A packet's classified fields, so the adversarial search can change one at a time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Pkt {
    src: u32,
    dst: u32,
    sp: u16,
    dp: u16,
    proto: u8,
    flags: u8,
}

impl Pkt {
    fn literal(&self) -> String {
        let (src, dst) = (
            std::net::Ipv4Addr::from(self.src),
            std::net::Ipv4Addr::from(self.dst),
        );
        let (sp, dp, f) = (self.sp, self.dp, self.flags);
        match self.proto {
            6 => format!("ipv4(src={src}, dst={dst}) / tcp(sport={sp}, dport={dp}, flags={f})"),
            17 => format!("ipv4(src={src}, dst={dst}) / udp(sport={sp}, dport={dp})"),
            1 => format!("ipv4(src={src}, dst={dst}) / icmp(type={f})"),
            p => format!("ipv4(src={src}, dst={dst}, proto={p}) / payload(\"xxxxxxxx\")"),
        }
    }
}

/// A packet on the edges of a filter line: each field at a range end, or just past it — where
/// trees cut and boxes end, so where walks are deepest and leaves fullest.
fn edge(line: &str, rng: &mut Rng) -> Pkt {
    let c: Vec<&str> = line[1..].split('\t').collect();
    let mut pick = |lo: u64, hi: u64, max: u64| -> u64 {
        match rng.below(4) {
            0 => lo,
            1 => hi,
            2 => lo.saturating_sub(1),
            _ => (hi + 1).min(max),
        }
    };
    let prefix = |s: &str| -> (u64, u64) {
        let (a, l) = s.split_once('/').expect("prefix");
        let a = u64::from(u32::from(a.parse::<std::net::Ipv4Addr>().expect("address")));
        let l: u32 = l.parse().expect("length");
        let host = if l >= 32 { 0 } else { u64::from(u32::MAX >> l) };
        (a & !host, a | host)
    };
    let range = |s: &str| -> (u64, u64) {
        let (a, b) = s.split_once(':').expect("range");
        (
            a.trim().parse().expect("port"),
            b.trim().parse().expect("port"),
        )
    };
    let ((sa, sb), (da, db)) = (prefix(c[0]), prefix(c[1]));
    let ((pa, pb), (qa, qb)) = (range(c[2]), range(c[3]));
    let (pv, pm) = c[4].split_once('/').expect("proto");
    let p = u8::from_str_radix(pv.trim_start_matches("0x"), 16).expect("hex");
    let wild = u8::from_str_radix(pm.trim_start_matches("0x"), 16).expect("hex") == 0;
    Pkt {
        src: pick(sa, sb, u64::from(u32::MAX)) as u32,
        dst: pick(da, db, u64::from(u32::MAX)) as u32,
        sp: pick(pa, pb, 65535) as u16,
        dp: pick(qa, qb, 65535) as u16,
        proto: if wild {
            [6, 17][rng.below(2) as usize]
        } else {
            p
        },
        flags: rng.next() as u8,
    }
}

/// The packet a derived witness describes (the dimensions a ClassBench policy classifies on).
fn pkt_of(w: &nfcc_compiler::classify::adversary::Witness) -> Pkt {
    use nfcc_dsl::checked::Field as F;
    let get = |fs: &[F], or: u32| {
        w.fields
            .iter()
            .find(|(f, _)| fs.contains(f))
            .map_or(or, |&(_, v)| v)
    };
    Pkt {
        src: get(&[F::Ipv4Src], 0x0a00_0001),
        dst: get(&[F::Ipv4Dst], 0x0a00_0002),
        sp: get(&[F::TcpSport, F::UdpSport, F::L4Sport], 1000) as u16,
        dp: get(&[F::TcpDport, F::UdpDport, F::L4Dport], 80) as u16,
        proto: get(&[F::Ipv4Proto, F::IpProto], 6) as u8,
        flags: get(&[F::TcpFlags, F::IcmpType], 0) as u8,
    }
}

/// The adversarial trace: packets derived from the classifier's deepest leaves and fullest
/// buckets (`nfcc_compiler::classify::adversary`) and edges of random filters, then searched
/// for the most instructions executed (the emulator's interpreter counts them) — one field at
/// a time swapped for another filter's edge while the count does not drop. The `keep`
/// costliest, with their counts.
fn adversarial(c: &Compiled, name: &str, lines: &[&str], keep: usize) -> Vec<(u64, Vec<u8>)> {
    let mut emu = nfcc_emulator::Emulator::load(&c.object).expect("loads in the emulator");
    for (m, entries) in &c.programs[0].maps {
        for (k, v) in entries {
            emu.map_update(&m.name, k, v).expect("map update");
        }
    }
    let mut cost = |p: &Pkt| -> u64 {
        emu.run(name, &frame(&p.literal()))
            .map(|r| r.executed)
            .unwrap_or(0)
    };
    let mut rng = Rng(0x6164_7665_7273_6172);
    let derived = nfcc_compiler::classify::adversary::witnesses(&c.programs[0].ir, 8);
    let mut pool: Vec<(u64, Pkt)> = derived
        .iter()
        .map(pkt_of)
        .chain((0..400).map(|_| edge(lines[rng.below(lines.len() as u64) as usize], &mut rng)))
        .map(|p| (cost(&p), p))
        .collect();
    for _ in 0..2_000 {
        pool.sort_by_key(|x| std::cmp::Reverse(x.0));
        pool.truncate(keep.max(1) * 2);
        let (base_cost, base) = pool[rng.below(pool.len() as u64) as usize];
        let other = edge(lines[rng.below(lines.len() as u64) as usize], &mut rng);
        let mut p = base;
        match rng.below(6) {
            0 => p.src = other.src,
            1 => p.dst = other.dst,
            2 => p.sp = other.sp,
            3 => p.dp = other.dp,
            4 => p.proto = other.proto,
            _ => p.flags = other.flags,
        }
        let c = cost(&p);
        if c >= base_cost && !pool.iter().any(|x| x.1 == p) {
            pool.push((c, p));
        }
    }
    pool.sort_by_key(|x| std::cmp::Reverse(x.0));
    pool.truncate(keep);
    pool.iter()
        .map(|(c, p)| (*c, frame(&p.literal())))
        .collect()
}

fn random(rng: &mut Rng) -> String {
    let (s, d) = (
        std::net::Ipv4Addr::from(rng.next() as u32),
        std::net::Ipv4Addr::from(rng.next() as u32),
    );
    format!(
        "ipv4(src={s}, dst={d}) / tcp(sport={}, dport={})",
        rng.next() as u16,
        rng.next() as u16
    )
}

fn frame(lit: &str) -> Vec<u8> {
    nfcc_dsl::testing::frame_from_literal(lit).unwrap_or_else(|e| panic!("{lit}: {e}"))
}

/// Loads a compiled policy with its maps filled.
fn loaded(c: &Compiled, name: &str) -> Loaded {
    let l = load(&c.object, name, ProgType::Xdp).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (m, entries) in &c.programs[0].maps {
        for (k, v) in entries {
            l.map_update(&m.name, k, v)
                .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        }
    }
    l
}

/// (mean, slowest) kernel ns/packet over `frames`, each frame's time the median of 3 runs
/// (a VM's steal time would otherwise make one packet look slow).
fn ns(l: &Loaded, frames: &[Vec<u8>], repeat: u32) -> (f64, u32) {
    let (mean, _, max) = ns_p99(l, frames, repeat);
    (mean, max)
}

/// (mean, 99th percentile, slowest) kernel ns/packet over `frames`, each frame's time the
/// median of 3 runs.
fn ns_p99(l: &Loaded, frames: &[Vec<u8>], repeat: u32) -> (f64, u32, u32) {
    let times: Vec<u32> = frames
        .iter()
        .map(|f| {
            let mut t: Vec<u32> = (0..3)
                .map(|_| {
                    l.test_run(f, repeat)
                        .unwrap_or_else(|e| panic!("test run: {e}"))
                        .duration_ns
                })
                .collect();
            t.sort_unstable();
            t[1]
        })
        .collect();
    let mean = times.iter().map(|&t| f64::from(t)).sum::<f64>() / times.len().max(1) as f64;
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let p99 = sorted
        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0);
    (mean, p99, sorted.last().copied().unwrap_or(0))
}

fn main() {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        println!("skipped: classifier bench: {why}");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data/classbench");
    let sets: Vec<String> = std::env::var("NFCC_BENCH_SETS")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| {
            [
                "acl1_1k", "fw1_1k", "ipc1_1k", "acl1_10k", "fw1_10k", "ipc1_10k",
            ]
            .map(str::to_string)
            .to_vec()
        });
    let packets: usize = std::env::var("NFCC_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // XDP drop-all, the floor every row is set against.
    let drop_src = "policy drop_all on xdp {\n  default drop\n}\n";
    let (p, _) = check_source(drop_src, &CheckOptions::default());
    let drop = compile_opts(
        &p.expect("drop-all checks"),
        "d.nf",
        drop_src,
        &Options::default(),
    )
    .expect("drop-all compiles");
    let drop_l = loaded(&drop, "drop_all");
    let (drop_ns, _) = ns(&drop_l, &[frame("ipv4() / udp(dport=53)")], 100_000);
    println!("XDP drop-all: {drop_ns:.0} ns/packet");
    println!(
        "{:<9} {:>6} {:<7} {:>6} {:>8} {:>8} {:>9} | {:>7} {:>7} {:>7} {:>7} {:>7} | {:>8} | {:>6} {:>6} {:>7}",
        "set",
        "rules",
        "build",
        "insns",
        "verified",
        "compile",
        "maps KiB",
        "inside",
        "p99",
        "slowest",
        "random",
        "default",
        "x drop",
        "bound",
        "adv",
        "adv ns"
    );
    for set in &sets {
        // A set's name, a path to a filter file of one's own, or FAMILY:N:SEED (`fw3:10000:2`)
        // for a set nfcc's generator draws from ClassBench's parameter file for FAMILY.
        let drawn: Vec<&str> = set.split(':').collect();
        let (text, set) = if let [family, n, seed] = drawn[..] {
            let params = std::fs::read_to_string(dir.join("seeds").join(format!("{family}_seed")))
                .unwrap_or_else(|e| panic!("{set}: {e}"));
            let params = generate::Seed::parse(&params).unwrap_or_else(|e| panic!("{set}: {e}"));
            let n: usize = n.parse().expect("N in FAMILY:N:SEED");
            let seed: u64 = seed.parse().expect("SEED in FAMILY:N:SEED");
            let filters = generate::generate(&params, n, seed);
            (generate::to_text(&filters), format!("{family}_{n}_s{seed}"))
        } else {
            (
                std::fs::read_to_string(dir.join(set)).unwrap_or_else(|e| panic!("{set}: {e}")),
                set.clone(),
            )
        };
        let set = &set;
        let set = &Path::new(set)
            .file_name()
            .map_or(set.clone(), |f| f.to_string_lossy().into_owned());
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('@')).collect();
        let name = set.replace('_', "");
        let src = classbench_to_nf(&text, &name, ClassbenchActions::Alternate)
            .unwrap_or_else(|e| panic!("{e}"));
        let (program, _) = check_source(&src, &CheckOptions::default());
        let program = program.expect("checks");
        let mut ratio = Vec::new();
        let builds: Vec<(&str, Choice)> = std::env::var("NFCC_BENCH_BUILDS")
            .unwrap_or_else(|_| "auto,tuples,linear".into())
            .split(',')
            .filter(|b| {
                !(*b == "linear" && std::env::var("NFCC_BENCH_LINEAR").as_deref() == Ok("0"))
            })
            .map(|b| match b {
                "auto" => ("auto", Choice::Auto),
                "tuples" => ("tuples", Choice::Tuples),
                "tree" => ("tree", Choice::Tree),
                "linear" => ("linear", Choice::Linear),
                other => panic!("NFCC_BENCH_BUILDS: `{other}` is not auto, tuples, tree or linear"),
            })
            .collect();
        for &(label, choice) in &builds {
            let opts = Options {
                classifier: choice,
                ..Options::default()
            };
            let started = Instant::now();
            let c =
                compile_opts(&program, "cb.nf", &src, &opts).unwrap_or_else(|e| panic!("{e:?}"));
            let compile_ms = started.elapsed().as_secs_f64() * 1e3;
            let p = &c.programs[0];
            let bytes: u64 = p
                .maps
                .iter()
                .filter(|(m, _)| {
                    ["nfcc_tree", "nfcc_boxes", "nfcc_tuples"]
                        .iter()
                        .any(|n| m.name.contains(n))
                })
                .map(|(m, _)| u64::from(m.key_size + m.value_size) * u64::from(m.max_entries))
                .sum();
            let l = loaded(&c, &name);
            let verified = l.verified_insns().unwrap_or(0);
            let n = if label == "linear" && lines.len() > 5000 {
                packets.min(50)
            } else {
                packets
            };
            let mut rng = Rng(0x636c_6173_7369_6679);
            let ins: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    frame(&inside(
                        lines[rng.below(lines.len() as u64) as usize],
                        &mut rng,
                    ))
                })
                .collect();
            let rnd: Vec<Vec<u8>> = (0..n).map(|_| frame(&random(&mut rng))).collect();
            let def = vec![frame("ipv6() / udp(dport=53)")];
            let (ins_mean, ins_p99, ins_max) = ns_p99(&l, &ins, REPEAT);
            let (rnd_mean, rnd_max) = ns(&l, &rnd, REPEAT);
            let (def_mean, _) = ns(&l, &def, REPEAT);
            let worst = ins_max.max(rnd_max);
            ratio.push((label, ins_mean));
            // The static bound, and what the adversarial search reached of it, in instructions
            // (emulator) and kernel ns.
            let bound = nfcc_bpf::paths::longest_path(&p.code).map_or(0, |b| b as u64);
            let adv = if label == "linear" {
                Vec::new()
            } else {
                adversarial(&c, &name, &lines, 20)
            };
            let adv_insns = adv.first().map_or(0, |a| a.0);
            let adv_frames: Vec<Vec<u8>> = adv.into_iter().map(|a| a.1).collect();
            let (_, adv_ns) = if adv_frames.is_empty() {
                (0.0, 0)
            } else {
                ns(&l, &adv_frames, REPEAT)
            };
            println!(
                "{:<9} {:>6} {:<7} {:>6} {:>8} {:>8.0} {:>9.0} | {:>7.0} {:>7} {:>7} {:>7.0} {:>7.0} | {:>8.2} | {:>6} {:>6} {:>7}",
                set,
                lines.len(),
                label,
                p.insns,
                verified,
                compile_ms,
                bytes as f64 / 1024.0,
                ins_mean,
                ins_p99,
                worst,
                rnd_mean,
                def_mean,
                ins_mean / drop_ns,
                bound,
                adv_insns,
                adv_ns
            );
        }
        let mean = |b: &str| ratio.iter().find(|r| r.0 == b).map(|r| r.1);
        if let (Some(auto), Some(linear)) = (mean("auto"), mean("linear")) {
            println!(
                "{set}: the classifier is {:.1}x faster than code on packets inside rules",
                linear / auto
            );
        }
        if let (Some(auto), Some(tuples)) = (mean("auto"), mean("tuples")) {
            println!(
                "{set}: tuples take {:.2}x the compiler's choice on packets inside rules",
                tuples / auto
            );
        }
    }
}
