//! `nfcc load --replace` without a reload: when the new version compiles to the very program
//! that runs (the same instruction digest, the same maps by name and shape) and differs only
//! in what its maps hold, the maps are updated in place — no verification, no attach, the
//! statistics untouched. Which map contents may change is decided by role:
//!
//! - a tuple classifier's buckets and boxes (`MapRole::ClassifierTuples` and the
//!   `ClassifierBoxes` map beside it):
//!   the new boxes are written into the half of the boxes map no bucket uses, stale buckets
//!   deleted, then every bucket replaced — each bucket one element update, so a packet meets
//!   every bucket whole, the old version's or the new one's;
//! - sets and counters (`MapRole::carried`): the new version's initial entries are added where
//!   the running map lacks them, live entries kept — what a reload carries over;
//! - maps holding run-time state (statistics, limiters, samples, the clock, the scratch
//!   vector, redirect targets, a dynamic pool's tables, slots, selector and flows): left
//!   alone;
//! - any other map (trees and their boxes, tables, merged rules, Maglev tables) must hold the
//!   new version's entries already, or the update is not made in place and the program is reloaded.
//!
//! Anything that rules out the update in place is a reason (`Err(String)` of [`plan`]), and
//! `--replace` reloads instead, as it always could.

use crate::error::DriverError;
use nfcc_bpf::manifest::{MapEntry, MapRole, Stage};
use nfcc_runtime::PinnedMaps;
use std::collections::{HashMap, HashSet};

/// What an update in place did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InPlace {
    /// Map entries written (boxes, buckets, set and counter entries added).
    pub written: usize,
    /// Map entries deleted (stale buckets).
    pub deleted: usize,
    /// Tuple classifiers whose buckets were swapped to the other half.
    pub classifiers: usize,
}

/// One map's new contents, by key.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The steps of an update, in order, and the tuple classifiers they move.
struct Plan {
    steps: Vec<Step>,
    classifiers: usize,
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
) -> Result<Result<Plan, String>, DriverError> {
    match (&old.code, &new.code) {
        (Some(a), Some(b)) if a == b => {}
        (Some(_), Some(_)) => {
            return Ok(Err("the program's instructions changed".into()));
        }
        _ => return Ok(Err("the running program has no instruction digest".into())),
    }
    let shape = |m: &MapEntry| (m.kind, m.key_size, m.value_size, m.max_entries, m.role);
    for m in &new.maps {
        match old.map(&m.name) {
            Some(o) if shape(o) == shape(m) => {}
            Some(_) => return Ok(Err(format!("map {} changed shape", m.name))),
            None => return Ok(Err(format!("map {} is new", m.name))),
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
    // A boxes map beside a tuples map moves with it; any other (a tree's) must not change.
    let tuples_of = |boxes: &str| boxes.replacen("nfcc_boxes", "nfcc_tuples", 1);
    let paired = |m: &MapEntry| {
        m.role == MapRole::ClassifierBoxes
            && new
                .map(&tuples_of(&m.name))
                .is_some_and(|t| t.role == MapRole::ClassifierTuples)
    };
    let mut plan = Plan {
        steps: Vec::new(),
        classifiers: 0,
    };
    for m in &new.maps {
        let want = by_map.get(m.name.as_str()).cloned().unwrap_or_default();
        match m.role {
            _ if paired(m) => {}
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
            MapRole::ClassifierTuples => {
                let boxes = m.name.replacen("nfcc_tuples", "nfcc_boxes", 1);
                let boxes_want = by_map.get(boxes.as_str()).cloned().unwrap_or_default();
                match tuples(&m.name, want, &boxes, boxes_want, maps)? {
                    Ok(s) => plan.steps.extend(s),
                    Err(why) => return Ok(Err(why)),
                }
                plan.classifiers += 1;
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
                    return Ok(Err(format!("the entries of map {} changed", m.name)));
                }
            }
        }
    }
    Ok(Ok(plan))
}

/// The steps that move a tuple classifier to its new buckets and boxes: the new boxes into
/// the idle half of the boxes map, stale buckets deleted, every bucket written.
fn tuples(
    name: &str,
    want: Entries,
    boxes: &str,
    boxes_want: Entries,
    maps: &PinnedMaps,
) -> Result<Result<Vec<Step>, String>, DriverError> {
    let word = |b: &[u8], i: usize| {
        u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("a 4-byte word"))
    };
    let is_header = |k: &[u8]| word(k, 0) == u32::MAX;
    let Some((header_key, header)) = want.iter().find(|(k, _)| is_header(k)) else {
        return Ok(Err(format!("{name} has no header entry")));
    };
    let (base, half) = (word(header, 0), word(header, 1));
    let live_keys = maps.map_keys(name)?;
    match maps.map_lookup(name, header_key)? {
        Some(h) if h == *header => {}
        _ => return Ok(Err(format!("{name} is laid out differently"))),
    }
    // The half the running buckets use; the new boxes go to the other one.
    let mut in_upper = false;
    for k in live_keys.iter().filter(|k| !is_header(k)) {
        if let Some(v) = maps.map_lookup(name, k)? {
            in_upper = word(&v, 0) >= base + half;
            break;
        }
    }
    let shift = if in_upper { 0 } else { half };
    let mut boxes_new = Entries::new();
    for (k, v) in boxes_want {
        let i = word(&k, 0);
        if i < base {
            // A leaf box of the trees beside the tuples: must be there already.
            if maps.map_lookup(boxes, &k)?.as_deref() != Some(&v[..]) {
                return Ok(Err(format!("the trees' boxes in {boxes} changed")));
            }
        } else {
            boxes_new.push(((i + shift).to_le_bytes().to_vec(), v));
        }
    }
    let buckets: Entries = want
        .into_iter()
        .filter(|(k, _)| !is_header(k))
        .map(|(k, v)| {
            let first = word(&v, 0) + shift;
            let mut v2 = first.to_le_bytes().to_vec();
            v2.extend_from_slice(&v[4..]);
            (k, v2)
        })
        .collect();
    let kept: HashSet<&[u8]> = buckets.iter().map(|(k, _)| &k[..]).collect();
    let stale: Vec<Vec<u8>> = live_keys
        .iter()
        .filter(|k| !is_header(k) && !kept.contains(&k[..]))
        .cloned()
        .collect();
    Ok(Ok(vec![
        Step::Write(boxes.to_string(), boxes_new),
        Step::Delete(name.to_string(), stale),
        Step::Write(name.to_string(), buckets),
    ]))
}

/// Updates the running `old` version's maps to the new version's (`new`, whose initial
/// entries are `entries`) in place, when that is possible: `Ok(Err(why))` when it is not and
/// the caller should reload; nothing was changed then.
pub fn update(
    old: &Stage,
    new: &Stage,
    entries: &[(String, Vec<u8>, Vec<u8>)],
) -> Result<Result<InPlace, String>, DriverError> {
    let maps = nfcc_runtime::deploy::stage_maps(old)?;
    let plan = match plan(old, new, entries, &maps)? {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let mut done = InPlace {
        classifiers: plan.classifiers,
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
    Ok(Ok(done))
}
