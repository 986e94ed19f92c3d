//! Reference-evaluator semantics that test blocks cannot express: the clock (limiter refill),
//! counter keys, incremental checksums against freshly built frames, Maglev consistency and
//! sampling. Every test goes through `check`, which evaluates one packet against a policy.

use nfcc_dsl::checked::{Policy, RuleRef, Scalar};
use nfcc_dsl::eval::{eval, maglev_table, Meta, State, MAGLEV_SIZE};
use nfcc_dsl::packet::checksums_valid;
use nfcc_dsl::testing::frame_from_literal;
use nfcc_dsl::{check_source, CheckOptions};

fn policy(src: &str) -> Policy {
    let (p, d) = check_source(src, &CheckOptions::default());
    let p = p.unwrap_or_else(|| panic!("policy must check: {d:?}"));
    p.policies.into_iter().next().expect("one policy")
}

fn frame(lit: &str) -> Vec<u8> {
    frame_from_literal(lit).unwrap_or_else(|e| panic!("literal {lit}: {e}"))
}

/// Evaluates `packet` on `state` and compares "VERDICT by RULE" with `expect`.
fn check(p: &Policy, state: &mut State, packet: &str, expect: &str) -> Vec<u8> {
    let out = eval(p, state, &Meta::default(), &frame(packet));
    let by = match out.rule {
        RuleRef::Rule(r) => p.rule(r).name.clone(),
        RuleRef::Default => "default".into(),
    };
    assert_eq!(
        format!("{} by {by}", out.verdict),
        expect,
        "packet {packet}"
    );
    out.packet
}

#[test]
fn limiter_refills_at_rate_and_caps_at_burst() {
    let p = policy(
        "policy p on xdp { limiter l: key ip.src, rate 10/s, burst 2
           rule over_rate: over l => drop  default pass }",
    );
    let mut s = State::new(&p);
    let pkt = "ipv4(src=10.0.0.1) / udp()";
    check(&p, &mut s, pkt, "pass by default");
    check(&p, &mut s, pkt, "pass by default");
    check(&p, &mut s, pkt, "drop by over_rate");
    // Another key has its own full bucket.
    check(&p, &mut s, "ipv4(src=10.0.0.2) / udp()", "pass by default");
    // 99 ms refill 0.99 tokens: still over; 1 ms more makes a whole token.
    s.now_ns += 99_000_000;
    check(&p, &mut s, pkt, "drop by over_rate");
    s.now_ns += 1_000_000;
    check(&p, &mut s, pkt, "pass by default");
    check(&p, &mut s, pkt, "drop by over_rate");
    // An hour later the bucket holds `burst` tokens, not 36,000.
    s.now_ns += 3_600_000_000_000;
    check(&p, &mut s, pkt, "pass by default");
    check(&p, &mut s, pkt, "pass by default");
    check(&p, &mut s, pkt, "drop by over_rate");
}

#[test]
fn counter_keys_map_ipv4_into_ipv6_and_zero_absent_fields() {
    let p = policy(
        "policy p on xdp { counter c: key (ip.src, l4.dport)
           rule all: pkt.len > 0 => count c, pass  default pass }",
    );
    let mut s = State::new(&p);
    check(
        &p,
        &mut s,
        "ipv4(src=10.0.0.1) / udp(dport=53)",
        "pass by all",
    );
    check(
        &p,
        &mut s,
        "ipv4(src=10.0.0.1) / udp(dport=53) / payload(\"abcd\")",
        "pass by all",
    );
    check(&p, &mut s, "ipv4(src=10.0.0.1) / icmp()", "pass by all");
    check(
        &p,
        &mut s,
        "ipv6(src=::ffff:10.0.0.1) / udp(dport=53)",
        "pass by all",
    );
    let v4 = Scalar {
        family: nfcc_dsl::checked::Family::V4,
        bits: 0x0a00_0001,
    };
    let id = nfcc_dsl::checked::CounterId(0);
    // The IPv4 packets and the IPv4-mapped IPv6 packet share a key: that is the key layout.
    assert_eq!(s.counter(&p, id, &[v4, Scalar::int(53)]), (3, 42 + 46 + 62));
    assert_eq!(s.counter(&p, id, &[v4, Scalar::int(0)]), (1, 42));
}

