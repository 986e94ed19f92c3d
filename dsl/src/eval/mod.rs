//! The reference evaluator: what a checked policy does to one packet, written straight from
//! the semantics of the language reference and independent of any compiler code.
//!
//! It is the oracle of differential testing: the emulator and the kernel run the compiled
//! program, and every packet's verdict, deciding rule, output bytes and counter values must
//! equal what [`eval`] says. Where the reference leaves a choice, the choice is made here and
//! documented, and the compiler follows it:
//!
//! - Limiters are token buckets kept in integer nano-tokens: a new key starts with `burst`
//!   tokens; each packet first adds `rate * elapsed_ns` nano-tokens (capped at `burst`), then
//!   takes one whole token (10^9 nano-tokens) if there is one, else `over` is true.
//! - Counter and limiter keys concatenate the key fields' big-endian bytes
//!   ([`Field::key_width`]); an absent field contributes zero bytes of its width; `ip.*`
//!   addresses take 16 bytes, IPv4 as `::ffff:a.b.c.d`.
//! - Rewrites update checksums incrementally (RFC 1624, eqn. 3, as the kernel's
//!   `csum_replace` helpers do); a UDP checksum of zero (none) is left alone and a result of
//!   zero is written as 0xFFFF. A rewrite of an absent header, or of `ip.*` with a value of the
//!   other family, does nothing.
//! - `sample N` takes the 1st, (N+1)th, ... packet reaching that action (the kernel samples at
//!   random; the evaluator is deterministic so tests are).
//! - `balance` picks a backend from a Maglev table of [`MAGLEV_SIZE`] slots filled by
//!   [`maglev_table`], indexed by the FNV-1a hash of the key bytes of the `by` fields. With
//!   `via fib`, the MACs come from the FIB stub in [`State::fib`]; without a route the packet
//!   is passed to the stack unchanged (as XDP programs do when `bpf_fib_lookup` fails).

use crate::ast::CmpOp;
use crate::checked::*;
use crate::packet::{parse_frame, Headers};
use std::collections::HashMap;

mod balance;
mod rewrite;

pub use balance::{fnv1a, maglev_table, PoolChangeError, PoolSlot};
use rewrite::rewrite;

/// Slots in a pool's Maglev lookup table (a prime, as Maglev requires).
pub const MAGLEV_SIZE: usize = 65537;

/// Nano-tokens per token.
const NANO: u128 = 1_000_000_000;

/// Per-packet metadata the packet bytes do not carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `pkt.ifindex`: the interface the packet arrived on (xdp, tc ingress) or leaves by.
    pub ifindex: u32,
    /// `pkt.rxq`: the receive queue (xdp).
    pub rxq: u32,
    /// `pkt.mark`: the skb mark (tc).
    pub mark: u32,
}

/// A token bucket of a limiter key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left, in nano-tokens.
    pub nano_tokens: u128,
    /// When the bucket was last refilled (virtual clock, ns).
    pub last_ns: u64,
}

/// A route of the FIB stub used by `balance ... via fib`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibEntry {
    /// The source MAC to write.
    pub smac: [u8; 6],
    /// The destination MAC to write.
    pub dmac: [u8; 6],
}

/// A sampled packet, as `nfcc watch` would print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleRecord {
    /// The rule whose action sampled it.
    pub rule: RuleRef,
    /// The frame's length.
    pub len: usize,
    /// Its first 128 bytes.
    pub head: Vec<u8>,
}

