//! The tools and loaders a written object must satisfy: an independent ELF reader's summary,
//! llvm-readelf, llvm-objdump and bpftool's BTF parser, and where privileges allow libbpf
//! (through `bpftool prog loadall`, with the kernel's line info read back) and aya.

use crate::elf::*;
use crate::test_support::{find_tool, skip};
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a tool and returns its stdout, failing the test on a non-zero exit or on anything
/// printed to stderr (libbpf prints its warnings there, e.g. when the kernel rejects BTF).
pub(super) fn run(tool: &Path, args: &[&str], file: &Path) -> String {
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
pub(super) fn privileged() -> Result<(), String> {
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
pub(super) fn bpffs() -> Result<(), String> {
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
pub(super) fn summary(bytes: &[u8]) -> String {
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
pub(super) fn check(name: &str, obj: &ObjectDef, expect: &str) {
    let bytes = match write_object(obj) {
        Err(e) => return assert_eq!(format!("error: {e}"), expect),
        Ok(bytes) => bytes,
    };
    assert_eq!(summary(&bytes).trim(), expect.trim(), "summary of {name}");
    verify(name, obj, &bytes);
}

/// The tool and loader half of `check`, shared with the comparison against clang.
pub(super) fn verify(name: &str, obj: &ObjectDef, bytes: &[u8]) {
    let file = temp_file(&format!("{name}.o"));
    std::fs::write(&file.0, bytes).expect("write temp object");
    tools(name, obj, &file.0);
    load_with_aya(obj, bytes);
}

/// A temporary file, removed when dropped (also when a check fails).
pub(super) struct TempFile(pub(super) PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn temp_file(name: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!("nfcc-elf-{}-{name}", std::process::id())))
}

/// Has the standard tools read the object at `file` and, where privileged, libbpf load
/// it (through bpftool) and the kernel report its line info back.
pub(super) fn tools(name: &str, obj: &ObjectDef, file: &Path) {
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
pub(super) fn load_with_aya(obj: &ObjectDef, bytes: &[u8]) {
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
