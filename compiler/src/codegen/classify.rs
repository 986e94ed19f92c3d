//! A classifier condition ([`crate::classify`]): the dimensions copied side by side into the
//! packet vector, the tree walked node by node (unrolled to its depth: each node is one array
//! lookup, the dimension it names read at a bounded offset), then the leaf's boxes tested in
//! order (unrolled to the largest leaf); the first box that holds writes its verdict and
//! statistics slot into the table slot, as a merged run's entry does.
//!
//! Stack: `r10 - 8` holds the node, then the box, index being looked up; `r10 - 16` the
//! leaf's box count. The presence word is in r8, the vector in r9.

use super::asm::Label;
use super::Gen;
use crate::bpf::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R8, R9};
use crate::classify::MAX_DIMS;
use crate::ir::{Cond, MapId};

const INDEX: i16 = -8;
const COUNT: i16 = -16;

impl Gen<'_> {
    /// Emits a classifier condition: to `t` with the hit kept, or to `f`.
    pub(super) fn classify(&mut self, c: &Cond, f: Label, t: Label) {
        let Cond::Classify {
            nodes,
            boxes,
            dims,
            depth,
            bucket,
            masked,
            slot,
        } = c
        else {
            return;
        };
        let area = self.lay.dims;
        for (d, fid) in dims.iter().enumerate() {
            let at = self.lay.slots[fid.index()];
            self.a.emit(Insn::ldx(Size::DW, R0, R9, at));
            self.a.emit(Insn::stx(Size::W, R9, area + 4 * d as i16, R0));
        }
        // The walk: from the root, one node per level, until a leaf.
        self.a.emit(Insn::mov64_imm(R1, 0));
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        let leaf = self.a.label();
        for _ in 0..*depth {
            self.lookup(*nodes, f);
            self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
            self.a
                .jump(Insn::jmp_imm(Jmp::Gt, R1, MAX_DIMS as i32 - 1, 0), leaf);
            // dims[d]: the bound on d lets the verifier check the vector access.
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R1, 2));
            self.a.emit(Insn::alu64_reg(Alu::Add, R1, R9));
            self.a.emit(Insn::ldx(Size::W, R1, R1, area));
            self.a.emit(Insn::ldx(Size::W, R2, R0, 4));
            self.a.emit(Insn::ldx(Size::W, R3, R0, 8));
            let go = self.a.label();
            self.a.jump(Insn::jmp_reg(Jmp::Le, R1, R2, 0), go);
            self.a.emit(Insn::ldx(Size::W, R3, R0, 12));
            self.a.bind(go);
            self.a.emit(Insn::stx(Size::W, R10, INDEX, R3));
        }
        // The last level is a leaf by construction.
        self.lookup(*nodes, f);
        self.a.bind(leaf);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        self.a.emit(Insn::ldx(Size::W, R1, R0, 8));
        self.a.emit(Insn::stx(Size::W, R10, COUNT, R1));
        let at = self.lay.tables + 8 * *slot as i16;
        for j in 0..*bucket {
            self.a.emit(Insn::ldx(Size::W, R1, R10, COUNT));
            self.a.jump(Insn::jmp_imm(Jmp::Le, R1, j as i32, 0), f);
            self.lookup(*boxes, f);
            let next = self.a.label();
            // Headers: all of `need` present, none of `forbid`.
            self.a.emit(Insn::ldx(Size::W, R1, R0, 8));
            self.a.emit(Insn::mov64_reg(R2, R8));
            self.a.emit(Insn::alu64_reg(Alu::And, R2, R1));
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R2, R1, 0), next);
            self.a.emit(Insn::ldx(Size::W, R1, R0, 12));
            self.a.emit(Insn::alu64_reg(Alu::And, R1, R8));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, 0, 0), next);
            for (d, m) in masked.iter().enumerate() {
                let b = 16 + 16 * d as i16;
                self.a.emit(Insn::ldx(Size::W, R1, R9, area + 4 * d as i16));
                self.a.emit(Insn::ldx(Size::W, R2, R0, b));
                self.a.jump(Insn::jmp_reg(Jmp::Lt, R1, R2, 0), next);
                self.a.emit(Insn::ldx(Size::W, R2, R0, b + 4));
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R2, 0), next);
                if *m {
                    self.a.emit(Insn::ldx(Size::W, R2, R0, b + 8));
                    self.a.emit(Insn::alu64_reg(Alu::And, R1, R2));
                    self.a.emit(Insn::ldx(Size::W, R2, R0, b + 12));
                    self.a.jump(Insn::jmp_reg(Jmp::Ne, R1, R2, 0), next);
                }
            }
            // The box holds: keep its verdict and statistics slot.
            self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
            self.a.emit(Insn::stx(Size::W, R9, at, R1));
            self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
            self.a.emit(Insn::stx(Size::W, R9, at + 4, R1));
            self.a.jump(Insn::ja(0), t);
            self.a.bind(next);
            self.a.emit(Insn::ldx(Size::W, R1, R10, INDEX));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 1));
            self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        }
        self.a.jump(Insn::ja(0), f);
    }

    /// r0 = the entry of array `map` at the index in `r10 + INDEX`; to `f` when there is none.
    fn lookup(&mut self, map: MapId, f: Label) {
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(INDEX)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
    }
}
