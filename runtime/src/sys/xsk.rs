//! AF_XDP sockets at the syscall level: the UMEM (one anonymous mapping cut into frames), its
//! fill and completion rings, the receive ring, and the bind to one queue of one interface.
//!
//! The rings are the kernel's single-producer, single-consumer queues shared through `mmap`:
//! their producer and consumer indices are read with acquire and written with release
//! ordering (as libxdp's `xsk.h` does with its barriers), so a descriptor is complete before
//! its index is seen. Only receiving is built: frames come in on the RX ring, their UMEM
//! frames go straight back on the fill ring.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// One shared ring: its mapping, and where its indices and descriptors are.
struct Ring {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
}

impl Ring {
    /// Maps the ring of `entries` descriptors of `desc_size` bytes at page offset `pgoff`.
    fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        entries: u32,
        desc_size: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let map_len = off.desc as usize + entries as usize * desc_size;
        // SAFETY: mmap of a socket's ring: the kernel checks the offset and length and
        // returns a fresh shared mapping (or MAP_FAILED); nothing aliases it yet.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = map.cast::<u8>();
        // SAFETY: the offsets the kernel reported lie inside the mapping just made; the
        // indices are 4-byte aligned u32s the kernel updates atomically.
        let ring = unsafe {
            Ring {
                map,
                map_len,
                producer: base.add(off.producer as usize).cast::<AtomicU32>(),
                consumer: base.add(off.consumer as usize).cast::<AtomicU32>(),
                desc: base.add(off.desc as usize),
                mask: entries - 1,
            }
        };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `map`), which outlives `self`'s borrow.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// The `i`-th descriptor slot (masked) as `size` bytes.
    fn slot(&self, i: u32, size: usize) -> *mut u8 {
        // SAFETY: `i & mask` indexes one of the ring's `mask + 1` descriptors of `size` bytes,
        // all inside the mapping.
        unsafe { self.desc.add((i & self.mask) as usize * size) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; no reference into it outlives `self`.
        unsafe {
            libc::munmap(self.map, self.map_len);
        }
    }
}

/// A bound AF_XDP socket with its UMEM and rings (receive only).
pub(crate) struct Xsk {
    // Field order is drop order: the rings and the UMEM are unmapped before the socket closes.
    rx: Ring,
    fill: Ring,
    _completion: Ring,
    umem: Umem,
    frame_size: u32,
    fd: OwnedFd,
}

// SAFETY: the mappings belong to this value alone; moving it to another thread moves them.
unsafe impl Send for Xsk {}

