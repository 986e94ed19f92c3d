//! ClassBench's filter-set generator (`db_generator`), written here from the algorithm of its
//! technical report (Taylor and Turner, WUCSE-2004-28, sections 4 and 5), not translated from
//! its C++: a parameter file ([`Seed`], one of the twelve public ones) holds the statistics of a
//! real filter set, and [`generate`] draws a synthetic set of any size with that character.
//!
//! Per filter: the protocol from `-prots`, then one of the 25 port-pair classes (each side
//! wildcard, high `1024:65535`, low `0:1023`, an arbitrary range from `-spar`/`-dpar` or an
//! exact port from `-spem`/`-dpem`) from the protocol's row, the flags from `-flags`, and the
//! pair of prefix lengths from the class's table (the total length, then the source length
//! given the total). Addresses come from two binary tries built top-down, one per side: at
//! depth `d` the filters whose prefix ends there take the path as their prefix; the others go
//! to one child with the level's one-child probability, else are split between both children,
//! the lighter side getting the share the level's skew gives (`skew = 1 - light / heavy`).
//! Once a path holds `-snest`/`-dnest` prefixes, what lies below is split evenly (deeper
//! nesting would exceed the seed's). The destination trie follows the source one: at depth
//! `d`, with probability `-pcorr[d]`, filters that took different source branches take
//! different destination branches too (and the same branch together), which is how the seed's
//! source/destination correlation is kept.
//!
//! The set is written most specific first, as the published ClassBench sets are.
//!
//! Left out, and why: the report's smoothing and scope adjustments (`r`, `s`; both 0 here, the
//! seed's own distributions), and its redundancy removal beyond exact duplicates (a duplicate
//! is drawn again, so the set has exactly the filters asked for).

use std::collections::HashSet;

/// The 25 port-pair classes, in the order the seed's `-prots` columns and sections use.
pub const CLASSES: [&str; 25] = [
    "wc_wc", "wc_hi", "hi_wc", "hi_hi", "wc_lo", "lo_wc", "hi_lo", "lo_hi", "lo_lo", "wc_ar",
    "ar_wc", "hi_ar", "ar_hi", "wc_em", "em_wc", "hi_em", "em_hi", "lo_ar", "ar_lo", "lo_em",
    "em_lo", "ar_ar", "ar_em", "em_ar", "em_em",
];

/// Why a parameter file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// A line of a section is not what the section holds.
    #[error("line {line}: {what}")]
    Line {
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A section the generator needs is missing.
    #[error("no `-{0}` section (is this a ClassBench parameter file?)")]
    Missing(&'static str),
}

/// One protocol's row of `-prots`.
#[derive(Clone, Debug, PartialEq)]
struct Prot {
    proto: u8,
    prob: f64,
    classes: Vec<f64>,
}

/// A distribution over values: (value, weight) pairs.
type Weighted<T> = Vec<(T, f64)>;

/// A prefix-length pair table: per total length, its probability and the source length's
/// distribution given it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Lengths {
    totals: Vec<(u8, f64, Weighted<u8>)>,
}

/// One protocol's flags choices: (flags, mask, probability).
type FlagChoices = Vec<(u16, u16, f64)>;

/// One trie level's branching: probabilities of one and two children, and the skew of a
/// two-child split.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Level {
    one: f64,
    skew: f64,
}

/// A parsed ClassBench parameter file.
#[derive(Clone, Debug, PartialEq)]
pub struct Seed {
    /// Filters in the set the statistics were taken from (`-scale`).
    scale: f64,
    prots: Vec<Prot>,
    flags: Vec<(u8, FlagChoices)>,
    spar: Vec<(f64, u16, u16)>,
    spem: Vec<(f64, u16)>,
    dpar: Vec<(f64, u16, u16)>,
    dpem: Vec<(f64, u16)>,
    lengths: Vec<Lengths>,
    snest: usize,
    sskew: Vec<Level>,
    dnest: usize,
    dskew: Vec<Level>,
    pcorr: Vec<f64>,
}

/// One generated filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Source prefix (address, length); host bits zero.
    pub src: (u32, u8),
    /// Destination prefix.
    pub dst: (u32, u8),
    /// Source port range, inclusive.
    pub sport: (u16, u16),
    /// Destination port range, inclusive.
    pub dport: (u16, u16),
    /// Protocol and its mask (0/0 for any).
    pub proto: (u8, u8),
    /// The flags column's value and mask.
    pub flags: (u16, u16),
}

