//! The raw encoding of packet fields (see [`crate::ir::Encoding`]): which fields can be kept as
//! the packet's own bytes, how wide they are, and how a constant is converted to match. Lowering
//! converts a policy's constants with these at compile time; code generation uses the same
//! rules when it stores loaded fields and rewrites packets, so both depend on this module
//! rather than on each other.

use nfcc_dsl::checked::{Field, Header};

/// A header's bit in the packet vector's presence word (the parser sets it when the header
/// is there; conditions and classifier boxes test it).
pub fn header_bit(h: Header) -> u32 {
    1 << (h as u32)
}

/// Whether a field is whole, aligned bytes of the packet that can be kept raw.
pub fn raw_capable(f: Field) -> bool {
    use Field::*;
    matches!(
        f,
        EthSrc
            | EthDst
            | EthType
            | Ipv4Src
            | Ipv4Dst
            | Ipv4Len
            | Ipv4Id
            | Ipv6Src
            | Ipv6Dst
            | Ipv6Len
            | TcpSport
            | TcpDport
            | TcpWindow
            | TcpSeq
            | TcpAck
            | UdpSport
            | UdpDport
            | UdpLen
            | L4Sport
            | L4Dport
    )
}

/// The number of packet bytes a raw field occupies.
pub fn raw_width(f: Field) -> usize {
    f.key_width()
}

/// A value in raw encoding: its big-endian bytes (the field's width) read as little-endian.
pub fn to_raw(value: u128, width: usize) -> u128 {
    let be = value.to_be_bytes();
    let mut le = [0u8; 16];
    le[..width].copy_from_slice(&be[16 - width..]);
    u128::from_le_bytes(le)
}
