//! The AF_PACKET generator: a raw packet socket on the transmitting interface with
//! `PACKET_QDISC_BYPASS`, one `sendmmsg` per batch of frames (copies of the mix, each with
//! the [`Variation`] applied). Every kernel with packet sockets has it; each frame costs a
//! system call's share and an skb, so it is the slowest of the three.
//!
//! Exact counts: `sendmmsg` says how many frames the device took; when it pushes back
//! (`ENOBUFS`), nothing of the batch went and the rest is tried again.

use super::{done, refusal, Kind, Refusal, Variation};
use crate::sys::packet_tx;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Frames per `sendmmsg`.
const BATCH: usize = 64;
/// How long a sender waits for the device to take frames before it gives up.
const STALL: Duration = Duration::from_secs(5);

pub(super) struct PacketSender {
    fd: OwnedFd,
    vary: Option<Variation>,
}

impl PacketSender {
    pub(super) fn open(ifindex: u32, vary: Option<Variation>) -> Result<PacketSender, Refusal> {
        let fd = packet_tx::open(ifindex).map_err(|e| {
            refusal(
                Kind::Packet,
                "opening a packet socket with PACKET_QDISC_BYPASS",
                &e,
            )
        })?;
        Ok(PacketSender { fd, vary })
    }

    /// Sends the frames of `mix` in turn until `total` went out, `until` passed or `stop` is
    /// set; how many the device took.
    pub(super) fn send(
        &mut self,
        mix: &[Vec<u8>],
        total: u64,
        until: Option<Instant>,
        stop: &AtomicBool,
    ) -> std::io::Result<u64> {
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        let (mut sent, mut next) = (0u64, 0usize);
        let mut stalled_since: Option<Instant> = None;
        while sent < total && !done(stop, until) {
            // The batch is refilled only once it went out whole: frames the device refused
            // are sent again as they were.
            if batch.is_empty() {
                let n = (total - sent).min(BATCH as u64) as usize;
                for _ in 0..n {
                    let mut f = mix[next % mix.len()].clone();
                    next = next.wrapping_add(1);
                    if let Some(v) = self.vary {
                        v.apply(&mut f);
                    }
                    batch.push(f);
                }
            }
            let frames: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let n = packet_tx::send_batch(self.fd.as_fd(), &frames)?;
            if n == 0 {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > STALL {
                    return Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                std::thread::yield_now();
                continue;
            }
            stalled_since = None;
            batch.drain(..n);
            sent += n as u64;
        }
        Ok(sent)
    }
}
