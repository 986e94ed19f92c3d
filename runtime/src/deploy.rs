//! Keeping a loaded program on an interface after nfcc exits: attach it (see `attach`), pin
//! the link, the program's maps under `/sys/fs/bpf/nfcc/<policy>/`, and write the
//! deployment's manifest (see `state`), so `nfcc status`, `stats`, `set` and `unload` work
//! from a fresh shell, from the manifest alone. Unloading removes the pins, which detaches the
//! program (the pinned link was the last thing holding it), and the manifest.

use crate::attach::{attach_link, pause_before_attach, pin_err, pin_maps};
use crate::state::{self, ensure_bpffs, refuse_busy};
use crate::{Loaded, RuntimeError};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::SchedClassifierLink;
use aya::programs::xdp::XdpLink;
use aya::programs::Program;
use nfcc_bpf::layout::{Counts, Sample};
use nfcc_bpf::manifest::{MapEntry, MapRole, Stage};
use nfcc_bpf::pin::PinLayout;
use nfcc_bpf::MapKind;

pub use crate::attach::{attach, Attached};
pub use crate::state::{find, prune, prune_gone, status, unreadable, Deployment};
pub use nfcc_bpf::manifest::{AttachMode, Manifest};
pub use nfcc_bpf::pin::PIN_ROOT;

/// The stage `template` describes (or an empty one), completed with what `loaded` is: its
/// program id, and every map with its pin (maps the template does not describe are added
/// with their kernel shape and role `other`).
pub(crate) fn complete_stage(
    loaded: &Loaded,
    template: Option<Stage>,
    pins: &[(String, std::path::PathBuf)],
) -> Result<Stage, RuntimeError> {
    let mut stage = template.unwrap_or_else(|| Stage {
        program_id: 0,
        program: loaded.program.clone(),
        maps: Vec::new(),
        sets: Vec::new(),
        pools: Vec::new(),
        counted_slots: None,
        code: None,
        room: None,
    });
    stage.program_id = loaded.program_id()?;
    stage.program = loaded.program.clone();
    for shape in loaded.map_shapes()? {
        let pin = pins
            .iter()
            .find(|(n, _)| *n == shape.name)
            .map(|(_, p)| p.clone());
        match stage.maps.iter_mut().find(|m| m.name == shape.name) {
            Some(m) => m.pin = pin,
            None => stage.maps.push(MapEntry {
                name: shape.name.clone(),
                pin,
                kind: MapKind::from_type(shape.type_id).unwrap_or(MapKind::Hash),
                key_size: shape.key_size,
                value_size: shape.value_size,
                max_entries: shape.max_entries,
                role: MapRole::Other,
                owner: None,
            }),
        }
    }
    Ok(stage)
}

