//! `nfcc bench`: Mpps of a policy on a veth testbed next to baselines measured in the same
//! run (see `nfcc_testbeds::bench`).

use crate::commands::{ENV, INPUT, OK};
use crate::{BaselineArg, ModeArg};
use nfcc_dsl::checked::Step;
use nfcc_testbeds::bench::{self, Baseline, Row, Subject};
use std::path::PathBuf;

/// The arguments of `nfcc bench`.
pub struct BenchArgs {
    pub file: Option<PathBuf>,
    pub sweep: bool,
    pub filters: PathBuf,
    pub plot: Option<PathBuf>,
    pub policy: Option<String>,
    pub pcap: Option<PathBuf>,
    pub mode: ModeArg,
    pub seconds: f64,
    pub runs: usize,
    pub baselines: Vec<BaselineArg>,
    pub json: bool,
}

/// `nfcc bench`.
pub fn bench(a: &BenchArgs) -> u8 {
    let mode = match a.mode {
        ModeArg::Native => nfcc_runtime::deploy::AttachMode::Native,
        ModeArg::Generic => nfcc_runtime::deploy::AttachMode::Generic,
        ModeArg::TcIngress => nfcc_runtime::deploy::AttachMode::TcIngress,
        ModeArg::TcEgress | ModeArg::Offload => {
            eprintln!("error: `nfcc bench` measures native, generic and tc-ingress attachments (the generator's frames arrive on the receiving side)");
            return INPUT;
        }
    };
    if !(a.seconds > 0.0 && a.seconds <= 600.0) || a.runs == 0 || a.runs > 100 {
        eprintln!("error: --seconds must be in (0, 600] and --runs in 1..=100");
        return INPUT;
    }
    let opts = bench::Options {
        seconds: a.seconds,
        runs: a.runs,
        mode,
        vary: None,
    };
    if a.sweep {
        return sweep(a, opts);
    }
    let Some(file) = &a.file else {
        eprintln!("error: `nfcc bench` needs a .nf file (or --sweep)");
        return INPUT;
    };
    let c = match crate::run::checked_policy(file, a.policy.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (policy, chosen) = (&c.policy, c.policy.name.clone());
    let fits = match policy.hook {
        nfcc_dsl::checked::Hook::Xdp => a.mode != ModeArg::TcIngress,
        nfcc_dsl::checked::Hook::TcIngress => a.mode == ModeArg::TcIngress,
        nfcc_dsl::checked::Hook::TcEgress => false,
    };
    if !fits {
        eprintln!(
            "error: policy `{chosen}` is on {}; bench xdp policies with --mode native or generic, tc ingress policies with --mode tc-ingress",
            policy.hook.as_str()
        );
        return INPUT;
    }
    let compiled = match c.compile(None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ours = Subject::policy(
        format!("{chosen} (nfcc)"),
        &compiled.object,
        &compiled.programs[0],
    );
    let mix = match traffic(a, policy) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return INPUT;
        }
    };
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        eprintln!("error: cannot load programs here: {why}");
        return ENV;
    }
    let baselines: Vec<Baseline> = if a.baselines.is_empty() {
        vec![Baseline::Drop, Baseline::C, Baseline::Nft]
    } else {
        a.baselines
            .iter()
            .map(|b| match b {
                BaselineArg::Drop => Baseline::Drop,
                BaselineArg::C => Baseline::C,
                BaselineArg::Nft => Baseline::Nft,
            })
            .collect()
    };
    let quiet = a.json;
    let rows = match bench::run(&ours, policy, &mix, &baselines, opts, &mut |l, r, x| {
        if !quiet {
            eprint!("\r{l:<44} run {}/{}: {x:6.2} Mpps   ", r + 1, a.runs);
            if r + 1 == a.runs {
                eprintln!();
            }
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    report(&chosen, &mix, &rows, a);
    if let Some(path) = &a.plot {
        let bars: Vec<(String, f64)> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Measured(m) => Some((m.label.clone(), m.median_mpps)),
                Row::Skipped { .. } => None,
            })
            .collect();
        let svg = nfcc_testbeds::plot::bars(&format!("{chosen}: Mpps on a veth testbed"), &bars);
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ENV;
        }
    }
    OK
}

