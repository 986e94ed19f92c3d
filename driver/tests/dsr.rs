//! Direct server return through a loaded `balance ... encap` policy, with real TCP
//! (`nfcc_testbeds::dsr`): a client's connections to two VIPs — one IP-in-IP, one GUE — reach
//! backends that decapsulate and answer it directly; each connection's backend is the one the
//! evaluator picks for its SYN; removing a backend with `nfcc pool del` while every connection
//! keeps asking breaks exactly that backend's connections (`sticky` keeps all others where
//! they are) and new connections never reach it.
//!
//! Needs root, the ipip and fou modules and ethtool (skips otherwise, or fails under
//! `NFCC_REQUIRE_KERNEL=1`).

mod common;

use nfcc_driver::compile::Classifier;
use nfcc_driver::deploy::{self, LoadRequest};
use nfcc_driver::pools::{self, PoolOp};
use nfcc_dsl::eval::{eval, FibEntry, Meta, State};
use nfcc_testbeds::dsr::{ask, backend, Dsr, GUE_PORT, LB, VIP, VIP_GUE};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

const BACKENDS: usize = 3;

fn policy() -> String {
    let pool: Vec<String> = (0..BACKENDS).map(|i| backend(i).to_string()).collect();
    format!(
        "policy dsr on xdp {{
            pool web: dynamic, capacity 16 = {{ {} }}
            rule ipip: ip.dst == {VIP} and tcp.dport == 80 => balance web by (ip.src, l4.sport) sticky 64K encap ipip from {LB} via fib, tx
            rule gue: ip.dst == {VIP_GUE} and tcp.dport == 80 => balance web by (ip.src, l4.sport) sticky 64K encap gue({GUE_PORT}) from {LB} via fib, tx
            default pass
        }}",
        pool.join(", ")
    )
}

/// The backend the evaluator sends a connection's SYN to.
fn expected(
    p: &nfcc_dsl::checked::Policy,
    state: &mut State,
    vip: Ipv4Addr,
    port: u16,
) -> Ipv4Addr {
    let lit = format!(
        "ipv4(src={}, dst={vip}) / tcp(sport={port}, dport=80, flags=syn)",
        nfcc_testbeds::dsr::CLIENT
    );
    let frame = nfcc_dsl::testing::frame_from_literal(&lit).unwrap();
    let out = eval(p, state, &Meta::default(), &frame);
    let o = &out.packet;
    Ipv4Addr::new(o[30], o[31], o[32], o[33])
}

#[test]
fn tcp_through_the_balancer_returns_directly_and_survives_a_backend_removal() {
    if !common::privileged("the DSR testbed") {
        return;
    }
    let dsr = match Dsr::new(BACKENDS) {
        Ok(d) => d,
        Err(e) => {
            if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
                panic!("NFCC_REQUIRE_KERNEL=1 but the DSR testbed cannot be built: {e}");
            }
            eprintln!("skipped: the DSR testbed: {e}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("nfcc-dsr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dsr.nf");
    let text = policy();
    std::fs::write(&file, &text).unwrap();
    let req = LoadRequest {
        file,
        iface: dsr.lb_if.clone(),
        mode: None,
        policy: None,
        replace: false,
        reload: false,
        classifier: Classifier::Auto,
        owner: None,
    };
    deploy::load(&req).unwrap_or_else(|e| panic!("{e}"));
    struct Unload(String);
    impl Drop for Unload {
        fn drop(&mut self) {
            let _ = deploy::unload(&self.0);
        }
    }
    let _unload = Unload(dsr.lb_if.clone());

    let (checked, d) = nfcc_dsl::check_source(&text, &nfcc_dsl::CheckOptions::default());
    let p = checked
        .unwrap_or_else(|| panic!("{d:?}"))
        .policies
        .remove(0);
    let mut state = State::new(&p);
    for i in 0..BACKENDS {
        let route = FibEntry {
            smac: [2, 0, 0, 5, 0, 1],
            dmac: [2, 0, 0, 5, 0, 11 + i as u8],
        };
        state.fib.insert(u128::from(u32::from(backend(i))), route);
    }

    // Connections to both VIPs: each answered by the backend the evaluator names.
    let started = Instant::now();
    let mut conns: Vec<(TcpStream, Ipv4Addr)> = Vec::new();
    for (vip, n) in [(VIP, 24), (VIP_GUE, 12)] {
        for mut s in dsr.connect(vip, n).unwrap_or_else(|e| panic!("{e}")) {
            let port = s.local_addr().unwrap().port();
            let got = ask(&mut s).unwrap_or_else(|e| panic!("{vip}:80 from port {port}: {e}"));
            assert_eq!(
                got,
                expected(&p, &mut state, vip, port),
                "port {port} to {vip}"
            );
            conns.push((s, got));
        }
    }
    let mut per: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (_, b) in &conns {
        *per.entry(*b).or_default() += 1;
    }
    assert!(per.len() >= 2, "flows spread over the backends: {per:?}");
    let opened = started.elapsed();

    // Every connection keeps asking while one backend is removed.
    let gone = backend(1);
    let d = deploy::find("dsr").unwrap_or_else(|e| panic!("{e}"));
    let mut broken: Vec<bool> = vec![false; conns.len()];
    let mut rounds = 0;
    let (mut removed_at, mut change) = (None, None);
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        for (i, (s, b)) in conns.iter_mut().enumerate() {
            if broken[i] {
                continue;
            }
            match ask(s) {
                Ok(a) => assert_eq!(a, *b, "connection {i} answered by another backend"),
                Err(_) => broken[i] = true,
            }
        }
        rounds += 1;
        if rounds == 3 {
            removed_at = Some(Instant::now());
            let r = pools::change(&d, "web", PoolOp::Del, Some(&gone.to_string()), None);
            change = Some(r.unwrap_or_else(|e| panic!("{e}")));
        }
    }
    let change = change.expect("the pool changed");
    let on_gone: Vec<usize> = (0..conns.len()).filter(|i| conns[*i].1 == gone).collect();
    let broke: Vec<usize> = (0..conns.len()).filter(|i| broken[*i]).collect();
    assert_eq!(
        broke, on_gone,
        "exactly the removed backend's connections break"
    );

    // New connections after the removal never reach it.
    let mut after: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for vip in [VIP, VIP_GUE] {
        for mut s in dsr.connect(vip, 12).unwrap_or_else(|e| panic!("{e}")) {
            let port = s.local_addr().unwrap().port();
            let got = ask(&mut s).unwrap_or_else(|e| panic!("new connection from {port}: {e}"));
            assert_ne!(got, gone);
            *after.entry(got).or_default() += 1;
        }
    }
    eprintln!(
        "DSR: {} connections (24 IP-in-IP, 12 GUE) opened and answered in {:.0} ms, by backend \
         {per:?}; removing {gone} after {:?} ({} table slots moved): {} connections broke, all \
         of them its, {} others answered {rounds} rounds; 24 new connections went to {after:?}",
        conns.len(),
        opened.as_secs_f64() * 1e3,
        removed_at.map(|t| t.duration_since(started)),
        change.moved.unwrap_or(0),
        broke.len(),
        conns.len() - broke.len(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
