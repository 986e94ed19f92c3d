//! BTF (BPF Type Format) and BTF.ext encoders, as used by the ELF writer (`elf`).
//!
//! libbpf 1.x and aya only accept maps defined through BTF (the `.maps` section), the kernel
//! only prints source lines in verifier logs and `bpftool prog dump ... linum` when a program
//! comes with `func_info`/`line_info`, and both of those live in BTF. This module encodes the
//! two sections byte for byte as the kernel UAPI (`linux/btf.h`) and libbpf's `.BTF.ext`
//! layout define them:
//!
//! - [`Btf`] builds the `.BTF` section: a header, the type section (types are numbered from 1
//!   in the order they are added; 0 is `void`) and a string section whose first byte is the
//!   empty string. Strings are deduplicated.
//! - [`BtfExt`] builds the `.BTF.ext` section: `func_info` and `line_info` records grouped by
//!   ELF section name, with instruction offsets in bytes (the ELF convention; libbpf and aya
//!   divide by 8 before handing them to the kernel). No CO-RE relocations are emitted.
//!
//! Only the kinds the writer needs are offered (INT, PTR, ARRAY, STRUCT, FWD, FUNC,
//! FUNC_PROTO, VAR, DATASEC). Every kernel limit that a large input could exceed (type count,
//! string offsets, member counts) is checked and reported as a [`BtfError`] instead of
//! producing a blob the kernel would reject.

use std::collections::HashMap;

/// A BTF type id; 0 is `void`.
pub type TypeId = u32;

/// The magic number that starts `.BTF` and `.BTF.ext` (written little-endian).
pub const BTF_MAGIC: u16 = 0xeb9f;

/// The largest type id the kernel accepts (`BTF_MAX_TYPE`).
pub const MAX_TYPE_ID: u32 = 0x000f_ffff;

/// The largest string offset the kernel accepts (`BTF_MAX_NAME_OFFSET`).
pub const MAX_STRING_OFFSET: u32 = 0x00ff_ffff;

/// The largest member, parameter or variable count of one type (`BTF_MAX_VLEN`).
pub const MAX_VLEN: usize = 0xffff;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_FWD: u32 = 7;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;

/// `BTF_INT_SIGNED`: the encoding bit of a signed integer.
const INT_SIGNED: u32 = 1;

/// Errors of the BTF encoders. Each one means the input would exceed a kernel limit or could
/// not be represented as a BTF string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// More types than the kernel can number.
    #[error("too many btf types (the kernel accepts at most {MAX_TYPE_ID})")]
    TooManyTypes,
    /// The string section grew past the largest offset the kernel accepts.
    #[error("btf string section too large (offsets must stay below {MAX_STRING_OFFSET:#x})")]
    StringsTooLarge,
    /// A string contains a NUL byte, which would cut it short in the string section.
    #[error("btf string {0:?} contains a nul byte")]
    NulInString(String),
    /// A struct, function prototype or data section has more entries than BTF can count.
    #[error("btf type {name:?} has {count} members (the limit is {MAX_VLEN})")]
    TooManyMembers {
        /// The type's name (empty for anonymous types).
        name: String,
        /// How many members were given.
        count: usize,
    },
    /// A section grew past 4 GiB, so its lengths do not fit the u32 header fields.
    #[error("btf section too large")]
    SectionTooLarge,
}

/// One member of a struct: its name, type and offset from the start of the struct in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The member's name.
    pub name: &'a str,
    /// The member's type.
    pub ty: TypeId,
    /// The offset in bits.
    pub bit_offset: u32,
}

/// One parameter of a function prototype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter's name (may be empty).
    pub name: &'a str,
    /// The parameter's type.
    pub ty: TypeId,
}

/// Linkage of a `FUNC` (`enum btf_func_linkage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncLinkage {
    /// `BTF_FUNC_STATIC`
    Static = 0,
    /// `BTF_FUNC_GLOBAL`
    Global = 1,
}

/// Linkage of a `VAR` (`BTF_VAR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarLinkage {
    /// `BTF_VAR_STATIC`
    Static = 0,
    /// `BTF_VAR_GLOBAL_ALLOCATED`: what libbpf requires of map variables in `.maps`.
    GlobalAllocated = 1,
}

/// One variable placed in a data section (`struct btf_var_secinfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarSecInfo {
    /// The `VAR` type.
    pub var: TypeId,
    /// Byte offset of the variable in its ELF section.
    pub offset: u32,
    /// Size of the variable in bytes.
    pub size: u32,
}

/// A string table: NUL-terminated strings, deduplicated, starting with the empty string.
#[derive(Clone, Debug)]
struct Strings {
    bytes: Vec<u8>,
    offsets: HashMap<String, u32>,
}

