//! `nfcc import iptables|nft --verify N`: the original ruleset restored with the machine's
//! own `iptables-restore` (or `ip6tables-restore`, or `nft -j -f`) into a testbed's private
//! network namespace,
//! whose routing table has a local route for every address (so every packet goes to INPUT;
//! with `accept_local`, since every source is then a local address too, and IPv6 turned back
//! on where the testbed turned it off),
//! and N generated packets sent into it; a packet netfilter accepted reaches raw IP sockets
//! there. The same packets go through the imported policy on the reference evaluator and,
//! compiled, on the emulator. Every packet whose verdicts differ is a disagreement.
//!
//! Packets are drawn from the rules' own values: half of them meet one rule's conditions
//! together (its addresses at and around the prefix edges, its ports and range ends, its
//! protocol, ICMP type and TCP flags), the rest take values one by one from all rules and at
//! random, each tagged in its payload so its arrival can be told apart. Sources the
//! kernel drops before INPUT (martians: 0/8, 127/8, multicast, broadcast; for IPv6 anything
//! outside 2000::/3 and fc00::/7) are never generated.

use crate::error::DriverError;
use nfcc_dsl::checked::{Policy, Terminal};
use nfcc_import::iptables::Pools;
use nfcc_runtime::capture::{Delivered, Injector};
use nfcc_testbeds::Testbed;
use std::collections::HashSet;
use std::time::Duration;

/// One packet on which netfilter and the policy disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// The packet, as a `.nf` packet literal.
    pub packet: String,
    /// `accept` or `drop`.
    pub netfilter: &'static str,
    /// The evaluator's verdict and deciding rule.
    pub policy: String,
    /// The compiled program's verdict (on the emulator).
    pub program: String,
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Packets sent.
    pub packets: usize,
    /// Of which netfilter accepted.
    pub accepted: usize,
    /// Every disagreement.
    pub disagreements: Vec<Disagreement>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env(e: impl std::fmt::Display) -> DriverError {
    DriverError::Environment(e.to_string())
}

/// An address inside (or, `off` -1/+1, just outside) prefix `p`, if it is one a packet may
/// come from.
fn address_from(p: &str, v6: bool, rng: &mut Rng) -> Option<String> {
    let (a, len) = p
        .split_once('/')
        .unwrap_or((p, if v6 { "128" } else { "32" }));
    let len: u32 = len.parse().ok()?;
    if v6 {
        let base = u128::from(a.parse::<std::net::Ipv6Addr>().ok()?);
        let host = if len >= 128 { 0 } else { u128::MAX >> len };
        let x = match rng.below(4) {
            0 => base & !host,
            1 => base | host,
            2 => (base & !host).wrapping_sub(1),
            _ => (base & !host) | (u128::from(rng.next()) & host),
        };
        let addr = std::net::Ipv6Addr::from(x);
        let top = (x >> 125) as u8;
        (top == 1 || (x >> 121) as u8 == 0x7e).then(|| addr.to_string())
    } else {
        let base = u32::from(a.parse::<std::net::Ipv4Addr>().ok()?);
        let host = if len >= 32 { 0 } else { u32::MAX >> len };
        let x = match rng.below(4) {
            0 => base & !host,
            1 => base | host,
            2 => (base & !host).wrapping_sub(1),
            _ => (base & !host) | (rng.next() as u32 & host),
        };
        usable_v4(x).then(|| std::net::Ipv4Addr::from(x).to_string())
    }
}

fn usable_v4(x: u32) -> bool {
    let first = x >> 24;
    first != 0 && first != 127 && first < 224 && x & 0xff != 0xff && x & 0xff != 0
}

fn random_address(v6: bool, rng: &mut Rng) -> String {
    if v6 {
        let x =
            (0x2001u128 << 112) | (u128::from(rng.next()) << 32) | u128::from(rng.next() as u32);
        std::net::Ipv6Addr::from(x).to_string()
    } else {
        loop {
            let x = rng.next() as u32;
            if usable_v4(x) {
                return std::net::Ipv4Addr::from(x).to_string();
            }
        }
    }
}