/// Everything a policy remembers between packets, plus the clock.
#[derive(Clone, Debug)]
pub struct State {
    /// Current contents of each set (dynamic sets change with `nfcc set`).
    pub sets: Vec<Vec<Item>>,
    /// Per counter: key bytes to (packets, bytes).
    pub counters: Vec<HashMap<Vec<u8>, (u64, u64)>>,
    /// Per limiter: key bytes to bucket.
    pub limiters: Vec<HashMap<Vec<u8>, Bucket>>,
    /// Per rule: (packets, bytes) of packets it decided.
    pub rule_stats: Vec<(u64, u64)>,
    /// (packets, bytes) decided by the default.
    pub default_stats: (u64, u64),
    /// The virtual clock in nanoseconds.
    pub now_ns: u64,
    /// Routes for `via fib`, by destination address (IPv4 as its 32-bit number).
    pub fib: HashMap<u128, FibEntry>,
    /// Sampled packets, oldest first.
    pub samples: Vec<SampleRecord>,
    /// Per (rule, action index) of `sample N`: packets seen.
    sample_seen: HashMap<(Option<u32>, usize), u64>,
    /// Each pool's backends by slot (dynamic pools change with `nfcc pool`).
    pub pools: Vec<Vec<PoolSlot>>,
    /// Maglev tables of slot indices, built on first use and dropped when a pool changes.
    maglev: HashMap<PoolId, Vec<u32>>,
    /// The flow tables of `balance ... sticky N`, per (rule, action index).
    sticky: HashMap<(Option<u32>, usize), balance::FlowTable>,
}

impl State {
    /// A fresh state: sets hold their declared contents, counters and buckets are empty, the
    /// clock is at 1 s (so that "the beginning of time" is not a special case).
    pub fn new(policy: &Policy) -> State {
        State {
            sets: policy.sets.iter().map(|s| s.items.clone()).collect(),
            counters: vec![HashMap::new(); policy.counters.len()],
            limiters: vec![HashMap::new(); policy.limiters.len()],
            rule_stats: vec![(0, 0); policy.rules.len()],
            default_stats: (0, 0),
            now_ns: 1_000_000_000,
            fib: HashMap::new(),
            samples: Vec::new(),
            sample_seen: HashMap::new(),
            pools: policy.pools.iter().map(balance::initial_slots).collect(),
            maglev: HashMap::new(),
            sticky: HashMap::new(),
        }
    }

    /// Reads a counter by its key values (one per key field).
    pub fn counter(&self, policy: &Policy, id: CounterId, key: &[Scalar]) -> (u64, u64) {
        let fields = &policy.counters[id.index()].key;
        let bytes = key_of_scalars(fields, key);
        self.counters[id.index()]
            .get(&bytes)
            .copied()
            .unwrap_or((0, 0))
    }
}

/// The result of evaluating one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What happens to the packet.
    pub verdict: Terminal,
    /// Which rule decided it.
    pub rule: RuleRef,
    /// The packet as emitted (rewrites applied); for drop and abort, as it was when dropped.
    pub packet: Vec<u8>,
    /// The skb mark set by `mark`, if any.
    pub mark: Option<u32>,
}

/// Key bytes for explicit key values (as `expect counter NAME[KEY]` writes them).
pub fn key_of_scalars(fields: &[Field], values: &[Scalar]) -> Vec<u8> {
    let mut out = Vec::new();
    for (f, v) in fields.iter().zip(values) {
        out.extend(v.key_bytes(f.key_width()));
    }
    out
}

