//! The decision tree (HyperSplit's family): each node cuts one dimension's range in two at a
//! box boundary, chosen so that the larger side holds as few boxes as possible; boxes that
//! straddle the cut go to both sides. A leaf keeps its boxes in priority order, so the first
//! that holds is the first rule of the run that matches. A box that covers the whole of a
//! leaf's region with no mask and no more header conditions than a later box shadows it, and
//! the later box is dropped from that leaf. Leaves with the same boxes share them.
//!
//! The walk is bounded by construction: depth at most [`MAX_DEPTH`], and a leaf holds at most
//! [`MAX_BUCKET`] boxes — a run the tree cannot cut that fine is refused (and split by the
//! caller).

use super::boxes::Rect;
use crate::ir::classifier::LEAF;
use std::collections::HashMap;

/// Nodes on a path before a leaf, at most.
pub const MAX_DEPTH: u32 = 24;

/// Boxes in a leaf, at most.
pub const MAX_BUCKET: u32 = 32;

/// A leaf of this many boxes is not cut further.
const BINTH: usize = 4;

/// A built tree: nodes (root first) and the boxes of every leaf, by index into the run's
/// boxes.
#[derive(Debug)]
pub struct Tree {
    /// {dimension, threshold, left, right}; a leaf is {LEAF, first box, count, 0}.
    pub nodes: Vec<[u32; 4]>,
    /// Leaf boxes, each leaf's contiguous.
    pub boxes: Vec<usize>,
    /// The longest path's node count before its leaf.
    pub depth: u32,
    /// The most boxes in a leaf.
    pub bucket: u32,
}

struct Builder<'a> {
    rects: &'a [Rect],
    dims: usize,
    /// Leaf boxes allowed in all (copies counted) before the build is given up.
    budget: usize,
    tree: Tree,
    leaves: HashMap<Vec<usize>, u32>,
}

/// Builds the tree over `rects` (in priority order) on their first `dims` dimensions.
pub fn build(rects: &[Rect], dims: usize) -> Result<Tree, String> {
    build_within(rects, dims, usize::MAX)
}

/// [`build`], given up once the leaves hold more than `budget` boxes (copies counted).
pub fn build_within(rects: &[Rect], dims: usize, budget: usize) -> Result<Tree, String> {
    let mut b = Builder {
        rects,
        dims,
        budget,
        tree: Tree {
            nodes: Vec::new(),
            boxes: Vec::new(),
            depth: 0,
            bucket: 0,
        },
        leaves: HashMap::new(),
    };
    let region = vec![(0u32, u32::MAX); dims];
    let all: Vec<usize> = (0..rects.len()).collect();
    b.node(&region, all, 0)?;
    Ok(b.tree)
}

impl Builder<'_> {
    /// Builds the subtree for `ids` (sorted) inside `region`; returns its node index.
    fn node(&mut self, region: &[(u32, u32)], ids: Vec<usize>, depth: u32) -> Result<u32, String> {
        let ids = self.unshadowed(region, ids);
        let at = self.tree.nodes.len() as u32;
        self.tree.nodes.push([LEAF, 0, 0, 0]);
        self.tree.depth = self.tree.depth.max(depth);
        let cut = if ids.len() <= BINTH || depth == MAX_DEPTH {
            None
        } else {
            self.best_cut(region, &ids)
        };
        let Some((d, t)) = cut else {
            if ids.len() as u32 > MAX_BUCKET {
                return Err(format!(
                    "a region of the rule space holds {} boxes the tree cannot separate (at most {MAX_BUCKET} per leaf)",
                    ids.len()
                ));
            }
            if self.tree.boxes.len() + ids.len() > self.budget {
                return Err(format!(
                    "the tree copies boxes into more than {} leaf entries",
                    self.budget
                ));
            }
            let first = match self.leaves.get(&ids) {
                Some(f) => *f,
                None => {
                    let f = self.tree.boxes.len() as u32;
                    self.tree.boxes.extend(&ids);
                    self.leaves.insert(ids.clone(), f);
                    f
                }
            };
            self.tree.bucket = self.tree.bucket.max(ids.len() as u32);
            self.tree.nodes[at as usize] = [LEAF, first, ids.len() as u32, 0];
            return Ok(at);
        };
        let (lo, hi) = region[d];
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for &i in &ids {
            let b = self.rects[i].dims[d];
            if b.lo.max(lo) <= t {
                left.push(i);
            }
            if b.hi.min(hi) > t {
                right.push(i);
            }
        }
        let mut lr = region.to_vec();
        lr[d] = (lo, t);
        let l = self.node(&lr, left, depth + 1)?;
        let mut rr = region.to_vec();
        rr[d] = (t + 1, hi);
        let r = self.node(&rr, right, depth + 1)?;
        self.tree.nodes[at as usize] = [d as u32, t, l, r];
        Ok(at)
    }

    /// `ids` without the boxes an earlier box shadows inside `region`.
    fn unshadowed(&self, region: &[(u32, u32)], ids: Vec<usize>) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::with_capacity(ids.len());
        let mut covering: Vec<usize> = Vec::new();
        for i in ids {
            let r = &self.rects[i];
            let shadowed = covering.iter().any(|&c| {
                let c = &self.rects[c];
                c.need & !r.need == 0 && c.forbid & !r.forbid == 0
            });
            if shadowed {
                continue;
            }
            if (0..self.dims).all(|d| r.dims[d].covers(region[d].0, region[d].1)) {
                covering.push(i);
            }
            out.push(i);
        }
        out
    }

    /// The cut (dimension, threshold: left is `..=t`) whose larger side holds fewest boxes,
    /// or `None` when no cut makes both sides smaller.
    fn best_cut(&self, region: &[(u32, u32)], ids: &[usize]) -> Option<(usize, u32)> {
        let n = ids.len();
        let mut best: Option<(usize, usize, usize, u32)> = None; // (max side, sum, dim, t)
        for (d, &(lo, hi)) in region.iter().enumerate().take(self.dims) {
            let mut los: Vec<u32> = Vec::with_capacity(n);
            let mut his: Vec<u32> = Vec::with_capacity(n);
            let mut cands: Vec<u32> = Vec::new();
            for &i in ids {
                let b = self.rects[i].dims[d];
                let (a, z) = (b.lo.max(lo), b.hi.min(hi));
                los.push(a);
                his.push(z);
                if a > lo {
                    cands.push(a - 1);
                }
                if z < hi {
                    cands.push(z);
                }
            }
            if cands.is_empty() {
                continue;
            }
            los.sort_unstable();
            his.sort_unstable();
            cands.sort_unstable();
            cands.dedup();
            for &t in &cands {
                let left = los.partition_point(|&x| x <= t);
                let right = n - his.partition_point(|&x| x <= t);
                let key = (left.max(right), left + right, d, t);
                if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                    best = Some(key);
                }
            }
        }
        best.filter(|b| b.0 < n).map(|b| (b.2, b.3))
    }
}
