//! What the driver's live-interface tests share: a veth pair removed when dropped, `ip`, the
//! privilege check (skip with its reason, or fail under `NFCC_REQUIRE_KERNEL=1`), and a small
//! deterministic generator.

// Reason: each test binary uses its own part of this module.
#![allow(dead_code)]

use std::process::Command;

/// An interface deleted (with its peer) when dropped.
pub struct Veth(pub String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

impl Veth {
    /// A veth pair `PREFIXa`/`PREFIXb`, both up; the guard deletes it. `PREFIXa` is the end
    /// the tests attach to.
    pub fn pair(prefix: &str) -> Veth {
        let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        let guard = Veth(a.clone());
        ip(&["link", "set", &a, "up"]);
        ip(&["link", "set", &b, "up"]);
        guard
    }
}

/// Runs `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

/// Whether `test` can create interfaces and load programs here; says why not otherwise.
pub fn privileged(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let why = match nfcc_driver::runtime::can_load_bpf() {
        Err(r) => Some(r),
        Ok(()) if !root => Some("creating interfaces needs root".to_string()),
        Ok(()) => None,
    };
    let Some(reason) = why else { return true };
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but {test} {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
