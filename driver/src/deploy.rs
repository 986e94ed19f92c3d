//! `nfcc load`, `unload`, `status`: preparing what to load (a `.nf` policy compiled alone, or
//! any XDP/TC object), deploying it (host modes, or split onto a NIC after the offload gate),
//! swapping a new version in with `--replace`, and the manifest that describes what was
//! deployed. Everything that later reads a deployment reads that manifest.

use crate::error::DriverError;
use crate::inplace::{InPlace, Reload};
use crate::offload::{gate, OffloadReport};
use crate::source::{choose, read_input, Chosen, Input};
use nfcc_bpf::manifest::{AttachMode, Manifest};
use nfcc_compiler::compile::prog_type;
use nfcc_compiler::room::Layout;
use nfcc_dsl::checked::Hook;
use nfcc_runtime::deploy::{self, Deployment};
use std::path::{Path, PathBuf};

/// What `nfcc load` is asked to do.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct LoadRequest {
    /// The .nf file or object.
    pub file: PathBuf,
    /// The interface.
    #[cfg_attr(feature = "clap", arg(long))]
    pub iface: String,
    /// How to attach (default: native for xdp, the policy's hook for tc).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub mode: Option<Mode>,
    /// The policy (or program) to load when the file holds several.
    #[cfg_attr(feature = "clap", arg(long))]
    pub policy: Option<String>,
    /// Swap a new version of the policy already on the interface in one step, carrying its
    /// dynamic sets and counters over. When the new version compiles to the running program
    /// and only a tuple classifier's data changed, its maps are updated in place instead
    /// (bucket by bucket) without a reload.
    #[cfg_attr(feature = "clap", arg(long))]
    pub replace: bool,
    /// With `--replace`: always load the new program and swap it in, in one atomic step,
    /// even when its maps could be updated in place.
    #[cfg_attr(feature = "clap", arg(long, requires = "replace"))]
    pub reload: bool,
    /// Which classifier runs of rules may get (as `nfcc compile --classifier`); `tuples`
    /// makes most one-rule changes updates in place.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "auto"))]
    pub classifier: crate::compile::Classifier,
    /// Set by a deployer that keeps deployments in a desired state (the agent): the name,
    /// owner and revision its manifest records. `None` for a load by hand.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub owner: Option<Owner>,
}

/// What a managing deployer records in the manifest (see [`Manifest::deployment`],
/// [`Manifest::managed_by`], [`Manifest::revision`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The deployment's key (`POLICY@IFACE`).
    pub deployment: String,
    /// Who manages it.
    pub managed_by: String,
    /// What the deployer deployed, as it identifies it.
    pub revision: String,
}

/// Attach modes, as the CLI spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Mode {
    /// XDP in the driver.
    Native,
    /// XDP in the generic path.
    Generic,
    /// TC ingress.
    TcIngress,
    /// TC egress.
    TcEgress,
    /// XDP offloaded to a SmartNIC.
    Offload,
}

impl From<Mode> for AttachMode {
    fn from(m: Mode) -> AttachMode {
        match m {
            Mode::Native => AttachMode::Native,
            Mode::Generic => AttachMode::Generic,
            Mode::TcIngress => AttachMode::TcIngress,
            Mode::TcEgress => AttachMode::TcEgress,
            Mode::Offload => AttachMode::Offload,
        }
    }
}

/// An object ready to load: its bytes, the program, and the manifest describing it.
pub struct Prepared {
    /// The ELF object.
    pub object: Vec<u8>,
    /// The program's name in it.
    pub program: String,
    /// The policy's hook (`None` for an object nfcc did not compile).
    pub hook: Option<Hook>,
    /// Map entries to fill after loading: (map, key, value).
    pub entries: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Interfaces the redirect-targets map must name, in slot order.
    pub redirects: Vec<String>,
    /// The manifest, but for what only loading tells (ids, pins, interface index, time).
    pub manifest: Manifest,
    /// Why the program could not be laid out within the running version's room, where it
    /// could not (see `nfcc_compiler::room`): it will not be updated in place then.
    pub misfits: Vec<String>,
}

impl Prepared {
    /// The mode used when none is asked for: native for XDP, the policy's hook for TC.
    pub fn default_mode(&self) -> AttachMode {
        match (self.hook, self.manifest.prog_type) {
            (Some(Hook::TcEgress), _) => AttachMode::TcEgress,
            (Some(Hook::TcIngress), _) | (None, nfcc_bpf::ProgType::Tc) => AttachMode::TcIngress,
            _ => AttachMode::Native,
        }
    }
}

