//! Deploying policies on real interfaces: an XDP policy (native) and a TC policy (ingress,
//! through TCX) on a veth pair the test creates and always removes; the deployments are
//! pinned, recorded, listed, refused a second time, and unloaded without leaving an
//! attachment, a loaded program, a pin or a record behind. A missing interface is a clear error that leaves
//! nothing pinned.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_compiler::compile::compile;
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_runtime::deploy::{self, AttachMode, Manifest};
use nfcc_runtime::{load, ProgType};
use std::path::Path;
use std::process::Command;

struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

fn link_shows(dev: &str, what: &str) -> bool {
    let out = Command::new("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).contains(what)
}

/// Whether the kernel still has program `id` (bpftool answers for it).
fn prog_exists(id: u32) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A compiled, loaded policy named `name` on `hook`.
fn loaded(name: &str, hook: &str) -> nfcc_runtime::Loaded {
    let src = format!(
        "policy {name} on {hook} {{\n    set blocked: ipv4 prefix, dynamic = {{ 192.0.2.0/24 }}\n    rule b: ip.src in blocked => drop\n    default pass\n}}\n"
    );
    let (program, d) = check_source(&src, &CheckOptions::default());
    let program = program.unwrap_or_else(|| panic!("{d:?}"));
    let c = compile(&program, "t.nf", &src, None).unwrap_or_else(|e| panic!("{e:?}"));
    let kind = if hook == "xdp" {
        ProgType::Xdp
    } else {
        ProgType::Tc
    };
    let l = load(&c.object, name, kind).unwrap_or_else(|e| panic!("{e}"));
    for (m, entries) in &c.programs[0].maps {
        for (k, v) in entries {
            l.map_update(&m.name, k, v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    l
}

/// Deploys `loaded` as policy `policy` on `iface`.
fn deploy_on(
    loaded: nfcc_runtime::Loaded,
    policy: &str,
    iface: &str,
    mode: AttachMode,
) -> Result<Manifest, nfcc_runtime::RuntimeError> {
    deploy::deploy(loaded, Manifest::new(policy, "t.nf", mode, iface))
}

#[test]
fn policies_deploy_pin_list_refuse_twice_and_unload_cleanly() {
    if !privileged("deploy test") {
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (format!("ndp{id}a"), format!("ndp{id}b"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    let _guard = Veth(a.clone());
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", &b, "up"]);
    let (px, pt) = (format!("tx{id}"), format!("tt{id}"));

    // A missing interface: a clear error, nothing pinned or recorded.
    let err = deploy_on(loaded(&px, "xdp"), &px, "nfcc-no-such0", AttachMode::Native)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("no interface `nfcc-no-such0`"), "{err}");
    assert!(!Path::new(deploy::PIN_ROOT).join(&px).exists());
    assert!(!deploy::status().iter().any(|d| d.policy() == px));

    let d = deploy_on(loaded(&px, "xdp"), &px, &a, AttachMode::Native)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        d.program_id() > 0
            && d.host.as_ref().is_some_and(|h| h
                .maps
                .iter()
                .any(|m| m.name.ends_with("set_blocked") && m.pin.is_some())),
        "{d:?}"
    );
    // Still attached after the loader's objects are gone: the pinned link holds it.
    assert!(link_shows(&a, "xdp"), "no xdp on {a}");
    let t = deploy_on(loaded(&pt, "tc ingress"), &pt, &b, AttachMode::TcIngress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(prog_exists(d.program_id()) && prog_exists(t.program_id()));
    let listed = deploy::status();
    assert!(
        listed.iter().any(|x| x.manifest == d) && listed.iter().any(|x| x.manifest == t),
        "{listed:?}"
    );
    // Twice on one interface: refused, and the first stays.
    let again = deploy_on(
        loaded(&format!("tz{id}"), "xdp"),
        &format!("tz{id}"),
        &a,
        AttachMode::Native,
    );
    assert!(again.is_err_and(|e| e.to_string().contains("already loaded")));
    assert!(link_shows(&a, "xdp"));

    deploy::undeploy(&a).unwrap_or_else(|e| panic!("{e}"));
    deploy::undeploy(&b).unwrap_or_else(|e| panic!("{e}"));
    assert!(!link_shows(&a, "xdp"), "xdp still on {a}");
    // Nothing holds the programs any more: the kernel has freed them.
    // (The kernel may release a link from a work queue: allow it a moment.)
    for p in [d.program_id(), t.program_id()] {
        let gone = (0..40).any(|_| {
            let g = !prog_exists(p);
            if !g {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            g
        });
        assert!(gone, "program {p} still loaded");
    }
    assert!(!Path::new(deploy::PIN_ROOT).join(&px).exists());
    assert!(!deploy::status()
        .iter()
        .any(|x| x.policy() == px || x.policy() == pt));
    assert!(deploy::undeploy(&a).is_err_and(|e| e.to_string().contains("no nfcc policy")));
}

/// Whether the kernel tests can run (root and bpf); says why not, failing under
/// `NFCC_REQUIRE_KERNEL=1`.
fn privileged(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let why = match nfcc_runtime::can_load_bpf() {
        Err(r) => Some(r),
        Ok(()) if !root => Some("creating interfaces needs root".to_string()),
        Ok(()) => None,
    };
    let Some(reason) = why else { return true };
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}

#[test]
fn a_deployment_whose_interface_went_away_is_gone_blocks_nothing_and_is_pruned() {
    if !privileged("stale interface test") {
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (format!("nsg{id}a"), format!("nsg{id}b"));
    let policy = format!("sg{id}");
    let layout = nfcc_bpf::pin::PinLayout::new(&policy);
    let veth = || {
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "up"]);
        ip(&["link", "set", &b, "up"]);
        Veth(a.clone())
    };

    // A pod goes away: its veth is deleted under the deployment.
    let guard = veth();
    let first = deploy_on(loaded(&policy, "xdp"), &policy, &a, AttachMode::Native)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(guard);
    let d = deploy::status()
        .into_iter()
        .find(|d| d.policy() == policy)
        .unwrap_or_else(|| panic!("the deployment is not listed"));
    assert!(
        d.gone.as_deref().is_some_and(|g| g.contains(&a)),
        "{:?}",
        d.gone
    );

    // A new interface of the same name: the stale deployment does not block the load.
    let guard = veth();
    let second = deploy_on(loaded(&policy, "xdp"), &policy, &a, AttachMode::Native)
        .unwrap_or_else(|e| panic!("a gone deployment blocked the load: {e}"));
    assert_ne!(first.ifindex, second.ifindex);
    assert!(link_shows(&a, "xdp"));
    let live = deploy::find(&policy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(live.gone, None);

    // Gone again, then pruned: nothing stays in bpffs or the state directory.
    drop(guard);
    let pruned = deploy::prune_gone();
    assert!(pruned.iter().any(|d| d.policy() == policy), "{pruned:?}");
    assert!(
        !layout.dir().exists(),
        "pins left in {}",
        layout.dir().display()
    );
    assert!(
        !layout.manifest().exists(),
        "{} left",
        layout.manifest().display()
    );
    assert!(!deploy::status().iter().any(|d| d.policy() == policy));
}
