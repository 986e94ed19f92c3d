//! `nfcc load`, `nfcc unload`, `nfcc status`: a policy (or any XDP/TC object) on an interface,
//! kept there after nfcc exits (see `nfcc_runtime::deploy`).

use crate::commands::{ENV, INPUT, OK};
use crate::ModeArg;
use nfcc_dsl::checked::Hook;
use nfcc_runtime::deploy::{self, AttachMode as Mode};
use nfcc_runtime::ProgType as ProgKind;
use std::path::Path;

/// `nfcc load`.
pub fn load(
    file: &Path,
    iface: &str,
    mode: Option<ModeArg>,
    wanted: Option<&str>,
    replace: bool,
) -> u8 {
    if mode == Some(ModeArg::Offload) {
        return load_offload(file, iface, wanted);
    }
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        eprintln!("error: cannot load programs here: {why}");
        return ENV;
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return INPUT;
        }
    };
    // (object bytes, program name, its hook, map entries to fill, the .nf source)
    type Entries = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;
    type Prepared = (Vec<u8>, String, Hook, Entries, Option<String>, Vec<String>);
    let (object, name, hook, entries, source, redirects): Prepared =
        if bytes.starts_with(b"\x7fELF") {
            let emu = match nfcc_emulator::Emulator::load(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    return INPUT;
                }
            };
            let names = emu.programs();
            let name = match crate::run::choose(&names, wanted, "program") {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("error: {e}");
                    return INPUT;
                }
            };
            let hook = if emu.hook(&name) == Some(nfcc_emulator::ProgType::Xdp) {
                Hook::Xdp
            } else {
                Hook::TcIngress
            };
            (bytes, name, hook, Vec::new(), None, Vec::new())
        } else {
            let Ok(source) = String::from_utf8(bytes) else {
                eprintln!(
                    "error: {}: neither a .nf policy nor an ELF object",
                    file.display()
                );
                return INPUT;
            };
            let c = match crate::run::checked_source(file.display().to_string(), source, wanted) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let compiled = match c.compile(None) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let entries = compiled.programs[0]
                .maps
                .iter()
                .map(|(m, e)| (m.name.clone(), e.clone()))
                .collect();
            // Only this policy's text is kept: the others are blanked (spans stay put).
            let alone = nfcc_dsl::testing::policy_alone(&c.source, &c.program, &c.policy.name);
            let redirects = compiled.programs[0].ir.redirects.clone();
            (
                compiled.object,
                c.policy.name.clone(),
                c.policy.hook,
                entries,
                Some(alone),
                redirects,
            )
        };
    let mode = match (mode, hook) {
        (Some(ModeArg::Native), _) | (None, Hook::Xdp) => Mode::Native,
        (Some(ModeArg::Generic), _) => Mode::Generic,
        (Some(ModeArg::TcIngress), _) | (None, Hook::TcIngress) => Mode::TcIngress,
        (Some(ModeArg::TcEgress), _) | (None, Hook::TcEgress) => Mode::TcEgress,
        (Some(ModeArg::Offload), _) => return ENV,
    };
    let kind = if hook == Hook::Xdp {
        ProgKind::Xdp
    } else {
        ProgKind::Tc
    };
    let loaded = match nfcc_runtime::load(&object, &name, kind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    for (map, es) in &entries {
        for (k, v) in es {
            if let Err(e) = loaded.map_update(map, k, v) {
                eprintln!("error: {e}");
                return ENV;
            }
        }
    }
    if let Err(e) = loaded.fill_redirects(&name, &redirects) {
        eprintln!("error: {e}");
        return ENV;
    }
    if replace
        && deploy::status()
            .iter()
            .any(|d| d.iface == iface && d.mode == Mode::Offload)
    {
        eprintln!(
            "error: `--replace` of a policy offloaded to the NIC is not built yet; `nfcc unload --iface {iface}` and load it again"
        );
        return ENV;
    }
    let done = if replace {
        deploy::replace(loaded, &name, iface)
    } else {
        deploy::deploy(loaded, &name, iface, mode)
    };
    match done {
        Ok(d) => {
            if let Some(src) = &source {
                if let Err(e) = deploy::save_source(&d.policy, src) {
                    eprintln!("warning: {e}; `nfcc stats` and `nfcc set` will not know its rules and sets");
                }
            }
            say!(
                "{} {} on {} ({}), program id {}, pinned under {}/{}",
                if replace { "replaced" } else { "loaded" },
                d.policy,
                d.iface,
                d.mode.name(),
                d.program_id,
                deploy::PIN_ROOT,
                d.policy
            );
            OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            ENV
        }
    }
}