#[test]
fn rewrites_fix_checksums_exactly_as_a_fresh_build() {
    let p = policy(
        "policy p on xdp {
           rule nat4: ipv4.dst == 10.0.0.1 => set ip.dst = 192.0.2.99, set l4.dport = 8080, dec ip.ttl, set ip.dscp = 46, pass
           rule nat6: ipv6.dst == 2001:db8::1 => set ip.dst = 2001:db8::99, set l4.sport = 1, set eth.src = 02:aa:bb:cc:dd:ee, pass
           default pass }",
    );
    let cases = [
        (
            "ipv4(dst=10.0.0.1, ttl=9) / tcp(sport=5, dport=80) / payload(\"hello\")",
            "pass by nat4",
            "ipv4(dst=192.0.2.99, ttl=8, dscp=46) / tcp(sport=5, dport=8080) / payload(\"hello\")",
        ),
        (
            "ipv4(dst=10.0.0.1, ttl=1) / udp(sport=5, dport=53) / payload(\"x\")",
            "pass by nat4",
            "ipv4(dst=192.0.2.99, ttl=0, dscp=46) / udp(sport=5, dport=8080) / payload(\"x\")",
        ),
        (
            "ipv4(dst=10.0.0.1, ttl=0) / icmp(type=8)",
            "pass by nat4",
            "ipv4(dst=192.0.2.99, ttl=0, dscp=46) / icmp(type=8)",
        ),
        (
            "ipv6(dst=2001:db8::1) / udp(sport=7, dport=53) / payload(\"abc\")",
            "pass by nat6",
            "eth(src=02:aa:bb:cc:dd:ee) / ipv6(dst=2001:db8::99) / udp(sport=1, dport=53) / payload(\"abc\")",
        ),
        (
            "ipv6(dst=2001:db8::1) / tcp(sport=7, dport=443)",
            "pass by nat6",
            "eth(src=02:aa:bb:cc:dd:ee) / ipv6(dst=2001:db8::99) / tcp(sport=1, dport=443)",
        ),
    ];
    for (input, verdict, expected) in cases {
        let mut s = State::new(&p);
        let out = check(&p, &mut s, input, verdict);
        checksums_valid(&out).unwrap_or_else(|e| panic!("{input}: {e:?}"));
        assert_eq!(
            out,
            frame(expected),
            "{input}: rewritten frame differs from a fresh build"
        );
    }
}

#[test]
fn udp_without_checksum_keeps_zero() {
    let p = policy("policy p on xdp { rule n: udp => set l4.dport = 1, pass default pass }");
    let mut s = State::new(&p);
    let out = check(&p, &mut s, "ipv4() / udp(dport=2, checksum=0)", "pass by n");
    assert_eq!(
        &out[40..42],
        &[0, 0],
        "a UDP checksum of zero means none and stays zero"
    );
}

#[test]
fn maglev_is_balanced_by_weight_and_consistent() {
    let b = |last: u128, w: u32| {
        (
            Scalar {
                family: nfcc_dsl::checked::Family::V4,
                bits: 0x0a00_0000 | last,
            },
            w,
        )
    };
    let all = [b(1, 2), b(2, 1), b(3, 1)];
    let t = maglev_table(&all);
    assert_eq!(t.len(), MAGLEV_SIZE);
    let share = |i: u32| t.iter().filter(|&&x| x == i).count() as f64 / MAGLEV_SIZE as f64;
    assert!(
        (share(0) - 0.5).abs() < 0.01,
        "weight 2 of 4 takes half: {}",
        share(0)
    );
    assert!((share(1) - 0.25).abs() < 0.01 && (share(2) - 0.25).abs() < 0.01);
    // Remove backend 1: slots of backends 0 and 2 mostly stay where they were.
    let fewer = maglev_table(&[all[0], all[2]]);
    let moved = t
        .iter()
        .zip(&fewer)
        .filter(|(old, new)| **old != 1 && (if **old == 2 { 1 } else { **old }) != **new)
        .count();
    assert!(
        (moved as f64) < 0.05 * MAGLEV_SIZE as f64,
        "{moved} slots of surviving backends moved"
    );
}

#[test]
fn balance_rewrites_to_a_pool_member_stably() {
    let p = policy(
        "policy p on xdp { pool web = { 10.1.0.1, 10.1.0.2, 10.1.0.3 }
           rule lb: tcp.dport == 80 => balance web by (ip.src, l4.sport), tx  default pass }",
    );
    let mut s = State::new(&p);
    let mut seen = std::collections::HashSet::new();
    for port in 1000..1200 {
        let lit = format!("ipv4(src=198.51.100.1, dst=10.1.0.100) / tcp(sport={port}, dport=80)");
        let a = check(&p, &mut s, &lit, "tx by lb");
        let b = check(&p, &mut s, &lit, "tx by lb");
        assert_eq!(a, b, "the same flow goes to the same backend");
        checksums_valid(&a).unwrap_or_else(|e| panic!("{e:?}"));
        seen.insert(a[33]);
    }
    assert_eq!(
        seen,
        [1u8, 2, 3].into_iter().collect(),
        "200 flows reach all three backends"
    );
}

