//! `nfcc run`: packets from a pcap through a policy (.nf) or any XDP/TC object (.o), on the
//! emulator, the kernel or the evaluator; one JSON line per packet, the emitted packets as a
//! pcap, and a summary of verdicts per rule.

use crate::commands::{ENV, INPUT, OK};
use crate::RunEngineArg;
use nfcc_compiler::codegen::terminal_of;
use nfcc_dsl::checked::{Hook, Policy, RuleRef, Terminal};
use nfcc_emulator::pcap::{self, Record};
use nfcc_emulator::Emulator;
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

/// The arguments of `nfcc run`.
pub struct RunArgs {
    /// The .nf file or object.
    pub file: PathBuf,
    /// The capture.
    pub pcap: PathBuf,
    /// The engine.
    pub engine: RunEngineArg,
    /// Where to write emitted packets.
    pub out: Option<PathBuf>,
    /// Where to write per-packet verdicts.
    pub verdicts: Option<PathBuf>,
    /// Which policy or program.
    pub policy: Option<String>,
    /// NIC semantics on the emulator.
    pub nic: bool,
}

/// One packet's result.
struct Answer {
    verdict: String,
    rule: Option<String>,
    emitted: Option<Vec<u8>>,
}

/// Something that runs frames: the engines over a policy or over a bare object.
trait Runner {
    fn run(&mut self, frame: &[u8], ts_ns: u64) -> Result<Answer, String>;
}

fn terminal_name(t: &Terminal) -> String {
    match t {
        Terminal::Redirect(_) => "redirect".to_string(),
        other => other.name().to_string(),
    }
}

fn emits(t: &Terminal) -> bool {
    matches!(t, Terminal::Pass | Terminal::Tx | Terminal::Redirect(_))
}

/// The name of the rule whose statistics slot moved, comparing packet counts before and after.
fn moved(policy: &Policy, before: &[u64], after: &[u64]) -> Option<String> {
    match nfcc_dsl::testing::rule_from_counts(policy, before, after).ok()? {
        RuleRef::Default => Some("default".to_string()),
        RuleRef::Rule(id) => Some(policy.rule(id).name.clone()),
    }
}

/// The compiled policy on the emulator; the clock follows the capture's timestamps.
struct EmuPolicy {
    emu: Emulator,
    runner: nfcc_emulator::Runner,
    policy: Policy,
    stats: String,
}

impl EmuPolicy {
    fn counts(&mut self) -> Vec<u64> {
        (0..=self.policy.rules.len() as u32)
            .map(|i| {
                self.emu
                    .map_lookup(&self.stats, &i.to_le_bytes())
                    .ok()
                    .flatten()
                    .and_then(|v| {
                        v.get(..8)
                            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    })
                    .unwrap_or(0)
            })
            .collect()
    }
}

impl Runner for EmuPolicy {
    fn run(&mut self, frame: &[u8], ts_ns: u64) -> Result<Answer, String> {
        self.emu.env.clock_ns = ts_ns;
        let before = self.counts();
        let (retval, data) = {
            let out = self
                .emu
                .run_ref(&self.policy.name, frame, self.runner)
                .map_err(|e| e.to_string())?;
            let t = terminal_of(self.policy.hook, out.retval as u32, &self.policy);
            (out.retval, emits(&t).then(|| out.data.to_vec()))
        };
        let after = self.counts();
        let t = terminal_of(self.policy.hook, retval as u32, &self.policy);
        Ok(Answer {
            verdict: terminal_name(&t),
            rule: moved(&self.policy, &before, &after),
            emitted: data,
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
        })
    }
}

/// The compiled policy in the kernel.
struct KernelPolicy {
    loaded: nfcc_runtime::Loaded,
    policy: Policy,
    stats: String,
}

impl Runner for KernelPolicy {
    fn run(&mut self, frame: &[u8], _ts: u64) -> Result<Answer, String> {
        let counts = |l: &nfcc_runtime::Loaded| -> Vec<u64> {
            (0..=self.policy.rules.len() as u32)
                .map(|i| {
                    l.percpu_array_sum(&self.stats, i)
                        .ok()
                        .and_then(|v| v.first().copied())
                        .unwrap_or(0)
                })
                .collect()
        };
        let before = counts(&self.loaded);
        let r = self.loaded.test_run(frame, 1).map_err(|e| e.to_string())?;
        let after = counts(&self.loaded);
        let t = terminal_of(self.policy.hook, r.retval, &self.policy);
        Ok(Answer {
            verdict: terminal_name(&t),
            rule: moved(&self.policy, &before, &after),
            emitted: emits(&t).then_some(r.data_out),
        })
    }
}

