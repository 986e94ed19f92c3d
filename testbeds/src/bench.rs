//! Mpps of one program on a testbed's receiving veth, and what it costs per packet.
//!
//! A [`Subject`] is a loadable object (an nfcc policy, a clang-built C baseline, or a pass-all
//! program in front of nftables) and how to count what it processed. [`measure`] attaches it
//! in the testbed's namespace, warms up, then runs the traffic generator for a fixed time
//! several times, each time reading the subject's own counter and the receiving interface's
//! packet counter before and after; the rate is the counter's growth over the sending time.
//!
//! A slow generator must not flatten the comparison (a 1 Mpps sender feeding a 6 Mpps
//! program makes every subject read 1 Mpps), so each run also records figures that do not
//! depend on the sending rate:
//! - the program's own time per packet on the real path (`in_situ_ns`): the kernel's run
//!   statistics (`run_time_ns` / `run_cnt`), switched on only for the measurement
//!   ([`nfcc_runtime::stats::RunTimeStats`]; they add a few ns to every BPF subject alike);
//! - with a userspace generator, the receiving side's NAPI runs in its own kernel thread, and
//!   its CPU time per packet (`rx_cpu_ns`) is what receiving costs — the only figure for
//!   subjects without BPF statistics (nftables, iptables). Where that thread was busy less
//!   than [`BUSY`] of the time the generator was the bottleneck: the Mpps is the generator's
//!   and the thread's time includes its wakeups. Otherwise the receiving core was saturated
//!   and `1000 / rx_cpu_ns` is its Mpps (`mpps_per_core`);
//! - with live frames, sender and receiver share one core in one softirq pass, and the
//!   delivered rate is that core's Mpps, as the figures before userspace generators were.
//!
//! [`compare`] picks, for two subjects, the first figure both have — in-situ ns, per-core
//! Mpps, receive CPU ns, test-run ns — and says which.

use crate::{Testbed, TestbedError};
use nfcc_runtime::deploy::{self, AttachMode};
use nfcc_runtime::traffic::Kind;
use nfcc_runtime::{Loaded, ProgType, RunStats};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Copies of one frame per live-frame run: each run sets up a page pool, which costs about as
/// much as sending tens of thousands of frames, so runs must be long.
const CHUNK: u32 = 1 << 18;

/// How a subject counts the packets it processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// A per-CPU array whose values start with a packet count (nfcc's statistics map, the
    /// counted C baselines); slots `0..slots` are summed.
    PercpuArray {
        /// The map's name.
        map: String,
        /// How many slots to sum.
        slots: u32,
    },
    /// Nothing in the program counts; only the interface's counter is used.
    Interface,
}

/// A program to measure.
#[derive(Debug, Clone)]
pub struct Subject {
    /// What reports call it.
    pub label: String,
    /// The ELF object.
    pub object: Vec<u8>,
    /// The program's function name.
    pub program: String,
    /// Map entries to write after loading (map name, key, value).
    pub entries: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// How it counts.
    pub counter: Counter,
}

impl Subject {
    /// The nfcc policy compiled as `program` of `object`, counted by its per-rule statistics
    /// map (one slot per rule and one for the default).
    pub fn policy(
        label: String,
        object: &[u8],
        program: &nfcc_compiler::compile::CompiledProgram,
    ) -> Subject {
        Subject {
            label,
            object: object.to_vec(),
            program: program.name.clone(),
            entries: program.entries(),
            counter: Counter::PercpuArray {
                map: nfcc_compiler::compile::stats_map_name(&program.name),
                // The default's statistics slot comes after every rule's.
                slots: program.ir.default.1 + 1,
            },
        }
    }
}

/// What one run of one subject found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunFigures {
    /// Delivered Mpps: the subject's counter (or the interface's) over the sending time.
    pub mpps: f64,
    /// Frames the generator handed to the device per second, in millions.
    pub offered_mpps: f64,
    /// The program's mean ns per packet on the real path (kernel run statistics).
    pub in_situ_ns: Option<f64>,
    /// The receiving NAPI thread's CPU ns per delivered packet.
    pub rx_cpu_ns: Option<f64>,
    /// The share of the sending time that thread was running.
    pub rx_busy: Option<f64>,
    /// Packets counted.
    pub counted: u64,
    /// Frames sent.
    pub sent: u64,
}