impl Filter {
    /// The filter as a line of a ClassBench filter file.
    pub fn line(&self) -> String {
        let ip = |(a, l): (u32, u8)| format!("{}/{l}", std::net::Ipv4Addr::from(a));
        format!(
            "@{}\t{}\t{} : {}\t{} : {}\t0x{:02X}/0x{:02X}\t0x{:04X}/0x{:04X}\t",
            ip(self.src),
            ip(self.dst),
            self.sport.0,
            self.sport.1,
            self.dport.0,
            self.dport.1,
            self.proto.0,
            self.proto.1,
            self.flags.0,
            self.flags.1
        )
    }
}

fn num<T: std::str::FromStr>(s: &str, line: usize, what: &str) -> Result<T, SeedError> {
    s.trim().parse().map_err(|_| SeedError::Line {
        line,
        what: format!("`{s}` is not {what}"),
    })
}

fn hex16(s: &str, line: usize) -> Result<u16, SeedError> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).map_err(|_| SeedError::Line {
        line,
        what: format!("`{s}` is not a 16-bit hex value"),
    })
}

/// `prob<TAB>lo:hi` lines.
fn ranges(lines: &[(usize, &str)]) -> Result<Vec<(f64, u16, u16)>, SeedError> {
    lines
        .iter()
        .map(|&(n, l)| {
            let mut w = l.split_whitespace();
            let p = num(w.next().unwrap_or(""), n, "a probability")?;
            let r = w.next().unwrap_or("");
            let (a, b) = r.split_once(':').ok_or_else(|| SeedError::Line {
                line: n,
                what: format!("`{r}` is not a port range lo:hi"),
            })?;
            Ok((p, num(a, n, "a port")?, num(b, n, "a port")?))
        })
        .collect()
}

/// `level<TAB>one<TAB>two<TAB>skew` lines.
fn levels(lines: &[(usize, &str)]) -> Result<Vec<Level>, SeedError> {
    let mut v = vec![Level::default(); 33];
    for &(n, l) in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 4 {
            return Err(SeedError::Line {
                line: n,
                what: "a skew line needs level, one-child, two-child and skew".into(),
            });
        }
        let d: usize = num(w[0], n, "a level")?;
        if let Some(slot) = v.get_mut(d) {
            *slot = Level {
                one: num(w[1], n, "a probability")?,
                skew: num(w[3], n, "a skew")?,
            };
        }
    }
    Ok(v)
}

