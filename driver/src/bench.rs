//! `nfcc bench`: what a measurement needs before the testbed runs it — the attach mode the
//! policy's hook allows, the traffic mix (a capture's frames or the policy's test packets,
//! padded as a NIC would send them) and the compiled subject; the run itself is
//! `nfcc_testbeds::bench`, the rendering the CLI's.

use crate::deploy::Mode;
use crate::error::{read_bytes, DriverError};
use crate::source::Chosen;
use nfcc_bpf::manifest::AttachMode;
use nfcc_dsl::checked::{Hook, Policy, Step};
use nfcc_runtime::traffic::{Choice, Kind};
use nfcc_testbeds::bench::{compare, Baseline, Measurement, Options, Report, Row, Subject};
use serde_json::{json, Value};
use std::path::Path;

/// Baselines of `nfcc bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BaselineChoice {
    /// XDP drop-all in C.
    Drop,
    /// The equivalent hand-written C programs.
    C,
    /// nftables netdev ingress with the same rules.
    Nft,
}

/// The baselines to measure: those asked for, or all three.
pub fn baselines(asked: &[BaselineChoice]) -> Vec<Baseline> {
    if asked.is_empty() {
        return vec![Baseline::Drop, Baseline::C, Baseline::Nft];
    }
    asked
        .iter()
        .map(|b| match b {
            BaselineChoice::Drop => Baseline::Drop,
            BaselineChoice::C => Baseline::C,
            BaselineChoice::Nft => Baseline::Nft,
        })
        .collect()
}

/// The measurement options, checked.
pub fn options(mode: Mode, seconds: f64, runs: usize) -> Result<Options, DriverError> {
    let mode = match mode {
        Mode::Native => AttachMode::Native,
        Mode::Generic => AttachMode::Generic,
        Mode::TcIngress => AttachMode::TcIngress,
        Mode::TcEgress | Mode::Offload => {
            return Err(DriverError::Input("`nfcc bench` measures native, generic and tc-ingress attachments (the generator's frames arrive on the receiving side)".into()))
        }
    };
    if !(seconds > 0.0 && seconds <= 600.0) || runs == 0 || runs > 100 {
        return Err(DriverError::Input(
            "--seconds must be in (0, 600] and --runs in 1..=100".into(),
        ));
    }
    Ok(Options {
        seconds,
        runs,
        mode,
        vary: None,
    })
}

/// The policy measured: chosen, checked against the mode, compiled.
pub fn subject(chosen: &Chosen, mode: AttachMode) -> Result<Subject, DriverError> {
    let policy = &chosen.policy;
    let fits = match policy.hook {
        Hook::Xdp => mode != AttachMode::TcIngress,
        Hook::TcIngress => mode == AttachMode::TcIngress,
        Hook::TcEgress => false,
    };
    if !fits {
        return Err(DriverError::Input(format!(
            "policy `{}` is on {}; bench xdp policies with --mode native or generic, tc ingress policies with --mode tc-ingress",
            policy.name,
            policy.hook.as_str()
        )));
    }
    let compiled = chosen.compile(None)?;
    Ok(Subject::policy(
        format!("{} (nfcc)", policy.name),
        &compiled.object,
        &compiled.programs[0],
    ))
}

