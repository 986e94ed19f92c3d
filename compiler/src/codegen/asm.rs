//! The assembler under the generator: instructions with forward labels, patched once the
//! program is complete. It also knows what the verifier needs of the instruction stream as a
//! whole: no unreachable code (`dead_here`), and jumps that fit their offset fields.

use super::CodegenError;
use nfcc_bpf::insn::Insn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

/// An assembler with forward labels.
pub(super) struct Asm {
    pub(super) insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    /// An empty program.
    pub(super) fn new() -> Asm {
        Asm {
            insns: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
        }
    }

    pub(super) fn emit(&mut self, i: Insn) {
        self.insns.push(i);
    }

    pub(super) fn emit2(&mut self, i: [Insn; 2]) {
        self.insns.extend(i);
    }

    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub(super) fn bind(&mut self, l: Label) {
        // An unconditional jump to right here does nothing: drop it (labels bound after it
        // move back with the code that follows).
        while let Some(&(at, target)) = self.fixups.last() {
            if target != l || at + 1 != self.insns.len() || self.insns[at].code != 0x05 {
                break;
            }
            self.fixups.pop();
            self.insns.pop();
            for b in self.labels.iter_mut().flatten() {
                if *b == at + 1 {
                    *b = at;
                }
            }
        }
        self.labels[l.0] = Some(self.insns.len());
    }

    /// Whether the next instruction would be unreachable: the last one is an unconditional
    /// jump (or exit) and no label is bound here. The verifier rejects unreachable code, so the
    /// generator stops emitting what could never run.
    pub(super) fn dead_here(&self) -> bool {
        let here = self.insns.len();
        let ends = self
            .insns
            .last()
            .is_some_and(|i| i.code == 0x05 || i.code == 0x95);
        ends && !self.labels.contains(&Some(here))
    }

    /// Whether any jump targets `l`.
    pub(super) fn used(&self, l: Label) -> bool {
        self.fixups.iter().any(|(_, x)| *x == l)
    }

    /// Emits a jump (conditional or not) to `l`, patched at the end.
    pub(super) fn jump(&mut self, i: Insn, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.insns.push(i);
    }

    pub(super) fn finish(mut self) -> Result<Vec<Insn>, CodegenError> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].unwrap_or(self.insns.len()) as i64;
            let off = target - at as i64 - 1;
            let ins = &mut self.insns[at];
            // The kernel lengthens some instructions when it inlines helpers, so unconditional
            // jumps that are merely long take the 32-bit form before they can overflow.
            let long_ja = ins.code == 0x05 && off.abs() > 8192;
            if let (Ok(o), false) = (i16::try_from(off), long_ja) {
                ins.off = o;
            } else if ins.code == 0x05 {
                // A far unconditional jump becomes `gotol` (JMP32 | JA, 32-bit offset).
                ins.code = 0x06;
                ins.off = 0;
                ins.imm = off as i32;
            } else {
                return Err(CodegenError::JumpTooFar(off));
            }
        }
        Ok(self.insns)
    }
}
