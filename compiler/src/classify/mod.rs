//! The classifier back end: a run of consecutive rules that are boxes (`boxes`: conjunctions
//! of intervals, masks and header presence over fields of at most 32 bits, verdicts without
//! actions) becomes one condition, [`Cond::Classify`], answered by data in maps and a small
//! program whose size does not depend on the number of rules. Two algorithms of different
//! families find a bucket of boxes to test in priority order: decision trees (`tree`, walked
//! to a leaf) and tuple space search with tuple merging (`tuples`, one hash probe per tuple
//! under its masks). First match holds because a bucket holds every box of its region (or
//! key) that could match, in rule order; rules before and after the run are untouched,
//! so a policy whose rules a classifier cannot hold (sets, tables, limiters, payload, actions)
//! is split into groups and first match holds across them.
//!
//! Which runs get a classifier, and which, is chosen by cost: the instructions a packet that
//! matches no rule of the run executes — the run as code (one branch-free test per rule, or
//! one hash lookup per run of merged equality rules, see [`crate::opt`]) against the trees'
//! walks and largest leaves, and against the tuples' probes (a hash lookup costs as much as
//! a few tree levels) and largest buckets. Each decision is kept in [`Decision`] for
//! `nfcc compile --stats`. Host code only: the NIC needs verdicts the verifier knows and has
//! no room for the walk.

pub mod adversary;
pub mod boxes;
mod built;
mod halves;
mod packed;
pub mod tree;
pub mod tuples;

pub use crate::ir::classifier::{box_size, node_count, Decision, Form, LEAF, MAX_DIMS};
use crate::ir::{
    ClassifyPart, Cond, CondId, Encoding, FieldId, FieldLoad, MapPurpose, Pred, Program, Rule,
    Search,
};
use boxes::{Dim, Rect};
use built::{Built, Forest, Structure};
use nfcc_dsl::checked::{Field, Target, Terminal};
pub use tree::{MAX_BUCKET, MAX_DEPTH};

#[cfg(test)]
mod tests;

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
    /// Tuple space search for every run of box rules it can hold (trees where it cannot).
    Tuples,
}

impl Choice {
    /// The choice as `--classifier` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Choice::Auto => "auto",
            Choice::Linear => "linear",
            Choice::Tree => "tree",
            Choice::Tuples => "tuples",
        }
    }

    /// The choice `--classifier NAME` makes.
    pub fn from_name(name: &str) -> Option<Choice> {
        [Choice::Auto, Choice::Linear, Choice::Tree, Choice::Tuples]
            .into_iter()
            .find(|c| c.name() == name)
    }
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
/// A tuple's probe: a hash lookup (the helper hashes the key: worth a few tree levels),
/// before the key's dimensions.
const TUPLE_PROBE: usize = 45;
/// Instructions per dimension of a tuple's key.
const TUPLE_PER_DIM: usize = 3;

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
            depth(t) as usize * TREE_PER_NODE
                + t.bucket as usize * (TREE_PER_BOX + dims * TREE_PER_DIM + masked * TREE_PER_MASK)
                + TREE_PER_NODE
        })
        .sum()
}

/// The worst search of tuples: every probe and every tuple's largest bucket.
fn tuples_cost(t: &tuples::Tuples, dims: usize, masked: usize) -> usize {
    t.tuples
        .iter()
        .map(|t| {
            TUPLE_PROBE
                + dims * TUPLE_PER_DIM
                + t.bucket as usize * (TREE_PER_BOX + dims * TREE_PER_DIM + masked * TREE_PER_MASK)
        })
        .sum()
}

