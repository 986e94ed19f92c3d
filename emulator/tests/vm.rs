//! The interpreter on hand-written programs: arithmetic corner cases the kernel defines
//! (division by zero, 32-bit wrap and zero extension, signed forms, byte swaps), atomics,
//! bpf-to-bpf calls, and the memory model's refusals — each program on the interpreter and on
//! the JIT, which must agree (every access checked whole, read-only
//! context, the instruction budget, the NIC profile).

use nfcc_bpf::insn::{Alu, Insn, Jmp, Size, R0, R1, R10, R2, R3, R4, R5, R6};
use nfcc_emulator::maps::{EmuMap, MapKind};
use nfcc_emulator::vm::{run, Ins, RunOutput};
use nfcc_emulator::{EmuError, Env, Profile, ProgType, Runner};

fn decode(prog: &[Insn]) -> Vec<Ins> {
    prog.iter().map(|i| Ins::decode(&i.encode())).collect()
}

/// Runs a program on the interpreter and on the JIT (with copies of the maps and
/// environment): both must give the same result, which is returned.
fn exec(
    prog: &[Insn],
    hook: ProgType,
    maps: &mut [EmuMap],
    env: &mut Env,
    frame: &[u8],
) -> Result<RunOutput, EmuError> {
    let insns = decode(prog);
    let (mut maps2, mut env2) = (maps.to_vec(), env.clone());
    let jit = nfcc_emulator::jit::run(&insns, hook, &mut maps2, &mut env2, frame);
    let interp = run(&insns, hook, maps, env, frame);
    match (&interp, &jit) {
        (Ok(a), Ok(b)) => assert_eq!(
            (a.retval, &a.data, a.mark),
            (b.retval, &b.data, b.mark),
            "interpreter and JIT differ on {prog:?}"
        ),
        (Err(a), Err(b)) => {
            assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "interpreter: {a}, JIT: {b} on {prog:?}"
            );
            // A fault is at the same instruction (running off the end is reported at the end).
            if let (EmuError::Fault { insn: i, what: w }, EmuError::Fault { insn: j, .. }) = (a, b)
            {
                assert!(
                    i == j || w.contains("past the end"),
                    "interpreter: {a}, JIT: {b} on {prog:?}"
                );
            }
        }
        _ => panic!("interpreter {interp:?} but JIT {jit:?} on {prog:?}"),
    }
    assert_eq!(
        maps.iter().map(|m| &m.slab).collect::<Vec<_>>(),
        maps2.iter().map(|m| &m.slab).collect::<Vec<_>>(),
        "the maps differ after {interp:?} / {jit:?} on {prog:?}"
    );
    interp
}
/// Runs `body` followed by `exit` on XDP and returns r0, panicking on a fault.
fn r0(body: &[Insn]) -> u64 {
    let mut p = body.to_vec();
    p.push(Insn::exit());
    exec(&p, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 64])
        .unwrap_or_else(|e| panic!("{e}"))
        .retval
}

fn check(body: &[Insn], expect: u64) {
    assert_eq!(r0(body), expect, "{body:?}");
}

#[test]
fn arithmetic_follows_the_kernel() {
    // Division by zero gives 0; modulo by zero leaves the dividend.
    check(
        &[
            Insn::mov64_imm(R0, 7),
            Insn::mov64_imm(R1, 0),
            Insn::alu64_reg(Alu::Div, R0, R1),
        ],
        0,
    );
    check(
        &[
            Insn::mov64_imm(R0, 7),
            Insn::mov64_imm(R1, 0),
            Insn::alu64_reg(Alu::Mod, R0, R1),
        ],
        7,
    );
    // 32-bit operations wrap and zero-extend.
    check(
        &[Insn::mov64_imm(R0, -1), Insn::alu32_imm(Alu::Add, R0, 1)],
        0,
    );
    check(
        &[Insn::mov64_imm(R0, -1), Insn::alu32_imm(Alu::Add, R0, 0)],
        0xffff_ffff,
    );
    // mov64 of a negative immediate sign-extends; arsh keeps the sign.
    check(
        &[Insn::mov64_imm(R0, -16), Insn::alu64_imm(Alu::Arsh, R0, 2)],
        (-4i64) as u64,
    );
    check(
        &[Insn::mov64_imm(R0, -16), Insn::alu64_imm(Alu::Rsh, R0, 60)],
        0xf,
    );
    // Shift counts are masked to the operand width.
    check(
        &[Insn::mov64_imm(R0, 1), Insn::alu32_imm(Alu::Lsh, R0, 33)],
        2,
    );
    // Byte swaps to big-endian.
    check(&[Insn::mov64_imm(R0, 0x1234), Insn::to_be(R0, 16)], 0x3412);
    check(
        &[Insn::mov64_imm(R0, 0x1234_5678), Insn::to_be(R0, 32)],
        0x7856_3412,
    );
    // Negation, and 64-bit immediates.
    let mut wide = Insn::ld_imm64(R0, 0x8000_0000_0000_0001).to_vec();
    wide.push(Insn::alu64_imm(Alu::Neg, R0, 0));
    check(&wide, 0x7fff_ffff_ffff_ffff);
}

