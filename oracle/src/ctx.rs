//! The context as rbpf is given it. The kernel's `xdp_md` and `__sk_buff` hold `data`,
//! `data_end` and `data_meta` as 32-bit fields the verifier rewrites into loads of the real
//! 64-bit pointers (`convert_ctx_access`); rbpf runs on host addresses, so this crate does the
//! same rewriting (see `rewrite`) towards 64-bit slots placed after the kernel's layout.
//!
//! One buffer holds everything the program may touch besides its stack and the maps: the
//! context image (the kernel's layout for scalar fields, then the pointer slots), then the
//! packet with its headroom and tailroom. A load of a pointer field the rewriting missed reads
//! a poisoned value (`data` 0, `data_end` all ones), so it faults in rbpf instead of
//! silently reading the wrong bytes.

use nfcc_bpf::ProgType;

/// Bytes of the context image: the kernel's `__sk_buff` (192) and the slots below.
pub(crate) const IMAGE: usize = 256;
/// The 64-bit `data` pointer.
pub(crate) const DATA: usize = 192;
/// The 64-bit `data_end` pointer.
pub(crate) const DATA_END: usize = 200;
/// The 64-bit `data_meta` pointer (no metadata: equal to `data`).
pub(crate) const DATA_META: usize = 208;
/// Where the prologue stores r10 at entry, so helpers can tell the stack's bounds.
pub(crate) const STACK_TOP: usize = 216;
/// Headroom before the frame (XDP_PACKET_HEADROOM) and room after it.
pub(crate) const HEADROOM: usize = 256;
const TAILROOM: usize = 256;

/// The pointer fields of each context: (kernel offset, slot).
fn pointer_fields(hook: ProgType) -> [(i64, usize); 3] {
    match hook {
        ProgType::Xdp => [(0, DATA), (4, DATA_END), (8, DATA_META)],
        ProgType::Tc => [(76, DATA), (80, DATA_END), (140, DATA_META)],
    }
}

/// The slot a kernel context offset is rewritten to, if it is a pointer field.
pub(crate) fn pointer_slot(hook: ProgType, offset: i64) -> Option<usize> {
    pointer_fields(hook)
        .iter()
        .find(|(o, _)| *o == offset)
        .map(|(_, s)| *s)
}

/// What the context's scalar fields say about the frame's arrival.
pub(crate) struct Arrival {
    /// The interface (`ingress_ifindex`, `skb->ifindex`).
    pub(crate) ifindex: u32,
    /// The receive queue (XDP).
    pub(crate) rxq: u32,
    /// `skb->mark` on entry (TC).
    pub(crate) mark: u32,
}

/// The buffer for one run: the context image, then headroom, `frame`, tailroom. The pointer
/// slots are filled by [`set_pointers`] once the buffer has its final address.
pub(crate) fn buffer(hook: ProgType, arrival: &Arrival, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; IMAGE + HEADROOM + frame.len() + TAILROOM];
    buf[IMAGE + HEADROOM..IMAGE + HEADROOM + frame.len()].copy_from_slice(frame);
    let mut put = |off: usize, v: u32| buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
    // Scalar fields at the kernel's offsets.
    let scalars: Vec<(usize, u32)> = match hook {
        ProgType::Xdp => vec![(12, arrival.ifindex), (16, arrival.rxq)],
        ProgType::Tc => {
            // skb->protocol holds the ethertype in network order (its bytes as on the wire),
            // as eth_type_trans sets it.
            let proto = frame
                .get(12..14)
                .map_or(0, |t| u32::from(u16::from_le_bytes([t[0], t[1]])));
            vec![
                (0, frame.len() as u32),
                (8, arrival.mark),
                (16, proto),
                (36, arrival.ifindex),
                (40, arrival.ifindex),
            ]
        }
    };
    for (off, v) in scalars {
        put(off, v);
    }
    // The poison described in the module doc.
    for (off, slot) in pointer_fields(hook) {
        put(off as usize, if slot == DATA_END { u32::MAX } else { 0 });
    }
    buf
}

/// Fills the pointer slots of `buf` (whose first byte is at `base`) for a packet at
/// `[data, data_end)` of the buffer.
pub(crate) fn set_pointers(buf: &mut [u8], base: u64, data: usize, data_end: usize) {
    let mut put = |off: usize, v: u64| buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(DATA, base + data as u64);
    put(DATA_END, base + data_end as u64);
    put(DATA_META, base + data as u64);
}

/// The packet's bounds as the run left them in `image` (the context image of a buffer of
/// `len` bytes at `base`), as buffer offsets; `None` if a pointer slot no longer points into
/// the buffer's packet area.
pub(crate) fn bounds(image: &[u8], base: u64, len: usize) -> Option<(usize, usize)> {
    let get = |off: usize| {
        let b = image.get(off..off + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let (d, e) = (
        get(DATA)?.checked_sub(base)?,
        get(DATA_END)?.checked_sub(base)?,
    );
    (IMAGE as u64 <= d && d <= e && e <= len as u64).then_some((d as usize, e as usize))
}

/// The first byte of the packet in a fresh buffer.
pub(crate) const FRAME_AT: usize = IMAGE + HEADROOM;
