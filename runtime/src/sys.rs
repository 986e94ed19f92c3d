//! Raw `bpf(2)` calls that aya does not expose: `BPF_PROG_TEST_RUN`, byte-level map element
//! access, and the tiny program load behind [`crate::can_load_bpf`]; packet sockets; and
//! AF_XDP sockets (`xsk`).
//!
//! Every `unsafe` block of the crate lives here. Each command has its own `#[repr(C)]` attribute
//! struct that mirrors the member of the kernel's `union bpf_attr` it uses, padded with zeroes
//! to [`ATTR_SIZE`] bytes: the kernel accepts a larger attribute as long as the bytes it does
//! not know are zero, and reads only the member that belongs to the command.

// Reason: this module is the crate's single doorway to the `bpf(2)` syscall, which libc offers
// only as the variadic, unsafe `syscall`; every block below is small and says why it is sound.
#![allow(unsafe_code)]

pub(crate) mod packet_tx;
pub(crate) mod xsk;

use std::ffi::c_long;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The size every attribute struct is padded to; larger than any member we fill in.
const ATTR_SIZE: usize = 128;

/// `BPF_MAP_LOOKUP_ELEM` from `enum bpf_cmd`.
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
/// `BPF_MAP_UPDATE_ELEM` from `enum bpf_cmd`.
const BPF_MAP_UPDATE_ELEM: u32 = 2;
/// `BPF_MAP_DELETE_ELEM` from `enum bpf_cmd`.
const BPF_MAP_DELETE_ELEM: u32 = 3;
/// `BPF_MAP_GET_NEXT_KEY` from `enum bpf_cmd`.
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
/// `BPF_PROG_LOAD` from `enum bpf_cmd`.
const BPF_PROG_LOAD: u32 = 5;
/// `BPF_OBJ_GET` from `enum bpf_cmd`.
const BPF_OBJ_GET: u32 = 7;
/// `BPF_OBJ_GET_INFO_BY_FD` from `enum bpf_cmd`.
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
/// `BPF_PROG_TEST_RUN` from `enum bpf_cmd`.
const BPF_PROG_TEST_RUN: u32 = 10;
/// `BPF_PROG_GET_FD_BY_ID` from `enum bpf_cmd`.
const BPF_PROG_GET_FD_BY_ID: u32 = 13;

/// `BPF_PROG_TYPE_XDP` from `enum bpf_prog_type`.
const BPF_PROG_TYPE_XDP: u32 = 6;

/// Marks the attribute structs of this module, so [`bpf`] only ever receives one of them.
///
/// Implementors are `#[repr(C)]`, exactly [`ATTR_SIZE`] bytes long, contain only integers and
/// byte arrays (so every bit pattern the kernel writes back is valid), and any pointer stored in
/// them as a `u64` refers to memory the caller keeps alive for the duration of the call.
trait Attr: Sized {}

/// `union bpf_attr` as used by the map element commands (`struct { map_fd; key; value; flags }`).
#[repr(C)]
struct MapElemAttr {
    /// The map's file descriptor.
    map_fd: u32,
    /// Padding the kernel has before the 8-byte-aligned `key`.
    pad0: u32,
    /// Address of the key (`NULL` asks `BPF_MAP_GET_NEXT_KEY` for the first key).
    key: u64,
    /// Address of the value buffer, or of the next-key buffer for `BPF_MAP_GET_NEXT_KEY`.
    value: u64,
    /// Update flags (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`).
    flags: u64,
    /// Zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 32],
}

impl Attr for MapElemAttr {}

/// `union bpf_attr` as used by the batch commands (the `batch` member).
#[repr(C)]
struct MapBatchAttr {
    /// Where the previous batch ended (unused by updates).
    in_batch: u64,
    /// Where this batch ended (unused by updates).
    out_batch: u64,
    /// Address of `count` keys, back to back.
    keys: u64,
    /// Address of `count` values, back to back.
    values: u64,
    /// Elements given; the kernel writes back how many it processed.
    count: u32,
    /// The map's file descriptor.
    map_fd: u32,
    /// Update flags per element (`BPF_ANY`).
    elem_flags: u64,
    /// Command flags (none).
    flags: u64,
    /// Zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 56],
}

impl Attr for MapBatchAttr {}

