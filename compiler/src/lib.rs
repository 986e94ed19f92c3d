//! nfcc-compiler: lowers a checked policy to a match-action IR, optimises it, and generates
//! verifier-friendly eBPF with an ELF+BTF writer and a disassembler.
//!
//! The pipeline: `lower` (checked policy to the IR of `ir`), `opt` (IR passes), `codegen`
//! (eBPF for the host or the NIC, checked against the NIC's limits by `nfp`), `elf`/`btf`
//! (the object), driven by `compile`. The IR verifier runs after lowering and after each pass.
//!
//! What lowering and code generation must agree on lives in modules of its own, so that
//! neither imports the other and the pipeline's modules form no cycle: `verdict` (the return
//! value of each terminal), `encoding` (raw field encodings and their widths) and `balance`
//! (the Maglev table and its hash). So do what the IR, code generation and the classifier pass
//! share about a classifier (`classify::shape`: its maps' shape and the record of each
//! decision) and what every reader of a compilation's result needs (`compiled`: the object,
//! each program's code, IR and maps, and the program type of a hook): the IR imports no pass,
//! and `describe` and `verdict` do not import the driver `compile`. (`farm-studio look
//! compiler`: no circle, where 14 files formed one.)

mod balance;
/// The instruction set lives in the BPF ABI crate; the code generator reads it as `bpf`.
pub use nfcc_bpf::insn as bpf;
pub mod classify;
pub mod codegen;
pub mod compile;
pub mod compiled;
pub mod describe;
mod encoding;
pub mod ir;
pub mod lower;
pub mod nfp;
pub mod opt;
pub mod pools;
pub mod prefix;
pub mod room;
pub mod sets;
#[cfg(test)]
mod test_support;
mod verdict;

use nfcc_dsl::checked::{self as ck, Target};

/// The compiler's own diagnostic codes (the checker's are E01xx).
pub mod codes {
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
}
use nfcc_dsl::diag::Diagnostic;

/// Lowers, verifies and generates code for one policy, without writing an object.
pub fn generate(
    policy: &ck::Policy,
    target: Target,
) -> Result<(ir::Program, codegen::Code), Vec<Diagnostic>> {
    generate_with(policy, target, false)
}

/// [`generate`], optionally with a virtual clock for deterministic tests.
pub fn generate_with(
    policy: &ck::Policy,
    target: Target,
    virtual_clock: bool,
) -> Result<(ir::Program, codegen::Code), Vec<Diagnostic>> {
    generate_opts(policy, target, virtual_clock, classify::Choice::Auto)
}

/// [`generate_with`], with the classifier choice (`--classifier`).
pub fn generate_opts(
    policy: &ck::Policy,
    target: Target,
    virtual_clock: bool,
    classifier: classify::Choice,
) -> Result<(ir::Program, codegen::Code), Vec<Diagnostic>> {
    generate_laid_out(
        policy,
        target,
        virtual_clock,
        classifier,
        &room::Layout::Packed,
    )
}

/// [`generate_opts`], laid out as `layout` says (room for updates in place, see [`room`]).
pub fn generate_laid_out(
    policy: &ck::Policy,
    target: Target,
    virtual_clock: bool,
    classifier: classify::Choice,
    layout: &room::Layout,
) -> Result<(ir::Program, codegen::Code), Vec<Diagnostic>> {
    let mut ir = lower::lower_with(policy, target, virtual_clock)?;
    room::prepare(&mut ir, layout);
    let bug = |e: ir::VerifyError| {
        vec![Diagnostic::error(
            codes::IR_BUG,
            policy.span,
            format!("compiler bug: {e}"),
        )]
    };
    ir.verify().map_err(bug)?;
    ir.classifiers = classify::classify(&mut ir, classifier);
    ir.verify().map_err(bug)?;
    opt::merge_exact_rules(&mut ir);
    ir.verify().map_err(bug)?;
    match codegen::generate(&ir) {
        Ok(code) => Ok((ir, code)),
        Err(e) => Err(vec![Diagnostic::error(
            codes::CODEGEN,
            policy.span,
            e.to_string(),
        )]),
    }
}

pub mod btf;
pub mod elf;
