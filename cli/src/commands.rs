//! The commands behind `nfcc`'s subcommands: read files, call the crates, print, and choose
//! the exit code.

use crate::{ActionsArg, EmitArg, EngineArg, TargetArg};
use nfcc_dsl::checked::{Program, Target};
use nfcc_dsl::diag::{Diagnostic, SourceMap};
use nfcc_dsl::testing::{run_tests, EvalEngine};
use nfcc_dsl::{check_source, CheckOptions};
use std::path::{Path, PathBuf};

/// Success.
pub const OK: u8 = 0;
/// The input was wrong.
pub const INPUT: u8 = 1;
/// The environment refused.
pub const ENV: u8 = 2;
/// A test or check failed.
pub const FAILED: u8 = 3;

/// A source file that was read and checked.
struct Checked {
    path: PathBuf,
    source: String,
    program: Option<Program>,
    diags: Vec<Diagnostic>,
}

fn load(path: &Path, target: Option<TargetArg>) -> Result<Checked, String> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let opts = CheckOptions {
        target: target.map(|t| match t {
            TargetArg::Host => Target::Host,
            TargetArg::Nfp => Target::Nfp,
        }),
    };
    let (program, diags) = check_source(&source, &opts);
    Ok(Checked {
        path: path.to_path_buf(),
        source,
        program,
        diags,
    })
}

fn print_diags(c: &Checked, short: bool) {
    if c.diags.is_empty() {
        return;
    }
    let name = c.path.display().to_string();
    let text = if short {
        nfcc_dsl::diag::render_short(&name, &c.source, &c.diags)
    } else {
        let map = SourceMap::new(&name, &c.source);
        let mut out = String::new();
        for d in &c.diags {
            map.render(d, &mut out);
        }
        out
    };
    eprint!("{text}");
}

/// `nfcc check`.
pub fn check(files: &[PathBuf], target: Option<TargetArg>, deny_warnings: bool, short: bool) -> u8 {
    let mut code = OK;
    for f in files {
        let c = match load(f, target) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(INPUT);
                continue;
            }
        };
        print_diags(&c, short);
        let errors = c.diags.iter().filter(|d| d.is_error()).count();
        let warnings = c.diags.len() - errors;
        match &c.program {
            Some(p) if errors == 0 && !(deny_warnings && warnings > 0) => {
                let rules: usize = p.policies.iter().map(|p| p.rules.len()).sum();
                let tests: usize = p.policies.iter().map(|p| p.tests.len()).sum();
                say!(
                    "{}: ok ({} {}, {rules} rules, {tests} tests{})",
                    f.display(),
                    p.policies.len(),
                    if p.policies.len() == 1 {
                        "policy"
                    } else {
                        "policies"
                    },
                    if warnings > 0 {
                        format!(", {warnings} warnings")
                    } else {
                        String::new()
                    }
                );
            }
            _ => {
                say!("{}: {errors} errors, {warnings} warnings", f.display());
                code = code.max(INPUT);
            }
        }
    }
    code
}

fn target_of(t: Option<TargetArg>) -> Option<Target> {
    t.map(|t| match t {
        TargetArg::Host => Target::Host,
        TargetArg::Nfp => Target::Nfp,
    })
}

