//! The offload gate: what `nfcc offload-check` reports and what `nfcc load --mode offload`
//! requires before anything is attached — the split, the NIC stage's size against the card's
//! limits, an independent scan of its bytecode, and the emulator's proof that NIC stage then
//! host stage mean what the unsplit policy means. One function computes it for both.

use crate::error::{read_text, DriverError};
use crate::source::Chosen;
use nfcc_dsl::checked::Target;
use nfcc_offload::equiv::Equivalence;
use nfcc_offload::split::Split;
use nfcc_offload::Profile;
use std::path::Path;

/// The seed of the generated packets the split is checked on (the same every run, so a
/// failure reproduces).
pub const EQUIVALENCE_SEED: u64 = 0x6e66_6363;

/// Reads a profile: the target's defaults, with a card's TOML overrides.
pub fn profile(target: &str, file: Option<&Path>) -> Result<Profile, DriverError> {
    let p = Profile::named(target).ok_or_else(|| {
        DriverError::Input(format!(
            "no offload profile `{target}` (profiles: nfp, host)"
        ))
    })?;
    match file {
        None => Ok(p),
        Some(f) => p
            .with_overrides(&read_text(f)?)
            .map_err(|e| DriverError::Input(format!("{}: {e}", f.display()))),
    }
}

/// Everything the gate found.
pub struct OffloadReport {
    /// The split.
    pub split: Split,
    /// Instructions of the NIC stage its offload would refuse (independent bytecode scan).
    pub refused: Vec<String>,
    /// The equivalence check (when there is a NIC stage).
    pub equivalence: Option<Equivalence>,
}

impl OffloadReport {
    /// Every reason the split must not be deployed.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .split
            .size
            .iter()
            .flat_map(|s| s.over.iter().map(|o| format!("does not fit: {o}")))
            .collect();
        out.extend(
            self.refused
                .iter()
                .map(|r| format!("the NIC would refuse: {r}")),
        );
        if let Some(eq) = &self.equivalence {
            out.extend(
                eq.problems
                    .iter()
                    .map(|p| format!("the split changes what the policy does: {p}")),
            );
        }
        out
    }
}

/// Splits `chosen` for `profile` and checks the split: size, bytecode, equivalence on the
/// test packets and `packets` generated ones.
pub fn gate(
    chosen: &Chosen,
    profile: &Profile,
    packets: usize,
) -> Result<OffloadReport, DriverError> {
    let split = nfcc_offload::split::split(&chosen.policy, &chosen.label, &chosen.source, profile)
        .map_err(|d| DriverError::Diagnostics {
            rendered: nfcc_dsl::diag::render(&chosen.label, &chosen.source, &d),
        })?;
    let mut refused = Vec::new();
    let mut equivalence = None;
    if let Some(nic) = &split.nic {
        if split.size.is_some() {
            let p = &nic.compiled.programs[0];
            let kinds: Vec<_> = p.maps.iter().map(|(m, _)| m.kind).collect();
            refused = nfcc_offload::split::scan(&nic.compiled.object, &p.section, &kinds);
        }
        let unsplit = chosen.compile(Some(Target::Host))?;
        equivalence = Some(nfcc_offload::equiv::check(
            &chosen.policy,
            &split,
            &unsplit,
            packets,
            EQUIVALENCE_SEED,
        ));
    }
    Ok(OffloadReport {
        split,
        refused,
        equivalence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_passes_a_card_sized_split_and_fails_a_tight_card() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ipv6_edge.nf");
        let chosen = Chosen::read(&path, None).unwrap_or_else(|e| panic!("{e}"));
        let r = gate(&chosen, &Profile::nfp(), 2_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert!(r.equivalence.as_ref().is_some_and(|e| e.generated == 2_000));
        let tight = Profile::nfp()
            .with_overrides("max_insns = 16\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let r = gate(&chosen, &tight, 100).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.problems().iter().any(|p| p.starts_with("does not fit")),
            "{:?}",
            r.problems()
        );
    }
}
