//! nfcc-compiler: lowers a checked policy to a match-action IR, optimises it, and generates
//! verifier-friendly eBPF with an ELF+BTF writer and a disassembler.
//!
//! Not built yet: issue 3 ("Compiler: IR, optimisation, verifier-friendly eBPF codegen").
//! Until then `nfcc compile` reports that the compiler is missing instead of pretending.
