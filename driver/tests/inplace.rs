//! `nfcc load --replace` updates a running program's maps in place for every classifier kind
//! (trees and tuples, laid out in two halves by `nfcc load`): a rule changed, added or removed
//! leaves the program (its id stays), the running program — asked through
//! `BPF_PROG_TEST_RUN` on the program the link runs — decides every packet as the reference
//! evaluator decides it under the new version, and every rule keeps its counts by name, also
//! when it moved to another statistics slot. A change the running program has no room for
//! reloads and says why; `--reload` always reloads.
//!
//! Under traffic (frames sent through the veth pair by the traffic generator the machine
//! allows) a run of single-rule changes loses no packet's verdict: a thread test-runs the
//! running program all the while, and each answer must be the evaluator's under a version
//! that was running at some moment of that run. `NFCC_INPLACE_RULES` (default 2,000) and
//! `NFCC_INPLACE_CHANGES` (default 40) set the sizes; the figures are 10,000 and
//! 1,000.
//!
//! Needs root (skips otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_driver::compile::Classifier;
use nfcc_driver::counters::CounterReader;
use nfcc_driver::deploy::{self, LoadRequest};
use nfcc_driver::dsl::checked::Policy;
use nfcc_driver::dsl::eval::{self, Meta, State};
use nfcc_driver::dsl::testing::frame_from_literal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{privileged, Rng, Veth};

/// One generated rule: a source prefix (in 10.0.0.0/8), a TCP port range, a verdict, and a
/// name that stays with it whatever its position.
#[derive(Clone)]
struct R {
    id: usize,
    net: u32,
    len: u32,
    ports: (u16, u16),
    drop: bool,
}

fn rule(rng: &mut Rng, id: usize) -> R {
    let len = [16, 24, 24, 28, 32][rng.below(5) as usize];
    let net = (0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff)) & (u32::MAX << (32 - len));
    let lo = rng.below(60_000) as u16;
    R {
        id,
        net,
        len,
        ports: (lo, lo + rng.below(16) as u16),
        drop: rng.below(2) == 0,
    }
}

fn rules(rng: &mut Rng, n: usize) -> Vec<R> {
    (0..n).map(|i| rule(rng, i)).collect()
}

