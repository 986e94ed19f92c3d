//! The AF_PACKET transmitter of the traffic generator: a raw packet socket bound to one
//! interface with `PACKET_QDISC_BYPASS` (frames go straight to the driver, as pktgen's do),
//! sending batches with one `sendmmsg` each.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens a packet socket that sends on interface `ifindex` (of the calling thread's
/// namespace), bypassing the qdisc layer, and receives nothing.
pub(crate) fn open(ifindex: u32) -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives no frames, so none queue up on it unread.
    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful socket() returns a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let one_ptr: *const libc::c_int = &one;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live integer.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            one_ptr.cast::<libc::c_void>(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain integers and arrays; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    let sll_ptr: *const libc::sockaddr_ll = &sll;
    // SAFETY: bind reads `size_of::<sockaddr_ll>()` bytes from a live, initialised struct.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            sll_ptr.cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
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
