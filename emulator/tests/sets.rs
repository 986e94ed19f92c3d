//! Changing dynamic sets of a compiled policy, as `nfcc set` will on a loaded one: the map
//! operations `compiler::sets::plan` gives are applied to the emulator's maps, the same value
//! is added to the evaluator's set, and both must then decide packets alike — for a prefix
//! hash (including a prefix length the set did not have), an LPM trie and an exact hash.

use nfcc_compiler::compile::{compile, object_map_name};
use nfcc_compiler::sets::{plan, MapOp, SetError};
use nfcc_dsl::check::parse_set_item;
use nfcc_dsl::checked::{Policy, Program};
use nfcc_dsl::eval::{eval, Meta, State};
use nfcc_dsl::testing::frame_from_literal;
use nfcc_dsl::{check_source, CheckOptions};
use nfcc_emulator::Emulator;

struct Both {
    policy: Policy,
    ir: nfcc_compiler::ir::Program,
    emu: Emulator,
    state: State,
}

impl Both {
    fn new(source: &str) -> Both {
        Both::for_target(source, None)
    }

    /// Compiled for `target` (the NIC's profile in the emulator for `nfp`).
    fn for_target(source: &str, target: Option<nfcc_dsl::checked::Target>) -> Both {
        let (program, d) = check_source(source, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{d:?}"));
        let policy = program.policies[0].clone();
        let single = Program {
            policies: vec![policy.clone()],
        };
        let compiled = compile(&single, "p.nf", source, target).unwrap_or_else(|e| panic!("{e:?}"));
        let mut emu = Emulator::load(&compiled.object).unwrap_or_else(|e| panic!("{e}"));
        if target == Some(nfcc_dsl::checked::Target::Nfp) {
            emu.env.profile = nfcc_emulator::Profile::Nfp;
        }
        for (m, entries) in &compiled.programs[0].maps {
            for (k, v) in entries {
                emu.map_update(&m.name, k, v)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let state = State::new(&policy);
        Both {
            ir: compiled.programs[0].ir.clone(),
            policy,
            emu,
            state,
        }
    }

    /// Adds or removes `value` in both engines.
    fn change(&mut self, set: &str, value: &str, add: bool) -> Result<usize, SetError> {
        let idx = self.policy.sets.iter().position(|s| s.name == set);
        let kind = idx.map_or(nfcc_dsl::checked::SetKind::Uint(64), |i| {
            self.policy.sets[i].kind
        });
        let item = parse_set_item(kind, value).unwrap_or_else(|e| panic!("{e}"));
        let name = self.policy.name.clone();
        let emu = &mut self.emu;
        let ops = plan(&self.policy, &self.ir, set, item, add, &mut |map, key| {
            emu.map_lookup(&object_map_name(&name, map), key)
                .ok()
                .flatten()
        })?;
        for op in &ops {
            match op {
                MapOp::Update { map, key, value } => self
                    .emu
                    .map_update(&object_map_name(&name, map), key, value)
                    .unwrap_or_else(|e| panic!("{e}")),
                MapOp::Delete { map, key } => {
                    let _ = self.emu.map_delete(&object_map_name(&name, map), key);
                }
            }
        }
        if let Some(i) = idx {
            if add {
                self.state.sets[i].push(item);
            } else {
                self.state.sets[i].retain(|x| *x != item);
            }
        }
        Ok(ops.len())
    }

    /// The verdict and rule of one packet, asserting both engines agree.
    fn run(&mut self, literal: &str) -> String {
        let frame = frame_from_literal(literal).unwrap_or_else(|e| panic!("{e}"));
        let meta = Meta {
            ifindex: 1,
            ..Meta::default()
        };
        let want = eval(&self.policy, &mut self.state, &meta, &frame);
        let got = self
            .emu
            .run(&self.policy.name, &frame)
            .unwrap_or_else(|e| panic!("{e}"));
        let verdict =
            nfcc_compiler::codegen::terminal_of(self.policy.hook, got.retval as u32, &self.policy);
        assert_eq!(verdict, want.verdict, "{literal}");
        assert_eq!(got.data, want.packet, "{literal}");
        want.verdict.to_string()
    }
}

#[test]
fn prefix_hash_sets_take_new_prefixes_of_any_length() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ddos_guard.nf"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut b = Both::new(&src);
    let pkt = "ipv4(src=203.0.113.9, dst=10.0.0.1) / udp(sport=1, dport=80)";
    assert_eq!(b.run(pkt), "pass");
    // A /16: a length the set did not have, so the length table grows too.
    assert_eq!(b.change("blocked", "203.0.0.0/16", true), Ok(2));
    assert_eq!(b.run(pkt), "drop");
    assert_eq!(
        b.run("ipv4(src=203.1.0.1, dst=10.0.0.1) / udp(dport=80)"),
        "pass"
    );
    // A /32 inside it, then the /16 removed: the /32 still blocks.
    assert_eq!(b.change("blocked", "203.0.113.9", true), Ok(1));
    assert_eq!(b.change("blocked", "203.0.0.0/16", false), Ok(1));
    assert_eq!(b.run(pkt), "drop");
    assert_eq!(
        b.run("ipv4(src=203.0.113.10, dst=10.0.0.1) / udp(dport=80)"),
        "pass"
    );
}

#[test]
fn nic_prefix_sets_keep_a_length_per_entry_and_grow() {
    // On the NIC a dynamic prefix set's length table keeps one slot per map entry (entries
    // stay small); a new length adds its slot, then the count.
    let src = "policy n on xdp {
    set blocked: ipv4 prefix, dynamic = { 192.0.2.0/24 }
    set blocked6: ipv6 prefix, dynamic = { 2001:db8::/32 }
    rule b: ip.src in blocked => drop
    rule b6: ip.src in blocked6 => drop
    default pass
}
";
    let mut b = Both::for_target(src, Some(nfcc_dsl::checked::Target::Nfp));
    for m in &b.ir.maps {
        assert!(
            m.key_size + m.value_size <= 64,
            "{}: {} + {} bytes per entry",
            m.name,
            m.key_size,
            m.value_size
        );
    }
    let v4 = "ipv4(src=203.0.113.9, dst=10.0.0.1) / udp(sport=1, dport=80)";
    assert_eq!(b.run("ipv4(src=192.0.2.7) / udp(dport=80)"), "drop");
    assert_eq!(b.run(v4), "pass");
    // The hash entry, the new slot and the count.
    assert_eq!(b.change("blocked", "203.0.0.0/16", true), Ok(3));
    assert_eq!(b.run(v4), "drop");
    // A length already listed: the hash entry alone.
    assert_eq!(b.change("blocked", "198.51.0.0/16", true), Ok(1));
    assert_eq!(b.run("ipv4(src=198.51.100.1) / udp(dport=80)"), "drop");
    assert_eq!(b.run("ipv4(src=192.0.2.7) / udp(dport=80)"), "drop");
    let v6 = "ipv6(src=2001:dc0::1) / udp(dport=80)";
    assert_eq!(b.run(v6), "pass");
    assert_eq!(b.change("blocked6", "2001:dc0::/48", true), Ok(3));
    assert_eq!(b.run(v6), "drop");
    assert_eq!(b.run("ipv6(src=2001:db8::1) / udp(dport=80)"), "drop");
    assert_eq!(b.run("ipv6(src=2001:dc1::1) / udp(dport=80)"), "pass");
}

#[test]
fn lpm_and_exact_sets_and_refusals() {
    let src = "policy p on xdp {
    set nets6: ipv6 prefix, dynamic = { 2001:db8::/32, 2001:db9::/48, 2001:dba::/56, 2001:dbb::/64 }
    set ports: port, dynamic = { 22 }
    set fixed: port = { 1, 2, 3, 4, 5, 6 }
    rule v6: ip.src in nets6 => drop
    rule p: l4.dport in ports => drop
    rule f: l4.dport in fixed => drop
    default pass
}
";
    let mut b = Both::new(src);
    assert_eq!(b.run("ipv6(src=2001:dc0::1) / udp(dport=80)"), "pass");
    b.change("nets6", "2001:dc0::/29", true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.run("ipv6(src=2001:dc0::1) / udp(dport=80)"), "drop");
    assert_eq!(b.run("ipv4(src=10.0.0.1) / tcp(dport=8080)"), "pass");
    b.change("ports", "8080", true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.run("ipv4(src=10.0.0.1) / tcp(dport=8080)"), "drop");
    b.change("ports", "8080", false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.run("ipv4(src=10.0.0.1) / tcp(dport=8080)"), "pass");
    assert!(matches!(
        b.change("fixed", "9", true),
        Err(SetError::NotDynamic(_))
    ));
    assert!(matches!(
        b.change("nope", "9", true),
        Err(SetError::NoSet { .. })
    ));
    let bad = parse_set_item(nfcc_dsl::checked::SetKind::Port, "70000");
    assert!(bad.as_ref().is_err_and(|e| e.contains("70000")), "{bad:?}");
    let bad = parse_set_item(nfcc_dsl::checked::SetKind::Ipv4Prefix, "2001:db8::/32");
    assert!(bad.is_err(), "{bad:?}");
}
