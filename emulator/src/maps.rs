//! Userspace maps with the kernel's semantics, as far as a single-CPU emulation can have them.
//!
//! Every map keeps its values in one slab of `max_entries × value_size` bytes, so a value has a
//! fixed address for as long as its entry lives: the program gets a pointer into the slab from
//! `bpf_map_lookup_elem` and may read and write through it, as in the kernel. Per-CPU maps
//! hold one CPU's values (the emulator is one CPU); reading them through [`EmuMap::lookup`]
//! gives that one value, which is also what a sum over CPUs gives.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A word-at-a-time multiplicative hash (the rotate-xor-multiply step of rustc's FxHash):
/// keys are a few bytes, SipHash's setup costs more than the key, and a byte-at-a-time hash
/// costs a multiply per byte. Keys come from the program under test, not from an adversary.
#[derive(Default)]
pub struct WordHash(u64);

impl WordHash {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHash {
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply carries low bits upward only; fold the high bits back down, since the
        // table picks buckets by the low bits (keys such as addresses differ in their last byte,
        // the high byte of a little-endian word).
        let h = self.0 ^ (self.0 >> 32);
        (h ^ (h >> 16)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Byte by byte: a short copy through memory would stall the load after it.
            let w = rest
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, b)| w | u64::from(*b) << (8 * i));
            self.add(w);
        }
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }
}

type Hasher64 = BuildHasherDefault<WordHash>;

/// Key to slot. Keys of at most 16 bytes (addresses, ports, 5-tuples: nearly all) are one
/// `u128`, hashed as two words and compared as one; longer keys stay byte strings.
#[derive(Clone, Debug)]
enum Index {
    Small(HashMap<u128, usize, Hasher64>),
    Large(HashMap<Vec<u8>, usize, Hasher64>),
}

/// A key of at most 16 bytes as a number (little-endian, zero-padded). The usual sizes are
/// read whole: a short variable-length copy through memory would stall the load after it.
#[inline]
fn small_key(key: &[u8]) -> u128 {
    match key.len() {
        4 => u128::from(u32::from_le_bytes([key[0], key[1], key[2], key[3]])),
        8 => u128::from(u64::from_le_bytes(key.try_into().unwrap_or([0; 8]))),
        16 => u128::from_le_bytes(key.try_into().unwrap_or([0; 16])),
        _ => key
            .iter()
            .enumerate()
            .fold(0u128, |w, (i, b)| w | u128::from(*b) << (8 * i)),
    }
}

