//! The kernel as a test engine: a compiled policy loaded with its maps filled, each packet run
//! through `BPF_PROG_TEST_RUN`, the deciding rule read back from the packet vector (the slot the
//! program leaves there, held to that slot's statistics), or, for programs without a vector,
//! from every rule's statistics before and after.
//! Implements `nfcc_dsl::testing::Engine`, so test blocks run on the kernel exactly as they
//! run on the reference evaluator.
//!
//! Test blocks run with an AF_XDP socket bound on every queue (`redirect xsk` hands packets
//! to it): the kernel's XSKMAP takes only real sockets, so the engine binds one on the
//! loopback device and puts it in every entry; the test run returns `XDP_REDIRECT` then, as
//! it would with the deployment's sockets bound.

use nfcc_compiler::compile::prog_type;
use nfcc_compiler::compile::{Compiled, CompiledProgram};
use nfcc_dsl::checked::{CounterId, Policy, Scalar};
use nfcc_dsl::eval::Outcome;
use nfcc_dsl::testing::Engine;
use nfcc_runtime::{load, Loaded, RuntimeError};

/// A policy's compiled program, loaded fresh for every test.
pub struct KernelEngine {
    object: Vec<u8>,
    program: CompiledProgram,
    loaded: Option<Loaded>,
    /// The AF_XDP socket of `redirect xsk` policies (bound on `lo`), once needed.
    xsk: Option<nfcc_runtime::xsk::XskSocket>,
    /// Statistics seen so far, when the program leaves its deciding slot in its vector.
    seen: crate::Seen,
    /// Whether the program has a packet vector to leave its deciding slot in.
    vector: bool,
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
        let scratch = nfcc_bpf::layout::scratch_map_name(&program.name);
        let vector = program.maps.iter().any(|(m, _)| m.name == scratch);
        Ok(KernelEngine {
            object: compiled.object.clone(),
            vector,
            program,
            loaded: None,
            xsk: None,
            seen: crate::Seen::default(),
        })
    }

    fn loaded(&self) -> Result<&Loaded, String> {
        self.loaded
            .as_ref()
            .ok_or_else(|| "the program is not loaded".to_string())
    }

    /// Per-rule packet counts (rules then the default), summed over CPUs.
    fn stats(&self, rules: usize) -> Result<Vec<u64>, String> {
        self.loaded()?.rule_counts(rules).map_err(|e| e.to_string())
    }
}

pub use nfcc_compiler::codegen::terminal_of as verdict_of;

impl Engine for KernelEngine {
    fn name(&self) -> &str {
        "kernel"
    }

    /// `BPF_PROG_TEST_RUN` runs frames as if they came in on the loopback device (index 1).
    fn meta(&self) -> nfcc_dsl::eval::Meta {
        nfcc_dsl::eval::Meta {
            ifindex: 1,
            rxq: 0,
            mark: 0,
        }
    }

    /// `BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header (and, on TC, than
    /// the fixed IP header the ethertype announces); only the emulator can run those.
    fn can_run(&self, frame: &[u8]) -> bool {
        frame.len() >= nfcc_runtime::min_frame(prog_type(self.program.hook), frame).0
    }

    fn reset(&mut self, policy: &Policy) -> Result<(), String> {
        // A fresh load gives fresh maps: every test starts from the declared state.
        self.loaded = None;
        self.seen = crate::Seen::default();
        let loaded = load(
            &self.object,
            &self.program.name,
            prog_type(self.program.hook),
        )
        .map_err(|e| e.to_string())?;
        for (map, entries) in &self.program.maps {
            if map.name == nfcc_bpf::layout::clock_map_name(&self.program.name) {
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
        let xsk_map = nfcc_bpf::layout::xsk_map_name(&self.program.name);
        if self.program.maps.iter().any(|(m, _)| m.name == xsk_map) {
            let s = nfcc_runtime::xsk::bind_for_test_run(
                &loaded,
                &xsk_map,
                nfcc_bpf::layout::XSK_QUEUES,
            )
            .map_err(|e| e.to_string())?;
            self.xsk = Some(s);
        }
        self.loaded = Some(loaded);
        Ok(())
    }

    fn run(&mut self, policy: &Policy, frame: &[u8]) -> Result<Outcome, String> {
        let (run, rule) = if self.vector {
            // The deciding slot from the packet vector, and that slot's count: a few
            // syscalls, however many rules.
            let loaded = self.loaded()?;
            let (run, slot) = loaded.test_run_decided(frame).map_err(|e| e.to_string())?;
            let slot = slot.ok_or("the program decided no rule (it left its vector untouched)")?;
            let stats = nfcc_bpf::layout::stats_map_name(&self.program.name);
            let now = loaded
                .percpu_array_sum(&stats, slot)
                .map_err(|e| e.to_string())?
                .first()
                .copied()
                .unwrap_or(0);
            self.seen.moved(slot, now)?;
            (run, crate::rule_of_slot(&self.program, policy, slot)?)
        } else {
            let before = self.stats(self.program.ir.default.1 as usize)?;
            let run = self
                .loaded()?
                .test_run(frame, 1)
                .map_err(|e| e.to_string())?;
            let after = self.stats(self.program.ir.default.1 as usize)?;
            (
                run,
                crate::rule_from_counts(&self.program, policy, &before, &after)?,
            )
        };
        let verdict = nfcc_compiler::codegen::named_by_rule(
            verdict_of(policy.hook, run.retval, policy),
            policy,
            rule,
        );
        Ok(Outcome {
            verdict,
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
        let loaded = self.loaded()?;
        crate::read_counter(policy, &self.program.name, id, key, |m, k| {
            loaded.map_lookup(m, k).map_err(|e| e.to_string())
        })
    }
}

/// Runs every packet of `policy`'s tests on the evaluator and the kernel; see
/// [`nfcc_dsl::testing::compare`]. The skb mark is not read back from the kernel yet (it needs
/// the test run's context output), so it is left out.
pub fn compare(policy: &Policy, kernel: &mut KernelEngine) -> (usize, usize, Vec<String>) {
    nfcc_dsl::testing::compare(policy, kernel, false)
}
