//! `balance`: the backend a flow's key picks from its pool's Maglev table, and what the packet
//! becomes for it — its destination rewritten, or (with `encap`) wrapped in an outer header
//! towards the backend.
//!
//! Encapsulation, as the compiler must do it (the choices the language reference leaves):
//! the outer header has the pool's family, which must be the packet's (else the packet passes
//! untouched and the rule's later actions do not run, as when `via fib` finds no route); the
//! Ethernet header (with any VLAN tags) stays in front, the packet from its IP header on
//! follows the outer headers unchanged. Outer IPv4: version 4, IHL 5, the inner TOS, the inner
//! length plus the overhead, id 0, no flags, TTL 64, protocol 4 (IP-in-IP) or 17 (GUE), a
//! fresh header checksum. Outer IPv6: the inner traffic class, flow label 0, next header 41 or
//! 17, hop limit 64. The source is `from`, or the packet's own destination (the VIP). GUE is
//! variant 1 (no GUE header): UDP from port `0xC000 | (hash & 0x3fff)` (the key's hash, so a
//! backend's receive-side scaling spreads flows) to the given port, checksum 0 (RFC 6935 allows
//! it for tunnels over IPv6; Linux's fou accepts it). The inner length is the IPv4 total length
//! or 40 plus the IPv6 payload length. On tc, the outer headers go after the 14-byte MAC
//! header the kernel knows, so a frame with VLAN tags in its bytes passes untouched.

use super::{packet_key, rewrite, Meta, State, MAGLEV_SIZE};
use crate::checked::*;
use crate::packet::Headers;
use std::collections::HashMap;

/// One backend slot of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSlot {
    /// The backend's address.
    pub addr: Scalar,
    /// Its Maglev weight.
    pub weight: u32,
    /// How many backends the slot has held (1 for a declared one): a flow remembered for
    /// an earlier incarnation of the slot is not this backend's.
    pub incarnation: u32,
    /// Whether the slot holds a backend now.
    pub live: bool,
}

/// Why `nfcc pool add|del` cannot change a pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolChangeError {
    /// The pool is not declared `dynamic`.
    #[error("pool `{0}` is not dynamic; declare it `pool {0}: dynamic = {{ ... }}`")]
    NotDynamic(String),
    /// The address is of the other family.
    #[error("{addr} is not of pool `{pool}`'s family")]
    Family {
        /// The pool.
        pool: String,
        /// The address, as written.
        addr: String,
    },
    /// Every slot holds a backend.
    #[error("pool `{pool}` is full ({capacity} backends)")]
    Full {
        /// The pool.
        pool: String,
        /// Its capacity.
        capacity: u32,
    },
    /// `del` of an address the pool does not hold.
    #[error("pool `{pool}` has no backend {addr}")]
    Absent {
        /// The pool.
        pool: String,
        /// The address, as written.
        addr: String,
    },
}

/// The slots of a pool as declared: its backends in order, then free slots up to its capacity.
pub(super) fn initial_slots(p: &Pool) -> Vec<PoolSlot> {
    let family = p.backends.first().map_or(Family::V4, |b| b.0.family);
    let mut slots: Vec<PoolSlot> = p
        .backends
        .iter()
        .map(|(addr, weight)| PoolSlot {
            addr: *addr,
            weight: *weight,
            incarnation: 1,
            live: true,
        })
        .collect();
    slots.resize(
        (p.capacity as usize).max(slots.len()),
        PoolSlot {
            addr: Scalar { family, bits: 0 },
            weight: 0,
            incarnation: 0,
            live: false,
        },
    );
    slots
}

/// The Maglev table of a pool's live slots, as slot indices.
fn slot_table(slots: &[PoolSlot]) -> Vec<u32> {
    let live: Vec<(usize, (Scalar, u32))> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.live)
        .map(|(i, s)| (i, (s.addr, s.weight)))
        .collect();
    let backends: Vec<(Scalar, u32)> = live.iter().map(|(_, b)| *b).collect();
    maglev_table(&backends)
        .into_iter()
        .map(|i| live[i as usize].0 as u32)
        .collect()
}

impl State {
    /// `nfcc pool add`: puts `addr` with `weight` into the lowest free slot of a dynamic pool
    /// (a new incarnation of that slot), or changes the weight of a backend it holds.
    pub fn pool_add(
        &mut self,
        policy: &Policy,
        pool: PoolId,
        addr: Scalar,
        weight: u32,
    ) -> Result<(), PoolChangeError> {
        let p = &policy.pools[pool.index()];
        let slots = self.check_change(policy, pool, addr)?;
        if let Some(s) = slots.iter_mut().find(|s| s.live && s.addr == addr) {
            s.weight = weight;
        } else {
            let Some(s) = slots.iter_mut().find(|s| !s.live) else {
                return Err(PoolChangeError::Full {
                    pool: p.name.clone(),
                    capacity: p.capacity,
                });
            };
            *s = PoolSlot {
                addr,
                weight,
                incarnation: s.incarnation + 1,
                live: true,
            };
        }
        self.maglev.remove(&pool);
        Ok(())
    }

