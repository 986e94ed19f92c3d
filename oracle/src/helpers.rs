//! The kernel helpers as the rbpf engine provides them: map operations on the emulator's maps
//! (values handed out as addresses in their slabs), the test clock, prandom, redirects,
//! checksums, head and tail adjustment, byte loads, ring-buffer and perf output, the FIB stub.
//!
//! rbpf takes helpers as plain functions of five registers, so the run's state — the maps
//! moved out of the emulator for the run, the memory regions, the environment — sits in a
//! thread-local [`Machine`] for as long as rbpf executes. A helper that is handed memory the
//! run does not own records a fault and returns an error value; the run then fails with it
//! (rbpf cannot be stopped from inside a helper).

use crate::abi::{Memory, Region};
use crate::ctx;
use nfcc_bpf::{Helper, ProgType};
use nfcc_emulator::maps::{EmuMap, MapKind};
use nfcc_emulator::{Env, Profile};
use std::cell::RefCell;

/// What a map reference (`ld_imm64` with source 1) becomes: this tag or'ed with the map's
/// index. Not an address in any region, so a program dereferencing it faults in rbpf.
pub(crate) const MAP_TAG: u64 = 0xfeed_0000_0000_0000;

/// The state of one run, reachable from the helpers.
pub(crate) struct Machine {
    pub(crate) maps: Vec<EmuMap>,
    pub(crate) mem: Memory,
    pub(crate) env: Env,
    pub(crate) hook: ProgType,
    pub(crate) redirect: Option<u32>,
    pub(crate) xsk: Option<u32>,
    /// The first helper fault of the run.
    pub(crate) fault: Option<String>,
}

thread_local! {
    static MACHINE: RefCell<Option<Machine>> = const { RefCell::new(None) };
}

/// Makes `m` the state the helpers see, until [`uninstall`].
pub(crate) fn install(m: Machine) {
    MACHINE.with(|c| *c.borrow_mut() = Some(m));
}

/// Takes the state back.
pub(crate) fn uninstall() -> Option<Machine> {
    MACHINE.with(|c| c.borrow_mut().take())
}

/// Runs one helper on the installed state: an error is recorded as the run's fault and the
/// program sees `-EFAULT`.
fn call(f: impl FnOnce(&mut Machine) -> Result<u64, String>) -> u64 {
    MACHINE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(m) = c.as_mut() else {
            return -14i64 as u64;
        };
        m.mem.find_stack(ctx::STACK_TOP);
        match f(m) {
            Ok(v) => v,
            Err(e) => {
                m.fault.get_or_insert(e);
                -14i64 as u64
            }
        }
    })
}

impl Machine {
    fn map(&self, handle: u64) -> Result<usize, String> {
        let i = (handle & 0xffff_ffff) as usize;
        if handle & !0xffff_ffff != MAP_TAG || i >= self.maps.len() {
            return Err(format!("{handle:#x} passed where a map is expected"));
        }
        Ok(i)
    }

    fn read(&self, addr: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
        self.mem
            .read(addr, len)
            .ok_or_else(|| format!("{what} of {len} bytes at {addr:#x} outside the run's memory"))
    }

    fn lookup(&mut self, handle: u64, key: u64) -> Result<u64, String> {
        let m = self.map(handle)?;
        let key = self.read(key, self.maps[m].key_size, "map key")?;
        let map = &mut self.maps[m];
        Ok(match map.slot_of(&key) {
            Some(slot) => self.mem.slabs[m].start + (slot * map.value_size) as u64,
            None => 0,
        })
    }

    fn update(&mut self, handle: u64, key: u64, value: u64, flags: u64) -> Result<u64, String> {
        let m = self.map(handle)?;
        let key = self.read(key, self.maps[m].key_size, "map key")?;
        let value = self.read(value, self.maps[m].value_size, "map value")?;
        Ok(match self.maps[m].update(&key, &value, flags) {
            Ok(_) => 0,
            Err(e) => e.errno() as u64,
        })
    }

    fn delete(&mut self, handle: u64, key: u64) -> Result<u64, String> {
        let m = self.map(handle)?;
        let key = self.read(key, self.maps[m].key_size, "map key")?;
        Ok(match self.maps[m].delete(&key) {
            Ok(()) => 0,
            Err(e) => e.errno() as u64,
        })
    }

    fn record(&mut self, handle: u64, data: u64, len: u64) -> Result<u64, String> {
        let m = self.map(handle)?;
        let data = self.read(data, len as usize, "event record")?;
        self.maps[m].records.push(data);
        Ok(0)
    }

