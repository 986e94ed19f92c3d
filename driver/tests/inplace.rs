//! `nfcc load --replace` of a policy classified by tuples, with rules changed in ways that
//! leave the program as it is (a verdict, a port range, an address), updates the running
//! program's maps in place: the program id stays, and the running program — asked through
//! `BPF_PROG_TEST_RUN` on the program the link runs — decides every packet as the reference
//! evaluator decides it under the new version, and again after a change back (the boxes'
//! other half). A change that alters the program (a rule more) reloads instead and says why;
//! `--reload` always reloads.
//! A tree whose boxes changed (a flipped verdict: same code, same nodes) is reloaded, never
//! left running the old boxes.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_driver::compile::Classifier;
use nfcc_driver::deploy::{self, LoadRequest};
use nfcc_driver::dsl::eval::{self, Meta, State};
use nfcc_driver::dsl::testing::frame_from_literal;
use std::time::Instant;

mod common;
use common::{privileged, Rng, Veth};

/// One generated rule: a source prefix (in 10.0.0.0/8), a TCP port range, a verdict.
#[derive(Clone)]
struct R {
    net: u32,
    len: u32,
    ports: (u16, u16),
    drop: bool,
}

fn rules(n: usize) -> Vec<R> {
    let mut rng = Rng(0x696e_706c_6163_6521);
    (0..n)
        .map(|_| {
            let len = [16, 24, 24, 28, 32][rng.below(5) as usize];
            let net = (0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff)) & (u32::MAX << (32 - len));
            let lo = rng.below(60_000) as u16;
            R {
                net,
                len,
                ports: (lo, lo + rng.below(16) as u16),
                drop: rng.below(2) == 0,
            }
        })
        .collect()
}

fn source(name: &str, rs: &[R]) -> String {
    let mut s = format!("policy {name} on xdp {{\n");
    for (i, r) in rs.iter().enumerate() {
        s.push_str(&format!(
            "    rule r{i}: ipv4.src in {}/{} and tcp.dport in {}..{} => {}\n",
            std::net::Ipv4Addr::from(r.net),
            r.len,
            r.ports.0,
            r.ports.1,
            if r.drop { "drop" } else { "pass" }
        ));
    }
    s.push_str("    default pass\n}\n");
    s
}

/// Packets inside random rules of `rs` (and a few outside all of them).
fn packets(rs: &[R], rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = &rs[rng.below(rs.len() as u64) as usize];
            let host = if r.len == 32 {
                0
            } else {
                rng.next() as u32 & (u32::MAX >> r.len)
            };
            let src = std::net::Ipv4Addr::from(r.net | host);
            let port = r.ports.0 + rng.below(u64::from(r.ports.1 - r.ports.0) + 1) as u16;
            let port = if i % 10 == 0 { port ^ 0x8000 } else { port };
            format!("ipv4(src={src}, dst=192.0.2.1) / tcp(sport=1000, dport={port})")
        })
        .collect()
}

