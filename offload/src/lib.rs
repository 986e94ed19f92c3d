//! nfcc-offload: what a SmartNIC's BPF offload can run, rule by rule, and how a policy splits
//! between the NIC and the host without changing what it means.
//!
//! - [`profile`]: capability profiles (`host`, `nfp`), firmware limits as parameters with
//!   conservative defaults, overridable from a TOML file for a specific card.
//! - [`place`]: for each rule, whether it can run on the NIC and, if not, why (in words, with
//!   the `.nf` span), and where the split falls (the longest prefix the NIC can run).
//! - [`split`]: the NIC stage and the host stage as two compiled programs, the NIC stage's
//!   size against the profile's limits, and a scanner of NIC bytecode independent of the
//!   code generator.
//! - [`equiv`]: the emulator running the NIC stage with NIC semantics, then the host stage,
//!   held to the unsplit program on every test packet and on generated ones.
//!
//! Deployment (`nfcc load --mode offload`) lives in `runtime`, which owns the syscalls.

pub mod equiv;
pub mod frames;
pub mod place;
pub mod profile;
pub mod split;

pub use profile::Profile;
