//! The classifier back end: a run of consecutive rules that are boxes (`boxes`: conjunctions
//! of intervals, masks and header presence over fields of at most 32 bits, verdicts without
//! actions) becomes one condition, [`Cond::Classify`], answered by data in maps and a small
//! program whose size does not depend on the number of rules: a decision tree (`tree`) walked
//! to a leaf, whose few boxes are tested in priority order. First match holds because a leaf
//! holds every box of its region in rule order; rules before and after the run are untouched,
//! so a policy whose rules a classifier cannot hold (sets, tables, limiters, payload, actions)
//! is split into groups and first match holds across them.
//!
//! Which runs get a tree is chosen by cost: the instructions a packet that matches no rule of
//! the run executes — the run as code (one branch-free test per rule, or one hash lookup per
//! run of merged equality rules, see [`crate::opt`]) against the tree's walk and its largest
//! leaf. Each decision is kept in [`Decision`] for `nfcc compile --stats`. Host code only:
//! the NIC needs verdicts the verifier knows and has no room for the loop.

pub mod boxes;
pub mod tree;

use crate::ir::{
    Cond, CondId, Encoding, FieldId, FieldLoad, Map, MapId, MapPurpose, Pred, Program, Rule,
};
use boxes::{Bound, Dim, Rect};
use nfcc_dsl::checked::{Field, Target, Terminal};
pub use tree::{LEAF, MAX_BUCKET, MAX_DEPTH};

#[cfg(test)]
mod tests;

/// Dimensions a classifier reads, at most.
pub const MAX_DIMS: usize = 8;

/// Runs shorter than this stay code whatever the choice (a tree costs a few map lookups).
const MIN_RUN: usize = 2;

/// Which classifier the compiler may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Choice {
    /// By cost, per run of rules.
    #[default]
    Auto,
    /// Rules as code (and merged equality runs): no classifier.
    Linear,
    /// A decision tree for every run of box rules it can hold.
    Tree,
}

/// What a run of box rules became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Rules as code (merged equality runs as one lookup).
    Linear,
    /// A forest of decision trees.
    Tree,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Linear => "linear",
            Form::Tree => "tree",
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
    /// Tree nodes, boxes, depth and largest leaf (zero for `linear`).
    pub nodes: usize,
    /// Boxes stored (with those several leaves share counted once).
    pub boxes: usize,
    /// The tree's depth.
    pub depth: u32,
    /// The largest leaf.
    pub bucket: u32,
    /// Bytes of the classifier's maps.
    pub bytes: u64,
}

/// Instructions per condition tested by code, roughly (load, mask, compare, combine).
const CODE_PER_COND: usize = 5;
/// Instructions per tree node on the walk.
const TREE_PER_NODE: usize = 13;
/// Instructions per leaf box, before its dimensions.
const TREE_PER_BOX: usize = 12;
/// Instructions per dimension of a box (and the mask test when some box masks it).
const TREE_PER_DIM: usize = 6;
const TREE_PER_MASK: usize = 4;
/// A merged equality run's lookup (key assembly, hash, test).
const MERGED_LOOKUP: usize = 40;

/// The run as code: what a packet no rule matches costs.
fn code_cost(p: &Program, run: &[Rule]) -> usize {
    // Runs of merged equality rules cost one lookup each.
    let shapes: Vec<_> = run.iter().map(|r| crate::opt::shape(p, r)).collect();
    let mut cost = 0;
    let mut i = 0;
    while i < run.len() {
        let mut j = i + 1;
        if let Some((f, _)) = &shapes[i] {
            while j < run.len() && shapes[j].as_ref().is_some_and(|(g, _)| g == f) {
                j += 1;
            }
        }
        if j - i >= crate::opt::MERGE_MIN {
            cost += MERGED_LOOKUP;
        } else {
            for r in &run[i..j] {
                cost += 2 + CODE_PER_COND * conds(&r.pred);
            }
        }
        i = j;
    }
    cost
}

fn conds(p: &Pred) -> usize {
    match p {
        Pred::Const(_) => 0,
        Pred::Cond(_) => 1,
        Pred::Not(q) => conds(q),
        Pred::And(v) | Pred::Or(v) => v.iter().map(conds).sum(),
    }
}

/// The worst walk of a forest: every tree's depth and largest leaf.
fn forest_cost(f: &Forest, dims: usize, masked: usize) -> usize {
    f.trees
        .iter()
        .map(|t| {
            t.depth as usize * TREE_PER_NODE
                + t.bucket as usize * (TREE_PER_BOX + dims * TREE_PER_DIM + masked * TREE_PER_MASK)
                + TREE_PER_NODE
        })
        .sum()
}

