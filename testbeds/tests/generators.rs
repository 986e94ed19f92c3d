//! Every traffic generator this kernel allows delivers exactly the frames it reports sent,
//! with the per-packet variation applied; one it refuses says so in one line naming the
//! generator and the errno. Needs root (skips otherwise, or fails under
//! `NFCC_REQUIRE_KERNEL=1`).

use nfcc_runtime::traffic::{Choice, Generator, Kind, Variation};
use nfcc_testbeds::Testbed;
use std::sync::atomic::AtomicBool;

fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if root && nfcc_runtime::can_load_bpf().is_ok() {
        return true;
    }
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the generators test needs root and bpf");
    }
    eprintln!("skipped: generators: needs root and bpf");
    false
}

#[test]
fn each_generator_delivers_every_frame_it_reports_or_says_why_it_cannot() {
    if !privileged() {
        return;
    }
    // Frames from 1.1.1.1 hit the default; the variation moves every source into 10.0/16,
    // which the rule counts, so each frame counted by `varied` proves the variation applied.
    let src =
        "policy gens on xdp {\n  rule varied: ip.src in 10.0.0.0/16 => drop\n  default drop\n}\n";
    let (p, d) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    let p = p.unwrap_or_else(|| panic!("{d:?}"));
    let c =
        nfcc_compiler::compile::compile(&p, "g.nf", src, None).unwrap_or_else(|d| panic!("{d:?}"));
    let mix: Vec<Vec<u8>> = [
        "ipv4(src=1.1.1.1, dst=198.18.0.2) / udp(sport=1, dport=53)",
        "ipv4(src=1.1.1.1, dst=198.18.0.2) / tcp(sport=2, dport=80)",
    ]
    .iter()
    .map(|l| nfcc_dsl::testing::frame_from_literal(l).expect("frame"))
    .collect();
    let vary = Variation {
        offset: 26,
        base: u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)),
        count: 1 << 16,
    };
    let mut worked = Vec::new();
    for kind in Kind::ALL {
        let tb = Testbed::new().expect("testbed");
        let rx = tb.rx.clone();
        let attached = tb
            .on_rx(|| {
                let l = nfcc_runtime::load(&c.object, "gens", nfcc_runtime::ProgType::Xdp)?;
                nfcc_runtime::deploy::attach(l, &rx, nfcc_runtime::deploy::AttachMode::Native)
            })
            .expect("attach");
        let tx = tb.tx.clone();
        let opened = tb.on_tx(move || {
            Generator::open(nfcc_runtime::ifindex(&tx)?, Choice::Only(kind), Some(vary))
        });
        let mut g = match opened {
            Ok(g) => g,
            Err(e) => {
                let line = e.to_string();
                eprintln!("{line}");
                assert!(
                    line.contains(&format!("{kind} refused")) && line.contains('E'),
                    "a refusal names the generator and the errno: {line}"
                );
                // AF_PACKET is on every Linux that runs this suite.
                assert_ne!(kind, Kind::Packet, "the packet generator must work: {line}");
                continue;
            }
        };
        assert_eq!(g.kind(), kind);
        let before = attached.loaded().rule_counts(1).expect("counts");
        let stop = AtomicBool::new(false);
        let total = 20_000;
        let frames = &mix;
        let sent = tb
            .on_tx(move || g.blast(frames, 1 << 10, Some(total), None, &stop))
            .expect("blast");
        assert_eq!(sent.frames, total, "{kind} sent {} of {total}", sent.frames);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let after = attached.loaded().rule_counts(1).expect("counts");
        let varied = after[0] - before[0];
        let default = after[1] - before[1];
        eprintln!(
            "{kind}: sent {total} in {:.3} s, rule `varied` counted {varied}, the default {default}",
            sent.elapsed.as_secs_f64()
        );
        assert_eq!(varied, total, "{kind}: every frame varied and counted once");
        worked.push(kind);
    }
    assert!(worked.contains(&Kind::Packet), "{worked:?}");
}
