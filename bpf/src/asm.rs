//! An assembler for the assembly dialect of the BPF conformance suite (the `-- asm` sections of
//! its `.data` files: `mov %r0, 1`, `ldxw %r0, [%r1+2]`, `jeq %r1, 0x10, label`,
//! `lock fetch add32 [%r10-8], %r1`, `call local f`), into [`Insn`]s.
//!
//! The suite describes its programs in this dialect rather than as bytes, so an engine that
//! runs the suite needs it; it lives beside the instruction set because it is a view of the
//! ABI's encoding and nothing more. Immediates are written as signed or unsigned numbers of
//! the field's width (`0xffffff80` is the 32-bit immediate -128); jump targets are labels or
//! `+N`/`-N` (and `exit`, where no label has that name: the next `exit` instruction, as the
//! suite's files use it); `callx` (`call %rN`) names its register in `dst`, as LLVM encodes it.

use crate::insn::{class, Insn, Size};
use std::collections::HashMap;

/// Why a program could not be assembled: the line (1-based, within the text given) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct AsmError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

const BPF_X: u8 = 0x08;
const MEM: u8 = 0x60;
const MEMSX: u8 = 0x80;
const ATOMIC: u8 = 0xc0;
const END: u8 = 0xd0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// An instruction waiting for its jump target.
enum Target {
    None,
    /// `off` of a jump (or `imm` of `ja32`, `call local`) is `label - (pc + 1)`.
    Label(String, Field),
}

#[derive(Clone, Copy)]
enum Field {
    Off,
    Imm,
}

/// Assembles a program; line numbers in errors count from the text's first line.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut insns: Vec<(Insn, Target, usize)> = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let err = |what: String| AsmError { line, what };
        let mut s = raw.split('#').next().unwrap_or("").trim();
        // Labels, possibly followed by an instruction on the same line.
        while let Some((name, rest)) = s.split_once(':') {
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                break;
            }
            if labels.insert(name.to_string(), insns.len()).is_some() {
                return Err(err(format!("label `{name}` is defined twice")));
            }
            s = rest.trim();
        }
        if s.is_empty() {
            continue;
        }
        for (insn, target) in one(s).map_err(err)? {
            insns.push((insn, target, line));
        }
    }
    let exits: Vec<usize> = (0..insns.len())
        .filter(|&i| insns[i].0.code == class::JMP | EXIT)
        .collect();
    let mut out = Vec::with_capacity(insns.len());
    for (pc, (mut insn, target, line)) in insns.into_iter().enumerate() {
        if let Target::Label(name, field) = target {
            let to = if let Some(rel) = name.strip_prefix(['+', '-']) {
                let d = number(rel).ok_or_else(|| AsmError {
                    line,
                    what: format!("bad jump offset `{name}`"),
                })? as i64;
                let d = if name.starts_with('-') { -d } else { d };
                pc as i64 + 1 + d
            } else if let Some(&at) = labels.get(&name) {
                at as i64
            } else if name == "exit" {
                // The suite jumps to `exit` without defining it: the next `exit` instruction.
                exits
                    .iter()
                    .find(|&&e| e > pc)
                    .copied()
                    .ok_or_else(|| AsmError {
                        line,
                        what: "no `exit` after this jump".into(),
                    })? as i64
            } else {
                return Err(AsmError {
                    line,
                    what: format!("no label `{name}`"),
                });
            };
            let rel = to - (pc as i64 + 1);
            match field {
                Field::Off => {
                    insn.off = i16::try_from(rel).map_err(|_| AsmError {
                        line,
                        what: format!("jump to `{name}` is too far for a 16-bit offset"),
                    })?;
                }
                Field::Imm => insn.imm = rel as i32,
            }
        }
        out.push(insn);
    }
    Ok(out)
}

