//! What `/metrics` serves: the deployed policies' per-rule counters and info, read from the
//! pinned maps at scrape time (`nfcc_driver::metrics`, the same text `nfcc stats
//! --prometheus` prints), and the agent's own reconcile counters:
//!
//! - `nfcc_agent_reconciles_total`, `nfcc_agent_reconcile_seconds` (histogram);
//! - `nfcc_agent_actions_total{action, result}`: loads, replaces, unloads and forgets, each
//!   `ok` or `error`;
//! - `nfcc_agent_rejected_total{binding}`: versions of a binding not deployed (bad file,
//!   policy that does not check or whose tests fail);
//! - `nfcc_agent_bindings`, `nfcc_agent_deployments`, `nfcc_agent_conflicts`: gauges of the
//!   last reconcile;
//! - `nfcc_agent_last_reconcile_timestamp_seconds`.

use nfcc_driver::metrics::DeploymentCollector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of `nfcc_agent_actions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `load`, `replace`, `unload` or `forget`.
    pub action: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of `nfcc_agent_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    /// The binding.
    pub binding: String,
}

/// The agent's own metrics; cheap to clone (every metric is shared).
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Their durations.
    pub reconcile_seconds: Histogram,
    /// Steps run.
    pub actions: Family<ActionLabels, Counter>,
    /// Versions not deployed.
    pub rejected: Family<BindingLabels, Counter>,
    /// Usable bindings at the last reconcile.
    pub bindings: Gauge,
    /// The agent's live deployments after the last reconcile.
    pub deployments: Gauge,
    /// Interfaces in conflict at the last reconcile.
    pub conflicts: Gauge,
    /// When the last reconcile ended (Unix seconds).
    pub last_reconcile: Gauge<f64, AtomicU64>,
}

impl Default for AgentMetrics {
    fn default() -> AgentMetrics {
        AgentMetrics {
            reconciles: Counter::default(),
            reconcile_seconds: Histogram::new(
                [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0].into_iter(),
            ),
            actions: Family::default(),
            rejected: Family::default(),
            bindings: Gauge::default(),
            deployments: Gauge::default(),
            conflicts: Gauge::default(),
            last_reconcile: Gauge::default(),
        }
    }
}

impl AgentMetrics {
    /// Counts one step.
    pub fn action(&self, action: &str, ok: bool) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// Counts one rejected version of `binding`.
    pub fn reject(&self, binding: &str) {
        self.rejected
            .get_or_create(&BindingLabels {
                binding: binding.to_string(),
            })
            .inc();
    }

    /// A registry with these metrics and the deployments' collector.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "nfcc_agent_reconciles",
            "Reconciles of the node to its bindings",
            self.reconciles.clone(),
        );
        r.register(
            "nfcc_agent_reconcile_seconds",
            "How long each reconcile took",
            self.reconcile_seconds.clone(),
        );
        r.register(
            "nfcc_agent_actions",
            "Loads, replaces, unloads and forgets the agent ran, by result",
            self.actions.clone(),
        );
        r.register(
            "nfcc_agent_rejected",
            "Versions of a binding that were not deployed: its file is bad, or its policy does not check or fails its tests",
            self.rejected.clone(),
        );
        r.register(
            "nfcc_agent_bindings",
            "Usable bindings at the last reconcile",
            self.bindings.clone(),
        );
        r.register(
            "nfcc_agent_deployments",
            "The agent's live deployments after the last reconcile",
            self.deployments.clone(),
        );
        r.register(
            "nfcc_agent_conflicts",
            "Interfaces in conflict at the last reconcile (two bindings, or a policy loaded by hand)",
            self.conflicts.clone(),
        );
        r.register(
            "nfcc_agent_last_reconcile_timestamp_seconds",
            "When the last reconcile ended, in seconds since the Unix epoch",
            self.last_reconcile.clone(),
        );
        r.register_collector(Box::new(DeploymentCollector::default()));
        r
    }

    /// The Prometheus text now.
    pub fn render(&self) -> String {
        nfcc_driver::metrics::render_with(self.registry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_families_are_named_as_documented() {
        let m = AgentMetrics::default();
        m.reconciles.inc();
        m.action("load", true);
        m.action("replace", false);
        m.reject("edge");
        m.bindings.set(3);
        let text = m.render();
        for line in [
            "nfcc_agent_reconciles_total 1",
            "nfcc_agent_actions_total{action=\"load\",result=\"ok\"} 1",
            "nfcc_agent_actions_total{action=\"replace\",result=\"error\"} 1",
            "nfcc_agent_rejected_total{binding=\"edge\"} 1",
            "nfcc_agent_bindings 3",
            "# TYPE nfcc_agent_reconcile_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // One period per HELP text: the registry adds one to what `register` gets, while a
        // collector writes its own.
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }
}
