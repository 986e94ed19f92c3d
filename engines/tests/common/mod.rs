//! Helpers shared by the kernel test binaries of this folder.

use std::path::{Path, PathBuf};

/// The `.nf` files of the corpus (examples, compiler and front-end test inputs), sorted per
/// directory.
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
