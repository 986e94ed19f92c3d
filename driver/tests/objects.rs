//! An object `nfcc compile` writes is the whole policy: run from the `.o`, every example
//! decides every test packet as it does run from its `.nf` — verdict and bytes — on the
//! emulator, and in the kernel where this process may load programs; and `nfcc load OBJ`
//! prepares the same deployment description (rules, sets, pools, initial entries) as the
//! source does.

mod common;

use nfcc_driver::run::{runner, RunEngine};
use nfcc_driver::source::{Chosen, Input};
use nfcc_dsl::checked::Step;

/// Every (file, policy, source, frames of its test blocks) of the examples.
fn examples() -> Vec<(String, String, String, Vec<Vec<u8>>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "nf"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let source = std::fs::read_to_string(&f).expect("read");
        let (program, d) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{}: {d:?}", f.display()));
        for p in &program.policies {
            let mut frames = Vec::new();
            for t in &p.tests {
                for s in &t.steps {
                    if let Step::Send { layers, .. } = s {
                        if let Ok(fr) = nfcc_dsl::packet::build(layers) {
                            frames.push(fr);
                        }
                    }
                }
            }
            out.push((
                f.display().to_string(),
                p.name.clone(),
                source.clone(),
                frames,
            ));
        }
    }
    out
}

fn agree(engine: RunEngine) {
    let mut compared = 0;
    for (file, policy, source, frames) in examples() {
        let chosen = Chosen::from_source(file.clone(), source.clone(), Some(&policy))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let object = chosen
            .compile(None)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .object;
        let mut from_source = runner(&file, Input::Source(source), engine, Some(&policy), false)
            .unwrap_or_else(|e| panic!("{file} {policy}: {e}"));
        let mut from_object = runner(&file, Input::Object(object), engine, Some(&policy), false)
            .unwrap_or_else(|e| panic!("{file} {policy} as an object: {e}"));
        for (i, f) in frames.iter().enumerate() {
            let ts = 1_000_000_000 + i as u64 * 1000;
            let a = from_source.run(f, ts).unwrap_or_else(|e| panic!("{e}"));
            let b = from_object.run(f, ts).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (&a.verdict, &a.emitted),
                (&b.verdict, &b.emitted),
                "{file} {policy}, test packet {i}: the source and its object disagree"
            );
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} packets compared");
    eprintln!("{compared} test packets: every example's object decides as its source");
}

#[test]
fn every_example_object_decides_as_its_source_on_the_emulator() {
    agree(RunEngine::Emulator);
}

#[test]
fn every_example_object_decides_as_its_source_in_the_kernel() {
    if !common::privileged("objects in the kernel") {
        return;
    }
    agree(RunEngine::Kernel);
}