/// Where the receiving NAPI thread must be busy for the receiver, not the generator, to be
/// the bottleneck.
pub const BUSY: f64 = 0.9;

/// What one measurement found (medians over its runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The subject's label.
    pub label: String,
    /// The generator that sent.
    pub generator: Kind,
    /// Each run's figures.
    pub runs: Vec<RunFigures>,
    /// Delivered Mpps of each run, by the subject's counter (or the interface's for
    /// [`Counter::Interface`]).
    pub mpps: Vec<f64>,
    /// The median of [`Measurement::mpps`].
    pub median_mpps: f64,
    /// Frames the generator handed to the device per second, in millions (median).
    pub offered_mpps: f64,
    /// Packets the subject's counter saw over all runs.
    pub counted: u64,
    /// Frames sent over all runs.
    pub sent: u64,
    /// Mean ns per packet of the program in `BPF_PROG_TEST_RUN` over the mix.
    pub test_run_ns: Option<f64>,
    /// Median of the runs' in-situ ns per packet (`None` for a subject whose program is only
    /// the pass in front of what is measured).
    pub in_situ_ns: Option<f64>,
    /// Median of the runs' receive-thread CPU ns per packet.
    pub rx_cpu_ns: Option<f64>,
    /// Median share of the time the receive thread was running.
    pub rx_busy: Option<f64>,
    /// Whether the generator, not the receiver, limited the rate (the Mpps is the generator's).
    pub generator_bound: bool,
    /// Mpps of one core where the generator kept up: the receive core's (`1000 / rx_cpu_ns`)
    /// with a userspace generator, the shared core's with live frames.
    pub mpps_per_core: Option<f64>,
}

fn median_of(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    (!v.is_empty()).then(|| median(&v))
}

impl Measurement {
    /// The medians of `runs`, and whether the generator was the bottleneck.
    pub fn from_runs(
        label: String,
        generator: Kind,
        runs: Vec<RunFigures>,
        test_run_ns: Option<f64>,
    ) -> Measurement {
        let mpps: Vec<f64> = runs.iter().map(|r| r.mpps).collect();
        let median_mpps = median(&mpps);
        let rx_cpu_ns = median_of(runs.iter().filter_map(|r| r.rx_cpu_ns));
        let rx_busy = median_of(runs.iter().filter_map(|r| r.rx_busy));
        let (generator_bound, mpps_per_core) = if generator.shares_the_receivers_core() {
            (false, Some(median_mpps))
        } else {
            match (rx_busy, rx_cpu_ns) {
                (Some(b), Some(ns)) if b >= BUSY && ns > 0.0 => (false, Some(1e3 / ns)),
                _ => (true, None),
            }
        };
        Measurement {
            label,
            generator,
            offered_mpps: median(&runs.iter().map(|r| r.offered_mpps).collect::<Vec<_>>()),
            counted: runs.iter().map(|r| r.counted).sum(),
            sent: runs.iter().map(|r| r.sent).sum(),
            in_situ_ns: median_of(runs.iter().filter_map(|r| r.in_situ_ns)),
            rx_cpu_ns,
            rx_busy,
            generator_bound,
            mpps_per_core,
            median_mpps,
            mpps,
            runs,
            test_run_ns,
        }
    }
}

/// The figure a ratio between two subjects was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Mpps of one core (both subjects saturated their core).
    PerCoreMpps,
    /// The programs' own ns per packet on the real path (kernel run statistics).
    InSituNs,
    /// The receive thread's CPU ns per packet.
    RxCpuNs,
    /// `BPF_PROG_TEST_RUN` ns per packet.
    TestRunNs,
}

impl Basis {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Basis::PerCoreMpps => "per-core Mpps",
            Basis::InSituNs => "in-situ ns",
            Basis::RxCpuNs => "receive CPU ns",
            Basis::TestRunNs => "test-run ns",
        }
    }
}

