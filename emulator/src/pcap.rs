//! Captures: reading libpcap and pcapng files to replay through a program, writing what it
//! emits.
//!
//! The formats are the `pcap-file` crate's; this module keeps what nfcc asks beyond them:
//! Ethernet only (link type 1, its FCS bits ignored), a cap on a record's length, errors that
//! name the record at fault, and records read with the crate's raw parsers because its checked
//! ones refuse real captures (a snapshot length below a frame's wire length, as `tcpdump -s`
//! writes) and its pcapng timestamps ignore an interface's `if_tsresol`. Classic files are read
//! in both byte orders and both timestamp resolutions; pcapng files read their enhanced and
//! simple packet blocks, in every section and on every interface. Files are written classic,
//! little-endian, with microsecond timestamps.

use pcap_file::pcap::{PcapHeader, PcapParser, PcapWriter, RawPcapPacket};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::borrow::Cow;

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
    /// A pcapng block the format does not allow, as the parser words it.
    #[error("pcapng block after record {index} is malformed: {reason}")]
    Malformed {
        /// How many records were read before it.
        index: usize,
        /// What is wrong, in the parser's words.
        reason: String,
    },
    /// A pcapng packet on an interface no description block declared.
    #[error("record {index} names interface {interface}, which the file does not describe")]
    Interface {
        /// The record's index.
        index: usize,
        /// The interface id it names.
        interface: u32,
    },
}

/// The most bytes a record may hold (libpcap's `MAXIMUM_SNAPLEN`).
const MAX_RECORD: u32 = 262_144;

/// The first bytes of a pcapng file (its section header block's type).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads every record of a classic pcap or a pcapng file.
pub fn read(bytes: &[u8]) -> Result<Vec<Record>, PcapError> {
    if bytes.len() >= 4 && bytes[..4] == PCAPNG_MAGIC {
        return read_pcapng(bytes);
    }
    if bytes.len() < 24 {
        return Err(PcapError::TooShort(bytes.len()));
    }
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|_| {
        PcapError::Magic(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    })?;
    let header = parser.header();
    // The upper bits of the link-type field carry FCS flags, not the link type.
    let link = u32::from(header.datalink) & 0x0fff_ffff;
    if link != 1 {
        return Err(PcapError::LinkType(link));
    }
    let nanos = header.ts_resolution == TsResolution::NanoSecond;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let index = out.len();
        // A record claiming too many bytes is refused before the parser looks for them, so
        // a corrupt length is not reported as a truncated file.
        if let Some(b) = rest.get(8..12) {
            let b = [b[0], b[1], b[2], b[3]];
            let len = match header.endianness {
                Endianness::Big => u32::from_be_bytes(b),
                Endianness::Little => u32::from_le_bytes(b),
            };
            if len > MAX_RECORD {
                return Err(PcapError::Oversized { index, len });
            }
        }
        let (next, raw) = parser
            .next_raw_packet(rest)
            .map_err(|_| PcapError::Truncated { index })?;
        out.push(Record {
            ts_sec: raw.ts_sec,
            ts_usec: if nanos {
                raw.ts_frac / 1000
            } else {
                raw.ts_frac
            },
            orig_len: raw.orig_len,
            data: raw.data.into_owned(),
        });
        rest = next;
    }
    Ok(out)
}

/// The records of a pcapng file: enhanced packet blocks with their interface's timestamp
/// resolution, simple packet blocks (which carry no timestamp) at time zero.
fn read_pcapng(bytes: &[u8]) -> Result<Vec<Record>, PcapError> {
    let malformed = |index: usize, e: pcap_file::PcapError| match e {
        pcap_file::PcapError::IncompleteBuffer => PcapError::Truncated { index },
        e => PcapError::Malformed {
            index,
            reason: e.to_string(),
        },
    };
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| malformed(0, e))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let index = out.len();
        let (next, block) = parser.next_block(rest).map_err(|e| malformed(index, e))?;
        rest = next;
        let (interface, stamp, orig_len, data) = match block {
            Block::EnhancedPacket(p) => (
                p.interface_id,
                // The crate hands the block's raw 64-bit timestamp as nanoseconds whatever
                // the interface's resolution: the units are converted below.
                u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX),
                p.original_len,
                p.data,
            ),
            Block::SimplePacket(p) => {
                // The block's data runs to its padded end; the frame is the first
                // `original_len` bytes of it (or all of it, when the snapshot cut it short).
                let mut data = p.data.into_owned();
                data.truncate(p.original_len as usize);
                (0, 0, p.original_len, Cow::Owned(data))
            }
            Block::InterfaceDescription(i) => {
                let link = u32::from(i.linktype) & 0x0fff_ffff;
                if link != 1 {
                    return Err(PcapError::LinkType(link));
                }
                continue;
            }
            _ => continue,
        };
        let Some(desc) = parser.interfaces().get(interface as usize) else {
            return Err(PcapError::Interface { index, interface });
        };
        if data.len() > MAX_RECORD as usize {
            return Err(PcapError::Oversized {
                index,
                len: data.len() as u32,
            });
        }
        let resol = desc.options.iter().find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        });
        let (ts_sec, ts_usec) = split_stamp(stamp, resol.unwrap_or(6));
        out.push(Record {
            ts_sec,
            ts_usec,
            orig_len,
            data: data.into_owned(),
        });
    }
    Ok(out)
}

