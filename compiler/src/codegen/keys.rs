//! Map keys: counter, limiter, table, multi-field set and balance keys assembled in the
//! vector's key buffer from the loaded fields, in the byte order the maps hold (absent headers
//! give zero bytes), with stores split where the NIC's stack-resident vector would be
//! misaligned.

use super::asm::Label;
use super::{bit, Gen, INNER_VLAN_BIT};
use crate::ir::{Encoding, FieldId, KeyPart};
use nfcc_bpf::insn::{Alu, Insn, Jmp, Reg, Size, R0, R1, R8, R9};
use nfcc_dsl::checked::{Field, Header, Target};

impl Gen<'_> {
    /// Jumps to `absent` unless the header of `f` is present.
    pub(super) fn require(&mut self, f: FieldId, absent: Label) {
        let field = self.p.fields[f.index()].field;
        if field.header() == Header::Pkt {
            return;
        }
        let b = if field == Field::VlanInnerId {
            INNER_VLAN_BIT
        } else {
            bit(field.header())
        };
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, b));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), absent);
    }

    /// `*(size *)(r9 + pos) = src`; on the NIC, whose vector is on the stack where the verifier
    /// refuses misaligned access, a misaligned store is split into bytes (clobbering `src`).
    fn put(&mut self, size: Size, pos: i16, src: Reg) {
        let n = size.bytes() as i16;
        if self.p.target == Target::Host || pos % n == 0 {
            self.a.emit(Insn::stx(size, R9, pos, src));
            return;
        }
        for i in 0..n {
            self.a.emit(Insn::stx(Size::B, R9, pos + i, src));
            if i + 1 < n {
                self.a.emit(Insn::alu64_imm(Alu::Rsh, src, 8));
            }
        }
    }

    pub(super) fn zero(&mut self, at: i16, bytes: i16) {
        self.a.emit(Insn::mov64_imm(R0, 0));
        for o in (0..bytes).step_by(8) {
            self.put(Size::DW, at + o, R0);
        }
    }

    /// After a key part is written: the path for an absent header writes zeros instead. Packet
    /// metadata is never absent, and its path would be unreachable code, which the verifier
    /// rejects.
    fn absent_zero(&mut self, f: FieldId, pos: i16, width: i16, absent: Label, done: Label) {
        if self.p.fields[f.index()].field.header() == Header::Pkt {
            return;
        }
        self.a.jump(Insn::ja(0), done);
        self.a.bind(absent);
        self.zero(pos, width);
    }

    /// Writes the host-order value in `slot` (ANDed with `mask`) as `w` big-endian key bytes at
    /// `pos`.
    fn host_key_part(&mut self, slot: i16, w: u32, mask: Option<u128>, pos: i16) {
        let (size, bytes) = match w {
            1 => (Size::B, 1),
            2 => (Size::H, 2),
            3 | 4 => (Size::W, 4),
            _ => (Size::DW, 8),
        };
        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
        if let Some(m) = mask {
            self.load_const(R1, m as u64);
            self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
        }
        if bytes > w {
            self.a
                .emit(Insn::alu64_imm(Alu::Lsh, R0, 8 * (bytes - w) as i32));
        }
        if bytes > 1 {
            self.a.emit(Insn::to_be(R0, 8 * bytes as i32));
        }
        self.put(size, pos, R0);
    }

    /// Assembles a counter or limiter key in the key buffer; absent fields are zero bytes.
    pub(super) fn build_key(&mut self, key: &[KeyPart]) {
        let mut pos = self.lay.keybuf;
        for part in key {
            let done = self.a.label();
            let absent = self.a.label();
            match part {
                KeyPart::Raw(f, w) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    for o in (0..*w as i16).step_by(8) {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + o, R0);
                    }
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::Const(bytes) => {
                    // Four bytes at a time as immediates, then the rest byte by byte.
                    let mut o = 0;
                    while o < bytes.len() {
                        let n = if bytes.len() - o >= 4 { 4 } else { 1 };
                        let mut b = [0u8; 4];
                        b[..n].copy_from_slice(&bytes[o..o + n]);
                        self.a
                            .emit(Insn::mov64_imm(R0, u32::from_le_bytes(b) as i32));
                        let size = if n == 4 { Size::W } else { Size::B };
                        self.put(size, pos + o as i16, R0);
                        o += n;
                    }
                    // Nothing is absent: no zero path.
                    let _ = absent;
                }
                KeyPart::Masked(f, w, mask) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    let raw = self.p.fields[f.index()].enc == Encoding::Raw;
                    if raw {
                        // The packet's bytes, masked word by word, stored as they are.
                        for o in (0..*w as i16).step_by(8) {
                            self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                            self.load_const(R1, (*mask >> (8 * o)) as u64);
                            self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
                            self.put(Size::DW, pos + o, R0);
                        }
                    } else {
                        // A host value, masked, then written big-endian like `Host`.
                        self.host_key_part(slot, *w, Some(*mask), pos);
                    }
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::Host(f, w) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    self.host_key_part(slot, *w, None, pos);
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::IpTagged { v4, v6 } => {
                    let not_v4 = self.a.label();
                    self.require(*v4, not_v4);
                    self.zero(pos + 1, 16);
                    self.a.emit(Insn::mov64_imm(R0, 4));
                    self.put(Size::B, pos, R0);
                    self.a
                        .emit(Insn::ldx(Size::W, R0, R9, self.lay.slots[v4.index()]));
                    self.put(Size::W, pos + 1, R0);
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(not_v4);
                    self.require(*v6, absent);
                    self.a.emit(Insn::mov64_imm(R0, 6));
                    self.put(Size::B, pos, R0);
                    let slot = self.lay.slots[v6.index()];
                    for o in [0, 8] {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + 1 + o, R0);
                    }
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(absent);
                    self.zero(pos, 17);
                }
                KeyPart::Ip { v4, v6 } => {
                    let not_v4 = self.a.label();
                    self.require(*v4, not_v4);
                    self.zero(pos, 8);
                    self.a.emit(Insn::mov64_imm(R0, 0xffff_0000_u32 as i32));
                    self.put(Size::W, pos + 8, R0);
                    self.a
                        .emit(Insn::ldx(Size::W, R0, R9, self.lay.slots[v4.index()]));
                    self.put(Size::W, pos + 12, R0);
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(not_v4);
                    self.require(*v6, absent);
                    let slot = self.lay.slots[v6.index()];
                    for o in [0, 8] {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + o, R0);
                    }
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(absent);
                    self.zero(pos, 16);
                }
            }
            self.a.bind(done);
            pos += match part {
                KeyPart::Raw(_, w) | KeyPart::Host(_, w) | KeyPart::Masked(_, w, _) => *w as i16,
                KeyPart::Const(b) => b.len() as i16,
                KeyPart::Ip { .. } => 16,
                KeyPart::IpTagged { .. } => 17,
            };
        }
    }
}
