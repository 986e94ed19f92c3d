//! nfcc-testbeds: real kernel interfaces for checking and measuring policies, on one machine
//! with no special hardware.
//!
//! - [`topology`]: a network namespace joined to the host by a veth pair, named uniquely per
//!   process and testbed, removed when dropped — also on panic, Ctrl-C and SIGTERM — and swept
//!   when a crashed process left one behind.
//! - [`bench`]: Mpps of a policy (or a baseline) on the receiving veth, driven by the
//!   process's traffic generator (`nfcc_runtime::traffic`), with figures that do not depend on it.
//!
//! Every syscall goes through `nfcc_runtime`; this crate runs `ip` for topology changes.

pub mod baseline;
pub mod bench;
pub mod dsr;
pub mod netfilter;
pub mod plot;
pub mod sweep;
pub mod topology;
pub mod userspace;

pub use topology::{Testbed, TestbedError};
