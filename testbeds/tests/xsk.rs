//! AF_XDP end to end on a veth testbed: libxdp's default program (`xsk_def_xdp_prog.o`, what
//! every libxdp application loads) attached in native XDP mode to the receiving veth, an
//! [`XskSocket`] bound to its queue 0 and put in the program's XSKMAP; frames sent from the
//! other end must arrive at the socket byte for byte, and none once the socket is taken out
//! of the map (the program passes them to the stack then).
//!
//! The userspace-delivery measurement (`nfcc bench --userspace`) runs briefly too: both paths
//! must deliver frames, never more than were sent (its figures come from `nfcc bench`, not
//! from here).
//!
//! Needs root, CAP_BPF and libxdp's object (package libxdp1); skips otherwise, or fails under
//! `NFCC_REQUIRE_KERNEL=1`.

use nfcc_runtime::capture::Injector;
use nfcc_runtime::deploy::AttachMode;
use nfcc_runtime::xsk::XskSocket;
use nfcc_runtime::{load, ProgType};
use nfcc_testbeds::topology::Layout;
use nfcc_testbeds::Testbed;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn skip(reason: &str) {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the AF_XDP test {reason}");
    }
    eprintln!("skipped: AF_XDP: {reason}");
}

fn libxdp_object() -> Option<Vec<u8>> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.flatten()
        .map(|d| d.path().join("bpf/xsk_def_xdp_prog.o"))
        .find_map(|p| std::fs::read(p).ok())
}

/// Receives on `sock` until `want` frames came or a second passed without any.
fn receive(sock: &mut XskSocket, want: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while got.len() < want && last.elapsed() < Duration::from_secs(1) {
        let n = sock
            .recv(Duration::from_millis(100), 64, &mut |f| {
                got.push(f.to_vec())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        if n > 0 {
            last = Instant::now();
        }
    }
    got
}

#[test]
fn frames_redirected_to_an_af_xdp_socket_arrive_there() {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        return skip(&why);
    }
    let Some(obj) = libxdp_object() else {
        return skip("needs xsk_def_xdp_prog.o (package libxdp1)");
    };
    let tb = Testbed::with_layout(Layout::RxInHost).unwrap_or_else(|e| panic!("{e}"));
    let loaded = load(&obj, "xsk_def_prog", ProgType::Xdp).unwrap_or_else(|e| panic!("{e}"));
    let attached = nfcc_runtime::deploy::attach(loaded, &tb.rx, AttachMode::Native)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sock = XskSocket::bind(&tb.rx, 0).unwrap_or_else(|e| panic!("{e}"));
    let fd = sock.fd().as_raw_fd() as u32;
    attached
        .loaded()
        .map_update("xsks_map", &0u32.to_le_bytes(), &fd.to_le_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let frames: Vec<Vec<u8>> = (0..50u16)
        .map(|i| {
            nfcc_dsl::testing::frame_from_literal(&format!(
                "ipv4(src=198.18.0.1, dst=198.18.0.2) / udp(sport={}, dport=4791)",
                1000 + i
            ))
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let send = |frames: &[Vec<u8>]| {
        let tx = tb.tx.clone();
        let frames = frames.to_vec();
        tb.on_tx(move || {
            let inj = Injector::open(&tx)?;
            frames.iter().try_for_each(|f| inj.send(f))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    };
    send(&frames);
    let got = receive(&mut sock, frames.len());
    assert_eq!(got.len(), frames.len(), "frames that reached the socket");
    // Byte for byte, in order (one queue, one ring).
    assert_eq!(got, frames);
    // Out of the map: the program passes frames to the stack; the socket sees none.
    attached
        .loaded()
        .map_delete("xsks_map", &0u32.to_le_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    send(&frames[..5]);
    assert_eq!(receive(&mut sock, 1).len(), 0);
}

#[test]
fn userspace_delivery_is_measured_on_both_paths() {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        return skip(&why);
    }
    let frame = nfcc_dsl::testing::frame_from_literal(
        "ipv4(src=198.18.0.1, dst=198.18.0.2) / udp(sport=1024, dport=9)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rows = nfcc_testbeds::userspace::measure(&frame, 0.3).unwrap_or_else(|e| panic!("{e}"));
    let paths: Vec<&str> = rows.iter().map(|d| d.path).collect();
    assert_eq!(paths, ["af_xdp", "af_packet"]);
    for d in &rows {
        assert!(d.delivered > 0, "{d:?}");
        assert!(d.delivered_mpps <= d.offered_mpps * 1.001, "{d:?}");
    }
}
