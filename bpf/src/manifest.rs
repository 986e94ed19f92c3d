//! The deployment manifest: what `nfcc load` put on a box, written as JSON next to the pins,
//! so that `status`, `stats`, `set`, `watch`, `--replace` and `unload` work from it alone —
//! never by recompiling a source, whose layout a newer compiler may have changed.
//!
//! It names the nfcc version, the policy, hook and attach mode, the interface (with its index,
//! so a deployment whose interface went away is recognised as gone), the program ids, every
//! map (pin path, kind, key and value sizes, role), the rule slots, the sets' representations,
//! and the per-rule counts carried over from versions replaced earlier.

use crate::layout::Counts;
use crate::map::MapKind;
use crate::prog::ProgType;
use std::path::PathBuf;

/// The manifest format's version; a manifest of another version is refused with a message
/// rather than misread.
pub const MANIFEST_VERSION: u32 = 1;

/// How a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// XDP in the driver.
    Native,
    /// XDP in the generic (skb) path.
    Generic,
    /// TC, ingress.
    TcIngress,
    /// TC, egress.
    TcEgress,
    /// XDP offloaded to the NIC (HW mode), with the host stage of a split policy in native
    /// mode beside it.
    Offload,
}

impl AttachMode {
    /// Every mode.
    pub const ALL: [AttachMode; 5] = [
        AttachMode::Native,
        AttachMode::Generic,
        AttachMode::TcIngress,
        AttachMode::TcEgress,
        AttachMode::Offload,
    ];

    /// The mode as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::TcIngress => "tc-ingress",
            AttachMode::TcEgress => "tc-egress",
            AttachMode::Offload => "offload",
        }
    }

    /// The mode a CLI spelling names.
    pub fn from_name(s: &str) -> Option<AttachMode> {
        AttachMode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The program type the mode attaches.
    pub const fn prog_type(self) -> ProgType {
        match self {
            AttachMode::TcIngress | AttachMode::TcEgress => ProgType::Tc,
            _ => ProgType::Xdp,
        }
    }
}

/// What a map is for, as the compiler laid it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapRole {
    /// Per-rule statistics (see [`crate::layout`]).
    RuleStats,
    /// A set's values in a hash.
    ExactSet,
    /// A set's prefixes in an LPM trie.
    PrefixSet,
    /// A set's prefixes in a hash probed once per listed length.
    PrefixHash,
    /// The length table of a prefix hash.
    PrefixLengths,
    /// A `counter` declaration.
    Counter,
    /// A `limiter` declaration.
    Limiter,
    /// Redirect targets' interface indexes.
    RedirectTargets,
    /// The AF_XDP sockets of `redirect xsk`, by receive queue.
    XskSockets,
    /// A `table` declaration.
    Table,
    /// Rules merged into one lookup.
    MergedRules,
    /// A classifier's decision tree.
    ClassifierNodes,
    /// A classifier's boxes (its rules, leaf by leaf).
    ClassifierBoxes,
    /// A classifier's tuples: buckets of boxes by masked key.
    ClassifierTuples,
    /// Which half of a classifier's data packets read (see [`crate::room`]).
    ClassifierSelect,
    /// The sample ring buffer.
    Samples,
    /// The virtual clock of deterministic tests.
    Clock,
    /// A pool's Maglev lookup table.
    Maglev,
    /// A dynamic pool's backend slots.
    PoolBackends,
    /// Which of a dynamic pool's two Maglev tables is live.
    PoolActive,
    /// A `sticky` balance's flow table.
    Flows,
    /// The packet vector: per-CPU scratch space the parser fills.
    Scratch,
    /// A map of an object nfcc did not compile.
    Other,
}

impl MapRole {
    /// Whether `--replace` carries the map's entries to the next version (state the user or
    /// the traffic built up: dynamic sets and their length tables, counters).
    pub const fn carried(self) -> bool {
        matches!(
            self,
            MapRole::ExactSet
                | MapRole::PrefixSet
                | MapRole::PrefixHash
                | MapRole::PrefixLengths
                | MapRole::Counter
        )
    }
}

/// One map of a deployed program.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapEntry {
    /// The map's name in the object.
    pub name: String,
    /// Where it is pinned (filled in when it is).
    pub pin: Option<PathBuf>,
    /// Its type.
    pub kind: MapKind,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// What it is for.
    pub role: MapRole,
    /// The declaration it belongs to (set, counter, limiter, table or pool), if any.
    pub owner: Option<String>,
}

