//! How an nfcc program lays out its maps: the names every consumer looks maps up by, the
//! per-rule statistics (slot `i` counts rule `i`, the slot after the last rule the default;
//! each value `{packets: u64, bytes: u64}`, one per CPU on the host), and the sample records.
//!
//! The compiler writes objects to this layout; the emulator, the runtime, the testbeds and the
//! driver read them by it. One object holds the maps of every policy of a file, so each map's
//! object name is the policy's name, `_`, then the map's own name.

/// The per-rule statistics map's own name.
pub const STATS_MAP: &str = "nfcc_rule_stats";
/// The virtual-clock map's own name (deterministic tests: limiters read the time from it).
pub const CLOCK_MAP: &str = "nfcc_clock";
/// The sample ring buffer's own name.
pub const SAMPLES_MAP: &str = "nfcc_samples";
/// The redirect-targets map's own name: slot `i` holds the interface index of the policy's
/// `i`th redirect target, which the loader fills in (names resolve only on the box).
pub const REDIRECT_MAP: &str = "nfcc_redirect";

/// The AF_XDP sockets of `redirect xsk` (an XSKMAP indexed by receive queue).
pub const XSK_MAP: &str = "nfcc_xsks";

/// Entries of the AF_XDP socket map: the receive queues a socket may be bound on.
pub const XSK_QUEUES: u32 = 64;

/// The packet vector's map (a per-CPU scratch value the parser fills, host code only).
pub const SCRATCH_MAP: &str = "scratch";

/// Where in the packet vector the program leaves the statistics slot of the packet it just
/// decided (bytes 4..8, little-endian; the presence word below uses the low 16 bits of the
/// first 8). An engine learns the deciding rule from it in one lookup, whatever the number of
/// rules, instead of reading every rule's counter before and after the packet.
pub const DECIDED_OFFSET: usize = 4;

/// What an engine writes at [`DECIDED_OFFSET`] before a run, so the CPU that ran the packet is
/// the one whose value changed.
pub const UNDECIDED: u32 = u32::MAX;

/// The object's name for a policy's packet vector map.
pub fn scratch_map_name(policy: &str) -> String {
    object_map_name(policy, SCRATCH_MAP)
}

/// The decided slot in a packet vector's value (per CPU: `value_size` bytes each), from the
/// one CPU whose value no longer holds [`UNDECIDED`].
pub fn decided(lanes: &[u8], value_size: usize) -> Option<u32> {
    lanes
        .chunks_exact(value_size.max(DECIDED_OFFSET + 4))
        .map(|l| u32::from_le_bytes([l[4], l[5], l[6], l[7]]))
        .find(|&s| s != UNDECIDED)
}

/// A map's name in the object: the policy's name, then the map's own.
pub fn object_map_name(policy: &str, own: &str) -> String {
    format!("{policy}_{own}")
}

/// The object's name for a policy's per-rule statistics map.
pub fn stats_map_name(policy: &str) -> String {
    object_map_name(policy, STATS_MAP)
}

/// The object's name for a policy's virtual-clock map.
pub fn clock_map_name(policy: &str) -> String {
    object_map_name(policy, CLOCK_MAP)
}

/// The object's name for a policy's sample ring buffer.
pub fn samples_map_name(policy: &str) -> String {
    object_map_name(policy, SAMPLES_MAP)
}

/// The object's name for a policy's redirect-targets map.
pub fn redirect_map_name(policy: &str) -> String {
    object_map_name(policy, REDIRECT_MAP)
}

/// The object's name of `policy`'s AF_XDP socket map.
pub fn xsk_map_name(policy: &str) -> String {
    object_map_name(policy, XSK_MAP)
}

/// The own name of a `counter` declaration's map.
pub fn counter_map(counter: &str) -> String {
    format!("cnt_{counter}")
}

/// The object's name for a policy's counter map.
pub fn counter_map_name(policy: &str, counter: &str) -> String {
    object_map_name(policy, &counter_map(counter))
}

/// The statistics slot of rule `index` (0-based, in file order); the default's slot is
/// `rules`, the number of rules.
pub fn rule_slot(index: usize) -> u32 {
    index as u32
}

