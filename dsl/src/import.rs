//! Importers that turn other rule formats into `.nf` text (being written).
