//! `nfcc run`: packets from a capture through a policy (`.nf`) or any XDP/TC object (`.o`), on
//! the emulator, its JIT, the rbpf oracle, the kernel or the evaluator — a verdict per packet (with the deciding
//! rule for a policy), the packets it lets out, and a summary per rule and verdict.

use crate::error::DriverError;
use crate::source::{choose, Chosen, Input};
use nfcc_bpf::ProgType;
use nfcc_compiler::codegen::{terminal_of, terminal_of_run};
use nfcc_compiler::compile::prog_type;
use nfcc_dsl::checked::{Policy, RuleRef, Target, Terminal};
use nfcc_emulator::pcap::Record;
use nfcc_emulator::{Emulator, Profile};
use nfcc_oracle::RbpfProgram;
use std::collections::BTreeMap;

/// Engines `nfcc run` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RunEngine {
    /// The emulator.
    Emulator,
    /// The emulator's JIT (native code; the fastest engine for long captures).
    Jit,
    /// The rbpf crate's interpreter over the emulator's maps (an independent oracle).
    Rbpf,
    /// The kernel's BPF_PROG_TEST_RUN.
    Kernel,
    /// The reference evaluator (.nf input only).
    Eval,
}

/// One packet's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The verdict's name (`pass`, `drop`, `tx`, `redirect`, `abort`, or `return N`).
    pub verdict: String,
    /// The deciding rule, for a policy.
    pub rule: Option<String>,
    /// The packet as emitted, when it leaves the program.
    pub emitted: Option<Vec<u8>>,
    /// Why the engine could not run the packet (the verdict is then `skipped`).
    pub skipped: Option<String>,
}

impl Answer {
    /// A packet the engine cannot run, and why.
    fn skipped(why: String) -> Answer {
        Answer {
            verdict: "skipped".into(),
            rule: None,
            emitted: None,
            skipped: Some(why),
        }
    }
}

/// Why the kernel's test runner refuses `frame` for a `kind` program, if it does.
fn kernel_refuses(kind: ProgType, frame: &[u8]) -> Option<String> {
    let (min, what) = nfcc_runtime::min_frame(kind, frame);
    (frame.len() < min).then(|| {
        format!(
            "{} bytes: the kernel's test runner needs {min} ({what})",
            frame.len()
        )
    })
}

/// Something that runs frames: an engine over a policy or over a bare object.
pub trait Runner {
    /// Runs one frame at time `ts_ns`.
    fn run(&mut self, frame: &[u8], ts_ns: u64) -> Result<Answer, String>;
}

fn terminal_name(t: &Terminal) -> String {
    match t {
        Terminal::Redirect(_) => "redirect".to_string(),
        other => other.name().to_string(),
    }
}

/// Whether the packet leaves the program for somewhere (the stack, a port, an AF_XDP socket).
fn emits(t: &Terminal) -> bool {
    matches!(
        t,
        Terminal::Pass | Terminal::Tx | Terminal::Redirect(_) | Terminal::Xsk
    )
}

/// The name of the rule whose statistics slot moved.
fn moved(policy: &Policy, before: &[u64], after: &[u64]) -> Option<String> {
    match nfcc_dsl::testing::rule_from_counts(policy, before, after).ok()? {
        RuleRef::Default => Some("default".to_string()),
        RuleRef::Rule(id) => Some(policy.rule(id).name.clone()),
    }
}

/// What runs a program loaded into the emulator.
enum Exec {
    /// The emulator's interpreter or JIT.
    Emu(nfcc_emulator::Runner),
    /// rbpf, over the emulator's maps.
    Rbpf(RbpfProgram),
}

impl Exec {
    /// The executor `engine` means for `program` of `emu` (the JIT compiled, or the program
    /// rewritten for rbpf, now).
    fn new(engine: RunEngine, emu: &mut Emulator, program: &str) -> Result<Exec, DriverError> {
        Ok(match engine {
            RunEngine::Rbpf => Exec::Rbpf(RbpfProgram::new(emu, program)?),
            RunEngine::Jit => {
                emu.jit_compile(program).map_err(env)?;
                Exec::Emu(nfcc_emulator::Runner::Jit)
            }
            _ => Exec::Emu(nfcc_emulator::Runner::Interpreter),
        })
    }

