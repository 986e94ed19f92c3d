//! `nfcc load --replace` without a reload: when the new version compiles to the very program
//! that runs (the same instruction digest, the same maps by name and shape) and differs only
//! in what its maps hold, the maps are updated in place — no verification, no attach, the
//! statistics kept. A program loaded by `nfcc load` is laid out for this (see
//! `nfcc_compiler::room`): statistics slots with room for rules to come and classifiers in two
//! halves, and the next version is compiled within the running one's room, so adding,
//! removing or changing a rule usually leaves the code as it is. Which map contents may change
//! is decided by role:
//!
//! - a classifier laid out in halves (`nfcc_bpf::room`): the new version's nodes, boxes and
//!   buckets are written into the half packets do not read (stale buckets of that half
//!   deleted), then its selector flipped — one word, so a packet sees one whole version of
//!   the classifier, the old or the new;
//! - per-rule statistics: kept; when rules moved to other slots (a rule added or removed
//!   before them), the counters' base is moved with them by name, read just before the flip
//!   (`nfcc_bpf::manifest::carried_base`) — packets counted during the microseconds between
//!   that reading and the flip may be counted to the rule that held the slot before;
//! - sets and counters (`MapRole::carried`): the new version's initial entries are added where
//!   the running map lacks them, live entries kept — what a reload carries over;
//! - maps holding run-time state (limiters, samples, the clock, the scratch vector, redirect
//!   targets, a dynamic pool's tables, slots, selector and flows): left alone;
//! - any other map (a packed classifier's, tables, merged rules, Maglev tables) must hold the
//!   new version's entries already, or the update is not made in place and the program is
//!   reloaded.
//!
//! Anything that rules out the update in place is a [`Reload`] reason, and `--replace`
//! reloads instead, as it always could.

use crate::error::DriverError;
use nfcc_bpf::layout::Counts;
use nfcc_bpf::manifest::{carried_base, Manifest, MapEntry, MapRole, Stage};
use nfcc_bpf::room::{ClassifierRoom, Half};
use nfcc_runtime::PinnedMaps;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What an update in place did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InPlace {
    /// Map entries written (nodes, boxes, buckets, set and counter entries added).
    pub written: usize,
    /// Map entries deleted (stale buckets).
    pub deleted: usize,
    /// Classifiers flipped to the half holding the new version.
    pub classifiers: usize,
    /// Whether rules moved to other statistics slots (their counts moved with them).
    pub moved: bool,
    /// From the first map write to the last flip.
    pub took: std::time::Duration,
}

/// Why a new version is reloaded instead of written into the running program's maps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reload {
    /// `--reload` asked for it.
    #[error("asked for (--reload)")]
    Asked,
    /// Redirect targets are resolved when a program is loaded.
    #[error("the policy redirects (targets are resolved at load)")]
    Redirects,
    /// One of the versions has no host program.
    #[error("an update in place needs the host program of both versions")]
    NoHostProgram,
    /// The running program was not compiled by nfcc (no digest of its instructions).
    #[error("the running program has no instruction digest")]
    NoDigest,
    /// The new version compiles to other instructions.
    #[error("the program's instructions changed")]
    CodeChanged,
    /// A map of the new version has another kind, size or role.
    #[error("map {0} changed shape")]
    MapShape(String),
    /// A map of the new version does not exist in the running one.
    #[error("map {0} is new")]
    MapNew(String),
    /// A map whose contents must stay as they are (a packed classifier's, a table) changed.
    #[error("the entries of map {0} changed")]
    EntriesChanged(String),
    /// A classifier's selector map has no word to read.
    #[error("{0} has no selector word")]
    NoSelector(String),
    /// The new version did not fit the running program's room (`nfcc_compiler::room`): the
    /// reason found, and what did not fit.
    #[error("{reason}: the new version does not fit the running program's room ({})", .misfits.join("; "))]
    Misfit {
        /// What ruled out the update.
        reason: Box<Reload>,
        /// What the compiler could not lay out within the room.
        misfits: Vec<String>,
    },
}

