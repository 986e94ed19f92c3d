//! A dynamic pool's backend, read from its maps (see `lower::balance`): with `sticky`, the
//! flow table first — a remembered slot counts only while it holds the same incarnation of a
//! live backend — else the live Maglev table (the selector says which half) names the slot.
//! The chosen backend's address goes to the vector's encapsulation area; a new pick is
//! remembered. No packet pointer is live across these lookups: the area is in the vector.

use super::asm::Label;
use super::encap::{BACKEND, INCARNATION};
use super::Gen;
use crate::ir::{DynPool, MapId};
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R9};
use nfcc_bpf::layout::{PoolBackend, MAGLEV_SLOTS};

impl Gen<'_> {
    /// Looks up `[r10 + key]` in `map`; r0 = the value, or jumps to `none`.
    fn lookup_at(&mut self, map: MapId, key: i16, none: Label) {
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
    }

    /// With the Maglev slot at `[r10 - 16]` and the balance key in the key buffer: the
    /// backend's address into the encapsulation area, or a jump to `failed` (an empty pool).
    pub(super) fn dynamic_backend(
        &mut self,
        table: MapId,
        d: &DynPool,
        flows: Option<MapId>,
        failed: Label,
    ) {
        let inc = self.lay.encbuf + INCARNATION;
        let have = self.a.label();
        let pick = self.a.label();
        if let Some(flows) = flows {
            self.a.emit2(Insn::ld_map(R1, flows.0));
            self.a.emit(Insn::mov64_reg(R2, R9));
            self.a
                .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
            self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), pick);
            self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
            self.a.emit(Insn::stx(Size::W, R10, -8, R1));
            self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
            self.a.emit(Insn::stx(Size::W, R9, inc, R1));
            self.lookup_at(d.backends, -8, pick);
            self.a
                .emit(Insn::ldx(Size::B, R1, R0, PoolBackend::LIVE as i16));
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), pick);
            self.a
                .emit(Insn::ldx(Size::W, R1, R0, PoolBackend::INCARNATION as i16));
            self.a.emit(Insn::ldx(Size::W, R2, R9, inc));
            self.a.jump(Insn::jmp_reg(Jmp::Eq, R1, R2, 0), have);
        }
        self.a.bind(pick);
        // slot += the live half's base.
        self.a.emit(Insn::mov64_imm(R1, 0));
        self.a.emit(Insn::stx(Size::W, R10, -8, R1));
        self.lookup_at(d.active, -8, failed);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.emit(Insn::alu64_imm(Alu::And, R1, 1));
        self.a
            .emit(Insn::alu64_imm(Alu::Mul, R1, MAGLEV_SLOTS as i32));
        self.a.emit(Insn::ldx(Size::W, R2, R10, -16));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R2));
        self.a.emit(Insn::stx(Size::W, R10, -16, R1));
        self.lookup_at(table, -16, failed);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.emit(Insn::stx(Size::W, R10, -8, R1));
        // An empty pool's slots hold NO_BACKEND, past the last slot: no record.
        self.lookup_at(d.backends, -8, failed);
        self.a
            .emit(Insn::ldx(Size::B, R1, R0, PoolBackend::LIVE as i16));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), failed);
        self.backend_address(d.v6);
        if let Some(flows) = flows {
            // Remember {slot, incarnation} for the flow.
            self.a
                .emit(Insn::ldx(Size::W, R1, R0, PoolBackend::INCARNATION as i16));
            self.a.emit(Insn::stx(Size::W, R9, self.lay.valbuf + 4, R1));
            self.a.emit(Insn::ldx(Size::W, R1, R10, -8));
            self.a.emit(Insn::stx(Size::W, R9, self.lay.valbuf, R1));
            self.update(flows, 0);
            let done = self.a.label();
            self.a.jump(Insn::ja(0), done);
            self.a.bind(have);
            self.backend_address(d.v6);
            self.a.bind(done);
        }
    }

    /// The address of the record at r0 into the encapsulation area.
    fn backend_address(&mut self, v6: bool) {
        for i in 0..if v6 { 4 } else { 1 } {
            self.a.emit(Insn::ldx(Size::W, R1, R0, 4 * i));
            self.a.emit(Insn::stx(
                Size::W,
                R9,
                self.lay.encbuf + BACKEND + 4 * i,
                R1,
            ));
        }
    }
}
