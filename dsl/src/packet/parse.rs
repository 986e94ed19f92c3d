//! Frame parsing with the semantics of section 4 of the language reference.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{bytes_at, u16_at, u32_at, u8_at};

/// TPIDs that start a VLAN tag: 802.1Q and 802.1ad.
const VLAN_TPIDS: [u16; 2] = [0x8100, 0x88a8];
/// At most this many VLAN tags are parsed.
const MAX_VLAN_TAGS: usize = 2;
/// At most this many IPv6 extension headers are walked.
const MAX_IPV6_EXTS: usize = 6;

/// The Ethernet header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthHeader {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// `eth.type`: the innermost ethertype after at most two VLAN tags (a TPID when a tag is
    /// truncated or a third tag follows).
    pub ethertype: u16,
    /// The type field of the Ethernet header itself (bytes 12..14), a TPID when tagged.
    pub outer_type: u16,
}

/// One complete VLAN tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// The TPID that introduced the tag (0x8100 or 0x88A8).
    pub tpid: u16,
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits).
    pub id: u16,
    /// The type field that follows the tag.
    pub ethertype: u16,
}

/// An Ethernet/IPv4 ARP message (28 bytes present).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpHeader {
    /// Operation (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// The IPv4 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol field.
    pub proto: u8,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, the upper six bits of the TOS byte.
    pub dscp: u8,
    /// ECN, the lower two bits of the TOS byte.
    pub ecn: u8,
    /// Total length field.
    pub len: u16,
    /// Identification field.
    pub id: u16,
    /// Header length in 32-bit words (5..=15).
    pub ihl: u8,
    /// Don't-fragment flag.
    pub df: bool,
    /// More-fragments flag.
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Header checksum field.
    pub checksum: u16,
    /// Option bytes, `ihl * 4 - 20` of them.
    pub options: Vec<u8>,
}

/// The fixed IPv6 header with the extension headers that were walked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// `ipv6.nexthdr`: the upper-layer protocol after the extension headers; when the chain
    /// could not be walked to its end, the type of the header where walking stopped.
    pub nexthdr: u8,
    /// The next-header field of the fixed header itself.
    pub first_nexthdr: u8,
    /// Hop limit.
    pub hoplimit: u8,
    /// DSCP, the upper six bits of the traffic class.
    pub dscp: u8,
    /// ECN, the lower two bits of the traffic class.
    pub ecn: u8,
    /// Flow label (20 bits).
    pub flowlabel: u32,
    /// Payload length field.
    pub len: u16,
    /// The extension headers walked, outermost first (at most six, each complete).
    pub exts: Vec<Ipv6Ext>,
}

/// One IPv6 extension header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Ext {
    /// Its kind: 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment.
    pub kind: u8,
    /// Its next-header field.
    pub nexthdr: u8,
    /// Its second byte: Hdr Ext Len (reserved in a fragment header).
    pub len: u8,
    /// Routing header: segments left; 0 for other kinds.
    pub segleft: u8,
    /// Fragment header: offset in 8-byte units; 0 for other kinds.
    pub frag_offset: u16,
    /// Fragment header: the M (more fragments) flag; false for other kinds.
    pub more: bool,
    /// Fragment header: identification; 0 for other kinds.
    pub id: u32,
}

impl Ipv6Ext {
    /// The header's size in bytes: 8 for a fragment header, `(len + 1) * 8` otherwise.
    pub fn size(&self) -> usize {
        ext_size(self.kind, self.len)
    }
}

/// The TCP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Data offset in 32-bit words (5..=15).
    pub doff: u8,
    /// The eight flag bits: fin 0x01 syn 0x02 rst 0x04 psh 0x08 ack 0x10 urg 0x20 ece 0x40
    /// cwr 0x80.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Checksum field.
    pub checksum: u16,
    /// Urgent pointer.
    pub urg: u16,
    /// Option bytes, `doff * 4 - 20` of them.
    pub options: Vec<u8>,
}

/// The UDP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length field.
    pub len: u16,
    /// Checksum field.
    pub checksum: u16,
}

/// An ICMPv4 or ICMPv6 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpHeader {
    /// Message type.
    pub icmp_type: u8,
    /// Message code.
    pub code: u8,
    /// Checksum field.
    pub checksum: u16,
    /// Bytes 4..6 (the echo identifier); always present for ICMPv4, present for ICMPv6 when
    /// the frame has them.
    pub id: Option<u16>,
    /// Bytes 6..8 (the echo sequence number), present like `id`.
    pub seq: Option<u16>,
}

