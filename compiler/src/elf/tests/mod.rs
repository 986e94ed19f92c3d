//! The ELF writer's tests: fixed objects checked against an independent reader's summary and
//! loaded by the standard tools, libbpf and aya; objects the writer must refuse; random objects
//! that must never make it panic; and the layout compared with clang's for the same program.

mod fixtures;
mod loaders;

use super::*;
use crate::test_support::{find_tool, skip};
use fixtures::*;
use loaders::*;
use nfcc_bpf::insn::{R0, R1, R2, R3};
use object::read::elf::ElfFile64;
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[test]
fn minimal_xdp_program() {
    check(
        "pass",
        &xdp_pass(),
        "
xdp PROGBITS AX size=16 align=8
license PROGBITS WA size=4 align=1
.BTF PROGBITS  size=133 align=4
.BTF.ext PROGBITS  size=80 align=4
.symtab SYMTAB  size=96 align=8
.strtab STRTAB  size=27 align=1
.shstrtab STRTAB  size=53 align=1
sym test.nf FILE LOCAL -+0x0 size=0
sym xdp_pass FUNC GLOBAL xdp+0x0 size=16
sym _license OBJECT GLOBAL license+0x0 size=4",
    );
}

#[test]
fn xdp_program_with_a_map_lookup_and_line_info() {
    check(
        "counter",
        &counter(),
        "
xdp PROGBITS AX size=104 align=8
  rel 0x20 type=1 hits
.relxdp REL I size=16 align=8
.maps PROGBITS WA size=32 align=8
license PROGBITS WA size=4 align=1
.BTF PROGBITS  size=492 align=4
.BTF.ext PROGBITS  size=128 align=4
.symtab SYMTAB  size=120 align=8
.strtab STRTAB  size=33 align=1
.shstrtab STRTAB  size=67 align=1
sym test.nf FILE LOCAL -+0x0 size=0
sym count_all FUNC GLOBAL xdp+0x0 size=104
sym hits OBJECT GLOBAL .maps+0x0 size=32
sym _license OBJECT GLOBAL license+0x0 size=4",
    );
}

#[test]
fn two_classifiers_over_four_map_kinds() {
    check(
        "filter",
        &filter(),
        "
classifier PROGBITS AX size=256 align=8
  rel 0x20 type=1 blocklist
  rel 0x58 type=1 flows
  rel 0x80 type=1 recent
  rel 0xb8 type=1 events
.relclassifier REL I size=64 align=8
.maps PROGBITS WA size=120 align=8
license PROGBITS WA size=4 align=1
.BTF PROGBITS  size=1112 align=4
.BTF.ext PROGBITS  size=168 align=4
.symtab SYMTAB  size=216 align=8
.strtab STRTAB  size=69 align=1
.shstrtab STRTAB  size=81 align=1
sym test.nf FILE LOCAL -+0x0 size=0
sym tc_ingress FUNC GLOBAL classifier+0x0 size=176
sym tc_egress FUNC GLOBAL classifier+0xb0 size=80
sym flows OBJECT GLOBAL .maps+0x0 size=32
sym blocklist OBJECT GLOBAL .maps+0x20 size=40
sym recent OBJECT GLOBAL .maps+0x48 size=32
sym events OBJECT GLOBAL .maps+0x68 size=16
sym _license OBJECT GLOBAL license+0x0 size=4",
    );
}

