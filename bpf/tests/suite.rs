//! Every file of the conformance suite shipped beside the workspace parses and assembles.

use std::path::Path;

#[test]
fn the_whole_suite_parses_and_assembles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/tests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no suite at {}: skipped", dir.display());
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "data") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let t =
            nfcc_bpf::conformance::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        t.program()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert!(n > 0);
}