/// How many times faster `ours` is than `this`, from the first figure both have of: the
/// programs' in-situ ns (their own cost, whatever sent the frames), per-core Mpps (where both
/// saturated their core), the receive thread's CPU ns, test-run ns.
///
/// In-situ ns come first although per-core Mpps were the figure before there were several
/// generators: a receive core fed by a userspace generator spends most of each packet turning
/// its skb into an XDP frame (about 600 of 650 ns on a 2-core VM), which flattens per-core
/// ratios of XDP programs (drop-all against the blocklist policy: 0.93x per core, 0.48x in
/// situ), while in-situ ratios are the same under every generator.
pub fn compare(ours: &Measurement, this: &Measurement) -> Option<(f64, Basis)> {
    let pos = |x: Option<f64>| x.filter(|v| *v > 0.0);
    if let (Some(o), Some(t)) = (pos(ours.in_situ_ns), pos(this.in_situ_ns)) {
        return Some((t / o, Basis::InSituNs));
    }
    if let (Some(o), Some(t)) = (pos(ours.mpps_per_core), pos(this.mpps_per_core)) {
        return Some((o / t, Basis::PerCoreMpps));
    }
    for (o, t, basis) in [
        (ours.rx_cpu_ns, this.rx_cpu_ns, Basis::RxCpuNs),
        (ours.test_run_ns, this.test_run_ns, Basis::TestRunNs),
    ] {
        if let (Some(o), Some(t)) = (pos(o), pos(t)) {
            return Some((t / o, basis));
        }
    }
    None
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Sending time of each run.
    pub seconds: f64,
    /// Runs (the median is reported).
    pub runs: usize,
    /// How the subject is attached.
    pub mode: AttachMode,
    /// A field the generator varies per packet.
    pub vary: Option<nfcc_runtime::traffic::Variation>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 1.0,
            runs: 5,
            mode: AttachMode::Native,
            vary: None,
        }
    }
}