#[test]
fn xdp_and_tc_sections_in_one_object() {
    let obj = object(
        vec![map("drops", MapKind::Array, 4, 8, 1, 0)],
        vec![
            prog(
                "tc_pass",
                "tc",
                &[&[Insn::mov64_imm(R0, 0), Insn::exit()]],
                &[(0, 1, 1)],
            ),
            prog(
                "xdp_drop",
                "xdp",
                &[
                    &[Insn::mov64_imm(R0, 1)],
                    &Insn::ld_map(R1, 0),
                    &[Insn::exit()],
                ],
                &[(0, 2, 1), (1, 2, 8)],
            ),
        ],
        "rule t { pass }\nrule x { drop }\n",
    );
    check(
        "mixed",
        &obj,
        "
tc PROGBITS AX size=16 align=8
xdp PROGBITS AX size=32 align=8
  rel 0x8 type=1 drops
.relxdp REL I size=16 align=8
.maps PROGBITS WA size=32 align=8
license PROGBITS WA size=4 align=1
.BTF PROGBITS  size=571 align=4
.BTF.ext PROGBITS  size=136 align=4
.symtab SYMTAB  size=144 align=8
.strtab STRTAB  size=41 align=1
.shstrtab STRTAB  size=70 align=1
sym test.nf FILE LOCAL -+0x0 size=0
sym tc_pass FUNC GLOBAL tc+0x0 size=16
sym xdp_drop FUNC GLOBAL xdp+0x0 size=32
sym drops OBJECT GLOBAL .maps+0x0 size=32
sym _license OBJECT GLOBAL license+0x0 size=4",
    );
}

