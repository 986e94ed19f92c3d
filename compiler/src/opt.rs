//! IR passes between lowering and code generation.
//!
//! [`merge_exact_rules`]: a run of consecutive rules that each test equality on the same
//! fields under the same masks — `ip.src == A and tcp.dport == P => drop`, a 5-tuple ACL,
//! `ip.src in 10.1.0.0/16 and tcp.flags & 0x10 == 0x10` — becomes one hash lookup keyed by
//! those (masked) fields. The lookup finds the one rule of the run whose constants equal the
//! packet's fields; where several rules of the run share a key, the first is kept, which is
//! what first-match order asks for (a later one could never fire). Rules before and after the
//! run are untouched, so the order of the whole policy is kept. Each entry holds the rule's
//! verdict and its statistics slot, so `nfcc stats` still counts per original rule.
//!
//! Only rules without non-terminal actions and with a terminal the table can hold (pass,
//! drop, tx, abort) are merged; a run must be long enough that one hash lookup beats testing
//! the rules one by one.

use crate::ir::{Cond, Encoding, FieldId, KeyPart, Map, MapId, MapPurpose, Pred, Program, Rule};
use nfcc_dsl::ast::CmpOp;
use nfcc_dsl::checked::{Target, Terminal};
use std::collections::HashSet;

/// Rules a run needs before it is merged: below this, testing the rules one by one (a few
/// instructions each, branch-free) is cheaper than hashing a key.
pub const MERGE_MIN: usize = 8;

/// The shape of a mergeable rule: the fields it compares, in order, with each constant as key
/// bytes.
/// A field a merged run compares, with its mask (none: the whole field).
type Part = (FieldId, Option<u128>);

pub(crate) fn shape(p: &Program, r: &Rule) -> Option<(Vec<Part>, Vec<u8>)> {
    if !r.actions.is_empty()
        || r.table.is_some()
        || !matches!(
            r.terminal,
            Terminal::Pass | Terminal::Drop | Terminal::Tx | Terminal::Abort
        )
    {
        return None;
    }
    let conds: Vec<_> = match &r.pred {
        Pred::Cond(c) => vec![*c],
        Pred::And(parts) => parts
            .iter()
            .map(|q| match q {
                Pred::Cond(c) => Some(*c),
                _ => None,
            })
            .collect::<Option<_>>()?,
        _ => return None,
    };
    let mut parts: Vec<(Part, Vec<u8>)> = Vec::new();
    for c in conds {
        let Cond::Cmp {
            field,
            mask,
            op: CmpOp::Eq,
            k,
        } = &p.conds[c.index()]
        else {
            return None;
        };
        if parts.iter().any(|((f, _), _)| f == field) {
            // `f == 1 and f & m == 2`: leave such rules alone.
            return None;
        }
        let load = &p.fields[field.index()];
        let width = load.field.key_width();
        if width > 16 || (width > 8 && load.enc == Encoding::Host) {
            return None;
        }
        let full = if width == 16 {
            u128::MAX
        } else {
            (1u128 << (8 * width)) - 1
        };
        // A mask covering the whole field is no mask; `k` outside the mask never matches
        // and such a rule is left to the ordinary code.
        let mask = mask.filter(|m| m & full != full);
        if mask.is_some_and(|m| k & !m != 0) {
            return None;
        }
        let bytes = match load.enc {
            // Raw values are the packet's bytes read little-endian.
            Encoding::Raw => k.to_le_bytes()[..width].to_vec(),
            Encoding::Host => k.to_be_bytes()[16 - width..].to_vec(),
        };
        parts.push(((*field, mask), bytes));
    }
    parts.sort_by_key(|(f, _)| *f);
    let fields = parts.iter().map(|(f, _)| *f).collect();
    let key = parts.into_iter().flat_map(|(_, b)| b).collect();
    Some((fields, key))
}