/// `nfcc load --mode offload`: the device must take offloaded programs; on one that does not
/// (every veth, and every NIC but Netronome's), one clear line naming the device, the kernel's
/// answer and the command to use instead, exit 2, nothing attached.
fn load_offload(file: &Path, iface: &str, wanted: Option<&str>) -> u8 {
    if let Err(why) = nfcc_runtime::can_load_bpf() {
        eprintln!("error: cannot load programs here: {why}");
        return ENV;
    }
    let native = format!("nfcc load {} --iface {iface} --mode native", file.display());
    match nfcc_runtime::offload_probe(iface) {
        Err(nfcc_runtime::RuntimeError::Load { source, .. }) => {
            eprintln!(
                "error: {iface} cannot run offloaded BPF programs (loading a program bound to it, the kernel answered: {source}); run the policy on the host instead: `{native}`"
            );
            ENV
        }
        Err(e) => {
            eprintln!("error: {e}");
            ENV
        }
        Ok(()) => deploy_split(file, iface, wanted),
    }
}

/// Splits the policy for the NIC and deploys both stages (the device answered the probe).
fn deploy_split(file: &Path, iface: &str, wanted: Option<&str>) -> u8 {
    let c = match crate::run::checked_policy(file, wanted) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (label, source, program, policy) = (c.label, c.source, c.program, &c.policy);
    let chosen = policy.name.clone();
    let split =
        match nfcc_offload::split::split(policy, &label, &source, &nfcc_offload::Profile::nfp()) {
            Ok(s) => s,
            Err(d) => {
                eprint!("{}", nfcc_dsl::diag::render(&label, &source, &d));
                return INPUT;
            }
        };
    let Some(nic) = &split.nic else {
        eprintln!(
            "error: no rule of `{chosen}` can run on the NIC (`nfcc offload-check {label}` says why); load it with `--mode native`"
        );
        return INPUT;
    };
    if let Some(sz) = split.size.as_ref().filter(|s| !s.over.is_empty()) {
        eprintln!(
            "error: the NIC stage of `{chosen}` does not fit the card: {}",
            sz.over.join("; ")
        );
        return INPUT;
    }
    let nic_entries: Vec<(String, Vec<u8>, Vec<u8>)> = nic.compiled.programs[0]
        .maps
        .iter()
        .flat_map(|(m, es)| {
            es.iter()
                .map(|(k, v)| (m.name.clone(), k.clone(), v.clone()))
        })
        .collect();
    let host = match &split.host {
        None => None,
        Some(h) => {
            let loaded = match nfcc_runtime::load(&h.compiled.object, &chosen, ProgKind::Xdp) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: the host stage: {e}");
                    return ENV;
                }
            };
            for (m, es) in &h.compiled.programs[0].maps {
                for (k, v) in es {
                    if let Err(e) = loaded.map_update(&m.name, k, v) {
                        eprintln!("error: {e}");
                        return ENV;
                    }
                }
            }
            if let Err(e) = loaded.fill_redirects(&chosen, &h.compiled.programs[0].ir.redirects) {
                eprintln!("error: {e}");
                return ENV;
            }
            Some(loaded)
        }
    };
    match nfcc_runtime::offload::deploy_offload(
        &nic.compiled.object,
        &nic_entries,
        host,
        &chosen,
        iface,
    ) {
        Ok(d) => {
            let alone = nfcc_dsl::testing::policy_alone(&source, &program, &chosen);
            if let Err(e) = deploy::save_source(&d.policy, &alone) {
                eprintln!("warning: {e}; `nfcc stats` will not know its rules");
            }
            let host_part = if split.host.is_some() {
                format!(", host stage program {} (native)", d.program_id)
            } else {
                ", no host stage (the whole policy runs on the NIC)".to_string()
            };
            say!(
                "loaded {} on {} (offload): NIC program {} (HW mode){host_part}, pinned under {}/{}",
                d.policy,
                d.iface,
                d.nic_program_id.unwrap_or(0),
                deploy::PIN_ROOT,
                d.policy
            );
            OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            ENV
        }
    }
}

