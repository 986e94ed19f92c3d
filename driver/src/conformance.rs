//! `nfcc conformance DIR`: the BPF ISA conformance suite (bpf_conformance's `.data` files) on
//! the emulator's engines and on the rbpf oracle — an oracle independent of nfcc's own
//! compiler and tests, stating that the interpreter and the JIT execute instructions as the
//! ISA specifies, and how far rbpf does.
//!
//! Every file of the directory runs on each engine asked for; a file the project cannot run
//! is on [`EXCLUDED`] with its reason (and counted as excluded), never skipped silently. On
//! rbpf, a file whose program uses an instruction on rbpf's documented list
//! (`nfcc_oracle::limitation`: what rbpf lacks or runs otherwise than the kernel) is excluded
//! with that entry as the reason. A failure not excluded is a failed check (exit 3).

use crate::error::DriverError;
use nfcc_bpf::conformance::{parse, ConformanceTest};
use nfcc_emulator::{bare, Runner};
use nfcc_oracle::OracleError;
use std::path::{Path, PathBuf};

/// Which engines run the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ConformanceEngine {
    /// The emulator's interpreter.
    Interp,
    /// The emulator's cranelift JIT.
    Jit,
    /// The rbpf crate's interpreter.
    Rbpf,
    /// Every engine this build has.
    All,
}

/// The project's documented exclusions: a file name and why no engine runs it. Empty: every
/// file of the suite (bpf_conformance f558566) runs on the interpreter and the JIT.
pub const EXCLUDED: &[(&str, &str)] = &[];

/// One executor of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    Emulator(Runner),
    Rbpf,
}

/// One failed file on one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The file's name.
    pub file: String,
    /// What it expects: `r0 = 0x..`, or an error.
    pub expected: String,
    /// What the engine did: `r0 = 0x..`, or its error.
    pub actual: String,
}

/// One engine's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSummary {
    /// The engine's name, as `--engine` spells it.
    pub engine: &'static str,
    /// Files that gave the expected result.
    pub passed: usize,
    /// Files that did not.
    pub failed: Vec<Failure>,
    /// Files on [`EXCLUDED`] (or, on rbpf, using an instruction on its list), with the
    /// reason.
    pub excluded: Vec<(String, String)>,
}

/// What a conformance run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Per engine, in the order run.
    pub engines: Vec<EngineSummary>,
}

impl ConformanceReport {
    /// Whether anything failed (excluded files do not count).
    pub fn failed(&self) -> bool {
        self.engines.iter().any(|e| !e.failed.is_empty())
    }
}

/// Runs every `.data` file of `dir` on the engines `engine` names.
pub fn run(dir: &Path, engine: ConformanceEngine) -> Result<ConformanceReport, DriverError> {
    let runners = match engine {
        ConformanceEngine::Interp => vec![Exec::Emulator(Runner::Interpreter)],
        ConformanceEngine::Jit => vec![Exec::Emulator(Runner::Jit)],
        ConformanceEngine::Rbpf => vec![Exec::Rbpf],
        ConformanceEngine::All => vec![
            Exec::Emulator(Runner::Interpreter),
            Exec::Emulator(Runner::Jit),
            Exec::Rbpf,
        ],
    };
    let files = data_files(dir)?;
    let tests: Vec<(String, Result<ConformanceTest, String>)> = files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let t = crate::error::read_text(p)
                .map_err(|e| e.to_string())
                .and_then(|text| parse(&text).map_err(|e| e.to_string()));
            (name, t)
        })
        .collect();
    // A file that is not a conformance test (it does not parse, or its program does not
    // assemble) is wrong input, not a failed check: the run stops before any engine.
    for ((name, t), path) in tests.iter().zip(&files) {
        let wrong = match t {
            Err(e) => Some(e.clone()),
            Ok(t) => t
                .program()
                .err()
                .map(|e| format!("the program does not assemble: {e}")),
        };
        if let Some(e) = wrong {
            return Err(DriverError::Input(format!(
                "{}: not a conformance test ({name}): {e}",
                path.display()
            )));
        }
    }
    let engines = runners.into_iter().map(|r| run_engine(&tests, r)).collect();
    Ok(ConformanceReport { engines })
}

