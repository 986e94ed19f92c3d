//! `nfcc agent` end to end, on real interfaces, from a directory of bindings:
//!
//! - 100 interfaces created while the agent runs are each attached, and deleted they leave
//!   nothing stale in bpffs, /run/nfcc or `nfcc status`;
//! - 20 policy changes under live traffic: every frame the interface received is counted by
//!   some version; a policy whose tests fail is never deployed (logged, counted) and the good
//!   version keeps running; `/metrics` equals `nfcc stats`;
//! - SIGKILL, then a new agent: it adopts the deployment (same program id, counters go on);
//!   SIGTERM stops it and leaves the program attached.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

mod common;
use common::{nfcc, privileged, sh, ROOT};
use nfcc_driver::bpf::manifest::Manifest;
use nfcc_driver::testbeds::topology::Layout;
use nfcc_driver::testbeds::Testbed;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A configuration directory, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(tag: &str) -> ConfigDir {
        let d = std::env::temp_dir().join(format!("nfcc-agent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("config dir");
        ConfigDir(d)
    }

    fn write(&self, name: &str, text: &str) {
        // Written beside and renamed, as a ConfigMap update or an editor does: the agent
        // never reads half a file.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.0.join(name)).expect("rename");
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running agent, killed on drop; its log goes to a file.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(dir: &Path, extra: &[&str]) -> Agent {
        let log = dir.with_extension(format!("log{}", std::process::id()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_nfcc"))
            .args(["agent", "--config"])
            .arg(dir)
            .args(["--interval", "300ms"])
            .args(extra)
            .current_dir(ROOT)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("agent starts");
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The metrics address it printed.
    fn metrics_addr(&self) -> String {
        let line = wait_for("the metrics address", Duration::from_secs(20), || {
            self.log()
                .lines()
                .find_map(|l| l.split("/healthz on ").nth(1).map(str::to_string))
        });
        line.trim().to_string()
    }

    fn signal(&mut self, sig: &str) -> i32 {
        let pid = self.child.id().to_string();
        assert!(sh(&format!("kill -{sig} {pid}")), "kill -{sig}");
        let t = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the agent did not stop on SIG{sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the agent's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Polls `f` until it says something, or fails after `limit` naming `what`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The manifest of deployment `key`, if there is one.
fn manifest(key: &str) -> Option<Manifest> {
    let text = std::fs::read_to_string(format!("/run/nfcc/{key}.json")).ok()?;
    Manifest::from_json(&text).ok()
}

/// `GET path` on `addr`: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the agent");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The per-rule packet counts of `key` from `nfcc stats --json`: rule → packets.
fn stats(key: &str) -> Vec<(String, u64)> {
    let (code, out) = nfcc(&["stats", key, "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stats json");
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or("").to_string(),
                r["packets"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

const POLICY: &str = "policy agented on xdp {
    rule dns: udp.dport == PORT => drop
    default pass
    test \"dns dropped\" {
        send ipv4(src=10.0.0.1, dst=10.0.0.2) / udp(sport=1, dport=PORT)
        expect drop
    }
}
";

fn policy(port: u16) -> String {
    POLICY.replace("PORT", &port.to_string())
}

#[test]
fn the_agent_follows_100_interfaces_and_leaves_nothing_stale() {
    if !privileged("agent-interfaces", &["ip"]) {
        return;
    }
    let id = std::process::id() % 100_000;
    let prefix = format!("ag{id}a");
    // Removes the pairs whatever happens.
    struct Links(String);
    impl Drop for Links {
        fn drop(&mut self) {
            for i in 0..100 {
                let _ = Command::new("ip")
                    .args(["link", "del", &format!("{}{i}", self.0)])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    let _links = Links(prefix.clone());
    let dir = ConfigDir::new("ifaces");
    dir.write("edge.nf", &policy(53));
    dir.write(
        "edge.toml",
        &format!("policy_file = \"edge.nf\"\ninterfaces = [\"{prefix}*\"]\nmode = \"native\"\n"),
    );
    let agent = Agent::start(&dir.0, &[]);
    wait_for("the first reconcile", Duration::from_secs(30), || {
        agent.log().contains("reconciling").then_some(())
    });
    let mine = || {
        nfcc_driver::deploy::status()
            .0
            .iter()
            .filter(|d| d.iface().starts_with(&prefix))
            .count()
    };
    let t = Instant::now();
    for i in 0..100 {
        assert!(
            sh(&format!(
                "ip link add {prefix}{i} type veth peer name ag{id}b{i} && ip link set {prefix}{i} up && ip link set ag{id}b{i} up"
            )),
            "veth {i}"
        );
    }
    wait_for("100 deployments", Duration::from_secs(60), || {
        (mine() == 100).then_some(())
    });
    eprintln!(
        "100 interfaces created and attached in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // Each is an ordinary deployment, named POLICY@IFACE, attached in native mode.
    let one = manifest(&format!("agented@{prefix}7")).expect("manifest of one");
    let canonical = std::fs::canonicalize(&dir.0).expect("canonical dir");
    assert_eq!(
        one.managed_by,
        Some(format!("agent:{}#edge", canonical.display()))
    );
    let t = Instant::now();
    for i in 0..100 {
        assert!(sh(&format!("ip link del {prefix}{i}")), "del {i}");
    }
    wait_for(
        "every deployment forgotten",
        Duration::from_secs(60),
        || (mine() == 0).then_some(()),
    );
    eprintln!(
        "100 interfaces deleted and forgotten in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let stale = |root: &str| -> Vec<String> {
        std::fs::read_dir(root)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        stale("/sys/fs/bpf/nfcc"),
        Vec::<String>::new(),
        "stale pins"
    );
    assert_eq!(stale("/run/nfcc"), Vec::<String>::new(), "stale manifests");
    let (_, status) = nfcc(&["status"]);
    assert!(!status.contains(&prefix), "{status}");
    assert!(!agent.log().contains(" error "), "{}", agent.log());
}

#[test]
fn the_agent_swaps_versions_under_traffic_rejects_bad_ones_and_survives_sigkill() {
    if !privileged("agent-traffic", &["ip"]) {
        return;
    }
    let tb = Testbed::with_layout(Layout::RxInHost).expect("testbed");
    let key = format!("agented@{}", tb.rx);
    struct Unload(String);
    impl Drop for Unload {
        fn drop(&mut self) {
            let _ = nfcc(&["unload", "--iface", &self.0]);
        }
    }
    let _unload = Unload(tb.rx.clone());
    let dir = ConfigDir::new("traffic");
    dir.write("edge.nf", &policy(53));
    dir.write(
        "edge.toml",
        &format!("policy_file = \"edge.nf\"\ninterfaces = [\"{}\"]\n", tb.rx),
    );
    let mut agent = Agent::start(&dir.0, &["--metrics", "127.0.0.1:0"]);
    let addr = agent.metrics_addr();
    let first = wait_for("the first deployment", Duration::from_secs(30), || {
        manifest(&key)
    });
    let dir_pins = format!("/sys/fs/bpf/nfcc/{key}");
    let stats_map = nfcc_driver::compiler::compile::stats_map_name("agented");
    // Every statistics slot: the rule, vacant slots for rules to come, the default last.
    let slots = first.rules.len() as u32;
    let sum = |m: &nfcc_driver::runtime::PinnedMaps| -> u64 {
        m.percpu_array_sums(&stats_map, slots)
            .expect("stats")
            .iter()
            .map(|v| v[0])
            .sum()
    };
    let mut versions =
        vec![nfcc_driver::runtime::PinnedMaps::open(dir_pins.as_ref()).expect("pinned maps")];
    let before = sum(&versions[0]);
    let (rx0, _) = tb.rx_stats().expect("rx stats");
    let stop = AtomicBool::new(false);
    let mix: Vec<Vec<u8>> = [
        "ipv4(src=198.18.0.1, dst=198.18.0.2) / udp(sport=1000, dport=53)",
        "ipv4(src=198.18.0.1, dst=198.18.0.2) / udp(sport=1001, dport=80)",
    ]
    .iter()
    .map(|l| nfcc_driver::dsl::testing::frame_from_literal(l).expect("frame"))
    .collect();
    let mut revision = first.revision.clone();
    /// Stops the traffic however the scope ends (a failed wait must not leave the sender
    /// running and the scope waiting for it).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let sent = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let sender = s.spawn(|| tb.blast(&mix, 1 << 14, None, None, &stop));
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        for i in 0..20u16 {
            dir.write("edge.nf", &policy(54 + i));
            let m = wait_for(&format!("version {i}"), Duration::from_secs(30), || {
                manifest(&key).filter(|m| m.revision != revision)
            });
            revision = m.revision.clone();
            versions.push(nfcc_driver::runtime::PinnedMaps::open(dir_pins.as_ref()).expect("pins"));
        }
        eprintln!(
            "20 policy changes applied by the agent in {:.1} s under traffic",
            t.elapsed().as_secs_f64()
        );
        // A version whose test fails: never deployed, the last good one keeps running.
        let bad = policy(99).replace("expect drop", "expect pass");
        dir.write("edge.nf", &bad);
        wait_for("the rejection", Duration::from_secs(30), || {
            agent
                .log()
                .contains("binding edge: not deployed")
                .then_some(())
        });
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(manifest(&key).and_then(|m| m.revision), revision.clone());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        sender.join().expect("sender").expect("traffic")
    });
    std::thread::sleep(Duration::from_millis(100));
    let (rx1, _) = tb.rx_stats().expect("rx stats");
    let counted: u64 = versions.iter().map(sum).sum::<u64>() - before;
    let received = rx1 - rx0;
    eprintln!(
        "sent {} frames, the interface received {received}, the 21 versions counted {counted}",
        sent.frames
    );
    assert!(
        received > 100_000,
        "traffic too slow to test anything: {received}"
    );
    assert_eq!(
        counted, received,
        "every received frame is counted by some version"
    );
    let log = agent.log();
    assert!(
        log.contains("test `dns dropped` of policy `agented` fails"),
        "{log}"
    );
    // /metrics equals `nfcc stats` (traffic has stopped).
    let (status, body) = get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    for (rule, packets) in stats(&key) {
        let line = format!(
            "nfcc_rule_packets_total{{policy=\"agented\",rule=\"{rule}\",interface=\"{}\"}} {packets}",
            tb.rx
        );
        assert!(body.lines().any(|l| l == line), "no `{line}` in\n{body}");
    }
    assert!(
        body.contains("nfcc_agent_rejected_total{binding=\"edge\"} 1"),
        "{body}"
    );
    assert!(get(&addr, "/healthz").0.contains("200"));
    // SIGKILL, then a new agent adopts the deployment: same program, counters go on.
    let id = manifest(&key).and_then(|m| m.host.map(|h| h.program_id));
    assert_eq!(agent.signal("KILL"), -1);
    dir.write("edge.nf", &policy(54 + 19));
    let before_restart: u64 = stats(&key).iter().map(|(_, p)| p).sum();
    let mut agent = Agent::start(&dir.0, &[]);
    wait_for(
        "a reconcile after the restart",
        Duration::from_secs(30),
        || agent.log().contains("reconciling").then_some(()),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let log = agent.log();
    assert!(!log.contains(&format!("load {key}")), "{log}");
    assert!(!log.contains(&format!("replace {key}")), "{log}");
    assert_eq!(
        manifest(&key).and_then(|m| m.host.map(|h| h.program_id)),
        id
    );
    let more = AtomicBool::new(false);
    tb.blast(&mix, 1 << 10, Some(10_000), None, &more)
        .expect("traffic");
    let after: u64 = stats(&key).iter().map(|(_, p)| p).sum();
    assert!(
        after >= before_restart + 10_000,
        "{after} < {before_restart} + 10000"
    );
    // SIGTERM: the agent stops, the program stays attached.
    assert_eq!(agent.signal("TERM"), 0);
    assert!(agent.log().contains("every deployment stays in place"));
    let (_, status) = nfcc(&["status"]);
    assert!(status.contains(&tb.rx), "{status}");
}
