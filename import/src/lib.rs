//! nfcc-import: existing firewalls and rule sets as `.nf` policies. ClassBench filter sets
//! (and new ones drawn from its parameter files) become one policy ([`classbench`]). An `iptables-save` (or `ip6tables-save`)
//! dump's filter chain becomes one first-match policy ([`iptables`]), its ipsets sets
//! ([`ipset`]); every rule is imported exactly or refused with its line, the construct and the
//! reason, in a [`Report`] printed either way. Nothing is approximated silently: a rule that
//! cannot be said in the language is refused, and a refused rule makes the import fail unless
//! the caller asks to skip such rules (they are then listed in the output as comments).
//!
//! The output is checked by the language's checker before it is returned; a policy the
//! checker refuses is a bug here ([`ImportError::Internal`]).

pub mod classbench;
pub mod ipset;
pub mod iptables;
pub mod nft;
mod report;
mod walk;

pub use report::{Entry, Outcome, Report};

/// Why an import failed as a whole (per-rule problems are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input is not what the format says (the line and why).
    #[error("line {line}: {what}")]
    Syntax {
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The dump has no such chain in its filter table.
    #[error("no chain `{0}` in the filter table (it has: {1})")]
    NoChain(String, String),
    /// The dump has no filter table.
    #[error("no `*filter` table in the dump")]
    NoFilter,
    /// Some rules were refused (and skipping them was not asked for): the report says which.
    #[error("{} rule(s) refused; see the report (or --skip-unsupported to import the rest)", .0.refused())]
    Refused(Report),
    /// The generated policy does not check: a bug in the importer.
    #[error("internal error: the imported policy does not check: {0}")]
    Internal(String),
}

/// A policy the importer wrote, with its report.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The `.nf` text.
    pub nf: String,
    /// What became of every rule.
    pub report: Report,
    /// Which packets the imported chain judges.
    pub traversal: Traversal,
}

/// Which packets a chain judges in netfilter, so which packets the imported policy's verdicts
/// are netfilter's on (and how `--verify` must send packets through the original).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Traversal {
    /// Packets addressed to this host (iptables' INPUT, an nft chain hooked on `input`).
    Input,
    /// Every packet arriving, before routing (an nft chain hooked on `prerouting`).
    Prerouting,
    /// Packets routed through this host (FORWARD, `hook forward`).
    Forward,
    /// Packets this host sends (OUTPUT, `hook output` or `postrouting`): never on the
    /// receive path a policy is attached to.
    Output,
    /// A chain no hook calls (an iptables user chain, an nft regular chain): the packets its
    /// callers jump to it with. Its end (or a `RETURN`) goes back to the caller, which the
    /// import does not see: the policy's `default` stands for it.
    Jumped,
}

impl Traversal {
    /// The iptables filter table's chain `name`.
    pub fn of_iptables_chain(name: &str) -> Traversal {
        match name {
            "INPUT" => Traversal::Input,
            "FORWARD" => Traversal::Forward,
            "OUTPUT" => Traversal::Output,
            _ => Traversal::Jumped,
        }
    }

    /// An nft chain with hook `hook` (empty for a regular chain).
    pub fn of_nft_hook(hook: &str) -> Traversal {
        match hook {
            "" => Traversal::Jumped,
            "input" => Traversal::Input,
            "prerouting" | "ingress" => Traversal::Prerouting,
            "forward" => Traversal::Forward,
            _ => Traversal::Output,
        }
    }

    /// The header comment's sentence on which packets the verdicts hold for; `chain` names
    /// the chain (`netfilter's FORWARD`, `the forward hook`), `default` the policy's default.
    pub fn header(&self, chain: &str, default: &str) -> String {
        match self {
            Traversal::Input => format!(
                "# {chain} sees packets addressed to this host; on packets for this host the\n\
                 # verdicts below are netfilter's.\n"
            ),
            Traversal::Prerouting => format!(
                "# {chain} sees every packet arriving, before routing; on every packet arriving\n\
                 # the verdicts below are netfilter's.\n"
            ),
            Traversal::Forward => format!(
                "# {chain} sees packets routed through this host (arriving on one interface, leaving\n\
                 # by another), not packets addressed to it; on packets that traverse the host the\n\
                 # verdicts below are netfilter's.\n"
            ),
            Traversal::Output => format!(
                "# {chain} sees packets this host sends, which a policy on the receive path never\n\
                 # meets: attach this policy where the same packets arrive (another host's ingress).\n"
            ),
            Traversal::Jumped => format!(
                "# {chain} is a chain no hook calls: on packets that jump to it the verdicts below are\n\
                 # netfilter's; its end and a RETURN go back to the caller, written as `default {default}`.\n"
            ),
        }
    }
}

/// Checks `nf` with the language's checker: the importer's last step.
fn checked(nf: String, report: Report, traversal: Traversal) -> Result<Imported, ImportError> {
    let (program, diags) = nfcc_dsl::check_source(&nf, &nfcc_dsl::CheckOptions::default());
    if program.is_none() {
        let first = diags
            .iter()
            .find(|d| d.severity == nfcc_dsl::diag::Severity::Error)
            .map_or_else(|| "no program".to_string(), |d| d.message.clone());
        return Err(ImportError::Internal(first));
    }
    Ok(Imported {
        nf,
        report,
        traversal,
    })
}