    /// The packet's bounds in the buffer, as the context's slots hold them now.
    fn packet(&self) -> Result<(Region, usize, usize), String> {
        let buf = self.mem.buf.ok_or("no packet buffer")?;
        let image = self.read(buf.start, ctx::IMAGE, "context")?;
        let (d, e) =
            ctx::bounds(&image, buf.start, buf.len).ok_or("the packet pointers are corrupt")?;
        Ok((buf, d, e))
    }

    fn set_packet(&self, buf: Region, data: usize, end: usize) -> Result<(), String> {
        let mut slots = [0u8; ctx::IMAGE];
        ctx::set_pointers(&mut slots, buf.start, data, end);
        let ok = self.mem.write(
            buf.start + ctx::DATA as u64,
            &slots[ctx::DATA..ctx::STACK_TOP],
        );
        ok.then_some(())
            .ok_or_else(|| "cannot write the context".to_string())
    }

    fn adjust(&mut self, head: bool, delta: u64) -> Result<u64, String> {
        let delta = delta as i32 as i64;
        let (buf, data, end) = self.packet()?;
        let (lo, hi) = (ctx::IMAGE as i64, buf.len as i64);
        let (d, e) = if head {
            (data as i64 + delta, end as i64)
        } else {
            (data as i64, end as i64 + delta)
        };
        // At least an Ethernet header stays, within the headroom and the tailroom.
        if d < lo || e > hi || d + 14 > e {
            return Ok(-22i64 as u64);
        }
        if !head && delta > 0 {
            let zeros = vec![0u8; delta as usize];
            self.mem.write(buf.start + end as u64, &zeros);
        }
        self.set_packet(buf, d as usize, e as usize)?;
        Ok(0)
    }

    /// `bpf_skb_adjust_room` in `BPF_ADJ_ROOM_MAC` mode on an IPv4 or IPv6 frame: the MAC
    /// header moves, the room after it is zeroed (the emulator's reading of the kernel).
    fn adjust_room(&mut self, diff: u64, mode: u64) -> Result<u64, String> {
        const ENOTSUPP: i64 = -524;
        let diff = diff as i32 as i64;
        let (buf, data, end) = self.packet()?;
        let mac = self.read(buf.start + data as u64, 14.min(end - data), "packet")?;
        let ip = mac.len() == 14 && matches!([mac[12], mac[13]], [0x08, 0x00] | [0x86, 0xdd]);
        if self.hook == ProgType::Xdp || mode != nfcc_bpf::helper::adjust_room::MODE_MAC || !ip {
            return Ok(ENOTSUPP as u64);
        }
        let d = data as i64 - diff;
        if d < ctx::IMAGE as i64 || (diff < 0 && end as i64 - d < 14) {
            return Ok(-22i64 as u64);
        }
        let d = d as usize;
        let mut head = mac;
        if diff > 0 {
            head.extend(std::iter::repeat_n(0u8, diff as usize));
        }
        if !self.mem.write(buf.start + d as u64, &head) {
            return Err("adjust_room outside the packet buffer".into());
        }
        self.set_packet(buf, d, end)?;
        Ok(0)
    }

    fn load_bytes(&mut self, offset: u64, to: u64, len: u64) -> Result<u64, String> {
        let (buf, data, end) = self.packet()?;
        let (off, len) = (offset as usize, len as usize);
        if off.checked_add(len).is_none_or(|x| x > end - data) {
            return Ok(-14i64 as u64);
        }
        let bytes = self.read(buf.start + (data + off) as u64, len, "packet")?;
        if !self.mem.write(to, &bytes) {
            return Err(format!("load_bytes into {to:#x}, outside the run's memory"));
        }
        Ok(0)
    }

    fn csum_diff(
        &self,
        from: u64,
        from_len: u64,
        to: u64,
        to_len: u64,
        seed: u64,
    ) -> Result<u64, String> {
        if !from_len.is_multiple_of(4) || !to_len.is_multiple_of(4) {
            return Ok(-22i64 as u64);
        }
        let from = self.read(from, from_len as usize, "csum_diff input")?;
        let to = self.read(to, to_len as usize, "csum_diff input")?;
        let word = |w: &[u8]| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        let mut sum = (seed & 0xffff_ffff)
            + from.chunks(4).map(|w| 0xffff_ffff - word(w)).sum::<u64>()
            + to.chunks(4).map(word).sum::<u64>();
        while sum >> 32 != 0 {
            sum = (sum & 0xffff_ffff) + (sum >> 32);
        }
        Ok(sum)
    }