/// `nfcc unload`.
pub fn unload(iface: &str) -> u8 {
    match deploy::undeploy(iface) {
        Ok(d) => {
            say!("unloaded {} from {}", d.policy, d.iface);
            OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            ENV
        }
    }
}

/// `nfcc status`.
pub fn status() -> u8 {
    let all = deploy::status();
    if all.is_empty() {
        say!("no nfcc policy is loaded");
        return OK;
    }
    say!(
        "{:<20} {:<12} {:<11} {:>8} {:>12}  maps",
        "policy",
        "interface",
        "mode",
        "prog id",
        "since"
    );
    for d in all {
        say!(
            "{:<20} {:<12} {:<11} {:>8} {:>12}  {}",
            d.policy,
            d.iface,
            d.mode.name(),
            d.program_id,
            d.since,
            d.maps.join(",")
        );
        if let Some(nic) = d.nic_program_id {
            say!("  NIC program {nic} attached in HW mode on {}", d.iface);
        }
        if d.interrupted {
            say!(
                "  note: a `--replace` of {} was interrupted after the swap; program {} runs, its maps may not all be pinned: run the same `nfcc load --replace` again",
                d.policy, d.program_id
            );
        }
    }
    OK
}

/// The checked policy and compiled IR of a deployed policy, from its kept source.
fn deployed_policy(
    policy: &str,
) -> Result<(nfcc_dsl::checked::Policy, nfcc_compiler::ir::Program), String> {
    let source = deploy::source(policy).ok_or_else(|| {
        format!("policy `{policy}` was not loaded from a .nf file (or is not loaded)")
    })?;
    let (program, diags) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
    let program = program.ok_or_else(|| format!("the kept source no longer checks: {diags:?}"))?;
    let p = program
        .policies
        .into_iter()
        .find(|p| p.name == policy)
        .ok_or_else(|| format!("the kept source has no policy `{policy}`"))?;
    let single = nfcc_dsl::checked::Program {
        policies: vec![p.clone()],
    };
    let compiled = nfcc_compiler::compile::compile(&single, "kept.nf", &source, None)
        .map_err(|d| format!("the kept source no longer compiles: {d:?}"))?;
    Ok((p, compiled.programs[0].ir.clone()))
}

/// A deployed policy, its IR and its pinned maps.
fn open_deployed(
    policy: &str,
) -> Result<
    (
        nfcc_dsl::checked::Policy,
        nfcc_compiler::ir::Program,
        nfcc_runtime::PinnedMaps,
    ),
    String,
> {
    let (p, ir) = deployed_policy(policy)?;
    let maps = deploy::pinned_maps(policy).map_err(|e| e.to_string())?;
    Ok((p, ir, maps))
}

