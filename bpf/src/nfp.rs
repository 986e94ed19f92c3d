//! The Netronome NIC's BPF offload ABI: the helpers its firmware implements (the kernel's
//! `nfp` verifier and JIT accept calls to these only). The compiler checks generated NIC code
//! against it and the emulator's NIC profile refuses everything else.

use crate::helper::Helper;

/// Helpers the NIC implements.
pub const HELPERS: [Helper; 7] = [
    Helper::MapLookupElem,
    Helper::MapUpdateElem,
    Helper::MapDeleteElem,
    Helper::GetPrandomU32,
    Helper::PerfEventOutput,
    Helper::XdpAdjustHead,
    Helper::XdpAdjustTail,
];

/// Whether the NIC implements the helper a `call` immediate names.
pub fn has_helper(id: i32) -> bool {
    HELPERS.iter().any(|h| h.id() == id)
}