impl Seed {
    /// Reads a parameter file.
    pub fn parse(text: &str) -> Result<Seed, SeedError> {
        let mut sections: Vec<(String, Vec<(usize, &str)>)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if let Some(name) = l.strip_prefix('-') {
                sections.push((name.to_string(), Vec::new()));
            } else if l.is_empty() || l.starts_with('#') {
                continue;
            } else if let Some((_, lines)) = sections.last_mut() {
                lines.push((i + 1, l));
            }
        }
        let get = |name: &'static str| -> Result<&[(usize, &str)], SeedError> {
            sections
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, l)| l.as_slice())
                .ok_or(SeedError::Missing(name))
        };
        let mut prots = Vec::new();
        for &(n, l) in get("prots")? {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() != 27 {
                return Err(SeedError::Line {
                    line: n,
                    what: format!("a -prots row has 27 columns, this one {}", w.len()),
                });
            }
            prots.push(Prot {
                proto: num(w[0], n, "a protocol")?,
                prob: num(w[1], n, "a probability")?,
                classes: w[2..]
                    .iter()
                    .map(|x| num(x, n, "a probability"))
                    .collect::<Result<_, _>>()?,
            });
        }
        let mut flags = Vec::new();
        for &(n, l) in get("flags")? {
            let mut w = l.split_whitespace();
            let proto = num(w.next().unwrap_or(""), n, "a protocol")?;
            let mut opts = Vec::new();
            for item in w {
                let (fm, p) = item.split_once(',').ok_or_else(|| SeedError::Line {
                    line: n,
                    what: format!("`{item}` is not flags/mask,probability"),
                })?;
                let (f, m) = fm.split_once('/').unwrap_or((fm, "0"));
                opts.push((hex16(f, n)?, hex16(m, n)?, num(p, n, "a probability")?));
            }
            flags.push((proto, opts));
        }
        let exact = |name| -> Result<Vec<(f64, u16)>, SeedError> {
            Ok(ranges(get(name)?)?
                .into_iter()
                .map(|(p, a, _)| (p, a))
                .collect())
        };
        let mut lengths = Vec::new();
        for class in CLASSES {
            let mut t = Lengths::default();
            for &(n, l) in sections
                .iter()
                .find(|(x, _)| x == class)
                .map_or(&[][..], |(_, l)| l.as_slice())
            {
                let mut cols = l.split_whitespace().map(|c| {
                    let (a, b) = c.split_once(',').unwrap_or((c, "0"));
                    Ok::<_, SeedError>((
                        num::<u8>(a, n, "a length")?,
                        num::<f64>(b, n, "a probability")?,
                    ))
                });
                let (total, p) = cols.next().unwrap_or(Ok((0, 0.0)))?;
                let srcs = cols.collect::<Result<Vec<_>, _>>()?;
                t.totals.push((total, p, srcs));
            }
            lengths.push(t);
        }
        let nest = |name| -> Result<usize, SeedError> {
            let l = get(name)?;
            l.first()
                .map_or(Ok(32), |&(n, x)| num(x, n, "a nesting depth"))
        };
        let mut pcorr = vec![0.0; 33];
        for &(n, l) in get("pcorr")? {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() == 2 {
                let d: usize = num(w[0], n, "a level")?;
                if let Some(slot) = pcorr.get_mut(d) {
                    *slot = num(w[1], n, "a probability")?;
                }
            }
        }
        let scale = sections
            .iter()
            .find(|(n, _)| n == "scale")
            .and_then(|(_, l)| l.first())
            .map_or(Ok(1.0), |&(n, x)| num::<f64>(x, n, "a filter count"))?;
        Ok(Seed {
            scale: scale.max(1.0),
            prots,
            flags,
            spar: ranges(get("spar")?)?,
            spem: exact("spem")?,
            dpar: ranges(get("dpar")?)?,
            dpem: exact("dpem")?,
            lengths,
            snest: nest("snest")?,
            sskew: levels(get("sskew")?)?,
            dnest: nest("dnest")?,
            dskew: levels(get("dskew")?)?,
            pcorr,
        })
    }
}

/// Index of a draw from weights `w` (all zero: the first).
fn pick(rng: &mut fastrand::Rng, w: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = w.clone().sum();
    if total <= 0.0 {
        return 0;
    }
    let mut x = rng.f64() * total;
    let mut last = 0;
    for (i, p) in w.enumerate() {
        if p > 0.0 {
            last = i;
            if x < p {
                return i;
            }
            x -= p;
        }
    }
    last
}

/// The fields of a filter other than its addresses, and its prefix lengths.
struct Drawn {
    sport: (u16, u16),
    dport: (u16, u16),
    proto: (u8, u8),
    flags: (u16, u16),
    lens: (u8, u8),
}

fn port(
    rng: &mut fastrand::Rng,
    kind: &str,
    ar: &[(f64, u16, u16)],
    em: &[(f64, u16)],
) -> (u16, u16) {
    match kind {
        "hi" => (1024, 65535),
        "lo" => (0, 1023),
        "ar" if !ar.is_empty() => {
            let (_, a, b) = ar[pick(rng, ar.iter().map(|x| x.0))];
            (a, b)
        }
        "em" if !em.is_empty() => {
            let (_, p) = em[pick(rng, em.iter().map(|x| x.0))];
            (p, p)
        }
        _ => (0, 65535),
    }
}

