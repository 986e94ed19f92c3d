//! nfcc-import: existing firewalls as `.nf` policies. An `iptables-save` (or `ip6tables-save`)
//! dump's filter chain becomes one first-match policy ([`iptables`]), its ipsets sets
//! ([`ipset`]); every rule is imported exactly or refused with its line, the construct and the
//! reason, in a [`Report`] printed either way. Nothing is approximated silently: a rule that
//! cannot be said in the language is refused, and a refused rule makes the import fail unless
//! the caller asks to skip such rules (they are then listed in the output as comments).
//!
//! The output is checked by the language's checker before it is returned; a policy the
//! checker refuses is a bug here ([`ImportError::Internal`]).

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
}

/// Checks `nf` with the language's checker: the importer's last step.
fn checked(nf: String, report: Report) -> Result<Imported, ImportError> {
    let (program, diags) = nfcc_dsl::check_source(&nf, &nfcc_dsl::CheckOptions::default());
    if program.is_none() {
        let first = diags
            .iter()
            .find(|d| d.severity == nfcc_dsl::diag::Severity::Error)
            .map_or_else(|| "no program".to_string(), |d| d.message.clone());
        return Err(ImportError::Internal(first));
    }
    Ok(Imported { nf, report })
}
