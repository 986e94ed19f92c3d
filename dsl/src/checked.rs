//! The checked form of a policy: every name resolved, every value typed and range-checked,
//! every declaration in an arena addressed by a typed `u32` handle.
//!
//! This is what the reference evaluator (`crate::eval`) interprets and what the compiler lowers
//! to IR; neither ever sees an unresolved name or an out-of-range literal. The types here carry
//! no eBPF knowledge: map kinds and code shapes are the compiler's business.

use crate::ast::{CmpOp, Span};
use crate::packet::LayerSpec;
use std::fmt;

macro_rules! handle {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            /// The index into the owning arena.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

handle!(
    /// A set of a policy.
    SetId
);
handle!(
    /// A table of a policy.
    TableId
);
handle!(
    /// A counter of a policy.
    CounterId
);
handle!(
    /// A limiter of a policy.
    LimiterId
);
handle!(
    /// A pool of a policy.
    PoolId
);
handle!(
    /// A rule of a policy (its position in evaluation order).
    RuleId
);

/// Where a policy attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// XDP (driver or generic).
    Xdp,
    /// TC ingress (clsact / tcx).
    TcIngress,
    /// TC egress.
    TcEgress,
}

impl Hook {
    /// The hook as written in `.nf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::TcIngress => "tc ingress",
            Hook::TcEgress => "tc egress",
        }
    }

    /// Whether this is a TC hook.
    pub fn is_tc(self) -> bool {
        !matches!(self, Hook::Xdp)
    }
}

/// A deployment target a policy may be pinned to with `offload TARGET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The host kernel: everything the language has.
    Host,
    /// Netronome NFP BPF offload.
    Nfp,
}

impl Target {
    /// The target as `offload` and `--target` write it.
    pub fn name(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Nfp => "nfp",
        }
    }

    /// The target `--target NAME` names.
    pub fn from_name(name: &str) -> Option<Target> {
        [Target::Host, Target::Nfp]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// Headers whose presence a predicate can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Header {
    /// Ethernet (present when the frame holds 14 bytes).
    Eth,
    /// At least one 802.1Q/802.1ad tag.
    Vlan,
    /// ARP.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// IPv4 or IPv6.
    Ip,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (over IPv4).
    Icmp,
    /// ICMPv6 (over IPv6).
    Icmpv6,
    /// TCP or UDP.
    L4,
    /// An IPv4 or IPv6 fragment (first or not).
    Frag,
    /// Always present: packet metadata.
    Pkt,
}

impl Header {
    /// Every header, in a fixed order.
    pub const ALL: [Header; 13] = [
        Header::Eth,
        Header::Vlan,
        Header::Arp,
        Header::Ipv4,
        Header::Ipv6,
        Header::Ip,
        Header::Tcp,
        Header::Udp,
        Header::Icmp,
        Header::Icmpv6,
        Header::L4,
        Header::Frag,
        Header::Pkt,
    ];

    /// The header's `.nf` name.
    pub fn name(self) -> &'static str {
        match self {
            Header::Eth => "eth",
            Header::Vlan => "vlan",
            Header::Arp => "arp",
            Header::Ipv4 => "ipv4",
            Header::Ipv6 => "ipv6",
            Header::Ip => "ip",
            Header::Tcp => "tcp",
            Header::Udp => "udp",
            Header::Icmp => "icmp",
            Header::Icmpv6 => "icmpv6",
            Header::L4 => "l4",
            Header::Frag => "frag",
            Header::Pkt => "pkt",
        }
    }

    /// Looks a header up by its `.nf` name.
    pub fn from_name(name: &str) -> Option<Header> {
        Header::ALL.into_iter().find(|h| h.name() == name)
    }

    /// A bit for header sets.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The type of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// An unsigned integer of this many bits.
    Uint(u32),
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An IPv4 or IPv6 address, whichever the packet has.
    IpAny,
    /// A MAC address.
    Mac,
}