/// The value of a field in a parsed frame, `None` when its header is absent.
pub fn field_value(h: &Headers, meta: &Meta, f: Field) -> Option<Scalar> {
    use Field::*;
    let int = |v: u128| Some(Scalar::int(v));
    let v4 = |a: std::net::Ipv4Addr| {
        Some(Scalar {
            family: Family::V4,
            bits: u128::from(u32::from(a)),
        })
    };
    let v6 = |a: std::net::Ipv6Addr| {
        Some(Scalar {
            family: Family::V6,
            bits: u128::from(a),
        })
    };
    let mac = |m: [u8; 6]| {
        let mut b = [0u8; 16];
        b[10..].copy_from_slice(&m);
        Some(Scalar {
            family: Family::Mac,
            bits: u128::from_be_bytes(b),
        })
    };
    let l4port = |src: bool| {
        if let Some(t) = &h.tcp {
            return int(u128::from(if src { t.sport } else { t.dport }));
        }
        if let Some(u) = &h.udp {
            return int(u128::from(if src { u.sport } else { u.dport }));
        }
        None
    };
    match f {
        PktLen => int(h.len as u128),
        PktIfindex => int(meta.ifindex.into()),
        PktRxq => int(meta.rxq.into()),
        PktMark => int(meta.mark.into()),
        EthSrc => mac(h.eth.as_ref()?.src),
        EthDst => mac(h.eth.as_ref()?.dst),
        EthType => int(h.eth.as_ref()?.ethertype.into()),
        VlanId => int(h.vlan.as_ref()?.id.into()),
        VlanPcp => int(h.vlan.as_ref()?.pcp.into()),
        VlanInnerId => int(h.vlan_inner.as_ref()?.id.into()),
        Ipv4Src => v4(h.ipv4.as_ref()?.src),
        Ipv4Dst => v4(h.ipv4.as_ref()?.dst),
        Ipv4Proto => int(h.ipv4.as_ref()?.proto.into()),
        Ipv4Ttl => int(h.ipv4.as_ref()?.ttl.into()),
        Ipv4Dscp => int(h.ipv4.as_ref()?.dscp.into()),
        Ipv4Ecn => int(h.ipv4.as_ref()?.ecn.into()),
        Ipv4Len => int(h.ipv4.as_ref()?.len.into()),
        Ipv4Id => int(h.ipv4.as_ref()?.id.into()),
        Ipv4Ihl => int(h.ipv4.as_ref()?.ihl.into()),
        Ipv6Src => v6(h.ipv6.as_ref()?.src),
        Ipv6Dst => v6(h.ipv6.as_ref()?.dst),
        Ipv6Nexthdr => int(h.ipv6.as_ref()?.nexthdr.into()),
        Ipv6Hoplimit => int(h.ipv6.as_ref()?.hoplimit.into()),
        Ipv6Dscp => int(h.ipv6.as_ref()?.dscp.into()),
        Ipv6Flowlabel => int(h.ipv6.as_ref()?.flowlabel.into()),
        Ipv6Len => int(h.ipv6.as_ref()?.len.into()),
        IpSrc => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => v4(ip.src),
            (_, Some(ip)) => v6(ip.src),
            _ => None,
        },
        IpDst => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => v4(ip.dst),
            (_, Some(ip)) => v6(ip.dst),
            _ => None,
        },
        IpProto => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => int(ip.proto.into()),
            (_, Some(ip)) => int(ip.nexthdr.into()),
            _ => None,
        },
        IpTtl => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => int(ip.ttl.into()),
            (_, Some(ip)) => int(ip.hoplimit.into()),
            _ => None,
        },
        IpDscp => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => int(ip.dscp.into()),
            (_, Some(ip)) => int(ip.dscp.into()),
            _ => None,
        },
        // IPv6: the last fragment header walked (the walk stops after a non-first one); 0
        // when there is none, as for an unfragmented IPv4 packet.
        IpFragOffset => match (&h.ipv4, &h.ipv6) {
            (Some(ip), _) => int(ip.frag_offset.into()),
            (_, Some(ip)) => int(ip
                .exts
                .iter()
                .rev()
                .find(|x| x.kind == 44)
                .map_or(0, |x| x.frag_offset)
                .into()),
            _ => None,
        },
        TcpSport => int(h.tcp.as_ref()?.sport.into()),
        TcpDport => int(h.tcp.as_ref()?.dport.into()),
        TcpFlags => int(h.tcp.as_ref()?.flags.into()),
        TcpWindow => int(h.tcp.as_ref()?.window.into()),
        TcpSeq => int(h.tcp.as_ref()?.seq.into()),
        TcpAck => int(h.tcp.as_ref()?.ack.into()),
        UdpSport => int(h.udp.as_ref()?.sport.into()),
        UdpDport => int(h.udp.as_ref()?.dport.into()),
        UdpLen => int(h.udp.as_ref()?.len.into()),
        L4Sport => l4port(true),
        L4Dport => l4port(false),
        IcmpType => int(h.icmp.as_ref()?.icmp_type.into()),
        IcmpCode => int(h.icmp.as_ref()?.code.into()),
        Icmpv6Type => int(h.icmpv6.as_ref()?.icmp_type.into()),
        Icmpv6Code => int(h.icmpv6.as_ref()?.code.into()),
    }
}

