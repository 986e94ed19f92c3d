//! `nfcc test`: every policy's test blocks of several files on one or more engines; with more
//! than one compiled engine (or the testbed), each is also held to the evaluator packet by
//! packet. Results arrive as [`TestEvent`]s while they happen (a testbed run is slow), and the
//! whole run as a [`TestSummary`], which also renders JUnit XML for CI systems.

use crate::engine::{engine_for, engine_over, EngineKind};
use crate::error::{read_bytes, DriverError};
use crate::source::{check_file, compile_program_opts, CheckedFile};
use nfcc_bpf::policy_section::PolicySection;
use nfcc_compiler::classify::Choice;
use nfcc_compiler::compile::{Compiled, Options};
use nfcc_dsl::checked::Target;
use nfcc_dsl::diag::{Diagnostic, SourceMap};
use nfcc_dsl::testing::{run_tests, TestReport};
use nfcc_dsl::{check_source, CheckOptions};
use std::path::{Path, PathBuf};

/// Something that happened during a test run, in order.
#[derive(Debug)]
pub enum TestEvent<'a> {
    /// A file could not be read.
    Unreadable(String),
    /// A file does not check: its rendered diagnostics.
    DoesNotCheck {
        /// The file.
        file: &'a str,
        /// The diagnostics.
        rendered: String,
    },
    /// An engine could not be built or run for a policy.
    EngineFailed(String),
    /// One test's result on one engine.
    Report {
        /// The file.
        file: &'a str,
        /// The engine.
        engine: EngineKind,
        /// The report.
        report: &'a TestReport,
        /// Line of each skipped expectation (1-based), in order.
        skipped_lines: Vec<usize>,
        /// The failures rendered against the source.
        rendered: String,
    },
}

/// One test's outcome, kept for the summary and JUnit.
#[derive(Clone, Debug)]
pub struct Case {
    /// The engine.
    pub engine: EngineKind,
    /// `FILE::POLICY`.
    pub class: String,
    /// The test's name.
    pub name: String,
    /// The rendered failures; `None` when it passed.
    pub failure: Option<String>,
}

/// A whole run.
#[derive(Clone, Debug, Default)]
pub struct TestSummary {
    /// Per engine: (engine, passed, failed).
    pub tally: Vec<(EngineKind, usize, usize)>,
    /// Every test.
    pub cases: Vec<Case>,
    /// Packets on which a compiled engine and the evaluator disagreed.
    pub disagreements: Vec<String>,
    /// Some input did not read or check.
    pub input_errors: bool,
    /// Some engine could not run.
    pub engine_errors: bool,
}

impl TestSummary {
    /// Whether anything failed or disagreed.
    pub fn failed(&self) -> bool {
        !self.disagreements.is_empty() || self.tally.iter().any(|t| t.2 > 0)
    }

    /// The exit code: the worst of input, environment and failure.
    pub fn exit_code(&self) -> u8 {
        use crate::error::exit;
        let mut code = exit::OK;
        if self.input_errors {
            code = code.max(exit::INPUT);
        }
        if self.engine_errors {
            code = code.max(exit::ENV);
        }
        if self.failed() {
            code = code.max(exit::FAILED);
        }
        code
    }

