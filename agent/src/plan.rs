//! What to do to bring the node to the desired state: a pure function of the bindings that
//! passed their checks, the interfaces that exist, and the deployments that exist, so every
//! decision is tested without privileges.
//!
//! Rules (an operator's expectations of a controller):
//! - a deployment made by hand (no `managed_by`) is never touched; an interface it holds is
//!   a conflict, reported;
//! - an interface two bindings match goes to the first by name; the other is a conflict;
//! - a binding that is *held* (its file or its policy is bad) keeps what it deployed: a bad
//!   version is never deployed and never takes the good one down;
//! - the same deployment at another revision is replaced (`--replace`: one atomic swap,
//!   sets and counters kept); another policy or mode on the interface is unloaded first;
//! - a deployment whose interface went away is forgotten (pins and manifest removed).

use nfcc_driver::bpf::manifest::AttachMode;
use std::collections::{BTreeMap, BTreeSet};

/// `managed_by` of an agent's deployments: `agent:` with the agent's configuration directory,
/// `#`, and the binding's name. An agent manages only its own: two agents on one node (one
/// on a directory, one on the cluster) never undo each other's work.
pub fn manager(dir: &str, binding: &str) -> String {
    format!("agent:{dir}#{binding}")
}

/// The binding of a `managed_by` that [`manager`] wrote for `dir`, if it is one.
pub fn managed_binding<'a>(managed_by: &'a str, dir: &str) -> Option<&'a str> {
    managed_by
        .strip_prefix("agent:")?
        .strip_prefix(dir)?
        .strip_prefix('#')
}

/// One deployment the bindings ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// The binding.
    pub binding: String,
    /// The policy.
    pub policy: String,
    /// The interface.
    pub iface: String,
    /// The attach mode.
    pub mode: AttachMode,
    /// The binding's revision.
    pub revision: String,
}

impl Want {
    /// The deployment's key: `POLICY@IFACE`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.policy, self.iface)
    }
}

/// One deployment that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Have {
    /// Its key.
    pub key: String,
    /// Its policy.
    pub policy: String,
    /// Its interface.
    pub iface: String,
    /// How it is attached.
    pub mode: AttachMode,
    /// The binding that made it, for this agent's.
    pub binding: Option<String>,
    /// Who manages it, when it is not this agent's (another agent); `None` for one made by
    /// hand.
    pub other: Option<String>,
    /// Its revision, for the agent's.
    pub revision: Option<String>,
    /// Its interface is gone.
    pub gone: bool,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Remove the pins and manifest of a deployment whose interface is gone.
    Forget(Have),
    /// Detach and unpin.
    Unload(Have, &'static str),
    /// Load anew.
    Load(Want),
    /// Swap the new revision in.
    Replace(Want),
}

/// The plan: steps in the order they run (forgetting and unloading first, so interfaces are
/// free before they are loaded), the deployments already right, and conflicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do.
    pub steps: Vec<Step>,
    /// Deployments left as they are (keys).
    pub kept: Vec<String>,
    /// Interfaces nobody may have, with why.
    pub conflicts: Vec<String>,
}

