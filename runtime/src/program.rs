//! Loading one program of an object through aya, and running it with `BPF_PROG_TEST_RUN`.

use std::os::fd::AsFd;

use aya::programs::{Program, ProgramError, SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};

use crate::error::{RuntimeError, VerifierLog};
use crate::{sys, ProgType};

/// The shortest frame `BPF_PROG_TEST_RUN` accepts for XDP and TC programs: an Ethernet header.
const MIN_FRAME: usize = 14;

/// Returns the shortest frame `BPF_PROG_TEST_RUN` accepts for a `kind` program given the
/// frame's ethertype, and what those bytes must hold.
///
/// Both program types need an Ethernet header. For TC the kernel builds an skb and, when the
/// ethertype is IPv4 or IPv6, pulls the whole fixed IP header into it, failing with `EINVAL`
/// when the frame is too short; this check turns that into a clear error.
pub fn min_frame(kind: ProgType, frame: &[u8]) -> (usize, &'static str) {
    /// Ethertypes IPv4 and IPv6.
    const ETH_P_IP: [u8; 2] = [0x08, 0x00];
    const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
    match (kind, frame.get(12..14)) {
        (ProgType::Tc, Some(t)) if t == ETH_P_IP => (
            MIN_FRAME + 20,
            "an ethernet and an ipv4 header for a tc program",
        ),
        (ProgType::Tc, Some(t)) if t == ETH_P_IPV6 => (
            MIN_FRAME + 40,
            "an ethernet and an ipv6 header for a tc program",
        ),
        _ => (MIN_FRAME, "an ethernet header"),
    }
}

/// Room the output buffer has beyond the input frame.
///
/// An XDP program can grow its frame by at most the 256-byte headroom at the front plus the
/// tailroom left in its page, and a test run's frame never exceeds a page, so 4 KiB extra
/// covers every XDP run; TC programs that grow further get [`RuntimeError::OutputTooLarge`].
const OUT_SLACK: usize = 4096;

/// A loaded program together with the object it came from.
///
/// It owns the [`aya::Ebpf`] instance, and with it the program's and maps' file descriptors:
/// dropping it unloads the program and frees the maps that nothing else (a pin, an attachment)
/// holds. Maps are addressed by their ELF symbol name.
#[derive(Debug)]
pub struct Loaded {
    /// The object's maps and programs; the program named `program` is loaded.
    pub(crate) ebpf: Ebpf,
    /// The loaded program's function name.
    pub(crate) program: String,
    /// The kind it was loaded as.
    kind: ProgType,
}

/// The outcome of one [`Loaded::test_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value: an `XDP_*` action for XDP, a `TC_ACT_*` action for TC.
    pub retval: u32,
    /// The frame as the program left it (after the last repetition).
    pub data_out: Vec<u8>,
    /// The kernel's mean run time per repetition, in nanoseconds.
    pub duration_ns: u32,
}

/// Parses `object`, creates its maps and loads its program `program` as a `kind` program.
///
/// `program` is the program's function name (not its section name). The kernel's verifier
/// checks the program here; when it refuses, the error is [`RuntimeError::Verifier`] with the
/// verifier's log. Only the named program is loaded; the object's other programs stay unloaded.
pub fn load(object: &[u8], program: &str, kind: ProgType) -> Result<Loaded, RuntimeError> {
    let mut ebpf = EbpfLoader::new()
        .load(object)
        .map_err(|source| RuntimeError::Object { source })?;
    let Some(prog) = ebpf.program_mut(program) else {
        let mut available: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
        available.sort();
        return Err(RuntimeError::ProgramNotFound {
            program: program.to_owned(),
            available,
        });
    };
    let wrong_kind = |prog: &Program| RuntimeError::WrongKind {
        program: program.to_owned(),
        expected: kind,
        found: format!("{:?}", prog.prog_type()).to_lowercase(),
    };
    let loaded = match (kind, &mut *prog) {
        (ProgType::Xdp, Program::Xdp(xdp)) => Xdp::load(xdp),
        (ProgType::Tc, Program::SchedClassifier(cls)) => SchedClassifier::load(cls),
        (_, other) => return Err(wrong_kind(other)),
    };
    loaded.map_err(|e| load_error(program, e))?;
    Ok(Loaded {
        ebpf,
        program: program.to_owned(),
        kind,
    })
}