    /// `nfcc pool del`: frees the slot of `addr`; flows remembered on it move.
    pub fn pool_del(
        &mut self,
        policy: &Policy,
        pool: PoolId,
        addr: Scalar,
    ) -> Result<(), PoolChangeError> {
        let p = &policy.pools[pool.index()];
        let slots = self.check_change(policy, pool, addr)?;
        let Some(s) = slots.iter_mut().find(|s| s.live && s.addr == addr) else {
            return Err(PoolChangeError::Absent {
                pool: p.name.clone(),
                addr: addr.to_string(),
            });
        };
        s.live = false;
        self.maglev.remove(&pool);
        Ok(())
    }

    fn check_change(
        &mut self,
        policy: &Policy,
        pool: PoolId,
        addr: Scalar,
    ) -> Result<&mut Vec<PoolSlot>, PoolChangeError> {
        let p = &policy.pools[pool.index()];
        if !p.dynamic {
            return Err(PoolChangeError::NotDynamic(p.name.clone()));
        }
        let slots = &mut self.pools[pool.index()];
        if slots.first().is_some_and(|s| s.addr.family != addr.family) {
            return Err(PoolChangeError::Family {
                pool: p.name.clone(),
                addr: addr.to_string(),
            });
        }
        Ok(slots)
    }
}

/// A `sticky N` flow table: key bytes to (slot, incarnation), least recently used first out.
#[derive(Clone, Debug, Default)]
pub(super) struct FlowTable {
    flows: HashMap<Vec<u8>, (u32, u32, u64)>,
    tick: u64,
}

impl FlowTable {
    fn get(&mut self, key: &[u8]) -> Option<(u32, u32)> {
        self.tick += 1;
        let tick = self.tick;
        self.flows.get_mut(key).map(|f| {
            f.2 = tick;
            (f.0, f.1)
        })
    }

    fn put(&mut self, key: Vec<u8>, slot: u32, incarnation: u32, capacity: u32) {
        self.tick += 1;
        if !self.flows.contains_key(&key) && self.flows.len() >= capacity as usize {
            if let Some(oldest) = self
                .flows
                .iter()
                .min_by_key(|f| f.1 .2)
                .map(|f| f.0.clone())
            {
                self.flows.remove(&oldest);
            }
        }
        self.flows.insert(key, (slot, incarnation, self.tick));
    }
}

/// One `balance` action, resolved.
pub(super) struct Balance<'a> {
    pub(super) pool: PoolId,
    pub(super) by: &'a [Field],
    pub(super) via_fib: bool,
    pub(super) encap: Option<Encap>,
    /// The flow table's identity and size.
    pub(super) sticky: Option<((Option<u32>, usize), u32)>,
}

impl Balance<'_> {
    /// Applies the action to `out`; returns the verdict that replaces the rule's when the
    /// packet passes untouched instead.
    pub(super) fn apply(
        &self,
        policy: &Policy,
        state: &mut State,
        meta: &Meta,
        h: &Headers,
        out: &mut Vec<u8>,
    ) -> Option<Terminal> {
        let slots = &state.pools[self.pool.index()];
        let table = state
            .maglev
            .entry(self.pool)
            .or_insert_with(|| slot_table(slots));
        let key = packet_key(h, meta, self.by);
        let hash = fnv1a(&key);
        let picked = table.get(hash as usize % MAGLEV_SIZE).copied();
        let dynamic = policy.pools[self.pool.index()].dynamic;
        let chosen = match self.sticky {
            // A static pool keeps every flow on its backend: a flow table changes nothing.
            Some((id, capacity)) if dynamic => {
                let flows = state.sticky.entry(id).or_default();
                let remembered = flows.get(&key).filter(|(s, inc)| {
                    slots
                        .get(*s as usize)
                        .is_some_and(|b| b.live && b.incarnation == *inc)
                });
                let chosen = remembered.map(|(s, _)| s).or(picked);
                if let Some(s) = chosen {
                    flows.put(key, s, slots[s as usize].incarnation, capacity);
                }
                chosen
            }
            _ => picked,
        };
        // An empty dynamic pool: the packet passes untouched.
        let Some(backend) = chosen.and_then(|s| slots.get(s as usize)) else {
            return dynamic.then_some(Terminal::Pass);
        };
        let dst = backend.addr;
        let l3 = match self.encap {
            None => None,
            Some(_) => {
                let fits = match dst.family {
                    Family::V4 => h.ipv4.is_some(),
                    _ => h.ipv6.is_some(),
                };
                let l3 = h.l3_offset.filter(|_| fits);
                match l3 {
                    Some(l3) if !(policy.hook.is_tc() && l3 != 14) => Some(l3),
                    _ => return Some(Terminal::Pass),
                }
            }
        };
        // Without a route the packet goes to the stack untouched, as the kernel program
        // does when `bpf_fib_lookup` fails: look the route up before changing anything.
        let route = if self.via_fib {
            match state.fib.get(&dst.bits) {
                Some(r) => Some(*r),
                None => return Some(Terminal::Pass),
            }
        } else {
            None
        };
        match (self.encap, l3) {
            (Some(e), Some(l3)) => *out = encapsulate(out, l3, e, dst, hash),
            _ => rewrite(out, h, Field::IpDst, dst),
        }
        if let (Some(route), true) = (route, out.len() >= 12) {
            out[0..6].copy_from_slice(&route.dmac);
            out[6..12].copy_from_slice(&route.smac);
        }
        None
    }
}