/// What a policy sees of one frame: each header present or absent, with its fields.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Headers {
    /// `pkt.len`: the frame's length in bytes.
    pub len: usize,
    /// The Ethernet header (frames of at least 14 bytes).
    pub eth: Option<EthHeader>,
    /// The outer VLAN tag (`vlan.id`, `vlan.pcp`); `vlan` is present when this is.
    pub vlan: Option<VlanTag>,
    /// The inner VLAN tag of a QinQ frame (`vlan.inner.id`).
    pub vlan_inner: Option<VlanTag>,
    /// The ARP message.
    pub arp: Option<ArpHeader>,
    /// The IPv4 header.
    pub ipv4: Option<Ipv4Header>,
    /// The IPv6 header.
    pub ipv6: Option<Ipv6Header>,
    /// `frag`: the IPv4 header has MF set or a non-zero offset, or a walked IPv6 fragment
    /// header has M set or a non-zero offset.
    pub frag: bool,
    /// The TCP header.
    pub tcp: Option<TcpHeader>,
    /// The UDP header.
    pub udp: Option<UdpHeader>,
    /// The ICMPv4 header (only inside IPv4).
    pub icmp: Option<IcmpHeader>,
    /// The ICMPv6 header (only inside IPv6).
    pub icmpv6: Option<IcmpHeader>,
    /// Where the L3 header (ARP, IPv4 or IPv6) starts, when one is present.
    pub l3_offset: Option<usize>,
    /// Where the L4 header (TCP, UDP, ICMP or ICMPv6) starts, when one is present.
    pub l4_offset: Option<usize>,
    /// Where the L4 payload starts (the base of `payload[A..B]`), when an L4 header is present.
    pub payload_offset: Option<usize>,
}

/// Parses `frame` the way section 4 of the language reference says a policy sees it. Never
/// panics and never reads past the frame's end; a header cut short is absent, and so is every
/// header after it.
pub fn parse_frame(frame: &[u8]) -> Headers {
    let mut h = Headers {
        len: frame.len(),
        ..Headers::default()
    };
    let Some(mut eth) = parse_eth(frame) else {
        return h;
    };
    let mut off = 14;
    let mut ethertype = eth.outer_type;
    let mut tags = Vec::new();
    while tags.len() < MAX_VLAN_TAGS && VLAN_TPIDS.contains(&ethertype) {
        // A truncated tag leaves `ethertype` at the TPID, so nothing after it is parsed.
        let (Some(tci), Some(inner)) = (u16_at(frame, off), u16_at(frame, off + 2)) else {
            break;
        };
        tags.push(VlanTag {
            tpid: ethertype,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            id: tci & 0x0fff,
            ethertype: inner,
        });
        ethertype = inner;
        off += 4;
    }
    eth.ethertype = ethertype;
    h.eth = Some(eth);
    let mut tags = tags.into_iter();
    h.vlan = tags.next();
    h.vlan_inner = tags.next();

    // The L4 protocol and offset, when an IP header allows an L4 header to be parsed.
    let l4 = match ethertype {
        0x0806 => {
            h.arp = parse_arp(frame, off);
            h.l3_offset = h.arp.as_ref().map(|_| off);
            None
        }
        0x0800 => parse_ipv4(frame, off, &mut h),
        0x86dd => parse_ipv6(frame, off, &mut h),
        _ => None,
    };
    if let Some((proto, at)) = l4 {
        parse_l4(frame, proto, at, &mut h);
    }
    h
}

/// The packet inside a tunnel whose outer level `outer` was parsed: after the outer IP
/// header when it carries IPv4 or IPv6 (protocol 4 or 41), or, with `through_udp`, after the
/// outer UDP header (GUE variant 1). `None` when there is no such inner IP header. Policies
/// see only the outermost level (section 4); `expect out` checks every level it names.
pub fn parse_inner(frame: &[u8], outer: &Headers, through_udp: bool) -> Option<Headers> {
    let at = if through_udp {
        outer.udp.as_ref()?;
        outer.payload_offset?
    } else {
        let l3 = outer.l3_offset?;
        let mut scratch = Headers {
            len: frame.len(),
            ..Headers::default()
        };
        let (proto, at) = if outer.ipv4.is_some() {
            parse_ipv4(frame, l3, &mut scratch)?
        } else {
            parse_ipv6(frame, l3, &mut scratch)?
        };
        if proto != 4 && proto != 41 {
            return None;
        }
        at
    };
    let mut h = Headers {
        len: frame.len(),
        ..Headers::default()
    };
    let l4 = match frame.get(at)? >> 4 {
        4 => parse_ipv4(frame, at, &mut h),
        6 => parse_ipv6(frame, at, &mut h),
        _ => return None,
    };
    h.l3_offset?;
    if let Some((proto, at)) = l4 {
        parse_l4(frame, proto, at, &mut h);
    }
    Some(h)
}