/// The traffic mix: the capture's frames, or the frames of the policy's test blocks. Frames
/// shorter than Ethernet's minimum are padded to 60 bytes (64 on the wire with the FCS), as
/// a NIC would send them; frames the generator cannot send are left out.
pub fn traffic(pcap: Option<&Path>, policy: &Policy) -> Result<Vec<Vec<u8>>, DriverError> {
    let max = nfcc_runtime::traffic::MAX_FRAME;
    let ok = |f: &Vec<u8>| f.len() >= 14 && f.len() <= max;
    let pad = |mut f: Vec<u8>| {
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    };
    if let Some(p) = pcap {
        let recs = nfcc_emulator::pcap::read(&read_bytes(p)?)
            .map_err(|e| DriverError::Input(format!("{}: {e}", p.display())))?;
        let mix: Vec<Vec<u8>> = recs.into_iter().map(|r| pad(r.data)).filter(ok).collect();
        if mix.is_empty() {
            return Err(DriverError::Input(format!(
                "{} holds no frame of 14 to {max} bytes",
                p.display()
            )));
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
        return Err(DriverError::Input(format!(
            "policy `{}` has no test blocks to take traffic from; give `--pcap TRAFFIC.pcap`",
            policy.name
        )));
    }
    Ok(mix)
}

/// The firewall a policy was imported from (`nfcc bench --original FILE`), as the bench's
/// baselines: an `nft -j list ruleset` document as nftables, an `iptables-save` dump through
/// both iptables backends (nf_tables and legacy, where the machine has it); each loaded into
/// the testbed's namespace with every address made local, so that packets reach INPUT. With
/// them, the traffic drawn from the original's rules as `--verify` draws it (unless a pcap
/// is given).
pub fn originals(
    file: &Path,
) -> Result<(Vec<nfcc_testbeds::bench::Original>, Vec<Vec<u8>>), DriverError> {
    use nfcc_testbeds::bench::Original as O;
    let text = crate::error::read_text(file)?;
    let copy = std::env::temp_dir().join(format!(
        "nfcc-bench-original-{}-{}",
        std::process::id(),
        file.file_name()
            .map_or("x".into(), |n| n.to_string_lossy().into_owned())
    ));
    std::fs::write(&copy, &text).map_err(|source| DriverError::Write {
        path: copy.clone(),
        source,
    })?;
    let f = copy.display();
    let local = "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
                 net.ipv4.conf.all.accept_local=1 net.ipv6.conf.all.disable_ipv6=0 && ip link set lo up \
                 && ip route replace local 0.0.0.0/0 dev lo table local \
                 && ip -6 route replace local ::/0 dev lo table local";
    let unroute = "ip route del local 0.0.0.0/0 dev lo table local; \
                   ip -6 route del local ::/0 dev lo table local; true";
    let nft_doc = text.trim_start().starts_with('{');
    let (original, list) = if nft_doc {
        (
            crate::verify::Original::Nft { json: &text },
            vec![O {
                label: "nftables (the original)".into(),
                load: format!("{local} && nft -j -f {f}"),
                unload: format!("nft flush ruleset; {unroute}"),
            }],
        )
    } else {
        let v6 = nfcc_import::iptables::is_v6(&text);
        let tool = if v6 { "ip6tables" } else { "iptables" };
        let flush = |t: &str| format!("{t} -F; {t} -X; {t} -P INPUT ACCEPT; {unroute}");
        let mut list = vec![O {
            label: format!("{tool} nf_tables (the original)"),
            load: format!("{local} && {tool}-restore < {f}"),
            unload: flush(tool),
        }];
        let legacy = format!("{tool}-legacy");
        let have_legacy = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {legacy}-restore")])
            .output()
            .is_ok_and(|o| o.status.success());
        if have_legacy {
            list.push(O {
                label: format!("{tool} legacy (the original)"),
                load: format!("{local} && {legacy}-restore < {f}"),
                unload: flush(&legacy),
            });
        }
        (
            crate::verify::Original::Iptables {
                dump: &text,
                v6,
                sets: None,
            },
            list,
        )
    };
    let frames = crate::verify::sample_frames(&original, 256)?
        .into_iter()
        .map(|mut f| {
            if f.len() < 60 {
                f.resize(60, 0);
            }
            f
        })
        .collect();
    Ok((list, frames))
}

/// `nfcc bench --userspace`: frames per second delivered to userspace through an AF_XDP socket
/// and through an AF_PACKET socket on one testbed, `runs` times each (`nfcc_testbeds::
/// userspace`); per path the run with the median delivered rate.
pub fn userspace(
    seconds: f64,
    runs: usize,
) -> Result<Vec<nfcc_testbeds::userspace::Delivery>, DriverError> {
    let frame = nfcc_dsl::testing::frame_from_literal(
        "ipv4(src=198.18.0.1, dst=198.18.0.2) / udp(sport=1024, dport=9) / raw(\"0123456789abcdef\")",
    )
    .map_err(DriverError::Input)?;
    let mut per_path: Vec<Vec<nfcc_testbeds::userspace::Delivery>> = Vec::new();
    for _ in 0..runs.max(1) {
        let got = nfcc_testbeds::userspace::measure(&frame, seconds)
            .map_err(|e| DriverError::Environment(e.to_string()))?;
        for (i, d) in got.into_iter().enumerate() {
            if per_path.len() <= i {
                per_path.push(Vec::new());
            }
            per_path[i].push(d);
        }
    }
    Ok(per_path
        .into_iter()
        .filter_map(|mut v| {
            v.sort_by(|a, b| a.delivered_mpps.total_cmp(&b.delivered_mpps));
            let mid = v.len() / 2;
            v.into_iter().nth(mid)
        })
        .collect())
}

/// Traffic generators (`--generator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GeneratorChoice {
    /// Probe live frames, then AF_XDP, then AF_PACKET; use the first that works.
    #[default]
    Auto,
    /// `BPF_PROG_TEST_RUN` live frames.
    Live,
    /// AF_XDP transmit (copy mode).
    Xsk,
    /// AF_PACKET with `PACKET_QDISC_BYPASS` and `sendmmsg`.
    Packet,
}

