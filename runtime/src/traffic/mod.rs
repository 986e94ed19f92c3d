//! Traffic generators: frames sent out of one interface (a testbed's transmitting veth) so
//! that the program on its peer receives them. Three ways, fastest first:
//!
//! - [`Kind::Live`]: `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` on a tiny
//!   redirecting XDP program (`live`): the kernel transmits page-pool copies in batches from
//!   the calling thread; the receiver's XDP program runs on the same core in the same softirq
//!   pass. Kernels before 5.18 lack it and hardened ones refuse it (EPERM).
//! - [`Kind::Xsk`]: an AF_XDP socket transmitting on the interface's queue 0 in copy mode
//!   (`xsk`): frames written into shared memory, a TX ring, one wakeup per batch.
//! - [`Kind::Packet`]: an AF_PACKET socket with `PACKET_QDISC_BYPASS`, one `sendmmsg` per
//!   batch (`packet`): what every kernel with packet sockets can do.
//!
//! The choice is made once per process ([`Choice::Auto`], the default, or `NFCC_GENERATOR`,
//! or [`set_choice`] from `--generator`): the first generator opened probes them in order on
//! its interface and every later one uses what the probe found, so a bench run, a test run
//! and the tests that count frames all use one generator. [`Selection`] says which ran and
//! why the faster ones were not used. Every generator delivers each frame it reports sent:
//! where the device pushes back, it waits and tries again, and a frame the device dropped is
//! sent again, so tests can count frames exactly.

mod live;
mod packet;
mod xsk;

use crate::{sys, RuntimeError};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The largest frame a generator sends (a page minus the headroom and shared info the kernel
/// keeps around an XDP frame; also below the AF_XDP chunk size).
pub const MAX_FRAME: usize = 3500;

/// A field the generator varies per packet: the big-endian u32 at `offset` becomes
/// `base + random % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variation {
    /// Byte offset in the frame (26 is the IPv4 source of an untagged frame).
    pub offset: u16,
    /// The first value.
    pub base: u32,
    /// How many consecutive values (1 to 2^31).
    pub count: u32,
}

impl Variation {
    /// Writes a random value of the range into `frame` (a frame too short is left alone).
    fn apply(&self, frame: &mut [u8]) {
        let at = usize::from(self.offset);
        if let Some(field) = frame.get_mut(at..at + 4) {
            let v = self
                .base
                .wrapping_add(fastrand::u32(..).checked_rem(self.count).unwrap_or(0));
            field.copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// A way of generating traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `BPF_PROG_TEST_RUN` in live-frame mode on a redirecting XDP program.
    Live,
    /// AF_XDP transmit, copy mode.
    Xsk,
    /// AF_PACKET with `PACKET_QDISC_BYPASS` and `sendmmsg`.
    Packet,
}

impl Kind {
    /// Every generator, fastest first (the order [`Choice::Auto`] probes them in).
    pub const ALL: [Kind; 3] = [Kind::Live, Kind::Xsk, Kind::Packet];

    /// The name `--generator` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Xsk => "xsk",
            Kind::Packet => "packet",
        }
    }

    /// What it is, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Live => "live frames: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES",
            Kind::Xsk => "AF_XDP transmit, copy mode",
            Kind::Packet => "AF_PACKET with PACKET_QDISC_BYPASS, sendmmsg",
        }
    }

    /// Whether the receiving program runs in the sender's own softirq pass, on the sender's
    /// core (so the sending rate is that core's rate for generator and receiver together).
    pub fn shares_the_receivers_core(self) -> bool {
        self == Kind::Live
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which generator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// Probe them fastest first and use the first that works.
    #[default]
    Auto,
    /// Only this one (an error when the kernel refuses it).
    Only(Kind),
}

/// A generator name that is none of `auto`, `live`, `xsk` and `packet` (the name as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no traffic generator `{0}` (auto, live, xsk or packet)")]
pub struct UnknownGenerator(pub String);

impl std::str::FromStr for Choice {
    type Err = UnknownGenerator;

    fn from_str(s: &str) -> Result<Choice, UnknownGenerator> {
        if s == "auto" {
            return Ok(Choice::Auto);
        }
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .map(Choice::Only)
            .ok_or_else(|| UnknownGenerator(s.to_string()))
    }
}

/// Why a generator was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The generator.
    pub kind: Kind,
    /// What the kernel refused.
    pub what: String,
    /// The error number, when the kernel gave one.
    pub errno: Option<i32>,
    /// The error as text.
    pub error: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} refused ({}: ", self.kind, self.what)?;
        // The OS's text without Rust's "(os error N)" suffix, lower-cased.
        let text = self.error.split(" (os error").next().unwrap_or(&self.error);
        match self.errno.and_then(errno_name) {
            Some(name) => write!(f, "{name}, {})", text.to_lowercase()),
            None => write!(f, "{})", text.to_lowercase()),
        }
    }
}

