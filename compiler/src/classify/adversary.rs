//! Adversarial packets derived from a classifier's own data: the leaves whose walk is longest
//! and whose bucket is fullest, the tuples' fullest buckets, chained through the parts a
//! packet searches in turn (each leaf's region is the cuts on its path, a bucket's its key
//! under the tuple's masks), and in the chain's region the point that fails the most of its
//! boxes — the packets that come closest to the static bound `compile --stats` prints. No
//! traffic can make the search longer than the bound: the tuples are fixed when the policy is
//! compiled (a packet probes each of them once, whatever came before it, unlike a megaflow
//! cache that traffic fills with new masks), and trees and buckets are data the packet only
//! reads. Benches time these packets in the kernel (`benches/benches/classifier.rs`)
//! and the ClassBench differential holds them to the bound (`engines/tests/classbench.rs`).

use crate::ir::classifier::{nodes_in_value, LEAF, MAX_DIMS};
use crate::ir::{Cond, Map, Program, Search};
use nfcc_dsl::checked::Field;

/// A packet, as the values of a classifier's dimensions, that drives its search deep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// Each dimension's field (the first of its alternatives) and its value.
    pub fields: Vec<(Field, u32)>,
    /// Levels walked (a tuple's probe counts one) in the leaves and buckets it was derived
    /// from.
    pub depth: u32,
    /// Boxes of those it fails before one holds (all of them when none does).
    pub tested: u32,
}

impl Witness {
    /// The witness as a packet literal of the language (IPv4; TCP, UDP, ICMP or another
    /// protocol as its protocol dimension says). Fields a literal of these headers cannot set
    /// keep the literal's defaults.
    pub fn literal(&self) -> String {
        let get = |fs: &[Field]| {
            self.fields
                .iter()
                .find(|(f, _)| fs.contains(f))
                .map(|&(_, v)| v)
        };
        let addr = |v: Option<u32>, or: u32| std::net::Ipv4Addr::from(v.unwrap_or(or));
        let (src, dst) = (
            addr(get(&[Field::Ipv4Src]), 0x0a00_0001),
            addr(get(&[Field::Ipv4Dst]), 0x0a00_0002),
        );
        let tcp = get(&[Field::TcpSport, Field::TcpDport, Field::TcpFlags]).is_some();
        let udp = get(&[Field::UdpSport, Field::UdpDport]).is_some();
        let proto =
            get(&[Field::Ipv4Proto, Field::IpProto]).unwrap_or(if udp && !tcp { 17 } else { 6 });
        let sp = get(&[Field::TcpSport, Field::UdpSport, Field::L4Sport]).unwrap_or(1000);
        let dp = get(&[Field::TcpDport, Field::UdpDport, Field::L4Dport]).unwrap_or(80);
        match proto {
            6 => format!(
                "ipv4(src={src}, dst={dst}) / tcp(sport={sp}, dport={dp}, flags={})",
                get(&[Field::TcpFlags]).unwrap_or(0)
            ),
            17 => format!("ipv4(src={src}, dst={dst}) / udp(sport={sp}, dport={dp})"),
            1 => format!(
                "ipv4(src={src}, dst={dst}) / icmp(type={}, code={})",
                get(&[Field::IcmpType]).unwrap_or(8),
                get(&[Field::IcmpCode]).unwrap_or(0)
            ),
            p => format!("ipv4(src={src}, dst={dst}, proto={p}) / payload(\"xxxxxxxx\")"),
        }
    }
}

/// One box as the boxes map holds it.
struct LeafBox {
    dims: Vec<(u32, u32, u32, u32)>,
}

impl LeafBox {
    /// The dimensions `point` passes, in the order the scan tests them, before one fails
    /// (all of them: the box holds).
    fn passed(&self, point: &[u32]) -> usize {
        self.dims
            .iter()
            .zip(point)
            .take_while(|(d, v)| {
                let (lo, hi, mask, value) = **d;
                lo <= **v && **v <= hi && **v & mask == value
            })
            .count()
    }
}

/// Little-endian 32-bit words.
fn words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().expect("four bytes")))
        .collect()
}

/// The words of an array map's initial entries, by index.
fn entries(m: &Map) -> std::collections::HashMap<u32, Vec<u32>> {
    m.init
        .iter()
        .filter(|(k, _)| k.len() == 4)
        .map(|(k, v)| (words(k)[0], words(v)))
        .collect()
}

/// Where a packet can land in one part: a tree's leaf (its region, the cuts on its path) or
/// a tuple's bucket (its key's region under the tuple's prefix masks), the boxes tested
/// there, and what reaching it costs (levels, boxes).
struct Landing {
    region: Vec<(u32, u32)>,
    boxes: Vec<u32>,
    depth: u32,
}