/// Makes `choice` the generator of every traffic this process sends (benches, the testbed
/// engine), unless it is `auto` and `NFCC_GENERATOR` names one.
pub fn use_generator(choice: GeneratorChoice) {
    let c = match choice {
        GeneratorChoice::Auto => {
            if std::env::var_os("NFCC_GENERATOR").is_some() {
                return;
            }
            Choice::Auto
        }
        GeneratorChoice::Live => Choice::Only(Kind::Live),
        GeneratorChoice::Xsk => Choice::Only(Kind::Xsk),
        GeneratorChoice::Packet => Choice::Only(Kind::Packet),
    };
    nfcc_runtime::traffic::set_choice(c);
}

/// One subject of a bench report, with its ratio to ours.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// What was measured.
    pub m: &'a Measurement,
    /// How many times faster ours is, and the figure it was taken from.
    pub ours_over_this: Option<(f64, nfcc_testbeds::bench::Basis)>,
}

/// The measured rows of `report`, each compared with ours (the first).
pub fn lines(report: &Report) -> Vec<Line<'_>> {
    let measured: Vec<&Measurement> = report
        .rows
        .iter()
        .filter_map(|r| match r {
            Row::Measured(m) => Some(m),
            Row::Skipped { .. } => None,
        })
        .collect();
    let ours = measured.first().copied();
    measured
        .into_iter()
        .map(|m| Line {
            m,
            ours_over_this: ours.and_then(|o| compare(o, m)),
        })
        .collect()
}

