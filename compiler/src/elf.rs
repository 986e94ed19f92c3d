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

use crate::bpf::{Insn, PSEUDO_MAP_FD};
use crate::btf::{
    self, Btf, BtfError, BtfExt, FuncLinkage, FuncRecord, LineRecord, Member, Param, TypeId,
    VarLinkage, VarSecInfo,
};
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
mod tests {
    use super::*;
    use crate::bpf::{helper, Alu, Jmp, Size, R0, R1, R10, R2, R3, R4};
    use crate::test_support::{find_tool, skip};
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, RelocationTarget};
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Runs a tool and returns its stdout, failing the test on a non-zero exit or on anything
    /// printed to stderr (libbpf prints its warnings there, e.g. when the kernel rejects BTF).
    fn run(tool: &Path, args: &[&str], file: &Path) -> String {
        let out = Command::new(tool)
            .args(args)
            .arg(file)
            .output()
            .expect("tool runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{} {} {} failed ({}):\n{stderr}",
            tool.display(),
            args.join(" "),
            file.display(),
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether this process may load XDP/TC programs: CAP_SYS_ADMIN, or CAP_BPF with
    /// CAP_NET_ADMIN.
    fn privileged() -> Result<(), String> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("no /proc/self/status: {e}"))?;
        let caps = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or("no CapEff in /proc/self/status")?;
        let has = |bit: u32| caps & (1u64 << bit) != 0;
        if has(21) || (has(39) && has(12)) {
            Ok(())
        } else {
            Err("loading programs needs CAP_SYS_ADMIN or CAP_BPF+CAP_NET_ADMIN".into())
        }
    }

    /// Mounts bpffs on /sys/fs/bpf unless it is there (once per test process).
    fn bpffs() -> Result<(), String> {
        static MOUNTED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        MOUNTED
            .get_or_init(|| {
                let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
                let present = mounts.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.get(1) == Some(&"/sys/fs/bpf") && f.get(2) == Some(&"bpf")
                });
                if present {
                    return Ok(());
                }
                let st = Command::new("mount")
                    .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
                    .status();
                match st {
                    Ok(s) if s.success() => Ok(()),
                    other => Err(format!("cannot mount bpffs on /sys/fs/bpf: {other:?}")),
                }
            })
            .clone()
    }

    /// A readable listing of the object as an independent ELF reader (the `object` crate)
    /// sees it: header facts, sections, relocations and symbols.
    fn summary(bytes: &[u8]) -> String {
        let elf = ElfFile64::<LE>::parse(bytes).expect("object parses the ELF");
        let hdr = elf.elf_header();
        assert_eq!(hdr.e_machine(LE), 247, "EM_BPF");
        assert_eq!(hdr.e_type(LE), 1, "ET_REL");
        let mut out = String::new();
        for s in elf.sections() {
            let sh = s.elf_section_header();
            let ty = match sh.sh_type(LE) {
                1 => "PROGBITS",
                2 => "SYMTAB",
                3 => "STRTAB",
                9 => "REL",
                _ => "?",
            };
            let f = sh.sh_flags(LE);
            let flags: String = [(1, 'W'), (2, 'A'), (4, 'X'), (0x40, 'I')]
                .iter()
                .filter(|(bit, _)| f & bit != 0)
                .map(|&(_, c)| c)
                .collect();
            let _ = writeln!(
                out,
                "{} {ty} {flags} size={} align={}",
                s.name().unwrap_or("?"),
                s.size(),
                sh.sh_addralign(LE)
            );
            for (off, rel) in s.relocations() {
                let sym = match rel.target() {
                    RelocationTarget::Symbol(i) => {
                        elf.symbol_by_index(i).and_then(|s| s.name()).unwrap_or("?")
                    }
                    _ => "?",
                };
                let ty = match rel.flags() {
                    object::RelocationFlags::Elf { r_type } => r_type,
                    _ => 0,
                };
                let _ = writeln!(out, "  rel {off:#x} type={ty} {sym}");
            }
        }
        for sym in elf.symbols() {
            let st = sym.elf_symbol();
            let kind = ["NOTYPE", "OBJECT", "FUNC", "SECTION", "FILE"]
                .get(usize::from(st.st_type()))
                .unwrap_or(&"?");
            let bind = if st.st_bind() == 1 { "GLOBAL" } else { "LOCAL" };
            let sec = sym
                .section_index()
                .and_then(|i| elf.section_by_index(i).ok())
                .and_then(|s| s.name().ok().map(str::to_owned))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "sym {} {kind} {bind} {sec}+{:#x} size={}",
                sym.name().unwrap_or("?"),
                sym.address(),
                sym.size()
            );
        }
        out
    }

    /// Writes `obj` and checks the result: an error message (`expect` is `"error: ..."`), or
    /// the object's `summary`. A written object must then be accepted by llvm-readelf,
    /// llvm-objdump and bpftool's BTF parser; where privileges allow, libbpf (through
    /// `bpftool prog loadall`) and aya must load every program into the kernel, and the
    /// kernel must report the line info back (`bpftool prog dump xlated ... linum`).
    fn check(name: &str, obj: &ObjectDef, expect: &str) {
        let bytes = match write_object(obj) {
            Err(e) => return assert_eq!(format!("error: {e}"), expect),
            Ok(bytes) => bytes,
        };
        assert_eq!(summary(&bytes).trim(), expect.trim(), "summary of {name}");
        verify(name, obj, &bytes);
    }

    /// The tool and loader half of `check`, shared with the comparison against clang.
    fn verify(name: &str, obj: &ObjectDef, bytes: &[u8]) {
        let file = temp_file(&format!("{name}.o"));
        std::fs::write(&file.0, bytes).expect("write temp object");
        tools(name, obj, &file.0);
        load_with_aya(obj, bytes);
    }

    /// A temporary file, removed when dropped (also when a check fails).
    struct TempFile(PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp_file(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("nfcc-elf-{}-{name}", std::process::id())))
    }

    /// Has the standard tools read the object at `file` and, where privileged, libbpf load
    /// it (through bpftool) and the kernel report its line info back.
    fn tools(name: &str, obj: &ObjectDef, file: &Path) {
        match find_tool("llvm-readelf") {
            Some(t) => {
                run(&t, &["-S", "-s", "-r"], file);
            }
            None => skip("llvm-readelf not found"),
        }
        match find_tool("llvm-objdump") {
            Some(t) => {
                let dis = run(&t, &["-d", "-r"], file);
                for p in &obj.programs {
                    assert!(
                        dis.contains(&format!("<{}>:", p.name)),
                        "llvm-objdump shows {}:\n{dis}",
                        p.name
                    );
                }
            }
            None => skip("llvm-objdump not found"),
        }
        let Some(bpftool) = find_tool("bpftool") else {
            return skip("bpftool not found");
        };
        let dump = run(&bpftool, &["btf", "dump", "file"], file);
        for m in &obj.maps {
            assert!(
                dump.contains(&format!("VAR '{}'", m.name)),
                "btf has map {}:\n{dump}",
                m.name
            );
        }
        if let Err(why) = privileged().and_then(|()| bpffs()) {
            return skip(&why);
        }
        let pins = format!("/sys/fs/bpf/nfcc-test-{}-{name}", std::process::id());
        let _ = std::fs::remove_dir_all(&pins);
        let out = Command::new(&bpftool)
            .args(["prog", "loadall"])
            .arg(file)
            .arg(&pins)
            .output()
            .expect("bpftool runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let xlated: Vec<(String, std::io::Result<std::process::Output>)> = obj
            .programs
            .iter()
            .map(|p| {
                let o = Command::new(&bpftool)
                    .args(["prog", "dump", "xlated", "pinned"])
                    .arg(format!("{pins}/{}", p.name))
                    .arg("linum")
                    .output();
                (p.name.clone(), o)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&pins);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "bpftool prog loadall failed:\n{stderr}"
        );
        let lines: Vec<&str> = obj.source.lines().collect();
        for ((prog, o), p) in xlated.into_iter().zip(&obj.programs) {
            let o = o.expect("bpftool runs");
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "xlated dump of {prog}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let want: Vec<String> = if p.line_info.is_empty() {
                vec![format!(
                    ";  [file:{} line_num:0 line_col:0]",
                    obj.source_name
                )]
            } else {
                p.line_info
                    .iter()
                    .map(|li| {
                        let line = lines[li.line as usize - 1];
                        format!(
                            "; {line} [file:{} line_num:{} line_col:{}]",
                            obj.source_name, li.line, li.col
                        )
                    })
                    .collect()
            };
            let got: Vec<&str> = text.lines().filter(|l| l.starts_with(';')).collect();
            assert_eq!(got, want, "the kernel's line info for {prog}:\n{text}");
        }
    }

    /// Has aya parse the object, create its maps and load every program, where privileged.
    fn load_with_aya(obj: &ObjectDef, bytes: &[u8]) {
        if let Err(why) = privileged() {
            return skip(&format!("aya: {why}"));
        }
        if let Some(p) = obj
            .programs
            .iter()
            .find(|p| p.section != "xdp" && p.section != "classifier")
        {
            // aya 0.13 knows only `xdp` and `classifier` of the writer's sections and rejects
            // the whole object otherwise. That is a fixed property of aya, not of this machine,
            // so it is a note rather than a skip that NFCC_REQUIRE_KERNEL would turn into a
            // failure.
            println!(
                "note: aya 0.13 does not know section {:?}; not loading with aya",
                p.section
            );
            return;
        }
        let mut ebpf = match aya::EbpfLoader::new().load(bytes) {
            Ok(e) => e,
            Err(e) => panic!("aya rejects the object: {e:?}"),
        };
        for p in &obj.programs {
            let prog = ebpf
                .program_mut(&p.name)
                .unwrap_or_else(|| panic!("aya finds program {}", p.name));
            let res = match prog {
                aya::programs::Program::Xdp(x) => x.load(),
                aya::programs::Program::SchedClassifier(c) => c.load(),
                _ => panic!("aya sees {} as neither xdp nor classifier", p.name),
            };
            if let Err(e) = res {
                panic!("aya fails to load {}: {e:?}", p.name);
            }
            // aya silently drops BTF the kernel refuses, so the kernel's view is checked: the
            // program has BTF, a GPL-compatible license and exactly the maps it references.
            let info = prog.info().expect("program info");
            assert!(info.btf_id().is_some(), "aya loads {} with its btf", p.name);
            assert_eq!(info.gpl_compatible(), Some(true), "license of {}", p.name);
            let mut refs: Vec<i32> = p
                .insns
                .iter()
                .filter(|i| i.is_ld_imm64() && i.src == PSEUDO_MAP_FD)
                .map(|i| i.imm)
                .collect();
            refs.sort_unstable();
            refs.dedup();
            let used = info.map_ids().expect("map ids").unwrap_or_default();
            assert_eq!(used.len(), refs.len(), "maps used by {}", p.name);
        }
    }

    fn prog(
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

    fn map(
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

    fn object(maps: Vec<MapDef>, programs: Vec<ProgramDef>, source: &str) -> ObjectDef {
        ObjectDef {
            license: "GPL".into(),
            maps,
            programs,
            source_name: "test.nf".into(),
            source: source.into(),
        }
    }

    /// `r0 = 2; exit`: XDP_PASS.
    fn xdp_pass() -> ObjectDef {
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

    const COUNTER_SRC: &str =
        "# counts every packet\ncounter hits per_cpu\n\nrule all { count hits; pass }\n";

    /// A per-CPU counter: look up key 0, add 1 to the value if found, pass.
    fn counter() -> ObjectDef {
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

    const FILTER_SRC: &str = "table flows: hash(u32 -> u64, 1024)\n\
        set blocklist: lpm(ip4, 256)\n\
        table recent: lru(u32 -> u64, 4096)\n\
        log events: ringbuf(256 KiB)\n\
        rule block { ip.src in blocklist => drop }\n\
        rule seen { flows[ip.src]; recent[ip.src] }\n\
        rule report { log events }\n";

    /// Two classifier programs in one section over a hash, an LPM trie, an LRU hash and a
    /// ring buffer.
    fn filter() -> ObjectDef {
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
        check("index1", &o, "error: program \"count_all\": instruction 4 refers to map 1, but the object has 1 maps");
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
        bad_lines(&[(0, 5, 1)], "error: program \"count_all\": line info record 0: line 5 is not in \"test.nf\" (4 lines)");
        bad_lines(&[(0, 0, 1)], "error: program \"count_all\": line info record 0: line 0 is not in \"test.nf\" (4 lines)");
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
}
