//! nfcc-runtime: the only crate that makes `bpf()` and netlink syscalls. It knows the BPF
//! ABI (`nfcc-bpf`), not the compiler: any XDP/TC object loads here.
//!
//! - [`load`] parses an object, creates its maps and loads one XDP or TC program through aya,
//!   turning a verifier rejection into [`RuntimeError::Verifier`] with the kernel's log;
//!   [`Loaded`] runs it with `BPF_PROG_TEST_RUN` and reads and writes its maps by bytes;
//! - `attach` puts a program on an interface (XDP link, TCX, the NIC's HW mode); [`deploy`]
//!   keeps it there — pins under `/sys/fs/bpf/nfcc/<policy>/` and a manifest in `/run/nfcc`
//!   (`state`) — swaps versions (`--replace`) and removes it; [`offload`] deploys a NIC/host
//!   split; [`PinnedMaps`] reads a deployment's maps;
//! - [`traffic`] holds the traffic generators (live frames, AF_XDP, AF_PACKET), [`capture`] the packet sockets of the
//!   testbeds, [`traffic::in_netns`] runs work in a network namespace;
//! - [`links`] lists interfaces and follows link events (netlink), for the agent;
//! - [`can_load_bpf`] tells whether this process may load programs at all, so privileged tests
//!   can say why they were skipped.
//!
//! aya does the ELF parsing, BTF handling, map creation and program loading; the syscalls aya
//! does not expose live in the private `sys` module, which holds every `unsafe` block of the
//! crate.

mod attach;
pub mod capture;
pub mod deploy;
mod error;
pub mod links;
mod maps;
pub mod offload;
mod program;
mod state;
pub mod stats;
mod sys;
pub mod traffic;
pub mod xsk;

use std::os::fd::AsFd;
use std::sync::OnceLock;

pub use error::{RuntimeError, VerifierLog};
pub use maps::{MapShape, PinnedMaps};
pub use program::{load, min_frame, Loaded, RunStats, TestRun};

/// The index of interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32, RuntimeError> {
    sys::if_index(name).map_err(|e| {
        RuntimeError::Deploy(format!(
            "no interface `{name}` here ({e}); `ip link` lists the interfaces"
        ))
    })
}

/// Asks whether interface `name` runs offloaded BPF programs, the way `bpftool feature probe
/// dev` does (there is no capability bit): by loading a tiny XDP program bound to it. `Err`
/// carries the kernel's answer (EINVAL or EOPNOTSUPP for a device without offload).
pub fn offload_probe(name: &str) -> Result<(), RuntimeError> {
    let ifindex = ifindex(name)?;
    sys::load_offload_probe(ifindex)
        .map(drop)
        .map_err(|source| RuntimeError::Load {
            program: format!("offload probe for {name}"),
            source,
        })
}

/// The kind of program to load: the kernel program type, which decides its test-run context.
pub use nfcc_bpf::ProgType;

/// Reports whether this process can load and test-run BPF programs.
///
/// It loads the two-instruction XDP program `r0 = XDP_PASS; exit` and test-runs it once on an
/// empty Ethernet frame. `Err` says, in a lowercase sentence fit for a `skipped: ...` message,
/// what failed and what usually fixes it. The answer is computed once per process.
pub fn can_load_bpf() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER.get_or_init(probe_bpf).clone()
}

/// Does the work of [`can_load_bpf`].
fn probe_bpf() -> Result<(), String> {
    /// `XDP_PASS`, which the probe program returns.
    const XDP_PASS: i32 = 2;
    let prog = sys::load_trivial_xdp(XDP_PASS).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "; run as root or with CAP_BPF and CAP_NET_ADMIN"
            }
            Some(libc::ENOSYS) => {
                "; the kernel lacks CONFIG_BPF_SYSCALL or a seccomp filter blocks bpf()"
            }
            _ => "",
        };
        format!("cannot load a trivial xdp program: {e}{hint}")
    })?;
    let frame = [0u8; 14];
    let mut out = [0u8; 64];
    let run = sys::prog_test_run(prog.as_fd(), &frame, &mut out, 1, &[])
        .map_err(|(e, _)| format!("cannot test-run a trivial xdp program: {e}"))?;
    if run.retval as i32 != XDP_PASS {
        return Err(format!(
            "a trivial xdp program returned {} instead of {XDP_PASS} in a test run",
            run.retval
        ));
    }
    Ok(())
}
