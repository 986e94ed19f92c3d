//! nfcc-compiler: lowers a checked policy to a match-action IR, optimises it, and generates
//! verifier-friendly eBPF with an ELF+BTF writer and a disassembler.
//!
//! Built so far: the instruction set with its encoding and disassembler (`bpf`). The IR,
//! passes, code generator and ELF writer are being built under issue 3; until they exist,
//! `nfcc compile` says so instead of pretending.

pub mod bpf;
pub mod codegen;
pub mod compile;
pub mod ir;
pub mod lower;
pub mod nfp;
pub mod prefix;
#[cfg(test)]
mod test_support;

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
    let ir = lower::lower_with(policy, target, virtual_clock)?;
    if let Err(e) = ir.verify() {
        return Err(vec![Diagnostic::error(
            "E0202",
            policy.span,
            format!("compiler bug: {e}"),
        )]);
    }
    match codegen::generate(&ir) {
        Ok(code) => Ok((ir, code)),
        Err(e) => Err(vec![Diagnostic::error("E0203", policy.span, e.to_string())]),
    }
}

pub mod btf;
pub mod elf;