/// Whether a header is present.
pub fn present(h: &Headers, hdr: Header) -> bool {
    match hdr {
        Header::Eth => h.eth.is_some(),
        Header::Vlan => h.vlan.is_some(),
        Header::Arp => h.arp.is_some(),
        Header::Ipv4 => h.ipv4.is_some(),
        Header::Ipv6 => h.ipv6.is_some(),
        Header::Ip => h.ipv4.is_some() || h.ipv6.is_some(),
        Header::Tcp => h.tcp.is_some(),
        Header::Udp => h.udp.is_some(),
        Header::Icmp => h.icmp.is_some(),
        Header::Icmpv6 => h.icmpv6.is_some(),
        Header::L4 => h.tcp.is_some() || h.udp.is_some(),
        Header::Frag => h.frag,
        Header::Pkt => true,
    }
}

/// The key bytes of a packet for key fields `fields` (absent fields are zero).
pub fn packet_key(h: &Headers, meta: &Meta, fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let w = f.key_width();
        match field_value(h, meta, *f) {
            Some(v) => out.extend(v.key_bytes(w)),
            None => out.extend(std::iter::repeat_n(0u8, w)),
        }
    }
    out
}

struct Cx<'a> {
    policy: &'a Policy,
    state: &'a mut State,
    meta: &'a Meta,
    frame: &'a [u8],
    h: &'a Headers,
    /// Entry actions of the tables hit so far, for rules that take their terminal from one.
    table_hits: Vec<(TableId, Terminal)>,
}

impl Cx<'_> {
    fn expr(&mut self, e: &Expr) -> bool {
        match e {
            Expr::Const(b) => *b,
            Expr::Atom(a, _) => self.atom(a),
            Expr::Not(inner) => !self.expr(inner),
            Expr::And(parts) => parts.iter().all(|p| self.expr(p)),
            Expr::Or(parts) => parts.iter().any(|p| self.expr(p)),
        }
    }

    fn atom(&mut self, a: &Atom) -> bool {
        match a {
            Atom::Present(hdr) => present(self.h, *hdr),
            Atom::Cmp {
                field,
                mask,
                op,
                value,
            } => {
                let Some(v) = field_value(self.h, self.meta, *field) else {
                    return false;
                };
                if v.family != value.family {
                    return false;
                }
                let x = mask.map_or(v.bits, |m| v.bits & m);
                let y = value.bits;
                match op {
                    CmpOp::Eq => x == y,
                    CmpOp::Ne => x != y,
                    CmpOp::Lt => x < y,
                    CmpOp::Le => x <= y,
                    CmpOp::Gt => x > y,
                    CmpOp::Ge => x >= y,
                }
            }
            Atom::InList { field, mask, items } => {
                let Some(v) = field_value(self.h, self.meta, *field) else {
                    return false;
                };
                let x = mask.map_or(v.bits, |m| v.bits & m);
                items.iter().any(|i| i.contains(v.family, x))
            }
            Atom::InSet { field, set } => {
                let Some(v) = field_value(self.h, self.meta, *field) else {
                    return false;
                };
                self.state.sets[set.index()]
                    .iter()
                    .any(|i| i.contains(v.family, v.bits))
            }
            Atom::Has { field, bits } => {
                field_value(self.h, self.meta, *field).is_some_and(|v| v.bits & bits == *bits)
            }
            Atom::Over(id) => self.over(*id),
            Atom::Match(id) => {
                let t = &self.policy.tables[id.index()];
                let mut key = Vec::with_capacity(t.key.len());
                for f in &t.key {
                    match field_value(self.h, self.meta, *f) {
                        Some(v) => key.push(v),
                        None => return false,
                    }
                }
                match t.entries.iter().find(|(k, _)| *k == key) {
                    Some((_, action)) => {
                        self.table_hits.push((*id, action.clone()));
                        true
                    }
                    None => false,
                }
            }
            Atom::Payload {
                start,
                end,
                bytes,
                negate,
            } => {
                let Some(po) = self.h.payload_offset else {
                    return false;
                };
                let (s, e) = (po + usize::from(*start), po + usize::from(*end));
                match self.frame.get(s..e) {
                    Some(got) => (got == bytes.as_slice()) != *negate,
                    None => false,
                }
            }
        }
    }

    fn over(&mut self, id: LimiterId) -> bool {
        let l = &self.policy.limiters[id.index()];
        let key = packet_key(self.h, self.meta, &l.key);
        let now = self.state.now_ns;
        let cap = u128::from(l.burst) * NANO;
        let b = self.state.limiters[id.index()]
            .entry(key)
            .or_insert(Bucket {
                nano_tokens: cap,
                last_ns: now,
            });
        let elapsed = u128::from(now.saturating_sub(b.last_ns));
        b.nano_tokens = (b.nano_tokens + u128::from(l.rate_per_sec) * elapsed).min(cap);
        b.last_ns = now;
        if b.nano_tokens >= NANO {
            b.nano_tokens -= NANO;
            false
        } else {
            true
        }
    }
}

