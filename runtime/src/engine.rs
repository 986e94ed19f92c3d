//! The kernel as a test engine: a compiled policy loaded with its maps filled, each packet run
//! through `BPF_PROG_TEST_RUN`, the deciding rule read back from the per-rule statistics map.
//! Implements `nfcc_dsl::testing::Engine`, so test blocks run on the kernel exactly as they
//! run on the reference evaluator.

use crate::{load, Loaded, ProgKind, RuntimeError};
use nfcc_compiler::compile::{Compiled, CompiledProgram};
use nfcc_dsl::checked::Step;
use nfcc_dsl::checked::{CounterId, Hook, Policy, RuleId, RuleRef, Scalar, Terminal};
use nfcc_dsl::eval::{key_of_scalars, Outcome};
use nfcc_dsl::packet;
use nfcc_dsl::testing::{hex, Engine, EvalEngine};

/// A policy's compiled program, loaded fresh for every test.
pub struct KernelEngine {
    object: Vec<u8>,
    program: CompiledProgram,
    loaded: Option<Loaded>,
}

impl KernelEngine {
    /// An engine for policy `name` of a compiled object.
    pub fn new(compiled: &Compiled, name: &str) -> Result<KernelEngine, RuntimeError> {
        let program = compiled
            .programs
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| RuntimeError::ProgramNotFound {
                program: name.to_string(),
                available: compiled.programs.iter().map(|p| p.name.clone()).collect(),
            })?;
        Ok(KernelEngine {
            object: compiled.object.clone(),
            program,
            loaded: None,
        })
    }

    fn loaded(&self) -> Result<&Loaded, String> {
        self.loaded
            .as_ref()
            .ok_or_else(|| "the program is not loaded".to_string())
    }

    /// Per-rule packet counts (rules then the default), summed over CPUs.
    fn stats(&self, rules: usize) -> Result<Vec<u64>, String> {
        let l = self.loaded()?;
        let map = format!("{}_nfcc_rule_stats", self.program.name);
        (0..=rules as u32)
            .map(|i| {
                l.percpu_array_sum(&map, i)
                    .map(|v| v.first().copied().unwrap_or(0))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

/// The verdict a program's return value means on its hook.
pub fn verdict_of(hook: Hook, retval: u32, policy: &Policy) -> Terminal {
    let redirect = || {
        // The return value does not say which interface; a policy with one target names it.
        let mut names: Vec<&str> = policy
            .rules
            .iter()
            .filter_map(|r| match &r.terminal {
                Some(Terminal::Redirect(n)) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if let Terminal::Redirect(n) = &policy.default.terminal {
            names.push(n);
        }
        for t in &policy.tables {
            for (_, action) in &t.entries {
                if let Terminal::Redirect(n) = action {
                    names.push(n);
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        Terminal::Redirect(match names.as_slice() {
            [one] => (*one).to_string(),
            _ => "?".to_string(),
        })
    };
    match (hook, retval) {
        (Hook::Xdp, 0) => Terminal::Abort,
        (Hook::Xdp, 1) => Terminal::Drop,
        (Hook::Xdp, 2) => Terminal::Pass,
        (Hook::Xdp, 3) => Terminal::Tx,
        (Hook::Xdp, 4) => redirect(),
        (Hook::Xdp, _) => Terminal::Abort,
        // TC_ACT_OK, and TC_ACT_UNSPEC from NIC code (the NIC refuses TC_ACT_OK).
        (_, 0 | u32::MAX) => Terminal::Pass,
        (_, 7) => redirect(),
        (_, _) => Terminal::Drop,
    }
}

impl Engine for KernelEngine {
    fn name(&self) -> &str {
        "kernel"
    }

    /// `BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header (and, on TC, than
    /// the fixed IP header the ethertype announces); only the emulator can run those.
    fn can_run(&self, frame: &[u8]) -> bool {
        let kind = match self.program.hook {
            Hook::Xdp => ProgKind::Xdp,
            _ => ProgKind::Tc,
        };
        frame.len() >= crate::program::min_frame(kind, frame).0
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        // A fresh load gives fresh maps: every test starts from the declared state.
        self.loaded = None;
        let kind = match self.program.hook {
            Hook::Xdp => ProgKind::Xdp,
            _ => ProgKind::Tc,
        };
        let loaded = load(&self.object, &self.program.name, kind).map_err(|e| e.to_string())?;
        for (map, entries) in &self.program.maps {
            if map.name.ends_with("_nfcc_clock") {
                // The evaluator's clock starts at 1 s and stands still within a test.
                let now = nfcc_dsl::eval::State::new(policy).now_ns;
                loaded
                    .map_update(&map.name, &0u32.to_le_bytes(), &now.to_le_bytes())
                    .map_err(|e| e.to_string())?;
            }
            for (k, v) in entries {
                loaded
                    .map_update(&map.name, k, v)
                    .map_err(|e| e.to_string())?;
            }
        }
        self.loaded = Some(loaded);
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let before = self.stats(policy.rules.len())?;
        let run = self
            .loaded()?
            .test_run(frame, 1)
            .map_err(|e| e.to_string())?;
        let after = self.stats(policy.rules.len())?;
        let decided: Vec<usize> = (0..before.len())
            .filter(|&i| after[i] != before[i])
            .collect();
        let rule = match decided.as_slice() {
            [i] if *i == policy.rules.len() => RuleRef::Default,
            [i] => RuleRef::Rule(RuleId(*i as u32)),
            _ => {
                return Err(format!(
                    "the rule statistics changed in {} slots for one packet",
                    decided.len()
                ))
            }
        };
        Ok(Outcome {
            verdict: verdict_of(policy.hook, run.retval, policy),
            rule,
            packet: run.data_out,
            mark: None,
        })
    }

    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String> {
        let c = &policy.counters[id.index()];
        let map = format!("{}_cnt_{}", self.program.name, c.name);
        let key = key_of_scalars(&c.key, key);
        let value = self
            .loaded()?
            .map_lookup(&map, &key)
            .map_err(|e| e.to_string())?;
        let Some(bytes) = value else {
            return Ok((0, 0));
        };
        // One 16-byte value per CPU: packets then bytes.
        let mut sum = (0u64, 0u64);
        for cpu in bytes.chunks_exact(16) {
            let p = u64::from_le_bytes(cpu[0..8].try_into().unwrap_or([0; 8]));
            let b = u64::from_le_bytes(cpu[8..16].try_into().unwrap_or([0; 8]));
            sum = (sum.0 + p, sum.1 + b);
        }
        Ok(sum)
    }
}

/// Runs every packet of `policy`'s tests on the evaluator and the kernel and returns
/// (packets compared, frames too short for the kernel, disagreements in words): verdict,
/// deciding rule and emitted bytes per packet, and counters wherever a test reads one.
pub fn compare(policy: &Policy, kernel: &mut KernelEngine) -> (usize, usize, Vec<String>) {
    let mut eval = EvalEngine::default();
    let mut packets = 0;
    let mut short = 0;
    let mut problems = Vec::new();
    for test in &policy.tests {
        // The evaluator cannot fail to reset; its result carries nothing.
        let _ = eval.reset(policy);
        if let Err(e) = kernel.reset(policy) {
            problems.push(format!("{}: kernel load failed: {e}", test.name));
            continue;
        }
        for step in &test.steps {
            match step {
                Step::Send { count, layers, .. } => {
                    let frame = match packet::build(layers) {
                        Ok(f) => f,
                        Err(e) => {
                            problems.push(format!("{}: cannot build a packet: {e}", test.name));
                            continue;
                        }
                    };
                    for i in 0..*count {
                        let Ok(want) = eval.run(policy, &frame) else {
                            continue;
                        };
                        if !kernel.can_run(&frame) {
                            // The kernel's test runner refuses frames this short; the
                            // evaluator still ran it, so its state stays in step.
                            short += 1;
                            continue;
                        }
                        packets += 1;
                        match kernel.run(policy, &frame) {
                            // The skb mark is not read back from the kernel yet (it needs the
                            // test run's context output), so it is left out of the comparison.
                            Ok(got) if Outcome { mark: want.mark, ..got.clone() } == want => {}
                            Ok(got) => problems.push(format!(
                                "{} packet {} (hex {}): eval says {} by {:?} out {}, kernel {} by {:?} out {}",
                                test.name,
                                i + 1,
                                hex(&frame),
                                want.verdict,
                                want.rule,
                                hex(&want.packet),
                                got.verdict,
                                got.rule,
                                hex(&got.packet)
                            )),
                            Err(e) => problems.push(format!("{}: kernel run failed: {e}", test.name)),
                        }
                    }
                }
                Step::ExpectCounter { counter, key, .. } => {
                    let Ok(want) = eval.counter(policy, *counter, key) else {
                        continue;
                    };
                    match kernel.counter(policy, *counter, key) {
                        Ok(got) if got == want => {}
                        Ok(got) => problems.push(format!(
                            "{}: counter {} eval {want:?} kernel {got:?}",
                            test.name,
                            policy.counters[counter.index()].name
                        )),
                        Err(e) => problems.push(format!("{}: counter read failed: {e}", test.name)),
                    }
                }
                _ => {}
            }
        }
    }
    (packets, short, problems)
}