/// Attaches `loaded` to `manifest.iface` in `manifest.mode`, pins everything and writes the
/// manifest (completed with program ids, pins, interface index and time). Refuses an
/// interface that already has a live nfcc policy, and a policy already deployed elsewhere; on
/// any failure nothing stays attached or pinned.
pub fn deploy(mut loaded: Loaded, mut manifest: Manifest) -> Result<Manifest, RuntimeError> {
    ensure_bpffs()?;
    refuse_busy(manifest.key(), &manifest.iface)?;
    pause_before_attach();
    let layout = PinLayout::new(manifest.key());
    let dir = layout.dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| RuntimeError::Deploy(format!("cannot create {}: {e}", dir.display())))?;
    let result = (|| {
        let (link, _) = attach_link(&mut loaded, &manifest.iface, manifest.mode)?;
        manifest.ifindex = crate::ifindex(&manifest.iface)?;
        link.pin(layout.link())
            .map_err(|e| pin_err("the link", e))?;
        let pins = pin_maps(&mut loaded, &dir)?;
        manifest.host = Some(complete_stage(&loaded, manifest.host.take(), &pins)?);
        manifest.deployed_at = state::now();
        manifest.base.clear();
        state::write(&manifest)?;
        Ok(manifest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(layout.manifest());
    }
    result
}

/// Detaches and unpins the policy on `iface`, live or gone, and removes its manifest.
pub fn undeploy(iface: &str) -> Result<Deployment, RuntimeError> {
    let Some(d) = status().into_iter().find(|d| d.iface() == iface) else {
        return Err(RuntimeError::Deploy(format!(
            "no nfcc policy is loaded on {iface} (`nfcc status` lists what is)"
        )));
    };
    remove_deployment(d)
}

/// Detaches and unpins the deployment named `key` (see [`Manifest::key`]), live or gone, and
/// removes its manifest.
pub fn undeploy_key(key: &str) -> Result<Deployment, RuntimeError> {
    let Some(d) = status().into_iter().find(|d| d.manifest.key() == key) else {
        return Err(RuntimeError::Deploy(format!(
            "no deployment `{key}` exists (`nfcc status` lists what does)"
        )));
    };
    remove_deployment(d)
}

fn remove_deployment(d: Deployment) -> Result<Deployment, RuntimeError> {
    if d.mode() == AttachMode::Offload && d.gone.is_none() {
        // The NIC program was attached through netlink, not a link: detach it there.
        crate::attach::detach_hw(crate::ifindex(d.iface())?)?;
    }
    let dir = d.layout().dir();
    // Removing the link's pin drops the last reference to the link: the program detaches.
    std::fs::remove_dir_all(&dir)
        .map_err(|e| RuntimeError::Deploy(format!("cannot remove {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(d.layout().manifest());
    Ok(d)
}

/// The pinned maps of one stage of a deployment, opened from the pin paths its manifest
/// records.
pub fn stage_maps(stage: &Stage) -> Result<crate::PinnedMaps, RuntimeError> {
    crate::PinnedMaps::open_pins(
        stage
            .maps
            .iter()
            .filter_map(|m| m.pin.as_deref().map(|p| (m.name.as_str(), p))),
    )
}

/// A deployed policy's sample ring buffer.
pub struct Samples {
    ring: aya::maps::RingBuf<aya::maps::MapData>,
}

impl Samples {
    /// Opens the pinned ring buffer of a deployment.
    pub fn open(d: &Deployment) -> Result<Samples, RuntimeError> {
        let ring = d
            .manifest
            .host
            .as_ref()
            .and_then(|s| s.map_with_role(MapRole::Samples))
            .and_then(|m| m.pin.clone())
            .ok_or_else(|| {
                RuntimeError::Deploy(format!(
                    "policy `{}` samples nothing: add `sample N` to a rule's actions",
                    d.policy()
                ))
            })?;
        let data = aya::maps::MapData::from_pin(&ring)
            .map_err(|e| RuntimeError::Deploy(format!("cannot open {}: {e}", ring.display())))?;
        let ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data))
            .map_err(|e| RuntimeError::Deploy(format!("cannot read the sample ring: {e}")))?;
        Ok(Samples { ring })
    }

    /// The next record, if one is waiting.
    pub fn take(&mut self) -> Option<Sample> {
        let item = self.ring.next()?;
        Sample::parse(&item)
    }
}

/// Per-slot counts of a stage's statistics map (slots `0..slots`), summed over CPUs.
pub fn stage_counts(
    maps: &crate::PinnedMaps,
    stage: &Stage,
    slots: usize,
) -> Result<Vec<Counts>, RuntimeError> {
    let Some(stats) = stage.map_with_role(MapRole::RuleStats) else {
        return Ok(vec![Counts::default(); slots]);
    };
    if stage.counted_slots.is_none() {
        // Every slot: in batches.
        return Ok(maps
            .percpu_array_sums(&stats.name, slots as u32)?
            .into_iter()
            .map(|v| Counts {
                packets: v.first().copied().unwrap_or(0),
                bytes: v.get(1).copied().unwrap_or(0),
            })
            .collect());
    }
    (0..slots as u32)
        .map(|slot| {
            if !stage.counts(slot) {
                return Ok(Counts::default());
            }
            let v = maps.percpu_array_sum(&stats.name, slot)?;
            Ok(Counts {
                packets: v.first().copied().unwrap_or(0),
                bytes: v.get(1).copied().unwrap_or(0),
            })
        })
        .collect()
}

/// Runs `frame` once through the program a deployment's link runs now
/// (`BPF_PROG_TEST_RUN`), with the maps it uses now: its return code. What a policy updated
/// in place does is asked of the running program itself.
pub fn test_run_running(d: &Deployment, frame: &[u8]) -> Result<u32, RuntimeError> {
    let layout = d.layout();
    let err = |what: &str, e: std::io::Error| {
        RuntimeError::Deploy(format!("cannot {what} of `{}`: {e}", d.policy()))
    };
    let id =
        crate::sys::pinned_link_prog_id(&layout.link()).map_err(|e| err("read the link", e))?;
    let fd = crate::sys::prog_fd_by_id(id).map_err(|e| err("open the running program", e))?;
    let mut out = vec![0u8; frame.len() + 256];
    use std::os::fd::AsFd;
    let run = crate::sys::prog_test_run(fd.as_fd(), frame, &mut out, 1, &[])
        .map_err(|(e, _)| err("test-run the running program", e))?;
    Ok(run.retval)
}

/// A new version of a deployment keeps its name (a `POLICY@IFACE` deployment replaced by
/// hand stays where its pins are) unless its deployer names it.
fn inherit_key(old: &Deployment, manifest: &mut Manifest) {
    if manifest.deployment.is_none() {
        manifest.deployment = old.manifest.deployment.clone();
    }
}

/// Records a version updated in place — the running program, its maps' contents changed by
/// the caller through [`stage_maps`] — as the deployment: the new manifest (rules, source,
/// stage, the counters' base its caller worked out) keeps the running program's id, the pins,
/// the interface index and the mode, since the program and its statistics map stay.
pub fn record_in_place(old: &Deployment, mut manifest: Manifest) -> Result<Manifest, RuntimeError> {
    let (Some(old_host), Some(mut stage)) = (old.manifest.host.as_ref(), manifest.host.take())
    else {
        return Err(RuntimeError::Deploy(
            "an update in place needs the host program of both versions".into(),
        ));
    };
    stage.program_id = old_host.program_id;
    for m in &mut stage.maps {
        m.pin = old_host.map(&m.name).and_then(|o| o.pin.clone());
    }
    for o in &old_host.maps {
        if stage.map(&o.name).is_none() {
            stage.maps.push(o.clone());
        }
    }
    manifest.host = Some(stage);
    inherit_key(old, &mut manifest);
    manifest.ifindex = old.manifest.ifindex;
    manifest.mode = old.manifest.mode;
    manifest.deployed_at = state::now();
    state::write(&manifest)?;
    Ok(manifest)
}

/// Swaps the program of the deployment on `manifest.iface` for `loaded` (the same policy, a
/// new version) in one step — `bpf_link_update` on the pinned link, so no packet meets no
/// program — after copying the entries of the old program's dynamic sets and counters into
/// the new one's maps of the same name and shape (roles from both manifests). The old
/// version's per-rule counts are added to the manifest's base, so `nfcc stats` keeps
/// counting across versions.
///
/// Crash safety: the new maps are pinned under `next/` before the swap and renamed over the
/// old pins after it, so a process killed before the swap leaves the old program with its own
/// maps (`next/` is removed by the next replace or unload), and one killed after it leaves
/// the new program running, which `status` reports (see [`Deployment::interrupted`]).
pub fn replace(mut loaded: Loaded, mut manifest: Manifest) -> Result<Manifest, RuntimeError> {
    let iface = manifest.iface.clone();
    let policy = manifest.policy.clone();
    let Some(old) = status()
        .into_iter()
        .find(|d| d.iface() == iface && d.gone.is_none())
    else {
        return Err(RuntimeError::Deploy(format!(
            "nothing to replace on {iface}: no nfcc policy is loaded there; load without --replace"
        )));
    };
    if old.policy() != policy {
        return Err(RuntimeError::Deploy(format!(
            "{iface} runs policy `{}`; --replace swaps in a new version of the same policy (unload and load to change policies)",
            old.policy()
        )));
    }
    inherit_key(&old, &mut manifest);
    if old.manifest.key() != manifest.key() {
        return Err(RuntimeError::Deploy(format!(
            "{iface} runs deployment `{}`, not `{}`; unload it first with `nfcc unload --iface {iface}`",
            old.manifest.key(),
            manifest.key()
        )));
    }
    if old.mode() == AttachMode::Offload {
        return Err(RuntimeError::Deploy(format!(
            "`--replace` of a policy offloaded to the NIC is not built yet; `nfcc unload --iface {iface}` and load it again"
        )));
    }
    let Some(old_host) = old.manifest.host.clone() else {
        return Err(RuntimeError::Deploy(
            "the deployment has no host program".into(),
        ));
    };
    let layout = PinLayout::new(manifest.key());
    let pinned = stage_maps(&old_host)?;
    let new_stage = complete_stage(&loaded, manifest.host.take(), &[])?;
    // A dynamic pool's live backends (`nfcc pool`) are carried like a set's members, which
    // needs the same slots: a pool whose capacity or family changed cannot be.
    for p in &new_stage.pools {
        if let Some(o) = old_host.pools.iter().find(|o| o.name == p.name) {
            if (o.capacity, o.v6) != (p.capacity, p.v6) {
                return Err(RuntimeError::Deploy(format!(
                    "dynamic pool `{}` changed its capacity or family ({} to {} slots), so its live backends cannot be carried over; `nfcc unload --iface {iface}` and load to start from its declaration",
                    p.name, o.capacity, p.capacity
                )));
            }
        }
    }
    // Carry dynamic sets (and their length tables), counters and dynamic pools over, map by
    // map, where the old version had a map of the same name, role and shape.
    let carried = |m: &&MapEntry| {
        m.role.carried()
            || new_stage
                .pool_of_map(&m.name)
                .is_some_and(|p| old_host.pools.iter().any(|o| o.name == p.name))
    };
    for m in new_stage.maps.iter().filter(carried) {
        let same = old_host.map(&m.name).is_some_and(|o| {
            o.role == m.role
                && o.kind == m.kind
                && o.key_size == m.key_size
                && o.value_size == m.value_size
        });
        if !same {
            continue;
        }
        let Ok(keys) = pinned.map_keys(&m.name) else {
            continue;
        };
        for k in keys {
            if let Ok(Some(v)) = pinned.map_lookup(&m.name, &k) {
                let _ = loaded.map_update(&m.name, &k, &v);
            }
        }
    }
    let next = layout.next_dir();
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir(&next)
        .map_err(|e| RuntimeError::Deploy(format!("cannot create {}: {e}", next.display())))?;
    let next_pins = pin_maps(&mut loaded, &next)?;
    pause_before_attach();
    let fd_link: FdLink = PinnedLink::from_pin(layout.link())
        .map_err(|e| RuntimeError::Deploy(format!("cannot open the pinned link: {e}")))?
        .into();
    let name = loaded.program.clone();
    let prog = loaded
        .ebpf
        .program_mut(&name)
        .ok_or_else(|| RuntimeError::Deploy(format!("program `{name}` vanished")))?;
    let swap_err = |e: &dyn std::fmt::Display| {
        RuntimeError::Deploy(format!("cannot swap the program on {iface}: {e}"))
    };
    match prog {
        Program::Xdp(xdp) => {
            let link = XdpLink::try_from(fd_link).map_err(|e| swap_err(&e))?;
            let id = xdp.attach_to_link(link).map_err(|e| swap_err(&e))?;
            // The link stays pinned; the program object must not detach it when dropped.
            let _ = xdp.take_link(id);
        }
        Program::SchedClassifier(cls) => {
            let link = SchedClassifierLink::try_from(fd_link).map_err(|e| swap_err(&e))?;
            let id = cls.attach_to_link(link).map_err(|e| swap_err(&e))?;
            let _ = cls.take_link(id);
        }
        _ => {
            return Err(RuntimeError::Deploy(
                "only XDP and TC programs can be swapped".into(),
            ))
        }
    }
    // The new maps replace the old pins, each in one rename; pins of maps the new version
    // no longer has go.
    let mut pins = Vec::new();
    for (mname, at) in &next_pins {
        let final_path = layout.map(mname);
        std::fs::rename(at, &final_path).map_err(|e| pin_err(mname, e))?;
        pins.push((mname.clone(), final_path));
    }
    let _ = std::fs::remove_dir(&next);
    for gone in old_host
        .maps
        .iter()
        .filter(|m| !pins.iter().any(|(n, _)| *n == m.name))
    {
        if let Some(p) = &gone.pin {
            let _ = std::fs::remove_file(p);
        }
    }
    let mut stage = new_stage;
    for m in &mut stage.maps {
        m.pin = pins
            .iter()
            .find(|(n, _)| *n == m.name)
            .map(|(_, p)| p.clone());
    }
    // In-flight runs of the old program finish within microseconds of the swap.
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Each rule keeps its count by name, whatever slot the new version gives it.
    let slots = old.manifest.rules.len().max(old.manifest.base.len());
    let live = stage_counts(&pinned, &old_host, slots).unwrap_or_default();
    let base = if manifest.rules.is_empty() || old.manifest.rules.is_empty() {
        // An object nfcc did not compile names no rules: slot by slot.
        let mut base = old.manifest.base.clone();
        base.resize(slots, Counts::default());
        for (b, c) in base.iter_mut().zip(live) {
            *b = b.plus(c);
        }
        base
    } else {
        nfcc_bpf::manifest::carried_base(
            &old.manifest.rules,
            &old.manifest.base,
            &live,
            &manifest.rules,
            &[],
        )
    };
    drop(pinned);
    manifest.host = Some(stage);
    manifest.base = base;
    manifest.ifindex = old.manifest.ifindex;
    manifest.deployed_at = state::now();
    state::write(&manifest)?;
    Ok(manifest)
}
