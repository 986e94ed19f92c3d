//! The offload crate without privileges: profiles and their TOML overrides, the independent
//! bytecode scanner (on hand-made instructions, and as a property over random policies
//! compiled for the NIC), and the split's equivalence on 100,000 generated packets — which
//! must also catch a split that changes the policy's meaning.

use nfcc_offload::equiv;
use nfcc_offload::frames::Rng;
use nfcc_offload::split::{scan, scan_insns, split};
use nfcc_offload::Profile;

fn checked(src: &str) -> nfcc_dsl::checked::Policy {
    let (p, d) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    p.unwrap_or_else(|| panic!("{d:?}"))
        .policies
        .into_iter()
        .next()
        .expect("a policy")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../examples/{name}.nf",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("example")
}

fn host_compiled(
    policy: &nfcc_dsl::checked::Policy,
    src: &str,
) -> nfcc_compiler::compile::Compiled {
    nfcc_compiler::compile::compile(
        &nfcc_dsl::checked::Program {
            policies: vec![policy.clone()],
        },
        "t.nf",
        src,
        Some(nfcc_dsl::checked::Target::Host),
    )
    .unwrap_or_else(|d| panic!("{d:?}"))
}

#[test]
fn card_profiles_override_the_defaults() {
    let p = Profile::nfp()
        .with_overrides("# an Agilio CX\n[nfp]\nmax_insns = 8_192\nmax_entry_bytes = 128\n")
        .expect("profile");
    assert_eq!(
        (p.max_insns, p.max_entry_bytes, p.max_maps),
        (8192, 128, 64)
    );
    let e = Profile::nfp()
        .with_overrides("max_inst = 1\n")
        .expect_err("typo");
    assert!(e.to_string().contains("unknown limit `max_inst`"), "{e}");
    let e = Profile::nfp()
        .with_overrides("max_insns = lots\n")
        .expect_err("not a number");
    assert!(e.to_string().contains("line 1"), "{e}");
}

fn insn(code: u8, regs: u8, off: i16, imm: i32) -> Vec<u8> {
    let mut b = vec![code, regs];
    b.extend_from_slice(&off.to_le_bytes());
    b.extend_from_slice(&imm.to_le_bytes());
    b
}

#[test]
fn the_scanner_names_what_the_nic_refuses() {
    let refused = [
        (insn(0x62, 0x0a, -8, 1), "st"), // *(u32 *)(r10 - 8) = 1
        (insn(0x97, 0x01, 0, 7), "mod"), // r1 %= 7
        (insn(0x27, 0x01, 0, 3), "64-bit multiply"),
        (insn(0x3f, 0x21, 0, 0), "division by a register"),
        (insn(0x85, 0x00, 0, 5), "helper 5"), // bpf_ktime_get_ns
        (insn(0x85, 0x00, 0, 23), "helper 23"), // bpf_redirect
        (insn(0xdb, 0x21, 0, 0x01), "atomic"), // fetch-add
        (insn(0xbf, 0x21, 8, 0), "sign-extending move"),
        (insn(0xd7, 0x01, 0, 32), "bswap"),
        (insn(0xd4, 0x01, 0, 16), "little-endian"),
    ];
    for (bytes, what) in &refused {
        let found = scan_insns(bytes);
        assert!(
            found.len() == 1 && found[0].contains(what),
            "{what}: {found:?}"
        );
    }
    let accepted: Vec<u8> = [
        insn(0x61, 0x21, 0, 0),    // r1 = *(u32 *)(r2 + 0)
        insn(0x07, 0x01, 0, 14),   // r1 += 14
        insn(0x85, 0x00, 0, 1),    // map_lookup_elem
        insn(0xdc, 0x01, 0, 16),   // be16
        insn(0xdb, 0x21, 0, 0x00), // atomic add
        insn(0x24, 0x01, 0, 3),    // w1 *= 3
        insn(0x95, 0x00, 0, 0),    // exit
    ]
    .concat();
    assert!(scan_insns(&accepted).is_empty());
}