/// Plans: `wants` from the usable bindings (in binding-name order), `held` the bindings whose
/// deployments stay as they are, `haves` what exists.
pub fn plan(wants: &[Want], held: &BTreeSet<String>, haves: &[Have]) -> Plan {
    let mut p = Plan::default();
    let live: BTreeMap<&str, &Have> = haves
        .iter()
        .filter(|h| !h.gone)
        .map(|h| (h.iface.as_str(), h))
        .collect();
    let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let (mut unloads, mut loads) = (Vec::new(), Vec::new());
    for w in wants {
        if let Some(first) = claimed.get(w.iface.as_str()) {
            p.conflicts.push(format!(
                "{}: bindings `{first}` and `{}` both match it; `{first}` applies",
                w.iface, w.binding
            ));
            continue;
        }
        claimed.insert(&w.iface, &w.binding);
        let Some(h) = live.get(w.iface.as_str()) else {
            loads.push(Step::Load(w.clone()));
            continue;
        };
        touched.insert(&h.key);
        match &h.binding {
            None => p.conflicts.push(match &h.other {
                None => format!(
                    "{}: runs `{}`, loaded by hand; binding `{}` leaves it alone (`nfcc unload --iface {}` hands the interface over)",
                    w.iface, h.policy, w.binding, w.iface
                ),
                Some(m) => format!(
                    "{}: runs `{}`, managed by {m}; binding `{}` leaves it alone",
                    w.iface, h.policy, w.binding
                ),
            }),
            Some(b) if b != &w.binding && held.contains(b) => {
                p.kept.push(h.key.clone());
                p.conflicts.push(format!(
                    "{}: binding `{b}` deployed `{}` here and is held (see its problem); binding `{}` waits",
                    w.iface, h.policy, w.binding
                ));
            }
            Some(_) if h.key == w.key() && h.mode == w.mode => {
                if h.revision.as_deref() == Some(w.revision.as_str()) {
                    p.kept.push(h.key.clone());
                } else {
                    loads.push(Step::Replace(w.clone()));
                }
            }
            Some(_) => {
                unloads.push(Step::Unload((*h).clone(), "its interface is bound to another policy or mode"));
                loads.push(Step::Load(w.clone()));
            }
        }
    }
    for h in haves {
        let Some(b) = &h.binding else { continue };
        if h.gone {
            p.steps.push(Step::Forget(h.clone()));
        } else if touched.contains(h.key.as_str()) {
            continue;
        } else if held.contains(b) {
            p.kept.push(h.key.clone());
        } else {
            unloads.push(Step::Unload(h.clone(), "no binding asks for it any more"));
        }
    }
    p.steps.extend(unloads);
    p.steps.extend(loads);
    p
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Forget(h) => write!(f, "forget {} (interface {} is gone)", h.key, h.iface),
            Step::Unload(h, why) => write!(f, "unload {} from {} ({why})", h.key, h.iface),
            Step::Load(w) => write!(
                f,
                "load {} on {} ({}, binding {})",
                w.key(),
                w.iface,
                w.mode.name(),
                w.binding
            ),
            Step::Replace(w) => write!(
                f,
                "replace {} on {} (revision {}, binding {})",
                w.key(),
                w.iface,
                w.revision,
                w.binding
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the scene — lines `want BINDING POLICY IFACE MODE REV`, `have POLICY IFACE MODE
    /// BINDING|- REV|- [gone]`, `held BINDING` — plans, and compares the rendered plan.
    fn check(scene: &str, expect: &str) {
        let mode = |m: &str| match m {
            "native" => AttachMode::Native,
            "generic" => AttachMode::Generic,
            _ => AttachMode::TcIngress,
        };
        let (mut wants, mut haves, mut held) = (Vec::new(), Vec::new(), BTreeSet::new());
        for line in scene.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w[0] {
                "want" => wants.push(Want {
                    binding: w[1].into(),
                    policy: w[2].into(),
                    iface: w[3].into(),
                    mode: mode(w[4]),
                    revision: w[5].into(),
                }),
                "have" => haves.push(Have {
                    key: if w[4] == "-" || w[4].starts_with("other:") {
                        w[1].to_string()
                    } else {
                        format!("{}@{}", w[1], w[2])
                    },
                    policy: w[1].into(),
                    iface: w[2].into(),
                    mode: mode(w[3]),
                    binding: (w[4] != "-" && !w[4].starts_with("other:")).then(|| w[4].to_string()),
                    other: w[4].strip_prefix("other:").map(str::to_string),
                    revision: (w[5] != "-").then(|| w[5].to_string()),
                    gone: w.get(6) == Some(&"gone"),
                }),
                "held" => {
                    held.insert(w[1].to_string());
                }
                other => panic!("unknown scene line {other}"),
            }
        }
        let p = plan(&wants, &held, &haves);
        let mut out = String::new();
        for s in &p.steps {
            out.push_str(&format!("{s}\n"));
        }
        for k in &p.kept {
            out.push_str(&format!("keep {k}\n"));
        }
        for c in &p.conflicts {
            out.push_str(&format!("conflict {c}\n"));
        }
        assert_eq!(out, expect, "scene:\n{scene}");
    }

    #[test]
    fn new_interfaces_are_loaded_and_unchanged_ones_kept() {
        check(
            "want b edge tb1 native r1
             want b edge tb2 native r1
             have edge tb1 native b r1",
            "load edge@tb2 on tb2 (native, binding b)\nkeep edge@tb1\n",
        );
    }

    #[test]
    fn a_new_revision_is_swapped_in() {
        check(
            "want b edge tb1 native r2
             have edge tb1 native b r1",
            "replace edge@tb1 on tb1 (revision r2, binding b)\n",
        );
    }

    #[test]
    fn another_policy_or_mode_is_unloaded_then_loaded() {
        check(
            "want b core tb1 native r1
             want b core tb2 generic r1
             have edge tb1 native b r1
             have core tb2 native b r1",
            "unload edge@tb1 from tb1 (its interface is bound to another policy or mode)
unload core@tb2 from tb2 (its interface is bound to another policy or mode)
load core@tb1 on tb1 (native, binding b)
load core@tb2 on tb2 (generic, binding b)
",
        );
    }

    #[test]
    fn removed_bindings_unload_and_gone_interfaces_are_forgotten() {
        check(
            "have edge tb1 native b r1
             have edge tb2 native b r1 gone",
            "forget edge@tb2 (interface tb2 is gone)
unload edge@tb1 from tb1 (no binding asks for it any more)
",
        );
    }

    #[test]
    fn a_gone_deployment_on_a_recreated_interface_is_forgotten_and_loaded_again() {
        check(
            "want b edge tb1 native r1
             have edge tb1 native b r1 gone",
            "forget edge@tb1 (interface tb1 is gone)\nload edge@tb1 on tb1 (native, binding b)\n",
        );
    }

    #[test]
    fn held_bindings_keep_what_they_deployed() {
        // `b` has a bad new version: it is not among the wants, and its deployment stays.
        check(
            "held b
             have edge tb1 native b r1
             want c core tb2 native r1",
            "load core@tb2 on tb2 (native, binding c)\nkeep edge@tb1\n",
        );
        // Another binding that now matches the held binding's interface waits.
        check(
            "held b
             have edge tb1 native b r1
             want c core tb1 native r1",
            "keep edge@tb1
conflict tb1: binding `b` deployed `edge` here and is held (see its problem); binding `c` waits
",
        );
    }

    #[test]
    fn hand_made_deployments_are_never_touched() {
        check(
            "have manual eth0 native - -
             want b edge eth0 native r1",
            "conflict eth0: runs `manual`, loaded by hand; binding `b` leaves it alone (`nfcc unload --iface eth0` hands the interface over)\n",
        );
        check("have manual eth0 native - - gone", "");
    }

    #[test]
    fn another_agents_deployments_are_never_touched() {
        check(
            "have edge tb1 native other:agent:/etc/a#b r1
             have edge tb2 native other:agent:/etc/a#b r1 gone
             want b edge tb1 native r1",
            "conflict tb1: runs `edge`, managed by agent:/etc/a#b; binding `b` leaves it alone\n",
        );
    }

    #[test]
    fn managed_by_names_the_agent_and_the_binding() {
        let m = manager("/etc/nfcc", "edge");
        assert_eq!(m, "agent:/etc/nfcc#edge");
        assert_eq!(managed_binding(&m, "/etc/nfcc"), Some("edge"));
        assert_eq!(managed_binding(&m, "/etc/nfc"), None);
        assert_eq!(managed_binding("agent:/etc/nfcc#", "/etc/nfcc"), Some(""));
    }

    #[test]
    fn an_interface_two_bindings_match_goes_to_the_first() {
        check(
            "want a edge tb1 native r1
             want b core tb1 native r1",
            "load edge@tb1 on tb1 (native, binding a)
conflict tb1: bindings `a` and `b` both match it; `a` applies
",
        );
    }
}