/// Merges runs of at least [`MERGE_MIN`] consecutive same-shape equality rules into one
/// table lookup each (host target only: the NIC needs verdicts the verifier knows).
pub fn merge_exact_rules(p: &mut Program) {
    if p.target != Target::Host {
        return;
    }
    let shapes: Vec<_> = p.rules.iter().map(|r| shape(p, r)).collect();
    // The runs, as (first rule, one past the last).
    let mut runs = Vec::new();
    let mut i = 0;
    while i < shapes.len() {
        let Some((fields, _)) = &shapes[i] else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < shapes.len() && shapes[j].as_ref().is_some_and(|(f, _)| f == fields) {
            j += 1;
        }
        if j - i >= MERGE_MIN {
            runs.push((i, j));
        }
        i = j;
    }
    if runs.is_empty() {
        return;
    }
    // One map holds every run (a program may use at most 64 maps): each key starts with its
    // run's number and is padded with zeros to the longest run's key.
    let width = runs
        .iter()
        .filter_map(|&(i, _)| shapes[i].as_ref().map(|(_, k)| k.len()))
        .max()
        .unwrap_or(0);
    let map = MapId(p.maps.len() as u32);
    // Runs share one table slot: each hit is read right after its own lookup.
    let slot = next_table_slot(p);
    let mut init = Vec::new();
    let rules = std::mem::take(&mut p.rules);
    let mut out = Vec::with_capacity(rules.len());
    let mut next = 0;
    for (tag, &(i, j)) in runs.iter().enumerate() {
        out.extend(rules[next..i].iter().cloned());
        next = j;
        let Some((fields, first_key)) = &shapes[i] else {
            continue;
        };
        let tag_bytes = (tag as u32).to_le_bytes().to_vec();
        let pad = vec![0u8; width - first_key.len()];
        let mut seen = HashSet::new();
        for (r, s) in rules[i..j].iter().zip(&shapes[i..j]) {
            let Some((_, key)) = s else { continue };
            // First match wins: a later rule with the same key could never fire.
            if seen.insert(key.clone()) {
                let verdict = crate::verdict::verdict(p.hook, p.target, &r.terminal) as u32;
                let mut value = verdict.to_le_bytes().to_vec();
                value.extend_from_slice(&r.stats_index.to_le_bytes());
                let k = [tag_bytes.as_slice(), key, &pad].concat();
                init.push((k, value));
            }
        }
        let mut key = vec![KeyPart::Const(tag_bytes)];
        key.extend(fields.iter().map(|(f, mask)| {
            let load = &p.fields[f.index()];
            let w = load.field.key_width() as u32;
            match (mask, load.enc) {
                (Some(m), _) => KeyPart::Masked(*f, w, *m),
                (None, Encoding::Raw) => KeyPart::Raw(*f, w),
                (None, Encoding::Host) => KeyPart::Host(*f, w),
            }
        }));
        if !pad.is_empty() {
            key.push(KeyPart::Const(pad));
        }
        let cond = crate::ir::CondId(p.conds.len() as u32);
        p.conds.push(Cond::Match { map, key, slot });
        let first = &rules[i];
        out.push(Rule {
            name: format!("{}..{}", first.name, rules[j - 1].name),
            pred: Pred::Cond(cond),
            actions: Vec::new(),
            terminal: Terminal::Pass,
            table: Some(slot),
            stats_index: first.stats_index,
            span: first.span,
            merged: (j - i) as u32,
        });
    }
    out.extend(rules[next..].iter().cloned());
    p.maps.push(Map {
        name: "nfcc_merged".into(),
        purpose: MapPurpose::MergedRules,
        key_size: 4 + width as u32,
        value_size: 8,
        max_entries: init.len().max(1) as u32,
        init,
    });
    p.rules = out;
}

/// The first table slot no condition uses.
pub(crate) fn next_table_slot(p: &Program) -> u32 {
    p.conds
        .iter()
        .filter_map(|c| match c {
            Cond::Match { slot, .. } => Some(slot + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}
