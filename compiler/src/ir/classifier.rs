//! What a classifier is outside the pass that builds it (`crate::classify`), owned by the IR: the shape of its maps (dimensions,
//! the leaf marker, a box's value size, how many nodes a nodes map holds) and the record of
//! what the pass decided for each run of rules. The IR's verifier, code generation and the
//! pass all read these, so they live below all three and depend on none of them.

/// Dimensions a classifier reads, at most.
pub const MAX_DIMS: usize = 8;

/// The leaf marker in a tree node's dimension word.
pub const LEAF: u32 = u32::MAX;

/// Bytes of a box whose dimensions are masked (by some box) as `masked` says: 16 of header,
/// then 8 per dimension (lo, hi), 8 more (mask, value) per masked one — a box of the
/// ClassBench sets' five dimensions fits a cache line.
pub fn box_size(masked: &[bool]) -> u32 {
    16 + masked.iter().map(|&m| if m { 16 } else { 8 }).sum::<u32>()
}

/// Nodes in a nodes map of `max_entries` entries of `value_size` bytes: one per entry, or all
/// in its one value (16 bytes a node).
pub fn node_count(max_entries: u32, value_size: u32) -> u32 {
    if max_entries == 1 {
        value_size / 16
    } else {
        max_entries
    }
}

/// Whether a nodes map of `max_entries` entries of `value_size` bytes holds its nodes in one
/// value (per half, when the classifier is `halved`: entries 0 and 1), the walk indexing it,
/// or one node per entry.
pub fn nodes_in_value(max_entries: u32, value_size: u32, halved: bool) -> bool {
    max_entries == 1 || (halved && value_size > 16)
}

/// What a run of box rules became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Rules as code (merged equality runs as one lookup).
    Linear,
    /// A forest of decision trees.
    Tree,
    /// Tuple space search.
    Tuples,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Linear => "linear",
            Form::Tree => "tree",
            Form::Tuples => "tuples",
        })
    }
}

/// What the classifier pass decided for one run of box rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The run's first and last rule.
    pub first: String,
    /// The run's last rule.
    pub last: String,
    /// Rules in the run.
    pub rules: usize,
    /// What the run became.
    pub form: Form,
    /// Why, in words (with the costs compared).
    pub why: String,
    /// Tree nodes (zero unless `tree`).
    pub nodes: usize,
    /// Tuples (zero unless `tuples`).
    pub tuples: usize,
    /// Boxes stored (with those several leaves share counted once).
    pub boxes: usize,
    /// The trees' depth.
    pub depth: u32,
    /// The largest leaf or bucket.
    pub bucket: u32,
    /// Bytes of the classifier's maps.
    pub bytes: u64,
}