/// A number: decimal or `0x` hex, with an optional sign; the bits as a u64.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => body.parse::<u64>().ok()?,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A 32-bit immediate: anything from `-2^31` to `2^32 - 1`, its low 32 bits.
fn imm32(s: &str) -> Result<i32, String> {
    let v = number(s).ok_or_else(|| format!("`{s}` is not a number"))?;
    let fits = if s.trim().starts_with('-') {
        (v as i64) >= i64::from(i32::MIN)
    } else {
        v <= u64::from(u32::MAX)
    };
    if !fits {
        return Err(format!("`{s}` does not fit in 32 bits"));
    }
    Ok(v as u32 as i32)
}

fn reg(s: &str) -> Result<u8, String> {
    let n = s
        .trim()
        .strip_prefix("%r")
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| *n <= 10);
    n.ok_or_else(|| format!("`{}` is not a register (%r0..%r10)", s.trim()))
}

fn is_reg(s: &str) -> bool {
    s.trim().starts_with('%')
}

/// `[%rN]`, `[%rN+off]` or `[%rN-off]`.
fn memory(s: &str) -> Result<(u8, i16), String> {
    let inner = s
        .trim()
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("`{s}` is not a memory operand `[%rN+off]`"))?;
    let split = inner.find(['+', '-']);
    let (r, off) = match split {
        Some(i) => (&inner[..i], &inner[i..]),
        None => (inner, "0"),
    };
    let off = number(off)
        .map(|v| v as i64)
        .and_then(|v| i16::try_from(v).ok())
        .ok_or_else(|| format!("bad offset in `{s}`"))?;
    Ok((reg(r)?, off))
}

