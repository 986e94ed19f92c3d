//! Non-terminal actions other than rewrites: `count` (per-key counters), `sample` (frames to
//! a ring buffer) and `balance` (a Maglev pick of a backend, with `via fib` a route and
//! neighbour lookup before the rewrite).

use super::asm::Label;
use super::layout::{key_width, SAMPLE_BYTES};
use super::stats::{add_packet, Len};
use super::Gen;
use crate::ir::{DynPool, KeyPart, MapId};
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R4, R6, R9};
use nfcc_dsl::checked::{Encap, Field, Hook, Target};

/// Where `balance` finds its backends.
pub(super) struct Pick<'a> {
    /// A static pool's, as constants.
    pub(super) backends: &'a [(Field, u128)],
    /// A dynamic pool's maps.
    pub(super) dynamic: Option<&'a DynPool>,
    /// The `sticky` flow table.
    pub(super) flows: Option<MapId>,
}

impl Gen<'_> {
    /// `sample N`: about 1 in N packets (by `bpf_get_prandom_u32`) go to the ring buffer as
    /// {rule, length, first bytes}.
    pub(super) fn sample(&mut self, n: u32, map: MapId, rule: u32) {
        let skip = self.a.label();
        self.a.emit(Insn::call(helper::GET_PRANDOM_U32));
        self.load_const(R1, u64::from(u32::MAX / n.max(1)));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R1, 0), skip);
        let buf = self.lay.samplebuf;
        self.a.emit(Insn::mov64_imm(R1, rule as i32));
        self.a.emit(Insn::stx(Size::W, R9, buf, R1));
        self.a.emit(Insn::ldx(Size::DW, R4, R9, self.lay.pkt_len));
        self.a.emit(Insn::stx(Size::W, R9, buf + 4, R4));
        let short = self.a.label();
        self.a
            .jump(Insn::jmp_imm(Jmp::Le, R4, SAMPLE_BYTES, 0), short);
        self.a.emit(Insn::mov64_imm(R4, SAMPLE_BYTES));
        self.a.bind(short);
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R4, 0, 0), skip);
        // Copy the frame's head with the load-bytes helper, which checks the length itself.
        self.a.emit(Insn::mov64_reg(R1, R6));
        self.a.emit(Insn::mov64_imm(R2, 0));
        self.a.emit(Insn::mov64_reg(R3, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R3, i32::from(buf) + 8));
        let load = if self.p.hook == Hook::Xdp {
            helper::XDP_LOAD_BYTES
        } else {
            helper::SKB_LOAD_BYTES
        };
        self.a.emit(Insn::call(load));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), skip);
        self.a.emit(Insn::ldx(Size::W, R3, R9, buf + 4));
        let short2 = self.a.label();
        self.a
            .jump(Insn::jmp_imm(Jmp::Le, R3, SAMPLE_BYTES, 0), short2);
        self.a.emit(Insn::mov64_imm(R3, SAMPLE_BYTES));
        self.a.bind(short2);
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, 8));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(buf)));
        self.a.emit(Insn::mov64_imm(R4, 0));
        self.a.emit(Insn::call(helper::RINGBUF_OUTPUT));
        self.a.bind(skip);
    }

    /// `balance`: FNV-1a of the key picks a Maglev slot, the slot a backend, and the
    /// destination address is rewritten to it — or, with `encap`, the backend's address is
    /// left in the encapsulation area and the packet wrapped towards it. `failed` is where
    /// the packet passes untouched (no route with `via fib`, encapsulation not possible).
    pub(super) fn balance(
        &mut self,
        table: MapId,
        key: &[KeyPart],
        pick: Pick<'_>,
        via_fib: bool,
        encap: Option<&Encap>,
        failed: Label,
    ) {
        let backends = pick.backends;
        let width = key_width(key);
        self.build_key(key);
        let round = |g: &mut Self, i: i16| {
            g.a.emit(Insn::ldx(Size::B, R1, R9, g.lay.keybuf + i));
            g.a.emit(Insn::alu32_reg(Alu::Xor, R0, R1));
            g.a.emit(Insn::alu32_imm(Alu::Mul, R0, 0x0100_0193));
        };
        let basis = 0x811c_9dc5_u32 as i32;
        let mut start = 0;
        if let Some(KeyPart::Ip { v4, .. }) = key.first() {
            // An IPv4 address's first 12 key bytes are the constant `::ffff:` prefix, whose
            // hash is a constant: 8 rounds of the serial multiply chain instead of 20.
            let (full, rest) = (self.a.label(), self.a.label());
            self.require(*v4, full);
            let mut prefix = [0u8; 12];
            prefix[10..].copy_from_slice(&[0xff, 0xff]);
            let h = crate::balance::fnv1a(&prefix);
            self.a.emit(Insn::alu32_imm(Alu::Mov, R0, h as i32));
            self.a.jump(Insn::ja(0), rest);
            self.a.bind(full);
            self.a.emit(Insn::alu32_imm(Alu::Mov, R0, basis));
            for i in 0..12 {
                round(self, i);
            }
            self.a.bind(rest);
            start = 12;
        } else {
            self.a.emit(Insn::alu32_imm(Alu::Mov, R0, basis));
        }
        for i in start..width {
            round(self, i);
        }
        if encap.is_some() {
            // GUE's source port comes from the hash.
            self.a.emit(Insn::stx(
                Size::W,
                R9,
                self.lay.encbuf + super::encap::HASH,
                R0,
            ));
        }
        // h mod 65537 without `mod` (the NIC has none): with h = a·2^16 + b and
        // 2^16 ≡ -1 (mod 65537), h ≡ b - a, which lies in (-65536, 65536).
        debug_assert_eq!(crate::balance::MAGLEV_SLOTS, 65537);
        self.a.emit(Insn::mov64_reg(R1, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R1, 16));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R1));
        let reduced = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Sge, R0, 0, 0), reduced);
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, 65537));
        self.a.bind(reduced);
        self.a.emit(Insn::stx(Size::W, R10, -16, R0));
        let done = self.a.label();
        if let (Some(d), Some(e)) = (pick.dynamic, encap) {
            self.dynamic_backend(table, d, pick.flows, failed);
            if via_fib {
                self.fib_lookup(!d.v6, None, failed);
            }
            self.encap(e, d.v6, failed);
            if via_fib {
                self.fib_macs();
            }
            return;
        }
        self.a.emit2(Insn::ld_map(R1, table.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, -16));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), done);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.emit(Insn::stx(Size::W, R10, -16, R1));
        let chosen = self.a.label();
        for (i, (field, addr)) in backends.iter().enumerate() {
            let next = self.a.label();
            self.a.emit(Insn::ldx(Size::W, R1, R10, -16));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, i as i32, 0), next);
            if via_fib {
                // The route is looked up before anything is rewritten, so a packet without
                // one passes exactly as it came.
                self.fib_lookup(*field == Field::Ipv4Dst, Some(*addr), failed);
            }
            if encap.is_some() {
                let width = if *field == Field::Ipv4Dst { 4 } else { 16 };
                let bytes = addr.to_be_bytes();
                for (j, chunk) in bytes[16 - width..].chunks(4).enumerate() {
                    let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    self.a.emit(Insn::mov64_imm(R0, w as i32));
                    let at = self.lay.encbuf + super::encap::BACKEND + 4 * j as i16;
                    self.a.emit(Insn::stx(Size::W, R9, at, R0));
                }
                self.a.jump(Insn::ja(0), chosen);
            } else {
                self.rewrite(*field, *addr);
                if via_fib {
                    self.fib_macs();
                }
                self.a.jump(Insn::ja(0), done);
            }
            self.a.bind(next);
        }
        if let (Some(e), false) = (encap, backends.is_empty()) {
            // No backend (a slot out of range cannot happen): nothing changes.
            self.a.jump(Insn::ja(0), done);
            self.a.bind(chosen);
            let v6 = backends.first().is_some_and(|(f, _)| *f == Field::Ipv6Dst);
            self.encap(e, v6, failed);
            if via_fib {
                self.fib_macs();
            }
        }
        self.a.bind(done);
    }

    /// `bpf_fib_lookup` towards `addr` (the backend; `None`: the address in the encapsulation
    /// area) from the interface the packet came in on; jumps to `failed` unless the kernel
    /// found a route and a neighbour. The parameters live in the vector's FIB area.
    fn fib_lookup(&mut self, v4: bool, addr: Option<u128>, failed: Label) {
        let buf = self.lay.fibbuf;
        self.zero(buf, 64);
        self.a.emit(Insn::mov64_imm(R0, if v4 { 2 } else { 10 })); // AF_INET, AF_INET6
        self.a.emit(Insn::stx(Size::B, R9, buf, R0));
        let ifindex = if self.p.hook == Hook::Xdp { 12 } else { 40 };
        self.a.emit(Insn::ldx(Size::W, R0, R6, ifindex));
        self.a.emit(Insn::stx(Size::W, R9, buf + 8, R0));
        // The destination in network order at offset 32.
        let width = if v4 { 4 } else { 16 };
        match addr {
            Some(addr) => {
                let bytes = addr.to_be_bytes();
                for (i, chunk) in bytes[16 - width..].chunks(4).enumerate() {
                    let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    self.a.emit(Insn::mov64_imm(R0, w as i32));
                    self.a
                        .emit(Insn::stx(Size::W, R9, buf + 32 + 4 * i as i16, R0));
                }
            }
            None => {
                for i in 0..width as i16 / 4 {
                    let from = self.lay.encbuf + super::encap::BACKEND + 4 * i;
                    self.a.emit(Insn::ldx(Size::W, R0, R9, from));
                    self.a.emit(Insn::stx(Size::W, R9, buf + 32 + 4 * i, R0));
                }
            }
        }
        self.a.emit(Insn::mov64_reg(R1, R6));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(buf)));
        self.a.emit(Insn::mov64_imm(R3, 64));
        self.a.emit(Insn::mov64_imm(R4, 0));
        self.a.emit(Insn::call(helper::FIB_LOOKUP));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), failed);
    }

    /// Writes the MACs a successful FIB lookup returned (smac at 52, dmac at 58 of the
    /// parameters) into the frame's Ethernet header.
    fn fib_macs(&mut self) {
        let buf = self.lay.fibbuf;
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        let skip = self.a.label();
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a.emit(Insn::mov64_reg(R0, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, 14));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R2, 0), skip);
        // dmac then smac, as four-then-two-byte copies.
        for (from, to) in [(58i16, 0i16), (52, 6)] {
            self.a.emit(Insn::ldx(Size::W, R0, R9, buf + from));
            self.a.emit(Insn::stx(Size::W, R1, to, R0));
            self.a.emit(Insn::ldx(Size::H, R0, R9, buf + from + 4));
            self.a.emit(Insn::stx(Size::H, R1, to + 4, R0));
        }
        self.a.bind(skip);
    }

    /// `count`: add one packet and its bytes to the key's per-CPU counter.
    pub(super) fn count(&mut self, map: MapId, key: &[KeyPart]) {
        self.build_key(key);
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        let new = self.a.label();
        let done = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), new);
        add_packet(
            &mut self.a,
            self.p.target == Target::Nfp,
            Len::Vector(self.lay.pkt_len),
        );
        self.a.jump(Insn::ja(0), done);
        self.a.bind(new);
        self.a.emit(Insn::mov64_imm(R1, 1));
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.valbuf, R1));
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.pkt_len));
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.valbuf + 8, R1));
        self.update(map, 1);
        self.a.bind(done);
    }

    /// `map[keybuf] = valbuf` with `flags` (0 any, 1 only if new).
    pub(super) fn update(&mut self, map: MapId, flags: i32) {
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::mov64_reg(R3, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R3, i32::from(self.lay.valbuf)));
        self.a.emit(Insn::mov64_imm(R4, flags));
        self.a.emit(Insn::call(helper::MAP_UPDATE_ELEM));
    }
}
