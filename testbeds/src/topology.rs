//! Namespaces and veth pairs with RAII cleanup.
//!
//! A [`Testbed`] is a namespace `nfcc-tb-<pid>-<n>` holding the receiving end `tb<pid>r<n>` of
//! a veth pair whose transmitting end `tb<pid>t<n>` stays in the caller's namespace, where the
//! traffic generator runs. Names carry the process id so parallel tests and processes never
//! collide, and so [`sweep_stale`] can tell a leftover of a dead process from a live one.
//! Every live testbed is also listed in a process-wide registry that a Ctrl-C / SIGTERM
//! handler empties before the process exits.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use nfcc_runtime::traffic::{Generator, Selection, Sent, Variation};

/// What can go wrong building a testbed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// An `ip` command failed; the message quotes it and what it printed.
    #[error("`{cmd}` failed: {output}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error (or why it could not run).
        output: String,
    },
    /// A testbed needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and the `ip` tool.
    #[error("testbeds need root and iproute2's `ip`: {0}")]
    Unavailable(String),
    /// A runtime operation (load, attach, traffic) failed.
    #[error(transparent)]
    Runtime(#[from] nfcc_runtime::RuntimeError),
    /// A measurement could not be set up (its policy, its reader).
    #[error("{0}")]
    Setup(String),
}

/// Runs `ip ARGS`, turning failure into [`TestbedError::Command`].
pub fn ip(args: &[&str]) -> Result<String, TestbedError> {
    let cmd = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| TestbedError::Command {
            cmd: cmd.clone(),
            output: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TestbedError::Command {
            cmd,
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Live testbeds of this process: (namespace, host-side interface).
static LIVE: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace name `nfcc-tb-<pid>-<n>` and the caller-side interface name `tb<pid>t<n>` that
/// goes with it, for topologies built outside [`Testbed`]: registered, so the Ctrl-C handler
/// and [`sweep_stale`] remove them too (whichever of them exists).
pub(crate) fn register_namespace() -> (String, String) {
    install_handler();
    let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let (ns, host_if) = (format!("nfcc-tb-{pid}-{n}"), format!("tb{pid}t{n}"));
    if let Ok(mut l) = LIVE.lock() {
        l.push((ns.clone(), host_if.clone()));
    }
    (ns, host_if)
}

/// Removes a namespace of [`register_namespace`] and its interface.
pub(crate) fn release_namespace(ns: &str, host_if: &str) {
    remove(ns, host_if);
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|(n, _)| n != ns);
    }
}

/// Removes a namespace and a veth pair, ignoring what is already gone.
fn remove(ns: &str, host_if: &str) {
    let _ = Command::new("ip").args(["link", "del", host_if]).output();
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

/// Installs (once) the handler that removes every live testbed on Ctrl-C or SIGTERM.
fn install_handler() {
    HANDLER.call_once(|| {
        // Another handler may already be installed by the embedding program; then that program
        // owns signal handling and drops run on its normal exit path.
        let _ = ctrlc::set_handler(|| {
            let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
            for (ns, host_if) in live {
                remove(&ns, &host_if);
            }
            std::process::exit(130);
        });
    });
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes testbeds whose creating process is gone (left by a `kill -9` or a power cut).
pub fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("nfcc-tb-") else {
            continue;
        };
        let mut parts = rest.split('-');
        if let (Some(pid), Some(n)) = (parts.next(), parts.next()) {
            if pid.parse().is_ok_and(|p: u32| !alive(p)) {
                remove(name, &format!("tb{pid}t{n}"));
                remove(name, &format!("tb{pid}r{n}"));
            }
        }
    }
}

/// Which end of the veth pair lives in the testbed's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The receiving end (where the policy runs) is in the namespace; the generator sends
    /// from the caller's namespace. Benchmarks use this: the host's stack never sees the
    /// traffic.
    RxInNamespace,
    /// The receiving end stays in the caller's namespace, so `nfcc load --iface` from a
    /// plain shell reaches it; the generator sends from inside the namespace.
    RxInHost,
}

/// A namespace joined to the caller's by a veth pair; removed on drop.
#[derive(Debug)]
pub struct Testbed {
    /// The namespace.
    pub ns: String,
    /// The transmitting end (the generator's).
    pub tx: String,
    /// The receiving end, where policies are attached.
    pub rx: String,
    /// Which end is in [`Testbed::ns`].
    pub layout: Layout,
    /// The host-side end's name (removing it removes the pair).
    host_if: String,
    /// The generator of the last blast and its variation, kept for the next one (an AF_XDP
    /// socket's queue is released only some time after it closes).
    generator: std::sync::Mutex<Option<(Option<Variation>, Generator)>>,
}

impl Testbed {
    /// [`Testbed::with_layout`] with the receiving end in the namespace.
    pub fn new() -> Result<Testbed, TestbedError> {
        Testbed::with_layout(Layout::RxInNamespace)
    }

