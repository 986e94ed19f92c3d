//! A classifier laid out for updates in place (see `nfcc_bpf::room`): its nodes, boxes and
//! tuple buckets twice, a half each, and a selector map whose one word names the half packets
//! read. The code finds a tree's root through a jump node at a fixed index of the half (node
//! `k` for the `k`-th tree: any value goes left, to the root), so the root may move; it walks
//! a few levels more than the tree needs and tests leaves to a multiple of four boxes, and
//! skips a part from a slot rounded down, so a new version of a rule or two usually fits the
//! same code. Given the running version's room, each of those is taken from it where the new
//! structure fits, and the reason recorded where it does not.

use super::built::{Built, Forest, Structure};
use super::packed::{box_value, map_name, nodes_map_of, tuple_parts, Laid, NODES_VALUE_MAX};
use super::tree::MAX_BUCKET;
use super::tuples::Tuples;
use crate::ir::classifier::{box_size, LEAF};
use crate::ir::{ClassifyPart, Map, MapId, MapPurpose, Program, Search, Select, Updatable};
use nfcc_bpf::room::{ClassifierRoom, PartRoom};

/// Levels walked beyond what the tree needs, for trees a change deepens.
const DEPTH_ROOM: u32 = 2;

/// A part skips from a slot rounded down to this, so rules added before it move it rarely.
const SLOT_STEP: u32 = 16;

/// Both halves of the structures this large or larger are not kept: the classifier is
/// packed, and a change to it reloads.
const HALVES_MAX_BYTES: u64 = 64 << 20;

/// Room for `n` entries: a quarter more, at least 64 more, in steps of 64.
fn room_for(n: usize) -> u32 {
    (n + n / 4 + 64).next_multiple_of(64) as u32
}

