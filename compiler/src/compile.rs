//! The compiler driver: checked program to ELF object, through lowering, the IR verifier,
//! code generation and the ELF writer. One object holds one program per policy; each policy's
//! maps are named after it so that several policies can share an object.

use crate::codegen::Code;
use crate::elf::{self, LineInfo, MapDef, MapKind, ObjectDef, ProgramDef};
use crate::ir::{MapPurpose, Program};
use nfcc_bpf::policy_section::{PolicySection, ProgramState};
use nfcc_dsl::checked::{self as ck, Hook, Target};
use nfcc_dsl::diag::{Diagnostic, SourceMap};

pub use crate::compiled::{prog_type, Compiled, CompiledProgram, MapEntries};

/// The ELF section a hook's program goes in: names aya, libbpf and iproute2 all accept.
pub fn section(hook: Hook) -> &'static str {
    prog_type(hook).section()
}

fn map_kind(purpose: MapPurpose, target: Target) -> (MapKind, u32) {
    match (purpose, target) {
        (MapPurpose::ExactSet, _) => (MapKind::Hash, 0),
        // BPF_F_NO_PREALLOC: the kernel requires it for LPM tries.
        (MapPurpose::PrefixSet, _) => (MapKind::LpmTrie, 1),
        (MapPurpose::PrefixHash, _) => (MapKind::Hash, 0),
        (MapPurpose::PrefixLengths, _) => (MapKind::Array, 0),
        (MapPurpose::RuleStats, Target::Host) => (MapKind::PercpuArray, 0),
        (MapPurpose::RuleStats, Target::Nfp) => (MapKind::Array, 0),
        (MapPurpose::Counter, Target::Host) => (MapKind::LruPercpuHash, 0),
        (MapPurpose::Counter, Target::Nfp) => (MapKind::Hash, 0),
        (MapPurpose::Limiter, Target::Host) => (MapKind::LruHash, 0),
        (MapPurpose::Limiter, Target::Nfp) => (MapKind::Hash, 0),
        (MapPurpose::RedirectTargets, _) => (MapKind::Array, 0),
        (MapPurpose::XskSockets, _) => (MapKind::XskMap, 0),
        (MapPurpose::Table | MapPurpose::MergedRules, _) => (MapKind::Hash, 0),
        (MapPurpose::Samples, _) => (MapKind::RingBuf, 0),
        (MapPurpose::Clock, _) => (MapKind::Array, 0),
        (MapPurpose::Maglev | MapPurpose::PoolBackends | MapPurpose::PoolActive, _) => {
            (MapKind::Array, 0)
        }
        (MapPurpose::Flows, _) => (MapKind::LruHash, 0),
        (
            MapPurpose::ClassifierNodes
            | MapPurpose::ClassifierBoxes
            | MapPurpose::ClassifierSelect,
            _,
        ) => (MapKind::Array, 0),
        (MapPurpose::ClassifierTuples, _) => (MapKind::Hash, 0),
    }
}

/// A map's name in the object: the policy's name, then the IR's (one object holds the maps of
/// every policy of a file).
pub fn object_map_name(policy: &str, ir_name: &str) -> String {
    nfcc_bpf::layout::object_map_name(policy, ir_name)
}

/// The object's name for a policy's AF_XDP socket map (`redirect xsk`): entry `q` holds the
/// socket bound on receive queue `q`, which userspace puts there.
pub fn xsk_map_name(policy: &str) -> String {
    nfcc_bpf::layout::xsk_map_name(policy)
}

/// The object's name for a policy's redirect-targets map: slot `i` holds the interface index
/// of `ir.redirects[i]`, which the loader fills in (interface names resolve only on the box).
pub fn redirect_map_name(policy: &str) -> String {
    nfcc_bpf::layout::redirect_map_name(policy)
}

/// The object's name for a policy's per-rule statistics map (packets and bytes per rule, then
/// the default).
pub fn stats_map_name(policy: &str) -> String {
    nfcc_bpf::layout::stats_map_name(policy)
}

/// The object's name for a policy's counter map.
pub fn counter_map_name(policy: &str, counter: &str) -> String {
    object_map_name(policy, &crate::lower::counter_map(counter))
}

/// Where `expect counter NAME[KEY]` reads: the object's map of counter `id` of `policy`
/// (compiled as program `program`) and the key bytes for `key`. Every engine reads counters
/// through this, then sums the value with [`counter_sum`].
pub fn counter_entry(
    policy: &ck::Policy,
    program: &str,
    id: ck::CounterId,
    key: &[ck::Scalar],
) -> (String, Vec<u8>) {
    let c = &policy.counters[id.index()];
    (
        counter_map_name(program, &c.name),
        nfcc_dsl::eval::key_of_scalars(&c.key, key),
    )
}

/// A counter or statistics value as read from its map — {packets, bytes} per CPU, one CPU or
/// many — summed over CPUs.
pub fn counter_sum(value: &[u8]) -> (u64, u64) {
    let c = nfcc_bpf::layout::Counts::sum(value);
    (c.packets, c.bytes)
}