/// `BPF_MAP_UPDATE_BATCH` from `enum bpf_cmd`.
const BPF_MAP_UPDATE_BATCH: u32 = 26;

/// `BPF_MAP_LOOKUP_BATCH` from `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: u32 = 24;

/// `union bpf_attr` as used by `BPF_PROG_TEST_RUN` (the `test` member).
#[repr(C)]
struct TestRunAttr {
    /// The program's file descriptor.
    prog_fd: u32,
    /// Written by the kernel: the program's return value.
    retval: u32,
    /// Length of the input frame.
    data_size_in: u32,
    /// Capacity of the output buffer; the kernel writes back the output frame's length.
    data_size_out: u32,
    /// Address of the input frame.
    data_in: u64,
    /// Address of the output buffer.
    data_out: u64,
    /// How many times to run the program.
    repeat: u32,
    /// Written by the kernel: mean run time per repetition in nanoseconds.
    duration: u32,
    /// Length of the input context (unused: zero).
    ctx_size_in: u32,
    /// Capacity of the output context (unused: zero).
    ctx_size_out: u32,
    /// Address of the input context (unused: zero).
    ctx_in: u64,
    /// Address of the output context (unused: zero).
    ctx_out: u64,
    /// Test-run flags (unused: zero).
    flags: u32,
    /// CPU to run on (unused: zero).
    cpu: u32,
    /// Batch size for live-frame XDP runs (unused: zero).
    batch_size: u32,
    /// Padding and zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 76],
}

impl Attr for TestRunAttr {}

/// `union bpf_attr` as used by `BPF_PROG_LOAD`, up to `prog_name`.
#[repr(C)]
struct ProgLoadAttr {
    /// `enum bpf_prog_type`.
    prog_type: u32,
    /// Number of 8-byte instructions.
    insn_cnt: u32,
    /// Address of the instructions.
    insns: u64,
    /// Address of the NUL-terminated license string.
    license: u64,
    /// Verifier log level (zero: no log).
    log_level: u32,
    /// Capacity of the log buffer.
    log_size: u32,
    /// Address of the log buffer.
    log_buf: u64,
    /// Kernel version (ignored for XDP).
    kern_version: u32,
    /// Program flags.
    prog_flags: u32,
    /// Zeroes (an empty program name and every later member) up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 48],
}

impl Attr for ProgLoadAttr {}

/// `union bpf_attr` as used by `BPF_OBJ_GET` (the `pathname` member group).
#[repr(C)]
struct ObjGetAttr {
    /// Address of the NUL-terminated pin path.
    pathname: u64,
    /// Unused by `BPF_OBJ_GET` (zero).
    bpf_fd: u32,
    /// Open flags (zero: read and write).
    file_flags: u32,
    /// Zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 16],
}

impl Attr for ObjGetAttr {}

/// `union bpf_attr` as used by `BPF_OBJ_GET_INFO_BY_FD` (the `info` member).
#[repr(C)]
struct InfoAttr {
    /// The object's file descriptor.
    bpf_fd: u32,
    /// Capacity of the info buffer; the kernel writes back how much it filled.
    info_len: u32,
    /// Address of the info buffer.
    info: u64,
    /// Zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 16],
}

impl Attr for InfoAttr {}

/// `union bpf_attr` as used by `BPF_PROG_GET_FD_BY_ID` (`struct { prog_id; next_id;
/// open_flags }`).
#[repr(C)]
struct GetFdByIdAttr {
    /// The program's id.
    prog_id: u32,
    /// Unused here (zero).
    next_id: u32,
    /// Open flags (zero).
    open_flags: u32,
    /// Zeroes up to [`ATTR_SIZE`].
    tail: [u8; ATTR_SIZE - 12],
}

impl Attr for GetFdByIdAttr {}

// The kernel reads these offsets; a wrong size would shift every member after it.
const _: () = assert!(size_of::<MapElemAttr>() == ATTR_SIZE);
const _: () = assert!(size_of::<TestRunAttr>() == ATTR_SIZE);
const _: () = assert!(size_of::<ProgLoadAttr>() == ATTR_SIZE);
const _: () = assert!(size_of::<ObjGetAttr>() == ATTR_SIZE);
const _: () = assert!(size_of::<InfoAttr>() == ATTR_SIZE);
const _: () = assert!(size_of::<GetFdByIdAttr>() == ATTR_SIZE);