impl Index {
    fn new(key_size: usize) -> Index {
        if key_size <= 16 {
            Index::Small(HashMap::default())
        } else {
            Index::Large(HashMap::default())
        }
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<usize> {
        match self {
            Index::Small(m) => m.get(&small_key(key)).copied(),
            Index::Large(m) => m.get(key).copied(),
        }
    }

    fn insert(&mut self, key: Vec<u8>, slot: usize) {
        match self {
            Index::Small(m) => {
                m.insert(small_key(&key), slot);
            }
            Index::Large(m) => {
                m.insert(key, slot);
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<usize> {
        match self {
            Index::Small(m) => m.remove(&small_key(key)),
            Index::Large(m) => m.remove(key),
        }
    }

    /// Removes the entry whose slot was used least recently (by `used`) and returns its slot.
    fn evict_lru(&mut self, used: &[u64]) -> Option<usize> {
        match self {
            Index::Small(m) => {
                let (k, s) = m
                    .iter()
                    .min_by_key(|(_, s)| used[**s])
                    .map(|(k, s)| (*k, *s))?;
                m.remove(&k);
                Some(s)
            }
            Index::Large(m) => {
                let (k, s) = m
                    .iter()
                    .min_by_key(|(_, s)| used[**s])
                    .map(|(k, s)| (k.clone(), *s))?;
                m.remove(&k);
                Some(s)
            }
        }
    }

    /// Every key (`key_size` bytes each) and its slot.
    fn entries(&self, key_size: usize) -> Vec<(Vec<u8>, usize)> {
        match self {
            Index::Small(m) => m
                .iter()
                .map(|(k, s)| (k.to_le_bytes()[..key_size].to_vec(), *s))
                .collect(),
            Index::Large(m) => m.iter().map(|(k, s)| (k.clone(), *s)).collect(),
        }
    }
}

/// An LPM trie's entries of one prefix length, by their data as a number (when the data is at
/// most 16 bytes): a short list scanned while there are few, a hash beyond that.
#[derive(Clone, Debug, Default)]
struct LenTable {
    few: Vec<(u128, usize)>,
    many: HashMap<u128, usize, Hasher64>,
}

/// A length with more entries than this is hashed rather than scanned.
const FEW: usize = 8;

impl LenTable {
    #[inline]
    fn get(&self, n: u128) -> Option<usize> {
        if self.many.is_empty() {
            self.few.iter().find(|(k, _)| *k == n).map(|(_, s)| *s)
        } else {
            self.many.get(&n).copied()
        }
    }

    fn insert(&mut self, n: u128, slot: usize) {
        if !self.many.is_empty() {
            self.many.insert(n, slot);
        } else if let Some(e) = self.few.iter_mut().find(|(k, _)| *k == n) {
            e.1 = slot;
        } else if self.few.len() < FEW {
            self.few.push((n, slot));
        } else {
            self.many = self.few.drain(..).collect();
            self.many.insert(n, slot);
        }
    }

    fn remove(&mut self, n: u128) {
        self.few.retain(|(k, _)| *k != n);
        self.many.remove(&n);
    }
}

/// Data of at most 16 bytes as a big-endian number in the top bits (so a prefix of `len`
/// bits is the top `len` bits).
#[inline]
fn lpm_data(data: &[u8]) -> u128 {
    match data.len() {
        4 => u128::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])) << 96,
        16 => u128::from_be_bytes(data.try_into().unwrap_or([0; 16])),
        _ => data
            .iter()
            .enumerate()
            .fold(0u128, |w, (i, b)| w | u128::from(*b) << (120 - 8 * i)),
    }
}

/// The top `len` bits of `n`.
#[inline]
fn lpm_mask(n: u128, len: usize) -> u128 {
    if len == 0 {
        0
    } else {
        n & (u128::MAX << (128 - len.min(128)))
    }
}

/// The kinds of map the emulator implements: every kind the ABI crate names.
pub use nfcc_bpf::MapKind;

/// Why a map operation failed (the kernel's errno, for helpers that return it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The key is not there (`ENOENT`).
    #[error("no such key")]
    NotFound,
    /// `BPF_NOEXIST` and the key exists (`EEXIST`).
    #[error("the key exists")]
    Exists,
    /// The map is full (`E2BIG`).
    #[error("the map is full")]
    Full,
    /// A key or value of the wrong size, an index out of range, or a bad flag (`EINVAL`).
    #[error("invalid argument")]
    Invalid,
}

impl MapError {
    /// The negative errno a helper returns.
    pub fn errno(self) -> i64 {
        match self {
            MapError::NotFound => -2,
            MapError::Exists => -17,
            MapError::Full => -7,
            MapError::Invalid => -22,
        }
    }
}

/// What the JIT knows of a map when it compiles: a map's shape never changes once loaded.
/// (Here, beside the map, because the machine checks the maps it runs JIT code over against
/// the shapes the code was compiled for; [`crate::jit`] re-exports it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    /// Its kind.
    pub kind: MapKind,
    /// Key bytes.
    pub key_size: usize,
    /// Value bytes.
    pub value_size: usize,
    /// Capacity.
    pub max_entries: usize,
}

impl MapShape {
    /// The shape of `m`.
    pub fn of(m: &EmuMap) -> MapShape {
        MapShape {
            kind: m.kind,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
        }
    }
}

