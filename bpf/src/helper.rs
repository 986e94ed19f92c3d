//! Kernel helper functions by name (`enum bpf_func_id` of `include/uapi/linux/bpf.h`): the
//! ones nfcc's code generator calls, and the ones the emulator implements for programs built
//! elsewhere. Nothing outside this module spells a helper as a bare number.

/// A kernel helper function. The discriminant is the kernel's id (`BPF_FUNC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Helper {
    /// `bpf_map_lookup_elem(map, key)`
    MapLookupElem = 1,
    /// `bpf_map_update_elem(map, key, value, flags)`
    MapUpdateElem = 2,
    /// `bpf_map_delete_elem(map, key)`
    MapDeleteElem = 3,
    /// `bpf_ktime_get_ns()`
    KtimeGetNs = 5,
    /// `bpf_trace_printk(fmt, size, ...)`
    TracePrintk = 6,
    /// `bpf_get_prandom_u32()`
    GetPrandomU32 = 7,
    /// `bpf_get_smp_processor_id()`
    GetSmpProcessorId = 8,
    /// `bpf_redirect(ifindex, flags)`
    Redirect = 23,
    /// `bpf_perf_event_output(ctx, map, flags, data, size)`
    PerfEventOutput = 25,
    /// `bpf_skb_load_bytes(skb, offset, to, len)`
    SkbLoadBytes = 26,
    /// `bpf_csum_diff(from, from_size, to, to_size, seed)`
    CsumDiff = 28,
    /// `bpf_xdp_adjust_head(xdp, delta)`
    XdpAdjustHead = 44,
    /// `bpf_skb_adjust_room(skb, len_diff, mode, flags)`
    SkbAdjustRoom = 50,
    /// `bpf_redirect_map(map, key, flags)`
    RedirectMap = 51,
    /// `bpf_xdp_adjust_tail(xdp, delta)`
    XdpAdjustTail = 65,
    /// `bpf_fib_lookup(ctx, params, plen, flags)`
    FibLookup = 69,
    /// `bpf_ktime_get_boot_ns()`
    KtimeGetBootNs = 125,
    /// `bpf_ringbuf_output(ringbuf, data, size, flags)`
    RingbufOutput = 130,
    /// `bpf_ktime_get_coarse_ns()`
    KtimeGetCoarseNs = 160,
    /// `bpf_xdp_load_bytes(xdp, offset, buf, len)`
    XdpLoadBytes = 189,
}

impl Helper {
    /// Every helper this crate names.
    pub const ALL: [Helper; 20] = [
        Helper::MapLookupElem,
        Helper::MapUpdateElem,
        Helper::MapDeleteElem,
        Helper::KtimeGetNs,
        Helper::TracePrintk,
        Helper::GetPrandomU32,
        Helper::GetSmpProcessorId,
        Helper::Redirect,
        Helper::PerfEventOutput,
        Helper::SkbLoadBytes,
        Helper::CsumDiff,
        Helper::XdpAdjustHead,
        Helper::SkbAdjustRoom,
        Helper::RedirectMap,
        Helper::XdpAdjustTail,
        Helper::FibLookup,
        Helper::KtimeGetBootNs,
        Helper::RingbufOutput,
        Helper::KtimeGetCoarseNs,
        Helper::XdpLoadBytes,
    ];

    /// The kernel's id, as a `call` instruction's immediate holds it.
    pub const fn id(self) -> i32 {
        self as i32
    }

    /// The helper a `call` immediate names, if this crate knows it.
    pub fn from_id(id: i32) -> Option<Helper> {
        Helper::ALL.into_iter().find(|h| h.id() == id)
    }

    /// The kernel's name without the `bpf_` prefix, as the verifier's log prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "map_lookup_elem",
            Helper::MapUpdateElem => "map_update_elem",
            Helper::MapDeleteElem => "map_delete_elem",
            Helper::KtimeGetNs => "ktime_get_ns",
            Helper::TracePrintk => "trace_printk",
            Helper::GetPrandomU32 => "get_prandom_u32",
            Helper::GetSmpProcessorId => "get_smp_processor_id",
            Helper::Redirect => "redirect",
            Helper::PerfEventOutput => "perf_event_output",
            Helper::SkbLoadBytes => "skb_load_bytes",
            Helper::CsumDiff => "csum_diff",
            Helper::XdpAdjustHead => "xdp_adjust_head",
            Helper::SkbAdjustRoom => "skb_adjust_room",
            Helper::RedirectMap => "redirect_map",
            Helper::XdpAdjustTail => "xdp_adjust_tail",
            Helper::FibLookup => "fib_lookup",
            Helper::KtimeGetBootNs => "ktime_get_boot_ns",
            Helper::RingbufOutput => "ringbuf_output",
            Helper::KtimeGetCoarseNs => "ktime_get_coarse_ns",
            Helper::XdpLoadBytes => "xdp_load_bytes",
        }
    }

    /// The name of the helper a `call` immediate names, or `unknown`.
    pub fn name_of(id: i32) -> &'static str {
        Helper::from_id(id).map_or("unknown", Helper::name)
    }
}

