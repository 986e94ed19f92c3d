//! nfcc-dsl: the `.nf` policy language front end.
//!
//! The pipeline inside this crate is `parse` (pest grammar to a spanned AST), `check` (names,
//! types, families, ranges, hooks; warnings for shadowed and dead rules from `analysis`)
//! producing a [`checked::Program`], and consumers of the checked form that know nothing about
//! eBPF: `eval`, the reference evaluator that defines what a policy means packet by packet;
//! `testing`, which runs test blocks on any engine; and `packet`, which builds real frames from
//! test-block packet literals and parses frames the way section 4 of the language reference
//! says.

pub mod analysis;
pub mod ast;
pub mod check;
pub mod checked;
pub mod diag;
pub mod eval;
pub mod packet;
pub mod parse;
pub mod testing;

pub use check::{check_source, CheckOptions};
pub use diag::{Diagnostic, Severity};
