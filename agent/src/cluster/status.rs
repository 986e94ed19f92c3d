//! What this node reports for each cluster policy after a reconcile: a pure function of the
//! reconcile's outcome, so every state is tested without a cluster.

use super::resource::NodeStatus;
use crate::reconcile::Outcome;

/// The namespace and name of binding `NAMESPACE.NAME` (a namespace has no dot).
pub fn object_of(binding: &str) -> Option<(&str, &str)> {
    binding.split_once('.')
}

/// This node's status of every binding of the outcome.
pub fn statuses(node: &str, o: &Outcome) -> Vec<(String, NodeStatus)> {
    o.bindings
        .iter()
        .map(|(binding, revision)| {
            let mine = format!("binding `{binding}`");
            let step = format!("binding {binding})");
            let mut interfaces: Vec<String> = o
                .deployed
                .iter()
                .filter(|h| {
                    h.binding.as_deref() == Some(binding.as_str())
                        && h.revision.as_deref() == Some(revision.as_str())
                })
                .map(|h| h.iface.clone())
                .collect();
            interfaces.sort();
            let conflicts: Vec<&String> = o
                .plan
                .conflicts
                .iter()
                .filter(|c| c.contains(&mine))
                .collect();
            let failures: Vec<&String> = o.failed.iter().filter(|f| f.contains(&step)).collect();
            let (state, message) = if let Some(why) = o.held.get(binding) {
                ("Rejected", why.clone())
            } else if !failures.is_empty() {
                (
                    "Pending",
                    failures
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            } else if !conflicts.is_empty() {
                (
                    "Conflict",
                    conflicts
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            } else if interfaces.is_empty() {
                ("Pending", "no interface of this node matches".to_string())
            } else {
                (
                    "Deployed",
                    format!("running on {} interface(s)", interfaces.len()),
                )
            };
            (
                binding.clone(),
                NodeStatus {
                    node: node.to_string(),
                    state: state.to_string(),
                    message,
                    revision: revision.clone(),
                    interfaces,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Have, Plan};
    use nfcc_driver::bpf::manifest::AttachMode;
    use std::collections::BTreeMap;

    fn have(binding: &str, iface: &str, rev: &str) -> Have {
        Have {
            key: format!("p@{iface}"),
            policy: "p".into(),
            iface: iface.into(),
            mode: AttachMode::Native,
            binding: Some(binding.into()),
            other: None,
            revision: Some(rev.into()),
            gone: false,
        }
    }

    #[test]
    fn each_binding_gets_the_state_of_its_revision() {
        let o = Outcome {
            bindings: vec![
                ("net.ok".into(), "r2".into()),
                ("net.bad".into(), "r9".into()),
                ("net.old".into(), "r3".into()),
                ("net.busy".into(), "r1".into()),
                ("net.failing".into(), "r1".into()),
            ],
            deployed: vec![
                have("net.ok", "eth2", "r2"),
                have("net.ok", "eth1", "r2"),
                have("net.old", "eth3", "r2"),
                have("net.bad", "eth4", "r8"),
            ],
            held: BTreeMap::from([(
                "net.bad".to_string(),
                "error[E0002]: syntax error".to_string(),
            )]),
            failed: vec![
                "load p@eth5 on eth5 (native, binding net.failing): no such device".into(),
            ],
            plan: Plan {
                conflicts: vec![
                    "eth0: runs `x`, loaded by hand; binding `net.busy` leaves it alone".into(),
                ],
                ..Plan::default()
            },
            seconds: 0.0,
        };
        let got: Vec<String> = statuses("n1", &o)
            .into_iter()
            .map(|(b, s)| {
                format!(
                    "{b} {} {} {:?} {}",
                    s.node, s.state, s.interfaces, s.message
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "net.ok n1 Deployed [\"eth1\", \"eth2\"] running on 2 interface(s)",
                "net.bad n1 Rejected [] error[E0002]: syntax error",
                "net.old n1 Pending [] no interface of this node matches",
                "net.busy n1 Conflict [] eth0: runs `x`, loaded by hand; binding `net.busy` leaves it alone",
                "net.failing n1 Pending [] load p@eth5 on eth5 (native, binding net.failing): no such device",
            ]
        );
        assert_eq!(object_of("net.edge.v2"), Some(("net", "edge.v2")));
    }
}
