//! Packet literals of test blocks and the reference frame parser.
//!
//! Test blocks describe packets as layers joined by `/` (`eth(...) / vlan(...) / ipv4(...) /
//! tcp(...) / payload("...")`, section 7 of the language reference). This module turns such
//! literals into real frames ([`build`]: defaults filled in, lengths and checksums computed),
//! parses frames exactly the way section 4 says a policy sees them ([`parse_frame`]), and checks
//! emitted frames against `expect out` literals ([`check_out`], [`checksums_valid`]).
//!
//! [`parse_frame`] is the oracle the compiled eBPF program is held to in differential testing
//! and is fuzzed, so nothing here may panic on any input bytes: every read is bounds-checked and
//! a short frame simply leaves headers absent.
//!
//! Points where section 4 leaves room and this module decides:
//! - A VLAN tag is complete when its TCI and inner type (4 bytes) are present. A truncated tag,
//!   or a third tag, leaves `eth.type` equal to that tag's TPID, so no L3 header is parsed.
//! - A non-first fragment (IPv4 offset > 0, or an IPv6 fragment header with offset > 0) stops
//!   parsing: `ipv4.proto` is the header's protocol field, and `ipv6.nexthdr` is the fragment
//!   header's next-header field, because what follows is a piece of data, not a header.
//! - L4 headers are bounded by the frame's end, not by the IP length fields; the length fields
//!   only matter to [`checksums_valid`].
//!
//! Why this is not etherparse: its builder always overwrites lengths, protocol fields and
//! checksums, and its header types derive IPv4's IHL and TCP's data offset from the options
//! they hold, while a literal may set any of these to any value (a wrong checksum, `ihl=4`,
//! a length that disagrees with the payload, `truncate(N)` mid-header, an extension header of
//! any kind and length) to test how a policy treats a malformed packet. Its parsers, for their
//! part, reject such packets or cut payloads at the IP length, where section 4 (above) bounds
//! headers by the frame and stops at non-first fragments and third VLAN tags; the parser is
//! the oracle, so it stays with the language's rules.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

mod build;
mod parse;
mod verify;

#[cfg(test)]
mod tests;

pub use build::build;
pub use parse::{
    parse_frame, parse_inner, ArpHeader, EthHeader, Headers, IcmpHeader, Ipv4Header, Ipv6Ext,
    Ipv6Header, TcpHeader, UdpHeader, VlanTag,
};
pub use verify::{check_out, checksums_valid};

/// Layer kinds of packet literals in test blocks: `eth(...) / vlan(...) / ipv4(...) / ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `eth(src=, dst=, type=)`: an Ethernet II header, implied when not written first.
    Eth,
    /// `vlan(id=, pcp=, dei=, tpid=, type=)`: one 802.1Q/802.1ad tag.
    Vlan,
    /// `arp(op=, sha=, spa=, tha=, tpa=)`: an Ethernet/IPv4 ARP message.
    Arp,
    /// `ipv4(...)`: an IPv4 header, options included.
    Ipv4,
    /// `ipv6(...)`: the fixed IPv6 header.
    Ipv6,
    /// `ipv6ext(kind=, ...)`: one IPv6 extension header.
    Ipv6Ext,
    /// `tcp(...)`: a TCP header, options included.
    Tcp,
    /// `udp(...)`: a UDP header.
    Udp,
    /// `icmp(type=, code=, id=, seq=)`: an ICMPv4 header.
    Icmp,
    /// `icmpv6(type=, code=, id=, seq=)`: an ICMPv6 header.
    Icmpv6,
    /// `gue()`: Generic UDP Encapsulation, variant 1 — no GUE header: the IP packet inside
    /// follows the UDP header directly (Katran's format; Linux fou in `gue` mode takes it).
    Gue,
    /// `payload("...")` or `payload(0x..)`: bytes after the last header.
    Payload,
    /// `raw(0x..)`: bytes inserted as they are, wherever the layer appears.
    Raw,
    /// `truncate(N)`: cut the finished frame to N bytes; must be the last layer.
    Truncate,
}

impl LayerKind {
    /// Every layer kind, in the order of the enum.
    pub const ALL: [LayerKind; 14] = [
        LayerKind::Eth,
        LayerKind::Vlan,
        LayerKind::Arp,
        LayerKind::Ipv4,
        LayerKind::Ipv6,
        LayerKind::Ipv6Ext,
        LayerKind::Tcp,
        LayerKind::Udp,
        LayerKind::Icmp,
        LayerKind::Icmpv6,
        LayerKind::Gue,
        LayerKind::Payload,
        LayerKind::Raw,
        LayerKind::Truncate,
    ];