/// The hook the language writes as `name`.
fn hook_named(name: &str) -> Option<Hook> {
    [Hook::Xdp, Hook::TcIngress, Hook::TcEgress]
        .into_iter()
        .find(|h| h.as_str() == name)
}

fn template(policy: &str, source: &str, mode: AttachMode, iface: &str) -> Manifest {
    let mut m = Manifest::new(policy, source, mode, iface);
    m.nfcc_version = env!("CARGO_PKG_VERSION").to_string();
    m
}

/// Prepares `file` (choosing `wanted`) for `iface` as `nfcc load` does: a source's maps with
/// room for updates in place.
pub fn prepare(file: &Path, wanted: Option<&str>, iface: &str) -> Result<Prepared, DriverError> {
    prepare_with(
        file,
        wanted,
        iface,
        crate::compile::Classifier::Auto,
        &Layout::Updatable(None),
    )
}

/// [`prepare`], a source's maps packed as `nfcc compile` packs them (what loading the object
/// `nfcc compile` writes deploys).
pub fn prepare_packed(
    file: &Path,
    wanted: Option<&str>,
    iface: &str,
) -> Result<Prepared, DriverError> {
    prepare_with(
        file,
        wanted,
        iface,
        crate::compile::Classifier::Auto,
        &Layout::Packed,
    )
}

/// [`prepare`] with the classifier choice for a policy's rules and the layout of its data
/// (for `nfcc load`: room for updates in place, within the running version's).
fn prepare_with(
    file: &Path,
    wanted: Option<&str>,
    iface: &str,
    classifier: crate::compile::Classifier,
    layout: &Layout,
) -> Result<Prepared, DriverError> {
    let label = file.display().to_string();
    match read_input(file)? {
        Input::Object(bytes) => {
            let emu = nfcc_emulator::Emulator::load(&bytes)
                .map_err(|e| DriverError::Input(format!("{label}: {e}")))?;
            let program = choose(&emu.programs(), wanted, "program")?;
            let pt = emu.hook(&program).unwrap_or(nfcc_bpf::ProgType::Xdp);
            let mode = if pt == nfcc_bpf::ProgType::Xdp {
                AttachMode::Native
            } else {
                AttachMode::TcIngress
            };
            // An object nfcc compiled is the whole policy: its section says what the maps
            // start with and how the deployment is described, as for the source.
            if let Some(state) = crate::run::object_state(&label, &bytes, &program)? {
                let hook = hook_named(&state.hook);
                let mut manifest = template(&program, &label, mode, iface);
                manifest.hook = Some(state.hook.clone());
                manifest.prog_type = pt;
                manifest.rules = state.rules.clone();
                manifest.host = Some(state.stage.clone());
                return Ok(Prepared {
                    entries: state.entries.clone(),
                    redirects: state.redirects.clone(),
                    program,
                    hook,
                    object: bytes,
                    manifest,
                    misfits: Vec::new(),
                });
            }
            Ok(Prepared {
                object: bytes,
                hook: None,
                entries: Vec::new(),
                redirects: Vec::new(),
                manifest: template(&program, &label, mode, iface),
                program,
                misfits: Vec::new(),
            })
        }
        Input::Source(source) => {
            let chosen = Chosen::from_source(label.clone(), source, wanted)?;
            let compiled = chosen.compile_laid_out(classifier.choice(), layout)?;
            let p = &compiled.programs[0];
            let policy = &chosen.policy;
            let mut manifest = template(&policy.name, &label, AttachMode::Native, iface);
            manifest.hook = Some(policy.hook.as_str().to_string());
            manifest.prog_type = prog_type(policy.hook);
            manifest.rules = nfcc_compiler::describe::rules_of(policy, p);
            manifest.host = Some(nfcc_compiler::describe::stage(policy, p));
            Ok(Prepared {
                entries: p.entries(),
                redirects: p.ir.redirects.clone(),
                program: policy.name.clone(),
                hook: Some(policy.hook),
                object: compiled.object,
                manifest,
                misfits: p
                    .ir
                    .updatable
                    .as_ref()
                    .map(|u| u.misfits.clone())
                    .unwrap_or_default(),
            })
        }
    }
}