/// Evaluates one packet: finds the first rule whose predicate holds (or the default), runs its
/// actions, and returns the verdict with the emitted packet. Updates `state` (counters,
/// buckets, statistics, samples); does not advance the clock.
pub fn eval(policy: &Policy, state: &mut State, meta: &Meta, frame: &[u8]) -> Outcome {
    let h = parse_frame(frame);
    let mut decided = None;
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut cx = Cx {
            policy,
            state,
            meta,
            frame,
            h: &h,
            table_hits: Vec::new(),
        };
        if cx.expr(&rule.expr) {
            let terminal = match &rule.terminal {
                Some(t) => t.clone(),
                // The rule's own table decides, even when its predicate also matched others.
                None => cx
                    .table_hits
                    .iter()
                    .find(|(t, _)| Some(*t) == rule.table)
                    .map_or(Terminal::Pass, |(_, a)| a.clone()),
            };
            decided = Some((RuleRef::Rule(RuleId(i as u32)), &rule.actions, terminal));
            break;
        }
    }
    let (rule, actions, terminal) = decided.unwrap_or((
        RuleRef::Default,
        &policy.default.actions,
        policy.default.terminal.clone(),
    ));
    let len = frame.len() as u64;
    match rule {
        RuleRef::Rule(id) => {
            let s = &mut state.rule_stats[id.index()];
            s.0 += 1;
            s.1 += len;
        }
        RuleRef::Default => {
            state.default_stats.0 += 1;
            state.default_stats.1 += len;
        }
    }
    let mut out = frame.to_vec();
    let mut mark = None;
    let mut verdict = terminal;
    // The rule's identity in per-action state (sample counts, flow tables).
    let rid = match rule {
        RuleRef::Rule(r) => Some(r.0),
        RuleRef::Default => None,
    };
    for (ai, a) in actions.iter().enumerate() {
        let h = parse_frame(&out);
        match a {
            Action::Count(id) => {
                let key = packet_key(&h, meta, &policy.counters[id.index()].key);
                let c = state.counters[id.index()].entry(key).or_insert((0, 0));
                c.0 += 1;
                c.1 += out.len() as u64;
            }
            Action::SetField(f, v) => rewrite(&mut out, &h, *f, *v),
            Action::DecTtl => {
                let ttl = field_value(&h, meta, Field::IpTtl).map(|s| s.bits);
                if let Some(t) = ttl.filter(|t| *t > 0) {
                    rewrite(&mut out, &h, Field::IpTtl, Scalar::int(t - 1));
                }
            }
            Action::Sample(n) => {
                let seen = state.sample_seen.entry((rid, ai)).or_insert(0);
                if seen.is_multiple_of(u64::from(*n)) {
                    state.samples.push(SampleRecord {
                        rule,
                        len: out.len(),
                        head: out[..out.len().min(128)].to_vec(),
                    });
                }
                *seen += 1;
            }
            Action::Mark(m) => mark = Some(*m),
            Action::Balance {
                pool,
                by,
                via_fib,
                encap,
                sticky,
            } => {
                let b = balance::Balance {
                    pool: *pool,
                    by,
                    via_fib: *via_fib,
                    encap: *encap,
                    sticky: sticky.map(|n| ((rid, ai), n)),
                };
                if let Some(t) = b.apply(policy, state, meta, &h, &mut out) {
                    verdict = t;
                    break;
                }
            }
        }
    }
    Outcome {
        verdict,
        rule,
        packet: out,
        mark,
    }
}