    /// The layer kind spelled `name` in a packet literal, if there is one.
    pub fn from_name(name: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The spelling of this layer kind in a packet literal.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Eth => "eth",
            LayerKind::Vlan => "vlan",
            LayerKind::Arp => "arp",
            LayerKind::Ipv4 => "ipv4",
            LayerKind::Ipv6 => "ipv6",
            LayerKind::Ipv6Ext => "ipv6ext",
            LayerKind::Tcp => "tcp",
            LayerKind::Udp => "udp",
            LayerKind::Icmp => "icmp",
            LayerKind::Icmpv6 => "icmpv6",
            LayerKind::Gue => "gue",
            LayerKind::Payload => "payload",
            LayerKind::Raw => "raw",
            LayerKind::Truncate => "truncate",
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Argument types, used by the checker to validate `name=value` args before building.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// An unsigned integer of the given bit width, as [`ArgValue::Int`].
    Uint(u32),
    /// A MAC address, as [`ArgValue::Mac`].
    Mac,
    /// An IPv4 address, as [`ArgValue::Ipv4`].
    Ipv4,
    /// An IPv6 address, as [`ArgValue::Ipv6`].
    Ipv6,
    /// A byte string (`"..."` or `0x..`), as [`ArgValue::Bytes`].
    Bytes,
    /// TCP flags already resolved to their 8-bit value, as [`ArgValue::Int`].
    Flags,
    /// An IPv6 extension header kind (hop, routing, dest, frag) resolved to its protocol number
    /// 0, 43, 60 or 44, as [`ArgValue::Int`].
    ExtKind,
}

impl fmt::Display for ArgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgType::Uint(bits) => write!(f, "a {bits}-bit unsigned integer"),
            ArgType::Mac => f.write_str("a mac address"),
            ArgType::Ipv4 => f.write_str("an ipv4 address"),
            ArgType::Ipv6 => f.write_str("an ipv6 address"),
            ArgType::Bytes => f.write_str("a byte string"),
            ArgType::Flags => f.write_str("tcp flags"),
            ArgType::ExtKind => f.write_str("an extension header kind (hop, routing, dest, frag)"),
        }
    }
}

/// The value of one layer argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgValue {
    /// An integer (also TCP flags and extension header kinds).
    Int(u128),
    /// A MAC address.
    Mac([u8; 6]),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
    /// A byte string.
    Bytes(Vec<u8>),
}

impl ArgValue {
    /// Whether this value has the shape `ty` asks for (the width of integers is not checked).
    pub fn fits_type(&self, ty: ArgType) -> bool {
        matches!(
            (self, ty),
            (
                ArgValue::Int(_),
                ArgType::Uint(_) | ArgType::Flags | ArgType::ExtKind
            ) | (ArgValue::Mac(_), ArgType::Mac)
                | (ArgValue::Ipv4(_), ArgType::Ipv4)
                | (ArgValue::Ipv6(_), ArgType::Ipv6)
                | (ArgValue::Bytes(_), ArgType::Bytes)
        )
    }
}

impl fmt::Display for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::Int(v) => write!(f, "{v}"),
            ArgValue::Mac(m) => f.write_str(&fmt_mac(m)),
            ArgValue::Ipv4(a) => write!(f, "{a}"),
            ArgValue::Ipv6(a) => write!(f, "{a}"),
            ArgValue::Bytes(b) => f.write_str(&fmt_bytes(b)),
        }
    }
}

