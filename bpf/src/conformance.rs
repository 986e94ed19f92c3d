//! The file format of the BPF ISA conformance suite (bpf_conformance's `.data` files): a
//! program (`-- asm`, or `-- raw` 64-bit words), its input memory (`-- mem`, hex bytes), the
//! expected r0 (`-- result`), and informative sections (`-- c`, `-- no register offset` with
//! its description), read into a typed [`ConformanceTest`].
//!
//! It sits beside the assembler ([`crate::asm`]) because both describe programs in the ABI's
//! terms; running a test is the emulator's business and choosing what to run the driver's.
//! `#` lines are comments; a `# ...` after an instruction is one too.

use crate::asm::{assemble, AsmError};
use crate::insn::Insn;

/// One conformance test, as its file states it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConformanceTest {
    /// The `-- asm` section, with the file's line number of its first line.
    pub asm: Option<(usize, String)>,
    /// The `-- raw` section: the program as 64-bit instruction words (little-endian).
    pub raw: Option<Vec<u64>>,
    /// The input memory (`-- mem`); empty without one.
    pub mem: Vec<u8>,
    /// The expected r0 at exit (`-- result`).
    pub result: Option<u64>,
    /// An expected error (`-- error`), for suites that test refusals.
    pub error: Option<String>,
    /// The `-- no register offset` option and the description that follows it. The suite's
    /// runner passes r1 (memory) and r2 (its length) either way: `mem-len.data` carries the
    /// option and expects r2 to be the length.
    pub no_register_offset: Option<String>,
    /// The `-- c` source it came from (informative).
    pub c: Option<String>,
}

/// Why a test file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A section the format does not have.
    #[error("line {line}: unknown section `-- {name}`")]
    Section {
        /// The line.
        line: usize,
        /// The section's name.
        name: String,
    },
    /// Text before the first section.
    #[error("line {line}: text outside any section")]
    Outside {
        /// The line.
        line: usize,
    },
    /// A malformed value in a section.
    #[error("line {line}: {what}")]
    Value {
        /// The line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Neither `-- asm` nor `-- raw`.
    #[error("the file has no program (`-- asm` or `-- raw`)")]
    NoProgram,
    /// Neither `-- result` nor `-- error`.
    #[error("the file has no expected result (`-- result` or `-- error`)")]
    NoResult,
    /// The program does not assemble (the line is the file's).
    #[error("line {line}: {what}")]
    Asm {
        /// The file's line.
        line: usize,
        /// What the assembler said.
        what: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sec {
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    NoRegOffset,
    C,
}

/// Parses a `.data` file.
pub fn parse(text: &str) -> Result<ConformanceTest, DataError> {
    let mut t = ConformanceTest::default();
    let mut sec: Option<Sec> = None;
    let mut body: Vec<(usize, &str)> = Vec::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if let Some(name) = line.strip_prefix("-- ") {
            if let Some(s) = sec.take() {
                finish(&mut t, s, start, &body)?;
            }
            body.clear();
            start = line_no + 1;
            sec = Some(match name.trim() {
                "asm" => Sec::Asm,
                "raw" => Sec::Raw,
                "mem" => Sec::Mem,
                "result" => Sec::Result,
                "error" => Sec::Error,
                "no register offset" => Sec::NoRegOffset,
                "c" => Sec::C,
                other => {
                    return Err(DataError::Section {
                        line: line_no,
                        name: other.to_string(),
                    })
                }
            });
            continue;
        }
        // Comments, outside the C source (where `#include` is code).
        if sec != Some(Sec::C) && line.trim_start().starts_with('#') {
            body.push((line_no, ""));
            continue;
        }
        if sec.is_none() {
            if line.trim().is_empty() {
                continue;
            }
            return Err(DataError::Outside { line: line_no });
        }
        body.push((line_no, line));
    }
    if let Some(s) = sec {
        finish(&mut t, s, start, &body)?;
    }
    if t.asm.is_none() && t.raw.is_none() {
        return Err(DataError::NoProgram);
    }
    if t.result.is_none() && t.error.is_none() {
        return Err(DataError::NoResult);
    }
    Ok(t)
}

fn finish(
    t: &mut ConformanceTest,
    sec: Sec,
    start: usize,
    body: &[(usize, &str)],
) -> Result<(), DataError> {
    let text = || {
        body.iter()
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    };
    let words = || {
        body.iter()
            .flat_map(|(n, l)| l.split_whitespace().map(move |w| (*n, w)))
            .collect::<Vec<_>>()
    };
    let value = |line: usize, what: String| DataError::Value { line, what };
    match sec {
        Sec::Asm => {
            // Kept line for line, so that the assembler's line numbers map back to the file.
            let lines: Vec<&str> = body.iter().map(|(_, l)| *l).collect();
            t.asm = Some((start, lines.join("\n")));
        }
        Sec::Raw => {
            let mut v = Vec::new();
            for (n, w) in words() {
                let h = w.strip_prefix("0x").unwrap_or(w);
                let x = u64::from_str_radix(h, 16)
                    .map_err(|_| value(n, format!("`{w}` is not a 64-bit hex word")))?;
                v.push(x);
            }
            t.raw = Some(v);
        }
        Sec::Mem => {
            for (n, w) in words() {
                let w = w.strip_prefix("0x").unwrap_or(w);
                if w.len() % 2 != 0 {
                    return Err(value(n, format!("`{w}` is not whole bytes of hex")));
                }
                for i in (0..w.len()).step_by(2) {
                    let b = u8::from_str_radix(&w[i..i + 2], 16)
                        .map_err(|_| value(n, format!("`{w}` is not hex")))?;
                    t.mem.push(b);
                }
            }
        }
        Sec::Result => {
            let w = words();
            let [(n, r)] = w.as_slice() else {
                return Err(value(start, "`-- result` holds one number".into()));
            };
            let v = match r.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => r
                    .parse::<u64>()
                    .ok()
                    .or_else(|| r.parse::<i64>().ok().map(|v| v as u64)),
            };
            t.result = Some(v.ok_or_else(|| value(*n, format!("`{r}` is not a number")))?);
        }
        Sec::Error => t.error = Some(text()),
        Sec::NoRegOffset => t.no_register_offset = Some(text()),
        Sec::C => t.c = Some(text()),
    }
    Ok(())
}