#[test]
fn sample_takes_one_in_n_and_table_supplies_the_terminal() {
    let p = policy(
        "policy p on xdp {
           table t: key (ip.src) -> pass | drop entries { (10.0.0.1) => drop, (10.0.0.2) => pass }
           rule acl: match t => sample 3
           default sample 2, pass }",
    );
    let mut s = State::new(&p);
    for _ in 0..7 {
        check(&p, &mut s, "ipv4(src=10.0.0.1) / udp()", "drop by acl");
    }
    check(&p, &mut s, "ipv4(src=10.0.0.2) / udp()", "pass by acl");
    check(&p, &mut s, "ipv4(src=10.0.0.3) / udp()", "pass by default");
    let from_acl = s
        .samples
        .iter()
        .filter(|r| matches!(r.rule, RuleRef::Rule(_)))
        .count();
    // Packets 1, 4, 7 of the 8 acl packets are sampled; the default samples its first.
    assert_eq!((from_acl, s.samples.len()), (3, 4));
    assert_eq!(s.rule_stats[0].0, 8);
    assert!(
        p.rules[0].terminal.is_none(),
        "the table supplies the terminal"
    );
}

#[test]
fn balance_via_fib_without_a_route_passes_the_packet_unchanged() {
    let p = policy(
        "policy p on xdp { pool web = { 10.1.0.1 }
           rule lb: tcp.dport == 80 => balance web by (ip.src), tx  default pass }",
    );
    let fib = policy(
        "policy p on xdp { pool web = { 10.1.0.1 }
           rule lb: tcp.dport == 80 => balance web by (ip.src) via fib, tx  default pass }",
    );
    let lit = "ipv4(src=198.51.100.1, dst=10.1.0.100) / tcp(dport=80)";
    let mut s = State::new(&fib);
    let out = check(&fib, &mut s, lit, "pass by lb");
    assert_eq!(
        out,
        frame(lit),
        "no route: the packet goes to the stack untouched"
    );
    s.fib.insert(
        0x0a01_0001,
        nfcc_dsl::eval::FibEntry {
            smac: [2, 0, 0, 0, 0, 0xaa],
            dmac: [2, 0, 0, 0, 0, 0xbb],
        },
    );
    let out = check(&fib, &mut s, lit, "tx by lb");
    assert_eq!(&out[..12], &[2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa]);
    let mut s2 = State::new(&p);
    let plain = check(&p, &mut s2, lit, "tx by lb");
    assert_eq!(
        &out[12..],
        &plain[12..],
        "with a route, only the MACs differ from plain balance"
    );
}

#[test]
fn encapsulation_passes_untouched_where_it_cannot_apply() {
    // On tc the outer header goes after the 14-byte MAC header the kernel knows, so a frame
    // with a VLAN tag in its bytes (as `BPF_PROG_TEST_RUN` gives it) passes unchanged; the
    // testbed cannot send one (the kernel takes the tag out before tc sees the frame).
    let p = policy(
        r#"policy p on tc ingress { pool b = { 10.4.0.1 }
           rule vip: ip.dst == 192.0.2.101 => balance b by (ip.src) encap ipip, redirect "eth1"
           default pass }"#,
    );
    let mut s = State::new(&p);
    let tagged = "eth() / vlan(id=5) / ipv4(src=198.51.100.2, dst=192.0.2.101) / udp(dport=80)";
    let out = check(&p, &mut s, tagged, "pass by vip");
    assert_eq!(out, frame(tagged));
    let plain = "ipv4(src=198.51.100.2, dst=192.0.2.101) / udp(dport=80)";
    let out = check(&p, &mut s, plain, "redirect \"eth1\" by vip");
    assert_eq!(out.len(), frame(plain).len() + 20);
    assert!(checksums_valid(&out).is_ok());
    // A pool of the other family: an IPv6 packet passes unchanged.
    let p = policy(
        "policy p on xdp { pool b = { 10.4.0.1 }
           rule any: l4.dport == 80 => balance b by (ip.src) encap gue(6080), tx
           default pass }",
    );
    let v6 = "ipv6(src=2001:db8::1, dst=2001:db8::2) / tcp(dport=80)";
    let out = check(&p, &mut State::new(&p), v6, "pass by any");
    assert_eq!(out, frame(v6));
}
