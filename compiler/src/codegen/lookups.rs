//! Conditions answered by a map: set membership (a hash or LPM trie keyed by the field, or a
//! prefix hash probed once per length), `match TABLE` (whose entry's verdict is kept for the
//! decision) and `over LIMITER` (a token bucket per key, refilled and taken from as it is
//! tested).

use super::asm::Label;
use super::layout::LENGTHS_PTR;
use super::{bit, Gen};
use crate::ir::{FieldId, KeyPart, Lengths, MapId, MapPurpose};
use crate::prefix;
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R4, R9};
use nfcc_dsl::checked::Header;

/// Nano-tokens per token.
const NANO: u64 = 1_000_000_000;

impl Gen<'_> {
    /// `match TABLE`: every key field present, the key in the table; the entry's verdict is
    /// kept in the table's slot.
    pub(super) fn table_match(
        &mut self,
        map: MapId,
        key: &[KeyPart],
        slot: u32,
        f: Label,
        t: Label,
    ) {
        for part in key {
            match part {
                KeyPart::Raw(fid, _) | KeyPart::Host(fid, _) | KeyPart::Masked(fid, _, _) => {
                    self.require(*fid, f)
                }
                KeyPart::Const(_) => {}
                KeyPart::Ip { .. } | KeyPart::IpTagged { .. } => {
                    self.unless_any(bit(Header::Ipv4) | bit(Header::Ipv6), f);
                }
            }
        }
        self.build_key(key);
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        // A table entry is a verdict; a merged run's entry also names its statistics slot.
        let size = if self.p.maps[map.index()].value_size >= 8 {
            Size::DW
        } else {
            Size::W
        };
        self.a.emit(Insn::ldx(size, R1, R0, 0));
        self.a.emit(Insn::stx(
            Size::DW,
            R9,
            self.lay.tables + 8 * slot as i16,
            R1,
        ));
        self.a.jump(Insn::ja(0), t);
    }

    /// `over`: the token bucket of `dsl::eval`, in integer nano-tokens.
    pub(super) fn over(
        &mut self,
        map: MapId,
        key: &[KeyPart],
        rate: u64,
        burst: u64,
        f: Label,
        t: Label,
    ) {
        let cap = burst.saturating_mul(NANO);
        let cap_ns = cap.div_ceil(rate.max(1));
        self.build_key(key);
        if let Some(clock) = self.p.clock {
            // Tests: the time is whatever the harness wrote into the clock map.
            self.a.emit(Insn::mov64_imm(R1, 0));
            self.a.emit(Insn::stx(Size::W, R10, -8, R1));
            self.a.emit2(Insn::ld_map(R1, clock.0));
            self.a.emit(Insn::mov64_reg(R2, R10));
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, -8));
            self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
            let none = self.a.label();
            let have = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
            self.a.emit(Insn::ldx(Size::DW, R0, R0, 0));
            self.a.jump(Insn::ja(0), have);
            self.a.bind(none);
            self.a.emit(Insn::mov64_imm(R0, 0));
            self.a.bind(have);
        } else {
            self.a.emit(Insn::call(helper::KTIME_GET_NS));
        }
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.now, R0));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        let new = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), new);
        // elapsed = now - last, or 0 when another CPU refilled after our clock read.
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a.emit(Insn::ldx(Size::DW, R2, R0, 8));
        let ordered = self.a.label();
        self.a.jump(Insn::jmp_reg(Jmp::Ge, R1, R2, 0), ordered);
        self.a.emit(Insn::mov64_reg(R1, R2));
        self.a.bind(ordered);
        self.a.emit(Insn::alu64_reg(Alu::Sub, R1, R2));
        let capped = self.a.label();
        self.load_const(R3, cap_ns);
        self.a.jump(Insn::jmp_reg(Jmp::Le, R1, R3, 0), capped);
        self.a.emit(Insn::mov64_reg(R1, R3));
        self.a.bind(capped);
        self.load_const(R3, rate);
        self.a.emit(Insn::alu64_reg(Alu::Mul, R1, R3));
        self.a.emit(Insn::ldx(Size::DW, R2, R0, 0));
        self.a.emit(Insn::alu64_reg(Alu::Add, R2, R1));
        let full = self.a.label();
        self.load_const(R3, cap);
        self.a.jump(Insn::jmp_reg(Jmp::Le, R2, R3, 0), full);
        self.a.emit(Insn::mov64_reg(R2, R3));
        self.a.bind(full);
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a.emit(Insn::stx(Size::DW, R0, 8, R1));
        self.load_const(R3, NANO);
        let empty = self.a.label();
        self.a.jump(Insn::jmp_reg(Jmp::Lt, R2, R3, 0), empty);
        self.a.emit(Insn::alu64_reg(Alu::Sub, R2, R3));
        self.a.emit(Insn::stx(Size::DW, R0, 0, R2));
        self.a.jump(Insn::ja(0), f);
        self.a.bind(empty);
        self.a.emit(Insn::stx(Size::DW, R0, 0, R2));
        self.a.jump(Insn::ja(0), t);
        // A new key starts with a full bucket and takes one token from it.
        self.a.bind(new);
        self.load_const(R1, cap - NANO);
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.valbuf, R1));
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.valbuf + 8, R1));
        self.update(map, 0);
        self.a.jump(Insn::ja(0), f);
    }

    pub(super) fn in_map(&mut self, field: FieldId, map: MapId, f: Label, t: Label) {
        let slot = self.lay.slots[field.index()];
        let m = &self.p.maps[map.index()];
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        if m.purpose == MapPurpose::PrefixSet {
            // Assemble {prefix length = full width, address} in the LPM key area.
            let key = self.lay.lpm_key;
            let width = m.key_size - 4;
            self.a.emit(Insn::mov64_imm(R3, (width * 8) as i32));
            self.a.emit(Insn::stx(Size::W, R9, key, R3));
            for w in (0..width as i16).step_by(4) {
                self.a.emit(Insn::ldx(Size::W, R3, R9, slot + w));
                self.a.emit(Insn::stx(Size::W, R9, key + 4 + w, R3));
            }
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
        } else {
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(slot)));
        }
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        self.a.jump(Insn::ja(0), t);
    }

    /// Copies the field's `width` raw bytes into the prefix key, ANDed with a mask: the
    /// constant `mask` (packet byte order), or the bytes at `r1 + mask_at` when `mask` is
    /// `None`. Uses r3 and r4.
    fn masked_key(&mut self, slot: i16, width: usize, mask: Option<&[u8]>, mask_at: i16) {
        let key = self.lay.lpm_key + 4;
        let chunks: &[(i16, Size)] = match width {
            1 => &[(0, Size::B)],
            2 => &[(0, Size::H)],
            4 => &[(0, Size::W)],
            6 => &[(0, Size::W), (4, Size::H)],
            8 => &[(0, Size::DW)],
            _ => &[(0, Size::DW), (8, Size::DW)],
        };
        for &(at, size) in chunks {
            self.a.emit(Insn::ldx(size, R3, R9, slot + at));
            match mask {
                Some(m) => {
                    let n = size.bytes();
                    let mut b = [0u8; 8];
                    b[..n].copy_from_slice(&m[at as usize..at as usize + n]);
                    let word = u64::from_le_bytes(b);
                    let all = if n == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (n * 8)) - 1
                    };
                    if word == 0 {
                        self.a.emit(Insn::mov64_imm(R3, 0));
                    } else if word != all {
                        self.load_const(R4, word);
                        self.a.emit(Insn::alu64_reg(Alu::And, R3, R4));
                    }
                }
                None => {
                    self.a.emit(Insn::ldx(size, R4, R1, mask_at + at));
                    self.a.emit(Insn::alu64_reg(Alu::And, R3, R4));
                }
            }
            self.a.emit(Insn::stx(size, R9, key + at, R3));
        }
    }

    /// Probes a prefix hash once per length: `{length, field & mask}` is looked up, and the
    /// first hit makes the condition true. A static set's lengths and masks are constants; a
    /// dynamic set's come from its length table, whose pointer is kept on the stack across
    /// the lookups (helper calls clobber r1–r5).
    pub(super) fn in_prefix_hash(
        &mut self,
        field: FieldId,
        map: MapId,
        lengths: &Lengths,
        f: Label,
        t: Label,
    ) {
        let slot = self.lay.slots[field.index()];
        let width = self.p.fields[field.index()].field.key_width();
        let key = self.lay.lpm_key;
        let probe = |g: &mut Self| {
            g.a.emit2(Insn::ld_map(R1, map.0));
            g.a.emit(Insn::mov64_reg(R2, R9));
            g.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
            g.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
            g.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), t);
        };
        match lengths {
            Lengths::Static(ls) => {
                for &l in ls {
                    let mask = prefix::host_mask(l, width).to_be_bytes();
                    self.a.emit(Insn::mov64_imm(R3, i32::from(l)));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, Some(&mask[16 - width..]), 0);
                    probe(self);
                }
            }
            Lengths::Table(table) => {
                self.a.emit(Insn::mov64_imm(R1, 0));
                self.a.emit(Insn::stx(Size::W, R10, -4, R1));
                self.a.emit2(Insn::ld_map(R1, table.0));
                self.a.emit(Insn::mov64_reg(R2, R10));
                self.a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
                self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                self.a.emit(Insn::stx(Size::DW, R10, LENGTHS_PTR, R0));
                let stride = prefix::table_stride(width) as i16;
                for i in 0..prefix::table_slots(width) as i16 {
                    self.a.emit(Insn::ldx(Size::DW, R1, R10, LENGTHS_PTR));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.jump(Insn::jmp_imm(Jmp::Le, R3, i32::from(i), 0), f);
                    let at = 8 + i * stride;
                    self.a.emit(Insn::ldx(Size::W, R3, R1, at));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, None, at + 8);
                    probe(self);
                }
            }
            Lengths::Entries(table) => {
                // Entry 0 holds the count; entry i + 1 slot i (length, then the mask). Keys go
                // through the stack with `stx` (the NIC refuses store-immediate).
                let lookup = |g: &mut Self, entry: i32| {
                    g.a.emit(Insn::mov64_imm(R1, entry));
                    g.a.emit(Insn::stx(Size::W, R10, -4, R1));
                    g.a.emit2(Insn::ld_map(R1, table.0));
                    g.a.emit(Insn::mov64_reg(R2, R10));
                    g.a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
                    g.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                    g.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                };
                lookup(self, 0);
                self.a.emit(Insn::stx(Size::DW, R10, LENGTHS_PTR, R0));
                for i in 0..prefix::table_slots(width) as i32 {
                    self.a.emit(Insn::ldx(Size::DW, R1, R10, LENGTHS_PTR));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.jump(Insn::jmp_imm(Jmp::Le, R3, i, 0), f);
                    lookup(self, i + 1);
                    self.a.emit(Insn::mov64_reg(R1, R0));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, None, 8);
                    probe(self);
                }
            }
        }
        self.a.jump(Insn::ja(0), f);
    }
}