fn count(loaded: &Loaded, counter: &Counter) -> Result<Option<u64>, TestbedError> {
    match counter {
        Counter::PercpuArray { map, slots } => {
            let mut total = 0u64;
            for i in 0..*slots {
                let v = loaded.percpu_array_sum(map, i)?;
                total += v.first().copied().unwrap_or(0);
            }
            Ok(Some(total))
        }
        Counter::Interface => Ok(None),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Loads and attaches `subject` on the testbed's receiving end.
pub fn attach(
    tb: &Testbed,
    subject: &Subject,
    mode: AttachMode,
) -> Result<deploy::Attached, TestbedError> {
    let rx = tb.rx.clone();
    let kind = match mode {
        AttachMode::TcIngress | AttachMode::TcEgress => ProgType::Tc,
        _ => ProgType::Xdp,
    };
    if mode != AttachMode::Native {
        // Frames the generator redirects into a veth need its NAPI, which only a native XDP
        // program or GRO turns on.
        tb.enable_gro()?;
    }
    tb.on_rx(|| {
        let loaded = nfcc_runtime::load(&subject.object, &subject.program, kind)?;
        for (m, k, v) in &subject.entries {
            loaded.map_update(m, k, v)?;
        }
        deploy::attach(loaded, &rx, mode)
    })
}

/// Whether the subject's program is what is measured (not a pass in front of nftables or an
/// original firewall, whose cost is the stack's).
fn own_program(subject: &Subject) -> bool {
    !(subject.counter == Counter::Interface && subject.program == "xdp_pass")
}

/// Measures `subject` on `tb` with the frames of `mix` cycled (`progress` is called after
/// each run with the run's Mpps). The kernel's run statistics must be on
/// ([`nfcc_runtime::stats::RunTimeStats`]) for the in-situ figures.
pub fn measure(
    tb: &Testbed,
    subject: &Subject,
    mix: &[Vec<u8>],
    opts: Options,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Measurement, TestbedError> {
    let stop = AtomicBool::new(false);
    // Opens the generator (no frame sent) to learn which one runs.
    tb.blast_varying(mix, opts.vary, CHUNK, Some(0), None, &stop)?;
    let generator = tb.generator().map_or(Kind::Live, |s| s.kind);
    let attached = attach(tb, subject, opts.mode)?;
    // After the attachment, which gives the veth its NAPI (a veth without one refuses).
    let threaded = !generator.shares_the_receivers_core() && tb.thread_rx_napi().is_ok();
    // Warm caches, maps and the page pool.
    tb.blast_varying(
        mix,
        opts.vary,
        CHUNK,
        None,
        Some(Duration::from_millis(200)),
        &stop,
    )?;
    let own = own_program(subject);
    let run_stats = |l: &Loaded| if own { l.run_stats().ok() } else { None };
    let mut runs = Vec::new();
    for run in 0..opts.runs.max(1) {
        // What the last blast left in the veth ring is counted before this run starts.
        let mut before = None;
        let quiet = std::time::Instant::now();
        let (c0, i0) = loop {
            let c0 = count(attached.loaded(), &subject.counter)?;
            let (i0, _) = tb.rx_stats()?;
            if before == Some((c0, i0)) || quiet.elapsed() > Duration::from_secs(2) {
                break (c0, i0);
            }
            before = Some((c0, i0));
            std::thread::sleep(Duration::from_millis(20));
        };
        let s0: Option<RunStats> = run_stats(attached.loaded());
        let cpu0 = threaded.then(|| tb.rx_cpu_ns()).flatten();
        let s = tb.blast_varying(
            mix,
            opts.vary,
            CHUNK,
            None,
            Some(Duration::from_secs_f64(opts.seconds)),
            &stop,
        )?;
        // Frames still in the veth ring are processed by its NAPI (a thread that a loaded
        // machine may run late): wait until every frame is counted or the count settles.
        let settle = std::time::Instant::now();
        let mut last = None;
        let got = loop {
            std::thread::sleep(Duration::from_millis(20));
            let c1 = count(attached.loaded(), &subject.counter)?;
            let (i1, _) = tb.rx_stats()?;
            let got = match (c0, c1) {
                (Some(a), Some(b)) => b - a,
                _ => i1 - i0,
            };
            if got >= s.frames || last == Some(got) || settle.elapsed() > Duration::from_secs(2) {
                break got;
            }
            last = Some(got);
        };
        let s1 = run_stats(attached.loaded());
        let cpu1 = threaded.then(|| tb.rx_cpu_ns()).flatten();
        let secs = s.elapsed.as_secs_f64();
        let r = got as f64 / secs / 1e6;
        progress(run, r);
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) if b >= a => Some((b - a) as f64),
            _ => None,
        };
        runs.push(RunFigures {
            mpps: r,
            offered_mpps: s.frames as f64 / secs / 1e6,
            in_situ_ns: match (s0, s1) {
                (Some(a), Some(b)) => b.mean_ns_since(&a),
                _ => None,
            },
            rx_cpu_ns: cpu.filter(|_| got > 0).map(|c| c / got as f64),
            rx_busy: cpu.map(|c| c / (secs * 1e9 + settle.elapsed().as_secs_f64() * 1e9)),
            counted: got,
            sent: s.frames,
        });
    }
    // A subject counted by the interface is not the whole path (nftables runs after it).
    let test_run_ns = if own {
        test_run_ns(attached.loaded(), mix)
    } else {
        None
    };
    Ok(Measurement::from_runs(
        subject.label.clone(),
        generator,
        runs,
        test_run_ns,
    ))
}

/// Mean kernel `BPF_PROG_TEST_RUN` time per packet over the mix (100,000 repetitions spread
/// over its frames).
fn test_run_ns(loaded: &Loaded, mix: &[Vec<u8>]) -> Option<f64> {
    if mix.is_empty() {
        return None;
    }
    let reps = (100_000 / mix.len()).max(1000) as u32;
    let mut total = 0.0;
    for f in mix {
        total += f64::from(loaded.test_run(f, reps).ok()?.duration_ns);
    }
    Some(total / mix.len() as f64)
}

/// A baseline family to measure next to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// XDP drop-all in C (clang -O2): the ceiling of the testbed.
    Drop,
    /// The hand-written C equivalents of the policy (benches/c), where they exist.
    C,
    /// nftables netdev ingress with the same rules, where the policy can be said there.
    Nft,
}

/// One line of a bench report.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// Measured.
    Measured(Measurement),
    /// Not measured, and why.
    Skipped {
        /// What would have been measured.
        label: String,
        /// Why not.
        why: String,
    },
}

/// Compiles one of [`crate::baseline::C_SOURCES`] with clang; `Err` says what is missing.
pub fn clang(name: &str) -> Result<Vec<u8>, String> {
    let src = crate::baseline::C_SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| format!("no C baseline `{name}`"))?;
    // One directory per compilation: benches and tests compile concurrently.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nfcc-bench-c-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (c, o) = (dir.join(format!("{name}.c")), dir.join(format!("{name}.o")));
    std::fs::write(&c, src).map_err(|e| e.to_string())?;
    let arch = std::process::Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .map_err(|e| format!("clang is not available ({e}); `apt-get install clang libbpf-dev`"))?;
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    let out = std::process::Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            &format!("-I/usr/include/{arch}"),
            "-c",
        ])
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .output()
        .map_err(|e| e.to_string())?;
    let bytes = if out.status.success() {
        std::fs::read(&o).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "clang failed on {name}.c (libbpf-dev installed?): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ))
    };
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn c_subject(name: &str, entries: Vec<(String, Vec<u8>, Vec<u8>)>) -> Result<Subject, String> {
    Ok(Subject {
        label: format!("{name}.c (clang -O2)"),
        object: clang(name)?,
        program: name.to_string(),
        entries,
        counter: Counter::Interface,
    })
}

