//! Planning a change of a dynamic pool on a loaded program (`nfcc pool add|del`), from the
//! pool's layout in the manifest (`nfcc_bpf::manifest::PoolEntry`) and its backend slots as
//! the maps hold them — the same maps the compiler laid out in `lower::balance`.
//!
//! A change is ordered so that a packet never reaches a backend that is gone: a new or
//! re-weighted backend's record is written first; then the idle Maglev table is filled for
//! the new set of live slots and the selector flipped to it (a packet reads the selector,
//! then one whole table: the old or the new, never a mix); a removed backend's record is
//! marked dead only after the flip, which also ends the flows `sticky` remembered on it.
//! A new backend takes the lowest free slot, as a new incarnation of it; the evaluator
//! (`nfcc_dsl::eval::State::pool_add`) makes the same choices.

use crate::balance::maglev;
use nfcc_bpf::layout::{PoolBackend, MAGLEV_SLOTS, NO_BACKEND};
use nfcc_bpf::manifest::PoolEntry;
use nfcc_dsl::checked::{Family, Scalar};

/// A change of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolChange {
    /// Add a backend, or change the weight of one the pool holds.
    Add {
        /// Its address (big-endian number).
        addr: u128,
        /// Its Maglev weight (1..=255).
        weight: u16,
    },
    /// Remove a backend.
    Del {
        /// Its address.
        addr: u128,
    },
}

/// One map write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapWrite {
    /// The map's object name.
    pub map: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// The writes of a change, in the order they must be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// Backend records written before the new table is live.
    pub before: Vec<MapWrite>,
    /// The idle Maglev table, every slot (one map's writes; batch them).
    pub table: Vec<MapWrite>,
    /// The selector's new value: the new table goes live.
    pub flip: MapWrite,
    /// Backend records written once the new table is live.
    pub after: Vec<MapWrite>,
    /// Maglev slots whose backend changed (of [`MAGLEV_SLOTS`]).
    pub moved: usize,
    /// The backend slots once the writes are applied.
    pub slots: Vec<PoolBackend>,
}

/// Why a change cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolPlanError {
    /// Every slot holds a backend.
    #[error("pool `{pool}` is full: {capacity} backends (its declared capacity)")]
    Full {
        /// The pool.
        pool: String,
        /// Its capacity.
        capacity: u32,
    },
    /// `del` of an address the pool does not hold.
    #[error("pool `{pool}` has no backend {addr}")]
    Absent {
        /// The pool.
        pool: String,
        /// The address.
        addr: String,
    },
    /// The maps do not hold what the layout says.
    #[error("pool `{pool}`'s maps are not as its layout says: {why}")]
    Corrupt {
        /// The pool.
        pool: String,
        /// What is wrong.
        why: String,
    },
}

/// An address of the pool's family as the language writes it.
pub fn show(addr: u128, v6: bool) -> String {
    if v6 {
        std::net::Ipv6Addr::from(addr).to_string()
    } else {
        std::net::Ipv4Addr::from(addr as u32).to_string()
    }
}

/// The Maglev table over the live slots, as slot indices ([`NO_BACKEND`] everywhere when
/// none is live).
pub fn table(slots: &[PoolBackend]) -> Vec<u32> {
    let live: Vec<usize> = (0..slots.len()).filter(|i| slots[*i].live).collect();
    if live.is_empty() {
        return vec![NO_BACKEND; MAGLEV_SLOTS as usize];
    }
    let backends: Vec<(Scalar, u32)> = live
        .iter()
        .map(|i| {
            let s = &slots[*i];
            let family = if s.v6 { Family::V6 } else { Family::V4 };
            (
                Scalar {
                    family,
                    bits: s.addr,
                },
                u32::from(s.weight),
            )
        })
        .collect();
    maglev(&backends)
        .into_iter()
        .map(|b| live[b as usize] as u32)
        .collect()
}

