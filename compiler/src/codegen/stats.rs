//! Counting packets: the {packets, bytes} value that both the per-rule statistics of the
//! epilogue and `count` actions add to, per-CPU on the host and atomically on the NIC.

use super::asm::Asm;
use nfcc_bpf::insn::{Alu, Insn, Reg, Size, R0, R1, R2, R3, R6, R9};
use nfcc_dsl::checked::{Hook, Target};

/// Where the packet's length comes from when it is counted.
#[derive(Clone, Copy)]
pub(super) enum Len {
    /// The packet vector's slot at this offset (from r9).
    Vector(i16),
    /// The context (r6) directly: programs that keep no packet vector.
    Context(Hook, Target),
}

impl Len {
    /// Loads the length into `r`, using r3 as scratch.
    fn load(self, a: &mut Asm, r: Reg) {
        match self {
            Len::Vector(off) => a.emit(Insn::ldx(Size::DW, r, R9, off)),
            Len::Context(Hook::Xdp, _) => {
                a.emit(Insn::ldx(Size::W, r, R6, 4));
                a.emit(Insn::ldx(Size::W, R3, R6, 0));
                a.emit(Insn::alu64_reg(Alu::Sub, r, R3));
            }
            Len::Context(_, Target::Nfp) => {
                a.emit(Insn::ldx(Size::W, r, R6, 80));
                a.emit(Insn::ldx(Size::W, R3, R6, 76));
                a.emit(Insn::alu64_reg(Alu::Sub, r, R3));
            }
            Len::Context(_, Target::Host) => a.emit(Insn::ldx(Size::W, r, R6, 0)),
        }
    }
}

/// Adds one packet of its length to the {packets, bytes} value at r0: plain adds on a per-CPU
/// value, atomic adds on the NIC's shared one (which cannot be stored to directly).
pub(super) fn add_packet(a: &mut Asm, nic: bool, len: Len) {
    if nic {
        a.emit(Insn::mov64_imm(R1, 1));
        a.emit(Insn::atomic_add(Size::DW, R0, 0, R1));
        len.load(a, R1);
        a.emit(Insn::atomic_add(Size::DW, R0, 8, R1));
    } else {
        a.emit(Insn::ldx(Size::DW, R1, R0, 0));
        a.emit(Insn::alu64_imm(Alu::Add, R1, 1));
        a.emit(Insn::stx(Size::DW, R0, 0, R1));
        a.emit(Insn::ldx(Size::DW, R1, R0, 8));
        len.load(a, R2);
        a.emit(Insn::alu64_reg(Alu::Add, R1, R2));
        a.emit(Insn::stx(Size::DW, R0, 8, R1));
    }
}