    /// Runs `frame`: r0, the packet at exit, and whether an AF_XDP socket took it.
    fn run(
        &self,
        emu: &mut Emulator,
        program: &str,
        frame: &[u8],
    ) -> Result<(u64, Vec<u8>, bool), String> {
        match self {
            Exec::Emu(r) => emu
                .run_ref(program, frame, *r)
                .map(|o| (o.retval, o.data.to_vec(), o.xsk.is_some()))
                .map_err(|e| e.to_string()),
            Exec::Rbpf(p) => p
                .run(emu, frame)
                .map(|o| (o.retval, o.data, o.xsk.is_some()))
                .map_err(|e| e.to_string()),
        }
    }
}

/// The compiled policy on the emulator; the clock follows the capture's timestamps.
struct EmuPolicy {
    emu: Emulator,
    exec: Exec,
    policy: Policy,
}

impl EmuPolicy {
    fn counts(&mut self) -> Vec<u64> {
        self.emu
            .rule_counts(&self.policy.name, self.policy.rules.len())
            .unwrap_or_default()
    }
}

/// The deciding rule's name from the statistics slot a program left in its vector.
fn slot_rule(policy: &Policy, slot: Option<u32>) -> Option<String> {
    match nfcc_dsl::testing::rule_of_slot(policy, slot?).ok()? {
        RuleRef::Default => Some("default".into()),
        RuleRef::Rule(id) => Some(policy.rule(id).name.clone()),
    }
}

impl Runner for EmuPolicy {
    fn run(&mut self, frame: &[u8], ts_ns: u64) -> Result<Answer, String> {
        self.emu.env.clock_ns = ts_ns;
        // The deciding slot from the packet vector (one lookup), or every rule's statistics
        // for programs without one.
        let vector = self
            .emu
            .clear_decided(&self.policy.name)
            .map_err(|e| e.to_string())?;
        let before = if vector { Vec::new() } else { self.counts() };
        let (retval, data, to_xsk) = self.exec.run(&mut self.emu, &self.policy.name, frame)?;
        let t = terminal_of_run(self.policy.hook, retval as u32, to_xsk, &self.policy);
        let data = emits(&t).then_some(data);
        let rule = if vector {
            let slot = self
                .emu
                .decided(&self.policy.name)
                .map_err(|e| e.to_string())?;
            slot_rule(&self.policy, slot)
        } else {
            let after = self.counts();
            moved(&self.policy, &before, &after)
        };
        Ok(Answer {
            verdict: terminal_name(&t),
            rule,
            emitted: data,
            skipped: None,
        })
    }
}

/// The reference evaluator.
struct EvalPolicy {
    policy: Policy,
    state: nfcc_dsl::eval::State,
}

impl Runner for EvalPolicy {
    fn run(&mut self, frame: &[u8], ts_ns: u64) -> Result<Answer, String> {
        self.state.now_ns = self.state.now_ns.max(ts_ns);
        let o = nfcc_dsl::eval::eval(&self.policy, &mut self.state, &Default::default(), frame);
        let rule = match o.rule {
            RuleRef::Default => "default".to_string(),
            RuleRef::Rule(id) => self.policy.rule(id).name.clone(),
        };
        Ok(Answer {
            verdict: terminal_name(&o.verdict),
            rule: Some(rule),
            emitted: emits(&o.verdict).then_some(o.packet),
            skipped: None,
        })
    }
}

/// The compiled policy in the kernel.
struct KernelPolicy {
    loaded: nfcc_runtime::Loaded,
    policy: Policy,
    /// Whether the program has a packet vector to leave its deciding slot in.
    vector: bool,
    /// The AF_XDP socket standing for the deployment's (`redirect xsk`), kept while loaded.
    _xsk: Option<nfcc_runtime::xsk::XskSocket>,
}