/// Trees over parts of a run's boxes, their nodes and leaves side by side.
struct Forest {
    /// Every tree's nodes, children and leaves pointing into the whole.
    nodes: Vec<[u32; 4]>,
    /// Every leaf's boxes, by index into the run's boxes.
    boxes: Vec<usize>,
    /// Each tree (`first_slot` is the index of its first box until installed).
    trees: Vec<crate::ir::ClassifyTree>,
}

/// Builds one tree per part of `rects` (each part's indices in priority order).
fn forest(
    rects: &[Rect],
    dims: usize,
    parts: &[Vec<usize>],
    budget: usize,
) -> Result<Forest, String> {
    let mut f = Forest {
        nodes: Vec::new(),
        boxes: Vec::new(),
        trees: Vec::new(),
    };
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let sub: Vec<Rect> = part.iter().map(|&i| rects[i].clone()).collect();
        let t = tree::build_within(&sub, dims, budget.saturating_sub(f.boxes.len()))?;
        let (nbase, bbase) = (f.nodes.len() as u32, f.boxes.len() as u32);
        f.trees.push(crate::ir::ClassifyTree {
            root: nbase,
            depth: t.depth,
            bucket: t.bucket,
            first_slot: part[0] as u32,
            needs: part.iter().fold(u32::MAX, |n, &i| n & rects[i].need),
        });
        f.nodes.extend(t.nodes.iter().map(|n| {
            if n[0] == LEAF {
                [LEAF, n[1] + bbase, n[2], 0]
            } else {
                [n[0], n[1], n[2] + nbase, n[3] + nbase]
            }
        }));
        f.boxes.extend(t.boxes.iter().map(|&b| part[b]));
    }
    Ok(f)
}

