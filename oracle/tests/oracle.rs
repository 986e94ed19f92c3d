//! The rbpf engine on its own: conformance-format programs through `run_bare` (memory, its
//! length, `unwind`), the refusals of `limitation` — each proven necessary against rbpf itself
//! — and nfcc policies, XDP and TC, run on rbpf and on the emulator's interpreter over copies
//! of the same maps: return value, packet, mark and maps must agree.

use nfcc_dsl::checked::{Program, Target};
use nfcc_dsl::testing::frame_from_literal;
use nfcc_emulator::Emulator;
use nfcc_oracle::{run_bare, OracleError, RbpfProgram};

/// What a bare run should give.
#[derive(Debug)]
enum Expect {
    R0(u64),
    /// Refused: instruction index and the start of the reason.
    Refused(usize, &'static str),
}

fn check_bare(asm: &str, mem: &[u8], expect: Expect) {
    let t = nfcc_bpf::conformance::parse(&format!("-- asm\n{asm}\n-- result\n0x0\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let program = t.program().unwrap_or_else(|e| panic!("{e}"));
    let got = run_bare(&program, mem);
    match (&got, &expect) {
        (Ok(v), Expect::R0(want)) if v == want => {}
        (Err(OracleError::Unsupported { insn, what }), Expect::Refused(at, why))
            if insn == at && what.starts_with(why) => {}
        _ => panic!("{asm}: expected {expect:?}, got {got:?}"),
    }
}

#[test]
fn bare_programs_see_their_memory_and_its_length() {
    check_bare("mov %r0, %r2\nexit", &[1, 2, 3], Expect::R0(3));
    check_bare("ldxb %r0, [%r1+2]\nexit", &[1, 2, 3], Expect::R0(3));
    // `unwind` with 0 stops the program with r0 = 0; with anything else it returns it.
    check_bare("mov %r1, 0\ncall 5\nmov %r0, 7\nexit", &[], Expect::R0(0));
    check_bare("mov %r1, 9\ncall 5\nadd %r0, 1\nexit", &[], Expect::R0(10));
    // Jumps keep their targets across the instructions `unwind` adds.
    check_bare(
        "mov %r1, 4\ncall 5\nja +1\nmov %r0, 0\nexit",
        &[],
        Expect::R0(4),
    );
}

#[test]
fn instructions_rbpf_lacks_are_refused_with_their_index() {
    check_bare(
        "mov %r0, 1\nlock add [%r10-8], %r0\nexit",
        &[],
        Expect::Refused(1, "atomic"),
    );
    check_bare(
        "mov %r0, 1\nsdiv %r0, 1\nexit",
        &[],
        Expect::Refused(1, "signed division"),
    );
    check_bare(
        "mov %r0, 1\nbswap16 %r0\nexit",
        &[],
        Expect::Refused(1, "unconditional byte swaps"),
    );
    check_bare(
        "mov %r1, -1\njeq %r1, -1, +2\nmov %r0, 0\nexit\nmov %r0, 1\nexit",
        &[],
        Expect::Refused(1, "64-bit comparisons with a negative immediate"),
    );
}

/// The negative-immediate refusal is needed: rbpf itself, given the program unchanged, takes
/// the wrong branch (the kernel's verifier and the emulator take the jump).
#[test]
fn rbpf_compares_negative_immediates_zero_extended() {
    let t = nfcc_bpf::conformance::parse(
        "-- asm\nmov %r1, -1\njeq %r1, -1, +2\nmov %r0, 0\nexit\nmov %r0, 1\nexit\n-- result\n0x1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let program = t.program().unwrap_or_else(|e| panic!("{e}"));
    let code: Vec<u8> = program.iter().flat_map(|i| i.encode()).collect();
    let vm = rbpf::EbpfVmNoData::new(Some(&code)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        vm.execute_program().ok(),
        Some(0),
        "rbpf was fixed: drop the limitation"
    );
    let emulated = nfcc_emulator::bare::run(&program, &[], nfcc_emulator::Runner::Interpreter);
    assert_eq!(emulated.ok(), Some(1));
}

fn compile(src: &str, target: Target) -> Vec<u8> {
    let (p, diags) = nfcc_dsl::check_source(
        src,
        &nfcc_dsl::CheckOptions {
            target: Some(target),
        },
    );
    let p: Program = p.unwrap_or_else(|| panic!("does not check: {diags:?}"));
    nfcc_compiler::compile::compile(&p, "t.nf", src, Some(target))
        .unwrap_or_else(|e| panic!("{e:?}"))
        .object
}

/// Runs every frame on rbpf and on the interpreter over copies of one emulator: the results
/// and then the maps must agree.
fn check_agrees(src: &str, program: &str, frames: &[&str]) {
    let emu = Emulator::load(&compile(src, Target::Host)).unwrap_or_else(|e| panic!("{e}"));
    let rbpf = RbpfProgram::new(&emu, program).unwrap_or_else(|e| panic!("{e}"));
    let (mut a, mut b) = (emu.clone(), emu);
    for lit in frames {
        let f = frame_from_literal(lit).unwrap_or_else(|e| panic!("{e}"));
        let want = a.run(program, &f).unwrap_or_else(|e| panic!("{lit}: {e}"));
        let got = rbpf
            .run(&mut b, &f)
            .unwrap_or_else(|e| panic!("{lit}: {e}"));
        assert_eq!(
            (got.retval, &got.data, got.mark, got.redirect),
            (want.retval, &want.data, want.mark, want.redirect),
            "{lit}"
        );
    }
    let stats = nfcc_bpf::layout::stats_map_name(program);
    for slot in 0u32..4 {
        let key = slot.to_le_bytes();
        assert_eq!(
            a.map_lookup(&stats, &key).ok(),
            b.map_lookup(&stats, &key).ok()
        );
    }
}

#[test]
fn xdp_and_tc_policies_agree_with_the_interpreter() {
    check_agrees(
        "policy p on xdp {\n  set bad: ipv4 prefix = { 192.0.2.0/24 }\n  rule b: ip.src in bad => drop\n  \
         rule d: udp.dport == 53 => set ip.ttl = 9, pass\n  default pass\n}\n",
        "p",
        &[
            "ipv4(src=192.0.2.7) / udp(dport=53)",
            "ipv4(src=198.51.100.1) / udp(dport=53)",
            "ipv6() / tcp(dport=22)",
            "eth()",
        ],
    );
    check_agrees(
        "policy t on tc ingress {\n  rule m: tcp.dport == 22 => mark 7, pass\n  default drop\n}\n",
        "t",
        &["ipv4() / tcp(dport=22)", "ipv4() / tcp(dport=23)"],
    );
}

#[test]
fn nic_code_is_refused_for_its_atomics() {
    let src =
        "policy n on xdp offload nfp {\n  rule r: udp.dport == 53 => drop\n  default pass\n}\n";
    let emu = Emulator::load(&compile(src, Target::Nfp)).unwrap_or_else(|e| panic!("{e}"));
    match RbpfProgram::new(&emu, "n") {
        Err(OracleError::Unsupported { what, .. }) => assert!(what.starts_with("atomic"), "{what}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
