//! Property tests: nothing in the front end panics on any input. The parser and checker run on
//! random token soups and on mutated corpus files; the evaluator runs every example policy on
//! random and mutated frames.

use nfcc_dsl::eval::{eval, Meta, State};
use nfcc_dsl::{check_source, CheckOptions};
use proptest::prelude::*;
use std::path::Path;

const TOKENS: &[&str] = &[
    "policy",
    "p",
    "on",
    "xdp",
    "tc",
    "ingress",
    "egress",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "rule",
    "r",
    ":",
    "=>",
    "drop",
    "pass",
    "tx",
    "abort",
    "default",
    "and",
    "or",
    "not",
    "in",
    "has",
    "over",
    "match",
    "payload",
    "tcp",
    "udp",
    "ip.src",
    "tcp.dport",
    "ipv6.src",
    "eth.src",
    "vlan.id",
    "==",
    "!=",
    "<",
    ">=",
    "&",
    "|",
    ",",
    "..",
    "/",
    "10.0.0.0/8",
    "2001:db8::/32",
    "::",
    "02:00:00:00:00:01",
    "0x1f",
    "0x",
    "65535",
    "70000",
    "1000/s",
    "64K",
    "\"GET \"",
    "\"\\x41\"",
    "set",
    "s",
    "ipv4",
    "prefix",
    "capacity",
    "dynamic",
    "=",
    "counter",
    "limiter",
    "key",
    "rate",
    "burst",
    "table",
    "->",
    "entries",
    "pool",
    "weight",
    "balance",
    "by",
    "via",
    "fib",
    "count",
    "sample",
    "mark",
    "dec",
    "ip.ttl",
    "redirect",
    "\"eth0\"",
    "test",
    "\"t\"",
    "send",
    "expect",
    "x",
    "3",
    "ipv4(src=1.2.3.4)",
    "udp(dport=53)",
    "truncate(10)",
    "counter",
    "out",
    "const",
    "#",
    "\n",
    " ",
    "andd",
    "offload",
    "nfp",
];

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        "tests/in/ok",
        "tests/in/err",
        "tests/in/warn",
        "../examples",
    ] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "nf") {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    out.push(s);
                }
            }
        }
    }
    assert!(out.len() >= 10, "corpus files found: {}", out.len());
    out
}

/// The one check of this layer: the front end returns (with or without diagnostics) and every
/// diagnostic's span lies inside the source.
fn check(src: &str) {
    let (_, diags) = check_source(src, &CheckOptions::default());
    for d in &diags {
        for l in &d.labels {
            assert!(
                l.span.end as usize <= src.len(),
                "span {:?} outside a {}-byte source",
                l.span,
                src.len()
            );
        }
    }
    let _ = nfcc_dsl::diag::render("fuzz.nf", src, &diags);
}

/// Inputs that once crashed the front end (found by the fuzzer or the properties below).
#[test]
fn regressions_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir)
        .expect("tests/regressions exists")
        .flatten()
    {
        let bytes = std::fs::read(e.path()).expect("readable regression");
        check(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
    // The smallest form of the first fuzz crash: a diagnostic starting at a `\r`.
    check("const \r");
    check("policy p on xdp {\r\n rule r: tcp.dport == 70000\r\n=> drop default pass }");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(idx in prop::collection::vec(0..TOKENS.len(), 0..60)) {
        let src: Vec<&str> = idx.iter().map(|&i| TOKENS[i]).collect();
        check(&src.join(" "));
    }

    #[test]
    fn mutated_corpus_never_panics(file in 0usize..64, edits in prop::collection::vec((any::<u32>(), 0usize..4, any::<u8>()), 1..8)) {
        let files = corpus();
        let mut bytes = files[file % files.len()].clone().into_bytes();
        for (pos, op, b) in edits {
            let at = if bytes.is_empty() { 0 } else { pos as usize % bytes.len() };
            match op {
                0 if !bytes.is_empty() => { bytes.remove(at); }
                1 => bytes.insert(at, b" {}()=>,.:/\"x0"[b as usize % 14]),
                2 if !bytes.is_empty() => bytes[at] = b,
                _ => bytes.truncate(at),
            }
        }
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn evaluator_never_panics_on_any_frame(file in 0usize..64, frame in prop::collection::vec(any::<u8>(), 0..200)) {
        let files = corpus();
        let (program, _) = check_source(&files[file % files.len()], &CheckOptions::default());
        if let Some(program) = program {
            for policy in &program.policies {
                let mut state = State::new(policy);
                let out = eval(policy, &mut state, &Meta::default(), &frame);
                prop_assert_eq!(out.packet.len(), frame.len());
            }
        }
    }
}
