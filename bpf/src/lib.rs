//! nfcc-bpf: the BPF ABI every nfcc crate shares, and nothing else — the leaf of the workspace.
//!
//! - [`insn`]: the instruction set (encoding, constructors, the verifier-syntax disassembler);
//! - [`asm`] and [`conformance`]: the BPF conformance suite's assembly dialect and test files;
//! - [`helper`]: kernel helper ids by name;
//! - [`map`]: map types and flags;
//! - [`prog`]: program types and what their return values mean;
//! - [`layout`]: how an nfcc program lays out its maps (names, per-rule statistics, samples);
//! - [`nfp`]: what the Netronome NIC's offload implements;
//! - [`pin`] and [`manifest`]: where a deployment lives on a box and how it is described;
//! - [`policy_section`]: the `.nfcc.policy` section that makes an object the whole policy;
//! - [`room`]: what a program compiled for deployment left room for (updates in place).
//!
//! The compiler writes to these definitions; the emulator, the runtime and the driver read by
//! them, so none of those needs the compiler to understand a program.

pub mod asm;
pub mod conformance;
pub mod helper;
pub mod insn;
pub mod layout;
pub mod manifest;
pub mod map;
pub mod nfp;
pub mod paths;
pub mod pin;
pub mod policy_section;
pub mod prog;
pub mod room;

pub use helper::Helper;
pub use map::MapKind;
pub use prog::{Action, ProgType};