/// The UMEM: one anonymous mapping cut into chunks, unmapped when dropped (its owners drop
/// their rings first and close the socket after; the kernel keeps its own reference until
/// the socket closes).
struct Umem {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Umem {
    fn map(len: usize) -> io::Result<Umem> {
        // SAFETY: an anonymous private mapping of `len` bytes; nothing aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Umem { ptr, len })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made, which no reference outlives.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// A new AF_XDP socket with a UMEM of `frames` chunks of `frame_size` bytes registered, its
/// fill and completion rings and the `data` ring (`XDP_RX_RING` or `XDP_TX_RING`) sized to
/// `ring` entries, and where the kernel put them.
fn socket_with_umem(
    frames: u32,
    frame_size: u32,
    ring: u32,
    data: libc::c_int,
) -> io::Result<(OwnedFd, Umem, libc::xdp_mmap_offsets)> {
    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful socket() returns a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let umem = Umem::map(frames as usize * frame_size as usize)?;
    // SAFETY: xdp_umem_reg is plain integers; all-zero is a valid value.
    let mut reg: libc::xdp_umem_reg = unsafe { std::mem::zeroed() };
    reg.addr = umem.ptr as u64;
    reg.len = umem.len as u64;
    reg.chunk_size = frame_size;
    setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg)?;
    // A bound UMEM needs both of its rings, even where one side never uses its own.
    setsockopt(fd.as_fd(), libc::XDP_UMEM_FILL_RING, &ring)?;
    setsockopt(fd.as_fd(), libc::XDP_UMEM_COMPLETION_RING, &ring)?;
    setsockopt(fd.as_fd(), data, &ring)?;
    // SAFETY: xdp_mmap_offsets is plain integers; all-zero is a valid value.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    let off_ptr: *mut libc::xdp_mmap_offsets = &mut off;
    // SAFETY: getsockopt writes at most `len` bytes into a live struct of that size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            off_ptr.cast::<libc::c_void>(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fd, umem, off))
}

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, value: &T) -> io::Result<()> {
    let ptr: *const T = value;
    // SAFETY: setsockopt reads `size_of::<T>()` bytes from a live, initialised value.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            ptr.cast::<libc::c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens an AF_XDP socket with a UMEM of `frames` frames of `frame_size` bytes, rings of
/// `ring` entries (a power of two), bound to queue `queue` of interface `ifindex` of the
/// calling thread's namespace — in copy mode when `copy`, else whatever the driver offers.
/// Without an interface the socket stays unbound: an XSKMAP takes it (it has its rings), and
/// a test run sees the redirect taken, but no frame ever reaches it.
pub(crate) fn open(
    ifindex: Option<u32>,
    queue: u32,
    frames: u32,
    frame_size: u32,
    ring: u32,
    copy: bool,
) -> io::Result<Xsk> {
    let (fd, umem, off) = socket_with_umem(frames, frame_size, ring, libc::XDP_RX_RING)?;
    let rx = Ring::map(
        fd.as_fd(),
        &off.rx,
        ring,
        size_of::<libc::xdp_desc>(),
        libc::XDP_PGOFF_RX_RING as u64,
    )?;
    let (fill, completion) = umem_rings(fd.as_fd(), &off, ring)?;
    // Every frame the fill ring holds is one the kernel may receive into.
    let give = frames.min(ring);
    let start = fill.producer().load(Ordering::Acquire);
    for i in 0..give {
        let addr = u64::from(i) * u64::from(frame_size);
        // SAFETY: a fill descriptor is one aligned u64 inside the ring's mapping.
        unsafe {
            fill.slot(start.wrapping_add(i), 8)
                .cast::<u64>()
                .write(addr)
        };
    }
    fill.producer()
        .store(start.wrapping_add(give), Ordering::Release);
    if let Some(ifindex) = ifindex {
        bind(fd.as_fd(), ifindex, queue, copy)?;
    }
    Ok(Xsk {
        rx,
        fill,
        _completion: completion,
        umem,
        frame_size,
        fd,
    })
}

/// Binds the socket to queue `queue` of interface `ifindex`.
fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, copy: bool) -> io::Result<()> {
    // SAFETY: sockaddr_xdp is plain integers; all-zero is a valid value.
    let mut sxdp: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    sxdp.sxdp_family = libc::AF_XDP as u16;
    sxdp.sxdp_flags = if copy { libc::XDP_COPY } else { 0 };
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = queue;
    let sxdp_ptr: *const libc::sockaddr_xdp = &sxdp;
    // SAFETY: bind reads `size_of::<sockaddr_xdp>()` bytes from a live, initialised struct.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            sxdp_ptr.cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Xsk {
    /// The socket, for an XSKMAP entry.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Hands every frame waiting on the RX ring (at most `max`) to `on`, waiting up to
    /// `timeout_ms` for the first; the frames go back on the fill ring. How many came.
    pub(crate) fn recv(
        &mut self,
        timeout_ms: i32,
        max: u32,
        on: &mut dyn FnMut(&[u8]),
    ) -> io::Result<u32> {
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        let mut avail = self
            .rx
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(cons);
        if avail == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll reads and writes one live pollfd.
            let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            avail = self
                .rx
                .producer()
                .load(Ordering::Acquire)
                .wrapping_sub(cons);
        }
        let n = avail.min(max);
        let fill_at = self.fill.producer().load(Ordering::Relaxed);
        for i in 0..n {
            let d = self
                .rx
                .slot(cons.wrapping_add(i), size_of::<libc::xdp_desc>());
            // SAFETY: an RX descriptor the kernel published (index below the producer's,
            // read after the acquire load), inside the ring's mapping.
            let desc = unsafe { d.cast::<libc::xdp_desc>().read() };
            let (addr, len) = (desc.addr as usize, desc.len as usize);
            if addr
                .checked_add(len)
                .is_some_and(|end| end <= self.umem.len)
            {
                // SAFETY: `[addr, addr + len)` lies inside the UMEM (checked), which the
                // kernel filled before publishing the descriptor.
                let frame = unsafe {
                    std::slice::from_raw_parts(self.umem.ptr.cast::<u8>().add(addr), len)
                };
                on(frame);
            }
            // The frame's chunk goes back to the kernel.
            let chunk = desc.addr - desc.addr % u64::from(self.frame_size);
            // SAFETY: a fill descriptor slot inside the ring's mapping; the kernel consumed
            // at least as many fill entries as it published RX descriptors, so it is free.
            unsafe {
                self.fill
                    .slot(fill_at.wrapping_add(i), 8)
                    .cast::<u64>()
                    .write(chunk)
            };
        }
        self.fill
            .producer()
            .store(fill_at.wrapping_add(n), Ordering::Release);
        self.rx
            .consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
        Ok(n)
    }
}

/// An AF_XDP socket bound for transmitting (copy mode): its UMEM, TX ring and completion
/// ring. Frames are written into free UMEM chunks, their descriptors put on the TX ring, and
/// the kernel told with `sendto`; chunks come back on the completion ring once sent.
pub(crate) struct XskTx {
    // Field order is drop order: the rings and the UMEM are unmapped before the socket closes.
    tx: Ring,
    completion: Ring,
    _fill: Ring,
    umem: Umem,
    frame_size: u32,
    /// UMEM chunks not in the kernel's hands.
    free: Vec<u64>,
    fd: OwnedFd,
}

// SAFETY: the mappings belong to this value alone; moving it to another thread moves them.
unsafe impl Send for XskTx {}

