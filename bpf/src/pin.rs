//! Where deployments live on a box: BPF objects pinned under `/sys/fs/bpf/nfcc/<policy>/`
//! (bpffs holds only BPF objects) and each deployment's manifest in
//! `/run/nfcc/<policy>.json`. Every path a deployment uses is spelled here and nowhere else.

use std::path::{Path, PathBuf};

/// Where pins live.
pub const PIN_ROOT: &str = "/sys/fs/bpf/nfcc";
/// Where manifests live.
pub const STATE_DIR: &str = "/run/nfcc";

/// The paths of one policy's deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinLayout {
    /// The policy (the pin directory's name).
    pub policy: String,
    root: PathBuf,
    state: PathBuf,
}

impl PinLayout {
    /// The layout of `policy` under the standard roots.
    pub fn new(policy: &str) -> PinLayout {
        PinLayout::under(policy, Path::new(PIN_ROOT), Path::new(STATE_DIR))
    }

    /// The layout of `policy` under other roots (tests).
    pub fn under(policy: &str, root: &Path, state: &Path) -> PinLayout {
        PinLayout {
            policy: policy.to_string(),
            root: root.to_path_buf(),
            state: state.to_path_buf(),
        }
    }

    /// The policy's pin directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.policy)
    }

    /// The pinned link of the host program.
    pub fn link(&self) -> PathBuf {
        self.dir().join("link")
    }

    /// A pinned map of the host program.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Where an offloaded policy's NIC stage pins its maps.
    pub fn nic_dir(&self) -> PathBuf {
        self.dir().join("nic")
    }

    /// The pinned NIC program (attached through netlink, not a link).
    pub fn nic_prog(&self) -> PathBuf {
        self.dir().join("nic_prog")
    }

    /// Where a `--replace` pins the next version's maps before the swap (bpffs refuses dots
    /// in names, so they wait in a subdirectory).
    pub fn next_dir(&self) -> PathBuf {
        self.dir().join("next")
    }

    /// The deployment's manifest.
    pub fn manifest(&self) -> PathBuf {
        self.state.join(format!("{}.json", self.policy))
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The pin root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
