//! Tuple space search with tuple merging (the family of TupleMerge, Daly, Liu and Torng,
//! ToN 2019). A box's interval in a dimension lies inside one aligned block of values: the
//! block of its bounds' common leading bits, whose count is the box's *length* there. A
//! *tuple* is a length per dimension; a box fits every tuple no longer than its own lengths,
//! and its key in that tuple is its lower bounds under the tuple's masks — the bits every
//! packet inside the box shares. A packet is looked up once per tuple, under that tuple's
//! masks, in one hash map keyed by (tuple, masked dimensions); the bucket found holds that
//! key's boxes in priority order, tested in full (intervals, masks, headers) as a tree leaf's
//! are, so first match holds whatever the masks dropped.
//!
//! Building is TupleMerge's: boxes are placed in priority order, each into the most specific
//! tuple that fits it and whose bucket for its key has room ([`COLLIDE`]); failing that, into
//! a new tuple — the box's lengths relaxed to a coarse grid, so that later boxes of nearby
//! lengths share it — or, when that tuple is already full there, its exact lengths. Few
//! tuples keep the probes per packet few; the collision limit keeps the buckets short. Unlike
//! a tree, adding a box touches one bucket, which is what makes tuples the classifier to
//! update in place.

use super::boxes::{Bound, Rect};
use super::tree::MAX_BUCKET;
use std::collections::HashMap;

/// Tuples in one classifier, at most (each is a hash probe per packet and code of its own).
pub const MAX_TUPLES: usize = 16;

/// A bucket this full takes no more boxes while a new tuple could.
const COLLIDE: usize = 8;

/// One tuple: a mask per dimension and what its boxes share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// The mask applied to each dimension of a packet to form its key.
    pub masks: Vec<u32>,
    /// Its first box (index into the classifier's boxes, in priority order).
    pub first: usize,
    /// The most boxes in one of its buckets.
    pub bucket: u32,
    /// Header bits every one of its boxes needs.
    pub needs: u32,
}

/// One bucket: the boxes of one key of one tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Its tuple's index.
    pub tuple: u32,
    /// The masked dimensions.
    pub key: Vec<u32>,
    /// Its first box in [`Tuples::boxes`].
    pub first: u32,
    /// How many boxes.
    pub count: u32,
}

/// Tuples over a classifier's boxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuples {
    /// The tuples, each part's in order of creation.
    pub tuples: Vec<Tuple>,
    /// Every non-empty bucket.
    pub buckets: Vec<Bucket>,
    /// Every bucket's boxes, contiguous, by index into the classifier's boxes.
    pub boxes: Vec<usize>,
}

/// The length of `b` in a dimension of `width` bits: its bounds' common leading bits (of
/// 32), or 0 when those are only the bits no value of the field has.
pub fn length(b: &Bound, width: u32) -> u32 {
    let (lo, hi) = clamped(b, width);
    let l = (lo ^ hi).leading_zeros();
    if l <= 32 - width.min(32) {
        0
    } else {
        l
    }
}

/// `b`'s bounds within the values a field of `width` bits has.
fn clamped(b: &Bound, width: u32) -> (u32, u32) {
    let top = if width >= 32 {
        u32::MAX
    } else {
        (1u32 << width) - 1
    };
    let hi = b.hi.min(top);
    (b.lo.min(hi), hi)
}

