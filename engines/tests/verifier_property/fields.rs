//! The vocabulary of generated policies: the fields of section 4 with their types and hooks,
//! the values drawn for them (hosts, MACs, payloads, integer pools, named constants) and how
//! each is written as `.nf` text.

use nfcc_dsl::testing::hex;
use std::fmt::Write as _;

/// A field's type as the generator sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ty {
    /// An unsigned integer of this many bits.
    Uint(u32),
    /// An IPv4 address.
    V4,
    /// An IPv6 address.
    V6,
    /// An IPv4 or IPv6 address (`ip.src`, `ip.dst`).
    Any,
    /// A MAC address.
    Mac,
}

/// Which hooks may name a field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum On {
    /// Every hook.
    All,
    /// XDP only (`pkt.rxq`).
    Xdp,
    /// TC only (`pkt.mark`).
    Tc,
}

/// Every field of the field table of section 4, with its type and the hooks that have it.
pub(crate) const FIELDS: &[(&str, Ty, On)] = &[
    ("pkt.len", Ty::Uint(32), On::All),
    ("pkt.ifindex", Ty::Uint(32), On::All),
    ("pkt.rxq", Ty::Uint(32), On::Xdp),
    ("pkt.mark", Ty::Uint(32), On::Tc),
    ("eth.src", Ty::Mac, On::All),
    ("eth.dst", Ty::Mac, On::All),
    ("eth.type", Ty::Uint(16), On::All),
    ("vlan.id", Ty::Uint(12), On::All),
    ("vlan.pcp", Ty::Uint(3), On::All),
    ("vlan.inner.id", Ty::Uint(12), On::All),
    ("ipv4.src", Ty::V4, On::All),
    ("ipv4.dst", Ty::V4, On::All),
    ("ipv4.proto", Ty::Uint(8), On::All),
    ("ipv4.ttl", Ty::Uint(8), On::All),
    ("ipv4.dscp", Ty::Uint(6), On::All),
    ("ipv4.ecn", Ty::Uint(2), On::All),
    ("ipv4.len", Ty::Uint(16), On::All),
    ("ipv4.id", Ty::Uint(16), On::All),
    ("ipv4.ihl", Ty::Uint(4), On::All),
    ("ipv6.src", Ty::V6, On::All),
    ("ipv6.dst", Ty::V6, On::All),
    ("ipv6.nexthdr", Ty::Uint(8), On::All),
    ("ipv6.hoplimit", Ty::Uint(8), On::All),
    ("ipv6.dscp", Ty::Uint(6), On::All),
    ("ipv6.flowlabel", Ty::Uint(20), On::All),
    ("ipv6.len", Ty::Uint(16), On::All),
    ("ip.src", Ty::Any, On::All),
    ("ip.dst", Ty::Any, On::All),
    ("ip.proto", Ty::Uint(8), On::All),
    ("ip.ttl", Ty::Uint(8), On::All),
    ("ip.dscp", Ty::Uint(6), On::All),
    ("tcp.sport", Ty::Uint(16), On::All),
    ("tcp.dport", Ty::Uint(16), On::All),
    ("tcp.flags", Ty::Uint(8), On::All),
    ("tcp.window", Ty::Uint(16), On::All),
    ("tcp.seq", Ty::Uint(32), On::All),
    ("tcp.ack", Ty::Uint(32), On::All),
    ("udp.sport", Ty::Uint(16), On::All),
    ("udp.dport", Ty::Uint(16), On::All),
    ("udp.len", Ty::Uint(16), On::All),
    ("l4.sport", Ty::Uint(16), On::All),
    ("l4.dport", Ty::Uint(16), On::All),
    ("icmp.type", Ty::Uint(8), On::All),
    ("icmp.code", Ty::Uint(8), On::All),
    ("icmpv6.type", Ty::Uint(8), On::All),
    ("icmpv6.code", Ty::Uint(8), On::All),
];

/// Key fields the brief asks for explicitly; the generator prefers them for counter and
/// limiter keys but also draws from every field.
pub(crate) const FAVOURITE_KEYS: &[&str] = &[
    "ip.src",
    "ip.dst",
    "l4.dport",
    "eth.src",
    "vlan.id",
    "ipv6.flowlabel",
];

/// Fields `set FIELD = VALUE` may rewrite, with their types.
pub(crate) const REWRITABLE: &[(&str, Ty)] = &[
    ("eth.src", Ty::Mac),
    ("eth.dst", Ty::Mac),
    ("ip.src", Ty::Any),
    ("ip.dst", Ty::Any),
    ("ipv4.src", Ty::V4),
    ("ipv4.dst", Ty::V4),
    ("ipv6.src", Ty::V6),
    ("ipv6.dst", Ty::V6),
    ("l4.sport", Ty::Uint(16)),
    ("l4.dport", Ty::Uint(16)),
    ("tcp.sport", Ty::Uint(16)),
    ("tcp.dport", Ty::Uint(16)),
    ("udp.sport", Ty::Uint(16)),
    ("udp.dport", Ty::Uint(16)),
    ("ip.ttl", Ty::Uint(8)),
    ("ipv4.ttl", Ty::Uint(8)),
    ("ipv6.hoplimit", Ty::Uint(8)),
    ("ip.dscp", Ty::Uint(6)),
    ("ipv4.dscp", Ty::Uint(6)),
    ("ipv6.dscp", Ty::Uint(6)),
];

/// Header presence atoms.
pub(crate) const HEADERS: &[&str] = &[
    "eth", "vlan", "arp", "ipv4", "ipv6", "ip", "tcp", "udp", "icmp", "icmpv6", "l4", "frag",
];

