//! The ELF object writer: turns generated programs, their maps and line tables into a
//! relocatable eBPF object (`ELF64`, little-endian, `EM_BPF`) laid out as `clang -O2 -g
//! -target bpf -c` lays one out, so that libbpf (and `bpftool`, `ip`, `tc`) and aya load it
//! like any clang-built object.
//!
//! Why by hand: the object is small and fixed in shape, and every byte of it follows a
//! convention that loaders check (libbpf 1.x rejects legacy `maps` sections, needs global
//! `FUNC` symbols, reads map attributes from BTF, ...). Writing it directly keeps those
//! conventions in one readable place and adds no dependency.
//!
//! What the object holds ([`write_object`]):
//!
//! - one code section per distinct program section name (`xdp`, `classifier`, `tc`,
//!   `tcx/ingress`, `tcx/egress`; `SHF_ALLOC | SHF_EXECINSTR`). Programs that share a section
//!   name are placed one after another in that section, as clang does; each program is a
//!   global `FUNC` symbol at its offset with its size in bytes.
//! - `.rel<section>`: one `R_BPF_64_64` relocation per map reference. A map reference is a
//!   `ld_imm64` whose `src` is [`PSEUDO_MAP_FD`] and whose immediate indexes
//!   [`ObjectDef::maps`]; the relocation names the map's symbol and the instruction is written
//!   with `src = 0` and a zero immediate, exactly as clang writes it (the loader fills both in).
//! - `.maps`: BTF-defined maps. Each map is a global `OBJECT` symbol over zeroed bytes whose
//!   BTF type is an anonymous struct in libbpf's `__uint(field, N)` convention: every member is
//!   `int (*field)[N]`, a pointer to an array of N ints, so N sits in the array's element
//!   count. Members are `type`, `key_size`, `value_size`, `max_entries` and `map_flags`; a
//!   member whose value is 0 is left out (ring buffers have no key or value size).
//! - `license` with the `_license` symbol.
//! - `.BTF`: the map structs, a `VAR` (linkage global-allocated) per map, the `.maps`
//!   `DATASEC`, and per program a `FUNC_PROTO` `int (struct xdp_md *ctx)` or
//!   `int (struct __sk_buff *ctx)` (forward-declared structs) with a global `FUNC`.
//! - `.BTF.ext`: `func_info` (each program's first instruction to its `FUNC`) and `line_info`
//!   (from [`ProgramDef::line_info`], or line 0 at instruction 0 for a program without any),
//!   naming [`ObjectDef::source_name`] and carrying the text of the `.nf` line, so verifier
//!   logs and `bpftool prog dump xlated ... linum` show policy lines.
//! - `.symtab`, `.strtab`, `.shstrtab`.
//!
//! Everything a loader or the kernel would reject later and that can be seen here (a map
//! index out of range, an impossible map definition, unordered line records, names BTF cannot
//! carry) is an [`ElfError`]; no input makes the writer panic.

use crate::btf::{
    self, Btf, BtfError, BtfExt, FuncLinkage, FuncRecord, LineRecord, Member, Param, TypeId,
    VarLinkage, VarSecInfo,
};
use nfcc_bpf::insn::{Insn, PSEUDO_MAP_FD};
use std::collections::HashMap;

pub use nfcc_bpf::map::{MapKind, BPF_F_NO_PREALLOC};

/// The page size ring buffer sizes must be a power-of-two multiple of (4 KiB, the page size
/// of x86-64 and of the default arm64 kernels).
pub const RINGBUF_PAGE_SIZE: u32 = 4096;

/// The largest value a map attribute may have: BTF encodes it as the element count of an
/// `int` array, and the kernel rejects arrays larger than 4 GiB.
pub const MAX_MAP_ATTR: u32 = u32::MAX / 4;

/// A map definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// The map's symbol and BTF variable name (a C identifier).
    pub name: String,
    /// The map type.
    pub kind: MapKind,
    /// Key size in bytes (0 for ring buffers).
    pub key_size: u32,
    /// Value size in bytes (0 for ring buffers).
    pub value_size: u32,
    /// Capacity (for ring buffers: the buffer size in bytes).
    pub max_entries: u32,
    /// `map_flags` (`BPF_F_*`).
    pub flags: u32,
}