/// Seconds and microseconds of a pcapng timestamp in units of `if_tsresol` (its top bit set:
/// a negative power of two; clear: of ten).
fn split_stamp(stamp: u64, tsresol: u8) -> (u32, u32) {
    let exp = u32::from(tsresol & 0x7f);
    let per_sec: u128 = if tsresol & 0x80 != 0 {
        1u128.checked_shl(exp).unwrap_or(u128::MAX)
    } else {
        10u128.checked_pow(exp).unwrap_or(u128::MAX)
    };
    let stamp = u128::from(stamp);
    let sec = stamp / per_sec;
    let usec = (stamp % per_sec) * 1_000_000 / per_sec;
    (u32::try_from(sec).unwrap_or(u32::MAX), usec as u32)
}

/// Writes records as a little-endian, microsecond, Ethernet pcap file.
pub fn write(records: &[Record]) -> Vec<u8> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: MAX_RECORD,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    // Writing into a Vec cannot fail, so neither can the crate's writer: an error here would
    // be a bug in it, and the bytes written so far are still returned.
    let Ok(mut w) = PcapWriter::with_header(Vec::new(), header) else {
        return Vec::new();
    };
    for r in records {
        // Raw records keep the stamp exactly as given; the wire length is never below the
        // captured length, which readers (ours, the crate's, libpcap's) refuse.
        let raw = RawPcapPacket {
            ts_sec: r.ts_sec,
            ts_frac: r.ts_usec,
            incl_len: r.data.len() as u32,
            orig_len: r.orig_len.max(r.data.len() as u32),
            data: Cow::Borrowed(&r.data),
        };
        if w.write_raw_packet(&raw).is_err() {
            break;
        }
    }
    w.into_writer()
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
    fn the_file_header_is_libpcaps_and_records_follow_it() {
        let f = write(&[Record {
            ts_sec: 0x0102_0304,
            ts_usec: 999_999,
            orig_len: 1,
            data: vec![7, 8],
        }]);
        let header: Vec<u8> = [0xa1b2_c3d4u32.to_le_bytes().as_slice(), &[2, 0, 4, 0]]
            .concat()
            .into_iter()
            .chain([0; 8])
            .chain(262_144u32.to_le_bytes())
            .chain(1u32.to_le_bytes())
            .collect();
        assert_eq!(f[..24], header[..]);
        // The wire length is raised to the captured length; the stamp is kept as given.
        let rec: Vec<u8> = [0x0102_0304u32, 999_999, 2, 2]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .chain([7, 8])
            .collect();
        assert_eq!(f[24..], rec[..]);
        assert_eq!(write(&[]), header);
    }

    #[test]
    fn a_snapshot_shorter_than_the_wire_length_is_read() {
        // tcpdump -s 4: the header's snaplen is below the frames' wire length.
        let mut f = write(&[Record {
            ts_sec: 1,
            ts_usec: 0,
            orig_len: 1500,
            data: vec![1, 2, 3, 4],
        }]);
        f[16..20].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(read(&f).map(|r| r[0].orig_len), Ok(1500));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert_eq!(read(b"hello"), Err(PcapError::TooShort(5)));
        assert!(matches!(read(&[0u8; 24]), Err(PcapError::Magic(0))));
        let mut f = write(&[Record {
            ts_sec: 0,
            ts_usec: 0,
            orig_len: 4,
            data: vec![1, 2, 3, 4],
        }]);
        f.truncate(f.len() - 1);
        assert_eq!(read(&f), Err(PcapError::Truncated { index: 0 }));
        f.truncate(30);
        assert_eq!(read(&f), Err(PcapError::Truncated { index: 0 }));
        let mut raw = write(&[]);
        raw[20] = 101;
        assert_eq!(read(&raw), Err(PcapError::LinkType(101)));
        // FCS flags in the upper bits do not change the link type.
        raw[20] = 1;
        raw[23] = 0x10;
        assert_eq!(read(&raw), Ok(vec![]));
        let mut big = write(&[Record {
            ts_sec: 0,
            ts_usec: 0,
            orig_len: 4,
            data: vec![1, 2, 3, 4],
        }]);
        big[32..36].copy_from_slice(&300_000u32.to_le_bytes());
        assert_eq!(
            read(&big),
            Err(PcapError::Oversized {
                index: 0,
                len: 300_000
            })
        );
    }

    /// A little-endian pcapng block: type, total length, body (padded), total length.
    fn block(ty: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = (body.len() + 12) as u32;
        [ty.to_le_bytes(), len.to_le_bytes()]
            .concat()
            .into_iter()
            .chain(body)
            .chain(len.to_le_bytes())
            .collect()
    }

    /// A section header, then an interface of link type `link` with `tsresol` if given.
    fn pcapng_head(link: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut idb = link.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65_535u32.to_le_bytes());
        if let Some(r) = tsresol {
            idb.extend_from_slice(&[9, 0, 1, 0, r, 0, 0, 0]);
        }
        idb.extend_from_slice(&[0, 0, 0, 0]);
        [block(0x0a0d_0d0a, &shb), block(1, &idb)].concat()
    }

    /// An enhanced packet block on interface `iface`.
    fn epb(iface: u32, stamp: u64, orig_len: u32, data: &[u8]) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend_from_slice(&((stamp >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(stamp as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&orig_len.to_le_bytes());
        b.extend_from_slice(data);
        block(6, &b)
    }

    #[test]
    fn pcapng_packets_are_read_with_their_interfaces_resolution() {
        // Default resolution: microseconds.
        let mut f = pcapng_head(1, None);
        f.extend(epb(0, 5_000_123, 60, &[1, 2, 3]));
        // A simple packet block: padded data cut to its wire length, no timestamp.
        let mut spb = 2u32.to_le_bytes().to_vec();
        spb.extend_from_slice(&[0xaa, 0xbb]);
        f.extend(block(3, &spb));
        assert_eq!(
            read(&f),
            Ok(vec![
                Record {
                    ts_sec: 5,
                    ts_usec: 123,
                    orig_len: 60,
                    data: vec![1, 2, 3]
                },
                Record {
                    ts_sec: 0,
                    ts_usec: 0,
                    orig_len: 2,
                    data: vec![0xaa, 0xbb]
                },
            ])
        );
        // Nanoseconds (10^-9) and a power of two (2^-10).
        let mut f = pcapng_head(1, Some(9));
        f.extend(epb(0, 7_000_004_999, 1, &[9]));
        assert_eq!(read(&f).map(|r| (r[0].ts_sec, r[0].ts_usec)), Ok((7, 4)));
        let mut f = pcapng_head(1, Some(0x80 | 10));
        f.extend(epb(0, 3 * 1024 + 512, 1, &[9]));
        assert_eq!(
            read(&f).map(|r| (r[0].ts_sec, r[0].ts_usec)),
            Ok((3, 500_000))
        );
    }

    #[test]
    fn bad_pcapng_files_say_what_is_wrong() {
        assert_eq!(read(&pcapng_head(101, None)), Err(PcapError::LinkType(101)));
        let mut f = pcapng_head(1, None);
        f.extend(epb(1, 0, 1, &[9]));
        assert_eq!(
            read(&f),
            Err(PcapError::Interface {
                index: 0,
                interface: 1
            })
        );
        let mut f = pcapng_head(1, None);
        f.extend(epb(0, 0, 1, &[9]));
        f.extend(epb(0, 0, 1, &[9]));
        f.truncate(f.len() - 2);
        assert_eq!(read(&f), Err(PcapError::Truncated { index: 1 }));
        assert_eq!(
            read(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]),
            Err(PcapError::Truncated { index: 0 })
        );
        // A block whose length is not a multiple of four.
        let mut f = pcapng_head(1, None);
        f.extend([6, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0]);
        assert!(
            matches!(read(&f), Err(PcapError::Malformed { index: 0, .. })),
            "{:?}",
            read(&f)
        );
    }
}
