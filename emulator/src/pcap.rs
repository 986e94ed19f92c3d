//! Classic libpcap files: reading captures to replay through a program, writing what it emits.
//!
//! Both byte orders and both timestamp resolutions (microseconds, nanoseconds) are read;
//! captures must be Ethernet (link type 1). pcapng is recognised and refused with the command
//! that converts it. Files are written little-endian with microsecond timestamps.

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Seconds of the timestamp.
    pub ts_sec: u32,
    /// Microseconds of the timestamp.
    pub ts_usec: u32,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Why a capture could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// Shorter than the 24-byte file header.
    #[error("not a pcap file: {0} bytes is shorter than a pcap header")]
    TooShort(usize),
    /// A pcapng file.
    #[error(
        "this is a pcapng file; convert it with `editcap -F pcap IN OUT` (or `tshark -F pcap`)"
    )]
    Pcapng,
    /// An unknown magic number.
    #[error("not a pcap file (magic {0:#010x})")]
    Magic(u32),
    /// A link type other than Ethernet.
    #[error("link type {0} is not Ethernet (1); only Ethernet captures can be replayed")]
    LinkType(u32),
    /// A record header or body runs past the end of the file.
    #[error("record {index} is truncated: the file ends inside it")]
    Truncated {
        /// The record's index (0-based).
        index: usize,
    },
    /// A record claims more bytes than any frame can have.
    #[error("record {index} claims {len} bytes, more than a pcap record may hold (262144)")]
    Oversized {
        /// The record's index.
        index: usize,
        /// Its claimed length.
        len: u32,
    },
}

/// Reads every record of a classic pcap file.
pub fn read(bytes: &[u8]) -> Result<Vec<Record>, PcapError> {
    if bytes.len() >= 4 && bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        return Err(PcapError::Pcapng);
    }
    if bytes.len() < 24 {
        return Err(PcapError::TooShort(bytes.len()));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (big, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        m => return Err(PcapError::Magic(m)),
    };
    let u32_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let link = u32_at(20) & 0x0fff_ffff;
    if link != 1 {
        return Err(PcapError::LinkType(link));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let index = out.len();
        if at + 16 > bytes.len() {
            return Err(PcapError::Truncated { index });
        }
        let (sec, frac, incl, orig) = (u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12));
        if incl > 262_144 {
            return Err(PcapError::Oversized { index, len: incl });
        }
        let start = at + 16;
        let end = start + incl as usize;
        if end > bytes.len() {
            return Err(PcapError::Truncated { index });
        }
        out.push(Record {
            ts_sec: sec,
            ts_usec: if nanos { frac / 1000 } else { frac },
            orig_len: orig,
            data: bytes[start..end].to_vec(),
        });
        at = end;
    }
    Ok(out)
}

/// Writes records as a little-endian, microsecond, Ethernet pcap file.
pub fn write(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for r in records {
        for w in [
            r.ts_sec,
            r.ts_usec,
            r.data.len() as u32,
            r.orig_len.max(r.data.len() as u32),
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&r.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_every_variant() {
        let recs = vec![
            Record {
                ts_sec: 1,
                ts_usec: 2,
                orig_len: 3,
                data: vec![1, 2, 3],
            },
            Record {
                ts_sec: 4,
                ts_usec: 5,
                orig_len: 60,
                data: vec![9; 14],
            },
        ];
        let f = write(&recs);
        assert_eq!(read(&f), Ok(recs.clone()));
        // Big-endian with nanosecond stamps.
        let mut be = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4];
        be.extend_from_slice(&[0; 8]);
        be.extend_from_slice(&262_144u32.to_be_bytes());
        be.extend_from_slice(&1u32.to_be_bytes());
        for w in [7u32, 3000, 2, 2] {
            be.extend_from_slice(&w.to_be_bytes());
        }
        be.extend_from_slice(&[0xaa, 0xbb]);
        assert_eq!(
            read(&be),
            Ok(vec![Record {
                ts_sec: 7,
                ts_usec: 3,
                orig_len: 2,
                data: vec![0xaa, 0xbb]
            }])
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert_eq!(read(b"hello"), Err(PcapError::TooShort(5)));
        assert_eq!(
            read(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]),
            Err(PcapError::Pcapng)
        );
        assert!(matches!(read(&[0u8; 24]), Err(PcapError::Magic(0))));
        let mut f = write(&[Record {
            ts_sec: 0,
            ts_usec: 0,
            orig_len: 4,
            data: vec![1, 2, 3, 4],
        }]);
        f.truncate(f.len() - 1);
        assert_eq!(read(&f), Err(PcapError::Truncated { index: 0 }));
        let mut raw = write(&[]);
        raw[20] = 101;
        assert_eq!(read(&raw), Err(PcapError::LinkType(101)));
    }
}
