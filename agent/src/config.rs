//! Bindings: what the node should run, one TOML file per binding in the configuration
//! directory (section 10 of the language contract, "Fleet agent"):
//!
//! ```toml
//! policy_file = "edge.nf"       # relative to the directory
//! policy = "ddos_guard"         # optional when the file holds one policy
//! interfaces = ["eth1", "tb*"]  # names or globs
//! mode = "native"               # native | generic | tc-ingress | tc-egress | offload
//! ```
//!
//! A binding is named by its file's stem. A file that does not parse, names keys the format
//! does not have, or points at a policy file that cannot be read is a [`Problem`] of that
//! binding: it is reported, and what the binding deployed before stays as it is.

use nfcc_driver::deploy::Mode;
use std::path::{Path, PathBuf};

/// One binding, read and resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Its name (the file's stem).
    pub name: String,
    /// The policy file, resolved against the directory.
    pub policy_file: PathBuf,
    /// The policy to deploy, when the file holds several.
    pub policy: Option<String>,
    /// Interface names or globs (`*`, `?`, `[...]`), as written.
    pub interfaces: Vec<String>,
    /// The same, compiled (matched against every interface at every reconcile).
    pub patterns: Vec<glob::Pattern>,
    /// How to attach; `None` for the policy's own hook (native XDP, or its TC direction).
    pub mode: Option<Mode>,
    /// A digest of everything that decides the deployed program: the policy file's bytes,
    /// the policy chosen, the mode and this nfcc's version. Equal revisions need no reload.
    pub revision: String,
    /// The policy file's bytes the revision was computed from.
    pub source: Vec<u8>,
}

impl Binding {
    /// Whether interface `name` is one of this binding's.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }
}

/// Whether `name` matches `pattern`, a glob (`*`, `?`, `[...]`) or, when it does not compile,
/// its own spelling. For patterns read once and matched often, compile them instead.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern).map_or_else(|_| pattern == name, |p| p.matches(name))
}

/// A binding that cannot be used, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The binding's name.
    pub binding: String,
    /// What is wrong, and what to do.
    pub message: String,
}

/// The bindings of a directory, and the ones that could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Usable bindings, by name.
    pub bindings: Vec<Binding>,
    /// Bindings that could not be read.
    pub problems: Vec<Problem>,
}

/// The file format.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    policy_file: PathBuf,
    policy: Option<String>,
    interfaces: Vec<String>,
    mode: Option<String>,
}

fn mode(name: &str) -> Option<Mode> {
    Some(match name {
        "native" => Mode::Native,
        "generic" => Mode::Generic,
        "tc-ingress" => Mode::TcIngress,
        "tc-egress" => Mode::TcEgress,
        "offload" => Mode::Offload,
        _ => return None,
    })
}

