//! The commands behind `nfcc`'s subcommands: read files, call the crates, print, and choose
//! the exit code.

use crate::{ActionsArg, EngineArg, TargetArg};
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
                println!(
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
                println!("{}: {errors} errors, {warnings} warnings", f.display());
                code = code.max(INPUT);
            }
        }
    }
    code
}

/// `nfcc test`.
pub fn test(files: &[PathBuf], engine: EngineArg, verbose: bool) -> u8 {
    if engine != EngineArg::Eval {
        let name = format!("{engine:?}").to_lowercase();
        eprintln!(
            "error: the {name} engine is not available in this build: it runs compiled eBPF, and \
             the compiler (issue 3) and emulator/kernel runners (issues 4, 5) are not built yet; \
             use `--engine eval` to run the tests on the reference evaluator"
        );
        return ENV;
    }
    let mut code = OK;
    let (mut passed, mut failed) = (0usize, 0usize);
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
            println!("{}: does not check; no tests run", f.display());
            code = code.max(INPUT);
            continue;
        };
        let name = f.display().to_string();
        let map = SourceMap::new(&name, &c.source);
        for policy in &program.policies {
            let mut eng = EvalEngine::default();
            for r in run_tests(policy, &mut eng) {
                if r.passed() {
                    passed += 1;
                    if verbose {
                        println!(
                            "ok    {name} {}::\"{}\" ({} packets)",
                            r.policy, r.name, r.packets
                        );
                    }
                } else {
                    failed += 1;
                    println!("FAIL  {name} {}::\"{}\"", r.policy, r.name);
                    for fail in &r.failures {
                        let d = Diagnostic::error("T0001", fail.span, fail.message.clone())
                            .with_label("this expectation failed");
                        let mut out = String::new();
                        map.render(&d, &mut out);
                        for line in out.lines() {
                            println!("      {line}");
                        }
                    }
                }
            }
        }
    }
    println!("eval: {passed} passed, {failed} failed");
    if failed > 0 {
        code = code.max(FAILED);
    }
    code
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
        None => print!("{text}"),
    }
    OK
}

/// A command whose crate is not built yet: say so, and which issue tracks it.
pub fn not_yet(cmd: &str, issue: u32) -> u8 {
    let what = match issue {
        3 => "the compiler (IR, eBPF codegen, ELF writer)",
        4 => "the emulator",
        5 => "the runtime (load, attach, maps)",
        6 => "the testbeds",
        _ => "the offload checker",
    };
    eprintln!(
        "error: `nfcc {cmd}` is not implemented yet: it needs {what}, tracked in issue {issue}. \
         What works today: `nfcc check`, `nfcc test --engine eval`, `nfcc import classbench`."
    );
    ENV
}
