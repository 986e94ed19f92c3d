//! nfcc-dsl: the `.nf` policy language front end.
//!
//! The pipeline inside this crate is `parse` (pest grammar to a spanned AST), `check` (names,
//! types, families, ranges, hooks; warnings for shadowed and dead rules) producing a
//! [`checked::Program`], and two consumers of the checked form that know nothing about eBPF:
//! `eval`, the reference evaluator that defines what a policy means packet by packet, and
//! `packet`, which builds real frames from test-block packet literals and parses frames the way
//! section 4 of the language reference says.

pub mod ast;
pub mod diag;
pub mod parse;

pub use diag::{Diagnostic, Severity};
pub mod packet;
pub mod import;
