//! Deploying a policy to a SmartNIC: the NIC stage bound to the device (libbpf sets
//! `prog_ifindex` and `map_ifindex`, which aya 0.13 cannot) and attached with
//! `XDP_FLAGS_HW_MODE`, and the host stage, when the policy is split, attached in native mode
//! on the same interface beside it (see ../shared/design/offload-nfp.md). The NIC program and
//! its maps are pinned under `/sys/fs/bpf/nfcc/<policy>/nic_prog` and `nic/`, the host stage
//! as any deployment; `deploy::undeploy` removes both.

use crate::deploy::{self, AttachMode, Deployment};
use crate::{Loaded, RuntimeError};
use libbpf_rs::{MapCore, ObjectBuilder, Xdp, XdpFlags};
use std::os::fd::AsFd;
use std::path::Path;

fn err(what: String) -> RuntimeError {
    RuntimeError::Deploy(what)
}

/// Loads `nic_object` (one XDP program, compiled for the NIC) onto `iface`'s NIC, fills its
/// maps with `nic_entries` (map, key, value), attaches it in HW mode and, with `host`, attaches
/// the host stage natively beside it; pins and records everything. On any failure nothing
/// stays attached or pinned.
pub fn deploy_offload(
    nic_object: &[u8],
    nic_entries: &[(String, Vec<u8>, Vec<u8>)],
    host: Option<Loaded>,
    policy: &str,
    iface: &str,
) -> Result<Deployment, RuntimeError> {
    deploy::ensure_bpffs()?;
    deploy::refuse_busy(policy, iface)?;
    let ifindex = crate::ifindex(iface)?;
    let mut open = ObjectBuilder::default()
        .name(policy)
        .map_err(|e| err(format!("cannot name the NIC object: {e}")))?
        .open_memory(nic_object)
        .map_err(|e| err(format!("cannot read the NIC stage: {e}")))?;
    for mut p in open.progs_mut() {
        p.set_ifindex(ifindex);
    }
    for mut m in open.maps_mut() {
        m.set_map_ifindex(ifindex);
    }
    let mut obj = open.load().map_err(|e| {
        err(format!(
            "{iface} refused the NIC stage (its maps or program, bound to the device): {e}"
        ))
    })?;
    for (name, k, v) in nic_entries {
        let m = obj
            .maps_mut()
            .find(|m| m.name().to_string_lossy() == name.as_str())
            .ok_or_else(|| err(format!("the NIC stage has no map `{name}`")))?;
        m.update(k, v, libbpf_rs::MapFlags::ANY)
            .map_err(|e| err(format!("cannot fill the NIC map `{name}`: {e}")))?;
    }
    let dir = Path::new(deploy::PIN_ROOT).join(policy);
    let nic_dir = dir.join("nic");
    std::fs::create_dir_all(&nic_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", nic_dir.display())))?;
    let undo = |attached: bool| {
        if attached {
            let _ = detach_hw(ifindex);
        }
        let _ = std::fs::remove_dir_all(&dir);
    };
    let mut prog = match obj.progs_mut().next() {
        Some(p) => p,
        None => {
            undo(false);
            return Err(err("the NIC stage has no program".into()));
        }
    };
    if let Err(e) = Xdp::new(prog.as_fd()).attach(ifindex as i32, XdpFlags::HW_MODE) {
        undo(false);
        return Err(err(format!(
            "{iface} refused the NIC stage in HW mode: {e}"
        )));
    }
    if let Err(e) = prog.pin(dir.join("nic_prog")) {
        undo(true);
        return Err(err(format!("cannot pin the NIC program: {e}")));
    }
    let nic_id = crate::sys::pinned_prog_id(&dir.join("nic_prog")).unwrap_or(0);
    for mut m in obj.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if let Err(e) = m.pin(nic_dir.join(&name)) {
            undo(true);
            return Err(err(format!("cannot pin the NIC map {name}: {e}")));
        }
    }
    let result = match host {
        Some(loaded) => deploy::attach_pinned(
            loaded,
            &dir,
            policy,
            iface,
            AttachMode::Offload,
            Some(nic_id),
        ),
        None => deploy::record(
            policy,
            iface,
            AttachMode::Offload,
            nic_id,
            Some(nic_id),
            Vec::new(),
        ),
    };
    if result.is_err() {
        undo(true);
    }
    result
}

/// Removes the HW-mode XDP program from interface `ifindex`.
pub(crate) fn detach_hw(ifindex: u32) -> Result<(), RuntimeError> {
    // The detach names no program; libbpf's wrapper wants a descriptor all the same.
    let probe = std::fs::File::open("/dev/null").map_err(|e| err(e.to_string()))?;
    Xdp::new(probe.as_fd())
        .detach(ifindex as i32, XdpFlags::HW_MODE)
        .map_err(|e| err(format!("cannot detach the NIC program: {e}")))
}
