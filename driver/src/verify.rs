//! `nfcc import iptables|nft --verify N`: the original ruleset restored with the machine's
//! own tools into a testbed's private network namespace, with the topology that sends packets
//! through the imported chain where netfilter runs it (`nfcc_testbeds::netfilter`: INPUT with
//! every address local, FORWARD through a routed namespace pair, a user chain jumped to from
//! INPUT; OUTPUT is refused, no arriving packet meets it), and N generated packets sent in.
//! The same packets go through the imported policy on the reference evaluator and, compiled,
//! on the emulator. Every packet whose verdicts differ is a disagreement.
//!
//! Packets are drawn from the rules' own values: half of them meet one rule's conditions
//! together (its addresses at and around the prefix edges, its ports and range ends, its
//! protocol, ICMP type and TCP flags), the rest take values one by one from all rules and at
//! random, each tagged in its payload so its arrival can be told apart. Sources the
//! kernel drops before INPUT (martians: 0/8, 127/8, multicast, broadcast; for IPv6 anything
//! outside 2000::/3 and fc00::/7) are never generated. On the forward path one packet in eight
//! is a first fragment and one in eight a later one; INPUT sees datagrams only after
//! reassembly, so no fragment is sent there.

use crate::error::DriverError;
use nfcc_dsl::checked::{Policy, Terminal};
use nfcc_import::iptables::Pools;
use nfcc_import::Traversal;
use nfcc_runtime::capture::Injector;
use nfcc_testbeds::netfilter::{Path, Reference};
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
/// With `fragments`, one packet in eight is a first fragment and one in eight a later one.
fn packet(i: u32, pools: &Pools, mac: &str, fragments: bool, rng: &mut Rng) -> String {
    if !pools.templates.is_empty() && rng.below(2) == 0 {
        let t = &pools.templates[rng.below(pools.templates.len())];
        return from_template(i, t, pools, mac, fragments, rng);
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
    from_template(i, &t, pools, mac, fragments, rng)
}

/// A packet meeting template `t`'s conditions, random elsewhere.
fn from_template(
    i: u32,
    t: &nfcc_import::iptables::Template,
    pools: &Pools,
    mac: &str,
    fragments: bool,
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
    let tag = format!("raw(0x4e464343{i:08x})");
    let frag = if fragments { rng.below(8) } else { 8 };
    if frag == 0 {
        // A later fragment: no transport header, only the tag after the IP header(s).
        let (offset, more) = (1 + rng.below(185), rng.below(2));
        let ip = if v6 {
            format!(
                "ipv6(src={src}, dst={dst}) / ipv6ext(kind=frag, offset={offset}, more={more}, nexthdr={proto})"
            )
        } else {
            format!("ipv4(src={src}, dst={dst}, proto={proto}, frag_offset={offset}, mf={more})")
        };
        return format!("eth(dst={mac}) / {ip} / {tag}");
    }
    let ip = match (v6, frag == 1) {
        (true, false) => format!("ipv6(src={src}, dst={dst})"),
        (true, true) => format!("ipv6(src={src}, dst={dst}) / ipv6ext(kind=frag, more=1)"),
        (false, false) => format!("ipv4(src={src}, dst={dst})"),
        (false, true) => format!("ipv4(src={src}, dst={dst}, mf=1)"),
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
            return format!("eth(dst={mac}) / {ip} / {tag}");
        }
    };
    format!("eth(dst={mac}) / {ip}{l4} / {tag}")
}

/// The tag of a delivered packet (the last 8 bytes: `NFCC` and the index).
fn tag(data: &[u8]) -> Option<u32> {
    let t = data.get(data.len().checked_sub(8)?..)?;
    (t[..4] == *b"NFCC").then(|| u32::from_be_bytes([t[4], t[5], t[6], t[7]]))
}

fn verdict_name(t: &Terminal) -> &'static str {
    match t {
        Terminal::Pass => "accept",
        _ => "drop",
    }
}

/// The original ruleset, as the kernel's own tools load it (the testbeds' netfilter
/// reference restores it).
pub use nfcc_testbeds::netfilter::Ruleset as Original;

/// How packets must travel through netfilter to meet a chain of `traversal` (named `chain`).
fn path_of<'c>(traversal: &Traversal, chain: &'c str) -> Result<Path<'c>, DriverError> {
    Ok(match traversal {
        Traversal::Input | Traversal::Prerouting => Path::Input,
        Traversal::Forward => Path::Forward,
        Traversal::Jumped => Path::Jump { chain },
        Traversal::Output => {
            return Err(DriverError::Input(format!(
                "--verify: chain {chain} judges packets this host sends, which never arrive where \
                 a policy is attached; verification covers input, prerouting and forward chains \
                 and chains they jump to"
            )))
        }
    })
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
            let lit = packet(i, family, "02:00:00:00:00:02", false, &mut rng);
            nfcc_dsl::testing::frame_from_literal(&lit)
                .map_err(|e| DriverError::Failed(format!("generated `{lit}`: {e}")))
        })
        .collect()
}

/// Holds the imported `policy` (from `nf`) to `original` restored into netfilter, with `n`
/// packets sent so that they meet chain `chain` where `traversal` says netfilter runs it;
/// `iface` is the interface name `-i`/`iifname` rules were judged against.
pub fn verify(
    original: &Original<'_>,
    (chain, traversal): (&str, &Traversal),
    nf: &str,
    policy: &str,
    iface: Option<&str>,
    n: u64,
) -> Result<Verified, DriverError> {
    let path = path_of(traversal, chain)?;
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
    let pools = pools_of(original)?;
    let protos: Vec<u8> = pools
        .iter()
        .flat_map(|p| p.protos.iter().copied())
        .collect();
    let reference = Reference::build(&tb, original, path, iface, &protos).map_err(|e| {
        env(format!(
            "restoring the original in the verification namespace: {e}"
        ))
    })?;
    let rx_mac = reference.rx_mac.clone();
    // Netfilter sees fragments one by one only on the forward path (INPUT sees datagrams
    // after reassembly).
    let fragments = path == Path::Forward;
    let drain = |quiet: u64, seen: &mut HashSet<u32>| -> Result<(), DriverError> {
        reference
            .drain(Duration::from_millis(quiet), &mut |x| {
                seen.extend(tag(x));
            })
            .map_err(env)
    };
    let injector = Injector::open(&tb.tx).map_err(env)?;
    let mut rng = Rng(0x6e66_6363_7665_7269);
    let mut out = Verified::default();
    let meta = nfcc_dsl::eval::Meta::default();
    let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen: HashSet<u32> = HashSet::new();
    for i in 0..n as u32 {
        let family = &pools[rng.below(pools.len())];
        let lit = packet(i, family, &rx_mac, fragments, &mut rng);
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
