//! Fuzz target: the frame parser and the reference evaluator never panic on any frame, for a
//! policy that uses every kind of atom and rewrite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfcc_dsl::checked::Policy;
use std::sync::OnceLock;

const POLICY: &str = include_str!("../../dsl/tests/in/ok/all_syntax.nf");

fn policies() -> &'static Vec<Policy> {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        let (p, d) = nfcc_dsl::check_source(POLICY, &nfcc_dsl::CheckOptions::default());
        p.unwrap_or_else(|| panic!("fuzz policy must check: {d:?}")).policies
    })
}

fuzz_target!(|frame: &[u8]| {
    let _ = nfcc_dsl::packet::parse_frame(frame);
    for p in policies() {
        let mut state = nfcc_dsl::eval::State::new(p);
        let out = nfcc_dsl::eval::eval(p, &mut state, &nfcc_dsl::eval::Meta::default(), frame);
        assert_eq!(out.packet.len(), frame.len());
    }
});
