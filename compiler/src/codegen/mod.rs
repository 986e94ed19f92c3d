//! Code generation: IR to eBPF instructions for XDP and TC.
//!
//! The program has three parts:
//!
//! 1. **Parse.** Headers are walked in order (Ethernet, up to two VLAN tags, ARP/IPv4/IPv6 with
//!    up to six extension headers, TCP/UDP/ICMP/ICMPv6), each with one bounds check covering
//!    every field read from it; variable lengths (IHL, TCP data offset, extension headers) are
//!    masked so the verifier can bound them. Only layers that some condition needs are parsed.
//!    Each loaded field is written once into a per-CPU scratch map value (the "packet vector"),
//!    followed by a word of presence bits.
//! 2. **Rules.** Each rule's predicate is compiled to short-circuit branches over the packet
//!    vector; a condition on a field first tests its header's presence bit. The first rule that
//!    holds jumps to the epilogue with its verdict and statistics slot.
//! 3. **Epilogue.** Adds the packet to the rule's per-CPU packet/byte counters and returns.
//!
//! Why a map value and not the stack: the verifier cannot know what a map value holds, so the
//! rules are verified once, whatever path the parser took; values on the stack would be
//! constants on some paths and make the verifier walk the rules once per parse path, which a
//! 10,000-rule policy cannot afford.
//!
//! A small host policy — a few rules of comparisons and header tests, no maps, no actions —
//! keeps its vector on the stack instead: the verifier walks its few rules once per parse
//! path cheaply, and the packet saves the scratch map's lookup (what hand-written C saves).
//! Such a program has no scratch map, so engines learn its deciding rule from the statistics.
//!
//! **NIC code** (`Target::Nfp`) cannot have that: the NIC has no per-CPU maps and cannot store
//! into map values. Its vector is on the stack (zeroed first, every access aligned), its
//! statistics and counters are plain maps updated by atomic add, table verdicts become
//! constants (the NIC needs a verdict the verifier knows), pass on tc is `TC_ACT_UNSPEC`,
//! and nothing uses `st`, `mod`, 64-bit multiply or helpers the NIC lacks — which
//! [`crate::nfp::violations`] checks independently after generation. NIC policies are
//! small, so walking every parse path is affordable there.
//!
//! The generator is one `Gen` walking the IR. Its methods are spread over submodules by the
//! part of the program they emit, in the manner of naga's `front/wgsl/lower` and cranelift's
//! `verifier`, so that each file is the code of one part: `parser` (part 1), `rules` (part 2:
//! per rule, the predicate and then the decision), `predicates` (branching and branch-free
//! condition code), `lookups` (conditions answered by a map: sets, tables, limiters), `keys`
//! (map keys built in the packet vector), `actions` (`count`, `sample`, `balance`), `rewrite`
//! (`set` and `dec`, with incremental checksums) and `stats` (the packet and byte counts of
//! part 3 and of counters). Beneath them, `asm` is the assembler with forward labels and
//! `layout` the packet vector's offsets. This module holds the entry point, which emits the
//! prologue and the epilogue around the parts, and the state they share.

mod actions;
mod asm;
mod classify;
mod encap;
mod keys;
mod layout;
mod lookups;
mod parser;
mod pool;
mod predicates;
mod rewrite;
mod rules;
mod stats;

use crate::ir::{Cond, Program};
use asm::Asm;
use layout::{layout, Layout, STACK_KEYS};
use nfcc_bpf::insn::{helper, Alu, Insn, Jmp, Reg, Size, R0, R1, R10, R2, R6, R7, R8, R9};
use nfcc_dsl::checked::{Field, Header, Hook, Target, Terminal};
use stats::{add_packet, Len};
use std::collections::HashSet;

// The verdict ABI is shared with lowering and the IR passes; other crates reach it here.
pub use crate::verdict::{named_by_rule, terminal_of, terminal_of_run, verdict};

