//! Byte-level access to a loaded object's maps: lookup, update, delete, key iteration and
//! per-CPU counter sums.
//!
//! aya's typed maps need the key and value types at compile time; nfcc's maps are laid out by
//! the compiler at run time, so this module talks to the kernel with byte slices through the
//! `sys` module and takes from aya only the map's file descriptor and its info (type, key and
//! value size).
//!
//! Per-CPU maps hold one value per possible CPU. The kernel transfers them as one buffer with
//! each CPU's value padded to a multiple of 8 bytes; this module hides that padding: a per-CPU
//! value is `value_size` bytes per CPU, CPU after CPU.

use std::io;
use std::os::fd::AsFd;

use aya::maps::{Map, MapData, MapType};

use crate::error::RuntimeError;
use crate::program::Loaded;
use crate::sys;

/// A map's file descriptor owner and the facts about it the operations need.
struct MapRef<'a> {
    /// The map's name, for errors.
    name: &'a str,
    /// aya's handle, which owns the file descriptor.
    data: &'a MapData,
    /// The map's type.
    map_type: MapType,
    /// Bytes per key.
    key_size: usize,
    /// Bytes per value (per CPU, for per-CPU maps).
    value_size: usize,
    /// The number of possible CPUs if the map is per-CPU.
    cpus: Option<usize>,
}

impl MapRef<'_> {
    /// Returns the distance between two CPUs' values in the kernel's per-CPU buffer.
    fn stride(&self) -> usize {
        self.value_size.next_multiple_of(8)
    }

    /// Returns the length of the buffer the kernel reads or writes for one value.
    fn kernel_value_len(&self) -> usize {
        match self.cpus {
            Some(cpus) => self.stride() * cpus,
            None => self.value_size,
        }
    }

    /// Checks that `key` has the map's key size.
    fn check_key(&self, key: &[u8]) -> Result<(), RuntimeError> {
        if key.len() == self.key_size {
            Ok(())
        } else {
            Err(RuntimeError::MapSize {
                map: self.name.to_owned(),
                what: "key",
                expected: self.key_size.to_string(),
                got: key.len(),
            })
        }
    }

    /// Wraps a syscall error with this map's name and the command that failed.
    fn error(&self, op: &'static str, source: io::Error) -> RuntimeError {
        RuntimeError::Map {
            map: self.name.to_owned(),
            op,
            source,
        }
    }
}

/// Returns aya's handle of any map.
fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(m)
        | Map::BloomFilter(m)
        | Map::CpuMap(m)
        | Map::DevMap(m)
        | Map::DevMapHash(m)
        | Map::HashMap(m)
        | Map::LpmTrie(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::PerfEventArray(m)
        | Map::ProgramArray(m)
        | Map::Queue(m)
        | Map::RingBuf(m)
        | Map::SockHash(m)
        | Map::SockMap(m)
        | Map::Stack(m)
        | Map::StackTraceMap(m)
        | Map::Unsupported(m)
        | Map::XskMap(m) => m,
    }
}

/// Returns whether maps of this type hold one value per CPU.
fn is_per_cpu(map_type: MapType) -> bool {
    matches!(
        map_type,
        MapType::PerCpuArray
            | MapType::PerCpuHash
            | MapType::LruPerCpuHash
            | MapType::PerCpuCgroupStorage
    )
}

/// Returns the number of possible CPUs, which the kernel sizes per-CPU values by.
fn possible_cpus() -> Result<usize, RuntimeError> {
    aya::util::nr_cpus().map_err(|(what, source)| RuntimeError::PossibleCpus { what, source })
}

/// Returns a lowercase name for a map type, for errors.
fn type_name(map_type: MapType) -> String {
    format!("{map_type:?}").to_lowercase()
}

/// A map's facts, read from its file descriptor.
fn map_ref_of<'a>(name: &'a str, data: &'a MapData) -> Result<MapRef<'a>, RuntimeError> {
    let info_error = |source| RuntimeError::MapInfo {
        map: name.to_owned(),
        source,
    };
    let info = data.info().map_err(info_error)?;
    let map_type = info.map_type().map_err(info_error)?;
    let cpus = if is_per_cpu(map_type) {
        Some(possible_cpus()?)
    } else {
        None
    };
    Ok(MapRef {
        name,
        data,
        map_type,
        key_size: info.key_size() as usize,
        value_size: info.value_size() as usize,
        cpus,
    })
}

