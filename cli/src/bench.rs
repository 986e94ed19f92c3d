//! `nfcc bench`: renders Mpps measured on a veth testbed next to baselines measured in the
//! same run (the driver prepares the subject and traffic; `nfcc_testbeds::bench` measures).

use crate::args::BenchArgs;
use nfcc_driver::exit::OK;
use nfcc_driver::testbeds::bench::{self, Options, Row};
use nfcc_driver::DriverError;
use serde_json::json;

fn progress(quiet: bool, runs: usize) -> impl FnMut(&str, usize, f64) {
    move |l: &str, r: usize, x: f64| {
        if !quiet {
            eprint!("\r{l:<44} run {}/{runs}: {x:6.2} Mpps   ", r + 1);
            if r + 1 == runs {
                eprintln!();
            }
        }
    }
}

fn can_load() -> Result<(), DriverError> {
    nfcc_driver::runtime::can_load_bpf()
        .map_err(|why| DriverError::Environment(format!("cannot load programs here: {why}")))
}

/// `nfcc bench`.
pub fn bench(a: &BenchArgs) -> Result<u8, DriverError> {
    nfcc_driver::bench::use_generator(a.generator);
    let opts = nfcc_driver::bench::options(a.mode, a.seconds, a.runs)?;
    if a.sweep {
        return sweep(a, opts);
    }
    if a.userspace {
        return userspace(a);
    }
    let Some(file) = &a.file else {
        return Err(DriverError::Input(
            "`nfcc bench` needs a .nf file (or --sweep)".into(),
        ));
    };
    let c = nfcc_driver::source::Chosen::read(file, a.policy.as_deref())?;
    let ours = nfcc_driver::bench::subject(&c, opts.mode)?;
    let (originals, drawn) = match &a.original {
        Some(f) => nfcc_driver::bench::originals(f)?,
        None => (Vec::new(), Vec::new()),
    };
    let mix = match (&a.pcap, drawn.is_empty()) {
        (None, false) => drawn,
        _ => nfcc_driver::bench::traffic(a.pcap.as_deref(), &c.policy)?,
    };
    can_load()?;
    let baselines = nfcc_driver::bench::baselines(&a.baseline);
    let report = bench::run_against(
        &ours,
        &c.policy,
        &mix,
        &baselines,
        &originals,
        opts,
        &mut progress(a.json, a.runs),
    )
    .map_err(|e| DriverError::Environment(e.to_string()))?;
    render(&c.policy.name, &mix, &report, a);
    if let Some(path) = &a.plot {
        let svg = nfcc_driver::bench::plot(&c.policy.name, &report);
        nfcc_driver::error::write(path, svg)?;
    }
    Ok(OK)
}

/// `nfcc bench --userspace`.
fn userspace(a: &BenchArgs) -> Result<u8, DriverError> {
    can_load()?;
    let rows = nfcc_driver::bench::userspace(a.seconds, a.runs)?;
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|d| {
                json!({
                    "path": d.path,
                    "offered_mpps": d.offered_mpps,
                    "delivered_mpps": d.delivered_mpps,
                    "delivered": d.delivered,
                })
            })
            .collect();
        say!("{}", json!({ "userspace": v }));
        return Ok(OK);
    }
    say!(
        "{:<10} {:>13} {:>15} {:>10}",
        "path",
        "offered Mpps",
        "delivered Mpps",
        "vs af_xdp"
    );
    let best = rows.first().map_or(1.0, |d| d.delivered_mpps.max(1e-9));
    for d in &rows {
        say!(
            "{:<10} {:>13.3} {:>15.3} {:>9.2}x",
            d.path,
            d.offered_mpps,
            d.delivered_mpps,
            d.delivered_mpps / best
        );
    }
    Ok(OK)
}

