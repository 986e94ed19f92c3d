//! Deployments on disk: each one's manifest (`/run/nfcc/<policy>.json`, see
//! `nfcc_bpf::manifest`) beside its pins (`/sys/fs/bpf/nfcc/<policy>/`), and what `status`
//! makes of them — the pinned link is the truth about which program runs, and the interface's
//! index tells whether the interface the policy was attached to still exists.
//!
//! A deployment whose interface went away (a pod's veth deleted) is *gone*: the kernel
//! detached its program, but its pins and manifest stay until pruned. Gone deployments are
//! listed as such, never block a new load on an interface of the same name, and are removed
//! by [`prune`].

use crate::RuntimeError;
use nfcc_bpf::manifest::{AttachMode, Manifest};
use nfcc_bpf::pin::{PinLayout, STATE_DIR};
use std::path::Path;

/// A deployment as `status` finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// What was deployed.
    pub manifest: Manifest,
    /// The program the link runs now (the NIC program's id for a policy wholly on the NIC).
    pub program_id: u32,
    /// The link runs another program than the manifest names: a `--replace` was interrupted
    /// after the swap (the pinned maps may be the old program's).
    pub interrupted: bool,
    /// Why the deployment no longer filters anything (its interface is gone or is another
    /// interface now), if so.
    pub gone: Option<String>,
}

impl Deployment {
    /// The policy.
    pub fn policy(&self) -> &str {
        &self.manifest.policy
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.manifest.iface
    }

    /// How it is attached.
    pub fn mode(&self) -> AttachMode {
        self.manifest.mode
    }

    /// Its pin layout.
    pub fn layout(&self) -> PinLayout {
        PinLayout::new(self.manifest.key())
    }
}

/// Mounts bpffs at `/sys/fs/bpf` when nothing is mounted there.
pub(crate) fn ensure_bpffs() -> Result<(), RuntimeError> {
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
        })
        .unwrap_or(false);
    if mounted {
        return Ok(());
    }
    let _ = std::fs::create_dir_all("/sys/fs/bpf");
    let ok = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Deploy(
            "bpffs is not mounted at /sys/fs/bpf and mounting it failed; run `mount -t bpf bpf /sys/fs/bpf` as root".into(),
        ))
    }
}

/// Writes a deployment's manifest (atomically: a reader sees the old one or the new one).
pub(crate) fn write(m: &Manifest) -> Result<(), RuntimeError> {
    let layout = PinLayout::new(m.key());
    let path = layout.manifest();
    let tmp = path.with_extension("json.tmp");
    std::fs::create_dir_all(STATE_DIR)
        .and_then(|()| std::fs::write(&tmp, m.to_json()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            RuntimeError::Deploy(format!("cannot record the deployment in {STATE_DIR}: {e}"))
        })
}

/// The manifests in the state directory (unreadable ones with their problem).
fn manifests() -> Vec<Result<Manifest, (String, String)>> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p
                .file_stem()
                .map_or(String::new(), |s| s.to_string_lossy().into_owned());
            std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| Manifest::from_json(&t).map_err(|e| e.to_string()))
                .map_err(|e| (name, e))
        })
        .collect()
}

/// Why a deployment no longer filters anything, if so.
fn gone(m: &Manifest, link: &Path) -> Option<String> {
    match crate::sys::if_index(&m.iface) {
        Err(_) => return Some(format!("interface {} no longer exists", m.iface)),
        Ok(i) if i != m.ifindex => {
            return Some(format!(
                "interface {} is another interface now (index {i}, was {})",
                m.iface, m.ifindex
            ))
        }
        Ok(_) => {}
    }
    // The kernel detaches a link whose interface goes away; its info then names index 0.
    match crate::sys::pinned_link_ifindex(link) {
        Ok(0) => Some(format!("the program was detached from {}", m.iface)),
        _ => None,
    }
}

