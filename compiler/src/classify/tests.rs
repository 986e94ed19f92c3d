//! The classifier's parts: rules as boxes (through one `check`), and the tree held to a
//! linear first-match scan of the same boxes on random ones.

use super::boxes::{rects, Bound, Dim, Rect};
use super::tree::{build, Tree};
use crate::ir::classifier::LEAF;
use nfcc_dsl::checked::Target;

/// The boxes of each rule of a one-policy source, one line per box:
/// `rule: need forbid field=[lo..hi]&mask=value ...` (`-` for a rule that is not a box rule).
fn check(rules: &str, expect: &str) {
    let src = format!("policy p on xdp {{\n{rules}\n    default pass\n}}\n");
    let (program, diags) = nfcc_dsl::check_source(&src, &Default::default());
    let program = program.unwrap_or_else(|| panic!("{diags:?}"));
    let ir = crate::lower::lower(&program.policies[0], Target::Host).expect("lowers");
    let mut dims: Vec<Dim> = Vec::new();
    let mut out = String::new();
    for (i, r) in ir.rules.iter().enumerate() {
        match rects(&ir, r, i, &mut dims, super::MAX_DIMS) {
            None => out.push_str(&format!("{}: -\n", r.name)),
            Some(rs) => {
                for b in rs {
                    out.push_str(&format!(
                        "{}: need {:#x} forbid {:#x}",
                        r.name, b.need, b.forbid
                    ));
                    for (d, f) in dims.iter().enumerate() {
                        let x = b.dims[d];
                        if x != Bound::ANY {
                            let names: Vec<&str> = f.iter().map(|f| f.name()).collect();
                            out.push_str(&format!(" {}=[{}..{}]", names.join("|"), x.lo, x.hi));
                            if x.mask != 0 {
                                out.push_str(&format!("&{:#x}={:#x}", x.mask, x.value));
                            }
                        }
                    }
                    out.push('\n');
                }
            }
        }
    }
    assert_eq!(out.trim(), expect.trim(), "\n{out}");
}