#[test]
fn jumps_signed_unsigned_and_32_bit() {
    // if r1 s< 0 goto +1 with r1 = -1: taken.
    let prog = [
        Insn::mov64_imm(R0, 0),
        Insn::mov64_imm(R1, -1),
        Insn::jmp_imm(Jmp::Slt, R1, 0, 1),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 20])
            .map(|o| o.retval)
            .ok(),
        Some(0)
    );
    // Unsigned: -1 is the largest value.
    let prog = [
        Insn::mov64_imm(R0, 0),
        Insn::mov64_imm(R1, -1),
        Insn::jmp_imm(Jmp::Gt, R1, 5, 1),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 20])
            .map(|o| o.retval)
            .ok(),
        Some(0)
    );
}

#[test]
fn every_access_is_checked_whole() {
    // An 8-byte load whose first byte is the packet's last: refused, though it starts inside.
    let prog = [
        Insn::ldx(Size::W, R2, R1, 0),
        Insn::ldx(Size::DW, R0, R2, 13),
        Insn::exit(),
    ];
    match exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14]) {
        Err(EmuError::Fault { insn: 1, .. }) => {}
        other => panic!("expected a fault at instruction 1, got {other:?}"),
    }
    // The same load inside the packet reads its bytes.
    let prog = [
        Insn::ldx(Size::W, R2, R1, 0),
        Insn::ldx(Size::H, R0, R2, 12),
        Insn::exit(),
    ];
    let frame = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &frame)
            .map(|o| o.retval)
            .ok(),
        Some(0xdd86)
    );
    // A stack read past the frame's top.
    let prog = [Insn::ldx(Size::DW, R0, R10, 0), Insn::exit()];
    assert!(matches!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14]),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn context_writes_only_where_the_kernel_allows() {
    let write_mark = [
        Insn::mov64_imm(R2, 7),
        Insn::stx(Size::W, R1, 8, R2),
        Insn::mov64_imm(R0, 0),
        Insn::exit(),
    ];
    assert!(matches!(
        exec(
            &write_mark,
            ProgType::Xdp,
            &mut [],
            &mut Env::default(),
            &[0; 14]
        ),
        Err(EmuError::Fault { insn: 1, .. })
    ));
    let out = exec(
        &write_mark,
        ProgType::Tc,
        &mut [],
        &mut Env::default(),
        &[0; 60],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.mark, 7);
    // skb->data is read-only.
    let write_data = [
        Insn::mov64_imm(R2, 7),
        Insn::stx(Size::W, R1, 76, R2),
        Insn::exit(),
    ];
    assert!(exec(
        &write_data,
        ProgType::Tc,
        &mut [],
        &mut Env::default(),
        &[0; 60]
    )
    .is_err());
}