/// Every packet's verdict on the running program against the evaluator's under `src`.
fn agree(name: &str, src: &str, lits: &[String]) {
    let (program, diags) = nfcc_driver::dsl::check_source(src, &Default::default());
    let program = program.unwrap_or_else(|| panic!("{diags:?}"));
    let policy = &program.policies[0];
    let d = deploy::find(name).unwrap_or_else(|e| panic!("{e}"));
    let meta = Meta {
        ifindex: 1,
        rxq: 0,
        mark: 0,
    };
    let mut state = State::new(policy);
    let mut wrong = Vec::new();
    for lit in lits {
        let frame = frame_from_literal(lit).unwrap_or_else(|e| panic!("{lit}: {e}"));
        let want = eval::eval(policy, &mut state, &meta, &frame);
        let want = if want.verdict.to_string() == "drop" {
            1
        } else {
            2
        };
        let got = nfcc_driver::runtime::deploy::test_run_running(&d, &frame)
            .unwrap_or_else(|e| panic!("{e}"));
        if got != want {
            wrong.push(format!("{lit}: running program {got}, evaluator {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_changed_rule_of_a_tuple_classifier_is_updated_in_place() {
    if !privileged("in-place update test") {
        return;
    }
    let id = std::process::id() % 100_000;
    let guard = Veth::pair(&format!("nip{id}"));
    let a = guard.0.clone();
    let name = format!("ip{id}");
    let dir = std::env::temp_dir().join(format!("nfcc-inplace-{id}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("policy.nf");
    let v1 = rules(600);
    let src1 = source(&name, &v1);
    std::fs::write(&file, &src1).unwrap_or_else(|e| panic!("{e}"));
    let req = LoadRequest {
        file: file.clone(),
        iface: a.clone(),
        mode: None,
        policy: None,
        replace: false,
        reload: false,
        classifier: Classifier::Tuples,
        owner: None,
    };
    let loaded = deploy::load(&req).unwrap_or_else(|e| panic!("{e}"));
    let program_id = loaded.manifest.program_id();
    let mut rng = Rng(0x7061_636b_6574_7321);
    let lits = packets(&v1, &mut rng, 1_500);
    agree(&name, &src1, &lits);

    // A verdict flipped, a port range moved, an address changed: the same program.
    let mut v2 = v1.clone();
    v2[100].drop = !v2[100].drop;
    v2[300].ports = (v2[300].ports.0 + 1, v2[300].ports.1 + 1);
    v2[450].net ^= 0x0000_ff00 & (u32::MAX << (32 - v2[450].len));
    let src2 = source(&name, &v2);
    std::fs::write(&file, &src2).unwrap_or_else(|e| panic!("{e}"));
    let replace = LoadRequest {
        replace: true,
        ..req.clone()
    };
    let started = Instant::now();
    let r = deploy::load(&replace).unwrap_or_else(|e| panic!("{e}"));
    let in_place_time = started.elapsed();
    let done = match &r.in_place {
        Some(Ok(done)) => done.clone(),
        other => panic!("not updated in place: {other:?}"),
    };
    assert!(done.written > 0 && done.classifiers == 1, "{done:?}");
    assert_eq!(r.manifest.program_id(), program_id, "the program stays");
    let mut changed: Vec<String> = Vec::new();
    for i in [100usize, 300, 450] {
        changed.extend(packets(&v2[i..=i], &mut rng, 20));
        changed.extend(packets(&v1[i..=i], &mut rng, 20));
    }
    changed.extend(lits.iter().cloned());
    agree(&name, &src2, &changed);

    // Back to the first version: the boxes move to the other half again.
    std::fs::write(&file, &src1).unwrap_or_else(|e| panic!("{e}"));
    let r = deploy::load(&replace).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(r.in_place, Some(Ok(_))), "{:?}", r.in_place);
    agree(&name, &src1, &changed);

    // A rule more changes the program: a reload, with its reason.
    let mut v3 = v1.clone();
    v3.push(v1[0].clone());
    let src3 = source(&name, &v3);
    std::fs::write(&file, &src3).unwrap_or_else(|e| panic!("{e}"));
    let r = deploy::load(&replace).unwrap_or_else(|e| panic!("{e}"));
    let why = match &r.in_place {
        Some(Err(why)) => why.clone(),
        other => panic!("a changed program updated in place: {other:?}"),
    };
    assert_ne!(r.manifest.program_id(), program_id);
    agree(&name, &src3, &changed);

    // --reload reloads whatever changed.
    std::fs::write(&file, &src1).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let r = deploy::load(&LoadRequest {
        reload: true,
        ..replace.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let reload_time = started.elapsed();
    assert!(matches!(r.in_place, Some(Err(_))), "{:?}", r.in_place);
    agree(&name, &src1, &changed);
    eprintln!(
        "600 rules as tuples: one change in place in {:.0} ms ({} entries written, {} deleted), \
         a reload in {:.0} ms; a rule more: reloaded ({why})",
        in_place_time.as_secs_f64() * 1e3,
        done.written,
        done.deleted,
        reload_time.as_secs_f64() * 1e3
    );
    deploy::unload(&a).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tree_whose_boxes_changed_is_reloaded() {
    if !privileged("in-place update test (trees)") {
        return;
    }
    let id = std::process::id() % 100_000;
    let guard = Veth::pair(&format!("nit{id}"));
    let a = guard.0.clone();
    let name = format!("it{id}");
    let dir = std::env::temp_dir().join(format!("nfcc-inplace-tree-{id}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("policy.nf");
    let v1 = rules(600);
    std::fs::write(&file, source(&name, &v1)).unwrap_or_else(|e| panic!("{e}"));
    let req = LoadRequest {
        file: file.clone(),
        iface: a.clone(),
        mode: None,
        policy: None,
        replace: false,
        reload: false,
        classifier: Classifier::Tree,
        owner: None,
    };
    deploy::load(&req).unwrap_or_else(|e| panic!("{e}"));
    // A flipped verdict changes a box of the tree, not its code nor its nodes: the trees'
    // boxes are not updated in place, so the program is reloaded.
    let mut v2 = v1.clone();
    v2[100].drop = !v2[100].drop;
    let src2 = source(&name, &v2);
    std::fs::write(&file, &src2).unwrap_or_else(|e| panic!("{e}"));
    let r = deploy::load(&LoadRequest {
        replace: true,
        ..req.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(r.in_place, Some(Err(_))), "{:?}", r.in_place);
    let mut rng = Rng(0x7472_6565_7321);
    agree(&name, &src2, &packets(&v2[100..=100], &mut rng, 40));
    deploy::unload(&a).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
}
