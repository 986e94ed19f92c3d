//! Putting a loaded program on an interface and keeping it there after nfcc exits: attach
//! (XDP native or generic, TC ingress or egress through TCX), pin the link, the program and the
//! maps under `/sys/fs/bpf/nfcc/<policy>/`, and record what is where in
//! `/run/nfcc/<policy>.state` (bpffs holds only BPF objects), so `nfcc status` and
//! `nfcc unload` work from a fresh shell. A record whose link pin is gone is not reported. Unloading removes the pins,
//! which detaches the program (the pinned link was the last thing holding it).

use crate::{Loaded, RuntimeError};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{self, SchedClassifierLink, TcAttachType};
use aya::programs::xdp::XdpLink;
use aya::programs::{Program, ProgramError, SchedClassifier, Xdp, XdpFlags};
use std::path::{Path, PathBuf};

/// Where pins live.
pub const PIN_ROOT: &str = "/sys/fs/bpf/nfcc";
/// Where deployments are recorded.
pub const STATE_DIR: &str = "/run/nfcc";

fn base_file(policy: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{policy}.base"))
}

/// Per-rule-slot (packets, bytes) counted by earlier versions of a policy swapped out with
/// `--replace`, to be added to the live program's statistics.
pub fn stats_base(policy: &str) -> Result<Vec<(u64, u64)>, RuntimeError> {
    let text = match std::fs::read_to_string(base_file(policy)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RuntimeError::Deploy(format!(
                "cannot read the statistics base: {e}"
            )))
        }
    };
    Ok(text
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
            (w.next().unwrap_or(0), w.next().unwrap_or(0))
        })
        .collect())
}

fn state_file(policy: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{policy}.state"))
}

pub use nfcc_bpf::manifest::AttachMode;

/// A policy on an interface, as its state file records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// The policy (the pin directory's name).
    pub policy: String,
    /// The interface.
    pub iface: String,
    /// How it is attached.
    pub mode: AttachMode,
    /// The kernel's program id.
    pub program_id: u32,
    /// When it was attached (seconds since the epoch).
    pub since: u64,
    /// The pinned maps' names.
    pub maps: Vec<String>,
    /// For an offloaded policy: the NIC program's id (`program_id` is then the host stage's,
    /// or the NIC program's again when the whole policy runs on the NIC).
    pub nic_program_id: Option<u32>,
    /// The link runs another program than the record names: a `--replace` was interrupted
    /// after the swap (the pinned maps may be the old program's); `program_id` is the live one.
    pub interrupted: bool,
}

impl Deployment {
    fn to_text(&self) -> String {
        let mut t = format!(
            "policy={}\niface={}\nmode={}\nprogram_id={}\nsince={}\nmaps={}\n",
            self.policy,
            self.iface,
            self.mode.name(),
            self.program_id,
            self.since,
            self.maps.join(",")
        );
        if let Some(n) = self.nic_program_id {
            t.push_str(&format!("nic_program_id={n}\n"));
        }
        t
    }

    fn from_text(text: &str) -> Option<Deployment> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        Some(Deployment {
            policy: get("policy")?.to_string(),
            iface: get("iface")?.to_string(),
            mode: AttachMode::from_name(get("mode")?)?,
            program_id: get("program_id")?.parse().ok()?,
            since: get("since")?.parse().ok()?,
            maps: get("maps")?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            nic_program_id: get("nic_program_id").and_then(|v| v.parse().ok()),
            interrupted: false,
        })
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

/// Every recorded deployment whose link is still pinned.
pub fn status() -> Vec<Deployment> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<Deployment> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| Deployment::from_text(&t))
        .filter_map(|mut d| {
            // The link is the truth: what it runs now, not what was recorded, is reported (a
            // replace killed between the swap and the record leaves the two apart).
            let dir = Path::new(PIN_ROOT).join(&d.policy);
            let nic = crate::sys::pinned_prog_id(&dir.join("nic_prog")).ok();
            let live = match crate::sys::pinned_link_prog_id(&dir.join("link")) {
                Ok(id) => id,
                // A policy wholly on the NIC has no host link.
                Err(_) if d.mode == AttachMode::Offload => nic?,
                Err(_) => return None,
            };
            if d.mode == AttachMode::Offload {
                d.nic_program_id = Some(nic?);
            }
            d.interrupted = live != d.program_id;
            d.program_id = live;
            Some(d)
        })
        .collect();
    out.sort_by(|a, b| (&a.iface, &a.policy).cmp(&(&b.iface, &b.policy)));
    out
}

fn pin_err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Deploy(format!("cannot pin {what}: {e}"))
}

