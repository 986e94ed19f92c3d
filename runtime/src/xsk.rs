//! AF_XDP sockets: the userspace end of `redirect xsk`. An [`XskSocket`] is bound to one
//! receive queue of one interface and receives the frames an XDP program redirects to it
//! through an XSKMAP (the program's, or libxdp's default program's), at the speed AF_XDP was
//! made for — frames land in memory shared with the kernel, no socket buffer, no copy into
//! the stack.
//!
//! Hand-written on the raw socket interface (in `sys::xsk`) rather than through libxdp or an
//! AF_XDP crate: receiving needs one UMEM, two rings and a bind, and the maintained Rust
//! crates wrap libxdp's C (a second libbpf beside the one libbpf-rs builds) for much more
//! than that. Only receiving is built; the socket binds in copy mode by default, which every
//! driver (veth included) supports.

use crate::{sys, RuntimeError};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// A bound AF_XDP socket (receive only).
pub struct XskSocket {
    xsk: sys::xsk::Xsk,
    queue: u32,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.xsk.fd().as_raw_fd())
            .field("queue", &self.queue)
            .finish()
    }
}

/// Puts an unbound socket (UMEM and rings, no interface: the kernel's XSKMAP takes it) in
/// entries `0..queues` of `map`, an XSKMAP of `loaded`: how a test run (`BPF_PROG_TEST_RUN`,
/// which delivers nowhere) sees `redirect xsk` taken, as it would be with sockets bound on
/// every queue. Nothing is bound, so any number of these coexist. The socket must live as
/// long as the entries are used.
pub fn bind_for_test_run(
    loaded: &crate::Loaded,
    map: &str,
    queues: u32,
) -> Result<XskSocket, RuntimeError> {
    let xsk = sys::xsk::open(None, 0, 64, FRAME_SIZE, 64, true).map_err(|source| {
        RuntimeError::Traffic {
            what: "cannot create an AF_XDP socket".into(),
            source,
        }
    })?;
    let s = XskSocket { xsk, queue: 0 };
    let fd = s.fd().as_raw_fd() as u32;
    for q in 0..queues {
        loaded.map_update(map, &q.to_le_bytes(), &fd.to_le_bytes())?;
    }
    Ok(s)
}

/// Frames of the UMEM, their size and the rings' entries.
const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const RING: u32 = 2048;

impl XskSocket {
    /// Binds a socket to queue `queue` of interface `iface` of the calling thread's network
    /// namespace, in copy mode. Frames reach it once its descriptor is in the XSKMAP entry of
    /// that queue ([`XskSocket::fd`]).
    pub fn bind(iface: &str, queue: u32) -> Result<XskSocket, RuntimeError> {
        let ifindex = crate::ifindex(iface)?;
        let xsk = sys::xsk::open(Some(ifindex), queue, FRAMES, FRAME_SIZE, RING, true).map_err(
            |source| RuntimeError::Traffic {
                what: format!("cannot bind an AF_XDP socket to {iface} queue {queue}"),
                source,
            },
        )?;
        Ok(XskSocket { xsk, queue })
    }

    /// The socket's descriptor: the value of its queue's XSKMAP entry.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.xsk.fd()
    }

    /// The queue it is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Hands each frame that arrives within `timeout` (at most `max`, those already waiting
    /// first) to `on`; how many came. Frames are borrowed from the shared memory, valid only
    /// during the call.
    pub fn recv(
        &mut self,
        timeout: Duration,
        max: u32,
        on: &mut dyn FnMut(&[u8]),
    ) -> Result<u32, RuntimeError> {
        self.xsk
            .recv(timeout.as_millis().min(60_000) as i32, max, on)
            .map_err(|source| RuntimeError::Traffic {
                what: "cannot receive on an AF_XDP socket".into(),
                source,
            })
    }
}
