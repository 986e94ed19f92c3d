//! A classifier's data packed into maps (`nfcc compile`, and classifiers too big to keep
//! twice): every node once, in one value where they fit, the tuples' boxes in the first of two
//! halves after the trees' (the tuples map's header entry says where); and what the packed
//! layout and the halved one (`halves`) share — a box's value, map names, tuple parts, where
//! the data went.

use super::boxes::{Bound, Rect};
use super::built::{Built, Structure};
use super::tree::MAX_BUCKET;
use super::tuples;
use crate::ir::classifier::box_size;
use crate::ir::{ClassifyPart, Map, MapId, MapPurpose, Program, Search};

/// The largest value of a nodes map holding all its nodes in one value: the kernel's array
/// values stop at `KMALLOC_MAX_SIZE` (4 MiB); past this the map holds a node per entry.
pub(super) const NODES_VALUE_MAX: usize = (4 << 20) - 4096;

/// The boxes map's value for box `r`: {verdict, statistics slot, need, forbid, then per
/// dimension lo, hi, and mask, value where `masked`}.
pub(super) fn box_value(p: &Program, r: &Rect, masked: &[bool], value_size: u32) -> Vec<u8> {
    let rule = &p.rules[r.rule];
    let verdict = crate::verdict::verdict(p.hook, p.target, &rule.terminal) as u32;
    let mut v = Vec::with_capacity(value_size as usize);
    for w in [verdict, rule.stats_index, r.need, r.forbid] {
        v.extend(w.to_le_bytes());
    }
    for (
        Bound {
            lo,
            hi,
            mask,
            value,
        },
        m,
    ) in r.dims.iter().zip(masked)
    {
        v.extend(lo.to_le_bytes());
        v.extend(hi.to_le_bytes());
        if *m {
            v.extend(mask.to_le_bytes());
            v.extend(value.to_le_bytes());
        }
    }
    v
}

/// Where a laid-out classifier's data went.
pub(super) struct Laid {
    pub(super) nodes: Option<MapId>,
    pub(super) tuples: Option<MapId>,
    pub(super) boxes: MapId,
    /// In search order, first slots as statistics slots.
    pub(super) parts: Vec<ClassifyPart>,
    pub(super) select: Option<crate::ir::Select>,
}

/// Classifier `tag`'s nodes map holding `lists` of nodes, `per` nodes apart: list `h` in the
/// one value of entry `h` (padded to `per` nodes) where `in_value`, else one entry per node,
/// node `i` of list `h` at entry `h * per + i`.
pub(super) fn nodes_map_of(tag: usize, lists: &[Vec<[u32; 4]>], per: u32, in_value: bool) -> Map {
    let key = |k: u32| k.to_le_bytes().to_vec();
    let bytes = |n: &[u32; 4]| n.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    let count = lists.len() as u32;
    let (value_size, max_entries, init) = if in_value {
        let value = |l: &Vec<[u32; 4]>| {
            let mut v: Vec<u8> = l.iter().flat_map(bytes).collect();
            v.resize(16 * per as usize, 0);
            v
        };
        let init = (0..).zip(lists).map(|(h, l)| (key(h), value(l))).collect();
        (16 * per, count, init)
    } else {
        let init = (0..)
            .zip(lists)
            .flat_map(|(h, l)| (0..).zip(l).map(move |(i, n)| (key(h * per + i), bytes(n))))
            .collect();
        (16, count * per, init)
    };
    Map {
        name: map_name("tree", tag),
        purpose: MapPurpose::ClassifierNodes,
        key_size: 4,
        value_size,
        max_entries,
        init,
    }
}

/// The name of classifier `tag`'s map `what` (`tree`, `tuples`, `boxes`, `select`).
pub(super) fn map_name(what: &str, tag: usize) -> String {
    format!("nfcc_{what}{tag}")
}

