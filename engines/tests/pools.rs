//! Dynamic pools changed live: the compiler's plan (`nfcc_compiler::pools`, what `nfcc pool`
//! applies to a deployed program) applied to the emulator's maps, and the evaluator's own pool
//! changes, keep the two agreeing packet by packet on the interpreter and the JIT — and the
//! flows move as Maglev and `sticky` promise. Needs no privileges.

use nfcc_bpf::layout::PoolBackend;
use nfcc_compiler::compile::compile;
use nfcc_compiler::pools::{plan, PoolChange};
use nfcc_dsl::checked::{Family, PoolId, Scalar, Target};
use nfcc_dsl::eval::{eval, Meta, State};
use nfcc_dsl::testing::{frame_from_literal, hex};
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_emulator::Emulator;

const BACKENDS: u128 = 10;

fn policy_text() -> String {
    let backends: Vec<String> = (1..=BACKENDS).map(|i| format!("10.2.0.{i}")).collect();
    format!(
        "policy lb on xdp {{
            pool web: dynamic, capacity 16 = {{ {} }}
            rule vip: ip.dst == 192.0.2.80 and udp => balance web by (ip.src, l4.sport) encap gue(6080) from 10.9.9.9, tx
            rule vip_sticky: ip.dst == 192.0.2.81 and udp => balance web by (ip.src, l4.sport) sticky 64K encap ipip, tx
            default pass
        }}",
        backends.join(", ")
    )
}

fn v4(a: u128) -> Scalar {
    Scalar {
        family: Family::V4,
        bits: a,
    }
}

/// The flows: for each VIP, sources and ports spread over the key space.
fn flows() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for vip in [80, 81] {
        for i in 0..1500u32 {
            let lit = format!(
                "ipv4(src=198.51.{}.{}, dst=192.0.2.{vip}) / udp(sport={}, dport=53)",
                100 + i / 250,
                i % 250,
                1024 + i * 7 % 60000
            );
            out.push(frame_from_literal(&lit).unwrap());
        }
    }
    out
}

struct Bench {
    emu: Emulator,
    policy: nfcc_dsl::checked::Policy,
    state: State,
    entry: nfcc_bpf::manifest::PoolEntry,
}

impl Bench {
    fn new() -> Bench {
        let text = policy_text();
        let (p, d) = check_source(&text, &CheckOptions::default());
        let p = p.unwrap_or_else(|| panic!("{d:?}"));
        let compiled = compile(&p, "lb.nf", &text, Some(Target::Host)).unwrap();
        let program = &compiled.programs[0];
        let mut emu = Emulator::load(&compiled.object).unwrap();
        for (map, entries) in &program.maps {
            for (k, v) in entries {
                emu.map_update(&map.name, k, v).unwrap();
            }
        }
        let policy = p.policies[0].clone();
        let stage = nfcc_compiler::describe::stage(&policy, program);
        let entry = stage.pools[0].clone();
        assert_eq!(entry.flows.len(), 1, "one flow table, of the sticky rule");
        let state = State::new(&policy);
        Bench {
            emu,
            policy,
            state,
            entry,
        }
    }

    /// Every flow on the evaluator, the interpreter and the JIT; the backend (outer
    /// destination) each went to.
    fn run(&mut self, flows: &[Vec<u8>]) -> Vec<u32> {
        let mut backends = Vec::new();
        for f in flows {
            let want = eval(&self.policy, &mut self.state, &Meta::default(), f);
            for jit in [false, true] {
                let got = if jit {
                    self.emu.run_jit("lb", f)
                } else {
                    self.emu.run("lb", f)
                }
                .unwrap();
                assert_eq!(
                    hex(&got.data),
                    hex(&want.packet),
                    "packet {} (jit: {jit})",
                    hex(f)
                );
            }
            let o = &want.packet;
            backends.push(u32::from_be_bytes([o[30], o[31], o[32], o[33]]));
        }
        backends
    }