/// A firewall a policy was imported from, measured in the kernel as it was: its rules loaded
/// into the testbed's namespace (by `load`, a shell script run there, which also makes every
/// address local so packets reach INPUT) behind an XDP pass program, removed by `unload`
/// after each run. Frames are sent to the receiving end's MAC address, so the stack takes them.
#[derive(Debug, Clone)]
pub struct Original {
    /// What reports call it (`iptables (nft backend)`, `nftables`, ...).
    pub label: String,
    /// Loads the rules (run with `sh -c` in the namespace).
    pub load: String,
    /// Removes them.
    pub unload: String,
}

/// What a subject needs in the namespace around its runs.
enum Setup {
    /// An nftables netdev ruleset (the table `nfccbench`).
    Nft(String),
    /// An original firewall.
    Original(Original),
}

/// One subject [`run`] measures, or a row saying why a baseline is not measured.
enum Item {
    /// Measure `subject` in `opts.mode` (behind its setup, when there is one).
    Run {
        subject: Subject,
        opts: Options,
        ruleset: Option<Setup>,
        done: Vec<Measurement>,
        refused: Option<String>,
    },
    /// Not measured.
    Skip(Row),
}

fn skip(items: &mut Vec<Item>, label: &str, why: String) {
    if !items
        .iter()
        .any(|i| matches!(i, Item::Skip(Row::Skipped { label: l, .. }) if l == label))
    {
        items.push(Item::Skip(Row::Skipped {
            label: label.to_string(),
            why,
        }));
    }
}

/// The subjects [`run`] measures for `ours` and the asked baselines, in report order.
fn plan(
    ours: &Subject,
    policy: &nfcc_dsl::checked::Policy,
    baselines: &[Baseline],
    opts: Options,
    dev: &str,
) -> Vec<Item> {
    let run = |subject: Subject, opts: Options, ruleset: Option<Setup>| Item::Run {
        subject,
        opts,
        ruleset,
        done: Vec::new(),
        refused: None,
    };
    let mut items = vec![run(ours.clone(), opts, None)];
    let plain = crate::baseline::plain(policy);
    let katran = crate::baseline::katran_equivalent(policy);
    for b in baselines {
        match (b, &plain) {
            (Baseline::Drop | Baseline::C, _) if opts.mode != AttachMode::Native => skip(
                &mut items,
                "hand-written C",
                "the C baselines are XDP programs in native mode; measure them with --mode native"
                    .into(),
            ),
            (Baseline::Drop, _) => match c_subject("drop_all", Vec::new()) {
                Ok(s) => items.push(run(s, opts, None)),
                Err(why) => skip(&mut items, "drop_all.c", why),
            },
            (Baseline::C, _) if katran.is_some() => {
                match c_subject("katran_encap", katran.clone().unwrap_or_default()) {
                    Ok(s) => items.push(run(s, opts, None)),
                    Err(why) => skip(&mut items, "katran_encap.c", why),
                }
            }
            (Baseline::C, Err(why)) => skip(&mut items, "hand-written C", why.clone()),
            (Baseline::C, Ok(p)) => {
                let eq = crate::baseline::c_equivalents(p);
                if eq.is_empty() {
                    skip(
                        &mut items,
                        "hand-written C",
                        "benches/c has no C program equivalent to this policy (drop-all, IPv6 drop and the UDP/53 source blocklist have one)".into(),
                    );
                }
                for (name, entries) in eq {
                    // drop-all is already there when the drop baseline was asked for.
                    if name == "drop_all" && baselines.contains(&Baseline::Drop) {
                        continue;
                    }
                    match c_subject(name, entries) {
                        Ok(s) => items.push(run(s, opts, None)),
                        Err(why) => skip(&mut items, &format!("{name}.c"), why),
                    }
                }
            }
            (Baseline::Nft, Err(why)) => skip(&mut items, "nftables", why.clone()),
            (Baseline::Nft, Ok(p)) => {
                let pass = match c_subject("xdp_pass", Vec::new()) {
                    Ok(s) => s,
                    Err(why) => {
                        skip(
                            &mut items,
                            "nftables",
                            format!("the XDP pass program in front of it: {why}"),
                        );
                        continue;
                    }
                };
                // nftables sits behind an XDP pass program: on the skb path (generic) when
                // the policy is measured there, as a TC policy is.
                let nft_opts = Options {
                    mode: if opts.mode == AttachMode::Native {
                        AttachMode::Native
                    } else {
                        AttachMode::Generic
                    },
                    ..opts
                };
                for (label, ruleset) in crate::baseline::nft_rulesets(p, dev, "nfccbench") {
                    let s = Subject {
                        label,
                        ..pass.clone()
                    };
                    items.push(run(s, nft_opts, Some(Setup::Nft(ruleset))));
                }
            }
        }
    }
    items
}

