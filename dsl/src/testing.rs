//! Runs the `test` blocks of a checked policy on an [`Engine`]: the reference evaluator here,
//! the emulator, JIT, kernel and testbed in `nfcc-engines`, all through the same runner so that
//! a test means the same thing on every engine.
//!
//! Each test starts from a fresh engine state (sets as declared, counters empty, the clock at
//! its start and constant within the test). A failing expectation records which packet, what
//! was expected and what the engine did, with the span of the `expect` line.

use crate::ast::Span;
use crate::checked::*;
use crate::eval::{self, Meta, Outcome, State};
use crate::packet;

/// An engine that can run a policy's packets.
pub trait Engine {
    /// A short name for reports (`eval`, `emulator`, `kernel`).
    fn name(&self) -> &str;
    /// Starts a test: fresh state.
    fn reset(&mut self, policy: &Policy) -> Result<(), String>;
    /// Runs one packet.
    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String>;
    /// The metadata the engine gives every packet (interface, queue, mark), so the evaluator
    /// can be given the same when the two are compared.
    fn meta(&self) -> Meta {
        Meta::default()
    }
    /// Whether the engine can run this frame at all (the kernel's test runner refuses frames
    /// shorter than an Ethernet header); expectations about frames it cannot run are skipped.
    fn can_run(&self, _frame: &[u8]) -> bool {
        true
    }
    /// Reads a counter: (packets, bytes) under the key values.
    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String>;
}

/// The reference evaluator as an engine.
#[derive(Debug, Default)]
pub struct EvalEngine {
    state: Option<State>,
    /// Metadata given to every packet.
    pub meta: Meta,
}

impl Engine for EvalEngine {
    fn name(&self) -> &str {
        "eval"
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        self.state = Some(State::new(policy));
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let state = self.state.get_or_insert_with(|| State::new(policy));
        Ok(eval::eval(policy, state, &self.meta, frame))
    }

    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String> {
        let state = self.state.get_or_insert_with(|| State::new(policy));
        Ok(state.counter(policy, id, key))
    }
}

/// One failed expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The `expect` (or `send`) statement.
    pub span: Span,
    /// What went wrong, in words.
    pub message: String,
}

/// The result of one test block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestReport {
    /// The policy's name.
    pub policy: String,
    /// The test's name.
    pub name: String,
    /// Where the test is.
    pub span: Span,
    /// Packets sent.
    pub packets: u64,
    /// Failed expectations; empty when the test passed.
    pub failures: Vec<Failure>,
    /// Expectations not checked because the engine cannot run their packets, with why.
    pub skipped: Vec<Failure>,
}