/// A random policy of constructs the NIC can run, from a seed.
fn random_nic_policy(rng: &mut Rng, n: usize) -> String {
    let preds = [
        "ipv4",
        "ipv6",
        "tcp",
        "udp",
        "frag",
        "icmp",
        "tcp.dport == 22",
        "udp.dport in {53, 123, 1000..2000}",
        "ip.src in 10.0.0.0/8",
        "ipv4.ttl < 5",
        "tcp.flags has syn and not tcp.flags has ack",
        "ip.dst in blocked",
        "ipv6.src in 2001:db8::/32",
        "l4.sport in ports",
        "ipv4.dscp == 46",
        "udp.len > 512",
        "eth.type == 0x0806",
        "vlan.id == 100",
        "icmp.type == 8",
        "ip.proto == 47",
        "tcp.window < 1024",
        "payload[0..4] == \"GET \"",
    ];
    let actions = [
        "drop",
        "pass",
        "tx",
        "count hits, drop",
        "set ip.ttl = 9, tx",
        "dec ip.ttl, pass",
    ];
    let mut s = format!(
        "policy r{} on xdp {{\n  set blocked: ipv4 prefix = {{ 192.0.2.0/24, 198.51.100.7 }}\n  set ports: port = {{ 19, 123 }}\n  counter hits: key ip.src, capacity 1024\n",
        rng.below(1_000_000)
    );
    for i in 0..n {
        let a = preds[rng.below(preds.len() as u64) as usize];
        let b = preds[rng.below(preds.len() as u64) as usize];
        let join = ["and", "or", "and not"][rng.below(3) as usize];
        let act = actions[rng.below(actions.len() as u64) as usize];
        s.push_str(&format!("  rule r{i}: {a} {join} {b} => {act}\n"));
    }
    s.push_str(&format!(
        "  default {}\n}}\n",
        ["pass", "drop"][rng.below(2) as usize]
    ));
    s
}

#[test]
fn random_policies_compiled_for_the_nic_use_only_what_it_accepts() {
    let mut rng = Rng::new(0x6f66_666c);
    let mut compiled = 0;
    for _ in 0..150 {
        let n = 1 + rng.below(12) as usize;
        let src = random_nic_policy(&mut rng, n);
        let (p, _) = nfcc_dsl::check_source(
            &src,
            &nfcc_dsl::CheckOptions {
                target: Some(nfcc_dsl::checked::Target::Nfp),
            },
        );
        let Some(p) = p else {
            continue;
        };
        let c =
            nfcc_compiler::compile::compile(&p, "r.nf", &src, Some(nfcc_dsl::checked::Target::Nfp))
                .unwrap_or_else(|d| panic!("{src}\n{d:?}"));
        for prog in &c.programs {
            let kinds: Vec<_> = prog.maps.iter().map(|(m, _)| m.kind).collect();
            let found = scan(&c.object, &prog.section, &kinds);
            assert!(found.is_empty(), "{src}\n{found:#?}");
        }
        compiled += 1;
    }
    assert!(
        compiled >= 100,
        "only {compiled} random policies checked for the NIC"
    );
}

#[test]
fn splits_agree_with_the_unsplit_programs_on_100k_packets() {
    for name in ["ipv6_edge", "ddos_guard", "nic_scrubber"] {
        let src = example(name);
        let policy = checked(&src);
        let s = split(&policy, "t.nf", &src, &Profile::nfp()).unwrap_or_else(|d| panic!("{d:?}"));
        assert!(s.nic.is_some(), "{name}: something runs on the NIC");
        let eq = equiv::check(&policy, &s, &host_compiled(&policy, &src), 100_000, 7);
        assert!(eq.problems.is_empty(), "{name}: {:#?}", eq.problems);
        assert_eq!(eq.generated, 100_000);
        assert!(eq.test_packets > 0);
    }
}

#[test]
fn a_split_that_changes_the_meaning_is_caught() {
    // The NIC stage of this policy drops what its first rule matches; a stage that bounced
    // those packets instead must be reported.
    let src = "policy p on xdp {\n  rule dns: udp.dport == 53 => drop\n  rule web: tcp.dport == 80 => pass\n  default pass\n  test \"dns\" {\n    send ipv4() / udp(dport=53)\n    expect drop by dns\n  }\n}\n";
    let policy = checked(src);
    let mut s = split(&policy, "t.nf", src, &Profile::nfp()).expect("split");
    let wrong_src = src.replace("udp.dport == 53 => drop", "udp.dport == 53 => tx");
    let wrong = checked(&wrong_src);
    let nic = s.nic.as_mut().expect("a NIC stage");
    nic.compiled = nfcc_compiler::compile::compile(
        &nfcc_dsl::checked::Program {
            policies: vec![wrong.clone()],
        },
        "t.nf",
        &wrong_src,
        Some(nfcc_dsl::checked::Target::Nfp),
    )
    .expect("compile");
    nic.policy = wrong;
    let eq = equiv::check(&policy, &s, &host_compiled(&policy, src), 2000, 1);
    assert!(!eq.problems.is_empty(), "the tampered split went unnoticed");
}