/// IPv4 hosts the policies and the frames share, so that rules match often.
pub(crate) const V4_HOSTS: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 1, 2, 3],
    [192, 0, 2, 9],
    [198, 51, 100, 7],
    [203, 0, 113, 5],
    [172, 16, 0, 1],
];

/// IPv6 hosts the policies and the frames share.
pub(crate) const V6_HOSTS: &[&str] = &[
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::5",
    "2001:db8::80",
    "fe80::1",
    "::1",
];

/// MAC addresses the policies and the frames share (the first two are the builder's
/// defaults).
pub(crate) const MACS: &[&str] = &[
    "02:00:00:00:00:01",
    "02:00:00:00:00:02",
    "02:00:00:00:00:66",
    "aa:bb:cc:dd:ee:ff",
];

/// L4 payloads the frames carry and payload atoms compare against.
pub(crate) const PAYLOADS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"POST /login",
    b"\xca\xfe\xba\xbe\x00\x01\x02\x03",
    b"SSH-2.0-OpenSSH",
    b"\x00\x00\x00\x00",
];

/// Interesting values of an integer field, shared by policies and frames.
pub(crate) fn int_pool(field: &str) -> &'static [u128] {
    match field {
        "pkt.len" => &[54, 60, 64, 74, 78, 100, 128, 1500],
        "pkt.ifindex" => &[0, 1, 2],
        "pkt.rxq" | "pkt.mark" => &[0, 1, 7],
        "eth.type" => &[0x0800, 0x86dd, 0x0806, 0x8100, 0x88b5],
        "vlan.id" | "vlan.inner.id" => &[0, 1, 100, 200, 305, 4095],
        "vlan.pcp" => &[0, 3, 5, 7],
        "ipv4.proto" | "ipv6.nexthdr" | "ip.proto" => &[1, 6, 17, 47, 58, 59, 0],
        "ipv4.ttl" | "ipv6.hoplimit" | "ip.ttl" => &[0, 1, 2, 64, 128, 255],
        "ipv4.dscp" | "ipv6.dscp" | "ip.dscp" => &[0, 8, 10, 46, 63],
        "ipv4.ecn" => &[0, 1, 2, 3],
        "ipv4.len" => &[20, 28, 40, 46, 60, 100],
        "ipv4.id" => &[0, 1, 7, 9, 0x1234],
        "ipv4.ihl" => &[0, 4, 5, 6, 15],
        "ipv6.flowlabel" => &[0, 1, 0x12345, 0xfffff],
        "ipv6.len" => &[0, 8, 20, 32, 40],
        "tcp.sport" | "tcp.dport" | "udp.sport" | "udp.dport" | "l4.sport" | "l4.dport" => {
            &[0, 22, 53, 80, 123, 443, 1024, 1234, 8080, 65535]
        }
        "tcp.flags" => &[0, 0x01, 0x02, 0x04, 0x10, 0x12, 0x18, 0x11, 0xff],
        "tcp.window" => &[0, 512, 8192, 65535],
        "tcp.seq" | "tcp.ack" => &[0, 1, 1000, 0x8000_0000, 0xffff_ffff],
        "udp.len" => &[8, 12, 20, 24, 100],
        "icmp.type" => &[0, 3, 8, 11],
        "icmpv6.type" => &[1, 128, 129, 133, 134, 135, 136],
        "icmp.code" | "icmpv6.code" => &[0, 1, 3, 4],
        _ => &[0, 1],
    }
}

/// A TCP flag's name and bit.
pub(crate) const TCP_FLAGS: &[(&str, u128)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

/// The named constant for a value of `field`, when the language has one.
pub(crate) fn constant_name(field: &str, v: u128) -> Option<String> {
    let protocols: &[(&str, u128)] = &[
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmpv6", 58),
        ("gre", 47),
        ("esp", 50),
    ];
    let ethertypes: &[(&str, u128)] = &[
        ("ipv4", 0x0800),
        ("ipv6", 0x86dd),
        ("arp", 0x0806),
        ("vlan", 0x8100),
    ];
    let table = match field {
        "ipv4.proto" | "ipv6.nexthdr" | "ip.proto" => protocols,
        "eth.type" => ethertypes,
        "tcp.flags" if v != 0 => {
            let names: Vec<&str> = TCP_FLAGS
                .iter()
                .filter(|(_, b)| v & b != 0)
                .map(|(n, _)| *n)
                .collect();
            return Some(names.join("|"));
        }
        _ => return None,
    };
    table
        .iter()
        .find(|(_, x)| *x == v)
        .map(|(n, _)| n.to_string())
}

/// An IPv4 address as text.
pub(crate) fn v4_text(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

/// An IPv6 address as text, in the RFC 5952 form.
pub(crate) fn v6_text(a: u128) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

/// Keeps the top `len` of `width` bits of `v`.
pub(crate) fn prefix_of(v: u128, len: u32, width: u32) -> u128 {
    if len == 0 {
        0
    } else {
        let keep = (u128::MAX >> (128 - width)) & !((1u128 << (width - len)) - 1);
        v & keep
    }
}

/// Bytes as a `.nf` string literal, escaping everything but plain printable characters.
pub(crate) fn string_lit(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b" /.-_:".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s.push('"');
    s
}

/// Bytes as a `.nf` byte string (`0x...`).
pub(crate) fn bytes_lit(bytes: &[u8]) -> String {
    format!("0x{}", hex(bytes))
}
