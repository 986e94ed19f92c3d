//! The kernel helpers a program may call, as the interpreter runs them: map operations on the
//! emulated maps, the caller's clock, prandom, redirects, checksums, head and tail
//! adjustment, byte loads, ring-buffer and perf output, the FIB stub — matched by name
//! (`nfcc_bpf::Helper`), NIC semantics applied first. Apart from the instruction loop because
//! it is its own concern: what each helper does, not how instructions execute.

use super::*;

impl Vm<'_, '_> {
    /// `bpf_skb_adjust_room` in `BPF_ADJ_ROOM_MAC` mode: room opened (or closed) right after
    /// the 14-byte MAC header of an IPv4 or IPv6 frame, as the kernel does for a frame whose
    /// MAC header `eth_type_trans` found; the new bytes are zero (the kernel leaves whatever
    /// was there, which a program must overwrite). `BPF_ADJ_ROOM_NET` is not emulated
    /// (-ENOTSUPP, which the kernel also answers for some frames).
    fn adjust_room(&mut self, diff: i64, mode: u64) -> u64 {
        const ENOTSUPP: i64 = -524;
        let (data, end) = (self.mem.data, self.mem.data_end);
        let proto = self.mem.pkt.get(data + 12..data + 14).map(|b| [b[0], b[1]]);
        if self.mem.hook == ProgType::Xdp
            || mode != nfcc_bpf::helper::adjust_room::MODE_MAC
            || !matches!(proto, Some([0x08, 0x00]) | Some([0x86, 0xdd]))
        {
            return ENOTSUPP as u64;
        }
        let new_data = data as i64 - diff;
        if new_data < 0 || (diff < 0 && end as i64 - data as i64 + diff < 14) {
            return -22i64 as u64;
        }
        let new_data = new_data as usize;
        // The MAC header moves to the new start; the room after it is zeroed on growth.
        let mac: Vec<u8> = self.mem.pkt[data..data + 14].to_vec();
        self.mem.pkt[new_data..new_data + 14].copy_from_slice(&mac);
        if diff > 0 {
            self.mem.pkt[new_data + 14..new_data + 14 + diff as usize].fill(0);
        }
        self.mem.data = new_data;
        self.mem.sync_ctx();
        0
    }

