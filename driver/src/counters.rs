//! Per-rule counters of a deployed policy, read from the pins its manifest names: the host
//! program's statistics, plus for an offloaded policy the NIC's own drop and tx counts (the
//! packets it hands up are counted by the host stage), plus what versions swapped out by
//! `--replace` counted. No source is recompiled: rule names come from the manifest.

use crate::error::DriverError;
use nfcc_bpf::layout::Counts;
use nfcc_runtime::deploy::{self, Deployment};

/// One rule's counts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleCounts {
    /// The rule (`default` for the default; `slot N` for an object nfcc did not compile).
    pub rule: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Reads a deployment's per-rule counts.
pub struct CounterReader {
    /// Every statistics slot's rule, in slot order (vacant slots of a program with room for
    /// rules to come included: empty names).
    slots: Vec<String>,
    base: Vec<Counts>,
    stages: Vec<(nfcc_runtime::PinnedMaps, nfcc_bpf::manifest::Stage)>,
}

impl CounterReader {
    /// Opens the counters of `d`.
    pub fn open(d: &Deployment) -> Result<CounterReader, DriverError> {
        let m = &d.manifest;
        if m.rules.is_empty() {
            return Err(DriverError::Input(format!(
                "`{}` was loaded from an object nfcc did not compile: it has no per-rule statistics",
                m.policy
            )));
        }
        let stages = m
            .stages()
            .map(|s| Ok((deploy::stage_maps(s)?, s.clone())))
            .collect::<Result<Vec<_>, DriverError>>()?;
        Ok(CounterReader {
            slots: m.rules.iter().map(|r| r.name.clone()).collect(),
            base: m.base.clone(),
            stages,
        })
    }

    /// The rules' names in slot order.
    pub fn names(&self) -> Vec<&str> {
        self.slots
            .iter()
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .collect()
    }

    /// The counts now, in slot order (vacant slots left out).
    pub fn read(&self) -> Result<Vec<RuleCounts>, DriverError> {
        let slots = self.slots.len();
        let mut sum: Vec<Counts> = (0..slots)
            .map(|i| self.base.get(i).copied().unwrap_or_default())
            .collect();
        for (maps, stage) in &self.stages {
            for (s, c) in sum
                .iter_mut()
                .zip(deploy::stage_counts(maps, stage, slots)?)
            {
                *s = s.plus(c);
            }
        }
        Ok(self
            .slots
            .iter()
            .zip(sum)
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, c)| RuleCounts {
                rule: n.clone(),
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect())
    }
}

/// A rule's counts with its rates over an interval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleRates {
    /// The rule.
    pub rule: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Packets per second.
    pub pps: u64,
    /// Bits per second.
    pub bps: u64,
}

/// Rates between two readings `secs` apart.
pub fn rates(before: &[RuleCounts], after: &[RuleCounts], secs: f64) -> Vec<RuleRates> {
    let per = |d: u64| (d as f64 / secs.max(1e-9)).round() as u64;
    before
        .iter()
        .zip(after)
        .map(|(b, a)| RuleRates {
            rule: a.rule.clone(),
            packets: a.packets,
            bytes: a.bytes,
            pps: per(a.packets.wrapping_sub(b.packets)),
            bps: per(a.bytes.wrapping_sub(b.bytes)) * 8,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_json_escape_rule_names() {
        let c = |p, b| RuleCounts {
            rule: "r\"1\\".into(),
            packets: p,
            bytes: b,
        };
        let r = rates(&[c(10, 600)], &[c(20, 1200)], 1.0);
        assert_eq!((r[0].pps, r[0].bps), (10, 4800));
        let json = serde_json::to_string(&r).unwrap_or_default();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back[0]["rule"], "r\"1\\");
    }
}