/// How one map of a set stores its members.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "form")]
pub enum SetForm {
    /// Exact values as big-endian keys of `width` bytes.
    Exact,
    /// Prefixes in an LPM trie: `{length: u32 LE, address}` keys.
    Lpm,
    /// Prefixes in a hash of `{length, masked address}` keys, probed once per length that the
    /// length table `lengths` lists.
    PrefixHash {
        /// The length table's object name.
        lengths: String,
        /// One length per array entry (entry 0 the count), as on the NIC; otherwise one entry
        /// holds the whole list.
        per_entry: bool,
    },
}

/// One map a set's members live in (a set used at several key widths has one per width).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetMap {
    /// The map's object name.
    pub map: String,
    /// The member's width in bytes (the key data, without a prefix length).
    pub width: u32,
    /// How members are stored.
    #[serde(flatten)]
    pub form: SetForm,
}

/// A set of the policy and where a stage keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetEntry {
    /// The set's name.
    pub name: String,
    /// Its kind as the language spells it (`ipv4 prefix`, `port`, `u32`, ...).
    pub kind: String,
    /// Declared `dynamic`: `nfcc set` may change it.
    pub dynamic: bool,
    /// Its maps; empty when the set is compiled into the program's code.
    pub maps: Vec<SetMap>,
}

/// A dynamic pool of the policy and its maps (`nfcc pool` changes them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolEntry {
    /// The pool's name.
    pub name: String,
    /// Whether its backends are IPv6.
    pub v6: bool,
    /// Its backend slots.
    pub capacity: u32,
    /// The map of two Maglev tables (`2 x MAGLEV_SLOTS` u32 slot indices).
    pub table: String,
    /// The map of backend slots (`layout::PoolBackend` records).
    pub backends: String,
    /// The one-entry map saying which table is live.
    pub active: String,
    /// The flow tables of its `sticky` balance actions.
    #[serde(default)]
    pub flows: Vec<String>,
}

/// A rule's statistics slot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleEntry {
    /// The rule's name (`default` for the default).
    pub name: String,
    /// Its terminal verdict (`table` for a rule whose table entry decides).
    pub verdict: String,
}

impl RuleEntry {
    /// A statistics slot no rule holds: room a program compiled for updates in place keeps
    /// for rules to come (see [`crate::room::Room::slots`]). It counts nothing.
    pub fn vacant() -> RuleEntry {
        RuleEntry {
            name: String::new(),
            verdict: "vacant".into(),
        }
    }

    /// Whether the slot is [`RuleEntry::vacant`].
    pub fn is_vacant(&self) -> bool {
        self.name.is_empty()
    }
}

/// The counters' base of a new version whose rules are `new` (in slot order), given the old
/// version's rules `old`, its base and its live per-slot counts `old_live`, and the live counts
/// the new version starts from in its own slots, `new_live` (zeros for a fresh statistics map;
/// the same map's counts for a version updated in place). Each rule keeps its count by name,
/// whatever slot it moves to; a rule new to this version starts at zero; a removed rule's
/// count goes with it. Counts wrap, as the kernel's do, so a base may be "negative".
pub fn carried_base(
    old: &[RuleEntry],
    old_base: &[crate::layout::Counts],
    old_live: &[crate::layout::Counts],
    new: &[RuleEntry],
    new_live: &[crate::layout::Counts],
) -> Vec<crate::layout::Counts> {
    use crate::layout::Counts;
    let at = |v: &[Counts], i: usize| v.get(i).copied().unwrap_or_default();
    let old_slot: std::collections::HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_vacant())
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    new.iter()
        .enumerate()
        .map(|(s, r)| {
            let total = match old_slot.get(r.name.as_str()) {
                Some(&o) if !r.is_vacant() => at(old_base, o).plus(at(old_live, o)),
                _ => Counts::default(),
            };
            total.minus(at(new_live, s))
        })
        .collect()
}

/// One loaded program of a deployment and its maps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// The kernel's program id (filled in at load).
    pub program_id: u32,
    /// The program's name in its object.
    pub program: String,
    /// Its maps.
    pub maps: Vec<MapEntry>,
    /// The sets as this stage keeps them.
    pub sets: Vec<SetEntry>,
    /// Its dynamic pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolEntry>,
    /// The statistics slots this stage counts; `None`: every slot. (A NIC stage counts only
    /// its drop and tx rules: the packets it hands up are counted by the host stage.)
    pub counted_slots: Option<Vec<u32>>,
    /// A digest of the program's instructions (before map relocation), when nfcc compiled
    /// it: two versions with the same digest differ only in their maps' contents, which
    /// `nfcc load --replace` may then update in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What the program left room for, when it was compiled for updates in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<crate::room::Room>,
}

