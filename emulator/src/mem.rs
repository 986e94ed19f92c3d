//! The virtual address space of a run, shared by the interpreter ([`crate::vm`]) and the JIT
//! ([`crate::jit`]): where each region lives, and the checked memory that resolves an address
//! to the bytes of one region.
//!
//! Both engines must check every access by the same rules, so the rules live here rather than
//! in either: the JIT's inline checks mirror [`Mem::bytes`] and fall back to it (through the
//! machine) for everything they do not cover.

use crate::maps::EmuMap;
use crate::ProgType;

/// Where the packet buffer starts (headroom first).
pub const PKT_BASE: u64 = 0x0100_0000;
/// Where the context starts.
pub const CTX_BASE: u64 = 0x0200_0000;
/// Where the stack starts (frame 0 at the top end).
pub const STACK_BASE: u64 = 0x0300_0000;
/// Map `i`'s values live at `(MAP_VALUES + i) << 32`.
pub(crate) const MAP_VALUES: u64 = 0x100;
/// A map "pointer" from `ld_imm64` is `(MAP_HANDLES << 32) | i`.
pub(crate) const MAP_HANDLES: u64 = 0x400;
/// Bytes of headroom before the frame (XDP_PACKET_HEADROOM) and of room after it.
pub const HEADROOM: usize = 256;
pub(crate) const TAILROOM: usize = 256;
/// Stack bytes per call frame, and frames.
pub(crate) const FRAME: usize = 512;
pub(crate) const MAX_FRAMES: usize = 8;

/// The packet, the context, the stack and the maps of one run.
pub(crate) struct Mem<'a> {
    pub(crate) pkt: &'a mut Vec<u8>,
    pub(crate) data: usize,
    pub(crate) data_end: usize,
    /// The lowest `data` and highest `data_end` of the run: every byte the program could
    /// have written to the packet buffer lies between them.
    pub(crate) touched: (usize, usize),
    pub(crate) ctx: &'a mut Vec<u8>,
    pub(crate) hook: ProgType,
    pub(crate) stack: &'a mut Vec<u8>,
    pub(crate) maps: &'a mut [EmuMap],
}

// `#[inline]` on the access paths: the interpreter calls them for every load and store, and
// they live outside its module (so possibly in another codegen unit).
impl Mem<'_> {
    /// The bytes `[addr, addr + len)` if the whole access lies in one region; `write` also
    /// requires the region (or context field) to be writable.
    #[inline]
    pub(crate) fn bytes(&mut self, addr: u64, len: usize, write: bool) -> Option<&mut [u8]> {
        let len64 = len as u64;
        let end = addr.checked_add(len64)?;
        let hi = addr >> 32;
        if hi == 0 {
            if addr >= STACK_BASE && end <= STACK_BASE + self.stack.len() as u64 {
                let o = (addr - STACK_BASE) as usize;
                return self.stack.get_mut(o..o + len);
            }
            if addr >= CTX_BASE && end <= CTX_BASE + self.ctx.len() as u64 {
                let o = (addr - CTX_BASE) as usize;
                if write && !ctx_writable(self.hook, o, len) {
                    return None;
                }
                return self.ctx.get_mut(o..o + len);
            }
            let (lo, hi) = (PKT_BASE + self.data as u64, PKT_BASE + self.data_end as u64);
            if addr >= lo && end <= hi {
                let o = (addr - PKT_BASE) as usize;
                return self.pkt.get_mut(o..o + len);
            }
            return None;
        }
        let idx = hi.checked_sub(MAP_VALUES)? as usize;
        let map = self.maps.get_mut(idx)?;
        let off = (addr & 0xffff_ffff) as usize;
        let vs = map.value_size;
        // One value at a time, as the verifier allows.
        if vs == 0 || off % vs + len > vs || off + len > map.slab.len() {
            return None;
        }
        map.slab.get_mut(off..off + len)
    }

    #[inline]
    pub(crate) fn load(&mut self, addr: u64, size: usize) -> Option<u64> {
        let b = self.bytes(addr, size, false)?;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    }

    #[inline]
    pub(crate) fn store(&mut self, addr: u64, size: usize, value: u64) -> Option<()> {
        let b = self.bytes(addr, size, true)?;
        b.copy_from_slice(&value.to_le_bytes()[..size]);
        Some(())
    }

    pub(crate) fn read_vec(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.bytes(addr, len, false).map(|b| b.to_vec())
    }

    /// Writes the current `data`/`data_end`/`data_meta` into the context.
    #[inline(always)]
    pub(crate) fn sync_ctx(&mut self) {
        self.touched = (
            self.touched.0.min(self.data),
            self.touched.1.max(self.data_end),
        );
        let data = (PKT_BASE + self.data as u64) as u32;
        let end = (PKT_BASE + self.data_end as u64) as u32;
        let put = |ctx: &mut Vec<u8>, off: usize, v: u32| {
            ctx[off..off + 4].copy_from_slice(&v.to_le_bytes());
        };
        match self.hook {
            ProgType::Xdp => {
                put(self.ctx, 0, data);
                put(self.ctx, 4, end);
                put(self.ctx, 8, data);
            }
            ProgType::Tc => {
                put(self.ctx, 0, end - data);
                put(self.ctx, 76, data);
                put(self.ctx, 80, end);
                put(self.ctx, 140, data);
            }
        }
    }
}

/// The byte ranges of `__sk_buff` a TC program may write.
pub(crate) const SKB_WRITABLE: [(usize, usize); 4] = [(8, 16), (32, 36), (44, 68), (72, 76)];

/// Context fields a program may write: on TC, `mark`, `queue_mapping`, `priority`, `tc_index`,
/// `cb[]` and `tc_classid`; nothing on XDP.
fn ctx_writable(hook: ProgType, off: usize, len: usize) -> bool {
    if hook == ProgType::Xdp {
        return false;
    }
    let end = off + len;
    SKB_WRITABLE.iter().any(|&(a, b)| off >= a && end <= b)
}

/// Sizes of the contexts.
pub(crate) const XDP_CTX: usize = 24;
pub(crate) const SKB_CTX: usize = 192;