/// Runs a frame at a time (nanoseconds) and gives r0 and the emitted bytes.
type RunFn = Box<dyn FnMut(&[u8], u64) -> Result<(u64, Vec<u8>), String>>;

/// Any object's program: verdicts from the return value only.
struct Bare {
    run: RunFn,
    hook: nfcc_emulator::ProgType,
}

impl Runner for Bare {
    fn run(&mut self, frame: &[u8], ts: u64) -> Result<Answer, String> {
        let (ret, data) = (self.run)(frame, ts)?;
        let hook = if self.hook == nfcc_emulator::ProgType::Xdp {
            Hook::Xdp
        } else {
            Hook::TcIngress
        };
        let verdict = match (hook, ret as u32) {
            (Hook::Xdp, 0) => "abort".to_string(),
            (Hook::Xdp, 1) => "drop".to_string(),
            (Hook::Xdp, 2) => "pass".to_string(),
            (Hook::Xdp, 3) => "tx".to_string(),
            (Hook::Xdp, 4) => "redirect".to_string(),
            (_, 0 | u32::MAX) => "pass".to_string(),
            (_, 2) => "drop".to_string(),
            (_, 7) => "redirect".to_string(),
            (_, n) => format!("return {n}"),
        };
        let emitted = matches!(verdict.as_str(), "pass" | "tx" | "redirect").then_some(data);
        Ok(Answer {
            verdict,
            rule: None,
            emitted,
        })
    }
}

/// A .nf file read and checked, with one of its policies chosen.
pub(crate) struct Chosen {
    /// The file's name as given (for diagnostics and line info).
    pub label: String,
    /// Its text.
    pub source: String,
    /// The whole checked file.
    pub program: nfcc_dsl::checked::Program,
    /// The chosen policy.
    pub policy: nfcc_dsl::checked::Policy,
}

/// Reads and checks `file` and chooses its policy `wanted` (or its only one); on failure the
/// diagnostics or the error are printed and the exit code returned.
pub(crate) fn checked_policy(file: &Path, wanted: Option<&str>) -> Result<Chosen, u8> {
    let label = file.display().to_string();
    let source = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("error: cannot read {label}: {e}");
        INPUT
    })?;
    checked_source(label, source, wanted)
}

/// [`checked_policy`] for source already read.
pub(crate) fn checked_source(
    label: String,
    source: String,
    wanted: Option<&str>,
) -> Result<Chosen, u8> {
    let (program, diags) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
    let Some(program) = program else {
        eprint!("{}", nfcc_dsl::diag::render(&label, &source, &diags));
        return Err(INPUT);
    };
    let names: Vec<String> = program.policies.iter().map(|p| p.name.clone()).collect();
    let chosen = choose(&names, wanted, "policy").map_err(|e| {
        eprintln!("error: {e}");
        INPUT
    })?;
    let policy = program
        .policies
        .iter()
        .find(|p| p.name == chosen)
        .cloned()
        .ok_or(INPUT)?;
    Ok(Chosen {
        label,
        source,
        program,
        policy,
    })
}

impl Chosen {
    /// Compiles the chosen policy alone (for `target`, or its own `offload` clause); on
    /// failure the diagnostics are printed and the exit code returned.
    pub(crate) fn compile(
        &self,
        target: Option<nfcc_dsl::checked::Target>,
    ) -> Result<nfcc_compiler::compile::Compiled, u8> {
        let single = nfcc_dsl::checked::Program {
            policies: vec![self.policy.clone()],
        };
        nfcc_compiler::compile::compile(&single, &self.label, &self.source, target).map_err(|d| {
            eprint!("{}", nfcc_dsl::diag::render(&self.label, &self.source, &d));
            INPUT
        })
    }
}

/// Picks one name: the requested one, or the only one.
pub(crate) fn choose(names: &[String], wanted: Option<&str>, what: &str) -> Result<String, String> {
    match (wanted, names) {
        (Some(w), _) if names.iter().any(|n| n == w) => Ok(w.to_string()),
        (Some(w), _) => Err(format!(
            "no {what} `{w}`; the file has: {}",
            names.join(", ")
        )),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(format!("the file has no {what}")),
        (None, _) => Err(format!(
            "the file has several {what}s ({}); choose one with --policy",
            names.join(", ")
        )),
    }
}

