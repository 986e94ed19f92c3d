//! The agent's errors: what stops it from starting or running (a bad `--config` directory, a
//! metrics address it cannot listen on, no netlink). Problems with one binding or policy are
//! not errors of the agent: they are reported, counted, and the rest of the node goes on.

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration directory cannot be read.
    #[error("cannot read the configuration directory {dir}: {source}")]
    Config {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics address cannot be listened on.
    #[error("cannot serve metrics on {addr}: {why}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// Why.
        why: String,
    },
    /// Deploying is impossible here (no privileges, no bpffs, no netlink).
    #[error(transparent)]
    Driver(#[from] nfcc_driver::DriverError),
    /// The runtime refused something the agent needs to watch the node.
    #[error(transparent)]
    Runtime(#[from] nfcc_driver::runtime::RuntimeError),
    /// The cluster cannot be reached or watched (`--kubernetes`).
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// The signal handlers could not be installed.
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

impl AgentError {
    /// The exit code (section 9 of the language reference): 1 for a configuration that is
    /// wrong, 2 for an environment that refuses.
    pub fn exit_code(&self) -> u8 {
        use nfcc_driver::exit;
        match self {
            AgentError::Config { .. } => exit::INPUT,
            AgentError::Driver(d) => d.exit_code(),
            AgentError::Metrics { .. }
            | AgentError::Runtime(_)
            | AgentError::Signals(_)
            | AgentError::Kubernetes(_) => exit::ENV,
        }
    }
}