/// Measures `ours` (for `policy`) and the asked baselines on one testbed. The subjects take
/// turns — one run of each, then the next round — so that a machine whose speed drifts during
/// the benchmark favours none of them; the medians are per subject.
pub fn run(
    ours: &Subject,
    policy: &nfcc_dsl::checked::Policy,
    mix: &[Vec<u8>],
    baselines: &[Baseline],
    opts: Options,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<Vec<Row>, TestbedError> {
    run_against(ours, policy, mix, baselines, &[], opts, progress).map(|r| r.rows)
}

/// What [`run_against`] measured, and how.
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per subject, ours first.
    pub rows: Vec<Row>,
    /// The generator that sent, and why faster ones were not used.
    pub generator: Option<nfcc_runtime::traffic::Selection>,
    /// How the kernel's run statistics were switched on for the in-situ figures, or why
    /// they could not be.
    pub run_stats: Result<&'static str, std::sync::Arc<nfcc_runtime::RuntimeError>>,
}

/// [`run`], also measuring the `originals` a policy was imported from (each behind an XDP
/// pass program, counted by the interface, with the frames addressed to the receiving end).
pub fn run_against(
    ours: &Subject,
    policy: &nfcc_dsl::checked::Policy,
    mix: &[Vec<u8>],
    baselines: &[Baseline],
    originals: &[Original],
    opts: Options,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<Report, TestbedError> {
    let tb = Testbed::new()?;
    // On for the whole run, off again (or the sysctl restored) when it ends.
    let stats = nfcc_runtime::stats::RunTimeStats::enable();
    let mut items = plan(ours, policy, baselines, opts, &tb.rx);
    // Behind an XDP pass program: on the skb path (generic) when the policy is measured
    // there, as a TC policy is.
    let behind_pass = Options {
        mode: if opts.mode == AttachMode::Native {
            AttachMode::Native
        } else {
            AttachMode::Generic
        },
        ..opts
    };
    for o in originals {
        match c_subject("xdp_pass", Vec::new()) {
            Ok(pass) => items.push(Item::Run {
                subject: Subject {
                    label: o.label.clone(),
                    ..pass
                },
                opts: behind_pass,
                ruleset: Some(Setup::Original(o.clone())),
                done: Vec::new(),
                refused: None,
            }),
            Err(why) => skip(
                &mut items,
                &o.label,
                format!("the XDP pass program in front of it: {why}"),
            ),
        }
    }
    // The stack takes only frames addressed to the receiving end.
    let rx_mac = rx_mac(&tb)?;
    let to_rx: Vec<Vec<u8>> = mix
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if f.len() >= 6 {
                f[..6].copy_from_slice(&rx_mac);
            }
            f
        })
        .collect();
    for round in 0..opts.runs.max(1) {
        for item in &mut items {
            let Item::Run {
                subject,
                opts,
                ruleset,
                done,
                refused,
            } = item
            else {
                continue;
            };
            if refused.is_some() {
                continue;
            }
            let loaded = match ruleset {
                Some(Setup::Nft(rs)) => nft(&tb, rs),
                Some(Setup::Original(o)) => ns_sh(&tb, &o.load),
                None => Ok(()),
            };
            if let Err(why) = loaded {
                *refused = Some(why);
                continue;
            }
            let one = Options { runs: 1, ..*opts };
            let label = subject.label.clone();
            let frames = if matches!(ruleset, Some(Setup::Original(_))) {
                &to_rx
            } else {
                mix
            };
            let m = measure(&tb, subject, frames, one, &mut |_, x| {
                progress(&label, round, x)
            });
            match ruleset {
                Some(Setup::Nft(_)) => {
                    let _ = nft(&tb, "delete table netdev nfccbench\n");
                }
                Some(Setup::Original(o)) => {
                    let _ = ns_sh(&tb, &o.unload);
                }
                None => {}
            }
            done.push(m?);
        }
    }
    let rows = items
        .into_iter()
        .map(|i| match i {
            Item::Skip(r) => r,
            Item::Run {
                subject,
                refused: Some(why),
                ..
            } => Row::Skipped {
                label: subject.label,
                why,
            },
            Item::Run { subject, done, .. } => {
                let generator = done.first().map_or(Kind::Live, |m| m.generator);
                let test_run_ns = done.first().and_then(|m| m.test_run_ns);
                let runs = done.into_iter().flat_map(|m| m.runs).collect();
                Row::Measured(Measurement::from_runs(
                    subject.label,
                    generator,
                    runs,
                    test_run_ns,
                ))
            }
        })
        .collect();
    Ok(Report {
        rows,
        generator: tb.generator(),
        // The statistics stay on until here, the last measurement done.
        run_stats: match stats {
            Ok(s) => Ok(s.method()),
            Err(e) => Err(std::sync::Arc::new(e)),
        },
    })
}