/// What a load did.
pub struct Loaded {
    /// The deployment's manifest as written.
    pub manifest: Manifest,
    /// Whether a running version was swapped out.
    pub replaced: bool,
    /// For `--replace`: what was updated in place (`Ok`), or why the program was reloaded.
    pub in_place: Option<Result<crate::inplace::InPlace, Reload>>,
    /// Gone deployments removed first (their interfaces went away).
    pub pruned: Vec<Deployment>,
    /// For an offloaded policy, what the gate found.
    pub offload: Option<OffloadReport>,
}

fn can_load() -> Result<(), DriverError> {
    nfcc_runtime::can_load_bpf()
        .map_err(|why| DriverError::Environment(format!("cannot load programs here: {why}")))
}

/// `nfcc load`.
pub fn load(req: &LoadRequest) -> Result<Loaded, DriverError> {
    can_load()?;
    let pruned = deploy::prune_gone();
    if req.mode == Some(Mode::Offload) {
        if req.replace {
            return Err(DriverError::NotBuilt(format!(
                "`--replace` of a policy offloaded to the NIC is not built yet; `nfcc unload --iface {}` and load it again",
                req.iface
            )));
        }
        let mut l = load_offload(req)?;
        l.pruned = pruned;
        return Ok(l);
    }
    // The version running here, if any: a new one is laid out within its room, so that it can
    // be written into the running program's maps.
    let running = if req.replace {
        deploy::status()
            .into_iter()
            .find(|d| d.iface() == req.iface && d.gone.is_none())
    } else {
        None
    };
    let fit = running
        .as_ref()
        .filter(|_| !req.reload)
        .and_then(|d| d.manifest.host.as_ref())
        .and_then(|h| h.room.clone());
    let mut prep = prepare_with(
        &req.file,
        req.policy.as_deref(),
        &req.iface,
        req.classifier,
        &Layout::Updatable(fit),
    )?;
    if let Some(o) = &req.owner {
        prep.manifest.deployment = Some(o.deployment.clone());
        prep.manifest.managed_by = Some(o.managed_by.clone());
        prep.manifest.revision = Some(o.revision.clone());
    }
    let mode = req
        .mode
        .map_or_else(|| prep.default_mode(), AttachMode::from);
    prep.manifest.mode = mode;
    let mut in_place = None;
    if req.replace {
        match try_in_place(req, &prep, mode, running.as_ref())? {
            Some(Ok((manifest, done))) => {
                return Ok(Loaded {
                    manifest,
                    replaced: true,
                    in_place: Some(Ok(done)),
                    pruned,
                    offload: None,
                })
            }
            Some(Err(why)) => in_place = Some(Err(why)),
            None => {}
        }
    }
    let loaded = nfcc_runtime::load(&prep.object, &prep.program, prep.manifest.prog_type)?;
    // Entries map by map, each map's in batches.
    let mut i = 0;
    while i < prep.entries.len() {
        let map = &prep.entries[i].0;
        let j = i + prep.entries[i..]
            .iter()
            .take_while(|(m, _, _)| m == map)
            .count();
        let batch: Vec<(Vec<u8>, Vec<u8>)> = prep.entries[i..j]
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect();
        loaded.map_update_many(map, &batch)?;
        i = j;
    }
    loaded.fill_redirects(&prep.program, &prep.redirects)?;
    let manifest = if req.replace {
        deploy::replace(loaded, prep.manifest)?
    } else {
        deploy::deploy(loaded, prep.manifest)?
    };
    Ok(Loaded {
        manifest,
        replaced: req.replace,
        in_place,
        pruned,
        offload: None,
    })
}

/// `--replace` as an update of the running program's maps, when the new version is the
/// same program (see [`crate::inplace`]): `None` when there is nothing in place to try
/// (`--reload`, no running version of this policy here: the reload reports what is wrong),
/// `Some(Err(why))` when the program must be reloaded. `running` is the version on the
/// interface.
#[allow(clippy::type_complexity)]
fn try_in_place(
    req: &LoadRequest,
    prep: &Prepared,
    mode: AttachMode,
    running: Option<&Deployment>,
) -> Result<Option<Result<(Manifest, InPlace), Reload>>, DriverError> {
    if req.reload {
        return Ok(Some(Err(Reload::Asked)));
    }
    let Some(old) = running.filter(|d| !d.interrupted) else {
        return Ok(None);
    };
    let renamed =
        prep.manifest.deployment.is_some() && prep.manifest.deployment != old.manifest.deployment;
    if old.policy() != prep.program || old.mode() != mode || renamed {
        return Ok(None);
    }
    if !prep.redirects.is_empty() {
        return Ok(Some(Err(Reload::Redirects)));
    }
    match crate::inplace::update(&old.manifest, &prep.manifest, &prep.entries)? {
        Ok((done, base)) => {
            let mut manifest = prep.manifest.clone();
            manifest.base = base;
            let manifest = deploy::record_in_place(old, manifest)?;
            Ok(Some(Ok((manifest, done))))
        }
        Err(why) if !prep.misfits.is_empty() => Ok(Some(Err(Reload::Misfit {
            reason: Box::new(why),
            misfits: prep.misfits.clone(),
        }))),
        Err(why) => Ok(Some(Err(why))),
    }
}