impl Strings {
    fn new() -> Strings {
        let mut offsets = HashMap::new();
        offsets.insert(String::new(), 0);
        Strings {
            bytes: vec![0],
            offsets,
        }
    }

    fn add(&mut self, s: &str) -> Result<u32, BtfError> {
        if let Some(&off) = self.offsets.get(s) {
            return Ok(off);
        }
        if s.contains('\0') {
            return Err(BtfError::NulInString(s.to_owned()));
        }
        let off = u32::try_from(self.bytes.len()).map_err(|_| BtfError::StringsTooLarge)?;
        if off > MAX_STRING_OFFSET {
            return Err(BtfError::StringsTooLarge);
        }
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        self.offsets.insert(s.to_owned(), off);
        Ok(off)
    }
}

/// A `.BTF` section under construction.
#[derive(Clone, Debug)]
pub struct Btf {
    types: Vec<u8>,
    count: u32,
    strings: Strings,
}

impl Default for Btf {
    fn default() -> Btf {
        Btf::new()
    }
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn vlen(name: &str, count: usize) -> Result<u32, BtfError> {
    if count > MAX_VLEN {
        return Err(BtfError::TooManyMembers {
            name: name.to_owned(),
            count,
        });
    }
    // The check above keeps the count within 16 bits.
    Ok(count as u32)
}

impl Btf {
    /// An empty BTF: no types, and a string section holding only the empty string.
    pub fn new() -> Btf {
        Btf {
            types: Vec::new(),
            count: 0,
            strings: Strings::new(),
        }
    }

    /// Adds a string (or finds it) and returns its offset in the string section.
    pub fn add_string(&mut self, s: &str) -> Result<u32, BtfError> {
        self.strings.add(s)
    }

    /// The number of types added so far (the id of the last one).
    pub fn type_count(&self) -> u32 {
        self.count
    }

    /// Appends a `struct btf_type` header and returns the new type's id.
    fn push_type(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        size_or_type: u32,
    ) -> Result<TypeId, BtfError> {
        if self.count >= MAX_TYPE_ID {
            return Err(BtfError::TooManyTypes);
        }
        let name_off = self.strings.add(name)?;
        push_u32(&mut self.types, name_off);
        push_u32(&mut self.types, (kind << 24) | (vlen & 0xffff));
        push_u32(&mut self.types, size_or_type);
        self.count += 1;
        Ok(self.count)
    }

    /// `INT name`: an integer of `size` bytes, all bits used, signed or not.
    pub fn add_int(&mut self, name: &str, size: u32, signed: bool) -> Result<TypeId, BtfError> {
        let id = self.push_type(name, KIND_INT, 0, size)?;
        let encoding = if signed { INT_SIGNED } else { 0 };
        // The extra word is encoding << 24 | bit offset << 16 | bit count.
        push_u32(
            &mut self.types,
            (encoding << 24) | (size.saturating_mul(8) & 0xff),
        );
        Ok(id)
    }

    /// `PTR`: an anonymous pointer to `target`.
    pub fn add_ptr(&mut self, target: TypeId) -> Result<TypeId, BtfError> {
        self.push_type("", KIND_PTR, 0, target)
    }

    /// `ARRAY`: an anonymous array of `nelems` elements of type `elem`, indexed by `index`.
    pub fn add_array(
        &mut self,
        elem: TypeId,
        index: TypeId,
        nelems: u32,
    ) -> Result<TypeId, BtfError> {
        let id = self.push_type("", KIND_ARRAY, 0, 0)?;
        push_u32(&mut self.types, elem);
        push_u32(&mut self.types, index);
        push_u32(&mut self.types, nelems);
        Ok(id)
    }

