//! Helpers shared by the unit tests that hand objects to external tools (llvm, bpftool).

use std::path::PathBuf;

/// Reports a check that cannot run here, or fails when `NFCC_REQUIRE_KERNEL=1` demands it.
pub(crate) fn skip(why: &str) {
    if std::env::var("NFCC_REQUIRE_KERNEL").as_deref() == Ok("1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but this check cannot run: {why}");
    }
    println!("skipped: {why}");
}

/// Finds an executable on `PATH` or in the sbin folders (bpftool lives in /usr/sbin).
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