/// The symbolic name of the error numbers a probe meets.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        524 => "ENOTSUPP",
        libc::EBUSY => "EBUSY",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        libc::ENOMEM => "ENOMEM",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ENOSYS => "ENOSYS",
        _ => return None,
    })
}

/// Which generator a run uses, and why the faster ones were not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The generator that runs.
    pub kind: Kind,
    /// The faster generators the probe tried first, each with its refusal.
    pub refused: Vec<Refusal>,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("traffic generator: ")?;
        for r in &self.refused {
            write!(f, "{r}; ")?;
        }
        if !self.refused.is_empty() {
            f.write_str("fell back to ")?;
        }
        write!(f, "{} ({})", self.kind, self.kind.describe())
    }
}

/// The process's choice, and what its probe found.
static CHOICE: Mutex<Option<Choice>> = Mutex::new(None);
static PROBED: Mutex<Option<Selection>> = Mutex::new(None);

/// Sets the generator every later [`Generator::open`] of this process uses (`--generator`).
/// A different choice forgets an earlier probe.
pub fn set_choice(choice: Choice) {
    let mut c = CHOICE.lock().unwrap_or_else(|e| e.into_inner());
    if *c != Some(choice) {
        *PROBED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    *c = Some(choice);
}

/// The process's choice: set by [`set_choice`], else `NFCC_GENERATOR` (auto, live, xsk,
/// packet), else [`Choice::Auto`].
pub fn choice() -> Result<Choice, RuntimeError> {
    if let Some(c) = *CHOICE.lock().unwrap_or_else(|e| e.into_inner()) {
        return Ok(c);
    }
    match std::env::var("NFCC_GENERATOR") {
        Ok(v) if !v.is_empty() => v.parse().map_err(RuntimeError::GeneratorNamed),
        _ => Ok(Choice::Auto),
    }
}

/// What the process's generator choice found, once a generator was opened.
pub fn selected() -> Option<Selection> {
    PROBED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What one [`Generator::blast`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    /// Frames delivered to the interface (each one the device took).
    pub frames: u64,
    /// Wall-clock time spent sending.
    pub elapsed: Duration,
}

/// One generator's sending end.
enum Sender {
    Live(live::Live),
    Xsk(xsk::XskSender),
    Packet(packet::PacketSender),
}

impl Sender {
    fn open(kind: Kind, ifindex: u32, vary: Option<Variation>) -> Result<Sender, Refusal> {
        match kind {
            Kind::Live => live::Live::open(ifindex, vary).map(Sender::Live),
            Kind::Xsk => xsk::XskSender::open(ifindex, vary).map(Sender::Xsk),
            Kind::Packet => packet::PacketSender::open(ifindex, vary).map(Sender::Packet),
        }
    }
}

/// A refusal from an I/O error.
fn refusal(kind: Kind, what: impl Into<String>, e: &std::io::Error) -> Refusal {
    Refusal {
        kind,
        what: what.into(),
        errno: e.raw_os_error(),
        error: e.to_string(),
    }
}

/// A traffic generator bound to one transmitting interface.
pub struct Generator {
    sender: Sender,
    ifindex: u32,
    selection: Selection,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("kind", &self.selection.kind)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

impl Generator {
    /// The process's generator (see [`choice`]) for interface `ifindex` of the calling
    /// thread's namespace: frames go out of it, to its veth peer.
    pub fn new(ifindex: u32) -> Result<Generator, RuntimeError> {
        Generator::with_variation(ifindex, None)
    }

    /// [`Generator::new`], with one 32-bit big-endian field of every frame rewritten to a
    /// random value of `vary` before it is sent — a flow mix from one frame. Checksums are not
    /// fixed (XDP policies do not check them).
    pub fn with_variation(
        ifindex: u32,
        vary: Option<Variation>,
    ) -> Result<Generator, RuntimeError> {
        Generator::open(ifindex, choice()?, vary)
    }

    /// A generator of `choice` for `ifindex`. With [`Choice::Auto`], the first call of the
    /// process probes the generators fastest first and later calls use what it found.
    pub fn open(
        ifindex: u32,
        choice: Choice,
        vary: Option<Variation>,
    ) -> Result<Generator, RuntimeError> {
        let known = selected();
        let (order, mut refused): (Vec<Kind>, Vec<Refusal>) = match (choice, known) {
            (Choice::Only(k), _) => (vec![k], Vec::new()),
            (Choice::Auto, Some(s)) => (vec![s.kind], s.refused),
            (Choice::Auto, None) => (Kind::ALL.to_vec(), Vec::new()),
        };
        for kind in order.iter().copied() {
            match Sender::open(kind, ifindex, vary) {
                Ok(sender) => {
                    let selection = Selection {
                        kind,
                        refused: refused.clone(),
                    };
                    if choice == Choice::Auto {
                        *PROBED.lock().unwrap_or_else(|e| e.into_inner()) = Some(selection.clone());
                    }
                    return Ok(Generator {
                        sender,
                        ifindex,
                        selection,
                    });
                }
                Err(r) if order.len() == 1 => {
                    let hint = match choice {
                        Choice::Only(_) => "; `--generator auto` falls back to the others",
                        Choice::Auto => "",
                    };
                    return Err(RuntimeError::GeneratorRefused {
                        refused: vec![r],
                        hint,
                    });
                }
                Err(r) => refused.push(r),
            }
        }
        Err(RuntimeError::GeneratorRefused {
            refused,
            hint: "; no traffic generator works here",
        })
    }

    /// Which generator this is, and why the faster ones were not used.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Which generator this is.
    pub fn kind(&self) -> Kind {
        self.selection.kind
    }

    /// Sends `count` copies of `frame` (at least 14 and at most [`MAX_FRAME`] bytes).
    pub fn send(&mut self, frame: &[u8], count: u32) -> Result<(), RuntimeError> {
        let stop = AtomicBool::new(false);
        let total = Some(u64::from(count));
        self.blast(&[frame.to_vec()], count, total, None, &stop)
            .map(drop)
    }

    /// Sends the frames of `mix` until `total` frames are sent, `deadline` has passed or
    /// `stop` is set. The live generator sends `chunk` copies of each frame in turn (each
    /// live run sets up a page pool, so runs must be long); the others send the frames of
    /// the mix one after the other, in batches.
    pub fn blast(
        &mut self,
        mix: &[Vec<u8>],
        chunk: u32,
        total: Option<u64>,
        deadline: Option<Duration>,
        stop: &AtomicBool,
    ) -> Result<Sent, RuntimeError> {
        let start = Instant::now();
        for f in mix {
            check_frame(f)?;
        }
        let limit = total.unwrap_or(u64::MAX);
        if mix.is_empty() || limit == 0 {
            return Ok(Sent {
                frames: 0,
                elapsed: start.elapsed(),
            });
        }
        let until = deadline.map(|d| start + d);
        let (what, sent) = match &mut self.sender {
            Sender::Live(l) => (
                "live-frame test run",
                l.blast(mix, chunk, limit, until, stop),
            ),
            Sender::Xsk(x) => ("AF_XDP transmit", x.send(mix, limit, until, stop)),
            Sender::Packet(p) => ("AF_PACKET transmit", p.send(mix, limit, until, stop)),
        };
        let frames = sent.map_err(|source| RuntimeError::Traffic {
            what: format!("{what} into ifindex {}", self.ifindex),
            source,
        })?;
        Ok(Sent {
            frames,
            elapsed: start.elapsed(),
        })
    }
}

fn check_frame(frame: &[u8]) -> Result<(), RuntimeError> {
    if frame.len() < 14 || frame.len() > MAX_FRAME {
        return Err(RuntimeError::Traffic {
            what: format!(
                "a frame of {} bytes cannot be sent (14 to {MAX_FRAME} bytes)",
                frame.len()
            ),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    Ok(())
}

/// Whether `stop` is set or `until` has passed.
fn done(stop: &AtomicBool, until: Option<Instant>) -> bool {
    stop.load(Ordering::Relaxed) || until.is_some_and(|u| Instant::now() >= u)
}

/// Runs `f` on a thread joined to the network namespace `name` (a file under `/run/netns`,
/// as `ip netns add` makes) and returns its result. Interface names and indexes inside `f`
/// are those of that namespace; links and programs it creates stay where they were attached.
pub fn in_netns<T: Send>(
    name: &str,
    f: impl FnOnce() -> Result<T, RuntimeError> + Send,
) -> Result<T, RuntimeError> {
    let path = std::path::Path::new("/run/netns").join(name);
    let file = std::fs::File::open(&path).map_err(|source| RuntimeError::Netns {
        name: name.to_string(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::setns_net(file.as_fd()).map_err(|source| RuntimeError::Netns {
                name: name.to_string(),
                source,
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(RuntimeError::Deploy(format!(
                "a task in network namespace `{name}` panicked"
            )))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_name_parses_or_says_which_exist() {
        assert_eq!("auto".parse::<Choice>(), Ok(Choice::Auto));
        assert_eq!("xsk".parse::<Choice>(), Ok(Choice::Only(Kind::Xsk)));
        let e = "pktgen".parse::<Choice>().err();
        assert_eq!(e, Some(UnknownGenerator("pktgen".into())));
        assert_eq!(
            RuntimeError::GeneratorNamed(UnknownGenerator("pktgen".into())).to_string(),
            "NFCC_GENERATOR: no traffic generator `pktgen` (auto, live, xsk or packet)"
        );
    }
}
