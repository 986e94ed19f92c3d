//! Tidy: rules about the code base a reviewer would otherwise check by hand (as
//! rust-analyzer's tidy test does) — module sizes, where `unsafe` may live, a corpus case for
//! every diagnostic, crate dependencies as ARCHITECTURE.md states them, no circle among the
//! compiler's files, and no stale promises
//! (a numbered issue, "for the time being" phrasing) in module docs or help texts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The largest a source file may be, tests included.
const MAX_LINES: usize = 1_200;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file of the workspace (not build output), relative to the root, with its text.
fn rust_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(&p, out);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    let root = root();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
            Some((rel, std::fs::read_to_string(&p).ok()?))
        })
        .collect()
}

#[test]
fn no_source_file_is_over_the_size_limit() {
    let big: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, t)| t.lines().count() > MAX_LINES)
        .map(|(p, t)| format!("{p}: {} lines", t.lines().count()))
        .collect();
    assert!(
        big.is_empty(),
        "split these by concept (at most {MAX_LINES} lines a file):\n{}",
        big.join("\n")
    );
}

/// The CLI parses and renders; decisions live in the driver and the agent. Its size is the
/// alarm that says when something that decides has crept in (ARCHITECTURE.md).
#[test]
fn the_cli_stays_under_1500_lines() {
    let total: usize = rust_files()
        .into_iter()
        .filter(|(p, _)| p.starts_with("cli/src/"))
        .map(|(_, t)| t.lines().count())
        .sum();
    assert!(
        total < 1500,
        "cli/src has {total} lines: move what decides into nfcc-driver or nfcc-agent"
    );
}

#[test]
fn unsafe_lives_only_in_the_modules_that_own_it() {
    // The runtime's raw syscalls, the JIT's entry into generated code and the rbpf helpers'
    // checked host-memory access; nowhere else.
    let owners = ["runtime/src/sys", "emulator/src/jit", "oracle/src/abi.rs"];
    let mut stray = Vec::new();
    for (path, text) in rust_files() {
        if owners.iter().any(|o| path.starts_with(o)) || path.ends_with("tidy.rs") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let code = code.replace("unsafe_code", "");
            if code.contains("unsafe ") || code.contains("unsafe{") {
                stray.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        stray.is_empty(),
        "`unsafe` outside its owners:\n{}",
        stray.join("\n")
    );
}

#[test]
fn every_diagnostic_code_has_a_corpus_case() {
    // Codes no `.nf` file can reach, and why.
    let unreachable: BTreeMap<&str, &str> = [
        ("E0001", "a source larger than 4 GiB"),
        (
            "E0201",
            "a construct the code generator cannot emit: none is left today",
        ),
        ("E0202", "the IR verifier catching a compiler bug"),
        ("E0203", "the code generator failing: a compiler bug"),
        ("E0204", "an object the ELF writer refuses: a compiler bug"),
        ("E0205", "NIC code using what the NIC lacks: a compiler bug"),
        (
            "E0206",
            "a program over a million instructions: a file of tens of thousands of rules (`compile::too_long` is tested on its own)",
        ),
    ]
    .into_iter()
    .collect();
    let mut emitted = BTreeSet::new();
    for (path, text) in rust_files() {
        if !(path.starts_with("dsl/src") || path.starts_with("compiler/src")) {
            continue;
        }
        for part in text.split('"').skip(1).step_by(2) {
            let is_code = part.len() == 5
                && (part.starts_with('E') || part.starts_with('W'))
                && part[1..].bytes().all(|b| b.is_ascii_digit());
            if is_code {
                emitted.insert(part.to_string());
            }
        }
    }
    emitted.insert("E0201".into());
    let mut covered = String::new();
    for dir in ["dsl/tests/snapshots", "cli/tests/snapshots"] {
        for e in std::fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            covered.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let missing: Vec<&String> = emitted
        .iter()
        .filter(|c| !unreachable.contains_key(c.as_str()))
        .filter(|c| !covered.contains(&format!("[{c}]")))
        .collect();
    assert!(
        missing.is_empty(),
        "no corpus case (dsl/tests/in/err or warn) shows {missing:?}"
    );
    assert!(emitted.len() > 30, "found only {emitted:?}");
}

/// `nfcc-*` dependencies of each crate folder, from its Cargo.toml's `[dependencies]`.
fn actual_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let members = std::fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    let line = members
        .lines()
        .find(|l| l.starts_with("members"))
        .unwrap_or_default();
    let folders: Vec<String> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    // Folder of each crate name.
    let mut folder_of = BTreeMap::new();
    for f in &folders {
        let toml = std::fs::read_to_string(root().join(f).join("Cargo.toml")).unwrap_or_default();
        if let Some(name) = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"').to_string())
        {
            folder_of.insert(name, f.clone());
        }
    }
    for f in &folders {
        let toml = std::fs::read_to_string(root().join(f).join("Cargo.toml")).unwrap_or_default();
        let deps = toml
            .split("\n[")
            .find(|s| s.starts_with("dependencies]"))
            .unwrap_or_default();
        let set: BTreeSet<String> = deps
            .lines()
            .filter_map(|l| l.split(['.', ' ', '=']).next())
            .filter_map(|n| folder_of.get(n).cloned())
            .collect();
        out.insert(f.clone(), set);
    }
    out
}

/// The "may depend on" column of ARCHITECTURE.md's crate table, by folder.
fn stated_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `folder/` | crate | owns | may depend on |
        if cols.len() < 5 {
            continue;
        }
        let folder = cols[1].trim_matches('`').trim_end_matches('/').to_string();
        let deps = cols[4]
            .split(',')
            .map(|d| d.trim().trim_matches('`').trim_end_matches('/').to_string())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        out.insert(folder, deps);
    }
    out
}