#[test]
fn atomics_and_map_values() {
    let mut maps = [EmuMap::new("a", MapKind::Array, 4, 8, 1)];
    // r0 = lookup(a, 0); lock *(u64 *)(r0 + 0) += 5 twice; fetch-add returns the old value.
    let mut prog = vec![Insn::mov64_imm(R1, 0), Insn::stx(Size::W, R10, -4, R1)];
    prog.extend(Insn::ld_map(R1, 0));
    prog.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(Alu::Add, R2, -4),
        Insn::call(nfcc_bpf::Helper::MapLookupElem),
        Insn::jmp_imm(Jmp::Eq, R0, 0, 5),
        Insn::mov64_imm(R3, 5),
        Insn::atomic_add(Size::DW, R0, 0, R3),
        Insn::atomic_add(Size::DW, R0, 0, R3),
        Insn::ldx(Size::DW, R0, R0, 0),
        Insn::exit(),
        Insn::mov64_imm(R0, 99),
        Insn::exit(),
    ]);
    let out = exec(
        &prog,
        ProgType::Xdp,
        &mut maps,
        &mut Env::default(),
        &[0; 14],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 10);
    assert_eq!(
        maps[0].lookup(&[0, 0, 0, 0]),
        Some(10u64.to_le_bytes().to_vec())
    );
    // Reading past the 8-byte value is refused.
    let mut prog = vec![Insn::mov64_imm(R1, 0), Insn::stx(Size::W, R10, -4, R1)];
    prog.extend(Insn::ld_map(R1, 0));
    prog.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(Alu::Add, R2, -4),
        Insn::call(nfcc_bpf::Helper::MapLookupElem),
        Insn::ldx(Size::DW, R0, R0, 4),
        Insn::exit(),
    ]);
    assert!(matches!(
        exec(
            &prog,
            ProgType::Xdp,
            &mut maps,
            &mut Env::default(),
            &[0; 14]
        ),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn bpf_to_bpf_calls_keep_callee_saved_registers() {
    let mut call = Insn::call_raw(0);
    call.src = 1;
    call.imm = 2; // to instruction 4
    let prog = [
        Insn::mov64_imm(R6, 40),
        call,
        Insn::alu64_reg(Alu::Add, R0, R6),
        Insn::exit(),
        // callee: clobbers r6, returns 2
        Insn::mov64_imm(R6, 1000),
        Insn::mov64_imm(R0, 2),
        Insn::exit(),
    ];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14])
            .map(|o| o.retval)
            .ok(),
        Some(42)
    );
}

/// A bpf-to-bpf call to the instruction `to_insn` from instruction `at`.
fn local_call(at: i32, to_insn: i32) -> Insn {
    let mut call = Insn::call_raw(0);
    call.src = 1;
    call.imm = to_insn - at - 1;
    call
}

#[test]
fn callees_share_the_callers_stack_through_pointers_and_get_cleared_frames() {
    let prog = [
        // Main: a value in its own frame, a stale byte where the callee's frame will be.
        Insn::st(Size::DW, R10, -8, 5),
        Insn::st(Size::DW, R10, -520, 77),
        Insn::mov64_reg(R1, R10),
        Insn::alu64_imm(Alu::Add, R1, -8),
        local_call(4, 8),
        // r0 = callee's result (its frame's first word, 0 after clearing) + main's value.
        Insn::ldx(Size::DW, R2, R10, -8),
        Insn::alu64_reg(Alu::Add, R0, R2),
        Insn::exit(),
        // Callee: *r1 += 10 through the caller's pointer; returns its frame's stale word.
        Insn::ldx(Size::DW, R2, R1, 0),
        Insn::alu64_imm(Alu::Add, R2, 10),
        Insn::stx(Size::DW, R1, 0, R2),
        Insn::ldx(Size::DW, R0, R10, -8),
        Insn::exit(),
    ];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14])
            .map(|o| o.retval)
            .unwrap_or_else(|e| panic!("{e}")),
        15,
        "the callee's frame starts cleared and main's value gained 10"
    );
}

