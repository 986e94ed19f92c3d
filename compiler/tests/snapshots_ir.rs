//! IR text and disassembly snapshots of the corpus and the examples: each policy either
//! lowers (snapshot: IR text then the instructions) or is refused with diagnostics naming what
//! the code generator cannot emit yet (snapshot: the rendered diagnostics).

use nfcc_compiler::generate;
use nfcc_dsl::checked::Target;
use nfcc_dsl::diag::render;
use nfcc_dsl::{check_source, CheckOptions};
use std::path::Path;

/// The one check of this layer.
fn check(path: &Path) {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let (program, diags) = check_source(&source, &CheckOptions::default());
    let Some(program) = program else {
        panic!("{name} must check: {diags:?}");
    };
    let mut out = String::new();
    for policy in &program.policies {
        match generate(policy, Target::Host) {
            Ok((ir, code)) => {
                out.push_str(&ir.to_text());
                out.push_str(&format!("-- {} instructions --\n", code.insns.len()));
                out.push_str(&nfcc_compiler::bpf::disassemble(&code.insns));
            }
            Err(d) => out.push_str(&render(&name, &source, &d)),
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn examples_and_corpus() {
    insta::glob!("../../examples", "*.nf", check);
    insta::glob!("../../dsl/tests/in/ok", "*.nf", check);
    insta::glob!("in", "*.nf", check);
}