/// Packet `i`'s literal (to the receiving MAC `mac`), tagged with `i` in its payload: half
/// the time made to meet one rule's conditions together, else from values drawn one by one
/// from all rules (or at random).
fn packet(i: u32, pools: &Pools, mac: &str, rng: &mut Rng) -> String {
    if !pools.templates.is_empty() && rng.below(2) == 0 {
        let t = &pools.templates[rng.below(pools.templates.len())];
        return from_template(i, t, pools, mac, rng);
    }
    let one = |v: &[String], rng: &mut Rng| {
        (!v.is_empty() && rng.below(3) > 0).then(|| v[rng.below(v.len())].clone())
    };
    let port = |rng: &mut Rng| {
        if !pools.ports.is_empty() && rng.below(3) > 0 {
            vec![pools.ports[rng.below(pools.ports.len())]]
        } else {
            Vec::new()
        }
    };
    let icmp = if pools.v6 { 58 } else { 1 };
    let mut protos = vec![6u8, 17, icmp];
    protos.extend(
        pools
            .protos
            .iter()
            .filter(|&&p| p != 0 && (p != 1 || !pools.v6) && (p != 58 || pools.v6)),
    );
    const FLAGS: [&str; 8] = [
        "syn",
        "ack",
        "syn|ack",
        "fin|ack",
        "rst",
        "psh|ack",
        "0",
        "fin|psh|urg",
    ];
    let t = nfcc_import::iptables::Template {
        src: one(&pools.prefixes, rng),
        dst: one(&pools.prefixes, rng),
        proto: Some(protos[rng.below(protos.len())]),
        sports: port(rng),
        dports: port(rng),
        icmp: (!pools.icmp.is_empty() && rng.below(2) == 0)
            .then(|| pools.icmp[rng.below(pools.icmp.len())]),
        flags: Some(FLAGS[rng.below(FLAGS.len())].to_string()),
    };
    from_template(i, &t, pools, mac, rng)
}

/// A packet meeting template `t`'s conditions, random elsewhere.
fn from_template(
    i: u32,
    t: &nfcc_import::iptables::Template,
    pools: &Pools,
    mac: &str,
    rng: &mut Rng,
) -> String {
    let v6 = pools.v6;
    let addr = |p: &Option<String>, rng: &mut Rng| {
        p.as_deref()
            .and_then(|p| address_from(p, v6, rng))
            .unwrap_or_else(|| random_address(v6, rng))
    };
    let (src, dst) = (addr(&t.src, rng), addr(&t.dst, rng));
    let icmp = if v6 { 58 } else { 1 };
    let proto = t.proto.filter(|&p| p != 0).unwrap_or(match rng.below(3) {
        0 => 6,
        1 => 17,
        _ => icmp,
    });
    let pick = |list: &[u16], rng: &mut Rng| {
        if list.is_empty() {
            1 + (rng.next() % 65535) as u16
        } else {
            list[rng.below(list.len())]
        }
    };
    let ip = if v6 {
        format!("ipv6(src={src}, dst={dst})")
    } else {
        format!("ipv4(src={src}, dst={dst})")
    };
    let l4 = match proto {
        6 => {
            let flags = t
                .flags
                .clone()
                .unwrap_or_else(|| ["syn", "ack", "syn|ack", "rst"][rng.below(4)].to_string());
            format!(
                " / tcp(sport={}, dport={}, flags={flags})",
                pick(&t.sports, rng),
                pick(&t.dports, rng)
            )
        }
        17 => format!(
            " / udp(sport={}, dport={})",
            pick(&t.sports, rng),
            pick(&t.dports, rng)
        ),
        p if p == icmp => {
            let (ty, code) = t.icmp.unwrap_or(((rng.next() % 256) as u8, None));
            let code = code.unwrap_or((rng.next() % 2) as u8);
            format!(
                " / {}(type={ty}, code={code})",
                if v6 { "icmpv6" } else { "icmp" }
            )
        }
        p => {
            let ip = if v6 {
                format!("ipv6(src={src}, dst={dst}, nexthdr={p})")
            } else {
                format!("ipv4(src={src}, dst={dst}, proto={p})")
            };
            return format!("eth(dst={mac}) / {ip} / raw(0x4e464343{i:08x})");
        }
    };
    format!("eth(dst={mac}) / {ip}{l4} / raw(0x4e464343{i:08x})")
}

/// The tag of a delivered packet (the last 8 bytes: `NFCC` and the index).
fn tag(data: &[u8]) -> Option<u32> {
    let t = data.get(data.len().checked_sub(8)?..)?;
    (t[..4] == *b"NFCC").then(|| u32::from_be_bytes([t[4], t[5], t[6], t[7]]))
}

