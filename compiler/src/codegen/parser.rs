//! Part 1 of the program, the parser: walks the frame's headers in order with one bounds check
//! per header, records presence bits, and stores each needed field into the packet vector in
//! the encoding the IR asked for. Only the layers that some condition, key or rewrite needs
//! are parsed.

use super::asm::Label;
use super::{bit, Gen, INNER_VLAN_BIT, PAYLOAD_BIT};
use crate::encoding::raw_capable;
use crate::ir::{Action, Cond, Encoding};
use nfcc_bpf::insn::{Alu, Insn, Jmp, Reg, Size, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9};
use nfcc_dsl::checked::{Field, Header, Hook, Target};
use std::collections::HashSet;

impl Gen<'_> {
    fn needs_any(&self, fs: &[Field]) -> bool {
        fs.iter().any(|f| self.needed.contains(f))
    }

    fn present_needed(&self, h: Header) -> bool {
        self.p
            .conds
            .iter()
            .any(|c| matches!(c, Cond::Present(x) if *x == h))
    }

    /// Stores `reg` into every slot of `field` (raw and/or host encodings), converting.
    /// `reg` holds the raw value (bytes as loaded); `bytes` is the field's width.
    fn store_field(&mut self, field: Field, reg: Reg, bytes: u32) {
        // Raw slots first; then `reg` itself is swapped for the host slot, because every other
        // register carries parser state (r5 is the header length).
        let mut host = None;
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field != field {
                continue;
            }
            let off = self.lay.slots[i];
            if f.enc == Encoding::Raw || !raw_capable(field) || bytes == 1 {
                self.a.emit(Insn::stx(Size::DW, R9, off, reg));
            } else {
                host = Some(off);
            }
        }
        if let Some(off) = host {
            if bytes == 6 {
                // A MAC: swap all eight bytes, then drop the two that were not loaded.
                self.a.emit(Insn::to_be(reg, 64));
                self.a.emit(Insn::alu64_imm(Alu::Rsh, reg, 16));
            } else {
                self.a.emit(Insn::to_be(reg, (bytes * 8) as i32));
            }
            self.a.emit(Insn::stx(Size::DW, R9, off, reg));
        }
    }

    /// Loads `size` bytes at `base + off` into r0 and stores the field if it is needed.
    fn load_field(&mut self, field: Field, base: Reg, off: i16, size: Size) {
        if !self.needed.contains(&field) {
            return;
        }
        self.a.emit(Insn::ldx(size, R0, base, off));
        self.store_field(field, R0, size.bytes() as u32);
    }

    /// A 6-byte MAC at `base + off` as a raw 64-bit value.
    fn load_mac(&mut self, field: Field, base: Reg, off: i16) {
        if !self.needed.contains(&field) {
            return;
        }
        self.a.emit(Insn::ldx(Size::H, R1, base, off + 4));
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R1, 32));
        self.a.emit(Insn::ldx(Size::W, R0, base, off));
        self.a.emit(Insn::alu64_reg(Alu::Or, R0, R1));
        self.store_field(field, R0, 6);
    }

    /// A 16-byte IPv6 address at `base + off` (always raw).
    fn load_v6(&mut self, field: Field, base: Reg, off: i16) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field == field {
                let slot = self.lay.slots[i];
                self.a.emit(Insn::ldx(Size::DW, R0, base, off));
                self.a.emit(Insn::stx(Size::DW, R9, slot, R0));
                self.a.emit(Insn::ldx(Size::DW, R0, base, off + 8));
                self.a.emit(Insn::stx(Size::DW, R9, slot + 8, R0));
            }
        }
    }

    /// Stores a computed (host) value in r0 for `field`.
    fn store_host(&mut self, field: Field) {
        self.store_reg(field, R0);
    }

    /// Stores register `r` as `field`'s value (nothing when the policy does not read it).
    fn store_reg(&mut self, field: Field, r: Reg) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field == field {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.slots[i], r));
            }
        }
    }

    fn set_bits(&mut self, bits: i32) {
        self.a.emit(Insn::alu64_imm(Alu::Or, R3, bits));
    }

    /// The parser. Register use: r3 = presence bits being built, r4 = header pointer,
    /// r2 = next protocol (raw ethertype or IP protocol), r5 = scratch.
    pub(super) fn parse(&mut self) {
        let done = self.a.label();
        self.a.emit(Insn::mov64_imm(R3, 0));
        // pkt.* fields come from the context and the frame length.
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        // skb->len counts non-linear data too; the NIC's frame is linear and its context
        // has only the bounds.
        if self.p.hook.is_tc() && self.p.target == Target::Host {
            self.a.emit(Insn::ldx(Size::W, R0, R6, 0));
        }
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.pkt_len, R0));
        self.store_host(Field::PktLen);
        let ctx_fields: &[(Field, i16)] = if self.p.hook == Hook::Xdp {
            &[(Field::PktIfindex, 12), (Field::PktRxq, 16)]
        } else {
            &[(Field::PktIfindex, 40), (Field::PktMark, 8)]
        };
        for &(f, off) in ctx_fields {
            if self.needed.contains(&f) {
                self.a.emit(Insn::ldx(Size::W, R0, R6, off));
                self.store_host(f);
            }
        }
        // The headers some condition, field or key needs decide which layers are parsed: an
        // IPv6-only policy never walks IPv4 (or ARP), a policy reading no header parses none.
        let mut wanted: HashSet<Header> = self.p.fields.iter().map(|f| f.field.header()).collect();
        for c in &self.p.conds {
            match c {
                Cond::Present(h) => {
                    wanted.insert(*h);
                }
                Cond::Payload { .. } => {
                    wanted.insert(Header::L4);
                }
                _ => {}
            }
        }
        wanted.remove(&Header::Pkt);
        let all = self.rewrites();
        let any_of = |hs: &[Header]| all || hs.iter().any(|h| wanted.contains(h));
        let need_v4 = any_of(&[
            Header::Ipv4,
            Header::Ip,
            Header::Tcp,
            Header::Udp,
            Header::Icmp,
            Header::L4,
            Header::Frag,
        ]);
        let need_v6 = any_of(&[
            Header::Ipv6,
            Header::Ip,
            Header::Tcp,
            Header::Udp,
            Header::Icmpv6,
            Header::L4,
            Header::Frag,
        ]);
        let need_arp = any_of(&[Header::Arp]);
        let need_l3 = need_v4 || need_v6 || need_arp;
        let need_vlan = need_l3
            || self.needs_any(&[
                Field::VlanId,
                Field::VlanPcp,
                Field::VlanInnerId,
                Field::EthType,
            ])
            || self.present_needed(Header::Vlan);
        if !need_vlan && !any_of(&[Header::Eth]) {
            // Nothing reads the frame: only its length (stored above) is needed.
            self.a.bind(done);
            self.a.emit(Insn::stx(Size::DW, R9, 0, R3));
            return;
        }

        // Ethernet.
        self.a.emit(Insn::mov64_reg(R1, R7));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 14));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Eth));
        self.load_mac(Field::EthDst, R7, 0);
        self.load_mac(Field::EthSrc, R7, 6);
        self.a.emit(Insn::ldx(Size::H, R2, R7, 12));
        self.a.emit(Insn::mov64_imm(R4, 14));
        let type_known = self.a.label();
        if need_vlan {
            for (tag, inner) in [(0i16, false), (4, true)] {
                let is_tag = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 0x0081, 0), is_tag);
                self.a
                    .jump(Insn::jmp_imm(Jmp::Ne, R2, 0xa888, 0), type_known);
                self.a.bind(is_tag);
                self.a.emit(Insn::mov64_reg(R1, R7));
                self.a
                    .emit(Insn::alu64_imm(Alu::Add, R1, 18 + i32::from(tag)));
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), type_known);
                self.set_bits(if inner {
                    INNER_VLAN_BIT
                } else {
                    bit(Header::Vlan)
                });
                let (id, pcp) = if inner {
                    (Field::VlanInnerId, None)
                } else {
                    (Field::VlanId, Some(Field::VlanPcp))
                };
                let want_pcp = pcp.is_some_and(|f| self.needed.contains(&f));
                if self.needed.contains(&id) || want_pcp {
                    self.a.emit(Insn::ldx(Size::H, R0, R7, 14 + tag));
                    self.a.emit(Insn::to_be(R0, 16));
                    self.a.emit(Insn::mov64_reg(R1, R0));
                    if self.needed.contains(&id) {
                        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfff));
                        self.store_host(id);
                    }
                    if want_pcp {
                        self.a.emit(Insn::mov64_reg(R0, R1));
                        self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 13));
                        self.store_host(Field::VlanPcp);
                    }
                }
                self.a.emit(Insn::ldx(Size::H, R2, R7, 16 + tag));
                self.a.emit(Insn::mov64_imm(R4, 18 + i32::from(tag)));
            }
        }
        self.a.bind(type_known);
        if self.needed.contains(&Field::EthType) {
            self.a.emit(Insn::mov64_reg(R0, R2));
            self.store_field(Field::EthType, R0, 2);
        }
        if need_l3 {
            // r4 becomes the L3 header pointer; its offset is kept for rewrites.
            if all {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.l3_off, R4));
            }
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R7));
            if need_v4 {
                let not_v4 = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0x0008, 0), not_v4);
                self.ipv4(done);
                self.a.bind(not_v4);
            }
            if need_v6 {
                let not_v6 = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0xdd86, 0), not_v6);
                self.ipv6(done);
                self.a.bind(not_v6);
            }
            if need_arp {
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0x0608, 0), done);
                self.a.emit(Insn::mov64_reg(R1, R4));
                self.a.emit(Insn::alu64_imm(Alu::Add, R1, 28));
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
                self.set_bits(bit(Header::Arp));
            }
        }
        self.a.bind(done);
        self.a.emit(Insn::stx(Size::DW, R9, 0, R3));
    }

    /// Stores the payload offset: L4 pointer minus data plus the header length (`r5` when
    /// `len` is `None`).
    fn store_payload_off(&mut self, len: Option<i32>) {
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        match len {
            Some(l) => self.a.emit(Insn::alu64_imm(Alu::Add, R0, l)),
            None => self.a.emit(Insn::alu64_reg(Alu::Add, R0, R5)),
        }
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.payload_off, R0));
    }

    /// Whether some action rewrites L3 or L4 headers: they need the header offsets and the
    /// presence bits of every layer, whatever the predicates read.
    fn rewrites(&self) -> bool {
        self.p
            .rules
            .iter()
            .flat_map(|r| &r.actions)
            .chain(&self.p.default_actions)
            .any(|a| match a {
                Action::Rewrite { field, .. } => !matches!(field, Field::EthSrc | Field::EthDst),
                Action::DecTtl | Action::Balance { .. } => true,
                _ => false,
            })
    }

    fn need_l4(&self) -> bool {
        if self.rewrites() {
            return true;
        }
        self.p.fields.iter().any(|f| {
            matches!(
                f.field.header(),
                Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 | Header::L4
            )
        }) || self.p.conds.iter().any(|c| {
            matches!(
                c,
                Cond::Present(
                    Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 | Header::L4
                ) | Cond::Payload { .. }
            )
        })
    }

    fn ipv4(&mut self, done: Label) {
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 20));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R0, R4, 0));
        self.a.emit(Insn::mov64_reg(R5, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R5, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R5, 4, 0), done);
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x0f));
        self.a.jump(Insn::jmp_imm(Jmp::Lt, R0, 5, 0), done);
        self.store_host(Field::Ipv4Ihl);
        // r5 = header length, 20..60: the whole header must be in the frame.
        self.a.emit(Insn::mov64_reg(R5, R0));
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 2));
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Ipv4) | bit(Header::Ip));
        self.load_field(Field::Ipv4Src, R4, 12, Size::W);
        self.load_field(Field::Ipv4Dst, R4, 16, Size::W);
        self.load_field(Field::Ipv4Len, R4, 2, Size::H);
        self.load_field(Field::Ipv4Id, R4, 4, Size::H);
        if self.needs_any(&[Field::Ipv4Ttl, Field::IpTtl]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 8));
            self.store_host(Field::Ipv4Ttl);
            self.store_host(Field::IpTtl);
        }
        if self.needs_any(&[Field::Ipv4Dscp, Field::IpDscp, Field::Ipv4Ecn]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 1));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 2));
            self.store_host(Field::Ipv4Dscp);
            self.store_host(Field::IpDscp);
            self.a.emit(Insn::mov64_reg(R0, R1));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 3));
            self.store_host(Field::Ipv4Ecn);
        }
        self.a.emit(Insn::ldx(Size::B, R2, R4, 9));
        if self.needs_any(&[Field::Ipv4Proto, Field::IpProto]) {
            self.a.emit(Insn::mov64_reg(R0, R2));
            self.store_host(Field::Ipv4Proto);
            self.store_host(Field::IpProto);
        }
        // Fragments: MF or a non-zero offset makes `frag`; a non-zero offset means no L4.
        self.a.emit(Insn::ldx(Size::H, R0, R4, 6));
        self.a.emit(Insn::to_be(R0, 16));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x3fff));
        if self.needs_any(&[Field::IpFragOffset]) {
            // Written on every IPv4 path: a map-resident vector keeps the last packet's value.
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::And, R1, 0x1fff));
            self.store_reg(Field::IpFragOffset, R1);
        }
        let not_frag = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), not_frag);
        self.set_bits(bit(Header::Frag));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x1fff));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), done);
        self.a.bind(not_frag);
        if self.need_l4() {
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R5));
            self.l4(done, true);
        }
        self.a.jump(Insn::ja(0), done);
    }

    fn ipv6(&mut self, done: Label) {
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 40));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R0, R4, 0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 6, 0), done);
        self.set_bits(bit(Header::Ipv6) | bit(Header::Ip));
        self.load_v6(Field::Ipv6Src, R4, 8);
        self.load_v6(Field::Ipv6Dst, R4, 24);
        self.load_field(Field::Ipv6Len, R4, 4, Size::H);
        if self.needs_any(&[Field::Ipv6Hoplimit, Field::IpTtl]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 7));
            self.store_host(Field::Ipv6Hoplimit);
            self.store_host(Field::IpTtl);
        }
        if self.needs_any(&[Field::Ipv6Dscp, Field::IpDscp, Field::Ipv6Flowlabel]) {
            self.a.emit(Insn::ldx(Size::W, R0, R4, 0));
            self.a.emit(Insn::to_be(R0, 32));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfffff));
            self.store_host(Field::Ipv6Flowlabel);
            self.a.emit(Insn::mov64_reg(R0, R1));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 22));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x3f));
            self.store_host(Field::Ipv6Dscp);
            self.store_host(Field::IpDscp);
        }
        // The extension chain is walked only when something after it is needed.
        let walk = self.need_l4()
            || self.needs_any(&[Field::Ipv6Nexthdr, Field::IpProto, Field::IpFragOffset])
            || self.present_needed(Header::Frag);
        if !walk {
            self.a.jump(Insn::ja(0), done);
            return;
        }
        if self.needs_any(&[Field::IpFragOffset]) {
            // Zero unless a fragment header says otherwise (the vector may hold the last
            // packet's value).
            self.a.emit(Insn::mov64_imm(R0, 0));
            self.store_host(Field::IpFragOffset);
        }
        self.a.emit(Insn::ldx(Size::B, R2, R4, 6));
        self.a.emit(Insn::alu64_imm(Alu::Add, R4, 40));
        // Extension headers, at most six, unrolled: r2 = next header, r4 = its pointer.
        let upper = self.a.label();
        let stuck = self.a.label();
        for _ in 0..6 {
            let is_opts = self.a.label();
            let next = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 0, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 43, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 60, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 44, 0), upper);
            // Fragment header: 8 bytes.
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::H, R0, R4, 2));
            self.a.emit(Insn::to_be(R0, 16));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::And, R1, 0xfff9));
            let no_frag = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), no_frag);
            self.set_bits(bit(Header::Frag));
            self.a.bind(no_frag);
            self.a.emit(Insn::ldx(Size::B, R2, R4, 0));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfff8));
            if self.needs_any(&[Field::IpFragOffset]) {
                // The offset in 8-byte units; non-zero exactly when the masked word was.
                self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 3));
                self.store_host(Field::IpFragOffset);
            }
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), stuck);
            self.a.emit(Insn::alu64_imm(Alu::Add, R4, 8));
            self.a.jump(Insn::ja(0), next);
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            self.a.bind(is_opts);
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::B, R5, R4, 1));
            self.a.emit(Insn::alu64_imm(Alu::Add, R5, 1));
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 3));
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::B, R2, R4, 0));
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R5));
            self.a.bind(next);
        }
        // A seventh extension header: the chain is not walked to its end.
        for ext in [0, 43, 60, 44] {
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, ext, 0), stuck);
        }
        self.a.bind(upper);
        self.a.emit(Insn::mov64_reg(R0, R2));
        self.store_host(Field::Ipv6Nexthdr);
        self.store_host(Field::IpProto);
        if self.need_l4() {
            self.l4(done, false);
        }
        self.a.jump(Insn::ja(0), done);
        self.a.bind(stuck);
        self.a.emit(Insn::mov64_reg(R0, R2));
        self.store_host(Field::Ipv6Nexthdr);
        self.store_host(Field::IpProto);
        self.a.jump(Insn::ja(0), done);
    }

    /// L4 dispatch on r2 with r4 = L4 header pointer.
    fn l4(&mut self, done: Label, v4: bool) {
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.l4_off, R0));
        let not_tcp = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 6, 0), not_tcp);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 20));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R5, R4, 12));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R5, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Lt, R5, 5, 0), done);
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 2));
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Tcp) | bit(Header::L4) | PAYLOAD_BIT);
        self.store_payload_off(None);
        self.load_field(Field::TcpSport, R4, 0, Size::H);
        self.load_field(Field::L4Sport, R4, 0, Size::H);
        self.load_field(Field::TcpDport, R4, 2, Size::H);
        self.load_field(Field::L4Dport, R4, 2, Size::H);
        self.load_field(Field::TcpSeq, R4, 4, Size::W);
        self.load_field(Field::TcpAck, R4, 8, Size::W);
        self.load_field(Field::TcpFlags, R4, 13, Size::B);
        self.load_field(Field::TcpWindow, R4, 14, Size::H);
        self.a.jump(Insn::ja(0), done);
        self.a.bind(not_tcp);

        let not_udp = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 17, 0), not_udp);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Udp) | bit(Header::L4) | PAYLOAD_BIT);
        self.store_payload_off(Some(8));
        self.load_field(Field::UdpSport, R4, 0, Size::H);
        self.load_field(Field::L4Sport, R4, 0, Size::H);
        self.load_field(Field::UdpDport, R4, 2, Size::H);
        self.load_field(Field::L4Dport, R4, 2, Size::H);
        self.load_field(Field::UdpLen, R4, 4, Size::H);
        self.a.jump(Insn::ja(0), done);
        self.a.bind(not_udp);

        let (proto, min, hdr, ty, code) = if v4 {
            (1, 8, Header::Icmp, Field::IcmpType, Field::IcmpCode)
        } else {
            (58, 4, Header::Icmpv6, Field::Icmpv6Type, Field::Icmpv6Code)
        };
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, proto, 0), done);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, min));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        // The ICMP and ICMPv6 payload both start after the 4-byte message-specific word.
        self.set_bits(bit(hdr) | PAYLOAD_BIT);
        self.store_payload_off(Some(8));
        self.load_field(ty, R4, 0, Size::B);
        self.load_field(code, R4, 1, Size::B);
    }
}