/// Calls `bpf(cmd, attr, sizeof attr)` and returns its non-negative result or `errno`.
fn bpf<A: Attr>(cmd: u32, attr: &mut A) -> io::Result<c_long> {
    let attr_ptr: *mut A = attr;
    // SAFETY: `attr` is an exclusive borrow of a fully initialised `Attr` struct of
    // `size_of::<A>()` bytes, which the kernel may read and write back; every address stored in
    // it points to memory that the caller borrows for at least this call (see `Attr`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            c_long::from(cmd),
            attr_ptr.cast::<libc::c_void>(),
            size_of::<A>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Returns the address of a byte slice as the kernel's `__aligned_u64`.
fn addr(bytes: &[u8]) -> u64 {
    bytes.as_ptr() as u64
}

/// Converts a buffer length to the kernel's `u32`, refusing lengths that do not fit.
fn len_u32(bytes: &[u8]) -> io::Result<u32> {
    u32::try_from(bytes.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))
}

/// Builds a map element attribute for `fd` with the given key and value addresses.
fn map_elem_attr(fd: BorrowedFd<'_>, key: u64, value: u64, flags: u64) -> MapElemAttr {
    MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        pad0: 0,
        key,
        value,
        flags,
        tail: [0; ATTR_SIZE - 32],
    }
}

/// `BPF_MAP_LOOKUP_ELEM`: copies the value stored under `key` into `value`.
///
/// `key` must be the map's key size and `value` the size the kernel writes for this map (for
/// per-CPU maps, the value size rounded up to 8 times the number of possible CPUs): the kernel
/// trusts both lengths. Returns `Ok(false)` when the key is absent.
pub(crate) fn map_lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = map_elem_attr(fd, addr(key), value.as_mut_ptr() as u64, 0);
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`: stores `value` under `key`, creating or replacing it.
///
/// The lengths must match the map as for [`map_lookup`].
pub(crate) fn map_update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = map_elem_attr(fd, addr(key), addr(value), 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_MAP_UPDATE_BATCH` with `BPF_ANY`: stores `count` entries at once (`keys` and `values`
/// back to back, each of the map's sizes: the kernel trusts the lengths). Returns how many it
/// stored, also when it stopped at an error.
pub(crate) fn map_update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> (u32, io::Result<()>) {
    let mut attr = MapBatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: addr(keys),
        values: addr(values),
        count,
        map_fd: fd.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
        tail: [0; ATTR_SIZE - 56],
    };
    let r = bpf(BPF_MAP_UPDATE_BATCH, &mut attr).map(drop);
    (attr.count, r)
}

/// `BPF_MAP_LOOKUP_BATCH`: reads up to `count` entries of an array map after the position in
/// `from` (`None`: from the start) into `keys` and `values` (the kernel's value layout, per
/// CPU for a per-CPU map), and the position it stopped at into `to` (a key's size). Returns
/// how many it read and whether the map has more (`ENOENT` ends it).
pub(crate) fn map_lookup_batch(
    fd: BorrowedFd<'_>,
    from: Option<&[u8]>,
    to: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> (u32, io::Result<bool>) {
    let mut attr = MapBatchAttr {
        in_batch: from.map_or(0, addr),
        out_batch: to.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd: fd.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
        tail: [0; ATTR_SIZE - 56],
    };
    let r = match bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    };
    (attr.count, r)
}

/// `BPF_MAP_DELETE_ELEM`: removes `key`; returns `Ok(false)` when it was absent.
pub(crate) fn map_delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = map_elem_attr(fd, addr(key), 0, 0);
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_GET_NEXT_KEY`: writes the key after `key` (the first key for `None`) into `next`.
///
/// Returns `Ok(false)` when there is no further key.
pub(crate) fn map_next_key(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> io::Result<bool> {
    let mut attr = map_elem_attr(fd, key.map_or(0, addr), next.as_mut_ptr() as u64, 0);
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What the kernel wrote back after `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawTestRun {
    /// The program's return value.
    pub(crate) retval: u32,
    /// The output frame's full length (it may exceed the buffer when the run failed with
    /// `ENOSPC`).
    pub(crate) size_out: u32,
    /// Mean run time per repetition in nanoseconds.
    pub(crate) duration: u32,
}