impl Runner for KernelPolicy {
    fn run(&mut self, frame: &[u8], _ts: u64) -> Result<Answer, String> {
        if let Some(why) = kernel_refuses(prog_type(self.policy.hook), frame) {
            return Ok(Answer::skipped(why));
        }
        let rules = self.policy.rules.len();
        let (r, rule) = if self.vector {
            // The deciding slot from the packet vector: three syscalls, however many rules.
            let (r, slot) = self
                .loaded
                .test_run_decided(frame)
                .map_err(|e| e.to_string())?;
            (r, slot_rule(&self.policy, slot))
        } else {
            let before = self.loaded.rule_counts(rules).map_err(|e| e.to_string())?;
            let r = self.loaded.test_run(frame, 1).map_err(|e| e.to_string())?;
            let after = self.loaded.rule_counts(rules).map_err(|e| e.to_string())?;
            (r, moved(&self.policy, &before, &after))
        };
        let t = terminal_of(self.policy.hook, r.retval, &self.policy);
        Ok(Answer {
            verdict: terminal_name(&t),
            rule,
            emitted: emits(&t).then_some(r.data_out),
            skipped: None,
        })
    }
}

/// Runs a frame at a time (nanoseconds) and gives r0 and the emitted bytes.
type RunFn = Box<dyn FnMut(&[u8], u64) -> Result<(u64, Vec<u8>), String>>;

/// Any object's program: verdicts from the return value only.
struct Bare {
    run: RunFn,
    prog_type: ProgType,
    /// On the kernel, whose test runner refuses frames shorter than a header.
    kernel: bool,
}

impl Runner for Bare {
    fn run(&mut self, frame: &[u8], ts: u64) -> Result<Answer, String> {
        if let Some(why) = self
            .kernel
            .then(|| kernel_refuses(self.prog_type, frame))
            .flatten()
        {
            return Ok(Answer::skipped(why));
        }
        let (ret, data) = (self.run)(frame, ts)?;
        let action = self.prog_type.action(ret);
        Ok(Answer {
            verdict: action.name(),
            rule: None,
            emitted: action.emits().then_some(data),
            skipped: None,
        })
    }
}

/// The AF_XDP socket map of a compiled policy that has one (`redirect xsk`).
fn xsk_map(cp: &nfcc_compiler::compile::CompiledProgram) -> Option<String> {
    let name = nfcc_bpf::layout::xsk_map_name(&cp.name);
    cp.maps.iter().any(|(m, _)| m.name == name).then_some(name)
}

fn env(e: impl std::fmt::Display) -> DriverError {
    DriverError::Environment(e.to_string())
}

