//! Prometheus text for deployed policies (section 10, "Fleet agent"): per-rule packets and
//! bytes (`nfcc_rule_packets_total`, `nfcc_rule_bytes_total`, labels `policy`, `rule`,
//! `interface`) and one `nfcc_policy_info` per deployment (`policy`, `interface`, `mode`,
//! `program_id`). The values are read from the pinned maps when the text is made — at scrape
//! time, through a prometheus-client `Collector` — never cached.

use crate::counters::{CounterReader, RuleCounts};
use crate::error::DriverError;
use nfcc_runtime::deploy::{self, Deployment};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// One deployment's labels and counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySample {
    /// The policy.
    pub policy: String,
    /// Its interface.
    pub interface: String,
    /// Its attach mode.
    pub mode: String,
    /// The program running.
    pub program_id: u32,
    /// Per-rule counts (empty for an object nfcc did not compile).
    pub rules: Vec<RuleCounts>,
}

impl PolicySample {
    /// Reads a live deployment's counts.
    pub fn read(d: &Deployment) -> Result<PolicySample, DriverError> {
        let rules = if d.manifest.rules.is_empty() {
            Vec::new()
        } else {
            CounterReader::open(d)?.read()?
        };
        Ok(PolicySample {
            policy: d.policy().to_string(),
            interface: d.iface().to_string(),
            mode: d.mode().name().to_string(),
            program_id: d.program_id,
            rules,
        })
    }
}

/// A label value as the text format needs it: prometheus-client 0.22 writes label values as
/// they are, and an interface name may hold `"` or `\\`.
fn escaped(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the samples' metric families.
pub fn encode(samples: &[PolicySample], mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
    let labels = |s: &PolicySample, r: &RuleCounts| {
        vec![
            ("policy".to_string(), escaped(&s.policy)),
            ("rule".to_string(), escaped(&r.rule)),
            ("interface".to_string(), escaped(&s.interface)),
        ]
    };
    type Pick = fn(&RuleCounts) -> u64;
    let families: [(&str, &str, Pick); 2] = [
        (
            "nfcc_rule_packets",
            "Packets decided by each rule of a deployed policy (the default is rule `default`).",
            |r| r.packets,
        ),
        (
            "nfcc_rule_bytes",
            "Bytes of the packets decided by each rule of a deployed policy.",
            |r| r.bytes,
        ),
    ];
    for (name, help, pick) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for s in samples {
            for r in &s.rules {
                let l = labels(s, r);
                let one = family.encode_family(&l)?;
                ConstCounter::new(pick(r)).encode(one)?;
            }
        }
    }
    let mut info = encoder.encode_descriptor(
        "nfcc_policy",
        "A policy deployed on an interface, with its attach mode and running program.",
        None,
        MetricType::Info,
    )?;
    for s in samples {
        let l = vec![
            ("policy".to_string(), escaped(&s.policy)),
            ("interface".to_string(), escaped(&s.interface)),
            ("mode".to_string(), escaped(&s.mode)),
            ("program_id".to_string(), s.program_id.to_string()),
        ];
        info.encode_info(&l)?;
    }
    Ok(())
}

/// Reads every live deployment (or only `policy`) at scrape time.
#[derive(Debug, Default)]
pub struct DeploymentCollector {
    /// Only this policy, if set.
    pub only: Option<String>,
}

impl DeploymentCollector {
    /// The samples now; deployments that cannot be read (gone, being replaced) are left out.
    pub fn samples(&self) -> Vec<PolicySample> {
        deploy::status()
            .iter()
            .filter(|d| d.gone.is_none())
            .filter(|d| {
                self.only
                    .as_deref()
                    .is_none_or(|p| p == d.policy() || p == d.manifest.key())
            })
            .filter_map(|d| PolicySample::read(d).ok())
            .collect()
    }
}

impl Collector for DeploymentCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        encode(&self.samples(), encoder)
    }
}

/// The Prometheus text of the samples `collector` reads (and of anything else registered).
pub fn render_with(registry: Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// `nfcc stats POLICY --prometheus`: the same text the agent serves, once.
pub fn render_policy(policy: &str) -> Result<String, DriverError> {
    // A clear error for a policy that is not loaded, rather than an empty text. A policy the
    // agent deployed on several interfaces prints them all.
    let all = deploy::status();
    let Some(d) = all
        .iter()
        .find(|d| d.policy() == policy || d.manifest.key() == policy)
    else {
        return Err(deploy::find(policy).err().map_or_else(
            || DriverError::Input(format!("no policy `{policy}` is loaded")),
            DriverError::from,
        ));
    };
    if d.manifest.rules.is_empty() {
        return Err(DriverError::Input(format!(
            "`{policy}` was loaded from an object nfcc did not compile: it has no per-rule statistics"
        )));
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(DeploymentCollector {
        only: Some(policy.to_string()),
    }));
    Ok(render_with(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Vec<PolicySample>);

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            encode(&self.0, encoder)
        }
    }

    #[test]
    fn families_names_and_labels_follow_the_contract() {
        let s = PolicySample {
            policy: "edge".into(),
            interface: "eth\"1".into(),
            mode: "native".into(),
            program_id: 42,
            rules: vec![
                RuleCounts {
                    rule: "block".into(),
                    packets: 7,
                    bytes: 420,
                },
                RuleCounts {
                    rule: "default".into(),
                    packets: 1,
                    bytes: 60,
                },
            ],
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(vec![s])));
        let text = render_with(registry);
        assert!(
            text.contains(
                "nfcc_rule_packets_total{policy=\"edge\",rule=\"block\",interface=\"eth\\\"1\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "nfcc_rule_bytes_total{policy=\"edge\",rule=\"default\",interface=\"eth\\\"1\"} 60"
            ),
            "{text}"
        );
        assert!(
            text.contains("nfcc_policy_info{policy=\"edge\",interface=\"eth\\\"1\",mode=\"native\",program_id=\"42\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE nfcc_rule_packets counter"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // One period per HELP text: the registry adds one to what `register` gets, while a
        // collector writes its own.
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }
}
