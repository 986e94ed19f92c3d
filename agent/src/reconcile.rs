//! One reconcile: read the bindings, check each new revision (the policy checks, its embedded
//! tests pass on the emulator), look at the interfaces and deployments that exist, plan
//! (`plan`), and run the plan through `nfcc-driver` — the same loads, replaces and unloads
//! as `nfcc load` and `nfcc unload`. Problems are logged once per revision and counted; a
//! failed step does not stop the others.

use crate::config::{self, Binding};
use crate::log::{log, Level};
use crate::metrics::AgentMetrics;
use crate::plan::{managed_binding, manager, plan, Have, Plan, Step, Want};
use nfcc_driver::bpf::manifest::AttachMode;
use nfcc_driver::deploy::{self, LoadRequest, Owner};
use nfcc_driver::dsl::checked::Hook;
use nfcc_driver::engine::EngineKind;
use nfcc_driver::test::TestEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// What a binding's revision is, once checked: the policy and mode to deploy, or why not.
type Verdict = Result<(String, AttachMode), String>;

/// The state kept between reconciles.
pub struct Reconciler {
    dir: PathBuf,
    /// The agent's identity in `managed_by`: its configuration directory, made absolute.
    id: String,
    metrics: AgentMetrics,
    /// Checked revisions: a revision is checked (and tested) once, and a rejection logged once.
    verdicts: HashMap<String, Verdict>,
    /// The problems of the last reconcile, so unchanged ones are not logged again.
    problems: BTreeMap<String, String>,
    conflicts: BTreeSet<String>,
    /// The policy file of each usable binding and the bytes this reconcile checked.
    files: HashMap<String, (PathBuf, Vec<u8>)>,
}

/// What one reconcile did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The plan it ran.
    pub plan: Plan,
    /// Steps that failed, with why.
    pub failed: Vec<String>,
    /// Bindings held (bad file or bad policy), with why.
    pub held: BTreeMap<String, String>,
    /// Every binding read (usable or not) with its revision (empty for an unreadable file).
    pub bindings: Vec<(String, String)>,
    /// This agent's live deployments after the reconcile.
    pub deployed: Vec<Have>,
    /// How long it took.
    pub seconds: f64,
}

impl Outcome {
    /// One line: what was done.
    pub fn summary(&self) -> String {
        format!(
            "{} step(s), {} kept, {} failed, {} binding(s) held, {} conflict(s) in {:.3} s",
            self.plan.steps.len(),
            self.plan.kept.len(),
            self.failed.len(),
            self.held.len(),
            self.plan.conflicts.len(),
            self.seconds
        )
    }

    /// Whether everything asked for is deployed.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.held.is_empty()
    }

    /// `nfcc agent --once`'s exit code: 3 when something was not deployed.
    pub fn exit_code(&self) -> u8 {
        if self.complete() {
            nfcc_driver::exit::OK
        } else {
            nfcc_driver::exit::FAILED
        }
    }
}

impl Reconciler {
    /// A reconciler of the bindings in `dir`.
    pub fn new(dir: PathBuf, metrics: AgentMetrics) -> Reconciler {
        let id = std::fs::canonicalize(&dir)
            .unwrap_or_else(|_| dir.clone())
            .display()
            .to_string();
        Reconciler {
            dir,
            id,
            metrics,
            verdicts: HashMap::new(),
            problems: BTreeMap::new(),
            conflicts: BTreeSet::new(),
            files: HashMap::new(),
        }
    }

    /// Checks a binding's revision (once per revision).
    fn verdict(&mut self, b: &Binding) -> Verdict {
        if let Some(v) = self.verdicts.get(&b.revision) {
            return v.clone();
        }
        let v = check(b);
        if let Err(why) = &v {
            self.metrics.reject(&b.name);
            log(
                Level::Error,
                &format!(
                    "binding {}: not deployed (revision {}): {why}",
                    b.name, b.revision
                ),
            );
        }
        self.verdicts.insert(b.revision.clone(), v.clone());
        v
    }

