//! The random frame generator: frames written as test-block literals (so a regression can
//! replay them) and built with `frame_from_literal`, over the same hosts and values as the
//! policies, so that rules match often.

use crate::fields::{bytes_lit, constant_name, string_lit, v4_text, v6_text, PAYLOADS};
use crate::generator::Gen;
use crate::rng::Rng;
use nfcc_dsl::checked::Hook;
use nfcc_dsl::testing::frame_from_literal;

/// A random packet literal (without `truncate`), using the shared value pools.
pub(crate) fn gen_frame_literal(rng: &mut Rng) -> String {
    let mut g = Gen {
        nic: false,
        rng,
        hook: Hook::Xdp,
        sets: Vec::new(),
        counters: Vec::new(),
        limiters: Vec::new(),
        tables: Vec::new(),
        pools: Vec::new(),
        decls: Vec::new(),
    };
    let mut layers: Vec<String> = Vec::new();
    let l3 = g.rng.below(100);
    let eth_type = if l3 >= 95 {
        Some(g.rng.pick(&["0x0800", "0x86dd", "0x0806", "0x1234"]))
    } else {
        None
    };
    if g.rng.chance(30) || eth_type.is_some() {
        let mut args = vec![format!("src={}", g.mac()), format!("dst={}", g.mac())];
        if let Some(t) = eth_type {
            args.push(format!("type={t}"));
        }
        layers.push(format!("eth({})", args.join(", ")));
    }
    let vlans = match g.rng.below(100) {
        0..=64 => 0,
        65..=89 => 1,
        _ => 2,
    };
    for _ in 0..vlans {
        let id = g.int_value("vlan.id", 12);
        let pcp = g.int_value("vlan.pcp", 3);
        layers.push(format!("vlan(id={id}, pcp={pcp})"));
    }
    let mut family = 0;
    match l3 {
        0..=54 => {
            family = 4;
            let mut args = vec![
                format!("src={}", v4_text(g.v4())),
                format!("dst={}", v4_text(g.v4())),
            ];
            if g.rng.chance(50) {
                args.push(format!("ttl={}", g.int_value("ipv4.ttl", 8)));
            }
            if g.rng.chance(30) {
                args.push(format!("dscp={}", g.int_value("ipv4.dscp", 6)));
                args.push(format!("ecn={}", g.rng.below(4)));
            }
            if g.rng.chance(30) {
                args.push(format!("id={}", g.int_value("ipv4.id", 16)));
            }
            if g.rng.chance(10) {
                args.push("options=0x01010101".into());
            } else if g.rng.chance(3) {
                args.push(format!("ihl={}", g.rng.pick(&[0, 3, 4])));
            }
            if g.rng.chance(10) {
                args.push(format!("frag_offset={}", g.rng.pick(&[0, 1, 10, 185])));
            }
            if g.rng.chance(5) {
                args.push("mf=1".into());
            }
            if g.rng.chance(5) {
                args.push(format!("proto={}", g.int_value("ipv4.proto", 8)));
            }
            layers.push(format!("ipv4({})", args.join(", ")));
        }
        55..=84 => {
            family = 6;
            let mut args = vec![
                format!("src={}", v6_text(g.v6())),
                format!("dst={}", v6_text(g.v6())),
            ];
            if g.rng.chance(50) {
                args.push(format!("hoplimit={}", g.int_value("ipv6.hoplimit", 8)));
            }
            if g.rng.chance(30) {
                args.push(format!("dscp={}", g.int_value("ipv6.dscp", 6)));
            }
            if g.rng.chance(40) {
                args.push(format!("flowlabel={}", g.int_value("ipv6.flowlabel", 20)));
            }
            layers.push(format!("ipv6({})", args.join(", ")));
            for _ in 0..g.rng.pick(&[0, 0, 0, 1, 2]) {
                let kind = g.rng.pick(&["hop", "routing", "dest", "frag"]);
                if kind == "frag" && g.rng.chance(40) {
                    layers.push(format!(
                        "ipv6ext(kind=frag, offset={}, more={})",
                        g.rng.pick(&[0, 1, 100]),
                        g.rng.below(2)
                    ));
                } else {
                    layers.push(format!("ipv6ext(kind={kind})"));
                }
            }
        }
        85..=89 => {
            layers.push(format!(
                "arp(op={}, spa={}, tpa={})",
                g.rng.range(1, 2),
                v4_text(g.v4()),
                v4_text(g.v4())
            ));
        }
        _ => {
            // No known L3: raw bytes after the Ethernet header (possibly announced as IP).
            let n = g.rng.below(48) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| g.rng.next() as u8).collect();
            if !bytes.is_empty() {
                layers.push(format!("raw({})", bytes_lit(&bytes)));
            }
        }
    }
    if family != 0 {
        match g.rng.below(100) {
            0..=39 => {
                let mut args = vec![
                    format!("sport={}", g.int_value("tcp.sport", 16)),
                    format!("dport={}", g.int_value("tcp.dport", 16)),
                ];
                let flags = g.int_value("tcp.flags", 8);
                args.push(format!(
                    "flags={}",
                    constant_name("tcp.flags", flags).unwrap_or_else(|| flags.to_string())
                ));
                if g.rng.chance(30) {
                    args.push(format!("window={}", g.int_value("tcp.window", 16)));
                }
                if g.rng.chance(30) {
                    args.push(format!("seq={}", g.int_value("tcp.seq", 32)));
                    args.push(format!("ack={}", g.int_value("tcp.ack", 32)));
                }
                layers.push(format!("tcp({})", args.join(", ")));
            }
            40..=74 => {
                layers.push(format!(
                    "udp(sport={}, dport={})",
                    g.int_value("udp.sport", 16),
                    g.int_value("udp.dport", 16)
                ));
            }
            75..=89 => {
                let (layer, field) = if family == 4 {
                    ("icmp", "icmp.type")
                } else {
                    ("icmpv6", "icmpv6.type")
                };
                layers.push(format!(
                    "{layer}(type={}, code={})",
                    g.int_value(field, 8),
                    g.int_value("icmp.code", 8)
                ));
            }
            _ => {}
        }
    }
    if g.rng.chance(50) {
        let p = g.rng.pick(PAYLOADS);
        let lit = if g.rng.chance(50) {
            string_lit(p)
        } else {
            bytes_lit(p)
        };
        layers.push(format!("payload({lit})"));
    }
    if layers.is_empty() {
        layers.push("eth()".into());
    }
    layers.join(" / ")
}

/// A random packet literal and the frame it builds, sometimes cut short with `truncate`.
pub(crate) fn gen_frame(rng: &mut Rng) -> (String, Vec<u8>) {
    loop {
        let lit = gen_frame_literal(rng);
        let frame = frame_from_literal(&lit)
            .unwrap_or_else(|e| panic!("generator bug: cannot build `{lit}`:\n{e}"));
        if rng.chance(10) && frame.len() > 14 {
            let n = rng.range(14, frame.len() as u64 - 1);
            let cut = format!("{lit} / truncate({n})");
            if let Ok(f) = frame_from_literal(&cut) {
                return (cut, f);
            }
            continue;
        }
        return (lit, frame);
    }
}