/// Packets and bytes, as a statistics or counter value holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Counts {
    /// A statistics or counter value as read from its map — `{packets, bytes}` per CPU, one
    /// CPU or many — summed over CPUs (wrapping, as the kernel's counters do).
    pub fn sum(value: &[u8]) -> Counts {
        value.chunks_exact(16).fold(Counts::default(), |acc, cpu| {
            let word = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&cpu[at..at + 8]);
                u64::from_le_bytes(b)
            };
            Counts {
                packets: acc.packets.wrapping_add(word(0)),
                bytes: acc.bytes.wrapping_add(word(8)),
            }
        })
    }

    /// `other` taken away (wrapping): a base that, added to a live count, gives the count
    /// wanted (see `nfcc load --replace` moving a rule to another slot).
    pub fn minus(self, other: Counts) -> Counts {
        Counts {
            packets: self.packets.wrapping_sub(other.packets),
            bytes: self.bytes.wrapping_sub(other.bytes),
        }
    }

    /// The two added (wrapping).
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }
}

/// One record of the sample ring buffer: `{rule slot: u32, frame length: u32}` in host order,
/// then the frame's first bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The statistics slot of the rule that sampled the packet.
    pub slot: u32,
    /// The frame's length on the wire.
    pub len: u32,
    /// Its first bytes (at most 128).
    pub bytes: Vec<u8>,
}

impl Sample {
    /// Parses a ring-buffer record; `None` when it is shorter than its header.
    pub fn parse(b: &[u8]) -> Option<Sample> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        Some(Sample {
            slot: word(0)?,
            len: word(4)?,
            bytes: b.get(8..)?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sums() {
        assert_eq!(stats_map_name("edge"), "edge_nfcc_rule_stats");
        assert_eq!(counter_map_name("edge", "drops"), "edge_cnt_drops");
        let mut v = Vec::new();
        for (p, b) in [(1u64, 60u64), (2, 120)] {
            v.extend(p.to_le_bytes());
            v.extend(b.to_le_bytes());
        }
        assert_eq!(
            Counts::sum(&v),
            Counts {
                packets: 3,
                bytes: 180
            }
        );
        assert_eq!(Sample::parse(&[1, 0, 0]), None);
        let s = Sample::parse(&[2, 0, 0, 0, 60, 0, 0, 0, 0xaa]).unwrap_or_else(|| panic!());
        assert_eq!((s.slot, s.len, s.bytes), (2, 60, vec![0xaa]));
    }
}

/// Slots of a pool's Maglev table (a prime, as Maglev requires). A dynamic pool's table map
/// holds two tables of this size, one live while the other is rewritten; its selector map
/// holds which (0 or 1) the program reads.
pub const MAGLEV_SLOTS: u32 = 65537;

/// What a Maglev slot of a dynamic pool holds when the pool has no backend.
pub const NO_BACKEND: u32 = u32::MAX;

/// One backend slot of a dynamic pool, as its backends map holds it (24 bytes): the address
/// in network order (IPv4 in the first four bytes), then the slot's incarnation (u32 LE: how
/// many backends it has held; a `sticky` flow remembers it), the Maglev weight (u16 LE), and
/// whether the slot holds a backend now (u8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolBackend {
    /// The address as its big-endian number.
    pub addr: u128,
    /// Whether the address is IPv6.
    pub v6: bool,
    /// How many backends the slot has held.
    pub incarnation: u32,
    /// The Maglev weight.
    pub weight: u16,
    /// Whether the slot holds a backend now.
    pub live: bool,
}

impl PoolBackend {
    /// Bytes of a record.
    pub const SIZE: usize = 24;
    /// Where the incarnation lives in a record.
    pub const INCARNATION: usize = 16;
    /// Where the live byte lives in a record.
    pub const LIVE: usize = 22;

    /// The record's bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        if self.v6 {
            b[..16].copy_from_slice(&self.addr.to_be_bytes());
        } else {
            b[..4].copy_from_slice(&(self.addr as u32).to_be_bytes());
        }
        b[16..20].copy_from_slice(&self.incarnation.to_le_bytes());
        b[20..22].copy_from_slice(&self.weight.to_le_bytes());
        b[22] = u8::from(self.live);
        b
    }

    /// A record read from a map of a pool whose family is `v6`'s.
    pub fn decode(b: &[u8], v6: bool) -> Option<PoolBackend> {
        let b: &[u8; Self::SIZE] = b.get(..Self::SIZE)?.try_into().ok()?;
        let addr = if v6 {
            u128::from_be_bytes(b[..16].try_into().ok()?)
        } else {
            u128::from(u32::from_be_bytes(b[..4].try_into().ok()?))
        };
        Some(PoolBackend {
            addr,
            v6,
            incarnation: u32::from_le_bytes(b[16..20].try_into().ok()?),
            weight: u16::from_le_bytes([b[20], b[21]]),
            live: b[22] != 0,
        })
    }
}
