//! Running one generated file: check and compile it, load the object as deployed, and run its
//! frames on the kernel, the emulator and the evaluator, which must agree on verdict, rule,
//! bytes and counters.

use nfcc_compiler::compile::{compile, compile_opts, Compiled};
use nfcc_dsl::checked::{
    CounterId, Family, Field, Hook, Program, RuleRef, Scalar, Target, Terminal,
};
use nfcc_dsl::eval::{self, Meta, State};
use nfcc_dsl::testing::{hex, Engine};
use nfcc_dsl::{check_source, CheckOptions, Severity};
use nfcc_engines::{EmulatorEngine, KernelEngine};
use nfcc_runtime::{load, ProgType, RuntimeError};

/// What the evaluator sees of a packet's metadata under `BPF_PROG_TEST_RUN`.
///
/// The kernel's test runner runs XDP programs on the receive queue 0 of the loopback device
/// and TC programs on an skb of the loopback device, whose index is 1 in every network
/// namespace; no mark is set.
pub(crate) fn test_run_meta() -> Meta {
    Meta {
        ifindex: 1,
        rxq: 0,
        mark: 0,
    }
}

/// The program kind of a hook.
pub(crate) fn prog_kind(hook: Hook) -> ProgType {
    match hook {
        Hook::Xdp => ProgType::Xdp,
        _ => ProgType::Tc,
    }
}

/// A failure of one generated or saved file.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// The checker refused the text (a generator bug).
    Check(String),
    /// The compiler refused with E0201 only (a generator bug: unsupported construct).
    Refused(String),
    /// The compiler failed otherwise.
    Compile(String),
    /// The kernel refused the object or a program (verifier log included).
    Load {
        /// The policy whose program failed.
        policy: String,
        /// The runtime error, displayed.
        message: String,
    },
    /// The kernel and the evaluator disagree on a frame, or the kernel engine failed.
    Disagree(Box<Disagreement>),
}

/// A frame on which the kernel and the evaluator disagree.
#[derive(Clone, Debug)]
pub(crate) struct Disagreement {
    /// The policy.
    pub(crate) policy: String,
    /// The packet literal.
    pub(crate) literal: String,
    /// The literals of the frames run before it on the same state (limiter buckets carry over
    /// from frame to frame), oldest first.
    pub(crate) before: Vec<String>,
    /// The evaluator's answer (verdict and rule name).
    pub(crate) eval: (Terminal, String),
    /// What differs: `verdict` (verdict or deciding rule), `bytes` (only the emitted
    /// bytes), `counter`, or `engine` (the kernel engine failed).
    pub(crate) kind: &'static str,
    /// What happened, in words.
    pub(crate) message: String,
}

impl Failure {
    /// The failure in words.
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Check(m) => format!("the checker refused the generated text:\n{m}"),
            Failure::Refused(m) => format!("the compiler refused a supported construct:\n{m}"),
            Failure::Compile(m) => format!("the compiler failed:\n{m}"),
            Failure::Load { policy, message } => format!("loading `{policy}` failed: {message}"),
            Failure::Disagree(d) => format!("policy `{}`: {}", d.policy, d.message),
        }
    }
}

/// What one successful file run measured.
#[derive(Default)]
pub(crate) struct Measured {
    /// Programs loaded.
    pub(crate) programs: usize,
    /// Verified instructions of each program, when the kernel reports them.
    pub(crate) verified: Vec<u32>,
    /// Instructions of each program.
    pub(crate) insns: Vec<usize>,
    /// Frames compared.
    pub(crate) compared: usize,
    /// Frames the kernel's test runner cannot take.
    pub(crate) short: usize,
    /// Tested programs with a classifier tree, and the rules their trees hold.
    pub(crate) trees: usize,
    pub(crate) tree_rules: usize,
    /// Tested programs with tuple space search, and the rules their tuples hold.
    pub(crate) tuples: usize,
    pub(crate) tuple_rules: usize,
}

