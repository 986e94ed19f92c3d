//! `nfcc run`: renders the driver's run of a capture — progress on a terminal, the verdict
//! lines, the emitted packets and a summary per rule.

use crate::args::{ProfileArg, RunArgs};
use nfcc_driver::emulator::pcap;
use nfcc_driver::error::{read_bytes, write};
use nfcc_driver::exit::OK;
use nfcc_driver::DriverError;
use std::io::IsTerminal as _;

/// `nfcc run`.
pub fn run(a: &RunArgs) -> Result<u8, DriverError> {
    let records = pcap::read(&read_bytes(&a.pcap)?)
        .map_err(|e| DriverError::Input(format!("{}: {e}", a.pcap.display())))?;
    let input = nfcc_driver::source::read_input(&a.file)?;
    let mut r = nfcc_driver::run::runner(
        &a.file.display().to_string(),
        input,
        a.engine,
        a.policy.as_deref(),
        a.profile == Some(ProfileArg::Nfp),
    )?;
    let progress = records.len() >= 10_000 && std::io::stderr().is_terminal();
    let result = nfcc_driver::run::run_records(r.as_mut(), &records, &mut |i, n| {
        if progress && i % (n / 100).max(1) == 0 {
            eprint!("\r{:3}% ({i}/{n} packets)", i * 100 / n);
        }
    })?;
    if progress {
        eprintln!("\r100% ({0}/{0} packets)", records.len());
    }
    if let Some(p) = &a.verdicts {
        write(p, result.jsonl())?;
    }
    if let Some(p) = &a.out {
        write(p, pcap::write(&result.emitted))?;
    }
    say!("{:<24} {:<10} {:>10}", "rule", "verdict", "packets");
    for ((rule, verdict), n) in &result.summary {
        say!("{rule:<24} {verdict:<10} {n:>10}");
    }
    say!(
        "{} packets, {} emitted",
        records.len(),
        result.emitted.len()
    );
    Ok(OK)
}