fn ns_sh(ns: &str, script: &str) -> Result<(), DriverError> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
        .map_err(|e| env(format!("cannot run `ip netns exec`: {e}")))?;
    if !out.status.success() {
        return Err(env(format!(
            "in the verification namespace, `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn verdict_name(t: &Terminal) -> &'static str {
    match t {
        Terminal::Pass => "accept",
        _ => "drop",
    }
}

/// The original ruleset, as the kernel's own tools load it.
#[derive(Clone, Copy, Debug)]
pub enum Original<'a> {
    /// An `iptables-save` dump (`ip6tables-save` with `v6`), with the `ipset save` sets it
    /// names.
    Iptables {
        /// The dump.
        dump: &'a str,
        /// An ip6tables dump.
        v6: bool,
        /// `ipset save` output, restored first.
        sets: Option<&'a str>,
    },
    /// `nft -j list ruleset` output.
    Nft {
        /// The JSON.
        json: &'a str,
    },
}

/// The pools `original`'s rules draw packets from, per family.
fn pools_of(original: &Original<'_>) -> Result<Vec<Pools>, DriverError> {
    Ok(match *original {
        Original::Iptables { dump, v6, sets } => vec![match sets {
            Some(s) => nfcc_import::iptables::pools_with_sets(
                dump,
                v6,
                &nfcc_import::ipset::parse(s).map_err(|e| DriverError::Input(e.to_string()))?,
            ),
            None => nfcc_import::iptables::pools(dump, v6),
        }],
        Original::Nft { json } => nfcc_import::nft::pools(json).to_vec(),
    })
}

/// `n` frames drawn from `original`'s rules as `--verify` draws them (to a placeholder MAC
/// address): traffic for `nfcc bench --original`.
pub fn sample_frames(original: &Original<'_>, n: usize) -> Result<Vec<Vec<u8>>, DriverError> {
    let pools = pools_of(original)?;
    let mut rng = Rng(0x6265_6e63_6866_7261);
    (0..n as u32)
        .map(|i| {
            let family = &pools[rng.below(pools.len())];
            let lit = packet(i, family, "02:00:00:00:00:02", &mut rng);
            nfcc_dsl::testing::frame_from_literal(&lit)
                .map_err(|e| DriverError::Failed(format!("generated `{lit}`: {e}")))
        })
        .collect()
}

/// Holds the imported `policy` (from `nf`) to `original` restored into netfilter, with `n`
/// packets; `iface` is the interface name `-i`/`iifname` rules were judged against.
pub fn verify(
    original: &Original<'_>,
    nf: &str,
    policy: &str,
    iface: Option<&str>,
    n: u64,
) -> Result<Verified, DriverError> {
    nfcc_runtime::can_load_bpf()
        .map_err(|why| env(format!("--verify needs root and bpf: {why}")))?;
    let (program, diags) = nfcc_dsl::check_source(nf, &nfcc_dsl::CheckOptions::default());
    let program = program.ok_or_else(|| {
        DriverError::Failed(format!("the imported policy does not check: {diags:?}"))
    })?;
    let pol: Policy = program
        .policies
        .iter()
        .find(|p| p.name == policy)
        .cloned()
        .ok_or_else(|| DriverError::Failed(format!("no policy {policy}")))?;
    let compiled = nfcc_compiler::compile::compile(&program, "imported.nf", nf, None)
        .map_err(|d| DriverError::Failed(format!("the imported policy does not compile: {d:?}")))?;
    let mut emu = nfcc_emulator::Emulator::load(&compiled.object).map_err(env)?;
    if let Some(cp) = compiled.programs.iter().find(|p| p.name == policy) {
        for (m, entries) in &cp.maps {
            for (k, v) in entries {
                emu.map_update(&m.name, k, v).map_err(env)?;
            }
        }
    }
    let tb = Testbed::new().map_err(env)?;
    let rx = match iface {
        Some(name) => {
            ns_sh(
                &tb.ns,
                &format!(
                    "ip link set {} down && ip link set {} name {name} && ip link set {name} up",
                    tb.rx, tb.rx
                ),
            )?;
            name.to_string()
        }
        None => tb.rx.clone(),
    };
    let (restore, text, families): (&str, &str, Vec<bool>) = match *original {
        Original::Iptables { dump, v6, .. } => (
            if v6 {
                "ip6tables-restore <"
            } else {
                "iptables-restore <"
            },
            dump,
            vec![v6],
        ),
        Original::Nft { json } => ("nft -j -f", json, vec![false, true]),
    };
    let pools = pools_of(original)?;
    let route = families
        .iter()
        .map(|v6| {
            if *v6 {
                "ip -6 route add local ::/0 dev lo table local"
            } else {
                "ip route add local 0.0.0.0/0 dev lo table local"
            }
        })
        .collect::<Vec<_>>()
        .join(" && ");
    ns_sh(
        &tb.ns,
        &format!(
            "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
             net.ipv4.conf.{rx}.rp_filter=0 net.ipv4.conf.all.accept_local=1 \
             net.ipv4.conf.{rx}.accept_local=1 net.ipv6.conf.{rx}.disable_ipv6=0 \
             net.ipv6.conf.lo.disable_ipv6=0 && ip link set lo up && {route}"
        ),
    )?;
    if let Original::Iptables { sets: Some(s), .. } = original {
        let f = std::env::temp_dir().join(format!("nfcc-verify-{}.ipset", std::process::id()));
        std::fs::write(&f, s).map_err(env)?;
        let restored = ns_sh(&tb.ns, &format!("ipset restore < {}", f.display()));
        let _ = std::fs::remove_file(&f);
        restored?;
    }
    let dir = std::env::temp_dir().join(format!("nfcc-verify-{}", std::process::id()));
    std::fs::write(&dir, text).map_err(env)?;
    let restored = ns_sh(&tb.ns, &format!("{restore} {}", dir.display()));
    let _ = std::fs::remove_file(&dir);
    restored?;
    let rx_mac = {
        let out = std::process::Command::new("ip")
            .args(["-n", &tb.ns, "link", "show", &rx])
            .output()
            .map_err(env)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| env(format!("no MAC address for {rx}")))?
    };
    let mut delivered = Vec::new();
    for p in &pools {
        let mut protos = vec![6u8, 17, if p.v6 { 58 } else { 1 }];
        protos.extend(p.protos.iter().copied().filter(|&x| x != 0));
        protos.sort_unstable();
        protos.dedup();
        let v6 = p.v6;
        delivered.push(
            tb.in_ns(move || Delivered::open(v6, &protos))
                .map_err(env)?,
        );
    }
    let drain = |quiet: u64, seen: &mut HashSet<u32>| -> Result<(), DriverError> {
        for d in &delivered {
            d.drain(Duration::from_millis(quiet), &mut |x| {
                seen.extend(tag(x));
            })
            .map_err(env)?;
        }
        Ok(())
    };
    let injector = Injector::open(&tb.tx).map_err(env)?;
    let mut rng = Rng(0x6e66_6363_7665_7269);
    let mut out = Verified::default();
    let meta = nfcc_dsl::eval::Meta::default();
    let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen: HashSet<u32> = HashSet::new();
    for i in 0..n as u32 {
        let family = &pools[rng.below(pools.len())];
        let lit = packet(i, family, &rx_mac, &mut rng);
        let frame = nfcc_dsl::testing::frame_from_literal(&lit)
            .map_err(|e| DriverError::Failed(format!("generated `{lit}`: {e}")))?;
        injector.send(&frame).map_err(env)?;
        sent.push((lit, frame));
        if sent.len().is_multiple_of(100) || i + 1 == n as u32 {
            drain(20, &mut seen)?;
        }
    }
    drain(100, &mut seen)?;
    let mut state = nfcc_dsl::eval::State::new(&pol);
    for (i, (lit, frame)) in sent.iter().enumerate() {
        let nfv = if seen.contains(&(i as u32)) {
            "accept"
        } else {
            "drop"
        };
        let o = nfcc_dsl::eval::eval(&pol, &mut state, &meta, frame);
        let ev = verdict_name(&o.verdict);
        let prog = emu
            .run(policy, frame)
            .map(|r| {
                verdict_name(&nfcc_compiler::codegen::terminal_of(
                    pol.hook,
                    r.retval as u32,
                    &pol,
                ))
            })
            .unwrap_or("error");
        out.packets += 1;
        if nfv == "accept" {
            out.accepted += 1;
        }
        if ev != nfv || prog != nfv {
            let rule = match o.rule {
                nfcc_dsl::checked::RuleRef::Default => "default".to_string(),
                nfcc_dsl::checked::RuleRef::Rule(id) => pol.rule(id).name.clone(),
            };
            out.disagreements.push(Disagreement {
                packet: lit.clone(),
                netfilter: nfv,
                policy: format!("{ev} by {rule}"),
                program: prog.to_string(),
            });
        }
    }
    Ok(out)
}
