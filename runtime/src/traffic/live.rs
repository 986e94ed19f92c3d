//! The live-frame generator: `BPF_PROG_TEST_RUN` in live-frame mode (`BPF_F_TEST_XDP_LIVE_FRAMES`)
//! running a two-instruction XDP program of ours that redirects every frame out of one
//! interface. The kernel copies the frame into page-pool pages and transmits them in batches
//! from the calling thread, so no pktgen module and no raw socket are needed, and on a veth
//! the receiving side's XDP program runs on the same CPU in the same softirq pass — one core
//! shared by generator and receiver.
//!
//! Live frames reuse their buffers, so per-packet variety comes from cycling a mix, and a
//! [`super::Variation`] is applied by the redirecting program itself (`bpf_get_prandom_u32`).

use super::{done, refusal, Kind, Refusal, Variation};
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Frames per kernel batch (the kernel's maximum is 256; 64 is the NAPI budget).
const BATCH: u32 = 64;

/// A loaded redirecting program bound to one transmitting interface.
pub(super) struct Live {
    prog: OwnedFd,
    ifindex: u32,
}

impl Live {
    /// Loads the generator for `ifindex`, after asking the kernel whether it runs live frames
    /// at all: one live run of an XDP program that drops its frame (nothing is sent).
    pub(super) fn open(ifindex: u32, vary: Option<Variation>) -> Result<Live, Refusal> {
        let probe = sys::load_trivial_xdp(1)
            .map_err(|e| refusal(Kind::Live, "loading an xdp program", &e))?;
        let frame = [0u8; 60];
        sys::prog_test_run_live(probe.as_fd(), &frame, 1, ifindex, 1).map_err(|e| {
            refusal(
                Kind::Live,
                "BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES",
                &e,
            )
        })?;
        let v = vary.map(|v| sys::Vary {
            offset: v.offset,
            base: v.base,
            count: v.count,
        });
        let prog = sys::load_redirect_xdp(ifindex, v)
            .map_err(|e| refusal(Kind::Live, "loading the redirecting xdp program", &e))?;
        Ok(Live { prog, ifindex })
    }

    /// Sends `count` copies of `frame`.
    pub(super) fn send(&self, frame: &[u8], count: u32) -> std::io::Result<()> {
        // The kernel stops a live-frame run with EINTR when a signal is pending for the thread
        // (the test harness's and the bench's other threads get them); the run is tried again,
        // which may send part of the interrupted batch twice — a traffic source may.
        let mut tries = 0;
        loop {
            match sys::prog_test_run_live(self.prog.as_fd(), frame, count, self.ifindex, BATCH) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && tries < 3 => tries += 1,
                r => return r.map(drop),
            }
        }
    }

    /// Sends `chunk` copies of each frame of `mix` in turn until `total` went out, `until`
    /// passed or `stop` is set (checked between runs); how many were sent.
    pub(super) fn blast(
        &self,
        mix: &[Vec<u8>],
        chunk: u32,
        total: u64,
        until: Option<Instant>,
        stop: &AtomicBool,
    ) -> std::io::Result<u64> {
        let mut frames = 0u64;
        loop {
            for f in mix {
                if frames >= total {
                    return Ok(frames);
                }
                let n = u64::from(chunk.max(1)).min(total - frames) as u32;
                self.send(f, n)?;
                frames += u64::from(n);
                if done(stop, until) {
                    return Ok(frames);
                }
            }
        }
    }
}
