//! The operator's commands on a live interface: `nfcc load` a policy on a veth whose peer is in
//! its own network namespace, `nfcc status`, `nfcc set add` of the peer's prefix taking effect
//! on the next packet without a reload (pings start being dropped by the blocklist rule, as
//! `nfcc stats --json` shows), `nfcc load --replace` keeping the set's contents, `nfcc set
//! list|del`, `nfcc watch` of sampled pings (lines and a
//! pcap), and `nfcc unload`; loads refused for want of privilege or by the verifier say why,
//! exit 2 and leave nothing attached. The test creates the
//! veth pair and namespace and always removes them.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

mod common;
use common::{nfcc, sh};
use std::process::Command;

struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = nfcc(&["unload", "--iface", &self.0]);
        sh(&format!(
            "ip link del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.0, self.1
        ));
    }
}

/// The blocklist rule's packet count, from `nfcc stats --json`.
fn blocked(policy: &str) -> u64 {
    let (_, out) = nfcc(&["stats", policy, "--json"]);
    let key = "\"rule\":\"blocklist\",\"packets\":";
    let at = out.find(key).map(|i| i + key.len());
    at.and_then(|i| {
        out[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
    .unwrap_or_else(|| panic!("no blocklist count in {out}"))
}

#[test]
fn load_set_stats_and_unload_on_a_live_interface() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !sh("command -v ip >/dev/null && command -v ping >/dev/null") {
        let reason = "needs root, ip and ping";
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but this test {reason}");
        }
        eprintln!("skipped: live-interface test: {reason}");
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b, ns) = (
        format!("nlv{id}a"),
        format!("nlv{id}b"),
        format!("nfccns{id}"),
    );
    assert!(sh(&format!(
        "ip netns add {ns} && ip link add {a} type veth peer name {b} && ip link set {b} netns {ns} \
         && ip addr add 203.0.113.1/24 dev {a} && ip link set {a} up \
         && ip -n {ns} addr add 203.0.113.2/24 dev {b} && ip -n {ns} link set {b} up"
    )));
    let _cleanup = Cleanup(a.clone(), ns.clone());
    let (code, out) = nfcc(&["load", "examples/ddos_guard.nf", "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = nfcc(&["status"]);
    assert!(out.contains("ddos_guard") && out.contains(&a), "{out}");
    let ping = format!("ip netns exec {ns} ping -c 3 -i 0.2 -W 1 203.0.113.1 >/dev/null 2>&1");
    assert!(sh(&ping), "pings must pass before the prefix is blocked");
    let before = blocked("ddos_guard");
    let (code, out) = nfcc(&["set", "add", "ddos_guard", "blocked", "203.0.113.0/24"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !sh(&ping),
        "pings must be dropped once the prefix is in the set"
    );
    assert!(
        blocked("ddos_guard") >= before + 3,
        "the blocklist rule counted the drops"
    );
    // A new version swapped in one step keeps the set's run-time contents.
    let (_, before_status) = nfcc(&["status"]);
    let (code, out) = nfcc(&["load", "examples/ddos_guard.nf", "--iface", &a, "--replace"]);
    assert_eq!(code, 0, "{out}");
    let (_, after_status) = nfcc(&["status"]);
    assert_ne!(before_status, after_status, "the program id changes");
    assert!(
        !sh(&ping),
        "the replaced program still drops the blocked prefix"
    );
    let (_, out) = nfcc(&["set", "list", "ddos_guard", "blocked"]);
    assert!(out.contains("203.0.113.0/24"), "{out}");
    let (code, out) = nfcc(&["set", "del", "ddos_guard", "blocked", "203.0.113.0/24"]);
    assert_eq!(code, 0, "{out}");
    assert!(sh(&ping), "pings pass again once the prefix is removed");
    let (code, out) = nfcc(&["set", "add", "ddos_guard", "blocked", "300.1.1.1"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = nfcc(&["unload", "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = nfcc(&["status"]);
    assert!(!out.contains(&a), "{out}");
}

#[test]
fn watch_prints_sampled_packets_and_writes_a_pcap() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !sh("command -v ip >/dev/null && command -v ping >/dev/null") {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but this test needs root, ip and ping");
        }
        eprintln!("skipped: watch test: needs root, ip and ping");
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b, ns) = (
        format!("nlw{id}a"),
        format!("nlw{id}b"),
        format!("nfccnw{id}"),
    );
    assert!(sh(&format!(
        "ip netns add {ns} && ip link add {a} type veth peer name {b} && ip link set {b} netns {ns} \
         && ip addr add 198.18.9.1/24 dev {a} && ip link set {a} up \
         && ip -n {ns} addr add 198.18.9.2/24 dev {b} && ip -n {ns} link set {b} up"
    )));
    let _cleanup = Cleanup(a.clone(), ns.clone());
    let dir = std::env::temp_dir().join(format!("nfcc-watch-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("w.nf");
    let name = format!("watch{id}");
    std::fs::write(
        &policy,
        format!(
            "policy {name} on xdp {{\n  rule pings: icmp => sample 1, pass\n  default pass\n}}\n"
        ),
    )
    .expect("write");
    let (code, out) = nfcc(&["load", &policy.display().to_string(), "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let pcap = dir.join("w.pcap");
    let watcher = Command::new(env!("CARGO_BIN_EXE_nfcc"))
        .args([
            "watch",
            &name,
            "--count",
            "3",
            "--pcap",
            &pcap.display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nfcc watch runs");
    assert!(sh(&format!(
        "ip netns exec {ns} ping -c 3 -i 0.2 -W 1 198.18.9.1 >/dev/null 2>&1"
    )));
    let out = watcher
        .wait_with_output()
        .expect("watch ends after 3 samples");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" pings pass 1 198.18.9.2:- > 198.18.9.1:-"))
            .count(),
        3,
        "{text}"
    );
    let frames = std::fs::read(&pcap).expect("pcap written");
    assert_eq!(frames.len(), 24 + 3 * (16 + 98), "three 98-byte pings");
}

#[test]
fn capture_receives_what_the_policy_hands_to_userspace() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !sh("command -v ip >/dev/null && command -v ping >/dev/null") {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but this test needs root, ip and ping");
        }
        eprintln!("skipped: capture test: needs root, ip and ping");
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b, ns) = (
        format!("nlx{id}a"),
        format!("nlx{id}b"),
        format!("nfccnx{id}"),
    );
    assert!(sh(&format!(
        "ip netns add {ns} && ip link add {a} type veth peer name {b} && ip link set {b} netns {ns} \
         && ip addr add 198.18.10.1/24 dev {a} && ip link set {a} up \
         && ip -n {ns} addr add 198.18.10.2/24 dev {b} && ip -n {ns} link set {b} up"
    )));
    let _cleanup = Cleanup(a.clone(), ns.clone());
    let dir = std::env::temp_dir().join(format!("nfcc-capture-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("x.nf");
    let name = format!("xsk{id}");
    std::fs::write(
        &policy,
        format!(
            "policy {name} on xdp {{\n  rule pings: icmp => redirect xsk\n  default pass\n}}\n"
        ),
    )
    .expect("write");
    let (code, out) = nfcc(&["load", &policy.display().to_string(), "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let ping = |n: u32| {
        sh(&format!(
            "ip netns exec {ns} ping -c {n} -i 0.2 -W 1 198.18.10.1 >/dev/null 2>&1"
        ))
    };
    // No socket bound: the pings pass, and are answered.
    assert!(ping(1), "pings pass while nothing captures");
    for (count, pcap) in [(3, Some(dir.join("x.pcap"))), (2, None)] {
        let mut args = vec![
            "capture".to_string(),
            name.clone(),
            "--count".into(),
            count.to_string(),
        ];
        args.extend(["--seconds".into(), "20".into()]);
        if let Some(p) = &pcap {
            args.extend(["--pcap".to_string(), p.display().to_string()]);
        }
        let capture = Command::new(env!("CARGO_BIN_EXE_nfcc"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nfcc capture runs");
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Handed to userspace, the pings are not answered.
        assert!(!ping(count), "pings answered while captured");
        let out = capture.wait_with_output().expect("capture ends");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("{count} packets in ")), "{text}");
        match pcap {
            Some(p) => {
                let frames = std::fs::read(&p).expect("pcap written");
                assert_eq!(frames.len(), 24 + 3 * (16 + 98), "three 98-byte pings");
            }
            None => assert_eq!(
                text.lines()
                    .filter(|l| l.contains(" q0 1 198.18.10.2:- > 198.18.10.1:- len 98"))
                    .count(),
                2,
                "{text}"
            ),
        }
    }
    // The sockets are gone with the capture: pings pass again.
    assert!(ping(1), "pings pass once the capture ended");
    // A policy that hands nothing to userspace: refused, exit 1.
    let other = dir.join("p.nf");
    let plain = format!("plain{id}");
    std::fs::write(
        &other,
        format!("policy {plain} on xdp {{\n  default pass\n}}\n"),
    )
    .expect("write");
    let (code, out) = nfcc(&["unload", "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = nfcc(&["load", &other.display().to_string(), "--iface", &a]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = nfcc(&["capture", &plain, "--count", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no `=> redirect xsk` rule"), "{out}");
}

#[test]
fn refused_loads_say_why_and_leave_nothing_attached() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !root || !sh("command -v ip >/dev/null && command -v setpriv >/dev/null && command -v clang >/dev/null") {
        if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
            panic!("NFCC_REQUIRE_KERNEL=1 but this test needs root, ip, setpriv and clang");
        }
        eprintln!("skipped: refused-load test: needs root, ip, setpriv and clang");
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b, ns) = (
        format!("nlr{id}a"),
        format!("nlr{id}b"),
        format!("nfccnr{id}"),
    );
    assert!(sh(&format!(
        "ip netns add {ns} && ip link add {a} type veth peer name {b} && ip link set {b} netns {ns} && ip link set {a} up"
    )));
    let _cleanup = Cleanup(a.clone(), ns.clone());
    // Without privilege (an unprivileged user in a child): a clear refusal, exit 2.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_nfcc"),
        ])
        .args(["load", "examples/ddos_guard.nf", "--iface", &a])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("setpriv runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("cannot load programs here"), "{text}");
    // A program the verifier refuses: its log, exit 2, nothing attached or recorded.
    let dir = std::env::temp_dir().join(format!("nfcc-refused-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let obj = dir.join("unchecked.o");
    let arch = Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .expect("clang")
        .stdout;
    let arch = String::from_utf8_lossy(&arch).trim().to_string();
    assert!(sh(&format!(
        "clang -O2 -g -target bpf -I/usr/include/{arch} -c {}/../runtime/tests/progs/xdp_unchecked.c -o {}",
        env!("CARGO_MANIFEST_DIR"),
        obj.display()
    )));
    let (code, out) = nfcc(&["load", &obj.display().to_string(), "--iface", &a]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("verifier"), "{out}");
    assert!(!link_has_xdp(&a), "nothing may stay attached");
    let (_, status) = nfcc(&["status"]);
    assert!(!status.contains(&a), "{status}");
}

fn link_has_xdp(dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).contains("xdp")
}