impl Stage {
    /// The map with role `role`, if the stage has one.
    pub fn map_with_role(&self, role: MapRole) -> Option<&MapEntry> {
        self.maps.iter().find(|m| m.role == role)
    }

    /// The dynamic pool whose state map `name` is (its Maglev tables, backend slots,
    /// selector or a flow table): live state `nfcc pool` changes, kept across versions.
    pub fn pool_of_map(&self, name: &str) -> Option<&PoolEntry> {
        self.pools.iter().find(|p| {
            p.table == name
                || p.backends == name
                || p.active == name
                || p.flows.iter().any(|f| f == name)
        })
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&MapEntry> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// Whether the stage counts slot `slot`.
    pub fn counts(&self, slot: u32) -> bool {
        self.counted_slots
            .as_ref()
            .is_none_or(|s| s.contains(&slot))
    }
}

/// What one `nfcc load` deployed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The nfcc that wrote it.
    pub nfcc_version: String,
    /// The policy (for an object: its program) — the pin directory's name.
    pub policy: String,
    /// The file it was loaded from, as given.
    pub source: String,
    /// The policy's hook as the language spells it; `None` for an object nfcc did not compile.
    pub hook: Option<String>,
    /// The kernel program type.
    pub prog_type: ProgType,
    /// How it is attached.
    pub mode: AttachMode,
    /// The interface.
    pub iface: String,
    /// The interface's index when it was attached: an interface of the same name with another
    /// index is another interface.
    pub ifindex: u32,
    /// When it was attached (seconds since the Unix epoch).
    pub deployed_at: u64,
    /// The host program; `None` when the whole policy runs on the NIC.
    pub host: Option<Stage>,
    /// The NIC program of an offloaded policy.
    pub nic: Option<Stage>,
    /// The rules in statistics-slot order, the default last; empty for an object nfcc did not
    /// compile.
    pub rules: Vec<RuleEntry>,
    /// Per-slot counts of versions swapped out by `--replace`, added to the live counts.
    pub base: Vec<Counts>,
    /// The deployment's name when it is not the policy's: the agent deploys one policy on
    /// many interfaces, each as `POLICY@IFACE`. It names the pin directory and the manifest
    /// file (see [`Manifest::key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Who keeps the deployment in its desired state (`agent` for `nfcc agent`); `None` for
    /// a deployment made by hand, which the agent never touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// What the deployer deployed, as it identifies it (the agent: a digest of the policy
    /// file, the policy chosen and the mode), so it can tell an unchanged deployment from a
    /// stale one after a restart without reloading anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of this shape.
    #[error("the manifest is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    /// Written by an nfcc with another manifest format.
    #[error("the manifest has format version {found}, this nfcc reads version {MANIFEST_VERSION}; use the nfcc that loaded it (version {nfcc}) to unload it")]
    Version {
        /// The version found.
        found: u32,
        /// The nfcc that wrote it.
        nfcc: String,
    },
}

