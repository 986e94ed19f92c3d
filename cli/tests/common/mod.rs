//! Helpers shared by the CLI's integration tests: running nfcc and shell commands.

// Reason: each test binary compiles this module and uses only some of its helpers.
#![allow(dead_code)]

use std::process::Command;

/// The workspace root, where the tests run nfcc (paths like `examples/...` are relative to it).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Runs nfcc with `args` from the workspace root; returns its exit code and its stdout and
/// stderr together.
pub fn nfcc(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nfcc"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("nfcc runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs a shell command; whether it succeeded.
pub fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a privileged test can run: root, and `tools` on the PATH. Says why not, or fails
/// under `NFCC_REQUIRE_KERNEL=1`.
pub fn privileged(test: &str, tools: &[&str]) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !sh(&format!("command -v {t} >/dev/null")))
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let reason = format!("needs root and {}", tools.join(", "));
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the {test} test {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}
