//! Building real frames from packet literals: defaults, lengths and checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    arg_schema, fold, pseudo_sum, sum_words, ArgType, ArgValue, BuildError, LayerKind, LayerSpec,
};

/// Default source MAC address of the implied Ethernet header.
pub(crate) const DEFAULT_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Default destination MAC address.
pub(crate) const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Ethertype written when the next layer does not determine one (IEEE local experimental), so
/// that nothing mistakes what follows for a known protocol.
const EXPERIMENTAL_ETHERTYPE: u16 = 0x88b5;
/// IPv6 "no next header", written when the next layer does not determine one; 0 would make
/// the parser read whatever follows as a hop-by-hop header.
const NO_NEXT_HEADER: u8 = 59;

/// The arguments of one layer after checking them against [`arg_schema`].
pub(crate) struct Args<'a> {
    kind: LayerKind,
    vals: Vec<(&'static str, &'a ArgValue)>,
}

impl<'a> Args<'a> {
    /// Checks `spec`'s arguments: known names, right shapes, integers within their width, no
    /// name twice. Used by `build` and by `check_out`, neither of which trusts the checker.
    pub(crate) fn new(spec: &'a LayerSpec) -> Result<Args<'a>, BuildError> {
        let kind = spec.kind;
        let schema = arg_schema(kind);
        let mut vals: Vec<(&'static str, &'a ArgValue)> = Vec::new();
        for (name, value) in &spec.args {
            let Some(&(known, ty)) = schema.iter().find(|(n, _)| n == name) else {
                return Err(BuildError::UnknownArg {
                    layer: kind,
                    arg: name.clone(),
                });
            };
            if !value.fits_type(ty) {
                return Err(BuildError::WrongArgType {
                    layer: kind,
                    arg: name.clone(),
                    expected: ty,
                    got: value.to_string(),
                });
            }
            if let ArgValue::Int(v) = *value {
                let bits = match ty {
                    ArgType::Uint(bits) => bits,
                    _ => 8,
                };
                if bits < 128 && v >> bits != 0 {
                    return Err(BuildError::ValueTooWide {
                        layer: kind,
                        arg: name.clone(),
                        value: v,
                        bits,
                    });
                }
                if ty == ArgType::ExtKind && !matches!(v, 0 | 43 | 60 | 44) {
                    return Err(BuildError::BadExtKind(v));
                }
            }
            if vals.iter().any(|(n, _)| *n == known) {
                return Err(BuildError::DuplicateArg {
                    layer: kind,
                    arg: name.clone(),
                });
            }
            vals.push((known, value));
        }
        Ok(Args { kind, vals })
    }

    /// The arguments in source order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &'a ArgValue)> + '_ {
        self.vals.iter().copied()
    }