/// Compiles every policy of a checked file into one object.
pub fn compile(
    program: &ck::Program,
    source_name: &str,
    source: &str,
    target: Option<Target>,
) -> Result<Compiled, Vec<Diagnostic>> {
    compile_with(program, source_name, source, target, false)
}

/// [`compile`]; with `virtual_clock`, limiters read the time from a `<policy>_nfcc_clock`
/// array map (one u64 of nanoseconds) instead of `bpf_ktime_get_ns`, for deterministic
/// kernel tests that must agree with the evaluator's frozen clock.
pub fn compile_with(
    program: &ck::Program,
    source_name: &str,
    source: &str,
    target: Option<Target>,
    virtual_clock: bool,
) -> Result<Compiled, Vec<Diagnostic>> {
    let opts = Options {
        target,
        virtual_clock,
        ..Options::default()
    };
    compile_opts(program, source_name, source, &opts)
}

/// How to compile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The target (default: each policy's own, else the host).
    pub target: Option<Target>,
    /// Limiters read a virtual clock map (see [`compile_with`]).
    pub virtual_clock: bool,
    /// Which classifier runs of rules may get (`--classifier`).
    pub classifier: crate::classify::Choice,
    /// How the program's data is laid out (room for updates in place: `nfcc load`).
    pub layout: crate::room::Layout,
}