/// Runs `script` with `sh -c` inside the testbed's namespace.
fn ns_sh(tb: &Testbed, script: &str) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.ns, "sh", "-c", script])
        .output()
        .map_err(|e| format!("cannot run `ip netns exec`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{script}` failed in the testbed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The receiving end's MAC address.
fn rx_mac(tb: &Testbed) -> Result<[u8; 6], TestbedError> {
    let mac = crate::netfilter::mac_of(&tb.ns, &tb.rx)?;
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    b.try_into()
        .map_err(|_| TestbedError::Setup(format!("no MAC address for {}", tb.rx)))
}

/// Loads an nftables ruleset inside the testbed's namespace.
fn nft(tb: &Testbed, ruleset: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    child
        .stdin
        .take()
        .map(|mut i| i.write_all(ruleset.as_bytes()))
        .transpose()
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the ruleset (is nftables installed? `apt-get install nftables`): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(generator: Kind, mpps: f64, in_situ: Option<f64>, rx_ns: f64, busy: f64) -> Measurement {
        let run = RunFigures {
            mpps,
            offered_mpps: mpps,
            in_situ_ns: in_situ,
            rx_cpu_ns: Some(rx_ns),
            rx_busy: Some(busy),
            counted: 1,
            sent: 1,
        };
        Measurement::from_runs("s".into(), generator, vec![run; 3], Some(100.0))
    }

    #[test]
    fn ratios_name_the_figure_they_come_from() {
        // A userspace generator that could not keep the receiver busy: generator-bound.
        let ours = m(Kind::Xsk, 0.5, Some(100.0), 900.0, 0.5);
        assert!(ours.generator_bound && ours.mpps_per_core.is_none());
        let drop = m(Kind::Xsk, 0.5, Some(50.0), 800.0, 0.5);
        assert_eq!(compare(&ours, &drop), Some((0.5, Basis::InSituNs)));
        // A peer without BPF statistics: the receive thread's CPU time.
        let nft = m(Kind::Xsk, 0.5, None, 1800.0, 0.5);
        assert_eq!(compare(&ours, &nft), Some((2.0, Basis::RxCpuNs)));
        // A saturated receive thread: Mpps per receive core, 1000 / rx ns.
        let busy_ours = m(Kind::Xsk, 1.0, Some(100.0), 500.0, 0.95);
        let busy_nft = m(Kind::Xsk, 0.5, None, 1000.0, 0.99);
        assert!(!busy_ours.generator_bound);
        assert_eq!(busy_ours.mpps_per_core, Some(2.0));
        assert_eq!(
            compare(&busy_ours, &busy_nft),
            Some((2.0, Basis::PerCoreMpps))
        );
        // Live frames: the shared core's delivered rate, never generator-bound.
        let live = m(Kind::Live, 6.0, None, 0.0, 0.0);
        assert_eq!(live.mpps_per_core, Some(6.0));
        assert!(!live.generator_bound);
    }
}