/// A runner for `input` (read from `label`) on `engine`; `wanted` chooses the policy or
/// program, `nic` gives the emulator the NIC's semantics.
pub fn runner(
    label: &str,
    input: Input,
    engine: RunEngine,
    wanted: Option<&str>,
    nic: bool,
) -> Result<Box<dyn Runner>, DriverError> {
    if engine == RunEngine::Kernel {
        nfcc_runtime::can_load_bpf().map_err(|why| {
            DriverError::Environment(format!(
                "the kernel engine cannot run here: {why}; --engine emulator needs no privileges"
            ))
        })?;
    }
    let source = match input {
        Input::Object(bytes) => return object_runner(label, &bytes, engine, wanted, nic),
        Input::Source(s) => s,
    };
    let chosen = Chosen::from_source(label.to_string(), source, wanted)?;
    let policy = chosen.policy.clone();
    if engine == RunEngine::Eval {
        let state = nfcc_dsl::eval::State::new(&policy);
        return Ok(Box::new(EvalPolicy { policy, state }));
    }
    let compiled = chosen.compile(None)?;
    let cp = compiled
        .programs
        .first()
        .ok_or_else(|| DriverError::Input("nothing compiled".into()))?;
    if engine == RunEngine::Kernel {
        let loaded = nfcc_runtime::load(&compiled.object, &policy.name, prog_type(policy.hook))?;
        for (m, entries) in &cp.maps {
            for (k, v) in entries {
                loaded.map_update(&m.name, k, v)?;
            }
        }
        let xsk = match xsk_map(cp) {
            Some(map) => Some(nfcc_runtime::xsk::bind_for_test_run(
                &loaded,
                &map,
                nfcc_bpf::layout::XSK_QUEUES,
            )?),
            None => None,
        };
        let scratch = nfcc_bpf::layout::scratch_map_name(&policy.name);
        let vector = cp.maps.iter().any(|(m, _)| m.name == scratch);
        return Ok(Box::new(KernelPolicy {
            loaded,
            policy,
            vector,
            _xsk: xsk,
        }));
    }
    let mut emu = Emulator::load(&compiled.object).map_err(env)?;
    if nic || policy.offload == Some(Target::Nfp) {
        emu.env.profile = Profile::Nfp;
    }
    for (m, entries) in &cp.maps {
        for (k, v) in entries {
            emu.map_update(&m.name, k, v).map_err(env)?;
        }
    }
    if let Some(map) = xsk_map(cp) {
        // Sockets bound on every queue, as in test blocks: the emulator records the queue.
        for q in 0..nfcc_bpf::layout::XSK_QUEUES {
            emu.map_update(&map, &q.to_le_bytes(), &1u32.to_le_bytes())
                .map_err(env)?;
        }
    }
    let exec = Exec::new(engine, &mut emu, &policy.name)?;
    Ok(Box::new(EmuPolicy { emu, exec, policy }))
}

/// The `.nfcc.policy` state of program `program` of an object (`None`: an object nfcc did not
/// compile, or an older nfcc's without the section).
pub fn object_state(
    label: &str,
    bytes: &[u8],
    program: &str,
) -> Result<Option<nfcc_bpf::policy_section::ProgramState>, DriverError> {
    let section = nfcc_bpf::policy_section::PolicySection::read(bytes)
        .map_err(|e| DriverError::Input(format!("{label}: {e}")))?;
    Ok(section.and_then(|s| s.program(program).cloned()))
}

fn object_runner(
    label: &str,
    bytes: &[u8],
    engine: RunEngine,
    wanted: Option<&str>,
    nic: bool,
) -> Result<Box<dyn Runner>, DriverError> {
    if engine == RunEngine::Eval {
        return Err(DriverError::Input(
            "the evaluator runs .nf policies, not objects; use --engine emulator or kernel".into(),
        ));
    }
    let mut emu = Emulator::load(bytes).map_err(|e| DriverError::Input(format!("{label}: {e}")))?;
    let name = choose(&emu.programs(), wanted, "program")?;
    let prog_type = emu.hook(&name).unwrap_or(ProgType::Xdp);
    // What the maps start with, for an object nfcc compiled (sets, tables, pools, trees).
    let entries = match object_state(label, bytes, &name)? {
        Some(state) => state.entries,
        None => Vec::new(),
    };
    let run: RunFn = if engine == RunEngine::Kernel {
        let loaded = nfcc_runtime::load(bytes, &name, prog_type)?;
        for (m, k, v) in &entries {
            loaded.map_update(m, k, v)?;
        }
        Box::new(move |f: &[u8], _| {
            loaded
                .test_run(f, 1)
                .map(|r| (u64::from(r.retval), r.data_out))
                .map_err(|e| e.to_string())
        })
    } else {
        if nic {
            emu.env.profile = Profile::Nfp;
        }
        for (m, k, v) in &entries {
            emu.map_update(m, k, v).map_err(env)?;
        }
        let exec = Exec::new(engine, &mut emu, &name)?;
        Box::new(move |f: &[u8], ts| {
            emu.env.clock_ns = ts;
            exec.run(&mut emu, &name, f).map(|(r, d, _)| (r, d))
        })
    };
    Ok(Box::new(Bare {
        run,
        prog_type,
        kernel: engine == RunEngine::Kernel,
    }))
}

