//! What compiling makes: the object, and for each policy its program's code, IR and maps with
//! their initial entries; and the kernel program type behind a hook. Everything that reads a
//! compilation's result (the object's description, verdict mapping, the engines) depends on
//! this, not on the compiler driver that makes it.

use crate::elf::MapDef;
use crate::ir::Program;
use nfcc_dsl::checked::Hook;

/// Entries to insert into a map after loading: (key, value) bytes.
pub type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// A compiled policy inside an object.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledProgram {
    /// The policy's (and function's) name.
    pub name: String,
    /// Its ELF section.
    pub section: String,
    /// Its hook.
    pub hook: Hook,
    /// The IR it was generated from.
    pub ir: Program,
    /// The instructions, map references relocated to object-wide indices.
    pub code: Vec<nfcc_bpf::insn::Insn>,
    /// Instruction count.
    pub insns: usize,
    /// Stack bytes.
    pub stack: u32,
    /// The maps of this program with the entries to insert after loading.
    pub maps: Vec<(MapDef, MapEntries)>,
}

impl CompiledProgram {
    /// The instructions, disassembled (computed on demand: a 10,000-rule program has
    /// hundreds of thousands of them).
    pub fn asm(&self) -> String {
        nfcc_bpf::insn::disassemble(&self.code)
    }

    /// Every entry to insert after loading, as (map, key, value).
    pub fn entries(&self) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        self.maps
            .iter()
            .flat_map(|(m, es)| {
                es.iter()
                    .map(|(k, v)| (m.name.clone(), k.clone(), v.clone()))
            })
            .collect()
    }

    /// The IR as text.
    pub fn ir_text(&self) -> String {
        self.ir.to_text()
    }
}

/// A compiled file.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The ELF object.
    pub object: Vec<u8>,
    /// Its programs.
    pub programs: Vec<CompiledProgram>,
}

/// The kernel program type behind a language hook: the one conversion between the two.
pub fn prog_type(hook: Hook) -> nfcc_bpf::ProgType {
    match hook {
        Hook::Xdp => nfcc_bpf::ProgType::Xdp,
        Hook::TcIngress | Hook::TcEgress => nfcc_bpf::ProgType::Tc,
    }
}