/// The frame with outer headers towards `dst` inserted before its IP header at `l3` (whose
/// family is `dst`'s).
fn encapsulate(frame: &[u8], l3: usize, e: Encap, dst: Scalar, hash: u32) -> Vec<u8> {
    let ip = &frame[l3..];
    let v6 = dst.family == Family::V6;
    let be16 = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    let (tos, inner_len) = if v6 {
        ((ip[0] << 4) | (ip[1] >> 4), 40 + usize::from(be16(4)))
    } else {
        (ip[1], usize::from(be16(2)))
    };
    let (proto, udp) = match e.kind {
        EncapKind::Ipip => (if v6 { 41 } else { 4 }, None),
        EncapKind::Gue(port) => (17, Some(port)),
    };
    let total = inner_len + e.overhead(v6);
    // The source: `from`, else the packet's own destination.
    let src = match e.from {
        Some(a) => a.bits,
        None if v6 => u128::from_be_bytes(ip[24..40].try_into().unwrap_or([0; 16])),
        None => u128::from(u32::from_be_bytes(ip[16..20].try_into().unwrap_or([0; 4]))),
    };
    let mut outer = Vec::with_capacity(48);
    if v6 {
        let word0 = (6u32 << 28) | (u32::from(tos) << 20);
        outer.extend_from_slice(&word0.to_be_bytes());
        outer.extend_from_slice(&((total - 40) as u16).to_be_bytes());
        outer.extend_from_slice(&[proto, 64]);
        outer.extend_from_slice(&src.to_be_bytes());
        outer.extend_from_slice(&dst.bits.to_be_bytes());
    } else {
        outer.extend_from_slice(&[0x45, tos]);
        outer.extend_from_slice(&(total as u16).to_be_bytes());
        outer.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
        outer.extend_from_slice(&(src as u32).to_be_bytes());
        outer.extend_from_slice(&(dst.bits as u32).to_be_bytes());
        let csum = ipv4_checksum(&outer);
        outer[10..12].copy_from_slice(&csum.to_be_bytes());
    }
    if let Some(port) = udp {
        let ip_len = if v6 { 40 } else { 20 };
        let sport = 0xc000 | (hash as u16 & 0x3fff);
        outer.extend_from_slice(&sport.to_be_bytes());
        outer.extend_from_slice(&port.to_be_bytes());
        outer.extend_from_slice(&((total - ip_len) as u16).to_be_bytes());
        outer.extend_from_slice(&[0, 0]);
    }
    let mut out = Vec::with_capacity(frame.len() + outer.len());
    out.extend_from_slice(&frame[..l3]);
    out.extend_from_slice(&outer);
    out.extend_from_slice(ip);
    out
}

/// The IPv4 header checksum of `hdr` (whose checksum field is zero).
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// FNV-1a, 32 bits: the hash of `balance` keys and of Maglev's permutations.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Fills a Maglev lookup table of [`MAGLEV_SIZE`] slots with backend indices. Each backend's
/// permutation comes from the FNV-1a hash of its address bytes (offset) and of the same bytes
/// followed by 0xff (skip); a backend of weight W takes W turns per round. Removing a backend
/// moves only the slots it held, plus a small fraction, which is what consistent hashing asks.
pub fn maglev_table(backends: &[(Scalar, u32)]) -> Vec<u32> {
    let m = MAGLEV_SIZE as u64;
    let mut table = vec![u32::MAX; MAGLEV_SIZE];
    if backends.is_empty() {
        return vec![];
    }
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|(addr, _)| {
            let bytes = addr.bits.to_be_bytes();
            let offset = u64::from(fnv1a(&bytes)) % m;
            let mut b2 = bytes.to_vec();
            b2.push(0xff);
            let skip = u64::from(fnv1a(&b2)) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut filled = 0usize;
    'outer: loop {
        for (i, (_, w)) in backends.iter().enumerate() {
            for _ in 0..*w {
                let (offset, skip) = perms[i];
                let mut c = (offset + next[i] * skip) % m;
                while table[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                table[c as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == MAGLEV_SIZE {
                    break 'outer;
                }
            }
        }
    }
    table
}
