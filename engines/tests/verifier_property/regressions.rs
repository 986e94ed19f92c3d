//! Saved regressions: a shrunk failure written as the first free `tests/regressions/
//! verifier-<n>.nf`, with a test block that replays its frames and expects the evaluator's
//! answer, and read back by `saved_regressions_still_pass`.

use crate::generator::{render_file, PolicyText};
use crate::runner::Failure;
use nfcc_dsl::checked::Terminal;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The directory of saved regressions.
pub(crate) fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions")
}

/// Saves `text` as the first free `verifier-<n>.nf` and returns its path.
pub(crate) fn save_regression(text: &str) -> PathBuf {
    let dir = regressions_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let mut n = 1;
    loop {
        let path = dir.join(format!("verifier-{n}.nf"));
        if let Ok(old) = std::fs::read_to_string(&path) {
            // The same shrunk policy found again (an earlier run saved it): keep one copy.
            if regression_body(&old) == regression_body(text) {
                return path;
            }
        } else {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            return path;
        }
        n += 1;
    }
}

/// The text of a regression file for a shrunk failing policy: for a disagreement, a test block
/// sends the frame and expects the evaluator's answer, so `nfcc test --engine kernel` fails on
/// it too until the compiler is fixed.
pub(crate) fn regression_text(policy: &PolicyText, failure: &Failure, seed: u64) -> String {
    let mut p = policy.clone();
    if let Failure::Disagree(d) = failure {
        let (verdict, rule) = &d.eval;
        let (literal, before) = (&d.literal, &d.before);
        let expect = match verdict {
            Terminal::Redirect(i) => format!("redirect \"{i}\""),
            t => t.to_string(),
        };
        let mut test = String::from("    test \"kernel agrees with the evaluator\" {\n");
        for b in before {
            let _ = writeln!(test, "        send {b}");
        }
        let _ = writeln!(
            test,
            "        send {literal}\n        expect {expect} by {rule}\n    }}"
        );
        p.tests.push(test);
    }
    // The header says what failed: the first line of the failure and, for a verifier
    // rejection, the last lines of its log, which name the offending instruction.
    let described = failure.describe();
    let lines: Vec<&str> = described
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("processed ")
                && !l.starts_with("stack depth")
        })
        .collect();
    let mut text = format!("# Found by verifier_property (seed {seed:#x}).\n");
    let tail = lines.len().saturating_sub(3).max(1);
    for l in lines.iter().take(1).chain(lines.iter().skip(tail)) {
        let _ = writeln!(text, "# {l}");
    }
    text.push_str(&render_file(&[p]));
    text
}

/// The policy part of a regression file: everything after the leading comment lines.
pub(crate) fn regression_body(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with('#') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest
}
