//! The ClassBench importer on hand-written lines, the shared sets and a snapshot.

use super::*;

/// Converts `input` (policy `cb`, every rule drops) and checks that the output contains
/// `expected` and parses as `.nf`; or, when the conversion fails, that the error message
/// contains `expected`.
fn check(input: &str, expected: &str) {
    match classbench_to_nf(input, "cb", ClassbenchActions::Drop) {
        Ok(out) => {
            assert!(
                out.contains(expected),
                "expected {expected:?} in the output:\n{out}"
            );
            let (_, diags) = nfcc_dsl::parse::parse(&out);
            assert!(diags.is_empty(), "output does not parse: {diags:?}\n{out}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(expected),
                "expected {expected:?} in the error: {msg}"
            );
        }
    }
}

/// A filter line from its six columns, in the file's exact layout (with the trailing tab).
fn line(cols: [&str; 6]) -> String {
    format!("@{}\t\n", cols.join("\t"))
}

const ANY: &str = "0.0.0.0/0";
const PORTS: &str = "0 : 65535";

#[test]
fn import_exact_hosts_and_single_ports() {
    check(
        &line([
            "176.19.181.33/32",
            "90.145.23.162/32",
            PORTS,
            "1550 : 1550",
            "0x06/0xFF",
            "0x0000/0x0000",
        ]),
        "rule r0: ipv4.src == 176.19.181.33 and ipv4.dst == 90.145.23.162 and \
         ipv4.proto == 6 and tcp.dport == 1550 => drop",
    );
}

#[test]
fn import_prefixes_clear_host_bits() {
    check(
        &line([
            "10.1.2.3/8",
            "192.168.77.200/20",
            PORTS,
            PORTS,
            "0x11/0xFF",
            "0x0000/0x0000",
        ]),
        "rule r0: ipv4.src in 10.0.0.0/8 and ipv4.dst in 192.168.64.0/20 and ipv4.proto == 17 => drop",
    );
}

#[test]
fn import_port_ranges_pick_the_l4_header() {
    check(
        &line([
            ANY,
            ANY,
            "1024 : 65535",
            "53 : 53",
            "0x11/0xFF",
            "0x0000/0x0000",
        ]),
        "ipv4.proto == 17 and udp.sport in 1024..65535 and udp.dport == 53 => drop",
    );
    // No protocol: the ports imply tcp or udp, and `ipv4` keeps the rule IPv4-only.
    check(
        &line([ANY, ANY, PORTS, "6000 : 6063", "0x00/0x00", "0x0000/0x0000"]),
        "rule r0: ipv4 and l4.dport in 6000..6063 => drop",
    );
    // A partial protocol mask is a masked compare, and ports use l4.
    check(
        &line([ANY, ANY, "7 : 7", PORTS, "0x06/0xFE", "0x0000/0x0000"]),
        "rule r0: ipv4.proto & 0xfe == 0x06 and l4.sport == 7 => drop",
    );
}

#[test]
fn import_ports_on_a_portless_protocol_are_kept_with_a_comment() {
    check(
        &line([ANY, ANY, PORTS, "80 : 80", "0x2f/0xFF", "0x0000/0x0000"]),
        "    # r0 never matches: protocol 47 has no ports, yet the filter constrains them.\n    \
         rule r0: ipv4.proto == 47 and l4.dport == 80 => drop",
    );
}

#[test]
fn import_wildcard_line_matches_all_ipv4() {
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
        "rule r0: ipv4 => drop",
    );
}

#[test]
fn import_tcp_flags_and_icmp_type() {
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0200/0x1200"]),
        "rule r0: ipv4.proto == 6 and tcp.flags & 0x12 == 0x02 => drop",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x1000/0x1000"]),
        "tcp.flags & 0x10 == 0x10 => drop",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0000/0x0200"]),
        "tcp.flags & 0x02 == 0x00 => drop",
    );
    check(
        &line([
            ANY,
            "10.0.0.0/8",
            PORTS,
            PORTS,
            "0x01/0xFF",
            "0x0800/0xff00",
        ]),
        "rule r0: ipv4.dst in 10.0.0.0/8 and ipv4.proto == 1 and icmp.type == 8 => drop",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x01/0xFF", "0x0800/0xf000"]),
        "ipv4.proto == 1 and icmp.type & 0xf0 == 0x00 => drop",
    );
}

#[test]
fn import_without_trailing_tab_crlf_and_blank_lines() {
    let input = "@1.2.3.4/32\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\r\n\
                 \n\
                 @0.0.0.0/0\t5.6.7.8/32\t0:65535\t22:22\t0x06/0xff\t0x0000/0x0000\n";
    check(
        input,
        "rule r0: ipv4.src == 1.2.3.4 => drop\n    rule r1: ipv4.dst == 5.6.7.8",
    );
}

