//! libxdp's default AF_XDP program (`xsk_def_xdp_prog.o`, the program every AF_XDP application
//! loads through libxdp): it hands a frame to the socket bound on the frame's receive queue,
//! through an XSKMAP, and passes it when none is bound or its reference count is 0.
//!
//! The emulator's interpreter, its JIT and rbpf run it with and without a socket bound, and
//! are held to the kernel (`BPF_PROG_TEST_RUN`) on the same frames both ways (the kernel's
//! map holding an unbound socket, which a test run redirects to).
//!
//! Needs libxdp's object (the `libxdp1` package) and, for the kernel, CAP_BPF (skips
//! otherwise, or fails under `NFCC_REQUIRE_KERNEL=1`).

use nfcc_emulator::vm::RunOutput;
use nfcc_emulator::{Emulator, Runner};
use nfcc_oracle::RbpfProgram;
use nfcc_runtime::{load, ProgType};

const PROGRAM: &str = "xsk_def_prog";

fn skip(reason: &str) {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
    }
    eprintln!("skipped: libxdp's AF_XDP program: {reason}");
}

/// libxdp's object, wherever the distribution put it.
fn object() -> Option<Vec<u8>> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.flatten()
        .map(|d| d.path().join("bpf/xsk_def_xdp_prog.o"))
        .chain([std::path::PathBuf::from("/usr/lib/bpf/xsk_def_xdp_prog.o")])
        .find_map(|p| std::fs::read(p).ok())
}

fn frame() -> Vec<u8> {
    nfcc_dsl::testing::frame_from_literal("ipv4(src=192.0.2.1) / udp(dport=4791)")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The program on the interpreter, the JIT and rbpf over copies of `emu`, arriving on
/// `queue`: all three must agree; the interpreter's result is returned.
fn run_all(emu: &Emulator, queue: u32) -> RunOutput {
    let f = frame();
    let mut outs = Vec::new();
    for r in [Runner::Interpreter, Runner::Jit] {
        let mut e = emu.clone();
        e.env.rxq = queue;
        let o = e
            .run_ref(PROGRAM, &f, r)
            .unwrap_or_else(|x| panic!("{r:?}: {x}"));
        outs.push(o.to_output());
    }
    let mut e = emu.clone();
    e.env.rxq = queue;
    let p = RbpfProgram::new(&e, PROGRAM).unwrap_or_else(|x| panic!("rbpf: {x}"));
    let mut o = p.run(&mut e, &f).unwrap_or_else(|x| panic!("rbpf: {x}"));
    o.executed = outs[0].executed;
    outs.push(o);
    for o in &outs[1..] {
        assert_eq!(
            (o.retval, &o.data, o.xsk),
            (outs[0].retval, &outs[0].data, outs[0].xsk)
        );
    }
    outs.swap_remove(0)
}

#[test]
fn libxdp_default_program_hands_frames_to_the_bound_socket() {
    let Some(obj) = object() else {
        return skip("xsk_def_xdp_prog.o is not installed (package libxdp1)");
    };
    let mut emu = Emulator::load(&obj).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(emu.programs(), [PROGRAM]);
    // No socket: the frame passes, untouched.
    let o = run_all(&emu, 0);
    assert_eq!((o.retval, o.xsk, o.data), (2, None, frame()));
    // A socket bound on queue 3 (the value is its descriptor, any number here): frames
    // arriving on queue 3 go to it, others pass.
    emu.map_update("xsks_map", &3u32.to_le_bytes(), &7u32.to_le_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (run_all(&emu, 3).retval, run_all(&emu, 3).xsk),
        (4, Some(3))
    );
    assert_eq!((run_all(&emu, 2).retval, run_all(&emu, 2).xsk), (2, None));
    // Reference count 0 (libxdp's program detached from its sockets): everything passes.
    emu.map_update(".data", &0u32.to_le_bytes(), &0u32.to_le_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((run_all(&emu, 3).retval, run_all(&emu, 3).xsk), (2, None));

    if let Err(why) = nfcc_runtime::can_load_bpf() {
        return skip(&why);
    }
    // The kernel, with no socket bound: the same verdict and bytes on every queue.
    let kernel = load(&obj, PROGRAM, ProgType::Xdp).unwrap_or_else(|e| panic!("{e}"));
    let mut emu = Emulator::load(&obj).unwrap_or_else(|e| panic!("{e}"));
    let k = kernel
        .test_run(&frame(), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = run_all(&emu, 0);
    assert_eq!((u64::from(k.retval), k.data_out), (e.retval, e.data));
    // With a socket in the map (test runs arrive on queue 0): the kernel redirects too.
    let _sock = nfcc_runtime::xsk::bind_for_test_run(&kernel, "xsks_map", 1)
        .unwrap_or_else(|e| panic!("{e}"));
    emu.map_update("xsks_map", &0u32.to_le_bytes(), &7u32.to_le_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let k = kernel
        .test_run(&frame(), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = run_all(&emu, 0);
    assert_eq!((u64::from(k.retval), k.data_out), (e.retval, e.data));
    assert_eq!((e.retval, e.xsk), (4, Some(0)));
}