impl Manifest {
    /// A manifest for `policy` attached to `iface` in `mode`, with no stage described yet: the
    /// runtime fills in what it loaded and pinned; the driver adds what the compiler knows.
    pub fn new(policy: &str, source: &str, mode: AttachMode, iface: &str) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            nfcc_version: String::new(),
            policy: policy.to_string(),
            source: source.to_string(),
            hook: None,
            prog_type: mode.prog_type(),
            mode,
            iface: iface.to_string(),
            ifindex: 0,
            deployed_at: 0,
            host: None,
            nic: None,
            rules: Vec::new(),
            base: Vec::new(),
            deployment: None,
            managed_by: None,
            revision: None,
        }
    }

    /// The deployment's key: its pin directory's and manifest file's name — the policy's
    /// name, or [`Manifest::deployment`] when set.
    pub fn key(&self) -> &str {
        self.deployment.as_deref().unwrap_or(&self.policy)
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and lists always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a manifest, refusing other format versions.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        #[derive(serde::Deserialize)]
        struct Head {
            version: u32,
            #[serde(default)]
            nfcc_version: String,
        }
        let head: Head = serde_json::from_str(text)?;
        if head.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: head.version,
                nfcc: head.nfcc_version,
            });
        }
        Ok(serde_json::from_str(text)?)
    }

    /// The stage whose statistics map names the rules: the host's, or the NIC's alone.
    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.host.iter().chain(self.nic.iter())
    }

    /// The program id that decides a packet first on the host (the NIC's when there is no
    /// host stage).
    pub fn program_id(&self) -> u32 {
        self.host
            .as_ref()
            .or(self.nic.as_ref())
            .map_or(0, |s| s.program_id)
    }

    /// The names of the rules' slots, if the program was compiled by nfcc.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            nfcc_version: "0.1.0".into(),
            policy: "edge \"quoted\" \\ name".into(),
            source: "/tmp/a\"b.nf".into(),
            hook: Some("xdp".into()),
            prog_type: ProgType::Xdp,
            mode: AttachMode::Native,
            iface: "eth1".into(),
            ifindex: 7,
            deployed_at: 1_700_000_000,
            host: Some(Stage {
                program_id: 42,
                program: "edge".into(),
                maps: vec![MapEntry {
                    name: "edge_set_blocked".into(),
                    pin: Some("/sys/fs/bpf/nfcc/edge/edge_set_blocked".into()),
                    kind: MapKind::LpmTrie,
                    key_size: 8,
                    value_size: 1,
                    max_entries: 1024,
                    role: MapRole::PrefixSet,
                    owner: Some("blocked".into()),
                }],
                sets: vec![SetEntry {
                    name: "blocked".into(),
                    kind: "ipv4 prefix".into(),
                    dynamic: true,
                    maps: vec![
                        SetMap {
                            map: "edge_set_blocked".into(),
                            width: 4,
                            form: SetForm::Lpm,
                        },
                        SetMap {
                            map: "edge_set_b_w4".into(),
                            width: 4,
                            form: SetForm::PrefixHash {
                                lengths: "edge_set_b_w4_lengths".into(),
                                per_entry: false,
                            },
                        },
                    ],
                }],
                pools: vec![],
                counted_slots: None,
                code: None,
                room: None,
            }),
            nic: None,
            rules: vec![RuleEntry {
                name: "default".into(),
                verdict: "pass".into(),
            }],
            base: vec![Counts {
                packets: 1,
                bytes: 2,
            }],
            deployment: Some("edge@eth1".into()),
            managed_by: Some("agent:edge".into()),
            revision: Some("00ff".into()),
        }
    }

    #[test]
    fn a_manifest_without_the_agent_fields_reads_and_is_keyed_by_its_policy() {
        let mut m = sample();
        assert_eq!(m.key(), "edge@eth1");
        m.deployment = None;
        m.managed_by = None;
        m.revision = None;
        let json = m.to_json();
        assert!(!json.contains("deployment"), "{json}");
        let back = Manifest::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.key(), "edge \"quoted\" \\ name");
    }

    #[test]
    fn round_trips_through_json_with_quotes_and_backslashes() {
        let m = sample();
        let text = m.to_json();
        let back = Manifest::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, m);
        assert!(text.contains("\"mode\": \"native\""), "{text}");
        assert!(text.contains("\"form\": \"prefix_hash\""), "{text}");
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        let text = sample()
            .to_json()
            .replacen("\"version\": 1", "\"version\": 9", 1);
        let e = Manifest::from_json(&text).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("format version 9")),
            "{e:?}"
        );
        assert!(Manifest::from_json("policy=x\niface=y\n").is_err());
    }
}

#[cfg(test)]
mod carried {
    use super::{carried_base, RuleEntry};
    use crate::layout::Counts;

    fn rules(names: &[&str]) -> Vec<RuleEntry> {
        names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    RuleEntry::vacant()
                } else {
                    RuleEntry {
                        name: n.to_string(),
                        verdict: "drop".into(),
                    }
                }
            })
            .collect()
    }

    fn c(p: u64) -> Counts {
        Counts {
            packets: p,
            bytes: 100 * p,
        }
    }

    #[test]
    fn a_rule_keeps_its_count_by_name_whatever_slot_it_moves_to() {
        // r1 inserted before r2; r0 removed; a vacant slot; the default last.
        let old = rules(&["r0", "r2", "", "default"]);
        let new = rules(&["r1", "r2", "", "default"]);
        let (old_base, old_live) = ([c(1), c(2), c(0), c(3)], [c(10), c(20), c(0), c(30)]);
        // A fresh statistics map.
        let base = carried_base(&old, &old_base, &old_live, &new, &[]);
        assert_eq!(base, vec![c(0), c(22), c(0), c(33)]);
        // The same map, updated in place: its live counts are taken away.
        let live = [c(10), c(20), c(0), c(30)];
        let base = carried_base(&old, &old_base, &old_live, &new, &live);
        let shown: Vec<Counts> = base.iter().zip(&live).map(|(b, l)| b.plus(*l)).collect();
        assert_eq!(shown, vec![c(0), c(22), c(0), c(33)]);
    }
}
