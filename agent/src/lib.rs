//! nfcc-agent: `nfcc agent`, the daemon that keeps a node in the state a directory of
//! bindings describes (section 10 of the language contract, "Fleet agent"). It is a face of
//! `nfcc-driver`, as the CLI is: every load, replace and unload goes through the driver, and
//! every deployment it makes is an ordinary one (`nfcc status`, `stats`, `set` work on it),
//! marked in its manifest as the agent's.
//!
//! - [`config`]: binding files;
//! - [`cluster`]: `--kubernetes`, the `NfPolicy` objects of the cluster mirrored as binding
//!   files, and each node's status written back;
//! - [`plan`]: what to do, a pure function of bindings, interfaces and deployments;
//! - [`reconcile`]: checking revisions (check + emulator tests) and running the plan;
//! - [`metrics`] and [`http`]: `/metrics` and `/healthz`;
//! - [`log`]: the log lines.
//!
//! The loop ([`run`]): reconcile, then wait for a link event (netlink), a tick of the
//! interval (bindings are re-read; unchanged revisions cost a hash), SIGHUP, or
//! SIGTERM/SIGINT — which stop the agent and leave every program in place, so an upgrade of
//! the agent drops no traffic. A restarted agent (even after SIGKILL) adopts what it finds:
//! a deployment of the same key and revision is kept as it is (same program, counters go on).

pub mod cluster;
pub mod config;
mod error;
pub mod http;
pub mod log;
pub mod metrics;
pub mod plan;
pub mod reconcile;

pub use error::AgentError;

use log::{log, Level};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `nfcc agent` is asked to do (the CLI's arguments, behind the `clap` feature).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Options {
    /// The directory of bindings (`*.toml`) and the policies they name.
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: PathBuf,
    /// Serve `/metrics` and `/healthz` on ADDR:PORT.
    #[cfg_attr(feature = "clap", arg(long, value_name = "ADDR:PORT"))]
    pub metrics: Option<String>,
    /// Take policies and bindings from the cluster's `NfPolicy` objects (kube-rs); DIR is
    /// then the agent's own: it mirrors them there.
    #[cfg_attr(feature = "clap", arg(long))]
    pub kubernetes: bool,
    /// This node's name, for `--kubernetes` (default: $NODE_NAME).
    #[cfg_attr(feature = "clap", arg(long, requires = "kubernetes"))]
    pub node: Option<String>,
    /// How often the bindings are read again when nothing signalled a change (`500ms`, `2s`).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "2s", value_parser = humantime::parse_duration)
    )]
    pub interval: Duration,
    /// Reconcile once, print what was done, and exit (3 when something was not deployed).
    #[cfg_attr(feature = "clap", arg(long))]
    pub once: bool,
}

impl Options {
    /// The node's name for `--kubernetes`: `--node`, else `NODE_NAME`; `None` without
    /// `--kubernetes`.
    fn node(&self) -> Result<Option<String>, AgentError> {
        if !self.kubernetes {
            return Ok(None);
        }
        match self.node.clone().or_else(|| std::env::var("NODE_NAME").ok()) {
            Some(n) if !n.is_empty() => Ok(Some(n)),
            _ => Err(AgentError::Driver(nfcc_driver::DriverError::Input(
                "`--kubernetes` needs this node's name: `--node NAME`, or NODE_NAME in the environment (the DaemonSet sets it from spec.nodeName)".into(),
            ))),
        }
    }
}

/// Signals the loop reacts to.
pub struct Signals {
    /// SIGTERM or SIGINT came: stop, leaving everything in place.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP came: reconcile now.
    pub hup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Result<Signals, AgentError> {
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            hup: Arc::new(AtomicBool::new(false)),
        };
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, s.stop.clone()).map_err(AgentError::Signals)?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.hup.clone())
            .map_err(AgentError::Signals)?;
        Ok(s)
    }
}

/// Runs the agent until `signals.stop` (or once, with [`Options::once`]); returns the last
/// reconcile's outcome.
pub fn run(opts: &Options, signals: &Signals) -> Result<reconcile::Outcome, AgentError> {
    if !opts.config.is_dir() {
        return Err(AgentError::Config {
            dir: opts.config.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let node = opts.node()?;
    nfcc_driver::runtime::can_load_bpf().map_err(|why| {
        nfcc_driver::DriverError::Environment(format!("cannot load programs here: {why}"))
    })?;
    let metrics = metrics::AgentMetrics::default();
    let health = Arc::new(http::Health::new(
        (opts.interval * 5).max(Duration::from_secs(30)),
    ));
    let _server = match &opts.metrics {
        Some(addr) => {
            let s = http::Server::start(addr, metrics.clone(), health.clone())?;
            log(
                Level::Info,
                &format!("serving /metrics and /healthz on {}", s.addr),
            );
            Some(s)
        }
        None => None,
    };
    // Subscribed before the first look, so an interface that appears meanwhile is not missed.
    let mut links = nfcc_driver::runtime::links::LinkEvents::subscribe()?;
    let mut cluster = match node {
        Some(node) => Some(cluster::Cluster::start(
            opts.config.clone(),
            node,
            signals.hup.clone(),
        )?),
        None => None,
    };
    let mut r = reconcile::Reconciler::new(opts.config.clone(), metrics);
    log(
        Level::Info,
        &format!(
            "reconciling {} every {:?} and on link events",
            opts.config.display(),
            opts.interval
        ),
    );
    loop {
        let outcome = r.reconcile();
        health.record(outcome.as_ref().err().map(ToString::to_string));
        let outcome = match outcome {
            Ok(o) => {
                if let Some(c) = &mut cluster {
                    c.report(&o);
                }
                o
            }
            // The directory went away or cannot be read: keep what runs, try again.
            Err(e) if !opts.once => {
                log(Level::Error, &format!("{e}; what runs stays as it is"));
                reconcile::Outcome::default()
            }
            Err(e) => return Err(e),
        };
        if opts.once {
            return Ok(outcome);
        }
        let until = Instant::now() + opts.interval;
        // Waits in short slices so a signal is seen promptly.
        while Instant::now() < until {
            if signals.stop.load(Ordering::Relaxed) || signals.hup.swap(false, Ordering::Relaxed) {
                break;
            }
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            let events = links.wait(slice)?;
            if !events.is_empty() {
                // A burst (a pod's veth pair, 100 interfaces made by a script) is one reconcile.
                let _ = links.wait(Duration::from_millis(50))?;
                break;
            }
        }
        if signals.stop.load(Ordering::Relaxed) {
            log(Level::Info, "stopping; every deployment stays in place");
            return Ok(outcome);
        }
    }
}
