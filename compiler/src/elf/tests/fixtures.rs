//! Objects the tests write: builders for programs, maps and objects, and three fixed objects
//! (an XDP pass, a per-CPU counter, two classifiers over four map kinds) with their sources.

use crate::elf::*;
use nfcc_bpf::insn::{helper, Alu, Jmp, Size, R0, R1, R10, R2, R3, R4};

pub(super) fn prog(
    name: &str,
    section: &str,
    code: &[&[Insn]],
    line_info: &[(u32, u32, u32)],
) -> ProgramDef {
    ProgramDef {
        name: name.into(),
        section: section.into(),
        insns: code.iter().flat_map(|c| c.iter().copied()).collect(),
        line_info: line_info
            .iter()
            .map(|&(insn, line, col)| LineInfo { insn, line, col })
            .collect(),
    }
}

pub(super) fn map(
    name: &str,
    kind: MapKind,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> MapDef {
    MapDef {
        name: name.into(),
        kind,
        key_size,
        value_size,
        max_entries,
        flags,
    }
}

pub(super) fn object(maps: Vec<MapDef>, programs: Vec<ProgramDef>, source: &str) -> ObjectDef {
    ObjectDef {
        license: "GPL".into(),
        maps,
        programs,
        source_name: "test.nf".into(),
        source: source.into(),
        notes: Vec::new(),
    }
}

/// `r0 = 2; exit`: XDP_PASS.
pub(super) fn xdp_pass() -> ObjectDef {
    object(
        Vec::new(),
        vec![prog(
            "xdp_pass",
            "xdp",
            &[&[Insn::mov64_imm(R0, 2), Insn::exit()]],
            &[],
        )],
        "",
    )
}

pub(super) const COUNTER_SRC: &str =
    "# counts every packet\ncounter hits per_cpu\n\nrule all { count hits; pass }\n";

/// A per-CPU counter: look up key 0, add 1 to the value if found, pass.
pub(super) fn counter() -> ObjectDef {
    let code: &[&[Insn]] = &[
        &[Insn::mov64_imm(R1, 0), Insn::stx(Size::W, R10, -4, R1)],
        &[Insn::mov64_reg(R2, R10), Insn::alu64_imm(Alu::Add, R2, -4)],
        &Insn::ld_map(R1, 0),
        &[
            Insn::call(helper::MAP_LOOKUP_ELEM),
            Insn::jmp_imm(Jmp::Eq, R0, 0, 3),
        ],
        &[
            Insn::ldx(Size::DW, R1, R0, 0),
            Insn::alu64_imm(Alu::Add, R1, 1),
            Insn::stx(Size::DW, R0, 0, R1),
        ],
        &[Insn::mov64_imm(R0, 2), Insn::exit()],
    ];
    object(
        vec![map("hits", MapKind::PercpuArray, 4, 16, 64, 0)],
        vec![prog(
            "count_all",
            "xdp",
            code,
            &[(0, 4, 1), (4, 4, 12), (8, 4, 12), (11, 4, 24)],
        )],
        COUNTER_SRC,
    )
}

pub(super) const FILTER_SRC: &str = "table flows: hash(u32 -> u64, 1024)\n\
        set blocklist: lpm(ip4, 256)\n\
        table recent: lru(u32 -> u64, 4096)\n\
        log events: ringbuf(256 KiB)\n\
        rule block { ip.src in blocklist => drop }\n\
        rule seen { flows[ip.src]; recent[ip.src] }\n\
        rule report { log events }\n";

/// Two classifier programs in one section over a hash, an LPM trie, an LRU hash and a
/// ring buffer.
pub(super) fn filter() -> ObjectDef {
    let ingress: &[&[Insn]] = &[
        // key = { prefixlen 32, addr 10.0.0.1 } at r10-8.
        &[
            Insn::st(Size::W, R10, -8, 32),
            Insn::st(Size::W, R10, -4, 0x0100_000a),
        ],
        &[Insn::mov64_reg(R2, R10), Insn::alu64_imm(Alu::Add, R2, -8)],
        &Insn::ld_map(R1, 1),
        &[
            Insn::call(helper::MAP_LOOKUP_ELEM),
            Insn::mov64_imm(R3, 2),
            Insn::jmp_imm(Jmp::Ne, R0, 0, 11),
        ],
        &[Insn::mov64_reg(R2, R10), Insn::alu64_imm(Alu::Add, R2, -4)],
        &Insn::ld_map(R1, 0),
        &[Insn::call(helper::MAP_LOOKUP_ELEM)],
        &[Insn::mov64_reg(R2, R10), Insn::alu64_imm(Alu::Add, R2, -4)],
        &Insn::ld_map(R1, 2),
        &[Insn::call(helper::MAP_LOOKUP_ELEM), Insn::mov64_imm(R3, 0)],
        &[Insn::mov64_reg(R0, R3), Insn::exit()],
    ];
    let egress: &[&[Insn]] = &[
        &[Insn::st(Size::DW, R10, -8, 7)],
        &Insn::ld_map(R1, 3),
        &[Insn::mov64_reg(R2, R10), Insn::alu64_imm(Alu::Add, R2, -8)],
        &[
            Insn::mov64_imm(R3, 8),
            Insn::mov64_imm(R4, 0),
            Insn::call(helper::RINGBUF_OUTPUT),
        ],
        &[Insn::mov64_imm(R0, 0), Insn::exit()],
    ];
    object(
        vec![
            map("flows", MapKind::Hash, 4, 8, 1024, 0),
            map("blocklist", MapKind::LpmTrie, 8, 1, 256, 1),
            map("recent", MapKind::LruHash, 4, 8, 4096, 0),
            map("events", MapKind::RingBuf, 0, 0, 4096 * 64, 0),
        ],
        vec![
            prog(
                "tc_ingress",
                "classifier",
                ingress,
                &[(0, 5, 1), (2, 5, 14), (8, 6, 12), (16, 6, 26)],
            ),
            prog("tc_egress", "classifier", egress, &[(0, 7, 1), (1, 7, 14)]),
        ],
        FILTER_SRC,
    )
}