/// `nfcc compile`.
pub fn compile(
    file: &Path,
    output: Option<PathBuf>,
    target: Option<TargetArg>,
    emit: EmitArg,
    stats: bool,
) -> u8 {
    let c = match load(file, target) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return INPUT;
        }
    };
    print_diags(&c, false);
    let Some(program) = &c.program else {
        return INPUT;
    };
    let name = file.display().to_string();
    let compiled =
        match nfcc_compiler::compile::compile(program, &name, &c.source, target_of(target)) {
            Ok(x) => x,
            Err(d) => {
                eprint!("{}", nfcc_dsl::diag::render(&name, &c.source, &d));
                // Constructs the code generator cannot emit yet are this build's limit, not a
                // mistake in the policy.
                return if d.iter().all(|x| x.code == "E0201") {
                    ENV
                } else {
                    INPUT
                };
            }
        };
    let text = match emit {
        EmitArg::Elf => None,
        EmitArg::Asm => Some(
            compiled
                .programs
                .iter()
                .map(|p| format!("{} ({}):\n{}", p.name, p.section, p.asm()))
                .collect::<String>(),
        ),
        EmitArg::Ir => Some(
            compiled
                .programs
                .iter()
                .map(|p| p.ir_text())
                .collect::<String>(),
        ),
    };
    let out = output.unwrap_or_else(|| {
        file.with_extension(match emit {
            EmitArg::Elf => "o",
            EmitArg::Asm => "s",
            EmitArg::Ir => "ir",
        })
    });
    let bytes = text.map_or_else(|| compiled.object.clone(), String::into_bytes);
    // `-o -` writes to standard output (text or object bytes), for pipes.
    let to_stdout = out.as_os_str() == "-";
    let written = if to_stdout {
        use std::io::Write as _;
        let mut so = std::io::stdout().lock();
        match so.write_all(&bytes).and_then(|()| so.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    } else {
        std::fs::write(&out, bytes)
    };
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", out.display());
        return ENV;
    }
    if stats {
        for p in &compiled.programs {
            let maps: Vec<String> = p
                .maps
                .iter()
                .map(|(m, init)| {
                    format!(
                        "{} ({}, {} max, {} initial)",
                        m.name,
                        m.kind.name(),
                        m.max_entries,
                        init.len()
                    )
                })
                .collect();
            let verified = match verified_insns(&compiled.object, p) {
                Ok(v) => v,
                Err(msg) => {
                    eprintln!("{msg}");
                    return ENV;
                }
            };
            let line = format!(
                "{}: {} instructions, {} stack bytes, verifier processed {}\n  maps: {}",
                p.name,
                p.insns,
                p.stack,
                verified,
                maps.join(", ")
            );
            // With the object on standard output, statistics go to standard error.
            if to_stdout {
                eprintln!("{line}");
            } else {
                say!("{line}");
            }
        }
    }
    if !to_stdout {
        say!("wrote {}", out.display());
    }
    OK
}

/// The verifier's processed-instruction count, or why it is not available.
/// A verifier rejection is an error (a compiler bug: checked policies must verify): the log,
/// whose `;` lines name the `.nf` rule through the object's line info, goes to standard error.
fn verified_insns(
    object: &[u8],
    p: &nfcc_compiler::compile::CompiledProgram,
) -> Result<String, String> {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        return Ok(format!("n/a ({why})"));
    }
    let kind = match p.hook {
        nfcc_dsl::checked::Hook::Xdp => nfcc_runtime::ProgType::Xdp,
        _ => nfcc_runtime::ProgType::Tc,
    };
    match nfcc_runtime::load(object, &p.name, kind) {
        Ok(l) => Ok(l.verified_insns().map_or_else(
            || "n/a (kernel did not report it)".into(),
            |n| format!("{n} instructions"),
        )),
        Err(nfcc_runtime::RuntimeError::Verifier { program, log, .. }) => Err(format!(
            "error: the kernel verifier rejected `{program}`; this is a compiler bug, please \
             report it with the policy. Verifier log (`;` lines are the .nf rules):\n{log}"
        )),
        Err(e) => Ok(format!("n/a (load failed: {e})")),
    }
}

