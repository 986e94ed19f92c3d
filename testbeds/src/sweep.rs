//! Scaling sweeps: Mpps of a source blocklist as it grows from 10 to 1,000,000 entries, and of
//! a ClassBench-imported ACL as it grows from 1 to 10,000 rules — the curves that size a
//! deployment.
//!
//! The blocklist is the bench policy's shape (`udp.dport == 53 and ip.src in blocked => drop`)
//! with a dynamic set filled the way `nfcc set add` fills it (`nfcc_compiler::sets::plan`):
//! nine in ten entries are /32s from 10.0.0.0 on, one in ten /24s from 11.0.0.0 on. The
//! generator gives every packet a random source among the /32s, so lookups spread over the
//! whole table as real attack traffic would (cache-cold at a million entries), or among only
//! eight of them (cache-hot, the best case). The ACL sweep takes the first N filters of a
//! ClassBench file, every rule dropping and the default dropping too, under a fixed mix of 16
//! random TCP/UDP frames, compiled as the compiler chooses (classifier trees) or as code.

use crate::bench::{measure, Options, Subject};
use crate::{Testbed, TestbedError};
use nfcc_compiler::classify::Choice;
use nfcc_compiler::sets::MapOp;
use nfcc_runtime::traffic::Variation;
use std::collections::HashMap;

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Entries or rules.
    pub size: u64,
    /// Median Mpps.
    pub mpps: f64,
    /// Kernel test_run ns per packet.
    pub test_run_ns: Option<f64>,
    /// The program's own ns per packet on the real path (kernel run statistics).
    pub in_situ_ns: Option<f64>,
    /// Whether the generator, not the program, bounded the rate.
    pub generator_bound: bool,
}

fn compile(
    src: &str,
    name: &str,
    classifier: Choice,
) -> Result<(nfcc_dsl::checked::Policy, nfcc_compiler::compile::Compiled), TestbedError> {
    let bad = |why: String| TestbedError::Unavailable(format!("sweep policy {name}: {why}"));
    let (program, diags) = nfcc_dsl::check_source(src, &nfcc_dsl::CheckOptions::default());
    let program = program.ok_or_else(|| bad(format!("{} diagnostics", diags.len())))?;
    let opts = nfcc_compiler::compile::Options {
        classifier,
        ..Default::default()
    };
    let c = nfcc_compiler::compile::compile_opts(&program, name, src, &opts)
        .map_err(|d| bad(format!("{} compile errors", d.len())))?;
    let p = program
        .policies
        .into_iter()
        .next()
        .ok_or_else(|| bad("no policy".into()))?;
    Ok((p, c))
}

/// The blocklist subject with `n` entries, and the traffic variation hitting its /32s.
pub fn blocklist_subject(n: u64) -> Result<(Subject, Variation), TestbedError> {
    let capacity = (n + n / 4 + 16).next_power_of_two();
    let src = format!(
        "policy sweep on xdp {{\n  set blocked: ipv4 prefix, capacity {capacity}, dynamic\n  \
         rule dns_block: udp.dport == 53 and ip.src in blocked => drop\n  default pass\n}}\n"
    );
    let (p, c) = compile(&src, "sweep", Choice::Auto)?;
    let prog = &c.programs[0];
    let mut subject = Subject::policy(format!("blocklist of {n}"), &c.object, prog);
    let nets = n / 10;
    let hosts = n - nets;
    let mut state: HashMap<(String, Vec<u8>), Vec<u8>> = HashMap::new();
    let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0));
    let net_base = u32::from(std::net::Ipv4Addr::new(11, 0, 0, 0));
    let item = |i: u64| -> String {
        if i < hosts {
            std::net::Ipv4Addr::from(base + i as u32).to_string()
        } else {
            format!(
                "{}/24",
                std::net::Ipv4Addr::from(net_base + (((i - hosts) as u32) << 8))
            )
        }
    };
    for i in 0..n {
        let it = nfcc_dsl::check::parse_set_item(nfcc_dsl::checked::SetKind::Ipv4Prefix, &item(i))
            .map_err(TestbedError::Unavailable)?;
        let ops = nfcc_compiler::sets::plan(&p, &prog.ir, "blocked", it, true, &mut |m, k| {
            state.get(&(m.to_string(), k.to_vec())).cloned()
        })
        .map_err(|e| TestbedError::Unavailable(e.to_string()))?;
        for op in ops {
            if let MapOp::Update { map, key, value } = op {
                state.insert((map, key), value);
            }
        }
    }
    subject.entries.extend(
        state
            .into_iter()
            .map(|((m, k), v)| (nfcc_compiler::compile::object_map_name("sweep", &m), k, v)),
    );
    Ok((
        subject,
        Variation {
            offset: 26,
            base,
            count: hosts.max(1) as u32,
        },
    ))
}