/// Turns aya's load error into a [`RuntimeError`], keeping the verifier log when there is one.
fn load_error(program: &str, error: ProgramError) -> RuntimeError {
    match error {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = VerifierLog::new(verifier_log.to_string());
            if log.is_empty() {
                RuntimeError::Load {
                    program: program.to_owned(),
                    source: io_error,
                }
            } else {
                RuntimeError::Verifier {
                    program: program.to_owned(),
                    log,
                    source: io_error,
                }
            }
        }
        source => RuntimeError::Program {
            program: program.to_owned(),
            source,
        },
    }
}

impl Loaded {
    /// Returns the loaded program's function name.
    pub fn program_name(&self) -> &str {
        &self.program
    }

    /// Returns the kind the program was loaded as.
    pub fn kind(&self) -> ProgType {
        self.kind
    }

    /// Returns the loaded program.
    fn prog(&self) -> Result<&Program, RuntimeError> {
        // `load` checked that the object has this program, so this finds it.
        self.ebpf
            .program(&self.program)
            .ok_or_else(|| RuntimeError::ProgramNotFound {
                program: self.program.clone(),
                available: Vec::new(),
            })
    }

    /// Wraps an aya program error with this program's name.
    fn program_error(&self, source: ProgramError) -> RuntimeError {
        RuntimeError::Program {
            program: self.program.clone(),
            source,
        }
    }

    /// Runs the program on `data` `repeat` times with `BPF_PROG_TEST_RUN` (`repeat` >= 1).
    ///
    /// Map updates the program makes persist between repetitions and runs, so counters count
    /// every repetition. `data` must be at least an Ethernet header (14 bytes) long, and for a
    /// TC program whose frame says IPv4 or IPv6 also hold that fixed IP header (34 or 54 bytes):
    /// shorter frames give [`RuntimeError::FrameTooShort`]. A TC frame must also fit in a page
    /// with the kernel's headroom (about 3.5 KiB), or the kernel answers `EINVAL`.
    pub fn test_run(&self, data: &[u8], repeat: u32) -> Result<TestRun, RuntimeError> {
        self.test_run_ctx(data, repeat, &[])
    }

    /// [`Loaded::test_run`] as if the frame arrived on interface `ifindex` (queue 0), which
    /// must exist in this network namespace: what `bpf_fib_lookup` and `pkt.ifindex` see.
    pub fn test_run_on(
        &self,
        data: &[u8],
        repeat: u32,
        ifindex: u32,
    ) -> Result<TestRun, RuntimeError> {
        let ctx: Vec<u8> = match self.kind {
            // struct xdp_md: data, data_end (the frame's length), data_meta, ingress_ifindex,
            // rx_queue_index, egress_ifindex.
            ProgType::Xdp => [0, data.len() as u32, 0, ifindex, 0, 0]
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect(),
            // struct __sk_buff up to `ifindex` (offset 40); the rest stays zero.
            ProgType::Tc => {
                let mut c = vec![0u8; 44];
                c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
                c
            }
        };
        self.test_run_ctx(data, repeat, &ctx)
    }

    fn test_run_ctx(&self, data: &[u8], repeat: u32, ctx: &[u8]) -> Result<TestRun, RuntimeError> {
        if repeat == 0 {
            return Err(RuntimeError::ZeroRepeat);
        }
        let (min, what) = min_frame(self.kind, data);
        if data.len() < min {
            return Err(RuntimeError::FrameTooShort {
                len: data.len(),
                min,
                what,
            });
        }
        let fd = self.prog()?.fd().map_err(|e| self.program_error(e))?;
        let mut out = vec![0u8; data.len() + OUT_SLACK];
        match sys::prog_test_run(fd.as_fd(), data, &mut out, repeat, ctx) {
            Ok(raw) => {
                out.truncate(raw.size_out as usize);
                Ok(TestRun {
                    retval: raw.retval,
                    data_out: out,
                    duration_ns: raw.duration,
                })
            }
            Err((e, raw)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Err(RuntimeError::OutputTooLarge {
                    program: self.program.clone(),
                    needed: raw.size_out,
                    capacity: out.len(),
                })
            }
            Err((source, _)) => Err(RuntimeError::TestRun {
                program: self.program.clone(),
                source,
            }),
        }
    }

