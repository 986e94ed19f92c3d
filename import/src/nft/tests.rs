//! The nft importer, one rule at a time.

use super::{import, Options};

fn opts() -> Options {
    Options {
        name: "fw".into(),
        chain: None,
        xdp: true,
        iface: Some("eth0".into()),
        skip_unsupported: true,
        source: "test".into(),
    }
}

/// A ruleset of one `inet filter input` chain (policy drop) with these rules' expressions.
fn ruleset(rules: &[&str]) -> String {
    let mut items = vec![
        r#"{"table":{"family":"inet","name":"filter","handle":1}}"#.to_string(),
        r#"{"chain":{"family":"inet","table":"filter","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"drop"}}"#.to_string(),
    ];
    for r in rules {
        items.push(format!(
            r#"{{"rule":{{"family":"inet","table":"filter","chain":"input","handle":2,"expr":{r}}}}}"#
        ));
    }
    format!(r#"{{"nftables":[{}]}}"#, items.join(","))
}

/// Imports one rule and gives its `.nf` line (or the report line of a refusal or skip).
fn check(rule: &str, expect: &str) {
    let got = import(&ruleset(&[rule]), &opts()).unwrap_or_else(|e| panic!("{e}"));
    let line = got
        .nf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rule input_") || l.starts_with("# refused"))
        .map(str::to_string)
        .unwrap_or_else(|| got.report.render());
    assert!(line.contains(expect), "{line}\n{}", got.nf);
}

#[test]
fn matches_keep_nftables_meaning() {
    check(
        r#"[{"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},{"drop":null}]"#,
        "rule input_l2: (ipv4 and not ip.src in 10.0.0.0/8) => drop",
    );
    check(
        r#"[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":{"range":[1,1023]}}},{"accept":null}]"#,
        "ip and ip.proto == 6 and tcp and tcp.dport in 1..1023 => pass",
    );
    check(
        r#"[{"match":{"op":"==","left":{"payload":{"protocol":"icmpv6","field":"type"}},"right":"nd-router-advert"}},{"accept":null}]"#,
        "icmpv6 and icmpv6.type == 134 => pass",
    );
}

#[test]
fn what_cannot_be_said_is_refused_with_the_reason() {
    check(
        r#"[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established"]}},{"accept":null}]"#,
        "connection tracking state is not in the packet",
    );
    check(
        r#"[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"nexthdr"}},"right":"tcp"}},{"accept":null}]"#,
        "the upper-layer protocol after extension headers",
    );
    check(r#"[{"reject":null}]"#, "reject answers the sender");
    check(
        r#"[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth1"}},{"accept":null}]"#,
        "never holds on eth0",
    );
    // Two filter chains on input: each filters every packet; refused as a whole.
    let two = ruleset(&[]).replace(
        "]}",
        r#",{"chain":{"family":"ip","table":"other","name":"in2","handle":3,"type":"filter","hook":"input","prio":10,"policy":"accept"}}]}"#,
    );
    let e = import(&two, &opts())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("several filter chains hook input"), "{e}");
}

#[test]
fn concatenations_are_disjunctions_of_conjunctions() {
    check(
        r#"[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"saddr"}},{"payload":{"protocol":"tcp","field":"dport"}}]},"right":{"set":[{"concat":["10.0.0.3",443]},{"concat":[{"prefix":{"addr":"10.1.0.0","len":16}},{"range":[8000,8080]}]}]}}},{"accept":null}]"#,
        "rule input_l2: ipv4 and tcp and ((ip.src == 10.0.0.3 and tcp.dport == 443) or (ip.src in 10.1.0.0/16 and tcp.dport in 8000..8080)) => pass",
    );
    check(
        r#"[{"match":{"op":"!=","left":{"concat":[{"payload":{"protocol":"ip6","field":"saddr"}},{"payload":{"protocol":"udp","field":"dport"}}]},"right":{"set":[{"concat":["2001:db8::1",53]}]}}},{"drop":null}]"#,
        "rule input_l2: (ipv6 and udp and not (ip.src == 2001:db8::1 and udp.dport == 53)) => drop",
    );
}

#[test]
fn verdict_maps_are_one_rule_per_verdict() {
    let rules = [
        r#"[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},{"vmap":{"key":{"payload":{"protocol":"tcp","field":"dport"}},"data":{"set":[[22,{"accept":null}],[23,{"drop":null}],[{"range":[80,81]},{"jump":{"target":"web"}}],[443,{"accept":null}],[25,{"continue":null}]]}}}]"#,
        r#"[{"vmap":{"key":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"payload":{"protocol":"udp","field":"dport"}}]},"data":{"set":[[{"concat":["10.9.9.9",53]},{"accept":null}]]}}}]"#,
    ];
    let json = ruleset(&rules).replace(
        r#"{"table":{"family":"inet","name":"filter","handle":1}}"#,
        r#"{"table":{"family":"inet","name":"filter","handle":1}},{"chain":{"family":"inet","table":"filter","name":"web","handle":9}},{"rule":{"family":"inet","table":"filter","chain":"web","handle":10,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"sport"}},"right":1024}},{"drop":null}]}}"#,
    );
    let got = import(&json, &opts()).unwrap_or_else(|e| panic!("{e}"));
    let body: Vec<&str> = got
        .nf
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("rule ") && !l.starts_with("rule not_"))
        .collect();
    assert_eq!(
        body,
        [
            "rule input_l4: ipv4 and ip.src in 10.0.0.0/8 and tcp and tcp.dport in {22, 443} => pass",
            "rule input_l4_2: ipv4 and ip.src in 10.0.0.0/8 and tcp and tcp.dport == 23 => drop",
            "rule web_l2: ipv4 and ip.src in 10.0.0.0/8 and tcp and tcp.dport in 80..81 and tcp and tcp.sport == 1024 => drop",
            "rule input_l5: ipv4 and udp and (ip.dst == 10.9.9.9 and udp.dport == 53) => pass",
        ],
        "{}",
        got.nf
    );
    // A data map (not verdicts) is refused with its reason.
    check(
        r#"[{"vmap":{"key":{"payload":{"protocol":"tcp","field":"dport"}},"data":{"set":[[22,"10.0.0.1"]]}}}]"#,
        "not a verdict",
    );
}

