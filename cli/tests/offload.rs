//! `nfcc offload-check` on every example (snapshots of the placement table, the split, its size
//! and the equivalence line) and `nfcc compile --target nfp --split`. Unprivileged.

mod common;
use common::nfcc;

#[test]
fn offload_check_of_every_example() {
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
            .expect("examples")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".nf"))
            .collect();
    names.sort();
    let mut kinds = (0, 0, 0);
    for n in &names {
        let path = format!("examples/{n}");
        let (code, out) = nfcc(&["offload-check", &path, "--packets", "3000"]);
        insta::assert_snapshot!(n.trim_end_matches(".nf"), format!("exit {code}\n{out}"));
        if out.contains("the whole policy runs on the NIC") {
            kinds.0 += 1;
        } else if out.contains("split: the NIC stage runs") {
            kinds.1 += 1;
        } else {
            kinds.2 += 1;
        }
        assert!(!out.contains("FAILED"), "{n}: {out}");
    }
    assert!(
        kinds.0 >= 1 && kinds.1 >= 1 && kinds.2 >= 1,
        "examples must include a fully offloadable, a split and a host-only policy: {kinds:?}"
    );
}

#[test]
fn split_compile_writes_both_stages() {
    let dir = std::env::temp_dir().join(format!("nfcc-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("edge.o");
    let (code, text) = nfcc(&[
        "compile",
        "examples/ipv6_edge.nf",
        "--target",
        "nfp",
        "--split",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{text}");
    for stage in ["nic", "host"] {
        let p = dir.join(format!("edge.{stage}.o"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(
            bytes.starts_with(b"\x7fELF"),
            "{stage} stage is an ELF object"
        );
    }
    let (code, text) = nfcc(&["compile", "examples/ipv6_edge.nf", "--split"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--target nfp"), "{text}");
}