/// One emulated map.
#[derive(Clone, Debug)]
pub struct EmuMap {
    /// Its name in the object.
    pub name: String,
    /// Its kind.
    pub kind: MapKind,
    /// Key bytes.
    pub key_size: usize,
    /// Value bytes.
    pub value_size: usize,
    /// Capacity.
    pub max_entries: usize,
    /// The values, `max_entries` slots of `value_size` bytes.
    pub slab: Vec<u8>,
    /// Hash kinds: key to slot.
    index: Index,
    /// LPM tries: how many entries have each prefix length.
    lpm_lengths: Vec<u32>,
    /// LPM tries: the prefix lengths present, longest first, so lookups probe only those.
    lpm_present: Vec<usize>,
    /// LPM tries: the probe key, reused from lookup to lookup.
    lpm_probe: Vec<u8>,
    /// LPM tries of at most 16 data bytes: the same entries as `index`, per prefix length.
    lpm_tables: Vec<LenTable>,
    /// Hash kinds: free slots.
    free: Vec<usize>,
    /// LRU kinds: last use of each slot (a counter), for eviction.
    used: Vec<u64>,
    tick: u64,
    /// Event maps: the records sent, oldest first.
    pub records: Vec<Vec<u8>>,
}

impl EmuMap {
    /// An empty map (arrays start zeroed, as in the kernel).
    pub fn new(
        name: &str,
        kind: MapKind,
        key_size: usize,
        value_size: usize,
        max_entries: usize,
    ) -> EmuMap {
        let slots = if kind.has_values() { max_entries } else { 0 };
        EmuMap {
            name: name.to_string(),
            kind,
            key_size,
            value_size,
            max_entries,
            slab: vec![0; slots * value_size],
            index: Index::new(key_size),
            lpm_lengths: vec![0; key_size.saturating_sub(4) * 8 + 1],
            lpm_present: Vec::new(),
            lpm_probe: Vec::with_capacity(key_size),
            lpm_tables: if kind == MapKind::LpmTrie && key_size <= 20 {
                vec![LenTable::default(); key_size.saturating_sub(4) * 8 + 1]
            } else {
                Vec::new()
            },
            free: (0..slots).rev().collect(),
            used: vec![0; slots],
            tick: 0,
            records: Vec::new(),
        }
    }

    fn array_index(&self, key: &[u8]) -> Option<usize> {
        let b: [u8; 4] = key.get(..4)?.try_into().ok()?;
        let i = u32::from_le_bytes(b) as usize;
        (i < self.max_entries).then_some(i)
    }

    /// The LPM trie's longest matching entry for a `{prefix length, data}` key: a probe per
    /// prefix length present, longest first.
    fn lpm_find(&mut self, key: &[u8]) -> Option<usize> {
        let data = key.get(4..)?;
        let max = (data.len() * 8).min(u32::from_le_bytes(key[..4].try_into().ok()?) as usize);
        if !self.lpm_tables.is_empty() {
            return self.lpm_find_number(max, lpm_data(data));
        }
        let mut probe = std::mem::take(&mut self.lpm_probe);
        let found = self
            .lpm_present
            .iter()
            .filter(|&&l| l <= max)
            .find_map(|&len| {
                lpm_key_into(len, data, &mut probe);
                self.index.get(probe.as_slice())
            });
        self.lpm_probe = probe;
        found
    }

    /// The longest entry matching the first `max` bits of `number` (data of at most 16 bytes,
    /// as [`lpm_data`] makes it).
    #[inline]
    fn lpm_find_number(&self, max: usize, number: u128) -> Option<usize> {
        self.lpm_present
            .iter()
            .filter(|&&l| l <= max)
            .find_map(|&len| self.lpm_tables.get(len)?.get(lpm_mask(number, len)))
    }

    /// [`EmuMap::slot_of`] for an LPM trie with 4 or 16 bytes of data, its key given as the
    /// prefix length and the data's bytes as two little-endian words (as loaded from memory).
    pub fn slot_of_lpm(&mut self, len: u32, d0: u64, d1: u64) -> Option<usize> {
        let n = self.key_size.checked_sub(4)?;
        if self.kind != MapKind::LpmTrie || self.lpm_tables.is_empty() || !matches!(n, 4 | 16) {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&d0.to_le_bytes());
        bytes[8..].copy_from_slice(&d1.to_le_bytes());
        let max = (n * 8).min(len as usize);
        let slot = self.lpm_find_number(max, lpm_data(&bytes[..n]))?;
        self.tick += 1;
        self.used[slot] = self.tick;
        Some(slot)
    }

