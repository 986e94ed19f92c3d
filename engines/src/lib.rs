//! nfcc-engines: a compiled policy as a test [`Engine`](nfcc_dsl::testing::Engine) on each
//! executor nfcc has — the emulator's interpreter and JIT and the rbpf oracle ([`emulator`]), the kernel's
//! `BPF_PROG_TEST_RUN` ([`kernel`]) and the real path through a veth testbed ([`testbed`]).
//!
//! Every engine speaks the same protocol: load the object as deployed, fill its maps, run a
//! frame, read the deciding rule back from the per-rule statistics (the layout of
//! `nfcc_bpf::layout`), read counters by key. So test blocks run on each exactly as they run
//! on the reference evaluator, and `nfcc_dsl::testing::compare` holds each to it packet by
//! packet. This crate sits above the executors so that they know only the BPF ABI, not the
//! compiler.

pub mod emulator;
pub mod kernel;
pub mod testbed;

pub use emulator::{EmulatorEngine, Executor};
pub use kernel::KernelEngine;
pub use testbed::TestbedEngine;

/// The statistics an engine has seen move, per slot: each packet's deciding slot (read from
/// the packet vector, `nfcc_bpf::layout::DECIDED_OFFSET`) must have counted it, one more
/// than before — so reading one slot per packet still holds the statistics to the verdicts.
#[derive(Debug, Default)]
pub(crate) struct Seen(std::collections::HashMap<u32, u64>);

impl Seen {
    /// Slot `slot` decided a packet and now counts `now`.
    pub(crate) fn moved(&mut self, slot: u32, now: u64) -> Result<(), String> {
        let before = self.0.entry(slot).or_insert(0);
        if now != *before + 1 {
            return Err(format!(
                "statistics slot {slot} decided the packet but counts {now} packets, not {}",
                *before + 1
            ));
        }
        *before = now;
        Ok(())
    }
}

/// Counter `id`'s value for `key` in `policy` compiled as `program`, read through `lookup` (an
/// executor's map read) and summed over CPUs: how every engine answers
/// `expect counter NAME[KEY] == N`.
pub(crate) fn read_counter(
    policy: &nfcc_dsl::checked::Policy,
    program: &str,
    id: nfcc_dsl::checked::CounterId,
    key: &[nfcc_dsl::checked::Scalar],
    lookup: impl FnOnce(&str, &[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Result<(u64, u64), String> {
    let (map, key) = nfcc_compiler::compile::counter_entry(policy, program, id, key);
    Ok(lookup(&map, &key)?.map_or((0, 0), |v| nfcc_compiler::compile::counter_sum(&v)))
}

/// The rule behind statistics slot `slot` of `program`: its default may sit in the last slot
/// of a statistics map with room for rules to come (a program laid out for updates in place).
pub(crate) fn rule_of_slot(
    program: &nfcc_compiler::compile::CompiledProgram,
    policy: &nfcc_dsl::checked::Policy,
    slot: u32,
) -> Result<nfcc_dsl::checked::RuleRef, String> {
    let slot = if slot == program.ir.default.1 {
        policy.rules.len() as u32
    } else {
        slot
    };
    nfcc_dsl::testing::rule_of_slot(policy, slot)
}

/// The rule whose statistics slot moved between `before` and `after` (every slot of
/// `program`'s statistics map up to its default's): the counts as the policy numbers its
/// slots (rules, then the default, wherever `program` keeps it) for
/// [`nfcc_dsl::testing::rule_from_counts`].
pub(crate) fn rule_from_counts(
    program: &nfcc_compiler::compile::CompiledProgram,
    policy: &nfcc_dsl::checked::Policy,
    before: &[u64],
    after: &[u64],
) -> Result<nfcc_dsl::checked::RuleRef, String> {
    let rules = policy.rules.len();
    let default = program.ir.default.1 as usize;
    let by_policy = |c: &[u64]| -> Vec<u64> {
        c.iter()
            .take(rules)
            .chain(c.get(default))
            .copied()
            .collect()
    };
    nfcc_dsl::testing::rule_from_counts(policy, &by_policy(before), &by_policy(after))
}