    fn change(&mut self, c: PoolChange) -> usize {
        let mut slots = Vec::new();
        for i in 0..self.entry.capacity {
            let v = self
                .emu
                .map_lookup(&self.entry.backends, &i.to_le_bytes())
                .unwrap();
            slots.push(v.and_then(|v| PoolBackend::decode(&v, false)).unwrap());
        }
        let active = self
            .emu
            .map_lookup(&self.entry.active, &[0; 4])
            .unwrap()
            .unwrap();
        let active = u32::from_le_bytes([active[0], active[1], active[2], active[3]]);
        let p = plan(&self.entry, &slots, active, c).unwrap();
        for w in p
            .before
            .iter()
            .chain(&p.table)
            .chain([&p.flip])
            .chain(&p.after)
        {
            self.emu.map_update(&w.map, &w.key, &w.value).unwrap();
        }
        let pool = PoolId(0);
        match c {
            PoolChange::Add { addr, weight } => self
                .state
                .pool_add(&self.policy, pool, v4(addr), u32::from(weight))
                .unwrap(),
            PoolChange::Del { addr } => self.state.pool_del(&self.policy, pool, v4(addr)).unwrap(),
        }
        p.moved
    }
}

/// (flows moved, flows moved that were not on `gone`) between two runs of `n` flows.
fn moved(before: &[u32], after: &[u32], gone: Option<u32>) -> (usize, usize) {
    let m = before.iter().zip(after).filter(|(a, b)| a != b);
    let all = m.clone().count();
    let others = m.filter(|(a, _)| Some(**a) != gone).count();
    (all, others)
}

#[test]
fn pool_changes_agree_with_the_evaluator_and_move_only_what_they_must() {
    let mut b = Bench::new();
    let flows = flows();
    let half = flows.len() / 2;
    let first = b.run(&flows);
    assert!(first
        .iter()
        .all(|a| (0x0a02_0001..=0x0a02_000a).contains(a)));

    // Remove one of ten backends.
    let gone = 0x0a02_0004u32;
    let slots = b.change(PoolChange::Del {
        addr: u128::from(gone),
    });
    let second = b.run(&flows);
    assert!(
        second.iter().all(|a| *a != gone),
        "no flow reaches a removed backend"
    );
    let on_gone = first[..half].iter().filter(|a| **a == gone).count();
    let (plain, plain_others) = moved(&first[..half], &second[..half], Some(gone));
    let (sticky, sticky_others) = moved(&first[half..], &second[half..], Some(gone));
    eprintln!(
        "remove 1 of {BACKENDS}: {slots} of 65537 table slots moved; without sticky {plain} of \
         {half} flows moved ({on_gone} were on it, {plain_others} others); with sticky \
         {sticky} moved ({sticky_others} others)"
    );
    assert_eq!(
        plain - plain_others,
        on_gone,
        "every flow of the removed backend moves"
    );
    assert!(
        plain_others * 20 < half,
        "Maglev moves few others: {plain_others}"
    );
    assert_eq!(
        sticky_others, 0,
        "sticky keeps every other flow on its backend"
    );

    // Add a backend: with sticky no remembered flow moves.
    let new = 0x0a02_000bu32;
    b.change(PoolChange::Add {
        addr: u128::from(new),
        weight: 1,
    });
    let third = b.run(&flows);
    let (plain, _) = moved(&second[..half], &third[..half], None);
    let (sticky, _) = moved(&second[half..], &third[half..], None);
    eprintln!("add an 11th: without sticky {plain} of {half} flows moved; with sticky {sticky}");
    assert_eq!(sticky, 0);
    assert!(plain > 0 && plain * 5 < half);
    assert!(third[..half]
        .iter()
        .all(|a| *a == new || second[..half].contains(a)));

    // The removed backend back (a new incarnation of its slot); then every backend gone.
    b.change(PoolChange::Add {
        addr: u128::from(gone),
        weight: 3,
    });
    b.run(&flows);
    for i in 1..=11u128 {
        b.change(PoolChange::Del {
            addr: 0x0a02_0000 + i,
        });
    }
    for f in &flows[..10] {
        let out = eval(&b.policy, &mut b.state, &Meta::default(), f);
        assert_eq!(out.packet, *f, "an empty pool passes packets untouched");
    }
    b.run(&flows[..50]);
    b.run(&flows[half..half + 50]);
}