/// Mpps of the blocklist at each size in `sizes`; with `hot`, the traffic comes from only 8
/// of the blocked sources (cache-hot lookups), else from all of them at random.
pub fn blocklist(
    sizes: &[u64],
    hot: bool,
    opts: Options,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<Vec<Point>, TestbedError> {
    let tb = Testbed::new()?;
    // The in-situ figures need the kernel's run statistics, on for the sweep only.
    let _stats = nfcc_runtime::stats::RunTimeStats::enable().ok();
    let frame = nfcc_dsl::testing::frame_from_literal(
        "ipv4(src=10.0.0.0, dst=198.18.0.2) / udp(sport=4000, dport=53) / payload(\"..................\")",
    )
    .map_err(TestbedError::Unavailable)?;
    let mut out = Vec::new();
    for &n in sizes {
        let (s, mut vary) = blocklist_subject(n)?;
        if hot {
            vary.count = vary.count.min(8);
        }
        let opts = Options {
            vary: Some(vary),
            ..opts
        };
        let label = s.label.clone();
        let m = measure(&tb, &s, std::slice::from_ref(&frame), opts, &mut |r, x| {
            progress(&label, r, x)
        })?;
        out.push(Point {
            size: n,
            mpps: m.median_mpps,
            test_run_ns: m.test_run_ns,
            in_situ_ns: m.in_situ_ns,
            generator_bound: m.generator_bound,
        });
    }
    Ok(out)
}

/// Mpps of the first `n` rules of the ClassBench filter set `filters` for each `n` in `counts`,
/// compiled with `classifier` (`Linear`: the rules as code, the curve before the classifier).
pub fn acl(
    filters: &str,
    counts: &[usize],
    classifier: Choice,
    opts: Options,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<Vec<Point>, TestbedError> {
    let tb = Testbed::new()?;
    // The in-situ figures need the kernel's run statistics, on for the sweep only.
    let _stats = nfcc_runtime::stats::RunTimeStats::enable().ok();
    // A fixed pseudo-random mix (xorshift), the same for every size.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mix: Vec<Vec<u8>> = (0..16)
        .filter_map(|i| {
            let r = next();
            let (a, b) = (r as u32, (r >> 32) as u32);
            let l4 = if i % 2 == 0 { "udp" } else { "tcp" };
            nfcc_dsl::testing::frame_from_literal(&format!(
                "ipv4(src={}, dst={}) / {l4}(sport={}, dport={}) / payload(\"......\")",
                std::net::Ipv4Addr::from(a),
                std::net::Ipv4Addr::from(b),
                (next() % 65536),
                (next() % 65536)
            ))
            .ok()
        })
        .collect();
    let lines: Vec<&str> = filters.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for &n in counts {
        let n = n.min(lines.len()).max(1);
        let text = lines[..n].join("\n");
        let src = nfcc_import::classbench::classbench_to_nf(
            &text,
            "acl",
            nfcc_import::classbench::ClassbenchActions::Drop,
        )
        .map_err(|e| TestbedError::Unavailable(e.to_string()))?
        .replace("default pass", "default drop");
        let (_, c) = compile(&src, "acl", classifier)?;
        let s = Subject::policy(format!("acl of {n} rules"), &c.object, &c.programs[0]);
        let label = s.label.clone();
        let m = measure(&tb, &s, &mix, opts, &mut |r, y| progress(&label, r, y))?;
        out.push(Point {
            size: n as u64,
            mpps: m.median_mpps,
            test_run_ns: m.test_run_ns,
            in_situ_ns: m.in_situ_ns,
            generator_bound: m.generator_bound,
        });
    }
    Ok(out)
}