/// `nfcc test`.
pub fn test(files: &[PathBuf], engine: EngineArg, verbose: bool, junit: Option<&Path>) -> u8 {
    let engines: Vec<Which> = match engine {
        EngineArg::Eval => vec![Which::Eval],
        EngineArg::Emulator => vec![Which::Emulator],
        EngineArg::Kernel => vec![Which::Kernel],
        EngineArg::Both => vec![Which::Emulator, Which::Kernel],
        EngineArg::All => vec![Which::Eval, Which::Emulator, Which::Jit, Which::Kernel],
        EngineArg::Jit => vec![Which::Jit],
        EngineArg::Testbed => vec![Which::Testbed],
    };
    if engines.contains(&Which::Kernel) || engines.contains(&Which::Testbed) {
        if let Err(why) = nfcc_runtime::can_load_bpf() {
            eprintln!(
                "error: the kernel engine cannot run here: {why}; `--engine emulator` needs no \
                 privileges"
            );
            return ENV;
        }
    }
    // With more than one compiled engine, each is also held to the evaluator packet by packet;
    // the testbed always is (that is its point).
    let compare = engines.len() > 1 || engines.contains(&Which::Testbed);
    let mut code = OK;
    let mut tally: Vec<(Which, usize, usize)> = engines.iter().map(|w| (*w, 0, 0)).collect();
    let mut disagreements = Vec::new();
    let mut cases: Vec<JunitCase> = Vec::new();
    for f in files {
        let c = match load(f, None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(INPUT);
                continue;
            }
        };
        let Some(program) = &c.program else {
            print_diags(&c, false);
            say!("{}: does not check; no tests run", f.display());
            code = code.max(INPUT);
            continue;
        };
        let name = f.display().to_string();
        let map = SourceMap::new(&name, &c.source);
        for policy in &program.policies {
            for (wi, which) in engines.iter().enumerate() {
                let reports = match engine_reports(
                    policy,
                    &name,
                    &c.source,
                    *which,
                    compare,
                    &mut disagreements,
                ) {
                    Ok(r) => r,
                    Err(msg) => {
                        eprintln!("{msg}");
                        code = code.max(ENV);
                        continue;
                    }
                };
                let label = if engines.len() > 1 {
                    format!("[{}] ", which.name())
                } else {
                    String::new()
                };
                for r in reports {
                    for s in &r.skipped {
                        let (line, _) = nfcc_dsl::diag::line_col(&c.source, s.span.start as usize);
                        say!(
                            "skip  {label}{name}:{line} {}::\"{}\": {}",
                            r.policy,
                            r.name,
                            s.message
                        );
                    }
                    let mut rendered = String::new();
                    for fail in &r.failures {
                        let d = Diagnostic::error("T0001", fail.span, fail.message.clone())
                            .with_label("this expectation failed");
                        map.render(&d, &mut rendered);
                    }
                    if r.passed() {
                        tally[wi].1 += 1;
                        if verbose {
                            say!(
                                "ok    {label}{name} {}::\"{}\" ({} packets)",
                                r.policy,
                                r.name,
                                r.packets
                            );
                        }
                    } else {
                        tally[wi].2 += 1;
                        say!("FAIL  {label}{name} {}::\"{}\"", r.policy, r.name);
                        for line in rendered.lines() {
                            say!("      {line}");
                        }
                    }
                    cases.push(JunitCase {
                        engine: which.name(),
                        class: format!("{name}::{}", r.policy),
                        name: r.name.clone(),
                        failure: (!r.passed()).then_some(rendered),
                    });
                }
            }
        }
    }
    for d in &disagreements {
        say!("DISAGREE  {d}");
    }
    let mut failed_any = !disagreements.is_empty();
    for (which, passed, failed) in &tally {
        say!("{}: {passed} passed, {failed} failed", which.name());
        failed_any |= *failed > 0;
    }
    if let Some(path) = junit {
        if let Err(e) = std::fs::write(path, junit_xml(&cases, &disagreements)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            code = code.max(ENV);
        }
    }
    if failed_any {
        code = code.max(FAILED);
    }
    code
}

/// An engine the `test` command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Eval,
    Emulator,
    Jit,
    Kernel,
    Testbed,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Eval => "eval",
            Which::Emulator => "emulator",
            Which::Jit => "jit",
            Which::Kernel => "kernel",
            Which::Testbed => "testbed",
        }
    }
}