#[test]
fn import_errors_carry_line_and_text() {
    let good = line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]);
    check(
        &format!("{good}@1.2.3.4/32\t0.0.0.0/0\t0 : 65535\n"),
        "line 2: expected 6 tab-separated columns (src, dst, sport, dport, proto, flags), \
         found 3: `@1.2.3.4/32\t0.0.0.0/0\t0 : 65535`",
    );
    let bad_prefix = line([
        "1.2.3.4/33",
        ANY,
        PORTS,
        PORTS,
        "0x00/0x00",
        "0x0000/0x0000",
    ]);
    check(
        &format!("{good}{good}{bad_prefix}"),
        "line 3: invalid ipv4 prefix `1.2.3.4/33`",
    );
    check(
        &line([ANY, "1.2.3/24", PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
        "line 1: invalid ipv4 prefix `1.2.3/24`",
    );
    check(
        &format!(
            "\n{}",
            line([ANY, ANY, "80 : 79", PORTS, "0x06/0xFF", "0x0000/0x0000"])
        ),
        "line 2: empty port range `80 : 79`",
    );
    check(
        &line([ANY, ANY, PORTS, "0 : 65536", "0x06/0xFF", "0x0000/0x0000"]),
        "line 1: invalid port range `0 : 65536`",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x06/0x1FF", "0x0000/0x0000"]),
        "line 1: invalid protocol `0x06/0x1FF`",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "6/255", "0x0000/0x0000"]),
        "line 1: invalid protocol `6/255`",
    );
    check(
        &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x10000/0x0000"]),
        "line 1: invalid flags `0x10000/0x0000`",
    );
    // The variant carries the line number as a field, not only in the message.
    let err = classbench_to_nf(
        &format!("{good}\n{bad_prefix}"),
        "cb",
        ClassbenchActions::Drop,
    );
    assert_eq!(
        err,
        Err(ClassbenchError::Prefix {
            line: 3,
            text: "1.2.3.4/33".into()
        })
    );
}

#[test]
fn import_rejects_bad_policy_names() {
    for name in ["", "1abc", "a-b", "and"] {
        let err = classbench_to_nf("", name, ClassbenchActions::Drop).unwrap_err();
        assert!(
            matches!(err, ClassbenchError::PolicyName { .. }),
            "{name}: {err}"
        );
    }
    let out = classbench_to_nf("", "_acl1", ClassbenchActions::Drop).unwrap();
    assert!(
        out.contains("policy _acl1 on xdp {\n    default pass\n}\n"),
        "{out}"
    );
}

#[test]
fn import_snapshot_alternate_actions() {
    let input = [
        line([
            "176.19.181.33/32",
            "90.145.23.162/32",
            PORTS,
            "1550 : 1550",
            "0x06/0xFF",
            "0x0000/0x0200",
        ]),
        line([
            "10.0.0.0/8",
            ANY,
            "1024 : 65535",
            "53 : 53",
            "0x11/0xFF",
            "0x0000/0x0000",
        ]),
        line([
            ANY,
            "192.0.2.0/24",
            PORTS,
            PORTS,
            "0x01/0xFF",
            "0x0800/0xff00",
        ]),
        line([ANY, ANY, PORTS, "80 : 80", "0x00/0x00", "0x0000/0x0000"]),
        line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
    ]
    .concat();
    let out = classbench_to_nf(&input, "snap", ClassbenchActions::Alternate).unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn import_rules_behave_on_the_reference_evaluator() {
    let input = [
        line([
            "176.19.181.33/32",
            "90.145.23.162/32",
            PORTS,
            "1550 : 1550",
            "0x06/0xFF",
            "0x0200/0x1200",
        ]),
        line([
            ANY,
            "192.0.2.0/24",
            PORTS,
            PORTS,
            "0x01/0xFF",
            "0x0800/0xff00",
        ]),
        line([
            "10.0.0.0/8",
            ANY,
            PORTS,
            "1000 : 2000",
            "0x00/0x00",
            "0x0000/0x0000",
        ]),
    ]
    .concat();
    let out = classbench_to_nf(&input, "cb", ClassbenchActions::Alternate).unwrap();
    // Test blocks go before the policy's closing brace.
    let tests = r#"
test "r0: tcp syn to 1550 from the host" {
    send ipv4(src=176.19.181.33, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn)
    expect drop by r0
    send ipv4(src=176.19.181.33, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn|ack)
    expect pass by default
    send ipv4(src=176.19.181.34, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn)
    expect pass by default
}
test "r1: icmp echo into the /24" {
    send ipv4(src=1.2.3.4, dst=192.0.2.200) / icmp(type=8)
    expect pass by r1
    send ipv4(src=1.2.3.4, dst=192.0.2.200) / icmp(type=0)
    expect pass by default
}
test "r2: ports without a protocol mean tcp or udp over ipv4" {
    send ipv4(src=10.1.1.1, dst=1.2.3.4) / udp(sport=5, dport=1000)
    expect drop by r2
    send ipv4(src=10.1.1.1, dst=1.2.3.4) / tcp(sport=5, dport=2000, flags=ack)
    expect drop by r2
    send ipv4(src=10.1.1.1, dst=1.2.3.4) / tcp(sport=5, dport=2001, flags=ack)
    expect pass by default
    send ipv6(src=2001:db8::1, dst=2001:db8::2) / udp(sport=5, dport=1500)
    expect pass by default
}
}
"#;
    let source = format!("{}{tests}", out.trim_end().strip_suffix('}').unwrap());
    let (prog, diags) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{source}");
    let policy = &prog.expect("checked").policies[0];
    let mut engine = nfcc_dsl::testing::EvalEngine::default();
    for report in nfcc_dsl::testing::run_tests(policy, &mut engine) {
        assert!(report.passed(), "{}: {:?}", report.name, report.failures);
    }
}

