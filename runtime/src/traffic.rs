//! The traffic generator: `BPF_PROG_TEST_RUN` in live-frame mode (`BPF_F_TEST_XDP_LIVE_FRAMES`)
//! running a two-instruction XDP program of ours that redirects every frame out of one
//! interface. The kernel copies the frame into page-pool pages and transmits them in batches
//! from the calling thread, so no pktgen module and no raw socket are needed, and on a veth
//! the receiving side's XDP program runs on the same CPU in the same softirq pass — one core
//! shared by generator and receiver, which is what `nfcc bench` measures.
//!
//! Live frames reuse their buffers, so per-packet variety comes from cycling: [`Generator::blast`]
//! sends a batch of each frame of a mix in turn.

use crate::{sys, RuntimeError};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The largest frame the kernel's live-frame mode accepts comfortably (a page minus the
/// headroom and the shared info the kernel keeps behind the frame).
pub const MAX_FRAME: usize = 3500;

/// Frames per kernel batch (the kernel's maximum is 256; 64 is the NAPI budget).
const BATCH: u32 = 64;

/// A field the generator varies per packet: the big-endian u32 at `offset` becomes
/// `base + random % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variation {
    /// Byte offset in the frame (26 is the IPv4 source of an untagged frame).
    pub offset: u16,
    /// The first value.
    pub base: u32,
    /// How many consecutive values (1 to 2^31).
    pub count: u32,
}

/// A loaded generator program bound to one transmitting interface.
#[derive(Debug)]
pub struct Generator {
    prog: OwnedFd,
    ifindex: u32,
}

/// What a [`Generator::blast`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    /// Frames handed to the kernel (some may have been dropped by a full ring on the way).
    pub frames: u64,
    /// Wall-clock time spent sending.
    pub elapsed: Duration,
}

impl Generator {
    /// Loads the generator for interface `ifindex` (in the calling thread's network
    /// namespace): frames "arrive" on it and are redirected out of it, to its veth peer.
    pub fn new(ifindex: u32) -> Result<Generator, RuntimeError> {
        Generator::with_variation(ifindex, None)
    }

    /// [`Generator::new`], with one 32-bit big-endian field of every frame rewritten to a
    /// random value of `vary` before it is sent — a flow mix from one frame, since live frames
    /// reuse their buffers. Checksums are not fixed (XDP policies do not check them).
    pub fn with_variation(
        ifindex: u32,
        vary: Option<Variation>,
    ) -> Result<Generator, RuntimeError> {
        let v = vary.map(|v| sys::Vary {
            offset: v.offset,
            base: v.base,
            count: v.count,
        });
        let prog = sys::load_redirect_xdp(ifindex, v).map_err(|source| RuntimeError::Traffic {
            what: "cannot load the redirecting xdp program".into(),
            source,
        })?;
        Ok(Generator { prog, ifindex })
    }

    /// Sends `count` copies of `frame` (at least 14 and at most [`MAX_FRAME`] bytes).
    pub fn send(&self, frame: &[u8], count: u32) -> Result<(), RuntimeError> {
        if frame.len() < 14 || frame.len() > MAX_FRAME {
            return Err(RuntimeError::Traffic {
                what: format!(
                    "a frame of {} bytes cannot be sent (14 to {MAX_FRAME} bytes)",
                    frame.len()
                ),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        if count == 0 {
            return Ok(());
        }
        // The kernel stops a live-frame run with EINTR when a signal is pending for the thread
        // (the test harness's and the bench's other threads get them); the run is tried again,
        // which may send part of the interrupted batch twice — a traffic source may.
        let mut tries = 0;
        loop {
            match sys::prog_test_run_live(self.prog.as_fd(), frame, count, self.ifindex, BATCH) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && tries < 3 => tries += 1,
                r => {
                    return r.map(drop).map_err(|source| RuntimeError::Traffic {
                        what: format!("live-frame test run into ifindex {}", self.ifindex),
                        source,
                    })
                }
            }
        }
    }

    /// Sends the frames of `mix` in turn, `chunk` copies of each at a time, until `total`
    /// frames are sent, `deadline` has passed or `stop` is set (checked between chunks).
    pub fn blast(
        &self,
        mix: &[Vec<u8>],
        chunk: u32,
        total: Option<u64>,
        deadline: Option<Duration>,
        stop: &AtomicBool,
    ) -> Result<Sent, RuntimeError> {
        let start = Instant::now();
        let mut frames = 0u64;
        if mix.is_empty() {
            return Ok(Sent {
                frames,
                elapsed: start.elapsed(),
            });
        }
        'outer: loop {
            for f in mix {
                let n = match total {
                    Some(t) if t <= frames => break 'outer,
                    Some(t) => u64::from(chunk).min(t - frames) as u32,
                    None => chunk,
                };
                self.send(f, n)?;
                frames += u64::from(n);
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| start.elapsed() >= d) {
                    break 'outer;
                }
            }
        }
        Ok(Sent {
            frames,
            elapsed: start.elapsed(),
        })
    }
}

/// Runs `f` on a thread joined to the network namespace `name` (a file under `/run/netns`,
/// as `ip netns add` makes) and returns its result. Interface names and indexes inside `f`
/// are those of that namespace; links and programs it creates stay where they were attached.
pub fn in_netns<T: Send>(
    name: &str,
    f: impl FnOnce() -> Result<T, RuntimeError> + Send,
) -> Result<T, RuntimeError> {
    let path = std::path::Path::new("/run/netns").join(name);
    let file = std::fs::File::open(&path).map_err(|source| RuntimeError::Netns {
        name: name.to_string(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::setns_net(file.as_fd()).map_err(|source| RuntimeError::Netns {
                name: name.to_string(),
                source,
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(RuntimeError::Deploy(format!(
                "a task in network namespace `{name}` panicked"
            )))
        })
    })
}