/// `BPF_PROG_TEST_RUN`: runs the program `repeat` times on `data`, the output frame going to
/// `out`.
///
/// On failure the error comes with what the kernel wrote back, since an `ENOSPC` (output
/// larger than `out`) still reports the needed length.
pub(crate) fn prog_test_run(
    prog: BorrowedFd<'_>,
    data: &[u8],
    out: &mut [u8],
    repeat: u32,
    ctx: &[u8],
) -> Result<RawTestRun, (io::Error, RawTestRun)> {
    let zero = RawTestRun {
        retval: 0,
        size_out: 0,
        duration: 0,
    };
    let data_size_in = len_u32(data).map_err(|e| (e, zero))?;
    let data_size_out = len_u32(out).map_err(|e| (e, zero))?;
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in,
        data_size_out,
        data_in: addr(data),
        data_out: out.as_mut_ptr() as u64,
        repeat,
        duration: 0,
        ctx_size_in: len_u32(ctx).map_err(|e| (e, zero))?,
        ctx_size_out: 0,
        ctx_in: if ctx.is_empty() { 0 } else { addr(ctx) },
        ctx_out: 0,
        flags: 0,
        cpu: 0,
        batch_size: 0,
        tail: [0; ATTR_SIZE - 76],
    };
    let result = bpf(BPF_PROG_TEST_RUN, &mut attr);
    let raw = RawTestRun {
        retval: attr.retval,
        size_out: attr.data_size_out,
        duration: attr.duration,
    };
    match result {
        Ok(_) => Ok(raw),
        Err(e) => Err((e, raw)),
    }
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: the kernel acts on the XDP verdicts of a test run (transmits,
/// redirects, passes to the stack) instead of returning the frame.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// `BPF_PROG_TEST_RUN` in live-frame mode: runs the XDP program `repeat` times on copies of
/// `data` as if they arrived on `ingress_ifindex`, in batches of `batch` frames, and lets the
/// kernel carry out each verdict. Returns the kernel's mean time per repetition in nanoseconds.
///
/// Frames the kernel fails to deliver (a full ring on the target device, say) are dropped
/// without an error, as for XDP programs in a driver.
pub(crate) fn prog_test_run_live(
    prog: BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
    ingress_ifindex: u32,
    batch: u32,
) -> io::Result<u32> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex. The kernel wants data and data_meta zero and data_end the frame length.
    let ctx: Vec<u8> = [0, len_u32(data)?, 0, ingress_ifindex, 0, 0]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: len_u32(data)?,
        data_size_out: 0,
        data_in: addr(data),
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: len_u32(&ctx)?,
        ctx_size_out: 0,
        ctx_in: addr(&ctx),
        ctx_out: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size: batch,
        tail: [0; ATTR_SIZE - 76],
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.duration)
}

/// Per-packet variation for the generator: a big-endian u32 written at `offset` of each frame,
/// `base + random % count` (an IPv4 address field, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vary {
    /// Byte offset in the frame.
    pub(crate) offset: u16,
    /// The first value.
    pub(crate) base: u32,
    /// How many values (at least 1, at most 2^31).
    pub(crate) count: u32,
}