    pub(super) fn helper(&mut self, pc: usize, id: i32) -> Result<u64, EmuError> {
        if self.env.profile == Profile::Conformance {
            return self.suite_helper(id);
        }
        if self.env.profile == Profile::Nfp && !nfcc_bpf::nfp::has_helper(id) {
            return Err(EmuError::NicLacks(format!(
                "helper {}",
                Helper::name_of(id)
            )));
        }
        let r = self.regs;
        let Some(helper) = Helper::from_id(id) else {
            return self.unknown_helper(pc, id);
        };
        use Helper as H;
        let ret = match helper {
            H::MapLookupElem => {
                let m = self.map_index(pc, r[1])?;
                self.lookup(pc, m, r[2])?
            }
            H::MapUpdateElem => {
                let m = self.map_index(pc, r[1])?;
                let key = self.read(pc, r[2], self.mem.maps[m].key_size)?;
                let value = self.read(pc, r[3], self.mem.maps[m].value_size)?;
                match self.mem.maps[m].update(&key, &value, r[4]) {
                    Ok(_) => 0,
                    Err(e) => e.errno() as u64,
                }
            }
            H::MapDeleteElem => {
                let m = self.map_index(pc, r[1])?;
                let key = self.read(pc, r[2], self.mem.maps[m].key_size)?;
                match self.mem.maps[m].delete(&key) {
                    Ok(()) => 0,
                    Err(e) => e.errno() as u64,
                }
            }
            // ktime_get_ns, ktime_get_boot_ns, ktime_get_coarse_ns
            H::KtimeGetNs | H::KtimeGetBootNs | H::KtimeGetCoarseNs => self.env.clock_ns,
            // trace_printk: the text is not formatted; the call succeeds.
            H::TracePrintk => 0,
            H::GetPrandomU32 => self.env.next_random(),
            // One CPU.
            H::GetSmpProcessorId => 0,
            H::Redirect => {
                self.redirect = Some(r[1] as u32);
                if self.mem.hook == ProgType::Xdp {
                    4
                } else {
                    7
                }
            }
            // perf_event_output(ctx, map, flags, data, size)
            H::PerfEventOutput => {
                let m = self.map_index(pc, r[2])?;
                let data = self.read(pc, r[4], r[5] as usize)?;
                self.mem.maps[m].records.push(data);
                0
            }
            // skb_load_bytes(ctx, offset, to, len) / xdp_load_bytes(ctx, offset, buf, len)
            H::SkbLoadBytes | H::XdpLoadBytes => {
                let (off, len) = (r[2] as usize, r[4] as usize);
                let avail = self.mem.data_end - self.mem.data;
                if off.checked_add(len).is_none_or(|e| e > avail) {
                    -14i64 as u64
                } else {
                    let src = self.mem.pkt[self.mem.data + off..self.mem.data + off + len].to_vec();
                    match self.mem.bytes(r[3], len, true) {
                        Some(dst) => {
                            dst.copy_from_slice(&src);
                            0
                        }
                        None => {
                            return Err(
                                self.fault(pc, "load_bytes into memory the program cannot write")
                            )
                        }
                    }
                }
            }
            // csum_diff(from, from_size, to, to_size, seed)
            H::CsumDiff => {
                let from = self.read(pc, r[1], r[2] as usize)?;
                let to = self.read(pc, r[3], r[4] as usize)?;
                if from.len() % 4 != 0 || to.len() % 4 != 0 {
                    -22i64 as u64
                } else {
                    let mut sum = r[5] & 0xffff_ffff;
                    for w in from.chunks(4) {
                        sum += u64::from(!u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                    }
                    for w in to.chunks(4) {
                        sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                    }
                    while sum >> 32 != 0 {
                        sum = (sum & 0xffff_ffff) + (sum >> 32);
                    }
                    sum
                }
            }
            // xdp_adjust_head(ctx, delta)
            H::XdpAdjustHead => {
                let delta = r[2] as i32 as i64;
                let data = self.mem.data as i64 + delta;
                if data < 0 || data + 14 > self.mem.data_end as i64 {
                    -22i64 as u64
                } else {
                    self.mem.data = data as usize;
                    self.mem.sync_ctx();
                    0
                }
            }
            // skb_adjust_room(skb, len_diff, mode, flags)
            H::SkbAdjustRoom => self.adjust_room(r[2] as i32 as i64, r[3]),
            // redirect_map(map, key, flags)
            H::RedirectMap => {
                let m = self.map_index(pc, r[1])?;
                let key = (r[2] as u32).to_le_bytes();
                let kind = self.mem.maps[m].kind;
                match self.mem.maps[m].lookup(&key) {
                    Some(v) if kind == MapKind::DevMap && v.len() >= 4 => {
                        self.redirect = Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                        4
                    }
                    // A socket is bound on that queue: the frame goes to it.
                    Some(_) if kind == MapKind::XskMap => {
                        self.xsk = Some(r[2] as u32);
                        4
                    }
                    _ => r[3] & 3,
                }
            }
            // xdp_adjust_tail(ctx, delta)
            H::XdpAdjustTail => {
                let delta = r[2] as i32 as i64;
                let end = self.mem.data_end as i64 + delta;
                if end < self.mem.data as i64 + 14 || end as usize > self.mem.pkt.len() {
                    -22i64 as u64
                } else {
                    if delta > 0 {
                        let (a, b) = (self.mem.data_end, end as usize);
                        self.mem.pkt[a..b].fill(0);
                    }
                    self.mem.data_end = end as usize;
                    self.mem.sync_ctx();
                    0
                }
            }
            // fib_lookup(ctx, params, plen, flags): the caller's stub table.
            H::FibLookup => {
                let params = self.read(pc, r[2], 64)?;
                let family = params[0];
                let dst = match family {
                    2 => u128::from(u32::from_be_bytes([
                        params[32], params[33], params[34], params[35],
                    ])),
                    10 => u128::from_be_bytes(params[32..48].try_into().unwrap_or([0; 16])),
                    _ => return Ok(u64::MAX),
                };
                match self.env.fib.get(&dst).copied() {
                    Some(route) => {
                        let Some(p) = self.mem.bytes(r[2], 64, true) else {
                            return Err(self.fault(pc, "fib_lookup parameters are not writable"));
                        };
                        p[8..12].copy_from_slice(&route.ifindex.to_le_bytes());
                        p[52..58].copy_from_slice(&route.smac);
                        p[58..64].copy_from_slice(&route.dmac);
                        0
                    }
                    // BPF_FIB_LKUP_RET_NOT_FWDED
                    None => 4,
                }
            }
            // ringbuf_output(map, data, size, flags)
            H::RingbufOutput => {
                let m = self.map_index(pc, r[1])?;
                let data = self.read(pc, r[2], r[3] as usize)?;
                self.mem.maps[m].records.push(data);
                0
            }
        };
        // Helpers clobber r1–r5.
        for reg in &mut self.regs[1..6] {
            *reg = 0;
        }
        Ok(ret)
    }

    /// The conformance suite runner's one helper, 5 (`unwind`): it returns its argument, and
    /// when that is 0 the program stops there with r0 = 0.
    fn suite_helper(&mut self, id: i32) -> Result<u64, EmuError> {
        if id != UNWIND {
            return Err(EmuError::Helper(format!(
                "#{id} (the conformance runner has only `unwind`, #{UNWIND})"
            )));
        }
        let v = self.regs[1];
        self.unwound = v == 0;
        self.regs[1..6].fill(0);
        Ok(v)
    }

    /// A helper the emulator does not implement stops the run, naming it.
    fn unknown_helper(&self, _pc: usize, id: i32) -> Result<u64, EmuError> {
        Err(EmuError::Helper(format!("{} (#{id})", Helper::name_of(id))))
    }
}