fn draw(seed: &Seed, rng: &mut fastrand::Rng) -> Drawn {
    let prot = &seed.prots[pick(rng, seed.prots.iter().map(|p| p.prob))];
    let class = pick(rng, prot.classes.iter().copied());
    let (sk, dk) = CLASSES[class].split_once('_').unwrap_or(("wc", "wc"));
    let (sport, dport) = if prot.proto == 6 || prot.proto == 17 {
        (
            port(rng, sk, &seed.spar, &seed.spem),
            port(rng, dk, &seed.dpar, &seed.dpem),
        )
    } else {
        ((0, 65535), (0, 65535))
    };
    let flags = seed
        .flags
        .iter()
        .find(|(p, _)| *p == prot.proto)
        .filter(|(_, o)| !o.is_empty())
        .map_or((0, 0), |(_, o)| {
            let (f, m, _) = o[pick(rng, o.iter().map(|x| x.2))];
            (f, m)
        });
    let table = &seed.lengths[class].totals;
    let lens = if table.is_empty() {
        (0, 0)
    } else {
        let (total, _, srcs) = &table[pick(rng, table.iter().map(|t| t.1))];
        let s = if srcs.is_empty() {
            (*total).min(32)
        } else {
            srcs[pick(rng, srcs.iter().map(|x| x.1))].0
        };
        (s.min(32), total.saturating_sub(s).min(32))
    };
    Drawn {
        sport,
        dport,
        proto: if prot.proto == 0 {
            (0, 0)
        } else {
            (prot.proto, 0xff)
        },
        flags,
        lens,
    }
}

/// A filter being placed in a trie: its index, its prefix length on this side and (for the
/// destination trie) its source prefix.
struct Item {
    f: usize,
    len: u8,
    src: u32,
    src_len: u8,
}

/// One side's trie: the seed's per-level branching, its nesting limit, and (destination side)
/// the correlation with the source trie.
struct Trie<'a> {
    levels: &'a [Level],
    nest: usize,
    pcorr: Option<&'a [f64]>,
    /// Nodes the seed's trie has at each depth (from its branching), over the seed's filters:
    /// how many of the seed's nodes a node holding one filter stands for.
    nodes_per_filter: Vec<f64>,
    out: Vec<u32>,
}

impl<'a> Trie<'a> {
    fn new(
        levels: &'a [Level],
        nest: usize,
        pcorr: Option<&'a [f64]>,
        scale: f64,
        n: usize,
    ) -> Trie<'a> {
        let mut nodes = 1.0f64;
        let nodes_per_filter = (0..=32)
            .map(|d| {
                let here = nodes / scale;
                nodes *= 2.0 - levels.get(d).map_or(1.0, |l| l.one);
                here
            })
            .collect();
        Trie {
            levels,
            nest: nest.max(1),
            pcorr,
            nodes_per_filter,
            out: vec![0; n],
        }
    }

    /// Places `items` at depth `depth`
    /// under `path`, with `nested` prefixes already on the path. The seed's statistics are
    /// per node of a trie over `scale` filters; a node holding `w` filters stands for `m =
    /// w · nodes(d) / scale` such nodes, so it keeps one child only if all of them would (with
    /// probability `one^m`), and its split is the mean of `m` sampled seed nodes' splits (at
    /// most 32): a set far larger than the seed spreads near the root as the published
    /// ClassBench sets do, and keeps the seed's shape below.
    fn assign(
        &mut self,
        rng: &mut fastrand::Rng,
        items: Vec<Item>,
        depth: u8,
        path: u32,
        nested: usize,
    ) {
        let (here, below): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.len <= depth);
        for i in &here {
            self.out[i.f] = path;
        }
        if below.is_empty() || depth >= 32 {
            return;
        }
        let nested = nested + usize::from(!here.is_empty());
        let bit = 1u32 << (31 - depth);
        let level = self.levels.get(depth as usize).copied().unwrap_or_default();
        let next_ends = below.iter().any(|i| i.len == depth + 1);
        let (mut zero, mut one): (Vec<Item>, Vec<Item>) = (Vec::new(), Vec::new());
        let mut free = below;
        if nested + 1 >= self.nest && next_ends && free.len() > 1 {
            // At the nesting limit: the prefixes ending one level down go one way, the
            // longer ones the other, so no path holds more than the seed's nesting.
            let (a, b): (Vec<_>, Vec<_>) = free.into_iter().partition(|i| i.len == depth + 1);
            let (a, b) = if rng.bool() { (a, b) } else { (b, a) };
            self.assign(rng, a, depth + 1, path, nested);
            self.assign(rng, b, depth + 1, path | bit, nested);
            return;
        }
        if let Some(pcorr) = self.pcorr {
            // The destination trie follows the source one: a filter whose source prefix goes
            // on past this depth keeps to its source bit with the level's correlation, else
            // takes the other branch; the rest branch as the seed's trie does.
            let p = pcorr.get(depth as usize + 1).copied().unwrap_or(0.0);
            let (tied, rest): (Vec<_>, Vec<_>) = free.into_iter().partition(|i| i.src_len > depth);
            for i in tied {
                let same = rng.f64() < p;
                if ((i.src & bit) != 0) == same {
                    one.push(i);
                } else {
                    zero.push(i);
                }
            }
            free = rest;
        }
        if !free.is_empty() {
            let m = (free.len() as f64 * self.nodes_per_filter[depth as usize]).max(1.0);
            let samples = (m.round() as usize).clamp(1, 32);
            let heavy = 1.0 / (2.0 - level.skew.clamp(0.0, 1.0));
            let share0 = (0..samples)
                .map(|_| {
                    let s = if rng.f64() < level.one { 1.0 } else { heavy };
                    if rng.bool() {
                        s
                    } else {
                        1.0 - s
                    }
                })
                .sum::<f64>()
                / samples as f64;
            rng.shuffle(&mut free);
            let k = (free.len() as f64 * share0).round() as usize;
            let rest = free.split_off(k.min(free.len()));
            zero.extend(free);
            one.extend(rest);
        }
        self.assign(rng, zero, depth + 1, path, nested);
        self.assign(rng, one, depth + 1, path | bit, nested);
    }
}