    /// Brings the node to what the bindings ask for.
    pub fn reconcile(&mut self) -> Result<Outcome, crate::AgentError> {
        let t = Instant::now();
        let cfg = config::read(&self.dir).map_err(|source| crate::AgentError::Config {
            dir: self.dir.display().to_string(),
            source,
        })?;
        let mut held: BTreeMap<String, String> = cfg
            .problems
            .iter()
            .map(|p| (p.binding.clone(), p.message.clone()))
            .collect();
        let ifaces: Vec<String> = nfcc_driver::runtime::links::interfaces()?
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        self.files = cfg
            .bindings
            .iter()
            .map(|b| (b.name.clone(), (b.policy_file.clone(), b.source.clone())))
            .collect();
        let mut wants = Vec::new();
        for b in &cfg.bindings {
            match self.verdict(b) {
                Ok((policy, mode)) => {
                    for iface in ifaces.iter().filter(|i| b.matches(i)) {
                        wants.push(Want {
                            binding: b.name.clone(),
                            policy: policy.clone(),
                            iface: iface.clone(),
                            mode,
                            revision: b.revision.clone(),
                        });
                    }
                }
                Err(why) => {
                    held.insert(b.name.clone(), why);
                }
            }
        }
        for (b, why) in &held {
            if self.problems.get(b) != Some(why) && cfg.problems.iter().any(|p| &p.binding == b) {
                self.metrics.reject(b);
                log(Level::Error, &format!("binding {b}: {why}"));
            }
        }
        self.problems.clone_from(&held);
        // Verdicts of revisions no binding has any more are dropped (bounded memory).
        let live: BTreeSet<&String> = cfg.bindings.iter().map(|b| &b.revision).collect();
        self.verdicts.retain(|r, _| live.contains(r));
        let existing = haves(&self.id);
        let held_names: BTreeSet<String> = held.keys().cloned().collect();
        let p = plan(&wants, &held_names, &existing);
        let mut bindings: Vec<(String, String)> = cfg
            .bindings
            .iter()
            .map(|b| (b.name.clone(), b.revision.clone()))
            .chain(
                cfg.problems
                    .iter()
                    .map(|p| (p.binding.clone(), String::new())),
            )
            .collect();
        bindings.sort();
        let mut out = Outcome {
            failed: Vec::new(),
            held,
            bindings,
            deployed: Vec::new(),
            seconds: 0.0,
            plan: Plan::default(),
        };
        for s in &p.steps {
            if let Err(why) = self.run(s) {
                log(Level::Error, &format!("{s}: failed: {why}"));
                out.failed.push(format!("{s}: {why}"));
            }
        }
        let conflicts: BTreeSet<String> = p.conflicts.iter().cloned().collect();
        for c in conflicts.difference(&self.conflicts) {
            log(Level::Warn, &format!("conflict on {c}"));
        }
        self.conflicts = conflicts;
        let seconds = t.elapsed().as_secs_f64();
        self.metrics.reconciles.inc();
        self.metrics.reconcile_seconds.observe(seconds);
        self.metrics.bindings.set(cfg.bindings.len() as i64);
        self.metrics.conflicts.set(p.conflicts.len() as i64);
        // What exists changed only if a step ran: a quiet tick reads the deployments once.
        let after = if p.steps.is_empty() {
            existing
        } else {
            haves(&self.id)
        };
        out.deployed = after
            .into_iter()
            .filter(|h| h.binding.is_some() && !h.gone)
            .collect();
        self.metrics.deployments.set(out.deployed.len() as i64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics.last_reconcile.set(now);
        out.plan = p;
        out.seconds = seconds;
        Ok(out)
    }

    /// Runs one step, logging and counting it.
    fn run(&self, s: &Step) -> Result<(), String> {
        let (action, result) = match s {
            Step::Forget(h) => ("forget", deploy::unload_key(&h.key).map(drop)),
            Step::Unload(h, _) => ("unload", deploy::unload_key(&h.key).map(drop)),
            Step::Load(w) => ("load", self.load(w, false)),
            Step::Replace(w) => ("replace", self.load(w, true)),
        };
        // An interface deleted while its policy was being loaded: nothing failed, there is
        // nothing to load on; the next reconcile sees the link gone.
        let gone = match s {
            Step::Load(w) | Step::Replace(w) => {
                result.is_err() && nfcc_driver::runtime::ifindex(&w.iface).is_err()
            }
            _ => false,
        };
        self.metrics.action(action, result.is_ok() || gone);
        match result {
            Ok(()) => {
                log(Level::Info, &s.to_string());
                Ok(())
            }
            Err(_) if gone => {
                log(
                    Level::Info,
                    &format!("{s}: skipped, the interface went away meanwhile"),
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn load(&self, w: &Want, replace: bool) -> Result<(), nfcc_driver::DriverError> {
        // What is loaded must be what was checked: a file changed since has a new revision,
        // which the next reconcile checks (and deploys if it passes).
        let changed = || {
            nfcc_driver::DriverError::Input(format!(
                "binding {}'s policy file changed while it was being deployed; the next reconcile checks the new version",
                w.binding
            ))
        };
        let (file, checked) = self.files.get(&w.binding).ok_or_else(changed)?;
        if std::fs::read(file).ok().as_ref() != Some(checked) {
            return Err(changed());
        }
        let file = file.clone();
        let req = LoadRequest {
            file,
            iface: w.iface.clone(),
            mode: Some(mode_of(w.mode)),
            policy: Some(w.policy.clone()),
            replace,
            reload: false,
            classifier: nfcc_driver::compile::Classifier::Auto,
            owner: Some(Owner {
                deployment: w.key(),
                managed_by: manager(&self.id, &w.binding),
                revision: w.revision.clone(),
            }),
        };
        deploy::load(&req).map(drop)
    }
}

fn mode_of(m: AttachMode) -> deploy::Mode {
    match m {
        AttachMode::Native => deploy::Mode::Native,
        AttachMode::Generic => deploy::Mode::Generic,
        AttachMode::TcIngress => deploy::Mode::TcIngress,
        AttachMode::TcEgress => deploy::Mode::TcEgress,
        AttachMode::Offload => deploy::Mode::Offload,
    }
}

/// Checks a binding: its policy checks and is chosen, and every test of the file passes on
/// the emulator. The policy's name and the attach mode to use, or why the binding is held.
pub fn check(b: &Binding) -> Verdict {
    let chosen = nfcc_driver::source::Chosen::read(&b.policy_file, b.policy.as_deref())
        .map_err(|e| e.to_string())?;
    let mode = match b.mode {
        Some(m) => AttachMode::from(m),
        None => match chosen.policy.hook {
            Hook::TcIngress => AttachMode::TcIngress,
            Hook::TcEgress => AttachMode::TcEgress,
            _ => AttachMode::Native,
        },
    };
    let mut problems = Vec::new();
    let summary = nfcc_driver::test::run(
        std::slice::from_ref(&b.policy_file),
        &[EngineKind::Emulator],
        &mut |ev| match ev {
            TestEvent::Unreadable(m) | TestEvent::EngineFailed(m) => problems.push(m),
            TestEvent::DoesNotCheck { rendered, .. } => problems.push(rendered),
            TestEvent::Report {
                report, rendered, ..
            } if !report.failures.is_empty() => {
                problems.push(format!(
                    "test `{}` of policy `{}` fails on the emulator:\n{rendered}",
                    report.name, report.policy
                ));
            }
            TestEvent::Report { .. } => {}
        },
    );
    if summary.failed() || !problems.is_empty() {
        if problems.is_empty() {
            problems.push("its tests fail on the emulator (`nfcc test` says which)".into());
        }
        return Err(problems.join("\n").trim_end().to_string());
    }
    Ok((chosen.policy.name, mode))
}

/// The deployments that exist, as the planner sees them: this agent's (`id`) with their
/// binding, others' with their manager.
fn haves(id: &str) -> Vec<Have> {
    deploy::status()
        .0
        .into_iter()
        .map(|d| {
            let m = d.manifest.managed_by.as_deref();
            let binding = m.and_then(|m| managed_binding(m, id)).map(str::to_string);
            Have {
                key: d.manifest.key().to_string(),
                policy: d.policy().to_string(),
                iface: d.iface().to_string(),
                mode: d.mode(),
                other: m.filter(|_| binding.is_none()).map(str::to_string),
                binding,
                revision: d.manifest.revision.clone(),
                gone: d.gone.is_some(),
            }
        })
        .collect()
}