/// The `.data` files of `dir`, sorted by name.
fn data_files(dir: &Path) -> Result<Vec<PathBuf>, DriverError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DriverError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DriverError::Input(format!(
            "{} holds no conformance tests (`*.data` files)",
            dir.display()
        )));
    }
    Ok(files)
}

fn run_engine(tests: &[(String, Result<ConformanceTest, String>)], r: Exec) -> EngineSummary {
    let mut s = EngineSummary {
        engine: match r {
            Exec::Emulator(Runner::Interpreter) => "interp",
            Exec::Emulator(Runner::Jit) => "jit",
            Exec::Rbpf => "rbpf",
        },
        passed: 0,
        failed: Vec::new(),
        excluded: Vec::new(),
    };
    for (file, t) in tests {
        if let Some((_, why)) = EXCLUDED.iter().find(|(f, _)| f == file) {
            s.excluded.push((file.clone(), why.to_string()));
            continue;
        }
        match check(t, r) {
            Ok(()) => s.passed += 1,
            Err(Outcome::Excluded(why)) => s.excluded.push((file.clone(), why)),
            Err(Outcome::Failed(expected, actual)) => s.failed.push(Failure {
                file: file.clone(),
                expected,
                actual,
            }),
        }
    }
    s
}

/// How a file that did not pass ended.
enum Outcome {
    /// Expected, actual.
    Failed(String, String),
    /// rbpf cannot run the program, for this documented reason.
    Excluded(String),
}

