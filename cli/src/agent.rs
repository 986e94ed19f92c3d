//! `nfcc agent`: runs the agent (which decides everything) and renders `--once`'s summary.

use nfcc_driver::exit;

/// Runs the agent; its exit code.
pub fn agent(opts: &nfcc_agent::Options) -> u8 {
    let run = nfcc_agent::Signals::install().and_then(|s| nfcc_agent::run(opts, &s));
    match run {
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
        Ok(o) if opts.once => {
            say!("{}", o.summary());
            o.exit_code()
        }
        Ok(_) => exit::OK,
    }
}