#[test]
fn crate_dependencies_follow_architecture_md() {
    let stated = stated_dependencies();
    let actual = actual_dependencies();
    assert!(actual.len() >= 10, "{actual:?}");
    let mut wrong = Vec::new();
    for (folder, deps) in &actual {
        let Some(allowed) = stated.get(folder) else {
            wrong.push(format!("{folder}/ is not in ARCHITECTURE.md's crate table"));
            continue;
        };
        for d in deps.difference(allowed) {
            wrong.push(format!(
                "{folder}/ depends on {d}/, which ARCHITECTURE.md does not allow"
            ));
        }
    }
    // The leaves and the two crates the issue singles out.
    for (folder, forbidden) in [
        ("bpf", "dsl"),
        ("dsl", "bpf"),
        ("emulator", "compiler"),
        ("runtime", "compiler"),
        ("cli", "compiler"),
    ] {
        if actual.get(folder).is_some_and(|d| d.contains(forbidden)) {
            wrong.push(format!("{folder}/ must not depend on {forbidden}/"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_stale_promises_in_module_docs_or_help_texts() {
    let stale = |l: &str| {
        let lower = l.to_lowercase();
        let issue_n = lower
            .match_indices("issue ")
            .any(|(i, m)| lower[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
        issue_n
            || lower.contains("so far")
            || lower.contains("(and, later,")
            || lower.contains("arrives with")
            || lower.contains("will come")
            || lower.contains("come later")
    };
    let mut found = Vec::new();
    for (path, text) in rust_files()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("tidy.rs"))
    {
        // Help texts: the doc comments clap turns into `--help` (the CLI's arguments and the
        // driver's request types).
        let help = path.starts_with("cli/src") || path.starts_with("driver/src");
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            let doc = t.starts_with("//!") || (help && t.starts_with("///"));
            if doc && stale(t) {
                found.push(format!("{path}:{}: {t}", i + 1));
            }
        }
    }
    assert!(found.is_empty(), "stale promises:\n{}", found.join("\n"));
}

/// The module path of a source file under `src/` (`a/b.rs` and `a/b/mod.rs`: `a::b`).
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Which files of a crate's `src/` each file imports: every `crate::`, `super::` and
/// `self::` path, and every path through a child module, resolved to the deepest module that
/// is a file. Comments and a file's inline `mod tests` are left out.
fn module_graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(rel, _)| (module_of(rel), rel.clone()))
        .collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut graph = BTreeMap::new();
    for (rel, text) in files {
        let here = module_of(rel);
        let code: String = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut to = BTreeSet::new();
        let chars: Vec<char> = code.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !word(chars[i]) || (i > 0 && (word(chars[i - 1]) || chars[i - 1] == ':')) {
                i += 1;
                continue;
            }
            // A path: words joined by `::`.
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && word(chars[j]) {
                    j += 1;
                }
                path.push(chars[start..j].iter().collect::<String>());
                if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                    j += 2;
                    if !chars.get(j).is_some_and(|&c| word(c)) {
                        break;
                    }
                } else {
                    break;
                }
            }
            i = j.max(i + 1);
            if path.len() < 2 {
                continue;
            }
            let mut base = match path[0].as_str() {
                "crate" => Vec::new(),
                "self" => here.clone(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            let rest = match path[0].as_str() {
                "crate" | "self" | "super" => &path[1..],
                _ => &path[..],
            };
            let mut target = None;
            for p in rest {
                base.push(p.clone());
                match modules.get(&base) {
                    Some(f) => target = Some(f.clone()),
                    None => break,
                }
            }
            if let Some(t) = target.filter(|t| t != rel) {
                to.insert(t);
            }
        }
        graph.insert(rel.clone(), to);
    }
    graph
}

/// The files of a circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    return Some(stack[at..].to_vec());
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_compiler_s_files_import_each_other_in_no_circle() {
    let files: Vec<(String, String)> = rust_files()
        .into_iter()
        .filter_map(|(rel, text)| {
            let rel = rel.strip_prefix("compiler/src/")?.to_string();
            let test =
                rel.ends_with("tests.rs") || rel.contains("/tests/") || rel == "test_support.rs";
            (!test).then_some((rel, text))
        })
        .collect();
    let graph = module_graph(&files);
    assert!(
        graph.values().map(BTreeSet::len).sum::<usize>() > 40,
        "the import graph was not read: {graph:?}"
    );
    // Paths through a child module and through `super::` are read.
    let has = |a: &str, b: &str| graph.get(a).is_some_and(|t| t.contains(b));
    assert!(
        has("classify/mod.rs", "classify/halves.rs")
            && has("classify/halves.rs", "classify/packed.rs"),
        "{:?}",
        graph.get("classify/halves.rs")
    );
    // The checker must see a circle where there is one.
    let mut with_circle = graph.clone();
    with_circle
        .entry("ir/mod.rs".to_string())
        .or_default()
        .insert("classify/mod.rs".to_string());
    assert!(
        circle(&with_circle).is_some(),
        "a planted circle goes unseen"
    );
    if let Some(c) = circle(&graph) {
        panic!(
            "compiler/src files import each other in a circle: {} (move what they share into a module below both)",
            c.join(" -> ")
        );
    }
}
