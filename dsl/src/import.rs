//! Importers that turn other rule formats into `.nf` text.
//!
//! An importer produces source text, not an AST: the result goes through the same parser and
//! checker as a hand-written policy, can be read and edited, and diagnostics point at lines a
//! user can open.
//!
//! - [`classbench_to_nf`]: ClassBench filter sets (the standard packet-classification
//!   benchmark; see `shared/bench-data/classbench/`).

mod classbench;

pub use classbench::{classbench_to_nf, ClassbenchActions, ImportError};

#[cfg(test)]
mod tmp_examples {
    #[test]
    fn import_tmp_examples() {
        let dir = std::env::var("NFX_DIR")
            .unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples").to_string());
        let mut bad = 0;
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            if p.extension().and_then(|e| e.to_str()) != Some("nf") {
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap();
            let (prog, diags) = crate::check_source(&src, &crate::CheckOptions::default());
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !diags.is_empty() {
                eprintln!("{}", crate::diag::render(&name, &src, &diags));
            }
            let Some(prog) = prog else {
                bad += 1;
                continue;
            };
            for pol in &prog.policies {
                let mut eng = crate::testing::EvalEngine::default();
                for r in crate::testing::run_tests(pol, &mut eng) {
                    if r.passed() {
                        eprintln!("ok   {name} {}", r.name);
                    } else {
                        bad += 1;
                        for f in &r.failures {
                            let (l, _) = crate::diag::line_col(&src, f.span.start as usize);
                            eprintln!("FAIL {name} {} line {l}: {}", r.name, f.message);
                        }
                    }
                }
            }
        }
        assert_eq!(bad, 0);
    }
}
