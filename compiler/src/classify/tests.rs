//! The classifier's parts: rules as boxes (through one `check`), and the tree held to a
//! linear first-match scan of the same boxes on random ones.

use super::boxes::{rects, Bound, Dim, Rect};
use super::tree::{build, Tree, LEAF};
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
        let rs: Vec<Rect> = (0..count)
            .map(|rule| {
                let dims = (0..dims)
                    .map(|_| match rng.below(5) {
                        0 => Bound::ANY,
                        1 => Bound {
                            mask: 1 << rng.below(3),
                            value: (rng.below(2) as u32) << rng.below(3),
                            ..Bound::ANY
                        },
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
            .collect();
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
                let mut n = f.nodes[t.root as usize];
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