/// Per-rule (packets, bytes) of a deployed policy.
fn counts(
    maps: &nfcc_runtime::PinnedMaps,
    p: &nfcc_dsl::checked::Policy,
) -> Result<Vec<(u64, u64)>, String> {
    let policy = p.name.as_str();
    let rules = p.rules.len();
    let map = nfcc_compiler::compile::stats_map_name(policy);
    // Earlier versions swapped out with `--replace` counted into the base.
    let base = deploy::stats_base(policy).map_err(|e| e.to_string())?;
    // An offloaded policy also counts on the NIC: its drop and tx rules there (its pass rules
    // and default hand packets to the host stage, which counts them).
    let nic_dir = std::path::Path::new(deploy::PIN_ROOT)
        .join(policy)
        .join("nic");
    let nic = nic_dir
        .is_dir()
        .then(|| nfcc_runtime::PinnedMaps::open(&nic_dir))
        .transpose()
        .map_err(|e| e.to_string())?;
    let placement = nic
        .is_some()
        .then(|| nfcc_offload::place::place(p, &nfcc_offload::Profile::nfp()));
    let nic_counts = |i: usize| -> bool {
        placement.as_ref().is_some_and(|pl| {
            pl.full
                || (i < pl.nic_prefix
                    && p.rules[i].terminal != Some(nfcc_dsl::checked::Terminal::Pass))
        })
    };
    let host_has_stats = maps.has_map(&map);
    (0..=rules as u32)
        .map(|i| {
            let (mut pk, mut by) = base.get(i as usize).copied().unwrap_or((0, 0));
            if host_has_stats {
                let v = maps.percpu_array_sum(&map, i).map_err(|e| e.to_string())?;
                pk += v.first().copied().unwrap_or(0);
                by += v.get(1).copied().unwrap_or(0);
            }
            if let Some(n) = nic.as_ref().filter(|_| nic_counts(i as usize)) {
                let v = n.percpu_array_sum(&map, i).map_err(|e| e.to_string())?;
                pk += v.first().copied().unwrap_or(0);
                by += v.get(1).copied().unwrap_or(0);
            }
            Ok((pk, by))
        })
        .collect()
}

/// `nfcc stats`: per-rule packets, bytes and rates over one second (`--watch`: refreshed every
/// second until interrupted).
pub fn stats(policy: &str, json: bool, watch: bool) -> u8 {
    let (p, _, maps) = match open_deployed(policy) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    let mut names: Vec<String> = p.rules.iter().map(|r| r.name.clone()).collect();
    names.push("default".into());
    loop {
        let before = match counts(&maps, &p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ENV;
            }
        };
        std::thread::sleep(std::time::Duration::from_secs(1));
        let after = match counts(&maps, &p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ENV;
            }
        };
        let mut rows: Vec<(String, u64, u64, u64, u64)> = names
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(n, (b, a))| {
                (
                    n.clone(),
                    a.0,
                    a.1,
                    a.0.wrapping_sub(b.0),
                    a.1.wrapping_sub(b.1) * 8,
                )
            })
            .collect();
        if watch {
            // Busiest first, on a cleared screen.
            rows.sort_by(|x, y| y.3.cmp(&x.3).then(y.1.cmp(&x.1)));
            say_raw!("\x1b[2J\x1b[H");
        }
        if json {
            let items: Vec<String> = rows
                .iter()
                .map(|(n, pk, by, pps, bps)| {
                    format!("{{\"rule\":\"{n}\",\"packets\":{pk},\"bytes\":{by},\"pps\":{pps},\"bps\":{bps}}}")
                })
                .collect();
            say!("[{}]", items.join(","));
        } else {
            say!(
                "{:<24} {:>14} {:>16} {:>12} {:>14}",
                "rule",
                "packets",
                "bytes",
                "pps",
                "bps"
            );
            for (n, pk, by, pps, bps) in &rows {
                say!("{n:<24} {pk:>14} {by:>16} {pps:>12} {bps:>14}");
            }
        }
        if !watch {
            return OK;
        }
    }
}