/// Loads an XDP program that redirects every frame to interface `ifindex`
/// (`return bpf_redirect(ifindex, 0)`), the transmitting half of the traffic generator; with
/// `vary` it first rewrites one 32-bit field of the frame with a random value of a range.
pub(crate) fn load_redirect_xdp(ifindex: u32, vary: Option<Vary>) -> io::Result<OwnedFd> {
    /// `BPF_FUNC_get_prandom_u32`.
    const BPF_FUNC_PRANDOM: i32 = 7;
    /// `BPF_FUNC_redirect`.
    const BPF_FUNC_REDIRECT: i32 = 23;
    // Each instruction: code, registers (src << 4 | dst), offset, immediate.
    let insn = |code: u8, dst: u8, src: u8, off: i16, imm: i32| {
        let mut b = [0u8; 8];
        b[0] = code;
        b[1] = (src << 4) | dst;
        b[2..4].copy_from_slice(&off.to_ne_bytes());
        b[4..8].copy_from_slice(&imm.to_ne_bytes());
        b
    };
    let mut insns: Vec<[u8; 8]> = Vec::with_capacity(32);
    if let Some(v) = vary {
        let end = i32::from(v.offset) + 4;
        // Loads data and data_end from the context (r6) and jumps `skip` ahead when the field
        // lies past the frame's end.
        let bounds = |insns: &mut Vec<[u8; 8]>, skip: i16| {
            insns.push(insn(0x61, 2, 6, 0, 0)); // r2 = ctx->data
            insns.push(insn(0x61, 3, 6, 4, 0)); // r3 = ctx->data_end
            insns.push(insn(0xbf, 4, 2, 0, 0)); // r4 = r2
            insns.push(insn(0x07, 4, 0, 0, end)); // r4 += offset + 4
            insns.push(insn(0x2d, 4, 3, skip, 0)); // if r4 > r3 goto out
        };
        insns.push(insn(0xbf, 6, 1, 0, 0)); // r6 = ctx
        bounds(&mut insns, 10);
        insns.push(insn(0x85, 0, 0, 0, BPF_FUNC_PRANDOM)); // r0 = random
        insns.push(insn(0x97, 0, 0, 0, v.count.max(1) as i32)); // r0 %= count
        insns.push(insn(0x04, 0, 0, 0, v.base as i32)); // w0 += base
        insns.push(insn(0xdc, 0, 0, 0, 32)); // r0 = htobe32(r0)
        bounds(&mut insns, 1);
        insns.push(insn(0x63, 2, 0, v.offset as i16, 0)); // *(u32 *)(data + offset) = r0
    }
    // out: r1 = ifindex; r2 = 0; call bpf_redirect; exit (r0: XDP_REDIRECT or XDP_ABORTED).
    insns.push(insn(0xb7, 1, 0, 0, ifindex as i32));
    insns.push(insn(0xb7, 2, 0, 0, 0));
    insns.push(insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT));
    insns.push(insn(0x95, 0, 0, 0, 0));
    load_xdp_insns(&insns.concat())
}

/// The id of the program a pinned link runs now (`struct bpf_link_info.prog_id`).
pub(crate) fn pinned_link_prog_id(path: &std::path::Path) -> io::Result<u32> {
    // struct bpf_link_info starts { __u32 type; __u32 id; __u32 prog_id; ... }.
    pinned_info_u32(path, 8)
}

/// The interface a pinned XDP or TCX link is attached to; 0 once the interface is gone
/// (the kernel detaches the link then).
pub(crate) fn pinned_link_ifindex(path: &std::path::Path) -> io::Result<u32> {
    // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { ... xdp { __u32
    // ifindex; } tcx { __u32 ifindex; __u32 attach_type; } ... } } — the union at byte 16.
    pinned_info_u32(path, 16)
}

/// The `u32` at byte `at` of the info struct (`BPF_OBJ_GET_INFO_BY_FD`) of the object pinned
/// at `path`.
fn pinned_info_u32(path: &std::path::Path, at: usize) -> io::Result<u32> {
    let fd = obj_get(path)?;
    let mut info = [0u8; 64];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
        tail: [0; ATTR_SIZE - 16],
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(u32::from_ne_bytes([
        info[at],
        info[at + 1],
        info[at + 2],
        info[at + 3],
    ]))
}

/// Opens the BPF object pinned at `path` (`BPF_OBJ_GET`).
pub(crate) fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut get = ObjGetAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        tail: [0; ATTR_SIZE - 16],
    };
    let fd = bpf(BPF_OBJ_GET, &mut get)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_OBJ_GET returns a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor of the loaded program with id `id` (`BPF_PROG_GET_FD_BY_ID`).
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        tail: [0; ATTR_SIZE - 12],
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_PROG_GET_FD_BY_ID returns a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The id of the program pinned at `path` (`struct bpf_prog_info.id`).
pub(crate) fn pinned_prog_id(path: &std::path::Path) -> io::Result<u32> {
    // struct bpf_prog_info starts { __u32 type; __u32 id; ... }.
    pinned_info_u32(path, 4)
}

/// `if_nametoindex`: the index of interface `name` in the calling thread's namespace.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated string that lives for the call; the function only reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Joins the calling thread to the network namespace behind `ns` (a `/run/netns/NAME` file).
pub(crate) fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes a file descriptor we borrow for the call and a constant; it changes
    // only the calling thread's namespace membership and touches no memory of ours.
    let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Loads `r0 = retval; exit` as an XDP program and returns its file descriptor.
