//! The compiler's own diagnostic codes (the checker's are E01xx).

/// A construct this build's code generator cannot emit yet: the build's limit, not a
/// mistake in the policy (the CLI exits 2 for it, not 1).
pub const NOT_BUILT: &str = "E0201";
/// The IR verifier caught a compiler bug.
pub const IR_BUG: &str = "E0202";
/// The code generator failed: a compiler bug or a limit it states.
pub const CODEGEN: &str = "E0203";
/// A program longer than the kernel loads (`E2BIG`).
pub const TOO_LONG: &str = "E0206";

/// Whether every diagnostic says "not built yet".
pub fn all_not_built(diags: &[nfcc_dsl::diag::Diagnostic]) -> bool {
    !diags.is_empty() && diags.iter().all(|d| d.code == NOT_BUILT)
}
