//! What the classifier pass decided to build for a run of box rules, before it is laid out in
//! maps: the trees (a forest) or the tuples, the run's boxes and dimensions. The plan in
//! `classify` makes it; the layouts (`packed`, `halves`) read it.

use super::boxes::{Dim, Rect};
use super::tuples::Tuples;
use crate::ir::ClassifyPart;

/// Trees over parts of a run's boxes, their nodes and leaves side by side.
pub(super) struct Forest {
    /// Every tree's nodes, children and leaves pointing into the whole.
    pub(super) nodes: Vec<[u32; 4]>,
    /// Every leaf's boxes, by index into the run's boxes.
    pub(super) boxes: Vec<usize>,
    /// Each tree (`first_slot` is the index of its first box until installed).
    pub(super) trees: Vec<ClassifyPart>,
}

/// What answers a run: trees, or tuples with trees for the boxes of tuples too small to be
/// worth a probe.
pub(super) enum Structure {
    Forest(Forest),
    Tuples(Tuples, Option<Forest>),
}

/// A forest to install in place of rules `start..end`.
pub(super) struct Built {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) dims: Vec<Dim>,
    pub(super) rects: Vec<Rect>,
    /// Which dimensions some box masks.
    pub(super) masks: Vec<bool>,
    pub(super) structure: Structure,
}