#[test]
fn spilled_pointers_are_forgotten_when_their_slot_may_be_overwritten() {
    // A frame pointer spilled to r10-8, then overwritten with the packet pointer through a
    // pointer the JIT's analysis cannot follow (r10 & -1), or by a callee through the pointer
    // it was given: the reload is the packet pointer, and its first byte (0xab) is read.
    let frame = [0xab; 14];
    let through_unknown = [
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(Alu::Add, R2, -16),
        Insn::stx(Size::DW, R10, -8, R2),
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(Alu::And, R3, -1),
        Insn::ldx(Size::W, R4, R1, 0),
        Insn::stx(Size::DW, R3, -8, R4),
        Insn::ldx(Size::DW, R5, R10, -8),
        Insn::ldx(Size::B, R0, R5, 0),
        Insn::exit(),
    ];
    let through_a_callee = [
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(Alu::Add, R2, -16),
        Insn::stx(Size::DW, R10, -8, R2),
        Insn::ldx(Size::W, R2, R1, 0),
        Insn::mov64_reg(R1, R10),
        Insn::alu64_imm(Alu::Add, R1, -8),
        local_call(6, 10),
        Insn::ldx(Size::DW, R5, R10, -8),
        Insn::ldx(Size::B, R0, R5, 0),
        Insn::exit(),
        // Callee: *r1 = r2.
        Insn::stx(Size::DW, R1, 0, R2),
        Insn::exit(),
    ];
    for prog in [&through_unknown[..], &through_a_callee[..]] {
        let out = exec(prog, ProgType::Xdp, &mut [], &mut Env::default(), &frame)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.retval, 0xab, "{prog:?}");
    }
}

/// Writes a key to the frame with `key`, then looks up the key at r10 + `at` in map 0:
/// r0 = the value's first 8 bytes, or 1 on a miss.
fn lookup_at(key: &[Insn], at: i16) -> Vec<Insn> {
    let mut prog = key.to_vec();
    prog.extend(Insn::ld_map(R1, 0));
    prog.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(Alu::Add, R2, i32::from(at)),
        Insn::call(nfcc_bpf::Helper::MapLookupElem),
        Insn::jmp_imm(Jmp::Eq, R0, 0, 2),
        Insn::ldx(Size::DW, R0, R0, 0),
        Insn::exit(),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ]);
    prog
}