    /// Fills the redirect-targets map of a compiled policy: slot `i` gets the index of
    /// interface `names[i]` in the calling thread's network namespace. A missing interface is
    /// an error that names it (a policy redirecting into nothing must not be deployed).
    pub fn fill_redirects(&self, policy: &str, names: &[String]) -> Result<(), RuntimeError> {
        let map = nfcc_bpf::layout::redirect_map_name(policy);
        for (i, n) in names.iter().enumerate() {
            let ifindex = crate::sys::if_index(n).map_err(|_| {
                RuntimeError::Deploy(format!(
                    "policy `{policy}` redirects to interface `{n}`, which does not exist here; create it or change the policy"
                ))
            })?;
            self.map_update(&map, &(i as u32).to_le_bytes(), &ifindex.to_le_bytes())?;
        }
        Ok(())
    }

    /// Per-rule packet counts (rules, then the default) of an nfcc policy compiled as this
    /// program, summed over CPUs — how test engines learn the deciding rule.
    pub fn rule_counts(&self, rules: usize) -> Result<Vec<u64>, RuntimeError> {
        let map = nfcc_bpf::layout::stats_map_name(&self.program);
        (0..=rules as u32)
            .map(|i| {
                self.percpu_array_sum(&map, i)
                    .map(|v| v.first().copied().unwrap_or(0))
            })
            .collect()
    }

    /// Runs `data` once (as [`Loaded::test_run`]) and gives the statistics slot the nfcc
    /// program decided with, read from its packet vector (`nfcc_bpf::layout::DECIDED_OFFSET`):
    /// three syscalls whatever the number of rules. `None` for programs without a vector (NIC
    /// code, policies that read nothing of the packet): read [`Loaded::rule_counts`] then.
    pub fn test_run_decided(&self, data: &[u8]) -> Result<(TestRun, Option<u32>), RuntimeError> {
        let map = nfcc_bpf::layout::scratch_map_name(&self.program);
        let Some(size) = self.map_value_size(&map) else {
            return Ok((self.test_run(data, 1)?, None));
        };
        let key = 0u32.to_ne_bytes();
        let mut blank = vec![0u8; size];
        let at = nfcc_bpf::layout::DECIDED_OFFSET;
        blank[at..at + 4].copy_from_slice(&nfcc_bpf::layout::UNDECIDED.to_le_bytes());
        self.map_update(&map, &key, &blank)?;
        let run = self.test_run(data, 1)?;
        let lanes = self.map_lookup(&map, &key)?.unwrap_or_default();
        Ok((run, nfcc_bpf::layout::decided(&lanes, size)))
    }

    /// Returns the kernel's id for the loaded program (as `bpftool prog show id N` uses).
    pub fn program_id(&self) -> Result<u32, RuntimeError> {
        let info = self.prog()?.info().map_err(|e| self.program_error(e))?;
        Ok(info.id())
    }

    /// Returns how many instructions the verifier processed (`bpf_prog_info.verified_insns`).
    ///
    /// This is the verifier's "processed insns" count, which grows with the paths it explores
    /// and is the number limited to one million. `None` when the kernel does not report it
    /// (before Linux 5.16) or the program info cannot be read.
    pub fn verified_insns(&self) -> Option<u32> {
        self.prog().ok()?.info().ok()?.verified_instruction_count()
    }

    /// The kernel's run statistics of the program: nanoseconds spent in it and runs, summed
    /// since it was loaded while statistics were on ([`crate::stats::RunTimeStats`]).
    pub fn run_stats(&self) -> Result<RunStats, RuntimeError> {
        let info = self.prog()?.info().map_err(|e| self.program_error(e))?;
        Ok(RunStats {
            ns: info.run_time().as_nanos() as u64,
            runs: info.run_count(),
        })
    }
}

/// A program's accumulated run time and run count (`bpf_prog_info.run_time_ns`, `run_cnt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    /// Nanoseconds spent running the program.
    pub ns: u64,
    /// How many times it ran.
    pub runs: u64,
}

impl RunStats {
    /// Mean nanoseconds per run between `before` and `self`; `None` without runs.
    pub fn mean_ns_since(&self, before: &RunStats) -> Option<f64> {
        let runs = self.runs.checked_sub(before.runs).filter(|r| *r > 0)?;
        Some(self.ns.saturating_sub(before.ns) as f64 / runs as f64)
    }
}