/// One test's result for JUnit.
struct JunitCase {
    engine: &'static str,
    class: String,
    name: String,
    failure: Option<String>,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one test suite per engine, one test case per test block; engine disagreements
/// are a suite of their own.
fn junit_xml(cases: &[JunitCase], disagreements: &[String]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let mut engines: Vec<&str> = cases.iter().map(|c| c.engine).collect();
    engines.dedup();
    for e in engines {
        let of: Vec<&JunitCase> = cases.iter().filter(|c| c.engine == e).collect();
        let failures = of.iter().filter(|c| c.failure.is_some()).count();
        out.push_str(&format!(
            "  <testsuite name=\"nfcc-{e}\" tests=\"{}\" failures=\"{failures}\">\n",
            of.len()
        ));
        for c in of {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&c.class),
                xml_escape(&c.name)
            ));
            match &c.failure {
                None => out.push_str("/>\n"),
                Some(text) => out.push_str(&format!(
                    ">\n      <failure message=\"expectation failed\">{}</failure>\n    </testcase>\n",
                    xml_escape(text)
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    if !disagreements.is_empty() {
        out.push_str(&format!(
            "  <testsuite name=\"nfcc-agreement\" tests=\"{0}\" failures=\"{0}\">\n",
            disagreements.len()
        ));
        for (i, d) in disagreements.iter().enumerate() {
            out.push_str(&format!(
                "    <testcase classname=\"agreement\" name=\"disagreement {i}\">\n      <failure message=\"engines disagree\">{}</failure>\n    </testcase>\n",
                xml_escape(d)
            ));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// `nfcc import classbench`.
pub fn import_classbench(
    file: &Path,
    actions: ActionsArg,
    name: Option<String>,
    output: Option<PathBuf>,
) -> u8 {
    let input = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return INPUT;
        }
    };
    let name = name.unwrap_or_else(|| {
        let stem = file.file_stem().map_or("classbench".to_string(), |s| {
            s.to_string_lossy().into_owned()
        });
        let cleaned: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if cleaned.starts_with(|c: char| c.is_ascii_digit()) {
            format!("p_{cleaned}")
        } else {
            cleaned
        }
    });
    let acts = match actions {
        ActionsArg::Drop => nfcc_dsl::import::ClassbenchActions::Drop,
        ActionsArg::Alternate => nfcc_dsl::import::ClassbenchActions::Alternate,
    };
    let text = match nfcc_dsl::import::classbench_to_nf(&input, &name, acts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return INPUT;
        }
    };
    match output {
        Some(out) => {
            if let Err(e) = std::fs::write(&out, text) {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ENV;
            }
        }
        None => say_raw!("{text}"),
    }
    OK
}

/// Runs a policy's tests on one engine; with `compare`, also holds every packet of the
/// compiled engine to the evaluator and records disagreements.
fn engine_reports(
    policy: &nfcc_dsl::checked::Policy,
    name: &str,
    source: &str,
    which: Which,
    compare: bool,
    disagreements: &mut Vec<String>,
) -> Result<Vec<nfcc_dsl::testing::TestReport>, String> {
    if which == Which::Eval {
        return Ok(run_tests(policy, &mut EvalEngine::default()));
    }
    let single = Program {
        policies: vec![policy.clone()],
    };
    let refused = |d: Vec<Diagnostic>| {
        format!(
            "{name}: policy {} cannot be compiled:\n{}",
            policy.name,
            nfcc_dsl::diag::render(name, source, &d)
        )
    };
    let mut engine: Box<dyn nfcc_dsl::testing::Engine> = match which {
        // The emulator runs the object as deployed: its clock is the evaluator's.
        Which::Emulator | Which::Jit => {
            let compiled =
                nfcc_compiler::compile::compile(&single, name, source, None).map_err(refused)?;
            let mut e = nfcc_engines::EmulatorEngine::new(&compiled, &policy.name)
                .map_err(|e| format!("{name}: {e}"))?;
            if which == Which::Jit {
                e = e.with_jit();
            }
            if policy.offload == Some(nfcc_dsl::checked::Target::Nfp) {
                e = e.with_profile(nfcc_emulator::Profile::Nfp);
            }
            Box::new(e)
        }
        // The testbed, like the kernel engine, reads a virtual clock map.
        Which::Testbed => {
            let compiled = nfcc_compiler::compile::compile_with(&single, name, source, None, true)
                .map_err(refused)?;
            Box::new(
                nfcc_engines::TestbedEngine::new(&compiled, &policy.name)
                    .map_err(|e| format!("{name}: {e}"))?,
            )
        }
        // The kernel reads a virtual clock map, so limiters see the evaluator's frozen time.
        Which::Eval | Which::Kernel => {
            let compiled = nfcc_compiler::compile::compile_with(&single, name, source, None, true)
                .map_err(refused)?;
            Box::new(
                nfcc_engines::KernelEngine::new(&compiled, &policy.name)
                    .map_err(|e| format!("{name}: {e}"))?,
            )
        }
    };
    if compare {
        let (_, _, problems) = nfcc_dsl::testing::compare(
            policy,
            engine.as_mut(),
            matches!(which, Which::Emulator | Which::Jit),
        );
        disagreements.extend(
            problems
                .into_iter()
                .map(|p| format!("{name} {} [{}]: {p}", policy.name, which.name())),
        );
    }
    Ok(run_tests(policy, engine.as_mut()))
}