impl FieldType {
    /// The width in bits of the widest value.
    pub fn bits(self) -> u32 {
        match self {
            FieldType::Uint(b) => b,
            FieldType::Ipv4 => 32,
            FieldType::Ipv6 | FieldType::IpAny => 128,
            FieldType::Mac => 48,
        }
    }

    /// How the type is described in messages.
    pub fn describe(self) -> String {
        match self {
            FieldType::Uint(b) => format!("a {b}-bit unsigned integer"),
            FieldType::Ipv4 => "an IPv4 address".into(),
            FieldType::Ipv6 => "an IPv6 address".into(),
            FieldType::IpAny => "an IPv4 or IPv6 address".into(),
            FieldType::Mac => "a MAC address".into(),
        }
    }
}

macro_rules! fields {
    ($( $var:ident = $name:literal, $hdr:ident, $ty:expr; )*) => {
        /// Every field a predicate, key or rewrite can name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $(
                #[doc = concat!("`", $name, "`")]
                $var,
            )*
        }

        impl Field {
            /// Every field, in declaration order.
            pub const ALL: &'static [Field] = &[$(Field::$var),*];

            /// The field's `.nf` name.
            pub fn name(self) -> &'static str {
                match self { $(Field::$var => $name,)* }
            }

            /// The header that must be present for the field to have a value.
            pub fn header(self) -> Header {
                match self { $(Field::$var => Header::$hdr,)* }
            }

            /// The field's type.
            pub fn ty(self) -> FieldType {
                match self { $(Field::$var => $ty,)* }
            }
        }
    };
}

fields! {
    PktLen = "pkt.len", Pkt, FieldType::Uint(32);
    PktIfindex = "pkt.ifindex", Pkt, FieldType::Uint(32);
    PktRxq = "pkt.rxq", Pkt, FieldType::Uint(32);
    PktMark = "pkt.mark", Pkt, FieldType::Uint(32);
    EthSrc = "eth.src", Eth, FieldType::Mac;
    EthDst = "eth.dst", Eth, FieldType::Mac;
    EthType = "eth.type", Eth, FieldType::Uint(16);
    VlanId = "vlan.id", Vlan, FieldType::Uint(12);
    VlanPcp = "vlan.pcp", Vlan, FieldType::Uint(3);
    VlanInnerId = "vlan.inner.id", Vlan, FieldType::Uint(12);
    Ipv4Src = "ipv4.src", Ipv4, FieldType::Ipv4;
    Ipv4Dst = "ipv4.dst", Ipv4, FieldType::Ipv4;
    Ipv4Proto = "ipv4.proto", Ipv4, FieldType::Uint(8);
    Ipv4Ttl = "ipv4.ttl", Ipv4, FieldType::Uint(8);
    Ipv4Dscp = "ipv4.dscp", Ipv4, FieldType::Uint(6);
    Ipv4Ecn = "ipv4.ecn", Ipv4, FieldType::Uint(2);
    Ipv4Len = "ipv4.len", Ipv4, FieldType::Uint(16);
    Ipv4Id = "ipv4.id", Ipv4, FieldType::Uint(16);
    Ipv4Ihl = "ipv4.ihl", Ipv4, FieldType::Uint(4);
    Ipv6Src = "ipv6.src", Ipv6, FieldType::Ipv6;
    Ipv6Dst = "ipv6.dst", Ipv6, FieldType::Ipv6;
    Ipv6Nexthdr = "ipv6.nexthdr", Ipv6, FieldType::Uint(8);
    Ipv6Hoplimit = "ipv6.hoplimit", Ipv6, FieldType::Uint(8);
    Ipv6Dscp = "ipv6.dscp", Ipv6, FieldType::Uint(6);
    Ipv6Flowlabel = "ipv6.flowlabel", Ipv6, FieldType::Uint(20);
    Ipv6Len = "ipv6.len", Ipv6, FieldType::Uint(16);
    IpSrc = "ip.src", Ip, FieldType::IpAny;
    IpDst = "ip.dst", Ip, FieldType::IpAny;
    IpProto = "ip.proto", Ip, FieldType::Uint(8);
    IpTtl = "ip.ttl", Ip, FieldType::Uint(8);
    IpDscp = "ip.dscp", Ip, FieldType::Uint(6);
    IpFragOffset = "ip.frag_offset", Ip, FieldType::Uint(13);
    TcpSport = "tcp.sport", Tcp, FieldType::Uint(16);
    TcpDport = "tcp.dport", Tcp, FieldType::Uint(16);
    TcpFlags = "tcp.flags", Tcp, FieldType::Uint(8);
    TcpWindow = "tcp.window", Tcp, FieldType::Uint(16);
    TcpSeq = "tcp.seq", Tcp, FieldType::Uint(32);
    TcpAck = "tcp.ack", Tcp, FieldType::Uint(32);
    UdpSport = "udp.sport", Udp, FieldType::Uint(16);
    UdpDport = "udp.dport", Udp, FieldType::Uint(16);
    UdpLen = "udp.len", Udp, FieldType::Uint(16);
    L4Sport = "l4.sport", L4, FieldType::Uint(16);
    L4Dport = "l4.dport", L4, FieldType::Uint(16);
    IcmpType = "icmp.type", Icmp, FieldType::Uint(8);
    IcmpCode = "icmp.code", Icmp, FieldType::Uint(8);
    Icmpv6Type = "icmpv6.type", Icmpv6, FieldType::Uint(8);
    Icmpv6Code = "icmpv6.code", Icmpv6, FieldType::Uint(8);
}