    /// Builds a new testbed: namespace, veth pair, both ends up, addresses 198.18.0.1/30
    /// (transmitting end) and 198.18.0.2/30 (receiving end) from the benchmarking range of
    /// RFC 2544.
    pub fn with_layout(layout: Layout) -> Result<Testbed, TestbedError> {
        // CAP_NET_ADMIN (12) for links, CAP_SYS_ADMIN (21) for namespaces and bpffs.
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let l = s.lines().find(|l| l.starts_with("CapEff:"))?;
                u64::from_str_radix(l.trim_start_matches("CapEff:").trim(), 16).ok()
            })
            .unwrap_or(0);
        if caps & (1 << 12) == 0 || caps & (1 << 21) == 0 {
            return Err(TestbedError::Unavailable(
                "this process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN (run as root)".into(),
            ));
        }
        install_handler();
        sweep_stale();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("nfcc-tb-{pid}-{n}");
        let (tx, rx) = (format!("tb{pid}t{n}"), format!("tb{pid}r{n}"));
        let host_if = if layout == Layout::RxInNamespace {
            tx.clone()
        } else {
            rx.clone()
        };
        // Registered before creation, so a signal in between still removes what exists.
        if let Ok(mut l) = LIVE.lock() {
            l.push((ns.clone(), host_if.clone()));
        }
        let tb = Testbed {
            generator: std::sync::Mutex::new(None),
            ns,
            tx,
            rx,
            layout,
            host_if,
        };
        // On error `tb` is dropped here, and its Drop removes whatever was built.
        tb.build()?;
        Ok(tb)
    }

    fn build(&self) -> Result<(), TestbedError> {
        let ns = self.ns.as_str();
        let (inner, outer) = match self.layout {
            Layout::RxInNamespace => (self.rx.as_str(), self.tx.as_str()),
            Layout::RxInHost => (self.tx.as_str(), self.rx.as_str()),
        };
        let addr = |end: &str| {
            if end == self.tx {
                "198.18.0.1/30"
            } else {
                "198.18.0.2/30"
            }
        };
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns,
        ])?;
        ip(&["addr", "add", addr(outer), "dev", outer])?;
        ip(&["link", "set", outer, "up"])?;
        ip(&["-n", ns, "addr", "add", addr(inner), "dev", inner])?;
        ip(&["-n", ns, "link", "set", inner, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // No IPv6 on the pair: its router solicitations and neighbour discovery would be
        // traffic nobody sent. (Fails harmlessly where IPv6 is compiled out.)
        let off = |end: &str| format!("net.ipv6.conf.{end}.disable_ipv6=1");
        let _ = Command::new("sysctl").args(["-qw", &off(outer)]).output();
        let _ = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw", &off(inner)])
            .output();
        Ok(())
    }

    /// Adds an interface `name` inside the namespace — a veth whose peer, also inside, is
    /// returned — for policies that redirect to `name`.
    pub fn add_port(&self, name: &str) -> Result<String, TestbedError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let peer = format!("tb{}p{n}", std::process::id());
        ip(&[
            "-n", &self.ns, "link", "add", name, "type", "veth", "peer", "name", &peer,
        ])?;
        for dev in [name, peer.as_str()] {
            ip(&["-n", &self.ns, "link", "set", dev, "up"])?;
            let _ = Command::new("ip")
                .args(["netns", "exec", &self.ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
                .output();
        }
        Ok(peer)
    }

    /// Turns GRO on for the receiving end, which gives a veth the NAPI instance that frames
    /// redirected into its peer need when no native XDP program runs on it (generic XDP and TC
    /// benchmarks). Needs `ethtool`.
    pub fn enable_gro(&self) -> Result<(), TestbedError> {
        let mut cmd = match self.layout {
            Layout::RxInNamespace => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns, "ethtool"]);
                c
            }
            Layout::RxInHost => Command::new("ethtool"),
        };
        let out = cmd
            .args(["-K", &self.rx, "gro", "on"])
            .output()
            .map_err(|e| {
                TestbedError::Unavailable(format!(
                    "cannot run ethtool ({e}); `apt-get install ethtool`"
                ))
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(TestbedError::Unavailable(format!(
                "ethtool cannot turn GRO on for {} (`apt-get install ethtool`): {}",
                self.rx,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Gives the receiving end's NAPI its own kernel thread (`/sys/class/net/RX/threaded`),
    /// so that what receiving costs is that thread's CPU time ([`Testbed::rx_cpu_ns`]) and
    /// runs beside a generator that sends from userspace, as a NIC's receive core would.
    pub fn thread_rx_napi(&self) -> Result<(), TestbedError> {
        let script = format!("echo 1 > /sys/class/net/{}/threaded", self.rx);
        let mut cmd = match self.layout {
            Layout::RxInNamespace => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.ns, "sh", "-c", &script]);
                c
            }
            Layout::RxInHost => {
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            }
        };
        let out = cmd
            .output()
            .map_err(|e| TestbedError::Setup(format!("cannot thread {}'s NAPI: {e}", self.rx)))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(TestbedError::Setup(format!(
                "cannot thread {}'s NAPI: {}",
                self.rx,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// CPU time (ns) the receiving end's NAPI threads have used so far (`sum_exec_runtime`
    /// of `/proc/PID/schedstat`), `None` while the NAPI is not threaded or has no thread yet.
    pub fn rx_cpu_ns(&self) -> Option<u64> {
        // Kernel thread names are cut to 15 characters: `napi/RX-ID` keeps the name.
        let name: String = format!("napi/{}-", self.rx).chars().take(15).collect();
        let mut total = None;
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let p = e.path();
            let Some(comm) = std::fs::read_to_string(p.join("comm")).ok() else {
                continue;
            };
            if !comm.trim_end().starts_with(&name) {
                continue;
            }
            let ns = std::fs::read_to_string(p.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ns {
                *total.get_or_insert(0) += ns;
            }
        }
        total
    }

    /// Runs `f` inside the namespace (see `nfcc_runtime::traffic::in_netns`).
    pub fn in_ns<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, nfcc_runtime::RuntimeError> + Send,
    ) -> Result<T, TestbedError> {
        Ok(nfcc_runtime::traffic::in_netns(&self.ns, f)?)
    }

    /// Runs `f` where the receiving end lives.
    pub fn on_rx<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, nfcc_runtime::RuntimeError> + Send,
    ) -> Result<T, TestbedError> {
        match self.layout {
            Layout::RxInNamespace => self.in_ns(f),
            Layout::RxInHost => Ok(f()?),
        }
    }

    /// Runs `f` where the transmitting end lives (the generator must run there).
    pub fn on_tx<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, nfcc_runtime::RuntimeError> + Send,
    ) -> Result<T, TestbedError> {
        match self.layout {
            Layout::RxInHost => self.in_ns(f),
            Layout::RxInNamespace => Ok(f()?),
        }
    }

    /// Sends the frames of `mix` from the transmitting end (see
    /// `nfcc_runtime::traffic::Generator::blast`).
    pub fn blast(
        &self,
        mix: &[Vec<u8>],
        chunk: u32,
        total: Option<u64>,
        deadline: Option<std::time::Duration>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Sent, TestbedError> {
        self.blast_varying(mix, None, chunk, total, deadline, stop)
    }

    /// [`Testbed::blast`] with one field varied per packet (see
    /// `nfcc_runtime::traffic::Variation`).
    pub fn blast_varying(
        &self,
        mix: &[Vec<u8>],
        vary: Option<Variation>,
        chunk: u32,
        total: Option<u64>,
        deadline: Option<std::time::Duration>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Sent, TestbedError> {
        let mut held = self.generator.lock().unwrap_or_else(|e| e.into_inner());
        let reuse = matches!(&*held, Some((v, _)) if *v == vary);
        if !reuse {
            // The old generator goes first: its socket holds the queue.
            *held = None;
            let tx = self.tx.clone();
            let g =
                self.on_tx(move || Generator::with_variation(nfcc_runtime::ifindex(&tx)?, vary))?;
            *held = Some((vary, g));
        }
        let Some((_, g)) = held.as_mut() else {
            return Err(TestbedError::Setup("no generator".into()));
        };
        // Live frames name their interface by index, which the kernel resolves in the
        // sending thread's namespace.
        self.on_tx(move || g.blast(mix, chunk, total, deadline, stop))
    }

    /// Which generator this testbed's blasts use, and why the faster ones were not used
    /// (`None` before the first blast).
    pub fn generator(&self) -> Option<Selection> {
        self.generator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, g)| g.selection().clone())
    }

    /// The receiving end's counters (rx_packets, rx_dropped) as `ip -s link` reports them.
    /// Frames an XDP program drops count as received.
    pub fn rx_stats(&self) -> Result<(u64, u64), TestbedError> {
        let out = match self.layout {
            Layout::RxInNamespace => ip(&["-n", &self.ns, "-s", "-j", "link", "show", &self.rx])?,
            Layout::RxInHost => ip(&["-s", "-j", "link", "show", &self.rx])?,
        };
        let num = |key: &str| -> u64 {
            out.find("\"rx\":{")
                .and_then(|i| {
                    let rest = &out[i..];
                    let j = rest.find(&format!("\"{key}\":"))? + key.len() + 3;
                    rest[j..]
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        Ok((num("packets"), num("dropped")))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        remove(&self.ns, &self.host_if);
        if let Ok(mut l) = LIVE.lock() {
            l.retain(|(ns, _)| ns != &self.ns);
        }
    }
}