/// Plans `change` for the pool `entry`, whose slots hold `slots` (one record per slot,
/// `capacity` of them) and whose live table is `active` (0 or 1).
pub fn plan(
    entry: &PoolEntry,
    slots: &[PoolBackend],
    active: u32,
    change: PoolChange,
) -> Result<PoolPlan, PoolPlanError> {
    if slots.len() != entry.capacity as usize || active > 1 {
        return Err(PoolPlanError::Corrupt {
            pool: entry.name.clone(),
            why: format!(
                "{} slots (capacity {}), live table {active}",
                slots.len(),
                entry.capacity
            ),
        });
    }
    let record = |slot: usize, b: &PoolBackend| MapWrite {
        map: entry.backends.clone(),
        key: (slot as u32).to_le_bytes().to_vec(),
        value: b.encode().to_vec(),
    };
    let mut next = slots.to_vec();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let held = |addr: u128| slots.iter().position(|s| s.live && s.addr == addr);
    match change {
        PoolChange::Add { addr, weight } => {
            let slot = match held(addr) {
                Some(i) => {
                    next[i].weight = weight;
                    i
                }
                None => {
                    let Some(i) = slots.iter().position(|s| !s.live) else {
                        return Err(PoolPlanError::Full {
                            pool: entry.name.clone(),
                            capacity: entry.capacity,
                        });
                    };
                    next[i] = PoolBackend {
                        addr,
                        v6: entry.v6,
                        incarnation: slots[i].incarnation.wrapping_add(1),
                        weight,
                        live: true,
                    };
                    i
                }
            };
            before.push(record(slot, &next[slot]));
        }
        PoolChange::Del { addr } => {
            let Some(i) = held(addr) else {
                return Err(PoolPlanError::Absent {
                    pool: entry.name.clone(),
                    addr: show(addr, entry.v6),
                });
            };
            next[i].live = false;
            after.push(record(i, &next[i]));
        }
    }
    let (old, new) = (table(slots), table(&next));
    let moved = old.iter().zip(&new).filter(|(a, b)| a != b).count();
    let idle = 1 - active;
    let table = new
        .iter()
        .enumerate()
        .map(|(i, s)| MapWrite {
            map: entry.table.clone(),
            key: (idle * MAGLEV_SLOTS + i as u32).to_le_bytes().to_vec(),
            value: s.to_le_bytes().to_vec(),
        })
        .collect();
    Ok(PoolPlan {
        before,
        table,
        flip: MapWrite {
            map: entry.active.clone(),
            key: vec![0; 4],
            value: idle.to_le_bytes().to_vec(),
        },
        after,
        moved,
        slots: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(capacity: u32) -> PoolEntry {
        PoolEntry {
            name: "web".into(),
            v6: false,
            capacity,
            table: "t".into(),
            backends: "b".into(),
            active: "a".into(),
            flows: vec![],
        }
    }

    fn slots(addrs: &[u128], capacity: usize) -> Vec<PoolBackend> {
        let mut s: Vec<PoolBackend> = addrs
            .iter()
            .map(|a| PoolBackend {
                addr: *a,
                v6: false,
                incarnation: 1,
                weight: 1,
                live: true,
            })
            .collect();
        s.resize(capacity, PoolBackend::default());
        s
    }

    #[test]
    fn removing_one_of_ten_moves_its_slots_and_few_others() {
        let addrs: Vec<u128> = (1..=10).map(|i| 0x0a00_0000 + i).collect();
        let s = slots(&addrs, 16);
        let p = plan(&entry(16), &s, 0, PoolChange::Del { addr: addrs[3] }).unwrap();
        let old = table(&s);
        let held = old.iter().filter(|b| **b == 3).count();
        // Its own slots move, and Maglev moves only a few percent of the others.
        assert!(p.moved >= held && p.moved < held + MAGLEV_SLOTS as usize / 20);
        // The record goes dead after the flip, which writes the idle half.
        assert!(p.before.is_empty() && p.after.len() == 1);
        assert_eq!(p.flip.value, 1u32.to_le_bytes());
        assert_eq!(p.table[0].key, MAGLEV_SLOTS.to_le_bytes());
        assert!(p.table.iter().all(|w| w.value != 3u32.to_le_bytes()));
    }

    #[test]
    fn adds_take_the_lowest_free_slot_as_a_new_incarnation() {
        let mut s = slots(&[1, 2], 4);
        s[0].live = false;
        let p = plan(&entry(4), &s, 1, PoolChange::Add { addr: 9, weight: 2 }).unwrap();
        assert_eq!(p.before[0].key, 0u32.to_le_bytes());
        let rec = PoolBackend::decode(&p.before[0].value, false).unwrap();
        assert_eq!(
            (rec.addr, rec.incarnation, rec.weight, rec.live),
            (9, 2, 2, true)
        );
        assert_eq!(p.flip.value, 0u32.to_le_bytes());
        let full = slots(&[1, 2], 2);
        assert!(matches!(
            plan(&entry(2), &full, 0, PoolChange::Add { addr: 3, weight: 1 }),
            Err(PoolPlanError::Full { .. })
        ));
        assert!(matches!(
            plan(&entry(2), &full, 0, PoolChange::Del { addr: 3 }),
            Err(PoolPlanError::Absent { .. })
        ));
    }

    #[test]
    fn an_empty_pool_has_no_backend_in_any_slot() {
        let s = slots(&[], 2);
        assert!(table(&s).iter().all(|b| *b == NO_BACKEND));
    }
}
