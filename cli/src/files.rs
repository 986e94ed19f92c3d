//! The commands over files: `check`, `test`, `compile`, `import classbench` and
//! `offload-check` — each calls the driver and prints what it found.

use crate::args::{CheckArgs, CompileArgs, OffloadCheckArgs, TestArgs};
use nfcc_driver::dsl::ast::Span;
use nfcc_driver::exit::{ENV, FAILED, INPUT, OK};
use nfcc_driver::offload_crate::place::Place;
use nfcc_driver::source::check_file;
use nfcc_driver::test::TestEvent;
use nfcc_driver::DriverError;

/// `nfcc check`.
pub fn check(a: &CheckArgs) -> u8 {
    let mut code = OK;
    for f in &a.files {
        let c = match check_file(f, a.target.map(|t| t.target())) {
            Ok(c) => c,
            Err(e) => {
                code = code.max(crate::fail(&e));
                continue;
            }
        };
        eprint!("{}", c.render(a.short));
        let errors = c.errors();
        let warnings = c.diags.len() - errors;
        match &c.program {
            Some(p) if errors == 0 && !(a.deny_warnings && warnings > 0) => {
                let rules: usize = p.policies.iter().map(|p| p.rules.len()).sum();
                let tests: usize = p.policies.iter().map(|p| p.tests.len()).sum();
                let n = |n, one, many| nfcc_driver::source::count(n, one, many);
                say!(
                    "{}: ok ({}, {}, {}{})",
                    f.display(),
                    n(p.policies.len(), "policy", "policies"),
                    n(rules, "rule", "rules"),
                    n(tests, "test", "tests"),
                    if warnings > 0 {
                        format!(", {}", n(warnings, "warning", "warnings"))
                    } else {
                        String::new()
                    }
                );
            }
            _ => {
                say!(
                    "{}: {}, {}",
                    f.display(),
                    nfcc_driver::source::count(errors, "error", "errors"),
                    nfcc_driver::source::count(warnings, "warning", "warnings")
                );
                code = code.max(INPUT);
            }
        }
    }
    code
}

/// `nfcc test`.
pub fn test(a: &TestArgs) -> u8 {
    let engines = a.engine.engines();
    if engines.iter().any(|e| e.needs_kernel()) {
        if let Err(why) = nfcc_driver::runtime::can_load_bpf() {
            eprintln!(
                "error: the kernel engine cannot run here: {why}; `--engine emulator` needs no \
                 privileges"
            );
            return ENV;
        }
    }
    let testbed = engines.contains(&nfcc_driver::engine::EngineKind::Testbed);
    let several = engines.len() > 1;
    let sum = nfcc_driver::test::run(&a.files, &engines, &mut |ev| match ev {
        TestEvent::Unreadable(e) => eprintln!("error: {e}"),
        TestEvent::DoesNotCheck { file, rendered } => {
            eprint!("{rendered}");
            say!("{file}: does not check; no tests run");
        }
        TestEvent::EngineFailed(msg) => eprintln!("{msg}"),
        TestEvent::Report {
            file,
            engine,
            report: r,
            skipped_lines,
            rendered,
        } => {
            let label = if several {
                format!("[{}] ", engine.name())
            } else {
                String::new()
            };
            for (s, line) in r.skipped.iter().zip(&skipped_lines) {
                say!(
                    "skip  {label}{file}:{line} {}::\"{}\": {}",
                    r.policy,
                    r.name,
                    s.message
                );
            }
            if r.passed() {
                if a.verbose {
                    say!(
                        "ok    {label}{file} {}::\"{}\" ({} packets)",
                        r.policy,
                        r.name,
                        r.packets
                    );
                }
            } else {
                say!("FAIL  {label}{file} {}::\"{}\"", r.policy, r.name);
                for line in rendered.lines() {
                    say!("      {line}");
                }
            }
        }
    });
    for d in &sum.disagreements {
        say!("DISAGREE  {d}");
    }
    for (which, passed, failed) in &sum.tally {
        say!("{}: {passed} passed, {failed} failed", which.name());
    }
    match nfcc_driver::runtime::traffic::selected() {
        Some(g) if testbed => eprintln!("note: {g}"),
        _ => {}
    }
    let mut code = sum.exit_code();
    if let Some(path) = &a.junit {
        if let Err(e) = nfcc_driver::error::write(path, sum.junit()) {
            code = code.max(crate::fail(&e));
        }
    }
    code
}

