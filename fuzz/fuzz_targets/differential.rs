//! Fuzz target: the emulator running each example's compiled program — on the interpreter and
//! on the JIT — agrees with the reference evaluator on any frame (verdict, deciding rule,
//! emitted bytes, mark). A disagreement panics with both answers; libFuzzer keeps the frame in
//! `artifacts/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfcc_dsl::checked::{Policy, Program};
use nfcc_dsl::testing::{hex, Engine};
use nfcc_emulator::engine::EmulatorEngine;
use std::sync::{Mutex, OnceLock};

const EXAMPLES: [&str; 7] = [
    include_str!("../../examples/ddos_guard.nf"),
    include_str!("../../examples/edge_ddos.nf"),
    include_str!("../../examples/acl_firewall.nf"),
    include_str!("../../examples/ipv6_edge.nf"),
    include_str!("../../examples/dns_ratelimit.nf"),
    include_str!("../../examples/observability.nf"),
    include_str!("../../examples/nic_scrubber.nf"),
];

fn engines() -> &'static Mutex<Vec<(Policy, Vec<EmulatorEngine>)>> {
    static E: OnceLock<Mutex<Vec<(Policy, Vec<EmulatorEngine>)>>> = OnceLock::new();
    E.get_or_init(|| {
        let mut v = Vec::new();
        for src in EXAMPLES {
            let (p, d) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
            let p = p.unwrap_or_else(|| panic!("example must check: {d:?}"));
            for policy in p.policies {
                let single = Program {
                    policies: vec![policy.clone()],
                };
                let c = nfcc_compiler::compile::compile(&single, "example.nf", src, None)
                    .unwrap_or_else(|e| panic!("example must compile: {e:?}"));
                let e = EmulatorEngine::new(&c, &policy.name).unwrap_or_else(|e| panic!("{e}"));
                v.push((policy, vec![e.clone_engine(), e.with_jit()]));
            }
        }
        Mutex::new(v)
    })
}

fuzz_target!(|frame: &[u8]| {
    let mut all = engines().lock().unwrap_or_else(|e| e.into_inner());
    for (policy, engines) in all.iter_mut() {
        for emu in engines.iter_mut() {
            // Fresh state per input, so a frame's answer does not depend on earlier inputs.
            emu.reset(policy).unwrap_or_else(|e| panic!("{e}"));
            let meta = emu.meta();
            let mut state = nfcc_dsl::eval::State::new(policy);
            let want = nfcc_dsl::eval::eval(policy, &mut state, &meta, frame);
            let got = emu
                .run(policy, frame)
                .unwrap_or_else(|e| panic!("emulator failed on {}: {e}", hex(frame)));
            let mark = |o: &nfcc_dsl::eval::Outcome| o.mark.unwrap_or(meta.mark);
            assert!(
                got.verdict == want.verdict
                    && got.rule == want.rule
                    && got.packet == want.packet
                    && mark(&got) == mark(&want),
                "{} ({}): frame {}: eval {} by {:?} out {}, emulator {} by {:?} out {}",
                policy.name,
                emu.name(),
                hex(frame),
                want.verdict,
                want.rule,
                hex(&want.packet),
                got.verdict,
                got.rule,
                hex(&got.packet)
            );
        }
    }
});
