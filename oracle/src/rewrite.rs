//! The program as rbpf is given it, and what rbpf cannot run.
//!
//! What rbpf lacks is supplied as the kernel supplies it, never by changing what a program
//! means: loads of the context's packet pointers become 64-bit loads of the slots of `ctx`
//! (the kernel's `convert_ctx_access`, driven by the emulator's provenance analysis), map
//! references become tags the helpers resolve and map-value references the value's address
//! (the kernel's `resolve_pseudo_ldimm64`), and a first instruction stores r10 so the helpers
//! can check stack arguments. Instructions rbpf does not implement, or implements otherwise
//! than the kernel, are refused here with their index and the reason ([`limitation`]) rather
//! than run wrongly; the conformance runner counts such programs as excluded for rbpf.

use crate::ctx;
use crate::helpers::MAP_TAG;
use crate::OracleError;
use nfcc_bpf::ProgType;
use nfcc_emulator::vm::Ins;
use std::collections::BTreeMap;

/// What the program is run as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// An XDP or TC program over the context of `ctx`.
    Program(ProgType),
    /// A conformance-suite program: r1 the memory block, r2 its length, helper 5 `unwind`.
    Bare {
        /// The memory block's length.
        len: usize,
    },
}

/// A map-value reference to fill with the value's address before a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueRef {
    /// The `ld_imm64`'s index in the rewritten program.
    pub(crate) at: usize,
    /// The map.
    pub(crate) map: usize,
    /// The offset in its value.
    pub(crate) offset: u32,
}

/// The rewritten program.
#[derive(Clone, Debug)]
pub(crate) struct Rewritten {
    pub(crate) code: Vec<u8>,
    pub(crate) values: Vec<ValueRef>,
    /// The helpers it calls (kernel ids).
    pub(crate) helpers: Vec<i32>,
}

/// Why rbpf cannot run instruction `i` (at `pc` of a program of `len` instructions), if it
/// cannot: the documented list of what the rbpf engine refuses.
pub fn limitation(i: Ins, pc: usize, len: usize) -> Option<&'static str> {
    let class = i.code & 7;
    let op = i.code & 0xf0;
    let mode = i.code & 0xe0;
    Some(match class {
        0x00 if i.code == 0x18 && i.src > 2 => {
            "an `ld_imm64` of a kind other than a number, a map or a map value"
        }
        0x00 | 0x01 if mode == 0x20 || mode == 0x40 => {
            "legacy packet loads (LD_ABS/LD_IND), which rbpf applies to a buffer it is not given"
        }
        0x01 if mode == 0x80 => "sign-extending loads (BPF_MEMSX), which rbpf does not implement",
        0x03 if mode == 0xc0 => "atomic operations (BPF_ATOMIC), which rbpf does not implement",
        0x04 | 0x07 if op == 0xb0 && i.off != 0 => {
            "sign-extending moves (movsx), which rbpf does not implement"
        }
        0x04 | 0x07 if (op == 0x30 || op == 0x90) && i.off == 1 => {
            "signed division and modulo (sdiv/smod), which rbpf does not implement"
        }
        0x07 if op == 0xd0 => "unconditional byte swaps (bswap), which rbpf does not implement",
        0x06 if op == 0x00 => "32-bit-offset jumps (gotol), which rbpf does not implement",
        0x05 if op == 0x80 && i.code & 0x08 != 0 => {
            "calls by register (callx), which rbpf does not implement"
        }
        0x05 if op == 0x80 && i.src > 1 => "calls of kernel functions (kfuncs)",
        0x05 if op == 0x80 && i.src == 1 && i.imm < 0 => {
            "calls of a function placed before the caller, which rbpf's call arithmetic \
             cannot reach"
        }
        // JEQ, JGT, JGE, JNE, JLT, JLE: rbpf zero-extends the immediate where the kernel
        // sign-extends it.
        0x05 if i.code & 0x08 == 0
            && matches!(op, 0x10 | 0x20 | 0x30 | 0x50 | 0xa0 | 0xb0)
            && i.imm < 0 =>
        {
            "64-bit comparisons with a negative immediate, which rbpf zero-extends where the \
             kernel sign-extends"
        }
        // rbpf computes jump targets in 16 bits.
        0x05 | 0x06
            if op != 0x80 && op != 0x90 && (len > i16::MAX as usize || pc > i16::MAX as usize) =>
        {
            "jumps in programs of more than 32,767 instructions, whose targets rbpf computes \
             in 16 bits"
        }
        _ => return None,
    })
}

/// Whether `i` is a jump whose `off` is relative to the next instruction.
fn is_jump(i: Ins) -> bool {
    matches!(i.code & 7, 0x05 | 0x06) && !matches!(i.code & 0xf0, 0x80 | 0x90)
}