/// FNV-1a, 64 bits: a revision names what was deployed, it is no security property, and a
/// few lines need no dependency.
fn fnv(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xffu8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Reads binding `name` from `text` (a file of `dir`).
pub fn parse(dir: &Path, name: &str, text: &str) -> Result<Binding, Problem> {
    let problem = |message: String| Problem {
        binding: name.to_string(),
        message,
    };
    let f: File = toml::from_str(text).map_err(|e| {
        problem(format!(
            "{name}.toml is not a binding: {}",
            e.to_string().trim_end()
        ))
    })?;
    let mode = match f.mode.as_deref() {
        None => None,
        Some(m) => Some(mode(m).ok_or_else(|| {
            problem(format!(
                "{name}.toml: mode `{m}` is not one of native, generic, tc-ingress, tc-egress, offload"
            ))
        })?),
    };
    if f.interfaces.is_empty() {
        return Err(problem(format!(
            "{name}.toml: `interfaces` is empty; name at least one interface or glob"
        )));
    }
    let mut patterns = Vec::with_capacity(f.interfaces.len());
    for p in &f.interfaces {
        patterns.push(glob::Pattern::new(p).map_err(|e| {
            problem(format!(
                "{name}.toml: interface pattern `{p}` is not a glob: {e}"
            ))
        })?);
    }
    let policy_file = dir.join(&f.policy_file);
    let bytes = std::fs::read(&policy_file).map_err(|e| {
        problem(format!(
            "{name}.toml: cannot read policy file {}: {e}",
            policy_file.display()
        ))
    })?;
    let revision = fnv(&[
        &bytes,
        f.policy.as_deref().unwrap_or("").as_bytes(),
        f.mode.as_deref().unwrap_or("").as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
    ]);
    Ok(Binding {
        name: name.to_string(),
        policy_file,
        policy: f.policy,
        interfaces: f.interfaces,
        patterns,
        mode,
        revision,
        source: bytes,
    })
}

/// Reads every `*.toml` of `dir` (other files, such as the policies, are not bindings).
pub fn read(dir: &Path) -> std::io::Result<Config> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Some((p.file_stem()?.to_string_lossy().into_owned(), p)))
        .collect();
    files.sort();
    let mut config = Config::default();
    for (name, path) in files {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| Problem {
                binding: name.clone(),
                message: format!("cannot read {}: {e}", path.display()),
            })
            .and_then(|text| parse(dir, &name, &text));
        match parsed {
            Ok(b) => config.bindings.push(b),
            Err(p) => config.problems.push(p),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as binding `b` of a directory holding `edge.nf`; renders the result.
    fn check(text: &str, expect: &str) {
        let dir = std::env::temp_dir().join(format!("nfcc-agent-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("edge.nf"),
            "policy edge on xdp {\n  default pass\n}\n",
        )
        .expect("policy");
        let got = match parse(&dir, "b", text) {
            Ok(b) => format!(
                "{} {} {:?} {:?} {:?} rev={}",
                b.name,
                b.policy_file
                    .strip_prefix(&dir)
                    .unwrap_or(&b.policy_file)
                    .display(),
                b.policy,
                b.interfaces,
                b.mode,
                b.revision.len()
            ),
            Err(p) => format!("problem: {}", p.message),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn bindings_parse_and_refuse_with_reasons() {
        check(
            "policy_file = \"edge.nf\"\ninterfaces = [\"eth1\", \"tb*\"]\nmode = \"tc-ingress\"\n",
            "b edge.nf None [\"eth1\", \"tb*\"] Some(TcIngress) rev=16",
        );
        check(
            "policy_file = \"edge.nf\"\npolicy = \"edge\"\ninterfaces = [\"eth1\"]\n",
            "b edge.nf Some(\"edge\") [\"eth1\"] None rev=16",
        );
        check(
            "policy_file = \"edge.nf\"\ninterfaces = [\"eth1\"]\nmode = \"fast\"\n",
            "problem: b.toml: mode `fast` is not one of native, generic, tc-ingress, tc-egress, offload",
        );
        check(
            "policy_file = \"edge.nf\"\ninterfaces = []\n",
            "problem: b.toml: `interfaces` is empty; name at least one interface or glob",
        );
        check(
            "policy_file = \"edge.nf\"\ninterfaces = [\"[eth\"]\n",
            "problem: b.toml: interface pattern `[eth` is not a glob: Pattern syntax error near position 0: invalid range pattern",
        );
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_problems_naming_the_file() {
        let dir = std::env::temp_dir();
        let p = parse(
            &dir,
            "x",
            "policy_file = \"a.nf\"\ninterface = [\"eth1\"]\n",
        )
        .expect_err("unknown key");
        assert!(
            p.message.starts_with("x.toml is not a binding:"),
            "{}",
            p.message
        );
        assert!(p.message.contains("interface"), "{}", p.message);
        let p = parse(&dir, "x", "policy_file = ").expect_err("bad toml");
        assert!(
            p.message.starts_with("x.toml is not a binding:"),
            "{}",
            p.message
        );
        let p = parse(
            &dir,
            "x",
            "policy_file = \"nfcc-gone.nf\"\ninterfaces = [\"eth1\"]\n",
        )
        .expect_err("missing policy file");
        assert!(
            p.message.starts_with("x.toml: cannot read policy file"),
            "{}",
            p.message
        );
    }

    #[test]
    fn globs_match_interface_names() {
        let b = Binding {
            name: "b".into(),
            policy_file: PathBuf::new(),
            policy: None,
            interfaces: vec!["tb*r0".into(), "eth1".into()],
            patterns: ["tb*r0", "eth1"]
                .iter()
                .map(|p| glob::Pattern::new(p).expect("glob"))
                .collect(),
            mode: None,
            revision: String::new(),
            source: Vec::new(),
        };
        assert!(b.matches("tb17r0"));
        assert!(b.matches("eth1"));
        assert!(!b.matches("eth10"));
        assert!(!b.matches("tb17t0"));
    }

    #[test]
    fn the_revision_changes_with_the_policy_text_the_choice_and_the_mode() {
        let a = fnv(&[b"policy p", b"", b"native"]);
        assert_ne!(a, fnv(&[b"policy q", b"", b"native"]));
        assert_ne!(a, fnv(&[b"policy p", b"p", b"native"]));
        assert_ne!(a, fnv(&[b"policy p", b"", b"generic"]));
        // Parts are delimited: moving bytes between parts changes the revision.
        assert_ne!(fnv(&[b"ab", b"c"]), fnv(&[b"a", b"bc"]));
        assert_eq!(a, fnv(&[b"policy p", b"", b"native"]));
    }
}