/// `n` filters with `seed`'s character, the same for the same `rng_seed`, most specific first
/// ([`specificity`]). Exact duplicates are drawn again (at most `4 n` rounds in all), so the
/// set has `n` distinct filters unless the seed cannot make that many.
pub fn generate(seed: &Seed, n: usize, rng_seed: u64) -> Vec<Filter> {
    let mut rng = fastrand::Rng::with_seed(rng_seed);
    let mut out: Vec<Filter> = Vec::with_capacity(n);
    let mut seen: HashSet<Filter> = HashSet::with_capacity(n);
    let mut rounds = 0;
    while out.len() < n && rounds < 4 * n.max(1) {
        rounds += 1;
        let want = n - out.len();
        let drawn: Vec<Drawn> = (0..want).map(|_| draw(seed, &mut rng)).collect();
        let mut src = Trie::new(&seed.sskew, seed.snest, None, seed.scale, want);
        let items = drawn
            .iter()
            .enumerate()
            .map(|(f, d)| Item {
                f,
                len: d.lens.0,
                src: 0,
                src_len: 0,
            })
            .collect();
        src.assign(&mut rng, items, 0, 0, 0);
        let mut dst = Trie::new(&seed.dskew, seed.dnest, Some(&seed.pcorr), seed.scale, want);
        let items = drawn
            .iter()
            .enumerate()
            .map(|(f, d)| Item {
                f,
                len: d.lens.1,
                src: src.out[f],
                src_len: d.lens.0,
            })
            .collect();
        dst.assign(&mut rng, items, 0, 0, 0);
        for (i, d) in drawn.iter().enumerate() {
            let mask = |l: u8| {
                if l == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(l))
                }
            };
            let f = Filter {
                src: (src.out[i] & mask(d.lens.0), d.lens.0),
                dst: (dst.out[i] & mask(d.lens.1), d.lens.1),
                sport: d.sport,
                dport: d.dport,
                proto: d.proto,
                flags: d.flags,
            };
            if seen.insert(f) {
                out.push(f);
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(specificity(f)));
    out
}

/// How much of the header a filter fixes, in bits: its prefix lengths, the bits its port
/// ranges, protocol and flags fix. Sets are written most specific first, as ClassBench's published
/// sets are (the catch-all last), so a broad filter does not shadow the ones after it.
fn specificity(f: &Filter) -> u32 {
    let port = |(lo, hi): (u16, u16)| 16 - (u32::from(hi - lo) + 1).ilog2().min(16);
    u32::from(f.src.1) + u32::from(f.dst.1) + port(f.sport) + port(f.dport) + f.proto.1.count_ones()
}

/// The set as a ClassBench filter file.
pub fn to_text(filters: &[Filter]) -> String {
    filters.iter().map(|f| f.line() + "\n").collect()
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
