//! Deploying a policy to a SmartNIC: the NIC stage bound to the device (libbpf sets
//! `prog_ifindex` and `map_ifindex`, which aya 0.13 cannot) and attached with
//! `XDP_FLAGS_HW_MODE`, and the host stage, when the policy is split, attached in native mode
//! on the same interface beside it (see ../shared/design/offload-nfp.md). The NIC program and
//! its maps are pinned under `/sys/fs/bpf/nfcc/<policy>/nic_prog` and `nic/`, the host stage
//! as any deployment; `deploy::undeploy` removes both.

use crate::attach::{attach_link, detach_hw, pin_err, pin_maps};
use crate::deploy::complete_stage;
use crate::state::{self, ensure_bpffs, refuse_busy};
use crate::{Loaded, RuntimeError};
use libbpf_rs::{MapCore, ObjectBuilder, Xdp, XdpFlags};
use nfcc_bpf::manifest::{AttachMode, Manifest, MapEntry, MapRole, Stage};
use nfcc_bpf::pin::PinLayout;
use nfcc_bpf::MapKind;
use std::os::fd::AsFd;

fn err(what: String) -> RuntimeError {
    RuntimeError::Deploy(what)
}

/// Loads `nic_object` (one XDP program, compiled for the NIC) onto `manifest.iface`'s NIC,
/// fills its maps with `nic_entries` (map, key, value), attaches it in HW mode and, with
/// `host`, attaches the host stage natively beside it; pins everything and writes the
/// manifest (its `nic` and `host` stage templates completed). On any failure nothing stays
/// attached or pinned.
pub fn deploy_offload(
    nic_object: &[u8],
    nic_entries: &[(String, Vec<u8>, Vec<u8>)],
    host: Option<Loaded>,
    mut manifest: Manifest,
) -> Result<Manifest, RuntimeError> {
    let (policy, iface) = (manifest.policy.clone(), manifest.iface.clone());
    ensure_bpffs()?;
    refuse_busy(manifest.key(), &iface)?;
    let ifindex = crate::ifindex(&iface)?;
    let mut open = ObjectBuilder::default()
        .name(policy.as_str())
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
    let layout = PinLayout::new(manifest.key());
    let (dir, nic_dir) = (layout.dir(), layout.nic_dir());
    std::fs::create_dir_all(&nic_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", nic_dir.display())))?;
    let undo = |attached: bool| {
        if attached {
            let _ = detach_hw(ifindex);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(layout.manifest());
    };
    let mut prog = match obj.progs_mut().next() {
        Some(p) => p,
        None => {
            undo(false);
            return Err(err("the NIC stage has no program".into()));
        }
    };
    let program = prog.name().to_string_lossy().into_owned();
    if let Err(e) = Xdp::new(prog.as_fd()).attach(ifindex as i32, XdpFlags::HW_MODE) {
        undo(false);
        return Err(err(format!(
            "{iface} refused the NIC stage in HW mode: {e}"
        )));
    }
    if let Err(e) = prog.pin(layout.nic_prog()) {
        undo(true);
        return Err(err(format!("cannot pin the NIC program: {e}")));
    }
    let nic_id = crate::sys::pinned_prog_id(&layout.nic_prog()).unwrap_or(0);
    let mut nic = manifest.nic.take().unwrap_or_else(|| Stage {
        program_id: 0,
        program: program.clone(),
        maps: Vec::new(),
        sets: Vec::new(),
        pools: Vec::new(),
        counted_slots: None,
        code: None,
        room: None,
    });
    nic.program_id = nic_id;
    for mut m in obj.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        let path = nic_dir.join(&name);
        if let Err(e) = m.pin(&path) {
            undo(true);
            return Err(err(format!("cannot pin the NIC map {name}: {e}")));
        }
        match nic.maps.iter_mut().find(|x| x.name == name) {
            Some(x) => x.pin = Some(path),
            None => nic.maps.push(MapEntry {
                name,
                pin: Some(path),
                kind: MapKind::from_type(m.map_type() as u32).unwrap_or(MapKind::Hash),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
                role: MapRole::Other,
                owner: None,
            }),
        }
    }
    manifest.nic = Some(nic);
    manifest.mode = AttachMode::Offload;
    manifest.ifindex = ifindex;
    manifest.deployed_at = state::now();
    let result = (|| {
        if let Some(mut loaded) = host {
            let (link, _) = attach_link(&mut loaded, &iface, AttachMode::Native)?;
            link.pin(layout.link())
                .map_err(|e| pin_err("the link", e))?;
            let pins = pin_maps(&mut loaded, &dir)?;
            manifest.host = Some(complete_stage(&loaded, manifest.host.take(), &pins)?);
        } else {
            manifest.host = None;
        }
        state::write(&manifest)?;
        Ok(manifest)
    })();
    if result.is_err() {
        undo(true);
    }
    result
}
