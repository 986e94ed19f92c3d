//! The NIC/host split: two programs whose sequence means what the policy means.
//!
//! The NIC stage is the policy cut after its NIC prefix (see [`crate::place`]): its rules that
//! drop, bounce or abort act and count there; its rules that pass lose their actions and hand
//! the packet on untouched, as does its default, and those are not counted on the NIC. The host
//! stage is the whole policy, run from the top on every packet the NIC passes (what passes
//! there decides again, and every rule beyond the prefix gets its chance). Per-rule counters
//! are the NIC's counted slots plus the host's.
//!
//! [`scan`] reads NIC bytecode from the object, independently of the code generator and of
//! `compiler::nfp`, and lists every instruction, helper and map the NIC would refuse.

use crate::place::{place, Placement};
use crate::Profile;
use nfcc_compiler::compile::{compile, Compiled};
use nfcc_compiler::elf::MapKind;
use nfcc_dsl::checked::{DefaultAction, Policy, Program, Target, Terminal};
use nfcc_dsl::diag::Diagnostic;

/// One stage: the policy it runs and its compiled object.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The (possibly cut) policy.
    pub policy: Policy,
    /// Its object.
    pub compiled: Compiled,
}

/// The NIC stage's size against the profile's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    /// eBPF instructions.
    pub ebpf_insns: usize,
    /// Estimated NIC instructions, and the limit.
    pub nic_insns: (u64, u32),
    /// Stack bytes, and the limit.
    pub stack: (u32, u32),
    /// Maps, and the limit.
    pub maps: (usize, u32),
    /// Entries of all maps, and the limit.
    pub entries: (u64, u64),
    /// Every limit exceeded, in words.
    pub over: Vec<String>,
}

/// A policy split for a profile.
#[derive(Debug, Clone)]
pub struct Split {
    /// Where each rule runs.
    pub placement: Placement,
    /// The NIC stage (none when no rule runs there).
    pub nic: Option<Stage>,
    /// The host stage (none when the whole policy runs on the NIC).
    pub host: Option<Stage>,
    /// For each NIC rule slot (rules, then the default): whether its count is the NIC's own
    /// (drop, tx, abort) rather than a hand-over the host counts again.
    pub nic_counted: Vec<bool>,
    /// The NIC stage's size.
    pub size: Option<Size>,
}

/// The NIC stage's policy: the first `k` rules, pass rules reduced to a bare hand-over, the
/// default a bare pass, no tests.
pub fn nic_policy(policy: &Policy, k: usize) -> Policy {
    let mut p = policy.clone();
    p.rules.truncate(k);
    for r in &mut p.rules {
        if r.terminal == Some(Terminal::Pass) {
            r.actions.clear();
        }
    }
    p.default = DefaultAction {
        actions: Vec::new(),
        terminal: Terminal::Pass,
        span: policy.default.span,
    };
    p.tests.clear();
    p.offload = Some(Target::Nfp);
    p
}

fn size_of(compiled: &Compiled, profile: &Profile) -> Size {
    let prog = &compiled.programs[0];
    let nic_insns = prog.insns as u64 * u64::from(profile.insns_per_ebpf);
    let entries: u64 = prog
        .maps
        .iter()
        .map(|(m, _)| u64::from(m.max_entries))
        .sum();
    let mut over = Vec::new();
    if nic_insns > u64::from(profile.max_insns) {
        over.push(format!(
            "about {nic_insns} NIC instructions, more than the {} the profile allows",
            profile.max_insns
        ));
    }
    if prog.stack > profile.stack_bytes {
        over.push(format!(
            "{} stack bytes, more than {}",
            prog.stack, profile.stack_bytes
        ));
    }
    if prog.maps.len() as u64 > u64::from(profile.max_maps) {
        over.push(format!(
            "{} maps, more than {}",
            prog.maps.len(),
            profile.max_maps
        ));
    }
    if entries > profile.max_total_entries {
        over.push(format!(
            "{entries} map entries in all, more than {}",
            profile.max_total_entries
        ));
    }
    for (m, _) in &prog.maps {
        let bytes = (m.key_size + m.value_size).div_ceil(8) * 8;
        if bytes > profile.max_entry_bytes {
            over.push(format!(
                "map `{}` has {bytes}-byte entries, more than {}",
                m.name, profile.max_entry_bytes
            ));
        }
    }
    Size {
        ebpf_insns: prog.insns,
        nic_insns: (nic_insns, profile.max_insns),
        stack: (prog.stack, profile.stack_bytes),
        maps: (prog.maps.len(), profile.max_maps),
        entries: (entries, profile.max_total_entries),
        over,
    }
}

