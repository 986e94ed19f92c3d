//! Putting a loaded program on an interface: XDP (native or generic) through an XDP link, TC
//! (ingress or egress) through TCX — aya falls back to clsact netlink before 6.6 — and the
//! NIC's HW mode through netlink (libbpf). Pinning and recording are the callers' business
//! (`deploy`, `offload`); [`attach`] alone keeps a program attached for as long as its value
//! lives (benchmarks and testbeds).

use crate::{Loaded, RuntimeError};
use aya::programs::links::FdLink;
use aya::programs::tc::{self, TcAttachType};
use aya::programs::{Program, ProgramError, SchedClassifier, Xdp, XdpFlags};
use nfcc_bpf::manifest::AttachMode;
use std::path::Path;

/// A program attached to an interface for as long as this value lives (nothing pinned, no
/// state recorded): what benchmarks and testbeds use. Dropping it detaches the program.
#[derive(Debug)]
pub struct Attached {
    /// The link; closing its last descriptor detaches the program.
    _link: FdLink,
    /// The program and its maps.
    loaded: Loaded,
}

impl Attached {
    /// The attached program and its maps.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }
}

/// Attaches `loaded` to `iface` (in the calling thread's network namespace) in `mode` without
/// pinning anything.
pub fn attach(mut loaded: Loaded, iface: &str, mode: AttachMode) -> Result<Attached, RuntimeError> {
    let (link, _) = attach_link(&mut loaded, iface, mode)?;
    Ok(Attached {
        _link: link,
        loaded,
    })
}

/// The test hook that makes a deployment wait between loading and attaching: crash tests set
/// `NFCC_TEST_PAUSE_BEFORE_ATTACH=MS` and kill nfcc when the line below appears.
pub(crate) fn pause_before_attach() {
    let ms: Option<u64> = std::env::var("NFCC_TEST_PAUSE_BEFORE_ATTACH")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(ms) = ms {
        eprintln!("nfcc: loaded, attaching in {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Attaches the loaded program; returns the link and the program's id.
pub(crate) fn attach_link(
    loaded: &mut Loaded,
    iface: &str,
    mode: AttachMode,
) -> Result<(FdLink, u32), RuntimeError> {
    let name = loaded.program.clone();
    let attach_err = |e: ProgramError| match e {
        ProgramError::UnknownInterface { name } => RuntimeError::Deploy(format!(
            "no interface `{name}` here; `ip link` lists the interfaces"
        )),
        other => RuntimeError::Deploy(format!("cannot attach to {iface}: {other}")),
    };
    let prog = loaded
        .ebpf
        .program_mut(&name)
        .ok_or_else(|| RuntimeError::Deploy(format!("program `{name}` vanished")))?;
    let program_id = prog.info().map(|i| i.id()).unwrap_or(0);
    let link: FdLink = match (mode, prog) {
        (AttachMode::Native | AttachMode::Generic, Program::Xdp(xdp)) => {
            let flags = if mode == AttachMode::Native {
                XdpFlags::DRV_MODE
            } else {
                XdpFlags::SKB_MODE
            };
            let id = Xdp::attach(xdp, iface, flags).map_err(attach_err)?;
            let link = xdp.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link).map_err(|e| {
                RuntimeError::Deploy(format!("cannot keep the XDP link: {e}"))
            })?
        }
        (AttachMode::TcIngress | AttachMode::TcEgress, Program::SchedClassifier(cls)) => {
            // TCX (6.6+) needs no qdisc; older kernels need clsact, which may already exist.
            let _ = tc::qdisc_add_clsact(iface);
            let at = if mode == AttachMode::TcIngress {
                TcAttachType::Ingress
            } else {
                TcAttachType::Egress
            };
            let id = SchedClassifier::attach(cls, iface, at).map_err(attach_err)?;
            let link = cls.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link)
                .map_err(|e| RuntimeError::Deploy(format!("cannot keep the TC link: {e}")))?
        }
        (m, _) => {
            return Err(RuntimeError::Deploy(format!(
                "mode {} does not fit this program's type (xdp programs take native or generic, tc programs tc-ingress or tc-egress)",
                m.name()
            )))
        }
    };
    Ok((link, program_id))
}

/// Pins every map of `loaded` in `dir`; returns the pin paths by map name.
pub(crate) fn pin_maps(
    loaded: &mut Loaded,
    dir: &Path,
) -> Result<Vec<(String, std::path::PathBuf)>, RuntimeError> {
    let mut out = Vec::new();
    for (name, map) in loaded.ebpf.maps() {
        let path = dir.join(name);
        map.pin(&path).map_err(|e| pin_err(name, e))?;
        out.push((name.to_string(), path));
    }
    out.sort();
    Ok(out)
}

pub(crate) fn pin_err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Deploy(format!("cannot pin {what}: {e}"))
}

/// Removes the HW-mode XDP program from interface `ifindex`.
pub(crate) fn detach_hw(ifindex: u32) -> Result<(), RuntimeError> {
    use std::os::fd::AsFd;
    // The detach names no program; libbpf's wrapper wants a descriptor all the same.
    let probe =
        std::fs::File::open("/dev/null").map_err(|e| RuntimeError::Deploy(e.to_string()))?;
    libbpf_rs::Xdp::new(probe.as_fd())
        .detach(ifindex as i32, libbpf_rs::XdpFlags::HW_MODE)
        .map_err(|e| RuntimeError::Deploy(format!("cannot detach the NIC program: {e}")))
}