#[test]
fn impossible_objects_are_errors() {
    let mut o = xdp_pass();
    o.programs.clear();
    check("none", &o, "error: the object has no programs");

    let mut o = counter();
    o.maps.push(map("more", MapKind::Hash, 4, 4, 8, 0));
    o.programs[0].insns[5].imm = 1; // The high half of map index 0 becomes 1 << 32.
    check(
            "index",
            &o,
            "error: program \"count_all\": instruction 4 refers to map 4294967296, but the object has 2 maps",
        );
    let mut o = counter();
    o.programs[0].insns[4].imm = 1;
    check(
        "index1",
        &o,
        "error: program \"count_all\": instruction 4 refers to map 1, but the object has 1 maps",
    );
    let mut o = counter();
    o.programs[0].insns[4].src = 2;
    check(
        "pseudo",
        &o,
        "error: program \"count_all\": instruction 4 is a ld_imm64 with unsupported source 2 \
             (only constants and map references can be written)",
    );
    let mut o = counter();
    o.programs[0].insns.truncate(5);
    o.programs[0].line_info.truncate(1);
    check(
        "truncated",
        &o,
        "error: program \"count_all\": instruction 4 starts a ld_imm64 but has no second slot",
    );
    let mut o = xdp_pass();
    o.programs[0].insns.clear();
    check(
        "empty",
        &o,
        "error: program \"xdp_pass\" has no instructions",
    );
    let mut o = xdp_pass();
    o.programs[0].section = "kprobe/sys_open".into();
    check(
        "section",
        &o,
        "error: program \"xdp_pass\": unsupported section \"kprobe/sys_open\" \
             (expected xdp, classifier, tc, tcx/ingress or tcx/egress)",
    );
    let mut o = xdp_pass();
    o.license = "GPL\0BSD".into();
    check(
        "license",
        &o,
        "error: the license must not contain a nul byte",
    );

    // Names.
    let mut o = xdp_pass();
    o.programs[0].name = "9lives".into();
    check(
        "name",
        &o,
        "error: program name \"9lives\" is not a c identifier",
    );
    let mut o = counter();
    o.maps[0].name = "hit-count".into();
    check(
        "mapname",
        &o,
        "error: map name \"hit-count\" is not a c identifier",
    );
    let mut o = counter();
    o.maps[0].name = "_license".into();
    check("dup", &o, "error: duplicate symbol name \"_license\"");
    let mut o = counter();
    o.maps[0].name = "count_all".into();
    check("dup2", &o, "error: duplicate symbol name \"count_all\"");

    // Map definitions.
    let bad_map = |m: MapDef, expect: &str| {
        let mut o = counter();
        o.maps[0] = m;
        check("map", &o, expect);
    };
    bad_map(
            map("rb", MapKind::RingBuf, 4, 8, 4096, 0),
            "error: map \"rb\": ring buffers have no key or value (key_size 4 and value_size 8 must be 0)",
        );
    bad_map(
            map("rb", MapKind::RingBuf, 0, 0, 4096 * 3, 0),
            "error: map \"rb\": ring buffer size 12288 is not a power-of-two multiple of the 4096-byte page size",
        );
    bad_map(
            map("rb", MapKind::RingBuf, 0, 0, 2048, 0),
            "error: map \"rb\": ring buffer size 2048 is not a power-of-two multiple of the 4096-byte page size",
        );
    bad_map(
        map("lpm", MapKind::LpmTrie, 8, 1, 16, 0),
        "error: map \"lpm\": lpm tries need map_flags to include BPF_F_NO_PREALLOC (1)",
    );
    bad_map(
            map("lpm", MapKind::LpmTrie, 4, 1, 16, 1),
            "error: map \"lpm\": lpm trie keys are a 4-byte prefix length and 1 to 256 data bytes (key_size is 4)",
        );
    bad_map(
        map("a", MapKind::Array, 8, 8, 16, 0),
        "error: map \"a\": array keys are 4 bytes (key_size is 8)",
    );
    bad_map(
        map("h", MapKind::Hash, 4, 8, 0, 0),
        "error: map \"h\": max_entries must be at least 1",
    );
    bad_map(
        map("h", MapKind::LruHash, 0, 8, 1, 0),
        "error: map \"h\": lru_hash keys must not be empty (key_size is 0)",
    );
    bad_map(
        map("h", MapKind::PercpuHash, 4, 0, 1, 0),
        "error: map \"h\": percpu_hash values must not be empty (value_size is 0)",
    );
    bad_map(
        map("d", MapKind::DevMap, 4, 2, 1, 0),
        "error: map \"d\": devmap keys are 4 bytes and values 4 or 8 (key_size 4, value_size 2)",
    );
    bad_map(
            map("h", MapKind::Hash, 4, 8, 1 << 30, 0),
            "error: map \"h\": max_entries 1073741824 is too large to encode in btf (at most 1073741823)",
        );

    // Line info.
    let bad_lines = |lines: &[(u32, u32, u32)], expect: &str| {
        let mut o = counter();
        o.programs[0].line_info = lines
            .iter()
            .map(|&(insn, line, col)| LineInfo { insn, line, col })
            .collect();
        check("lines", &o, expect);
    };
    bad_lines(
        &[(1, 4, 1)],
        "error: program \"count_all\": line info record 0: the first record is at instruction 1, \
             but the kernel needs one at instruction 0",
    );
    bad_lines(
            &[(0, 4, 1), (6, 4, 1), (6, 4, 2)],
            "error: program \"count_all\": line info record 2: instruction 6 does not follow the previous \
             record's 6 (records must be in strictly increasing instruction order)",
        );
    bad_lines(
            &[(0, 4, 1), (5, 4, 1)],
            "error: program \"count_all\": line info record 1: instruction 5 is the second half of a ld_imm64",
        );
    bad_lines(
        &[(0, 4, 1), (13, 4, 1)],
        "error: program \"count_all\": line info record 1: instruction 13 is past the end of the \
             program (13 instructions)",
    );
    bad_lines(
        &[(0, 5, 1)],
        "error: program \"count_all\": line info record 0: line 5 is not in \"test.nf\" (4 lines)",
    );
    bad_lines(
        &[(0, 0, 1)],
        "error: program \"count_all\": line info record 0: line 0 is not in \"test.nf\" (4 lines)",
    );
}