/// One map's new contents, by key.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The steps of an update, in order, and the selectors to flip after them.
struct Plan {
    steps: Vec<Step>,
    /// Each classifier's selector map and the word naming its new half.
    flips: Vec<(String, u32)>,
}

/// One planned step, in order.
enum Step {
    /// Write these entries.
    Write(String, Entries),
    /// Delete these keys.
    Delete(String, Vec<Vec<u8>>),
}

/// Plans the update of `old`'s maps (`maps`, pinned) to `new`'s with `entries` (map, key,
/// value) as the new version's initial entries; `Err` says why it cannot be made in place.
fn plan(
    old: &Stage,
    new: &Stage,
    entries: &[(String, Vec<u8>, Vec<u8>)],
    maps: &PinnedMaps,
) -> Result<Result<Plan, Reload>, DriverError> {
    match (&old.code, &new.code) {
        (Some(a), Some(b)) if a == b => {}
        (Some(_), Some(_)) => {
            return Ok(Err(Reload::CodeChanged));
        }
        _ => return Ok(Err(Reload::NoDigest)),
    }
    let shape = |m: &MapEntry| (m.kind, m.key_size, m.value_size, m.max_entries, m.role);
    for m in &new.maps {
        match old.map(&m.name) {
            Some(o) if shape(o) == shape(m) => {}
            Some(_) => return Ok(Err(Reload::MapShape(m.name.clone()))),
            None => return Ok(Err(Reload::MapNew(m.name.clone()))),
        }
    }
    let mut by_map: HashMap<&str, Entries> = HashMap::new();
    for (m, k, v) in entries {
        by_map
            .entry(m.as_str())
            .or_default()
            .push((k.clone(), v.clone()));
    }
    let live = |name: &str| -> Result<HashMap<Vec<u8>, Vec<u8>>, DriverError> {
        let mut out = HashMap::new();
        for k in maps.map_keys(name)? {
            if let Some(v) = maps.map_lookup(name, &k)? {
                out.insert(k, v);
            }
        }
        Ok(out)
    };
    let mut plan = Plan {
        steps: Vec::new(),
        flips: Vec::new(),
    };
    let rooms: Vec<&ClassifierRoom> = new
        .room
        .iter()
        .flat_map(|r| &r.classifiers)
        .filter(|c| !c.select.is_empty())
        .collect();
    for c in &rooms {
        match classifier(c, &by_map, maps)? {
            Ok((steps, flip)) => {
                plan.steps.extend(steps);
                plan.flips.push(flip);
            }
            Err(why) => return Ok(Err(why)),
        }
    }
    for m in &new.maps {
        if rooms.iter().any(|c| c.owns(&m.name)) {
            continue;
        }
        let want = by_map.get(m.name.as_str()).cloned().unwrap_or_default();
        match m.role {
            // A dynamic pool's tables, slots, selector and flows: live state (`nfcc pool`).
            _ if new.pool_of_map(&m.name).is_some() => {}
            MapRole::RuleStats
            | MapRole::Limiter
            | MapRole::Samples
            | MapRole::Clock
            | MapRole::Scratch
            | MapRole::RedirectTargets
            | MapRole::XskSockets
            | MapRole::Other => {}
            r if r.carried() => {
                let now = live(&m.name)?;
                let add: Entries = want
                    .into_iter()
                    .filter(|(k, _)| !now.contains_key(k))
                    .collect();
                if !add.is_empty() {
                    plan.steps.push(Step::Write(m.name.clone(), add));
                }
            }
            _ => {
                let now = live(&m.name)?;
                let array = matches!(
                    m.kind,
                    nfcc_bpf::MapKind::Array | nfcc_bpf::MapKind::PercpuArray
                );
                let wanted: HashMap<&[u8], &[u8]> =
                    want.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                let same = wanted
                    .iter()
                    .all(|(k, v)| now.get(*k).map(|x| &x[..]) == Some(*v))
                    && now.iter().all(|(k, v)| {
                        wanted.contains_key(&k[..]) || (array && v.iter().all(|b| *b == 0))
                    });
                if !same {
                    return Ok(Err(Reload::EntriesChanged(m.name.clone())));
                }
            }
        }
    }
    Ok(Ok(plan))
}