/// Checks `source` and compiles it twice: as deployed (limiters read the kernel's clock), and
/// for tests (limiters read a virtual clock that the kernel engine sets to the evaluator's).
pub(crate) fn check_and_compile(
    name: &str,
    source: &str,
    target: Option<Target>,
) -> Result<(Program, Compiled, Compiled), Failure> {
    let (program, diags) = check_source(source, &CheckOptions { target });
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    let program = match program {
        Some(p) if errors.is_empty() => p,
        _ => {
            return Err(Failure::Check(nfcc_dsl::diag::render_short(
                name, source, &diags,
            )))
        }
    };
    let refused = |diags: Vec<nfcc_dsl::Diagnostic>| {
        let text = nfcc_dsl::diag::render_short(name, source, &diags);
        if diags.iter().all(|d| d.code == "E0201") {
            Failure::Refused(text)
        } else {
            Failure::Compile(text)
        }
    };
    let deployed = compile(&program, name, source, target).map_err(refused)?;
    // The object the frames run on in the kernel classifies every run of box rules with a
    // tree, or (every other file) with tuples, whatever the cost, so both classifiers meet
    // every generated shape; the deployed object (the emulator's) keeps the compiler's own
    // choice, packed.
    let classifier = if source.len().is_multiple_of(2) {
        nfcc_compiler::classify::Choice::Tree
    } else {
        nfcc_compiler::classify::Choice::Tuples
    };
    // Every third file's is laid out as `nfcc load` lays it out: room for updates in place.
    let layout = if source.len().is_multiple_of(3) {
        nfcc_compiler::room::Layout::Updatable(None)
    } else {
        nfcc_compiler::room::Layout::Packed
    };
    let opts = nfcc_compiler::compile::Options {
        target,
        virtual_clock: true,
        classifier,
        layout,
    };
    let tested = compile_opts(&program, name, source, &opts).map_err(refused)?;
    Ok((program, deployed, tested))
}

/// The rule name of a rule reference.
pub(crate) fn rule_name(policy: &nfcc_dsl::checked::Policy, r: RuleRef) -> String {
    match r {
        RuleRef::Rule(id) => policy.rule(id).name.clone(),
        RuleRef::Default => "default".to_string(),
    }
}