/// One rewritten instruction, and the original index of a jump or call whose distance is to
/// be relocated.
type Out = (Ins, Option<usize>);

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Ins {
    Ins {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// Rewrites `insns` for rbpf. `ctx_at` is the emulator's map of context accesses.
pub(crate) fn rewrite(
    insns: &[Ins],
    mode: Mode,
    ctx_at: &BTreeMap<usize, i64>,
) -> Result<Rewritten, OracleError> {
    // The prologue: program runs learn the stack, bare runs get the block's length in r2.
    let mut out: Vec<Out> = vec![match mode {
        Mode::Program(_) => (ins(0x7b, 1, 10, ctx::STACK_TOP as i16, 0), None),
        Mode::Bare { len } => (ins(0xb7, 2, 0, 0, len as i32), None),
    }];
    // Where each original instruction starts in `out` (the second half of an `ld_imm64`
    // included, and one past the end).
    let mut at = vec![0usize; insns.len() + 1];
    let mut values = Vec::new();
    let mut helpers = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let i = insns[pc];
        at[pc] = out.len();
        // The prologue makes the program one instruction longer.
        if let Some(what) = limitation(i, pc + 1, insns.len() + 1) {
            return Err(OracleError::Unsupported {
                insn: pc,
                what: what.to_string(),
            });
        }
        if i.code == 0x18 {
            let Some(&next) = insns.get(pc + 1) else {
                return Err(OracleError::Unsupported {
                    insn: pc,
                    what: "an `ld_imm64` cut short by the program's end".into(),
                });
            };
            let (lo, hi) = match i.src {
                1 => {
                    let h = MAP_TAG | u64::from(i.imm as u32);
                    (h as u32 as i32, (h >> 32) as i32)
                }
                2 => {
                    values.push(ValueRef {
                        at: out.len(),
                        map: i.imm as u32 as usize,
                        offset: next.imm as u32,
                    });
                    (0, 0)
                }
                _ => (i.imm, next.imm),
            };
            out.push((ins(0x18, i.dst, 0, 0, lo), None));
            out.push((ins(0, 0, 0, 0, hi), None));
            at[pc + 1] = out.len() - 1;
            pc += 2;
            continue;
        }
        match (mode, ctx_at.get(&pc)) {
            (Mode::Program(hook), Some(&field)) => {
                if let Some(slot) = ctx::pointer_slot(hook, field) {
                    // A 32-bit load of a packet pointer: the 64-bit slot instead.
                    if i.code != 0x61 {
                        return Err(OracleError::Unsupported {
                            insn: pc,
                            what: format!(
                                "an access to the context's pointer field at offset {field} \
                                 other than a 32-bit load, which the kernel refuses"
                            ),
                        });
                    }
                    let off = i64::from(i.off) + slot as i64 - field;
                    let off = i16::try_from(off).map_err(|_| OracleError::Unsupported {
                        insn: pc,
                        what: "a context access too far from its pointer".into(),
                    })?;
                    out.push((ins(0x79, i.dst, i.src, off, 0), None));
                } else {
                    out.push((i, None));
                }
            }
            _ if i.code == 0x85 && i.src == 0 => {
                helpers.push(i.imm);
                out.push((i, None));
                if matches!(mode, Mode::Bare { .. }) && i.imm == nfcc_emulator::vm::UNWIND {
                    // `unwind` returning 0 stops the program there with r0 = 0.
                    out.push((ins(0x55, 0, 0, 1, 0), None));
                    out.push((ins(0x95, 0, 0, 0, 0), None));
                }
            }
            _ => out.push((
                i,
                (is_jump(i) || (i.code == 0x85 && i.src == 1)).then_some(pc),
            )),
        }
        pc += 1;
    }
    at[insns.len()] = out.len();
    // Jumps and calls now span the inserted instructions.
    let mut code = Vec::with_capacity(out.len() * 8);
    for (n, (mut i, relocate)) in out.iter().copied().enumerate() {
        if let Some(old_pc) = relocate {
            let dist = if i.code == 0x85 {
                i64::from(i.imm)
            } else {
                i64::from(i.off)
            };
            let target = old_pc as i64 + 1 + dist;
            let new = usize::try_from(target)
                .ok()
                .and_then(|t| at.get(t))
                .map(|&t| t as i64 - n as i64 - 1)
                .ok_or(OracleError::Unsupported {
                    insn: old_pc,
                    what: "a jump out of the program".into(),
                })?;
            if i.code == 0x85 {
                i.imm = new as i32;
            } else {
                i.off = i16::try_from(new).map_err(|_| OracleError::Unsupported {
                    insn: old_pc,
                    what: "a jump too long once the context accesses are rewritten".into(),
                })?;
            }
        }
        code.extend_from_slice(&encode(i));
    }
    helpers.sort_unstable();
    helpers.dedup();
    Ok(Rewritten {
        code,
        values,
        helpers,
    })
}

fn encode(i: Ins) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = i.code;
    b[1] = (i.src << 4) | (i.dst & 0xf);
    b[2..4].copy_from_slice(&i.off.to_le_bytes());
    b[4..8].copy_from_slice(&i.imm.to_le_bytes());
    b
}

/// Fills the map-value references of `code` with the addresses of the values.
pub(crate) fn bind_values(
    code: &mut [u8],
    values: &[ValueRef],
    slabs: &[u64],
) -> Result<(), OracleError> {
    for v in values {
        let base = slabs.get(v.map).ok_or(OracleError::Unsupported {
            insn: v.at,
            what: format!(
                "a reference to map {}, which the object does not have",
                v.map
            ),
        })?;
        let addr = base + u64::from(v.offset);
        let lo = v.at * 8 + 4;
        let hi = (v.at + 1) * 8 + 4;
        code[lo..lo + 4].copy_from_slice(&(addr as u32).to_le_bytes());
        code[hi..hi + 4].copy_from_slice(&((addr >> 32) as u32).to_le_bytes());
    }
    Ok(())
}