/// Lays `b` out packed: every node once (in one value where they fit), the tuples' boxes in
/// the first of two halves after the trees' (the tuples map's header entry says where).
pub(super) fn packed(p: &mut Program, b: Built, tag: usize) -> Laid {
    let ndims = b.dims.len();
    let Built {
        rects,
        masks: masked,
        structure: s,
        ..
    } = b;
    let (forest, tuples) = match s {
        Structure::Forest(f) => (Some(f), None),
        Structure::Tuples(t, f) => (f, Some(t)),
    };
    let mut parts = Vec::new();
    let mut boxes = Vec::new();
    let nodes = forest.map(|f| {
        let nodes_map = MapId(p.maps.len() as u32);
        // Every node in one value where they fit: the walk then indexes it with no lookup
        // per level (see `codegen::classify`).
        let in_value = f.nodes.len() * 16 <= NODES_VALUE_MAX;
        let per = f.nodes.len() as u32;
        p.maps.push(nodes_map_of(
            tag,
            std::slice::from_ref(&f.nodes),
            per,
            in_value,
        ));
        parts.extend(f.trees);
        boxes.extend(f.boxes);
        nodes_map
    });
    // Tuples' boxes follow the trees' leaves in the boxes map, in the first of two halves
    // (see `MapPurpose::ClassifierTuples`), with room to grow.
    let mut capacity = boxes.len();
    let tuples = tuples.map(|t| {
        let base = boxes.len() as u32;
        let half = (t.boxes.len() + t.boxes.len() / 4 + 16).next_multiple_of(64) as u32;
        capacity = boxes.len() + 2 * half as usize;
        let tuples_map = MapId(p.maps.len() as u32);
        let word = |w: u32| w.to_le_bytes();
        let header = (
            std::iter::once(u32::MAX)
                .chain(std::iter::repeat_n(0, ndims))
                .flat_map(word)
                .collect(),
            [base, half].into_iter().flat_map(word).collect(),
        );
        p.maps.push(Map {
            name: map_name("tuples", tag),
            purpose: MapPurpose::ClassifierTuples,
            key_size: 4 + 4 * ndims as u32,
            value_size: 8,
            max_entries: (t.buckets.len() + t.buckets.len() / 4 + 16) as u32,
            init: std::iter::once(header)
                .chain(t.buckets.iter().map(|b| {
                    (
                        std::iter::once(b.tuple)
                            .chain(b.key.iter().copied())
                            .flat_map(word)
                            .collect(),
                        [base + b.first, b.count]
                            .into_iter()
                            .flat_map(word)
                            .collect(),
                    )
                }))
                .collect(),
        });
        parts.extend(tuple_parts(&t));
        boxes.extend(t.boxes);
        tuples_map
    });
    let boxes_map = MapId(p.maps.len() as u32);
    let value_size = box_size(&masked);
    let init = boxes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            (
                (i as u32).to_le_bytes().to_vec(),
                box_value(p, &rects[b], &masked, value_size),
            )
        })
        .collect();
    p.maps.push(Map {
        name: map_name("boxes", tag),
        purpose: MapPurpose::ClassifierBoxes,
        key_size: 4,
        value_size,
        max_entries: capacity.max(boxes.len()).max(1) as u32,
        init,
    });
    // Parts in order of their first rule, so a match in one can skip the later ones.
    for t in &mut parts {
        t.first_slot = p.rules[rects[t.first_slot as usize].rule].stats_index;
    }
    parts.sort_by_key(|t| t.first_slot);
    Laid {
        nodes,
        tuples,
        boxes: boxes_map,
        parts,
        select: None,
    }
}

/// The parts of tuples `t`, their first slots still box indices.
pub(super) fn tuple_parts(t: &tuples::Tuples) -> impl Iterator<Item = ClassifyPart> + '_ {
    t.tuples.iter().enumerate().map(|(id, tu)| ClassifyPart {
        search: Search::Tuple {
            id: id as u32,
            masks: tu.masks.clone(),
        },
        // Code scans buckets to a multiple of 4 boxes, so that a bucket growing by one
        // rarely changes the program.
        bucket: tu.bucket.next_multiple_of(4).min(MAX_BUCKET),
        first_slot: tu.first as u32,
        needs: tu.needs,
    })
}
