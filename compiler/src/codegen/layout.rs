//! The packet vector's layout: where each loaded field, key buffer, table verdict and helper
//! argument area lives (offsets from r9), and the stack slots below r10 that map keys and
//! saved pointers use. Everything is sized from the IR before any code is emitted.

use crate::ir::{Action, Cond, KeyPart, MapPurpose, Program};

/// Byte offsets of the packet vector.
pub(super) struct Layout {
    pub(super) slots: Vec<i16>,
    /// Where the LPM key is assembled (4-byte prefix length, then the address).
    pub(super) lpm_key: i16,
    /// The packet length (always stored).
    pub(super) pkt_len: i16,
    /// The L4 payload's offset from the frame start (valid when the payload bit is set).
    pub(super) payload_off: i16,
    /// The clock, read once per limiter evaluation.
    pub(super) now: i16,
    /// Where counter and limiter keys are assembled.
    pub(super) keybuf: i16,
    /// Where a new counter or limiter value is assembled.
    pub(super) valbuf: i16,
    /// The L3 header's offset from the frame start.
    pub(super) l3_off: i16,
    /// The L4 header's offset from the frame start.
    pub(super) l4_off: i16,
    /// One word per table: the verdict of its last hit.
    pub(super) tables: i16,
    /// A classifier's dimensions, one u32 each, so a tree node can name one by index.
    pub(super) dims: i16,
    /// Where a tuple's key is assembled: its id, then the masked dimensions (u32 each).
    pub(super) tuple_key: i16,
    /// The half of a classifier's data this packet reads (u32; see `ir::Select`).
    pub(super) select: i16,
    /// A sample record being assembled: rule (u32), length (u32), the frame's first bytes.
    pub(super) samplebuf: i16,
    /// The `bpf_fib_lookup` parameters (64 bytes) of `balance ... via fib`.
    pub(super) fibbuf: i16,
    /// What `balance ... encap` carries across the packet's growth (`encap::AREA` bytes).
    pub(super) encbuf: i16,
    pub(super) size: u32,
}

/// Bytes of a frame copied into a sample record.
pub(super) const SAMPLE_BYTES: i32 = 128;

/// Stack slot holding a dynamic prefix set's length-table pointer across its lookups.
pub(super) const LENGTHS_PTR: i16 = -24;

/// Stack bytes for map keys and saved pointers (`r10 - 4` .. `r10 - 32`).
pub(super) const STACK_KEYS: u32 = 32;

pub(super) fn layout(p: &Program) -> Layout {
    let mut off = 8i16; // presence word at 0
    let pkt_len = off;
    off += 8;
    let mut slots = Vec::new();
    for f in &p.fields {
        slots.push(off);
        off += if f.field.ty().bits() > 64 { 16 } else { 8 };
    }
    // Prefix keys are {u32 length, value}: starting 4 bytes into the area puts the value on an
    // 8-byte boundary, as stack stores (the NIC's vector) must be.
    let lpm_key = off + 4;
    off += 24;
    let payload_off = off;
    let now = off + 8;
    let valbuf = off + 16;
    let l3_off = off + 32;
    let l4_off = off + 40;
    let keybuf = off + 48;
    let key_max = p
        .maps
        .iter()
        .filter(|m| {
            matches!(
                m.purpose,
                MapPurpose::Counter
                    | MapPurpose::Limiter
                    | MapPurpose::Table
                    | MapPurpose::MergedRules
            )
        })
        .map(|m| m.key_size as i16)
        .max()
        .unwrap_or(0);
    // Balance keys are hashed from the key buffer too.
    let balance_max = actions(p)
        .filter_map(|a| match a {
            Action::Balance { key, .. } => Some(key_width(key)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let key_max = key_max.max(balance_max);
    // Key parts are written in whole words, up to 8 bytes past the key's end.
    // Everything after the key buffer is 8-byte aligned: the NIC's vector is on the stack,
    // where the verifier refuses misaligned access.
    off = (keybuf + key_max + 16 + 7) & !7;
    let tables = off;
    let slots_needed = p
        .conds
        .iter()
        .filter_map(|c| match c {
            Cond::Match { slot, .. } | Cond::Classify { slot, .. } => Some(*slot as i16 + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    off += 8 * slots_needed;
    let dims = off;
    if p.conds.iter().any(|c| matches!(c, Cond::Classify { .. })) {
        off += 4 * crate::ir::classifier::MAX_DIMS as i16;
    }
    let tuple_key = off;
    if p.conds.iter().any(|c| {
        matches!(
            c,
            Cond::Classify {
                tuples: Some(_),
                ..
            }
        )
    }) {
        off += 8 + 4 * crate::ir::classifier::MAX_DIMS as i16;
    }
    let select = off;
    if p.conds.iter().any(|c| {
        matches!(
            c,
            Cond::Classify {
                select: Some(_),
                ..
            }
        )
    }) {
        off += 8;
    }
    let samplebuf = off;
    if p.maps.iter().any(|m| m.purpose == MapPurpose::Samples) {
        off += 8 + SAMPLE_BYTES as i16;
    }
    let fibbuf = off;
    let via_fib = actions(p).any(|a| matches!(a, Action::Balance { via_fib: true, .. }));
    if via_fib {
        off += 64;
    }
    let encbuf = off;
    let encap = actions(p).any(|a| matches!(a, Action::Balance { encap: Some(_), .. }));
    if encap {
        off += super::encap::AREA;
    }
    Layout {
        slots,
        lpm_key,
        pkt_len,
        payload_off,
        now,
        keybuf,
        valbuf,
        l3_off,
        l4_off,
        tables,
        dims,
        tuple_key,
        select,
        samplebuf,
        fibbuf,
        encbuf,
        size: off as u32,
    }
}

/// Every action of the program's rules and default.
fn actions(p: &Program) -> impl Iterator<Item = &Action> {
    p.rules
        .iter()
        .flat_map(|r| &r.actions)
        .chain(&p.default_actions)
}

/// Bytes of a key built from `key`.
pub(super) fn key_width(key: &[KeyPart]) -> i16 {
    key.iter()
        .map(|k| match k {
            KeyPart::Raw(_, w) | KeyPart::Host(_, w) | KeyPart::Masked(_, w, _) => *w as i16,
            KeyPart::Const(b) => b.len() as i16,
            KeyPart::Ip { .. } => 16,
            KeyPart::IpTagged { .. } => 17,
        })
        .sum()
}