/// What the code generator produced for one program.
#[derive(Clone, Debug, PartialEq)]
pub struct Code {
    /// The instructions; map references are `ld_map` with the IR map index (the scratch map
    /// is the last map, index `scratch_map`).
    pub insns: Vec<Insn>,
    /// Instruction index where each rule's code starts, for line info.
    pub rule_starts: Vec<(usize, u32)>,
    /// The scratch map's index (after the IR's maps).
    pub scratch_map: u32,
    /// Bytes of the scratch map's value; 0 when the packet vector is on the stack (nfp),
    /// and there is no scratch map.
    pub scratch_size: u32,
    /// Stack bytes used.
    pub stack: u32,
}

/// Why code could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// A jump does not fit the instruction's offset field.
    #[error("a jump of {0} instructions does not fit in a conditional branch; split the policy")]
    JumpTooFar(i64),
    /// The packet vector does not fit the stack (NIC code keeps it there).
    #[error("the packet vector needs {0} stack bytes, more than the 512 the target allows; use fewer fields, keys or tables")]
    StackTooLarge(u32),
}

/// A header's bit in the presence word.
fn bit(h: Header) -> i32 {
    crate::encoding::header_bit(h) as i32
}

/// A presence bit of its own for the inner VLAN tag: `vlan` is present without it on
/// single-tagged frames.
const INNER_VLAN_BIT: i32 = 1 << 14;

/// Presence bit of "an L4 payload offset exists" (TCP, UDP, ICMP, ICMPv6 parsed).
const PAYLOAD_BIT: i32 = 1 << 15;

/// Rules a host policy may have and keep its packet vector on the stack.
const STACK_VECTOR_RULES: usize = 16;

