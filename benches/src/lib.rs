//! Shared helpers for nfcc's benchmarks: locating the ClassBench filter sets in `../shared`.
//!
//! The criterion benches live in `benches/benches/`; the testbed Mpps driver is `nfcc bench`
//! (`nfcc_testbeds::bench`).

use std::path::PathBuf;

/// The folder that holds the ClassBench filter sets (`../shared/bench-data/classbench`),
/// relative to the workspace root, or `NFCC_CLASSBENCH_DIR` when set.
pub fn classbench_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("NFCC_CLASSBENCH_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data/classbench")
}