/// `nfcc load --mode offload`: the device must take offloaded programs; on one that does not
/// (every veth, and every NIC but Netronome's) one clear error naming the device, the kernel's
/// answer and the command to use instead, nothing attached. The offload gate runs before
/// anything is attached: a split that does not fit, that the NIC would refuse, or that
/// changes what the policy does is not deployed (exit 3).
fn load_offload(req: &LoadRequest) -> Result<Loaded, DriverError> {
    let iface = &req.iface;
    let native = format!(
        "nfcc load {} --iface {iface} --mode native",
        req.file.display()
    );
    match nfcc_runtime::offload_probe(iface) {
        Err(nfcc_runtime::RuntimeError::Load { source, .. }) => {
            return Err(DriverError::Environment(format!(
                "{iface} cannot run offloaded BPF programs (loading a program bound to it, the kernel answered: {source}); run the policy on the host instead: `{native}`"
            )))
        }
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    let chosen = Chosen::read(&req.file, req.policy.as_deref())?;
    let name = chosen.policy.name.clone();
    let report = gate(&chosen, &nfcc_offload::Profile::nfp(), 100_000)?;
    let split = &report.split;
    let Some(nic) = &split.nic else {
        return Err(DriverError::Input(format!(
            "no rule of `{name}` can run on the NIC (`nfcc offload-check {}` says why); load it with `--mode native`",
            chosen.label
        )));
    };
    let problems = report.problems();
    if !problems.is_empty() {
        return Err(DriverError::Failed(format!(
            "the split of `{name}` failed the offload checks, nothing was attached:\n  {}",
            problems.join("\n  ")
        )));
    }
    let nic_program = &nic.compiled.programs[0];
    let nic_entries = nic_program.entries();
    let mut manifest = template(&name, &chosen.label, AttachMode::Offload, iface);
    manifest.hook = Some(chosen.policy.hook.as_str().to_string());
    manifest.rules = nfcc_compiler::describe::rules(&chosen.policy);
    let mut nic_stage = nfcc_compiler::describe::stage(&nic.policy, nic_program);
    nic_stage.counted_slots = Some(
        split
            .nic_counted
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| i as u32)
            .collect(),
    );
    manifest.nic = Some(nic_stage);
    let host = match &split.host {
        None => None,
        Some(h) => {
            let hp = &h.compiled.programs[0];
            let loaded = nfcc_runtime::load(&h.compiled.object, &name, nfcc_bpf::ProgType::Xdp)?;
            for (m, es) in &hp.maps {
                for (k, v) in es {
                    loaded.map_update(&m.name, k, v)?;
                }
            }
            loaded.fill_redirects(&name, &hp.ir.redirects)?;
            manifest.host = Some(nfcc_compiler::describe::stage(&h.policy, hp));
            Some(loaded)
        }
    };
    let manifest =
        nfcc_runtime::offload::deploy_offload(&nic.compiled.object, &nic_entries, host, manifest)?;
    Ok(Loaded {
        manifest,
        replaced: false,
        in_place: None,
        pruned: Vec::new(),
        offload: Some(report),
    })
}

/// `nfcc unload --iface IF`: detaches and unpins the policy there (live or gone) and removes
/// its manifest.
pub fn unload(iface: &str) -> Result<Deployment, DriverError> {
    Ok(deploy::undeploy(iface)?)
}

/// Detaches and unpins the deployment named `key` (the agent's `POLICY@IFACE`), live or
/// gone, and removes its manifest.
pub fn unload_key(key: &str) -> Result<Deployment, DriverError> {
    Ok(deploy::undeploy_key(key)?)
}

/// `nfcc status`: every deployment, gone ones included, and manifests that could not be read.
pub fn status() -> (Vec<Deployment>, Vec<(String, String)>) {
    (deploy::status(), deploy::unreadable())
}

/// `nfcc status --prune`: removes deployments whose interface is gone.
pub fn prune() -> Vec<Deployment> {
    deploy::prune()
}