/// Parts of a run's boxes, each a tree of its own (searched in rule order, see
/// [`Cond::Classify`]). Boxes of different families (what they need of IPv4 and IPv6) are
/// kept apart — a tree cannot cut on a header, and a packet skips the trees whose boxes all
/// need a header it lacks — and, with `by_width`, so are boxes too wide in a 32-bit dimension
/// (an address prefix shorter than /16), which a tree would copy into many leaves (as
/// EffiCuts and CutSplit do).
fn parts(rects: &[Rect], dims: &[Dim], by_width: bool) -> Vec<Vec<usize>> {
    let wide_dims: Vec<usize> = (0..dims.len())
        .filter(|&d| by_width && dims[d].iter().all(|f| f.ty().bits() == 32))
        .take(2)
        .collect();
    let (v4, v6) = (
        crate::encoding::header_bit(nfcc_dsl::checked::Header::Ipv4),
        crate::encoding::header_bit(nfcc_dsl::checked::Header::Ipv6),
    );
    let mut parts = vec![Vec::new(); 3 << wide_dims.len()];
    for (i, r) in rects.iter().enumerate() {
        let family = if r.need & v4 != 0 {
            0
        } else if r.need & v6 != 0 {
            1
        } else {
            2
        };
        let width = wide_dims
            .iter()
            .enumerate()
            .map(|(k, &d)| usize::from(r.dims[d].hi - r.dims[d].lo >= 1 << 16) << k)
            .sum::<usize>();
        parts[family * (1 << wide_dims.len()) + width].push(i);
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// A copy factor past which a single tree is given up for parts by width.
const COPIES_MAX: usize = 8;

/// A forest to install in place of rules `start..end`.
struct Built {
    start: usize,
    end: usize,
    dims: Vec<Dim>,
    rects: Vec<Rect>,
    forest: Forest,
}

/// A run of box rules: their positions in the program and their boxes.
struct Run {
    start: usize,
    end: usize,
    dims: Vec<Dim>,
    rects: Vec<Rect>,
}

/// The runs of consecutive box rules of `p`, each within [`MAX_DIMS`] dimensions.
fn runs(p: &Program) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cur: Option<Run> = None;
    for (i, r) in p.rules.iter().enumerate() {
        let mut dims = cur.as_ref().map(|c| c.dims.clone()).unwrap_or_default();
        match boxes::rects(p, r, i, &mut dims, MAX_DIMS) {
            Some(rs) if cur.is_some() => {
                let c = cur.as_mut().expect("a run");
                c.dims = dims;
                c.end = i + 1;
                c.rects.extend(rs);
            }
            Some(rs) => {
                cur = Some(Run {
                    start: i,
                    end: i + 1,
                    dims,
                    rects: rs,
                })
            }
            None => {
                out.extend(cur.take());
                // The rule may start a run of its own with fresh dimensions.
                let mut fresh = Vec::new();
                if let Some(rs) = boxes::rects(p, r, i, &mut fresh, MAX_DIMS) {
                    cur = Some(Run {
                        start: i,
                        end: i + 1,
                        dims: fresh,
                        rects: rs,
                    });
                }
            }
        }
    }
    out.extend(cur);
    out
}

/// Replaces runs of box rules with classifiers where `choice` (and, for `Auto`, cost) says
/// so; returns what was decided per run. Host code only.
pub fn classify(p: &mut Program, choice: Choice) -> Vec<Decision> {
    if p.target != Target::Host {
        return Vec::new();
    }
    let mut decisions = Vec::new();
    if choice == Choice::Linear {
        for run in runs(p).into_iter().filter(|r| r.end - r.start >= MIN_RUN) {
            decisions.push(Decision {
                first: p.rules[run.start].name.clone(),
                last: p.rules[run.end - 1].name.clone(),
                rules: run.end - run.start,
                form: Form::Linear,
                why: "asked for (--classifier linear)".into(),
                nodes: 0,
                boxes: 0,
                depth: 0,
                bucket: 0,
                bytes: 0,
            });
        }
        return decisions;
    }
    // Pieces to install: (rule range, dims, rects, tree).
    let mut built: Vec<Built> = Vec::new();
    for run in runs(p) {
        // A run of constant rules (no dimension, or no box) is no work for a tree.
        if run.end - run.start < MIN_RUN || run.dims.is_empty() || run.rects.is_empty() {
            continue;
        }
        plan(p, choice, run, &mut built, &mut decisions);
    }
    // Install from the last run back, so earlier rule positions stay valid.
    built.sort_by_key(|b| std::cmp::Reverse(b.start));
    for b in built {
        install(p, b.start, b.end, &b.dims, &b.rects, b.forest);
    }
    decisions
}

/// Decides one run: a tree when it is cheaper (or asked for), else code; a run whose tree
/// has a leaf too large is halved and each half decided.
fn plan(
    p: &Program,
    choice: Choice,
    run: Run,
    built: &mut Vec<Built>,
    decisions: &mut Vec<Decision>,
) {
    let rules = &p.rules[run.start..run.end];
    let dims = run.dims.len();
    // Rects index rules by position in the program; the tree wants them in run order, which
    // they are.
    let mut rects = run.rects.clone();
    for r in &mut rects {
        r.dims.truncate(dims);
    }
    let masked = (0..dims)
        .filter(|&d| rects.iter().any(|r| r.dims[d].mask != 0))
        .count();
    let linear = code_cost(p, rules);
    let mut d = Decision {
        first: rules[0].name.clone(),
        last: rules[rules.len() - 1].name.clone(),
        rules: rules.len(),
        form: Form::Linear,
        why: String::new(),
        nodes: 0,
        boxes: 0,
        depth: 0,
        bucket: 0,
        bytes: 0,
    };
    // A tree per family; parts by width too when those copy boxes too often.
    let budget = COPIES_MAX * rects.len();
    let built_forest = match forest(&rects, dims, &parts(&rects, &run.dims, false), budget) {
        Ok(f) => Ok(f),
        one => match (
            forest(&rects, dims, &parts(&rects, &run.dims, true), budget),
            one,
        ) {
            (Ok(parts), Ok(one)) if one.boxes.len() <= parts.boxes.len() => Ok(one),
            (Ok(parts), _) => Ok(parts),
            (Err(_), one) => one,
        },
    };
    match built_forest {
        Ok(f) => {
            let cost = forest_cost(&f, dims, masked);
            if choice == Choice::Tree || cost < linear {
                d.form = Form::Tree;
                d.why = format!(
                    "{} a packet matching no rule runs ~{cost} instructions on {} against ~{linear} as code",
                    if choice == Choice::Tree { "asked for (--classifier tree);" } else { "cheaper:" },
                    if f.trees.len() == 1 { "the tree".to_string() } else { format!("{} trees (rules apart by family and address width)", f.trees.len()) }
                );
                d.nodes = f.nodes.len();
                d.boxes = f.boxes.len();
                d.depth = f.trees.iter().map(|t| t.depth).max().unwrap_or(0);
                d.bucket = f.trees.iter().map(|t| t.bucket).max().unwrap_or(0);
                d.bytes = (f.nodes.len() * 16 + f.boxes.len() * (16 + 16 * dims)) as u64;
                built.push(Built {
                    start: run.start,
                    end: run.end,
                    dims: run.dims.clone(),
                    rects,
                    forest: f,
                });
            } else {
                d.why = format!(
                    "cheaper as code: ~{linear} instructions against ~{cost} on {} tree(s)",
                    f.trees.len()
                );
            }
            decisions.push(d);
        }
        Err(_) if run.end - run.start >= 2 * MIN_RUN => {
            // Halve the run: first match holds across the halves, which run in order.
            let mid = run.start + (run.end - run.start) / 2;
            let (a, b): (Vec<Rect>, Vec<Rect>) = run.rects.into_iter().partition(|r| r.rule < mid);
            for (start, end, rects) in [(run.start, mid, a), (mid, run.end, b)] {
                if rects.is_empty() {
                    continue;
                }
                let half = Run {
                    start,
                    end,
                    dims: run.dims.clone(),
                    rects,
                };
                plan(p, choice, half, built, decisions);
            }
        }
        Err(why) => {
            d.why = format!("no tree: {why}");
            decisions.push(d);
        }
    }
}

/// Replaces rules `start..end` of `p` with one rule classifying them by the forest `f`.
fn install(p: &mut Program, start: usize, end: usize, dims: &[Dim], rects: &[Rect], mut f: Forest) {
    let dim_ids: Vec<Vec<FieldId>> = dims
        .iter()
        .map(|d| d.iter().map(|f| host_field(p, *f)).collect())
        .collect();
    let masked: Vec<bool> = (0..dims.len())
        .map(|d| rects.iter().any(|r| r.dims[d].mask != 0))
        .collect();
    let tag = p
        .maps
        .iter()
        .filter(|m| m.purpose == MapPurpose::ClassifierNodes)
        .count();
    let nodes_map = MapId(p.maps.len() as u32);
    p.maps.push(Map {
        name: format!("nfcc_tree{tag}"),
        purpose: MapPurpose::ClassifierNodes,
        key_size: 4,
        value_size: 16,
        max_entries: f.nodes.len() as u32,
        init: f
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    (i as u32).to_le_bytes().to_vec(),
                    n.iter().flat_map(|w| w.to_le_bytes()).collect(),
                )
            })
            .collect(),
    });
    let boxes_map = MapId(p.maps.len() as u32);
    let value_size = 16 + 16 * dims.len() as u32;
    p.maps.push(Map {
        name: format!("nfcc_boxes{tag}"),
        purpose: MapPurpose::ClassifierBoxes,
        key_size: 4,
        value_size,
        max_entries: f.boxes.len().max(1) as u32,
        init: f
            .boxes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let r = &rects[b];
                let rule = &p.rules[r.rule];
                let verdict = crate::verdict::verdict(p.hook, p.target, &rule.terminal) as u32;
                let mut v = Vec::with_capacity(value_size as usize);
                for w in [verdict, rule.stats_index, r.need, r.forbid] {
                    v.extend(w.to_le_bytes());
                }
                for Bound {
                    lo,
                    hi,
                    mask,
                    value,
                } in &r.dims
                {
                    for w in [*lo, *hi, *mask, *value] {
                        v.extend(w.to_le_bytes());
                    }
                }
                ((i as u32).to_le_bytes().to_vec(), v)
            })
            .collect(),
    });
    // Trees in order of their first rule, so a match in one can skip the later ones.
    for t in &mut f.trees {
        t.first_slot = p.rules[rects[t.first_slot as usize].rule].stats_index;
    }
    f.trees.sort_by_key(|t| t.first_slot);
    let slot = crate::opt::next_table_slot(p);
    let cond = CondId(p.conds.len() as u32);
    p.conds.push(Cond::Classify {
        nodes: nodes_map,
        boxes: boxes_map,
        dims: dim_ids,
        trees: f.trees,
        masked,
        slot,
    });
    let first = &p.rules[start];
    let rule = Rule {
        name: format!("{}..{}", first.name, p.rules[end - 1].name),
        pred: Pred::Cond(cond),
        actions: Vec::new(),
        terminal: Terminal::Pass,
        table: Some(slot),
        stats_index: first.stats_index,
        merged: (end - start) as u32,
        span: first.span,
    };
    p.rules.splice(start..end, [rule]);
}

/// The host-encoded load of `f`, added when the program has none.
fn host_field(p: &mut Program, f: Field) -> FieldId {
    let load = FieldLoad {
        field: f,
        enc: Encoding::Host,
    };
    if let Some(i) = p.fields.iter().position(|l| *l == load) {
        return FieldId(i as u32);
    }
    p.fields.push(load);
    FieldId(p.fields.len() as u32 - 1)
}