///
/// This is the smallest load the verifier accepts; [`crate::can_load_bpf`] uses it to find out
/// whether this process may load programs at all.
pub(crate) fn load_trivial_xdp(retval: i32) -> io::Result<OwnedFd> {
    // `struct bpf_insn` is { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm }, in host
    // byte order. Both registers are r0 here, so the register byte is zero either way.
    let mut insns = [0u8; 16];
    // BPF_ALU64 | BPF_MOV | BPF_K: r0 = imm.
    insns[0] = 0xb7;
    insns[4..8].copy_from_slice(&retval.to_ne_bytes());
    // BPF_JMP | BPF_EXIT.
    insns[8] = 0x95;
    load_xdp_insns(&insns)
}

/// Loads `r0 = XDP_PASS; exit` bound to device `ifindex` (`prog_ifindex`), as offloading
/// does: a device without BPF offload refuses it (EINVAL or EOPNOTSUPP).
pub(crate) fn load_offload_probe(ifindex: u32) -> io::Result<OwnedFd> {
    let mut insns = [0u8; 16];
    insns[0] = 0xb7;
    insns[4..8].copy_from_slice(&2i32.to_ne_bytes());
    insns[8] = 0x95;
    load_xdp_insns_on(&insns, ifindex)
}

/// Loads raw instructions (8 bytes each, host order) as a GPL XDP program.
fn load_xdp_insns(insns: &[u8]) -> io::Result<OwnedFd> {
    load_xdp_insns_on(insns, 0)
}

