//! Kernel tests of the runtime: C programs from `tests/progs/` are compiled with clang at test
//! time, loaded, test-run on handcrafted frames, and their maps read and changed.
//!
//! Every test goes through [`check`]. Where this process cannot load BPF programs (or clang
//! and the libbpf headers are missing) a test prints `skipped: <reason>` and passes, unless
//! `NFCC_REQUIRE_KERNEL=1`, which turns the skip into a failure.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use nfcc_runtime::{can_load_bpf, load, Loaded, ProgType, RuntimeError, TestRun};

/// `XDP_DROP`, `XDP_PASS` and `XDP_TX` from `enum xdp_action`.
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
/// `TC_ACT_OK` and `TC_ACT_SHOT` from `linux/pkt_cls.h`.
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

/// What a test needs from the machine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: the test runs everywhere.
    Nothing,
    /// Loading programs into the kernel, and clang with the libbpf headers to build them.
    Kernel,
}

/// Runs `body` if the machine offers what the test `needs`, and otherwise reports the skip.
///
/// The skip message is written straight to the process's stderr so that it shows even when
/// the test harness captures output; with `NFCC_REQUIRE_KERNEL=1` it is a panic instead.
fn check(test: &str, needs: Needs, body: impl FnOnce()) {
    if needs == Needs::Kernel {
        if let Err(reason) = kernel_ready() {
            if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
                panic!("{test}: NFCC_REQUIRE_KERNEL=1 but {reason}");
            }
            let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
            return;
        }
    }
    body();
}

/// Says why kernel tests cannot run here, if they cannot.
fn kernel_ready() -> Result<(), String> {
    can_load_bpf()?;
    clang_include_dir().map(drop)
}

/// Finds clang and returns the multiarch include directory that holds `asm/types.h`.
///
/// `<linux/bpf.h>` includes `<asm/types.h>`, which Debian keeps under
/// `/usr/include/<multiarch>`, a directory clang does not search for the bpf target.
fn clang_include_dir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("clang")
            .arg("-print-multiarch")
            .output()
            .map_err(|e| format!("clang is not available ({e}); install clang and libbpf-dev"))?;
        let arch = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dir = Path::new("/usr/include").join(arch);
        if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
            return Err("<bpf/bpf_helpers.h> is missing; install libbpf-dev".to_owned());
        }
        Ok(dir)
    })
    .clone()
}

/// Compiles `tests/progs/<name>.c` once per test process and returns the object's bytes.
fn object(name: &str) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = cache.get(name) {
        return bytes.clone();
    }
    let include = clang_include_dir().unwrap_or_else(|e| panic!("{e}"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.o"));
    let result = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg("-I")
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run clang on {}: {e}", src.display()));
    assert!(
        result.status.success(),
        "clang failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let bytes =
        std::fs::read(&out).unwrap_or_else(|e| panic!("cannot read {}: {e}", out.display()));
    cache.insert(name.to_owned(), bytes.clone());
    bytes
}

/// Compiles and loads program `name` (file and function share the name) as a `kind` program.
fn load_prog(name: &str, kind: ProgType) -> Loaded {
    load(&object(name), name, kind).unwrap_or_else(|e| panic!("cannot load {name}: {e}"))
}

/// Runs `prog` once on `frame`, panicking with the error if the run fails.
fn run(prog: &Loaded, frame: &[u8]) -> TestRun {
    prog.test_run(frame, 1)
        .unwrap_or_else(|e| panic!("test run of {} failed: {e}", prog.program_name()))
}

// Handcrafted frames. Checksums are left zero: none of the programs look at them, and the
// kernel's test run does not verify them.

/// Ethertype IPv4.
const ETH_P_IP: u16 = 0x0800;
/// Ethertype ARP.
const ETH_P_ARP: u16 = 0x0806;
/// IP protocol numbers for TCP and UDP.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Returns an Ethernet header from 02:00:00:00:00:02 to 02:00:00:00:00:01 with `ethertype`.
fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Returns an Ethernet frame carrying an IPv4 packet with `options` (a multiple of 4 bytes)
/// and `payload`, from `src` to 192.0.2.1.
fn ipv4(protocol: u8, src: [u8; 4], options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(
        options.len() % 4,
        0,
        "ipv4 options must be padded to 4 bytes"
    );
    let header_len = 20 + options.len();
    let total = u16::try_from(header_len + payload.len()).expect("packet fits in 16 bits");
    let mut f = eth(ETH_P_IP);
    f.push(0x40 | (header_len / 4) as u8); // Version 4, IHL in 32-bit words.
    f.push(0); // DSCP and ECN.
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0]); // Identification 1, don't fragment.
    f.push(64); // TTL.
    f.push(protocol);
    f.extend_from_slice(&[0, 0]); // Header checksum (unchecked).
    f.extend_from_slice(&src);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f.extend_from_slice(options);
    f.extend_from_slice(payload);
    f
}