/// Splits `policy` for `profile` and compiles both stages (`label` and `source` give line
/// information back to the .nf file).
pub fn split(
    policy: &Policy,
    label: &str,
    source: &str,
    profile: &Profile,
) -> Result<Split, Vec<Diagnostic>> {
    let placement = place(policy, profile);
    let one = |p: Policy, target: Target| -> Result<Stage, Vec<Diagnostic>> {
        let compiled = compile(
            &Program {
                policies: vec![p.clone()],
            },
            label,
            source,
            Some(target),
        )?;
        Ok(Stage {
            policy: p,
            compiled,
        })
    };
    let k = placement.nic_prefix;
    let (nic, host) = if placement.full {
        let mut p = policy.clone();
        p.tests.clear();
        (Some(one(p, Target::Nfp)?), None)
    } else if k == 0 {
        (None, Some(one(policy.clone(), Target::Host)?))
    } else {
        (
            Some(one(nic_policy(policy, k), Target::Nfp)?),
            Some(one(policy.clone(), Target::Host)?),
        )
    };
    let nic_counted = match &nic {
        Some(s) if placement.full => vec![true; s.policy.rules.len() + 1],
        Some(s) => s
            .policy
            .rules
            .iter()
            .map(|r| r.terminal != Some(Terminal::Pass))
            .chain(std::iter::once(false))
            .collect(),
        None => Vec::new(),
    };
    let size = nic.as_ref().map(|s| size_of(&s.compiled, profile));
    Ok(Split {
        placement,
        nic,
        host,
        nic_counted,
        size,
    })
}

/// Finds section `name` of a 64-bit little-endian ELF object.
fn section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let shoff = u64at(0x28)? as usize;
    let (shentsize, shnum, shstrndx) = (
        u16at(0x3a)? as usize,
        u16at(0x3c)? as usize,
        u16at(0x3e)? as usize,
    );
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64at(sh(shstrndx) + 0x18)? as usize;
    (0..shnum).find_map(|i| {
        let n = u32at(sh(i))? as usize;
        let rest = elf.get(strtab + n..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        if &rest[..end] != name.as_bytes() {
            return None;
        }
        let (off, size) = (u64at(sh(i) + 0x18)? as usize, u64at(sh(i) + 0x20)? as usize);
        elf.get(off..off + size)
    })
}

/// Helpers the NIC has: map lookup/update/delete, get_prandom_u32, perf_event_output,
/// xdp_adjust_head, xdp_adjust_tail.
const NIC_HELPERS: [i32; 7] = [1, 2, 3, 7, 25, 44, 65];

/// Every instruction of the `section` program of `object`, and every map kind, that the
/// NIC would refuse, as "insn N: why" lines. Reads the raw bytes; shares nothing with the code
/// generator or `compiler::nfp`.
pub fn scan(object: &[u8], section_name: &str, maps: &[MapKind]) -> Vec<String> {
    let Some(code) = section(object, section_name) else {
        return vec![format!("the object has no `{section_name}` section")];
    };
    let mut out = scan_insns(code);
    for k in maps {
        if !matches!(k, MapKind::Hash | MapKind::Array) {
            out.push(format!(
                "map kind {k:?} is not offloadable (hash and array only)"
            ));
        }
    }
    out
}

/// [`scan`] of raw instructions (8 bytes each, little-endian).
pub fn scan_insns(code: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, ins) in code.chunks_exact(8).enumerate() {
        let (op, regs) = (ins[0], ins[1]);
        let src = regs >> 4;
        let off = i16::from_le_bytes([ins[2], ins[3]]);
        let imm = i32::from_le_bytes([ins[4], ins[5], ins[6], ins[7]]);
        let class = op & 0x07;
        let mut bad = |why: &str| out.push(format!("insn {i}: {why}"));
        match class {
            // BPF_ST: store immediate.
            0x02 => bad("`st` (store of an immediate) is not offloadable"),
            // BPF_LDX / BPF_STX: sign-extending loads and atomics other than a plain add.
            0x01 if op & 0xe0 == 0x80 => bad("sign-extending load"),
            0x03 if op & 0xe0 == 0xc0 && imm != 0x00 => {
                bad("atomic other than a plain add (no fetch)")
            }
            // BPF_ALU / BPF_ALU64.
            0x04 | 0x07 => {
                let alu = op & 0xf0;
                let x = op & 0x08 != 0;
                match alu {
                    0x90 => bad("mod"),
                    0x30 if x => bad("division by a register"),
                    0x30 if off != 0 => bad("signed division"),
                    0x20 if class == 0x07 => bad("64-bit multiply"),
                    0xb0 if off != 0 => bad("sign-extending move"),
                    0xd0 if class == 0x07 => bad("byte swap (bswap)"),
                    0xd0 if !x => bad("conversion to little-endian"),
                    _ => {}
                }
            }
            // BPF_JMP: calls.
            0x05 if op == 0x85 && src == 0 && !NIC_HELPERS.contains(&imm) => {
                bad(&format!("helper {imm} is not available on the NIC"));
            }
            _ => {}
        }
    }
    out
}
