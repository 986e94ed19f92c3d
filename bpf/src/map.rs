//! Map types (`enum bpf_map_type`) and the flags nfcc sets, shared by the object writer, the
//! emulator (which implements each kind) and the runtime (which reads them back).

/// BPF map types; the discriminant is the kernel's `BPF_MAP_TYPE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_HASH`
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`
    Array = 2,
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: records what `bpf_perf_event_output` sends.
    PerfEventArray = 4,
    /// `BPF_MAP_TYPE_PERCPU_HASH`
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`
    PercpuArray = 6,
    /// `BPF_MAP_TYPE_LRU_HASH`
    LruHash = 9,
    /// `BPF_MAP_TYPE_LRU_PERCPU_HASH`
    LruPercpuHash = 10,
    /// `BPF_MAP_TYPE_LPM_TRIE`
    LpmTrie = 11,
    /// `BPF_MAP_TYPE_DEVMAP`
    DevMap = 14,
    /// `BPF_MAP_TYPE_XSKMAP`: AF_XDP sockets by receive queue; an entry exists only while a
    /// socket is bound (its value, written from userspace, is the socket's descriptor).
    XskMap = 17,
    /// `BPF_MAP_TYPE_RINGBUF`: records what `bpf_ringbuf_output` sends.
    RingBuf = 27,
}

/// `BPF_F_NO_PREALLOC`: required on LPM tries.
pub const BPF_F_NO_PREALLOC: u32 = 1;

impl MapKind {
    /// Every kind this crate names.
    pub const ALL: [MapKind; 11] = [
        MapKind::Hash,
        MapKind::Array,
        MapKind::PerfEventArray,
        MapKind::PercpuHash,
        MapKind::PercpuArray,
        MapKind::LruHash,
        MapKind::LruPercpuHash,
        MapKind::LpmTrie,
        MapKind::DevMap,
        MapKind::XskMap,
        MapKind::RingBuf,
    ];

    /// The kernel's map type number.
    pub const fn type_id(self) -> u32 {
        self as u32
    }

    /// The kind for a kernel map type number, if this crate names it.
    pub fn from_type(t: u32) -> Option<MapKind> {
        MapKind::ALL.into_iter().find(|k| k.type_id() == t)
    }

    /// The kernel's name of the map type, lowercase and without prefix (for messages).
    pub const fn name(self) -> &'static str {
        match self {
            MapKind::Hash => "hash",
            MapKind::Array => "array",
            MapKind::PerfEventArray => "perf_event_array",
            MapKind::PercpuHash => "percpu_hash",
            MapKind::PercpuArray => "percpu_array",
            MapKind::LruHash => "lru_hash",
            MapKind::LruPercpuHash => "lru_percpu_hash",
            MapKind::LpmTrie => "lpm_trie",
            MapKind::DevMap => "devmap",
            MapKind::XskMap => "xskmap",
            MapKind::RingBuf => "ringbuf",
        }
    }

    /// Whether entries are indexed by position (arrays) rather than by key.
    pub const fn is_array(self) -> bool {
        matches!(
            self,
            MapKind::Array | MapKind::PercpuArray | MapKind::DevMap | MapKind::PerfEventArray
        )
    }

    /// Whether each CPU has its own copy of a value (reads return one value per CPU).
    pub const fn is_percpu(self) -> bool {
        matches!(
            self,
            MapKind::PercpuArray | MapKind::PercpuHash | MapKind::LruPercpuHash
        )
    }

    /// Whether entries hold values at all (event maps carry records instead).
    pub const fn has_values(self) -> bool {
        !matches!(self, MapKind::RingBuf | MapKind::PerfEventArray)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_numbers_round_trip() {
        for k in MapKind::ALL {
            assert_eq!(MapKind::from_type(k.type_id()), Some(k));
        }
        assert_eq!(MapKind::from_type(17), Some(MapKind::XskMap));
        assert_eq!(MapKind::from_type(18), None, "sockhash is not named");
        assert_eq!(MapKind::LpmTrie.type_id(), 11);
    }
}
