//! The cluster's side of a binding: the `NfPolicy` custom resource (group `nfcc.dev`, version
//! `v1alpha1`; its OpenAPI schema is `deploy/kubernetes/crd.yaml`), what of it applies to a
//! node, the files a node's agent writes for it, and the status each node reports.
//!
//! One `NfPolicy` is a policy and its binding: the `.nf` text, the policy chosen in it, the
//! interfaces (names or globs) and the mode, and the nodes it applies to (globs of node names;
//! none: every node). Each node's agent writes its own entry of `status.nodes` (a list keyed
//! by node, so server-side apply gives each agent its own field manager and entry).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// `NfPolicy.spec`.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "nfcc.dev",
    version = "v1alpha1",
    kind = "NfPolicy",
    plural = "nfpolicies",
    shortname = "nfp",
    namespaced,
    status = "NfPolicyStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct NfPolicySpec {
    /// The `.nf` text.
    pub source: String,
    /// The policy to deploy, when the text holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Interface names or globs.
    pub interfaces: Vec<String>,
    /// `native`, `generic`, `tc-ingress`, `tc-egress` or `offload`; the policy's hook's
    /// default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Globs of the node names it applies to; every node when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// `NfPolicy.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfPolicyStatus {
    /// One entry per node the policy applies to.
    #[serde(default)]
    pub nodes: Vec<NodeStatus>,
}

/// What one node did with an `NfPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// `Deployed`, `Rejected` (the policy does not check or its tests fail: nothing of this
    /// revision was deployed), `Conflict` (an interface it matches is someone else's) or
    /// `Pending` (no interface matches yet, or a load failed: see the message).
    pub state: String,
    /// The diagnostic, conflict or failure, or what is deployed.
    pub message: String,
    /// The revision the state is about.
    pub revision: String,
    /// The interfaces where this revision runs.
    #[serde(default)]
    pub interfaces: Vec<String>,
}

impl NfPolicy {
    /// The binding's name on the node: `NAMESPACE.NAME` (both are DNS labels, so the dot
    /// keeps them apart).
    pub fn binding_name(&self) -> String {
        format!(
            "{}.{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or("")
        )
    }

    /// Whether it applies to node `node`.
    pub fn applies_to(&self, node: &str) -> bool {
        self.spec.nodes.is_empty()
            || self
                .spec
                .nodes
                .iter()
                .any(|p| crate::config::glob_matches(p, node))
    }

    /// The files the agent writes for it: `NAME.nf` and the binding `NAME.toml` naming it.
    pub fn files(&self) -> (String, String, String) {
        let name = self.binding_name();
        let mut toml_text = format!("policy_file = {}\n", quoted(&format!("{name}.nf")));
        if let Some(p) = &self.spec.policy {
            toml_text.push_str(&format!("policy = {}\n", quoted(p)));
        }
        let list: Vec<String> = self.spec.interfaces.iter().map(|i| quoted(i)).collect();
        toml_text.push_str(&format!("interfaces = [{}]\n", list.join(", ")));
        if let Some(m) = &self.spec.mode {
            toml_text.push_str(&format!("mode = {}\n", quoted(m)));
        }
        (name, self.spec.source.clone(), toml_text)
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    // serde's TOML writer quotes and escapes exactly; a bare string always serialises.
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ns: &str, name: &str, nodes: &[&str]) -> NfPolicy {
        let mut p = NfPolicy::new(
            name,
            NfPolicySpec {
                source: "policy edge on xdp {\n  default pass\n}\n".into(),
                policy: Some("edge".into()),
                interfaces: vec!["eth1".into(), "tb\"*".into()],
                mode: Some("native".into()),
                nodes: nodes.iter().map(|s| s.to_string()).collect(),
            },
        );
        p.metadata.namespace = Some(ns.into());
        p
    }

    #[test]
    fn a_policy_object_becomes_a_binding_file_the_agent_reads() {
        let (name, source, toml_text) = policy("net", "edge", &[]).files();
        assert_eq!(name, "net.edge");
        assert!(source.starts_with("policy edge"));
        let dir = std::env::temp_dir().join(format!("nfcc-kube-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("net.edge.nf"), &source).expect("nf");
        let b = crate::config::parse(&dir, &name, &toml_text).expect("binding parses");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(b.interfaces, vec!["eth1".to_string(), "tb\"*".to_string()]);
        assert_eq!(b.policy.as_deref(), Some("edge"));
        assert_eq!(b.mode, Some(nfcc_driver::deploy::Mode::Native));
    }

    #[test]
    fn node_globs_choose_the_nodes() {
        assert!(policy("a", "b", &[]).applies_to("worker-1"));
        assert!(policy("a", "b", &["worker-*"]).applies_to("worker-1"));
        assert!(!policy("a", "b", &["worker-*"]).applies_to("edge-1"));
        assert!(policy("a", "b", &["edge-1", "worker-*"]).applies_to("edge-1"));
    }

    #[test]
    fn the_resource_reads_from_json_as_the_api_server_sends_it() {
        let json = r#"{"apiVersion":"nfcc.dev/v1alpha1","kind":"NfPolicy",
            "metadata":{"name":"edge","namespace":"net","resourceVersion":"7"},
            "spec":{"source":"policy p on xdp { default pass }","interfaces":["eth*"]},
            "status":{"nodes":[{"node":"n1","state":"Deployed","message":"","revision":"ab","interfaces":["eth0"]}]}}"#;
        let p: NfPolicy = serde_json::from_str(json).expect("parses");
        assert_eq!(p.binding_name(), "net.edge");
        assert_eq!(p.spec.mode, None);
        assert_eq!(p.status.expect("status").nodes[0].state, "Deployed");
    }
}