/// `nfcc compile`.
pub fn compile(a: &CompileArgs) -> Result<u8, DriverError> {
    if a.split {
        if a.target.map(|t| t.name()) != Some("nfp") {
            return Err(DriverError::Input(
                "`--split` splits between a NIC and the host: add `--target nfp`".into(),
            ));
        }
        for s in nfcc_driver::compile::split(&a.file, a.output.as_deref(), a.policy.as_deref())? {
            say!(
                "{} stage: {} ({} instructions)",
                s.stage,
                s.path.display(),
                s.insns
            );
        }
        return Ok(OK);
    }
    let out =
        nfcc_driver::compile::compile(&a.file, a.target.map(|t| t.target()), a.emit, a.classifier)?;
    eprint!("{}", out.warnings);
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| a.file.with_extension(a.emit.extension()));
    // `-o -` writes to standard output (text or object bytes), for pipes.
    let to_stdout = path.as_os_str() == "-";
    if to_stdout {
        use std::io::Write as _;
        let mut so = std::io::stdout().lock();
        match so.write_all(&out.bytes).and_then(|()| so.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(DriverError::Write { path, source: e })
            }
            _ => {}
        }
    } else {
        nfcc_driver::error::write(&path, &out.bytes)?;
    }
    if a.stats {
        for p in &out.compiled.programs {
            let line = nfcc_driver::compile::stats(&out.compiled.object, p)?;
            // With the object on standard output, statistics go to standard error.
            if to_stdout {
                eprintln!("{line}");
            } else {
                say!("{line}");
            }
        }
    }
    let n = nfcc_driver::compile::initial_entries(&out.compiled);
    if a.emit == nfcc_driver::compile::Emit::Elf && n > 0 {
        eprintln!("note: the object carries its {n} initial map entries in its .nfcc.policy section, which `nfcc load|run` apply; bpftool, ip and libbpf skip it and leave the maps empty (`nfcc compile --emit map-init` writes the entries as a bpftool batch)");
    }
    if !to_stdout {
        say!("wrote {}", path.display());
    }
    Ok(OK)
}

/// `nfcc import iptables|nft`: the report on stderr, the policy to the file or stdout (not
/// both with --verify), the verification's disagreements and summary; exit 1 when rules were
/// refused (no output then, unless --skip-unsupported), 3 on a disagreement.
pub fn imported(
    o: nfcc_driver::import::ImportOutcome,
    output: Option<&std::path::Path>,
) -> Result<u8, DriverError> {
    if let Some(r) = &o.report {
        eprint!("{}", r.render());
    }
    let nf = o.nf?;
    match output {
        Some(p) => std::fs::write(p, &nf).map_err(|source| DriverError::Write {
            path: p.to_path_buf(),
            source,
        })?,
        None if o.verified.is_none() => say!("{}", nf.trim_end()),
        None => {}
    }
    let Some(v) = o.verified else {
        return Ok(OK);
    };
    let v = v?;
    for d in &v.disagreements {
        say!(
            "DISAGREE {}: netfilter {}, policy {}, program {}",
            d.packet,
            d.netfilter,
            d.policy,
            d.program
        );
    }
    say!(
        "verify: {} packets ({} accepted by netfilter), {} disagreements",
        v.packets,
        v.accepted,
        v.disagreements.len()
    );
    Ok(if v.disagreements.is_empty() {
        OK
    } else {
        FAILED
    })
}