/// Every deployment with a manifest whose program is still pinned, gone ones included.
pub fn status() -> Vec<Deployment> {
    let mut out: Vec<Deployment> = manifests()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let layout = PinLayout::new(m.key());
            let nic = crate::sys::pinned_prog_id(&layout.nic_prog()).ok();
            let live = match crate::sys::pinned_link_prog_id(&layout.link()) {
                Ok(id) => id,
                // A policy wholly on the NIC has no host link.
                Err(_) if m.mode == AttachMode::Offload && m.host.is_none() => nic?,
                Err(_) => return None,
            };
            let gone = if m.host.is_some() {
                gone(&m, &layout.link())
            } else {
                crate::sys::if_index(&m.iface)
                    .ok()
                    .filter(|i| *i == m.ifindex)
                    .is_none()
                    .then(|| format!("interface {} no longer exists", m.iface))
            };
            Some(Deployment {
                interrupted: live != m.program_id(),
                program_id: live,
                gone,
                manifest: m,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.iface(), a.policy()).cmp(&(b.iface(), b.policy())));
    out
}

/// Manifests that could not be read, with why (a manifest of another nfcc version, say).
pub fn unreadable() -> Vec<(String, String)> {
    manifests().into_iter().filter_map(Result::err).collect()
}

/// The deployment named `name`: its key (`POLICY@IFACE` for the agent's), or a policy
/// deployed once. A policy deployed on several interfaces must be named by key.
pub fn find(name: &str) -> Result<Deployment, RuntimeError> {
    let all = status();
    if let Some(d) = all.iter().find(|d| d.manifest.key() == name) {
        return Ok(d.clone());
    }
    let mut of: Vec<Deployment> = all.into_iter().filter(|d| d.policy() == name).collect();
    match of.len() {
        0 => Err(RuntimeError::Deploy(format!(
            "no policy `{name}` is loaded (`nfcc status` lists what is)"
        ))),
        1 => Ok(of.remove(0)),
        _ => Err(RuntimeError::Deploy(format!(
            "policy `{name}` is deployed on {} interfaces; name one deployment: {}",
            of.len(),
            of.iter()
                .map(|d| format!("`{}`", d.manifest.key()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Refuses an interface that already has a live nfcc policy, and a deployment of the same
/// key (a policy deployed by hand) live elsewhere; gone deployments in the way are pruned.
pub(crate) fn refuse_busy(key: &str, iface: &str) -> Result<(), RuntimeError> {
    for d in status()
        .into_iter()
        .filter(|d| d.iface() == iface || d.manifest.key() == key)
    {
        if d.gone.is_some() {
            remove(d.manifest.key());
            continue;
        }
        return Err(RuntimeError::Deploy(format!(
            "policy `{}` is already loaded on {} ({}); unload it first with `nfcc unload --iface {}`",
            d.policy(),
            d.iface(),
            d.mode().name(),
            d.iface()
        )));
    }
    // A manifest whose pins this process cannot see blocks nothing (a new deployment writes
    // its own); it is not removed here, since another mount namespace may see its pins.
    Ok(())
}

/// Removes a deployment's pins (which detaches what they held) and its manifest.
pub(crate) fn remove(key: &str) {
    let layout = PinLayout::new(key);
    let _ = std::fs::remove_dir_all(layout.dir());
    let _ = std::fs::remove_file(layout.manifest());
}

/// Removes every gone deployment (pins and manifest); returns what was removed. (What
/// `nfcc load` does first, so a stale deployment never blocks a new one.)
pub fn prune_gone() -> Vec<Deployment> {
    let mut removed = Vec::new();
    for d in status().into_iter().filter(|d| d.gone.is_some()) {
        remove(d.manifest.key());
        removed.push(d);
    }
    removed
}

/// [`prune_gone`], and also every manifest whose program is no longer pinned where this
/// process looks (bpffs remounted); what `nfcc status --prune` asks for. (A deployment made
/// in another mount namespace, with its own bpffs, looks like that too: pruning is asked for,
/// never automatic.)
pub fn prune() -> Vec<Deployment> {
    let mut removed = prune_gone();
    for m in manifests().into_iter().flatten() {
        // Looked at now, not from an earlier listing: a deployment being written meanwhile
        // has its pins before its manifest, so it is never taken for a stale one.
        let layout = PinLayout::new(m.key());
        if layout.link().exists() || layout.nic_prog().exists() {
            continue;
        }
        remove(m.key());
        removed.push(Deployment {
            program_id: 0,
            interrupted: false,
            gone: Some("its pins are gone".into()),
            manifest: m,
        });
    }
    removed
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
