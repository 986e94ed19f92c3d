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
//! share about a classifier (`ir::classifier`: its maps' shape and the record of each
//! decision) and what every reader of a compilation's result needs (`compiled`: the object,
//! each program's code, IR and maps, and the program type of a hook): the IR imports no pass,
//! and `describe` and `verdict` do not import the driver `compile`. (`farm-studio look
//! compiler`: no circle, where 14 files formed one, and no arrow running back up: the IR owns
//! the classifier's shared types, `codes` the diagnostic codes, `pipeline` the passes in order.)

mod balance;
/// The instruction set lives in the BPF ABI crate; the code generator reads it as `bpf`.
pub use nfcc_bpf::insn as bpf;
pub mod classify;
pub mod codegen;
pub mod codes;
pub mod compile;
pub mod compiled;
pub mod describe;
mod encoding;
pub mod ir;
pub mod lower;
pub mod nfp;
pub mod opt;
mod pipeline;
pub mod pools;
pub mod prefix;
pub mod room;
pub mod sets;
#[cfg(test)]
mod test_support;
mod verdict;

pub use pipeline::{generate, generate_laid_out, generate_opts, generate_with};

pub mod btf;
pub mod elf;