/// One file on one engine.
fn check(t: &Result<ConformanceTest, String>, r: Exec) -> Result<(), Outcome> {
    let t = t
        .as_ref()
        .map_err(|e| Outcome::Failed("a readable test".to_string(), e.clone()))?;
    let expected = match (&t.error, t.result) {
        (Some(e), _) => format!("error ({e})"),
        (None, Some(v)) => format!("r0 = {v:#x}"),
        (None, None) => "nothing".into(),
    };
    let program = t.program().map_err(|e| {
        Outcome::Failed(
            expected.clone(),
            format!("the program does not assemble: {e}"),
        )
    })?;
    let got = match r {
        Exec::Emulator(r) => bare::run(&program, &t.mem, r).map_err(|e| e.to_string()),
        Exec::Rbpf => match nfcc_oracle::run_bare(&program, &t.mem) {
            Err(OracleError::Unsupported { insn, what }) if t.error.is_none() => {
                return Err(Outcome::Excluded(format!("instruction {insn}: {what}")))
            }
            r => r.map_err(|e| e.to_string()),
        },
    };
    match (got, t.result, &t.error) {
        (Ok(v), Some(want), None) if v == want => Ok(()),
        (Err(_), _, Some(_)) => Ok(()),
        (Ok(v), _, _) => Err(Outcome::Failed(expected, format!("r0 = {v:#x}"))),
        (Err(e), _, _) => Err(Outcome::Failed(expected, format!("error: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/tests")
    }

    /// A temporary directory of hand-made `.data` files, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str, files: &[(&str, &str)]) -> Dir {
            let d = std::env::temp_dir().join(format!("nfcc-conf-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
            for (f, text) in files {
                std::fs::write(d.join(f), text).unwrap_or_else(|e| panic!("{e}"));
            }
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_handful_of_suite_files_pass_on_both_engines() {
        let files = [
            "lddw.data",
            "call_local.data",
            "callx.data",
            "call_unwind_fail.data",
            "mem-len.data",
            "lock_cmpxchg.data",
            "be16.data",
            "div32-by-zero-reg.data",
        ];
        let mut copied = Vec::new();
        for f in files {
            let Ok(text) = std::fs::read_to_string(suite().join(f)) else {
                eprintln!("no suite beside the workspace: skipped");
                return;
            };
            copied.push((f, text));
        }
        let borrowed: Vec<(&str, &str)> = copied.iter().map(|(f, t)| (*f, t.as_str())).collect();
        let d = Dir::new("handful", &borrowed);
        let r = run(&d.0, ConformanceEngine::All).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = r.engines.iter().map(|e| e.engine).collect();
        assert_eq!(names, ["interp", "jit", "rbpf"]);
        for e in &r.engines[..2] {
            assert_eq!(e.passed, files.len(), "{}: {:?}", e.engine, e.failed);
        }
        // rbpf lacks callx and atomics: those two are excluded with the reason, the rest pass.
        let rbpf = &r.engines[2];
        assert_eq!(rbpf.passed, files.len() - 2, "{:?}", rbpf.failed);
        let excluded: Vec<(&str, bool)> = rbpf
            .excluded
            .iter()
            .map(|(f, why)| (f.as_str(), why.contains("which rbpf does not implement")))
            .collect();
        assert_eq!(
            excluded,
            [("callx.data", true), ("lock_cmpxchg.data", true)]
        );
        assert!(!r.failed());
    }

    #[test]
    fn a_wrong_expectation_is_a_failure_with_both_values() {
        let d = Dir::new(
            "failing",
            &[
                ("ok.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n"),
                ("wrong.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n"),
                (
                    "fault.data",
                    "-- asm\nldxw %r0, [%r1]\nexit\n-- result\n0x0\n",
                ),
            ],
        );
        let r = run(&d.0, ConformanceEngine::Interp).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.failed());
        let e = &r.engines[0];
        assert_eq!((e.engine, e.passed, e.failed.len()), ("interp", 1, 2));
        let wrong = e.failed.iter().find(|f| f.file == "wrong.data");
        assert_eq!(
            wrong.map(|f| (f.expected.as_str(), f.actual.as_str())),
            Some(("r0 = 0x2", "r0 = 0x1"))
        );
        let fault = e.failed.iter().find(|f| f.file == "fault.data");
        assert!(fault.is_some_and(|f| f.actual.starts_with("error: instruction 0")));
    }

    #[test]
    fn a_file_that_is_not_a_test_is_wrong_input_not_a_failure() {
        let d = Dir::new(
            "garbled",
            &[
                ("ok.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n"),
                ("garbled.data", "-- asm\nfrob\n-- result\n0x0\n"),
            ],
        );
        let e = run(&d.0, ConformanceEngine::All).err();
        assert!(
            e.as_ref().is_some_and(|e| e.exit_code() == 1
                && e.to_string().contains("garbled.data")
                && e.to_string().contains("line 2")),
            "{e:?}"
        );
    }

    #[test]
    fn rbpf_holds_a_wrong_expectation_and_an_empty_directory_is_an_input_error() {
        let d = Dir::new(
            "rbpf",
            &[
                ("ok.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n"),
                ("wrong.data", "-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n"),
            ],
        );
        let r = run(&d.0, ConformanceEngine::Rbpf).unwrap_or_else(|e| panic!("{e}"));
        let e = &r.engines[0];
        assert_eq!((e.engine, e.passed, e.failed.len()), ("rbpf", 1, 1));
        let d = Dir::new("empty", &[]);
        let e = run(&d.0, ConformanceEngine::Rbpf).err();
        assert_eq!(e.map(|e| e.exit_code()), Some(crate::exit::INPUT));
    }

    #[test]
    fn exclusions_name_a_file_and_a_reason() {
        for (file, why) in EXCLUDED {
            assert!(file.ends_with(".data") && !why.is_empty());
        }
    }

    /// The whole suite, on every engine: the numbers docs/emulator.md states (on rbpf, 97 files
    /// use instructions on its list).
    #[test]
    fn the_whole_suite_passes() {
        if !suite().is_dir() {
            eprintln!("no suite beside the workspace: skipped");
            return;
        }
        let r = run(&suite(), ConformanceEngine::All).unwrap_or_else(|e| panic!("{e}"));
        for e in &r.engines {
            let failures: Vec<String> = e
                .failed
                .iter()
                .map(|f| format!("{}: expected {}, got {}", f.file, f.expected, f.actual))
                .collect();
            assert!(
                failures.is_empty(),
                "{}:\n{}",
                e.engine,
                failures.join("\n")
            );
        }
        let excluded: Vec<usize> = r.engines.iter().map(|e| e.excluded.len()).collect();
        assert_eq!(excluded, [0, 0, 97]);
    }
}