/// Returns a UDP header and `data` from port 40000 to `dport`.
fn udp(dport: u16, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + data.len()).expect("datagram fits in 16 bits");
    let mut s = 40000u16.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(&[0, 0]); // Checksum (none).
    s.extend_from_slice(data);
    s
}

/// Returns a 20-byte TCP SYN header from port 40000 to `dport`.
fn tcp(dport: u16) -> Vec<u8> {
    let mut s = 40000u16.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // Sequence and acknowledgement numbers.
    s.extend_from_slice(&[0x50, 0x02, 0xff, 0xff]); // Data offset 5, SYN, window.
    s.extend_from_slice(&[0, 0, 0, 0]); // Checksum and urgent pointer.
    s
}

/// A DNS-sized query payload.
const DNS_QUERY: &[u8] =
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";

#[test]
fn xdp_pass_passes_the_frame_unchanged_and_reports_timing_and_ids() {
    check("xdp_pass", Needs::Kernel, || {
        let prog = load_prog("xdp_pass", ProgType::Xdp);
        let frame = ipv4(IPPROTO_UDP, [198, 51, 100, 7], &[], &udp(53, DNS_QUERY));
        let once = run(&prog, &frame);
        assert_eq!(once.retval, XDP_PASS);
        assert_eq!(once.data_out, frame, "xdp_pass must not change the frame");

        let many = prog.test_run(&frame, 100_000).expect("repeated test run");
        assert_eq!(many.retval, XDP_PASS);
        assert!(
            many.duration_ns < 100_000,
            "a two-instruction program took {} ns per run",
            many.duration_ns
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "xdp_pass: {} ns per run over 100000 runs",
            many.duration_ns
        );

        assert!(prog.program_id().expect("program id") > 0);
        let insns = prog
            .verified_insns()
            .expect("linux >= 5.16 reports verified_insns");
        assert!(
            (1..=4).contains(&insns),
            "xdp_pass has 2 instructions, verifier processed {insns}"
        );
    });
}

#[test]
fn xdp_drop_udp_drops_dns_only_and_counts_drops_per_cpu() {
    check("xdp_drop_udp", Needs::Kernel, || {
        let prog = load_prog("xdp_drop_udp", ProgType::Xdp);
        let src = [198, 51, 100, 7];
        let dns = ipv4(IPPROTO_UDP, src, &[], &udp(53, DNS_QUERY));
        // An IHL of 6 moves the UDP header back by 4 bytes; the program must follow it.
        let dns_opts = ipv4(IPPROTO_UDP, src, &[1, 1, 1, 0], &udp(53, DNS_QUERY));
        let cases: Vec<(&str, Vec<u8>, u32)> = vec![
            ("udp to port 53", dns.clone(), XDP_DROP),
            (
                "udp to port 53 after ipv4 options",
                dns_opts.clone(),
                XDP_DROP,
            ),
            (
                "udp to port 54",
                ipv4(IPPROTO_UDP, src, &[], &udp(54, DNS_QUERY)),
                XDP_PASS,
            ),
            (
                "tcp to port 53",
                ipv4(IPPROTO_TCP, src, &[], &tcp(53)),
                XDP_PASS,
            ),
            ("arp", [eth(ETH_P_ARP), vec![0; 28]].concat(), XDP_PASS),
            // Cut inside the UDP header: the bounds check must fail, not the read.
            (
                "udp header cut short",
                dns[..14 + 20 + 3].to_vec(),
                XDP_PASS,
            ),
            ("ethernet header only", eth(ETH_P_IP), XDP_PASS),
        ];
        for (what, frame, verdict) in &cases {
            let out = run(&prog, frame);
            assert_eq!(out.retval, *verdict, "{what}: wrong verdict");
            assert_eq!(&out.data_out, frame, "{what}: frame changed");
        }

        // Slot 0 counts drops (packets, bytes); slot 1 counts every frame seen.
        let dropped_bytes = (dns.len() + dns_opts.len()) as u64;
        let seen_bytes: u64 = cases.iter().map(|(_, f, _)| f.len() as u64).sum();
        assert_eq!(
            prog.percpu_array_sum("drops", 0).unwrap(),
            [2, dropped_bytes]
        );
        assert_eq!(
            prog.percpu_array_sum("drops", 1).unwrap(),
            [cases.len() as u64, seen_bytes]
        );

        // Every repetition of a test run updates the counters.
        let many = prog.test_run(&dns, 10).expect("repeated test run");
        assert_eq!(many.retval, XDP_DROP);
        let drops = prog.percpu_array_sum("drops", 0).unwrap();
        assert_eq!(drops, [12, dropped_bytes + 10 * dns.len() as u64]);

        // The raw per-CPU lookup gives one 16-byte value per possible CPU summing to the same.
        let raw = prog
            .map_lookup("drops", &0u32.to_ne_bytes())
            .unwrap()
            .expect("array index 0 exists");
        assert_eq!(raw.len() % 16, 0, "per-cpu values are 16 bytes each");
        let packets: u64 = raw
            .chunks_exact(16)
            .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
            .sum();
        assert_eq!(packets, 12);

        // Resetting the counter on every CPU with one value works without reloading.
        prog.map_update("drops", &0u32.to_ne_bytes(), &[0; 16])
            .unwrap();
        assert_eq!(prog.percpu_array_sum("drops", 0).unwrap(), [0, 0]);

        assert!(matches!(
            prog.percpu_array_sum("drops", 2),
            Err(RuntimeError::Map { .. })
        ));
        let err = prog.percpu_array_sum("nope", 0).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::MapNotFound { available, .. } if available == &["drops"]),
            "{err}"
        );
    });
}

