//! `nfcc offload-check`: which rules of a policy can run on a NIC, why not for the rest, the
//! split that would be deployed and its size against the NIC's limits, and the emulator's
//! proof that the split means what the policy means (see `nfcc_offload`).

use crate::commands::{ENV, FAILED, INPUT, OK};
use nfcc_offload::place::Place;
use nfcc_offload::Profile;
use std::path::{Path, PathBuf};

/// The arguments of `nfcc offload-check`.
pub struct CheckArgs {
    pub file: PathBuf,
    pub target: String,
    pub profile: Option<PathBuf>,
    pub policy: Option<String>,
    pub packets: usize,
}

/// Reads the profile: the target's defaults, with a card's TOML overrides.
pub fn profile(target: &str, file: Option<&Path>) -> Result<Profile, String> {
    let p = Profile::named(target)
        .ok_or_else(|| format!("no offload profile `{target}` (profiles: nfp, host)"))?;
    match file {
        None => Ok(p),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            p.with_overrides(&text)
                .map_err(|e| format!("{}: {e}", f.display()))
        }
    }
}

/// `nfcc offload-check`.
pub fn check(a: &CheckArgs) -> u8 {
    let profile = match profile(&a.target, a.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return INPUT;
        }
    };
    let c = match crate::run::checked_policy(&a.file, a.policy.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (label, source, policy) = (c.label.as_str(), c.source.as_str(), &c.policy);
    let chosen = policy.name.clone();
    let split = match nfcc_offload::split::split(policy, label, source, &profile) {
        Ok(s) => s,
        Err(d) => {
            eprint!("{}", nfcc_dsl::diag::render(label, source, &d));
            return INPUT;
        }
    };
    let at = |span: nfcc_dsl::ast::Span| {
        let (l, c) = nfcc_dsl::diag::line_col(source, span.start as usize);
        format!("{label}:{l}:{c}")
    };
    let pl = &split.placement;
    say!(
        "{chosen} on {}, target {}",
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
    let n = pl.rules.len();
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
            n
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
        if let Some(nic) = &split.nic {
            let kinds: Vec<_> = nic.compiled.programs[0]
                .maps
                .iter()
                .map(|(m, _)| m.kind)
                .collect();
            let section = nic.compiled.programs[0].section.clone();
            for v in nfcc_offload::split::scan(&nic.compiled.object, &section, &kinds) {
                say!("  the NIC would refuse: {v}");
                code = FAILED;
            }
        }
    }
    if split.nic.is_some() {
        let unsplit = match c.compile(Some(nfcc_dsl::checked::Target::Host)) {
            Ok(x) => x,
            Err(code) => return code,
        };
        let eq = nfcc_offload::equiv::check(policy, &split, &unsplit, a.packets, 0x6e66_6363);
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
    code
}

/// `nfcc compile --target nfp --split`: the NIC stage to OUT.nic.o, the host stage to
/// OUT.host.o (only the stages the split has).
pub fn split_compile(
    file: &Path,
    output: Option<PathBuf>,
    target: Option<crate::TargetArg>,
    wanted: Option<&str>,
) -> u8 {
    if target != Some(crate::TargetArg::Nfp) {
        eprintln!("error: `--split` splits between a NIC and the host: add `--target nfp`");
        return INPUT;
    }
    let c = match crate::run::checked_policy(file, wanted) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (label, source, policy) = (c.label, c.source, &c.policy);
    let split = match nfcc_offload::split::split(policy, &label, &source, &Profile::nfp()) {
        Ok(s) => s,
        Err(d) => {
            eprint!("{}", nfcc_dsl::diag::render(&label, &source, &d));
            return INPUT;
        }
    };
    let base = output.unwrap_or_else(|| file.with_extension("o"));
    let stem = base.with_extension("");
    for (stage, what) in [(&split.nic, "nic"), (&split.host, "host")] {
        if let Some(s) = stage {
            let path = PathBuf::from(format!("{}.{what}.o", stem.display()));
            if let Err(e) = std::fs::write(&path, &s.compiled.object) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ENV;
            }
            say!(
                "{} stage: {} ({} instructions)",
                what,
                path.display(),
                s.compiled.programs[0].insns
            );
        }
    }
    OK
}
