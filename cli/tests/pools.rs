//! `nfcc pool add|del|list` on a loaded policy: the backends read back from the maps, a removal
//! that moves only the removed backend's table slots (and Maglev's few others), an addition
//! taking the freed slot as a new incarnation, and the mistakes an operator makes refused with
//! what to do. What the changed program does with packets is tested by the DSR testbed
//! (`testbeds/tests/dsr.rs`) and, unprivileged, by `engines/tests/pools.rs`.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

mod common;
use common::{nfcc, privileged, sh};

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = nfcc(&["unload", "--iface", &self.0]);
        sh(&format!("ip link del {} 2>/dev/null", self.0));
    }
}

#[test]
fn pools_change_on_a_loaded_policy() {
    if !privileged("pool", &["ip"]) {
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (format!("npl{id}a"), format!("npl{id}b"));
    assert!(sh(&format!(
        "ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"
    )));
    let _cleanup = Cleanup(a.clone());
    let (code, out) = nfcc(&["load", "examples/l4lb.nf", "--iface", &a]);
    assert_eq!(code, 0, "{out}");

    let (code, out) = nfcc(&["pool", "list", "l4lb", "web"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pool web: 3 of 64 backends"), "{out}");
    for addr in ["10.0.2.11", "10.0.2.12", "10.0.2.13"] {
        assert!(out.contains(addr), "{out}");
    }

    let (code, out) = nfcc(&["pool", "del", "l4lb", "web", "10.0.2.12"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed 10.0.2.12")
            && out.contains("pool web: 2 of 64 backends")
            && !out
                .lines()
                .any(|l| l.starts_with("  ") && l.contains("10.0.2.12")),
        "{out}"
    );
    // About a third of the slots were the removed backend's; Maglev moves few others.
    let moved: f64 = out
        .split(" table slots moved (")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no moved share in {out}"));
    assert!((25.0..40.0).contains(&moved), "{out}");

    let (code, out) = nfcc(&["pool", "add", "l4lb", "web", "10.0.2.14", "weight", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("10.0.2.14")
            && out.contains("weight 2")
            && out.contains("slot 1 (incarnation 2)"),
        "the freed slot holds the new backend: {out}"
    );
    assert!(out.contains("added 10.0.2.14 with weight 2"), "{out}");
    // Adding a backend the pool holds keeps its weight and changes nothing.
    let (code, out) = nfcc(&["pool", "add", "l4lb", "web", "10.0.2.14"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("10.0.2.14 is already a backend with weight 2: nothing changed")
            && out.contains("0 of 65537 table slots moved"),
        "{out}"
    );
    // With a weight it is re-weighted, and says from what to what.
    let (code, out) = nfcc(&["pool", "add", "l4lb", "web", "10.0.2.14", "weight", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("10.0.2.14: weight 2 -> 3"), "{out}");

    // Mistakes: each refused with exit 1 and the reason, nothing changed.
    for (args, says) in [
        (
            vec!["del", "l4lb", "web", "10.0.2.99"],
            "has no backend 10.0.2.99",
        ),
        (
            vec!["add", "l4lb", "web", "2001:db8::1"],
            "backends are IPv4",
        ),
        (
            vec!["add", "l4lb", "web", "10.0.2.15", "weight", "0"],
            "use 1 to 255",
        ),
        (
            vec!["list", "l4lb", "nope"],
            "no dynamic pool `nope`; its dynamic pools are: web, dns",
        ),
        (vec!["add", "l4lb", "web"], "needs a backend address"),
    ] {
        let (code, out) = nfcc(&[&["pool"], args.as_slice()].concat());
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    let (_, out) = nfcc(&["pool", "list", "l4lb", "web"]);
    assert!(out.contains("pool web: 3 of 64 backends"), "{out}");
    // A new version keeps the pool as `nfcc pool` left it, whether the program is updated in
    // place or reloaded, as sets keep their members.
    for how in [&["--replace"][..], &["--replace", "--reload"][..]] {
        let (code, out) = nfcc(&[&["load", "examples/l4lb.nf", "--iface", &a], how].concat());
        assert_eq!(code, 0, "{how:?}: {out}");
        let (_, out) = nfcc(&["pool", "list", "l4lb", "web"]);
        assert!(
            out.contains("pool web: 3 of 64 backends")
                && out
                    .lines()
                    .any(|l| l.contains("10.0.2.14") && l.contains("weight 3"))
                && !out.contains("10.0.2.12"),
            "{how:?}: {out}"
        );
    }
    // One way to name a deployment, for every command: KEY or --iface.
    let (code, out) = nfcc(&["pool", "list", "--iface", &a, "web"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pool web: 3 of 64 backends"), "{out}");
    let (code, out) = nfcc(&["stats", "--iface", &a, "--json"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = nfcc(&["stats", "l4lb", "--iface", "nfcc-not-this0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("is on ") && out.contains("not nfcc-not-this0"),
        "{out}"
    );
    let (code, out) = nfcc(&["unload", "l4lb"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("unloaded l4lb from {a}")), "{out}");
    let (code, out) = nfcc(&["stats", "--iface", &a]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("no nfcc deployment is on {a}")),
        "{out}"
    );
}
