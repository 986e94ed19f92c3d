//! Acceptance of the compiler's objects by every loader a user may reach for: every policy of
//! `examples/*.nf`, `compiler/tests/in/*.nf` and `dsl/tests/in/ok/*.nf` that the compiler
//! accepts must
//!
//! - load through aya (`nfcc_runtime::load`), one program at a time;
//! - load through libbpf (`libbpf-rs`: `ObjectBuilder::open_memory` then `load`, which loads
//!   every program of the object at once);
//! - load with `bpftool prog loadall OBJ /sys/fs/bpf/nfcc-loaders-<pid>-<n>` (bpffs is mounted
//!   when missing; the pin directory is removed afterwards);
//! - attach with iproute2 to a veth pair in a fresh network namespace: XDP programs in native
//!   mode (`ip link set dev v0 xdpdrv obj OBJ sec xdp`), TC programs as direct-action filters
//!   on a clsact qdisc (`tc filter add dev v0 ingress|egress bpf da obj OBJ sec classifier`).
//!
//! Each policy is compiled alone into its own object, because iproute2 attaches the first
//! program of a section; the three loaders also get each file compiled whole (one object
//! with one program per policy), when every policy of the file compiles. Policies the compiler
//! refuses with only E0201 diagnostics (constructs still being built) are skipped and listed;
//! any other compiler error fails. The namespace, pin directories and temporary files are
//! removed even when a test panics.
//!
//! Needs CAP_BPF and CAP_NET_ADMIN: without them the tests print `skipped: <why>`, or fail
//! when `NFCC_REQUIRE_KERNEL=1`.

mod common;

use nfcc_compiler::compile::compile;
use nfcc_dsl::checked::{Hook, Program};
use nfcc_dsl::{check_source, CheckOptions, Severity};
use nfcc_runtime::{load, ProgType};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

// -------------------------------------------------------------------------------------------
// The corpus, compiled
// -------------------------------------------------------------------------------------------

/// A compiled object and the programs (policy name and hook) it holds.
struct Object {
    /// What it was compiled from: `FILE` for a whole file, `FILE:POLICY` for one policy.
    label: String,
    /// The ELF object.
    bytes: Vec<u8>,
    /// Its programs: policy (function) name and hook.
    programs: Vec<(String, Hook)>,
}

/// Every object the tests load.
struct Corpus {
    /// One object per policy the compiler accepts.
    singles: Vec<Object>,
    /// One object per file whose every policy the compiler accepts.
    wholes: Vec<Object>,
    /// `FILE:POLICY` of the policies refused with only E0201 diagnostics.
    refused: Vec<String>,
}

impl Corpus {
    /// Every object: single policies first, then whole files.
    fn all(&self) -> impl Iterator<Item = &Object> {
        self.singles.iter().chain(&self.wholes)
    }
}

/// Compiles `program` and sorts the result: `Ok(Some)` compiled, `Ok(None)` refused with
/// only E0201 diagnostics, `Err` any other compiler error (rendered).
fn compile_or_refuse(
    program: &Program,
    name: &str,
    source: &str,
) -> Result<Option<Vec<u8>>, String> {
    match compile(program, name, source, None) {
        Ok(c) => Ok(Some(c.object)),
        Err(diags) if diags.iter().all(|d| d.code == "E0201") => Ok(None),
        Err(diags) => Err(nfcc_dsl::diag::render_short(name, source, &diags)),
    }
}