    fn get(&self, name: &str) -> Option<&'a ArgValue> {
        self.vals.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer argument; `new` has checked it fits the field, so callers narrow it with
    /// `as` without losing bits.
    fn int(&self, name: &str) -> Option<u128> {
        match self.get(name) {
            Some(ArgValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    fn int_or(&self, name: &str, default: u128) -> u128 {
        self.int(name).unwrap_or(default)
    }

    fn mac_or(&self, name: &str, default: [u8; 6]) -> [u8; 6] {
        match self.get(name) {
            Some(ArgValue::Mac(m)) => *m,
            _ => default,
        }
    }

    fn ipv4_or(&self, name: &str, default: Ipv4Addr) -> Ipv4Addr {
        match self.get(name) {
            Some(ArgValue::Ipv4(a)) => *a,
            _ => default,
        }
    }

    fn ipv6_or(&self, name: &str, default: Ipv6Addr) -> Ipv6Addr {
        match self.get(name) {
            Some(ArgValue::Ipv6(a)) => *a,
            _ => default,
        }
    }

    fn bytes(&self, name: &str) -> &'a [u8] {
        match self.get(name) {
            Some(ArgValue::Bytes(b)) => b,
            _ => &[],
        }
    }

    fn require(&self, name: &'static str) -> Result<u128, BuildError> {
        self.int(name).ok_or(BuildError::MissingArg {
            layer: self.kind,
            arg: name,
        })
    }
}

/// Whether `kind` may come after `prev`, the previous layer other than `raw`.
fn may_follow(prev: LayerKind, kind: LayerKind) -> bool {
    use LayerKind::*;
    match kind {
        Eth => false,
        Vlan | Arp => matches!(prev, Eth | Vlan),
        Ipv4 | Ipv6 => matches!(prev, Eth | Vlan | Ipv4 | Ipv6 | Ipv6Ext | Gue),
        Ipv6Ext => matches!(prev, Ipv6 | Ipv6Ext),
        Tcp | Udp | Icmp | Icmpv6 => matches!(prev, Ipv4 | Ipv6 | Ipv6Ext),
        Gue => matches!(prev, Udp),
        Payload | Raw | Truncate => true,
    }
}

/// The IP protocol number announcing `next`, if `next` is a layer that has one.
fn proto_of(next: Option<&Args<'_>>) -> Option<u8> {
    let next = next?;
    Some(match next.kind {
        LayerKind::Tcp => 6,
        LayerKind::Udp => 17,
        LayerKind::Icmp => 1,
        LayerKind::Icmpv6 => 58,
        LayerKind::Ipv4 => 4,
        LayerKind::Ipv6 => 41,
        LayerKind::Ipv6Ext => next.int("kind")? as u8,
        _ => return None,
    })
}

/// The ethertype (or TPID) announcing `next`, if `next` is a layer that has one.
fn ethertype_of(next: Option<&Args<'_>>) -> Option<u16> {
    let next = next?;
    Some(match next.kind {
        LayerKind::Vlan => next.int_or("tpid", 0x8100) as u16,
        LayerKind::Ipv4 => 0x0800,
        LayerKind::Ipv6 => 0x86dd,
        LayerKind::Arp => 0x0806,
        _ => return None,
    })
}

/// Pads `options` with zero bytes to a multiple of four.
fn padded(options: &[u8]) -> Vec<u8> {
    let mut v = options.to_vec();
    v.resize(options.len().div_ceil(4) * 4, 0);
    v
}

/// The header length in 32-bit words for `options`, unless `explicit` gives it.
fn header_words(kind: LayerKind, explicit: Option<u128>, options: &[u8]) -> Result<u8, BuildError> {
    match explicit {
        Some(w) => Ok(w as u8),
        None if options.len() <= 40 => Ok(((20 + options.len()) / 4) as u8),
        None => Err(BuildError::OptionsTooLong {
            layer: kind,
            len: options.len(),
        }),
    }
}

/// Builds the frame a packet literal describes: `eth` implied when not first, defaults filled
/// in, and unless given explicitly the type/protocol fields from the next layer, lengths from
/// what follows and checksums over the finished frame; `truncate(N)` applies last.
///
/// Every argument is checked against [`arg_schema`] again here, so a literal the checker did
/// not validate gives a [`BuildError`], never a panic.
pub fn build(layers: &[LayerSpec]) -> Result<Vec<u8>, BuildError> {
    let implied_eth = LayerSpec::new(LayerKind::Eth);
    let mut specs: Vec<&LayerSpec> = Vec::with_capacity(layers.len() + 1);
    if layers.first().map(|l| l.kind) != Some(LayerKind::Eth) {
        specs.push(&implied_eth);
    }
    specs.extend(layers);
    let args = specs
        .iter()
        .map(|s| Args::new(s))
        .collect::<Result<Vec<_>, _>>()?;

    let mut prev = LayerKind::Eth;
    for (i, a) in args.iter().enumerate().skip(1) {
        if a.kind == LayerKind::Eth {
            return Err(BuildError::EthNotFirst);
        }
        if a.kind == LayerKind::Truncate && i + 1 != args.len() {
            return Err(BuildError::TruncateNotLast);
        }
        if !may_follow(prev, a.kind) {
            return Err(BuildError::LayerOrder {
                layer: a.kind,
                prev,
            });
        }
        // Raw bytes are transparent to layer order; everything else, a payload included
        // (after which only payload, raw and truncate may follow), becomes the previous layer.
        if a.kind != LayerKind::Raw {
            prev = a.kind;
        }
    }

    // The frame, and where each layer starts in it.
    let mut frame = Vec::new();
    let mut starts = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        starts.push(frame.len());
        emit(&mut frame, a, args.get(i + 1))?;
    }

    // Lengths and checksums, innermost layer first, so that each covers finished bytes.
    let end = frame.len();
    for i in (0..args.len()).rev() {
        let start = starts[i];
        let ip = (0..i)
            .rev()
            .find(|&j| matches!(args[j].kind, LayerKind::Ipv4 | LayerKind::Ipv6))
            .map(|j| (args[j].kind, starts[j]));
        fix_up(&mut frame, &args[i], start, end, ip)?;
    }

    if let Some(last) = args.last().filter(|a| a.kind == LayerKind::Truncate) {
        let n = last.require("")?;
        if n > end as u128 {
            return Err(BuildError::TruncateTooLong { n, len: end });
        }
        frame.truncate(n as usize);
    }
    Ok(frame)
}

/// Appends the bytes of one layer, with zero where a length or checksum is filled in later.
fn emit(frame: &mut Vec<u8>, a: &Args<'_>, next: Option<&Args<'_>>) -> Result<(), BuildError> {
    match a.kind {
        LayerKind::Eth => {
            frame.extend(a.mac_or("dst", DEFAULT_DST_MAC));
            frame.extend(a.mac_or("src", DEFAULT_SRC_MAC));
            let ty = ethertype_of(next).unwrap_or(EXPERIMENTAL_ETHERTYPE);
            frame.extend((a.int_or("type", u128::from(ty)) as u16).to_be_bytes());
        }
        LayerKind::Vlan => {
            let tci = (a.int_or("pcp", 0) << 13) | (a.int_or("dei", 0) << 12) | a.int_or("id", 0);
            frame.extend((tci as u16).to_be_bytes());
            let ty = ethertype_of(next).unwrap_or(EXPERIMENTAL_ETHERTYPE);
            frame.extend((a.int_or("type", u128::from(ty)) as u16).to_be_bytes());
        }
        LayerKind::Arp => {
            frame.extend([0, 1, 0x08, 0x00, 6, 4]);
            frame.extend((a.int_or("op", 1) as u16).to_be_bytes());
            frame.extend(a.mac_or("sha", DEFAULT_SRC_MAC));
            frame.extend(a.ipv4_or("spa", Ipv4Addr::new(192, 0, 2, 1)).octets());
            frame.extend(a.mac_or("tha", [0; 6]));
            frame.extend(a.ipv4_or("tpa", Ipv4Addr::new(192, 0, 2, 2)).octets());
        }
        LayerKind::Ipv4 => {
            let options = padded(a.bytes("options"));
            let ihl = header_words(a.kind, a.int("ihl"), &options)?;
            let mut tos = a.int_or("tos", 0) as u8;
            if let Some(dscp) = a.int("dscp") {
                tos = (tos & 0x03) | ((dscp as u8) << 2);
            }
            if let Some(ecn) = a.int("ecn") {
                tos = (tos & 0xfc) | ecn as u8;
            }
            let flags = (a.int_or("df", 0) << 14) | (a.int_or("mf", 0) << 13);
            let flags = flags | a.int_or("frag_offset", 0);
            let proto = u128::from(proto_of(next).unwrap_or(0));
            frame.extend([0x40 | ihl, tos]);
            frame.extend((a.int_or("len", 0) as u16).to_be_bytes());
            frame.extend((a.int_or("id", 0) as u16).to_be_bytes());
            frame.extend((flags as u16).to_be_bytes());
            frame.extend([a.int_or("ttl", 64) as u8, a.int_or("proto", proto) as u8]);
            frame.extend((a.int_or("checksum", 0) as u16).to_be_bytes());
            frame.extend(a.ipv4_or("src", Ipv4Addr::new(192, 0, 2, 1)).octets());
            frame.extend(a.ipv4_or("dst", Ipv4Addr::new(192, 0, 2, 2)).octets());
            frame.extend(options);
        }
        LayerKind::Ipv6 => {
            let tclass = (a.int_or("dscp", 0) << 2) | a.int_or("ecn", 0);
            let word0 = (6 << 28) | (tclass << 20) | a.int_or("flowlabel", 0);
            let nexthdr = u128::from(proto_of(next).unwrap_or(NO_NEXT_HEADER));
            frame.extend((word0 as u32).to_be_bytes());
            frame.extend((a.int_or("len", 0) as u16).to_be_bytes());
            frame.extend([
                a.int_or("nexthdr", nexthdr) as u8,
                a.int_or("hoplimit", 64) as u8,
            ]);
            let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
            let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
            frame.extend(a.ipv6_or("src", src).octets());
            frame.extend(a.ipv6_or("dst", dst).octets());
        }
        LayerKind::Ipv6Ext => emit_ext(frame, a, next)?,
        LayerKind::Tcp => {
            let options = padded(a.bytes("options"));
            let doff = header_words(a.kind, a.int("doff"), &options)?;
            frame.extend((a.int_or("sport", 20000) as u16).to_be_bytes());
            frame.extend((a.int_or("dport", 80) as u16).to_be_bytes());
            frame.extend((a.int_or("seq", 0) as u32).to_be_bytes());
            frame.extend((a.int_or("ack", 0) as u32).to_be_bytes());
            frame.extend([doff << 4, a.int_or("flags", 0x02) as u8]);
            frame.extend((a.int_or("window", 8192) as u16).to_be_bytes());
            frame.extend((a.int_or("checksum", 0) as u16).to_be_bytes());
            frame.extend((a.int_or("urg", 0) as u16).to_be_bytes());
            frame.extend(options);
        }
        LayerKind::Udp => {
            frame.extend((a.int_or("sport", 20000) as u16).to_be_bytes());
            frame.extend((a.int_or("dport", 53) as u16).to_be_bytes());
            frame.extend((a.int_or("len", 0) as u16).to_be_bytes());
            frame.extend((a.int_or("checksum", 0) as u16).to_be_bytes());
        }
        LayerKind::Icmp | LayerKind::Icmpv6 => {
            let echo = if a.kind == LayerKind::Icmp { 8 } else { 128 };
            frame.extend([a.int_or("type", echo) as u8, a.int_or("code", 0) as u8]);
            frame.extend((a.int_or("checksum", 0) as u16).to_be_bytes());
            frame.extend((a.int_or("id", 0) as u16).to_be_bytes());
            frame.extend((a.int_or("seq", 0) as u16).to_be_bytes());
        }
        // Variant 1: no GUE header, the inner IP header follows.
        LayerKind::Gue => {}
        LayerKind::Payload | LayerKind::Raw => frame.extend(a.bytes("")),
        LayerKind::Truncate => {}
    }
    Ok(())
}

/// Appends one IPv6 extension header.
fn emit_ext(frame: &mut Vec<u8>, a: &Args<'_>, next: Option<&Args<'_>>) -> Result<(), BuildError> {
    let kind = a.require("kind")? as u8;
    let allowed: &[&str] = match kind {
        0 | 60 => &["kind", "nexthdr", "len"],
        43 => &["kind", "nexthdr", "len", "segleft"],
        _ => &["kind", "nexthdr", "offset", "more", "id"],
    };
    if let Some((arg, _)) = a.iter().find(|(n, _)| !allowed.contains(n)) {
        return Err(BuildError::ArgNotForKind {
            arg: arg.to_string(),
            kind,
        });
    }
    let nexthdr = u128::from(proto_of(next).unwrap_or(NO_NEXT_HEADER));
    let nexthdr = a.int_or("nexthdr", nexthdr) as u8;
    let len = a.int_or("len", 0) as u8;
    match kind {
        44 => {
            let word = (a.int_or("offset", 0) << 3) | a.int_or("more", 0);
            frame.extend([nexthdr, 0]);
            frame.extend((word as u16).to_be_bytes());
            frame.extend((a.int_or("id", 0) as u32).to_be_bytes());
        }
        43 => {
            let size = (usize::from(len) + 1) * 8;
            let start = frame.len();
            frame.extend([nexthdr, len, 0, a.int_or("segleft", 0) as u8]);
            frame.resize(start + size, 0);
        }
        _ => {
            frame.extend([nexthdr, len]);
            // Fill the rest with padding options so the header is well formed: PadN carries
            // at most 255 bytes of data, and a single leftover byte needs Pad1.
            let mut rest = (usize::from(len) + 1) * 8 - 2;
            while rest > 0 {
                if rest == 1 {
                    frame.push(0);
                    break;
                }
                let n = rest.min(257);
                frame.extend([1, (n - 2) as u8]);
                frame.extend(std::iter::repeat_n(0, n - 2));
                rest -= n;
            }
        }
    }
    Ok(())
}

/// Writes a big-endian 16-bit value at `at`; the offsets come from `emit`, so they are in range.
fn put16(frame: &mut [u8], at: usize, v: u16) {
    if let Some(slot) = frame.get_mut(at..at + 2) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

/// The one's-complement checksum of an L4 segment at `start..end` with its checksum field zero,
/// including the pseudo-header of the enclosing IP header at `ip` (when `pseudo` is set).
fn l4_checksum(
    frame: &[u8],
    start: usize,
    end: usize,
    proto: u8,
    ip: Option<(LayerKind, usize)>,
    pseudo: bool,
) -> u16 {
    let segment = frame.get(start..end).unwrap_or(&[]);
    let mut acc = sum_words(0, segment);
    if let (true, Some((kind, at))) = (pseudo, ip) {
        let addrs = match kind {
            LayerKind::Ipv4 => frame.get(at + 12..at + 20),
            _ => frame.get(at + 8..at + 40),
        };
        acc += pseudo_sum(addrs.unwrap_or(&[]), proto, end - start);
    }
    !fold(acc)
}

/// Fills in the lengths and checksums of the layer at `start` whose content runs to `end`;
/// `ip` is the nearest enclosing IP layer and its start.
fn fix_up(
    frame: &mut [u8],
    a: &Args<'_>,
    start: usize,
    end: usize,
    ip: Option<(LayerKind, usize)>,
) -> Result<(), BuildError> {
    let len16 = |len: usize| {
        u16::try_from(len).map_err(|_| BuildError::LengthOverflow { layer: a.kind, len })
    };
    let l4_proto = match a.kind {
        LayerKind::Tcp => Some((6, 16, true)),
        LayerKind::Udp => Some((17, 6, true)),
        LayerKind::Icmp => Some((1, 2, false)),
        LayerKind::Icmpv6 => Some((58, 2, true)),
        _ => None,
    };
    match a.kind {
        LayerKind::Ipv4 => {
            if !a.has("len") {
                put16(frame, start + 2, len16(end - start)?);
            }
            if !a.has("checksum") {
                // The header as written (20 bytes plus options), whatever `ihl` claims.
                let hdr_len = 20 + a.bytes("options").len().div_ceil(4) * 4;
                let sum = sum_words(0, frame.get(start..start + hdr_len).unwrap_or(&[]));
                put16(frame, start + 10, !fold(sum));
            }
        }
        LayerKind::Ipv6 if !a.has("len") => {
            put16(frame, start + 4, len16(end - start - 40)?);
        }
        _ => {}
    }
    if let Some((proto, field, pseudo)) = l4_proto {
        if a.kind == LayerKind::Udp && !a.has("len") {
            put16(frame, start + 4, len16(end - start)?);
        }
        if !a.has("checksum") {
            let mut sum = l4_checksum(frame, start, end, proto, ip, pseudo);
            if a.kind == LayerKind::Udp && sum == 0 {
                // A UDP checksum of zero means "none", so a computed zero is sent as 0xFFFF.
                sum = 0xffff;
            }
            put16(frame, start + field, sum);
        }
    }
    Ok(())
}