/// [`compile`] with every option.
pub fn compile_opts(
    program: &ck::Program,
    source_name: &str,
    source: &str,
    opts: &Options,
) -> Result<Compiled, Vec<Diagnostic>> {
    let (target, virtual_clock) = (opts.target, opts.virtual_clock);
    let mut errors = Vec::new();
    let mut defs = Vec::new();
    let mut maps = Vec::new();
    let mut compiled = Vec::new();
    for policy in &program.policies {
        let t = target.or(policy.offload).unwrap_or(Target::Host);
        let (ir, code) = match crate::pipeline::generate_laid_out(
            policy,
            t,
            virtual_clock,
            opts.classifier,
            &opts.layout,
        ) {
            Ok(x) => x,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        if let Some(d) = too_long(policy, &ir, code.insns.len()) {
            errors.push(d);
            continue;
        }
        let (prog, pmaps) = program_def(policy, &ir, &code, source, maps.len() as u32, t);
        if t == Target::Nfp {
            // The generator stays inside the NIC's limits by construction; this independent
            // check turns a slip into a compile error rather than a driver's refusal.
            let bad = nfp_violations(&prog, &pmaps);
            if !bad.is_empty() {
                errors.push(
                    Diagnostic::error(
                        "E0205",
                        policy.span,
                        format!("internal compiler error: the nfp code for `{}` uses what the NIC lacks", policy.name),
                    )
                    .with_label(bad.join("; "))
                    .with_help("compile for the host (`--target host`) and report this as a bug"),
                );
                continue;
            }
        }
        compiled.push(CompiledProgram {
            name: policy.name.clone(),
            section: prog.section.clone(),
            hook: policy.hook,
            ir,
            code: prog.insns.clone(),
            insns: prog.insns.len(),
            stack: code.stack,
            maps: pmaps.clone(),
        });
        maps.extend(pmaps.into_iter().map(|(m, _)| m));
        defs.push(prog);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The object is the whole policy: what its maps start with and how its stage is laid out
    // travel in `.nfcc.policy` (loaders that do not know the section skip it).
    let section = PolicySection {
        programs: compiled
            .iter()
            .filter_map(|cp| {
                let policy = program.policies.iter().find(|p| p.name == cp.name)?;
                let state = ProgramState {
                    program: cp.name.clone(),
                    hook: policy.hook.as_str().to_string(),
                    rules: crate::describe::rules(policy),
                    stage: crate::describe::stage(policy, cp),
                    redirects: cp.ir.redirects.clone(),
                    entry_maps: Vec::new(),
                    entry_count: 0,
                    entries: Vec::new(),
                };
                Some(state.with_entries(cp.entries()))
            })
            .collect(),
        source: Some(nfcc_bpf::policy_section::CompiledFrom {
            name: source_name.to_string(),
            text: source.to_string(),
            target: target.map(|t| t.name().to_string()),
            classifier: opts.classifier.name().to_string(),
        }),
    };
    let obj = ObjectDef {
        license: "GPL".into(),
        maps,
        programs: defs,
        source_name: source_name.to_string(),
        source: source.to_string(),
        notes: vec![(
            nfcc_bpf::policy_section::SECTION.to_string(),
            section.to_bytes(),
        )],
    };
    match elf::write_object(&obj) {
        Ok(object) => Ok(Compiled {
            object,
            programs: compiled,
        }),
        Err(e) => Err(vec![Diagnostic::error(
            "E0204",
            nfcc_dsl::ast::Span::default(),
            format!("cannot write the object: {e}"),
        )]),
    }
}

/// The most instructions the kernel loads in one program (`BPF_COMPLEXITY_LIMIT_INSNS`; a
/// longer one is refused with `E2BIG`, "argument list too long").
pub const MAX_INSNS: usize = 1_000_000;

/// The diagnostic for a program of `insns` instructions that the kernel would not load, in
/// the policy's terms: how many rules stay code, and what to do.
pub fn too_long(policy: &ck::Policy, ir: &Program, insns: usize) -> Option<Diagnostic> {
    if insns <= MAX_INSNS {
        return None;
    }
    let code_rules = ir.rules.iter().filter(|r| r.merged == 0).count();
    Some(
        Diagnostic::error(
            crate::codes::TOO_LONG,
            policy.span,
            format!(
                "policy `{}` compiles to {insns} instructions, over the kernel's limit of {MAX_INSNS} per program (the load would fail with E2BIG)",
                policy.name
            ),
        )
        .with_label(format!(
            "{code_rules} of its rules stay code, one branch each: rules with actions, sets, tables, limiters or payload tests, and runs a classifier does not take"
        ))
        .with_help("merge such rules (one set or table instead of many rules), split the policy, or let runs of plain rules be classified (`--classifier auto` or `tree`)"),
    )
}

/// What in a program and its maps the NIC would refuse, in words.
fn nfp_violations(prog: &ProgramDef, maps: &[(MapDef, MapEntries)]) -> Vec<String> {
    let mut out: Vec<String> = crate::nfp::violations(&prog.insns)
        .into_iter()
        .map(|v| format!("instruction {}: {}", v.insn, v.why))
        .collect();
    for (m, _) in maps {
        if let Some(why) = crate::nfp::map_violation(m.kind, m.flags) {
            out.push(format!("map {}: {why}", m.name));
        }
    }
    out
}

/// The program definition for the ELF writer, with map indices shifted by `map_base` (the
/// maps of earlier policies in the same object).
fn program_def(
    policy: &ck::Policy,
    ir: &Program,
    code: &Code,
    source: &str,
    map_base: u32,
    target: Target,
) -> (ProgramDef, Vec<(MapDef, MapEntries)>) {
    let mut maps = Vec::new();
    for m in &ir.maps {
        let (kind, flags) = map_kind(m.purpose, target);
        maps.push((
            MapDef {
                name: object_map_name(&policy.name, &m.name),
                kind,
                key_size: m.key_size,
                value_size: m.value_size,
                max_entries: m.max_entries,
                flags,
            },
            m.init.clone(),
        ));
    }
    // NIC code keeps its packet vector on the stack and has no scratch map.
    if code.scratch_size > 0 {
        maps.push((
            MapDef {
                name: object_map_name(&policy.name, nfcc_bpf::layout::SCRATCH_MAP),
                kind: MapKind::PercpuArray,
                key_size: 4,
                value_size: code.scratch_size,
                max_entries: 1,
                flags: 0,
            },
            Vec::new(),
        ));
    }
    let mut insns = code.insns.clone();
    for i in &mut insns {
        if i.is_ld_imm64() && i.src == nfcc_bpf::insn::PSEUDO_MAP_FD {
            i.imm += map_base as i32;
        }
    }
    // One index of line starts for the whole file: a 10,000-rule policy has 10,000 rules to
    // locate, and scanning from the top for each would be quadratic.
    let map = SourceMap::new("", source);
    let at = |offset: u32| {
        let (line, col) = map.line_col(offset as usize);
        (line as u32, col as u32)
    };
    let (l, c) = at(policy.span.start);
    let mut line_info = vec![LineInfo {
        insn: 0,
        line: l,
        col: c,
    }];
    for &(insn, offset) in &code.rule_starts {
        let (line, col) = at(offset);
        line_info.push(LineInfo {
            insn: insn as u32,
            line,
            col,
        });
    }
    line_info.sort_by_key(|li| li.insn);
    line_info.dedup_by_key(|li| li.insn);
    (
        ProgramDef {
            name: policy.name.clone(),
            section: section(policy.hook).into(),
            insns,
            line_info,
        },
        maps,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_the_kernel_would_refuse_is_a_diagnostic_in_policy_terms() {
        let src = "policy big on xdp {\n  counter c: key ip.src\n  rule r: udp => count c, drop\n  default pass\n}\n";
        let (program, _) = nfcc_dsl::check_source(src, &Default::default());
        let program = program.expect("checks");
        let policy = &program.policies[0];
        let ir = crate::lower::lower(policy, Target::Host).expect("lowers");
        assert!(too_long(policy, &ir, MAX_INSNS).is_none());
        let d = too_long(policy, &ir, 1_170_000).expect("over the limit");
        let text = nfcc_dsl::diag::render("big.nf", src, &[d]);
        assert!(
            text.contains("error[E0206]: policy `big` compiles to 1170000 instructions, over the kernel's limit of 1000000")
                && text.contains("1 of its rules stay code")
                && text.contains("--classifier auto"),
            "{text}"
        );
    }
}
