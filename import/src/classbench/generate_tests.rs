//! The generator on the twelve public parameter files: every family makes exactly the sets
//! asked for, the same for the same seed, every filter imports, and the sets have their
//! family's character — held to the seed's own distributions and to the filter sets the
//! original generator made from the first seeds (`shared/bench-data/classbench`).

use super::{generate, to_text, Filter, Seed, CLASSES};

fn seeds_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-data/classbench")
}

fn seed(name: &str) -> Seed {
    let text = std::fs::read_to_string(seeds_dir().join("seeds").join(format!("{name}_seed")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Seed::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FAMILIES: [&str; 12] = [
    "acl1", "acl2", "acl3", "acl4", "acl5", "fw1", "fw2", "fw3", "fw4", "fw5", "ipc1", "ipc2",
];

/// Shares of a set: TCP, UDP, source prefix /0, destination /32, exact destination port.
fn shares(filters: &[Filter]) -> [f64; 5] {
    let n = filters.len().max(1) as f64;
    let share = |f: &dyn Fn(&Filter) -> bool| filters.iter().filter(|x| f(x)).count() as f64 / n;
    [
        share(&|x| x.proto == (6, 0xff)),
        share(&|x| x.proto == (17, 0xff)),
        share(&|x| x.src.1 == 0),
        share(&|x| x.dst.1 == 32),
        share(&|x| x.dport.0 == x.dport.1),
    ]
}

/// The same shares of a filter file the original generator wrote.
fn file_shares(name: &str) -> [f64; 5] {
    let text = std::fs::read_to_string(seeds_dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_start_matches('@').split('\t').collect())
        .collect();
    let n = rows.len() as f64;
    let share = |f: &dyn Fn(&Vec<&str>) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    let exact = |c: &str| c.split_once(" : ").is_some_and(|(a, b)| a == b);
    [
        share(&|r| r[4].eq_ignore_ascii_case("0x06/0xFF")),
        share(&|r| r[4].eq_ignore_ascii_case("0x11/0xFF")),
        share(&|r| r[0].ends_with("/0")),
        share(&|r| r[1].ends_with("/32")),
        share(&|r| exact(r[3])),
    ]
}

#[test]
fn every_family_makes_the_set_asked_for_the_same_for_the_same_seed() {
    for name in FAMILIES {
        let s = seed(name);
        let a = generate(&s, 1_000, 7);
        assert_eq!(a.len(), 1_000, "{name}");
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 1_000, "{name}: duplicates");
        assert_eq!(a, generate(&s, 1_000, 7), "{name}: not reproducible");
        assert_ne!(
            a,
            generate(&s, 1_000, 8),
            "{name}: the seed changes nothing"
        );
        for f in &a {
            let host = |(addr, len): (u32, u8)| len < 32 && addr & (u32::MAX >> len) != 0;
            assert!(
                !host(f.src) && !host(f.dst),
                "{name}: host bits in {}",
                f.line()
            );
            assert!(
                f.sport.0 <= f.sport.1 && f.dport.0 <= f.dport.1,
                "{}",
                f.line()
            );
        }
        let nf = super::super::classbench_to_nf(
            &to_text(&a),
            name,
            super::super::ClassbenchActions::Drop,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (program, diags) = nfcc_dsl::check_source(&nf, &nfcc_dsl::CheckOptions::default());
        assert!(program.is_some(), "{name}: {diags:?}");
    }
}

/// What the seed's own tables make of a filter's lengths: the shares of source /0 and
/// destination /32 over protocols, port classes and length pairs.
fn seed_shares(s: &Seed) -> [f64; 2] {
    let mut out = [0.0; 2];
    let total: f64 = s.prots.iter().map(|p| p.prob).sum();
    for p in &s.prots {
        let classes: f64 = p.classes.iter().sum();
        for (c, w) in p.classes.iter().enumerate() {
            let t = &s.lengths[c].totals;
            let tw: f64 = t.iter().map(|x| x.1).sum();
            for (len, pt, srcs) in t {
                let sw: f64 = srcs.iter().map(|x| x.1).sum();
                for (sl, ps) in srcs {
                    let weight = p.prob / total * w / classes * pt / tw * ps / sw;
                    out[0] += weight * f64::from(u8::from(*sl == 0));
                    out[1] += weight * f64::from(u8::from(len.saturating_sub(*sl) == 32));
                }
            }
        }
    }
    out
}

/// Every family's draws against its seed's tables (source /0, destination /32 within 0.02), and the
/// first seeds against the 10k sets the original generator made from them (protocol and
/// exact-port shares within 0.08; its prefix lengths also went through steps the report does
/// not specify, so those are held to the seed instead).
#[test]
fn sets_have_their_familys_character() {
    assert_eq!(CLASSES.len(), 25);
    // The draws themselves (a set drops duplicates, which the seed's wildcard-heavy rows
    // make most often, as the original's sets do).
    for name in FAMILIES {
        let s = seed(name);
        let mut rng = fastrand::Rng::with_seed(1);
        let draws: Vec<(u8, u8)> = (0..20_000)
            .map(|_| super::draw(&s, &mut rng).lens)
            .collect();
        let share = |f: &dyn Fn(&(u8, u8)) -> bool| {
            draws.iter().filter(|x| f(x)).count() as f64 / draws.len() as f64
        };
        let ours = [share(&|x| x.0 == 0), share(&|x| x.1 == 32)];
        let want = seed_shares(&s);
        for (i, what) in ["src /0", "dst /32"].iter().enumerate() {
            assert!(
                (ours[i] - want[i]).abs() < 0.02,
                "{name} {what}: ours {:.3}, the seed's {:.3}",
                ours[i],
                want[i]
            );
        }
    }
    for (name, file) in [
        ("acl1", "acl1_10k"),
        ("fw1", "fw1_10k"),
        ("ipc1", "ipc1_10k"),
    ] {
        let ours = shares(&generate(&seed(name), 10_000, 1));
        let theirs = file_shares(file);
        for (i, what) in [(0, "tcp"), (1, "udp"), (4, "exact dport")] {
            assert!(
                (ours[i] - theirs[i]).abs() < 0.08,
                "{name} {what}: ours {:.3}, ClassBench's {:.3}",
                ours[i],
                theirs[i]
            );
        }
    }
}

#[test]
fn a_parameter_file_that_is_not_one_says_what_is_missing() {
    let e = Seed::parse("-scale\n10\n#\n").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("no `-prots` section (is this a ClassBench parameter file?)")
    );
    let e = Seed::parse("-prots\n6\t1.0\t0.5\n#\n")
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("27 columns")));
}
