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
//! **NIC code** (`Target::Nfp`) cannot have that: the NIC has no per-CPU maps and cannot store
//! into map values. Its vector is on the stack (zeroed first, every access aligned), its
//! statistics and counters are plain maps updated by atomic add, table verdicts become
//! constants (the NIC needs a verdict the verifier knows), pass on tc is `TC_ACT_UNSPEC`,
//! and nothing uses `st`, `mod`, 64-bit multiply or helpers the NIC lacks — which
//! [`crate::nfp::violations`] checks independently after generation. NIC policies are
//! small, so walking every parse path is affordable there.

use crate::bpf::{helper, Alu, Insn, Jmp, Reg, Size, R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};
use crate::encoding::{raw_capable, raw_width, to_raw};
use crate::ir::{
    Action, Cond, Encoding, FieldId, KeyPart, Lengths, MapId, MapPurpose, Pred, Program,
};
use crate::prefix;
use nfcc_dsl::ast::CmpOp;
use nfcc_dsl::checked::{Field, Header, Hook, Target, Terminal};
use std::collections::HashSet;

// The verdict ABI is shared with lowering and the IR passes; other crates reach it here.
pub use crate::verdict::{terminal_of, verdict};

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

fn bit(h: Header) -> i32 {
    1 << (h as i32)
}

/// A presence bit of its own for the inner VLAN tag: `vlan` is present without it on
/// single-tagged frames.
const INNER_VLAN_BIT: i32 = 1 << 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

/// An assembler with forward labels.
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn emit(&mut self, i: Insn) {
        self.insns.push(i);
    }

    fn emit2(&mut self, i: [Insn; 2]) {
        self.insns.extend(i);
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        // An unconditional jump to right here does nothing: drop it (labels bound after it
        // move back with the code that follows).
        while let Some(&(at, target)) = self.fixups.last() {
            if target != l || at + 1 != self.insns.len() || self.insns[at].code != 0x05 {
                break;
            }
            self.fixups.pop();
            self.insns.pop();
            for b in self.labels.iter_mut().flatten() {
                if *b == at + 1 {
                    *b = at;
                }
            }
        }
        self.labels[l.0] = Some(self.insns.len());
    }

    /// Whether the next instruction would be unreachable: the last one is an unconditional
    /// jump (or exit) and no label is bound here. The verifier rejects unreachable code, so the
    /// generator stops emitting what could never run.
    fn dead_here(&self) -> bool {
        let here = self.insns.len();
        let ends = self
            .insns
            .last()
            .is_some_and(|i| i.code == 0x05 || i.code == 0x95);
        ends && !self.labels.contains(&Some(here))
    }

    /// Whether any jump targets `l`.
    fn used(&self, l: Label) -> bool {
        self.fixups.iter().any(|(_, x)| *x == l)
    }

    /// Emits a jump (conditional or not) to `l`, patched at the end.
    fn jump(&mut self, i: Insn, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.insns.push(i);
    }

    fn finish(mut self) -> Result<Vec<Insn>, CodegenError> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].unwrap_or(self.insns.len()) as i64;
            let off = target - at as i64 - 1;
            let ins = &mut self.insns[at];
            // The kernel lengthens some instructions when it inlines helpers, so unconditional
            // jumps that are merely long take the 32-bit form before they can overflow.
            let long_ja = ins.code == 0x05 && off.abs() > 8192;
            if let (Ok(o), false) = (i16::try_from(off), long_ja) {
                ins.off = o;
            } else if ins.code == 0x05 {
                // A far unconditional jump becomes `gotol` (JMP32 | JA, 32-bit offset).
                ins.code = 0x06;
                ins.off = 0;
                ins.imm = off as i32;
            } else {
                return Err(CodegenError::JumpTooFar(off));
            }
        }
        Ok(self.insns)
    }
}

/// Byte offsets of the packet vector.
struct Layout {
    slots: Vec<i16>,
    /// Where the LPM key is assembled (4-byte prefix length, then the address).
    lpm_key: i16,
    /// The packet length (always stored).
    pkt_len: i16,
    /// The L4 payload's offset from the frame start (valid when the payload bit is set).
    payload_off: i16,
    /// The clock, read once per limiter evaluation.
    now: i16,
    /// Where counter and limiter keys are assembled.
    keybuf: i16,
    /// Where a new counter or limiter value is assembled.
    valbuf: i16,
    /// The L3 header's offset from the frame start.
    l3_off: i16,
    /// The L4 header's offset from the frame start.
    l4_off: i16,
    /// One word per table: the verdict of its last hit.
    tables: i16,
    /// A sample record being assembled: rule (u32), length (u32), the frame's first bytes.
    samplebuf: i16,
    /// The `bpf_fib_lookup` parameters (64 bytes) of `balance ... via fib`.
    fibbuf: i16,
    size: u32,
}

/// Bytes of a frame copied into a sample record.
const SAMPLE_BYTES: i32 = 128;

/// Presence bit of "an L4 payload offset exists" (TCP, UDP, ICMP, ICMPv6 parsed).
const PAYLOAD_BIT: i32 = 1 << 15;

/// Stack slot holding a dynamic prefix set's length-table pointer across its lookups.
const LENGTHS_PTR: i16 = -24;

/// Stack bytes for map keys and saved pointers (`r10 - 4` .. `r10 - 32`).
const STACK_KEYS: u32 = 32;

/// Nano-tokens per token.
const NANO: u64 = 1_000_000_000;