/// `nfcc bench --sweep`.
fn sweep(a: &BenchArgs, opts: Options) -> Result<u8, DriverError> {
    can_load()?;
    let sw = nfcc_driver::bench::sweep(&a.filters, opts, &mut progress(a.json, a.runs))?;
    if let Some(note) = &sw.note {
        eprintln!("note: {note}");
    }
    if a.json {
        say!("{}", nfcc_driver::bench::sweep_json(&sw));
    } else {
        if let Some(g) = nfcc_driver::runtime::traffic::selected() {
            say!("{g}");
        }
        say!(
            "{:<32} {:>10} {:>8} {:>10} {:>12}",
            "sweep point",
            "size",
            "Mpps",
            "in-situ ns",
            "test_run ns"
        );
        let f = |x: Option<f64>| x.map_or("-".to_string(), |n| format!("{n:.0}"));
        for (what, ps) in &sw.series {
            for p in ps {
                let mpps = format!("{:.2}{}", p.mpps, if p.generator_bound { "*" } else { "" });
                say!(
                    "{what:<32} {:>10} {mpps:>8} {:>10} {:>12}",
                    p.size,
                    f(p.in_situ_ns),
                    f(p.test_run_ns)
                );
            }
        }
        if sw
            .series
            .iter()
            .any(|(_, ps)| ps.iter().any(|p| p.generator_bound))
        {
            say!("*: the generator bounded the rate; the in-situ ns are the program's own cost");
        }
    }
    if let Some(path) = &a.plot {
        nfcc_driver::error::write(path, nfcc_driver::bench::sweep_plot(&sw))?;
    }
    Ok(OK)
}

fn render(policy: &str, mix: &[Vec<u8>], report: &bench::Report, a: &BenchArgs) {
    if a.json {
        let v = nfcc_driver::bench::report_json(policy, mix.len(), a.seconds, a.runs, report);
        say!("{v}");
        return;
    }
    let (lo, hi) = mix.iter().fold((usize::MAX, 0), |(lo, hi), f| {
        (lo.min(f.len()), hi.max(f.len()))
    });
    say!(
        "{policy}: {} frame(s) of {lo}-{hi} bytes cycled, {} run(s) of {} s each per subject",
        mix.len(),
        a.runs,
        a.seconds
    );
    if let Some(g) = &report.generator {
        say!("{g}");
    }
    if let Err(why) = &report.run_stats {
        say!("in-situ ns not measured: {why}");
    }
    say!(
        "{:<40} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}  nfcc/this",
        "subject",
        "Mpps",
        "offered",
        "bound",
        "Mpps/core",
        "in-situ",
        "rx CPU",
        "test_run"
    );
    let f = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let lines = nfcc_driver::bench::lines(report);
    for r in &report.rows {
        match r {
            Row::Measured(m) => {
                let ratio = lines.iter().find(|l| std::ptr::eq(l.m, m));
                let ratio = ratio.and_then(|l| l.ours_over_this);
                say!(
                    "{:<40} {:>7.2} {:>8.2} {:>9} {:>9} {:>8} {:>8} {:>8}  {}",
                    m.label,
                    m.median_mpps,
                    m.offered_mpps,
                    if m.generator.shares_the_receivers_core() {
                        "shared"
                    } else if m.generator_bound {
                        "generator"
                    } else {
                        "receiver"
                    },
                    f(m.mpps_per_core, 2),
                    f(m.in_situ_ns, 0),
                    f(m.rx_cpu_ns, 0),
                    f(m.test_run_ns, 0),
                    ratio.map_or("-".into(), |(x, b)| format!("{x:.2}x ({})", b.name()))
                )
            }
            Row::Skipped { label, why } => say!("{label:<40} skipped: {why}"),
        }
    }
    if report
        .rows
        .iter()
        .any(|r| matches!(r, Row::Measured(m) if m.generator_bound))
    {
        say!("bound \"generator\": the generator could not saturate the receiver, so Mpps is the generator's; compare by in-situ ns (kernel run statistics) or receive CPU ns");
    }
}