    /// `STRUCT name` (anonymous when `name` is empty) of `size` bytes with `members`.
    pub fn add_struct(
        &mut self,
        name: &str,
        size: u32,
        members: &[Member<'_>],
    ) -> Result<TypeId, BtfError> {
        let n = vlen(name, members.len())?;
        let id = self.push_type(name, KIND_STRUCT, n, size)?;
        for m in members {
            let off = self.strings.add(m.name)?;
            push_u32(&mut self.types, off);
            push_u32(&mut self.types, m.ty);
            push_u32(&mut self.types, m.bit_offset);
        }
        Ok(id)
    }

    /// `FWD struct name`: a forward declaration, enough for pointer parameters.
    pub fn add_fwd_struct(&mut self, name: &str) -> Result<TypeId, BtfError> {
        self.push_type(name, KIND_FWD, 0, 0)
    }

    /// `FUNC_PROTO`: an anonymous prototype returning `ret` with `params`.
    pub fn add_func_proto(
        &mut self,
        ret: TypeId,
        params: &[Param<'_>],
    ) -> Result<TypeId, BtfError> {
        let n = vlen("", params.len())?;
        let id = self.push_type("", KIND_FUNC_PROTO, n, ret)?;
        for p in params {
            let off = self.strings.add(p.name)?;
            push_u32(&mut self.types, off);
            push_u32(&mut self.types, p.ty);
        }
        Ok(id)
    }

    /// `FUNC name` of prototype `proto`; the linkage is carried in the vlen field.
    pub fn add_func(
        &mut self,
        name: &str,
        proto: TypeId,
        linkage: FuncLinkage,
    ) -> Result<TypeId, BtfError> {
        self.push_type(name, KIND_FUNC, linkage as u32, proto)
    }

    /// `VAR name` of type `ty`.
    pub fn add_var(
        &mut self,
        name: &str,
        ty: TypeId,
        linkage: VarLinkage,
    ) -> Result<TypeId, BtfError> {
        let id = self.push_type(name, KIND_VAR, 0, ty)?;
        push_u32(&mut self.types, linkage as u32);
        Ok(id)
    }

    /// `DATASEC name` of `size` bytes placing `vars` (which must be sorted by offset and not
    /// overlap, as the kernel checks).
    pub fn add_datasec(
        &mut self,
        name: &str,
        size: u32,
        vars: &[VarSecInfo],
    ) -> Result<TypeId, BtfError> {
        let n = vlen(name, vars.len())?;
        let id = self.push_type(name, KIND_DATASEC, n, size)?;
        for v in vars {
            push_u32(&mut self.types, v.var);
            push_u32(&mut self.types, v.offset);
            push_u32(&mut self.types, v.size);
        }
        Ok(id)
    }

    /// The section bytes: the 24-byte header, the types, then the strings.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BtfError> {
        const HDR_LEN: u32 = 24;
        let type_len = u32::try_from(self.types.len()).map_err(|_| BtfError::SectionTooLarge)?;
        let str_len =
            u32::try_from(self.strings.bytes.len()).map_err(|_| BtfError::SectionTooLarge)?;
        type_len
            .checked_add(str_len)
            .ok_or(BtfError::SectionTooLarge)?;
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.bytes.len());
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1); // version
        out.push(0); // flags
        push_u32(&mut out, HDR_LEN);
        push_u32(&mut out, 0); // type_off
        push_u32(&mut out, type_len);
        push_u32(&mut out, type_len); // str_off
        push_u32(&mut out, str_len);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings.bytes);
        Ok(out)
    }
}

/// One `func_info` record: the function starting at `insn_off` has BTF type `type_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncRecord {
    /// Byte offset of the function's first instruction in its ELF section.
    pub insn_off: u32,
    /// The `FUNC` type.
    pub type_id: TypeId,
}

/// One `line_info` record: the instruction at `insn_off` comes from a source line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRecord {
    /// Byte offset of the instruction in its ELF section.
    pub insn_off: u32,
    /// Offset in the `.BTF` strings of the source file's name.
    pub file_name_off: u32,
    /// Offset in the `.BTF` strings of the source line's text.
    pub line_off: u32,
    /// `line << 10 | column`; see [`line_col`].
    pub line_col: u32,
}

/// Packs a 1-based line and column as `bpf_line_info.line_col` does: the line in the upper
/// 22 bits, the column in the lower 10. Columns past 1023 are clamped to 1023 (the field has
/// no room for them); lines past 2^22 - 1 are clamped to it.
pub fn line_col(line: u32, col: u32) -> u32 {
    (line.min(0x3f_ffff) << 10) | col.min(0x3ff)
}

/// A `.BTF.ext` section under construction: `func_info` and `line_info` per ELF section.
#[derive(Clone, Debug, Default)]
pub struct BtfExt {
    func_info: Vec<(u32, Vec<FuncRecord>)>,
    line_info: Vec<(u32, Vec<LineRecord>)>,
}

impl BtfExt {
    /// An empty `.BTF.ext`.
    pub fn new() -> BtfExt {
        BtfExt::default()
    }

    /// Adds the `func_info` records of the ELF section whose name is at `sec_name_off` in the
    /// `.BTF` strings. Sections without records are left out (libbpf rejects them).
    pub fn add_func_info(&mut self, sec_name_off: u32, records: Vec<FuncRecord>) {
        if !records.is_empty() {
            self.func_info.push((sec_name_off, records));
        }
    }

