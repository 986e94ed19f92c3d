//! A deployment is served from its manifest, not from a recompilation: a policy deployed with
//! another layout than the current compiler would produce for the file now on disk (its rules
//! in another order, its set in an LPM trie where the file's set now gets a prefix hash)
//! keeps working — `stats` names its rules as deployed, `set add`/`list` follow its trie,
//! `--replace` swaps the file's current version in, and `unload` leaves nothing behind.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_driver::bpf::manifest::{MapRole, SetForm};
use nfcc_driver::bpf::pin::PinLayout;
use nfcc_driver::counters::CounterReader;
use nfcc_driver::deploy::{self, LoadRequest};

mod common;
use common::{privileged, Veth};

/// The version deployed: four prefix lengths in a dynamic set (an LPM trie), and a rule
/// `early` before the others.
fn deployed(name: &str) -> String {
    format!(
        "policy {name} on xdp {{
    set blocked: ipv4 prefix, dynamic = {{ 10.0.0.0/8, 10.1.0.0/16, 10.1.1.0/24, 10.1.1.1 }}
    rule early: udp.dport == 7 => drop
    rule block: ip.src in blocked => drop
    rule ssh: tcp.dport == 22 => drop
    default pass
}}
"
    )
}

/// The file as it is now: one prefix length (a prefix hash), no `early`.
fn current(name: &str) -> String {
    format!(
        "policy {name} on xdp {{
    set blocked: ipv4 prefix, dynamic = {{ 192.0.2.0/24 }}
    rule block: ip.src in blocked => drop
    rule ssh: tcp.dport == 22 => drop
    default pass
}}
"
    )
}

#[test]
fn a_deployment_with_another_layout_is_served_from_its_manifest() {
    if !privileged("manifest layout test") {
        return;
    }
    let id = std::process::id() % 100_000;
    let guard = Veth::pair(&format!("nmf{id}"));
    let a = guard.0.clone();
    let name = format!("mf{id}");
    let dir = std::env::temp_dir().join(format!("nfcc-manifest-{id}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("policy.nf");
    std::fs::write(&file, deployed(&name)).unwrap_or_else(|e| panic!("{e}"));
    let req = LoadRequest {
        file: file.clone(),
        iface: a.clone(),
        mode: None,
        policy: None,
        replace: false,
        reload: false,
        classifier: Default::default(),
        owner: None,
    };
    let loaded = deploy::load(&req).unwrap_or_else(|e| panic!("{e}"));
    let host = loaded
        .manifest
        .host
        .clone()
        .unwrap_or_else(|| panic!("no host stage"));
    assert!(
        matches!(host.sets[0].maps[0].form, SetForm::Lpm),
        "the deployed set is a trie: {:?}",
        host.sets[0]
    );
    // The file changes after the deployment: the current compiler would lay it out otherwise.
    std::fs::write(&file, current(&name)).unwrap_or_else(|e| panic!("{e}"));
    let now = deploy::prepare(&file, None, &a).unwrap_or_else(|e| panic!("{e}"));
    let now_host = now.manifest.host.unwrap_or_else(|| panic!("no host stage"));
    assert!(matches!(
        now_host.sets[0].maps[0].form,
        SetForm::PrefixHash { .. }
    ));

    // stats: the rules as deployed.
    let d = deploy::find(&name).unwrap_or_else(|e| panic!("{e}"));
    let reader = CounterReader::open(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.names(), ["early", "block", "ssh", "default"]);
    let counts = reader.read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.len(), 4);
    // The Prometheus text names the same rules with the same counts.
    let text = nfcc_driver::metrics::render_policy(&name).unwrap_or_else(|e| panic!("{e}"));
    for c in &counts {
        let line = format!(
            "nfcc_rule_packets_total{{policy=\"{name}\",rule=\"{}\",interface=\"{a}\"}} {}",
            c.rule, c.packets
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    assert!(
        text.contains(&format!(
            "nfcc_policy_info{{policy=\"{name}\",interface=\"{a}\",mode=\"native\""
        )),
        "{text}"
    );

    // set: the trie's keys, whatever the current compiler would choose.
    nfcc_driver::sets::change(&d, "blocked", true, &["198.51.100.0/22".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let members = nfcc_driver::sets::list(&d, "blocked").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        members.contains(&"198.51.100.0/22".to_string()),
        "{members:?}"
    );
    assert!(members.contains(&"10.1.1.1".to_string()), "{members:?}");
    nfcc_driver::sets::change(&d, "blocked", false, &["10.1.0.0/16".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let members = nfcc_driver::sets::list(&d, "blocked").unwrap_or_else(|e| panic!("{e}"));
    assert!(!members.contains(&"10.1.0.0/16".to_string()), "{members:?}");

    // --replace: the file's current version swaps in; its own layout from then on.
    let replaced = deploy::load(&LoadRequest {
        replace: true,
        ..req.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(replaced.replaced);
    let names: Vec<&str> = replaced
        .manifest
        .rules
        .iter()
        .filter(|r| !r.is_vacant())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["block", "ssh", "default"]);
    let d = deploy::find(&name).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(d.program_id, loaded.manifest.program_id());
    let host = d
        .manifest
        .host
        .clone()
        .unwrap_or_else(|| panic!("no host stage"));
    assert!(host.map_with_role(MapRole::RuleStats).is_some());
    nfcc_driver::sets::change(&d, "blocked", true, &["203.0.113.7".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let members = nfcc_driver::sets::list(&d, "blocked").unwrap_or_else(|e| panic!("{e}"));
    assert!(members.contains(&"203.0.113.7".to_string()), "{members:?}");
    let reader = CounterReader::open(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reader.read().map(|c| c.len()).ok(), Some(3));

    // unload: nothing left in bpffs or the state directory.
    deploy::unload(&a).unwrap_or_else(|e| panic!("{e}"));
    let layout = PinLayout::new(&name);
    assert!(!layout.dir().exists(), "{} left", layout.dir().display());
    assert!(
        !layout.manifest().exists(),
        "{} left",
        layout.manifest().display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
