//! Host memory as rbpf's helpers see it: the one place this crate reads or writes through an
//! address a program handed over.
//!
//! rbpf runs programs on host addresses and calls helpers with raw register values, so a map
//! key or a checksum buffer arrives as an address. Every address is checked against the
//! regions the run owns — the context-and-packet buffer, the map value slabs, and rbpf's stack
//! (whose top the rewritten program's first instruction stores into the context image) —
//! before a byte is touched; an access outside them is refused, never made. rbpf itself hands
//! the program's memory over as shared slices and writes through them; the helpers write the
//! run's buffer the same way, through the pointer it was created from.
#![allow(unsafe_code)]

/// A region of host memory owned by the run: `[start, start + len)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    pub(crate) start: u64,
    pub(crate) len: usize,
}

impl Region {
    fn holds(&self, addr: u64, len: usize) -> bool {
        addr >= self.start
            && addr
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.start + self.len as u64)
    }
}

/// The regions of one run.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// The context image and the packet (see `ctx`).
    pub(crate) buf: Option<Region>,
    /// Each map's value slab, by map index.
    pub(crate) slabs: Vec<Region>,
    /// rbpf's stack, once its top is known.
    pub(crate) stack: Option<Region>,
}

/// rbpf's stack: one block of this size, every frame inside it.
const STACK: usize = 512;

impl Memory {
    fn owns(&self, addr: u64, len: usize) -> bool {
        self.buf
            .iter()
            .chain(&self.slabs)
            .chain(&self.stack)
            .any(|r| r.holds(addr, len))
    }

    /// Learns where rbpf's stack is from the top the prologue stored at `slot` of the buffer.
    pub(crate) fn find_stack(&mut self, slot: usize) {
        if self.stack.is_some() {
            return;
        }
        let top = self
            .read(self.buf.map_or(0, |b| b.start) + slot as u64, 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        self.stack = top.and_then(|t| {
            Some(Region {
                start: t.checked_sub(STACK as u64)?,
                len: STACK,
            })
        });
    }

    /// A copy of `[addr, addr + len)`, if the run owns all of it.
    pub(crate) fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        if !self.owns(addr, len) {
            return None;
        }
        // SAFETY: the range lies inside one region this run owns (its buffer, a map slab or
        // rbpf's stack), all alive for the whole run, and rbpf is not executing while a helper
        // runs.
        Some(unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec())
    }

    /// Writes `bytes` at `addr`, if the run owns the range; whether it did.
    pub(crate) fn write(&self, addr: u64, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        if !self.owns(addr, bytes.len()) {
            return false;
        }
        // SAFETY: as in `read`; the regions are writable memory (a Vec's heap block each, or
        // rbpf's stack vector), and `bytes` is a copy, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len());
        }
        true
    }
}
