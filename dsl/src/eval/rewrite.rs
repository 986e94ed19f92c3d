//! Field rewrites of the evaluator (`set`, `dec ip.ttl`, `balance` without `encap`): the bytes
//! change and the IPv4 and L4 checksums are updated incrementally (RFC 1624), as the kernel's
//! `csum_replace` helpers do.

use crate::checked::{Family, Field, Scalar};
use crate::packet::Headers;

/// One's-complement incremental checksum update (RFC 1624 eqn. 3) for 16-bit words that
/// changed from `old` to `new`.
fn csum_update(csum: u16, old: &[u16], new: &[u16]) -> u16 {
    let mut sum = u32::from(!csum);
    for (o, n) in old.iter().zip(new) {
        sum += u32::from(!*o);
        sum = (sum & 0xffff) + (sum >> 16);
        sum += u32::from(*n);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn words(b: &[u8]) -> Vec<u16> {
    b.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect()
}

fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if at + 1 < b.len() {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// Where the L4 checksum lives and whether the pseudo-header covers addresses.
fn l4_csum(h: &Headers) -> Option<(usize, bool, bool)> {
    let l4 = h.l4_offset?;
    if h.tcp.is_some() {
        Some((l4 + 16, true, false))
    } else if h.udp.is_some() {
        Some((l4 + 6, true, true))
    } else if h.icmpv6.is_some() {
        Some((l4 + 2, true, false))
    } else if h.icmp.is_some() {
        Some((l4 + 2, false, false))
    } else {
        None
    }
}

/// Replaces bytes `at..at+new.len()` (a 16-bit-aligned span relative to the frame) and fixes the
/// checksums that cover them: the IPv4 header checksum when `ip_hdr`, the L4 checksum when
/// `l4` (a UDP checksum of zero stays zero; a result of zero becomes 0xFFFF for UDP).
fn patch(out: &mut [u8], h: &Headers, at: usize, new: &[u8], ip_hdr: bool, l4: bool) {
    if at + new.len() > out.len() {
        return;
    }
    let old = words(&out[at..at + new.len()]);
    let neww = words(new);
    if ip_hdr {
        if let (Some(l3), Some(_)) = (h.l3_offset, &h.ipv4) {
            if let Some(c) = get16(out, l3 + 10) {
                put16(out, l3 + 10, csum_update(c, &old, &neww));
            }
        }
    }
    if l4 {
        if let Some((pos, _, is_udp)) = l4_csum(h) {
            if let Some(c) = get16(out, pos) {
                if !(is_udp && c == 0) {
                    let mut n = csum_update(c, &old, &neww);
                    if is_udp && n == 0 {
                        n = 0xffff;
                    }
                    put16(out, pos, n);
                }
            }
        }
    }
    out[at..at + new.len()].copy_from_slice(new);
}

/// Applies `set FIELD = VALUE` to the frame.
pub(super) fn rewrite(out: &mut [u8], h: &Headers, f: Field, v: Scalar) {
    use Field::*;
    let l3 = h.l3_offset;
    match f {
        EthSrc | EthDst if h.eth.is_some() => {
            let b = v.bits.to_be_bytes();
            let at = if f == EthDst { 0 } else { 6 };
            if out.len() >= at + 6 {
                out[at..at + 6].copy_from_slice(&b[10..]);
            }
        }
        IpSrc | IpDst | Ipv4Src | Ipv4Dst | Ipv6Src | Ipv6Dst => {
            let src = matches!(f, IpSrc | Ipv4Src | Ipv6Src);
            let Some(l3) = l3 else { return };
            let pseudo = l4_csum(h).is_some_and(|(_, p, _)| p);
            if h.ipv4.is_some() && v.family == Family::V4 {
                let at = l3 + if src { 12 } else { 16 };
                patch(out, h, at, &(v.bits as u32).to_be_bytes(), true, pseudo);
            } else if h.ipv6.is_some() && v.family == Family::V6 {
                let at = l3 + if src { 8 } else { 24 };
                patch(out, h, at, &v.bits.to_be_bytes(), false, pseudo);
            }
        }
        L4Sport | L4Dport | TcpSport | TcpDport | UdpSport | UdpDport => {
            let src = matches!(f, L4Sport | TcpSport | UdpSport);
            let ok = match f {
                TcpSport | TcpDport => h.tcp.is_some(),
                UdpSport | UdpDport => h.udp.is_some(),
                _ => h.tcp.is_some() || h.udp.is_some(),
            };
            let Some(l4) = h.l4_offset.filter(|_| ok) else {
                return;
            };
            let at = l4 + if src { 0 } else { 2 };
            patch(out, h, at, &(v.bits as u16).to_be_bytes(), false, true);
        }
        IpTtl | Ipv4Ttl | Ipv6Hoplimit => {
            let Some(l3) = l3 else { return };
            if let (Some(ip), true) = (&h.ipv4, f != Ipv6Hoplimit) {
                patch(out, h, l3 + 8, &[v.bits as u8, ip.proto], true, false);
            } else if h.ipv6.is_some() && f != Ipv4Ttl {
                if let Some(b) = out.get_mut(l3 + 7) {
                    *b = v.bits as u8;
                }
            }
        }
        IpDscp | Ipv4Dscp | Ipv6Dscp => {
            let Some(l3) = l3 else { return };
            let dscp = (v.bits as u8) & 0x3f;
            if let (Some(ip), true) = (&h.ipv4, f != Ipv6Dscp) {
                let ver_ihl = out.get(l3).copied().unwrap_or(0x45);
                patch(out, h, l3, &[ver_ihl, (dscp << 2) | ip.ecn], true, false);
            } else if let (Some(ip), true) = (&h.ipv6, f != Ipv4Dscp) {
                // Traffic class straddles bytes 0 and 1: version(4) tc(8) flowlabel(20).
                let tc = (dscp << 2) | ip.ecn;
                if out.len() > l3 + 1 {
                    out[l3] = (out[l3] & 0xf0) | (tc >> 4);
                    out[l3 + 1] = (out[l3 + 1] & 0x0f) | (tc << 4);
                }
            }
        }
        _ => {}
    }
}