/// Checks and compiles the corpus; panics on a file that does not check or a compiler error
/// other than E0201.
fn corpus() -> Corpus {
    let mut c = Corpus {
        singles: Vec::new(),
        wholes: Vec::new(),
        refused: Vec::new(),
    };
    let mut errors = Vec::new();
    for path in common::corpus_files() {
        let source =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let program = match program {
            Some(p) if !diags.iter().any(|d| d.severity == Severity::Error) => p,
            _ => panic!(
                "{name} must check:\n{}",
                nfcc_dsl::diag::render_short(&name, &source, &diags)
            ),
        };
        let mut all_compiled = true;
        for policy in &program.policies {
            let single = Program {
                policies: vec![policy.clone()],
            };
            let label = format!("{name}:{}", policy.name);
            match compile_or_refuse(&single, &name, &source) {
                Ok(Some(bytes)) => c.singles.push(Object {
                    label,
                    bytes,
                    programs: vec![(policy.name.clone(), policy.hook)],
                }),
                Ok(None) => {
                    all_compiled = false;
                    c.refused.push(label);
                }
                Err(e) => {
                    all_compiled = false;
                    errors.push(format!("{label}: the compiler failed:\n{e}"));
                }
            }
        }
        if all_compiled && program.policies.len() > 1 {
            match compile_or_refuse(&program, &name, &source) {
                Ok(Some(bytes)) => c.wholes.push(Object {
                    label: name.clone(),
                    bytes,
                    programs: program
                        .policies
                        .iter()
                        .map(|p| (p.name.clone(), p.hook))
                        .collect(),
                }),
                Ok(None) => c.refused.push(name.clone()),
                Err(e) => errors.push(format!("{name}: the compiler failed:\n{e}")),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "the compiler failed on {} corpus policies:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(
        c.singles.len() >= 5,
        "too few corpus policies compiled: {}",
        c.singles.len()
    );
    c
}

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

/// Returns whether the kernel can be used; prints why not (or panics when the kernel is
/// required) otherwise.
fn kernel_available(test: &str) -> bool {
    match nfcc_runtime::can_load_bpf() {
        Ok(()) => true,
        Err(reason) => skip(test, &reason),
    }
}

/// Prints `skipped: <test>: <reason>` and returns false, or panics when the kernel is
/// required.
fn skip(test: &str, reason: &str) -> bool {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but {test} cannot run: {reason}");
    }
    eprintln!("skipped: {test}: {reason}");
    false
}

/// The program kind of a hook.
fn prog_kind(hook: Hook) -> ProgType {
    match hook {
        Hook::Xdp => ProgType::Xdp,
        _ => ProgType::Tc,
    }
}

/// Runs a command and returns its stdout, or a message with its status and output.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A temporary directory removed on drop, panic or not.
struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/nfcc-loaders-<pid>-<what>`.
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("nfcc-loaders-{}-{what}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Writes `bytes` as the file `name` inside and returns its path as a string.
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Nothing useful can be done when removal fails; the directory is in the temp dir.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file name for an object's label (`FILE:POLICY` has a colon).
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        + ".o"
}

/// Panics with every failure of one loader, or prints what it accepted (`accepted` says how
/// many of what).
fn report(loader: &str, accepted: &str, refused: &[String], failures: &[String]) {
    eprintln!(
        "{loader}: accepted {accepted}; not compiled yet (E0201 only): {}",
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
    assert!(
        failures.is_empty(),
        "{loader} refused {} objects:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// -------------------------------------------------------------------------------------------
// aya
// -------------------------------------------------------------------------------------------

#[test]
fn every_policy_loads_through_aya() {
    if !kernel_available("loaders: aya") {
        return;
    }
    let corpus = corpus();
    let mut failures = Vec::new();
    let mut accepted = 0;
    for object in corpus.all() {
        for (name, hook) in &object.programs {
            match load(&object.bytes, name, prog_kind(*hook)) {
                Ok(_) => accepted += 1,
                Err(e) => failures.push(format!("{} ({name}): {e}", object.label)),
            }
        }
    }
    let what = format!(
        "{accepted} programs of {} single-policy and {} whole-file objects",
        corpus.singles.len(),
        corpus.wholes.len()
    );
    report("aya", &what, &corpus.refused, &failures);
}

// -------------------------------------------------------------------------------------------
// libbpf
// -------------------------------------------------------------------------------------------

#[test]
fn every_object_loads_through_libbpf() {
    if !kernel_available("loaders: libbpf") {
        return;
    }
    let corpus = corpus();
    let mut failures = Vec::new();
    let mut accepted = 0;
    for object in corpus.all() {
        // libbpf writes the verifier log of a rejected program to stderr itself.
        let loaded = libbpf_rs::ObjectBuilder::default()
            .open_memory(&object.bytes)
            .and_then(|open| open.load());
        match loaded {
            Ok(obj) => {
                let mut names: Vec<String> = obj
                    .progs()
                    .map(|p| p.name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                let mut want: Vec<String> =
                    object.programs.iter().map(|(n, _)| n.clone()).collect();
                want.sort();
                if names == want {
                    accepted += 1;
                } else {
                    failures.push(format!(
                        "{}: libbpf loaded programs {names:?}, the compiler wrote {want:?}",
                        object.label
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", object.label)),
        }
    }
    let what = format!(
        "{accepted} of {} objects ({} single-policy, {} whole-file)",
        corpus.singles.len() + corpus.wholes.len(),
        corpus.singles.len(),
        corpus.wholes.len()
    );
    report("libbpf", &what, &corpus.refused, &failures);
}

// -------------------------------------------------------------------------------------------
// bpftool
// -------------------------------------------------------------------------------------------

/// A bpffs pin directory removed on drop (removing the pins unloads the programs).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        // Nothing useful can be done when removal fails; it is reported by leftover pins only.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes sure `/sys/fs/bpf` is a bpffs mount, mounting one when it is not.
fn ensure_bpffs() -> Result<(), String> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| e.to_string())?;
    let mounted = mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, at, kind) = (f.next(), f.next(), f.next());
        at == Some("/sys/fs/bpf") && kind == Some("bpf")
    });
    if mounted {
        return Ok(());
    }
    run("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"]).map(|_| ())
}

#[test]
fn every_object_loads_with_bpftool() {
    if !kernel_available("loaders: bpftool") {
        return;
    }
    if let Err(e) = run("bpftool", &["version"]) {
        skip("loaders: bpftool", &format!("bpftool is not usable: {e}"));
        return;
    }
    if let Err(e) = ensure_bpffs() {
        skip("loaders: bpftool", &format!("cannot mount bpffs: {e}"));
        return;
    }
    let corpus = corpus();
    let tmp = TempDir::new("bpftool");
    let mut failures = Vec::new();
    let mut accepted = 0;
    static PINS: AtomicUsize = AtomicUsize::new(0);
    for object in corpus.all() {
        let path = tmp.write(&file_name(&object.label), &object.bytes);
        let n = PINS.fetch_add(1, Ordering::Relaxed);
        let pin = PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/nfcc-loaders-{}-{n}",
            std::process::id()
        )));
        let pin_path = pin.0.to_string_lossy().into_owned();
        match run("bpftool", &["prog", "loadall", &path, &pin_path]) {
            Ok(_) => {
                // Every program is pinned under its function name.
                let missing: Vec<&str> = object
                    .programs
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .filter(|name| !pin.0.join(name).exists())
                    .collect();
                if missing.is_empty() {
                    accepted += 1;
                } else {
                    failures.push(format!(
                        "{}: bpftool pinned no program {missing:?} under {pin_path}",
                        object.label
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", object.label)),
        }
    }
    let what = format!(
        "{accepted} of {} objects ({} single-policy, {} whole-file)",
        corpus.singles.len() + corpus.wholes.len(),
        corpus.singles.len(),
        corpus.wholes.len()
    );
    report("bpftool", &what, &corpus.refused, &failures);
}

// -------------------------------------------------------------------------------------------
// iproute2 attach
// -------------------------------------------------------------------------------------------

/// A network namespace holding the veth pair `v0`/`v1`, deleted on drop, panic or not.
struct Netns(String);

impl Netns {
    /// Creates namespace `name` with the veth pair up.
    fn new(name: &str) -> Result<Netns, String> {
        run("ip", &["netns", "add", name])?;
        // From here on the guard deletes the namespace, whatever fails next.
        let ns = Netns(name.to_string());
        ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])?;
        ns.ip(&["link", "set", "dev", "v0", "up"])?;
        ns.ip(&["link", "set", "dev", "v1", "up"])?;
        Ok(ns)
    }

    /// Runs `ip -n NS ARGS`.
    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `tc -n NS ARGS`.
    fn tc(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        run("tc", &all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its veth pair, qdiscs, filters and XDP programs.
        if let Err(e) = run("ip", &["netns", "del", &self.0]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.0
            );
        }
    }
}

/// Attaches the only program of `object` to `v0` in `ns` the way its hook asks, checks that
/// it shows as attached, and detaches it.
fn attach_and_detach(ns: &Netns, path: &str, hook: Hook) -> Result<(), String> {
    match hook {
        Hook::Xdp => {
            ns.ip(&[
                "link", "set", "dev", "v0", "xdpdrv", "obj", path, "sec", "xdp",
            ])?;
            let shown = ns.ip(&["link", "show", "dev", "v0"])?;
            let attached = shown.contains("xdp");
            ns.ip(&["link", "set", "dev", "v0", "xdpdrv", "off"])?;
            if !attached {
                return Err(format!("no xdp program shows on v0:\n{shown}"));
            }
        }
        Hook::TcIngress | Hook::TcEgress => {
            let dir = if hook == Hook::TcIngress {
                "ingress"
            } else {
                "egress"
            };
            ns.tc(&[
                "filter",
                "add",
                "dev",
                "v0",
                dir,
                "bpf",
                "da",
                "obj",
                path,
                "sec",
                "classifier",
            ])?;
            let shown = ns.tc(&["filter", "show", "dev", "v0", dir])?;
            let attached = shown.contains("direct-action");
            ns.tc(&["filter", "del", "dev", "v0", dir])?;
            if !attached {
                return Err(format!(
                    "no direct-action bpf filter shows on v0 {dir}:\n{shown}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_policy_attaches_with_iproute2() {
    if !kernel_available("loaders: iproute2 attach") {
        return;
    }
    for tool in ["ip", "tc"] {
        if let Err(e) = run(tool, &["-V"]) {
            skip(
                "loaders: iproute2 attach",
                &format!("{tool} is not usable: {e}"),
            );
            return;
        }
    }
    let corpus = corpus();
    let ns = match Netns::new(&format!("nfcc-t-{}", std::process::id())) {
        Ok(ns) => ns,
        Err(e) => {
            skip(
                "loaders: iproute2 attach",
                &format!("cannot create a namespace with a veth pair: {e}"),
            );
            return;
        }
    };
    ns.tc(&["qdisc", "add", "dev", "v0", "clsact"])
        .unwrap_or_else(|e| panic!("cannot add a clsact qdisc: {e}"));
    let tmp = TempDir::new("attach");
    let mut failures = Vec::new();
    let mut accepted = 0;
    // iproute2 attaches the first program of a section, so only single-policy objects.
    for object in &corpus.singles {
        let path = tmp.write(&file_name(&object.label), &object.bytes);
        let (_, hook) = &object.programs[0];
        match attach_and_detach(&ns, &path, *hook) {
            Ok(()) => accepted += 1,
            Err(e) => failures.push(format!("{} ({}): {e}", object.label, hook.as_str())),
        }
    }
    let what = format!(
        "{accepted} of {} single-policy objects",
        corpus.singles.len()
    );
    report("iproute2 attach", &what, &corpus.refused, &failures);
}