#[test]
fn tc_mark_shoots_tcp_and_passes_the_rest() {
    check("tc_mark", Needs::Kernel, || {
        let prog = load_prog("tc_mark", ProgType::Tc);
        let src = [203, 0, 113, 9];
        let tcp_frame = ipv4(IPPROTO_TCP, src, &[], &tcp(443));
        assert_eq!(run(&prog, &tcp_frame).retval, TC_ACT_SHOT);
        let udp_frame = ipv4(IPPROTO_UDP, src, &[], &udp(443, b"hello"));
        let out = run(&prog, &udp_frame);
        assert_eq!(out.retval, TC_ACT_OK);
        assert_eq!(out.data_out, udp_frame);
        // The shortest frame the kernel takes: an Ethernet header with nothing behind it...
        assert_eq!(run(&prog, &eth(ETH_P_ARP)).retval, TC_ACT_OK);
        let err = prog.test_run(&eth(ETH_P_ARP)[..13], 1).unwrap_err();
        assert!(
            matches!(
                err,
                RuntimeError::FrameTooShort {
                    len: 13,
                    min: 14,
                    ..
                }
            ),
            "{err}"
        );
        // ...unless it says IPv4, when the kernel wants the IPv4 header too.
        let err = prog.test_run(&tcp_frame[..33], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a test frame needs at least 34 bytes (an ethernet and an ipv4 header for a tc \
             program), not 33"
        );
        assert_eq!(run(&prog, &tcp_frame[..34]).retval, TC_ACT_SHOT);
        let err = prog.test_run(&tcp_frame, 0).unwrap_err();
        assert!(matches!(err, RuntimeError::ZeroRepeat), "{err}");
        assert_eq!(prog.verified_insns().map(|n| n > 0), Some(true));
    });
}

