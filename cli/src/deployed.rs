//! The commands on deployments: `load`, `unload`, `status`, `stats`, `set`, `watch` — the
//! driver does the work from each deployment's manifest; this renders it.

use crate::args::{CaptureArgs, PoolArgs, SetArgs, StatsArgs, WatchArgs};
use nfcc_driver::capture::PcapOut;
use nfcc_driver::deploy::LoadRequest;
use nfcc_driver::exit::OK;
use nfcc_driver::runtime::deploy::{AttachMode, PIN_ROOT};
use nfcc_driver::sets::SetOp;
use nfcc_driver::DriverError;

/// `nfcc load`.
pub fn load(req: &LoadRequest) -> Result<u8, DriverError> {
    let l = nfcc_driver::deploy::load(req)?;
    for d in &l.pruned {
        eprintln!(
            "note: removed the stale deployment of {} on {} ({})",
            d.policy(),
            d.iface(),
            d.gone.as_deref().unwrap_or("gone")
        );
    }
    let m = &l.manifest;
    if m.mode == AttachMode::Offload {
        let host_part = match &m.host {
            Some(h) => format!(", host stage program {} (native)", h.program_id),
            None => ", no host stage (the whole policy runs on the NIC)".to_string(),
        };
        say!(
            "loaded {} on {} (offload): NIC program {} (HW mode){host_part}, pinned under {PIN_ROOT}/{}",
            m.policy,
            m.iface,
            m.nic.as_ref().map_or(0, |n| n.program_id),
            m.policy
        );
        return Ok(OK);
    }
    let how = match &l.in_place {
        Some(Ok(d)) => format!(
            "; updated in place in {:.1} ms: {} map entries written, {} deleted, {} classifier(s) flipped (same program, statistics kept{})",
            d.took.as_secs_f64() * 1e3,
            d.written,
            d.deleted,
            d.classifiers,
            if d.moved { ", moved with their rules" } else { "" }
        ),
        Some(Err(why)) => format!("; reloaded, not updated in place: {why}"),
        None => String::new(),
    };
    say!(
        "{} {} on {} ({}), program id {}, pinned under {PIN_ROOT}/{}{how}",
        if l.replaced { "replaced" } else { "loaded" },
        m.policy,
        m.iface,
        m.mode.name(),
        m.program_id(),
        m.policy
    );
    Ok(OK)
}

/// `nfcc unload`.
pub fn unload(key: Option<&str>, iface: Option<&str>) -> Result<u8, DriverError> {
    let d = nfcc_driver::deploy::unload_named(key, iface)?;
    say!("unloaded {} from {}", d.policy(), d.iface());
    Ok(OK)
}

/// `nfcc status [--prune]`.
pub fn status(prune: bool) -> u8 {
    if prune {
        for d in nfcc_driver::deploy::prune() {
            say!(
                "pruned {} on {} ({})",
                d.policy(),
                d.iface(),
                d.gone.as_deref().unwrap_or("gone")
            );
        }
    }
    let (all, unreadable) = nfcc_driver::deploy::status();
    for (name, why) in &unreadable {
        eprintln!("warning: the manifest of `{name}` cannot be read: {why}");
    }
    if all.is_empty() {
        say!("no nfcc policy is loaded");
        return OK;
    }
    say!(
        "{:<20} {:<12} {:<11} {:>8}  {:<10} state",
        "policy",
        "interface",
        "mode",
        "prog id",
        "since"
    );
    for d in &all {
        // The agent's deployments are named POLICY@IFACE, which `stats` and `set` take.
        say!(
            "{:<20} {:<12} {:<11} {:>8}  {:<10} {}{}",
            d.manifest.key(),
            d.iface(),
            d.mode().name(),
            d.program_id,
            nfcc_driver::deploy::ago(d.manifest.deployed_at),
            if d.gone.is_some() { "gone" } else { "attached" },
            d.manifest
                .managed_by
                .as_deref()
                .map_or(String::new(), |m| format!(" (managed by {m})"))
        );
        if let Some(why) = &d.gone {
            say!(
                "  gone: {why}; `nfcc status --prune` or `nfcc unload --iface {}` removes it",
                d.iface()
            );
        }
        if let Some(nic) = &d.manifest.nic {
            say!(
                "  NIC program {} attached in HW mode on {}",
                nic.program_id,
                d.iface()
            );
        }
        if d.interrupted {
            say!(
                "  note: a `--replace` of {} was interrupted after the swap; program {} runs, its maps may not all be pinned: run the same `nfcc load --replace` again",
                d.policy(),
                d.program_id
            );
        }
    }
    OK
}

