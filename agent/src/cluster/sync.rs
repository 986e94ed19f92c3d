//! The cluster to the node and back: [`follow`] watches every `NfPolicy` (kube-runtime's
//! watcher: one LIST, then one long WATCH per agent, resumed from its resource version — the
//! API server's cost per node is one watch connection, not polling) and writes the ones that
//! apply to this node as binding files into the agent's directory, where the reconcile loop
//! takes them like any other binding; [`publish`] writes this node's entry of each policy's
//! status by server-side apply, with a field manager per node.

use super::resource::{NfPolicy, NodeStatus};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Mirrors the policies that apply to a node into a directory.
pub struct Mirror {
    /// The directory the reconcile loop reads.
    pub dir: PathBuf,
    /// The node.
    pub node: String,
    /// The policies seen, by binding name.
    seen: BTreeMap<String, NfPolicy>,
    /// A (re)listing in progress.
    listing: BTreeMap<String, NfPolicy>,
}

impl Mirror {
    /// A mirror into `dir` for `node`.
    pub fn new(dir: PathBuf, node: String) -> Mirror {
        Mirror {
            dir,
            node,
            seen: BTreeMap::new(),
            listing: BTreeMap::new(),
        }
    }

    /// The policies seen that apply to the node.
    pub fn applying(&self) -> impl Iterator<Item = &NfPolicy> {
        self.seen.values().filter(|p| p.applies_to(&self.node))
    }

    /// Applies one watcher event: `Some(changed)` when a listing or a change is complete
    /// (the directory was written), `None` in the middle of a (re)listing, which is written
    /// whole when it is done.
    pub fn apply(&mut self, ev: watcher::Event<NfPolicy>) -> std::io::Result<Option<bool>> {
        match ev {
            watcher::Event::Init => {
                self.listing.clear();
                Ok(None)
            }
            watcher::Event::InitApply(p) => {
                self.listing.insert(p.binding_name(), p);
                Ok(None)
            }
            // What the relist did not list again is gone.
            watcher::Event::InitDone => {
                self.seen = std::mem::take(&mut self.listing);
                self.write().map(Some)
            }
            watcher::Event::Apply(p) => {
                self.seen.insert(p.binding_name(), p);
                self.write().map(Some)
            }
            watcher::Event::Delete(p) => {
                self.seen.remove(&p.binding_name());
                self.write().map(Some)
            }
        }
    }

    /// Writes the files of every applying policy and removes the files of the others;
    /// whether anything changed. Files are written beside and renamed, so the reconcile loop
    /// never reads half a file.
    pub fn write(&self) -> std::io::Result<bool> {
        std::fs::create_dir_all(&self.dir)?;
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for p in self.applying() {
            let (name, source, binding) = p.files();
            wanted.insert(format!("{name}.nf"), source);
            wanted.insert(format!("{name}.toml"), binding);
        }
        let mut changed = false;
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".nf") || name.ends_with(".toml");
            if ours && !wanted.contains_key(&name) {
                std::fs::remove_file(entry.path())?;
                changed = true;
            }
        }
        for (name, text) in &wanted {
            let path = self.dir.join(name);
            if std::fs::read_to_string(&path).is_ok_and(|t| &t == text) {
                continue;
            }
            write_atomically(&path, text)?;
            changed = true;
        }
        Ok(changed)
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Watches the cluster's policies until the stream ends (it does not: the watcher retries
/// with backoff), mirroring them; `changed(listed)` is called after each write of the
/// directory, `listed` true when it followed a complete listing.
pub async fn follow(client: Client, mirror: &mut Mirror, changed: &mut (dyn FnMut(bool) + Send)) {
    use kube::runtime::WatchStreamExt;
    let api: Api<NfPolicy> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let listed = matches!(ev, Ok(watcher::Event::InitDone));
        match ev {
            Ok(ev) => match mirror.apply(ev) {
                Ok(Some(wrote)) => {
                    if wrote || listed {
                        changed(listed);
                    }
                }
                Ok(None) => {}
                Err(e) => crate::log::log(
                    crate::log::Level::Error,
                    &format!(
                        "cannot write the cluster's policies into {}: {e}",
                        mirror.dir.display()
                    ),
                ),
            },
            Err(e) => crate::log::log(
                crate::log::Level::Warn,
                &format!("watching NfPolicy objects: {e}; retrying"),
            ),
        }
    }
}

/// Writes `status` as this node's entry of policy `namespace/name`'s status.
pub async fn publish(
    client: Client,
    namespace: &str,
    name: &str,
    status: &NodeStatus,
) -> Result<(), kube::Error> {
    let api: Api<NfPolicy> = Api::namespaced(client, namespace);
    let patch = serde_json::json!({
        "apiVersion": "nfcc.dev/v1alpha1",
        "kind": "NfPolicy",
        "status": { "nodes": [status] },
    });
    let params = PatchParams::apply(&field_manager(&status.node)).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await
        .map(|p| drop(p.name_any()))
}

/// The field manager of a node's agent: server-side apply keeps each node's entry its own.
pub fn field_manager(node: &str) -> String {
    format!("nfcc-agent.{node}")
}
