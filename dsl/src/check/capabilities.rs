//! What a target offers the checker: the capabilities a construct needs from it (clock,
//! redirects, FIB, map kinds, context fields) and the largest maps it accepts. The host has
//! everything; the NIC profile of `nfcc-offload` refines the `nfp` limits from a card's firmware.

use super::{Checker, Pcx};
use crate::ast::Span;
use crate::checked::Target;
use crate::diag::Diagnostic;

/// The largest map the host target accepts (entries).
pub const HOST_MAX_CAPACITY: u64 = 1 << 24;
/// The largest map the `nfp` target accepts by default (entries); the offload profile can
/// refine this from a card's firmware limits.
pub const NFP_MAX_CAPACITY: u64 = 1 << 16;

/// A capability a policy may need from its target, in the manner of naga's `Capabilities`:
/// the checker records what each construct needs, and a target profile says what it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    /// No capabilities.
    pub const EMPTY: Capabilities = Capabilities(0);
    /// A monotonic clock (`bpf_ktime_get_ns`), needed by limiters.
    pub const CLOCK: Capabilities = Capabilities(1);
    /// Redirecting to another interface.
    pub const REDIRECT: Capabilities = Capabilities(1 << 1);
    /// FIB lookups (`balance ... via fib`).
    pub const FIB: Capabilities = Capabilities(1 << 2);
    /// Longest-prefix-match maps for dynamic prefix sets.
    pub const LPM_MAP: Capabilities = Capabilities(1 << 3);
    /// LRU maps, needed for bounded per-key counters and limiters.
    pub const LRU_MAP: Capabilities = Capabilities(1 << 4);
    /// Per-CPU maps.
    pub const PERCPU_MAP: Capabilities = Capabilities(1 << 5);
    /// A ring buffer and `bpf_xdp_load_bytes`, needed by `sample`.
    pub const RINGBUF: Capabilities = Capabilities(1 << 6);
    /// Context fields beyond the packet bounds (`pkt.ifindex`, `pkt.rxq`, `pkt.mark`) and
    /// writes to the context (`mark`).
    pub const CTX_META: Capabilities = Capabilities(1 << 7);
    /// Growing the packet at its head for an outer header (`balance ... encap`).
    pub const ENCAP: Capabilities = Capabilities(1 << 8);
    /// Every capability: the host kernel.
    pub const ALL: Capabilities = Capabilities(u32::MAX);

    /// Whether every capability of `other` is in `self`.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// What a target offers.
    pub fn of(target: Target) -> Capabilities {
        match target {
            Target::Host => Capabilities::ALL,
            Target::Nfp => Capabilities::EMPTY,
        }
    }

    /// Why a construct needing `self` cannot run on a target lacking it.
    pub fn reason(self) -> &'static str {
        match self {
            Capabilities::CLOCK => "limiters need bpf_ktime_get_ns, which the NIC lacks",
            Capabilities::REDIRECT => "the NIC cannot redirect to another interface",
            Capabilities::FIB => "FIB lookups (bpf_fib_lookup) are not available on the NIC",
            Capabilities::LPM_MAP => {
                "dynamic prefix sets need an LPM trie map, which the NIC does not support"
            }
            Capabilities::LRU_MAP => {
                "per-key state needs an LRU map, which the NIC does not support"
            }
            Capabilities::PERCPU_MAP => "per-CPU maps are not supported on the NIC",
            Capabilities::RINGBUF => {
                "sampling writes to a ring buffer, which the NIC lacks (perf-event sampling on the NIC is not built yet)"
            }
            Capabilities::CTX_META => {
                "the NIC's context carries only the packet bounds: no interface, queue or mark"
            }
            Capabilities::ENCAP => {
                "encapsulation (`balance ... encap`) on the NIC is not built yet"
            }
            _ => "the target lacks a needed capability",
        }
    }
}

impl Checker {
    pub(super) fn needs(&mut self, pcx: &Pcx, cap: Capabilities, span: Span) {
        if !Capabilities::of(pcx.target).contains(cap) {
            self.diags.push(
                Diagnostic::error("E0117", span, "not offloadable to the nfp target")
                    .with_label(cap.reason())
                    .with_note(pcx.target_span, "the policy is compiled for the NIC here")
                    .with_help("remove `offload nfp` (or `--target nfp`) to run on the host, or rewrite this part"),
            );
        }
    }

    pub(super) fn capacity_ok(&mut self, pcx: &Pcx, n: u128, span: Span) -> u32 {
        let max = match pcx.target {
            Target::Host => HOST_MAX_CAPACITY,
            Target::Nfp => NFP_MAX_CAPACITY,
        };
        if n > u128::from(max) {
            let tname = match pcx.target {
                Target::Host => "the host",
                Target::Nfp => "the nfp target",
            };
            self.diags.push(
                Diagnostic::error(
                    "E0110",
                    span,
                    format!("capacity {n} is too large for {tname}"),
                )
                .with_label(format!("at most {max} entries"))
                .with_help(format!("use a capacity of at most {max}")),
            );
            return max as u32;
        }
        if n == 0 {
            self.help(
                "E0105",
                span,
                "capacity must be at least 1",
                "write a positive capacity",
            );
            return 1;
        }
        n as u32
    }
}