/// One line of `--verdicts` (JSON lines).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerdictLine {
    /// The packet's index in the capture.
    pub index: usize,
    /// Its verdict.
    pub verdict: String,
    /// The deciding rule (policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Its length.
    pub len: usize,
    /// Why it was not run (verdict `skipped`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// A capture run through a runner.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// A verdict per packet.
    pub lines: Vec<VerdictLine>,
    /// The packets let out, as emitted, with their capture timestamps.
    pub emitted: Vec<Record>,
    /// Packets per (rule or `-`, verdict).
    pub summary: BTreeMap<(String, String), u64>,
}

impl RunResult {
    /// The verdicts as JSON lines.
    pub fn jsonl(&self) -> String {
        self.lines
            .iter()
            .filter_map(|l| serde_json::to_string(l).ok())
            .map(|l| l + "\n")
            .collect()
    }
}

/// Runs every record of a capture; time starts at 1 s, as in the evaluator, and follows the
/// capture from there. `progress(i, n)` is told as packets go.
pub fn run_records(
    r: &mut dyn Runner,
    records: &[Record],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunResult, DriverError> {
    let mut out = RunResult::default();
    let t0 = records.first().map_or(0, |r| u64::from(r.ts_sec));
    for (i, rec) in records.iter().enumerate() {
        let ts = 1_000_000_000
            + (u64::from(rec.ts_sec).saturating_sub(t0)) * 1_000_000_000
            + u64::from(rec.ts_usec) * 1000;
        let ans = r.run(&rec.data, ts).map_err(|e| {
            DriverError::Environment(format!("packet {i} ({} bytes): {e}", rec.data.len()))
        })?;
        *out.summary
            .entry((
                ans.rule.clone().unwrap_or_else(|| "-".into()),
                ans.verdict.clone(),
            ))
            .or_default() += 1;
        out.lines.push(VerdictLine {
            index: i,
            verdict: ans.verdict,
            rule: ans.rule,
            len: rec.data.len(),
            reason: ans.skipped,
        });
        if let Some(data) = ans.emitted {
            out.emitted.push(Record {
                ts_sec: rec.ts_sec,
                ts_usec: rec.ts_usec,
                orig_len: data.len() as u32,
                data,
            });
        }
        progress(i, records.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines_are_json_with_escaped_rule_names() {
        let r = RunResult {
            lines: vec![
                VerdictLine {
                    index: 0,
                    verdict: "drop".into(),
                    rule: Some("we\"ird\\".into()),
                    len: 60,
                    reason: None,
                },
                VerdictLine {
                    index: 1,
                    verdict: "pass".into(),
                    rule: None,
                    len: 64,
                    reason: None,
                },
            ],
            ..RunResult::default()
        };
        let text = r.jsonl();
        let back: Vec<VerdictLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(back, r.lines);
        assert_eq!(
            text.lines().nth(1),
            Some("{\"index\":1,\"verdict\":\"pass\",\"len\":64}")
        );
    }

    #[test]
    fn a_policy_runs_on_every_unprivileged_engine_alike() {
        let src = "policy p on xdp {\n  rule r: udp.dport == 53 => drop\n  default pass\n}\n";
        let frame = nfcc_dsl::testing::frame_from_literal("ipv4() / udp(dport=53)")
            .unwrap_or_else(|e| panic!("{e}"));
        let recs = vec![Record {
            ts_sec: 5,
            ts_usec: 0,
            orig_len: frame.len() as u32,
            data: frame,
        }];
        for e in [
            RunEngine::Eval,
            RunEngine::Emulator,
            RunEngine::Jit,
            RunEngine::Rbpf,
        ] {
            let mut r = runner("p.nf", Input::Source(src.into()), e, None, false)
                .unwrap_or_else(|e| panic!("{e}"));
            let out =
                run_records(r.as_mut(), &recs, &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.lines[0].rule.as_deref(), Some("r"), "{e:?}");
            assert_eq!(out.lines[0].verdict, "drop");
        }
    }
}