/// Generates the program.
pub fn generate(p: &Program) -> Result<Code, CodegenError> {
    let lay = layout(p);
    let scratch_map = p.maps.len() as u32;
    let mut a = Asm::new();
    let epilogue = a.label();
    let have_scratch = a.label();

    let nic = p.target == Target::Nfp;
    // A policy that reads nothing of the packet (`default drop`, constant rules) needs no
    // packet vector at all: only the verdict and the statistics, whose byte count comes
    // straight from the context.
    let bare = p.fields.is_empty()
        && p.conds.is_empty()
        && p.default_actions.is_empty()
        && p.rules
            .iter()
            .all(|r| r.actions.is_empty() && r.table.is_none());
    // A small host policy of comparisons and header tests keeps its vector on the stack.
    let small = !nic
        && !bare
        && p.rules.len() <= STACK_VECTOR_RULES
        && p.default_actions.is_empty()
        && p.rules
            .iter()
            .all(|r| r.actions.is_empty() && r.table.is_none())
        && p.conds
            .iter()
            .all(|c| matches!(c, Cond::Present(_) | Cond::Cmp { .. } | Cond::Range { .. }));
    // The NIC has no per-CPU maps and cannot store into map values: its packet vector lives on
    // the stack, below the key slots, zeroed so that no path reads uninitialised stack.
    let vector_size = lay.size.next_multiple_of(8);
    let on_stack = (nic || small) && !bare;
    let stack = if on_stack {
        STACK_KEYS + vector_size
    } else {
        STACK_KEYS
    };
    if stack > 512 {
        return Err(CodegenError::StackTooLarge(stack));
    }
    // Prologue: r6 = ctx, r9 = the packet vector, r7/r8 = data/data_end.
    a.emit(Insn::mov64_reg(R6, R1));
    if bare {
        // No vector, no parse.
    } else if nic {
        a.emit(Insn::mov64_reg(R9, R10));
        a.emit(Insn::alu64_imm(Alu::Add, R9, -(stack as i32)));
        a.emit(Insn::mov64_imm(R0, 0));
        for off in (0..vector_size as i16).step_by(8) {
            a.emit(Insn::stx(Size::DW, R9, off, R0));
        }
    } else if small {
        // Only the field slots can be read before a path writes them (the presence word
        // and the length are written on every path).
        a.emit(Insn::mov64_reg(R9, R10));
        a.emit(Insn::alu64_imm(Alu::Add, R9, -(stack as i32)));
        if !lay.slots.is_empty() {
            a.emit(Insn::mov64_imm(R0, 0));
        }
        for (f, &at) in p.fields.iter().zip(&lay.slots) {
            let words = if f.field.ty().bits() > 64 { 2 } else { 1 };
            for w in 0..words {
                a.emit(Insn::stx(Size::DW, R9, at + 8 * w, R0));
            }
        }
    } else {
        a.emit(Insn::mov64_imm(R1, 0));
        a.emit(Insn::stx(Size::W, R10, -4, R1));
        a.emit2(Insn::ld_map(R1, scratch_map));
        a.emit(Insn::mov64_reg(R2, R10));
        a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
        a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), have_scratch);
        // Without its scratch space the program cannot classify; it lets the packet through
        // rather than dropping traffic it knows nothing about. (Kept here, next to the lookup,
        // so the branch stays short however many rules follow.)
        a.emit(Insn::mov64_imm(
            R0,
            verdict(p.hook, p.target, &Terminal::Pass),
        ));
        a.emit(Insn::exit());
        a.bind(have_scratch);
        a.emit(Insn::mov64_reg(R9, R0));
    }
    let (data, data_end) = if p.hook == Hook::Xdp {
        (0, 4)
    } else {
        (76, 80)
    };
    if !bare {
        a.emit(Insn::ldx(Size::W, R7, R6, data));
        a.emit(Insn::ldx(Size::W, R8, R6, data_end));
    }

    let needed: HashSet<Field> = p.fields.iter().map(|f| f.field).collect();
    let mut g = Gen {
        a,
        p,
        lay: &lay,
        needed,
        rule_starts: Vec::new(),
    };
    if !bare {
        g.parse();
    }
    g.rules(epilogue, bare)?;

    let rule_starts = std::mem::take(&mut g.rule_starts);
    let mut a = g.a;
    // Epilogue: r7 = verdict, stack[-4] = statistics slot, also left in the vector for
    // engines (`nfcc_bpf::layout::DECIDED_OFFSET`).
    a.bind(epilogue);
    if !bare && !on_stack {
        a.emit(Insn::ldx(Size::W, R1, R10, -4));
        a.emit(Insn::stx(
            Size::W,
            R9,
            nfcc_bpf::layout::DECIDED_OFFSET as i16,
            R1,
        ));
    }
    a.emit2(Insn::ld_map(R1, p.stats.0));
    a.emit(Insn::mov64_reg(R2, R10));
    a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
    a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
    let ret = a.label();
    a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), ret);
    add_packet(
        &mut a,
        nic,
        if bare {
            Len::Context(p.hook, p.target)
        } else {
            Len::Vector(lay.pkt_len)
        },
    );
    a.bind(ret);
    a.emit(Insn::mov64_reg(R0, R7));
    a.emit(Insn::exit());
    let insns = a.finish()?;
    Ok(Code {
        insns,
        rule_starts,
        scratch_map,
        scratch_size: if on_stack || bare { 0 } else { lay.size },
        stack,
    })
}

/// The generator's state while it emits the parts of one program.
struct Gen<'a> {
    a: Asm,
    p: &'a Program,
    lay: &'a Layout,
    needed: HashSet<Field>,
    /// Instruction index and source offset of each rule's first instruction.
    rule_starts: Vec<(usize, u32)>,
}

impl Gen<'_> {
    /// `r = v`, in one instruction when `v` fits a sign-extended immediate.
    fn load_const(&mut self, r: Reg, v: u64) {
        if let Ok(small) = i32::try_from(v) {
            self.a.emit(Insn::mov64_imm(r, small));
        } else {
            self.a.emit2(Insn::ld_imm64(r, v));
        }
    }
}