fn layout(p: &Program) -> Layout {
    let mut off = 8i16; // presence word at 0
    let pkt_len = off;
    off += 8;
    let mut slots = Vec::new();
    for f in &p.fields {
        slots.push(off);
        off += if f.field.ty().bits() > 64 { 16 } else { 8 };
    }
    // Prefix keys are {u32 length, value}: starting 4 bytes into the area puts the value on an
    // 8-byte boundary, as stack stores (the NIC's vector) must be.
    let lpm_key = off + 4;
    off += 24;
    let payload_off = off;
    let now = off + 8;
    let valbuf = off + 16;
    let l3_off = off + 32;
    let l4_off = off + 40;
    let keybuf = off + 48;
    let key_max = p
        .maps
        .iter()
        .filter(|m| {
            matches!(
                m.purpose,
                MapPurpose::Counter
                    | MapPurpose::Limiter
                    | MapPurpose::Table
                    | MapPurpose::MergedRules
            )
        })
        .map(|m| m.key_size as i16)
        .max()
        .unwrap_or(0);
    // Balance keys are hashed from the key buffer too.
    let balance_max = p
        .rules
        .iter()
        .flat_map(|r| &r.actions)
        .chain(&p.default_actions)
        .filter_map(|a| match a {
            Action::Balance { key, .. } => Some(key_width(key)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let key_max = key_max.max(balance_max);
    // Key parts are written in whole words, up to 8 bytes past the key's end.
    // Everything after the key buffer is 8-byte aligned: the NIC's vector is on the stack,
    // where the verifier refuses misaligned access.
    off = (keybuf + key_max + 16 + 7) & !7;
    let tables = off;
    let slots_needed = p
        .conds
        .iter()
        .filter_map(|c| match c {
            Cond::Match { slot, .. } => Some(*slot as i16 + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    off += 8 * slots_needed;
    let samplebuf = off;
    if p.maps.iter().any(|m| m.purpose == MapPurpose::Samples) {
        off += 8 + SAMPLE_BYTES as i16;
    }
    let fibbuf = off;
    let via_fib = p
        .rules
        .iter()
        .flat_map(|r| &r.actions)
        .chain(&p.default_actions)
        .any(|a| matches!(a, Action::Balance { via_fib: true, .. }));
    if via_fib {
        off += 64;
    }
    Layout {
        slots,
        lpm_key,
        pkt_len,
        payload_off,
        now,
        keybuf,
        valbuf,
        l3_off,
        l4_off,
        tables,
        samplebuf,
        fibbuf,
        size: off as u32,
    }
}

/// Bytes of a key built from `key`.
fn key_width(key: &[KeyPart]) -> i16 {
    key.iter()
        .map(|k| match k {
            KeyPart::Raw(_, w) | KeyPart::Host(_, w) | KeyPart::Masked(_, w, _) => *w as i16,
            KeyPart::Const(b) => b.len() as i16,
            KeyPart::Ip { .. } => 16,
            KeyPart::IpTagged { .. } => 17,
        })
        .sum()
}

/// Generates the program.
pub fn generate(p: &Program) -> Result<Code, CodegenError> {
    let lay = layout(p);
    let scratch_map = p.maps.len() as u32;
    let mut a = Asm {
        insns: Vec::new(),
        labels: Vec::new(),
        fixups: Vec::new(),
    };
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
    // The NIC has no per-CPU maps and cannot store into map values: its packet vector lives on
    // the stack, below the key slots, zeroed so that no path reads uninitialised stack.
    let vector_size = lay.size.next_multiple_of(8);
    let stack = if nic && !bare {
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
    // Epilogue: r7 = verdict, stack[-4] = statistics slot.
    a.bind(epilogue);
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
        scratch_size: if nic || bare { 0 } else { lay.size },
        stack,
    })
}

/// Where the packet's length comes from when it is counted.
#[derive(Clone, Copy)]
enum Len {
    /// The packet vector's slot at this offset (from r9).
    Vector(i16),
    /// The context (r6) directly: programs that keep no packet vector.
    Context(Hook, Target),
}

impl Len {
    /// Loads the length into `r`, using r3 as scratch.
    fn load(self, a: &mut Asm, r: Reg) {
        match self {
            Len::Vector(off) => a.emit(Insn::ldx(Size::DW, r, R9, off)),
            Len::Context(Hook::Xdp, _) => {
                a.emit(Insn::ldx(Size::W, r, R6, 4));
                a.emit(Insn::ldx(Size::W, R3, R6, 0));
                a.emit(Insn::alu64_reg(Alu::Sub, r, R3));
            }
            Len::Context(_, Target::Nfp) => {
                a.emit(Insn::ldx(Size::W, r, R6, 80));
                a.emit(Insn::ldx(Size::W, R3, R6, 76));
                a.emit(Insn::alu64_reg(Alu::Sub, r, R3));
            }
            Len::Context(_, Target::Host) => a.emit(Insn::ldx(Size::W, r, R6, 0)),
        }
    }
}

/// Adds one packet of its length to the {packets, bytes} value at r0: plain adds on a per-CPU
/// value, atomic adds on the NIC's shared one (which cannot be stored to directly).
fn add_packet(a: &mut Asm, nic: bool, len: Len) {
    if nic {
        a.emit(Insn::mov64_imm(R1, 1));
        a.emit(Insn::atomic_add(Size::DW, R0, 0, R1));
        len.load(a, R1);
        a.emit(Insn::atomic_add(Size::DW, R0, 8, R1));
    } else {
        a.emit(Insn::ldx(Size::DW, R1, R0, 0));
        a.emit(Insn::alu64_imm(Alu::Add, R1, 1));
        a.emit(Insn::stx(Size::DW, R0, 0, R1));
        a.emit(Insn::ldx(Size::DW, R1, R0, 8));
        len.load(a, R2);
        a.emit(Insn::alu64_reg(Alu::Add, R1, R2));
        a.emit(Insn::stx(Size::DW, R0, 8, R1));
    }
}

struct Gen<'a> {
    a: Asm,
    p: &'a Program,
    lay: &'a Layout,
    needed: HashSet<Field>,
    /// Instruction index and source offset of each rule's first instruction.
    rule_starts: Vec<(usize, u32)>,
}

impl Gen<'_> {
    fn needs_any(&self, fs: &[Field]) -> bool {
        fs.iter().any(|f| self.needed.contains(f))
    }

    fn present_needed(&self, h: Header) -> bool {
        self.p
            .conds
            .iter()
            .any(|c| matches!(c, Cond::Present(x) if *x == h))
    }

    /// Stores `reg` into every slot of `field` (raw and/or host encodings), converting.
    /// `reg` holds the raw value (bytes as loaded); `bytes` is the field's width.
    fn store_field(&mut self, field: Field, reg: Reg, bytes: u32) {
        // Raw slots first; then `reg` itself is swapped for the host slot, because every other
        // register carries parser state (r5 is the header length).
        let mut host = None;
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field != field {
                continue;
            }
            let off = self.lay.slots[i];
            if f.enc == Encoding::Raw || !raw_capable(field) || bytes == 1 {
                self.a.emit(Insn::stx(Size::DW, R9, off, reg));
            } else {
                host = Some(off);
            }
        }
        if let Some(off) = host {
            if bytes == 6 {
                // A MAC: swap all eight bytes, then drop the two that were not loaded.
                self.a.emit(Insn::to_be(reg, 64));
                self.a.emit(Insn::alu64_imm(Alu::Rsh, reg, 16));
            } else {
                self.a.emit(Insn::to_be(reg, (bytes * 8) as i32));
            }
            self.a.emit(Insn::stx(Size::DW, R9, off, reg));
        }
    }

    /// Loads `size` bytes at `base + off` into r0 and stores the field if it is needed.
    fn load_field(&mut self, field: Field, base: Reg, off: i16, size: Size) {
        if !self.needed.contains(&field) {
            return;
        }
        self.a.emit(Insn::ldx(size, R0, base, off));
        self.store_field(field, R0, size.bytes() as u32);
    }

    /// A 6-byte MAC at `base + off` as a raw 64-bit value.
    fn load_mac(&mut self, field: Field, base: Reg, off: i16) {
        if !self.needed.contains(&field) {
            return;
        }
        self.a.emit(Insn::ldx(Size::H, R1, base, off + 4));
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R1, 32));
        self.a.emit(Insn::ldx(Size::W, R0, base, off));
        self.a.emit(Insn::alu64_reg(Alu::Or, R0, R1));
        self.store_field(field, R0, 6);
    }

    /// A 16-byte IPv6 address at `base + off` (always raw).
    fn load_v6(&mut self, field: Field, base: Reg, off: i16) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field == field {
                let slot = self.lay.slots[i];
                self.a.emit(Insn::ldx(Size::DW, R0, base, off));
                self.a.emit(Insn::stx(Size::DW, R9, slot, R0));
                self.a.emit(Insn::ldx(Size::DW, R0, base, off + 8));
                self.a.emit(Insn::stx(Size::DW, R9, slot + 8, R0));
            }
        }
    }

    /// Stores a computed (host) value in r0 for `field`.
    fn store_host(&mut self, field: Field) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if f.field == field {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.slots[i], R0));
            }
        }
    }

    fn set_bits(&mut self, bits: i32) {
        self.a.emit(Insn::alu64_imm(Alu::Or, R3, bits));
    }

    /// The parser. Register use: r3 = presence bits being built, r4 = header pointer,
    /// r2 = next protocol (raw ethertype or IP protocol), r5 = scratch.
    fn parse(&mut self) {
        let done = self.a.label();
        self.a.emit(Insn::mov64_imm(R3, 0));
        // pkt.* fields come from the context and the frame length.
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        // skb->len counts non-linear data too; the NIC's frame is linear and its context
        // has only the bounds.
        if self.p.hook.is_tc() && self.p.target == Target::Host {
            self.a.emit(Insn::ldx(Size::W, R0, R6, 0));
        }
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.pkt_len, R0));
        self.store_host(Field::PktLen);
        let ctx_fields: &[(Field, i16)] = if self.p.hook == Hook::Xdp {
            &[(Field::PktIfindex, 12), (Field::PktRxq, 16)]
        } else {
            &[(Field::PktIfindex, 40), (Field::PktMark, 8)]
        };
        for &(f, off) in ctx_fields {
            if self.needed.contains(&f) {
                self.a.emit(Insn::ldx(Size::W, R0, R6, off));
                self.store_host(f);
            }
        }
        // The headers some condition, field or key needs decide which layers are parsed: an
        // IPv6-only policy never walks IPv4 (or ARP), a policy reading no header parses none.
        let mut wanted: HashSet<Header> = self.p.fields.iter().map(|f| f.field.header()).collect();
        for c in &self.p.conds {
            match c {
                Cond::Present(h) => {
                    wanted.insert(*h);
                }
                Cond::Payload { .. } => {
                    wanted.insert(Header::L4);
                }
                _ => {}
            }
        }
        wanted.remove(&Header::Pkt);
        let all = self.rewrites();
        let any_of = |hs: &[Header]| all || hs.iter().any(|h| wanted.contains(h));
        let need_v4 = any_of(&[
            Header::Ipv4,
            Header::Ip,
            Header::Tcp,
            Header::Udp,
            Header::Icmp,
            Header::L4,
            Header::Frag,
        ]);
        let need_v6 = any_of(&[
            Header::Ipv6,
            Header::Ip,
            Header::Tcp,
            Header::Udp,
            Header::Icmpv6,
            Header::L4,
            Header::Frag,
        ]);
        let need_arp = any_of(&[Header::Arp]);
        let need_l3 = need_v4 || need_v6 || need_arp;
        let need_vlan = need_l3
            || self.needs_any(&[
                Field::VlanId,
                Field::VlanPcp,
                Field::VlanInnerId,
                Field::EthType,
            ])
            || self.present_needed(Header::Vlan);
        if !need_vlan && !any_of(&[Header::Eth]) {
            // Nothing reads the frame: only its length (stored above) is needed.
            self.a.bind(done);
            self.a.emit(Insn::stx(Size::DW, R9, 0, R3));
            return;
        }

        // Ethernet.
        self.a.emit(Insn::mov64_reg(R1, R7));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 14));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Eth));
        self.load_mac(Field::EthDst, R7, 0);
        self.load_mac(Field::EthSrc, R7, 6);
        self.a.emit(Insn::ldx(Size::H, R2, R7, 12));
        self.a.emit(Insn::mov64_imm(R4, 14));
        let type_known = self.a.label();
        if need_vlan {
            for (tag, inner) in [(0i16, false), (4, true)] {
                let is_tag = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 0x0081, 0), is_tag);
                self.a
                    .jump(Insn::jmp_imm(Jmp::Ne, R2, 0xa888, 0), type_known);
                self.a.bind(is_tag);
                self.a.emit(Insn::mov64_reg(R1, R7));
                self.a
                    .emit(Insn::alu64_imm(Alu::Add, R1, 18 + i32::from(tag)));
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), type_known);
                self.set_bits(if inner {
                    INNER_VLAN_BIT
                } else {
                    bit(Header::Vlan)
                });
                let (id, pcp) = if inner {
                    (Field::VlanInnerId, None)
                } else {
                    (Field::VlanId, Some(Field::VlanPcp))
                };
                let want_pcp = pcp.is_some_and(|f| self.needed.contains(&f));
                if self.needed.contains(&id) || want_pcp {
                    self.a.emit(Insn::ldx(Size::H, R0, R7, 14 + tag));
                    self.a.emit(Insn::to_be(R0, 16));
                    self.a.emit(Insn::mov64_reg(R1, R0));
                    if self.needed.contains(&id) {
                        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfff));
                        self.store_host(id);
                    }
                    if want_pcp {
                        self.a.emit(Insn::mov64_reg(R0, R1));
                        self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 13));
                        self.store_host(Field::VlanPcp);
                    }
                }
                self.a.emit(Insn::ldx(Size::H, R2, R7, 16 + tag));
                self.a.emit(Insn::mov64_imm(R4, 18 + i32::from(tag)));
            }
        }
        self.a.bind(type_known);
        if self.needed.contains(&Field::EthType) {
            self.a.emit(Insn::mov64_reg(R0, R2));
            self.store_field(Field::EthType, R0, 2);
        }
        if need_l3 {
            // r4 becomes the L3 header pointer; its offset is kept for rewrites.
            if all {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.l3_off, R4));
            }
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R7));
            if need_v4 {
                let not_v4 = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0x0008, 0), not_v4);
                self.ipv4(done);
                self.a.bind(not_v4);
            }
            if need_v6 {
                let not_v6 = self.a.label();
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0xdd86, 0), not_v6);
                self.ipv6(done);
                self.a.bind(not_v6);
            }
            if need_arp {
                self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 0x0608, 0), done);
                self.a.emit(Insn::mov64_reg(R1, R4));
                self.a.emit(Insn::alu64_imm(Alu::Add, R1, 28));
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
                self.set_bits(bit(Header::Arp));
            }
        }
        self.a.bind(done);
        self.a.emit(Insn::stx(Size::DW, R9, 0, R3));
    }

    /// Stores the payload offset: L4 pointer minus data plus the header length (`r5` when
    /// `len` is `None`).
    fn store_payload_off(&mut self, len: Option<i32>) {
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        match len {
            Some(l) => self.a.emit(Insn::alu64_imm(Alu::Add, R0, l)),
            None => self.a.emit(Insn::alu64_reg(Alu::Add, R0, R5)),
        }
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.payload_off, R0));
    }

    /// Whether some action rewrites L3 or L4 headers: they need the header offsets and the
    /// presence bits of every layer, whatever the predicates read.
    fn rewrites(&self) -> bool {
        self.p
            .rules
            .iter()
            .flat_map(|r| &r.actions)
            .chain(&self.p.default_actions)
            .any(|a| match a {
                Action::Rewrite { field, .. } => !matches!(field, Field::EthSrc | Field::EthDst),
                Action::DecTtl | Action::Balance { .. } => true,
                _ => false,
            })
    }

    fn need_l4(&self) -> bool {
        if self.rewrites() {
            return true;
        }
        self.p.fields.iter().any(|f| {
            matches!(
                f.field.header(),
                Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 | Header::L4
            )
        }) || self.p.conds.iter().any(|c| {
            matches!(
                c,
                Cond::Present(
                    Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 | Header::L4
                ) | Cond::Payload { .. }
            )
        })
    }

    fn ipv4(&mut self, done: Label) {
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 20));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R0, R4, 0));
        self.a.emit(Insn::mov64_reg(R5, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R5, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R5, 4, 0), done);
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x0f));
        self.a.jump(Insn::jmp_imm(Jmp::Lt, R0, 5, 0), done);
        self.store_host(Field::Ipv4Ihl);
        // r5 = header length, 20..60: the whole header must be in the frame.
        self.a.emit(Insn::mov64_reg(R5, R0));
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 2));
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Ipv4) | bit(Header::Ip));
        self.load_field(Field::Ipv4Src, R4, 12, Size::W);
        self.load_field(Field::Ipv4Dst, R4, 16, Size::W);
        self.load_field(Field::Ipv4Len, R4, 2, Size::H);
        self.load_field(Field::Ipv4Id, R4, 4, Size::H);
        if self.needs_any(&[Field::Ipv4Ttl, Field::IpTtl]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 8));
            self.store_host(Field::Ipv4Ttl);
            self.store_host(Field::IpTtl);
        }
        if self.needs_any(&[Field::Ipv4Dscp, Field::IpDscp, Field::Ipv4Ecn]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 1));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 2));
            self.store_host(Field::Ipv4Dscp);
            self.store_host(Field::IpDscp);
            self.a.emit(Insn::mov64_reg(R0, R1));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 3));
            self.store_host(Field::Ipv4Ecn);
        }
        self.a.emit(Insn::ldx(Size::B, R2, R4, 9));
        if self.needs_any(&[Field::Ipv4Proto, Field::IpProto]) {
            self.a.emit(Insn::mov64_reg(R0, R2));
            self.store_host(Field::Ipv4Proto);
            self.store_host(Field::IpProto);
        }
        // Fragments: MF or a non-zero offset makes `frag`; a non-zero offset means no L4.
        self.a.emit(Insn::ldx(Size::H, R0, R4, 6));
        self.a.emit(Insn::to_be(R0, 16));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x3fff));
        let not_frag = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), not_frag);
        self.set_bits(bit(Header::Frag));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x1fff));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), done);
        self.a.bind(not_frag);
        if self.need_l4() {
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R5));
            self.l4(done, true);
        }
        self.a.jump(Insn::ja(0), done);
    }

    fn ipv6(&mut self, done: Label) {
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 40));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R0, R4, 0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 6, 0), done);
        self.set_bits(bit(Header::Ipv6) | bit(Header::Ip));
        self.load_v6(Field::Ipv6Src, R4, 8);
        self.load_v6(Field::Ipv6Dst, R4, 24);
        self.load_field(Field::Ipv6Len, R4, 4, Size::H);
        if self.needs_any(&[Field::Ipv6Hoplimit, Field::IpTtl]) {
            self.a.emit(Insn::ldx(Size::B, R0, R4, 7));
            self.store_host(Field::Ipv6Hoplimit);
            self.store_host(Field::IpTtl);
        }
        if self.needs_any(&[Field::Ipv6Dscp, Field::IpDscp, Field::Ipv6Flowlabel]) {
            self.a.emit(Insn::ldx(Size::W, R0, R4, 0));
            self.a.emit(Insn::to_be(R0, 32));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfffff));
            self.store_host(Field::Ipv6Flowlabel);
            self.a.emit(Insn::mov64_reg(R0, R1));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R0, 22));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0x3f));
            self.store_host(Field::Ipv6Dscp);
            self.store_host(Field::IpDscp);
        }
        // The extension chain is walked only when something after it is needed.
        let walk = self.need_l4()
            || self.needs_any(&[Field::Ipv6Nexthdr, Field::IpProto])
            || self.present_needed(Header::Frag);
        if !walk {
            self.a.jump(Insn::ja(0), done);
            return;
        }
        self.a.emit(Insn::ldx(Size::B, R2, R4, 6));
        self.a.emit(Insn::alu64_imm(Alu::Add, R4, 40));
        // Extension headers, at most six, unrolled: r2 = next header, r4 = its pointer.
        let upper = self.a.label();
        let stuck = self.a.label();
        for _ in 0..6 {
            let is_opts = self.a.label();
            let next = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 0, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 43, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, 60, 0), is_opts);
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 44, 0), upper);
            // Fragment header: 8 bytes.
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::H, R0, R4, 2));
            self.a.emit(Insn::to_be(R0, 16));
            self.a.emit(Insn::mov64_reg(R1, R0));
            self.a.emit(Insn::alu64_imm(Alu::And, R1, 0xfff9));
            let no_frag = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), no_frag);
            self.set_bits(bit(Header::Frag));
            self.a.bind(no_frag);
            self.a.emit(Insn::ldx(Size::B, R2, R4, 0));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xfff8));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), stuck);
            self.a.emit(Insn::alu64_imm(Alu::Add, R4, 8));
            self.a.jump(Insn::ja(0), next);
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            self.a.bind(is_opts);
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::B, R5, R4, 1));
            self.a.emit(Insn::alu64_imm(Alu::Add, R5, 1));
            self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 3));
            self.a.emit(Insn::mov64_reg(R1, R4));
            self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
            self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), stuck);
            self.a.emit(Insn::ldx(Size::B, R2, R4, 0));
            self.a.emit(Insn::alu64_reg(Alu::Add, R4, R5));
            self.a.bind(next);
        }
        // A seventh extension header: the chain is not walked to its end.
        for ext in [0, 43, 60, 44] {
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R2, ext, 0), stuck);
        }
        self.a.bind(upper);
        self.a.emit(Insn::mov64_reg(R0, R2));
        self.store_host(Field::Ipv6Nexthdr);
        self.store_host(Field::IpProto);
        if self.need_l4() {
            self.l4(done, false);
        }
        self.a.jump(Insn::ja(0), done);
        self.a.bind(stuck);
        self.a.emit(Insn::mov64_reg(R0, R2));
        self.store_host(Field::Ipv6Nexthdr);
        self.store_host(Field::IpProto);
        self.a.jump(Insn::ja(0), done);
    }

    /// L4 dispatch on r2 with r4 = L4 header pointer.
    fn l4(&mut self, done: Label, v4: bool) {
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R7));
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.l4_off, R0));
        let not_tcp = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 6, 0), not_tcp);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 20));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.a.emit(Insn::ldx(Size::B, R5, R4, 12));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R5, 4));
        self.a.jump(Insn::jmp_imm(Jmp::Lt, R5, 5, 0), done);
        self.a.emit(Insn::alu64_imm(Alu::Lsh, R5, 2));
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R5));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Tcp) | bit(Header::L4) | PAYLOAD_BIT);
        self.store_payload_off(None);
        self.load_field(Field::TcpSport, R4, 0, Size::H);
        self.load_field(Field::L4Sport, R4, 0, Size::H);
        self.load_field(Field::TcpDport, R4, 2, Size::H);
        self.load_field(Field::L4Dport, R4, 2, Size::H);
        self.load_field(Field::TcpSeq, R4, 4, Size::W);
        self.load_field(Field::TcpAck, R4, 8, Size::W);
        self.load_field(Field::TcpFlags, R4, 13, Size::B);
        self.load_field(Field::TcpWindow, R4, 14, Size::H);
        self.a.jump(Insn::ja(0), done);
        self.a.bind(not_tcp);

        let not_udp = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, 17, 0), not_udp);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, 8));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        self.set_bits(bit(Header::Udp) | bit(Header::L4) | PAYLOAD_BIT);
        self.store_payload_off(Some(8));
        self.load_field(Field::UdpSport, R4, 0, Size::H);
        self.load_field(Field::L4Sport, R4, 0, Size::H);
        self.load_field(Field::UdpDport, R4, 2, Size::H);
        self.load_field(Field::L4Dport, R4, 2, Size::H);
        self.load_field(Field::UdpLen, R4, 4, Size::H);
        self.a.jump(Insn::ja(0), done);
        self.a.bind(not_udp);

        let (proto, min, hdr, ty, code) = if v4 {
            (1, 8, Header::Icmp, Field::IcmpType, Field::IcmpCode)
        } else {
            (58, 4, Header::Icmpv6, Field::Icmpv6Type, Field::Icmpv6Code)
        };
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R2, proto, 0), done);
        self.a.emit(Insn::mov64_reg(R1, R4));
        self.a.emit(Insn::alu64_imm(Alu::Add, R1, min));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R1, R8, 0), done);
        // The ICMP and ICMPv6 payload both start after the 4-byte message-specific word.
        self.set_bits(bit(hdr) | PAYLOAD_BIT);
        self.store_payload_off(Some(8));
        self.load_field(ty, R4, 0, Size::B);
        self.load_field(code, R4, 1, Size::B);
    }

    // ----------------------------------------------------------------------------------------
    // Rules
    // ----------------------------------------------------------------------------------------

    fn rules(&mut self, epilogue: Label, bare: bool) -> Result<(), CodegenError> {
        // The presence word lives in r8 for the rules (data_end is no longer needed).
        if !bare {
            self.a.emit(Insn::ldx(Size::DW, R8, R9, 0));
        }
        let mut starts = Vec::new();
        let mut always = false;
        for r in &self.p.rules {
            // A rule that never matches has no code; after one that always matches, nothing is
            // reachable (and the verifier rejects unreachable code).
            match &r.pred {
                Pred::Const(false) => continue,
                Pred::Const(true) => always = true,
                _ => {}
            }
            starts.push((self.a.insns.len(), r.span.start));

            let next = self.a.label();
            // A lone presence test is one branch either way; branching is shorter.
            let lone_presence = matches!(&r.pred, Pred::Cond(c)
                if matches!(self.p.conds[c.index()], Cond::Present(_)));
            if !lone_presence && self.pure_depth(&r.pred).is_some_and(|d| d < 4) {
                // One branch per rule: the verifier keeps at most one pending state however
                // many rules there are, which is what lets 10,000-rule policies verify.
                self.eval_pure(&r.pred, 0);
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R1, 0, 0), next);
            } else {
                self.pred(&r.pred, false, next);
            }
            if self.a.dead_here() {
                // The predicate always jumps on (its limiters still run): no decision here.
                self.a.bind(next);
                continue;
            }
            if r.merged > 0 {
                self.decide_merged(r.table.unwrap_or(0), epilogue);
            } else {
                self.decide(&r.actions, &r.terminal, r.table, r.stats_index, epilogue);
            }
            // Nothing jumps past a rule that always matches: what follows is unreachable.
            let reached = self.a.used(next);
            self.a.bind(next);
            if always || !reached {
                always = true;
                break;
            }
        }
        if always {
            self.rule_starts = starts;
            return Ok(());
        }
        let (t, idx) = self.p.default.clone();
        let acts = self.p.default_actions.clone();
        self.decide(&acts, &t, None, idx, epilogue);
        self.rule_starts = starts;
        Ok(())
    }

    /// A merged run's entry hit: its table slot holds the verdict (low word) and the
    /// statistics slot (high word).
    fn decide_merged(&mut self, slot: u32, epilogue: Label) {
        let at = self.lay.tables + 8 * slot as i16;
        self.a.emit(Insn::ldx(Size::W, R7, R9, at));
        self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
        self.a.emit(Insn::stx(Size::W, R10, -4, R1));
        self.a.jump(Insn::ja(0), epilogue);
    }

    /// A rule fired: run its actions, set the verdict (r7) and statistics slot, go to the
    /// epilogue.
    fn decide(
        &mut self,
        actions: &[Action],
        t: &Terminal,
        table: Option<u32>,
        stats: u32,
        epilogue: Label,
    ) {
        // Where a failed FIB lookup goes: the packet passes, untouched, counted for this rule.
        let fib_failed = self.a.label();
        for a in actions {
            match a {
                Action::Count { map, key } => self.count(*map, key),
                Action::Mark(m) => {
                    self.a.emit(Insn::mov64_imm(R1, *m as i32));
                    self.a.emit(Insn::stx(Size::W, R6, 8, R1));
                }
                Action::Rewrite { field, value } => self.rewrite(*field, *value),
                Action::DecTtl => self.dec_ttl(),
                Action::Sample { n, map } => self.sample(*n, *map, stats),
                Action::Balance {
                    table,
                    key,
                    backends,
                    via_fib,
                } => self.balance(*table, key, backends, via_fib.then_some(fib_failed)),
            }
        }
        if let Some(slot) = table {
            // The table's entry decided: its verdict was kept when the key hit.
            let at = self.lay.tables + 8 * slot as i16;
            if self.p.target == Target::Nfp {
                // The NIC needs a verdict the verifier knows: pick the constant equal to the
                // entry's (tables hold pass, drop, or tx/abort on xdp).
                let (hook, target) = (self.p.hook, self.p.target);
                self.a.emit(Insn::ldx(Size::W, R1, R9, at));
                self.a
                    .emit(Insn::mov64_imm(R7, verdict(hook, target, &Terminal::Pass)));
                for t in [Terminal::Drop, Terminal::Tx, Terminal::Abort] {
                    if hook.is_tc() && t != Terminal::Drop {
                        continue;
                    }
                    let v = verdict(hook, target, &t);
                    let other = self.a.label();
                    self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, v, 0), other);
                    self.a.emit(Insn::mov64_imm(R7, v));
                    self.a.bind(other);
                }
            } else {
                self.a.emit(Insn::ldx(Size::W, R7, R9, at));
                if let Some(map) = self.p.redirect_map {
                    // An entry that redirects names its target in the high word.
                    let done = self.a.label();
                    let redirect = verdict(
                        self.p.hook,
                        self.p.target,
                        &Terminal::Redirect(String::new()),
                    );
                    self.a.jump(Insn::jmp_imm(Jmp::Ne, R7, redirect, 0), done);
                    self.a.emit(Insn::ldx(Size::W, R1, R9, at + 4));
                    self.redirect_through(map, None);
                    self.a.bind(done);
                }
            }
        } else if let (Terminal::Redirect(name), Some(map)) = (t, self.p.redirect_map) {
            let idx = self.p.redirects.iter().position(|n| n == name).unwrap_or(0) as i32;
            self.redirect_through(map, Some(idx));
        } else {
            self.a
                .emit(Insn::mov64_imm(R7, verdict(self.p.hook, self.p.target, t)));
        }
        self.a.emit(Insn::mov64_imm(R1, stats as i32));
        self.a.emit(Insn::stx(Size::W, R10, -4, R1));
        self.a.jump(Insn::ja(0), epilogue);
        if self.a.used(fib_failed) {
            self.a.bind(fib_failed);
            let pass = verdict(self.p.hook, self.p.target, &Terminal::Pass);
            self.a.emit(Insn::mov64_imm(R7, pass));
            self.a.emit(Insn::mov64_imm(R1, stats as i32));
            self.a.emit(Insn::stx(Size::W, R10, -4, R1));
            self.a.jump(Insn::ja(0), epilogue);
        }
    }

    /// `bpf_redirect` to the interface in slot `idx` of the redirect-targets map (`None`: the
    /// slot number is already in r1); the verdict goes to r7. The interface index is filled in
    /// at load time; an unfilled slot redirects to index 0, which the kernel refuses at
    /// transmit time.
    fn redirect_through(&mut self, map: MapId, idx: Option<i32>) {
        if let Some(idx) = idx {
            self.a.emit(Insn::mov64_imm(R1, idx));
        }
        self.a.emit(Insn::stx(Size::W, R10, -8, R1));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, -8));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.emit(Insn::mov64_imm(R1, 0));
        let none = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.bind(none);
        self.a.emit(Insn::mov64_imm(R2, 0));
        self.a.emit(Insn::call(helper::REDIRECT));
        self.a.emit(Insn::mov64_reg(R7, R0));
    }

    /// r1 = frame start + the offset in scratch slot `slot` (masked to `mask`), r2 = frame end,
    /// and jumps to `skip` unless `len` bytes are there.
    fn header_ptr(&mut self, slot: i16, mask: i32, len: i32, skip: Label) {
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, mask));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R0));
        self.a.emit(Insn::mov64_reg(R0, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, len));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R2, 0), skip);
    }

    /// Jumps to `to` when none of `bits` is set in the presence word.
    fn unless_any(&mut self, bits: i32, to: Label) {
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, bits));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), to);
    }

    /// r3 += the checksum delta of one 16-bit word changing from `old` (a register holding a
    /// word as loaded) to `new` (a register).
    fn delta_word(&mut self, old: Reg, new: Reg) {
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R3, old));
        self.a.emit(Insn::alu64_reg(Alu::Add, R3, new));
    }

    /// Applies the delta in r3 to the 16-bit checksum at `ptr + off` (RFC 1624 eqn. 3 in
    /// one's-complement arithmetic, which is byte-order independent, so words stay as
    /// loaded). A UDP checksum of zero means "none" and stays; a zero result becomes 0xFFFF.
    fn apply_csum(&mut self, ptr: Reg, off: i16, udp: bool) {
        let skip = self.a.label();
        self.a.emit(Insn::ldx(Size::H, R0, ptr, off));
        if udp {
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), skip);
        }
        self.a.emit(Insn::alu64_imm(Alu::Xor, R0, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Add, R0, R3));
        for _ in 0..2 {
            self.a.emit(Insn::mov64_reg(R4, R0));
            self.a.emit(Insn::alu64_imm(Alu::Rsh, R4, 16));
            self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xffff));
            self.a.emit(Insn::alu64_reg(Alu::Add, R0, R4));
        }
        self.a.emit(Insn::alu64_imm(Alu::Xor, R0, 0xffff));
        if udp {
            let nonzero = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), nonzero);
            self.a.emit(Insn::mov64_imm(R0, 0xffff));
            self.a.bind(nonzero);
        }
        self.a.emit(Insn::stx(Size::H, ptr, off, R0));
        self.a.bind(skip);
    }

    /// Applies the delta in r3 to the L4 checksum (TCP, UDP, and for address changes ICMPv6
    /// through its pseudo-header) when that header is present.
    fn fix_l4(&mut self, pseudo: bool) {
        let l4 = [
            (bit(Header::Tcp), 20, 16, false),
            (bit(Header::Udp), 8, 6, true),
            (bit(Header::Icmpv6), 4, 2, false),
        ];
        let done = self.a.label();
        for (b, len, off, udp) in l4 {
            if b == bit(Header::Icmpv6) && !pseudo {
                continue;
            }
            let next = self.a.label();
            self.unless_any(b, next);
            // r5 keeps the delta's companion pointer; r3 (the delta) survives.
            self.header_ptr(self.lay.l4_off, 0x3fff, len, done);
            self.apply_csum(R1, off, udp);
            self.a.jump(Insn::ja(0), done);
            self.a.bind(next);
        }
        self.a.bind(done);
    }

    /// `set FIELD = VALUE`.
    fn rewrite(&mut self, field: Field, value: u128) {
        use Field::*;
        let skip = self.a.label();
        match field {
            EthSrc | EthDst => {
                self.unless_any(bit(Header::Eth), skip);
                self.header_ptr(self.lay.pkt_len, 0, 14, skip);
                let at = if field == EthDst { 0 } else { 6 };
                let b = value.to_be_bytes();
                let lo = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
                let hi = u16::from_le_bytes([b[14], b[15]]);
                self.load_const(R0, u64::from(lo));
                self.a.emit(Insn::stx(Size::W, R1, at, R0));
                self.a.emit(Insn::mov64_imm(R0, i32::from(hi)));
                self.a.emit(Insn::stx(Size::H, R1, at + 4, R0));
                self.refresh_const(&[field], value);
            }
            Ipv4Src | Ipv4Dst => {
                self.unless_any(bit(Header::Ipv4), skip);
                self.header_ptr(self.lay.l3_off, 0x1f, 20, skip);
                let at = if field == Ipv4Src { 12 } else { 16 };
                let new = to_raw(value, 4) as u32;
                self.a.emit(Insn::mov64_imm(R3, 0));
                for w in [0i16, 2] {
                    self.a.emit(Insn::ldx(Size::H, R4, R1, at + w));
                    let nw = (new >> (8 * w)) & 0xffff;
                    self.a.emit(Insn::mov64_imm(R5, nw as i32));
                    self.a.emit(Insn::stx(Size::H, R1, at + w, R5));
                    self.delta_word(R4, R5);
                }
                self.apply_csum(R1, 10, false);
                self.fix_l4(true);
                self.refresh_const(&[field], value);
            }
            Ipv6Src | Ipv6Dst => {
                self.unless_any(bit(Header::Ipv6), skip);
                self.header_ptr(self.lay.l3_off, 0x1f, 40, skip);
                let at = if field == Ipv6Src { 8 } else { 24 };
                let new = to_raw(value, 16);
                self.a.emit(Insn::mov64_imm(R3, 0));
                for w in (0i16..16).step_by(2) {
                    self.a.emit(Insn::ldx(Size::H, R4, R1, at + w));
                    let nw = (new >> (8 * w)) & 0xffff;
                    self.a.emit(Insn::mov64_imm(R5, nw as i32));
                    self.a.emit(Insn::stx(Size::H, R1, at + w, R5));
                    self.delta_word(R4, R5);
                }
                self.fix_l4(true);
                self.refresh_const(&[field], value);
            }
            L4Sport | L4Dport | TcpSport | TcpDport | UdpSport | UdpDport => {
                let bits = match field {
                    TcpSport | TcpDport => bit(Header::Tcp),
                    UdpSport | UdpDport => bit(Header::Udp),
                    _ => bit(Header::Tcp) | bit(Header::Udp),
                };
                self.unless_any(bits, skip);
                self.header_ptr(self.lay.l4_off, 0x3fff, 8, skip);
                let at = if matches!(field, L4Sport | TcpSport | UdpSport) {
                    0
                } else {
                    2
                };
                let new = to_raw(value, 2) as u32;
                self.a.emit(Insn::mov64_imm(R3, 0));
                self.a.emit(Insn::ldx(Size::H, R4, R1, at));
                self.a.emit(Insn::mov64_imm(R5, new as i32));
                self.a.emit(Insn::stx(Size::H, R1, at, R5));
                self.delta_word(R4, R5);
                self.fix_l4(false);
                let aliases: &[Field] = match field {
                    L4Sport => &[TcpSport, UdpSport, L4Sport],
                    L4Dport => &[TcpDport, UdpDport, L4Dport],
                    TcpSport | UdpSport => &[field, L4Sport],
                    _ => &[field, L4Dport],
                };
                self.refresh_const(aliases, value);
            }
            IpTtl | Ipv4Ttl | Ipv6Hoplimit => {
                let v = value as i32 & 0xff;
                if field != Ipv6Hoplimit {
                    self.ttl_v4(|g| g.a.emit(Insn::mov64_imm(R5, v)), skip);
                }
                if field != Ipv4Ttl {
                    self.hoplimit_v6(|g| g.a.emit(Insn::mov64_imm(R5, v)), skip);
                }
            }
            IpDscp | Ipv4Dscp | Ipv6Dscp => {
                let dscp = (value as i32) & 0x3f;
                if field != Ipv6Dscp {
                    let next = self.a.label();
                    self.unless_any(bit(Header::Ipv4), next);
                    self.header_ptr(self.lay.l3_off, 0x1f, 20, next);
                    // The word at 0 holds version/IHL (low byte as loaded) and TOS (high byte).
                    self.a.emit(Insn::ldx(Size::H, R4, R1, 0));
                    self.a.emit(Insn::mov64_reg(R5, R4));
                    self.a.emit(Insn::alu64_imm(Alu::And, R5, 0x03ff));
                    self.a.emit(Insn::alu64_imm(Alu::Or, R5, dscp << 10));
                    self.a.emit(Insn::stx(Size::H, R1, 0, R5));
                    self.a.emit(Insn::mov64_imm(R3, 0));
                    self.delta_word(R4, R5);
                    self.apply_csum(R1, 10, false);
                    self.refresh_const(&[Ipv4Dscp, IpDscp], dscp as u128);
                    self.a.bind(next);
                }
                if field != Ipv4Dscp {
                    self.unless_any(bit(Header::Ipv6), skip);
                    self.header_ptr(self.lay.l3_off, 0x1f, 40, skip);
                    // Traffic class: low nibble of byte 0, high nibble of byte 1; ECN is kept.
                    self.a.emit(Insn::ldx(Size::H, R4, R1, 0));
                    self.a.emit(Insn::alu64_imm(Alu::And, R4, 0x3ff0));
                    self.a.emit(Insn::alu64_imm(
                        Alu::Or,
                        R4,
                        ((dscp >> 2) & 0x0f) | ((dscp & 0x3) << 14),
                    ));
                    self.a.emit(Insn::stx(Size::H, R1, 0, R4));
                    self.refresh_const(&[Ipv6Dscp, IpDscp], dscp as u128);
                }
            }
            _ => {}
        }
        self.a.bind(skip);
    }

    /// After a rewrite, the loaded copies of the rewritten fields take the new value, so that
    /// later actions (a `count` key, a `balance` hash) see the packet as it now is.
    fn refresh_const(&mut self, targets: &[Field], value: u128) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if !targets.contains(&f.field) {
                continue;
            }
            let slot = self.lay.slots[i];
            let v = match f.enc {
                Encoding::Raw => to_raw(value, raw_width(f.field)),
                Encoding::Host => value,
            };
            self.load_const(R0, v as u64);
            self.a.emit(Insn::stx(Size::DW, R9, slot, R0));
            if f.field.ty().bits() > 64 {
                self.load_const(R0, (v >> 64) as u64);
                self.a.emit(Insn::stx(Size::DW, R9, slot + 8, R0));
            }
        }
    }

    /// Like `refresh_const` for a host value computed at run time in `reg`.
    fn refresh_reg(&mut self, targets: &[Field], reg: Reg) {
        for (i, f) in self.p.fields.iter().enumerate() {
            if targets.contains(&f.field) {
                self.a.emit(Insn::stx(Size::DW, R9, self.lay.slots[i], reg));
            }
        }
    }

    /// Rewrites the IPv4 TTL, fixing the header checksum: `new` is emitted with the old TTL
    /// in r5 and must leave the new one there.
    fn ttl_v4(&mut self, new: impl Fn(&mut Self), after: Label) {
        let next = self.a.label();
        self.unless_any(bit(Header::Ipv4), next);
        self.header_ptr(self.lay.l3_off, 0x1f, 20, next);
        // The word at 8 holds TTL (low byte as loaded) and protocol (high byte).
        self.a.emit(Insn::ldx(Size::H, R4, R1, 8));
        self.a.emit(Insn::mov64_reg(R5, R4));
        self.a.emit(Insn::alu64_imm(Alu::And, R5, 0xff));
        new(self);
        self.refresh_reg(&[Field::Ipv4Ttl, Field::IpTtl], R5);
        self.a.emit(Insn::mov64_reg(R0, R4));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xff00));
        self.a.emit(Insn::alu64_reg(Alu::Or, R5, R0));
        self.a.emit(Insn::stx(Size::H, R1, 8, R5));
        self.a.emit(Insn::mov64_imm(R3, 0));
        self.delta_word(R4, R5);
        self.apply_csum(R1, 10, false);
        self.a.jump(Insn::ja(0), after);
        self.a.bind(next);
    }

    /// Rewrites the IPv6 hop limit to the value `new` leaves in r5 (old value in r5 on entry).
    fn hoplimit_v6(&mut self, new: impl Fn(&mut Self), after: Label) {
        self.unless_any(bit(Header::Ipv6), after);
        self.header_ptr(self.lay.l3_off, 0x1f, 40, after);
        self.a.emit(Insn::ldx(Size::B, R5, R1, 7));
        new(self);
        self.a.emit(Insn::stx(Size::B, R1, 7, R5));
        self.refresh_reg(&[Field::Ipv6Hoplimit, Field::IpTtl], R5);
    }

    /// `dec ip.ttl`: minus one, not below zero.
    fn dec_ttl(&mut self) {
        let skip = self.a.label();
        let dec = |g: &mut Self| {
            let zero = g.a.label();
            g.a.jump(Insn::jmp_imm(Jmp::Eq, R5, 0, 0), zero);
            g.a.emit(Insn::alu64_imm(Alu::Sub, R5, 1));
            g.a.bind(zero);
        };
        self.ttl_v4(dec, skip);
        self.hoplimit_v6(dec, skip);
        self.a.bind(skip);
    }

    /// Jumps to `absent` unless the header of `f` is present.
    fn require(&mut self, f: FieldId, absent: Label) {
        let field = self.p.fields[f.index()].field;
        if field.header() == Header::Pkt {
            return;
        }
        let b = if field == Field::VlanInnerId {
            INNER_VLAN_BIT
        } else {
            bit(field.header())
        };
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, b));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), absent);
    }

    /// `*(size *)(r9 + pos) = src`; on the NIC, whose vector is on the stack where the verifier
    /// refuses misaligned access, a misaligned store is split into bytes (clobbering `src`).
    fn put(&mut self, size: Size, pos: i16, src: Reg) {
        let n = size.bytes() as i16;
        if self.p.target == Target::Host || pos % n == 0 {
            self.a.emit(Insn::stx(size, R9, pos, src));
            return;
        }
        for i in 0..n {
            self.a.emit(Insn::stx(Size::B, R9, pos + i, src));
            if i + 1 < n {
                self.a.emit(Insn::alu64_imm(Alu::Rsh, src, 8));
            }
        }
    }

    fn zero(&mut self, at: i16, bytes: i16) {
        self.a.emit(Insn::mov64_imm(R0, 0));
        for o in (0..bytes).step_by(8) {
            self.put(Size::DW, at + o, R0);
        }
    }

    /// After a key part is written: the path for an absent header writes zeros instead. Packet
    /// metadata is never absent, and its path would be unreachable code, which the verifier
    /// rejects.
    fn absent_zero(&mut self, f: FieldId, pos: i16, width: i16, absent: Label, done: Label) {
        if self.p.fields[f.index()].field.header() == Header::Pkt {
            return;
        }
        self.a.jump(Insn::ja(0), done);
        self.a.bind(absent);
        self.zero(pos, width);
    }

    /// Writes the host-order value in `slot` (ANDed with `mask`) as `w` big-endian key bytes at
    /// `pos`.
    fn host_key_part(&mut self, slot: i16, w: u32, mask: Option<u128>, pos: i16) {
        let (size, bytes) = match w {
            1 => (Size::B, 1),
            2 => (Size::H, 2),
            3 | 4 => (Size::W, 4),
            _ => (Size::DW, 8),
        };
        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
        if let Some(m) = mask {
            self.load_const(R1, m as u64);
            self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
        }
        if bytes > w {
            self.a
                .emit(Insn::alu64_imm(Alu::Lsh, R0, 8 * (bytes - w) as i32));
        }
        if bytes > 1 {
            self.a.emit(Insn::to_be(R0, 8 * bytes as i32));
        }
        self.put(size, pos, R0);
    }

    /// Assembles a counter or limiter key in the key buffer; absent fields are zero bytes.
    fn build_key(&mut self, key: &[KeyPart]) {
        let mut pos = self.lay.keybuf;
        for part in key {
            let done = self.a.label();
            let absent = self.a.label();
            match part {
                KeyPart::Raw(f, w) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    for o in (0..*w as i16).step_by(8) {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + o, R0);
                    }
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::Const(bytes) => {
                    // Four bytes at a time as immediates, then the rest byte by byte.
                    let mut o = 0;
                    while o < bytes.len() {
                        let n = if bytes.len() - o >= 4 { 4 } else { 1 };
                        let mut b = [0u8; 4];
                        b[..n].copy_from_slice(&bytes[o..o + n]);
                        self.a
                            .emit(Insn::mov64_imm(R0, u32::from_le_bytes(b) as i32));
                        let size = if n == 4 { Size::W } else { Size::B };
                        self.put(size, pos + o as i16, R0);
                        o += n;
                    }
                    // Nothing is absent: no zero path.
                    let _ = absent;
                }
                KeyPart::Masked(f, w, mask) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    let raw = self.p.fields[f.index()].enc == Encoding::Raw;
                    if raw {
                        // The packet's bytes, masked word by word, stored as they are.
                        for o in (0..*w as i16).step_by(8) {
                            self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                            self.load_const(R1, (*mask >> (8 * o)) as u64);
                            self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
                            self.put(Size::DW, pos + o, R0);
                        }
                    } else {
                        // A host value, masked, then written big-endian like `Host`.
                        self.host_key_part(slot, *w, Some(*mask), pos);
                    }
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::Host(f, w) => {
                    self.require(*f, absent);
                    let slot = self.lay.slots[f.index()];
                    self.host_key_part(slot, *w, None, pos);
                    self.absent_zero(*f, pos, *w as i16, absent, done);
                }
                KeyPart::IpTagged { v4, v6 } => {
                    let not_v4 = self.a.label();
                    self.require(*v4, not_v4);
                    self.zero(pos + 1, 16);
                    self.a.emit(Insn::mov64_imm(R0, 4));
                    self.put(Size::B, pos, R0);
                    self.a
                        .emit(Insn::ldx(Size::W, R0, R9, self.lay.slots[v4.index()]));
                    self.put(Size::W, pos + 1, R0);
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(not_v4);
                    self.require(*v6, absent);
                    self.a.emit(Insn::mov64_imm(R0, 6));
                    self.put(Size::B, pos, R0);
                    let slot = self.lay.slots[v6.index()];
                    for o in [0, 8] {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + 1 + o, R0);
                    }
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(absent);
                    self.zero(pos, 17);
                }
                KeyPart::Ip { v4, v6 } => {
                    let not_v4 = self.a.label();
                    self.require(*v4, not_v4);
                    self.zero(pos, 8);
                    self.a.emit(Insn::mov64_imm(R0, 0xffff_0000_u32 as i32));
                    self.put(Size::W, pos + 8, R0);
                    self.a
                        .emit(Insn::ldx(Size::W, R0, R9, self.lay.slots[v4.index()]));
                    self.put(Size::W, pos + 12, R0);
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(not_v4);
                    self.require(*v6, absent);
                    let slot = self.lay.slots[v6.index()];
                    for o in [0, 8] {
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot + o));
                        self.put(Size::DW, pos + o, R0);
                    }
                    self.a.jump(Insn::ja(0), done);
                    self.a.bind(absent);
                    self.zero(pos, 16);
                }
            }
            self.a.bind(done);
            pos += match part {
                KeyPart::Raw(_, w) | KeyPart::Host(_, w) | KeyPart::Masked(_, w, _) => *w as i16,
                KeyPart::Const(b) => b.len() as i16,
                KeyPart::Ip { .. } => 16,
                KeyPart::IpTagged { .. } => 17,
            };
        }
    }

    /// `sample N`: about 1 in N packets (by `bpf_get_prandom_u32`) go to the ring buffer as
    /// {rule, length, first bytes}.
    fn sample(&mut self, n: u32, map: MapId, rule: u32) {
        let skip = self.a.label();
        self.a.emit(Insn::call(helper::GET_PRANDOM_U32));
        self.load_const(R1, u64::from(u32::MAX / n.max(1)));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R1, 0), skip);
        let buf = self.lay.samplebuf;
        self.a.emit(Insn::mov64_imm(R1, rule as i32));
        self.a.emit(Insn::stx(Size::W, R9, buf, R1));
        self.a.emit(Insn::ldx(Size::DW, R4, R9, self.lay.pkt_len));
        self.a.emit(Insn::stx(Size::W, R9, buf + 4, R4));
        let short = self.a.label();
        self.a
            .jump(Insn::jmp_imm(Jmp::Le, R4, SAMPLE_BYTES, 0), short);
        self.a.emit(Insn::mov64_imm(R4, SAMPLE_BYTES));
        self.a.bind(short);
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R4, 0, 0), skip);
        // Copy the frame's head with the load-bytes helper, which checks the length itself.
        self.a.emit(Insn::mov64_reg(R1, R6));
        self.a.emit(Insn::mov64_imm(R2, 0));
        self.a.emit(Insn::mov64_reg(R3, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R3, i32::from(buf) + 8));
        let load = if self.p.hook == Hook::Xdp {
            helper::XDP_LOAD_BYTES
        } else {
            helper::SKB_LOAD_BYTES
        };
        self.a.emit(Insn::call(load));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), skip);
        self.a.emit(Insn::ldx(Size::W, R3, R9, buf + 4));
        let short2 = self.a.label();
        self.a
            .jump(Insn::jmp_imm(Jmp::Le, R3, SAMPLE_BYTES, 0), short2);
        self.a.emit(Insn::mov64_imm(R3, SAMPLE_BYTES));
        self.a.bind(short2);
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, 8));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(buf)));
        self.a.emit(Insn::mov64_imm(R4, 0));
        self.a.emit(Insn::call(helper::RINGBUF_OUTPUT));
        self.a.bind(skip);
    }

    /// `balance`: FNV-1a of the key picks a Maglev slot, the slot a backend, and the
    /// destination address is rewritten to it.
    fn balance(
        &mut self,
        table: MapId,
        key: &[KeyPart],
        backends: &[(Field, u128)],
        fib_failed: Option<Label>,
    ) {
        let width = key_width(key);
        self.build_key(key);
        self.a
            .emit(Insn::alu32_imm(Alu::Mov, R0, 0x811c_9dc5_u32 as i32));
        for i in 0..width {
            self.a.emit(Insn::ldx(Size::B, R1, R9, self.lay.keybuf + i));
            self.a.emit(Insn::alu32_reg(Alu::Xor, R0, R1));
            self.a.emit(Insn::alu32_imm(Alu::Mul, R0, 0x0100_0193));
        }
        // h mod 65537 without `mod` (the NIC has none): with h = a·2^16 + b and
        // 2^16 ≡ -1 (mod 65537), h ≡ b - a, which lies in (-65536, 65536).
        debug_assert_eq!(crate::balance::MAGLEV_SLOTS, 65537);
        self.a.emit(Insn::mov64_reg(R1, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, R1, 16));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, 0xffff));
        self.a.emit(Insn::alu64_reg(Alu::Sub, R0, R1));
        let reduced = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Sge, R0, 0, 0), reduced);
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, 65537));
        self.a.bind(reduced);
        self.a.emit(Insn::stx(Size::W, R10, -16, R0));
        self.a.emit2(Insn::ld_map(R1, table.0));
        self.a.emit(Insn::mov64_reg(R2, R10));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, -16));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        let done = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), done);
        self.a.emit(Insn::ldx(Size::W, R1, R0, 0));
        self.a.emit(Insn::stx(Size::W, R10, -16, R1));
        for (i, (field, addr)) in backends.iter().enumerate() {
            let next = self.a.label();
            self.a.emit(Insn::ldx(Size::W, R1, R10, -16));
            self.a.jump(Insn::jmp_imm(Jmp::Ne, R1, i as i32, 0), next);
            if let Some(failed) = fib_failed {
                // The route is looked up before anything is rewritten, so a packet without
                // one passes exactly as it came.
                self.fib_lookup(*field, *addr, failed);
            }
            self.rewrite(*field, *addr);
            if fib_failed.is_some() {
                self.fib_macs();
            }
            self.a.jump(Insn::ja(0), done);
            self.a.bind(next);
        }
        self.a.bind(done);
    }

    /// `bpf_fib_lookup` towards `addr` (the backend; `field` says its family) from the
    /// interface the packet came in on; jumps to `failed` unless the kernel found a route and
    /// a neighbour. The parameters live in the vector's FIB area.
    fn fib_lookup(&mut self, field: Field, addr: u128, failed: Label) {
        let buf = self.lay.fibbuf;
        let v4 = field == Field::Ipv4Dst;
        self.zero(buf, 64);
        self.a.emit(Insn::mov64_imm(R0, if v4 { 2 } else { 10 })); // AF_INET, AF_INET6
        self.a.emit(Insn::stx(Size::B, R9, buf, R0));
        let ifindex = if self.p.hook == Hook::Xdp { 12 } else { 40 };
        self.a.emit(Insn::ldx(Size::W, R0, R6, ifindex));
        self.a.emit(Insn::stx(Size::W, R9, buf + 8, R0));
        // The destination in network order at offset 32.
        let width = if v4 { 4 } else { 16 };
        let bytes = addr.to_be_bytes();
        for (i, chunk) in bytes[16 - width..].chunks(4).enumerate() {
            let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.a.emit(Insn::mov64_imm(R0, w as i32));
            self.a
                .emit(Insn::stx(Size::W, R9, buf + 32 + 4 * i as i16, R0));
        }
        self.a.emit(Insn::mov64_reg(R1, R6));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(buf)));
        self.a.emit(Insn::mov64_imm(R3, 64));
        self.a.emit(Insn::mov64_imm(R4, 0));
        self.a.emit(Insn::call(helper::FIB_LOOKUP));
        self.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), failed);
    }

    /// Writes the MACs a successful FIB lookup returned (smac at 52, dmac at 58 of the
    /// parameters) into the frame's Ethernet header.
    fn fib_macs(&mut self) {
        let buf = self.lay.fibbuf;
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        let skip = self.a.label();
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a.emit(Insn::mov64_reg(R0, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R0, 14));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R2, 0), skip);
        // dmac then smac, as four-then-two-byte copies.
        for (from, to) in [(58i16, 0i16), (52, 6)] {
            self.a.emit(Insn::ldx(Size::W, R0, R9, buf + from));
            self.a.emit(Insn::stx(Size::W, R1, to, R0));
            self.a.emit(Insn::ldx(Size::H, R0, R9, buf + from + 4));
            self.a.emit(Insn::stx(Size::H, R1, to + 4, R0));
        }
        self.a.bind(skip);
    }

    /// `match TABLE`: every key field present, the key in the table; the entry's verdict is
    /// kept in the table's slot.
    fn table_match(&mut self, map: MapId, key: &[KeyPart], slot: u32, f: Label, t: Label) {
        for part in key {
            match part {
                KeyPart::Raw(fid, _) | KeyPart::Host(fid, _) | KeyPart::Masked(fid, _, _) => {
                    self.require(*fid, f)
                }
                KeyPart::Const(_) => {}
                KeyPart::Ip { .. } | KeyPart::IpTagged { .. } => {
                    self.unless_any(bit(Header::Ipv4) | bit(Header::Ipv6), f);
                }
            }
        }
        self.build_key(key);
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        // A table entry is a verdict; a merged run's entry also names its statistics slot.
        let size = if self.p.maps[map.index()].value_size >= 8 {
            Size::DW
        } else {
            Size::W
        };
        self.a.emit(Insn::ldx(size, R1, R0, 0));
        self.a.emit(Insn::stx(
            Size::DW,
            R9,
            self.lay.tables + 8 * slot as i16,
            R1,
        ));
        self.a.jump(Insn::ja(0), t);
    }

    /// `count`: add one packet and its bytes to the key's per-CPU counter.
    fn count(&mut self, map: MapId, key: &[KeyPart]) {
        self.build_key(key);
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        let new = self.a.label();
        let done = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), new);
        add_packet(
            &mut self.a,
            self.p.target == Target::Nfp,
            Len::Vector(self.lay.pkt_len),
        );
        self.a.jump(Insn::ja(0), done);
        self.a.bind(new);
        self.a.emit(Insn::mov64_imm(R1, 1));
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.valbuf, R1));
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.pkt_len));
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.valbuf + 8, R1));
        self.update(map, 1);
        self.a.bind(done);
    }

    /// `map[keybuf] = valbuf` with `flags` (0 any, 1 only if new).
    fn update(&mut self, map: MapId, flags: i32) {
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::mov64_reg(R3, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R3, i32::from(self.lay.valbuf)));
        self.a.emit(Insn::mov64_imm(R4, flags));
        self.a.emit(Insn::call(helper::MAP_UPDATE_ELEM));
    }

    /// `over`: the token bucket of `dsl::eval`, in integer nano-tokens.
    fn over(&mut self, map: MapId, key: &[KeyPart], rate: u64, burst: u64, f: Label, t: Label) {
        let cap = burst.saturating_mul(NANO);
        let cap_ns = cap.div_ceil(rate.max(1));
        self.build_key(key);
        if let Some(clock) = self.p.clock {
            // Tests: the time is whatever the harness wrote into the clock map.
            self.a.emit(Insn::mov64_imm(R1, 0));
            self.a.emit(Insn::stx(Size::W, R10, -8, R1));
            self.a.emit2(Insn::ld_map(R1, clock.0));
            self.a.emit(Insn::mov64_reg(R2, R10));
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, -8));
            self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
            let none = self.a.label();
            let have = self.a.label();
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), none);
            self.a.emit(Insn::ldx(Size::DW, R0, R0, 0));
            self.a.jump(Insn::ja(0), have);
            self.a.bind(none);
            self.a.emit(Insn::mov64_imm(R0, 0));
            self.a.bind(have);
        } else {
            self.a.emit(Insn::call(helper::KTIME_GET_NS));
        }
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.now, R0));
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        self.a
            .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        let new = self.a.label();
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), new);
        // elapsed = now - last, or 0 when another CPU refilled after our clock read.
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a.emit(Insn::ldx(Size::DW, R2, R0, 8));
        let ordered = self.a.label();
        self.a.jump(Insn::jmp_reg(Jmp::Ge, R1, R2, 0), ordered);
        self.a.emit(Insn::mov64_reg(R1, R2));
        self.a.bind(ordered);
        self.a.emit(Insn::alu64_reg(Alu::Sub, R1, R2));
        let capped = self.a.label();
        self.load_const(R3, cap_ns);
        self.a.jump(Insn::jmp_reg(Jmp::Le, R1, R3, 0), capped);
        self.a.emit(Insn::mov64_reg(R1, R3));
        self.a.bind(capped);
        self.load_const(R3, rate);
        self.a.emit(Insn::alu64_reg(Alu::Mul, R1, R3));
        self.a.emit(Insn::ldx(Size::DW, R2, R0, 0));
        self.a.emit(Insn::alu64_reg(Alu::Add, R2, R1));
        let full = self.a.label();
        self.load_const(R3, cap);
        self.a.jump(Insn::jmp_reg(Jmp::Le, R2, R3, 0), full);
        self.a.emit(Insn::mov64_reg(R2, R3));
        self.a.bind(full);
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a.emit(Insn::stx(Size::DW, R0, 8, R1));
        self.load_const(R3, NANO);
        let empty = self.a.label();
        self.a.jump(Insn::jmp_reg(Jmp::Lt, R2, R3, 0), empty);
        self.a.emit(Insn::alu64_reg(Alu::Sub, R2, R3));
        self.a.emit(Insn::stx(Size::DW, R0, 0, R2));
        self.a.jump(Insn::ja(0), f);
        self.a.bind(empty);
        self.a.emit(Insn::stx(Size::DW, R0, 0, R2));
        self.a.jump(Insn::ja(0), t);
        // A new key starts with a full bucket and takes one token from it.
        self.a.bind(new);
        self.load_const(R1, cap - NANO);
        self.a.emit(Insn::stx(Size::DW, R9, self.lay.valbuf, R1));
        self.a.emit(Insn::ldx(Size::DW, R1, R9, self.lay.now));
        self.a
            .emit(Insn::stx(Size::DW, R9, self.lay.valbuf + 8, R1));
        self.update(map, 0);
        self.a.jump(Insn::ja(0), f);
    }

    /// `payload[start..end] ==/!= bytes`.
    fn payload(&mut self, start: u16, end: u16, bytes: &[u8], negate: bool, f: Label, t: Label) {
        self.a.emit(Insn::mov64_reg(R0, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, R0, PAYLOAD_BIT));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        let (data, data_end) = if self.p.hook == Hook::Xdp {
            (0, 4)
        } else {
            (76, 80)
        };
        self.a.emit(Insn::ldx(Size::W, R1, R6, data));
        self.a.emit(Insn::ldx(Size::W, R2, R6, data_end));
        self.a
            .emit(Insn::ldx(Size::DW, R3, R9, self.lay.payload_off));
        // Payload offsets are below 16 KiB (six 2 KiB extension headers at most); the mask
        // tells the verifier so.
        self.a.emit(Insn::alu64_imm(Alu::And, R3, 0x3fff));
        self.a.emit(Insn::alu64_reg(Alu::Add, R1, R3));
        self.a.emit(Insn::mov64_reg(R3, R1));
        self.a.emit(Insn::alu64_imm(Alu::Add, R3, i32::from(end)));
        self.a.jump(Insn::jmp_reg(Jmp::Gt, R3, R2, 0), f);
        let (eq, differ) = if negate { (f, t) } else { (t, f) };
        let mut at = 0usize;
        while at < bytes.len() {
            let left = bytes.len() - at;
            let (size, n) = match left {
                8.. => (Size::DW, 8),
                4..=7 => (Size::W, 4),
                2..=3 => (Size::H, 2),
                _ => (Size::B, 1),
            };
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(&bytes[at..at + n]);
            self.a
                .emit(Insn::ldx(size, R0, R1, (usize::from(start) + at) as i16));
            self.load_const(R4, u64::from_le_bytes(le));
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R0, R4, 0), differ);
            at += n;
        }
        self.a.jump(Insn::ja(0), eq);
    }

    /// The nesting depth of a predicate whose conditions can all be computed without branches
    /// (presence, comparisons and ranges of values below 2^63 or equality of any width), or
    /// `None` when it needs branches (map lookups, limiters, payload).
    fn pure_depth(&self, p: &Pred) -> Option<usize> {
        match p {
            Pred::Const(_) => Some(0),
            Pred::Not(q) => self.pure_depth(q),
            Pred::And(v) | Pred::Or(v) => v
                .iter()
                .map(|q| self.pure_depth(q).map(|d| d + 1))
                .try_fold(0, |m, d| d.map(|d| m.max(d))),
            Pred::Cond(c) => match &self.p.conds[c.index()] {
                Cond::Present(_) => Some(0),
                Cond::Cmp { op, k, mask, field } => {
                    let wide = self.p.fields[field.index()].field.ty().bits() > 64;
                    let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                    let small = *k < (1 << 62) && mask.is_none_or(|m| m < (1 << 62));
                    (!ordered || (!wide && small)).then_some(0)
                }
                Cond::Range { hi, .. } => (*hi < (1 << 62)).then_some(0),
                _ => None,
            },
        }
    }

    /// The registers holding branch-free results by nesting level; the next one is scratch.
    const LEVELS: [Reg; 5] = [R1, R2, R3, R4, R5];

    /// `d = (d != 0)`, using r0 as scratch.
    fn normalize_bool(&mut self, d: Reg) {
        self.a.emit(Insn::mov64_reg(R0, d));
        self.a.emit(Insn::alu64_imm(Alu::Neg, R0, 0));
        self.a.emit(Insn::alu64_reg(Alu::Or, d, R0));
        self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
    }

    /// Computes `p` as 0 or 1 into `LEVELS[level]` without branches (see `pure_depth`).
    fn eval_pure(&mut self, p: &Pred, level: usize) {
        let d = Self::LEVELS[level];
        match p {
            Pred::Const(b) => self.a.emit(Insn::mov64_imm(d, i32::from(*b))),
            Pred::Not(q) => {
                self.eval_pure(q, level);
                self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
            }
            Pred::And(v) | Pred::Or(v) => {
                let and = matches!(p, Pred::And(_));
                self.a.emit(Insn::mov64_imm(d, i32::from(and)));
                for q in v {
                    self.eval_pure(q, level + 1);
                    let op = if and { Alu::And } else { Alu::Or };
                    self.a.emit(Insn::alu64_reg(op, d, Self::LEVELS[level + 1]));
                }
            }
            Pred::Cond(c) => {
                let c = self.p.conds[c.index()].clone();
                let t = Self::LEVELS[level + 1];
                let hdr = match &c {
                    Cond::Present(h) => {
                        self.presence_bool(d, bit(*h));
                        return;
                    }
                    Cond::Cmp { field, .. } | Cond::Range { field, .. } => {
                        let f = self.p.fields[field.index()].field;
                        if f == Field::VlanInnerId {
                            INNER_VLAN_BIT
                        } else {
                            bit(f.header())
                        }
                    }
                    _ => 0,
                };
                match c {
                    Cond::Cmp { field, mask, op, k } => {
                        let slot = self.lay.slots[field.index()];
                        let wide = self.p.fields[field.index()].field.ty().bits() > 64;
                        match op {
                            CmpOp::Eq | CmpOp::Ne => {
                                // x = ((v & m) ^ k) per half, or-ed: zero exactly when equal.
                                let halves = if wide { 2 } else { 1 };
                                for h in 0..halves {
                                    let reg = if h == 0 { d } else { R0 };
                                    self.a.emit(Insn::ldx(Size::DW, reg, R9, slot + 8 * h));
                                    if let Some(m) = mask {
                                        self.load_const(t, (m >> (64 * h)) as u64);
                                        self.a.emit(Insn::alu64_reg(Alu::And, reg, t));
                                    }
                                    self.load_const(t, (k >> (64 * h)) as u64);
                                    self.a.emit(Insn::alu64_reg(Alu::Xor, reg, t));
                                    if h == 1 {
                                        self.a.emit(Insn::alu64_reg(Alu::Or, d, R0));
                                    }
                                }
                                self.normalize_bool(d);
                                if op == CmpOp::Eq {
                                    self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                                }
                            }
                            _ => {
                                // Values and constants are below 2^62, so the sign bit of a
                                // difference is the comparison.
                                self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                                if let Some(m) = mask {
                                    self.load_const(t, m as u64);
                                    self.a.emit(Insn::alu64_reg(Alu::And, R0, t));
                                }
                                // v < k, v >= k, v <= k as v < k + 1, v > k as v >= k + 1.
                                let (k2, negate) = match op {
                                    CmpOp::Ge => (k, true),
                                    CmpOp::Le => (k + 1, false),
                                    CmpOp::Gt => (k + 1, true),
                                    _ => (k, false),
                                };
                                // d = (v - k2) >> 63: 1 when v < k2.
                                self.a.emit(Insn::mov64_reg(d, R0));
                                self.load_const(t, k2 as u64);
                                self.a.emit(Insn::alu64_reg(Alu::Sub, d, t));
                                self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
                                if negate {
                                    self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                                }
                            }
                        }
                    }
                    Cond::Range { field, lo, hi } => {
                        let slot = self.lay.slots[field.index()];
                        // Outside when v < lo or hi < v; each is a sign bit of a difference.
                        self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                        self.a.emit(Insn::mov64_reg(d, R0));
                        self.load_const(t, lo as u64);
                        self.a.emit(Insn::alu64_reg(Alu::Sub, d, t));
                        self.load_const(t, hi as u64);
                        self.a.emit(Insn::alu64_reg(Alu::Sub, t, R0));
                        self.a.emit(Insn::alu64_reg(Alu::Or, d, t));
                        self.a.emit(Insn::alu64_imm(Alu::Rsh, d, 63));
                        self.a.emit(Insn::alu64_imm(Alu::Xor, d, 1));
                    }
                    _ => {}
                }
                if hdr != bit(Header::Pkt) && hdr != 0 {
                    self.presence_bool(t, hdr);
                    self.a.emit(Insn::alu64_reg(Alu::And, d, t));
                }
            }
        }
    }

    /// `d = 1` when any of `bits` is set in the presence word (r8), else 0.
    fn presence_bool(&mut self, d: Reg, bits: i32) {
        self.a.emit(Insn::mov64_reg(d, R8));
        self.a.emit(Insn::alu64_imm(Alu::And, d, bits));
        self.normalize_bool(d);
    }

    /// Emits code that jumps to `target` when `p` evaluates to `when`, else falls through.
    fn pred(&mut self, p: &Pred, when: bool, target: Label) {
        match p {
            Pred::Const(b) => {
                if *b == when {
                    self.a.jump(Insn::ja(0), target);
                }
            }
            Pred::Not(q) => self.pred(q, !when, target),
            Pred::And(parts) | Pred::Or(parts) => {
                let is_and = matches!(p, Pred::And(_));
                // `and` jumps out on the first false part; `or` on the first true one.
                if is_and != when {
                    for q in parts {
                        self.pred(q, when, target);
                        if self.a.dead_here() {
                            break;
                        }
                    }
                } else {
                    let skip = self.a.label();
                    if let Some((last, init)) = parts.split_last() {
                        let mut dead = false;
                        for q in init {
                            self.pred(q, !when, skip);
                            if self.a.dead_here() {
                                dead = true;
                                break;
                            }
                        }
                        if !dead {
                            self.pred(last, when, target);
                        }
                    } else if when == is_and {
                        // An empty `and` is true, an empty `or` false.
                        self.a.jump(Insn::ja(0), target);
                    }
                    self.a.bind(skip);
                }
            }
            Pred::Cond(c) => {
                let cond = self.p.conds[c.index()].clone();
                if when {
                    let skip = self.a.label();
                    self.cond(&cond, skip, target);
                    self.a.bind(skip);
                } else {
                    let holds = self.a.label();
                    self.cond(&cond, target, holds);
                    self.a.bind(holds);
                }
            }
        }
    }

    /// Emits a condition test: jumps to `f` when false, to `t` when true (one of them is the
    /// fall-through label bound right after).
    fn cond(&mut self, c: &Cond, f: Label, t: Label) {
        match c {
            Cond::Payload {
                start,
                end,
                bytes,
                negate,
            } => {
                return self.payload(*start, *end, bytes, *negate, f, t);
            }
            Cond::Over {
                map,
                key,
                rate,
                burst,
            } => return self.over(*map, key, *rate, *burst, f, t),
            Cond::Match { map, key, slot } => return self.table_match(*map, key, *slot, f, t),
            Cond::InMapKey { key, map } => {
                for part in key {
                    if let KeyPart::Raw(fid, _)
                    | KeyPart::Host(fid, _)
                    | KeyPart::Masked(fid, _, _) = part
                    {
                        self.require(*fid, f);
                    }
                }
                self.build_key(key);
                self.a.emit2(Insn::ld_map(R1, map.0));
                self.a.emit(Insn::mov64_reg(R2, R9));
                self.a
                    .emit(Insn::alu64_imm(Alu::Add, R2, i32::from(self.lay.keybuf)));
                self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                self.a.jump(Insn::ja(0), t);
                return;
            }
            _ => {}
        }
        let hdr = match c {
            Cond::Present(h) => *h,
            Cond::Payload { .. }
            | Cond::Over { .. }
            | Cond::Match { .. }
            | Cond::InMapKey { .. } => Header::Pkt,
            Cond::Cmp { field, .. }
            | Cond::Range { field, .. }
            | Cond::InMap { field, .. }
            | Cond::InPrefixHash { field, .. } => self.p.fields[field.index()].field.header(),
        };
        let inner = matches!(c, Cond::Cmp { field, .. } | Cond::Range { field, .. } | Cond::InMap { field, .. }
            if self.p.fields[field.index()].field == Field::VlanInnerId);
        if hdr != Header::Pkt {
            // Presence: (r8 & bit) == 0 means absent, and the condition is false.
            self.a.emit(Insn::mov64_reg(R0, R8));
            self.a.emit(Insn::alu64_imm(
                Alu::And,
                R0,
                if inner { INNER_VLAN_BIT } else { bit(hdr) },
            ));
            self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        }
        match c {
            Cond::Present(_) => self.a.jump(Insn::ja(0), t),
            Cond::Cmp { field, mask, op, k } => self.cmp(*field, *mask, *op, *k, f, t),
            Cond::Range { field, lo, hi } => {
                let slot = self.lay.slots[field.index()];
                self.a.emit(Insn::ldx(Size::DW, R0, R9, slot));
                self.load_const(R1, *lo as u64);
                self.a.jump(Insn::jmp_reg(Jmp::Lt, R0, R1, 0), f);
                self.load_const(R1, *hi as u64);
                self.a.jump(Insn::jmp_reg(Jmp::Gt, R0, R1, 0), f);
                self.a.jump(Insn::ja(0), t);
            }
            Cond::InMap { field, map } => self.in_map(*field, *map, f, t),
            Cond::InPrefixHash {
                field,
                map,
                lengths,
            } => self.in_prefix_hash(*field, *map, lengths, f, t),
            Cond::Payload { .. }
            | Cond::Over { .. }
            | Cond::Match { .. }
            | Cond::InMapKey { .. } => {}
        }
    }

    fn load_const(&mut self, r: Reg, v: u64) {
        if let Ok(small) = i32::try_from(v) {
            self.a.emit(Insn::mov64_imm(r, small));
        } else {
            self.a.emit2(Insn::ld_imm64(r, v));
        }
    }

    fn cmp(&mut self, field: FieldId, mask: Option<u128>, op: CmpOp, k: u128, f: Label, t: Label) {
        let slot = self.lay.slots[field.index()];
        let wide = self.p.fields[field.index()].field.ty().bits() > 64;
        let halves: Vec<(i16, u64, Option<u64>)> = if wide {
            vec![
                (slot, k as u64, mask.map(|m| m as u64)),
                (slot + 8, (k >> 64) as u64, mask.map(|m| (m >> 64) as u64)),
            ]
        } else {
            vec![(slot, k as u64, mask.map(|m| m as u64))]
        };
        // Equality of every half: `==` holds when all are equal, `!=` when one differs.
        let (all_eq_goes, differ_goes) = match op {
            CmpOp::Eq => (t, f),
            CmpOp::Ne => (f, t),
            _ => {
                let (s, kk, m) = halves[0];
                self.a.emit(Insn::ldx(Size::DW, R0, R9, s));
                if let Some(m) = m {
                    self.load_const(R1, m);
                    self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
                }
                self.load_const(R1, kk);
                let j = match op {
                    CmpOp::Lt => Jmp::Lt,
                    CmpOp::Le => Jmp::Le,
                    CmpOp::Gt => Jmp::Gt,
                    _ => Jmp::Ge,
                };
                self.a.jump(Insn::jmp_reg(j, R0, R1, 0), t);
                self.a.jump(Insn::ja(0), f);
                return;
            }
        };
        for (s, kk, m) in halves {
            self.a.emit(Insn::ldx(Size::DW, R0, R9, s));
            if let Some(m) = m {
                self.load_const(R1, m);
                self.a.emit(Insn::alu64_reg(Alu::And, R0, R1));
            }
            self.load_const(R1, kk);
            self.a.jump(Insn::jmp_reg(Jmp::Ne, R0, R1, 0), differ_goes);
        }
        self.a.jump(Insn::ja(0), all_eq_goes);
    }

    /// Copies the field's `width` raw bytes into the prefix key, ANDed with a mask: the
    /// constant `mask` (packet byte order), or the bytes at `r1 + mask_at` when `mask` is
    /// `None`. Uses r3 and r4.
    fn masked_key(&mut self, slot: i16, width: usize, mask: Option<&[u8]>, mask_at: i16) {
        let key = self.lay.lpm_key + 4;
        let chunks: &[(i16, Size)] = match width {
            1 => &[(0, Size::B)],
            2 => &[(0, Size::H)],
            4 => &[(0, Size::W)],
            6 => &[(0, Size::W), (4, Size::H)],
            8 => &[(0, Size::DW)],
            _ => &[(0, Size::DW), (8, Size::DW)],
        };
        for &(at, size) in chunks {
            self.a.emit(Insn::ldx(size, R3, R9, slot + at));
            match mask {
                Some(m) => {
                    let n = size.bytes();
                    let mut b = [0u8; 8];
                    b[..n].copy_from_slice(&m[at as usize..at as usize + n]);
                    let word = u64::from_le_bytes(b);
                    let all = if n == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (n * 8)) - 1
                    };
                    if word == 0 {
                        self.a.emit(Insn::mov64_imm(R3, 0));
                    } else if word != all {
                        self.load_const(R4, word);
                        self.a.emit(Insn::alu64_reg(Alu::And, R3, R4));
                    }
                }
                None => {
                    self.a.emit(Insn::ldx(size, R4, R1, mask_at + at));
                    self.a.emit(Insn::alu64_reg(Alu::And, R3, R4));
                }
            }
            self.a.emit(Insn::stx(size, R9, key + at, R3));
        }
    }

    /// Probes a prefix hash once per length: `{length, field & mask}` is looked up, and the
    /// first hit makes the condition true. A static set's lengths and masks are constants; a
    /// dynamic set's come from its length table, whose pointer is kept on the stack across
    /// the lookups (helper calls clobber r1–r5).
    fn in_prefix_hash(
        &mut self,
        field: FieldId,
        map: MapId,
        lengths: &Lengths,
        f: Label,
        t: Label,
    ) {
        let slot = self.lay.slots[field.index()];
        let width = self.p.fields[field.index()].field.key_width();
        let key = self.lay.lpm_key;
        let probe = |g: &mut Self| {
            g.a.emit2(Insn::ld_map(R1, map.0));
            g.a.emit(Insn::mov64_reg(R2, R9));
            g.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
            g.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
            g.a.jump(Insn::jmp_imm(Jmp::Ne, R0, 0, 0), t);
        };
        match lengths {
            Lengths::Static(ls) => {
                for &l in ls {
                    let mask = prefix::host_mask(l, width).to_be_bytes();
                    self.a.emit(Insn::mov64_imm(R3, i32::from(l)));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, Some(&mask[16 - width..]), 0);
                    probe(self);
                }
            }
            Lengths::Table(table) => {
                self.a.emit(Insn::mov64_imm(R1, 0));
                self.a.emit(Insn::stx(Size::W, R10, -4, R1));
                self.a.emit2(Insn::ld_map(R1, table.0));
                self.a.emit(Insn::mov64_reg(R2, R10));
                self.a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
                self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                self.a.emit(Insn::stx(Size::DW, R10, LENGTHS_PTR, R0));
                let stride = prefix::table_stride(width) as i16;
                for i in 0..prefix::table_slots(width) as i16 {
                    self.a.emit(Insn::ldx(Size::DW, R1, R10, LENGTHS_PTR));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.jump(Insn::jmp_imm(Jmp::Le, R3, i32::from(i), 0), f);
                    let at = 8 + i * stride;
                    self.a.emit(Insn::ldx(Size::W, R3, R1, at));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, None, at + 8);
                    probe(self);
                }
            }
            Lengths::Entries(table) => {
                // Entry 0 holds the count; entry i + 1 slot i (length, then the mask). Keys go
                // through the stack with `stx` (the NIC refuses store-immediate).
                let lookup = |g: &mut Self, entry: i32| {
                    g.a.emit(Insn::mov64_imm(R1, entry));
                    g.a.emit(Insn::stx(Size::W, R10, -4, R1));
                    g.a.emit2(Insn::ld_map(R1, table.0));
                    g.a.emit(Insn::mov64_reg(R2, R10));
                    g.a.emit(Insn::alu64_imm(Alu::Add, R2, -4));
                    g.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
                    g.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
                };
                lookup(self, 0);
                self.a.emit(Insn::stx(Size::DW, R10, LENGTHS_PTR, R0));
                for i in 0..prefix::table_slots(width) as i32 {
                    self.a.emit(Insn::ldx(Size::DW, R1, R10, LENGTHS_PTR));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.jump(Insn::jmp_imm(Jmp::Le, R3, i, 0), f);
                    lookup(self, i + 1);
                    self.a.emit(Insn::mov64_reg(R1, R0));
                    self.a.emit(Insn::ldx(Size::W, R3, R1, 0));
                    self.a.emit(Insn::stx(Size::W, R9, key, R3));
                    self.masked_key(slot, width, None, 8);
                    probe(self);
                }
            }
        }
        self.a.jump(Insn::ja(0), f);
    }

    fn in_map(&mut self, field: FieldId, map: MapId, f: Label, t: Label) {
        let slot = self.lay.slots[field.index()];
        let m = &self.p.maps[map.index()];
        self.a.emit2(Insn::ld_map(R1, map.0));
        self.a.emit(Insn::mov64_reg(R2, R9));
        if m.purpose == MapPurpose::PrefixSet {
            // Assemble {prefix length = full width, address} in the LPM key area.
            let key = self.lay.lpm_key;
            let width = m.key_size - 4;
            self.a.emit(Insn::mov64_imm(R3, (width * 8) as i32));
            self.a.emit(Insn::stx(Size::W, R9, key, R3));
            for w in (0..width as i16).step_by(4) {
                self.a.emit(Insn::ldx(Size::W, R3, R9, slot + w));
                self.a.emit(Insn::stx(Size::W, R9, key + 4 + w, R3));
            }
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(key)));
        } else {
            self.a.emit(Insn::alu64_imm(Alu::Add, R2, i32::from(slot)));
        }
        self.a.emit(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.a.jump(Insn::jmp_imm(Jmp::Eq, R0, 0, 0), f);
        self.a.jump(Insn::ja(0), t);
    }
}
