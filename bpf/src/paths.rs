//! The longest path through a program: a static bound on the instructions any one run can
//! execute. nfcc's programs jump only forward (every walk is unrolled, every loop bounded at
//! compile time), so the control flow is a DAG and its longest path is found in one backward
//! pass; a program with a backward jump or a call into a subprogram has no bound here and
//! says where.

use crate::insn::{class, Insn};

/// Why a program has no static bound here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A jump at this index goes backward (a loop).
    #[error("instruction {0} jumps backward (a loop), so no path length bounds a run")]
    Backward(usize),
    /// A call into a subprogram (bpf-to-bpf) at this index.
    #[error("instruction {0} calls a subprogram, which this bound does not follow")]
    Subprogram(usize),
    /// A jump at this index lands outside the program.
    #[error("instruction {0} jumps outside the program")]
    OutOfRange(usize),
}

/// The most instructions one run of `code` can execute (a `ld_imm64` counts once), from the
/// first instruction to an `exit`.
pub fn longest_path(code: &[Insn]) -> Result<usize, PathError> {
    let n = code.len();
    // longest[i]: instructions executed from i to an exit, at most.
    let mut longest = vec![0usize; n + 1];
    for i in (0..n).rev() {
        let ins = code[i];
        // The second slot of a ld_imm64 is never executed on its own.
        if i > 0 && code[i - 1].is_ld_imm64() {
            continue;
        }
        let next = if ins.is_ld_imm64() { i + 2 } else { i + 1 };
        let at = |t: usize| longest.get(t).copied().ok_or(PathError::OutOfRange(i));
        let jmp = matches!(ins.class(), class::JMP | class::JMP32);
        longest[i] = 1 + if jmp && ins.code & 0xf0 == 0x90 {
            0
        } else if jmp && ins.code & 0xf0 == 0x80 {
            if ins.src == 1 {
                return Err(PathError::Subprogram(i));
            }
            at(next)?
        } else if ins.is_branch() {
            let target = i as i64 + 1 + i64::from(ins.off);
            if target <= i as i64 {
                return Err(PathError::Backward(i));
            }
            let taken = at(target as usize)?;
            // `ja` has one successor; a conditional jump two.
            if ins.code & 0xf0 == 0x00 {
                taken
            } else {
                taken.max(at(next)?)
            }
        } else {
            at(next)?
        };
    }
    Ok(longest.first().copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Alu, Jmp, R0, R1};

    #[test]
    fn the_longer_branch_counts_and_loops_have_no_bound() {
        // r0 = 0; if r1 == 0 goto +2; r0 += 1; r0 += 1; exit
        let code = [
            Insn::mov64_imm(R0, 0),
            Insn::jmp_imm(Jmp::Eq, R1, 0, 2),
            Insn::alu64_imm(Alu::Add, R0, 1),
            Insn::alu64_imm(Alu::Add, R0, 1),
            Insn::exit(),
        ];
        assert_eq!(longest_path(&code), Ok(5));
        // An early exit on the branch: the fall-through path is the longer.
        let code = [
            Insn::jmp_imm(Jmp::Eq, R1, 0, 1),
            Insn::exit(),
            Insn::mov64_imm(R0, 0),
            Insn::ja(0),
            Insn::exit(),
        ];
        assert_eq!(longest_path(&code), Ok(4));
        let looped = [Insn::mov64_imm(R0, 0), Insn::ja(-2), Insn::exit()];
        assert_eq!(longest_path(&looped), Err(PathError::Backward(1)));
        let out = [Insn::ja(5), Insn::exit()];
        assert_eq!(longest_path(&out), Err(PathError::OutOfRange(0)));
    }
}