#[test]
fn rules_become_boxes() {
    // Prefixes and equality on raw fields are intervals of the number; ports and ranges too;
    // a field needs its header (ipv4 is bit 3, tcp bit 6).
    check(
        "    rule a: ipv4.src in 10.0.0.0/8 and tcp.dport in 1000..2000 => drop\n\
         rule b: ipv4.dst == 192.0.2.1 and tcp.flags & 0x12 == 0x02 => pass",
        "a: need 0x48 forbid 0x0 ipv4.src=[167772160..184549375] tcp.dport=[1000..2000]\n\
         b: need 0x48 forbid 0x0 ipv4.dst=[3221225985..3221225985] tcp.flags=[0..4294967295]&0x12=0x2",
    );
    // A negated comparison also holds without its header; `!=` is two intervals.
    check(
        "    rule n: not tcp.dport == 22 => drop",
        "n: need 0x40 forbid 0x0 tcp.dport=[0..21]\n\
         n: need 0x40 forbid 0x0 tcp.dport=[23..4294967295]\n\
         n: need 0x0 forbid 0x40",
    );
    // Sets, payload and actions are not boxes.
    check(
        "    rule s: ip.src in {10.0.0.1, 10.0.0.2} and payload[0..1] == 0x01 => drop\n\
         rule c: udp => drop",
        "s: -\nc: need 0x80 forbid 0x0",
    );
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `count` random boxes over `dims` dimensions with values below about `span`: wildcards,
/// masks, intervals and, with `aligned`, aligned prefix blocks too; random headers needed
/// and forbidden.
fn random_rects(rng: &mut Rng, count: usize, dims: usize, span: u32, aligned: bool) -> Vec<Rect> {
    (0..count)
        .map(|rule| {
            let dims = (0..dims)
                .map(|_| match rng.below(if aligned { 6 } else { 5 }) {
                    0 => Bound::ANY,
                    1 => Bound {
                        mask: 1 << rng.below(3),
                        value: (rng.below(2) as u32) << rng.below(3),
                        ..Bound::ANY
                    },
                    2 if aligned => {
                        let len = rng.below(7) as u32;
                        let lo = (rng.below(u64::from(span)) as u32) & !((1 << len) - 1);
                        Bound {
                            lo,
                            hi: lo + (1 << len) - 1,
                            mask: 0,
                            value: 0,
                        }
                    }
                    _ => {
                        let a = rng.below(u64::from(span)) as u32;
                        let b = a + rng.below(u64::from(span)) as u32;
                        Bound {
                            lo: a,
                            hi: b,
                            mask: 0,
                            value: 0,
                        }
                    }
                })
                .collect();
            Rect {
                rule,
                need: rng.below(4) as u32 & 1,
                forbid: rng.below(4) as u32 & 2,
                dims,
            }
        })
        .collect()
}

/// The first box holding `point` with `headers` present, by a scan of all of them.
fn linear(rs: &[Rect], point: &[u32], headers: u32) -> Option<usize> {
    rs.iter().position(|r| holds(r, point, headers))
}

fn holds(r: &Rect, point: &[u32], headers: u32) -> bool {
    headers & r.need == r.need
        && headers & r.forbid == 0
        && r.dims
            .iter()
            .zip(point)
            .all(|(b, &x)| b.lo <= x && x <= b.hi && x & b.mask == b.value)
}

/// The tree's answer, walked as the generated code walks it.
fn walk(t: &Tree, rs: &[Rect], point: &[u32], headers: u32) -> Option<usize> {
    let mut n = t.nodes[0];
    let mut steps = 0;
    while n[0] != LEAF {
        steps += 1;
        assert!(steps <= t.depth, "deeper than the tree's depth");
        n = t.nodes[if point[n[0] as usize] <= n[1] {
            n[2]
        } else {
            n[3]
        } as usize];
    }
    assert!(n[2] <= t.bucket, "a leaf larger than the bucket");
    t.boxes[n[1] as usize..(n[1] + n[2]) as usize]
        .iter()
        .copied()
        .find(|&b| holds(&rs[b], point, headers))
}

#[test]
fn the_tree_finds_the_first_box_a_linear_scan_finds() {
    let mut rng = Rng(0x7472_6565);
    for case in 0..60 {
        let dims = 1 + rng.below(4) as usize;
        let count = 1 + rng.below(if case % 10 == 9 { 600 } else { 60 }) as usize;
        // Values from a small range so that boxes overlap, nest and share boundaries.
        let span = 1 + rng.below(64) as u32;
        let rs = random_rects(&mut rng, count, dims, span, false);
        let t = match build(&rs, dims) {
            Ok(t) => t,
            // Refusing is allowed (the caller halves the run); answering wrong is not.
            Err(_) => continue,
        };
        for _ in 0..400 {
            let point: Vec<u32> = (0..dims)
                .map(|_| rng.below(u64::from(span) * 2 + 2) as u32)
                .collect();
            let headers = rng.below(4) as u32;
            assert_eq!(
                walk(&t, &rs, &point, headers),
                linear(&rs, &point, headers),
                "case {case}: point {point:?} headers {headers}"
            );
        }
    }
}

#[test]
fn a_forest_finds_the_first_box_a_linear_scan_finds() {
    let mut rng = Rng(0x666f_7265);
    for case in 0..40 {
        let dims = 1 + rng.below(3) as usize;
        let count = 1 + rng.below(200) as usize;
        let span = 1 + rng.below(64) as u32;
        let rs: Vec<Rect> = (0..count)
            .map(|rule| Rect {
                rule,
                need: 0,
                forbid: 0,
                dims: (0..dims)
                    .map(|_| {
                        let a = rng.below(u64::from(span)) as u32;
                        let b = a + rng.below(u64::from(span)) as u32;
                        Bound {
                            lo: a,
                            hi: b,
                            mask: 0,
                            value: 0,
                        }
                    })
                    .collect(),
            })
            .collect();
        // Boxes dealt to 1-4 parts at random, each part in priority order.
        let k = 1 + rng.below(4) as usize;
        let mut parts = vec![Vec::new(); k];
        for i in 0..count {
            parts[rng.below(k as u64) as usize].push(i);
        }
        let Ok(f) = super::forest(&rs, dims, &parts, usize::MAX) else {
            continue;
        };
        let mut trees = f.trees.clone();
        trees.sort_by_key(|t| t.first_slot);
        for _ in 0..300 {
            let point: Vec<u32> = (0..dims)
                .map(|_| rng.below(u64::from(span) * 2 + 2) as u32)
                .collect();
            // As the generated code: the best (earliest) box over the trees, skipping a tree
            // whose first box comes after it.
            let mut best: Option<usize> = None;
            for t in &trees {
                if best.is_some_and(|b| b < t.first_slot as usize) {
                    break;
                }
                let crate::ir::Search::Tree { root, .. } = t.search else {
                    panic!("a forest of tuples");
                };
                let mut n = f.nodes[root as usize];
                while n[0] != LEAF {
                    n = f.nodes[if point[n[0] as usize] <= n[1] {
                        n[2]
                    } else {
                        n[3]
                    } as usize];
                }
                let hit = f.boxes[n[1] as usize..(n[1] + n[2]) as usize]
                    .iter()
                    .copied()
                    .find(|&b| holds(&rs[b], &point, 0));
                if let Some(h) = hit {
                    best = Some(best.map_or(h, |b| b.min(h)));
                }
            }
            assert_eq!(best, linear(&rs, &point, 0), "case {case}: {point:?}");
        }
    }
}

#[test]
fn tuples_find_the_first_box_a_linear_scan_finds() {
    use super::tuples::{build, length, mask};
    let mut rng = Rng(0x7475_706c);
    let mut built = 0;
    for case in 0..60 {
        let dims = 1 + rng.below(4) as usize;
        let count = 1 + rng.below(if case % 10 == 9 { 400 } else { 80 }) as usize;
        // Narrow fields (8 or 16 bits) and 32-bit ones; prefixes, ranges, masks and
        // wildcards, values from a small span so that boxes share keys and collide.
        let widths: Vec<u32> = (0..dims)
            .map(|_| [8, 16, 32][rng.below(3) as usize])
            .collect();
        let span = 1 + rng.below(64) as u32;
        let rs = random_rects(&mut rng, count, dims, span, true);
        let k = 1 + rng.below(3) as usize;
        let mut parts = vec![Vec::new(); k];
        for i in 0..count {
            parts[rng.below(k as u64) as usize].push(i);
        }
        parts.retain(|p| !p.is_empty());
        let t = match build(&rs, &widths, &parts) {
            Ok(t) => t,
            // Refusing is allowed (the caller builds trees or halves the run).
            Err(_) => continue,
        };
        built += 1;
        // Every box is in exactly one bucket, under its own key.
        let mut seen = vec![0; count];
        for b in &t.buckets {
            let tuple = &t.tuples[b.tuple as usize];
            for &i in &t.boxes[b.first as usize..(b.first + b.count) as usize] {
                seen[i] += 1;
                for (d, m) in tuple.masks.iter().enumerate() {
                    assert!(*m & !mask(length(&rs[i].dims[d], widths[d])) == 0);
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "case {case}: {seen:?}");
        let mut order: Vec<usize> = (0..t.tuples.len()).collect();
        order.sort_by_key(|&i| t.tuples[i].first);
        for _ in 0..400 {
            // Values within each field's width.
            let point: Vec<u32> = widths
                .iter()
                .map(|&w| {
                    let x = rng.below(u64::from(span) * 2 + 2) as u32;
                    if w < 32 {
                        x & ((1 << w) - 1)
                    } else {
                        x
                    }
                })
                .collect();
            let headers = rng.below(4) as u32;
            // As the generated code: tuples in order of their first box, each probed under
            // its masks, stopping once the best box comes before a tuple's first.
            let mut best: Option<usize> = None;
            for &ti in &order {
                let tuple = &t.tuples[ti];
                if best.is_some_and(|b| b < tuple.first) {
                    break;
                }
                if headers & tuple.needs != tuple.needs {
                    continue;
                }
                let key: Vec<u32> = point.iter().zip(&tuple.masks).map(|(x, m)| x & m).collect();
                let Some(b) = t
                    .buckets
                    .iter()
                    .find(|b| b.tuple == ti as u32 && b.key == key)
                else {
                    continue;
                };
                assert!(b.count <= tuple.bucket);
                let hit = t.boxes[b.first as usize..(b.first + b.count) as usize]
                    .iter()
                    .copied()
                    .find(|&i| holds(&rs[i], &point, headers));
                if let Some(h) = hit {
                    best = Some(best.map_or(h, |b| b.min(h)));
                }
            }
            assert_eq!(
                best,
                linear(&rs, &point, headers),
                "case {case}: point {point:?} headers {headers}"
            );
        }
    }
    assert!(built >= 30, "only {built} of 60 cases built tuples");
}