/// [`load_xdp_insns`] bound to device `ifindex` when it is not zero.
fn load_xdp_insns_on(insns: &[u8], ifindex: u32) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: (insns.len() / 8) as u32,
        insns: addr(insns),
        license: addr(license),
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        tail: [0; ATTR_SIZE - 48],
    };
    // `prog_ifindex` follows the 16-byte `prog_name` at offset 64.
    attr.tail[16..20].copy_from_slice(&ifindex.to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that nothing else in
    // this process owns, so handing its ownership to an `OwnedFd` closes it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A raw `AF_PACKET` socket (with `flags` besides `SOCK_RAW | SOCK_CLOEXEC`) bound to
/// interface `ifindex` for protocol `proto` (host order; 0 receives nothing).
pub(crate) fn packet_bound(ifindex: u32, proto: u16, flags: libc::c_int) -> io::Result<OwnedFd> {
    let proto = proto.to_be();
    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful socket() returns a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain integers and arrays; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
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

/// Opens a non-blocking `AF_PACKET` raw socket bound to interface `ifindex` (of the calling
/// thread's namespace) that receives every frame the interface sees, or (with `ethertype`)
/// only frames of that protocol, which the kernel hands over after TC ingress has let them
/// through.
pub(crate) fn packet_socket(ifindex: u32, ethertype: Option<u16>) -> io::Result<OwnedFd> {
    let proto = ethertype.unwrap_or(libc::ETH_P_ALL as u16);
    let fd = packet_bound(ifindex, proto, libc::SOCK_NONBLOCK)?;
    // The kernel moves a received frame's outer VLAN tag into metadata; PACKET_AUXDATA hands
    // it back so the frame can be shown as it was on the wire.
    packet_option_on(fd.as_fd(), libc::PACKET_AUXDATA)?;
    Ok(fd)
}

/// Turns the packet socket option `opt` (a `SOL_PACKET` flag) on.
pub(crate) fn packet_option_on(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    let one_ptr: *const libc::c_int = &one;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live integer.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            one_ptr.cast::<libc::c_void>(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

thread_local! {
    static RECV_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The thread's receive buffer, returned to it when dropped.
struct Lent(Vec<u8>);

impl Lent {
    fn take() -> Lent {
        let mut b = RECV_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        b.resize(65536, 0);
        Lent(b)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.0);
        RECV_BUF.with(|c| *c.borrow_mut() = b);
    }
}

/// Receives the next frame that came *in* on a packet socket (frames the host sent are
/// skipped), waiting at most `timeout_ms`; `Ok(None)` when none came.
pub(crate) fn packet_recv_incoming(
    fd: BorrowedFd<'_>,
    timeout_ms: i32,
) -> io::Result<Option<Vec<u8>>> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
    // One receive buffer per thread, lent for the call: a frame costs no 64 KiB allocation.
    let mut lent = Lent::take();
    let buf = &mut lent.0;
    loop {
        // SAFETY: sockaddr_ll, msghdr, iovec and the control buffer are plain integers,
        // pointers and arrays; all-zero is a valid value for each.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        let sll_ptr: *mut libc::sockaddr_ll = &mut sll;
        msg.msg_name = sll_ptr.cast::<libc::c_void>();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast::<libc::c_void>();
        msg.msg_controllen = size_of::<[u64; 16]>();
        // SAFETY: recvmsg writes into the buffers `msg` points at (the frame buffer, the address
        // and the control buffer), all live and exclusively borrowed for the call, within the
        // lengths `msg` gives.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
        if n >= 0 {
            if sll.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut frame = buf[..n as usize].to_vec();
            // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
            // `msg_controllen`; a PACKET_AUXDATA message carries one tpacket_auxdata, read
            // unaligned.
            let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !cmsg.is_null() {
                // SAFETY: `cmsg` is non-null and inside the control buffer (see above).
                let (level, ty) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
                if level == libc::SOL_PACKET && ty == libc::PACKET_AUXDATA {
                    // SAFETY: as above; the data holds a tpacket_auxdata.
                    let aux: libc::tpacket_auxdata = unsafe {
                        std::ptr::read_unaligned(
                            libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>(),
                        )
                    };
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                        frame.splice(12..12, tag);
                    }
                }
                // SAFETY: as above.
                cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
            }
            return Ok(Some(frame));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes one live pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32 + 1) };
    }
}

/// Sends `frame` out of interface `ifindex` on a packet socket, through the qdisc layer (so
/// TC egress programs see it), with the frame's own ethertype as its protocol.
pub(crate) fn packet_send(fd: BorrowedFd<'_>, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain integers and arrays; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_protocol = frame
        .get(12..14)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
    sll.sll_halen = 6;
    if let Some(dst) = frame.get(..6) {
        sll.sll_addr[..6].copy_from_slice(dst);
    }
    let sll_ptr: *const libc::sockaddr_ll = &sll;
    // SAFETY: sendto reads `frame.len()` bytes from a live slice and one live sockaddr_ll for
    // the duration of the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast::<libc::c_void>(),
            frame.len(),
            0,
            sll_ptr.cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a non-blocking raw IP socket (IPv4 or IPv6) of protocol `proto` in the calling
/// thread's namespace: it receives a copy of every packet of that protocol the stack delivers
/// locally (after netfilter's INPUT accepted it).
pub(crate) fn raw_ip_socket(v6: bool, proto: u8) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful socket() returns a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits up to `timeout_ms` until one of `fds` is readable; whether one is.
pub(crate) fn poll_any(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll reads and writes `p.len()` live pollfds.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

/// Receives one datagram from a non-blocking socket into `buf`: its length, or `None` when
/// nothing is waiting.
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: recv writes at most `buf.len()` bytes into a live, exclusively borrowed buffer.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EAGAIN) {
        return Ok(None);
    }
    Err(e)
}

/// A NETLINK_ROUTE socket subscribed to the link multicast group (`RTMGRP_LINK`): interfaces
/// created, changed and deleted in the calling thread's network namespace.
pub(crate) fn link_events_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful socket() returns a new descriptor nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: bind reads `size_of::<sockaddr_nl>()` bytes of a live sockaddr_nl.
    let rc = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// Every interface of the calling thread's network namespace: (index, name).
pub(crate) fn interfaces() -> io::Result<Vec<(u32, String)>> {
    // SAFETY: if_nameindex allocates an array it owns until if_freenameindex.
    let head = unsafe { libc::if_nameindex() };
    if head.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    // SAFETY: the array ends with an entry whose index is 0 and name is null; every name
    // before it is a NUL-terminated string that lives until if_freenameindex.
    unsafe {
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*p).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(((*p).if_index, name));
            p = p.add(1);
        }
        libc::if_freenameindex(head);
    }
    Ok(out)
}
