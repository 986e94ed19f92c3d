//! The AF_XDP generator: a socket bound to the transmitting interface's queue 0 in copy mode
//! (every driver has it, veth included). Frames of the mix are written into free UMEM chunks
//! (with the [`Variation`] applied in userspace), their descriptors published on the TX ring
//! in batches, and one `sendto` per batch wakes the kernel, which builds an skb per frame
//! and hands it to the driver. Chunks come back on the completion ring.
//!
//! Exact counts: the kernel says when the device was busy (the descriptors stay on the ring)
//! and when it dropped a frame (`EBUSY`: completed, not sent), and such a frame is sent again.

use super::{done, refusal, Kind, Refusal, Variation, MAX_FRAME};
use crate::sys::xsk::{open_tx, Kick, XskTx};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// UMEM chunks (each holds one frame of up to [`MAX_FRAME`] bytes) and ring entries.
const FRAMES: u32 = 2048;
const CHUNK: u32 = 4096;
const RING: u32 = 2048;
/// Descriptors published per wakeup.
const BATCH: u32 = 64;
/// How long a sender waits for the kernel to take frames before it gives up.
const STALL: Duration = Duration::from_secs(5);

const _: () = assert!(MAX_FRAME <= CHUNK as usize);

pub(super) struct XskSender {
    tx: XskTx,
    vary: Option<Variation>,
}

impl XskSender {
    pub(super) fn open(ifindex: u32, vary: Option<Variation>) -> Result<XskSender, Refusal> {
        // A socket closed just before releases its queue in deferred work: a bind in that
        // window finds the queue busy, so a busy queue is tried again for a while.
        let start = Instant::now();
        let tx = loop {
            match open_tx(ifindex, 0, FRAMES, CHUNK, RING) {
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < Duration::from_secs(3) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r,
            }
        }
        .map_err(|e| {
            refusal(
                Kind::Xsk,
                "binding an AF_XDP socket for transmit (copy mode, queue 0)",
                &e,
            )
        })?;
        Ok(XskSender { tx, vary })
    }

    /// Sends the frames of `mix` in turn until `total` went out, `until` passed or `stop` is
    /// set; how many the device took. Returns once the kernel has handed every published
    /// frame to the device.
    pub(super) fn send(
        &mut self,
        mix: &[Vec<u8>],
        total: u64,
        until: Option<Instant>,
        stop: &AtomicBool,
    ) -> std::io::Result<u64> {
        let (mut published, mut dropped, mut next) = (0u64, 0u64, 0usize);
        let vary = self.vary;
        let mut stalled_since: Option<Instant> = None;
        loop {
            let reaped = self.tx.reap();
            let wanted = total.saturating_sub(published - dropped);
            let stopping = wanted == 0 || done(stop, until);
            if !stopping {
                let n = self
                    .tx
                    .publish(wanted.min(u64::from(BATCH)) as u32, &mut |chunk| {
                        let f = &mix[next % mix.len()];
                        next = next.wrapping_add(1);
                        chunk[..f.len()].copy_from_slice(f);
                        if let Some(v) = vary {
                            v.apply(&mut chunk[..f.len()]);
                        }
                        f.len()
                    });
                published += u64::from(n);
            }
            if stopping && !self.tx.tx_pending() {
                break;
            }
            let taken = self.tx.tx_taken();
            // With every chunk in flight there is nothing to kick: completions are awaited.
            let kick = if self.tx.tx_pending() {
                self.tx.kick()?
            } else {
                Kick::Again
            };
            if kick == Kick::Dropped {
                dropped += 1;
            }
            if reaped > 0 || self.tx.tx_taken() != taken {
                stalled_since = None;
            } else {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > STALL {
                    return Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                std::thread::yield_now();
            }
        }
        Ok(published - dropped)
    }
}
