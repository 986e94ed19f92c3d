//! Shrinking a failing policy: rules, declarations, sub-predicates, list items, actions and
//! earlier frames dropped while it keeps failing the same way (the same `signature`).

use crate::generator::{render_file, PolicyText};
use crate::runner::{run_file, Failure};
use nfcc_dsl::testing::frame_from_literal;
use std::time::Duration;
use std::time::Instant;

/// The most variants the shrinker tries for one failing policy.
const SHRINK_TRIES: usize = 400;
/// The longest the shrinker works on one failing policy (each try compiles and loads it, and
/// a 500-rule program takes a while to verify).
const SHRINK_TIME: Duration = Duration::from_secs(15);

/// What identifies a failure while shrinking: its kind, and for a verifier rejection the
/// verifier's last word (`unreachable insn N`, `BPF_END uses reserved fields`, ...) and for a
/// compiler error its message, with numbers blanked. A shrunk policy must keep failing with
/// the same signature, so that shrinking does not wander from one bug to another.
pub(crate) fn signature(f: &Failure) -> String {
    // Every run of digits becomes one `#`.
    let blank = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    };
    match f {
        Failure::Check(_) => "check".into(),
        Failure::Refused(_) => "refused".into(),
        Failure::Compile(m) => {
            let line = m.lines().find(|l| l.contains("error[")).unwrap_or("");
            let msg = line.split_once("error[").map_or(line, |(_, r)| r);
            format!("compile: {}", blank(msg))
        }
        Failure::Load { message, .. } => {
            let last = message
                .lines()
                .rev()
                .find(|l| {
                    !l.trim().is_empty()
                        && !l.starts_with("verification time")
                        && !l.starts_with("processed ")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("");
            // An instruction dump line (`12: (bf) r1 = r2 ; ...`) identifies less than the
            // instruction itself; keep only the instruction.
            let last = last.split(" ;").next().unwrap_or(last);
            let last = last.split_once(": ").map_or(last, |(_, r)| r);
            format!("load: {}", blank(last))
        }
        Failure::Disagree(d) => format!("disagree: {}", d.kind),
    }
}

/// The byte ranges of the contents of every balanced pair of `open`/`close` in `text`.
pub(crate) fn groups(text: &str, open: u8, close: u8) -> Vec<(usize, usize)> {
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for (i, &c) in text.as_bytes().iter().enumerate() {
        if c == open {
            stack.push(i + 1);
        } else if c == close {
            if let Some(start) = stack.pop() {
                out.push((start, i));
            }
        }
    }
    out
}

/// `text` split at `sep`s outside brackets (`()`, `{}`, `[]`) and strings.
pub(crate) fn split_top(text: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut in_str, mut start) = (0i32, false, 0);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                _ if depth == 0 && text[i..].starts_with(sep) => {
                    parts.push(text[start..i].to_string());
                    start = i + sep.len();
                    i = start;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    parts.push(text[start..].to_string());
    parts
}

/// `parts` joined by `sep`, without the one at `skip`.
pub(crate) fn without(parts: &[String], skip: usize, sep: &str) -> String {
    parts
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != skip)
        .map(|(_, p)| p.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Simpler variants of a piece of `.nf` text: inside the whole text and inside every
/// parenthesised group, each `and`/`or` term dropped and each `, `-separated item dropped;
/// inside every `{ ... }` list, each item dropped; and every parenthesised group on its own in
/// place of the whole text.
pub(crate) fn variants(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut spans = vec![(0, text.len())];
    spans.extend(groups(text, b'(', b')'));
    spans.extend(groups(text, b'{', b'}'));
    for (a, b) in spans {
        let inner = &text[a..b];
        for sep in [" and ", " or ", ", "] {
            let parts = split_top(inner, sep);
            if parts.len() > 1 {
                for skip in 0..parts.len() {
                    out.push(format!(
                        "{}{}{}",
                        &text[..a],
                        without(&parts, skip, sep),
                        &text[b..]
                    ));
                }
            }
        }
    }
    let mut subs: Vec<String> = groups(text, b'(', b')')
        .into_iter()
        .map(|(a, b)| text[a..b].to_string())
        .collect();
    subs.sort_by_key(String::len);
    out.extend(subs);
    out.sort_by_key(String::len);
    out.dedup();
    out
}

/// Simpler variants of a rule line: its predicate simplified, or one action dropped (for a
/// rule whose verdict comes from a table, possibly all of them).
pub(crate) fn rule_variants(rule: &str) -> Vec<String> {
    let Some((head, rest)) = rule.split_once(": ") else {
        return Vec::new();
    };
    let (pred, actions) = match rest.rsplit_once(" => ") {
        Some((p, a)) => (p, Some(a)),
        None => (rest, None),
    };
    let mut out = Vec::new();
    let tail = actions.map_or(String::new(), |a| format!(" => {a}"));
    for v in variants(pred) {
        if !v.trim().is_empty() {
            out.push(format!("{head}: {v}{tail}"));
        }
    }
    if let Some(a) = actions {
        let parts = split_top(a, ", ");
        for skip in 0..parts.len() {
            let kept = without(&parts, skip, ", ");
            if kept.is_empty() {
                out.push(format!("{head}: {pred}"));
            } else {
                out.push(format!("{head}: {pred} => {kept}"));
            }
        }
    }
    out
}

/// Shrinks a failing policy greedily to a fixed point: drops rules and declarations, and
/// replaces rules, declarations and the default by simpler variants, keeping each change after
/// which the policy still fails the same way. Runs only the frame that failed, if any.
pub(crate) fn shrink(policy: &PolicyText, failure: &Failure) -> (PolicyText, Failure) {
    // The frames to replay: those run before the failing one (their state may matter), then
    // the failing one. The shrinker drops earlier frames too.
    let (mut before, last) = match failure {
        Failure::Disagree(d) => (d.before.clone(), Some(d.literal.clone())),
        _ => (Vec::new(), None),
    };
    let frames_of = |before: &[String]| -> Vec<Vec<(String, Vec<u8>)>> {
        let Some(last) = &last else {
            return Vec::new();
        };
        let run = before
            .iter()
            .chain(std::iter::once(last))
            .map(|l| (l.clone(), frame_from_literal(l).unwrap_or_default()))
            .collect();
        vec![run]
    };
    let try_with = |p: &PolicyText, before: &[String]| -> Option<Failure> {
        let text = render_file(std::slice::from_ref(p));
        match run_file("shrink.nf", &text, &frames_of(before), None) {
            // A disagreement must stay on the last frame, not move to an earlier one.
            Err(Failure::Disagree(d))
                if d.before.len() == before.len()
                    && signature(&Failure::Disagree(d.clone())) == signature(failure) =>
            {
                Some(Failure::Disagree(d))
            }
            Err(Failure::Disagree(_)) => None,
            Err(f) if signature(&f) == signature(failure) => Some(f),
            _ => None,
        }
    };
    let Some(_) = try_with(policy, &before) else {
        // It does not fail on its own (it needed its neighbour in the file): keep it whole.
        return (policy.clone(), failure.clone());
    };
    // Drop earlier frames that the disagreement does not need, oldest last.
    let deadline = Instant::now() + SHRINK_TIME;
    let mut budget = SHRINK_TRIES;
    for i in (0..before.len()).rev() {
        if budget == 0 || Instant::now() > deadline {
            break;
        }
        budget -= 1;
        let mut cand = before.clone();
        cand.remove(i);
        if try_with(policy, &cand).is_some() {
            before = cand;
        }
    }
    let try_it = |p: &PolicyText| try_with(p, &before);
    let mut best = policy.clone();
    let Some(mut best_failure) = try_it(&best) else {
        return (best, failure.clone());
    };
    // Each try compiles and loads the policy; a budget keeps shrinking to seconds.
    let mut accept = |cand: PolicyText, best: &mut PolicyText| {
        if budget == 0 || Instant::now() > deadline {
            return false;
        }
        budget -= 1;
        if let Some(f) = try_it(&cand) {
            *best = cand;
            best_failure = f;
            true
        } else {
            false
        }
    };
    loop {
        let mut changed = false;
        for i in (0..best.rules.len()).rev() {
            let mut cand = best.clone();
            cand.rules.remove(i);
            changed |= accept(cand, &mut best);
        }
        for i in (0..best.decls.len()).rev() {
            let mut cand = best.clone();
            cand.decls.remove(i);
            changed |= accept(cand, &mut best);
        }
        for i in 0..best.rules.len() {
            for v in rule_variants(&best.rules[i].clone()) {
                let mut cand = best.clone();
                cand.rules[i] = v;
                if accept(cand, &mut best) {
                    changed = true;
                    break;
                }
            }
        }
        for i in 0..best.decls.len() {
            for v in variants(&best.decls[i].clone()) {
                let mut cand = best.clone();
                cand.decls[i] = v;
                if accept(cand, &mut best) {
                    changed = true;
                    break;
                }
            }
        }
        if best.default != "default pass" {
            let mut cand = best.clone();
            cand.default = "default pass".into();
            changed |= accept(cand, &mut best);
        }
        // Drop one action of the default at a time.
        let actions = best.default.trim_start_matches("default ").to_string();
        let parts = split_top(&actions, ", ");
        for skip in 0..parts.len().saturating_sub(1) {
            let mut cand = best.clone();
            cand.default = format!("default {}", without(&parts, skip, ", "));
            if accept(cand, &mut best) {
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    (best, best_failure)
}