/// `nfcc stats`: per-rule packets, bytes and rates over one second (`--watch`: refreshed every
/// second until interrupted).
pub fn stats(a: &StatsArgs) -> Result<u8, DriverError> {
    let d = nfcc_driver::deploy::resolve(a.key.as_deref(), a.iface.as_deref())?;
    if a.prometheus {
        say_raw!("{}", nfcc_driver::metrics::render_policy(d.manifest.key())?);
        return Ok(OK);
    }
    let reader = nfcc_driver::counters::CounterReader::open(&d)?;
    loop {
        let before = reader.read()?;
        std::thread::sleep(std::time::Duration::from_secs(1));
        let after = reader.read()?;
        let mut rows = nfcc_driver::counters::rates(&before, &after, 1.0);
        if a.watch {
            // Busiest first, on a cleared screen.
            rows.sort_by(|x, y| y.pps.cmp(&x.pps).then(y.packets.cmp(&x.packets)));
            say_raw!("\x1b[2J\x1b[H");
        }
        if a.json {
            say!("{}", serde_json::to_string(&rows).unwrap_or_default());
        } else {
            say!(
                "{:<24} {:>14} {:>16} {:>12} {:>14}",
                "rule",
                "packets",
                "bytes",
                "pps",
                "bps"
            );
            for r in &rows {
                say!(
                    "{:<24} {:>14} {:>16} {:>12} {:>14}",
                    r.rule,
                    r.packets,
                    r.bytes,
                    r.pps,
                    r.bps
                );
            }
        }
        if !a.watch {
            return Ok(OK);
        }
    }
}

/// `nfcc set add|del|list POLICY SET [VALUE...] [--from FILE]`.
pub fn set(a: &SetArgs) -> Result<u8, DriverError> {
    let (d, words) = nfcc_driver::deploy::resolve_words(&a.words, a.iface.as_deref())?;
    let Some((set, values)) = words.split_first() else {
        return Err(DriverError::Input(
            "name the set: `nfcc set OP KEY SET [VALUE...]`".into(),
        ));
    };
    let (set, policy) = (set.as_str(), d.manifest.key());
    let mut values = values.to_vec();
    if let Some(path) = &a.from {
        values.extend(nfcc_driver::sets::values_from_path(path)?);
    }
    let (add, verb, prep) = match a.op {
        SetOp::List => {
            for v in nfcc_driver::sets::list(&d, set)? {
                say!("{v}");
            }
            return Ok(OK);
        }
        SetOp::Add => (true, "added", "to"),
        SetOp::Del => (false, "removed", "from"),
    };
    let n = nfcc_driver::sets::change(&d, set, add, &values)?;
    if n == 1 {
        say!("{verb} {} {prep} {set} of {policy}", values[0]);
    } else {
        say!("{verb} {n} values {prep} {set} of {policy}");
    }
    Ok(OK)
}

/// `nfcc pool`: the pool as it is after the operation.
pub fn pool(a: &PoolArgs) -> Result<u8, DriverError> {
    let (d, words) = nfcc_driver::deploy::resolve_words(&a.words, a.iface.as_deref())?;
    let Some((pool, words)) = words.split_first() else {
        return Err(DriverError::Input(
            "name the pool: `nfcc pool OP KEY POOL [ADDR [weight W]]`".into(),
        ));
    };
    say!("{}", nfcc_driver::pools::run(&d, pool, a.op, words)?);
    Ok(OK)
}

/// `nfcc watch`: one line per sampled packet (time, rule, its verdict, 5-tuple), optionally a
/// pcap of the sampled bytes.
pub fn watch(a: &WatchArgs) -> Result<u8, DriverError> {
    let d = nfcc_driver::deploy::resolve(a.key.as_deref(), a.iface.as_deref())?;
    let mut w = nfcc_driver::watch::Watcher::open(&d)?;
    let mut out = a.pcap.as_deref().map(PcapOut::create).transpose()?;
    let mut seen = 0u64;
    while a.count.is_none_or(|c| seen < c) {
        let Some(s) = w.take() else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        seen += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let [proto, src, sport, dst, dport] = &s.tuple;
        say!(
            "{}.{:06} {} {} {proto} {src}:{sport} > {dst}:{dport} len {}",
            now.as_secs(),
            now.subsec_micros(),
            s.rule,
            s.verdict,
            s.len
        );
        if let Some(f) = out.as_mut() {
            f.append(s.bytes, s.len);
        }
    }
    Ok(OK)
}

/// `nfcc capture POLICY`: a line per packet handed to userspace (or the packets in a pcap
/// file), and the rate once a second on stderr and at the end.
pub fn capture(a: &CaptureArgs) -> Result<u8, DriverError> {
    let d = nfcc_driver::deploy::resolve(a.key.as_deref(), a.iface.as_deref())?;
    let mut c = nfcc_driver::capture::Capturer::open(&d)?;
    let mut out = a.pcap.as_deref().map(PcapOut::create).transpose()?;
    eprintln!(
        "capturing what {} hands to userspace on {} (queues {:?})",
        d.manifest.key(),
        d.manifest.iface,
        c.queues()
    );
    let rate = |n: u64, t: std::time::Duration| n as f64 / t.as_secs_f64().max(1e-9);
    let (n, t) = c.run(
        a.count,
        a.seconds,
        &mut |p| match out.as_mut() {
            Some(f) => {
                let len = p.bytes.len() as u32;
                f.append(p.bytes, len);
            }
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let [proto, src, sport, dst, dport] = &p.tuple;
                say!(
                    "{}.{:06} q{} {proto} {src}:{sport} > {dst}:{dport} len {}",
                    now.as_secs(),
                    now.subsec_micros(),
                    p.queue,
                    p.bytes.len()
                );
            }
        },
        &mut |n, t| eprintln!("{n} packets, {:.0} packets/s", rate(n, t)),
    )?;
    say!(
        "{n} packets in {:.2} s: {:.0} packets/s",
        t.as_secs_f64(),
        rate(n, t)
    );
    Ok(OK)
}
