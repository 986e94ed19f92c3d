//! `balance ... encap`: the packet is wrapped in an outer IP header (and for GUE a UDP header)
//! towards the backend whose address the balance step left in the vector's encapsulation area.
//!
//! The steps keep the verifier's rules: everything read from the packet (its TOS, its length,
//! its destination when it is the outer source) is copied into the vector *before* the packet
//! grows, because growing invalidates every packet pointer; after the helper the bounds are
//! checked afresh. On XDP the frame grows at its head (`bpf_xdp_adjust_head`) and the MAC
//! header, VLAN tags included, is moved to the new start by copying its longest form (22
//! bytes, QinQ): the bytes copied past the real MAC header are overwritten by the outer
//! header. On tc, `bpf_skb_adjust_room` in MAC mode opens the room after the 14-byte MAC
//! header with the ENCAP flags (so GSO and checksum offload see an encapsulated packet); a
//! frame with VLAN tags in its bytes passes untouched. The outer IPv4 checksum is summed
//! from the header as written, in one's-complement arithmetic, which does not depend on byte
//! order. The semantics are the evaluator's (`nfcc_dsl::eval`, module `balance`).

use super::asm::Label;
use super::{bit, Gen};
use nfcc_bpf::helper::{self, adjust_room};
use nfcc_bpf::insn::{Alu, Insn, Jmp, Size, R0, R1, R2, R3, R4, R6, R9};
use nfcc_dsl::checked::{Encap, EncapKind, Header, Hook};

// Offsets inside the vector's encapsulation area (`Layout::encbuf`).
/// The backend's address, network order (IPv4 in the first four bytes).
pub(super) const BACKEND: i16 = 0;
/// The outer source address when the packet's destination supplies it.
const SOURCE: i16 = 16;
/// The balance key's hash (u32).
pub(super) const HASH: i16 = 32;
/// The inner TOS or traffic class (u32).
const TOS: i16 = 36;
/// The inner packet's length from its IP header on (u32).
const LEN: i16 = 40;
/// A remembered flow's incarnation while it is checked (u32).
pub(super) const INCARNATION: i16 = 44;
/// The area's size.
pub(super) const AREA: i16 = 48;

/// The longest MAC header the parser accepts: Ethernet and two VLAN tags.
const MAX_MAC: i16 = 22;