fn parse_eth(frame: &[u8]) -> Option<EthHeader> {
    Some(EthHeader {
        dst: bytes_at(frame, 0)?,
        src: bytes_at(frame, 6)?,
        ethertype: 0,
        outer_type: u16_at(frame, 12)?,
    })
}

fn parse_arp(frame: &[u8], off: usize) -> Option<ArpHeader> {
    // All 28 bytes must be present even though the first six are not recorded.
    bytes_at::<28>(frame, off)?;
    Some(ArpHeader {
        op: u16_at(frame, off + 6)?,
        sha: bytes_at(frame, off + 8)?,
        spa: Ipv4Addr::from(bytes_at::<4>(frame, off + 14)?),
        tha: bytes_at(frame, off + 18)?,
        tpa: Ipv4Addr::from(bytes_at::<4>(frame, off + 24)?),
    })
}

/// Parses the IPv4 header at `off` into `h`; returns the L4 protocol and offset when an L4
/// header may follow (not for non-first fragments).
fn parse_ipv4(frame: &[u8], off: usize, h: &mut Headers) -> Option<(u8, usize)> {
    let b: [u8; 20] = bytes_at(frame, off)?;
    let ihl = b[0] & 0x0f;
    let hdr_len = usize::from(ihl) * 4;
    if b[0] >> 4 != 4 || ihl < 5 {
        return None;
    }
    let options = frame.get(off + 20..off + hdr_len)?.to_vec();
    let flags = u16::from_be_bytes([b[6], b[7]]);
    let ip = Ipv4Header {
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        proto: b[9],
        ttl: b[8],
        dscp: b[1] >> 2,
        ecn: b[1] & 3,
        len: u16::from_be_bytes([b[2], b[3]]),
        id: u16::from_be_bytes([b[4], b[5]]),
        ihl,
        df: flags & 0x4000 != 0,
        mf: flags & 0x2000 != 0,
        frag_offset: flags & 0x1fff,
        checksum: u16::from_be_bytes([b[10], b[11]]),
        options,
    };
    h.frag = ip.mf || ip.frag_offset > 0;
    let first = ip.frag_offset == 0;
    let proto = ip.proto;
    h.ipv4 = Some(ip);
    h.l3_offset = Some(off);
    first.then_some((proto, off + hdr_len))
}

/// The size of an extension header of kind `kind` whose second byte is `len`.
pub(crate) fn ext_size(kind: u8, len: u8) -> usize {
    if kind == 44 {
        8
    } else {
        (usize::from(len) + 1) * 8
    }
}

/// Parses the IPv6 header at `off` and walks its extension headers into `h`; returns the
/// upper-layer protocol and offset when the chain ended normally at a first fragment or an
/// unfragmented packet.
fn parse_ipv6(frame: &[u8], off: usize, h: &mut Headers) -> Option<(u8, usize)> {
    let b: [u8; 40] = bytes_at(frame, off)?;
    if b[0] >> 4 != 6 {
        return None;
    }
    let tclass = (b[0] << 4) | (b[1] >> 4);
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[at..at + 16]);
        Ipv6Addr::from(a)
    };
    let mut ip = Ipv6Header {
        src: addr(8),
        dst: addr(24),
        nexthdr: b[6],
        first_nexthdr: b[6],
        hoplimit: b[7],
        dscp: tclass >> 2,
        ecn: tclass & 3,
        flowlabel: u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]]),
        len: u16::from_be_bytes([b[4], b[5]]),
        exts: Vec::new(),
    };
    h.l3_offset = Some(off);
    let mut at = off + 40;
    let mut upper = true;
    while matches!(ip.nexthdr, 0 | 43 | 60 | 44) {
        let kind = ip.nexthdr;
        let ext = if ip.exts.len() < MAX_IPV6_EXTS {
            parse_ext(frame, kind, at)
        } else {
            None
        };
        // A truncated header or a seventh one: `nexthdr` stays at its type and there is no L4.
        let Some(ext) = ext else {
            upper = false;
            break;
        };
        at += ext.size();
        ip.nexthdr = ext.nexthdr;
        let non_first = kind == 44 && ext.frag_offset > 0;
        if kind == 44 && (ext.more || ext.frag_offset > 0) {
            h.frag = true;
        }
        ip.exts.push(ext);
        if non_first {
            // What follows a non-first fragment header is data, not a header to walk.
            upper = false;
            break;
        }
    }
    let proto = ip.nexthdr;
    h.ipv6 = Some(ip);
    upper.then_some((proto, at))
}