/// `nfcc set add|del|list POLICY SET [VALUE...] [--from FILE]`.
pub fn set(op: &str, policy: &str, set: &str, mut values: Vec<String>, from: Option<&Path>) -> u8 {
    let (p, ir, maps) = match open_deployed(policy) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    let Some(decl) = p.sets.iter().find(|s| s.name == set) else {
        let known: Vec<&str> = p.sets.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: policy `{policy}` has no set `{set}`; its sets are: {}",
            known.join(", ")
        );
        return INPUT;
    };
    let obj = |m: &str| nfcc_compiler::compile::object_map_name(policy, m);
    // Where the set lives: the host program's maps and, for a policy offloaded to a NIC, the
    // NIC stage's copies (its own IR: the NIC keeps prefixes in hashes), each with its IR.
    let stages = match set_stages(policy, &p, ir, maps) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    if let Some(path) = from {
        let text = if path == Path::new("-") {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map(|_| t)
        } else {
            std::fs::read_to_string(path)
        };
        match text {
            Ok(t) => values.extend(
                t.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            ),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return INPUT;
            }
        }
    }
    match op {
        "list" => {
            // The set's first map lists its members (prefix maps as {length, address}).
            let (maps, ir) = &stages[0];
            let Some(m) = ir.maps.iter().find(|m| m.name == format!("set_{set}")) else {
                eprintln!("error: set `{set}` is compiled into the program, not kept in a map");
                return INPUT;
            };
            match maps.map_keys(&obj(&m.name)) {
                Ok(keys) => {
                    for k in keys {
                        say!("{}", show_key(decl.kind, &k));
                    }
                    OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ENV
                }
            }
        }
        "add" | "del" if values.is_empty() => {
            eprintln!("error: `nfcc set {op}` needs a value (or `--from FILE`)");
            INPUT
        }
        "add" | "del" => {
            // Every value is checked before any is applied: a typo on line 70,000 must not
            // leave the set half changed.
            let mut items = Vec::with_capacity(values.len());
            let mut bad = 0;
            for v in &values {
                match nfcc_dsl::check::parse_set_item(decl.kind, v) {
                    Ok(i) => items.push(i),
                    Err(e) => {
                        bad += 1;
                        if bad <= 10 {
                            eprintln!("error: `{v}`: {e}");
                        }
                    }
                }
            }
            if bad > 0 {
                eprintln!("error: {bad} bad value(s); nothing was changed");
                return INPUT;
            }
            for ((v, item), (maps, ir)) in values
                .iter()
                .zip(items)
                .flat_map(|vi| stages.iter().map(move |st| (vi, st)))
            {
                let ops =
                    match nfcc_compiler::sets::plan(&p, ir, set, item, op == "add", &mut |m, k| {
                        maps.map_lookup(&obj(m), k).ok().flatten()
                    }) {
                        Ok(o) => o,
                        Err(e) => {
                            eprintln!("error: `{v}`: {e}");
                            return INPUT;
                        }
                    };
                for o in ops {
                    let r = match &o {
                        nfcc_compiler::sets::MapOp::Update { map, key, value } => {
                            maps.map_update(&obj(map), key, value)
                        }
                        nfcc_compiler::sets::MapOp::Delete { map, key } => {
                            maps.map_delete(&obj(map), key).map(|_| ())
                        }
                    };
                    if let Err(e) = r {
                        eprintln!("error: `{v}`: {e}");
                        return ENV;
                    }
                }
            }
            let (verb, prep) = if op == "add" {
                ("added", "to")
            } else {
                ("removed", "from")
            };
            if values.len() == 1 {
                say!("{verb} {} {prep} {set} of {policy}", values[0]);
            } else {
                say!("{verb} {} values {prep} {set} of {policy}", values.len());
            }
            OK
        }
        _ => {
            eprintln!("error: the set operations are add, del and list");
            INPUT
        }
    }
}

