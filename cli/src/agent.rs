//! `nfcc agent`: arguments to [`nfcc_agent::Options`], the agent's errors to exit codes, and
//! `--once`'s summary.

use crate::args::AgentArgs;
use nfcc_agent::AgentError;
use nfcc_driver::{exit, DriverError};

fn exit_code(e: &AgentError) -> u8 {
    match e {
        AgentError::Config { .. } => exit::INPUT,
        AgentError::Driver(d) => d.exit_code(),
        AgentError::Metrics { .. }
        | AgentError::Runtime(_)
        | AgentError::Signals(_)
        | AgentError::Kubernetes(_) => exit::ENV,
    }
}

/// Runs the agent; its exit code.
pub fn agent(a: &AgentArgs) -> u8 {
    let kubernetes = if a.kubernetes {
        match a.node.clone().or_else(|| std::env::var("NODE_NAME").ok()) {
            Some(n) if !n.is_empty() => Some(n),
            _ => {
                return crate::fail(&DriverError::Input(
                    "`--kubernetes` needs this node's name: `--node NAME`, or NODE_NAME in the environment (the DaemonSet sets it from spec.nodeName)".into(),
                ))
            }
        }
    } else {
        None
    };
    let opts = nfcc_agent::Options {
        config: a.config.clone(),
        metrics: a.metrics.clone(),
        interval: a.interval,
        once: a.once,
        kubernetes,
    };
    let signals = match nfcc_agent::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(&e);
        }
    };
    match nfcc_agent::run(&opts, &signals) {
        Err(e) => {
            eprintln!("error: {e}");
            exit_code(&e)
        }
        Ok(o) if a.once => {
            say!(
                "{} step(s), {} kept, {} failed, {} binding(s) held, {} conflict(s) in {:.3} s",
                o.plan.steps.len(),
                o.plan.kept.len(),
                o.failed.len(),
                o.held.len(),
                o.plan.conflicts.len(),
                o.seconds
            );
            if o.failed.is_empty() && o.held.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            }
        }
        Ok(_) => exit::OK,
    }
}