impl TestReport {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn describe(policy: &Policy, v: &Terminal, r: RuleRef) -> String {
    let by = match r {
        RuleRef::Rule(id) => policy.rule(id).name.clone(),
        RuleRef::Default => "default".to_string(),
    };
    format!("{v} by {by}")
}

/// Runs every test block of `policy` on `engine`.
pub fn run_tests(policy: &Policy, engine: &mut dyn Engine) -> Vec<TestReport> {
    policy
        .tests
        .iter()
        .map(|t| run_test(policy, t, engine))
        .collect()
}

fn run_test(policy: &Policy, test: &Test, engine: &mut dyn Engine) -> TestReport {
    let mut report = TestReport {
        policy: policy.name.clone(),
        name: test.name.clone(),
        span: test.span,
        packets: 0,
        failures: vec![],
        skipped: vec![],
    };
    if let Err(e) = engine.reset(policy) {
        report.failures.push(Failure {
            span: test.span,
            message: format!("{} engine could not start: {e}", engine.name()),
        });
        return report;
    }
    // Per packet of the last batch only its verdict and rule are kept, plus the last packet's
    // whole outcome for `expect out`: a `send 1000000 x` stays small.
    let mut batch: Vec<(Terminal, RuleRef)> = Vec::new();
    let mut last: Option<Outcome> = None;
    let mut batch_skipped = false;
    let mut sent_frame: Vec<u8> = Vec::new();
    for step in &test.steps {
        match step {
            Step::Send {
                count,
                layers,
                span,
            } => {
                batch.clear();
                last = None;
                batch_skipped = false;
                let frame = match packet::build(layers) {
                    Ok(f) => f,
                    Err(e) => {
                        report.failures.push(Failure {
                            span: *span,
                            message: format!("cannot build the packet: {e}"),
                        });
                        continue;
                    }
                };
                if !engine.can_run(&frame) {
                    batch_skipped = true;
                    report.skipped.push(Failure {
                        span: *span,
                        message: format!(
                            "the {} engine cannot run a {}-byte frame",
                            engine.name(),
                            frame.len()
                        ),
                    });
                    continue;
                }
                for _ in 0..*count {
                    match engine.run(policy, &frame) {
                        Ok(o) => {
                            batch.push((o.verdict.clone(), o.rule));
                            last = Some(o);
                        }
                        Err(e) => {
                            report.failures.push(Failure {
                                span: *span,
                                message: format!(
                                    "{} engine failed to run the packet: {e}",
                                    engine.name()
                                ),
                            });
                            break;
                        }
                    }
                    report.packets += 1;
                }
                sent_frame = frame;
            }
            Step::ExpectVerdict { .. } | Step::ExpectOut { .. } if batch_skipped => {}
            Step::ExpectVerdict {
                count,
                verdict,
                by,
                span,
            } => {
                let matches = |v: &Terminal, r: RuleRef| v == verdict && by.is_none_or(|b| b == r);
                let got = batch.iter().filter(|(v, r)| matches(v, *r)).count();
                let want = count.map_or(batch.len(), |c| c as usize);
                if got != want || batch.is_empty() {
                    let mut expected = verdict.to_string();
                    if let Some(b) = by {
                        expected = describe(policy, verdict, *b);
                    }
                    let message = if batch.len() == 1 {
                        format!(
                            "packet 1 (hex {}): expected {expected}, got {}",
                            hex(&sent_frame),
                            describe(policy, &batch[0].0, batch[0].1)
                        )
                    } else {
                        let mut hist: Vec<(String, usize)> = Vec::new();
                        for (v, r) in &batch {
                            let d = describe(policy, v, *r);
                            match hist.iter_mut().find(|(k, _)| *k == d) {
                                Some((_, n)) => *n += 1,
                                None => hist.push((d, 1)),
                            }
                        }
                        let got_s = hist
                            .iter()
                            .map(|(k, n)| format!("{n} x {k}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!(
                            "of {} packets expected {want} x {expected}, got {got_s}",
                            batch.len()
                        )
                    };
                    report.failures.push(Failure {
                        span: *span,
                        message,
                    });
                }
            }
            Step::ExpectCounter {
                counter,
                key,
                value,
                bytes,
                span,
            } => match engine.counter(policy, *counter, key) {
                Ok((p, b)) => {
                    let got = if *bytes { b } else { p };
                    if got != *value {
                        let keys = key
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ");
                        report.failures.push(Failure {
                            span: *span,
                            message: format!(
                                "counter {}[{keys}]: expected {value} {}, got {got}",
                                policy.counters[counter.index()].name,
                                if *bytes { "bytes" } else { "packets" }
                            ),
                        });
                    }
                }
                Err(e) => report.failures.push(Failure {
                    span: *span,
                    message: format!("cannot read the counter: {e}"),
                }),
            },
            Step::ExpectOut { layers, span } => {
                let Some(last) = &last else {
                    report.failures.push(Failure {
                        span: *span,
                        message: "no packet was emitted to compare".into(),
                    });
                    continue;
                };
                if matches!(last.verdict, Terminal::Drop | Terminal::Abort) {
                    report.failures.push(Failure {
                        span: *span,
                        message: format!(
                            "the packet was not emitted: verdict {}",
                            describe(policy, &last.verdict, last.rule)
                        ),
                    });
                    continue;
                }
                if let Err(problems) = packet::check_out(layers, &last.packet) {
                    report.failures.push(Failure {
                        span: *span,
                        message: format!(
                            "emitted packet (hex {}): {}",
                            hex(&last.packet),
                            problems.join("; ")
                        ),
                    });
                }
            }
        }
    }
    report
}

/// Lowercase hex of a byte string.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds a frame from packet-literal text such as `ipv4(src=10.0.0.1) / udp(dport=53)`,
/// resolved exactly as in a test block (named constants, defaults, checksums). Diagnostics
/// point into a wrapper policy around the literal, so they are for programs and tests, not for
/// showing to users against a file.
pub fn frame_from_literal(literal: &str) -> Result<Vec<u8>, String> {
    let src = format!("policy literal on xdp {{ default pass test \"t\" {{ send {literal} }} }}");
    let (program, diags) = crate::check_source(&src, &crate::CheckOptions::default());
    let Some(program) = program else {
        return Err(crate::diag::render_short("literal", &src, &diags));
    };
    match program
        .policies
        .first()
        .and_then(|p| p.tests.first())
        .and_then(|t| t.steps.first())
    {
        Some(Step::Send { layers, .. }) => packet::build(layers).map_err(|e| e.to_string()),
        _ => Err("no packet in the literal".into()),
    }
}

/// Runs every packet of `policy`'s tests on the evaluator and on `engine` and returns (packets
/// compared, frames the engine cannot run, disagreements in words): verdict, deciding rule and
/// emitted bytes per packet — and the final skb mark when `marks` — and counters wherever a
/// test reads one. The evaluator gets the engine's packet metadata.
pub fn compare(
    policy: &Policy,
    engine: &mut dyn Engine,
    marks: bool,
) -> (usize, usize, Vec<String>) {
    let meta = engine.meta();
    let mut eval = EvalEngine { state: None, meta };
    let name = engine.name().to_string();
    let mut packets = 0;
    let mut short = 0;
    let mut problems = Vec::new();
    for test in &policy.tests {
        // The evaluator cannot fail to reset; its result carries nothing.
        let _ = eval.reset(policy);
        if let Err(e) = engine.reset(policy) {
            problems.push(format!("{}: {name} load failed: {e}", test.name));
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
                        if !engine.can_run(&frame) {
                            // The engine refuses frames this short; the evaluator still ran
                            // it, so its state stays in step.
                            short += 1;
                            continue;
                        }
                        packets += 1;
                        let final_mark = |o: &Outcome| o.mark.unwrap_or(meta.mark);
                        match engine.run(policy, &frame) {
                            Ok(got)
                                if got.verdict == want.verdict
                                    && got.rule == want.rule
                                    && got.packet == want.packet
                                    && (!marks || final_mark(&got) == final_mark(&want)) => {}
                            Ok(got) => problems.push(format!(
                                "{} packet {} (hex {}): eval says {} by {:?} out {} mark {}, {name} {} by {:?} out {} mark {}",
                                test.name,
                                i + 1,
                                hex(&frame),
                                want.verdict,
                                want.rule,
                                hex(&want.packet),
                                final_mark(&want),
                                got.verdict,
                                got.rule,
                                hex(&got.packet),
                                final_mark(&got),
                            )),
                            Err(e) => problems.push(format!("{}: {name} run failed: {e}", test.name)),
                        }
                    }
                }
                Step::ExpectCounter { counter, key, .. } => {
                    let Ok(want) = eval.counter(policy, *counter, key) else {
                        continue;
                    };
                    match engine.counter(policy, *counter, key) {
                        Ok(got) if got == want => {}
                        Ok(got) => problems.push(format!(
                            "{}: counter {} eval {want:?} {name} {got:?}",
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

/// The deciding rule of a packet, for engines that learn it from a program's per-rule packet
/// counts (rules in order, then the default) read before and after the packet: exactly one
/// count must have moved.
pub fn rule_from_counts(policy: &Policy, before: &[u64], after: &[u64]) -> Result<RuleRef, String> {
    let moved: Vec<usize> = (0..before.len().min(after.len()))
        .filter(|&i| after[i] != before[i])
        .collect();
    match moved.as_slice() {
        [i] if *i == policy.rules.len() => Ok(RuleRef::Default),
        [i] => Ok(RuleRef::Rule(RuleId(*i as u32))),
        _ => Err(format!(
            "the rule statistics changed in {} slots for one packet",
            moved.len()
        )),
    }
}

/// The rule behind statistics slot `slot` (the slot after the last rule is the default's).
pub fn rule_of_slot(policy: &Policy, slot: u32) -> Result<RuleRef, String> {
    match (slot as usize).cmp(&policy.rules.len()) {
        std::cmp::Ordering::Less => Ok(RuleRef::Rule(RuleId(slot))),
        std::cmp::Ordering::Equal => Ok(RuleRef::Default),
        std::cmp::Ordering::Greater => Err(format!(
            "the program decided with statistics slot {slot}, past the default's ({})",
            policy.rules.len()
        )),
    }
}

/// `source` with every policy but `keep` replaced by spaces (newlines kept, so spans and line
/// numbers stay put): checks one policy of a file alone, e.g. for a target only it must meet.
pub fn policy_alone(source: &str, program: &Program, keep: &str) -> String {
    let mut bytes = source.as_bytes().to_vec();
    for p in program.policies.iter().filter(|p| p.name != keep) {
        let end = (p.span.end as usize).min(bytes.len());
        for c in bytes
            .get_mut(p.span.start as usize..end)
            .into_iter()
            .flatten()
        {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
