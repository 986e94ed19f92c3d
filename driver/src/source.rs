//! Reading `.nf` sources: checking a file, choosing one of its policies (the one asked for,
//! or the only one — never a guess among several), and compiling the chosen policy alone.
//! Objects (`.o`) are told apart from sources by their ELF magic, not their name.

use crate::error::{read_bytes, read_text, DriverError};
use nfcc_compiler::compile::Compiled;
use nfcc_dsl::checked::{Policy, Program, Target};
use nfcc_dsl::diag::Diagnostic;
use nfcc_dsl::{check_source, CheckOptions};
use std::path::{Path, PathBuf};

/// A source file read and checked (whether or not it checks).
#[derive(Debug)]
pub struct CheckedFile {
    /// The file as given.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// The checked program, when there was no error.
    pub program: Option<Program>,
    /// Every diagnostic, errors and warnings.
    pub diags: Vec<Diagnostic>,
}

impl CheckedFile {
    /// The file's label in diagnostics.
    pub fn label(&self) -> String {
        self.path.display().to_string()
    }

    /// The diagnostics, rendered as rustc does (or one line each with `short`).
    pub fn render(&self, short: bool) -> String {
        if short {
            nfcc_dsl::diag::render_short(&self.label(), &self.source, &self.diags)
        } else {
            nfcc_dsl::diag::render(&self.label(), &self.source, &self.diags)
        }
    }

    /// The number of errors.
    pub fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }
}

/// Reads and checks `path` (against `target`'s limits when given).
pub fn check_file(path: &Path, target: Option<Target>) -> Result<CheckedFile, DriverError> {
    let source = read_text(path)?;
    let (program, diags) = check_source(&source, &CheckOptions { target });
    Ok(CheckedFile {
        path: path.to_path_buf(),
        source,
        program,
        diags,
    })
}

/// Picks one name: the requested one, or the only one.
pub fn choose(names: &[String], wanted: Option<&str>, what: &str) -> Result<String, DriverError> {
    match (wanted, names) {
        (Some(w), _) if names.iter().any(|n| n == w) => Ok(w.to_string()),
        (Some(w), _) => Err(DriverError::Input(format!(
            "no {what} `{w}`; the file has: {}",
            names.join(", ")
        ))),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(DriverError::Input(format!("the file has no {what}"))),
        (None, _) => Err(DriverError::Input(format!(
            "the file has several {} ({}); choose one with --policy",
            if what == "policy" {
                "policies"
            } else {
                "programs"
            },
            names.join(", ")
        ))),
    }
}

/// A `.nf` file read and checked, with one of its policies chosen.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// The file's name as given (for diagnostics and line info).
    pub label: String,
    /// Its text.
    pub source: String,
    /// The whole checked file.
    pub program: Program,
    /// The chosen policy.
    pub policy: Policy,
}

impl Chosen {
    /// Checks `source` and chooses its policy `wanted` (or its only one).
    pub fn from_source(
        label: String,
        source: String,
        wanted: Option<&str>,
    ) -> Result<Chosen, DriverError> {
        let (program, diags) = check_source(&source, &CheckOptions::default());
        let Some(program) = program else {
            return Err(DriverError::Diagnostics {
                rendered: nfcc_dsl::diag::render(&label, &source, &diags),
            });
        };
        let names: Vec<String> = program.policies.iter().map(|p| p.name.clone()).collect();
        let chosen = choose(&names, wanted, "policy")?;
        let policy = program
            .policies
            .iter()
            .find(|p| p.name == chosen)
            .cloned()
            .ok_or_else(|| DriverError::Input(format!("no policy `{chosen}`")))?;
        Ok(Chosen {
            label,
            source,
            program,
            policy,
        })
    }

    /// Reads and checks `path` and chooses its policy `wanted` (or its only one).
    pub fn read(path: &Path, wanted: Option<&str>) -> Result<Chosen, DriverError> {
        Chosen::from_source(path.display().to_string(), read_text(path)?, wanted)
    }

    /// The chosen policy alone, as a program.
    pub fn alone(&self) -> Program {
        Program {
            policies: vec![self.policy.clone()],
        }
    }

    /// Compiles the chosen policy alone (for `target`, or its own `offload` clause).
    pub fn compile(&self, target: Option<Target>) -> Result<Compiled, DriverError> {
        compile_program(&self.alone(), &self.label, &self.source, target, false)
    }

    /// Compiles the chosen policy alone for the host with the classifier `choice`.
    pub fn compile_classified(
        &self,
        choice: nfcc_compiler::classify::Choice,
    ) -> Result<Compiled, DriverError> {
        let opts = nfcc_compiler::compile::Options {
            classifier: choice,
            ..Default::default()
        };
        compile_program_opts(&self.alone(), &self.label, &self.source, &opts)
    }

