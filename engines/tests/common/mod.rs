//! Helpers shared by the test binaries of this folder: the corpus, a seeded generator.

use std::path::{Path, PathBuf};

/// The `.nf` files of the corpus (examples, compiler and front-end test inputs), sorted per
/// directory.
// Reason: each test binary compiles this module and uses part of it.
#[allow(dead_code)]
pub fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["examples", "compiler/tests/in", "dsl/tests/in/ok"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "nf"))
            .collect();
        v.sort();
        files.extend(v);
    }
    files
}

/// A small deterministic generator (xorshift), so every run draws the same packets.
// Reason: each test binary compiles this module and uses part of it.
#[allow(dead_code)]
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// One of `v`.
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}