/// `bpf_map_lookup_elem`
pub const MAP_LOOKUP_ELEM: Helper = Helper::MapLookupElem;
/// `bpf_map_update_elem`
pub const MAP_UPDATE_ELEM: Helper = Helper::MapUpdateElem;
/// `bpf_map_delete_elem`
pub const MAP_DELETE_ELEM: Helper = Helper::MapDeleteElem;
/// `bpf_ktime_get_ns`
pub const KTIME_GET_NS: Helper = Helper::KtimeGetNs;
/// `bpf_get_prandom_u32`
pub const GET_PRANDOM_U32: Helper = Helper::GetPrandomU32;
/// `bpf_redirect`
pub const REDIRECT: Helper = Helper::Redirect;
/// `bpf_perf_event_output`
pub const PERF_EVENT_OUTPUT: Helper = Helper::PerfEventOutput;
/// `bpf_csum_diff`
pub const CSUM_DIFF: Helper = Helper::CsumDiff;
/// `bpf_xdp_adjust_head`
pub const XDP_ADJUST_HEAD: Helper = Helper::XdpAdjustHead;
/// `bpf_skb_adjust_room`
pub const SKB_ADJUST_ROOM: Helper = Helper::SkbAdjustRoom;
/// `bpf_redirect_map`
pub const REDIRECT_MAP: Helper = Helper::RedirectMap;
/// `bpf_fib_lookup`
pub const FIB_LOOKUP: Helper = Helper::FibLookup;
/// `bpf_xdp_adjust_tail`
pub const XDP_ADJUST_TAIL: Helper = Helper::XdpAdjustTail;
/// `bpf_ringbuf_output`
pub const RINGBUF_OUTPUT: Helper = Helper::RingbufOutput;
/// `bpf_skb_load_bytes`
pub const SKB_LOAD_BYTES: Helper = Helper::SkbLoadBytes;
/// `bpf_xdp_load_bytes`
pub const XDP_LOAD_BYTES: Helper = Helper::XdpLoadBytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for h in Helper::ALL {
            assert_eq!(Helper::from_id(h.id()), Some(h));
            assert!(names.insert(h.name()), "{} twice", h.name());
        }
        assert_eq!(Helper::from_id(4), None);
        assert_eq!(Helper::name_of(4), "unknown");
        // Spot checks against include/uapi/linux/bpf.h.
        assert_eq!(Helper::FibLookup.id(), 69);
        assert_eq!(Helper::RingbufOutput.id(), 130);
        assert_eq!(Helper::XdpLoadBytes.id(), 189);
    }
}

/// `bpf_skb_adjust_room`'s modes and flags (`include/uapi/linux/bpf.h`).
pub mod adjust_room {
    /// Room at the network layer: between the L3 and L4 headers.
    pub const MODE_NET: u64 = 0;
    /// Room at the MAC layer: right after the MAC header.
    pub const MODE_MAC: u64 = 1;
    /// Keep the GSO segment size (`BPF_F_ADJ_ROOM_FIXED_GSO`).
    pub const FIXED_GSO: u64 = 1 << 0;
    /// The new room holds an outer IPv4 header (`BPF_F_ADJ_ROOM_ENCAP_L3_IPV4`).
    pub const ENCAP_L3_IPV4: u64 = 1 << 1;
    /// The new room holds an outer IPv6 header (`BPF_F_ADJ_ROOM_ENCAP_L3_IPV6`).
    pub const ENCAP_L3_IPV6: u64 = 1 << 2;
    /// The outer headers end in UDP (`BPF_F_ADJ_ROOM_ENCAP_L4_UDP`).
    pub const ENCAP_L4_UDP: u64 = 1 << 4;
}
