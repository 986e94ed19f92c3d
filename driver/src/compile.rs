//! `nfcc compile` and `nfcc import classbench`: a checked file to an object, its disassembly or
//! its IR (with the statistics `--stats` prints, the verifier's count where the kernel
//! allows), the NIC/host split's two objects, and ClassBench filter sets to `.nf` text.

use crate::error::DriverError;
use crate::source::{check_file, compile_program_opts, Chosen};
use nfcc_compiler::compile::{prog_type, Compiled, CompiledProgram};
use nfcc_dsl::checked::Target;
use std::path::{Path, PathBuf};

/// What `compile` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Emit {
    /// A BPF ELF object.
    Elf,
    /// The disassembled instructions.
    Asm,
    /// The match-action IR.
    Ir,
    /// The initial map entries as a `bpftool batch file`, for loaders that skip the object's
    /// `.nfcc.policy` section (bpftool, ip, libbpf).
    MapInit,
}

impl Emit {
    /// The file extension of the output.
    pub fn extension(self) -> &'static str {
        match self {
            Emit::Elf => "o",
            Emit::Asm => "s",
            Emit::Ir => "ir",
            Emit::MapInit => "map-init",
        }
    }
}

/// A compiled file and what to write.
pub struct CompileOutput {
    /// The compiled programs.
    pub compiled: Compiled,
    /// The bytes to write (the object, or text).
    pub bytes: Vec<u8>,
    /// The check's warnings, rendered (empty when none).
    pub warnings: String,
}

/// Which classifier runs of rules may get (`--classifier`; see `nfcc_compiler::classify`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Classifier {
    /// The compiler chooses per run of rules, by cost.
    #[default]
    Auto,
    /// Rules as code (merged equality runs still one lookup): no classifier.
    Linear,
    /// A decision tree for every run of rules a tree can hold.
    Tree,
    /// Tuple space search for every run of rules tuples can hold (trees where they cannot).
    Tuples,
}

impl Classifier {
    /// The compiler's choice.
    pub fn choice(self) -> nfcc_compiler::classify::Choice {
        match self {
            Classifier::Auto => nfcc_compiler::classify::Choice::Auto,
            Classifier::Linear => nfcc_compiler::classify::Choice::Linear,
            Classifier::Tree => nfcc_compiler::classify::Choice::Tree,
            Classifier::Tuples => nfcc_compiler::classify::Choice::Tuples,
        }
    }
}

/// Compiles `file` for `target` with `classifier` and renders `emit`.
pub fn compile(
    file: &Path,
    target: Option<Target>,
    emit: Emit,
    classifier: Classifier,
) -> Result<CompileOutput, DriverError> {
    let c = check_file(file, target)?;
    let Some(program) = &c.program else {
        return Err(DriverError::Diagnostics {
            rendered: c.render(false),
        });
    };
    let opts = nfcc_compiler::compile::Options {
        target,
        classifier: classifier.choice(),
        ..Default::default()
    };
    let compiled = compile_program_opts(program, &c.label(), &c.source, &opts)?;
    let bytes = match emit {
        Emit::Elf => compiled.object.clone(),
        Emit::Asm => compiled
            .programs
            .iter()
            .map(|p| format!("{} ({}):\n{}", p.name, p.section, p.asm()))
            .collect::<String>()
            .into_bytes(),
        Emit::Ir => compiled
            .programs
            .iter()
            .map(CompiledProgram::ir_text)
            .collect::<String>()
            .into_bytes(),
        Emit::MapInit => map_init(&compiled, &c.label()).into_bytes(),
    };
    Ok(CompileOutput {
        compiled,
        bytes,
        warnings: c.render(false),
    })
}

/// The initial entries of every program's maps as a `bpftool batch file` over the maps an
/// object loaded by bpftool pins (`bpftool prog loadall OBJ /sys/fs/bpf/POLICY pinmaps
/// /sys/fs/bpf/POLICY_maps`): what `nfcc load OBJ` writes from the `.nfcc.policy` section.
pub fn map_init(compiled: &Compiled, label: &str) -> String {
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = format!(
        "# Initial map entries of {label}, for loaders that skip its .nfcc.policy section\n\
         # (`nfcc load OBJ` needs none of this). After\n\
         #   bpftool prog loadall OBJ /sys/fs/bpf/POLICY pinmaps /sys/fs/bpf/POLICY_maps\n\
         # run: bpftool batch file THIS\n"
    );
    for p in &compiled.programs {
        let entries = p.entries();
        out.push_str(&format!("# {}: {} entries\n", p.name, entries.len()));
        for (m, k, v) in entries {
            out.push_str(&format!(
                "map update pinned /sys/fs/bpf/{}_maps/{m} key hex {} value hex {}\n",
                p.name,
                hex(&k),
                hex(&v)
            ));
        }
    }
    out
}

/// How many initial map entries the object's programs have (what a loader that skips the
/// `.nfcc.policy` section leaves out).
pub fn initial_entries(compiled: &Compiled) -> usize {
    compiled.programs.iter().map(|p| p.entries().len()).sum()
}