/// The generator of a report as JSON: its name, what it is, and why the faster ones were not
/// used.
pub fn generator_json(report: &Report) -> Value {
    match &report.generator {
        None => Value::Null,
        Some(s) => json!({
            "name": s.kind.name(),
            "what": s.kind.describe(),
            "refused": s.refused.iter().map(|r| json!({
                "name": r.kind.name(),
                "what": r.what,
                "errno": r.errno.and_then(nfcc_runtime::traffic::errno_name),
                "error": r.error,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// `nfcc bench --json`: the run's generator and method, and per subject the delivered and
/// offered rates, whether the generator was the bottleneck, the per-core Mpps or the
/// in-situ ns (with key names that say which), the receive CPU and test-run ns, and the
/// ratio to ours with its basis.
pub fn report_json(
    policy: &str,
    frames: usize,
    seconds: f64,
    runs: usize,
    report: &Report,
) -> Value {
    let by_label: std::collections::HashMap<&str, Line<'_>> = lines(report)
        .into_iter()
        .map(|l| (l.m.label.as_str(), l))
        .collect();
    let results: Vec<Value> = report
        .rows
        .iter()
        .map(|r| match r {
            Row::Measured(m) => {
                let ratio = by_label
                    .get(m.label.as_str())
                    .and_then(|l| l.ours_over_this);
                json!({
                    "label": m.label,
                    "mpps": m.median_mpps,
                    "runs": m.mpps,
                    "offered_mpps": m.offered_mpps,
                    "delivered_mpps": m.median_mpps,
                    "generator_bound": m.generator_bound,
                    "mpps_per_core": m.mpps_per_core,
                    "in_situ_ns": m.in_situ_ns,
                    "rx_cpu_ns": m.rx_cpu_ns,
                    "rx_busy": m.rx_busy,
                    "test_run_ns": m.test_run_ns,
                    "ours_over_this": ratio.map(|r| r.0),
                    "ratio_basis": ratio.map(|r| r.1.name()),
                })
            }
            Row::Skipped { label, why } => json!({"label": label, "skipped": why}),
        })
        .collect();
    json!({
        "policy": policy,
        "frames_in_mix": frames,
        "seconds": seconds,
        "runs": runs,
        "generator": generator_json(report),
        "methods": {
            "in_situ_ns": match &report.run_stats {
                Ok(how) => format!("kernel run statistics (run_time_ns / run_cnt), switched on by {how}; they add a few ns to every BPF subject alike"),
                Err(why) => format!("not measured: {why}"),
            },
            "rx_cpu_ns": "CPU time of the receiving veth's threaded NAPI (schedstat) per delivered packet, userspace generators only",
            "mpps_per_core": "live frames: the delivered rate of the core sender and receiver share; userspace generators: 1000 / rx_cpu_ns where the receive thread was busy at least 90% of the time",
            "ratios": "in-situ ns where both subjects have them (BPF programs), else per-core Mpps where both saturated their core, else receive CPU ns, else test-run ns",
        },
        "results": results,
    })
}

/// `nfcc bench --plot`: a bar per subject — Mpps with live frames, else the programs' in-situ
/// ns (receive CPU ns for peers without BPF statistics).
pub fn plot(policy: &str, report: &Report) -> String {
    let lines = lines(report);
    // With a userspace generator the receive path's own overhead flattens Mpps (see
    // `nfcc_testbeds::bench::compare`): the chart shows ns per packet then.
    let in_situ = lines
        .iter()
        .any(|l| !l.m.generator.shares_the_receivers_core());
    let bars: Vec<(String, f64)> = lines
        .iter()
        .map(|l| match (in_situ, l.m.in_situ_ns.or(l.m.rx_cpu_ns)) {
            (true, Some(ns)) => (l.m.label.clone(), ns),
            _ => (l.m.label.clone(), l.m.median_mpps),
        })
        .collect();
    let g = report.generator.as_ref().map_or("?", |s| s.kind.name());
    let title = if in_situ {
        format!("{policy}: ns per packet (in-situ; receive CPU for peers), generator {g}")
    } else {
        format!("{policy}: Mpps on a veth testbed, generator {g}")
    };
    nfcc_testbeds::plot::bars(&title, if in_situ { "ns" } else { "Mpps" }, &bars)
}

/// What `nfcc bench --sweep` measured: named series of points, and a note when the ACL
/// series could not be measured.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// (what, points), in report order.
    pub series: Vec<(&'static str, Vec<nfcc_testbeds::sweep::Point>)>,
    /// Why a series is missing.
    pub note: Option<String>,
}

/// `nfcc bench --sweep`: a blocklist from 10 to 1,000,000 entries (random and 8 hot
/// sources), and the first 1 to 10,000 rules of `filters` as classifier trees and as code.
pub fn sweep(
    filters: &Path,
    opts: Options,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<Sweep, DriverError> {
    use nfcc_compiler::classify::Choice as C;
    use nfcc_testbeds::sweep as sw;
    let env = |e: nfcc_testbeds::TestbedError| DriverError::Environment(e.to_string());
    let sizes = [10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let mut series = vec![
        (
            "blocklist entries, random src",
            sw::blocklist(&sizes, false, opts, progress).map_err(env)?,
        ),
        (
            "blocklist entries, 8 hot src",
            sw::blocklist(&sizes, true, opts, progress).map_err(env)?,
        ),
    ];
    let counts = [1, 10, 100, 1_000, 10_000];
    let note = match std::fs::read_to_string(filters) {
        Ok(text) => {
            series.push((
                "ClassBench ACL rules",
                sw::acl(&text, &counts, C::Auto, opts, progress).map_err(env)?,
            ));
            series.push((
                "ClassBench ACL rules, as code",
                sw::acl(&text, &counts, C::Linear, opts, progress).map_err(env)?,
            ));
            None
        }
        Err(e) => Some(format!(
            "ACL sweep skipped: cannot read {} ({e}); give --filters FILE",
            filters.display()
        )),
    };
    Ok(Sweep { series, note })
}

fn bound(ps: &[nfcc_testbeds::sweep::Point]) -> bool {
    ps.iter().any(|p| p.generator_bound)
}

/// The sweep as JSON: per series its points (size, Mpps, in-situ ns, test-run ns, whether
/// the generator bounded the rate).
pub fn sweep_json(sw: &Sweep) -> Value {
    let key = |what: &str| match what {
        "blocklist entries, random src" => "blocklist_entries",
        "blocklist entries, 8 hot src" => "blocklist_entries_hot",
        "ClassBench ACL rules" => "acl_rules",
        _ => "acl_rules_as_code",
    };
    let mut v = serde_json::Map::new();
    for (what, ps) in &sw.series {
        let points: Vec<Value> = ps
            .iter()
            .map(|p| {
                json!({"size": p.size, "mpps": p.mpps, "in_situ_ns": p.in_situ_ns,
                            "test_run_ns": p.test_run_ns, "generator_bound": p.generator_bound})
            })
            .collect();
        v.insert(key(what).to_string(), Value::Array(points));
    }
    v.insert(
        "generator".into(),
        nfcc_runtime::traffic::selected().map_or(Value::Null, |s| json!(s.kind.name())),
    );
    Value::Object(v)
}

/// The sweep's chart: Mpps by size, or where the generator bounded the rate, in-situ ns.
pub fn sweep_plot(sw: &Sweep) -> String {
    let in_situ = sw.series.iter().any(|(_, ps)| bound(ps));
    let series: Vec<(String, Vec<(f64, f64)>)> = sw
        .series
        .iter()
        .map(|(what, ps)| {
            let y = |p: &nfcc_testbeds::sweep::Point| {
                if in_situ {
                    p.in_situ_ns.unwrap_or(0.0)
                } else {
                    p.mpps
                }
            };
            (
                what.to_string(),
                ps.iter().map(|p| (p.size as f64, y(p))).collect(),
            )
        })
        .collect();
    let title = if in_situ {
        "in-situ ns per packet by size (log scale)"
    } else {
        "Mpps by size (log scale)"
    };
    nfcc_testbeds::plot::lines(title, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_comes_from_test_blocks_padded_and_deduplicated() {
        let src = "policy p on xdp {\n  default pass\n  test \"a\" {\n    send 3 x ipv4() / udp()\n    expect 3 x pass\n  }\n  test \"b\" {\n    send ipv4() / udp()\n    expect pass\n  }\n}\n";
        let c =
            Chosen::from_source("p.nf".into(), src.into(), None).unwrap_or_else(|e| panic!("{e}"));
        let mix = traffic(None, &c.policy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mix.len(), 1);
        assert_eq!(mix[0].len(), 60);
        assert!(options(Mode::TcEgress, 1.0, 1).is_err());
        assert!(options(Mode::Native, 0.0, 1).is_err());
        assert!(subject(&c, AttachMode::TcIngress).is_err_and(|e| e.exit_code() == 1));
    }
}