/// The live deployment of `policy`.
pub fn find(policy: &str) -> Result<Deployment, DriverError> {
    Ok(deploy::find(policy)?)
}

/// The deployment a command names: by `key` (the policy, or POLICY@IFACE), by `iface`, or by
/// both when they agree. Every command on a deployment resolves its name here.
pub fn resolve(key: Option<&str>, iface: Option<&str>) -> Result<Deployment, DriverError> {
    match (key, iface) {
        (Some(k), None) => find(k),
        (None, Some(i)) => {
            let on: Vec<Deployment> = deploy::status()
                .into_iter()
                .filter(|d| d.iface() == i)
                .collect();
            match on.as_slice() {
                [] => Err(DriverError::Input(format!(
                    "no nfcc deployment is on {i} (`nfcc status` lists them)"
                ))),
                [d] => Ok(d.clone()),
                more => Err(DriverError::Input(format!(
                    "{} deployments are on {i}: {}; name one by its key",
                    more.len(),
                    more.iter()
                        .map(|d| format!("`{}`", d.manifest.key()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        (Some(k), Some(i)) => {
            let d = find(k)?;
            if d.iface() == i {
                Ok(d)
            } else {
                Err(DriverError::Input(format!(
                    "deployment `{}` is on {}, not {i}",
                    d.manifest.key(),
                    d.iface()
                )))
            }
        }
        (None, None) => Err(DriverError::Input(
            "name the deployment: KEY (the policy, or POLICY@IFACE) or --iface IF".into(),
        )),
    }
}

/// [`resolve`] for commands whose words go on after the key (`set`, `pool`): with `iface`
/// the words start after it; otherwise the first word is the key. The deployment, and the
/// words after its name.
pub fn resolve_words<'a>(
    words: &'a [String],
    iface: Option<&str>,
) -> Result<(Deployment, &'a [String]), DriverError> {
    match (iface, words.split_first()) {
        (Some(i), _) => Ok((resolve(None, Some(i))?, words)),
        (None, Some((key, rest))) => Ok((resolve(Some(key), None)?, rest)),
        (None, None) => resolve(None, None).map(|d| (d, words)),
    }
}

/// `nfcc unload KEY | --iface IF`: the deployment named, live or gone.
pub fn unload_named(key: Option<&str>, iface: Option<&str>) -> Result<Deployment, DriverError> {
    match (key, iface) {
        // By interface alone: also a deployment whose interface is gone.
        (None, Some(i)) => unload(i),
        _ => {
            let d = resolve(key, iface)?;
            unload_key(d.manifest.key())
        }
    }
}

/// How long ago a Unix time was, as people read it.
pub fn ago(then: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(then);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h{}m ago", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h ago", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_is_named_by_key_or_interface_and_nothing_else() {
        let e = resolve(None, None).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.exit_code() == 1 && e.to_string().contains("KEY")),
            "{e:?}"
        );
        let e = resolve(None, Some("nfcc-no-such-if0")).err();
        assert!(
            e.as_ref().is_some_and(|e| e.exit_code() == 1
                && e.to_string()
                    .contains("no nfcc deployment is on nfcc-no-such-if0")),
            "{e:?}"
        );
        let words = ["p".to_string(), "s".to_string()];
        assert!(resolve_words(&words, Some("nfcc-no-such-if0")).is_err());
    }

    #[test]
    fn a_prepared_policy_carries_its_manifest() {
        let dir = std::env::temp_dir().join(format!("nfcc-prep-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("t.nf");
        let _ = std::fs::write(
            &f,
            "policy t on tc egress {\n  set s: ipv4, dynamic = { 10.0.0.1 }\n  rule r: ip.dst in s => drop\n  default pass\n}\n",
        );
        let p = prepare(&f, None, "eth9").unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(p.default_mode(), AttachMode::TcEgress);
        // The rule, vacant slots for rules to come, the default last.
        let rules = &p.manifest.rules;
        assert_eq!((rules[0].name.as_str(), rules.len()), ("r", 64));
        assert_eq!(rules[63].name, "default");
        assert!(rules[1..63].iter().all(|r| r.is_vacant()));
        assert_eq!(p.manifest.hook.as_deref(), Some("tc egress"));
        let host = p
            .manifest
            .host
            .as_ref()
            .unwrap_or_else(|| panic!("no stage"));
        assert_eq!(host.sets[0].name, "s");
        assert!(
            !p.entries.is_empty(),
            "the set's initial entry is filled at load"
        );
        let back = Manifest::from_json(&p.manifest.to_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p.manifest);
    }
}