/// A tuple holding fewer boxes than this (or than 1% of the run) is left to a tree.
const MIN_TUPLE_BOXES: usize = 8;

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
        f.trees.push(ClassifyPart {
            search: Search::Tree {
                root: nbase,
                depth: t.depth,
            },
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

/// Trees over the boxes `keep` lets through: one per family, or, when those copy boxes
/// past the budget (or more than parts by width do), parts by width too.
fn best_forest(
    rects: &[Rect],
    dims: &[Dim],
    keep: impl Fn(&usize) -> bool,
    budget: usize,
) -> Result<Forest, String> {
    let only = |parts: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        parts
            .into_iter()
            .map(|p| p.into_iter().filter(|i| keep(i)).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let n = dims.len();
    match forest(rects, n, &only(parts(rects, dims, false)), budget) {
        Ok(f) => Ok(f),
        one => match (
            forest(rects, n, &only(parts(rects, dims, true)), budget),
            one,
        ) {
            (Ok(parts), Ok(one)) if one.boxes.len() <= parts.boxes.len() => Ok(one),
            (Ok(parts), _) => Ok(parts),
            (Err(_), one) => one,
        },
    }
}

/// A copy factor past which a single tree is given up for parts by width.
const COPIES_MAX: usize = 8;

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
                tuples: 0,
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
        install(p, b);
    }
    decisions
}

/// Decides one run: a classifier when it is cheaper than code (or asked for), trees or tuples
/// by the same measure; a run neither can hold is halved and each half decided.
fn plan(
    p: &Program,
    choice: Choice,
    run: Run,
    built: &mut Vec<Built>,
    decisions: &mut Vec<Decision>,
) {
    let rules = &p.rules[run.start..run.end];
    let dims = run.dims.len();
    // Rects index rules by position in the program; the structures want them in run order,
    // which they are.
    let mut rects = run.rects.clone();
    for r in &mut rects {
        r.dims.truncate(dims);
    }
    let masks: Vec<bool> = (0..dims)
        .map(|d| rects.iter().any(|r| r.dims[d].mask != 0))
        .collect();
    let masked = masks.iter().filter(|&&m| m).count();
    let linear = code_cost(p, rules);
    let mut d = Decision {
        first: rules[0].name.clone(),
        last: rules[rules.len() - 1].name.clone(),
        rules: rules.len(),
        form: Form::Linear,
        why: String::new(),
        nodes: 0,
        tuples: 0,
        boxes: 0,
        depth: 0,
        bucket: 0,
        bytes: 0,
    };
    let by_family = parts(&rects, &run.dims, false);
    // A tree per family; parts by width too when those copy boxes too often.
    let budget = COPIES_MAX * rects.len();
    let all = |_: &usize| true;
    let trees = best_forest(&rects, &run.dims, all, budget);
    let widths: Vec<u32> = run
        .dims
        .iter()
        .map(|d| d.iter().map(|f| f.ty().bits()).max().unwrap_or(32))
        .collect();
    let tuples = if choice == Choice::Tree {
        Err("not asked for".to_string())
    } else {
        tuples::build(&rects, &widths, &by_family).and_then(|t| {
            // Asked for, every tuple is worth its probe.
            let min = if choice == Choice::Tuples {
                1
            } else {
                MIN_TUPLE_BOXES.max(rects.len() / 100)
            };
            let (t, rest) = t.prune(min);
            if t.tuples.is_empty() {
                return Err(format!("no tuple holds {min} boxes"));
            }
            let trees = if rest.is_empty() {
                None
            } else {
                let left = |i: &usize| rest.binary_search(i).is_ok();
                Some(best_forest(&rects, &run.dims, left, budget)?)
            };
            Ok((t, trees))
        })
    };
    let tree_cost = match &trees {
        Ok(f) => Ok(forest_cost(f, dims, masked)),
        Err(why) => Err(why.clone()),
    };
    let tuple_cost =
        match &tuples {
            Ok((t, f)) => Ok(tuples_cost(t, dims, masked)
                + f.as_ref().map_or(0, |f| forest_cost(f, dims, masked))),
            Err(why) => Err(why.clone()),
        };
    let pick_tuples = match (&tree_cost, &tuple_cost) {
        (_, Err(_)) => false,
        (Err(_), Ok(_)) => true,
        (Ok(a), Ok(b)) => choice == Choice::Tuples || b < a,
    };
    let (structure, cost, what) = match (trees, tuples) {
        (_, Ok((t, f))) if pick_tuples => {
            let cost = tuple_cost.clone().unwrap_or(0);
            let what = match &f {
                None => format!("{} tuples", t.tuples.len()),
                Some(f) => format!(
                    "{} tuples and {} tree(s) for the {} boxes of smaller tuples",
                    t.tuples.len(),
                    f.trees.len(),
                    rects.len() - t.boxes.len()
                ),
            };
            (Structure::Tuples(t, f), cost, what)
        }
        (Ok(f), _) => {
            let cost = tree_cost.clone().unwrap_or(0);
            let what = if f.trees.len() == 1 {
                "the tree".to_string()
            } else {
                format!(
                    "{} trees (rules apart by family and address width)",
                    f.trees.len()
                )
            };
            (Structure::Forest(f), cost, what)
        }
        (Err(why), tuples) => {
            if run.end - run.start >= 2 * MIN_RUN {
                // Halve the run: first match holds across the halves, which run in order.
                let mid = run.start + (run.end - run.start) / 2;
                let (a, b): (Vec<Rect>, Vec<Rect>) =
                    run.rects.into_iter().partition(|r| r.rule < mid);
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
                return;
            }
            d.why = match tuples {
                Err(t) => format!("no tree: {why}; no tuples: {t}"),
                Ok(_) => format!("no tree: {why}"),
            };
            decisions.push(d);
            return;
        }
    };
    // What the other algorithm would have cost, for the record.
    let other = match (&structure, &tree_cost, &tuple_cost) {
        (Structure::Forest(_), _, Ok(c)) => format!(", ~{c} on tuples"),
        (Structure::Forest(_), _, Err(why)) if choice != Choice::Tree => {
            format!(" (no tuples: {why})")
        }
        (Structure::Tuples(..), Ok(c), _) => format!(", ~{c} on trees"),
        (Structure::Tuples(..), Err(why), _) => format!(" (no tree: {why})"),
        _ => String::new(),
    };
    let asked = match choice {
        Choice::Tree => Some("tree"),
        Choice::Tuples => Some("tuples"),
        _ => None,
    };
    if asked.is_none() && cost >= linear {
        d.why = format!("cheaper as code: ~{linear} instructions against ~{cost} on {what}{other}");
        decisions.push(d);
        return;
    }
    d.why = format!(
        "{} a packet matching no rule runs ~{cost} instructions on {what} against ~{linear} as code{other}",
        match asked {
            Some(a) => format!("asked for (--classifier {a});"),
            None => "cheaper:".to_string(),
        },
    );
    match &structure {
        Structure::Forest(f) => {
            d.form = Form::Tree;
            d.nodes = f.nodes.len();
            d.boxes = f.boxes.len();
            d.depth = f.trees.iter().map(depth).max().unwrap_or(0);
            d.bucket = f.trees.iter().map(|t| t.bucket).max().unwrap_or(0);
            d.bytes = (f.nodes.len() * 20 + f.boxes.len() * (4 + box_size(&masks) as usize)) as u64;
        }
        Structure::Tuples(t, f) => {
            d.form = Form::Tuples;
            d.tuples = t.tuples.len();
            let (nodes, tree_boxes) = f
                .as_ref()
                .map_or((0, 0), |f| (f.nodes.len(), f.boxes.len()));
            d.nodes = nodes;
            d.boxes = t.boxes.len() + tree_boxes;
            d.depth = f
                .iter()
                .flat_map(|f| &f.trees)
                .map(depth)
                .max()
                .unwrap_or(0);
            d.bucket = t
                .tuples
                .iter()
                .map(|t| t.bucket)
                .chain(f.iter().flat_map(|f| &f.trees).map(|t| t.bucket))
                .max()
                .unwrap_or(0);
            d.bytes = (t.buckets.len() * (4 + 4 * dims + 8)
                + nodes * 16
                + d.boxes * (4 + box_size(&masks) as usize)) as u64;
        }
    }
    decisions.push(d);
    built.push(Built {
        start: run.start,
        end: run.end,
        dims: run.dims.clone(),
        rects,
        masks,
        structure,
    });
}

/// A tree part's depth.
fn depth(t: &ClassifyPart) -> u32 {
    match t.search {
        Search::Tree { depth, .. } => depth,
        Search::Tuple { .. } => 0,
    }
}

/// Replaces rules `b.start..b.end` of `p` with one rule classifying them by `b.structure`,
/// its data packed, or in two halves when the program is laid out for updates in place.
fn install(p: &mut Program, b: Built) {
    let dim_ids: Vec<Vec<FieldId>> = b
        .dims
        .iter()
        .map(|d| d.iter().map(|f| host_field(p, *f)).collect())
        .collect();
    let tag = p
        .maps
        .iter()
        .filter(|m| m.purpose == MapPurpose::ClassifierBoxes)
        .count();
    let (start, end) = (b.start, b.end);
    let masked = b.masks.clone();
    let laid = match p.updatable.take() {
        Some(mut u) => {
            let laid = halves::lay(p, b, tag, &mut u);
            p.updatable = Some(u);
            laid
        }
        None => packed::packed(p, b, tag),
    };
    let slot = crate::opt::next_table_slot(p);
    let cond = CondId(p.conds.len() as u32);
    p.conds.push(Cond::Classify {
        nodes: laid.nodes,
        tuples: laid.tuples,
        boxes: laid.boxes,
        dims: dim_ids,
        parts: laid.parts,
        masked,
        slot,
        select: laid.select,
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