    /// [`Chosen::compile_classified`], its data laid out as `layout` says (`nfcc load`: with
    /// room for updates in place).
    pub fn compile_laid_out(
        &self,
        choice: nfcc_compiler::classify::Choice,
        layout: &nfcc_compiler::room::Layout,
    ) -> Result<Compiled, DriverError> {
        let opts = nfcc_compiler::compile::Options {
            classifier: choice,
            layout: layout.clone(),
            ..Default::default()
        };
        compile_program_opts(&self.alone(), &self.label, &self.source, &opts)
    }

    /// Compiles the chosen policy alone with a virtual clock (limiters read a map the test
    /// engines set, so they see the evaluator's frozen time).
    pub fn compile_virtual_clock(&self) -> Result<Compiled, DriverError> {
        compile_program(&self.alone(), &self.label, &self.source, None, true)
    }

    /// Only the chosen policy's text, the file's others blanked (spans stay put).
    pub fn text_alone(&self) -> String {
        nfcc_dsl::testing::policy_alone(&self.source, &self.program, &self.policy.name)
    }
}

/// Compiles a checked program; the diagnostics of a refusal rendered, and a construct the
/// code generator cannot emit yet told apart from a mistake in the policy.
pub fn compile_program(
    program: &Program,
    label: &str,
    source: &str,
    target: Option<Target>,
    virtual_clock: bool,
) -> Result<Compiled, DriverError> {
    let opts = nfcc_compiler::compile::Options {
        target,
        virtual_clock,
        ..Default::default()
    };
    compile_program_opts(program, label, source, &opts)
}

/// [`compile_program`] with every compiler option (`--classifier`).
pub fn compile_program_opts(
    program: &Program,
    label: &str,
    source: &str,
    opts: &nfcc_compiler::compile::Options,
) -> Result<Compiled, DriverError> {
    nfcc_compiler::compile::compile_opts(program, label, source, opts).map_err(|d| {
        let rendered = nfcc_dsl::diag::render(label, source, &d);
        if nfcc_compiler::codes::all_not_built(&d) {
            DriverError::NotBuilt(rendered)
        } else {
            DriverError::Diagnostics { rendered }
        }
    })
}

/// What a file given to `run`, `load` or `bench` holds.
pub enum Input {
    /// An ELF object (any XDP/TC object, nfcc's or clang's).
    Object(Vec<u8>),
    /// A `.nf` source.
    Source(String),
}

/// Reads a file and tells an object from a source by its ELF magic.
pub fn read_input(path: &Path) -> Result<Input, DriverError> {
    let bytes = read_bytes(path)?;
    if bytes.starts_with(b"\x7fELF") {
        return Ok(Input::Object(bytes));
    }
    String::from_utf8(bytes).map(Input::Source).map_err(|_| {
        DriverError::Input(format!(
            "{}: neither a .nf policy (not UTF-8) nor an ELF object",
            path.display()
        ))
    })
}

/// `n` and the noun, singular for one: "1 error", "2 errors", "0 policies".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str =
        "policy a on xdp {\n  default pass\n}\npolicy b on xdp {\n  default drop\n}\n";

    #[test]
    fn a_policy_is_chosen_by_name_or_as_the_only_one_never_guessed() {
        let c = Chosen::from_source("t.nf".into(), TWO.into(), Some("b"));
        assert_eq!(c.map(|c| c.policy.name).ok().as_deref(), Some("b"));
        let e = Chosen::from_source("t.nf".into(), TWO.into(), None).err();
        assert!(
            e.as_ref().is_some_and(|e| e.exit_code() == 1
                && e.to_string()
                    .contains("several policies (a, b); choose one with --policy")),
            "{e:?}"
        );
        let e = Chosen::from_source("t.nf".into(), TWO.into(), Some("zz")).err();
        assert!(e.is_some_and(|e| e.to_string() == "no policy `zz`; the file has: a, b"));
        let e = Chosen::from_source("t.nf".into(), "policy {".into(), None).err();
        assert!(e.is_some_and(|e| e.is_rendered() && e.exit_code() == 1));
    }

    #[test]
    fn the_chosen_policy_compiles_alone() {
        let c = Chosen::from_source("t.nf".into(), TWO.into(), Some("a"))
            .unwrap_or_else(|e| panic!("{e}"));
        let compiled = c.compile(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(compiled.programs.len(), 1);
        assert_eq!(compiled.programs[0].name, "a");
        assert!(!c.text_alone().contains("default drop"));
    }
}