#[test]
fn xdp_push_grows_the_frame_in_data_out() {
    check("xdp_push", Needs::Kernel, || {
        let prog = load_prog("xdp_push", ProgType::Xdp);
        let frame = ipv4(IPPROTO_UDP, [198, 51, 100, 7], &[], &udp(9, b"x"));
        let out = run(&prog, &frame);
        assert_eq!(out.retval, XDP_TX);
        assert_eq!(out.data_out.len(), frame.len() + 4);
        assert_eq!(out.data_out[..4], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(out.data_out[4..], frame[..]);
    });
}

#[test]
fn map_update_changes_the_verdict_without_reloading() {
    check("xdp_blocklist", Needs::Kernel, || {
        let prog = load_prog("xdp_blocklist", ProgType::Xdp);
        let bad = [198, 51, 100, 66];
        let frame = ipv4(IPPROTO_TCP, bad, &[], &tcp(22));
        let other = ipv4(IPPROTO_TCP, [198, 51, 100, 67], &[], &tcp(22));
        // The key is the address in network byte order, as the program reads it.
        let key = bad;
        assert_eq!(run(&prog, &frame).retval, XDP_PASS);
        assert_eq!(prog.map_lookup("blocklist", &key).unwrap(), None);
        assert!(prog.map_keys("blocklist").unwrap().is_empty());

        prog.map_update("blocklist", &key, &XDP_DROP.to_ne_bytes())
            .unwrap();
        assert_eq!(run(&prog, &frame).retval, XDP_DROP);
        assert_eq!(run(&prog, &other).retval, XDP_PASS);
        assert_eq!(
            prog.map_lookup("blocklist", &key).unwrap(),
            Some(XDP_DROP.to_ne_bytes().to_vec())
        );
        assert_eq!(prog.map_keys("blocklist").unwrap(), [key.to_vec()]);

        // Replacing the value changes the verdict again.
        prog.map_update("blocklist", &key, &XDP_TX.to_ne_bytes())
            .unwrap();
        assert_eq!(run(&prog, &frame).retval, XDP_TX);

        assert!(prog.map_delete("blocklist", &key).unwrap());
        assert!(!prog.map_delete("blocklist", &key).unwrap());
        assert_eq!(run(&prog, &frame).retval, XDP_PASS);

        let err = prog
            .map_update("blocklist", &key[..3], &XDP_DROP.to_ne_bytes())
            .unwrap_err();
        assert!(
            matches!(
                &err,
                RuntimeError::MapSize {
                    what: "key",
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "map `blocklist` takes keys of 4 bytes, not 3"
        );
        let err = prog.map_update("blocklist", &key, &[1]).unwrap_err();
        assert!(
            matches!(
                &err,
                RuntimeError::MapSize {
                    what: "value",
                    got: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = prog.percpu_array_sum("blocklist", 0).unwrap_err();
        assert!(matches!(&err, RuntimeError::MapKind { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "map `blocklist` is a hash map, but this needs a per-cpu array"
        );
    });
}

#[test]
fn many_entries_are_stored_in_batches_each_one_as_given() {
    check("xdp_blocklist", Needs::Kernel, || {
        let prog = load_prog("xdp_blocklist", ProgType::Xdp);
        // 60 addresses (the map holds 64), every other one dropped and the rest sent back:
        // one batch, and each verdict where it was put.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..60u32)
            .map(|i| {
                let v = if i % 2 == 0 { XDP_DROP } else { XDP_TX };
                (
                    [10, 1, (i >> 8) as u8, i as u8].to_vec(),
                    v.to_ne_bytes().to_vec(),
                )
            })
            .collect();
        prog.map_update_many("blocklist", &entries)
            .expect("60 entries fit the map");
        let keys = prog.map_keys("blocklist").expect("the map's keys");
        assert_eq!(keys.len(), 60);
        for i in [0u32, 1, 30, 58, 59] {
            let frame = ipv4(IPPROTO_TCP, [10, 1, (i >> 8) as u8, i as u8], &[], &tcp(22));
            let want = if i % 2 == 0 { XDP_DROP } else { XDP_TX };
            assert_eq!(run(&prog, &frame).retval, want, "address {i}");
        }
        // A key of the wrong size is refused, not written.
        let err = prog
            .map_update_many(
                "blocklist",
                &[(vec![1, 2, 3], XDP_DROP.to_ne_bytes().to_vec())],
            )
            .expect_err("a 3-byte key for a 4-byte map");
        assert!(
            matches!(err, RuntimeError::MapSize { what: "key", .. }),
            "{err}"
        );
    });
}

#[test]
fn verifier_rejection_carries_the_log_naming_the_instruction() {
    check("xdp_unchecked", Needs::Kernel, || {
        let err = load(&object("xdp_unchecked"), "xdp_unchecked", ProgType::Xdp)
            .expect_err("the verifier must reject an unchecked packet read");
        let RuntimeError::Verifier { program, log, .. } = &err else {
            panic!("expected a verifier error, got: {err}");
        };
        assert_eq!(program, "xdp_unchecked");
        let text = log.to_string();
        assert!(
            text.contains("r1 = *(u8 *)(r1 +12)"),
            "the log must show the offending load:\n{text}"
        );
        assert!(
            text.contains("invalid access to packet"),
            "the log must say why:\n{text}"
        );
        assert_eq!(text.lines().count(), log.lines().count());
        let message = err.to_string();
        assert!(
            message.starts_with("the kernel verifier rejected program `xdp_unchecked`"),
            "{message}"
        );
    });
}

#[test]
fn bad_objects_and_wrong_names_give_errors_not_panics() {
    check("bad_objects", Needs::Nothing, || {
        for bytes in [
            &b""[..],
            b"not an elf object",
            &[0x7f, b'E', b'L', b'F', 2, 1, 1],
        ] {
            let err =
                load(bytes, "xdp_pass", ProgType::Xdp).expect_err("a non-elf input must not load");
            assert!(matches!(err, RuntimeError::Object { .. }), "{err}");
            assert!(
                err.to_string().starts_with("cannot load the eBPF object: "),
                "{err}"
            );
            assert!(std::error::Error::source(&err).is_some(), "source kept");
        }
    });
    check("wrong_names", Needs::Kernel, || {
        let object = object("xdp_pass");
        let err = load(&object, "xdp_nope", ProgType::Xdp).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the object has no program `xdp_nope` (it has: xdp_pass)"
        );
        let err = load(&object, "xdp_pass", ProgType::Tc).unwrap_err();
        assert!(
            matches!(
                &err,
                RuntimeError::WrongKind {
                    expected: ProgType::Tc,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "program `xdp_pass` has type xdp, not a tc classifier"
        );
    });
}
