//! `nfcc bench`: renders Mpps measured on a veth testbed next to baselines measured in the
//! same run (the driver prepares the subject and traffic; `nfcc_testbeds::bench` measures).

use crate::args::BenchArgs;
use nfcc_driver::compiler::classify::Choice;
use nfcc_driver::exit::OK;
use nfcc_driver::testbeds::bench::{self, Options, Row};
use nfcc_driver::testbeds::sweep::Point;
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
    let rows = bench::run_against(
        &ours,
        &c.policy,
        &mix,
        &baselines,
        &originals,
        opts,
        &mut progress(a.json, a.runs),
    )
    .map_err(|e| DriverError::Environment(e.to_string()))?;
    report(&c.policy.name, &mix, &rows, a);
    if let Some(path) = &a.plot {
        let bars: Vec<(String, f64)> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Measured(m) => Some((m.label.clone(), m.median_mpps)),
                Row::Skipped { .. } => None,
            })
            .collect();
        let title = format!("{}: Mpps on a veth testbed", c.policy.name);
        nfcc_driver::error::write(path, nfcc_driver::testbeds::plot::bars(&title, &bars))?;
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
    let env = |e: nfcc_driver::testbeds::TestbedError| DriverError::Environment(e.to_string());
    let mut progress = progress(a.json, a.runs);
    let sizes = [10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let blocklist =
        nfcc_driver::testbeds::sweep::blocklist(&sizes, false, opts, &mut progress).map_err(env)?;
    let hot =
        nfcc_driver::testbeds::sweep::blocklist(&sizes, true, opts, &mut progress).map_err(env)?;
    let counts = [1, 10, 100, 1_000, 10_000];
    let acl = match std::fs::read_to_string(&a.filters) {
        Ok(text) => Some((
            nfcc_driver::testbeds::sweep::acl(&text, &counts, Choice::Auto, opts, &mut progress)
                .map_err(env)?,
            nfcc_driver::testbeds::sweep::acl(&text, &counts, Choice::Linear, opts, &mut progress)
                .map_err(env)?,
        )),
        Err(e) => {
            eprintln!(
                "note: ACL sweep skipped: cannot read {} ({e}); give --filters FILE",
                a.filters.display()
            );
            None
        }
    };
    let points = |ps: &[Point]| {
        ps.iter()
            .map(|p| json!({"size": p.size, "mpps": p.mpps, "test_run_ns": p.test_run_ns}))
            .collect::<Vec<_>>()
    };
    if a.json {
        let v = json!({
            "blocklist_entries": points(&blocklist),
            "blocklist_entries_hot": points(&hot),
            "acl_rules": acl.as_ref().map(|a| points(&a.0)).unwrap_or_default(),
            "acl_rules_as_code": acl.as_ref().map(|a| points(&a.1)).unwrap_or_default(),
        });
        say!("{v}");
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
            .chain(
                acl.iter()
                    .flat_map(|a| &a.0)
                    .map(|p| ("ClassBench ACL rules", p)),
            )
            .chain(
                acl.iter()
                    .flat_map(|a| &a.1)
                    .map(|p| ("ClassBench ACL rules, as code", p)),
            );
        for (what, p) in rows {
            say!(
                "{what:<32} {:>10} {:>8.2} {:>14}",
                p.size,
                p.mpps,
                p.test_run_ns.map_or("-".into(), |n| format!("{n:.0}"))
            );
        }
        for (what, ps) in [("random sources", &blocklist), ("8 hot sources", &hot)] {
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
        let line = |ps: &[Point]| {
            ps.iter()
                .map(|p| (p.size as f64, p.mpps))
                .collect::<Vec<_>>()
        };
        let mut series = vec![
            (
                "blocklist entries, random sources".to_string(),
                line(&blocklist),
            ),
            ("blocklist entries, 8 hot sources".to_string(), line(&hot)),
        ];
        if let Some((tree, code)) = &acl {
            series.push(("ClassBench ACL rules".to_string(), line(tree)));
            series.push(("ClassBench ACL rules, as code".to_string(), line(code)));
        }
        let svg = nfcc_driver::testbeds::plot::lines("Mpps by size (log scale)", &series);
        nfcc_driver::error::write(path, svg)?;
    }
    Ok(OK)
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
        let results: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| match r {
                Row::Measured(m) => json!({
                    "label": m.label,
                    "mpps": m.median_mpps,
                    "runs": m.mpps,
                    "offered_mpps": m.offered_mpps,
                    "test_run_ns": m.test_run_ns,
                    "ours_over_this": ratio(m.median_mpps),
                }),
                Row::Skipped { label, why } => json!({"label": label, "skipped": why}),
            })
            .collect();
        let v = json!({
            "policy": policy,
            "frames_in_mix": mix.len(),
            "seconds": a.seconds,
            "runs": a.runs,
            "results": results,
        });
        say!("{v}");
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
