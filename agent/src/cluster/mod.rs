//! `nfcc agent --kubernetes`: the cluster as the source of bindings. A thread runs the kube-rs
//! client (tokio, current-thread): it mirrors the `NfPolicy` objects that apply to this node
//! into the agent's directory (`sync::Mirror`), wakes the reconcile loop when they change,
//! and writes this node's status entry of each object (`sync::publish`) when the loop
//! reports a change (`status::statuses`). The reconcile itself is the directory's: one code
//! path, whatever the source.
//!
//! The first reconcile waits for the first complete listing, so an agent started on an empty
//! directory never takes for removed what it has not read yet; while the API server cannot be
//! reached, what runs stays as it is.

pub mod resource;
pub mod status;
pub mod sync;

use crate::log::{log, Level};
use crate::reconcile::Outcome;
use resource::NodeStatus;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The cluster side of a running agent.
pub struct Cluster {
    node: String,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<(String, NodeStatus)>>,
    /// What was last published, per binding, so unchanged statuses are not written again.
    last: BTreeMap<String, NodeStatus>,
}

impl Cluster {
    /// Connects (in-cluster service account, or the kubeconfig), starts mirroring into `dir`
    /// for `node`, and returns once the first listing is written. `wake` is set on every
    /// change of the directory.
    pub fn start(
        dir: PathBuf,
        node: String,
        wake: Arc<AtomicBool>,
    ) -> Result<Cluster, crate::AgentError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            crate::AgentError::Kubernetes(format!("{what}: {e}"))
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err("cannot start the client's runtime", &e))?;
        let client = rt.block_on(kube::Client::try_default()).map_err(|e| {
            err(
                "cannot reach the cluster (service account or kubeconfig)",
                &e,
            )
        })?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let n = node.clone();
        std::thread::spawn(move || {
            rt.block_on(run(client, dir, n, wake, rx, ready_tx));
        });
        log(
            Level::Info,
            &format!("waiting for the cluster's NfPolicy objects (node {node})"),
        );
        ready_rx
            .recv()
            .map_err(|e| err("the cluster client stopped before listing the policies", &e))?;
        Ok(Cluster {
            node,
            tx,
            last: BTreeMap::new(),
        })
    }

    /// Publishes the statuses an outcome changed.
    pub fn report(&mut self, o: &Outcome) {
        let changed: Vec<(String, NodeStatus)> = status::statuses(&self.node, o)
            .into_iter()
            .filter(|(b, s)| self.last.get(b) != Some(s))
            .collect();
        if changed.is_empty() {
            return;
        }
        for (b, s) in &changed {
            self.last.insert(b.clone(), s.clone());
        }
        let _ = self.tx.send(changed);
    }
}

/// The client thread: mirror and publish until the process ends.
pub async fn run(
    client: kube::Client,
    dir: PathBuf,
    node: String,
    wake: Arc<AtomicBool>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<(String, NodeStatus)>>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let publisher = client.clone();
    let publish = async move {
        while let Some(batch) = rx.recv().await {
            for (binding, s) in batch {
                let Some((ns, name)) = status::object_of(&binding) else {
                    continue;
                };
                if let Err(e) = sync::publish(publisher.clone(), ns, name, &s).await {
                    log(
                        Level::Warn,
                        &format!("cannot write the status of NfPolicy {ns}/{name}: {e}"),
                    );
                }
            }
        }
    };
    let mut mirror = sync::Mirror::new(dir, node);
    let follow = async move {
        let mut ready = Some(ready);
        sync::follow(client, &mut mirror, &mut |listed| {
            if listed {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            wake.store(true, Ordering::Relaxed);
        })
        .await;
    };
    tokio::join!(follow, publish);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Have;
    use nfcc_driver::bpf::manifest::AttachMode;

    #[test]
    fn only_changed_statuses_are_published() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut c = Cluster {
            node: "n1".into(),
            tx,
            last: BTreeMap::new(),
        };
        let mut o = Outcome {
            bindings: vec![("net.a".into(), "r1".into()), ("net.b".into(), "r1".into())],
            ..Outcome::default()
        };
        c.report(&o);
        let first = rx
            .try_recv()
            .expect("the first report publishes every binding");
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|(_, s)| s.state == "Pending"));
        c.report(&o);
        assert!(rx.try_recv().is_err(), "nothing changed, nothing published");
        o.deployed.push(Have {
            key: "p@eth0".into(),
            policy: "p".into(),
            iface: "eth0".into(),
            mode: AttachMode::Native,
            binding: Some("net.b".into()),
            other: None,
            revision: Some("r1".into()),
            gone: false,
        });
        c.report(&o);
        let changed = rx.try_recv().expect("b changed");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "net.b");
        assert_eq!(changed[0].1.state, "Deployed");
        assert_eq!(changed[0].1.interfaces, vec!["eth0".to_string()]);
    }
}