fn runner(a: &RunArgs, bytes: &[u8]) -> Result<Box<dyn Runner>, (u8, String)> {
    let input = |m: String| (INPUT, m);
    if bytes.starts_with(b"\x7fELF") {
        if a.engine == RunEngineArg::Eval {
            return Err(input(
                "the evaluator runs .nf policies, not objects; use --engine emulator or kernel"
                    .into(),
            ));
        }
        let emu = Emulator::load(bytes).map_err(|e| input(format!("{}: {e}", a.file.display())))?;
        let name = choose(&emu.programs(), a.policy.as_deref(), "program").map_err(input)?;
        let hook = emu.hook(&name).unwrap_or(nfcc_emulator::ProgType::Xdp);
        let run: RunFn = match a.engine {
            RunEngineArg::Kernel => {
                let kind = if hook == nfcc_emulator::ProgType::Xdp {
                    nfcc_runtime::ProgType::Xdp
                } else {
                    nfcc_runtime::ProgType::Tc
                };
                let loaded =
                    nfcc_runtime::load(bytes, &name, kind).map_err(|e| (ENV, e.to_string()))?;
                Box::new(move |f: &[u8], _| {
                    loaded
                        .test_run(f, 1)
                        .map(|r| (u64::from(r.retval), r.data_out))
                        .map_err(|e| e.to_string())
                })
            }
            _ => {
                let mut emu = emu;
                if a.nic {
                    emu.env.profile = nfcc_emulator::Profile::Nfp;
                }
                let runner = runner_of(a.engine);
                if runner == nfcc_emulator::Runner::Jit {
                    emu.jit_compile(&name).map_err(|e| (ENV, e.to_string()))?;
                }
                Box::new(move |f: &[u8], ts| {
                    emu.env.clock_ns = ts;
                    emu.run_ref(&name, f, runner)
                        .map(|o| (o.retval, o.data.to_vec()))
                        .map_err(|e| e.to_string())
                })
            }
        };
        return Ok(Box::new(Bare { run, hook }));
    }
    let source = String::from_utf8(bytes.to_vec()).map_err(|_| {
        input(format!(
            "{}: neither a .nf policy (not UTF-8) nor an ELF object",
            a.file.display()
        ))
    })?;
    let name = a.file.display().to_string();
    let (program, diags) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
    let Some(program) = program else {
        return Err(input(nfcc_dsl::diag::render(&name, &source, &diags)));
    };
    let names: Vec<String> = program.policies.iter().map(|p| p.name.clone()).collect();
    let chosen = choose(&names, a.policy.as_deref(), "policy").map_err(input)?;
    let policy = program
        .policies
        .iter()
        .find(|p| p.name == chosen)
        .cloned()
        .ok_or_else(|| input("policy vanished".into()))?;
    if a.engine == RunEngineArg::Eval {
        let state = nfcc_dsl::eval::State::new(&policy);
        return Ok(Box::new(EvalPolicy { policy, state }));
    }
    let single = nfcc_dsl::checked::Program {
        policies: vec![policy.clone()],
    };
    let compiled = nfcc_compiler::compile::compile(&single, &name, &source, None)
        .map_err(|d| input(nfcc_dsl::diag::render(&name, &source, &d)))?;
    let cp = compiled
        .programs
        .first()
        .ok_or_else(|| input("nothing compiled".into()))?;
    let stats = nfcc_compiler::compile::stats_map_name(&policy.name);
    if a.engine == RunEngineArg::Kernel {
        let kind = if policy.hook == Hook::Xdp {
            nfcc_runtime::ProgType::Xdp
        } else {
            nfcc_runtime::ProgType::Tc
        };
        let loaded = nfcc_runtime::load(&compiled.object, &policy.name, kind)
            .map_err(|e| (ENV, e.to_string()))?;
        for (m, entries) in &cp.maps {
            for (k, v) in entries {
                loaded
                    .map_update(&m.name, k, v)
                    .map_err(|e| (ENV, e.to_string()))?;
            }
        }
        return Ok(Box::new(KernelPolicy {
            loaded,
            policy,
            stats,
        }));
    }
    let mut emu = Emulator::load(&compiled.object).map_err(|e| (ENV, e.to_string()))?;
    if a.nic || policy.offload == Some(nfcc_dsl::checked::Target::Nfp) {
        emu.env.profile = nfcc_emulator::Profile::Nfp;
    }
    for (m, entries) in &cp.maps {
        for (k, v) in entries {
            emu.map_update(&m.name, k, v)
                .map_err(|e| (ENV, e.to_string()))?;
        }
    }
    let runner = runner_of(a.engine);
    if runner == nfcc_emulator::Runner::Jit {
        emu.jit_compile(&policy.name)
            .map_err(|e| (ENV, e.to_string()))?;
    }
    Ok(Box::new(EmuPolicy {
        emu,
        runner,
        policy,
        stats,
    }))
}