/// The maps a deployed policy's sets live in, each with the IR that laid them out: the host
/// program's, and the NIC stage's when the policy is offloaded.
fn set_stages(
    policy: &str,
    p: &nfcc_dsl::checked::Policy,
    ir: nfcc_compiler::ir::Program,
    maps: nfcc_runtime::PinnedMaps,
) -> Result<Vec<(nfcc_runtime::PinnedMaps, nfcc_compiler::ir::Program)>, String> {
    let nic_dir = Path::new(deploy::PIN_ROOT).join(policy).join("nic");
    if !nic_dir.is_dir() {
        return Ok(vec![(maps, ir)]);
    }
    let source = deploy::source(policy).ok_or("the offloaded policy's source was not kept")?;
    let split = nfcc_offload::split::split(p, "kept.nf", &source, &nfcc_offload::Profile::nfp())
        .map_err(|d| format!("the kept source no longer splits: {d:?}"))?;
    let mut out = Vec::new();
    if split.host.is_some() {
        out.push((maps, ir));
    }
    if let Some(nic) = split.nic {
        let nic_maps = nfcc_runtime::PinnedMaps::open(&nic_dir).map_err(|e| e.to_string())?;
        out.push((nic_maps, nic.compiled.programs[0].ir.clone()));
    }
    Ok(out)
}

/// A set map's key as the language writes it.
fn show_key(kind: nfcc_dsl::checked::SetKind, key: &[u8]) -> String {
    use nfcc_dsl::checked::SetKind;
    let prefix = matches!(kind, SetKind::Ipv4Prefix | SetKind::Ipv6Prefix);
    let (len, data) = if prefix && key.len() > 4 {
        (
            Some(u32::from_le_bytes([key[0], key[1], key[2], key[3]])),
            &key[4..],
        )
    } else {
        (None, key)
    };
    let addr = match data.len() {
        4 => std::net::Ipv4Addr::from([data[0], data[1], data[2], data[3]]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(data);
            std::net::Ipv6Addr::from(b).to_string()
        }
        6 => data
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        _ => data
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
            .to_string(),
    };
    match len {
        Some(l) if l as usize != data.len() * 8 => format!("{addr}/{l}"),
        _ => addr,
    }
}

/// `nfcc watch`: one line per sampled packet (time, rule, its verdict, 5-tuple), optionally a
/// pcap of the sampled bytes.
pub fn watch(policy: &str, pcap: Option<&Path>, count: Option<u64>) -> u8 {
    let (p, _) = match deployed_policy(policy) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    let mut samples = match deploy::Samples::open(policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ENV;
        }
    };
    let mut out = match pcap.map(std::fs::File::create).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot write the pcap: {e}");
            return ENV;
        }
    };
    if let Some(f) = out.as_mut() {
        use std::io::Write as _;
        // A pcap header: each record is appended and flushed as it arrives.
        let _ = f.write_all(&nfcc_emulator::pcap::write(&[]));
    }
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let Some((slot, len, bytes)) = samples.take() else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        seen += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (rule, verdict) = match p.rules.get(slot as usize) {
            Some(r) => (
                r.name.clone(),
                r.terminal
                    .as_ref()
                    .map_or("table".to_string(), |t| t.name().to_string()),
            ),
            None => ("default".to_string(), p.default.terminal.name().to_string()),
        };
        let h = nfcc_dsl::packet::parse_frame(&bytes);
        let meta = nfcc_dsl::eval::Meta::default();
        let get = |f| {
            nfcc_dsl::eval::field_value(&h, &meta, f).map_or("-".to_string(), |v| v.to_string())
        };
        use nfcc_dsl::checked::Field;
        say!(
            "{}.{:06} {rule} {verdict} {} {}:{} > {}:{} len {len}",
            now.as_secs(),
            now.subsec_micros(),
            get(Field::IpProto),
            get(Field::IpSrc),
            get(Field::L4Sport),
            get(Field::IpDst),
            get(Field::L4Dport),
        );
        if let Some(f) = out.as_mut() {
            use std::io::Write as _;
            let rec = nfcc_emulator::pcap::Record {
                ts_sec: now.as_secs() as u32,
                ts_usec: now.subsec_micros(),
                orig_len: len,
                data: bytes,
            };
            // The record alone: the file header is already written.
            let one = nfcc_emulator::pcap::write(&[rec]);
            let _ = f.write_all(&one[24..]).and_then(|()| f.flush());
        }
    }
    OK
}