/// The regions' intersection, if they meet.
fn meet(a: &[(u32, u32)], b: &[(u32, u32)]) -> Option<Vec<(u32, u32)>> {
    a.iter()
        .zip(b)
        .map(|(&(l1, h1), &(l2, h2))| {
            let (lo, hi) = (l1.max(l2), h1.min(h2));
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// Witnesses for every classifier of `p`, the costliest first: chains that start from each
/// of the `per_part` costliest landings of each part (deepest leaves, fullest buckets) and
/// go on through the later parts, each time to the costliest landing whose region meets the
/// chain's so far; in the final region, the point that fails the most of the chain's boxes.
pub fn witnesses(p: &Program, per_part: usize) -> Vec<Witness> {
    let mut out = Vec::new();
    for c in &p.conds {
        let Cond::Classify {
            nodes,
            tuples,
            boxes,
            dims,
            parts,
            masked,
            select,
            ..
        } = c
        else {
            continue;
        };
        let box_map = entries(&p.maps[boxes.index()]);
        let get_box = |i: u32| -> Option<LeafBox> {
            let w = box_map.get(&i)?;
            let mut at = 4;
            let mut ds = Vec::new();
            for m in masked {
                let (lo, hi) = (*w.get(at)?, *w.get(at + 1)?);
                let (mask, value) = if *m {
                    (*w.get(at + 2)?, *w.get(at + 3)?)
                } else {
                    (0, 0)
                };
                at += if *m { 4 } else { 2 };
                ds.push((lo, hi, mask, value));
            }
            Some(LeafBox { dims: ds })
        };
        let fields: Vec<Field> = dims
            .iter()
            .map(|alts| p.fields[alts[0].index()].field)
            .collect();
        let full: Vec<(u32, u32)> = fields
            .iter()
            .map(|f| match f.ty().bits() {
                b if b >= 32 => (0, u32::MAX),
                b => (0, (1u32 << b) - 1),
            })
            .collect();
        let landings: Vec<Vec<Landing>> = parts
            .iter()
            .map(|part| {
                let mut ls = match &part.search {
                    Search::Tree { root, .. } => nodes
                        .map(|n| leaves(&p.maps[n.index()], *root, select.is_some(), &full))
                        .unwrap_or_default(),
                    Search::Tuple { id, masks } => tuples
                        .map(|t| buckets(&p.maps[t.index()], *id, masks, &full))
                        .unwrap_or_default(),
                };
                // A level costs about what a dimension of a box does; a box, its header
                // tests and a dimension or two.
                let dims = dims.len();
                ls.sort_by_key(|l| {
                    std::cmp::Reverse(2 * l.depth as usize + l.boxes.len() * (2 + dims))
                });
                ls
            })
            .collect();
        for (start, first) in landings.iter().enumerate() {
            for l in first.iter().take(per_part) {
                let mut region = l.region.clone();
                let mut tested: Vec<u32> = l.boxes.clone();
                let mut depth = l.depth;
                for later in landings.iter().skip(start + 1) {
                    if let Some((r, l)) = later
                        .iter()
                        .find_map(|l| meet(&region, &l.region).map(|r| (r, l)))
                    {
                        region = r;
                        tested.extend(&l.boxes);
                        depth += l.depth;
                    }
                }
                let bs: Vec<LeafBox> = tested.iter().filter_map(|&i| get_box(i)).collect();
                let (point, tested) = worst_point(&region, &bs);
                out.push(Witness {
                    fields: fields.iter().copied().zip(point).collect(),
                    depth,
                    tested,
                });
            }
        }
    }
    out.sort_by_key(|w| std::cmp::Reverse((w.depth, w.tested)));
    out
}

/// Every leaf of the tree at `root` in nodes map `m` (half 0 when `halved`).
fn leaves(m: &Map, root: u32, halved: bool, full: &[(u32, u32)]) -> Vec<Landing> {
    let raw = entries(m);
    // The walk's view: node `i` of one value, or of the map's entries.
    let in_value = nodes_in_value(m.max_entries, m.value_size, halved);
    let node = |i: u32| -> Option<[u32; 4]> {
        let w = if in_value {
            raw.get(&0)?
                .get(4 * i as usize..4 * i as usize + 4)?
                .to_vec()
        } else {
            raw.get(&i)?.clone()
        };
        Some([w[0], w[1], w[2], w[3]])
    };
    let mut out = Vec::new();
    let mut stack = vec![(root, full.to_vec(), 0u32)];
    while let Some((i, region, depth)) = stack.pop() {
        let Some(n) = node(i) else { continue };
        if n[0] == LEAF || n[0] as usize >= MAX_DIMS {
            out.push(Landing {
                region,
                boxes: (n[1]..n[1] + n[2]).collect(),
                depth,
            });
            continue;
        }
        let d = n[0] as usize;
        if d >= region.len() || depth > 64 {
            continue;
        }
        let (lo, hi) = region[d];
        if lo <= n[1] {
            let mut left = region.clone();
            left[d] = (lo, hi.min(n[1]));
            stack.push((n[2], left, depth + 1));
        }
        if n[1] < hi {
            let mut right = region;
            right[d] = (lo.max(n[1] + 1), hi);
            stack.push((n[3], right, depth + 1));
        }
    }
    out
}

/// Every bucket of tuple `id` (half 0) in tuples map `m`, its key's region under the tuple's
/// prefix masks.
fn buckets(m: &Map, id: u32, masks: &[u32], full: &[(u32, u32)]) -> Vec<Landing> {
    m.init
        .iter()
        .filter_map(|(k, v)| {
            let (k, v) = (words(k), words(v));
            if k.first() != Some(&id) || v.len() < 2 {
                return None;
            }
            let region: Vec<(u32, u32)> = k[1..]
                .iter()
                .zip(masks)
                .zip(full)
                .map(|((&key, &mask), &(lo, hi))| ((key & mask).max(lo), (key | !mask).min(hi)))
                .collect();
            Some(Landing {
                region,
                boxes: (v[0]..v[0] + v[1]).collect(),
                depth: 1,
            })
        })
        .collect()
}

/// The point of `region` whose leaf scan tests the most of `boxes` (in order) before one
/// holds: candidates are the region's corners and each box's edges, just inside and just
/// outside, the other dimensions at the region's middle or at the box's.
fn worst_point(region: &[(u32, u32)], boxes: &[LeafBox]) -> (Vec<u32>, u32) {
    let clamp = |d: usize, v: i64| -> u32 {
        v.clamp(i64::from(region[d].0), i64::from(region[d].1)) as u32
    };
    let mid: Vec<u32> = region.iter().map(|&(lo, hi)| lo + (hi - lo) / 2).collect();
    let mut candidates: Vec<Vec<u32>> = vec![
        region.iter().map(|r| r.0).collect(),
        region.iter().map(|r| r.1).collect(),
        mid.clone(),
    ];
    for b in boxes {
        for d in 0..region.len() {
            let (lo, hi, _, _) = b.dims[d];
            for v in [
                i64::from(lo) - 1,
                i64::from(hi) + 1,
                i64::from(lo),
                i64::from(hi),
            ] {
                let mut p = mid.clone();
                p[d] = clamp(d, v);
                candidates.push(p);
                let mut q: Vec<u32> = b
                    .dims
                    .iter()
                    .enumerate()
                    .map(|(e, x)| clamp(e, i64::from(x.0)))
                    .collect();
                q[d] = clamp(d, v);
                candidates.push(q);
            }
        }
    }
    // Boxes tested, and a score: each box tested costs its header tests and the dimensions
    // it passes; none holding beats the last holding (the packet goes on to the later parts).
    let tested = |p: &[u32]| -> (u32, (bool, usize)) {
        let mut score = 0;
        for (i, b) in boxes.iter().enumerate() {
            let passed = b.passed(p);
            score += 2 + passed;
            if passed == b.dims.len() {
                return (i as u32 + 1, (false, score));
            }
        }
        (boxes.len() as u32, (true, score))
    };
    candidates
        .into_iter()
        .map(|p| {
            let t = tested(&p);
            (p, t)
        })
        .max_by_key(|(_, t)| t.1)
        .map_or((mid, 0), |(p, t)| (p, t.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_point_fails_every_box_it_can() {
        let b = |lo: u32, hi: u32| LeafBox {
            dims: vec![(lo, hi, 0, 0)],
        };
        // Boxes cover 0..=9 and 20..=29 of the region 0..=99: 10..=19 fails both.
        let (p, t) = worst_point(&[(0, 99)], &[b(0, 9), b(20, 29)]);
        assert_eq!(t, 2);
        assert!(
            !(0..=9).contains(&p[0]) && !(20..=29).contains(&p[0]),
            "{p:?}"
        );
        // A box covering the whole region holds at once.
        let (_, t) = worst_point(&[(0, 99)], &[b(0, 99), b(5, 6)]);
        assert_eq!(t, 1);
    }
}