/// What `compile --stats` prints for a program: instructions, stack, the verifier's count,
/// the maps, and what the classifier pass chose for each run of rules and why.
pub fn stats(object: &[u8], p: &CompiledProgram) -> Result<String, DriverError> {
    let maps: Vec<String> = p
        .maps
        .iter()
        .map(|(m, init)| {
            format!(
                "{} ({}, {} max, {} initial)",
                m.name,
                m.kind.name(),
                m.max_entries,
                init.len()
            )
        })
        .collect();
    let bound = match nfcc_bpf::paths::longest_path(&p.code) {
        Ok(n) => format!("at most {n} instructions on any path"),
        Err(e) => format!("no static bound: {e}"),
    };
    let mut out = format!(
        "{}: {} instructions, {} stack bytes, verifier processed {}\n  worst case: {bound} (the \
         longest path through the program; helpers count as one)\n  maps: {}",
        p.name,
        p.insns,
        p.stack,
        verified_insns(object, p)?,
        maps.join(", ")
    );
    for d in &p.ir.classifiers {
        out.push_str(&format!(
            "\n  rules {}..{} ({} rules): {} — {}",
            d.first, d.last, d.rules, d.form, d.why
        ));
        match d.form {
            nfcc_compiler::classify::Form::Tree => out.push_str(&format!(
                "; {} nodes, {} boxes, depth {}, leaves of up to {} boxes, {:.1} KiB of maps",
                d.nodes,
                d.boxes,
                d.depth,
                d.bucket,
                d.bytes as f64 / 1024.0
            )),
            nfcc_compiler::classify::Form::Tuples => out.push_str(&format!(
                "; {} tuples, {} boxes, buckets of up to {} boxes, {:.1} KiB of maps",
                d.tuples,
                d.boxes,
                d.bucket,
                d.bytes as f64 / 1024.0
            )),
            nfcc_compiler::classify::Form::Linear => {}
        }
    }
    Ok(out)
}

/// The verifier's processed-instruction count, or why it is not available. A verifier
/// rejection is an error (a compiler bug: checked policies must verify), with the log, whose
/// `;` lines name the `.nf` rule through the object's line info.
pub fn verified_insns(object: &[u8], p: &CompiledProgram) -> Result<String, DriverError> {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        return Ok(format!("n/a ({why})"));
    }
    match nfcc_runtime::load(object, &p.name, prog_type(p.hook)) {
        Ok(l) => Ok(l.verified_insns().map_or_else(
            || "n/a (kernel did not report it)".into(),
            |n| format!("{n} instructions"),
        )),
        Err(nfcc_runtime::RuntimeError::Verifier { program, log, .. }) => {
            Err(DriverError::Environment(format!(
                "the kernel verifier rejected `{program}`; this is a compiler bug, please \
             report it with the policy. Verifier log (`;` lines are the .nf rules):\n{log}"
            )))
        }
        Err(e) => Ok(format!("n/a (load failed: {e})")),
    }
}

/// One stage of a split written to a file.
pub struct SplitFile {
    /// `nic` or `host`.
    pub stage: &'static str,
    /// Where it was written.
    pub path: PathBuf,
    /// Its instruction count.
    pub insns: usize,
}

/// `nfcc compile --target nfp --split`: the NIC stage to OUT.nic.o, the host stage to
/// OUT.host.o (only the stages the split has).
pub fn split(
    file: &Path,
    output: Option<&Path>,
    wanted: Option<&str>,
) -> Result<Vec<SplitFile>, DriverError> {
    let c = Chosen::read(file, wanted)?;
    let split = nfcc_offload::split::split(
        &c.policy,
        &c.label,
        &c.source,
        &nfcc_offload::Profile::nfp(),
    )
    .map_err(|d| DriverError::Diagnostics {
        rendered: nfcc_dsl::diag::render(&c.label, &c.source, &d),
    })?;
    let base = output.map_or_else(|| file.with_extension("o"), Path::to_path_buf);
    let stem = base.with_extension("");
    let mut out = Vec::new();
    for (stage, what) in [(&split.nic, "nic"), (&split.host, "host")] {
        if let Some(s) = stage {
            let path = PathBuf::from(format!("{}.{what}.o", stem.display()));
            crate::error::write(&path, &s.compiled.object)?;
            out.push(SplitFile {
                stage: what,
                path,
                insns: s.compiled.programs[0].insns,
            });
        }
    }
    Ok(out)
}

/// How `import classbench` assigns actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Actions {
    /// Every rule drops.
    Drop,
    /// Rule i drops when i is even and passes when odd, so rule order matters.
    Alternate,
}

/// A policy name from a file's stem: non-identifier characters become `_`, and a leading
/// digit gets a `p_` in front.
pub fn policy_name_of(file: &Path) -> String {
    let stem = file.file_stem().map_or("classbench".to_string(), |s| {
        s.to_string_lossy().into_owned()
    });
    let cleaned: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if cleaned.starts_with(|c: char| c.is_ascii_digit()) {
        format!("p_{cleaned}")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_stems_are_identifiers() {
        assert_eq!(policy_name_of(Path::new("/x/acl1_10k")), "acl1_10k");
        assert_eq!(policy_name_of(Path::new("10k-fw.txt")), "p_10k_fw");
    }
}
