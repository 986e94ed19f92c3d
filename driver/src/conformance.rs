//! `nfcc conformance DIR`: the BPF ISA conformance suite (bpf_conformance's `.data` files) on
//! the emulator's engines — an oracle independent of nfcc's own compiler and tests, stating
//! that the interpreter and the JIT execute instructions as the ISA specifies.
//!
//! Every file of the directory runs on each engine asked for; a file the project cannot run
//! is on [`EXCLUDED`] with its reason (and counted as excluded), never skipped silently. A
//! failure not on that list is a failed check (exit 3).

use crate::error::DriverError;
use nfcc_bpf::conformance::{parse, ConformanceTest};
use nfcc_emulator::{bare, Runner};
use std::path::{Path, PathBuf};

/// Which engines run the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ConformanceEngine {
    /// The emulator's interpreter.
    Interp,
    /// The emulator's cranelift JIT.
    Jit,
    /// The rbpf crate's interpreter (not built yet).
    Rbpf,
    /// Every engine this build has.
    All,
}

/// The project's documented exclusions: a file name and why no engine runs it. Empty: every
/// file of the suite (bpf_conformance f558566) runs on the interpreter and the JIT.
pub const EXCLUDED: &[(&str, &str)] = &[];

/// An engine that is part of `all` but not in this build, said in the report.
pub const NOT_BUILT_RBPF: &str =
    "rbpf: not built yet (the rbpf crate's interpreter comes with `--engine rbpf` in test and run)";

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
    /// Files on [`EXCLUDED`], with the reason.
    pub excluded: Vec<(String, &'static str)>,
}

/// What a conformance run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Per engine, in the order run.
    pub engines: Vec<EngineSummary>,
    /// Engines `all` would include that this build lacks, in words.
    pub not_built: Vec<&'static str>,
}

impl ConformanceReport {
    /// Whether anything failed (excluded files do not count).
    pub fn failed(&self) -> bool {
        self.engines.iter().any(|e| !e.failed.is_empty())
    }
}

/// Runs every `.data` file of `dir` on the engines `engine` names.
pub fn run(dir: &Path, engine: ConformanceEngine) -> Result<ConformanceReport, DriverError> {
    let (runners, not_built) = match engine {
        ConformanceEngine::Interp => (vec![Runner::Interpreter], vec![]),
        ConformanceEngine::Jit => (vec![Runner::Jit], vec![]),
        ConformanceEngine::All => (vec![Runner::Interpreter, Runner::Jit], vec![NOT_BUILT_RBPF]),
        ConformanceEngine::Rbpf => {
            return Err(DriverError::NotBuilt(
                "the rbpf engine is not built yet: run `--engine interp`, `jit` or `all`".into(),
            ))
        }
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
    let engines = runners.into_iter().map(|r| run_engine(&tests, r)).collect();
    Ok(ConformanceReport { engines, not_built })
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

fn run_engine(tests: &[(String, Result<ConformanceTest, String>)], r: Runner) -> EngineSummary {
    let mut s = EngineSummary {
        engine: match r {
            Runner::Interpreter => "interp",
            Runner::Jit => "jit",
        },
        passed: 0,
        failed: Vec::new(),
        excluded: Vec::new(),
    };
    for (file, t) in tests {
        if let Some((_, why)) = EXCLUDED.iter().find(|(f, _)| f == file) {
            s.excluded.push((file.clone(), why));
            continue;
        }
        match check(t, r) {
            Ok(()) => s.passed += 1,
            Err((expected, actual)) => s.failed.push(Failure {
                file: file.clone(),
                expected,
                actual,
            }),
        }
    }
    s
}

/// One file on one engine: `Err((expected, actual))` when it fails.
fn check(t: &Result<ConformanceTest, String>, r: Runner) -> Result<(), (String, String)> {
    let t = t
        .as_ref()
        .map_err(|e| ("a readable test".to_string(), e.clone()))?;
    let expected = match (&t.error, t.result) {
        (Some(e), _) => format!("error ({e})"),
        (None, Some(v)) => format!("r0 = {v:#x}"),
        (None, None) => "nothing".into(),
    };
    let program = t.program().map_err(|e| {
        (
            expected.clone(),
            format!("the program does not assemble: {e}"),
        )
    })?;
    let got = bare::run(&program, &t.mem, r);
    match (got, t.result, &t.error) {
        (Ok(v), Some(want), None) if v == want => Ok(()),
        (Err(_), _, Some(_)) => Ok(()),
        (Ok(v), _, _) => Err((expected, format!("r0 = {v:#x}"))),
        (Err(e), _, _) => Err((expected, format!("error: {e}"))),
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
        assert_eq!(r.engines.len(), 2);
        for e in &r.engines {
            assert_eq!(e.passed, files.len(), "{}: {:?}", e.engine, e.failed);
        }
        assert!(!r.failed());
        assert_eq!(r.not_built, [NOT_BUILT_RBPF]);
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
                ("garbled.data", "-- asm\nfrob\n-- result\n0x0\n"),
            ],
        );
        let r = run(&d.0, ConformanceEngine::Interp).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.failed());
        let e = &r.engines[0];
        assert_eq!((e.engine, e.passed, e.failed.len()), ("interp", 1, 3));
        let wrong = e.failed.iter().find(|f| f.file == "wrong.data");
        assert_eq!(
            wrong.map(|f| (f.expected.as_str(), f.actual.as_str())),
            Some(("r0 = 0x2", "r0 = 0x1"))
        );
        let fault = e.failed.iter().find(|f| f.file == "fault.data");
        assert!(fault.is_some_and(|f| f.actual.starts_with("error: instruction 0")));
        let garbled = e.failed.iter().find(|f| f.file == "garbled.data");
        assert!(garbled.is_some_and(|f| f.actual.contains("line 2")));
    }

    #[test]
    fn rbpf_alone_is_not_built_and_an_empty_directory_is_an_input_error() {
        let d = Dir::new("empty", &[]);
        let e = run(&d.0, ConformanceEngine::Rbpf).err();
        assert_eq!(e.map(|e| e.exit_code()), Some(crate::exit::ENV));
        let e = run(&d.0, ConformanceEngine::Interp).err();
        assert_eq!(e.map(|e| e.exit_code()), Some(crate::exit::INPUT));
    }

    #[test]
    fn exclusions_name_a_file_and_a_reason() {
        for (file, why) in EXCLUDED {
            assert!(file.ends_with(".data") && !why.is_empty());
        }
    }

    /// The whole suite, on both engines: the numbers the README states.
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
    }
}
