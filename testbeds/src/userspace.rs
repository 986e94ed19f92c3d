//! Delivery to userspace, measured: frames per second that reach a userspace reader through an
//! AF_XDP socket (an XDP program redirects every frame to it: `default redirect xsk`) and
//! through an AF_PACKET socket (an XDP program passes every frame to the stack, whose packet
//! tap hands it to the socket, one `recvmsg` per frame), on one testbed in one run, each with
//! the same offered load from the process's traffic generator.

use crate::topology::{Layout, Testbed};
use crate::TestbedError;
use nfcc_runtime::capture::Capture;
use nfcc_runtime::deploy::{self, AttachMode};
use nfcc_runtime::xsk::XskSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One path's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// `af_xdp` or `af_packet`.
    pub path: &'static str,
    /// Frames the generator sent, per second (millions).
    pub offered_mpps: f64,
    /// Frames the reader received, per second of sending (millions).
    pub delivered_mpps: f64,
    /// Frames received.
    pub delivered: u64,
}

/// The policy of each path, compiled by nfcc.
fn object(policy: &str, terminal: &str) -> Result<Vec<u8>, TestbedError> {
    let src = format!("policy {policy} on xdp {{\n  default {terminal}\n}}\n");
    let (p, d) = nfcc_dsl::check_source(&src, &nfcc_dsl::CheckOptions::default());
    let p = p.ok_or_else(|| TestbedError::Setup(format!("{policy}: {d:?}")))?;
    nfcc_compiler::compile::compile(&p, "userspace.nf", &src, None)
        .map(|c| c.object)
        .map_err(|d| TestbedError::Setup(format!("{policy}: {d:?}")))
}

/// Sends `frame` for `seconds` while `count` (run on this thread, where the receiving end
/// is) counts what the reader gets until told to stop.
fn drive(
    tb: &Testbed,
    frame: &[u8],
    seconds: f64,
    count: impl FnOnce(&AtomicBool) -> Result<u64, TestbedError> + Send,
) -> Result<(nfcc_runtime::traffic::Sent, u64), TestbedError> {
    let stop_reader = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| count(&stop_reader));
        // Let the reader start waiting before the first frame.
        std::thread::sleep(Duration::from_millis(50));
        // Large chunks: each is one live-frame test run, whose setup is costly.
        let sent = tb.blast(
            &[frame.to_vec()],
            1 << 16,
            None,
            Some(Duration::from_secs_f64(seconds)),
            &never,
        );
        // Frames in flight still count; then the reader stops.
        std::thread::sleep(Duration::from_millis(100));
        stop_reader.store(true, Ordering::Relaxed);
        let got = reader
            .join()
            .map_err(|_| TestbedError::Setup("the reader panicked".into()))??;
        Ok((sent?, got))
    })
}

/// Measures both paths for `seconds` each with `frame` (a UDP frame to the receiving end).
pub fn measure(frame: &[u8], seconds: f64) -> Result<Vec<Delivery>, TestbedError> {
    let tb = Testbed::with_layout(Layout::RxInHost)?;
    let mut out = Vec::new();
    // AF_XDP: every frame redirected to the socket on queue 0.
    {
        let obj = object("to_xsk", "redirect xsk")?;
        let loaded = nfcc_runtime::load(&obj, "to_xsk", nfcc_runtime::ProgType::Xdp)?;
        let attached = deploy::attach(loaded, &tb.rx, AttachMode::Native)?;
        let mut sock = XskSocket::bind(&tb.rx, 0)?;
        let fd = sock.fd().as_raw_fd() as u32;
        let map = nfcc_compiler::compile::xsk_map_name("to_xsk");
        attached
            .loaded()
            .map_update(&map, &0u32.to_le_bytes(), &fd.to_le_bytes())?;
        let (sent, got) = drive(&tb, frame, seconds, move |stop| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += u64::from(sock.recv(Duration::from_millis(10), 4096, &mut |_| {})?);
            }
            Ok(n)
        })?;
        out.push(result("af_xdp", &sent, got));
    }
    // AF_PACKET: every frame passed to the stack, read from the packet tap.
    {
        let obj = object("to_stack", "pass")?;
        let loaded = nfcc_runtime::load(&obj, "to_stack", nfcc_runtime::ProgType::Xdp)?;
        let _attached = deploy::attach(loaded, &tb.rx, AttachMode::Native)?;
        let cap = Capture::open(&tb.rx)?;
        let (sent, got) = drive(&tb, frame, seconds, move |stop| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if cap.next(Duration::from_millis(10))?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })?;
        out.push(result("af_packet", &sent, got));
    }
    Ok(out)
}

fn result(path: &'static str, sent: &nfcc_runtime::traffic::Sent, got: u64) -> Delivery {
    let secs = sent.elapsed.as_secs_f64().max(1e-9);
    Delivery {
        path,
        offered_mpps: sent.frames as f64 / secs / 1e6,
        delivered_mpps: got as f64 / secs / 1e6,
        delivered: got,
    }
}