    fn redirect_map(&mut self, handle: u64, key: u64, flags: u64) -> Result<u64, String> {
        let m = self.map(handle)?;
        let map = &mut self.maps[m];
        match map.lookup(&(key as u32).to_le_bytes()) {
            Some(v) if map.kind == MapKind::DevMap && v.len() >= 4 => {
                self.redirect = Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                Ok(4)
            }
            // A socket is bound on that queue: the frame goes to it.
            Some(_) if map.kind == MapKind::XskMap => {
                self.xsk = Some(key as u32);
                Ok(4)
            }
            _ => Ok(flags & 3),
        }
    }

    fn fib_lookup(&mut self, params: u64) -> Result<u64, String> {
        let p = self.read(params, 64, "fib_lookup parameters")?;
        let dst = match p[0] {
            2 => u128::from(u32::from_be_bytes([p[32], p[33], p[34], p[35]])),
            10 => u128::from_be_bytes(p[32..48].try_into().unwrap_or([0; 16])),
            _ => return Ok(u64::MAX),
        };
        let Some(route) = self.env.fib.get(&dst).copied() else {
            // BPF_FIB_LKUP_RET_NOT_FWDED
            return Ok(4);
        };
        let mut p = p;
        p[8..12].copy_from_slice(&route.ifindex.to_le_bytes());
        p[52..58].copy_from_slice(&route.smac);
        p[58..64].copy_from_slice(&route.dmac);
        if !self.mem.write(params, &p) {
            return Err("fib_lookup parameters are not writable".into());
        }
        Ok(0)
    }
}

/// A helper as rbpf calls it: five registers in, r0 out.
pub(crate) type Fn5 = fn(u64, u64, u64, u64, u64) -> u64;

/// The helper with kernel id `id` under `profile`, if the rbpf engine provides it.
pub(crate) fn helper(id: i32, profile: Profile) -> Option<Fn5> {
    if profile == Profile::Nfp && !nfcc_bpf::nfp::has_helper(id) {
        return None;
    }
    use Helper as H;
    let f: Fn5 = match Helper::from_id(id)? {
        H::MapLookupElem => |a, b, _, _, _| call(|m| m.lookup(a, b)),
        H::MapUpdateElem => |a, b, c, d, _| call(|m| m.update(a, b, c, d)),
        H::MapDeleteElem => |a, b, _, _, _| call(|m| m.delete(a, b)),
        H::KtimeGetNs | H::KtimeGetBootNs | H::KtimeGetCoarseNs => {
            |_, _, _, _, _| call(|m| Ok(m.env.clock_ns))
        }
        // The text is not formatted; the call succeeds.
        H::TracePrintk => |_, _, _, _, _| 0,
        H::GetPrandomU32 => |_, _, _, _, _| call(|m| Ok(m.env.next_random())),
        // One CPU.
        H::GetSmpProcessorId => |_, _, _, _, _| 0,
        H::Redirect => |a, _, _, _, _| {
            call(|m| {
                m.redirect = Some(a as u32);
                Ok(if m.hook == ProgType::Xdp { 4 } else { 7 })
            })
        },
        H::PerfEventOutput => |_, b, _, d, e| call(|m| m.record(b, d, e)),
        H::RingbufOutput => |a, b, c, _, _| call(|m| m.record(a, b, c)),
        H::SkbLoadBytes | H::XdpLoadBytes => |_, b, c, d, _| call(|m| m.load_bytes(b, c, d)),
        H::CsumDiff => |a, b, c, d, e| call(|m| m.csum_diff(a, b, c, d, e)),
        H::XdpAdjustHead => |_, b, _, _, _| call(|m| m.adjust(true, b)),
        H::XdpAdjustTail => |_, b, _, _, _| call(|m| m.adjust(false, b)),
        H::SkbAdjustRoom => |_, b, c, _, _| call(|m| m.adjust_room(b, c)),
        H::RedirectMap => |a, b, c, _, _| call(|m| m.redirect_map(a, b, c)),
        H::FibLookup => |_, b, _, _, _| call(|m| m.fib_lookup(b)),
    };
    Some(f)
}

/// The conformance suite's `unwind` (helper 5): returns its argument; the rewritten program
/// stops when that is 0 (see `rewrite`).
pub(crate) fn unwind(a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

/// The slab regions of `maps`, by index.
pub(crate) fn slabs(maps: &[EmuMap]) -> Vec<Region> {
    maps.iter()
        .map(|m| Region {
            start: m.slab.as_ptr() as u64,
            len: m.slab.len(),
        })
        .collect()
}