/// Byte-level operations on the maps of a loaded object or of a pinned deployment (the same
/// code for both: they differ only in where the file descriptors come from).
macro_rules! map_methods {
    () => {
        /// Every map's name, type and sizes, as the kernel reports them, sorted by name.
        pub fn map_shapes(&self) -> Result<Vec<MapShape>, RuntimeError> {
            let mut names = self.map_names();
            names.sort();
            names
                .iter()
                .map(|name| {
                    let Some(data) = self.map_data_named(name) else {
                        return Err(RuntimeError::MapNotFound {
                            map: name.clone(),
                            available: Vec::new(),
                        });
                    };
                    let info_error = |source| RuntimeError::MapInfo {
                        map: name.clone(),
                        source,
                    };
                    let info = data.info().map_err(info_error)?;
                    let map_type = info.map_type().map_err(info_error)?;
                    Ok(MapShape {
                        name: name.clone(),
                        type_id: map_type as u32,
                        key_size: info.key_size(),
                        value_size: info.value_size(),
                        max_entries: info.max_entries(),
                    })
                })
                .collect()
        }

        /// Stores every `(key, value)` of `entries` in map `map` (`BPF_ANY`): in batches of one
        /// syscall per few thousand entries where the kernel has `BPF_MAP_UPDATE_BATCH` for the
        /// map (not per-CPU ones), one at a time otherwise. A 10,000-rule classifier's tens of
        /// thousands of entries take milliseconds instead of a syscall each.
        pub fn map_update_many(
            &self,
            map: &str,
            entries: &[(Vec<u8>, Vec<u8>)],
        ) -> Result<(), RuntimeError> {
            let m = self.map_ref(map)?;
            let fits = entries
                .iter()
                .all(|(k, v)| k.len() == m.key_size && v.len() == m.value_size);
            let mut done = 0;
            if m.cpus.is_none() && fits && entries.len() >= 16 {
                for chunk in entries.chunks(4096) {
                    let keys: Vec<u8> = chunk.iter().flat_map(|(k, _)| k.iter().copied()).collect();
                    let values: Vec<u8> =
                        chunk.iter().flat_map(|(_, v)| v.iter().copied()).collect();
                    let (n, r) = sys::map_update_batch(
                        m.data.fd().as_fd(),
                        &keys,
                        &values,
                        chunk.len() as u32,
                    );
                    done += n as usize;
                    if r.is_err() || n as usize != chunk.len() {
                        // Not for this map or kernel: the rest one at a time.
                        break;
                    }
                }
            }
            for (k, v) in &entries[done..] {
                self.map_update(map, k, v)?;
            }
            Ok(())
        }

        /// The `u64` lanes of entries `0..slots` of per-CPU array `map`, each summed over CPUs
        /// (wrapping): [`Self::percpu_array_sum`] for many entries, in one syscall per few
        /// thousand where the kernel has `BPF_MAP_LOOKUP_BATCH`, one at a time otherwise.
        pub fn percpu_array_sums(
            &self,
            map: &str,
            slots: u32,
        ) -> Result<Vec<Vec<u64>>, RuntimeError> {
            let m = self.map_ref(map)?;
            let mut out: Vec<Vec<u64>> = Vec::with_capacity(slots as usize);
            if let (Some(_), MapType::PerCpuArray, 0) = (m.cpus, m.map_type, m.value_size % 8) {
                let (len, lanes) = (m.kernel_value_len(), m.value_size / 8);
                let chunk = 4096u32.min(slots.max(1));
                let mut keys = vec![0u8; 4 * chunk as usize];
                let mut values = vec![0u8; len * chunk as usize];
                let (mut from, mut to) = ([0u8; 4], [0u8; 4]);
                let mut first = true;
                while (out.len() as u32) < slots {
                    let (n, more) = sys::map_lookup_batch(
                        m.data.fd().as_fd(),
                        (!first).then_some(&from[..]),
                        &mut to,
                        &mut keys,
                        &mut values,
                        chunk,
                    );
                    let Ok(more) = more else { break };
                    for v in values.chunks_exact(len).take(n as usize) {
                        let mut sum = vec![0u64; lanes];
                        for cpu in v.chunks_exact(m.stride()) {
                            for (l, w) in sum.iter_mut().zip(cpu.chunks_exact(8)) {
                                let w = u64::from_ne_bytes(w.try_into().expect("eight bytes"));
                                *l = l.wrapping_add(w);
                            }
                        }
                        out.push(sum);
                    }
                    if !more || n == 0 {
                        break;
                    }
                    from = to;
                    first = false;
                }
                out.truncate(slots as usize);
            }
            for slot in out.len() as u32..slots {
                out.push(self.percpu_array_sum(map, slot)?);
            }
            Ok(out)
        }

        /// The value size of map `name` (per CPU for per-CPU maps), if there is such a map.
        pub fn map_value_size(&self, name: &str) -> Option<usize> {
            self.map_data_named(name)
                .and_then(|d| map_ref_of(name, d).ok())
                .map(|m| m.value_size)
        }

        /// Finds the map `name` and reads its type and sizes.
        fn map_ref<'a>(&'a self, name: &'a str) -> Result<MapRef<'a>, RuntimeError> {
            let Some(data) = self.map_data_named(name) else {
                let mut available = self.map_names();
                available.sort();
                return Err(RuntimeError::MapNotFound {
                    map: name.to_owned(),
                    available,
                });
            };
            map_ref_of(name, data)
        }
        /// Looks `key` up in map `map` and returns its value, or `None` when the key is absent.
        ///
        /// `key` must have the map's key size: for an array a little-endian `u32` index, for an
        /// LPM trie the `u32` prefix length followed by the address bytes. A per-CPU map returns
        /// one value per possible CPU, `value_size` bytes each, CPU 0 first. An array index out of
        /// range counts as absent.
        pub fn map_lookup(&self, map: &str, key: &[u8]) -> Result<Option<Vec<u8>>, RuntimeError> {
            let m = self.map_ref(map)?;
            m.check_key(key)?;
            let mut raw = vec![0u8; m.kernel_value_len()];
            let found = sys::map_lookup(m.data.fd().as_fd(), key, &mut raw)
                .map_err(|e| m.error("BPF_MAP_LOOKUP_ELEM", e))?;
            if !found {
                return Ok(None);
            }
            if m.cpus.is_some() {
                let stride = m.stride();
                let mut value = Vec::with_capacity(raw.len());
                for cpu in raw.chunks_exact(stride) {
                    value.extend_from_slice(&cpu[..m.value_size]);
                }
                return Ok(Some(value));
            }
            Ok(Some(raw))
        }

        /// Stores `value` under `key` in map `map`, creating or replacing the entry (`BPF_ANY`).
        ///
        /// The program sees the change on its next run; nothing is reloaded. For a per-CPU map,
        /// `value` is either one value (stored on every CPU) or one per possible CPU, as
        /// [`Loaded::map_lookup`] returns them.
        pub fn map_update(&self, map: &str, key: &[u8], value: &[u8]) -> Result<(), RuntimeError> {
            let m = self.map_ref(map)?;
            m.check_key(key)?;
            let size_error = |expected: String| RuntimeError::MapSize {
                map: map.to_owned(),
                what: "value",
                expected,
                got: value.len(),
            };
            let raw = match m.cpus {
                None if value.len() == m.value_size => value.to_vec(),
                None => return Err(size_error(m.value_size.to_string())),
                Some(cpus) => {
                    let stride = m.stride();
                    let mut raw = vec![0u8; stride * cpus];
                    if value.len() == m.value_size {
                        for slot in raw.chunks_exact_mut(stride) {
                            slot[..m.value_size].copy_from_slice(value);
                        }
                    } else if value.len() == m.value_size * cpus {
                        for (slot, v) in raw
                            .chunks_exact_mut(stride)
                            .zip(value.chunks_exact(m.value_size))
                        {
                            slot[..m.value_size].copy_from_slice(v);
                        }
                    } else {
                        return Err(size_error(format!(
                            "{} (one per cpu: {})",
                            m.value_size,
                            m.value_size * cpus
                        )));
                    }
                    raw
                }
            };
            sys::map_update(m.data.fd().as_fd(), key, &raw)
                .map_err(|e| m.error("BPF_MAP_UPDATE_ELEM", e))
        }

        /// Removes `key` from map `map`; returns whether it was there.
        ///
        /// Arrays cannot delete entries: the kernel answers `EINVAL`, reported as
        /// [`RuntimeError::Map`].
        pub fn map_delete(&self, map: &str, key: &[u8]) -> Result<bool, RuntimeError> {
            let m = self.map_ref(map)?;
            m.check_key(key)?;
            sys::map_delete(m.data.fd().as_fd(), key).map_err(|e| m.error("BPF_MAP_DELETE_ELEM", e))
        }

        /// Returns every key of map `map`, in the kernel's iteration order.
        ///
        /// The keys are read one `BPF_MAP_GET_NEXT_KEY` at a time; entries the program adds or
        /// removes meanwhile may or may not show up. An array lists every index.
        pub fn map_keys(&self, map: &str) -> Result<Vec<Vec<u8>>, RuntimeError> {
            let m = self.map_ref(map)?;
            let fd = m.data.fd().as_fd();
            let mut keys: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut next = vec![0u8; m.key_size];
                let more = sys::map_next_key(fd, keys.last().map(Vec::as_slice), &mut next)
                    .map_err(|e| m.error("BPF_MAP_GET_NEXT_KEY", e))?;
                if !more {
                    return Ok(keys);
                }
                keys.push(next);
            }
        }

        /// Reads entry `index` of the per-CPU array `map` and sums each `u64` lane over the CPUs.
        ///
        /// The value is read as `value_size / 8` native-endian `u64` lanes (a counter struct of
        /// packets and bytes gives two lanes); sums wrap on overflow like the counters themselves.
        /// The map must be a per-CPU array (or a plain array, read as one CPU) whose value size is
        /// a multiple of 8.
        pub fn percpu_array_sum(&self, map: &str, index: u32) -> Result<Vec<u64>, RuntimeError> {
            let m = self.map_ref(map)?;
            // A plain array (NIC code's statistics) is one "CPU".
            if !matches!(m.map_type, MapType::PerCpuArray | MapType::Array) {
                return Err(RuntimeError::MapKind {
                    map: map.to_owned(),
                    found: type_name(m.map_type),
                    expected: "a per-cpu array",
                });
            }
            if m.value_size % 8 != 0 {
                return Err(RuntimeError::MapSize {
                    map: map.to_owned(),
                    what: "value",
                    expected: "a multiple of 8".to_owned(),
                    got: m.value_size,
                });
            }
            let lanes = m.value_size / 8;
            let Some(values) = self.map_lookup(map, &index.to_ne_bytes())? else {
                return Err(m.error(
                    "BPF_MAP_LOOKUP_ELEM",
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("index {index} is out of range"),
                    ),
                ));
            };
            let mut sums = vec![0u64; lanes];
            for cpu in values.chunks_exact(m.value_size) {
                for (sum, lane) in sums.iter_mut().zip(cpu.chunks_exact(8)) {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(lane);
                    *sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
                }
            }
            Ok(sums)
        }
    };
}

