//! Mpps of one program on a testbed's receiving veth.
//!
//! A [`Subject`] is a loadable object (an nfcc policy, a clang-built C baseline, or a pass-all
//! program in front of nftables) and how to count what it processed. [`measure`] attaches it
//! in the testbed's namespace, warms up, then runs the live-frame generator for a fixed time
//! several times, each time reading the subject's own counter and the receiving interface's
//! packet counter before and after; the rate is the counter's growth over the sending time.

use crate::{Testbed, TestbedError};
use nfcc_runtime::deploy::{self, Mode};
use nfcc_runtime::{Loaded, ProgKind};
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

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The subject's label.
    pub label: String,
    /// Million packets per second of each run, by the subject's counter (or the interface's
    /// for [`Counter::Interface`]).
    pub mpps: Vec<f64>,
    /// The median of [`Measurement::mpps`].
    pub median_mpps: f64,
    /// Frames the generator handed to the kernel per second, in millions (median).
    pub offered_mpps: f64,
    /// Packets the subject's counter saw over all runs, and the frames sent.
    pub counted: u64,
    /// Frames sent over all runs.
    pub sent: u64,
    /// Mean ns per packet of the program in `BPF_PROG_TEST_RUN` over the mix.
    pub test_run_ns: Option<f64>,
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Sending time of each run.
    pub seconds: f64,
    /// Runs (the median is reported).
    pub runs: usize,
    /// How the subject is attached.
    pub mode: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 1.0,
            runs: 5,
            mode: Mode::Native,
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
    mode: Mode,
) -> Result<deploy::Attached, TestbedError> {
    let rx = tb.rx.clone();
    tb.on_rx(|| {
        let loaded = nfcc_runtime::load(&subject.object, &subject.program, ProgKind::Xdp)?;
        for (m, k, v) in &subject.entries {
            loaded.map_update(m, k, v)?;
        }
        deploy::attach(loaded, &rx, mode)
    })
}

/// Measures `subject` on `tb` with the frames of `mix` cycled (`progress` is called after
/// each run with the run's Mpps).
pub fn measure(
    tb: &Testbed,
    subject: &Subject,
    mix: &[Vec<u8>],
    opts: Options,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Measurement, TestbedError> {
    let attached = attach(tb, subject, opts.mode)?;
    let stop = AtomicBool::new(false);
    // Warm caches, maps and the page pool.
    tb.blast(mix, CHUNK, None, Some(Duration::from_millis(200)), &stop)?;
    let mut mpps = Vec::new();
    let mut offered = Vec::new();
    let (mut counted, mut sent) = (0u64, 0u64);
    for run in 0..opts.runs.max(1) {
        let c0 = count(attached.loaded(), &subject.counter)?;
        let (i0, _) = tb.rx_stats()?;
        let s = tb.blast(
            mix,
            CHUNK,
            None,
            Some(Duration::from_secs_f64(opts.seconds)),
            &stop,
        )?;
        // Frames still in the veth ring are processed by its NAPI within microseconds.
        std::thread::sleep(Duration::from_millis(20));
        let c1 = count(attached.loaded(), &subject.counter)?;
        let (i1, _) = tb.rx_stats()?;
        let got = match (c0, c1) {
            (Some(a), Some(b)) => b - a,
            _ => i1 - i0,
        };
        let secs = s.elapsed.as_secs_f64();
        let r = got as f64 / secs / 1e6;
        progress(run, r);
        mpps.push(r);
        offered.push(s.frames as f64 / secs / 1e6);
        counted += got;
        sent += s.frames;
    }
    let test_run_ns = test_run_ns(attached.loaded(), mix);
    Ok(Measurement {
        label: subject.label.clone(),
        median_mpps: median(&mpps),
        mpps,
        offered_mpps: median(&offered),
        counted,
        sent,
        test_run_ns,
    })
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