impl Field {
    /// Looks a field up by its `.nf` name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Whether the field is a TCP/UDP port.
    pub fn is_port(self) -> bool {
        matches!(
            self,
            Field::TcpSport
                | Field::TcpDport
                | Field::UdpSport
                | Field::UdpDport
                | Field::L4Sport
                | Field::L4Dport
        )
    }

    /// Bytes this field takes in a counter or limiter key: addresses of `ip.*` take 16 (IPv4 as
    /// `::ffff:a.b.c.d`), integers their width rounded up to whole bytes.
    pub fn key_width(self) -> usize {
        (self.ty().bits() as usize).div_ceil(8)
    }
}

/// The family of a typed scalar, which decides what it can be compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// An unsigned integer.
    Int,
    /// An IPv4 address.
    V4,
    /// An IPv6 address.
    V6,
    /// A MAC address.
    Mac,
}

/// A typed constant: an integer, an address (as a big-endian number) or a MAC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scalar {
    /// What kind of value it is.
    pub family: Family,
    /// The value; addresses and MACs as their big-endian number.
    pub bits: u128,
}

impl Scalar {
    /// An integer.
    pub fn int(v: u128) -> Scalar {
        Scalar {
            family: Family::Int,
            bits: v,
        }
    }

    /// The address family of a field value of `ip.*`, mapping IPv4 to `::ffff:a.b.c.d` in keys.
    pub fn key_bytes(self, width: usize) -> Vec<u8> {
        let v = match self.family {
            Family::V4 if width == 16 => 0xffff_0000_0000 | self.bits,
            _ => self.bits,
        };
        v.to_be_bytes()[16 - width..].to_vec()
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::Int => write!(f, "{}", self.bits),
            Family::V4 => write!(f, "{}", std::net::Ipv4Addr::from(self.bits as u32)),
            Family::V6 => write!(f, "{}", std::net::Ipv6Addr::from(self.bits)),
            Family::Mac => {
                let b = self.bits.to_be_bytes();
                write!(
                    f,
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[10], b[11], b[12], b[13], b[14], b[15]
                )
            }
        }
    }
}

/// The width in bits of a scalar's family (integers: 128, meaning "as wide as the field").
pub fn family_bits(f: Family) -> u32 {
    match f {
        Family::Int | Family::V6 => 128,
        Family::V4 => 32,
        Family::Mac => 48,
    }
}

/// One member of a value list or set: a value, a prefix or an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    /// Exactly this value.
    Value(Scalar),
    /// Addresses whose first `len` bits equal those of the (masked) address.
    Prefix(Scalar, u8),
    /// From `lo` to `hi`, both included; same family.
    Range(Scalar, Scalar),
}

