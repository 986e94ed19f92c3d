//! The pipeline for one policy: lowering, the room for updates in place, the IR verifier, the
//! classifier pass, the IR passes and code generation, without writing an object (`compile`
//! writes it).

use crate::{classify, codegen, codes, ir, lower, opt, room};
use nfcc_dsl::checked::{self as ck, Target};
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