/// Parses one complete extension header of kind `kind` at `at`, or `None` when it is cut short.
fn parse_ext(frame: &[u8], kind: u8, at: usize) -> Option<Ipv6Ext> {
    let len = u8_at(frame, at + 1)?;
    // The whole header must be present, not only the fields recorded.
    frame.get(at..at + ext_size(kind, len))?;
    let mut ext = Ipv6Ext {
        kind,
        nexthdr: u8_at(frame, at)?,
        len,
        segleft: 0,
        frag_offset: 0,
        more: false,
        id: 0,
    };
    match kind {
        43 => ext.segleft = u8_at(frame, at + 3)?,
        44 => {
            let word = u16_at(frame, at + 2)?;
            ext.frag_offset = word >> 3;
            ext.more = word & 1 != 0;
            ext.id = u32_at(frame, at + 4)?;
        }
        _ => {}
    }
    Some(ext)
}

/// Parses the L4 header of protocol `proto` at `at` into `h`, if it is complete.
fn parse_l4(frame: &[u8], proto: u8, at: usize, h: &mut Headers) {
    let hdr_len = match proto {
        6 => parse_tcp(frame, at).map(|t| {
            let len = usize::from(t.doff) * 4;
            h.tcp = Some(t);
            len
        }),
        17 => parse_udp(frame, at).map(|u| {
            h.udp = Some(u);
            8
        }),
        1 if h.ipv4.is_some() => parse_icmp(frame, at, 8).map(|i| {
            h.icmp = Some(i);
            8
        }),
        // The ICMPv6 header is present from 4 bytes on, but its payload (for `payload[A..B]`)
        // starts after the 4-byte message-specific field, as for ICMPv4: the echo id/seq or
        // the ND reserved word, so `payload[0..N]` means the same on both versions.
        58 if h.ipv6.is_some() => parse_icmp(frame, at, 4).map(|i| {
            h.icmpv6 = Some(i);
            8
        }),
        _ => None,
    };
    if let Some(len) = hdr_len {
        h.l4_offset = Some(at);
        h.payload_offset = Some(at + len);
    }
}

fn parse_tcp(frame: &[u8], at: usize) -> Option<TcpHeader> {
    let b: [u8; 20] = bytes_at(frame, at)?;
    let doff = b[12] >> 4;
    if doff < 5 {
        return None;
    }
    let options = frame.get(at + 20..at + usize::from(doff) * 4)?.to_vec();
    Some(TcpHeader {
        sport: u16::from_be_bytes([b[0], b[1]]),
        dport: u16::from_be_bytes([b[2], b[3]]),
        seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ack: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        doff,
        flags: b[13],
        window: u16::from_be_bytes([b[14], b[15]]),
        checksum: u16::from_be_bytes([b[16], b[17]]),
        urg: u16::from_be_bytes([b[18], b[19]]),
        options,
    })
}

fn parse_udp(frame: &[u8], at: usize) -> Option<UdpHeader> {
    let b: [u8; 8] = bytes_at(frame, at)?;
    Some(UdpHeader {
        sport: u16::from_be_bytes([b[0], b[1]]),
        dport: u16::from_be_bytes([b[2], b[3]]),
        len: u16::from_be_bytes([b[4], b[5]]),
        checksum: u16::from_be_bytes([b[6], b[7]]),
    })
}

/// Parses an ICMP header that needs `min` bytes to be present (8 for ICMPv4, 4 for ICMPv6).
fn parse_icmp(frame: &[u8], at: usize, min: usize) -> Option<IcmpHeader> {
    frame.get(at..at + min)?;
    Some(IcmpHeader {
        icmp_type: u8_at(frame, at)?,
        code: u8_at(frame, at + 1)?,
        checksum: u16_at(frame, at + 2)?,
        id: u16_at(frame, at + 4),
        seq: u16_at(frame, at + 6),
    })
}