fn source(name: &str, rs: &[R]) -> String {
    let mut s = format!("policy {name} on xdp {{\n");
    for r in rs {
        s.push_str(&format!(
            "    rule r{}: ipv4.src in {}/{} and tcp.dport in {}..{} => {}\n",
            r.id,
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

/// A packet inside rule `r` (one in ten with its port moved out of the range).
fn inside(r: &R, rng: &mut Rng, out: bool) -> String {
    let host = if r.len == 32 {
        0
    } else {
        rng.next() as u32 & (u32::MAX >> r.len)
    };
    let src = std::net::Ipv4Addr::from(r.net | host);
    let port = r.ports.0 + rng.below(u64::from(r.ports.1 - r.ports.0) + 1) as u16;
    let port = if out { port ^ 0x8000 } else { port };
    format!("ipv4(src={src}, dst=192.0.2.1) / tcp(sport=1000, dport={port})")
}

/// Packets inside random rules of `rs`.
fn packets(rs: &[R], rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| inside(&rs[rng.below(rs.len() as u64) as usize], rng, i % 10 == 0))
        .collect()
}

fn checked(src: &str) -> Policy {
    let (program, diags) = nfcc_driver::dsl::check_source(src, &Default::default());
    let program = program.unwrap_or_else(|| panic!("{diags:?}"));
    program.policies[0].clone()
}

/// The XDP return code the evaluator gives `frame` under `policy`.
fn expected(policy: &Policy, frame: &[u8]) -> u32 {
    let meta = Meta {
        ifindex: 1,
        rxq: 0,
        mark: 0,
    };
    let want = eval::eval(policy, &mut State::new(policy), &meta, frame);
    if want.verdict.to_string() == "drop" {
        1
    } else {
        2
    }
}

/// Every packet's verdict on the running program against the evaluator's under `src`.
fn agree(name: &str, src: &str, lits: &[String]) {
    let policy = checked(src);
    let d = deploy::find(name).unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = Vec::new();
    for lit in lits {
        let frame = frame_from_literal(lit).unwrap_or_else(|e| panic!("{lit}: {e}"));
        let want = expected(&policy, &frame);
        let got = nfcc_driver::runtime::deploy::test_run_running(&d, &frame)
            .unwrap_or_else(|e| panic!("{e}"));
        if got != want {
            wrong.push(format!("{lit}: running program {got}, evaluator {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every rule's packet count by name, as `nfcc stats` reads it.
fn counts(name: &str) -> HashMap<String, u64> {
    let d = deploy::find(name).unwrap_or_else(|e| panic!("{e}"));
    let reader = CounterReader::open(&d).unwrap_or_else(|e| panic!("{e}"));
    reader
        .read()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|c| (c.rule, c.packets))
        .collect()
}

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deployment on a fresh veth pair, removed when dropped.
struct Deployed {
    name: String,
    file: std::path::PathBuf,
    dir: std::path::PathBuf,
    req: LoadRequest,
    _veth: Veth,
}

impl Deployed {
    fn load(tag: &str, classifier: Classifier, src: impl Fn(&str) -> String) -> Deployed {
        let id = std::process::id() % 100_000;
        let veth = Veth::pair(&format!("n{tag}{id}"));
        let name = format!("{tag}{id}");
        let dir = std::env::temp_dir().join(format!("nfcc-inplace-{tag}-{id}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("policy.nf");
        std::fs::write(&file, src(&name)).unwrap_or_else(|e| panic!("{e}"));
        let req = LoadRequest {
            file: file.clone(),
            iface: veth.0.clone(),
            mode: None,
            policy: None,
            replace: false,
            reload: false,
            classifier,
            owner: None,
        };
        deploy::load(&req).unwrap_or_else(|e| panic!("{e}"));
        Deployed {
            name,
            file,
            dir,
            req: LoadRequest {
                replace: true,
                ..req
            },
            _veth: veth,
        }
    }

    /// `nfcc load --replace` of `src`: what it did and how long it took.
    fn replace(&self, src: &str) -> (deploy::Loaded, Duration) {
        std::fs::write(&self.file, src).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let r = deploy::load(&self.req).unwrap_or_else(|e| panic!("{e}"));
        (r, started.elapsed())
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        let _ = deploy::unload(&self.req.iface);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn each_classifier_takes_a_rule_changed_added_or_removed_in_place() {
    if !privileged("in-place update test") {
        return;
    }
    let n = size("NFCC_INPLACE_RULES", 2_000);
    for (tag, classifier) in [("ipt", Classifier::Tree), ("ipu", Classifier::Tuples)] {
        let mut rng = Rng(0x696e_706c_6163_6521);
        let v1 = rules(&mut rng, n);
        let d = Deployed::load(tag, classifier, |name| source(name, &v1));
        let name = d.name.clone();
        let program_id = deploy::find(&name)
            .unwrap_or_else(|e| panic!("{e}"))
            .program_id;
        let lits = packets(&v1, &mut rng, 600);
        agree(&name, &source(&name, &v1), &lits);

        let mut v = v1.clone();
        let mut next_id = n;
        for step in ["change", "add", "remove", "back"] {
            let mut changed: Vec<R> = Vec::new();
            match step {
                "change" => {
                    let i = n / 3;
                    changed.push(v[i].clone());
                    v[i].drop = !v[i].drop;
                    v[i].ports = (v[i].ports.0 + 1, v[i].ports.1 + 1);
                    changed.push(v[i].clone());
                }
                "add" => {
                    let r = rule(&mut rng, next_id);
                    next_id += 1;
                    changed.push(r.clone());
                    v.insert(n / 10, r);
                }
                "remove" => changed.push(v.remove(n / 2)),
                _ => v = v1.clone(),
            }
            let before = counts(&name);
            let src = source(&name, &v);
            let (r, took) = d.replace(&src);
            let done = match &r.in_place {
                Some(Ok(done)) => done.clone(),
                other => panic!("{tag} {step}: not updated in place: {other:?}"),
            };
            assert_eq!(
                r.manifest.program_id(),
                program_id,
                "{tag} {step}: the program stays"
            );
            // Every rule of both versions kept its count, whatever slot it moved to (the
            // default may have counted what the kernel sends on a new link meanwhile).
            let after = counts(&name);
            for (rule, c) in &before {
                match after.get(rule) {
                    Some(a) if rule == "default" => {
                        assert!(a >= c, "{tag} {step}: the default lost counts")
                    }
                    Some(a) => assert_eq!(a, c, "{tag} {step}: the count of {rule} moved"),
                    None => {}
                }
            }
            let mut lits2 = lits.clone();
            for r in &changed {
                lits2.extend((0..20).map(|i| inside(r, &mut rng, i % 4 == 0)));
            }
            agree(&name, &src, &lits2);
            eprintln!(
                "{n} rules as {tag}: {step} in place ({} entries written, {} deleted, rules {}moved) \
                 in {:.1} ms of map writes, {:.0} ms for the whole `load --replace`",
                done.written,
                done.deleted,
                if done.moved { "" } else { "not " },
                done.took.as_secs_f64() * 1e3,
                took.as_secs_f64() * 1e3
            );
        }
        // Counted packets went to the rules that decided them, through all of it.
        let total: u64 = counts(&name).values().sum();
        assert!(total > 0, "{tag}: the test runs were counted");

        // A rule whose address no tree or tuple holds yet in the same shape may not fit:
        // --reload reloads whatever changed, and says so.
        let (r, _) = {
            let mut req = d.req.clone();
            req.reload = true;
            std::fs::write(&d.file, source(&name, &v1)).unwrap_or_else(|e| panic!("{e}"));
            (deploy::load(&req).unwrap_or_else(|e| panic!("{e}")), ())
        };
        assert!(matches!(r.in_place, Some(Err(_))), "{:?}", r.in_place);
        assert_ne!(r.manifest.program_id(), program_id);
        agree(&name, &source(&name, &v1), &lits);
    }
}

/// Versions applied so far: `done` updates finished, `begun` started; a test run that started
/// after `done` updates and ended before `begun` grew past `k` saw version `done..=k`.
struct Progress {
    versions: Mutex<Vec<Policy>>,
    begun: AtomicUsize,
    done: AtomicUsize,
}

#[test]
fn single_rule_changes_under_traffic_lose_no_verdict() {
    if !privileged("in-place updates under traffic") {
        return;
    }
    let n = size("NFCC_INPLACE_RULES", 2_000);
    let changes = size("NFCC_INPLACE_CHANGES", 40);
    let mut rng = Rng(0x7472_6166_6669_6321);
    let v1 = rules(&mut rng, n);
    let d = Deployed::load("ipx", Classifier::Tree, |name| source(name, &v1));
    let name = d.name.clone();
    let progress = Arc::new(Progress {
        versions: Mutex::new(vec![checked(&source(&name, &v1))]),
        begun: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));

    // Traffic through the pair: frames inside the rules, from the peer.
    let peer = format!("{}b", d.req.iface.trim_end_matches('a'));
    let ifindex = nfcc_driver::runtime::ifindex(&peer).unwrap_or_else(|e| panic!("{e}"));
    let mix: Vec<Vec<u8>> = packets(&v1, &mut rng, 256)
        .iter()
        .map(|l| frame_from_literal(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut g = nfcc_driver::runtime::traffic::Generator::new(ifindex)
                .unwrap_or_else(|e| panic!("{e}"));
            let what = g.kind().name();
            let sent = g
                .blast(&mix, 64, None, None, &stop)
                .unwrap_or_else(|e| panic!("{e}"));
            (what, sent)
        })
    };

    // The differential: test runs of the running program all the while.
    let pool = packets(&v1, &mut rng, 2_000);
    let checker = {
        let (stop, progress, name) = (stop.clone(), progress.clone(), name.clone());
        std::thread::spawn(move || {
            let dep = deploy::find(&name).unwrap_or_else(|e| panic!("{e}"));
            let (mut runs, mut wrong) = (0usize, Vec::new());
            let frames: Vec<(String, Vec<u8>)> = pool
                .into_iter()
                .map(|l| {
                    let f = frame_from_literal(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
                    (l, f)
                })
                .collect();
            while !stop.load(Ordering::SeqCst) {
                let (lit, frame) = &frames[runs % frames.len()];
                let from = progress.done.load(Ordering::SeqCst);
                let got = nfcc_driver::runtime::deploy::test_run_running(&dep, frame)
                    .unwrap_or_else(|e| panic!("{e}"));
                let to = progress.begun.load(Ordering::SeqCst);
                let versions = progress.versions.lock().unwrap_or_else(|e| e.into_inner());
                let ok = (from..=to.min(versions.len() - 1))
                    .any(|k| expected(&versions[k], frame) == got);
                drop(versions);
                if !ok {
                    wrong.push(format!("{lit}: {got} under versions {from}..={to}"));
                }
                runs += 1;
            }
            (runs, wrong)
        })
    };

    // Single-rule changes: a verdict and ports changed, a rule added, a rule removed.
    let mut v = v1.clone();
    let mut next_id = n;
    let (mut in_place, mut reloaded, mut reasons) = (0usize, 0usize, Vec::new());
    let mut map_times: Vec<f64> = Vec::new();
    let mut load_times: Vec<f64> = Vec::new();
    let started = Instant::now();
    for c in 0..changes {
        match c % 3 {
            0 => {
                let i = rng.below(v.len() as u64) as usize;
                v[i].drop = !v[i].drop;
                v[i].ports = (v[i].ports.0 / 2, v[i].ports.1 / 2 + 1);
            }
            1 => {
                let at = rng.below(v.len() as u64) as usize;
                v.insert(at, rule(&mut rng, next_id));
                next_id += 1;
            }
            _ => {
                v.remove(rng.below(v.len() as u64) as usize);
            }
        }
        let src = source(&name, &v);
        progress
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(checked(&src));
        progress.begun.fetch_add(1, Ordering::SeqCst);
        let (r, took) = d.replace(&src);
        progress.done.fetch_add(1, Ordering::SeqCst);
        load_times.push(took.as_secs_f64() * 1e3);
        match &r.in_place {
            Some(Ok(done)) => {
                in_place += 1;
                map_times.push(done.took.as_secs_f64() * 1e3);
            }
            Some(Err(why)) => {
                reloaded += 1;
                reasons.push(why.to_string());
            }
            None => panic!("change {c}: not a replace"),
        }
    }
    let elapsed = started.elapsed();
    // A little more traffic and checking on the last version.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (runs, wrong) = checker
        .join()
        .unwrap_or_else(|_| panic!("the checker panicked"));
    let (generator, sent) = traffic
        .join()
        .unwrap_or_else(|_| panic!("the traffic thread panicked"));
    assert!(
        wrong.is_empty(),
        "{} of {runs} test runs disagreed with every version running then:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let most = map_times.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "{n} rules as a tree, {changes} single-rule changes in {:.1} s under traffic \
         ({} frames by the {generator} generator) and {runs} test runs: 0 verdicts lost; \
         {in_place} in place (map writes median {:.1} ms, most {most:.1} ms; whole `load --replace` \
         median {:.0} ms), {reloaded} reloaded{}",
        elapsed.as_secs_f64(),
        sent.frames,
        median(&mut map_times),
        median(&mut load_times),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        }
    );
    assert!(
        runs > 0 && sent.frames > 0,
        "the checker and the traffic ran"
    );
    assert!(
        in_place * 10 >= changes * 9,
        "only {in_place} of {changes} changes were made in place: {reasons:?}"
    );
}