/// The mask of the first `len` bits.
pub fn mask(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// `len` rounded down to the grid new tuples use: steps of 4 bits in a 32-bit dimension
/// (addresses), of 8 in narrower ones (ports, protocol); exact lengths stay exact when the
/// grid has them.
fn relax(len: u32, width: u32) -> u32 {
    let width = width.min(32);
    let base = 32 - width;
    if len <= base {
        return 0;
    }
    let step = if width >= 32 { 8 } else { 8.min(width) };
    let n = len - base;
    let n = n - n % step;
    if n == 0 {
        0
    } else {
        base + n
    }
}

/// A tuple being built: its lengths, its buckets by key, and its keys in order of creation.
type Building = (Vec<u32>, HashMap<Vec<u32>, Vec<usize>>, Vec<Vec<u32>>);

/// Builds tuples over `rects` (in priority order), one set of tuples per part (each part's
/// indices in priority order; parts keep boxes of different families apart so that a packet
/// skips a tuple whose boxes all need a header it lacks). `widths` gives each dimension's
/// field width in bits.
pub fn build(rects: &[Rect], widths: &[u32], parts: &[Vec<usize>]) -> Result<Tuples, String> {
    let dims = widths.len();
    // Per tuple: its lengths and its buckets (key -> boxes), in creation order.
    let mut tuples: Vec<Building> = Vec::new();
    let key = |r: &Rect, lens: &[u32]| -> Vec<u32> {
        (0..dims)
            .map(|d| clamped(&r.dims[d], widths[d]).0 & mask(lens[d]))
            .collect()
    };
    for part in parts {
        let from = tuples.len();
        for &i in part {
            let r = &rects[i];
            let own: Vec<u32> = (0..dims).map(|d| length(&r.dims[d], widths[d])).collect();
            let fits = |t: &[u32]| t.iter().zip(&own).all(|(a, b)| a <= b);
            // The most specific tuple of this part that fits and has room.
            let mut best: Option<(u32, usize)> = None;
            for (t, (lens, buckets, _)) in tuples.iter().enumerate().skip(from) {
                if !fits(lens) {
                    continue;
                }
                let n = buckets.get(&key(r, lens)).map_or(0, Vec::len);
                let score = lens.iter().sum::<u32>();
                if n < COLLIDE && best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, t));
                }
            }
            let t = match best {
                Some((_, t)) => t,
                None => {
                    let relaxed: Vec<u32> =
                        own.iter().zip(widths).map(|(&l, &w)| relax(l, w)).collect();
                    let exists =
                        |l: &Vec<u32>| tuples.iter().skip(from).position(|(x, _, _)| x == l);
                    match (exists(&relaxed), exists(&own)) {
                        (None, _) => {
                            tuples.push((relaxed, HashMap::new(), Vec::new()));
                            tuples.len() - 1
                        }
                        (Some(_), None) => {
                            tuples.push((own.clone(), HashMap::new(), Vec::new()));
                            tuples.len() - 1
                        }
                        // Both full for this key: the fitting tuple with the shortest bucket.
                        (Some(_), Some(_)) => (from..tuples.len())
                            .filter(|&t| fits(&tuples[t].0))
                            .min_by_key(|&t| {
                                tuples[t].1.get(&key(r, &tuples[t].0)).map_or(0, Vec::len)
                            })
                            .expect("the exact tuple fits"),
                    }
                }
            };
            let (lens, buckets, order) = &mut tuples[t];
            let k = key(r, lens);
            let bucket = buckets.entry(k.clone()).or_default();
            if bucket.is_empty() {
                order.push(k);
            }
            bucket.push(i);
            if bucket.len() > MAX_BUCKET as usize {
                return Err(format!(
                    "{} boxes share one key of a tuple (at most {MAX_BUCKET})",
                    bucket.len()
                ));
            }
        }
    }
    let mut out = Tuples {
        tuples: Vec::new(),
        buckets: Vec::new(),
        boxes: Vec::new(),
    };
    for (t, (lens, mut buckets, order)) in tuples.into_iter().enumerate() {
        let mut tuple = Tuple {
            masks: lens.iter().map(|&l| mask(l)).collect(),
            first: usize::MAX,
            bucket: 0,
            needs: u32::MAX,
        };
        for k in order {
            let boxes = buckets.remove(&k).expect("an ordered key has a bucket");
            tuple.first = tuple.first.min(boxes[0]);
            tuple.bucket = tuple.bucket.max(boxes.len() as u32);
            tuple.needs = boxes.iter().fold(tuple.needs, |n, &b| n & rects[b].need);
            out.buckets.push(Bucket {
                tuple: t as u32,
                key: k,
                first: out.boxes.len() as u32,
                count: boxes.len() as u32,
            });
            out.boxes.extend(boxes);
        }
        out.tuples.push(tuple);
    }
    Ok(out)
}

impl Tuples {
    /// Keeps the tuples worth a probe — the [`MAX_TUPLES`] holding the most boxes, each at
    /// least `min_boxes` — and returns the boxes of the others, in priority order, for a tree
    /// to hold instead.
    pub fn prune(self, min_boxes: usize) -> (Tuples, Vec<usize>) {
        let mut sizes: Vec<(usize, usize)> = (0..self.tuples.len()).map(|t| (0, t)).collect();
        for b in &self.buckets {
            sizes[b.tuple as usize].0 += b.count as usize;
        }
        sizes.sort_by_key(|&(n, t)| (std::cmp::Reverse(n), t));
        let mut keep: Vec<usize> = sizes
            .iter()
            .take(MAX_TUPLES)
            .filter(|(n, _)| *n >= min_boxes)
            .map(|&(_, t)| t)
            .collect();
        keep.sort_unstable();
        let mut out = Tuples {
            tuples: Vec::new(),
            buckets: Vec::new(),
            boxes: Vec::new(),
        };
        let mut rest = Vec::new();
        for b in &self.buckets {
            let boxes = &self.boxes[b.first as usize..(b.first + b.count) as usize];
            match keep.iter().position(|&t| t == b.tuple as usize) {
                Some(k) => {
                    out.buckets.push(Bucket {
                        tuple: k as u32,
                        key: b.key.clone(),
                        first: out.boxes.len() as u32,
                        count: b.count,
                    });
                    out.boxes.extend(boxes);
                }
                None => rest.extend(boxes),
            }
        }
        out.tuples = keep.iter().map(|&t| self.tuples[t].clone()).collect();
        rest.sort_unstable();
        (out, rest)
    }
}