#[test]
fn loading_an_object_describes_the_deployment_as_its_source_does() {
    let dir = std::env::temp_dir().join(format!("nfcc-objects-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ddos_guard.nf");
    let chosen = Chosen::read(&src, None).unwrap_or_else(|e| panic!("{e}"));
    let obj = dir.join("dg.o");
    std::fs::write(&obj, chosen.compile(None).expect("compile").object).expect("write");
    // `nfcc compile` packs the maps; `nfcc load` of the source would leave room for updates
    // in place, so the source is held to the object as compiled the same way.
    let a =
        nfcc_driver::deploy::prepare_packed(&src, None, "eth9").unwrap_or_else(|e| panic!("{e}"));
    let b = nfcc_driver::deploy::prepare(&obj, None, "eth9").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(a.entries, b.entries);
    assert_eq!(a.manifest.rules, b.manifest.rules);
    assert_eq!(a.manifest.host, b.manifest.host);
    assert_eq!(a.hook, b.hook);
    assert!(
        b.manifest
            .host
            .as_ref()
            .is_some_and(|h| h.sets.iter().any(|s| s.name == "blocked")),
        "the object's deployment knows its set `blocked`"
    );
}

#[test]
fn map_init_fills_the_maps_of_an_object_bpftool_loaded() {
    if !common::privileged("map-init with bpftool") {
        return;
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ddos_guard.nf");
    let dir = std::env::temp_dir().join(format!("nfcc-mapinit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = |emit| {
        nfcc_driver::compile::compile(&src, None, emit, Default::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .bytes
    };
    let (obj, init) = (dir.join("dg.o"), dir.join("dg.init"));
    std::fs::write(&obj, out(nfcc_driver::compile::Emit::Elf)).expect("write");
    std::fs::write(&init, out(nfcc_driver::compile::Emit::MapInit)).expect("write");
    let pins = format!("/sys/fs/bpf/nfcc-mapinit-{}", std::process::id());
    let maps = "/sys/fs/bpf/ddos_guard_maps";
    let bpftool = |args: &[&str]| {
        let o = std::process::Command::new("bpftool")
            .args(args)
            .output()
            .expect("bpftool");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let _ = std::fs::remove_dir_all(maps);
    let (ok, log) = bpftool(&[
        "prog",
        "loadall",
        &obj.display().to_string(),
        &pins,
        "pinmaps",
        maps,
    ]);
    let count = |m: &str| {
        bpftool(&["map", "dump", "pinned", &format!("{maps}/{m}"), "-j"])
            .1
            .matches("\"key\"")
            .count()
    };
    let before = count("ddos_guard_set_blocked");
    let (batch, blog) = bpftool(&["batch", "file", &init.display().to_string()]);
    let after = count("ddos_guard_set_blocked");
    let _ = std::fs::remove_dir_all(&pins);
    let _ = std::fs::remove_dir_all(maps);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{log}");
    assert!(batch, "{blog}");
    assert_eq!(
        (before, after),
        (0, 2),
        "bpftool leaves the set empty; the batch fills it"
    );
}

/// Compiles every example to an object in `dir`, as `nfcc compile` does (the file's own name
/// as the label), and gives (object path, how many test blocks its source has, whether a
/// policy of it has limiters).
fn example_objects(dir: &std::path::Path) -> Vec<(std::path::PathBuf, usize, bool)> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "nf"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let out = nfcc_driver::compile::compile(
                f,
                None,
                nfcc_driver::compile::Emit::Elf,
                nfcc_driver::compile::Classifier::Auto,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let obj = dir.join(f.with_extension("o").file_name().expect("name"));
            std::fs::write(&obj, &out.bytes).expect("write");
            let source = std::fs::read_to_string(f).expect("read");
            let (program, _) = nfcc_dsl::check_source(&source, &nfcc_dsl::CheckOptions::default());
            let program = program.expect("checks");
            let tests = program.policies.iter().map(|p| p.tests.len()).sum();
            let limiters = program.policies.iter().any(|p| !p.limiters.is_empty());
            (obj, tests, limiters)
        })
        .collect()
}

/// `nfcc test OBJ`: an object's test blocks (its source travels in `.nfcc.policy`) run on the
/// object's own code — every example's pass on the interpreter, the JIT and rbpf, and in the
/// kernel where no limiter needs the virtual clock; an object that is not what its source
/// compiles to, or that carries no source, is refused with the reason.
#[test]
fn an_object_runs_its_own_test_blocks() {
    use nfcc_driver::engine::EngineKind;
    use nfcc_driver::test::{run, TestEvent};
    let dir = std::env::temp_dir().join(format!("nfcc-objtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let kernel = common::privileged("object test blocks in the kernel");
    let mut ran = 0;
    for (obj, tests, limiters) in example_objects(&dir) {
        let mut engines = vec![EngineKind::Emulator, EngineKind::Jit];
        if kernel && !limiters {
            engines.push(EngineKind::Kernel);
        }
        let mut problems = Vec::new();
        let sum = run(std::slice::from_ref(&obj), &engines, &mut |ev| match ev {
            TestEvent::Unreadable(e) | TestEvent::EngineFailed(e) => problems.push(e),
            TestEvent::DoesNotCheck { rendered, .. } => problems.push(rendered),
            TestEvent::Report { .. } => {}
        });
        assert!(problems.is_empty(), "{}: {problems:?}", obj.display());
        for (kind, passed, failed) in &sum.tally {
            assert_eq!(
                (*passed, *failed),
                (tests, 0),
                "{} on {}",
                obj.display(),
                kind.name()
            );
        }
        ran += tests;
    }
    assert!(ran > 20, "{ran}");

    // The object is not what its source compiles to (its recorded name differs, so its line
    // information would): refused, not tested.
    let obj = dir.join("ddos_guard.o");
    let bytes = std::fs::read(&obj).expect("read");
    let from = br#"ddos_guard.nf","text""#;
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("no recorded source name"));
    let mut changed = bytes.clone();
    changed[at + "ddos_guar".len()] = b'X';
    let bad = dir.join("changed.o");
    std::fs::write(&bad, &changed).expect("write");
    let mut said = Vec::new();
    let sum = run(&[bad], &[EngineKind::Emulator], &mut |ev| {
        if let TestEvent::Unreadable(e) = ev {
            said.push(e);
        }
    });
    assert!(sum.input_errors);
    assert!(
        said.iter()
            .any(|e| e.contains("is not what this nfcc compiles")),
        "{said:?}"
    );

    // An object of another compiler carries no source: said so.
    let clang = dir.join("plain.o");
    let mut plain = bytes.clone();
    // Renamed in the section-name table: the reader finds no `.nfcc.policy`.
    let name = b".nfcc.policy\0";
    let m = plain
        .windows(name.len())
        .position(|w| w == name)
        .expect("section");
    plain[m + name.len() - 2] = b'x';
    std::fs::write(&clang, &plain).expect("write");
    let mut said = Vec::new();
    let sum = run(&[clang], &[EngineKind::Emulator], &mut |ev| {
        if let TestEvent::Unreadable(e) = ev {
            said.push(e);
        }
    });
    assert!(sum.input_errors);
    assert!(
        said.iter().any(|e| e.contains("nfcc test SOURCE.nf")),
        "{said:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