impl Gen<'_> {
    /// Encapsulates the packet for the backend in the area; jumps to `failed` (the packet
    /// untouched) when its family is not `v6`'s, or on tc when VLAN tags sit in its bytes, or
    /// when the kernel refuses to grow it.
    pub(super) fn encap(&mut self, e: &Encap, v6: bool, failed: Label) {
        let buf = self.lay.encbuf;
        let ip_len: i16 = if v6 { 40 } else { 20 };
        let overhead = e.overhead(v6) as i16;
        let tc = self.p.hook != Hook::Xdp;
        self.unless_any(bit(if v6 { Header::Ipv6 } else { Header::Ipv4 }), failed);
        if tc {
            self.a.emit(Insn::ldx(Size::DW, R0, R9, self.lay.l3_off));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 14, 0), failed);
        }
        // What the outer header needs from the inner one, read while r1 still points at it.
        self.header_ptr(self.lay.l3_off, 0x1f, i32::from(ip_len), failed);
        if v6 {
            // Traffic class: the low nibble of byte 0, the high nibble of byte 1.
            self.a.emit(Insn::ldx(Size::B, R2, R1, 0));
            self.a.emit(Insn::alu64_imm(Alu::And, R2, 0x0f));
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R2, 4));
            self.a.emit(Insn::ldx(Size::B, R3, R1, 1));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R3, 4));
            self.a.emit(Insn::alu64_reg(Alu::Or, R2, R3));
            self.a.emit(Insn::ldx(Size::H, R3, R1, 4));
            self.a.emit(Insn::to_be(R3, 16));
            self.a.emit(Insn::alu64_imm(Alu::Add, R3, 40));
        } else {
            self.a.emit(Insn::ldx(Size::B, R2, R1, 1));
            self.a.emit(Insn::ldx(Size::H, R3, R1, 2));
            self.a.emit(Insn::to_be(R3, 16));
        }
        self.a.emit(Insn::stx(Size::W, R9, buf + TOS, R2));
        self.a.emit(Insn::stx(Size::W, R9, buf + LEN, R3));
        if e.from.is_none() {
            let dst = if v6 { 24 } else { 16 };
            for i in 0..if v6 { 4 } else { 1 } {
                self.a.emit(Insn::ldx(Size::W, R0, R1, dst + 4 * i));
                self.a
                    .emit(Insn::stx(Size::W, R9, buf + SOURCE + 4 * i, R0));
            }
        }
        // Grow the packet.
        self.a.emit(Insn::mov64_reg(R1, R6));
        if tc {
            let l3 = if v6 {
                adjust_room::ENCAP_L3_IPV6
            } else {
                adjust_room::ENCAP_L3_IPV4
            };
            let l4 = match e.kind {
                EncapKind::Ipip => 0,
                EncapKind::Gue(_) => adjust_room::ENCAP_L4_UDP,
            };
            self.a.emit(Insn::mov64_imm(R2, i32::from(overhead)));
            self.a
                .emit(Insn::mov64_imm(R3, adjust_room::MODE_MAC as i32));
            self.a.emit(Insn::mov64_imm(R4, (l3 | l4) as i32));
            self.a.emit(Insn::call(helper::SKB_ADJUST_ROOM));
        } else {
            self.a.emit(Insn::mov64_imm(R2, -i32::from(overhead)));
            self.a.emit(Insn::call(helper::XDP_ADJUST_HEAD));
        }
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), failed);
        let (data, data_end) = if tc { (76, 80) } else { (0, 4) };
        if !tc {
            // The MAC header to the new start; a frame that held an IP header is long enough
            // for the longest one after the growth, but the verifier must see it checked.
            self.a.emit(Insn::ldx(Size::W, R1, R6, data));
            self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
            self.a.emit(Insn::mov64_reg(R0, R1));
            self.a
                .emit(Insn::alu64_imm(Alu::Add, R0, i32::from(overhead + MAX_MAC)));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R2, 0), failed);
            let mut at = 0;
            while at < MAX_MAC {
                let size = if MAX_MAC - at >= 4 { Size::W } else { Size::H };
                self.a.emit(Insn::ldx(size, R0, R1, overhead + at));
                self.a.emit(Insn::stx(size, R1, at, R0));
                at += if size == Size::W { 4 } else { 2 };
            }
        }
        // r1 = the outer header, with room for all of it.
        self.header_ptr(self.lay.l3_off, 0x1f, i32::from(overhead), failed);
        if v6 {
            self.outer_ipv6(e, overhead);
        } else {
            self.outer_ipv4(e, overhead);
        }
        if let EncapKind::Gue(port) = e.kind {
            self.a.emit(Insn::ldx(Size::W, R0, R9, buf + HASH));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x3fff));
            self.a.emit(Insn::alu64_imm(Alu::Or, R0, 0xc000));
            self.a.emit(Insn::to_be(R0, 16));
            self.a.emit(Insn::stx(Size::H, R1, ip_len, R0));
            self.a
                .emit(Insn::mov64_imm(R0, i32::from(port.swap_bytes())));
            self.a.emit(Insn::stx(Size::H, R1, ip_len + 2, R0));
            self.a.emit(Insn::ldx(Size::W, R0, R9, buf + LEN));
            self.a.emit(Insn::alu64_imm(Alu::Add, R0, 8));
            self.a.emit(Insn::to_be(R0, 16));
            self.a.emit(Insn::stx(Size::H, R1, ip_len + 4, R0));
            self.a.emit(Insn::mov64_imm(R0, 0));
            self.a.emit(Insn::stx(Size::H, R1, ip_len + 6, R0));
        }
    }

    /// The outer source and destination, `width` bytes each, at `r1 + at`.
    fn outer_addresses(&mut self, e: &Encap, at: i16, width: i16) {
        let buf = self.lay.encbuf;
        match e.from {
            Some(a) => {
                let bytes = a.bits.to_be_bytes();
                for (i, chunk) in bytes[16 - width as usize..].chunks(4).enumerate() {
                    let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    self.a.emit(Insn::mov64_imm(R0, w as i32));
                    self.a.emit(Insn::stx(Size::W, R1, at + 4 * i as i16, R0));
                }
            }
            None => {
                for i in 0..width / 4 {
                    self.a
                        .emit(Insn::ldx(Size::W, R0, R9, buf + SOURCE + 4 * i));
                    self.a.emit(Insn::stx(Size::W, R1, at + 4 * i, R0));
                }
            }
        }
        for i in 0..width / 4 {
            self.a
                .emit(Insn::ldx(Size::W, R0, R9, buf + BACKEND + 4 * i));
            self.a.emit(Insn::stx(Size::W, R1, at + width + 4 * i, R0));
        }
    }

    fn proto(e: &Encap, v6: bool) -> i32 {
        match e.kind {
            EncapKind::Ipip if v6 => 41,
            EncapKind::Ipip => 4,
            EncapKind::Gue(_) => 17,
        }
    }

    /// An outer IPv4 header at r1: 0x45, the inner TOS, the total length, id 0, no flags,
    /// TTL 64, the protocol, the checksum over what was written.
    fn outer_ipv4(&mut self, e: &Encap, overhead: i16) {
        let buf = self.lay.encbuf;
        self.a.emit(Insn::mov64_imm(R0, 0x45));
        self.a.emit(Insn::stx(Size::B, R1, 0, R0));
        self.a.emit(Insn::ldx(Size::W, R0, R9, buf + TOS));
        self.a.emit(Insn::stx(Size::B, R1, 1, R0));
        self.a.emit(Insn::ldx(Size::W, R0, R9, buf + LEN));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R0, i32::from(overhead)));
        self.a.emit(Insn::to_be(R0, 16));
        self.a.emit(Insn::stx(Size::H, R1, 2, R0));
        self.a.emit(Insn::mov64_imm(R0, 0));
        self.a.emit(Insn::stx(Size::W, R1, 4, R0));
        self.a.emit(Insn::stx(Size::H, R1, 10, R0));
        let ttl_proto = 64 | (Self::proto(e, false) << 8);
        self.a.emit(Insn::mov64_imm(R0, ttl_proto));
        self.a.emit(Insn::stx(Size::H, R1, 8, R0));
        self.outer_addresses(e, 12, 4);
        // The checksum: the ten words as loaded, folded twice, complemented.
        self.a.emit(Insn::mov64_imm(R3, 0));
        for i in 0..10 {
            self.a.emit(Insn::ldx(Size::H, R0, R1, 2 * i));
            self.a.emit(Insn::alu64_reg(Alu::Add, R3, R0));
        }
        for _ in 0..2 {
            self.a.emit(Insn::mov64_reg(R0, R3));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 16));
            self.a.emit(Insn::alu64_imm(Alu::And, R3, 0xffff));
            self.a.emit(Insn::alu64_reg(Alu::Add, R3, R0));
        }
        self.a.emit(Insn::alu64_imm(Alu::Xor, R3, 0xffff));
        self.a.emit(Insn::stx(Size::H, R1, 10, R3));
    }

    /// An outer IPv6 header at r1: version 6, the inner traffic class, flow label 0, the
    /// payload length, the next header, hop limit 64.
    fn outer_ipv6(&mut self, e: &Encap, overhead: i16) {
        let buf = self.lay.encbuf;
        self.a.emit(Insn::ldx(Size::W, R0, R9, buf + TOS));
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R0, 20));
        self.a.emit(Insn::alu64_imm(Alu::Or, R0, 0x6000_0000));
        self.a.emit(Insn::to_be(R0, 32));
        self.a.emit(Insn::stx(Size::W, R1, 0, R0));
        self.a.emit(Insn::ldx(Size::W, R0, R9, buf + LEN));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R0, i32::from(overhead - 40)));
        self.a.emit(Insn::to_be(R0, 16));
        self.a.emit(Insn::stx(Size::H, R1, 4, R0));
        let next_hop = Self::proto(e, true) | (64 << 8);
        self.a.emit(Insn::mov64_imm(R0, next_hop));
        self.a.emit(Insn::stx(Size::H, R1, 6, R0));
        self.outer_addresses(e, 8, 16);
    }
}
