//! `nfcc conformance`: renders the driver's run of the BPF ISA conformance suite — one
//! summary line per engine, each failure with the expected and the actual r0 (or the error),
//! and the exclusions with their reasons.

use crate::args::ConformanceArgs;
use nfcc_driver::conformance::run;
use nfcc_driver::exit::{FAILED, OK};
use nfcc_driver::DriverError;

/// `nfcc conformance DIR [--engine ...]`: exit 3 when a file not excluded failed.
pub fn conformance(a: &ConformanceArgs) -> Result<u8, DriverError> {
    let report = run(&a.dir, a.engine)?;
    for e in &report.engines {
        for f in &e.failed {
            say!(
                "FAIL {} {}: expected {}, got {}",
                e.engine,
                f.file,
                f.expected,
                f.actual
            );
        }
        for (file, why) in &e.excluded {
            say!("excluded {} {file}: {why}", e.engine);
        }
    }
    for e in &report.engines {
        say!(
            "{}: {} passed, {} failed, {} excluded",
            e.engine,
            e.passed,
            e.failed.len(),
            e.excluded.len()
        );
    }
    Ok(if report.failed() { FAILED } else { OK })
}
