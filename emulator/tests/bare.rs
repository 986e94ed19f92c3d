//! Bare programs (the conformance suite's runner, `nfcc_emulator::bare`) on hand-written
//! programs, each on the interpreter and the JIT: the memory block in r1 and its length in r2,
//! the suite's `unwind` helper, `callx` — and `callx` still refused in objects' runs. Each
//! test pins behaviour the conformance suite found missing (`mem-len`, `call_unwind_fail`,
//! `callx`, and every `-- mem` test).

use nfcc_bpf::insn::{Alu, Insn, Jmp, Size, R0, R1, R2, R6};
use nfcc_emulator::vm::{run, Ins, UNWIND};
use nfcc_emulator::{bare, EmuError, Env, ProgType, Runner};

/// r0 on both engines, which must agree.
fn both(prog: &[Insn], mem: &[u8]) -> Result<u64, String> {
    let a = bare::run(prog, mem, Runner::Interpreter).map_err(|e| e.to_string());
    let b = bare::run(prog, mem, Runner::Jit).map_err(|e| e.to_string());
    assert_eq!(a, b, "interpreter and JIT differ on {prog:?}");
    a
}

fn call(id: i32) -> Insn {
    Insn::call_raw(id)
}

/// `call %rN`: class JMP, op CALL, source X, the register in `dst`.
fn callx(r: u8) -> Insn {
    Insn {
        code: 0x8d,
        dst: r,
        ..Insn::default()
    }
}

#[test]
fn memory_is_in_r1_and_its_length_in_r2() {
    let len = [Insn::mov64_reg(R0, R2), Insn::exit()];
    assert_eq!(both(&len, &[0; 8]), Ok(8));
    // No memory: both are 0.
    let r1 = [Insn::mov64_reg(R0, R1), Insn::exit()];
    assert_eq!(both(&r1, &[]), Ok(0));
    assert_eq!(both(&len, &[]), Ok(0));
    // Loads and stores through r1, with pointer arithmetic over the block.
    let prog = [
        Insn::ldx(Size::H, R0, R1, 2),
        Insn::alu64_imm(Alu::Add, R1, 4),
        Insn::st(Size::B, R1, 0, 0x7f),
        Insn::ldx(Size::B, R2, R1, 0),
        Insn::alu64_reg(Alu::Add, R0, R2),
        Insn::exit(),
    ];
    assert_eq!(both(&prog, &[0, 0, 0x34, 0x12, 0, 0]), Ok(0x1234 + 0x7f));
    // Past the block's end is a fault, on both engines.
    let past = [Insn::ldx(Size::W, R0, R1, 2), Insn::exit()];
    assert!(both(&past, &[0; 4]).is_err_and(|e| e.contains("instruction 0")));
}

#[test]
fn unwind_returns_its_argument_and_stops_the_run_on_zero() {
    let go_on = [
        Insn::mov64_imm(R1, -1),
        call(UNWIND),
        Insn::mov64_imm(R0, 2),
        Insn::exit(),
    ];
    assert_eq!(both(&go_on, &[]), Ok(2));
    let stop = [
        Insn::mov64_imm(R1, 0),
        call(UNWIND),
        Insn::mov64_imm(R0, 2),
        Insn::exit(),
    ];
    assert_eq!(both(&stop, &[]), Ok(0));
    // From inside a bpf-to-bpf callee too: the whole program stops.
    let nested = [
        Insn::mov64_imm(R6, 7),
        Insn { src: 1, ..call(3) },
        Insn::mov64_imm(R0, 3),
        Insn::exit(),
        Insn::exit(),
        Insn::mov64_imm(R1, 0),
        call(UNWIND),
        Insn::mov64_imm(R0, 9),
        Insn::exit(),
    ];
    assert_eq!(both(&nested, &[]), Ok(0));
    // Another helper is not the runner's.
    let other = [call(1), Insn::exit()];
    assert!(both(&other, &[]).is_err_and(|e| e.contains("unwind")));
}

#[test]
fn callx_calls_the_helper_its_register_names() {
    let prog = [
        Insn::mov64_imm(R1, -1),
        Insn::mov64_imm(R2, UNWIND),
        callx(2),
        Insn::jmp_imm(Jmp::Ne, R0, -1, 2),
        Insn::mov64_imm(R0, 2),
        Insn::exit(),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    assert_eq!(both(&prog, &[]), Ok(2));
}

#[test]
fn callx_is_refused_in_an_objects_run_as_the_verifier_refuses_it() {
    let prog: Vec<Ins> = [Insn::mov64_imm(R2, 5), callx(2), Insn::exit()]
        .iter()
        .map(|i| Ins::decode(&i.encode()))
        .collect();
    let interp = run(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 64]);
    let jit = nfcc_emulator::jit::run(&prog, ProgType::Xdp, &mut [], &mut Env::default(), &[0; 64]);
    for r in [interp, jit] {
        match r {
            Err(EmuError::Fault { insn: 1, what }) => assert!(what.contains("callx"), "{what}"),
            other => panic!("expected a fault at instruction 1, got {other:?}"),
        }
    }
}
