//! `nfcc load`, `nfcc unload`, `nfcc status`: a policy (or any XDP/TC object) on an interface,
//! kept there after nfcc exits (see `nfcc_runtime::deploy`).

use crate::commands::{ENV, INPUT, OK};
use crate::ModeArg;
use nfcc_dsl::checked::Hook;
use nfcc_runtime::deploy::{self, Mode};
use nfcc_runtime::ProgKind;
use std::path::Path;

/// `nfcc load`.
pub fn load(file: &Path, iface: &str, mode: Option<ModeArg>, wanted: Option<&str>) -> u8 {
    if mode == Some(ModeArg::Offload) {
        eprintln!("error: `--mode offload` is not implemented yet (issue 7); use `--mode native`");
        return ENV;
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
    // (object bytes, program name, its hook, map entries to fill)
    type Entries = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;
    let (object, name, hook, entries): (Vec<u8>, String, Hook, Entries) = if bytes
        .starts_with(b"\x7fELF")
    {
        let emu = match nfcc_emulator::Emulator::load(&bytes) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return INPUT;
            }
        };
        let names = emu.programs();
        let name = match (wanted, names.as_slice()) {
            (Some(w), _) if names.iter().any(|n| n == w) => w.to_string(),
            (None, [one]) => one.clone(),
            _ => {
                eprintln!(
                    "error: choose one of the object's programs with --policy: {}",
                    names.join(", ")
                );
                return INPUT;
            }
        };
        let hook = if emu.hook(&name) == Some(nfcc_emulator::Hook::Xdp) {
            Hook::Xdp
        } else {
            Hook::TcIngress
        };
        (bytes, name, hook, Vec::new())
    } else {
        let Ok(source) = String::from_utf8(bytes) else {
            eprintln!(
                "error: {}: neither a .nf policy nor an ELF object",
                file.display()
            );
            return INPUT;
        };
        let label = file.display().to_string();
        let (program, diags) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
        let Some(program) = program else {
            eprint!("{}", nfcc_dsl::diag::render(&label, &source, &diags));
            return INPUT;
        };
        let names: Vec<String> = program.policies.iter().map(|p| p.name.clone()).collect();
        let chosen = match (wanted, names.as_slice()) {
            (Some(w), _) if names.iter().any(|n| n == w) => w.to_string(),
            (None, [one]) => one.clone(),
            _ => {
                eprintln!(
                    "error: choose one of the file's policies with --policy: {}",
                    names.join(", ")
                );
                return INPUT;
            }
        };
        let Some(policy) = program.policies.iter().find(|p| p.name == chosen) else {
            return INPUT;
        };
        let single = nfcc_dsl::checked::Program {
            policies: vec![policy.clone()],
        };
        let compiled = match nfcc_compiler::compile::compile(&single, &label, &source, None) {
            Ok(c) => c,
            Err(d) => {
                eprint!("{}", nfcc_dsl::diag::render(&label, &source, &d));
                return INPUT;
            }
        };
        let entries = compiled.programs[0]
            .maps
            .iter()
            .map(|(m, e)| (m.name.clone(), e.clone()))
            .collect();
        (compiled.object, chosen, policy.hook, entries)
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
    match deploy::deploy(loaded, &name, iface, mode) {
        Ok(d) => {
            say!(
                "loaded {} on {} ({}), program id {}, pinned under {}/{}",
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
    }
    OK
}