/// `nfcc bench --sweep`.
fn sweep(a: &BenchArgs, opts: bench::Options) -> u8 {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        eprintln!("error: cannot load programs here: {why}");
        return ENV;
    }
    let quiet = a.json;
    let mut progress = |l: &str, r: usize, x: f64| {
        if !quiet {
            eprint!("\r{l:<44} run {}/{}: {x:6.2} Mpps   ", r + 1, a.runs);
            if r + 1 == a.runs {
                eprintln!();
            }
        }
    };
    let sizes = [10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let mut blocklists = Vec::new();
    for hot in [false, true] {
        match nfcc_testbeds::sweep::blocklist(&sizes, hot, opts, &mut progress) {
            Ok(p) => blocklists.push(p),
            Err(e) => {
                eprintln!("error: {e}");
                return ENV;
            }
        }
    }
    let (blocklist, hot) = (&blocklists[0], &blocklists[1]);
    let acl = match std::fs::read_to_string(&a.filters) {
        Ok(text) => {
            match nfcc_testbeds::sweep::acl(
                &text,
                &[1, 10, 100, 1_000, 10_000],
                opts,
                &mut progress,
            ) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ENV;
                }
            }
        }
        Err(e) => {
            eprintln!(
                "note: ACL sweep skipped: cannot read {} ({e}); give --filters FILE",
                a.filters.display()
            );
            None
        }
    };
    let json_points = |ps: &[nfcc_testbeds::sweep::Point]| {
        ps.iter()
            .map(|p| {
                format!(
                    "{{\"size\":{},\"mpps\":{:.3},\"test_run_ns\":{}}}",
                    p.size,
                    p.mpps,
                    p.test_run_ns.map_or("null".into(), |n| format!("{n:.1}"))
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    if a.json {
        say!(
            "{{\"blocklist_entries\":[{}],\"blocklist_entries_hot\":[{}],\"acl_rules\":[{}]}}",
            json_points(blocklist),
            json_points(hot),
            acl.as_deref().map(json_points).unwrap_or_default()
        );
    } else {
        say!(
            "{:<32} {:>10} {:>8} {:>14}",
            "sweep point",
            "size",
            "Mpps",
            "test_run ns"
        );
        let rows = blocklist
            .iter()
            .map(|p| ("blocklist entries, random src", p))
            .chain(hot.iter().map(|p| ("blocklist entries, 8 hot src", p)))
            .chain(acl.iter().flatten().map(|p| ("ClassBench ACL rules", p)));
        for (what, p) in rows {
            say!(
                "{what:<32} {:>10} {:>8.2} {:>14}",
                p.size,
                p.mpps,
                p.test_run_ns.map_or("-".into(), |n| format!("{n:.0}"))
            );
        }
        for (what, ps) in [("random sources", blocklist), ("8 hot sources", hot)] {
            if let (Some(first), Some(last)) = (ps.first(), ps.last()) {
                say!(
                    "blocklist at {} entries runs at {:.2}x its speed at {} ({what})",
                    last.size,
                    last.mpps / first.mpps.max(1e-9),
                    first.size
                );
            }
        }
    }
    if let Some(path) = &a.plot {
        let mut series = vec![
            (
                "blocklist entries, random sources".to_string(),
                blocklist
                    .iter()
                    .map(|p| (p.size as f64, p.mpps))
                    .collect::<Vec<_>>(),
            ),
            (
                "blocklist entries, 8 hot sources".to_string(),
                hot.iter()
                    .map(|p| (p.size as f64, p.mpps))
                    .collect::<Vec<_>>(),
            ),
        ];
        if let Some(acl) = &acl {
            series.push((
                "ClassBench ACL rules".to_string(),
                acl.iter().map(|p| (p.size as f64, p.mpps)).collect(),
            ));
        }
        let svg = nfcc_testbeds::plot::lines("Mpps by size (log scale)", &series);
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ENV;
        }
    }
    OK
}

/// The traffic mix: the pcap's frames, or the frames of the policy's test blocks.
fn traffic(a: &BenchArgs, policy: &nfcc_dsl::checked::Policy) -> Result<Vec<Vec<u8>>, String> {
    let ok = |f: &Vec<u8>| f.len() >= 14 && f.len() <= nfcc_runtime::traffic::MAX_FRAME;
    // Frames shorter than Ethernet's minimum are padded to 60 bytes (64 on the wire with the
    // FCS), as a NIC would send them.
    let pad = |mut f: Vec<u8>| {
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    };
    if let Some(p) = &a.pcap {
        let bytes = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let recs =
            nfcc_emulator::pcap::read(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        let mix: Vec<Vec<u8>> = recs.into_iter().map(|r| pad(r.data)).filter(ok).collect();
        if mix.is_empty() {
            return Err(format!(
                "{} holds no frame of 14 to {} bytes",
                p.display(),
                nfcc_runtime::traffic::MAX_FRAME
            ));
        }
        return Ok(mix);
    }
    let mut mix = Vec::new();
    for t in &policy.tests {
        for s in &t.steps {
            if let Step::Send { layers, .. } = s {
                if let Ok(f) = nfcc_dsl::packet::build(layers).map(pad) {
                    if ok(&f) && !mix.contains(&f) {
                        mix.push(f);
                    }
                }
            }
        }
    }
    if mix.is_empty() {
        return Err(format!(
            "policy `{}` has no test blocks to take traffic from; give `--pcap TRAFFIC.pcap`",
            policy.name
        ));
    }
    Ok(mix)
}

fn report(policy: &str, mix: &[Vec<u8>], rows: &[Row], a: &BenchArgs) {
    let ours = rows.iter().find_map(|r| match r {
        Row::Measured(m) => Some(m.median_mpps),
        Row::Skipped { .. } => None,
    });
    let ratio = |m: f64| match ours {
        Some(o) if m > 0.0 => o / m,
        _ => 0.0,
    };
    if a.json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| match r {
                Row::Measured(m) => format!(
                    "{{\"label\":{:?},\"mpps\":{:.3},\"runs\":[{}],\"offered_mpps\":{:.3},\"test_run_ns\":{},\"ours_over_this\":{:.3}}}",
                    m.label,
                    m.median_mpps,
                    m.mpps.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(","),
                    m.offered_mpps,
                    m.test_run_ns.map_or("null".to_string(), |n| format!("{n:.1}")),
                    ratio(m.median_mpps)
                ),
                Row::Skipped { label, why } => {
                    format!("{{\"label\":{label:?},\"skipped\":{why:?}}}")
                }
            })
            .collect();
        say!(
            "{{\"policy\":{policy:?},\"frames_in_mix\":{},\"seconds\":{},\"runs\":{},\"results\":[{}]}}",
            mix.len(),
            a.seconds,
            a.runs,
            items.join(",")
        );
        return;
    }
    let (lo, hi) = mix.iter().fold((usize::MAX, 0), |(lo, hi), f| {
        (lo.min(f.len()), hi.max(f.len()))
    });
    say!(
        "{policy}: {} frame(s) of {lo}-{hi} bytes cycled, {} run(s) of {} s each per subject, generator and receiver sharing one core",
        mix.len(),
        a.runs,
        a.seconds
    );
    say!(
        "{:<44} {:>8} {:>10} {:>14}",
        "subject",
        "Mpps",
        "nfcc/this",
        "test_run ns"
    );
    for r in rows {
        match r {
            Row::Measured(m) => say!(
                "{:<44} {:>8.2} {:>9.2}x {:>14}",
                m.label,
                m.median_mpps,
                ratio(m.median_mpps),
                m.test_run_ns.map_or("-".to_string(), |n| format!("{n:.0}"))
            ),
            Row::Skipped { label, why } => say!("{label:<44} skipped: {why}"),
        }
    }
}
