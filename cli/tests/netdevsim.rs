//! The offload path on a real kernel offload device: `offload/netdevsim/netdevsim.sh` boots a
//! Debian 6.1 kernel with netdevsim (the kernel's BPF-offload simulator) under QEMU and runs
//! `nfcc load --mode offload` there — a policy wholly on the NIC, a split policy (NIC stage in
//! HW mode beside the host stage in driver mode), status, stats, unload, and the device
//! refusing the program and the HW attach. Every check inside must pass.
//!
//! Needs root, apt and the network the first time (the script caches what it builds); skips
//! otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`.

use std::process::Command;

#[test]
fn offload_deployment_on_netdevsim() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let require = std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1");
    if !root {
        assert!(
            !require,
            "NFCC_REQUIRE_KERNEL=1 but the netdevsim test needs root"
        );
        eprintln!("skipped: netdevsim testbed: needs root");
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../offload/netdevsim/netdevsim.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_nfcc"))
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {
            let passed = text.lines().filter(|l| l.starts_with("NDS-OK")).count();
            assert!(passed >= 20, "only {passed} checks ran:\n{text}");
        }
        Some(77) => {
            assert!(!require, "NFCC_REQUIRE_KERNEL=1 but:\n{text}");
            eprintln!(
                "{}",
                text.lines().last().unwrap_or("skipped: netdevsim testbed")
            );
        }
        _ => panic!("the netdevsim testbed failed:\n{text}"),
    }
}
