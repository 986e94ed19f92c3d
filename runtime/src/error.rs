//! The runtime's error type and the kernel verifier log.

use std::fmt;
use std::io;

use crate::ProgType;

/// The kernel verifier's log for a program it rejected, as the kernel wrote it.
///
/// It displays as its lines, one per line, without the trailing blank line the kernel leaves.
/// The compiler will map the instruction numbers in it back to `.nf` lines through the line
/// information it emits.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierLog(String);

impl VerifierLog {
    /// Wraps the text of a verifier log.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Returns the whole log as the kernel wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the log's lines without their line breaks, skipping empty lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.0.lines().filter(|line| !line.trim().is_empty())
    }

    /// Returns whether the kernel wrote no log at all.
    pub fn is_empty(&self) -> bool {
        self.lines().next().is_none()
    }
}

impl fmt::Display for VerifierLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

impl fmt::Debug for VerifierLog {
    // The log is multi-line text; printing it escaped would make panics unreadable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierLog(\n{self}\n)")
    }
}

/// Everything that can go wrong when loading, running or inspecting a program in the kernel.
///
/// Messages are lowercase and name the program or map concerned; the error that caused one,
/// where there is one, is kept as its [`std::error::Error::source`] and also quoted in the
/// message, because callers such as the CLI print only the top-level message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Attaching, pinning, recording or removing a deployment failed; the message says what
    /// and what to do.
    #[error("{0}")]
    Deploy(String),
    /// The traffic generator could not be set up or could not send; `what` says which step.
    #[error("traffic generator: {what}: {source}")]
    Traffic {
        /// The step that failed, in words.
        what: String,
        /// The syscall's error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused every traffic generator asked for (`--generator` named one, or
    /// `auto` found none that works); each refusal names the generator, the step and the errno.
    #[error("traffic generator: {}{hint}", refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    GeneratorRefused {
        /// Each generator tried, with why it was refused.
        refused: Vec<crate::traffic::Refusal>,
        /// What to try instead.
        hint: &'static str,
    },
    /// `NFCC_GENERATOR` names no generator.
    #[error("NFCC_GENERATOR: {0}")]
    GeneratorNamed(#[source] crate::traffic::UnknownGenerator),
    /// A network namespace could not be entered.
    #[error("cannot enter network namespace `{name}`: {source}")]
    Netns {
        /// The namespace's name (under /run/netns).
        name: String,
        /// The error from opening it or from setns.
        #[source]
        source: io::Error,
    },
    /// The object could not be parsed, relocated or prepared (its BTF loaded, its maps
    /// created): it is not an eBPF ELF object aya understands, or the kernel refused a map.
    #[error("cannot load the eBPF object: {source}")]
    Object {
        /// What aya reported.
        #[source]
        source: aya::EbpfError,
    },

    /// The object has no program (function) of the requested name.
    #[error("the object has no program `{program}` (it has: {})", available.join(", "))]
    ProgramNotFound {
        /// The requested program name.
        program: String,
        /// The names of the programs the object does have, sorted.
        available: Vec<String>,
    },

    /// The program's ELF section makes it a different kind of program than was asked for.
    #[error("program `{program}` has type {found}, not {expected}")]
    WrongKind {
        /// The program's name.
        program: String,
        /// The kind the caller asked for.
        expected: ProgType,
        /// The program type aya derived from the ELF section name.
        found: String,
    },

    /// The kernel verifier rejected the program; `log` says why, instruction by instruction.
    #[error("the kernel verifier rejected program `{program}`:\n{log}")]
    Verifier {
        /// The program's name.
        program: String,
        /// The verifier's log.
        log: VerifierLog,
        /// The `BPF_PROG_LOAD` error (usually `EACCES` or `EINVAL`); the log says more.
        #[source]
        source: io::Error,
    },

    /// `BPF_PROG_LOAD` failed without a verifier log, for example for lack of privilege.
    #[error("the kernel refused to load program `{program}`: {source}")]
    Load {
        /// The program's name.
        program: String,
        /// The `BPF_PROG_LOAD` error.
        #[source]
        source: io::Error,
    },

    /// Another aya program operation failed (reading its file descriptor or its info).
    #[error("program `{program}`: {source}")]
    Program {
        /// The program's name.
        program: String,
        /// What aya reported.
        #[source]
        source: aya::programs::ProgramError,
    },

    /// A test run was asked for with zero repetitions.
    #[error("a test run needs at least one repetition, not 0")]
    ZeroRepeat,

    /// The test frame is shorter than `BPF_PROG_TEST_RUN` accepts: an Ethernet header, and for
    /// a TC program also the IPv4 or IPv6 header its ethertype announces.
    #[error("a test frame needs at least {min} bytes ({what}), not {len}")]
    FrameTooShort {
        /// The frame's length.
        len: usize,
        /// The shortest frame the kernel accepts.
        min: usize,
        /// What those bytes must hold, in words.
        what: &'static str,
    },

    /// The program's output frame did not fit the output buffer.
    #[error("the output frame of program `{program}` is {needed} bytes, more than the {capacity}-byte buffer")]
    OutputTooLarge {
        /// The program's name.
        program: String,
        /// The output frame's length as the kernel reported it.
        needed: u32,
        /// The output buffer's capacity.
        capacity: usize,
    },

    /// `BPF_PROG_TEST_RUN` failed (for example `EINVAL` for a frame longer than a page).
    #[error("test run of program `{program}` failed: {source}")]
    TestRun {
        /// The program's name.
        program: String,
        /// The syscall's error.
        #[source]
        source: io::Error,
    },

    /// The object has no map of the requested name.
    #[error("the object has no map `{map}` (it has: {})", available.join(", "))]
    MapNotFound {
        /// The requested map name.
        map: String,
        /// The names of the maps the object does have, sorted.
        available: Vec<String>,
    },

    /// The map's information (type, key and value size) could not be read.
    #[error("cannot read the info of map `{map}`: {source}")]
    MapInfo {
        /// The map's name.
        map: String,
        /// What aya reported.
        #[source]
        source: aya::maps::MapError,
    },

    /// The map is not of a type the operation supports.
    #[error("map `{map}` is a {found} map, but this needs {expected}")]
    MapKind {
        /// The map's name.
        map: String,
        /// The map's type.
        found: String,
        /// What the operation needs, in words.
        expected: &'static str,
    },

    /// A key or value has the wrong length for the map.
    #[error("map `{map}` takes {what}s of {expected} bytes, not {got}")]
    MapSize {
        /// The map's name.
        map: String,
        /// `"key"` or `"value"`.
        what: &'static str,
        /// The length the map expects (for per-CPU values, one CPU's value or all of them).
        expected: String,
        /// The length given.
        got: usize,
    },

    /// A map element syscall failed.
    #[error("{op} on map `{map}` failed: {source}")]
    Map {
        /// The map's name.
        map: String,
        /// The `bpf()` command, such as `BPF_MAP_UPDATE_ELEM`.
        op: &'static str,
        /// The syscall's error.
        #[source]
        source: io::Error,
    },

    /// The number of possible CPUs, which sizes per-CPU values, could not be read.
    #[error("cannot read the number of possible cpus ({what}): {source}")]
    PossibleCpus {
        /// The file or step that failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
