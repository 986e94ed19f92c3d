//! Changing a dynamic set of a compiled policy: which map operations add or remove one value,
//! whatever representation the compiler chose for the set (exact hash, LPM trie, or a prefix
//! hash with a length table — see [`crate::prefix`]), for every key width the set is used at.
//!
//! Nothing here touches a kernel: the plan is a list of [`MapOp`]s that the runtime applies to
//! a loaded program's maps (or the emulator to its own), given a way to read the length table.
//! A plan is made from a set's [`SetEntry`] — the layout a deployment's manifest records —
//! so a deployed policy's sets are changed the way *its* compiler laid them out.

use crate::ir::{MapPurpose, Program};
use crate::prefix::{self, Prefix};
use nfcc_bpf::manifest::{SetEntry, SetForm, SetMap};
use nfcc_dsl::checked::{Item, Policy};

/// One map operation on a loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapOp {
    /// `map[key] = value`.
    Update {
        /// The map, named as in the layout the plan was made from (IR or object names).
        map: String,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `map[key]` (absent is fine).
    Delete {
        /// The map, named as in the layout the plan was made from.
        map: String,
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// Reads a map entry of the loaded program: `(map's IR name, key) -> value`.
pub type ReadEntry<'a> = dyn FnMut(&str, &[u8]) -> Option<Vec<u8>> + 'a;

/// Why a set cannot be changed that way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// No set of that name.
    #[error("policy `{policy}` has no set `{set}`; its sets are: {known}")]
    NoSet {
        /// The policy.
        policy: String,
        /// The set asked for.
        set: String,
        /// Its sets.
        known: String,
    },
    /// The set is compiled into the program.
    #[error("set `{0}` is not dynamic: its contents are compiled in; declare it `dynamic` to change it without reloading")]
    NotDynamic(String),
    /// A range in a set whose maps hold single values.
    #[error("set `{0}` holds single values; a range cannot be added at run time")]
    Range(String),
}

/// Where the maps of each set of `policy` live in `ir`, map names given by `name` (the IR's
/// own names, or the object's for a manifest).
pub fn layout(policy: &Policy, ir: &Program, name: &dyn Fn(&str) -> String) -> Vec<SetEntry> {
    policy
        .sets
        .iter()
        .map(|s| {
            let base = format!("set_{}", s.name);
            let maps = ir
                .maps
                .iter()
                .filter(|m| {
                    let rest = m.name.strip_prefix(&base);
                    matches!(rest, Some(rest) if rest.is_empty()
                        || rest.strip_prefix("_w").is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())))
                })
                .filter_map(|m| {
                    let (width, form) = match m.purpose {
                        MapPurpose::ExactSet => (m.key_size, SetForm::Exact),
                        MapPurpose::PrefixSet => (m.key_size - 4, SetForm::Lpm),
                        MapPurpose::PrefixHash => {
                            let table = format!("{}_lengths", m.name);
                            let per_entry =
                                ir.maps.iter().any(|t| t.name == table && t.max_entries > 1);
                            (
                                m.key_size - 4,
                                SetForm::PrefixHash {
                                    lengths: name(&table),
                                    per_entry,
                                },
                            )
                        }
                        _ => return None,
                    };
                    Some(SetMap {
                        map: name(&m.name),
                        width,
                        form,
                    })
                })
                .collect();
            SetEntry {
                name: s.name.clone(),
                kind: s.kind.describe(),
                dynamic: s.dynamic,
                maps,
            }
        })
        .collect()
}

/// The operations that add (`add`) or remove `item` in set `set` of a compiled policy.
/// `read(map, key)` returns a map entry's current value (the length table of a prefix hash).
/// Map names are the IR's.
pub fn plan(
    policy: &Policy,
    ir: &Program,
    set: &str,
    item: Item,
    add: bool,
    read: &mut ReadEntry<'_>,
) -> Result<Vec<MapOp>, SetError> {
    let sets = layout(policy, ir, &|n| n.to_string());
    let Some(s) = sets.iter().find(|s| s.name == set) else {
        return Err(SetError::NoSet {
            policy: policy.name.clone(),
            set: set.to_string(),
            known: sets
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    plan_entry(s, item, add, read)
}

/// The operations that add or remove `item` in the set `s` describes; map names are those of
/// the layout.
pub fn plan_entry(
    s: &SetEntry,
    item: Item,
    add: bool,
    read: &mut ReadEntry<'_>,
) -> Result<Vec<MapOp>, SetError> {
    if !s.dynamic {
        return Err(SetError::NotDynamic(s.name.clone()));
    }
    let mut ops = Vec::new();
    for m in &s.maps {
        let width = m.width as usize;
        let bits = width as u32 * 8;
        let p = match item {
            Item::Value(v) => Prefix {
                len: bits as u8,
                bits: v.bits,
            },
            Item::Prefix(v, l) => Prefix {
                len: l,
                bits: v.bits,
            },
            Item::Range(..) => return Err(SetError::Range(s.name.clone())),
        };
        // A value wider than the field this map serves can never match there.
        if bits < 128 && p.bits >> bits != 0 {
            continue;
        }
        let key = match m.form {
            SetForm::Exact => p.bits.to_be_bytes()[16 - width..].to_vec(),
            _ => prefix::key(p, width),
        };
        ops.push(if add {
            MapOp::Update {
                map: m.map.clone(),
                key,
                value: vec![1],
            }
        } else {
            MapOp::Delete {
                map: m.map.clone(),
                key,
            }
        });
        // A prefix hash probes only the lengths its table lists: a new length joins it. (A
        // length whose last prefix leaves stays listed: one wasted probe, never a miss.)
        let SetForm::PrefixHash { lengths, per_entry } = &m.form else {
            continue;
        };
        if !add {
            continue;
        }
        let table = lengths.clone();
        if *per_entry {
            // On the NIC the table keeps a slot per entry (entry 0: the count).
            let count = read(&table, &0u32.to_le_bytes())
                .and_then(|v| {
                    v.get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                })
                .unwrap_or(0)
                .min(prefix::table_slots(width) as u32);
            let listed = (0..count).any(|i| {
                read(&table, &(i + 1).to_le_bytes()).is_some_and(|v| v.first() == Some(&p.len))
            });
            if !listed && (count as usize) < prefix::table_slots(width) {
                // The new length goes after the others (order does not matter for
                // membership): its slot first, then the count, so that a packet meanwhile
                // probes the old list or the new one.
                let stride = prefix::table_stride(width);
                let slot = prefix::length_table(&[p.len], width)[8..8 + stride].to_vec();
                ops.push(MapOp::Update {
                    map: table.clone(),
                    key: (count + 1).to_le_bytes().to_vec(),
                    value: slot,
                });
                let mut value = vec![0u8; stride];
                value[..4].copy_from_slice(&(count + 1).to_le_bytes());
                ops.push(MapOp::Update {
                    map: table,
                    key: 0u32.to_le_bytes().to_vec(),
                    value,
                });
            }
        } else {
            let current = read(&table, &[0; 4]).unwrap_or_default();
            let mut lengths = prefix::table_lengths(&current, width);
            if !lengths.contains(&p.len) {
                lengths.push(p.len);
                ops.push(MapOp::Update {
                    map: table,
                    key: vec![0; 4],
                    value: prefix::length_table(&lengths, width),
                });
            }
        }
    }
    Ok(ops)
}
