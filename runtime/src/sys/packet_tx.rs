//! The AF_PACKET transmitter of the traffic generator: a raw packet socket bound to one
//! interface with `PACKET_QDISC_BYPASS` (frames go straight to the driver, as pktgen's do),
//! sending batches with one `sendmmsg` each.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Opens a packet socket that sends on interface `ifindex` (of the calling thread's
/// namespace), bypassing the qdisc layer, and receives nothing.
pub(crate) fn open(ifindex: u32) -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives no frames, so none queue up on it unread.
    let fd = super::packet_bound(ifindex, 0, 0)?;
    super::packet_option_on(fd.as_fd(), libc::PACKET_QDISC_BYPASS)?;
    Ok(fd)
}

/// Sends `frames` in one `sendmmsg` on a socket from [`open`]; how many the driver took (the
/// first refused one and those after it were not sent). `Ok(0)` when the device pushed back
/// (`ENOBUFS`, `EAGAIN`): nothing was sent, try again.
pub(crate) fn send_batch(fd: BorrowedFd<'_>, frames: &[&[u8]]) -> io::Result<usize> {
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr().cast_mut().cast::<libc::c_void>(),
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: msghdr is plain integers and pointers; all-zero is a valid value.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = v;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: sendmmsg reads `msgs.len()` live headers, each naming one live iovec over a
    // live frame (the kernel only reads them), for the duration of the call.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) => Ok(0),
        _ => Err(e),
    }
}
