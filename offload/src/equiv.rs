//! The split's equivalence check: the emulator runs the NIC stage with NIC semantics
//! (`Profile::Nfp`: helpers the NIC lacks stop the run, redirect aborts), hands what it passes
//! to the host stage, and the pair must agree with the unsplit program — verdict, deciding
//! rule, output bytes, counters — on every test packet and on generated ones.

use crate::split::Split;
use nfcc_compiler::compile::Compiled;
use nfcc_dsl::checked::{CounterId, Policy, Scalar, Step, Terminal};
use nfcc_dsl::eval::{Meta, Outcome};
use nfcc_dsl::testing::{hex, Engine};
use nfcc_emulator::Profile as EmuProfile;
use nfcc_engines::EmulatorEngine;

/// The NIC stage then the host stage, as one test engine.
pub struct SplitEngine {
    nic: Option<(EmulatorEngine, Policy)>,
    host: Option<EmulatorEngine>,
    /// Packets the NIC stage decided (did not hand to the host stage).
    pub nic_decided: usize,
}

impl SplitEngine {
    /// The engine for a split policy.
    pub fn new(split: &Split) -> Result<SplitEngine, String> {
        let nic = match &split.nic {
            Some(s) => Some((
                EmulatorEngine::new(&s.compiled, &s.policy.name)?.with_profile(EmuProfile::Nfp),
                s.policy.clone(),
            )),
            None => None,
        };
        let host = match &split.host {
            Some(s) => Some(EmulatorEngine::new(&s.compiled, &s.policy.name)?),
            None => None,
        };
        Ok(SplitEngine {
            nic,
            host,
            nic_decided: 0,
        })
    }
}

impl Engine for SplitEngine {
    fn name(&self) -> &str {
        "split"
    }

    fn meta(&self) -> Meta {
        Meta::default()
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        if let Some((e, p)) = &mut self.nic {
            e.reset(p)?;
        }
        if let Some(e) = &mut self.host {
            e.reset(policy)?;
        }
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let mut frame = frame.to_vec();
        if let Some((e, p)) = &mut self.nic {
            let o = e.run(p, &frame)?;
            // What the NIC does not pass is decided there; with no host stage, so is the rest.
            if o.verdict != Terminal::Pass || self.host.is_none() {
                self.nic_decided += 1;
                return Ok(o);
            }
            frame = o.packet;
        }
        match &mut self.host {
            Some(e) => e.run(policy, &frame),
            None => Err("a split with neither stage".into()),
        }
    }

    fn counter(
        &mut self,
        policy: &Policy,
        id: CounterId,
        key: &[Scalar],
    ) -> Result<(u64, u64), String> {
        let mut total = (0, 0);
        if let Some((e, p)) = &mut self.nic {
            let (a, b) = e.counter(p, id, key)?;
            total = (total.0 + a, total.1 + b);
        }
        if let Some(e) = &mut self.host {
            let (a, b) = e.counter(policy, id, key)?;
            total = (total.0 + a, total.1 + b);
        }
        Ok(total)
    }
}

/// What the equivalence check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Equivalence {
    /// Test-block packets compared.
    pub test_packets: usize,
    /// Generated packets compared.
    pub generated: usize,
    /// Packets (of both kinds) the NIC stage decided on its own.
    pub nic_decided: usize,
    /// Every disagreement (at most 20 are kept), with the packet in hex.
    pub problems: Vec<String>,
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    a.verdict == b.verdict && a.rule == b.rule && a.packet == b.packet
}

/// Holds `split` to `unsplit` (the policy compiled whole for the host) on every test packet of
/// `policy` and on `generated` packets from [`crate::frames::generate`] with `seed`.
pub fn check(
    policy: &Policy,
    split: &Split,
    unsplit: &Compiled,
    generated: usize,
    seed: u64,
) -> Equivalence {
    let mut eq = Equivalence::default();
    let (mut s, mut u) = match (
        SplitEngine::new(split),
        EmulatorEngine::new(unsplit, &policy.name),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            eq.problems.push(format!("cannot load the programs: {e}"));
            return eq;
        }
    };
    let problem = |eq: &mut Equivalence, p: String| {
        if eq.problems.len() < 20 {
            eq.problems.push(p);
        }
    };
    for test in &policy.tests {
        if let Err(e) = s.reset(policy).and_then(|()| u.reset(policy)) {
            problem(&mut eq, format!("{}: {e}", test.name));
            continue;
        }
        for step in &test.steps {
            match step {
                Step::Send { count, layers, .. } => {
                    let Ok(frame) = nfcc_dsl::packet::build(layers) else {
                        continue;
                    };
                    for _ in 0..*count {
                        eq.test_packets += 1;
                        match (s.run(policy, &frame), u.run(policy, &frame)) {
                            (Ok(a), Ok(b)) if same(&a, &b) => {}
                            (a, b) => problem(
                                &mut eq,
                                format!(
                                    "test \"{}\", packet {}: split {a:?}, unsplit {b:?}",
                                    test.name,
                                    hex(&frame)
                                ),
                            ),
                        }
                    }
                }
                Step::ExpectCounter { counter, key, .. } => {
                    let (a, b) = (
                        s.counter(policy, *counter, key),
                        u.counter(policy, *counter, key),
                    );
                    if a != b {
                        problem(
                            &mut eq,
                            format!(
                                "test \"{}\": counter {} split {a:?}, unsplit {b:?}",
                                test.name,
                                policy.counters[counter.index()].name
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    if let Err(e) = s.reset(policy).and_then(|()| u.reset(policy)) {
        problem(&mut eq, format!("generated packets: {e}"));
        return eq;
    }
    for frame in crate::frames::generate(policy, generated, seed) {
        eq.generated += 1;
        match (s.run(policy, &frame), u.run(policy, &frame)) {
            (Ok(a), Ok(b)) if same(&a, &b) => {}
            (a, b) => problem(
                &mut eq,
                format!(
                    "generated packet {}: split {a:?}, unsplit {b:?}",
                    hex(&frame)
                ),
            ),
        }
    }
    eq.nic_decided = s.nic_decided;
    eq
}
