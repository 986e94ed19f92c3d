//! nfcc-driver: the library behind every `nfcc` command — and behind the agent and the
//! importers, which need the same things. The CLI parses arguments and renders; this crate
//! decides. Every command's behaviour is testable here without spawning a binary.
//!
//! - [`source`]: reading and checking files, choosing a policy, compiling it alone;
//! - [`compile`]: objects, disassembly, IR, the NIC/host split's files, ClassBench imports;
//! - [`engine`] and [`test`]: the engine factory and test runs (JUnit included);
//! - [`run`]: captures through a policy or object on any engine;
//! - [`conformance`]: the BPF ISA conformance suite on the emulator's engines;
//! - [`deploy`]: preparing, loading, replacing, unloading, status — with the manifest;
//! - [`offload`]: the offload gate shared by `offload-check` and `load --mode offload`;
//! - [`counters`], [`sets`], [`watch`]: a deployed policy read and changed from its manifest;
//! - [`metrics`]: Prometheus text of deployed policies, read at scrape time;
//! - [`bench`]: what a testbed measurement needs (mode, traffic, subject);
//! - [`error`]: typed errors and the one mapping to exit codes.
//!
//! The crates below are re-exported so the CLI depends on this crate alone.

pub mod bench;
pub mod capture;
pub mod compile;
pub mod conformance;
pub mod counters;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod import;
pub mod inplace;
pub mod metrics;
pub mod offload;
pub mod pools;
pub mod run;
pub mod sets;
pub mod source;
pub mod test;
pub mod verify;
pub mod watch;

pub use error::{exit, DriverError};
pub use nfcc_bpf as bpf;
pub use nfcc_compiler as compiler;
pub use nfcc_dsl as dsl;
pub use nfcc_emulator as emulator;
pub use nfcc_offload as offload_crate;
pub use nfcc_runtime as runtime;
pub use nfcc_testbeds as testbeds;