    /// Adds the `line_info` records of the ELF section whose name is at `sec_name_off`.
    /// Sections without records are left out (libbpf rejects them).
    pub fn add_line_info(&mut self, sec_name_off: u32, records: Vec<LineRecord>) {
        if !records.is_empty() {
            self.line_info.push((sec_name_off, records));
        }
    }

    /// The section bytes: a 32-byte header (with an empty CO-RE relocation part, as clang
    /// writes it), the `func_info` block, then the `line_info` block. Each block is its record
    /// size followed by, per section, the name offset, the record count and the records; an
    /// empty block has length 0 (libbpf rejects a block that holds only a record size).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BtfError> {
        let mut func = Vec::new();
        if !self.func_info.is_empty() {
            push_u32(&mut func, 8);
            for (sec, recs) in &self.func_info {
                push_u32(&mut func, *sec);
                push_u32(
                    &mut func,
                    u32::try_from(recs.len()).map_err(|_| BtfError::SectionTooLarge)?,
                );
                for r in recs {
                    push_u32(&mut func, r.insn_off);
                    push_u32(&mut func, r.type_id);
                }
            }
        }
        let mut line = Vec::new();
        if !self.line_info.is_empty() {
            push_u32(&mut line, 16);
            for (sec, recs) in &self.line_info {
                push_u32(&mut line, *sec);
                push_u32(
                    &mut line,
                    u32::try_from(recs.len()).map_err(|_| BtfError::SectionTooLarge)?,
                );
                for r in recs {
                    push_u32(&mut line, r.insn_off);
                    push_u32(&mut line, r.file_name_off);
                    push_u32(&mut line, r.line_off);
                    push_u32(&mut line, r.line_col);
                }
            }
        }
        let func_len = u32::try_from(func.len()).map_err(|_| BtfError::SectionTooLarge)?;
        let line_len = u32::try_from(line.len()).map_err(|_| BtfError::SectionTooLarge)?;
        let end = func_len
            .checked_add(line_len)
            .ok_or(BtfError::SectionTooLarge)?;
        let mut out = Vec::with_capacity(32 + func.len() + line.len());
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1); // version
        out.push(0); // flags
        push_u32(&mut out, 32); // hdr_len
        push_u32(&mut out, 0); // func_info_off, relative to the end of the header
        push_u32(&mut out, func_len);
        push_u32(&mut out, func_len); // line_info_off
        push_u32(&mut out, line_len);
        push_u32(&mut out, end); // core_relo_off
        push_u32(&mut out, 0); // core_relo_len
        out.extend_from_slice(&func);
        out.extend_from_slice(&line);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{find_tool, skip};
    use std::process::Command;

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    }

    /// Encodes `btf` and `ext`, checks `.BTF.ext` word by word against `ext_words` and the
    /// `.BTF` header against its own lengths, then has bpftool (libbpf's parser) dump the raw
    /// `.BTF` and compares that with `dump`.
    fn check(name: &str, btf: &Btf, ext: &BtfExt, dump: &str, ext_words: &[u32]) {
        let bytes = btf.to_bytes().expect("btf encodes");
        let w = words(&bytes[..24]);
        assert_eq!(w[0], 0x0001_eb9f, "magic, version 1, flags 0");
        assert_eq!(w[1], 24, "hdr_len");
        assert_eq!(
            24 + w[3] as usize + w[5] as usize,
            bytes.len(),
            "type_len + str_len"
        );
        assert_eq!(bytes.last(), Some(&0), "strings end with a nul");
        let ext_bytes = ext.to_bytes().expect("btf.ext encodes");
        assert_eq!(words(&ext_bytes), ext_words, "btf.ext words");

        let Some(bpftool) = find_tool("bpftool") else {
            return skip("bpftool not found");
        };
        let file = std::env::temp_dir().join(format!("nfcc-btf-{}-{name}.btf", std::process::id()));
        std::fs::write(&file, &bytes).expect("write temp file");
        let out = Command::new(bpftool)
            .args(["btf", "dump", "file"])
            .arg(&file)
            .output();
        let _ = std::fs::remove_file(&file);
        let out = out.expect("run bpftool");
        assert!(
            out.status.success(),
            "bpftool btf dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dump.trim());
    }

    #[test]
    fn map_struct_var_datasec_and_func_encode_as_libbpf_reads_them() {
        let mut b = Btf::new();
        let int = b.add_int("int", 4, true).unwrap();
        let idx = b.add_int("__ARRAY_SIZE_TYPE__", 4, false).unwrap();
        let arr2 = b.add_array(int, idx, 2).unwrap();
        let p2 = b.add_ptr(arr2).unwrap();
        let arr64 = b.add_array(int, idx, 64).unwrap();
        let p64 = b.add_ptr(arr64).unwrap();
        let s = b
            .add_struct(
                "",
                16,
                &[
                    Member {
                        name: "type",
                        ty: p2,
                        bit_offset: 0,
                    },
                    Member {
                        name: "max_entries",
                        ty: p64,
                        bit_offset: 64,
                    },
                ],
            )
            .unwrap();
        let v = b
            .add_var("counters", s, VarLinkage::GlobalAllocated)
            .unwrap();
        b.add_datasec(
            ".maps",
            16,
            &[VarSecInfo {
                var: v,
                offset: 0,
                size: 16,
            }],
        )
        .unwrap();
        let fwd = b.add_fwd_struct("xdp_md").unwrap();
        let pctx = b.add_ptr(fwd).unwrap();
        let proto = b
            .add_func_proto(
                int,
                &[Param {
                    name: "ctx",
                    ty: pctx,
                }],
            )
            .unwrap();
        let f = b.add_func("prog", proto, FuncLinkage::Global).unwrap();
        assert_eq!(b.add_string("int").unwrap(), 1, "strings are deduplicated");
        let sec = b.add_string("xdp").unwrap();
        let file = b.add_string("a.nf").unwrap();
        let line = b.add_string("rule r { drop }").unwrap();

        let mut ext = BtfExt::new();
        ext.add_func_info(
            sec,
            vec![FuncRecord {
                insn_off: 0,
                type_id: f,
            }],
        );
        ext.add_line_info(
            sec,
            vec![
                LineRecord {
                    insn_off: 0,
                    file_name_off: file,
                    line_off: line,
                    line_col: line_col(3, 1),
                },
                LineRecord {
                    insn_off: 16,
                    file_name_off: file,
                    line_off: line,
                    line_col: line_col(3, 12),
                },
            ],
        );
        ext.add_line_info(sec + 1, Vec::new());
        check(
            "maps",
            &b,
            &ext,
            "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED
[2] INT '__ARRAY_SIZE_TYPE__' size=4 bits_offset=0 nr_bits=32 encoding=(none)
[3] ARRAY '(anon)' type_id=1 index_type_id=2 nr_elems=2
[4] PTR '(anon)' type_id=3
[5] ARRAY '(anon)' type_id=1 index_type_id=2 nr_elems=64
[6] PTR '(anon)' type_id=5
[7] STRUCT '(anon)' size=16 vlen=2
	'type' type_id=4 bits_offset=0
	'max_entries' type_id=6 bits_offset=64
[8] VAR 'counters' type_id=7, linkage=global
[9] DATASEC '.maps' size=16 vlen=1
	type_id=8 offset=0 size=16 (VAR 'counters')
[10] FWD 'xdp_md' fwd_kind=struct
[11] PTR '(anon)' type_id=10
[12] FUNC_PROTO '(anon)' ret_type_id=1 vlen=1
	'ctx' type_id=11
[13] FUNC 'prog' type_id=12 linkage=global",
            &[
                0x0001_eb9f,
                32, // magic/version/flags, hdr_len
                0,
                20,
                20,
                44,
                64,
                0, // func (off, len), line (off, len), core_relo (off, len)
                8,
                sec,
                1,
                0,
                13, // func_info: rec size, section, count, record
                16,
                sec,
                2, // line_info: rec size, section, count
                0,
                file,
                line,
                (3 << 10) | 1,
                16,
                file,
                line,
                (3 << 10) | 12,
            ],
        );
    }

    #[test]
    fn empty_ext_blocks_have_length_zero() {
        let mut b = Btf::new();
        b.add_int("int", 4, true).unwrap();
        check(
            "empty-ext",
            &b,
            &BtfExt::new(),
            "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED",
            &[0x0001_eb9f, 32, 0, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn limits_are_errors_not_bad_blobs() {
        let mut b = Btf::new();
        assert_eq!(
            b.add_string("a\0b"),
            Err(BtfError::NulInString("a\0b".into()))
        );
        let members = vec![
            Member {
                name: "m",
                ty: 0,
                bit_offset: 0
            };
            MAX_VLEN + 1
        ];
        assert_eq!(
            b.add_struct("big", 0, &members).unwrap_err().to_string(),
            "btf type \"big\" has 65536 members (the limit is 65535)"
        );
        let long = "x".repeat(MAX_STRING_OFFSET as usize);
        b.add_string(&long).unwrap();
        assert_eq!(b.add_string("one more"), Err(BtfError::StringsTooLarge));
        assert_eq!(
            line_col(5, 4000),
            (5 << 10) | 1023,
            "columns clamp to 10 bits"
        );
    }
}