#[test]
fn hash_lookups_read_the_key_whole() {
    // A 16-byte key on the stack finds its value; the same key half outside the frame is a
    // fault on both engines, not a lookup of half a key.
    let mut maps = [EmuMap::new("h", MapKind::LruHash, 16, 8, 4)];
    let mut key = [0u8; 16];
    key[0] = 7;
    key[15] = 9;
    maps[0]
        .update(&key, &42u64.to_le_bytes(), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = [
        Insn::st(Size::DW, R10, -16, 7),
        Insn::st(Size::DW, R10, -8, 0),
        Insn::st(Size::B, R10, -1, 9),
    ];
    let lookup = |at: i16| lookup_at(&key, at);
    let out = exec(
        &lookup(-16),
        ProgType::Xdp,
        &mut maps,
        &mut Env::default(),
        &[0; 14],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 42);
    let out = exec(
        &lookup(-24),
        ProgType::Xdp,
        &mut maps,
        &mut Env::default(),
        &[0; 14],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 1, "a different key misses");
    assert!(matches!(
        exec(
            &lookup(-8),
            ProgType::Xdp,
            &mut maps,
            &mut Env::default(),
            &[0; 14]
        ),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn lpm_lookups_read_the_key_whole() {
    // {prefix length 32, 10.1.2.3} matches 10.1.2.0/24 (value 5) in an IPv4 LPM trie; the key
    // four bytes lower runs past the frame's end and faults on both engines.
    let mut maps = [EmuMap::new("t", MapKind::LpmTrie, 8, 8, 4)];
    maps[0]
        .update(&[24, 0, 0, 0, 10, 1, 2, 0], &5u64.to_le_bytes(), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = [
        Insn::st(Size::W, R10, -8, 32),
        Insn::st(Size::W, R10, -4, i32::from_le_bytes([10, 1, 2, 3])),
    ];
    let lookup = |at: i16| lookup_at(&key, at);
    let out = exec(
        &lookup(-8),
        ProgType::Xdp,
        &mut maps,
        &mut Env::default(),
        &[0; 14],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 5);
    assert!(matches!(
        exec(
            &lookup(-4),
            ProgType::Xdp,
            &mut maps,
            &mut Env::default(),
            &[0; 14]
        ),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn regressions_found_by_random_programs() {
    // A callee starts with the caller's r0 (the JIT once started it at zero).
    let prog = [
        Insn::mov64_imm(R0, 7),
        local_call(1, 3),
        Insn::exit(),
        Insn::jmp_imm(Jmp::Gt, R0, 3, 2),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
        Insn::mov64_imm(R0, 2),
        Insn::exit(),
    ];
    let out = exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 2);
    // A jump out of the program faults only when taken (the JIT once refused the program).
    let prog = [
        Insn::jmp_imm(Jmp::Eq, R1, 0, 100),
        Insn::mov64_imm(R0, 5),
        Insn::exit(),
    ];
    let out = exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retval, 5);
    let prog = [Insn::ja(100), Insn::exit()];
    assert!(matches!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14]),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn calls_stop_at_eight_frames() {
    // Depth n recurses while r1 > 0: seven nested calls fit, the eighth frame is refused.
    let recurse = |depth: i32| {
        vec![
            Insn::mov64_imm(R1, depth),
            local_call(1, 3),
            Insn::exit(),
            // f(r1): if r1 == 0 return 1; else return f(r1 - 1) + 1.
            Insn::mov64_imm(R0, 1),
            Insn::jmp_imm(Jmp::Eq, R1, 0, 3),
            Insn::alu64_imm(Alu::Add, R1, -1),
            local_call(6, 3),
            Insn::alu64_imm(Alu::Add, R0, 1),
            Insn::exit(),
        ]
    };
    assert_eq!(
        exec(
            &recurse(6),
            ProgType::Xdp,
            &mut [],
            &mut Env::default(),
            &[0; 14]
        )
        .map(|o| o.retval)
        .unwrap_or_else(|e| panic!("{e}")),
        7
    );
    assert!(matches!(
        exec(
            &recurse(7),
            ProgType::Xdp,
            &mut [],
            &mut Env::default(),
            &[0; 14]
        ),
        Err(EmuError::Fault { .. })
    ));
}

#[test]
fn loops_stop_at_the_budget_and_the_nic_profile_refuses_host_helpers() {
    let prog = [Insn::ja(-1)];
    assert!(matches!(
        exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14]),
        Err(EmuError::Budget(_))
    ));
    let prog = [Insn::call(nfcc_bpf::Helper::KtimeGetNs), Insn::exit()];
    let mut env = Env {
        profile: Profile::Nfp,
        ..Env::default()
    };
    assert!(matches!(
        exec(&prog, ProgType::Xdp, &mut [], &mut env, &[0; 14]),
        Err(EmuError::NicLacks(_))
    ));
    // A helper the emulator lacks is named in the error, on any profile.
    let prog = [Insn::call_raw(188), Insn::exit()];
    match exec(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 14]) {
        Err(EmuError::Helper(name)) => assert!(name.contains("#188"), "{name}"),
        other => panic!("expected an unsupported-helper error, got {other:?}"),
    }
    // On the NIC a redirect verdict is an abort.
    let prog = [Insn::mov64_imm(R0, 4), Insn::exit()];
    assert_eq!(
        exec(&prog, ProgType::Xdp, &mut [], &mut env, &[0; 14])
            .map(|o| o.retval)
            .ok(),
        Some(0)
    );
}

#[test]
fn runs_in_place_and_repeated_match_single_runs() {
    // An example policy with per-rule counters: `run_ref` gives what `run_jit` gives, and
    // `run_repeat` n times counts n packets and returns the last run's output.
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ipv6_edge.nf"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (program, d) = nfcc_dsl::check_source(&src, &nfcc_dsl::CheckOptions::default());
    let program = program.unwrap_or_else(|| panic!("{d:?}"));
    let compiled = nfcc_compiler::compile::compile(&program, "ipv6_edge.nf", &src, None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let load = || {
        let mut e =
            nfcc_emulator::Emulator::load(&compiled.object).unwrap_or_else(|e| panic!("{e}"));
        for (m, entries) in &compiled.programs[0].maps {
            for (k, v) in entries {
                e.map_update(&m.name, k, v)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        e
    };
    let frame = nfcc_dsl::testing::frame_from_literal(
        "ipv6(src=2001:db8:1::1, dst=2a01:4f8:c0c::80, hoplimit=64) / tcp(dport=443)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (mut a, mut b) = (load(), load());
    let owned = a
        .run_jit("ipv6_edge", &frame)
        .unwrap_or_else(|e| panic!("{e}"));
    for runner in [Runner::Jit, Runner::Interpreter] {
        let r = b
            .run_ref("ipv6_edge", &frame, runner)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_output();
        assert_eq!(
            (r.retval, &r.data),
            (owned.retval, &owned.data),
            "{runner:?}"
        );
    }
    let stats = |e: &mut nfcc_emulator::Emulator| -> u64 {
        (0u32..8)
            .map(|i| {
                e.map_lookup("ipv6_edge_nfcc_rule_stats", &i.to_le_bytes())
                    .unwrap_or_else(|x| panic!("{x}"))
                    .unwrap_or_default()
            })
            .map(|v| {
                u64::from_le_bytes(v.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]))
            })
            .sum()
    };
    for runner in [Runner::Jit, Runner::Interpreter] {
        let mut c = load();
        let r = c
            .run_repeat("ipv6_edge", &frame, 1000, runner)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.retval, &r.data),
            (owned.retval, &owned.data),
            "{runner:?}"
        );
        assert_eq!(stats(&mut c), 1000, "{runner:?}: every repeat counted once");
    }
}

/// xorshift64: reproducible random programs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn reg(&mut self) -> nfcc_bpf::insn::Reg {
        nfcc_bpf::insn::Reg(self.below(10) as u8)
    }
    fn size(&mut self) -> Size {
        [Size::B, Size::H, Size::W, Size::DW][self.below(4) as usize]
    }
}

/// A random straight-line program with forward branches, built to exercise what the JIT's
/// analysis reasons about: frame pointers and offsets (some outside the frame), packet
/// pointers, map lookups used with and without a null check, spills and reloads, stores
/// through pointers it cannot follow, atomics, helpers, 32- and 64-bit arithmetic.
fn random_program(rng: &mut Rng) -> Vec<Insn> {
    let (mut main, main_jumps, calls) = random_ops(rng, false);
    let callee = (!calls.is_empty()).then(|| random_ops(rng, true));
    patch_jumps(&mut main, main_jumps);
    let main_len: usize = main.iter().map(Vec::len).sum();
    let starts = op_starts(&main);
    for op in calls {
        // The call is the op's last instruction; the callee starts after main.
        let at = starts[op] + main[op].len() - 1;
        let last = main[op].len() - 1;
        main[op][last] = local_call(at as i32, main_len as i32);
    }
    let mut prog: Vec<Insn> = main.into_iter().flatten().collect();
    if let Some((mut ops, jumps, _)) = callee {
        patch_jumps(&mut ops, jumps);
        prog.extend(ops.into_iter().flatten());
    }
    prog
}

/// Where each op starts, in instructions.
fn op_starts(ops: &[Vec<Insn>]) -> Vec<usize> {
    ops.iter()
        .scan(0usize, |at, op| {
            let s = *at;
            *at += op.len();
            Some(s)
        })
        .collect()
}

/// Points each recorded jump (op, index within it, target op) at its target's first
/// instruction.
fn patch_jumps(ops: &mut [Vec<Insn>], jumps: Vec<(usize, usize, usize)>) {
    let starts = op_starts(ops);
    for (op, k, target) in jumps {
        let from = starts[op] + k;
        let to = starts[target.min(ops.len() - 1)];
        ops[op][k].off = (to as i64 - from as i64 - 1) as i16;
    }
}

/// The ops of one function (main, or with `callee` a function main calls with a pointer into
/// its frame in r1), its jumps to patch, and (main) the ops that end in a call to the callee.
#[allow(clippy::type_complexity)]
// Reason: a test generator's plain parts.
fn random_ops(
    rng: &mut Rng,
    callee: bool,
) -> (Vec<Vec<Insn>>, Vec<(usize, usize, usize)>, Vec<usize>) {
    let mut ops: Vec<Vec<Insn>> = if callee {
        vec![vec![Insn::stx(Size::DW, R1, 0, R2)]]
    } else {
        vec![vec![
            Insn::mov64_reg(R6, R1),
            Insn::ldx(Size::W, nfcc_bpf::insn::R7, R6, 0),
            Insn::ldx(Size::W, nfcc_bpf::insn::R8, R6, 4),
        ]]
    };
    let mut calls = Vec::new();
    // Jumps to patch: (op index, jump's index within the op, target op index).
    let mut jumps = Vec::new();
    let n = 8 + rng.below(40) as usize;
    let alu = [
        Alu::Add,
        Alu::Sub,
        Alu::Mul,
        Alu::Div,
        Alu::Or,
        Alu::And,
        Alu::Lsh,
        Alu::Rsh,
        Alu::Mod,
        Alu::Xor,
        Alu::Arsh,
    ];
    for i in 0..n {
        let (d, s) = (rng.reg(), rng.reg());
        // A callee makes no calls (op 15).
        let pick = match rng.below(17) {
            15 if callee => 16,
            k => k,
        };
        let op = match pick {
            // Now and then any instruction outside the jump classes (no loops: the
            // interpreter's budget counts instructions, the JIT's backward jumps), registers
            // past r10 included.
            16 if rng.below(4) == 0 => {
                let code = loop {
                    let c = rng.next() as u8;
                    if !matches!(c & 7, 5 | 6) {
                        break c;
                    }
                };
                let mut i = Insn::mov64_imm(R0, rng.next() as i32);
                i.code = code;
                i.dst = rng.below(12) as u8;
                i.src = rng.below(12) as u8;
                i.off = rng.below(64) as i16 - 32;
                vec![i]
            }
            16 => vec![Insn::mov64_imm(d, rng.below(256) as i32)],
            // A call of the callee with a pointer into this frame (patched later).
            15 => {
                calls.push(ops.len());
                vec![
                    Insn::mov64_reg(R1, R10),
                    Insn::alu64_imm(Alu::Add, R1, -8 * (1 + rng.below(4) as i32)),
                    Insn::call_raw(0),
                ]
            }
            0 => vec![Insn::mov64_imm(d, rng.next() as i32 >> rng.below(31))],
            1 | 2 => {
                let a = alu[rng.below(alu.len() as u64) as usize];
                let shift = matches!(a, Alu::Lsh | Alu::Rsh | Alu::Arsh);
                let imm = if shift {
                    rng.below(64) as i32
                } else {
                    rng.next() as i32 >> rng.below(31)
                };
                match rng.below(4) {
                    0 => vec![Insn::alu64_reg(a, d, s)],
                    1 => vec![Insn::alu64_imm(a, d, imm)],
                    2 => vec![Insn::alu32_imm(a, d, imm & if shift { 31 } else { -1 })],
                    _ => vec![Insn::alu32_reg(a, d, s)],
                }
            }
            // A frame pointer, sometimes out of the frame.
            3 => vec![
                Insn::mov64_reg(d, R10),
                Insn::alu64_imm(Alu::Add, d, -(rng.below(530) as i32) + 8),
            ],
            // A packet pointer.
            4 => vec![
                Insn::mov64_reg(d, nfcc_bpf::insn::R7),
                Insn::alu64_imm(Alu::Add, d, rng.below(80) as i32),
            ],
            // Stores and loads mostly through the frame or the packet, now and then through
            // whatever a register holds.
            5 => vec![Insn::stx(
                rng.size(),
                [R10, R10, R10, d][rng.below(4) as usize],
                -(rng.below(40) as i16) - 1,
                s,
            )],
            6 => vec![Insn::st(
                rng.size(),
                [R10, R10, R10, d][rng.below(4) as usize],
                -(rng.below(40) as i16) - 1,
                rng.next() as i32,
            )],
            7 => {
                let base = [R10, R10, nfcc_bpf::insn::R7, s][rng.below(4) as usize];
                let off = if base == R10 {
                    -(rng.below(40) as i16) - 1
                } else {
                    rng.below(40) as i16
                };
                vec![Insn::ldx(rng.size(), d, base, off)]
            }
            // Spill and reload through the frame.
            8 => {
                let at = -8 * (1 + rng.below(6) as i16);
                vec![
                    Insn::stx(Size::DW, R10, at, s),
                    Insn::ldx(Size::DW, d, R10, at),
                ]
            }
            // A lookup in a random map with a key on the stack; sometimes used unchecked.
            9 | 10 => {
                let mut v = vec![];
                v.extend(Insn::ld_map(R1, rng.below(4) as u32));
                v.push(Insn::mov64_reg(R2, R10));
                v.push(Insn::alu64_imm(Alu::Add, R2, -16 - 8 * rng.below(3) as i32));
                v.push(Insn::call(nfcc_bpf::Helper::MapLookupElem));
                if rng.below(3) > 0 {
                    v.push(Insn::jmp_imm(Jmp::Eq, R0, 0, 1));
                }
                if rng.below(2) == 0 {
                    v.push(Insn::ldx(rng.size(), d, R0, rng.below(10) as i16));
                } else {
                    v.push(Insn::stx(rng.size(), R0, rng.below(10) as i16, s));
                }
                v
            }
            11 => vec![Insn::atomic_add(
                [Size::W, Size::DW][rng.below(2) as usize],
                [R10, R10, R0, d][rng.below(4) as usize],
                -8 * (1 + rng.below(4) as i16),
                s,
            )],
            12 => vec![Insn::call(
                [
                    nfcc_bpf::Helper::KtimeGetNs,
                    nfcc_bpf::Helper::GetPrandomU32,
                ][rng.below(2) as usize],
            )],
            // A store through a pointer the analysis cannot follow (r10 & -1).
            13 => vec![
                Insn::mov64_reg(d, R10),
                Insn::alu64_imm(Alu::And, d, -1),
                Insn::stx(Size::DW, d, -8 * (1 + rng.below(6) as i16), s),
            ],
            _ => {
                let target = i + 1 + 1 + rng.below((n - i) as u64 + 1) as usize;
                jumps.push((ops.len(), 0usize, target.min(n + 1)));
                vec![Insn::jmp_imm(
                    [Jmp::Eq, Jmp::Ne, Jmp::Gt, Jmp::Set][rng.below(4) as usize],
                    d,
                    rng.below(8) as i32,
                    0,
                )]
            }
        };
        ops.push(op);
    }
    ops.push(vec![Insn::mov64_reg(R0, rng.reg()), Insn::exit()]);
    (ops, jumps, calls)
}

#[test]
fn random_programs_agree_on_the_interpreter_and_the_jit() {
    // `exec` runs each program on both engines and fails on any difference: verdict, bytes,
    // maps, or the kind of fault.
    let mut rng = Rng(0x6a09_e667_f3bc_c908);
    let (mut ok, mut faults) = (0, 0);
    // NFCC_JIT_FUZZ_PROGRAMS raises the count for a long hunt.
    let count: usize = std::env::var("NFCC_JIT_FUZZ_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    for _ in 0..count {
        let prog = random_program(&mut rng);
        let mut maps = [
            EmuMap::new("a", MapKind::Array, 4, 16, 4),
            EmuMap::new("h", MapKind::Hash, 8, 16, 4),
            EmuMap::new("l", MapKind::LruHash, 16, 16, 4),
            EmuMap::new("t", MapKind::LpmTrie, 8, 16, 4),
        ];
        for k in 0..3u64 {
            let _ = maps[1].update(&k.to_le_bytes(), &[k as u8; 16], 0);
            let _ = maps[2].update(&[k as u8; 16], &[7; 16], 0);
        }
        let _ = maps[3].update(&[0, 0, 0, 0, 0, 0, 0, 0], &[9; 16], 0);
        let frame: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
        match exec(&prog, ProgType::Xdp, &mut maps, &mut Env::default(), &frame) {
            Ok(_) => ok += 1,
            Err(_) => faults += 1,
        }
    }
    eprintln!("random programs: {ok} ran to exit and {faults} faulted alike on both engines");
    assert!(
        ok > 50 && faults > 50,
        "{ok} ran, {faults} faulted: too one-sided"
    );
}