/// A line-info record: instruction index within its program -> .nf source line/column
/// (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Index of the instruction within its program (in 8-byte slots).
    pub insn: u32,
    /// 1-based line in [`ObjectDef::source`].
    pub line: u32,
    /// 1-based column (columns past 1023 are recorded as 1023).
    pub col: u32,
}

/// One program.
///
/// A program without line records gets one at instruction 0 naming line 0 (no source line):
/// libbpf warns about a program without any and then drops the line info of the whole object.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramDef {
    /// The function symbol (a C identifier).
    pub name: String,
    /// The ELF section: `xdp`, or `classifier` / `tc` / `tcx/ingress` / `tcx/egress` for TC.
    pub section: String,
    /// The instructions; map references are `Insn::ld_map`.
    pub insns: Vec<Insn>,
    /// Line records in strictly increasing instruction order, the first at instruction 0
    /// (or none at all).
    pub line_info: Vec<LineInfo>,
}

/// Everything one object holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectDef {
    /// The license string (e.g. `"GPL"`), written NUL-terminated.
    pub license: String,
    /// The maps; `Insn::ld_map(_, i)` refers to `maps[i]`.
    pub maps: Vec<MapDef>,
    /// The programs.
    pub programs: Vec<ProgramDef>,
    /// The source file name recorded in line info (e.g. `"ddos_guard.nf"`).
    pub source_name: String,
    /// The full `.nf` text; line info records carry the text of their line.
    pub source: String,
    /// Sections loaders skip (`SHT_PROGBITS`, not allocated), by name: nfcc's own
    /// `.nfcc.policy` (`nfcc_bpf::policy_section`).
    pub notes: Vec<(String, Vec<u8>)>,
}