impl Item {
    /// The family of the item's values.
    pub fn family(self) -> Family {
        match self {
            Item::Value(s) | Item::Prefix(s, _) | Item::Range(s, _) => s.family,
        }
    }

    /// The inclusive range of numbers the item covers.
    pub fn bounds(self) -> (u128, u128) {
        match self {
            Item::Value(s) => (s.bits, s.bits),
            Item::Range(lo, hi) => (lo.bits, hi.bits),
            Item::Prefix(s, len) => {
                let width = family_bits(s.family);
                let host = width - u32::from(len);
                let span = if host >= 128 {
                    u128::MAX
                } else {
                    (1u128 << host) - 1
                };
                (s.bits & !span, (s.bits & !span) | span)
            }
        }
    }

    /// Whether `v` (of family `fam`) is in the item.
    pub fn contains(self, fam: Family, v: u128) -> bool {
        if fam != self.family() {
            return false;
        }
        let (lo, hi) = self.bounds();
        lo <= v && v <= hi
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Value(s) => write!(f, "{s}"),
            Item::Prefix(s, l) => write!(f, "{s}/{l}"),
            Item::Range(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

/// A checked predicate.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A constant truth value (an empty conjunction is `true`).
    Const(bool),
    /// An atom, with where it was written.
    Atom(Atom, Span),
    /// Negation of the truth value.
    Not(Box<Expr>),
    /// Conjunction, evaluated left to right with short-circuit (it matters for `over`).
    And(Vec<Expr>),
    /// Disjunction, evaluated left to right with short-circuit.
    Or(Vec<Expr>),
}

/// A checked atom. Every atom on a field is false when the field's header is absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Atom {
    /// The header is present.
    Present(Header),
    /// `(field [& mask]) OP value`. For `ip.*` fields, a value of one family is false for
    /// packets of the other.
    Cmp {
        /// The field.
        field: Field,
        /// The mask applied to the field first.
        mask: Option<u128>,
        /// The operator.
        op: CmpOp,
        /// The constant.
        value: Scalar,
    },
    /// `(field [& mask])` is in one of the items.
    InList {
        /// The field.
        field: Field,
        /// The mask applied to the field first.
        mask: Option<u128>,
        /// The items (values, prefixes, ranges), in the order written.
        items: Vec<Item>,
    },
    /// `field in SET`.
    InSet {
        /// The field.
        field: Field,
        /// The set.
        set: SetId,
    },
    /// `field & bits == bits`: every listed flag is set.
    Has {
        /// The field.
        field: Field,
        /// The bits that must be set.
        bits: u128,
    },
    /// `over LIMITER`: takes a token; true when none was left.
    Over(LimiterId),
    /// `match TABLE`: the packet's key hits an entry.
    Match(TableId),
    /// `payload[start..end] == bytes` (or `!=` when `negate`); false when the packet has no
    /// L4 payload or is shorter than `end`.
    Payload {
        /// First byte, relative to the L4 payload.
        start: u16,
        /// One past the last byte.
        end: u16,
        /// The bytes compared.
        bytes: Vec<u8>,
        /// `!=` instead of `==`.
        negate: bool,
    },
}

/// A terminal action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// Let the packet through.
    Pass,
    /// Drop it.
    Drop,
    /// Bounce it out of the port it came in on (XDP only).
    Tx,
    /// Send it to another interface (resolved at load time).
    Redirect(String),
    /// Hand it to the AF_XDP socket bound on its receive queue (XDP only); with none bound
    /// it passes, as libxdp's default program does. Test blocks run with a socket bound on
    /// every queue.
    Xsk,
    /// XDP_ABORTED.
    Abort,
}

impl Terminal {
    /// The verdict as written in `.nf`.
    pub fn name(&self) -> &'static str {
        match self {
            Terminal::Pass => "pass",
            Terminal::Drop => "drop",
            Terminal::Tx => "tx",
            Terminal::Redirect(_) => "redirect",
            Terminal::Xsk => "xsk",
            Terminal::Abort => "abort",
        }
    }
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Terminal::Redirect(i) => write!(f, "redirect {i:?}"),
            Terminal::Xsk => f.write_str("redirect xsk"),
            t => f.write_str(t.name()),
        }
    }
}