/// Checks, compiles and loads every policy of `source`, then runs `frames[policy index]` on
/// the kernel and the evaluator. Stops at the first failure.
pub(crate) fn run_file(
    name: &str,
    source: &str,
    frames: &[Vec<(String, Vec<u8>)>],
    target: Option<Target>,
) -> Result<Measured, Failure> {
    let (program, compiled, tested) = check_and_compile(name, source, target)?;
    let mut m = Measured::default();
    for p in &tested.programs {
        for (form, programs, rules) in [
            (
                nfcc_compiler::classify::Form::Tree,
                &mut m.trees,
                &mut m.tree_rules,
            ),
            (
                nfcc_compiler::classify::Form::Tuples,
                &mut m.tuples,
                &mut m.tuple_rules,
            ),
        ] {
            let runs: Vec<_> = p.ir.classifiers.iter().filter(|d| d.form == form).collect();
            *programs += usize::from(!runs.is_empty());
            *rules += runs.iter().map(|d| d.rules).sum::<usize>();
        }
    }
    for (pi, policy) in program.policies.iter().enumerate() {
        let cp = compiled
            .programs
            .iter()
            .find(|p| p.name == policy.name)
            .ok_or_else(|| Failure::Compile(format!("no program for `{}`", policy.name)))?;
        let loaded = load(&compiled.object, &policy.name, prog_kind(policy.hook)).map_err(
            |e: RuntimeError| Failure::Load {
                policy: policy.name.clone(),
                message: e.to_string(),
            },
        )?;
        m.programs += 1;
        m.insns.push(cp.insns);
        if let Some(v) = loaded.verified_insns() {
            m.verified.push(v);
        }
        drop(loaded);
        let Some(frames) = frames.get(pi) else {
            continue;
        };
        let mut kernel = KernelEngine::new(&tested, &policy.name).map_err(|e| Failure::Load {
            policy: policy.name.clone(),
            message: e.to_string(),
        })?;
        // The evaluator's state is kept here rather than inside an `EvalEngine` (which runs
        // the same `eval::eval` on the same `State`) so that its counters can be read by key.
        let meta = test_run_meta();
        let mut state = State::new(policy);
        kernel.reset(policy).map_err(|e| Failure::Load {
            policy: policy.name.clone(),
            message: e,
        })?;
        // The emulator runs the object as deployed (its ktime is the evaluator's clock).
        let mut emulator =
            EmulatorEngine::new(&compiled, &policy.name).map_err(|message| Failure::Load {
                policy: policy.name.clone(),
                message,
            })?;
        if target == Some(Target::Nfp) {
            emulator = emulator.with_profile(nfcc_emulator::Profile::Nfp);
        }
        emulator.reset(policy).map_err(|message| Failure::Load {
            policy: policy.name.clone(),
            message,
        })?;
        for (fi, (literal, frame)) in frames.iter().enumerate() {
            if !kernel.can_run(frame) {
                // The kernel's test runner refuses frames this short. The evaluator does not
                // run them either: a frame one engine saw and the other did not would leave
                // their limiter buckets out of step.
                m.short += 1;
                continue;
            }
            let counters_before = state.counters.clone();
            let want = eval::eval(policy, &mut state, &meta, frame);
            m.compared += 1;
            let eval_answer = (want.verdict.clone(), rule_name(policy, want.rule));
            let disagree = |kind: &'static str, message: String| {
                Failure::Disagree(Box::new(Disagreement {
                    kind,
                    policy: policy.name.clone(),
                    literal: literal.clone(),
                    before: frames[..fi].iter().map(|(l, _)| l.clone()).collect(),
                    eval: eval_answer.clone(),
                    message,
                }))
            };
            let engines: [(&str, &mut dyn Engine); 2] =
                [("kernel", &mut kernel), ("emulator", &mut emulator)];
            for (ename, engine) in engines {
                match engine.run(policy, frame) {
                    Ok(got)
                        if got.verdict == want.verdict
                            && got.rule == want.rule
                            && got.packet == want.packet => {}
                    Ok(got) => {
                        let kind = if got.verdict == want.verdict && got.rule == want.rule {
                            "bytes"
                        } else {
                            "verdict"
                        };
                        return Err(disagree(kind, format!(
                            "frame `{literal}` (hex {}): eval says {} by {} out {}, {ename} says {} by {} out {}",
                            hex(frame),
                            want.verdict,
                            rule_name(policy, want.rule),
                            hex(&want.packet),
                            got.verdict,
                            rule_name(policy, got.rule),
                            hex(&got.packet)
                        )));
                    }
                    Err(e) => {
                        return Err(disagree(
                            "engine",
                            format!(
                                "frame `{literal}` (hex {}): the {ename} engine failed: {e}",
                                hex(frame)
                            ),
                        ))
                    }
                }
                // Every counter entry the frame changed in the evaluator must read the same in
                // the kernel.
                for (ci, entries) in state.counters.iter().enumerate() {
                    let counter = &policy.counters[ci];
                    for (key, want) in entries {
                        if counters_before[ci].get(key) == Some(want) {
                            continue;
                        }
                        let scalars = key_scalars(&counter.key, key);
                        match engine.counter(policy, CounterId(ci as u32), &scalars) {
                            Ok(got) if got == *want => {}
                            Ok(got) => {
                                return Err(disagree("counter", format!(
                                    "frame `{literal}` (hex {}): counter {}[{}] (packets, bytes): eval says {want:?}, {ename} says {got:?}",
                                    hex(frame),
                                    counter.name,
                                    hex(key)
                                )))
                            }
                            Err(e) => {
                                return Err(disagree("engine", format!(
                                    "frame `{literal}`: cannot read counter {}: {e}",
                                    counter.name
                                )))
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(m)
}

/// The key values whose key bytes are `key` (as `eval::key_of_scalars` builds them): each
/// field's big-endian bytes read back as a number; 16-byte `ip.*` parts as IPv6, whose key
/// bytes are the number itself (an IPv4 address is already `::ffff:a.b.c.d` in them).
pub(crate) fn key_scalars(fields: &[Field], key: &[u8]) -> Vec<Scalar> {
    let mut at = 0;
    fields
        .iter()
        .map(|f| {
            let w = f.key_width();
            let bits = key
                .get(at..at + w)
                .unwrap_or(&[])
                .iter()
                .fold(0u128, |acc, b| acc << 8 | u128::from(*b));
            at += w;
            Scalar {
                family: if w == 16 { Family::V6 } else { Family::Int },
                bits,
            }
        })
        .collect()
}
