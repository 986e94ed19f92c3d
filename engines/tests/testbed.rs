//! The testbed engine on the real path: every example's test packets sent through a veth
//! testbed (XDP, TC ingress, TC egress) come out where the evaluator says — the AF_XDP corpus
//! policy's too, received on a socket. Needs root, `ip`
//! and `ethtool` (skipped otherwise, or failing under `NFCC_REQUIRE_KERNEL=1`).

use std::process::Command;

fn can_run(test: &str, tools: &[&str]) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t} >/dev/null")])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if root && missing.is_empty() && nfcc_runtime::can_load_bpf().is_ok() {
        return true;
    }
    let reason = format!("needs root, bpf and {}", tools.join(", "));
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the {test} test {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}

#[test]
fn testbed_engine_agrees_with_the_evaluator_on_every_example() {
    if !can_run("testbed engine", &["ip", "ethtool"]) {
        return;
    }
    let mut total = 0;
    let mut hooks = std::collections::BTreeSet::new();
    for name in [
        "acl_firewall",
        "ddos_guard",
        "dns_ratelimit",
        "edge_ddos",
        "ipv6_edge",
        "nic_scrubber",
        "observability",
        // `redirect xsk`: packets observed arriving at an AF_XDP socket.
        "../compiler/tests/in/xsk",
    ] {
        let path = format!("{}/../examples/{name}.nf", env!("CARGO_MANIFEST_DIR"));
        let Ok(src) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (p, d) = nfcc_dsl::check_source(&src, &nfcc_dsl::CheckOptions::default());
        let p = p.unwrap_or_else(|| panic!("{name}: {d:?}"));
        for pol in &p.policies {
            hooks.insert(pol.hook.as_str());
            let single = nfcc_dsl::checked::Program {
                policies: vec![pol.clone()],
            };
            let c = nfcc_compiler::compile::compile_with(&single, &path, &src, None, true)
                .unwrap_or_else(|d| panic!("{d:?}"));
            let mut e = nfcc_engines::TestbedEngine::new(&c, &pol.name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (packets, _, problems) = nfcc_dsl::testing::compare(pol, &mut e, false);
            assert!(problems.is_empty(), "{name}: {problems:#?}");
            total += packets;
        }
    }
    assert!(total >= 60, "only {total} packets went through the testbed");
    assert_eq!(
        hooks.len(),
        3,
        "xdp, tc ingress and tc egress all ran: {hooks:?}"
    );
}