/// Why an object could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The object has no programs.
    #[error("the object has no programs")]
    NoPrograms,
    /// A program or map name is not a C identifier (BTF and loaders need one).
    #[error("{what} name {name:?} is not a c identifier")]
    InvalidName {
        /// `"program"` or `"map"`.
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// Two programs or maps, or one of them and `_license`, share a symbol name.
    #[error("duplicate symbol name {0:?}")]
    DuplicateName(String),
    /// The license contains a NUL byte.
    #[error("the license must not contain a nul byte")]
    InvalidLicense,
    /// A program's section is not one whose context type the writer knows.
    #[error(
        "program {program:?}: unsupported section {section:?} \
         (expected xdp, classifier, tc, tcx/ingress or tcx/egress)"
    )]
    UnsupportedSection {
        /// The program.
        program: String,
        /// Its section.
        section: String,
    },
    /// A program has no instructions.
    #[error("program {0:?} has no instructions")]
    EmptyProgram(String),
    /// A `ld_imm64` is the last instruction, so its second slot is missing.
    #[error("program {program:?}: instruction {insn} starts a ld_imm64 but has no second slot")]
    TruncatedLdImm64 {
        /// The program.
        program: String,
        /// The instruction index.
        insn: usize,
    },
    /// A `ld_imm64` has a pseudo source other than a map reference.
    #[error(
        "program {program:?}: instruction {insn} is a ld_imm64 with unsupported source {src} \
         (only constants and map references can be written)"
    )]
    UnsupportedLdImm64 {
        /// The program.
        program: String,
        /// The instruction index.
        insn: usize,
        /// The `src` field.
        src: u8,
    },
    /// A map reference names a map the object does not have.
    #[error("program {program:?}: instruction {insn} refers to map {index}, but the object has {count} maps")]
    MapIndexOutOfRange {
        /// The program.
        program: String,
        /// The instruction index.
        insn: usize,
        /// The map index in the instruction.
        index: u64,
        /// How many maps the object has.
        count: usize,
    },
    /// A map definition the kernel would refuse to create.
    #[error("map {map:?}: {reason}")]
    InvalidMap {
        /// The map.
        map: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line-info record the kernel would refuse.
    #[error("program {program:?}: line info record {index}: {reason}")]
    InvalidLineInfo {
        /// The program.
        program: String,
        /// The record's index in [`ProgramDef::line_info`].
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A section would exceed what ELF offsets or BTF.ext records can address.
    #[error("object too large: {0}")]
    TooLarge(String),
    /// BTF could not encode a type or string.
    #[error("btf: {0}")]
    Btf(#[from] BtfError),
}

// ELF constants (from elf.h).
const EM_BPF: u16 = 247;
const ET_REL: u16 = 1;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_REL: u32 = 9;
const SHF_WRITE: u64 = 0x1;
const SHF_ALLOC: u64 = 0x2;
const SHF_EXECINSTR: u64 = 0x4;
const SHF_INFO_LINK: u64 = 0x40;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_FILE: u8 = 4;
const SHN_ABS: u16 = 0xfff1;
const R_BPF_64_64: u64 = 1;
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const REL_SIZE: usize = 16;

/// The license symbol's name. Loaders find the license by its section; clang objects (and
/// libbpf's headers) name the symbol `_license`.
const LICENSE_SYMBOL: &str = "_license";

/// The context struct a program of `section` receives, or `None` for unknown sections.
fn context_struct(section: &str) -> Option<&'static str> {
    match section {
        "xdp" => Some("xdp_md"),
        "classifier" | "tc" | "tcx/ingress" | "tcx/egress" => Some("__sk_buff"),
        _ => None,
    }
}

fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl MapDef {
    /// Checks what the kernel checks at map creation and what BTF can encode; the reason of
    /// the first problem found.
    fn problem(&self) -> Option<String> {
        let (k, v, n) = (self.key_size, self.value_size, self.max_entries);
        let kind = self.kind.name();
        if n == 0 {
            return Some("max_entries must be at least 1".into());
        }
        match self.kind {
            MapKind::RingBuf => {
                if k != 0 || v != 0 {
                    return Some(format!(
                        "ring buffers have no key or value (key_size {k} and value_size {v} must be 0)"
                    ));
                }
                if !n.is_power_of_two() || n < RINGBUF_PAGE_SIZE {
                    return Some(format!(
                        "ring buffer size {n} is not a power-of-two multiple of the \
                         {RINGBUF_PAGE_SIZE}-byte page size"
                    ));
                }
            }
            MapKind::Array | MapKind::PercpuArray => {
                if k != 4 {
                    return Some(format!("{kind} keys are 4 bytes (key_size is {k})"));
                }
            }
            MapKind::PerfEventArray => {
                if k != 4 || v != 4 {
                    return Some(format!(
                        "perf event arrays have 4-byte keys and values (key_size {k}, value_size {v})"
                    ));
                }
            }
            MapKind::DevMap => {
                if k != 4 || (v != 4 && v != 8) {
                    return Some(format!(
                        "devmap keys are 4 bytes and values 4 or 8 (key_size {k}, value_size {v})"
                    ));
                }
            }
            MapKind::XskMap => {
                if k != 4 || v != 4 {
                    return Some(format!(
                        "xskmap keys and values are 4 bytes (key_size {k}, value_size {v})"
                    ));
                }
            }
            MapKind::LpmTrie => {
                if self.flags & BPF_F_NO_PREALLOC == 0 {
                    return Some(
                        "lpm tries need map_flags to include BPF_F_NO_PREALLOC (1)".into(),
                    );
                }
                if !(5..=260).contains(&k) {
                    return Some(format!(
                        "lpm trie keys are a 4-byte prefix length and 1 to 256 data bytes \
                         (key_size is {k})"
                    ));
                }
            }
            MapKind::Hash | MapKind::PercpuHash | MapKind::LruHash | MapKind::LruPercpuHash => {
                if k == 0 {
                    return Some(format!("{kind} keys must not be empty (key_size is 0)"));
                }
            }
        }
        if self.kind != MapKind::RingBuf && v == 0 {
            return Some(format!("{kind} values must not be empty (value_size is 0)"));
        }
        for (field, value) in [
            ("key_size", k),
            ("value_size", v),
            ("max_entries", n),
            ("map_flags", self.flags),
        ] {
            if value > MAX_MAP_ATTR {
                return Some(format!(
                    "{field} {value} is too large to encode in btf (at most {MAX_MAP_ATTR})"
                ));
            }
        }
        None
    }

    /// The `__uint(field, N)` members of the map's BTF struct: zero-valued ones are left out.
    fn btf_fields(&self) -> Vec<(&'static str, u32)> {
        [
            ("type", self.kind as u32),
            ("key_size", self.key_size),
            ("value_size", self.value_size),
            ("max_entries", self.max_entries),
            ("map_flags", self.flags),
        ]
        .into_iter()
        .filter(|&(_, v)| v != 0)
        .collect()
    }
}

/// A string table as ELF wants it: NUL-terminated names after an initial empty one.
struct StrTab {
    bytes: Vec<u8>,
    offsets: HashMap<String, u32>,
}

impl StrTab {
    fn new() -> StrTab {
        StrTab {
            bytes: vec![0],
            offsets: HashMap::new(),
        }
    }

    fn add(&mut self, s: &str) -> Result<u32, ElfError> {
        if s.is_empty() {
            return Ok(0);
        }
        if let Some(&o) = self.offsets.get(s) {
            return Ok(o);
        }
        let off = u32::try_from(self.bytes.len())
            .map_err(|_| ElfError::TooLarge("string table".into()))?;
        // Names reaching here come from validated identifiers, section names or the source
        // name; a NUL would only shorten the name, so it is cut off rather than rejected.
        self.bytes.extend(s.bytes().take_while(|&b| b != 0));
        self.bytes.push(0);
        self.offsets.insert(s.to_owned(), off);
        Ok(off)
    }
}

/// One ELF section before layout.
struct Section {
    name: String,
    sh_type: u32,
    flags: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

/// One symbol before encoding.
struct Symbol {
    name: String,
    bind: u8,
    kind: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// A code section being assembled: its programs' bytes, relocations and BTF.ext records.
struct CodeSection<'a> {
    name: &'a str,
    bytes: Vec<u8>,
    /// (byte offset of the `ld_imm64`, map index).
    relocs: Vec<(u64, usize)>,
    /// (program index, byte offset, byte size).
    programs: Vec<(usize, u64, u64)>,
    funcs: Vec<FuncRecord>,
    lines: Vec<LineRecord>,
}

/// The BTF of the maps and programs and the ids the writer needs from it.
struct BtfTypes {
    btf: Btf,
    /// Per program, its `FUNC` type.
    funcs: Vec<TypeId>,
    /// Per map, the size of its struct (and of its bytes in `.maps`).
    map_sizes: Vec<u32>,
}

fn build_btf(obj: &ObjectDef) -> Result<BtfTypes, ElfError> {
    let mut btf = Btf::new();
    let int = btf.add_int("int", 4, true)?;
    let mut map_sizes = Vec::with_capacity(obj.maps.len());
    if !obj.maps.is_empty() {
        let index = btf.add_int("__ARRAY_SIZE_TYPE__", 4, false)?;
        // `int (*)[N]` types are shared between maps, as clang shares them.
        let mut field_types: HashMap<u32, TypeId> = HashMap::new();
        let mut vars = Vec::with_capacity(obj.maps.len());
        let mut offset: u32 = 0;
        for m in &obj.maps {
            let fields = m.btf_fields();
            let mut members = Vec::with_capacity(fields.len());
            for (i, &(name, n)) in fields.iter().enumerate() {
                let ty = match field_types.get(&n) {
                    Some(&t) => t,
                    None => {
                        let arr = btf.add_array(int, index, n)?;
                        let ptr = btf.add_ptr(arr)?;
                        field_types.insert(n, ptr);
                        ptr
                    }
                };
                // Each member is an 8-byte pointer; there are at most five.
                members.push(Member {
                    name,
                    ty,
                    bit_offset: i as u32 * 64,
                });
            }
            let size = members.len() as u32 * 8;
            let st = btf.add_struct("", size, &members)?;
            let var = btf.add_var(&m.name, st, VarLinkage::GlobalAllocated)?;
            vars.push(VarSecInfo { var, offset, size });
            map_sizes.push(size);
            offset = offset
                .checked_add(size)
                .ok_or_else(|| ElfError::TooLarge("the .maps section exceeds 4 GiB".into()))?;
        }
        btf.add_datasec(".maps", offset, &vars)?;
    }
    let mut protos: HashMap<&str, TypeId> = HashMap::new();
    let mut funcs = Vec::with_capacity(obj.programs.len());
    for p in &obj.programs {
        let ctx = context_struct(&p.section).ok_or_else(|| ElfError::UnsupportedSection {
            program: p.name.clone(),
            section: p.section.clone(),
        })?;
        let proto = match protos.get(ctx) {
            Some(&t) => t,
            None => {
                let fwd = btf.add_fwd_struct(ctx)?;
                let ptr = btf.add_ptr(fwd)?;
                let proto = btf.add_func_proto(
                    int,
                    &[Param {
                        name: "ctx",
                        ty: ptr,
                    }],
                )?;
                protos.insert(ctx, proto);
                proto
            }
        };
        funcs.push(btf.add_func(&p.name, proto, FuncLinkage::Global)?);
    }
    Ok(BtfTypes {
        btf,
        funcs,
        map_sizes,
    })
}

/// Checks names, the license and map definitions.
fn validate(obj: &ObjectDef) -> Result<(), ElfError> {
    if obj.programs.is_empty() {
        return Err(ElfError::NoPrograms);
    }
    if obj.license.contains('\0') {
        return Err(ElfError::InvalidLicense);
    }
    let mut seen: HashMap<&str, ()> = HashMap::new();
    seen.insert(LICENSE_SYMBOL, ());
    let names = obj
        .programs
        .iter()
        .map(|p| ("program", &p.name))
        .chain(obj.maps.iter().map(|m| ("map", &m.name)));
    for (what, name) in names {
        if !is_c_identifier(name) {
            return Err(ElfError::InvalidName {
                what,
                name: name.clone(),
            });
        }
        if seen.insert(name, ()).is_some() {
            return Err(ElfError::DuplicateName(name.clone()));
        }
    }
    for p in &obj.programs {
        if context_struct(&p.section).is_none() {
            return Err(ElfError::UnsupportedSection {
                program: p.name.clone(),
                section: p.section.clone(),
            });
        }
        if p.insns.is_empty() {
            return Err(ElfError::EmptyProgram(p.name.clone()));
        }
    }
    for m in &obj.maps {
        if let Some(reason) = m.problem() {
            return Err(ElfError::InvalidMap {
                map: m.name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Appends program `pi` to `sec`: its bytes (map references zeroed and recorded for
/// relocation), its `func_info` record and its `line_info` records.
fn append_program(
    obj: &ObjectDef,
    pi: usize,
    func: TypeId,
    btf: &mut Btf,
    lines: &[&str],
    sec: &mut CodeSection<'_>,
) -> Result<(), ElfError> {
    let p = &obj.programs[pi];
    let base = sec.bytes.len() as u64;
    let sec_name = sec.name;
    let too_large = || ElfError::TooLarge(format!("code section {sec_name:?} exceeds 4 GiB"));
    let base32 = u32::try_from(base).map_err(|_| too_large())?;
    let end = (p.insns.len() as u64)
        .checked_mul(8)
        .and_then(|n| n.checked_add(base))
        .filter(|&e| e <= u64::from(u32::MAX))
        .ok_or_else(too_large)?;

    // Whether each slot is the second half of a `ld_imm64` (line records may not point there).
    let mut second_slot = vec![false; p.insns.len()];
    let mut i = 0;
    while i < p.insns.len() {
        let mut ins = p.insns[i];
        if !ins.is_ld_imm64() {
            sec.bytes.extend_from_slice(&ins.encode());
            i += 1;
            continue;
        }
        let Some(&hi) = p.insns.get(i + 1) else {
            return Err(ElfError::TruncatedLdImm64 {
                program: p.name.clone(),
                insn: i,
            });
        };
        let mut hi = hi;
        match ins.src {
            0 => {}
            PSEUDO_MAP_FD => {
                let index = (u64::from(hi.imm as u32) << 32) | u64::from(ins.imm as u32);
                let map = usize::try_from(index)
                    .ok()
                    .filter(|&m| m < obj.maps.len())
                    .ok_or_else(|| ElfError::MapIndexOutOfRange {
                        program: p.name.clone(),
                        insn: i,
                        index,
                        count: obj.maps.len(),
                    })?;
                sec.relocs.push((base + i as u64 * 8, map));
                // clang leaves both the pseudo source and the immediate to the loader.
                ins.src = 0;
                ins.imm = 0;
                hi.imm = 0;
            }
            src => {
                return Err(ElfError::UnsupportedLdImm64 {
                    program: p.name.clone(),
                    insn: i,
                    src,
                });
            }
        }
        sec.bytes.extend_from_slice(&ins.encode());
        sec.bytes.extend_from_slice(&hi.encode());
        second_slot[i + 1] = true;
        i += 2;
    }

    sec.funcs.push(FuncRecord {
        insn_off: base32,
        type_id: func,
    });
    sec.programs.push((pi, base, end - base));

    let file = btf.add_string(&obj.source_name)?;
    if p.line_info.is_empty() {
        // libbpf warns about a program without line info and then drops the line info of
        // the whole object, so such a program gets one record for its first instruction:
        // line 0 with empty text, as compilers mark code that has no source line.
        sec.lines.push(LineRecord {
            insn_off: base32,
            file_name_off: file,
            line_off: 0,
            line_col: 0,
        });
    }
    let mut prev: Option<u32> = None;
    for (index, li) in p.line_info.iter().enumerate() {
        let bad = |reason: String| ElfError::InvalidLineInfo {
            program: p.name.clone(),
            index,
            reason,
        };
        let at = usize::try_from(li.insn).unwrap_or(usize::MAX);
        if at >= p.insns.len() {
            return Err(bad(format!(
                "instruction {} is past the end of the program ({} instructions)",
                li.insn,
                p.insns.len()
            )));
        }
        if second_slot[at] {
            return Err(bad(format!(
                "instruction {} is the second half of a ld_imm64",
                li.insn
            )));
        }
        match prev {
            None if li.insn != 0 => {
                return Err(bad(format!(
                    "the first record is at instruction {}, but the kernel needs one at \
                     instruction 0",
                    li.insn
                )))
            }
            Some(prev) if li.insn <= prev => {
                return Err(bad(format!(
                    "instruction {} does not follow the previous record's {prev} \
                     (records must be in strictly increasing instruction order)",
                    li.insn
                )))
            }
            _ => {}
        }
        prev = Some(li.insn);
        let text = usize::try_from(li.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| lines.get(l))
            .ok_or_else(|| {
                bad(format!(
                    "line {} is not in {:?} ({} lines)",
                    li.line,
                    obj.source_name,
                    lines.len()
                ))
            })?;
        let line_off = btf.add_string(text)?;
        sec.lines.push(LineRecord {
            // The record's instruction is within the program, whose end fits in u32.
            insn_off: base32 + li.insn * 8,
            file_name_off: file,
            line_off,
            line_col: btf::line_col(li.line, li.col),
        });
    }
    Ok(())
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn section_index(i: usize) -> Result<u16, ElfError> {
    // Indices from 0xff00 up are reserved (SHN_LORESERVE); the writer never gets near.
    u16::try_from(i)
        .ok()
        .filter(|&i| i < 0xff00)
        .ok_or_else(|| ElfError::TooLarge("too many sections".into()))
}

/// Writes the relocatable eBPF object for `obj` (see the module docs for its layout).
pub fn write_object(obj: &ObjectDef) -> Result<Vec<u8>, ElfError> {
    validate(obj)?;
    let BtfTypes {
        mut btf,
        funcs,
        map_sizes,
    } = build_btf(obj)?;
    let lines: Vec<&str> = obj.source.lines().collect();

    // Group programs by section name, in order of first appearance.
    let mut code: Vec<CodeSection<'_>> = Vec::new();
    for (pi, p) in obj.programs.iter().enumerate() {
        let at = match code.iter().position(|c| c.name == p.section) {
            Some(at) => at,
            None => {
                code.push(CodeSection {
                    name: &p.section,
                    bytes: Vec::new(),
                    relocs: Vec::new(),
                    programs: Vec::new(),
                    funcs: Vec::new(),
                    lines: Vec::new(),
                });
                code.len() - 1
            }
        };
        append_program(obj, pi, funcs[pi], &mut btf, &lines, &mut code[at])?;
    }

    let mut ext = BtfExt::new();
    for c in &mut code {
        let name = btf.add_string(c.name)?;
        ext.add_func_info(name, std::mem::take(&mut c.funcs));
        ext.add_line_info(name, std::mem::take(&mut c.lines));
    }

    // Symbols: the null symbol and the file (locals), then programs, maps and the license.
    let mut symbols = vec![Symbol {
        name: String::new(),
        bind: STB_LOCAL,
        kind: 0,
        shndx: 0,
        value: 0,
        size: 0,
    }];
    if !obj.source_name.is_empty() {
        symbols.push(Symbol {
            name: obj.source_name.clone(),
            bind: STB_LOCAL,
            kind: STT_FILE,
            shndx: SHN_ABS,
            value: 0,
            size: 0,
        });
    }
    let first_global = symbols.len();
    let first_map_symbol = first_global + obj.programs.len();

    // Sections, in clang's order: each code section followed by its relocations, then
    // `.maps`, `license`, `.BTF`, `.BTF.ext` and the tables.
    let mut sections: Vec<Section> = Vec::new();
    let mut rel_sections = Vec::new();
    for c in &code {
        sections.push(Section {
            name: c.name.to_owned(),
            sh_type: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            data: c.bytes.clone(),
            link: 0,
            info: 0,
            align: 8,
            entsize: 0,
        });
        let shndx = section_index(sections.len())?;
        for &(pi, value, size) in &c.programs {
            symbols.push(Symbol {
                name: obj.programs[pi].name.clone(),
                bind: STB_GLOBAL,
                kind: STT_FUNC,
                shndx,
                value,
                size,
            });
        }
        if !c.relocs.is_empty() {
            let mut data = Vec::with_capacity(c.relocs.len() * REL_SIZE);
            for &(offset, map) in &c.relocs {
                push_u64(&mut data, offset);
                push_u64(
                    &mut data,
                    (((first_map_symbol + map) as u64) << 32) | R_BPF_64_64,
                );
            }
            sections.push(Section {
                name: format!(".rel{}", c.name),
                sh_type: SHT_REL,
                flags: SHF_INFO_LINK,
                data,
                link: 0, // The symbol table's index, patched below.
                info: u32::from(shndx),
                align: 8,
                entsize: REL_SIZE as u64,
            });
            rel_sections.push(sections.len() - 1);
        }
    }
    if !obj.maps.is_empty() {
        let total: u64 = map_sizes.iter().map(|&s| u64::from(s)).sum();
        sections.push(Section {
            name: ".maps".into(),
            sh_type: SHT_PROGBITS,
            flags: SHF_WRITE | SHF_ALLOC,
            data: vec![0; usize::try_from(total).map_err(|_| ElfError::TooLarge(".maps".into()))?],
            link: 0,
            info: 0,
            align: 8,
            entsize: 0,
        });
        let shndx = section_index(sections.len())?;
        let mut offset = 0u64;
        for (m, &size) in obj.maps.iter().zip(&map_sizes) {
            symbols.push(Symbol {
                name: m.name.clone(),
                bind: STB_GLOBAL,
                kind: STT_OBJECT,
                shndx,
                value: offset,
                size: u64::from(size),
            });
            offset += u64::from(size);
        }
    }
    let mut license = obj.license.clone().into_bytes();
    license.push(0);
    let license_size = license.len() as u64;
    sections.push(Section {
        name: "license".into(),
        sh_type: SHT_PROGBITS,
        flags: SHF_WRITE | SHF_ALLOC,
        data: license,
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    });
    symbols.push(Symbol {
        name: LICENSE_SYMBOL.into(),
        bind: STB_GLOBAL,
        kind: STT_OBJECT,
        shndx: section_index(sections.len())?,
        value: 0,
        size: license_size,
    });
    for (name, data) in &obj.notes {
        sections.push(Section {
            name: name.clone(),
            sh_type: SHT_PROGBITS,
            flags: 0,
            data: data.clone(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        });
    }
    for (name, data) in [(".BTF", btf.to_bytes()?), (".BTF.ext", ext.to_bytes()?)] {
        sections.push(Section {
            name: name.into(),
            sh_type: SHT_PROGBITS,
            flags: 0,
            data,
            link: 0,
            info: 0,
            align: 4,
            entsize: 0,
        });
    }

    let mut strtab = StrTab::new();
    let mut symtab = Vec::with_capacity(symbols.len() * SYM_SIZE);
    for s in &symbols {
        push_u32(&mut symtab, strtab.add(&s.name)?);
        symtab.push((s.bind << 4) | s.kind);
        symtab.push(0); // STV_DEFAULT
        push_u16(&mut symtab, s.shndx);
        push_u64(&mut symtab, s.value);
        push_u64(&mut symtab, s.size);
    }
    let symtab_index = section_index(sections.len() + 1)?;
    let strtab_index = section_index(sections.len() + 2)?;
    for &r in &rel_sections {
        sections[r].link = u32::from(symtab_index);
    }
    sections.push(Section {
        name: ".symtab".into(),
        sh_type: SHT_SYMTAB,
        flags: 0,
        data: symtab,
        link: u32::from(strtab_index),
        info: first_global as u32,
        align: 8,
        entsize: SYM_SIZE as u64,
    });
    sections.push(Section {
        name: ".strtab".into(),
        sh_type: SHT_STRTAB,
        flags: 0,
        data: strtab.bytes,
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    });
    let mut shstrtab = StrTab::new();
    let mut names = Vec::with_capacity(sections.len() + 1);
    for s in &sections {
        names.push(shstrtab.add(&s.name)?);
    }
    names.push(shstrtab.add(".shstrtab")?);
    let shstrndx = section_index(sections.len() + 1)?;
    sections.push(Section {
        name: ".shstrtab".into(),
        sh_type: SHT_STRTAB,
        flags: 0,
        data: std::mem::take(&mut shstrtab.bytes),
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    });

    // Layout: the header, each section's bytes at its alignment, then the header table.
    let mut out = vec![0u8; EHDR_SIZE];
    let mut offsets = Vec::with_capacity(sections.len());
    for s in &sections {
        let align = s.align.max(1) as usize;
        out.resize(out.len().div_ceil(align) * align, 0);
        offsets.push(out.len() as u64);
        out.extend_from_slice(&s.data);
    }
    out.resize(out.len().div_ceil(8) * 8, 0);
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; SHDR_SIZE]);
    for ((s, &name), &offset) in sections.iter().zip(&names).zip(&offsets) {
        push_u32(&mut out, name);
        push_u32(&mut out, s.sh_type);
        push_u64(&mut out, s.flags);
        push_u64(&mut out, 0); // sh_addr
        push_u64(&mut out, offset);
        push_u64(&mut out, s.data.len() as u64);
        push_u32(&mut out, s.link);
        push_u32(&mut out, s.info);
        push_u64(&mut out, s.align);
        push_u64(&mut out, s.entsize);
    }

    let mut ehdr = Vec::with_capacity(EHDR_SIZE);
    ehdr.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // ELF64, LSB, version 1, SysV
    ehdr.extend_from_slice(&[0; 8]);
    push_u16(&mut ehdr, ET_REL);
    push_u16(&mut ehdr, EM_BPF);
    push_u32(&mut ehdr, 1); // e_version
    push_u64(&mut ehdr, 0); // e_entry
    push_u64(&mut ehdr, 0); // e_phoff
    push_u64(&mut ehdr, shoff);
    push_u32(&mut ehdr, 0); // e_flags
    push_u16(&mut ehdr, EHDR_SIZE as u16);
    push_u16(&mut ehdr, 0); // e_phentsize
    push_u16(&mut ehdr, 0); // e_phnum
    push_u16(&mut ehdr, SHDR_SIZE as u16);
    push_u16(&mut ehdr, section_index(sections.len() + 1)?); // e_shnum
    push_u16(&mut ehdr, shstrndx);
    out[..EHDR_SIZE].copy_from_slice(&ehdr);
    Ok(out)
}

#[cfg(test)]
mod tests;