/// Which of the emulator's engines an `--engine` choice means.
fn runner_of(e: RunEngineArg) -> nfcc_emulator::Runner {
    if e == RunEngineArg::Jit {
        nfcc_emulator::Runner::Jit
    } else {
        nfcc_emulator::Runner::Interpreter
    }
}

/// `nfcc run`.
pub fn run(a: &RunArgs) -> u8 {
    let records = match std::fs::read(&a.pcap) {
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.pcap.display());
            return INPUT;
        }
        Ok(b) => match pcap::read(&b) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", a.pcap.display());
                return INPUT;
            }
        },
    };
    let bytes = match std::fs::read(&a.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.file.display());
            return INPUT;
        }
    };
    if a.engine == RunEngineArg::Kernel {
        if let Err(why) = nfcc_runtime::can_load_bpf() {
            eprintln!("error: the kernel engine cannot run here: {why}; --engine emulator needs no privileges");
            return ENV;
        }
    }
    let mut r = match runner(a, &bytes) {
        Ok(r) => r,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            return code;
        }
    };
    let progress = records.len() >= 10_000 && std::io::stderr().is_terminal();
    let mut lines = String::new();
    let mut emitted = Vec::new();
    // (rule or "-", verdict) -> packets
    let mut summary: BTreeMap<(String, String), u64> = BTreeMap::new();
    let t0 = records.first().map_or(0, |r| u64::from(r.ts_sec));
    for (i, rec) in records.iter().enumerate() {
        // Time starts at 1 s, as in the evaluator, and follows the capture from there.
        let ts = 1_000_000_000
            + (u64::from(rec.ts_sec).saturating_sub(t0)) * 1_000_000_000
            + u64::from(rec.ts_usec) * 1000;
        let ans = match r.run(&rec.data, ts) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: packet {i} ({} bytes): {e}", rec.data.len());
                return ENV;
            }
        };
        let rule_json = ans.rule.as_ref().map_or(String::new(), |r| {
            format!(",\"rule\":\"{}\"", r.replace('"', "\\\""))
        });
        lines.push_str(&format!(
            "{{\"index\":{i},\"verdict\":\"{}\"{rule_json},\"len\":{}}}\n",
            ans.verdict,
            rec.data.len()
        ));
        *summary
            .entry((
                ans.rule.clone().unwrap_or_else(|| "-".into()),
                ans.verdict.clone(),
            ))
            .or_default() += 1;
        if let Some(data) = ans.emitted {
            emitted.push(Record {
                ts_sec: rec.ts_sec,
                ts_usec: rec.ts_usec,
                orig_len: data.len() as u32,
                data,
            });
        }
        if progress && i % (records.len() / 100).max(1) == 0 {
            eprint!(
                "\r{:3}% ({i}/{} packets)",
                i * 100 / records.len(),
                records.len()
            );
        }
    }
    if progress {
        eprintln!("\r100% ({0}/{0} packets)", records.len());
    }
    if let Some(p) = &a.verdicts {
        if let Err(e) = std::fs::write(p, &lines) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return ENV;
        }
    }
    if let Some(p) = &a.out {
        if let Err(e) = std::fs::write(p, pcap::write(&emitted)) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return ENV;
        }
    }
    say!("{:<24} {:<10} {:>10}", "rule", "verdict", "packets");
    for ((rule, verdict), n) in &summary {
        say!("{rule:<24} {verdict:<10} {n:>10}");
    }
    say!("{} packets, {} emitted", records.len(), emitted.len());
    OK
}
