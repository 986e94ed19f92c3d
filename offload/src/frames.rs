//! Generated packets for the split's equivalence check: random frames whose fields are drawn,
//! most of the time, from the values the policy itself mentions (addresses inside its
//! prefixes and sets, its ports, its payload strings), so that every rule gets packets that
//! match it and packets that just miss; the rest of the time, random values, odd TTLs, VLAN
//! tags, IPv4 fragments and truncations.

use nfcc_dsl::checked::{Atom, Expr, Family, Item, Policy, Scalar};
use nfcc_dsl::packet::{build, ArgValue, LayerKind, LayerSpec};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n.max(1)
    }

    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the policy mentions.
#[derive(Debug, Default)]
struct Values {
    v4: Vec<(u128, u8)>,
    v6: Vec<(u128, u8)>,
    ints: Vec<u128>,
    payloads: Vec<(u16, Vec<u8>)>,
}

fn item(v: &mut Values, i: &Item) {
    let (s, len): (Scalar, Option<u8>) = match i {
        Item::Value(s) => (*s, None),
        Item::Prefix(s, l) => (*s, Some(*l)),
        Item::Range(lo, hi) => {
            item(v, &Item::Value(*lo));
            item(v, &Item::Value(*hi));
            return;
        }
    };
    match s.family {
        Family::V4 => v.v4.push((s.bits, len.unwrap_or(32))),
        Family::V6 => v.v6.push((s.bits, len.unwrap_or(128))),
        _ => v.ints.push(s.bits),
    }
}

fn expr(v: &mut Values, p: &Policy, e: &Expr) {
    match e {
        Expr::Const(_) => {}
        Expr::Not(x) => expr(v, p, x),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| expr(v, p, x)),
        Expr::Atom(a, _) => match a {
            Atom::Cmp { value, .. } => item(v, &Item::Value(*value)),
            Atom::InList { items, .. } => items.iter().for_each(|i| item(v, i)),
            Atom::InSet { set, .. } => p.sets[set.index()].items.iter().for_each(|i| item(v, i)),
            Atom::Has { bits, .. } => v.ints.push(*bits),
            Atom::Match(t) => {
                for (key, _) in &p.tables[t.index()].entries {
                    key.iter().for_each(|s| item(v, &Item::Value(*s)));
                }
            }
            Atom::Payload { start, bytes, .. } => v.payloads.push((*start, bytes.clone())),
            _ => {}
        },
    }
}

/// The low `k` bits set.
fn low(k: u32) -> u128 {
    if k >= 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    }
}

/// An address of `bits` bits inside one of `pool`'s prefixes (or random; now and then the
/// first address past a prefix, to test its edge).
fn addr(rng: &mut Rng, pool: &[(u128, u8)], bits: u32) -> u128 {
    let random = (u128::from(rng.bits()) << 64 | u128::from(rng.bits())) & low(bits);
    if pool.is_empty() || rng.pct(25) {
        return random;
    }
    let (base, len) = pool[rng.below(pool.len() as u64) as usize];
    let host_bits = bits.saturating_sub(u32::from(len));
    let net = base & !low(host_bits);
    let edge = if rng.pct(10) && host_bits < bits {
        low(host_bits) + 1
    } else {
        0
    };
    ((net | (random & low(host_bits))).wrapping_add(edge)) & low(bits)
}

/// `n` frames for `policy` from `seed`.
pub fn generate(policy: &Policy, n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut v = Values::default();
    for r in &policy.rules {
        expr(&mut v, policy, &r.expr);
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut layers = Vec::new();
        if rng.pct(8) {
            layers.push(
                LayerSpec::new(LayerKind::Vlan)
                    .arg("id", ArgValue::Int(u128::from(rng.below(4095)))),
            );
        }
        let port = |rng: &mut Rng, v: &Values| -> u128 {
            let small: Vec<u128> = v.ints.iter().copied().filter(|x| *x <= 65535).collect();
            if !small.is_empty() && rng.pct(60) {
                small[rng.below(small.len() as u64) as usize]
            } else {
                u128::from(rng.below(65536))
            }
        };
        let v6 = rng.pct(35);
        let kind = rng.below(100);
        if kind < 4 {
            layers.push(LayerSpec::new(LayerKind::Arp));
        } else if v6 {
            let src = Ipv6Addr::from(addr(&mut rng, &v.v6, 128));
            let dst = Ipv6Addr::from(addr(&mut rng, &v.v6, 128));
            let hl = [0, 1, 2, 64, 255][rng.below(5) as usize];
            layers.push(
                LayerSpec::new(LayerKind::Ipv6)
                    .arg("src", ArgValue::Ipv6(src))
                    .arg("dst", ArgValue::Ipv6(dst))
                    .arg("hoplimit", ArgValue::Int(hl)),
            );
            if rng.pct(10) {
                layers.push(LayerSpec::new(LayerKind::Ipv6Ext).arg("kind", ArgValue::Int(0)));
            }
        } else {
            let src = Ipv4Addr::from(addr(&mut rng, &v.v4, 32) as u32);
            let dst = Ipv4Addr::from(addr(&mut rng, &v.v4, 32) as u32);
            let ttl = [0, 1, 2, 64, 255][rng.below(5) as usize];
            let mut l = LayerSpec::new(LayerKind::Ipv4)
                .arg("src", ArgValue::Ipv4(src))
                .arg("dst", ArgValue::Ipv4(dst))
                .arg("ttl", ArgValue::Int(ttl));
            if rng.pct(5) {
                l = l.arg("frag_offset", ArgValue::Int(u128::from(rng.below(100) + 1)));
            }
            layers.push(l);
        }
        if kind >= 4 {
            match rng.below(10) {
                0..=3 => layers.push(
                    LayerSpec::new(LayerKind::Udp)
                        .arg("sport", ArgValue::Int(port(&mut rng, &v)))
                        .arg("dport", ArgValue::Int(port(&mut rng, &v))),
                ),
                4..=7 => layers.push(
                    LayerSpec::new(LayerKind::Tcp)
                        .arg("sport", ArgValue::Int(port(&mut rng, &v)))
                        .arg("dport", ArgValue::Int(port(&mut rng, &v)))
                        .arg("flags", ArgValue::Int(u128::from(rng.below(256)))),
                ),
                _ => layers.push(
                    LayerSpec::new(if v6 {
                        LayerKind::Icmpv6
                    } else {
                        LayerKind::Icmp
                    })
                    .arg("type", ArgValue::Int(port(&mut rng, &v) & 0xff)),
                ),
            }
            let payload = if !v.payloads.is_empty() && rng.pct(30) {
                let (start, bytes) = &v.payloads[rng.below(v.payloads.len() as u64) as usize];
                let mut p: Vec<u8> = (0..*start).map(|_| rng.bits() as u8).collect();
                p.extend_from_slice(bytes);
                if rng.pct(30) {
                    if let Some(b) = p.last_mut() {
                        *b ^= 1;
                    }
                }
                p
            } else {
                (0..rng.below(24)).map(|_| rng.bits() as u8).collect()
            };
            layers.push(LayerSpec::new(LayerKind::Payload).arg("", ArgValue::Bytes(payload)));
        }
        let Ok(mut f) = build(&layers) else {
            continue;
        };
        if rng.pct(5) && f.len() > 14 {
            f.truncate(14 + rng.below(f.len() as u64 - 14) as usize);
        }
        out.push(f);
    }
    out
}
