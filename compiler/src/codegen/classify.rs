//! A classifier condition ([`crate::classify`]): the dimensions copied side by side into the
//! packet vector, then each part searched for a bucket of boxes — a tree walked node by node
//! (unrolled to its depth: each node read at a bounded index of the one map value holding
//! them all, or one array lookup per node where they do not fit one value; the dimension it
//! names read at a bounded offset), or a tuple's key (its id, then each dimension under the tuple's mask)
//! assembled in the vector and looked up in the tuples hash — and the bucket's boxes tested
//! in order (unrolled to its largest bucket). The best box — the smallest statistics slot, the
//! earliest rule — keeps its verdict and slot in the table slot, as a merged run's entry
//! does; once the best match found comes before a part's first rule, the remaining parts
//! (in rule order) are skipped.
//!
//! Stack: `r10 - 8` holds the node, then the box, index being looked up; `r10 - 16` the
//! bucket's box count. The presence word is in r8, the vector in r9.

use super::asm::Label;
use super::Gen;
use crate::ir::classifier::{nodes_in_value, MAX_DIMS};
use crate::ir::{Cond, MapId, Search, Select};
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R4, R5, R8, R9};

const INDEX: i16 = -8;
const COUNT: i16 = -16;

impl Gen<'_> {
    /// Emits a classifier condition: to `t` with the best hit kept, or to `f`.
    pub(super) fn classify(&mut self, c: &Cond, f: Label, t: Label) {
        let Cond::Classify {
            nodes,
            tuples,
            boxes,
            dims,
            parts,
            masked,
            slot,
            select,
        } = c
        else {
            return;
        };
        let area = self.lay.dims;
        for (d, alts) in dims.iter().enumerate() {
            // One field, or the one of its alternatives whose header is present.
            let done = self.a.label();
            for (k, fid) in alts.iter().enumerate() {
                let at = self.lay.slots[fid.index()];
                let next = self.a.label();
                if k + 1 < alts.len() {
                    let h = self.p.fields[fid.index()].field.header();
                    self.a.emit(Insn::mov64_reg(R0, R8));
                    self.a.emit(Insn::alu64_imm(Alu::And, R0, super::bit(h)));
                    self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), next);
                }
                self.a.emit(Insn::ldx(Size::DW, R0, R9, at));
                self.a.emit(Insn::stx(Size::W, R9, area + 4 * d as i16, R0));
                self.a.jump(Insn::ja(0), done);
                self.a.bind(next);
            }
            self.a.bind(done);
        }
        if let Some(sel) = select {
            // The half of the data this packet reads, read once: a flip between two parts'
            // searches must not mix versions.
            self.a.emit(Insn::mov64_imm(R1, 0));
            self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
            self.lookup(sel.map, f);
            self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
            self.a.emit(Insn::alu64_imm(Alu::And, R1, 1));
            self.a.emit(Insn::stx(Size::W, R9, self.lay.select, R1));
        }
        // The best hit so far: its statistics slot (u32::MAX for none) and verdict.
        let at = self.lay.tables + 8 * *slot as i16;
        self.a.emit(Insn::mov64_imm(R1, -1));
        self.a.emit(Insn::stx(Size::W, R9, at + 4, R1));
        let end = self.a.label();
        for (k, tree) in parts.iter().enumerate() {
            let next_tree = self.a.label();
            if k > 0 {
                // A rule before this tree's first already matched: nothing here can win.
                self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
                self.a
                    .jump(Insn::jmp_imm(Jmp::Lt, R1, tree.first_slot as i32, 0), end);
            }
            if tree.needs != 0 {
                // Every box here needs these headers.
                self.a.emit(Insn::mov64_reg(R1, R8));
                self.a
                    .emit(Insn::alu64_imm(Alu::And, R1, tree.needs as i32));
                self.a
                    .jump(Insn::jmp_imm(Jmp::Ne, R1, tree.needs as i32, 0), next_tree);
            }
            match (&tree.search, nodes, tuples) {
                (Search::Tree { root, depth }, Some(nodes), _) => {
                    self.walk(*nodes, *root, *depth, select.as_ref(), next_tree)
                }
                (Search::Tuple { id, masks }, _, Some(tuples)) => {
                    self.probe(*tuples, *id, masks, select.as_ref(), next_tree)
                }
                // The IR verifier refuses a part without its map.
                _ => unreachable!("a classifier part without its map"),
            }
            self.scan(*boxes, tree.bucket, masked, at, next_tree);
            self.a.bind(next_tree);
        }
        self.a.bind(end);
        // Loaded words are zero-extended: compare with u32::MAX, not a sign-extended -1.
        self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
        self.load_const(R2, u64::from(u32::MAX));
        self.a.jump(Insn::jmp_reg(Jmp::Eq, R1, R2, 0), f);
        self.a.jump(Insn::ja(0), t);
    }

    /// The walk from `root`, one node per level, until a leaf: leaves the leaf's first box in
    /// `r10 + INDEX` and its count in `r10 + COUNT`; to `none` without one. With `select`,
    /// `root` is in the half the packet reads: its value, or its entries.
    fn walk(&mut self, nodes: MapId, root: u32, depth: u32, select: Option<&Select>, none: Label) {
        let map = &self.p.maps[nodes.index()];
        if nodes_in_value(map.max_entries, map.value_size, select.is_some()) {
            return self.walk_value(nodes, map.value_size / 16, root, depth, select, none);
        }
        let area = self.lay.dims;
        self.load_const(R1, u64::from(root));
        if let Some(sel) = select {
            self.a.emit(Insn::ldx(Size::W, R2, R9, self.lay.select));
            self.a
                .emit(Insn::alu64_imm(Alu::Mul, R2, sel.nodes_half as i32));
            self.a.emit(Insn::alu64_reg(Alu::Add, R1, R2));
        }
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        let leaf = self.a.label();
        for _ in 0..depth {
            self.lookup(nodes, none);
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
        self.lookup(nodes, none);
        self.a.bind(leaf);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        self.a.emit(Insn::ldx(Size::W, R1, R0, 8));
        self.a.emit(Insn::stx(Size::W, R10, COUNT, R1));
    }

    /// [`Gen::walk`] over `count` nodes in one map value: one lookup, then per level the node
    /// index bounded (so the verifier can check the access) and the node read in place.
    /// r5 holds the value, r3 the node index, r4 the node.
    fn walk_value(
        &mut self,
        nodes: MapId,
        count: u32,
        root: u32,
        depth: u32,
        select: Option<&Select>,
        none: Label,
    ) {
        let area = self.lay.dims;
        if select.is_some() {
            // The packet's half is the value's key.
            self.a.emit(Insn::ldx(Size::W, R1, R9, self.lay.select));
        } else {
            self.a.emit(Insn::mov64_imm(R1, 0));
        }
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        self.lookup(nodes, none);
        self.a.emit(Insn::mov64_reg(R5, R0));
        self.load_const(R3, u64::from(root));
        let leaf = self.a.label();
        for level in 0..=depth {
            self.a
                .jump(Insn::jmp_imm(Jmp::Gt, R3, count as i32 - 1, 0), none);
            self.a.emit(Insn::mov64_reg(R4, R3));
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R4, 4));
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R5));
            if level == depth {
                // The last level is a leaf by construction.
                break;
            }
            self.a.emit(Insn::ldx(Size::W, R1, R4, 0));
            self.a
                .jump(Insn::jmp_imm(Jmp::Gt, R1, MAX_DIMS as i32 - 1, 0), leaf);
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R1, 2));
            self.a.emit(Insn::alu64_reg(Alu::Add, R1, R9));
            self.a.emit(Insn::ldx(Size::W, R1, R1, area));
            self.a.emit(Insn::ldx(Size::W, R2, R4, 4));
            self.a.emit(Insn::ldx(Size::W, R3, R4, 8));
            let go = self.a.label();
            self.a.jump(Insn::jmp_reg(Jmp::Le, R1, R2, 0), go);
            self.a.emit(Insn::ldx(Size::W, R3, R4, 12));
            self.a.bind(go);
        }
        self.a.bind(leaf);
        self.a.emit(Insn::ldx(Size::W, R1, R4, 4));
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        self.a.emit(Insn::ldx(Size::W, R1, R4, 8));
        self.a.emit(Insn::stx(Size::W, R10, COUNT, R1));
    }

    /// The tuple's key `{id, dims[d] & masks[d] ...}` assembled in the vector and looked up:
    /// leaves the bucket's first box in `r10 + INDEX` and its count in `r10 + COUNT`; to
    /// `none` when the key has no bucket.
    fn probe(
        &mut self,
        tuples: MapId,
        id: u32,
        masks: &[u32],
        select: Option<&Select>,
        none: Label,
    ) {
        let (area, key) = (self.lay.dims, self.lay.tuple_key);
        match select {
            Some(sel) => {
                // The tuple's id in the packet's half.
                self.a.emit(Insn::ldx(Size::W, R1, R9, self.lay.select));
                self.a
                    .emit(Insn::alu64_imm(Alu::Mul, R1, sel.tuple_ids as i32));
                self.a.emit(Insn::alu64_imm(Alu::Add, R1, id as i32));
                self.a.emit(Insn::stx(Size::W, R9, key, R1));
            }
            None => self.a.emit(Insn::st(Size::W, R9, key, id as i32)),
        }
        for (d, &m) in masks.iter().enumerate() {
            let at = key + 4 + 4 * d as i16;
            if m == 0 {
                self.a.emit(Insn::st(Size::W, R9, at, 0));
                continue;
            }
            self.a.emit(Insn::ldx(Size::W, R1, R9, area + 4 * d as i16));
            if m != u32::MAX {
                // 32-bit: the mask is not sign-extended and the result is zero-extended.
                self.a.emit(Insn::alu32_imm(Alu::And, R1, m as i32));
            }
            self.a.emit(Insn::stx(Size::W, R9, at, R1));
        }
        self.a.emit2(Insn::ld_map(R1, tuples.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
        self.a.emit(Insn::stx(Size::W, R10, COUNT, R1));
    }

    /// The leaf's boxes in order: the first that holds is kept in the table slot at `at` when
    /// it is better than the one kept; then to `done`.
    fn scan(&mut self, boxes: MapId, bucket: u32, masked: &[bool], at: i16, done: Label) {
        let area = self.lay.dims;
        for j in 0..bucket {
            self.a.emit(Insn::ldx(Size::W, R1, R10, COUNT));
            self.a.jump(Insn::jmp_imm(Jmp::Le, R1, j as i32, 0), done);
            self.lookup(boxes, done);
            let next = self.a.label();
            // Headers: all of `need` present, none of `forbid`.
            self.a.emit(Insn::ldx(Size::W, R1, R0, 8));
            self.a.emit(Insn::mov64_reg(R2, R8));
            self.a.emit(Insn::alu64_reg(Alu::And, R2, R1));
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R2, R1, 0), next);
            self.a.emit(Insn::ldx(Size::W, R1, R0, 12));
            self.a.emit(Insn::alu64_reg(Alu::And, R1, R8));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, 0, 0), next);
            let mut b = 16;
            for (d, m) in masked.iter().enumerate() {
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
                b += if *m { 16 } else { 8 };
            }
            // The box holds; the leaf's first such box is its tree's best.
            self.a.emit(Insn::ldx(Size::W, R1, R0, 4));
            self.a.emit(Insn::ldx(Size::W, R2, R9, at + 4));
            self.a.jump(Insn::jmp_reg(Jmp::Ge, R1, R2, 0), done);
            self.a.emit(Insn::stx(Size::W, R9, at + 4, R1));
            self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
            self.a.emit(Insn::stx(Size::W, R9, at, R1));
            self.a.jump(Insn::ja(0), done);
            self.a.bind(next);
            self.a.emit(Insn::ldx(Size::W, R1, R10, INDEX));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 1));
            self.a.emit(Insn::stx(Size::W, R10, INDEX, R1));
        }
        self.a.jump(Insn::ja(0), done);
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
