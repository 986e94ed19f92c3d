//! Importers that turn other rule formats into `.nf` text.
//!
//! An importer produces source text, not an AST: the result goes through the same parser and
//! checker as a hand-written policy, can be read and edited, and diagnostics point at lines a
//! user can open.
//!
//! - [`classbench_to_nf`]: ClassBench filter sets (the standard packet-classification
//!   benchmark; see `shared/bench-data/classbench/`).

mod classbench;

pub use classbench::{classbench_to_nf, ClassbenchActions, ImportError};
