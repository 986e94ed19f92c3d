//! Checking emitted frames: `expect out` field matching and checksum validation.

use super::build::Args;
use super::parse::{ext_size, parse_frame, parse_inner, Headers, IcmpHeader};
use super::{fmt_bytes, fold, pseudo_sum, sum_words, ArgValue, LayerKind, LayerSpec};

/// Checks `frame` against an `expect out LAYERS` literal: every field named in `expected` must
/// equal the frame's, and the frame's IPv4 header checksum and L4 checksum must be valid
/// ([`checksums_valid`]).
///
/// Layers are matched by kind, in order: the first `vlan` is the outer tag, the second the
/// inner one, the n-th `ipv6ext` the n-th extension header walked. A field means the field of
/// that layer as [`build`](fn@super::build) writes it, so `eth(type=)` is the Ethernet
/// header's own type field and `ipv6(nexthdr=)` the fixed header's next-header field.
/// `payload(...)` compares every byte from the end of the previous layer to the end of the
/// frame, or of the IP packet when its length field ends it earlier (so that Ethernet padding
/// is not payload); `raw(...)` compares the bytes at that point, and `truncate(N)` the frame's
/// length. Returns every mismatch, each a line such as
/// `ipv4.dst: expected 10.0.0.9, got 10.0.0.1`.
///
/// Encapsulated packets are written as nested layers: an IP layer after the level's IP layer
/// (`ipv4(proto=4) / ipv4(...)`), or after `udp(...) / gue()`, starts the next level, read
/// from where the outer IP header (or UDP header) ends; its layers are named `inner ipv4`,
/// `inner tcp` (and `inner 2 ...` one level deeper), and each level's IPv4 header checksum
/// and L4 checksum must be valid too.
pub fn check_out(expected: &[LayerSpec], frame: &[u8]) -> Result<(), Vec<String>> {
    let mut levels = vec![parse_frame(frame)];
    let mut errs = Vec::new();
    // Where the last matched layer ends, which is where `payload` and `raw` bytes begin.
    let mut cursor: usize = if levels[0].eth.is_some() { 14 } else { 0 };
    let mut vlans = 0;
    let mut exts = 0;
    // Whether this level's IP layer was matched, and whether a `gue()` asks for the next
    // level after the UDP header.
    let (mut ip_seen, mut gue) = (false, false);
    for spec in expected {
        if spec.kind == LayerKind::Gue {
            if levels[levels.len() - 1].udp.is_none() {
                errs.push(format!(
                    "{}: expected a UDP-encapsulated packet, the frame has no udp header here",
                    prefixed(levels.len() - 1, "gue")
                ));
            }
            gue = true;
            continue;
        }
        if matches!(spec.kind, LayerKind::Ipv4 | LayerKind::Ipv6) && (ip_seen || gue) {
            let outer = &levels[levels.len() - 1];
            let Some(inner) = parse_inner(frame, outer, gue) else {
                errs.push(format!(
                    "{}: expected an encapsulated packet, the frame has none here",
                    prefixed(levels.len(), spec.kind.name())
                ));
                break;
            };
            levels.push(inner);
            (ip_seen, gue, vlans, exts) = (false, false, 0, 0);
        }
        let level = levels.len() - 1;
        let h = &levels[level];
        if matches!(spec.kind, LayerKind::Ipv4 | LayerKind::Ipv6) {
            ip_seen = true;
        }
        let args = match Args::new(spec) {
            Ok(args) => args,
            Err(e) => {
                errs.push(e.to_string());
                continue;
            }
        };
        match spec.kind {
            LayerKind::Payload | LayerKind::Raw => {
                let want = match args.iter().next() {
                    Some((_, ArgValue::Bytes(b))) => b.as_slice(),
                    _ => &[],
                };
                let end = if spec.kind == LayerKind::Payload {
                    ip_end(h).filter(|&e| e >= cursor).unwrap_or(frame.len())
                } else {
                    cursor.saturating_add(want.len())
                };
                let got = frame.get(cursor..end).unwrap_or(&[]);
                if got != want {
                    let name = spec.kind.name();
                    let (want, got) = (fmt_bytes(want), fmt_bytes(got));
                    errs.push(format!(
                        "{name}: expected {want}, got {got} (from byte {cursor})"
                    ));
                }
                cursor = end;
            }
            LayerKind::Truncate => {
                if let Some((_, ArgValue::Int(n))) = args.iter().next() {
                    if *n != frame.len() as u128 {
                        errs.push(format!("pkt.len: expected {n}, got {}", frame.len()));
                    }
                }
            }
            kind => {
                let nth = match kind {
                    LayerKind::Vlan => &mut vlans,
                    LayerKind::Ipv6Ext => &mut exts,
                    _ => &mut 0,
                };
                let label = prefixed(level, &label(kind, *nth));
                let Some((fields, end)) = fields(h, kind, *nth) else {
                    errs.push(format!("{label}: expected this header, the frame has none"));
                    *nth += 1;
                    continue;
                };
                *nth += 1;
                cursor = end;
                for (name, want) in args.iter() {
                    let Some((_, got)) = fields.iter().find(|(n, _)| *n == name) else {
                        continue;
                    };
                    let want = match (name, want) {
                        ("options", ArgValue::Bytes(b)) => {
                            let mut b = b.clone();
                            b.resize(b.len().div_ceil(4) * 4, 0);
                            ArgValue::Bytes(b)
                        }
                        _ => want.clone(),
                    };
                    if want != *got {
                        let (want, got) = (show(name, &want), show(name, got));
                        errs.push(format!("{label}.{name}: expected {want}, got {got}"));
                    }
                }
            }
        }
    }
    for (level, h) in levels.iter().enumerate() {
        let carrier = level + 1 < levels.len();
        level_checksums(frame, h, &prefixed(level, ""), carrier, &mut errs);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Where the IP packet ends according to its length field, when that lies within the frame;
/// bytes after it are link-layer padding, not payload.
fn ip_end(h: &Headers) -> Option<usize> {
    let l3 = h.l3_offset?;
    let end = match (&h.ipv4, &h.ipv6) {
        (Some(ip), _) => l3 + usize::from(ip.len),
        (None, Some(ip)) => l3 + 40 + usize::from(ip.len),
        (None, None) => return None,
    };
    (end <= h.len).then_some(end)
}

/// How a layer is named in messages: `vlan` and `vlan.inner` as in section 4, numbered
/// otherwise.
fn label(kind: LayerKind, nth: usize) -> String {
    match (kind, nth) {
        (LayerKind::Vlan, 1) => "vlan.inner".to_string(),
        (LayerKind::Vlan | LayerKind::Ipv6Ext, n) if n > 0 => format!("{kind} #{}", n + 1),
        _ => kind.name().to_string(),
    }
}

/// A layer's name in messages at tunnel level `level` (0 the outermost).
fn prefixed(level: usize, name: &str) -> String {
    match level {
        0 => name.to_string(),
        1 => format!("inner {name}").trim_end().to_string(),
        n => format!("inner {n} {name}").trim_end().to_string(),
    }
}

/// Formats a field value for a message; type-like and bit-field values read best in hex.
fn show(name: &str, v: &ArgValue) -> String {
    match v {
        ArgValue::Int(n) if matches!(name, "type" | "tpid" | "checksum" | "flags") => {
            format!("{n:#x}")
        }
        _ => v.to_string(),
    }
}

/// The fields of the `nth` header of `kind` in `h` under their argument names, and the offset
/// where that header ends; `None` when the frame has no such header.
fn fields(
    h: &Headers,
    kind: LayerKind,
    nth: usize,
) -> Option<(Vec<(&'static str, ArgValue)>, usize)> {
    use ArgValue::{Int, Mac};
    let int = |v: u32| Int(u128::from(v));
    let l3 = h.l3_offset.unwrap_or(0);
    Some(match kind {
        LayerKind::Eth => {
            let e = h.eth.as_ref()?;
            let f = vec![
                ("src", Mac(e.src)),
                ("dst", Mac(e.dst)),
                ("type", int(e.outer_type.into())),
            ];
            (f, 14)
        }
        LayerKind::Vlan => {
            let t = [&h.vlan, &h.vlan_inner].get(nth)?.as_ref()?;
            let f = vec![
                ("id", int(t.id.into())),
                ("pcp", int(t.pcp.into())),
                ("dei", int(t.dei.into())),
                ("tpid", int(t.tpid.into())),
                ("type", int(t.ethertype.into())),
            ];
            (f, 14 + 4 * (nth + 1))
        }
        LayerKind::Arp => {
            let a = h.arp.as_ref()?;
            let f = vec![
                ("op", int(a.op.into())),
                ("sha", Mac(a.sha)),
                ("spa", ArgValue::Ipv4(a.spa)),
                ("tha", Mac(a.tha)),
                ("tpa", ArgValue::Ipv4(a.tpa)),
            ];
            (f, l3 + 28)
        }
        LayerKind::Ipv4 => {
            let ip = h.ipv4.as_ref()?;
            let f = vec![
                ("src", ArgValue::Ipv4(ip.src)),
                ("dst", ArgValue::Ipv4(ip.dst)),
                ("ttl", int(ip.ttl.into())),
                ("proto", int(ip.proto.into())),
                ("ihl", int(ip.ihl.into())),
                ("tos", int(u32::from(ip.dscp) << 2 | u32::from(ip.ecn))),
                ("dscp", int(ip.dscp.into())),
                ("ecn", int(ip.ecn.into())),
                ("id", int(ip.id.into())),
                ("df", int(ip.df.into())),
                ("mf", int(ip.mf.into())),
                ("frag_offset", int(ip.frag_offset.into())),
                ("options", ArgValue::Bytes(ip.options.clone())),
                ("len", int(ip.len.into())),
                ("checksum", int(ip.checksum.into())),
            ];
            (f, l3 + usize::from(ip.ihl) * 4)
        }
        LayerKind::Ipv6 => {
            let ip = h.ipv6.as_ref()?;
            let f = vec![
                ("src", ArgValue::Ipv6(ip.src)),
                ("dst", ArgValue::Ipv6(ip.dst)),
                ("hoplimit", int(ip.hoplimit.into())),
                ("nexthdr", int(ip.first_nexthdr.into())),
                ("dscp", int(ip.dscp.into())),
                ("ecn", int(ip.ecn.into())),
                ("flowlabel", int(ip.flowlabel)),
                ("len", int(ip.len.into())),
            ];
            (f, l3 + 40)
        }
        LayerKind::Ipv6Ext => {
            let exts = &h.ipv6.as_ref()?.exts;
            let x = exts.get(nth)?;
            let f = vec![
                ("kind", int(x.kind.into())),
                ("nexthdr", int(x.nexthdr.into())),
                ("len", int(x.len.into())),
                ("offset", int(x.frag_offset.into())),
                ("more", int(x.more.into())),
                ("id", int(x.id)),
                ("segleft", int(x.segleft.into())),
            ];
            let end = l3
                + 40
                + exts
                    .iter()
                    .take(nth + 1)
                    .map(|x| ext_size(x.kind, x.len))
                    .sum::<usize>();
            (f, end)
        }
        LayerKind::Tcp => {
            let t = h.tcp.as_ref()?;
            let f = vec![
                ("sport", int(t.sport.into())),
                ("dport", int(t.dport.into())),
                ("seq", int(t.seq)),
                ("ack", int(t.ack)),
                ("flags", int(t.flags.into())),
                ("window", int(t.window.into())),
                ("urg", int(t.urg.into())),
                ("doff", int(t.doff.into())),
                ("options", ArgValue::Bytes(t.options.clone())),
                ("checksum", int(t.checksum.into())),
            ];
            (f, h.payload_offset?)
        }
        LayerKind::Udp => {
            let u = h.udp.as_ref()?;
            let f = vec![
                ("sport", int(u.sport.into())),
                ("dport", int(u.dport.into())),
                ("len", int(u.len.into())),
                ("checksum", int(u.checksum.into())),
            ];
            (f, h.payload_offset?)
        }
        LayerKind::Icmp => (icmp_fields(h.icmp.as_ref()?), h.payload_offset?),
        LayerKind::Icmpv6 => (icmp_fields(h.icmpv6.as_ref()?), h.payload_offset?),
        LayerKind::Gue | LayerKind::Payload | LayerKind::Raw | LayerKind::Truncate => return None,
    })
}

fn icmp_fields(i: &IcmpHeader) -> Vec<(&'static str, ArgValue)> {
    let int = |v: u16| ArgValue::Int(u128::from(v));
    let mut f = vec![
        ("type", int(i.icmp_type.into())),
        ("code", int(i.code.into())),
        ("checksum", int(i.checksum)),
    ];
    // Bytes 4..8 of an ICMPv6 header may be missing; then they cannot match anything.
    f.extend(i.id.map(|id| ("id", int(id))));
    f.extend(i.seq.map(|seq| ("seq", int(seq))));
    f
}

/// Checks the IPv4 header checksum and the L4 (TCP, UDP, ICMP, ICMPv6) checksum of `frame`,
/// whichever headers [`parse_frame`] finds; returns one message per problem, e.g.
/// `tcp checksum invalid (0x1234, should be 0x5678)`.
///
/// The L4 segment runs from the L4 header to the end the IP length field gives, and must lie
/// within the frame. The L4 checksum of a fragment is not checked: it covers the reassembled
/// datagram. A zero UDP checksum means "none" over IPv4 and is an error over IPv6. The IPv6
/// pseudo-header uses the header's destination even when a routing header is present.
pub fn checksums_valid(frame: &[u8]) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    level_checksums(frame, &parse_frame(frame), "", false, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// The checksum problems of one tunnel level, each message starting with `prefix` (`inner`
/// for a level inside a tunnel). A `carrier` level holds another (its UDP is a GUE tunnel's),
/// where a zero UDP checksum is allowed over IPv6 too (RFC 6935, as Linux's fou accepts).
fn level_checksums(frame: &[u8], h: &Headers, prefix: &str, carrier: bool, errs: &mut Vec<String>) {
    let sep = if prefix.is_empty() { "" } else { " " };
    let l3 = h.l3_offset.unwrap_or(0);
    if let Some(ip) = &h.ipv4 {
        let hdr = frame.get(l3..l3 + usize::from(ip.ihl) * 4).unwrap_or(&[]);
        let sum = sum_words(0, hdr);
        if fold(sum) != 0xffff {
            let should = !fold(sum.saturating_sub(u64::from(ip.checksum)));
            errs.push(format!(
                "{prefix}{sep}ipv4 header checksum invalid ({:#06x}, should be {should:#06x})",
                ip.checksum
            ));
        }
    }
    if let Err(e) = l4_checksum_valid(frame, h, carrier) {
        errs.push(format!("{prefix}{sep}{e}"));
    }
}

/// Checks the L4 checksum of a parsed frame, if it has an L4 header and is not a fragment.
fn l4_checksum_valid(frame: &[u8], h: &Headers, carrier: bool) -> Result<(), String> {
    let (Some(l3), Some(l4), Some(payload)) = (h.l3_offset, h.l4_offset, h.payload_offset) else {
        return Ok(());
    };
    if h.frag {
        return Ok(());
    }
    let (name, proto, field, pseudo) = if let Some(t) = &h.tcp {
        ("tcp", 6, t.checksum, true)
    } else if let Some(u) = &h.udp {
        ("udp", 17, u.checksum, true)
    } else if let Some(i) = &h.icmp {
        ("icmp", 1, i.checksum, false)
    } else if let Some(i) = &h.icmpv6 {
        ("icmpv6", 58, i.checksum, true)
    } else {
        return Ok(());
    };
    let (ip_name, end, addrs) = match (&h.ipv4, &h.ipv6) {
        (Some(ip), _) => (
            "ipv4",
            l3 + usize::from(ip.len),
            frame.get(l3 + 12..l3 + 20),
        ),
        (None, Some(ip)) => (
            "ipv6",
            l3 + 40 + usize::from(ip.len),
            frame.get(l3 + 8..l3 + 40),
        ),
        (None, None) => return Ok(()),
    };
    if end > frame.len() {
        return Err(format!(
            "cannot check the {name} checksum: the {ip_name} length field ends the packet at byte \
             {end}, past the end of the {}-byte frame",
            frame.len()
        ));
    }
    if end < payload {
        return Err(format!(
            "cannot check the {name} checksum: the {ip_name} length field ends the packet at byte \
             {end}, inside the {name} header"
        ));
    }
    let zero_udp = name == "udp" && field == 0;
    if zero_udp && (ip_name == "ipv4" || carrier) {
        // Over IPv4 a zero UDP checksum means the sender did not compute one; a tunnel's
        // may be zero over IPv6 too.
        return Ok(());
    }
    let segment = frame.get(l4..end).unwrap_or(&[]);
    let mut sum = sum_words(0, segment);
    if pseudo {
        sum += pseudo_sum(addrs.unwrap_or(&[]), proto, end - l4);
    }
    if fold(sum) == 0xffff && !zero_udp {
        return Ok(());
    }
    let mut should = !fold(sum.saturating_sub(u64::from(field)));
    if name == "udp" && should == 0 {
        should = 0xffff;
    }
    let why = if zero_udp {
        ", and ipv6 forbids a zero udp checksum"
    } else {
        ""
    };
    Err(format!(
        "{name} checksum invalid ({field:#06x}, should be {should:#06x}){why}"
    ))
}