/// Attaches the loaded program of policy `policy` to `iface` and pins everything. Refuses an
/// interface that already has an nfcc policy, and a policy already deployed elsewhere; on any
/// failure nothing stays attached or pinned.
pub fn deploy(
    mut loaded: Loaded,
    policy: &str,
    iface: &str,
    mode: AttachMode,
) -> Result<Deployment, RuntimeError> {
    ensure_bpffs()?;
    refuse_busy(policy, iface)?;
    pause_before_attach();
    let dir = Path::new(PIN_ROOT).join(policy);
    let _ = std::fs::remove_file(base_file(policy));
    std::fs::create_dir_all(&dir)
        .map_err(|e| RuntimeError::Deploy(format!("cannot create {}: {e}", dir.display())))?;
    let result = attach_and_pin(&mut loaded, &dir, policy, iface, mode);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(state_file(policy));
    }
    result
}

/// Refuses an interface that already has an nfcc policy, and a policy deployed elsewhere.
pub(crate) fn refuse_busy(policy: &str, iface: &str) -> Result<(), RuntimeError> {
    match status()
        .into_iter()
        .find(|d| d.iface == iface || d.policy == policy)
    {
        Some(d) => Err(RuntimeError::Deploy(format!(
            "policy `{}` is already loaded on {} ({}); unload it first with `nfcc unload --iface {}`",
            d.policy,
            d.iface,
            d.mode.name(),
            d.iface
        ))),
        None => Ok(()),
    }
}

/// Attaches the host stage of an offloaded policy natively and pins it in `dir`, recording
/// the deployment as `mode` with the NIC program's id.
pub(crate) fn attach_pinned(
    mut loaded: Loaded,
    dir: &Path,
    policy: &str,
    iface: &str,
    mode: AttachMode,
    nic_program_id: Option<u32>,
) -> Result<Deployment, RuntimeError> {
    let (link, program_id) = attach_link(&mut loaded, iface, AttachMode::Native)?;
    pin_and_record(
        &mut loaded,
        link,
        program_id,
        dir,
        policy,
        iface,
        mode,
        nic_program_id,
    )
}

/// Records a deployment in its state file.
pub(crate) fn record(
    policy: &str,
    iface: &str,
    mode: AttachMode,
    program_id: u32,
    nic_program_id: Option<u32>,
    maps: Vec<String>,
) -> Result<Deployment, RuntimeError> {
    let d = Deployment {
        policy: policy.to_string(),
        iface: iface.to_string(),
        mode,
        program_id,
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        maps,
        nic_program_id,
        interrupted: false,
    };
    std::fs::create_dir_all(STATE_DIR)
        .and_then(|()| std::fs::write(state_file(policy), d.to_text()))
        .map_err(|e| {
            RuntimeError::Deploy(format!("cannot record the state in {STATE_DIR}: {e}"))
        })?;
    Ok(d)
}

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

fn attach_and_pin(
    loaded: &mut Loaded,
    dir: &Path,
    policy: &str,
    iface: &str,
    mode: AttachMode,
) -> Result<Deployment, RuntimeError> {
    let (link, program_id) = attach_link(loaded, iface, mode)?;
    pin_and_record(loaded, link, program_id, dir, policy, iface, mode, None)
}