/// The steps that write classifier `c`'s new version into the half packets do not read (its
/// stale buckets there deleted), and the flip to that half.
#[allow(clippy::type_complexity)]
fn classifier(
    c: &ClassifierRoom,
    by_map: &HashMap<&str, Entries>,
    maps: &PinnedMaps,
) -> Result<Result<(Vec<Step>, (String, u32)), Reload>, DriverError> {
    let zero = 0u32.to_le_bytes();
    let Some(word) = maps.map_lookup(&c.select, &zero)? else {
        return Ok(Err(Reload::NoSelector(c.select.clone())));
    };
    let read = u32::from_le_bytes(word[..4].try_into().expect("a selector word"));
    let idle = Half::of_selector(read).other();
    let mut steps = Vec::new();
    for map in [&c.nodes, &c.boxes, &c.tuples] {
        if map.is_empty() {
            continue;
        }
        let want: Entries = by_map
            .get(map.as_str())
            .into_iter()
            .flatten()
            .filter(|(k, _)| c.half_of(map, k) == Some(idle))
            .cloned()
            .collect();
        if *map == c.tuples {
            // A hash: the idle half's buckets the new version has no more.
            let kept: HashSet<&[u8]> = want.iter().map(|(k, _)| &k[..]).collect();
            let stale: Vec<Vec<u8>> = maps
                .map_keys(map)?
                .into_iter()
                .filter(|k| c.half_of(map, k) == Some(idle) && !kept.contains(&k[..]))
                .collect();
            steps.push(Step::Delete(map.clone(), stale));
        }
        // Array entries past the new ones are left as they are: nothing leads to them.
        steps.push(Step::Write(map.clone(), want));
    }
    Ok(Ok((steps, (c.select.clone(), idle.selector()))))
}

/// Updates the running version `old` to `new` (whose initial entries are `entries`) in
/// place, when that is possible: the counters' base the new manifest takes, or `Ok(Err(why))`
/// when it is not and the caller should reload; nothing was changed then.
#[allow(clippy::type_complexity)]
pub fn update(
    old: &Manifest,
    new: &Manifest,
    entries: &[(String, Vec<u8>, Vec<u8>)],
) -> Result<Result<(InPlace, Vec<Counts>), Reload>, DriverError> {
    let (Some(old_host), Some(new_host)) = (&old.host, &new.host) else {
        return Ok(Err(Reload::NoHostProgram));
    };
    let maps = nfcc_runtime::deploy::stage_maps(old_host)?;
    let plan = match plan(old_host, new_host, entries, &maps)? {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let started = Instant::now();
    let mut done = InPlace {
        classifiers: plan.flips.len(),
        ..InPlace::default()
    };
    for step in plan.steps {
        match step {
            Step::Write(map, es) => {
                done.written += es.len();
                maps.map_update_many(&map, &es)?;
            }
            Step::Delete(map, keys) => {
                for k in keys {
                    done.deleted += usize::from(maps.map_delete(&map, &k)?);
                }
            }
        }
    }
    // Rules that move to other slots take their counts along, read just before the flip.
    let names = |m: &Manifest| m.rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let base = if names(old) == names(new) {
        old.base.clone()
    } else {
        done.moved = true;
        let live = nfcc_runtime::deploy::stage_counts(&maps, old_host, old.rules.len())?;
        carried_base(&old.rules, &old.base, &live, &new.rules, &live)
    };
    for (select, word) in plan.flips {
        maps.map_update_many(
            &select,
            &[(0u32.to_le_bytes().to_vec(), word.to_le_bytes().to_vec())],
        )?;
    }
    done.took = started.elapsed();
    Ok(Ok((done, base)))
}