/// Formats a MAC address the usual way, `02:00:00:00:00:01`.
pub(crate) fn fmt_mac(m: &[u8; 6]) -> String {
    let parts: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Formats bytes as one `0x..` hex literal, the way `.nf` sources write byte strings.
pub(crate) fn fmt_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// The named arguments a layer accepts, with their types; positional args (payload("..."),
/// raw(0x..), truncate(N)) use the name "".
pub fn arg_schema(kind: LayerKind) -> &'static [(&'static str, ArgType)] {
    use ArgType::{Bytes, ExtKind, Flags, Mac, Uint};
    match kind {
        LayerKind::Eth => &[("src", Mac), ("dst", Mac), ("type", Uint(16))],
        LayerKind::Vlan => &[
            ("id", Uint(12)),
            ("pcp", Uint(3)),
            ("dei", Uint(1)),
            ("tpid", Uint(16)),
            ("type", Uint(16)),
        ],
        LayerKind::Arp => &[
            ("op", Uint(16)),
            ("sha", Mac),
            ("spa", ArgType::Ipv4),
            ("tha", Mac),
            ("tpa", ArgType::Ipv4),
        ],
        LayerKind::Ipv4 => &[
            ("src", ArgType::Ipv4),
            ("dst", ArgType::Ipv4),
            ("ttl", Uint(8)),
            ("proto", Uint(8)),
            ("ihl", Uint(4)),
            ("tos", Uint(8)),
            ("dscp", Uint(6)),
            ("ecn", Uint(2)),
            ("id", Uint(16)),
            ("df", Uint(1)),
            ("mf", Uint(1)),
            ("frag_offset", Uint(13)),
            ("options", Bytes),
            ("len", Uint(16)),
            ("checksum", Uint(16)),
        ],
        LayerKind::Ipv6 => &[
            ("src", ArgType::Ipv6),
            ("dst", ArgType::Ipv6),
            ("hoplimit", Uint(8)),
            ("nexthdr", Uint(8)),
            ("dscp", Uint(6)),
            ("ecn", Uint(2)),
            ("flowlabel", Uint(20)),
            ("len", Uint(16)),
        ],
        LayerKind::Ipv6Ext => &[
            ("kind", ExtKind),
            ("nexthdr", Uint(8)),
            ("len", Uint(8)),
            ("offset", Uint(13)),
            ("more", Uint(1)),
            ("id", Uint(32)),
            ("segleft", Uint(8)),
        ],
        LayerKind::Tcp => &[
            ("sport", Uint(16)),
            ("dport", Uint(16)),
            ("seq", Uint(32)),
            ("ack", Uint(32)),
            ("flags", Flags),
            ("window", Uint(16)),
            ("urg", Uint(16)),
            ("doff", Uint(4)),
            ("options", Bytes),
            ("checksum", Uint(16)),
        ],
        LayerKind::Udp => &[
            ("sport", Uint(16)),
            ("dport", Uint(16)),
            ("len", Uint(16)),
            ("checksum", Uint(16)),
        ],
        LayerKind::Icmp | LayerKind::Icmpv6 => &[
            ("type", Uint(8)),
            ("code", Uint(8)),
            ("id", Uint(16)),
            ("seq", Uint(16)),
            ("checksum", Uint(16)),
        ],
        LayerKind::Gue => &[],
        LayerKind::Payload | LayerKind::Raw => &[("", Bytes)],
        LayerKind::Truncate => &[("", Uint(32))],
    }
}

/// One layer of a packet literal with its arguments, as the checker resolved them.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Which layer.
    pub kind: LayerKind,
    /// `name=value` arguments in source order; positional ones use the name `""`.
    pub args: Vec<(String, ArgValue)>,
}

impl LayerSpec {
    /// A layer with no arguments, all fields defaulted.
    pub fn new(kind: LayerKind) -> LayerSpec {
        LayerSpec {
            kind,
            args: Vec::new(),
        }
    }

    /// This layer with one more argument; handy for building specs in code and tests.
    pub fn arg(mut self, name: &str, value: ArgValue) -> LayerSpec {
        self.args.push((name.to_string(), value));
        self
    }
}