/// A non-terminal action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add the packet to a counter under its key.
    Count(CounterId),
    /// Rewrite a field (checksums fixed incrementally). For `ip.*` the value's family must
    /// match the packet's, else the rewrite does nothing.
    SetField(Field, Scalar),
    /// Decrement the IPv4 TTL or IPv6 hop limit (not below zero).
    DecTtl,
    /// Send 1 in N packets to the sample ring.
    Sample(u32),
    /// Set the skb mark (TC only).
    Mark(u32),
    /// Pick a backend by consistent hashing and rewrite the destination address.
    Balance {
        /// The pool.
        pool: PoolId,
        /// The fields hashed.
        by: Vec<Field>,
        /// Also rewrite MACs through the kernel FIB.
        via_fib: bool,
        /// Encapsulate towards the backend instead of rewriting the destination.
        encap: Option<Encap>,
        /// `sticky N`: an LRU table of N flows keeps each flow on its backend.
        sticky: Option<u32>,
    },
}

/// How `balance ... encap` wraps a packet for its backend: an outer IP header of the pool's
/// family (the packet's own), then for GUE a UDP header, then the packet from its IP header on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encap {
    /// IP-in-IP or GUE.
    pub kind: EncapKind,
    /// The outer source address; `None` means the packet's own destination (the VIP).
    pub from: Option<Scalar>,
}

/// The encapsulations `balance` can apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncapKind {
    /// IPv4 in IPv4 (protocol 4) or IPv6 in IPv6 (next header 41).
    Ipip,
    /// GUE variant 1 (the IP packet straight after UDP) to this UDP port.
    Gue(u16),
}

impl Encap {
    /// Bytes the encapsulation adds for a packet of this family.
    pub fn overhead(&self, ipv6: bool) -> usize {
        let ip = if ipv6 { 40 } else { 20 };
        match self.kind {
            EncapKind::Ipip => ip,
            EncapKind::Gue(_) => ip + 8,
        }
    }
}

/// Kinds of sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// `ipv4 prefix`
    Ipv4Prefix,
    /// `ipv6 prefix`
    Ipv6Prefix,
    /// `ipv4`
    Ipv4,
    /// `ipv6`
    Ipv6,
    /// `port`
    Port,
    /// `mac`
    Mac,
    /// `u8`, `u16`, `u32`, `u64`
    Uint(u32),
}

impl SetKind {
    /// The kind as written.
    pub fn describe(self) -> String {
        match self {
            SetKind::Ipv4Prefix => "ipv4 prefix".into(),
            SetKind::Ipv6Prefix => "ipv6 prefix".into(),
            SetKind::Ipv4 => "ipv4".into(),
            SetKind::Ipv6 => "ipv6".into(),
            SetKind::Port => "port".into(),
            SetKind::Mac => "mac".into(),
            SetKind::Uint(b) => format!("u{b}"),
        }
    }
}

/// `set NAME: KIND ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: SetKind,
    /// Maximum entries.
    pub capacity: u32,
    /// Whether `nfcc set` may change it on a loaded policy.
    pub dynamic: bool,
    /// Initial contents.
    pub items: Vec<Item>,
    /// Where it was declared.
    pub span: Span,
}

/// `table NAME: key (...) -> ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Key fields.
    pub key: Vec<Field>,
    /// Actions entries may use.
    pub allowed: Vec<&'static str>,
    /// Maximum entries.
    pub capacity: u32,
    /// Entries: key values (one per key field) and the action.
    pub entries: Vec<(Vec<Scalar>, Terminal)>,
    /// Where it was declared.
    pub span: Span,
}

/// `counter NAME: key ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Counter {
    /// Its name.
    pub name: String,
    /// Key fields (absent fields count as zero in the key).
    pub key: Vec<Field>,
    /// Maximum keys.
    pub capacity: u32,
    /// Where it was declared.
    pub span: Span,
}

