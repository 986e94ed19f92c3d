//! Packet rewrites (`set FIELD = VALUE`, `dec ip.ttl`, and the address rewrite of `balance`):
//! the header is re-checked against the frame's bounds, the bytes are written, the IPv4 and L4
//! checksums are updated incrementally (RFC 1624), and the vector's copies of the field take
//! the new value so that later actions see the packet as it now is.

use super::asm::Label;
use super::{bit, Gen};
use crate::encoding::{raw_width, to_raw};
use crate::ir::Encoding;
use nfcc_bpf::insn::{Alu, Insn, Jmp, Reg, Size, R0, R1, R2, R3, R4, R5, R6, R8, R9};
use nfcc_dsl::checked::{Field, Header, Hook};

impl Gen<'_> {
    /// r1 = frame start + the offset in scratch slot `slot` (masked to `mask`), r2 = frame end,
    /// and jumps to `skip` unless `len` bytes are there.
    pub(super) fn header_ptr(&mut self, slot: i16, mask: i32, len: i32, skip: Label) {
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, mask));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R0));
        self.a.emit(Insn::mov64_reg(R0, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, len));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R2, 0), skip);
    }

    /// Jumps to `to` when none of `bits` is set in the presence word.
    pub(super) fn unless_any(&mut self, bits: i32, to: Label) {
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, bits));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), to);
    }

    /// r3 += the checksum delta of one 16-bit word changing from `old` (a register holding a
    /// word as loaded) to `new` (a register).
    fn delta_word(&mut self, old: Reg, new: Reg) {
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R3, old));
        self.a.emit(Insn::alu64_reg(Alu::Add, R3, new));
    }

    /// Applies the delta in r3 to the 16-bit checksum at `ptr + off` (RFC 1624 eqn. 3 in
    /// one's-complement arithmetic, which is byte-order independent, so words stay as
    /// loaded). A UDP checksum of zero means "none" and stays; a zero result becomes 0xFFFF.
    fn apply_csum(&mut self, ptr: Reg, off: i16, udp: bool) {
        let skip = self.a.label();
        self.a.emit(Insn::ldx(Size::H, R0, ptr, off));
        if udp {
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), skip);
        }
        self.a.emit(Insn::alu64_imm(Alu::Xor, R0, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Add, R0, R3));
        for _ in 0..2 {
            self.a.emit(Insn::mov64_reg(R4, R0));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R4, 16));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xffff));
            self.a.emit(Insn::alu64_reg(Alu::Add, R0, R4));
        }
        self.a.emit(Insn::alu64_imm(Alu::Xor, R0, 0xffff));
        if udp {
            let nonzero = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), nonzero);
            self.a.emit(Insn::mov64_imm(R0, 0xffff));
            self.a.bind(nonzero);
        }
        self.a.emit(Insn::stx(Size::H, ptr, off, R0));
        self.a.bind(skip);
    }

    /// Applies the delta in r3 to the L4 checksum (TCP, UDP, and for address changes ICMPv6
    /// through its pseudo-header) when that header is present.
    fn fix_l4(&mut self, pseudo: bool) {
        let l4 = [
            (bit(Header::Tcp), 20, 16, false),
            (bit(Header::Udp), 8, 6, true),
            (bit(Header::Icmpv6), 4, 2, false),
        ];
        let done = self.a.label();
        for (b, len, off, udp) in l4 {
            if b == bit(Header::Icmpv6) && !pseudo {
                continue;
            }
            let next = self.a.label();
            self.unless_any(b, next);
            // r5 keeps the delta's companion pointer; r3 (the delta) survives.
            self.header_ptr(self.lay.l4_off, 0x3fff, len, done);
            self.apply_csum(R1, off, udp);
            self.a.jump(Insn::ja(0), done);
            self.a.bind(next);
        }
        self.a.bind(done);
    }

    /// `set FIELD = VALUE`.
    pub(super) fn rewrite(&mut self, field: Field, value: u128) {
        use Field::*;
        let skip = self.a.label();
        match field {
            EthSrc | EthDst => {
                self.unless_any(bit(Header::Eth), skip);
                self.header_ptr(self.lay.pkt_len, 0, 14, skip);
                let at = if field == EthDst { 0 } else { 6 };
                let b = value.to_be_bytes();
                let lo = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
                let hi = u16::from_le_bytes([b[14], b[15]]);
                self.load_const(R0, u64::from(lo));
                self.a.emit(Insn::stx(Size::W, R1, at, R0));
                self.a.emit(Insn::mov64_imm(R0, i32::from(hi)));
                self.a.emit(Insn::stx(Size::H, R1, at + 4, R0));
                self.refresh_const(&[field], value);
            }
            Ipv4Src | Ipv4Dst => {
                self.unless_any(bit(Header::Ipv4), skip);
                self.header_ptr(self.lay.l3_off, 0x1f, 20, skip);
                let at = if field == Ipv4Src { 12 } else { 16 };
                let new = to_raw(value, 4) as u32;
                self.a.emit(Insn::mov64_imm(R3, 0));
                for w in [0i16, 2] {
                    self.a.emit(Insn::ldx(Size::H, R4, R1, at + w));
                    let nw = (new >> (8 * w)) & 0xffff;
                    self.a.emit(Insn::mov64_imm(R5, nw as i32));
                    self.a.emit(Insn::stx(Size::H, R1, at + w, R5));
                    self.delta_word(R4, R5);
                }
                self.apply_csum(R1, 10, false);
                self.fix_l4(true);
                self.refresh_const(&[field], value);
            }
            Ipv6Src | Ipv6Dst => {
                self.unless_any(bit(Header::Ipv6), skip);
                self.header_ptr(self.lay.l3_off, 0x1f, 40, skip);
                let at = if field == Ipv6Src { 8 } else { 24 };
                let new = to_raw(value, 16);
                self.a.emit(Insn::mov64_imm(R3, 0));
                for w in (0i16..16).step_by(2) {
                    self.a.emit(Insn::ldx(Size::H, R4, R1, at + w));
                    let nw = (new >> (8 * w)) & 0xffff;
                    self.a.emit(Insn::mov64_imm(R5, nw as i32));
                    self.a.emit(Insn::stx(Size::H, R1, at + w, R5));
                    self.delta_word(R4, R5);
                }
                self.fix_l4(true);
                self.refresh_const(&[field], value);
            }
            L4Sport | L4Dport | TcpSport | TcpDport | UdpSport | UdpDport => {
                let bits = match field {
                    TcpSport | TcpDport => bit(Header::Tcp),
                    UdpSport | UdpDport => bit(Header::Udp),
                    _ => bit(Header::Tcp) | bit(Header::Udp),
                };
                self.unless_any(bits, skip);
                self.header_ptr(self.lay.l4_off, 0x3fff, 8, skip);
                let at = if matches!(field, L4Sport | TcpSport | UdpSport) {
                    0
                } else {
                    2
                };
                let new = to_raw(value, 2) as u32;
                self.a.emit(Insn::mov64_imm(R3, 0));
                self.a.emit(Insn::ldx(Size::H, R4, R1, at));
                self.a.emit(Insn::mov64_imm(R5, new as i32));
                self.a.emit(Insn::stx(Size::H, R1, at, R5));
                self.delta_word(R4, R5);
                self.fix_l4(false);
                let aliases: &[Field] = match field {
                    L4Sport => &[TcpSport, UdpSport, L4Sport],
                    L4Dport => &[TcpDport, UdpDport, L4Dport],
                    TcpSport | UdpSport => &[field, L4Sport],
                    _ => &[field, L4Dport],
                };
                self.refresh_const(aliases, value);
            }
            IpTtl | Ipv4Ttl | Ipv6Hoplimit => {
                let v = value as i32 & 0xff;
                if field != Ipv6Hoplimit {
                    self.ttl_v4(|g| g.a.emit(Insn::mov64_imm(R5, v)), skip);
                }
                if field != Ipv4Ttl {
                    self.hoplimit_v6(|g| g.a.emit(Insn::mov64_imm(R5, v)), skip);
                }
            }
            IpDscp | Ipv4Dscp | Ipv6Dscp => {
                let dscp = (value as i32) & 0x3f;
                if field != Ipv6Dscp {
                    let next = self.a.label();
                    self.unless_any(bit(Header::Ipv4), next);
                    self.header_ptr(self.lay.l3_off, 0x1f, 20, next);
                    // The word at 0 holds version/IHL (low byte as loaded) and TOS (high byte).
                    self.a.emit(Insn::ldx(Size::H, R4, R1, 0));
                    self.a.emit(Insn::mov64_reg(R5, R4));
                    self.a.emit(Insn::alu64_imm(Alu::And, R5, 0x03ff));
                    self.a.emit(Insn::alu64_imm(Alu::Or, R5, dscp << 10));
                    self.a.emit(Insn::stx(Size::H, R1, 0, R5));
                    self.a.emit(Insn::mov64_imm(R3, 0));
                    self.delta_word(R4, R5);
                    self.apply_csum(R1, 10, false);
                    self.refresh_const(&[Ipv4Dscp, IpDscp], dscp as u128);
                    self.a.bind(next);
                }
                if field != Ipv4Dscp {
                    self.unless_any(bit(Header::Ipv6), skip);
                    self.header_ptr(self.lay.l3_off, 0x1f, 40, skip);
                    // Traffic class: low nibble of byte 0, high nibble of byte 1; ECN is kept.
                    self.a.emit(Insn::ldx(Size::H, R4, R1, 0));
                    self.a.emit(Insn::alu64_imm(Alu::And, R4, 0x3ff0));
                    self.a.emit(Insn::alu64_imm(
                        Alu::Or,
                        R4,
                        ((dscp >> 2) & 0x0f) | ((dscp & 0x3) << 14),
                    ));
                    self.a.emit(Insn::stx(Size::H, R1, 0, R4));
                    self.refresh_const(&[Ipv6Dscp, IpDscp], dscp as u128);
                }
            }
            _ => {}
        }
        self.a.bind(skip);
    }

    /// After a rewrite, the loaded copies of the rewritten fields take the new value, so that
    /// later actions (a `count` key, a `balance` hash) see the packet as it now is.
    fn refresh_const(&mut self, targets: &[Field], value: u128) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if !targets.contains(&f.field) {
                continue;
            }
            let slot = self.lay.slots[i];
            let v = match f.enc {
                Encoding::Raw => to_raw(value, raw_width(f.field)),
                Encoding::Host => value,
            };
            self.load_const(R0, v as u64);
            self.a.emit(Insn::stx(Size::DW, R9, slot, R0));
            if f.field.ty().bits() > 64 {
                self.load_const(R0, (v >> 64) as u64);
                self.a.emit(Insn::stx(Size::DW, R9, slot + 8, R0));
            }
        }
    }

    /// Like `refresh_const` for a host value computed at run time in `reg`.
    fn refresh_reg(&mut self, targets: &[Field], reg: Reg) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if targets.contains(&f.field) {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.slots[i], reg));
            }
        }
    }

    /// Rewrites the IPv4 TTL, fixing the header checksum: `new` is emitted with the old TTL
    /// in r5 and must leave the new one there.
    fn ttl_v4(&mut self, new: impl Fn(&mut Self), after: Label) {
        let next = self.a.label();
        self.unless_any(bit(Header::Ipv4), next);
        self.header_ptr(self.lay.l3_off, 0x1f, 20, next);
        // The word at 8 holds TTL (low byte as loaded) and protocol (high byte).
        self.a.emit(Insn::ldx(Size::H, R4, R1, 8));
        self.a.emit(Insn::mov64_reg(R5, R4));
        self.a.emit(Insn::alu64_imm(Alu::And, R5, 0xff));
        new(self);
        self.refresh_reg(&[Field::Ipv4Ttl, Field::IpTtl], R5);
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xff00));
        self.a.emit(Insn::alu64_reg(Alu::Or, R5, R0));
        self.a.emit(Insn::stx(Size::H, R1, 8, R5));
        self.a.emit(Insn::mov64_imm(R3, 0));
        self.delta_word(R4, R5);
        self.apply_csum(R1, 10, false);
        self.a.jump(Insn::ja(0), after);
        self.a.bind(next);
    }

    /// Rewrites the IPv6 hop limit to the value `new` leaves in r5 (old value in r5 on entry).
    fn hoplimit_v6(&mut self, new: impl Fn(&mut Self), after: Label) {
        self.unless_any(bit(Header::Ipv6), after);
        self.header_ptr(self.lay.l3_off, 0x1f, 40, after);
        self.a.emit(Insn::ldx(Size::B, R5, R1, 7));
        new(self);
        self.a.emit(Insn::stx(Size::B, R1, 7, R5));
        self.refresh_reg(&[Field::Ipv6Hoplimit, Field::IpTtl], R5);
    }

    /// `dec ip.ttl`: minus one, not below zero.
    pub(super) fn dec_ttl(&mut self) {
        let skip = self.a.label();
        let dec = |g: &mut Self| {
            let zero = g.a.label();
            g.a.jump(Insn::jmp_imm(Jmp::Eq, R5, 0, 0), zero);
            g.a.emit(Insn::alu64_imm(Alu::Sub, R5, 1));
            g.a.bind(zero);
        };
        self.ttl_v4(dec, skip);
        self.hoplimit_v6(dec, skip);
        self.a.bind(skip);
    }
}