fn size(suffix: &str) -> Option<Size> {
    Some(match suffix {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

fn size_code(s: Size) -> u8 {
    match s {
        Size::W => 0x00,
        Size::H => 0x08,
        Size::B => 0x10,
        Size::DW => 0x18,
    }
}

/// ALU operations by mnemonic: the opcode bits and the `off` (1 for signed division).
fn alu_op(m: &str) -> Option<(u8, i16)> {
    Some(match m {
        "add" => (0x00, 0),
        "sub" => (0x10, 0),
        "mul" => (0x20, 0),
        "div" => (0x30, 0),
        "sdiv" => (0x30, 1),
        "or" => (0x40, 0),
        "and" => (0x50, 0),
        "lsh" => (0x60, 0),
        "rsh" => (0x70, 0),
        "neg" => (0x80, 0),
        "mod" => (0x90, 0),
        "smod" => (0x90, 1),
        "xor" => (0xa0, 0),
        "mov" => (0xb0, 0),
        "arsh" => (0xc0, 0),
        _ => return None,
    })
}

fn jmp_op(m: &str) -> Option<u8> {
    Some(match m {
        "jeq" => 0x10,
        "jgt" => 0x20,
        "jge" => 0x30,
        "jset" => 0x40,
        "jne" => 0x50,
        "jsgt" => 0x60,
        "jsge" => 0x70,
        "jlt" => 0xa0,
        "jle" => 0xb0,
        "jslt" => 0xc0,
        "jsle" => 0xd0,
        _ => return None,
    })
}

fn atomic_op(m: &str) -> Option<i32> {
    Some(match m {
        "add" => 0x00,
        "or" => 0x40,
        "and" => 0x50,
        "xor" => 0xa0,
        "xchg" => 0xe1,
        "cmpxchg" => 0xf1,
        _ => return None,
    })
}

/// `name`, `name32` or `name64`: the name and whether it is the 32-bit form.
fn width(m: &str) -> (&str, bool) {
    if let Some(b) = m.strip_suffix("32") {
        (b, true)
    } else {
        (m.strip_suffix("64").unwrap_or(m), false)
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

fn expect(ops: &[&str], n: usize, m: &str) -> Result<(), String> {
    if ops.len() == n {
        Ok(())
    } else {
        Err(format!("`{m}` takes {n} operand(s), got {}", ops.len()))
    }
}

/// One instruction (two for `lddw`).
fn one(s: &str) -> Result<Vec<(Insn, Target)>, String> {
    let (m, rest) = match s.split_once(char::is_whitespace) {
        Some((m, r)) => (m, r.trim()),
        None => (s, ""),
    };
    let ops: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').map(str::trim).collect()
    };
    let plain = |i: Insn| Ok(vec![(i, Target::None)]);
    match m {
        "exit" => {
            expect(&ops, 0, m)?;
            return plain(insn(class::JMP | EXIT, 0, 0, 0, 0));
        }
        "lddw" => {
            expect(&ops, 2, m)?;
            let v = number(ops[1]).ok_or_else(|| format!("`{}` is not a number", ops[1]))?;
            let [a, b] = Insn::ld_imm64(crate::insn::Reg(reg(ops[0])?), v);
            return Ok(vec![(a, Target::None), (b, Target::None)]);
        }
        "call" => {
            if let Some(label) = rest.strip_prefix("local") {
                let t = Target::Label(label.trim().to_string(), Field::Imm);
                return Ok(vec![(insn(class::JMP | CALL, 0, 1, 0, 0), t)]);
            }
            expect(&ops, 1, m)?;
            if is_reg(ops[0]) {
                return plain(insn(class::JMP | CALL | BPF_X, reg(ops[0])?, 0, 0, 0));
            }
            return plain(insn(class::JMP | CALL, 0, 0, 0, imm32(ops[0])?));
        }
        "ja" | "ja32" => {
            expect(&ops, 1, m)?;
            let (cls, field) = if m == "ja" {
                (class::JMP, Field::Off)
            } else {
                (class::JMP32, Field::Imm)
            };
            let t = Target::Label(ops[0].to_string(), field);
            return Ok(vec![(insn(cls, 0, 0, 0, 0), t)]);
        }
        "lock" => return atomic(rest),
        _ => {}
    }
    // Byte swaps: be/le (to an order, 32-bit class) and bswap/swap (unconditional, ALU64).
    for (prefix, code) in [
        ("bswap", class::ALU64 | END),
        ("swap", class::ALU64 | END),
        ("be", class::ALU | END | BPF_X),
        ("le", class::ALU | END),
    ] {
        if let Some(bits) = m.strip_prefix(prefix).and_then(|b| b.parse::<i32>().ok()) {
            expect(&ops, 1, m)?;
            return plain(insn(code, reg(ops[0])?, 0, 0, bits));
        }
    }
    // movsx<from><to>: sign-extending moves.
    if let Some(spec) = m.strip_prefix("movsx") {
        let (from, cls) = match spec {
            "832" => (8, class::ALU),
            "1632" => (16, class::ALU),
            "864" => (8, class::ALU64),
            "1664" => (16, class::ALU64),
            "3264" => (32, class::ALU64),
            _ => return Err(format!("unknown instruction `{m}`")),
        };
        expect(&ops, 2, m)?;
        return plain(insn(
            cls | 0xb0 | BPF_X,
            reg(ops[0])?,
            reg(ops[1])?,
            from,
            0,
        ));
    }
    if let Some(sz) = m.strip_prefix("ldxs").and_then(size) {
        expect(&ops, 2, m)?;
        let (src, off) = memory(ops[1])?;
        return plain(insn(
            class::LDX | MEMSX | size_code(sz),
            reg(ops[0])?,
            src,
            off,
            0,
        ));
    }
    if let Some(sz) = m.strip_prefix("ldx").and_then(size) {
        expect(&ops, 2, m)?;
        let (src, off) = memory(ops[1])?;
        return plain(insn(
            class::LDX | MEM | size_code(sz),
            reg(ops[0])?,
            src,
            off,
            0,
        ));
    }
    if let Some(sz) = m.strip_prefix("stx").and_then(size) {
        expect(&ops, 2, m)?;
        let (dst, off) = memory(ops[0])?;
        return plain(insn(
            class::STX | MEM | size_code(sz),
            dst,
            reg(ops[1])?,
            off,
            0,
        ));
    }
    if let Some(sz) = m.strip_prefix("st").and_then(size) {
        expect(&ops, 2, m)?;
        let (dst, off) = memory(ops[0])?;
        return plain(insn(
            class::ST | MEM | size_code(sz),
            dst,
            0,
            off,
            imm32(ops[1])?,
        ));
    }
    let (base, narrow) = width(m);
    if let Some(op) = jmp_op(base) {
        expect(&ops, 3, m)?;
        let cls = if narrow { class::JMP32 } else { class::JMP };
        let d = reg(ops[0])?;
        let t = Target::Label(ops[2].to_string(), Field::Off);
        let i = if is_reg(ops[1]) {
            insn(cls | op | BPF_X, d, reg(ops[1])?, 0, 0)
        } else {
            insn(cls | op, d, 0, 0, imm32(ops[1])?)
        };
        return Ok(vec![(i, t)]);
    }
    if let Some((op, off)) = alu_op(base) {
        let cls = if narrow { class::ALU } else { class::ALU64 };
        if op == 0x80 {
            expect(&ops, 1, m)?;
            return plain(insn(cls | op, reg(ops[0])?, 0, 0, 0));
        }
        expect(&ops, 2, m)?;
        let d = reg(ops[0])?;
        return plain(if is_reg(ops[1]) {
            insn(cls | op | BPF_X, d, reg(ops[1])?, off, 0)
        } else {
            insn(cls | op, d, 0, off, imm32(ops[1])?)
        });
    }
    Err(format!("unknown instruction `{m}`"))
}

/// `lock [fetch] OP[32] [%rD+off], %rS`.
fn atomic(rest: &str) -> Result<Vec<(Insn, Target)>, String> {
    let (fetch, rest) = match rest.strip_prefix("fetch") {
        Some(r) => (1, r.trim()),
        None => (0, rest),
    };
    let (m, ops) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("`lock {rest}` lacks operands"))?;
    let (base, narrow) = width(m);
    let op = atomic_op(base).ok_or_else(|| format!("unknown atomic operation `{m}`"))?;
    let ops: Vec<&str> = ops.split(',').map(str::trim).collect();
    expect(&ops, 2, "lock")?;
    let (dst, off) = memory(ops[0])?;
    let sz = if narrow { Size::W } else { Size::DW };
    let code = class::STX | ATOMIC | size_code(sz);
    Ok(vec![(
        insn(code, dst, reg(ops[1])?, off, op | fetch),
        Target::None,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> String {
        assemble(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .flat_map(|i| i.encode())
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// One line per mnemonic family, against the kernel's encoding (struct bpf_insn, little
    /// endian: code, dst|src<<4, off, imm).
    #[test]
    fn every_family_encodes_as_the_kernel_does() {
        let cases = [
            ("mov %r0, 2", "b700000002000000"),
            ("mov32 %r1, -1", "b4010000ffffffff"),
            ("mov32 %r0, 0x80000000", "b400000000000080"),
            ("add %r3, %r2", "0f23000000000000"),
            ("sub32 %r3, %r2", "1c23000000000000"),
            ("mul64 %r1, 7", "2701000007000000"),
            ("div32 %r0, %r1", "3c10000000000000"),
            ("sdiv %r0, -3", "37000100fdffffff"),
            ("smod32 %r0, %r1", "9c10010000000000"),
            ("mod %r0, 5", "9700000005000000"),
            ("or %r0, 1", "4700000001000000"),
            ("and32 %r0, 1", "5400000001000000"),
            ("lsh %r0, 4", "6700000004000000"),
            ("rsh32 %r0, %r1", "7c10000000000000"),
            ("arsh %r0, 1", "c700000001000000"),
            ("xor %r0, %r0", "af00000000000000"),
            ("neg %r2", "8702000000000000"),
            ("neg32 %r2", "8402000000000000"),
            ("movsx832 %r2, %r1", "bc12080000000000"),
            ("movsx3264 %r0, %r9", "bf90200000000000"),
            ("be16 %r3", "dc03000010000000"),
            ("le32 %r3", "d403000020000000"),
            ("bswap64 %r0", "d700000040000000"),
            ("swap16 %r0", "d700000010000000"),
            ("ldxw %r2, [%r1+4]", "6112040000000000"),
            ("ldxh %r3, [%r7+12]", "69730c0000000000"),
            ("ldxsb %r0, [%r10-1]", "91a0ffff00000000"),
            ("ldxdw %r0, [%r1]", "7910000000000000"),
            ("stxdw [%r10-8], %r1", "7b1af8ff00000000"),
            ("stb [%r10-1], 0x80", "720affff80000000"),
            ("lock add [%r10-8], %r1", "db1af8ff00000000"),
            ("lock fetch add32 [%r10-4], %r1", "c31afcff01000000"),
            ("lock xchg [%r10-8], %r1", "db1af8ffe1000000"),
            ("lock cmpxchg32 [%r10-8], %r1", "c31af8fff1000000"),
            ("jne %r3, 8, +0", "5503000008000000"),
            ("jgt %r3, %r2, +5", "2d23050000000000"),
            ("jsle32 %r1, -1, -1", "d601ffffffffffff"),
            ("ja +1", "0500010000000000"),
            ("ja32 +3", "0600000003000000"),
            ("call 1", "8500000001000000"),
            ("call %r2", "8d02000000000000"),
            ("exit", "9500000000000000"),
            ("lddw %r2, 0x100000002", "18020000020000000000000001000000"),
        ];
        for (text, bytes) in cases {
            assert_eq!(hex(text), bytes, "{text}");
            // Decoding the encoding gives the same instructions.
            let insns = assemble(text).unwrap_or_default();
            for i in &insns {
                assert_eq!(Insn::decode(i.encode()), *i, "{text}");
            }
        }
    }

    #[test]
    fn lddw_matches_the_suites_raw_words() {
        // lddw.data's `-- raw` section, as 64-bit words.
        let raw: [u64; 3] = [0x5566778800000018, 0x1122334400000000, 0x95];
        let insns = assemble("lddw %r0, 0x1122334455667788\nexit").unwrap_or_default();
        let words: Vec<u64> = insns
            .iter()
            .map(|i| u64::from_le_bytes(i.encode()))
            .collect();
        assert_eq!(words, raw);
    }

    #[test]
    fn labels_resolve_forward_and_backward() {
        let p = "mov %r0, 0\nL1:\njeq %r0, 1, out # a comment\nmov %r0, 1\nja L1\nout: exit";
        let insns = assemble(p).unwrap_or_default();
        assert_eq!(insns.len(), 5);
        assert_eq!(insns[1].off, 2, "jeq skips to `out`");
        assert_eq!(insns[3].off, -3, "ja goes back to L1");
        let call = assemble("call local f\nexit\nf:\nexit").unwrap_or_default();
        assert_eq!((call[0].src, call[0].imm), (1, 1));
        let to_exit = assemble("jne %r0, 1, exit\nmov %r0, 0\nexit").unwrap_or_default();
        assert_eq!(
            to_exit[0].off, 1,
            "an undefined `exit` label is the next exit"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = assemble("mov %r0, 1\nfrob %r0\nexit").err();
        assert_eq!(e.map(|e| e.line), Some(2));
        let e = assemble("ja nowhere").err();
        assert!(e.is_some_and(|e| e.what.contains("nowhere")));
        let e = assemble("mov %r11, 1").err();
        assert!(e.is_some_and(|e| e.what.contains("register")));
        let e = assemble("mov %r0, 0x1ffffffff").err();
        assert!(e.is_some_and(|e| e.what.contains("32 bits")));
    }
}
