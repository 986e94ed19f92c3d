//! Lowering `balance`: a pool becomes its Maglev table map (one per pool, however many
//! actions balance over it). A static pool's backends are constants in the code; a dynamic
//! pool's live in maps `nfcc pool` rewrites on a loaded program: two Maglev tables of slot
//! indices and a selector saying which is live (a change writes the idle one, then flips the
//! selector, so a packet reads one whole table), and the backend slots as
//! `nfcc_bpf::layout::PoolBackend` records. `sticky N` adds an LRU flow table per action,
//! keyed by the balance key, holding {slot, incarnation}.

use super::{canonical, maglev, Lower, MAGLEV_SLOTS};
use crate::ir::{Action, DynPool, MapId, MapPurpose};
use nfcc_bpf::layout::PoolBackend;
use nfcc_dsl::ast::Span;
use nfcc_dsl::checked::{self as ck, Family, Field};

/// One `balance` action as checked.
pub(super) struct Spec<'a> {
    pub(super) pool: ck::PoolId,
    pub(super) by: &'a [Field],
    pub(super) via_fib: bool,
    pub(super) encap: Option<ck::Encap>,
    pub(super) sticky: Option<u32>,
}

/// The IR map name prefixes of a pool's maps (the pool's name follows, so the manifest can
/// name the owner).
pub(crate) const TABLE_PREFIX: &str = "maglev_";
pub(crate) const BACKENDS_PREFIX: &str = "poolb_";
pub(crate) const ACTIVE_PREFIX: &str = "poolsel_";
pub(crate) const FLOWS_PREFIX: &str = "flows_";

impl Lower<'_> {
    pub(super) fn balance(&mut self, b: &Spec<'_>, span: Span) -> Option<Action> {
        let p = &self.policy.pools[b.pool.index()];
        if p.dynamic && b.encap.is_none() {
            self.unsupported(
                span,
                "`balance` over a dynamic pool without `encap` (rewriting the destination to an address read from a map)",
            );
            return None;
        }
        let backends: Vec<(Field, u128)> = p
            .backends
            .iter()
            .map(|(a, _)| (canonical(Field::IpDst, a.family), a.bits))
            .collect();
        let (table, dynamic) = match self.pool_maps.get(&b.pool) {
            Some(t) => *t,
            None => {
                let made = self.pool_maps_for(b.pool);
                self.pool_maps.insert(b.pool, made);
                made
            }
        };
        // A static pool keeps every flow on its backend: a flow table would change nothing.
        let flows = match (b.sticky, dynamic) {
            (Some(n), Some(_)) => Some(self.flows_map(b.pool, b.by, n)),
            _ => None,
        };
        let key = self.key(b.by);
        Some(Action::Balance {
            table,
            key,
            backends,
            via_fib: b.via_fib,
            encap: b.encap,
            dynamic,
            flows,
        })
    }

    /// The Maglev table of a pool, and for a dynamic one its backend slots and selector, with
    /// their contents as declared (slot `i` the `i`th backend, both tables alike).
    fn pool_maps_for(&mut self, pool: ck::PoolId) -> (MapId, Option<DynPool>) {
        let p = &self.policy.pools[pool.index()];
        let slots = maglev(&p.backends);
        let halves: u32 = if p.dynamic { 2 } else { 1 };
        let init = (0..halves)
            .flat_map(|h| {
                slots.iter().enumerate().map(move |(i, b)| {
                    let key = h * MAGLEV_SLOTS as u32 + i as u32;
                    (key.to_le_bytes().to_vec(), b.to_le_bytes().to_vec())
                })
            })
            .collect();
        let name = p.name.clone();
        let table = self.push_map(
            &format!("{TABLE_PREFIX}{name}"),
            MapPurpose::Maglev,
            4,
            4,
            halves * MAGLEV_SLOTS as u32,
            init,
        );
        if !p.dynamic {
            return (table, None);
        }
        let v6 = p.backends.first().is_some_and(|b| b.0.family == Family::V6);
        let records = p
            .backends
            .iter()
            .enumerate()
            .map(|(i, (a, w))| {
                let rec = PoolBackend {
                    addr: a.bits,
                    v6,
                    incarnation: 1,
                    weight: *w as u16,
                    live: true,
                };
                ((i as u32).to_le_bytes().to_vec(), rec.encode().to_vec())
            })
            .collect();
        let capacity = p.capacity;
        let backends = self.push_map(
            &format!("{BACKENDS_PREFIX}{name}"),
            MapPurpose::PoolBackends,
            4,
            PoolBackend::SIZE as u32,
            capacity,
            records,
        );
        let active = self.push_map(
            &format!("{ACTIVE_PREFIX}{name}"),
            MapPurpose::PoolActive,
            4,
            4,
            1,
            vec![(vec![0; 4], vec![0; 4])],
        );
        (
            table,
            Some(DynPool {
                backends,
                active,
                v6,
            }),
        )
    }

    /// A `sticky N` flow table: the balance key to {slot u32, incarnation u32}.
    fn flows_map(&mut self, pool: ck::PoolId, by: &[Field], capacity: u32) -> MapId {
        let name = &self.policy.pools[pool.index()].name;
        let n = self
            .maps
            .iter()
            .filter(|m| m.purpose == MapPurpose::Flows)
            .count();
        self.push_map(
            &format!("{FLOWS_PREFIX}{name}_{n}"),
            MapPurpose::Flows,
            Self::key_width(by).max(1),
            8,
            capacity,
            Vec::new(),
        )
    }
}
