//! `nfcc bench`: what a measurement needs before the testbed runs it — the attach mode the
//! policy's hook allows, the traffic mix (a capture's frames or the policy's test packets,
//! padded as a NIC would send them) and the compiled subject; the run itself is
//! `nfcc_testbeds::bench`, the rendering the CLI's.

use crate::deploy::Mode;
use crate::error::{read_bytes, DriverError};
use crate::source::Chosen;
use nfcc_bpf::manifest::AttachMode;
use nfcc_dsl::checked::{Hook, Policy, Step};
use nfcc_testbeds::bench::{Baseline, Options, Subject};
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
