//! Snapshot tests over the corpus in `tests/in/`: `ok/` files must check cleanly and their
//! tests must pass on the reference evaluator (snapshot: the AST, one item per line, and any
//! warnings); `err/` files must fail with the rendered diagnostics in the snapshot; `warn/`
//! files must check with exactly the warnings in the snapshot.

use nfcc_dsl::diag::render;
use nfcc_dsl::testing::{run_tests, EvalEngine};
use nfcc_dsl::{check_source, CheckOptions};
use std::fmt::Write as _;
use std::path::Path;

/// One line per item of the AST, so a snapshot diff points at the item that changed.
fn ast_outline(source: &str) -> String {
    let (file, _) = nfcc_dsl::parse::parse(source);
    let mut out = String::new();
    for c in &file.consts {
        let _ = writeln!(out, "const {c:?}");
    }
    for p in &file.policies {
        let _ = writeln!(
            out,
            "policy {:?} on {:?} offload {:?}",
            p.name, p.hook.words, p.offload
        );
        for s in &p.sets {
            let _ = writeln!(out, "  set {s:?}");
        }
        for t in &p.tables {
            let _ = writeln!(out, "  table {t:?}");
        }
        for c in &p.counters {
            let _ = writeln!(out, "  counter {c:?}");
        }
        for l in &p.limiters {
            let _ = writeln!(out, "  limiter {l:?}");
        }
        for pool in &p.pools {
            let _ = writeln!(out, "  pool {pool:?}");
        }
        for r in &p.rules {
            let _ = writeln!(out, "  rule {:?}: {:?} => {:?}", r.name, r.pred, r.actions);
        }
        for d in &p.defaults {
            let _ = writeln!(out, "  default {:?}", d.actions);
        }
        for t in &p.tests {
            let _ = writeln!(out, "  test {:?}", t.name);
            for s in &t.stmts {
                let _ = writeln!(out, "    {s:?}");
            }
        }
    }
    out
}

/// The one check of this layer: run the front end on `path` and compare with the snapshot.
fn check(path: &Path) {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let name = format!(
        "{}/{}",
        path.parent()
            .and_then(|p| p.file_name())
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
        path.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    );
    let (program, diags) = check_source(&source, &CheckOptions::default());
    let rendered = render(&name, &source, &diags);
    let kind = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match kind {
        "ok" => {
            let program =
                program.unwrap_or_else(|| panic!("{name} must check cleanly:\n{rendered}"));
            assert!(
                diags.is_empty(),
                "{name} must have no diagnostics:\n{rendered}"
            );
            for policy in &program.policies {
                for r in run_tests(policy, &mut EvalEngine::default()) {
                    assert!(
                        r.passed(),
                        "{name}: test {:?} failed: {:?}",
                        r.name,
                        r.failures
                    );
                }
            }
            insta::assert_snapshot!(ast_outline(&source));
        }
        "warn" => {
            assert!(
                program.is_some(),
                "{name} must check (with warnings):\n{rendered}"
            );
            assert!(!diags.is_empty(), "{name} must have warnings");
            insta::assert_snapshot!(rendered);
        }
        _ => {
            assert!(program.is_none(), "{name} must not check");
            assert!(
                diags.iter().any(|d| d.is_error()),
                "{name} must have errors"
            );
            insta::assert_snapshot!(rendered);
        }
    }
}

#[test]
fn corpus() {
    insta::glob!("in/*/*.nf", check);
}

#[test]
fn examples_check_and_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "nf") {
            continue;
        }
        n += 1;
        let source = std::fs::read_to_string(&path).expect("readable example");
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let rendered = render(&path.display().to_string(), &source, &diags);
        let program =
            program.unwrap_or_else(|| panic!("{} must check:\n{rendered}", path.display()));
        assert!(
            diags.is_empty(),
            "{} must check without warnings:\n{rendered}",
            path.display()
        );
        for policy in &program.policies {
            assert!(
                !policy.tests.is_empty(),
                "{}: policy {} has no tests",
                path.display(),
                policy.name
            );
            for r in run_tests(policy, &mut EvalEngine::default()) {
                assert!(
                    r.passed(),
                    "{}: test {:?} failed: {:?}",
                    path.display(),
                    r.name,
                    r.failures
                );
            }
        }
    }
    assert!(n >= 6, "expected at least 6 example policies, found {n}");
}
