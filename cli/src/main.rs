//! `nfcc`: the command line. It parses arguments (clap; the driver's request types derive
//! clap's traits and are passed through as they are) and renders what `nfcc_driver` decides:
//! tables, diagnostics, JSON. Nothing here decides anything.
//!
//! Exit codes (section 9 of the language reference): 0 success, 1 the input was wrong
//! (diagnostics printed), 2 the environment refused (including a command this build cannot
//! do yet, said in words), 3 a test or check failed — mapped in one place,
//! `DriverError::exit_code`.

/// Writes a line to standard output, ignoring a closed pipe (`nfcc ... | head` must not
/// panic the way `println!` does when the reader goes away).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like [`say!`] without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod agent;
mod args;
mod bench;
mod conformance;
mod deployed;
mod files;
mod run;

use args::{Cli, Command, ImportFormat};
use clap::Parser;
use nfcc_driver::DriverError;
use std::process::ExitCode;

/// Prints an error the way every command does and returns its exit code.
pub(crate) fn fail(e: &DriverError) -> u8 {
    if e.is_rendered() {
        eprint!("{e}");
    } else {
        eprintln!("error: {e}");
    }
    e.exit_code()
}

/// The exit code of a command's result.
pub(crate) fn code(r: Result<u8, DriverError>) -> u8 {
    r.unwrap_or_else(|e| fail(&e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(a) => files::check(&a),
        Command::Test(a) => files::test(&a),
        Command::Compile(a) => code(files::compile(&a)),
        Command::Import {
            format: ImportFormat::Classbench(a),
        } => code(files::import_classbench(&a)),
        Command::Import {
            format: ImportFormat::Iptables(a),
        } => code(files::imported(
            nfcc_driver::import::iptables(&a),
            a.output.as_deref(),
        )),
        Command::Import {
            format: ImportFormat::Nft(a),
        } => code(files::imported(
            nfcc_driver::import::nft(&a),
            a.output.as_deref(),
        )),
        Command::Run(a) => code(run::run(&a)),
        Command::Load(a) => code(deployed::load(&a)),
        Command::Unload { key, iface } => code(deployed::unload(key.as_deref(), iface.as_deref())),
        Command::Status { prune } => deployed::status(prune),
        Command::Stats(a) => code(deployed::stats(&a)),
        Command::Set(a) => code(deployed::set(&a)),
        Command::Pool(a) => code(deployed::pool(&a)),
        Command::Watch(a) => code(deployed::watch(&a)),
        Command::Capture(a) => code(deployed::capture(&a)),
        Command::Bench(a) => code(bench::bench(&a)),
        Command::OffloadCheck(a) => code(files::offload_check(&a)),
        Command::Conformance(a) => code(conformance::conformance(&a)),
        Command::Agent(a) => agent::agent(&a),
    };
    ExitCode::from(code)
}