/// `limiter NAME: key ..., rate R, burst B`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limiter {
    /// Its name.
    pub name: String,
    /// Key fields (absent fields count as zero in the key).
    pub key: Vec<Field>,
    /// Tokens added per second.
    pub rate_per_sec: u64,
    /// Bucket size; a new key starts full.
    pub burst: u64,
    /// Maximum keys.
    pub capacity: u32,
    /// Where it was declared.
    pub span: Span,
}

/// `pool NAME = { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Backend addresses with weights.
    pub backends: Vec<(Scalar, u32)>,
    /// `dynamic`: backends change on a loaded policy (`nfcc pool`).
    pub dynamic: bool,
    /// The most backends it holds at once (a static pool: its own).
    pub capacity: u32,
    /// Where it was declared.
    pub span: Span,
}

/// A checked rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Its predicate.
    pub expr: Expr,
    /// Non-terminal actions in order.
    pub actions: Vec<Action>,
    /// The terminal; `None` means the hit table entry's action (only with `match`).
    pub terminal: Option<Terminal>,
    /// The table whose entry supplies the terminal when `terminal` is `None`.
    pub table: Option<TableId>,
    /// Where it was written.
    pub span: Span,
}

/// The `default` line.
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultAction {
    /// Non-terminal actions.
    pub actions: Vec<Action>,
    /// The terminal.
    pub terminal: Terminal,
    /// Where it was written.
    pub span: Span,
}

/// Which rule an `expect ... by` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleRef {
    /// A rule.
    Rule(RuleId),
    /// The default action.
    Default,
}

/// A step of a test.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Send `count` copies of a frame.
    Send {
        /// Copies.
        count: u32,
        /// The layers (built by `crate::packet::build`).
        layers: Vec<LayerSpec>,
        /// Where it was written.
        span: Span,
    },
    /// Check verdicts of the last batch.
    ExpectVerdict {
        /// How many of the batch must have it; `None` = all.
        count: Option<u32>,
        /// The verdict.
        verdict: Terminal,
        /// The rule that must have decided it.
        by: Option<RuleRef>,
        /// Where it was written.
        span: Span,
    },
    /// Check a counter.
    ExpectCounter {
        /// The counter.
        counter: CounterId,
        /// Key values, one per key field.
        key: Vec<Scalar>,
        /// The expected count.
        value: u64,
        /// Bytes rather than packets.
        bytes: bool,
        /// Where it was written.
        span: Span,
    },
    /// Check the last emitted packet.
    ExpectOut {
        /// The fields it must have.
        layers: Vec<LayerSpec>,
        /// Where it was written.
        span: Span,
    },
}

/// A checked test block.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    /// Its name.
    pub name: String,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Where it was written.
    pub span: Span,
}

/// A checked policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Where it attaches.
    pub hook: Hook,
    /// The target it must be offloadable to, if any.
    pub offload: Option<Target>,
    /// Sets, indexed by `SetId`.
    pub sets: Vec<Set>,
    /// Tables, indexed by `TableId`.
    pub tables: Vec<Table>,
    /// Counters, indexed by `CounterId`.
    pub counters: Vec<Counter>,
    /// Limiters, indexed by `LimiterId`.
    pub limiters: Vec<Limiter>,
    /// Pools, indexed by `PoolId`.
    pub pools: Vec<Pool>,
    /// Rules in evaluation order, indexed by `RuleId`.
    pub rules: Vec<Rule>,
    /// The default action.
    pub default: DefaultAction,
    /// Test blocks.
    pub tests: Vec<Test>,
    /// Where it was written.
    pub span: Span,
}

impl Policy {
    /// The rule a `RuleId` names.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.index()]
    }

    /// Looks a rule up by name.
    pub fn rule_by_name(&self, name: &str) -> Option<RuleId> {
        self.rules
            .iter()
            .position(|r| r.name == name)
            .map(|i| RuleId(i as u32))
    }
}

/// A checked file: all its policies.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    /// The policies, in file order.
    pub policies: Vec<Policy>,
}