/// The test hook that makes a deployment wait between loading and attaching: crash tests set
/// `NFCC_TEST_PAUSE_BEFORE_ATTACH=MS` and kill nfcc when the line below appears.
fn pause_before_attach() {
    let ms: Option<u64> = std::env::var("NFCC_TEST_PAUSE_BEFORE_ATTACH")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(ms) = ms {
        eprintln!("nfcc: loaded, attaching in {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Attaches the loaded program; returns the link and the program's id.
fn attach_link(
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
            let flags = if mode == AttachMode::Native { XdpFlags::DRV_MODE } else { XdpFlags::SKB_MODE };
            let id = Xdp::attach(xdp, iface, flags).map_err(attach_err)?;
            let link = xdp.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link).map_err(|e| RuntimeError::Deploy(format!("cannot keep the XDP link: {e}")))?
        }
        (AttachMode::TcIngress | AttachMode::TcEgress, Program::SchedClassifier(cls)) => {
            // TCX (6.6+) needs no qdisc; older kernels need clsact, which may already exist.
            let _ = tc::qdisc_add_clsact(iface);
            let at = if mode == AttachMode::TcIngress { TcAttachType::Ingress } else { TcAttachType::Egress };
            let id = SchedClassifier::attach(cls, iface, at).map_err(attach_err)?;
            let link = cls.take_link(id).map_err(attach_err)?;
            FdLink::try_from(link).map_err(|e| RuntimeError::Deploy(format!("cannot keep the TC link: {e}")))?
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

fn pin_and_record(
    loaded: &mut Loaded,
    link: FdLink,
    program_id: u32,
    dir: &Path,
    policy: &str,
    iface: &str,
    mode: AttachMode,
    nic_program_id: Option<u32>,
) -> Result<Deployment, RuntimeError> {
    link.pin(dir.join("link"))
        .map_err(|e| pin_err("the link", e))?;
    let mut maps = Vec::new();
    for (mname, map) in loaded.ebpf.maps() {
        map.pin(dir.join(mname)).map_err(|e| pin_err(mname, e))?;
        maps.push(mname.to_string());
    }
    maps.sort();
    record(policy, iface, mode, program_id, nic_program_id, maps)
}

/// Detaches and unpins the policy on `iface`.
pub fn undeploy(iface: &str) -> Result<Deployment, RuntimeError> {
    let Some(d) = status().into_iter().find(|d| d.iface == iface) else {
        return Err(RuntimeError::Deploy(format!(
            "no nfcc policy is loaded on {iface} (`nfcc status` lists what is)"
        )));
    };
    let dir: PathBuf = Path::new(PIN_ROOT).join(&d.policy);
    if d.mode == AttachMode::Offload {
        // The NIC program was attached through netlink, not a link: detach it there.
        crate::offload::detach_hw(crate::ifindex(iface)?)?;
    }
    // Removing the link's pin drops the last reference to the link: the program detaches.
    std::fs::remove_dir_all(&dir)
        .map_err(|e| RuntimeError::Deploy(format!("cannot remove {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(state_file(&d.policy));
    let _ = std::fs::remove_file(base_file(&d.policy));
    Ok(d)
}

/// Keeps the `.nf` source a deployment was compiled from, so `nfcc stats` can name its rules
/// and `nfcc set` can find its sets' maps.
pub fn save_source(policy: &str, source: &str) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(STATE_DIR)
        .and_then(|()| std::fs::write(Path::new(STATE_DIR).join(format!("{policy}.nf")), source))
        .map_err(|e| {
            RuntimeError::Deploy(format!("cannot keep the policy source in {STATE_DIR}: {e}"))
        })
}

/// The `.nf` source of a deployed policy, if it was loaded from one.
pub fn source(policy: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(STATE_DIR).join(format!("{policy}.nf"))).ok()
}

/// The pinned maps of a deployed policy.
pub fn pinned_maps(policy: &str) -> Result<crate::PinnedMaps, RuntimeError> {
    if !status().iter().any(|d| d.policy == policy) {
        return Err(RuntimeError::Deploy(format!(
            "no policy `{policy}` is loaded (`nfcc status` lists what is)"
        )));
    }
    crate::PinnedMaps::open(&Path::new(PIN_ROOT).join(policy))
}

/// A deployed policy's sample ring buffer, read as records of {rule (u32), frame length (u32),
/// the frame's first bytes}.
pub struct Samples {
    ring: aya::maps::RingBuf<aya::maps::MapData>,
}

impl Samples {
    /// Opens the pinned ring buffer of a deployed policy.
    pub fn open(policy: &str) -> Result<Samples, RuntimeError> {
        if !status().iter().any(|d| d.policy == policy) {
            return Err(RuntimeError::Deploy(format!(
                "no policy `{policy}` is loaded (`nfcc status` lists what is)"
            )));
        }
        let path = Path::new(PIN_ROOT)
            .join(policy)
            .join(format!("{policy}_nfcc_samples"));
        if !path.exists() {
            return Err(RuntimeError::Deploy(format!(
                "policy `{policy}` samples nothing: add `sample N` to a rule's actions"
            )));
        }
        let data = aya::maps::MapData::from_pin(&path)
            .map_err(|e| RuntimeError::Deploy(format!("cannot open {}: {e}", path.display())))?;
        let ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data))
            .map_err(|e| RuntimeError::Deploy(format!("cannot read the sample ring: {e}")))?;
        Ok(Samples { ring })
    }

    /// The next record, if one is waiting: (rule slot, frame length, frame bytes).
    pub fn take(&mut self) -> Option<(u32, u32, Vec<u8>)> {
        let item = self.ring.next()?;
        let b: &[u8] = &item;
        if b.len() < 8 {
            return None;
        }
        let rule = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let len = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        Some((rule, len, b[8..].to_vec()))
    }
}

/// Swaps the program of the deployment on `iface` for `loaded` (the same policy, recompiled)
/// in one step — `bpf_link_update` on the pinned link, so no packet meets no program — after
/// copying the entries of the old program's dynamic sets and counters into the new one's maps
/// of the same name and shape. The old program's per-rule statistics are added to the
/// policy's statistics base (`/run/nfcc/<policy>.base`, by rule slot), so `nfcc stats` keeps
/// counting across versions.
///
/// Crash safety: the new maps are pinned under `next/` before the swap and renamed over the
/// old pins after it, so a process killed before the swap leaves the old program with its own
/// maps (`next/` is removed by the next replace or unload), and one killed after
/// it leaves the new program running, which `status` reports (see
/// [`Deployment::interrupted`]).
pub fn replace(mut loaded: Loaded, policy: &str, iface: &str) -> Result<Deployment, RuntimeError> {
    let Some(old) = status().into_iter().find(|d| d.iface == iface) else {
        return Err(RuntimeError::Deploy(format!(
            "nothing to replace on {iface}: no nfcc policy is loaded there; load without --replace"
        )));
    };
    if old.policy != policy {
        return Err(RuntimeError::Deploy(format!(
            "{iface} runs policy `{}`; --replace swaps in a new version of the same policy (unload and load to change policies)",
            old.policy
        )));
    }
    let dir = Path::new(PIN_ROOT).join(policy);
    let pinned = crate::PinnedMaps::open(&dir)?;
    // Carry dynamic sets (and their length tables) and counters over.
    let carried: Vec<String> = loaded
        .ebpf
        .maps()
        .map(|(n, _)| n.to_string())
        .filter(|n| {
            let ir = n.strip_prefix(&format!("{policy}_")).unwrap_or("");
            ir.starts_with("set_") || ir.starts_with("cnt_")
        })
        .collect();
    for name in &carried {
        let Ok(keys) = pinned.map_keys(name) else {
            continue;
        };
        for k in keys {
            if let Ok(Some(v)) = pinned.map_lookup(name, &k) {
                // A map whose shape changed keeps the new program's contents.
                let _ = loaded.map_update(name, &k, &v);
            }
        }
    }
    // The old statistics map stays open across the swap, to be read when the old program no
    // longer runs.
    let stats_name = nfcc_bpf::layout::stats_map_name(policy);
    let new_maps: Vec<String> = loaded.ebpf.maps().map(|(n, _)| n.to_string()).collect();
    // bpffs refuses dots in names, so the next version's pins wait in a subdirectory; one
    // left by a killed replace is cleared first.
    let next = dir.join("next");
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir(&next)
        .map_err(|e| RuntimeError::Deploy(format!("cannot create {}: {e}", next.display())))?;
    for (mname, map) in loaded.ebpf.maps() {
        map.pin(next.join(mname)).map_err(|e| pin_err(mname, e))?;
    }
    pause_before_attach();
    let link_path = dir.join("link");
    let fd_link: FdLink = PinnedLink::from_pin(&link_path)
        .map_err(|e| RuntimeError::Deploy(format!("cannot open the pinned link: {e}")))?
        .into();
    let name = loaded.program.clone();
    let prog = loaded
        .ebpf
        .program_mut(&name)
        .ok_or_else(|| RuntimeError::Deploy(format!("program `{name}` vanished")))?;
    let program_id = prog.info().map(|i| i.id()).unwrap_or(0);
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
    let mut maps = Vec::new();
    for mname in &new_maps {
        std::fs::rename(next.join(mname), dir.join(mname)).map_err(|e| pin_err(mname, e))?;
        maps.push(mname.clone());
    }
    let _ = std::fs::remove_dir(&next);
    for gone in old.maps.iter().filter(|m| !new_maps.contains(m)) {
        let _ = std::fs::remove_file(dir.join(gone));
    }
    maps.sort();
    // In-flight runs of the old program finish within microseconds of the swap.
    std::thread::sleep(std::time::Duration::from_millis(5));
    if let Ok(mut base) = stats_base(policy) {
        for (slot, row) in base.iter_mut().enumerate() {
            if let Ok(v) = pinned.percpu_array_sum(&stats_name, slot as u32) {
                row.0 += v.first().copied().unwrap_or(0);
                row.1 += v.get(1).copied().unwrap_or(0);
            }
        }
        // Slots beyond the recorded base (a first replace) are read too.
        let mut slot = base.len() as u32;
        while let Ok(v) = pinned.percpu_array_sum(&stats_name, slot) {
            base.push((
                v.first().copied().unwrap_or(0),
                v.get(1).copied().unwrap_or(0),
            ));
            slot += 1;
        }
        let text: String = base.iter().map(|(p, b)| format!("{p} {b}\n")).collect();
        let _ = std::fs::write(base_file(policy), text);
    }
    drop(pinned);
    let d = Deployment {
        program_id,
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs()),
        maps,
        interrupted: false,
        ..old
    };
    std::fs::write(state_file(policy), d.to_text())
        .map_err(|e| RuntimeError::Deploy(format!("cannot record the state: {e}")))?;
    Ok(d)
}