/// Random objects never make the writer panic, and every object it accepts parses as ELF
/// with one global symbol per program and map (plus `_license`). Objects start valid
/// (maps consistent with their kind, map references in range, ordered line records);
/// a third of them then get random corruptions of every kind the writer checks.
#[test]
fn random_objects_never_panic() {
    /// xorshift64: a fixed sequence, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let odd = [0, 3, 1 << 30, u32::MAX];
    let mut accepted = 0;
    for _ in 0..4000 {
        let corrupt = rng.below(3) == 0;
        macro_rules! bad {
            ($n:expr) => {
                corrupt && rng.below($n) == 0
            };
        }
        let mut maps = Vec::new();
        for i in 0..rng.below(4) {
            let (kind, key, value, max, flags) = match rng.below(7) {
                0 => (MapKind::Hash, 4, 8, 1024, 0),
                1 => (MapKind::LruHash, 8, 16, 64, 0),
                2 => (MapKind::Array, 4, 8, 1, 0),
                3 => (MapKind::PercpuArray, 4, 16, 64, 0),
                4 => (MapKind::LpmTrie, 20, 1, 16, 1),
                5 => (MapKind::DevMap, 4, 8, 8, 0),
                _ => (MapKind::RingBuf, 0, 0, 4096 << rng.below(4), 0),
            };
            maps.push(map(&format!("m{i}"), kind, key, value, max, flags));
        }
        let mut programs = Vec::new();
        for i in 0..1 + rng.below(3) {
            let mut insns = Vec::new();
            let mut lines = Vec::new();
            for _ in 0..rng.below(8) {
                if rng.below(3) == 0 {
                    lines.push(LineInfo {
                        insn: insns.len() as u32,
                        line: 1 + rng.below(3) as u32,
                        col: rng.below(1200) as u32,
                    });
                }
                match rng.below(4) {
                    0 if !maps.is_empty() => {
                        insns.extend(Insn::ld_map(R1, rng.below(maps.len()) as u32))
                    }
                    1 => insns.extend(Insn::ld_imm64(R2, rng.below(usize::MAX) as u64)),
                    _ => insns.push(Insn::mov64_imm(R0, 2)),
                }
            }
            insns.push(Insn::exit());
            if lines.first().is_some_and(|l| l.insn != 0) {
                lines.insert(
                    0,
                    LineInfo {
                        insn: 0,
                        line: 1,
                        col: 1,
                    },
                );
            }
            programs.push(prog(
                &format!("p{i}"),
                ["xdp", "classifier", "tc", "tcx/ingress"][rng.below(4)],
                &[&insns],
                &[],
            ));
            programs[i].line_info = lines;
        }
        let mut obj = object(maps, programs, "a\nb\r\nc");

        // Corruptions: each applies to a corrupt object with some chance.
        if bad!(8) {
            obj.programs.clear();
        }
        if bad!(8) {
            obj.license = "a\0b".into();
        }
        if bad!(8) {
            obj.source_name = ["", "n\0l"][rng.below(2)].into();
        }
        if bad!(8) {
            obj.source = ["", "\0\n\0"][rng.below(2)].into();
        }
        for m in &mut obj.maps {
            if bad!(6) {
                m.name = ["", "9z", "a-b", "_license", "p0", "m0"][rng.below(6)].into();
            }
            if bad!(6) {
                m.key_size = odd[rng.below(4)];
            }
            if bad!(6) {
                m.value_size = odd[rng.below(4)];
            }
            if bad!(6) {
                m.max_entries = odd[rng.below(4)];
            }
            if bad!(6) {
                m.flags = odd[rng.below(4)];
            }
        }
        let nmaps = obj.maps.len();
        for p in &mut obj.programs {
            if bad!(8) {
                p.name = ["", "9z", "_license", "m0", "p0"][rng.below(5)].into();
            }
            if bad!(8) {
                p.section = ["", "kprobe/x", "xdp/"][rng.below(3)].into();
            }
            if bad!(8) {
                p.insns.truncate(rng.below(p.insns.len() + 1));
            }
            if bad!(8) {
                let at = rng.below(p.insns.len().max(1));
                if let Some(i) = p.insns.get_mut(at) {
                    *i = Insn::decode((rng.below(usize::MAX) as u64).to_le_bytes());
                }
            }
            if bad!(8) {
                p.insns
                    .extend(Insn::ld_map(R1, (nmaps + rng.below(3)) as u32));
            }
            if bad!(8) {
                let mut l = Insn::ld_imm64(R3, 7);
                l[0].src = rng.below(16) as u8;
                p.insns.extend(l);
            }
            for l in &mut p.line_info {
                if bad!(10) {
                    *l = LineInfo {
                        insn: [0, 1, 5, u32::MAX][rng.below(4)],
                        line: [0, 4, u32::MAX][rng.below(3)],
                        col: u32::MAX,
                    };
                }
            }
        }

        match write_object(&obj) {
            Ok(bytes) => {
                accepted += 1;
                let elf = ElfFile64::<LE>::parse(&*bytes).expect("accepted objects parse");
                let globals = elf.symbols().filter(|s| s.is_global()).count();
                assert_eq!(globals, obj.programs.len() + obj.maps.len() + 1, "{obj:?}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        accepted > 2000,
        "only {accepted} of 4000 random objects were accepted"
    );
}

/// Compiles the C equivalent of `counter()` with clang, rebuilds the same instructions
/// through the writer, and compares the two objects as llvm-readelf and bpftool see them:
/// the same sections, global symbols, relocations, code bytes and map/function BTF. Only
/// clang's DWARF sections (and their relocations, the empty `.text` and `.llvm_addrsig`)
/// and our separate `.shstrtab` are allowed to differ.
#[test]
fn layout_matches_clang() {
    const C: &str = r#"#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
struct xdp_md;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
struct {
    __uint(type, 6);
    __uint(key_size, 4);
    __uint(value_size, 16);
    __uint(max_entries, 64);
} hits SEC(".maps");
SEC("xdp") int count_all(struct xdp_md *ctx)
{
    unsigned int key = 0;
    unsigned long long *v = bpf_map_lookup_elem(&hits, &key);
    if (v)
        *v += 1;
    return 2;
}
char _license[] SEC("license") = "GPL";
"#;
    let (Some(clang), Some(readelf), Some(bpftool)) = (
        find_tool("clang"),
        find_tool("llvm-readelf"),
        find_tool("bpftool"),
    ) else {
        return skip("clang, llvm-readelf or bpftool not found");
    };
    let (c_guard, clang_guard, ours_guard) = (
        temp_file("clang.c"),
        temp_file("clang.o"),
        temp_file("ours.o"),
    );
    let (c_file, clang_obj, ours) = (&c_guard.0, &clang_guard.0, &ours_guard.0);
    std::fs::write(c_file, C).expect("write C source");
    let out = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg(c_file)
        .arg("-o")
        .arg(clang_obj)
        .output()
        .expect("clang runs");
    assert!(
        out.status.success(),
        "clang fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clang_bytes = std::fs::read(clang_obj).expect("read clang object");

    // Rebuild clang's program: its instructions, with each relocated `ld_imm64` turned
    // back into a map reference.
    let elf = ElfFile64::<LE>::parse(&*clang_bytes).expect("parse clang object");
    let text = elf
        .section_by_name("xdp")
        .expect("clang emits an xdp section");
    let code = text.data().expect("xdp bytes");
    let mut insns: Vec<Insn> = code
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Insn::decode(b)
        })
        .collect();
    let mut obj = counter();
    for (off, rel) in text.relocations() {
        let RelocationTarget::Symbol(i) = rel.target() else {
            panic!("symbol relocation")
        };
        let name = elf
            .symbol_by_index(i)
            .and_then(|s| s.name())
            .expect("symbol name");
        let index = obj
            .maps
            .iter()
            .position(|m| m.name == name)
            .expect("relocation names a map");
        let ins = &mut insns[off as usize / 8];
        ins.src = PSEUDO_MAP_FD;
        ins.imm = index as i32;
    }
    obj.programs[0].insns = insns;
    obj.programs[0].line_info = vec![LineInfo {
        insn: 0,
        line: 1,
        col: 1,
    }];
    obj.source = C.into();
    let bytes = write_object(&obj).expect("the writer takes clang's program");
    verify("clang-equivalent", &obj, &bytes);
    let ours_elf = ElfFile64::<LE>::parse(&*bytes).expect("parse our object");
    assert_eq!(
        ours_elf.section_by_name("xdp").and_then(|s| s.data().ok()),
        Some(code),
        "the code bytes equal clang's (map references zeroed as clang zeroes them)"
    );
    std::fs::write(ours, &bytes).expect("write our object");

    let clang_only = |name: &str| {
        name.starts_with(".debug")
            || name.starts_with(".rel.debug")
            || name.starts_with(".rel.BTF")
            || name == ".text"
            || name == ".llvm_addrsig"
    };
    let theirs = readelf_layout(&readelf, clang_obj);
    let mine = readelf_layout(&readelf, ours);
    let theirs_sections: Vec<&String> = theirs
        .sections
        .iter()
        .filter(|s| !clang_only(s.split(' ').next().unwrap_or("")))
        .collect();
    let mine_sections: Vec<&String> = mine
        .sections
        .iter()
        .filter(|s| !s.starts_with(".shstrtab "))
        .collect();
    assert_eq!(
        mine_sections, theirs_sections,
        "sections (name type flags align)"
    );
    assert_eq!(mine.symbols, theirs.symbols, "global and file symbols");
    assert_eq!(mine.relocs, theirs.relocs, "relocations of code sections");
    assert_eq!(
        btf_shape(&run(&bpftool, &["btf", "dump", "file"], ours)),
        btf_shape(&run(&bpftool, &["btf", "dump", "file"], clang_obj)),
        "map and function btf"
    );
}

/// What llvm-readelf says about an object, as comparable lines.
#[derive(Debug)]
struct Layout {
    sections: std::collections::BTreeSet<String>,
    symbols: std::collections::BTreeSet<String>,
    relocs: std::collections::BTreeSet<String>,
}

fn readelf_layout(readelf: &Path, file: &Path) -> Layout {
    let text = run(readelf, &["-S", "-s", "-r", "--wide"], file);
    let mut names = HashMap::new();
    let mut layout = Layout {
        sections: Default::default(),
        symbols: Default::default(),
        relocs: Default::default(),
    };
    let mut rel_section: Option<String> = None;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.trim_start().strip_prefix('[') {
            // `[Nr] Name Type Address Off Size ES Flg Lk Inf Al`, Flg possibly empty.
            let Some((nr, rest)) = rest.split_once(']') else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() < 9 || f[0] == "Name" {
                continue;
            }
            let flags = if f.len() == 10 { f[6] } else { "" };
            names.insert(nr.trim().to_owned(), f[0].to_owned());
            layout
                .sections
                .insert(format!("{} {} {flags} {}", f[0], f[1], f[f.len() - 1]));
        } else if line.starts_with("Relocation section") {
            rel_section = line.split('\'').nth(1).map(str::to_owned);
        } else if t.len() >= 5 && t[2].starts_with("R_BPF") {
            let sec = rel_section.clone().unwrap_or_default();
            if !sec.starts_with(".rel.") {
                layout
                    .relocs
                    .insert(format!("{sec} {} {} {}", t[0], t[2], t[4]));
            }
        } else if t.len() >= 7
            && t[0].ends_with(':')
            && t[0].trim_end_matches(':').parse::<u32>().is_ok()
        {
            // `Num: Value Size Type Bind Vis Ndx Name`.
            let (kind, bind) = (t[3], t[4]);
            if bind == "GLOBAL" || kind == "FILE" {
                let sec = names.get(t[6]).cloned().unwrap_or_else(|| t[6].to_owned());
                let name = if kind == "FILE" {
                    "<file>"
                } else {
                    t.get(7).copied().unwrap_or("")
                };
                layout.symbols.insert(format!(
                    "{name} {kind} {bind} {} {sec} {} {}",
                    t[5], t[1], t[2]
                ));
            }
        }
    }
    layout
}

/// The maps' struct members (name, bit offset, N of `int (*)[N]`) and the functions'
/// prototypes, from a `bpftool btf dump` listing; type ids and DATASEC sizes (which clang
/// leaves to libbpf) are left out.
fn btf_shape(dump: &str) -> Vec<String> {
    struct Ty<'a> {
        kind: &'a str,
        name: &'a str,
        attrs: HashMap<&'a str, &'a str>,
        children: Vec<Vec<&'a str>>,
    }
    let mut types: HashMap<&str, Ty<'_>> = HashMap::new();
    let mut order = Vec::new();
    let mut last = None;
    for line in dump.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let Some((id, rest)) = rest.split_once("] ") else {
                continue;
            };
            let mut parts = rest.splitn(2, ' ');
            let kind = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("");
            let name = rest.split('\'').nth(1).unwrap_or("");
            let attrs = rest
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches(',').split_once('='))
                .collect();
            types.insert(
                id,
                Ty {
                    kind,
                    name,
                    attrs,
                    children: Vec::new(),
                },
            );
            order.push(id);
            last = Some(id);
        } else if let (Some(id), Some(child)) = (last, line.strip_prefix('\t')) {
            if let Some(t) = types.get_mut(id) {
                t.children.push(child.split_whitespace().collect());
            }
        }
    }
    let ty = |id: &str| types.get(id);
    let named = |id: &str| ty(id).map_or("?".to_owned(), |t| format!("{} {}", t.kind, t.name));
    let mut shape = Vec::new();
    for id in &order {
        let t = &types[id];
        if t.kind == "DATASEC" && t.name == ".maps" {
            for c in &t.children {
                let var = c
                    .first()
                    .and_then(|w| w.strip_prefix("type_id="))
                    .and_then(ty)
                    .expect("datasec entry");
                let st = var
                    .attrs
                    .get("type_id")
                    .and_then(|&i| ty(i))
                    .expect("map struct");
                let mut line = format!(
                    "map {} {} size={}:",
                    var.name,
                    var.attrs.get("linkage").unwrap_or(&"?"),
                    st.attrs["size"]
                );
                for m in &st.children {
                    let field = m[0].trim_matches('\'');
                    let ptr = m
                        .get(1)
                        .and_then(|w| w.strip_prefix("type_id="))
                        .and_then(ty)
                        .expect("member type");
                    let arr = ptr
                        .attrs
                        .get("type_id")
                        .and_then(|&i| ty(i))
                        .expect("pointer target");
                    let elem = named(arr.attrs.get("type_id").unwrap_or(&"0"));
                    let bits = m[2].trim_start_matches("bits_offset=");
                    let _ = write!(
                        line,
                        " {field}@{bits}={}x{elem}",
                        arr.attrs.get("nr_elems").unwrap_or(&"?")
                    );
                    assert_eq!((ptr.kind, arr.kind), ("PTR", "ARRAY"), "__uint convention");
                }
                shape.push(line);
            }
        }
        if t.kind == "FUNC" {
            let proto = t
                .attrs
                .get("type_id")
                .and_then(|&i| ty(i))
                .expect("func proto");
            let params: Vec<String> = proto
                .children
                .iter()
                .map(|p| {
                    let ptr = p
                        .get(1)
                        .and_then(|w| w.strip_prefix("type_id="))
                        .and_then(ty)
                        .expect("param type");
                    let target =
                        ty(ptr.attrs.get("type_id").unwrap_or(&"0")).map_or("?", |t| t.name);
                    format!("{} {} *{target}", p[0], ptr.kind)
                })
                .collect();
            shape.push(format!(
                "func {} {} returns {} ({})",
                t.name,
                t.attrs.get("linkage").unwrap_or(&"?"),
                named(proto.attrs.get("ret_type_id").unwrap_or(&"0")),
                params.join(", ")
            ));
        }
    }
    shape.sort();
    shape
}