/// A ClassBench file of the shared bench data.
fn bench_file(name: &str) -> String {
    let path = format!(
        "{}/../../shared/bench-data/classbench/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn import_acl1_1k() {
    let acl1_1k = bench_file("acl1_1k");
    let out = classbench_to_nf(&acl1_1k, "acl1", ClassbenchActions::Drop).unwrap();
    let lines = acl1_1k.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(lines, 942);
    assert!(out.contains("# 942 rules"), "{}", &out[..300]);
    let (file, diags) = nfcc_dsl::parse::parse(&out);
    assert!(diags.is_empty(), "{diags:?}");
    let rules = &file.policies[0].rules;
    assert_eq!(rules.len(), 942);
    assert_eq!(rules[941].name.name, "r941");
    let (prog, diags) = nfcc_dsl::check_source(&out, &nfcc_dsl::CheckOptions::default());
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(prog.expect("checked").policies[0].rules.len(), 942);
    check(
        &acl1_1k,
        "rule r0: ipv4.src == 176.19.181.33 and ipv4.dst == 90.145.23.162 and \
         ipv4.proto == 6 and tcp.dport == 1550 and tcp.flags & 0x02 == 0x00 => drop\n",
    );
}

#[test]
fn import_every_bench_set_converts_and_parses() {
    for name in [
        "acl1_1k", "acl1_10k", "fw1_1k", "fw1_10k", "ipc1_1k", "ipc1_10k",
    ] {
        let input = bench_file(name);
        let lines = input.lines().filter(|l| !l.trim().is_empty()).count();
        let out = classbench_to_nf(&input, name, ClassbenchActions::Alternate)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (file, diags) = nfcc_dsl::parse::parse(&out);
        assert!(diags.is_empty(), "{name}: {diags:?}");
        assert_eq!(file.policies[0].rules.len(), lines, "{name}");
    }
}

/// Flags that name TCP flags or an ICMP type and code are matched; any other flags column is
/// imported without it, and one note says how many rules and which values — never a refusal.
#[test]
fn flags_are_matched_where_they_mean_something_and_noted_where_not() {
    let lines = [
        line([ANY, ANY, PORTS, PORTS, "0x01/0xFF", "0x0303/0xFFFF"]),
        line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0200/0x1200"]),
        line([ANY, ANY, PORTS, PORTS, "0x11/0xFF", "0x0200/0x0200"]),
        line([ANY, ANY, PORTS, PORTS, "0x11/0xFF", "0x0200/0x0200"]),
        line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0000/0x00FF"]),
    ]
    .join("\n");
    let out =
        classbench_to_nf(&lines, "cb", ClassbenchActions::Drop).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("rule r0: ipv4.proto == 1 and icmp.type == 3 and icmp.code == 3 => drop"),
        "{out}"
    );
    assert!(
        out.contains("rule r1: ipv4.proto == 6 and tcp.flags & 0x12 == 0x02 => drop"),
        "{out}"
    );
    assert!(out.contains("rule r2: ipv4.proto == 17 => drop"), "{out}");
    assert!(
        out.contains("# The flags column of 3 rule(s) is ignored")
            && out.contains(
                "0x0200/0x0200 on protocol 0x11/0xFF (2), 0x0000/0x00FF on protocol 0x06/0xFF (1)"
            ),
        "{out}"
    );
}