    /// Counts an LPM entry of prefix length `len` in (`add`) or out, keeping the list of
    /// lengths present.
    fn lpm_count(&mut self, len: usize, add: bool) {
        let Some(n) = self.lpm_lengths.get_mut(len) else {
            return;
        };
        let before = *n;
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if (before == 0) == (*n == 0) {
            return;
        }
        self.lpm_present = (0..self.lpm_lengths.len())
            .rev()
            .filter(|&l| self.lpm_lengths[l] > 0)
            .collect();
    }

    /// The slot holding `key`'s value, if present.
    pub fn slot_of(&mut self, key: &[u8]) -> Option<usize> {
        if key.len() != self.key_size || !self.kind.has_values() {
            return None;
        }
        let slot = match self.kind {
            k if k.is_array() => self.array_index(key),
            MapKind::LpmTrie => self.lpm_find(key),
            _ => self.index.get(key),
        }?;
        self.tick += 1;
        self.used[slot] = self.tick;
        Some(slot)
    }

    /// [`EmuMap::slot_of`] for a hash map whose key (at most 16 bytes) comes as a number
    /// (little-endian, zero-padded).
    pub fn slot_of_small(&mut self, key: u128) -> Option<usize> {
        let Index::Small(index) = &self.index else {
            return None;
        };
        if self.kind.is_array() || self.kind == MapKind::LpmTrie || !self.kind.has_values() {
            return None;
        }
        let slot = *index.get(&key)?;
        self.tick += 1;
        self.used[slot] = self.tick;
        Some(slot)
    }

    /// A copy of `key`'s value.
    pub fn lookup(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let s = self.slot_of(key)?;
        Some(self.slab[s * self.value_size..(s + 1) * self.value_size].to_vec())
    }

    /// Stores `value` under `key` with the kernel's flags (0 any, 1 only new, 2 only existing).
    pub fn update(&mut self, key: &[u8], value: &[u8], flags: u64) -> Result<usize, MapError> {
        if key.len() != self.key_size
            || value.len() != self.value_size
            || flags > 2
            || !self.kind.has_values()
        {
            return Err(MapError::Invalid);
        }
        let slot = if self.kind.is_array() {
            let i = self.array_index(key).ok_or(MapError::Invalid)?;
            if flags == 1 {
                // Array entries always exist.
                return Err(MapError::Exists);
            }
            i
        } else {
            let stored = if self.kind == MapKind::LpmTrie {
                let len = u32::from_le_bytes(key[..4].try_into().map_err(|_| MapError::Invalid)?)
                    as usize;
                if len > (key.len() - 4) * 8 {
                    return Err(MapError::Invalid);
                }
                lpm_key(len, &key[4..])
            } else {
                key.to_vec()
            };
            match (self.index.get(&stored), flags) {
                (Some(_), 1) => return Err(MapError::Exists),
                (Some(s), _) => s,
                (None, 2) => return Err(MapError::NotFound),
                (None, _) => {
                    let s = match self.free.pop() {
                        Some(s) => s,
                        None if matches!(self.kind, MapKind::LruHash | MapKind::LruPercpuHash) => {
                            self.evict().ok_or(MapError::Full)?
                        }
                        None => return Err(MapError::Full),
                    };
                    if self.kind == MapKind::LpmTrie {
                        let len = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]])
                            as usize;
                        self.lpm_count(len, true);
                        let n = lpm_mask(lpm_data(&stored[4..]), len);
                        if let Some(t) = self.lpm_tables.get_mut(len) {
                            t.insert(n, s);
                        }
                    }
                    self.index.insert(stored, s);
                    s
                }
            }
        };
        self.slab[slot * self.value_size..(slot + 1) * self.value_size].copy_from_slice(value);
        self.tick += 1;
        self.used[slot] = self.tick;
        Ok(slot)
    }

    /// Frees the least recently used entry of an LRU map and returns its slot.
    fn evict(&mut self) -> Option<usize> {
        self.index.evict_lru(&self.used)
    }

    /// Removes `key` (arrays cannot delete, as in the kernel).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), MapError> {
        if self.kind.is_array() || key.len() != self.key_size {
            return Err(MapError::Invalid);
        }
        let stored = if self.kind == MapKind::LpmTrie {
            let len =
                u32::from_le_bytes(key[..4].try_into().map_err(|_| MapError::Invalid)?) as usize;
            lpm_key(len, &key[4..])
        } else {
            key.to_vec()
        };
        let slot = self.index.remove(&stored).ok_or(MapError::NotFound)?;
        if self.kind == MapKind::LpmTrie {
            let len = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]) as usize;
            self.lpm_count(len, false);
            let n = lpm_mask(lpm_data(&stored[4..]), len);
            if let Some(t) = self.lpm_tables.get_mut(len) {
                t.remove(n);
            }
        }
        self.slab[slot * self.value_size..(slot + 1) * self.value_size].fill(0);
        self.free.push(slot);
        Ok(())
    }

    /// Every key present (arrays: every index), in no particular order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        if self.kind.is_array() {
            return (0..self.max_entries as u32)
                .map(|i| i.to_le_bytes().to_vec())
                .collect();
        }
        self.index
            .entries(self.key_size)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