/// What one [`XskTx::kick`] reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The kernel took what it could; call again for the rest.
    Sent,
    /// The device was busy: the descriptors stay on the ring, to be tried again.
    Again,
    /// The device dropped one frame (its chunk still completes): send one more.
    Dropped,
}

/// Maps the UMEM's fill and completion rings of `ring` entries.
fn umem_rings(
    fd: BorrowedFd<'_>,
    off: &libc::xdp_mmap_offsets,
    ring: u32,
) -> io::Result<(Ring, Ring)> {
    let fill = Ring::map(fd, &off.fr, ring, 8, libc::XDP_UMEM_PGOFF_FILL_RING)?;
    let completion = Ring::map(fd, &off.cr, ring, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
    Ok((fill, completion))
}

/// Opens an AF_XDP socket for transmitting on queue `queue` of interface `ifindex` (copy
/// mode), with `frames` UMEM chunks of `frame_size` bytes and rings of `ring` entries.
pub(crate) fn open_tx(
    ifindex: u32,
    queue: u32,
    frames: u32,
    frame_size: u32,
    ring: u32,
) -> io::Result<XskTx> {
    let (fd, umem, off) = socket_with_umem(frames, frame_size, ring, libc::XDP_TX_RING)?;
    let tx = Ring::map(
        fd.as_fd(),
        &off.tx,
        ring,
        size_of::<libc::xdp_desc>(),
        libc::XDP_PGOFF_TX_RING as u64,
    )?;
    let (fill, completion) = umem_rings(fd.as_fd(), &off, ring)?;
    bind(fd.as_fd(), ifindex, queue, true)?;
    Ok(XskTx {
        tx,
        completion,
        _fill: fill,
        umem,
        frame_size,
        free: (0..frames)
            .rev()
            .map(|i| u64::from(i) * u64::from(frame_size))
            .collect(),
        fd,
    })
}

impl XskTx {
    /// Whether the TX ring holds descriptors the kernel has not taken yet.
    pub(crate) fn tx_pending(&self) -> bool {
        self.tx.producer().load(Ordering::Relaxed) != self.tx.consumer().load(Ordering::Acquire)
    }

    /// How many TX descriptors the kernel has taken so far (wrapping).
    pub(crate) fn tx_taken(&self) -> u32 {
        self.tx.consumer().load(Ordering::Acquire)
    }

    /// Takes the chunks the kernel completed back; how many.
    pub(crate) fn reap(&mut self) -> u32 {
        let cons = self.completion.consumer().load(Ordering::Relaxed);
        let n = self
            .completion
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(cons);
        for i in 0..n {
            // SAFETY: a completion descriptor the kernel published (below the producer's
            // index, read after the acquire load): one u64 inside the ring's mapping.
            let addr = unsafe {
                self.completion
                    .slot(cons.wrapping_add(i), 8)
                    .cast::<u64>()
                    .read()
            };
            self.free.push(addr - addr % u64::from(self.frame_size));
        }
        self.completion
            .consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
        n
    }

    /// Publishes up to `max` frames on the TX ring, each built by `fill` into a free chunk
    /// (`fill` gets the chunk and returns the frame's length, at most the chunk's size);
    /// how many were published (limited by free chunks and ring room).
    pub(crate) fn publish(&mut self, max: u32, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> u32 {
        let prod = self.tx.producer().load(Ordering::Relaxed);
        let room = (self.tx.mask + 1)
            .wrapping_sub(prod.wrapping_sub(self.tx.consumer().load(Ordering::Acquire)));
        let n = max.min(room).min(self.free.len() as u32);
        for i in 0..n {
            let Some(addr) = self.free.pop() else { break };
            // SAFETY: `addr` is the start of a chunk of `frame_size` bytes inside the UMEM
            // (only chunk starts are ever pushed on the free list) that the kernel does not
            // hold: it came back on the completion ring or was never published.
            let chunk = unsafe {
                std::slice::from_raw_parts_mut(
                    self.umem.ptr.cast::<u8>().add(addr as usize),
                    self.frame_size as usize,
                )
            };
            let len = fill(chunk).min(self.frame_size as usize) as u32;
            let desc = libc::xdp_desc {
                addr,
                len,
                options: 0,
            };
            // SAFETY: a TX descriptor slot inside the ring's mapping, free since the kernel
            // consumed it (checked against the consumer index above).
            unsafe {
                self.tx
                    .slot(prod.wrapping_add(i), size_of::<libc::xdp_desc>())
                    .cast::<libc::xdp_desc>()
                    .write(desc)
            };
        }
        self.tx
            .producer()
            .store(prod.wrapping_add(n), Ordering::Release);
        n
    }

    /// Tells the kernel to transmit what the TX ring holds (it sends a batch per call).
    pub(crate) fn kick(&self) -> io::Result<Kick> {
        // SAFETY: sendto with no buffer and no address: AF_XDP's wakeup.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if ret >= 0 {
            return Ok(Kick::Sent);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Ok(Kick::Again),
            // The kernel's "completed but not sent" (the device dropped the frame).
            Some(libc::EBUSY) => Ok(Kick::Dropped),
            _ => Err(e),
        }
    }
}