    /// JUnit XML: one test suite per engine, one test case per test block; disagreements
    /// are a suite of their own.
    pub fn junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("nfcc");
        let mut engines: Vec<EngineKind> = self.cases.iter().map(|c| c.engine).collect();
        engines.dedup();
        for e in engines {
            let mut suite = TestSuite::new(format!("nfcc-{}", e.name()));
            for c in self.cases.iter().filter(|c| c.engine == e) {
                let status = match &c.failure {
                    None => TestCaseStatus::success(),
                    Some(text) => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message("expectation failed");
                        s.set_description(text.clone());
                        s
                    }
                };
                let mut case = TestCase::new(c.name.clone(), status);
                case.set_classname(c.class.clone());
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        if !self.disagreements.is_empty() {
            let mut suite = TestSuite::new("nfcc-agreement");
            for (i, d) in self.disagreements.iter().enumerate() {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message("engines disagree");
                s.set_description(d.clone());
                let mut case = TestCase::new(format!("disagreement {i}"), s);
                case.set_classname("agreement");
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }
}

/// Runs every test of every policy of `files` on `engines`, telling `on` as it goes.
pub fn run(
    files: &[PathBuf],
    engines: &[EngineKind],
    on: &mut dyn FnMut(TestEvent<'_>),
) -> TestSummary {
    let compare = engines.len() > 1 || engines.contains(&EngineKind::Testbed);
    let mut sum = TestSummary {
        tally: engines.iter().map(|e| (*e, 0, 0)).collect(),
        ..TestSummary::default()
    };
    for f in files {
        let (c, object) = match checked_input(f) {
            Ok(c) => c,
            Err(e) => {
                on(TestEvent::Unreadable(e.to_string()));
                sum.input_errors = true;
                continue;
            }
        };
        let name = match &object {
            Some((from, _)) => format!("{} ({from})", c.label()),
            None => c.label(),
        };
        let Some(program) = &c.program else {
            on(TestEvent::DoesNotCheck {
                file: &name,
                rendered: c.render(false),
            });
            sum.input_errors = true;
            continue;
        };
        let map = SourceMap::new(&name, &c.source);
        for policy in &program.policies {
            for (wi, kind) in engines.iter().enumerate() {
                let built = match &object {
                    Some((_, compiled)) => engine_over(*kind, policy, &name, compiled),
                    None => engine_for(*kind, policy, &name, &c.source),
                };
                let mut engine = match built {
                    Ok(e) => e,
                    Err(e) => {
                        let msg = if e.is_rendered() {
                            format!("{name}: policy {} cannot be compiled:\n{e}", policy.name)
                        } else {
                            format!("error: {name}: policy {}: {e}", policy.name)
                        };
                        on(TestEvent::EngineFailed(msg));
                        sum.engine_errors = true;
                        continue;
                    }
                };
                if compare {
                    let (_, _, problems) = nfcc_dsl::testing::compare(
                        policy,
                        engine.as_mut(),
                        matches!(
                            kind,
                            EngineKind::Emulator | EngineKind::Jit | EngineKind::Rbpf
                        ),
                    );
                    sum.disagreements.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("{name} {} [{}]: {p}", policy.name, kind.name())),
                    );
                }
                for r in run_tests(policy, engine.as_mut()) {
                    let mut rendered = String::new();
                    for fail in &r.failures {
                        let d = Diagnostic::error("T0001", fail.span, fail.message.clone())
                            .with_label("this expectation failed");
                        map.render(&d, &mut rendered);
                    }
                    let skipped_lines = r
                        .skipped
                        .iter()
                        .map(|s| nfcc_dsl::diag::line_col(&c.source, s.span.start as usize).0)
                        .collect();
                    if r.passed() {
                        sum.tally[wi].1 += 1;
                    } else {
                        sum.tally[wi].2 += 1;
                    }
                    sum.cases.push(Case {
                        engine: *kind,
                        class: format!("{name}::{}", r.policy),
                        name: r.name.clone(),
                        failure: (!r.passed()).then(|| rendered.clone()),
                    });
                    on(TestEvent::Report {
                        file: &name,
                        engine: *kind,
                        report: &r,
                        skipped_lines,
                        rendered,
                    });
                }
            }
        }
    }
    sum
}

/// A file to test: a `.nf` source, or an object with the source it carries and the object as
/// the programs the engines run (with the source's name).
fn checked_input(f: &Path) -> Result<(CheckedFile, Option<(String, Compiled)>), DriverError> {
    let bytes = read_bytes(f)?;
    if !bytes.starts_with(b"\x7fELF") {
        return check_file(f, None).map(|c| (c, None));
    }
    let at = |what: &str| DriverError::Input(format!("{}: {what}", f.display()));
    let from = PolicySection::read(&bytes)
        .map_err(|e| at(&e.to_string()))?
        .ok_or_else(|| {
            at(
                "an object without nfcc's .nfcc.policy section (another compiler's, or an \
                older nfcc's): its tests are in its .nf source; run `nfcc test SOURCE.nf`",
            )
        })?
        .source
        .ok_or_else(|| {
            at(
                "the object does not carry its source (an older nfcc compiled it): recompile \
                it, or run `nfcc test SOURCE.nf`",
            )
        })?;
    let target = match from.target.as_deref() {
        Some(t) => Some(
            Target::from_name(t).ok_or_else(|| at(&format!("unknown target `{t}` recorded")))?,
        ),
        None => None,
    };
    let classifier = Choice::from_name(&from.classifier).ok_or_else(|| {
        at(&format!(
            "unknown classifier `{}` recorded",
            from.classifier
        ))
    })?;
    let (program, diags) = check_source(&from.text, &CheckOptions { target });
    let c = CheckedFile {
        path: f.to_path_buf(),
        source: from.text.clone(),
        program,
        diags,
    };
    let Some(program) = &c.program else {
        return Ok((c, None));
    };
    // The object's own code runs, and the source's tests vouch for it only if it is exactly
    // what the source compiles to: the same bytes.
    let opts = Options {
        target,
        classifier,
        virtual_clock: false,
        ..Options::default()
    };
    let compiled = compile_program_opts(program, &from.name, &from.text, &opts)?;
    if compiled.object != bytes {
        return Err(at(&format!(
            "the object is not what this nfcc compiles from the source it carries ({}): \
             another nfcc compiled it, or it was changed since, so its tests cannot vouch for it; \
             recompile it with `nfcc compile`",
            from.name
        )));
    }
    Ok((c, Some((from.name, compiled))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_parses_and_escapes_names() {
        let sum = TestSummary {
            tally: vec![(EngineKind::Eval, 1, 1)],
            cases: vec![
                Case {
                    engine: EngineKind::Eval,
                    class: "a\"b\\c.nf::p".into(),
                    name: "q<\"x\">&".into(),
                    failure: None,
                },
                Case {
                    engine: EngineKind::Eval,
                    class: "t.nf::p".into(),
                    name: "f".into(),
                    failure: Some("expected drop, got <pass> & \"more\"".into()),
                },
            ],
            disagreements: vec!["x & y".into()],
            input_errors: false,
            engine_errors: false,
        };
        let xml = sum.junit();
        assert!(
            xml.contains("name=\"q&lt;&quot;x&quot;&gt;&amp;\""),
            "{xml}"
        );
        assert!(xml.contains("got &lt;pass&gt; &amp;"), "{xml}");
        assert!(xml.contains("nfcc-agreement"), "{xml}");
        assert_eq!(sum.exit_code(), 3);
        // Well formed: every element opened is closed.
        assert_eq!(
            xml.matches("<testsuite ").count(),
            xml.matches("</testsuite>").count()
        );
    }

    #[test]
    fn a_run_reports_each_test_and_tallies() {
        let dir = std::env::temp_dir().join(format!("nfcc-driver-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("t.nf");
        let src = "policy p on xdp {\n  rule r: udp.dport == 53 => drop\n  default pass\n  test \"ok\" {\n    send ipv4() / udp(dport=53)\n    expect drop by r\n  }\n  test \"bad\" {\n    send ipv4() / udp(dport=54)\n    expect drop\n  }\n}\n";
        let _ = std::fs::write(&f, src);
        let mut seen = 0;
        let sum = run(&[f], &[EngineKind::Eval, EngineKind::Emulator], &mut |e| {
            if matches!(e, TestEvent::Report { .. }) {
                seen += 1;
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(seen, 4);
        assert_eq!(
            sum.tally,
            [(EngineKind::Eval, 1, 1), (EngineKind::Emulator, 1, 1)]
        );
        assert_eq!(sum.exit_code(), 3);
        assert!(sum.disagreements.is_empty(), "{:?}", sum.disagreements);
    }
}