/// Why a packet literal cannot be turned into a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The layer has no argument of that name.
    #[error("{layer} has no argument `{arg}`")]
    UnknownArg {
        /// The layer.
        layer: LayerKind,
        /// The argument as written (`""` for a positional one).
        arg: String,
    },
    /// The argument's value has the wrong shape, e.g. an IPv6 address for `ipv4.src`.
    #[error("{layer} argument `{arg}` must be {expected}, not `{got}`")]
    WrongArgType {
        /// The layer.
        layer: LayerKind,
        /// The argument.
        arg: String,
        /// What the schema asks for.
        expected: ArgType,
        /// The value given, formatted.
        got: String,
    },
    /// An integer does not fit in the field it is written to.
    #[error("{layer} argument `{arg}` is {value}, which does not fit in {bits} bits")]
    ValueTooWide {
        /// The layer.
        layer: LayerKind,
        /// The argument.
        arg: String,
        /// The value given.
        value: u128,
        /// The field's width.
        bits: u32,
    },
    /// The same argument was given twice in one layer.
    #[error("{layer} argument `{arg}` is given twice")]
    DuplicateArg {
        /// The layer.
        layer: LayerKind,
        /// The argument.
        arg: String,
    },
    /// A required argument is missing (the extension header kind, the truncation length).
    #[error("{layer} needs {}", arg_phrase(.arg))]
    MissingArg {
        /// The layer.
        layer: LayerKind,
        /// The argument (`""` for a positional one).
        arg: &'static str,
    },
    /// The value is not an extension header kind.
    #[error("ipv6ext kind {0} is not an extension header (0 hop, 43 routing, 60 dest, 44 frag)")]
    BadExtKind(u128),
    /// An `ipv6ext` argument that the chosen kind has no field for, e.g. `offset` on `hop`.
    #[error("ipv6ext argument `{arg}` does not apply to extension header kind {kind}")]
    ArgNotForKind {
        /// The argument.
        arg: String,
        /// The extension header kind.
        kind: u8,
    },
    /// The layer cannot come after the one before it, e.g. tcp right after eth.
    #[error("{layer} cannot follow {prev}")]
    LayerOrder {
        /// The misplaced layer.
        layer: LayerKind,
        /// The layer before it (raw layers are skipped when looking for it).
        prev: LayerKind,
    },
    /// `eth` appears somewhere other than first.
    #[error("eth must be the first layer")]
    EthNotFirst,
    /// `truncate` appears somewhere other than last.
    #[error("truncate must be the last layer")]
    TruncateNotLast,
    /// `truncate(N)` asks for more bytes than the frame has.
    #[error("truncate({n}) is longer than the {len}-byte frame")]
    TruncateTooLong {
        /// The length asked for.
        n: u128,
        /// The frame's length before truncation.
        len: usize,
    },
    /// Options longer than the header's length field can describe (40 bytes for IPv4 and TCP).
    #[error("{layer} options take {len} bytes once padded, but at most 40 fit")]
    OptionsTooLong {
        /// The layer.
        layer: LayerKind,
        /// The padded length of the options.
        len: usize,
    },
    /// A computed length does not fit in its 16-bit field.
    #[error("{layer} length {len} does not fit in its 16-bit field")]
    LengthOverflow {
        /// The layer.
        layer: LayerKind,
        /// The computed length.
        len: usize,
    },
}

/// How a missing argument is named in a message: positional ones have no name.
fn arg_phrase(arg: &str) -> String {
    if arg.is_empty() {
        "a value".to_string()
    } else {
        format!("the argument `{arg}`")
    }
}

/// Reads `N` bytes at `at`, or `None` when the frame is shorter; the only way this module reads
/// untrusted frames, so that no read can run past the end.
pub(crate) fn bytes_at<const N: usize>(frame: &[u8], at: usize) -> Option<[u8; N]> {
    frame.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Reads one byte at `at`, or `None` past the end.
pub(crate) fn u8_at(frame: &[u8], at: usize) -> Option<u8> {
    frame.get(at).copied()
}

/// Reads a big-endian 16-bit value at `at`, or `None` past the end.
pub(crate) fn u16_at(frame: &[u8], at: usize) -> Option<u16> {
    bytes_at(frame, at).map(u16::from_be_bytes)
}

/// Reads a big-endian 32-bit value at `at`, or `None` past the end.
pub(crate) fn u32_at(frame: &[u8], at: usize) -> Option<u32> {
    bytes_at(frame, at).map(u32::from_be_bytes)
}

/// Adds `data` to a running one's-complement sum as big-endian 16-bit words, an odd last byte
/// padded with zero. The sum is kept unfolded in 64 bits, which cannot overflow for any frame.
pub(crate) fn sum_words(acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut acc = chunks
        .by_ref()
        .fold(acc, |a, w| a + u64::from(u16::from_be_bytes([w[0], w[1]])));
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum from [`sum_words`] to 16 bits with end-around carries.
pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 bits, so the conversion never fails.
    u16::try_from(acc).unwrap_or(0xffff)
}

/// The part of an L4 checksum that comes from the IP pseudo-header: addresses, the upper-layer
/// length and the protocol number, as RFC 793/768 (IPv4) and RFC 8200 section 8.1 (IPv6) lay
/// it out. `addrs` is the source address bytes followed by the destination address bytes.
pub(crate) fn pseudo_sum(addrs: &[u8], proto: u8, l4_len: usize) -> u64 {
    let len = l4_len as u64;
    sum_words(0, addrs) + (len >> 16) + (len & 0xffff) + u64::from(proto)
}