/// `nfcc import classbench`.
pub fn import_classbench(a: &nfcc_driver::import::ClassbenchRequest) -> Result<u8, DriverError> {
    let text = nfcc_driver::import::classbench(a)?;
    match &a.output {
        Some(out) => nfcc_driver::error::write(out, text)?,
        None => say_raw!("{text}"),
    }
    Ok(OK)
}

/// `nfcc offload-check`: which rules of a policy can run on a NIC, why not for the rest, the
/// split that would be deployed and its size against the NIC's limits, and the emulator's
/// proof that the split means what the policy means.
pub fn offload_check(a: &OffloadCheckArgs) -> Result<u8, DriverError> {
    let profile = nfcc_driver::offload::profile(a.target.name(), a.profile.as_deref())?;
    let c = nfcc_driver::source::Chosen::read(&a.file, a.policy.as_deref())?;
    let report = nfcc_driver::offload::gate(&c, &profile, a.packets)?;
    let (label, source, policy) = (c.label.as_str(), c.source.as_str(), &c.policy);
    let split = &report.split;
    let at = |span: Span| {
        let (l, col) = nfcc_driver::dsl::diag::line_col(source, span.start as usize);
        format!("{label}:{l}:{col}")
    };
    let pl = &split.placement;
    say!(
        "{} on {}, target {}",
        policy.name,
        policy.hook.as_str(),
        profile.name
    );
    if let Some(w) = &pl.whole {
        say!("  the whole policy stays on the host: {w}");
    }
    say!("{:<20} {:<8} why", "rule", "runs on");
    for r in pl.rules.iter().chain(std::iter::once(&pl.default)) {
        let place = match r.place {
            Place::Nic => "NIC",
            Place::Host => "host",
        };
        let mut why: Vec<String> = r
            .needs_host
            .iter()
            .map(|(s, w)| format!("{w} ({})", at(*s)))
            .collect();
        if let Some(w) = &r.after_split {
            if pl.whole.is_none() {
                why.push(w.clone());
            }
        }
        say!("{:<20} {:<8} {}", r.name, place, why.join("; "));
    }
    match (&split.nic, &split.host) {
        (Some(_), None) => say!("split: none needed; the whole policy runs on the NIC"),
        (None, _) => say!("split: none; the whole policy runs on the host"),
        (Some(_), Some(_)) => say!(
            "split: the NIC stage runs rule{} {} and passes every other packet (and those its pass rules match) to the host stage, which runs the whole policy ({} rules) from the top",
            if pl.nic_prefix == 1 { "" } else { "s" },
            pl.rules[..pl.nic_prefix]
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            pl.rules.len()
        ),
    }
    let mut code = OK;
    if let Some(sz) = &split.size {
        say!(
            "NIC stage: {} eBPF instructions (about {} NIC instructions of {}), {} of {} stack bytes, {} of {} maps, {} of {} map entries",
            sz.ebpf_insns,
            sz.nic_insns.0,
            sz.nic_insns.1,
            sz.stack.0,
            sz.stack.1,
            sz.maps.0,
            sz.maps.1,
            sz.entries.0,
            sz.entries.1
        );
        for o in &sz.over {
            say!("  does not fit: {o}");
            code = FAILED;
        }
        if !sz.over.is_empty() {
            say!("  (limits are the profile's conservative defaults; `--profile CARD.toml` gives a card's own)");
        }
        for v in &report.refused {
            say!("  the NIC would refuse: {v}");
            code = FAILED;
        }
    }
    if let Some(eq) = &report.equivalence {
        if eq.problems.is_empty() {
            let what = if split.host.is_some() {
                "the NIC stage (NIC semantics) then the host stage agree"
            } else {
                "the NIC program (NIC semantics) agrees"
            };
            say!(
                "equivalence: {what} with the unsplit host program on {} test packet(s) and {} generated packet(s), {} of them decided on the NIC (emulator)",
                eq.test_packets,
                eq.generated,
                eq.nic_decided
            );
        } else {
            say!("equivalence: FAILED — the split changes what the policy does:");
            for p in &eq.problems {
                say!("  {p}");
            }
            code = FAILED;
        }
    }
    Ok(code)
}