/// Lays `b` out in two halves (both holding this version; the selector says 0), within
/// `u.fit`'s classifier `tag` where it fits; records its room in `u.room`.
pub(super) fn lay(p: &mut Program, b: Built, tag: usize, u: &mut Updatable) -> Laid {
    let fit = u.fit.as_ref().and_then(|r| r.classifiers.get(tag)).cloned();
    let ndims = b.dims.len();
    let box_bytes = u64::from(box_size(&b.masks)) + 4;
    let (forest, tuples) = match &b.structure {
        Structure::Forest(f) => (Some(f), None),
        Structure::Tuples(t, f) => (f.as_ref(), Some(t)),
    };
    let bytes = forest.map_or(0, |f| {
        f.nodes.len() as u64 * 16 + f.boxes.len() as u64 * box_bytes
    }) + tuples.map_or(0, |t| {
        t.boxes.len() as u64 * box_bytes + t.buckets.len() as u64 * (12 + 4 * ndims as u64)
    });
    if 2 * bytes >= HALVES_MAX_BYTES {
        u.misfits.push(format!(
            "classifier {tag} is not kept twice ({} MiB a copy): it is packed, and a change to it reloads",
            bytes >> 20
        ));
        u.room.classifiers.push(ClassifierRoom::default());
        return super::packed::packed(p, b, tag);
    }
    let Built {
        rects,
        masks: masked,
        structure,
        ..
    } = b;
    let (forest, tuples): (Option<Forest>, Option<Tuples>) = match structure {
        Structure::Forest(f) => (Some(f), None),
        Structure::Tuples(t, f) => (f, Some(t)),
    };
    let mut misfit = |why: String| u.misfits.push(format!("classifier {tag}: {why}"));
    let slot_of = |first_box: u32| p.rules[rects[first_box as usize].rule].stats_index;

    // The parts in search order, with what the code would hold fresh.
    let trees = forest.as_ref().map_or(0, |f| f.trees.len());
    let mut parts: Vec<ClassifyPart> = Vec::new();
    if let Some(f) = &forest {
        for (k, t) in f.trees.iter().enumerate() {
            let Search::Tree { depth, .. } = t.search else {
                unreachable!("a forest's part is a tree")
            };
            parts.push(ClassifyPart {
                search: Search::Tree {
                    root: k as u32,
                    depth: depth + 1,
                },
                bucket: t.bucket,
                first_slot: slot_of(t.first_slot),
                needs: t.needs,
            });
        }
    }
    if let Some(t) = &tuples {
        parts.extend(tuple_parts(t).map(|mut part| {
            part.first_slot = slot_of(part.first_slot);
            part
        }));
    }
    parts.sort_by_key(|t| t.first_slot);
    let fresh = |part: &ClassifyPart| PartRoom {
        depth: match part.search {
            Search::Tree { depth, .. } => depth + DEPTH_ROOM,
            Search::Tuple { .. } => 0,
        },
        bucket: part
            .bucket
            .next_multiple_of(4)
            .min(MAX_BUCKET)
            .max(part.bucket),
        first_slot: part.first_slot - part.first_slot % SLOT_STEP,
    };
    let fit_parts = match &fit {
        Some(r) if r.parts.len() == parts.len() => Some(&r.parts),
        Some(r) => {
            misfit(format!(
                "{} trees and tuples, the running program searches {}",
                parts.len(),
                r.parts.len()
            ));
            None
        }
        None => None,
    };
    let mut rooms = Vec::new();
    for (i, part) in parts.iter_mut().enumerate() {
        let depth = match part.search {
            Search::Tree { depth, .. } => depth,
            Search::Tuple { .. } => 0,
        };
        let room = match fit_parts.map(|r| &r[i]) {
            Some(r)
                if depth <= r.depth
                    && part.bucket <= r.bucket
                    && r.first_slot <= part.first_slot =>
            {
                r.clone()
            }
            Some(r) => {
                misfit(format!(
                    "part {i} needs depth {depth}, leaves of {}, from slot {}; the running program walks {}, tests {}, from slot {}",
                    part.bucket, part.first_slot, r.depth, r.bucket, r.first_slot
                ));
                fresh(part)
            }
            None => fresh(part),
        };
        if let Search::Tree { depth, .. } = &mut part.search {
            *depth = room.depth;
        }
        part.bucket = room.bucket;
        part.first_slot = room.first_slot;
        rooms.push(room);
    }

    // Capacities: the running program's where this version fits.
    let mut within = |what: &str, need: usize, running: Option<u32>| -> u32 {
        match running {
            Some(r) if need <= r as usize => r,
            Some(r) => {
                misfit(format!(
                    "{need} {what} do not fit the running program's {r}"
                ));
                room_for(need)
            }
            None => room_for(need),
        }
    };
    let node_need = forest.as_ref().map_or(0, |f| f.nodes.len() + trees);
    let nodes_half = if forest.is_some() {
        within("nodes", node_need, fit.as_ref().map(|r| r.nodes_half))
    } else {
        0
    };
    let tree_boxes_half = forest.as_ref().map_or(0, |f| {
        within(
            "tree boxes",
            f.boxes.len(),
            fit.as_ref().map(|r| r.tree_boxes_half),
        )
    });
    let tuple_boxes_half = tuples.as_ref().map_or(0, |t| {
        within(
            "tuple boxes",
            t.boxes.len(),
            fit.as_ref().map(|r| r.tuple_boxes_half),
        )
    });
    let tuple_ids = tuples.as_ref().map_or(0, |t| t.tuples.len() as u32);
    let buckets = tuples.as_ref().map_or(0, |t| {
        within(
            "tuple buckets (both halves)",
            2 * t.buckets.len(),
            fit.as_ref().map(|r| r.buckets),
        )
    });

    let word = |w: u32| w.to_le_bytes();
    let select = MapId(p.maps.len() as u32);
    p.maps.push(Map {
        name: map_name("select", tag),
        purpose: MapPurpose::ClassifierSelect,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        init: vec![(word(0).to_vec(), word(0).to_vec())],
    });
    let in_value = 16 * nodes_half as usize <= NODES_VALUE_MAX;
    let nodes = forest.as_ref().map(|f| {
        let map = MapId(p.maps.len() as u32);
        // Half h: the jump nodes, then the forest's nodes one further each.
        let half = |h: u32| -> Vec<[u32; 4]> {
            let base = if in_value { 0 } else { h * nodes_half } + trees as u32;
            let jumps = f.trees.iter().map(|t| match t.search {
                Search::Tree { root, .. } => [0, u32::MAX, root + base, root + base],
                Search::Tuple { .. } => unreachable!("a forest's part is a tree"),
            });
            jumps
                .chain(f.nodes.iter().map(|n| {
                    if n[0] == LEAF {
                        [LEAF, n[1] + h * tree_boxes_half, n[2], 0]
                    } else {
                        [n[0], n[1], n[2] + base, n[3] + base]
                    }
                }))
                .collect()
        };
        p.maps
            .push(nodes_map_of(tag, &[half(0), half(1)], nodes_half, in_value));
        map
    });
    let tuple_base = 2 * tree_boxes_half;
    let tuples_map = tuples.as_ref().map(|t| {
        let map = MapId(p.maps.len() as u32);
        let init = (0..2)
            .flat_map(|h| {
                t.buckets.iter().map(move |b| {
                    (
                        std::iter::once(b.tuple + h * tuple_ids)
                            .chain(b.key.iter().copied())
                            .flat_map(word)
                            .collect(),
                        [tuple_base + h * tuple_boxes_half + b.first, b.count]
                            .into_iter()
                            .flat_map(word)
                            .collect(),
                    )
                })
            })
            .collect();
        p.maps.push(Map {
            name: map_name("tuples", tag),
            purpose: MapPurpose::ClassifierTuples,
            key_size: 4 + 4 * ndims as u32,
            value_size: 8,
            max_entries: buckets,
            init,
        });
        map
    });
    let boxes = MapId(p.maps.len() as u32);
    let value_size = box_size(&masked);
    let mut init = Vec::new();
    for h in 0..2 {
        let placed = forest
            .iter()
            .flat_map(|f| {
                f.boxes
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| (h * tree_boxes_half + i as u32, r))
            })
            .chain(tuples.iter().flat_map(|t| {
                t.boxes
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| (tuple_base + h * tuple_boxes_half + i as u32, r))
            }));
        for (k, r) in placed {
            init.push((
                word(k).to_vec(),
                box_value(p, &rects[r], &masked, value_size),
            ));
        }
    }
    p.maps.push(Map {
        name: map_name("boxes", tag),
        purpose: MapPurpose::ClassifierBoxes,
        key_size: 4,
        value_size,
        max_entries: (2 * tree_boxes_half + 2 * tuple_boxes_half).max(1),
        init,
    });
    u.room.classifiers.push(ClassifierRoom {
        select: map_name("select", tag),
        nodes: if forest.is_some() {
            map_name("tree", tag)
        } else {
            String::new()
        },
        nodes_half,
        nodes_in_value: in_value,
        boxes: map_name("boxes", tag),
        tree_boxes_half,
        tuple_boxes_half,
        tuples: if tuples.is_some() {
            map_name("tuples", tag)
        } else {
            String::new()
        },
        tuple_ids,
        buckets,
        parts: rooms,
    });
    Laid {
        nodes,
        tuples: tuples_map,
        boxes,
        parts,
        select: Some(Select {
            map: select,
            nodes_half,
            tuple_ids,
        }),
    }
}