impl ConformanceTest {
    /// The program: the raw words when the file has them (they override the assembly, as in
    /// the suite), else the assembly assembled.
    pub fn program(&self) -> Result<Vec<Insn>, DataError> {
        if let Some(raw) = &self.raw {
            return Ok(raw.iter().map(|w| Insn::decode(w.to_le_bytes())).collect());
        }
        let Some((start, asm)) = &self.asm else {
            return Err(DataError::NoProgram);
        };
        assemble(asm).map_err(|AsmError { line, what }| DataError::Asm {
            line: start + line - 1,
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDDW: &str = "# Copyright\n# licence\n-- asm\nlddw %r0, 0x1122334455667788\nexit\n\
        -- raw\n0x5566778800000018\n0x1122334400000000\n0x0000000000000095\n-- result\n\
        0x1122334455667788\n";

    #[test]
    fn reads_every_section() {
        let t = parse(LDDW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.result, Some(0x1122_3344_5566_7788));
        assert_eq!(t.raw.as_ref().map(Vec::len), Some(3));
        // The raw words and the assembly are the same program.
        let from_asm = assemble(&t.asm.as_ref().map(|a| a.1.clone()).unwrap_or_default());
        assert_eq!(t.program().ok(), from_asm.ok());

        let mem = "-- asm\nmov %r0, %r2\nexit\n-- mem\n00 00 00 01\n00 00 00 02\n\
            -- no register offset\n-- result\n0x8\n";
        let t = parse(mem).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.mem, [0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(t.no_register_offset.as_deref(), Some(""));
        assert_eq!(t.result, Some(8));

        let described =
            "-- asm\ncall 5\nexit\n-- result\n0x2\n-- no register offset\ncall instruction\n";
        let t = parse(described).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.no_register_offset.as_deref(), Some("call instruction"));
    }

    #[test]
    fn errors_name_the_file_line() {
        let bad = "# c\n-- asm\nmov %r0, 1\nfrob\nexit\n-- result\n0x0\n";
        let t = parse(bad).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.program().err(),
            Some(DataError::Asm {
                line: 4,
                what: "unknown instruction `frob`".into()
            })
        );
        assert!(matches!(
            parse("-- asm\nexit\n-- bogus\n"),
            Err(DataError::Section { line: 3, .. })
        ));
        assert_eq!(parse("-- asm\nexit\n"), Err(DataError::NoResult));
        assert!(matches!(
            parse("-- asm\nexit\n-- mem\nzz\n-- result\n0\n"),
            Err(DataError::Value { line: 4, .. })
        ));
    }
}