/// An LPM key with the bits past `len` cleared, so equal prefixes compare equal.
fn lpm_key(len: usize, data: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + data.len());
    lpm_key_into(len, data, &mut k);
    k
}

/// [`lpm_key`] into a reused buffer.
fn lpm_key_into(len: usize, data: &[u8], k: &mut Vec<u8>) {
    k.clear();
    k.extend_from_slice(&(len as u32).to_le_bytes());
    for (i, b) in data.iter().enumerate() {
        let keep = len.saturating_sub(i * 8).min(8);
        k.push(if keep == 0 {
            0
        } else {
            b & (0xffu8 << (8 - keep))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_flags_capacity_and_delete() {
        let mut m = EmuMap::new("h", MapKind::Hash, 4, 8, 2);
        assert_eq!(m.update(&[1, 0, 0, 0], &[7; 8], 2), Err(MapError::NotFound));
        m.update(&[1, 0, 0, 0], &[7; 8], 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.update(&[1, 0, 0, 0], &[8; 8], 1), Err(MapError::Exists));
        m.update(&[2, 0, 0, 0], &[9; 8], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.update(&[3, 0, 0, 0], &[9; 8], 0), Err(MapError::Full));
        assert_eq!(m.lookup(&[2, 0, 0, 0]), Some(vec![9; 8]));
        m.delete(&[2, 0, 0, 0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.lookup(&[2, 0, 0, 0]), None);
        m.update(&[3, 0, 0, 0], &[1; 8], 0)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut m = EmuMap::new("l", MapKind::LruHash, 1, 1, 2);
        m.update(&[1], &[1], 0).unwrap_or_else(|e| panic!("{e}"));
        m.update(&[2], &[2], 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.lookup(&[1]).is_some());
        m.update(&[3], &[3], 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.lookup(&[2]), None, "2 was least recently used");
        assert!(m.lookup(&[1]).is_some() && m.lookup(&[3]).is_some());
    }

    #[test]
    fn lpm_matches_the_longest_prefix() {
        let mut m = EmuMap::new("t", MapKind::LpmTrie, 8, 1, 8);
        m.update(&[8, 0, 0, 0, 10, 9, 9, 9], &[1], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        m.update(&[24, 0, 0, 0, 10, 1, 2, 0], &[2], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.lookup(&[32, 0, 0, 0, 10, 1, 2, 3]), Some(vec![2]));
        assert_eq!(m.lookup(&[32, 0, 0, 0, 10, 1, 3, 3]), Some(vec![1]));
        assert_eq!(m.lookup(&[32, 0, 0, 0, 11, 1, 3, 3]), None);
        // A query shorter than the stored prefix does not match it.
        assert_eq!(m.lookup(&[16, 0, 0, 0, 10, 1, 2, 3]), Some(vec![1]));
    }

    #[test]
    fn arrays_exist_and_cannot_delete() {
        let mut m = EmuMap::new("a", MapKind::Array, 4, 4, 3);
        assert_eq!(m.lookup(&[2, 0, 0, 0]), Some(vec![0; 4]));
        assert_eq!(m.lookup(&[3, 0, 0, 0]), None);
        assert_eq!(m.delete(&[1, 0, 0, 0]), Err(MapError::Invalid));
    }
}