impl Loaded {
    fn map_data_named(&self, name: &str) -> Option<&MapData> {
        self.ebpf.map(name).map(map_data)
    }

    fn map_names(&self) -> Vec<String> {
        self.ebpf.maps().map(|(n, _)| n.to_owned()).collect()
    }

    map_methods!();
}

/// A map's type and sizes, as the kernel reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapShape {
    /// The map's name.
    pub name: String,
    /// The kernel's map type number (`BPF_MAP_TYPE_*`).
    pub type_id: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

/// The pinned maps of a deployed policy, opened from bpffs.
#[derive(Debug)]
pub struct PinnedMaps {
    maps: std::collections::HashMap<String, MapData>,
}

impl PinnedMaps {
    /// Opens the maps pinned at the given paths, by name.
    pub fn open_pins<'a>(
        pins: impl IntoIterator<Item = (&'a str, &'a std::path::Path)>,
    ) -> Result<PinnedMaps, RuntimeError> {
        let mut maps = std::collections::HashMap::new();
        for (name, path) in pins {
            let data = MapData::from_pin(path).map_err(|err| {
                RuntimeError::Deploy(format!(
                    "cannot open the pinned map {name} ({}): {err}",
                    path.display()
                ))
            })?;
            maps.insert(name.to_string(), data);
        }
        Ok(PinnedMaps { maps })
    }

    /// Opens every map pinned in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<PinnedMaps, RuntimeError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            RuntimeError::Deploy(format!("cannot read the pins in {}: {e}", dir.display()))
        })?;
        let mut maps = std::collections::HashMap::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // The link, an offloaded policy's NIC program, and the `next/` and `nic/`
            // directories are not maps of this program.
            if name == "link" || name == "nic_prog" || e.path().is_dir() {
                continue;
            }
            let data = MapData::from_pin(e.path()).map_err(|err| {
                RuntimeError::Deploy(format!("cannot open the pinned map {name}: {err}"))
            })?;
            maps.insert(name, data);
        }
        Ok(PinnedMaps { maps })
    }

    /// Whether a map of this name is pinned.
    pub fn has_map(&self, name: &str) -> bool {
        self.maps.contains_key(name)
    }

    fn map_data_named(&self, name: &str) -> Option<&MapData> {
        self.maps.get(name)
    }

    fn map_names(&self) -> Vec<String> {
        self.maps.keys().cloned().collect()
    }

    map_methods!();
}