#[test]
fn fragment_matches_are_the_offset_field_or_the_frag_test() {
    let word = |mask: u32, op: &str, v: u32| {
        format!(
            r#"[{{"match":{{"op":"{op}","left":{{"&":[{{"payload":{{"protocol":"ip","field":"frag-off"}}}},{mask}]}},"right":{v}}}}},{{"drop":null}}]"#
        )
    };
    check(
        &word(0x1fff, "!=", 0),
        "(ipv4 and not ip.frag_offset == 0) => drop",
    );
    check(
        &word(0x1fff, "==", 0),
        "ipv4 and ip.frag_offset == 0 => drop",
    );
    check(&word(0x3fff, "!=", 0), "ipv4 and frag => drop");
    check(&word(0x3fff, "==", 0), "(ipv4 and not frag) => drop");
    check(
        &word(0x2000, "!=", 0),
        "no field for the DF and MF flags alone",
    );
    check(
        r#"[{"match":{"op":"!=","left":{"exthdr":{"name":"frag","field":"frag-off"}},"right":0}},{"drop":null}]"#,
        "ipv6 and ip.frag_offset != 0 => drop",
    );
    check(
        r#"[{"match":{"op":"==","left":{"exthdr":{"name":"frag","field":"frag-off"}},"right":0}},{"drop":null}]"#,
        "an atomic fragment",
    );
}

#[test]
fn the_header_says_which_packets_the_verdicts_hold_for() {
    let forward = ruleset(&[]).replace(r#""hook":"input""#, r#""hook":"forward""#);
    let o = Options {
        chain: Some("inet/filter/input".into()),
        ..opts()
    };
    let got = import(&forward, &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.traversal, crate::Traversal::Forward);
    assert!(
        got.nf.contains("packets routed through this host"),
        "{}",
        got.nf
    );
    assert!(!got.nf.contains("addressed to this host;"), "{}", got.nf);
    let regular = ruleset(&[]).replace(
        r#","type":"filter","hook":"input","prio":0,"policy":"drop""#,
        "",
    );
    let got = import(&regular, &o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.traversal, crate::Traversal::Jumped);
    assert!(
        got.nf.contains("chain input is a chain no hook calls"),
        "{}",
        got.nf
    );
    assert!(got.nf.contains("default pass"), "{}", got.nf);
}
