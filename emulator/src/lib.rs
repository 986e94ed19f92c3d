//! nfcc-emulator: runs XDP and TC ELF objects — nfcc's and ones clang built from C — in
//! userspace, with emulated maps and helpers, so a policy can be proven without a kernel.
//!
//! The object is read with aya-obj (BTF-defined and legacy maps, `.data`/`.rodata`/`.bss`
//! globals, bpf-to-bpf calls), its map references relocated to emulated maps, and each
//! program run by the interpreter in [`vm`] over a checked memory model. The caller controls
//! the clock (`bpf_ktime_get_ns`), the FIB (`bpf_fib_lookup`), the interface a frame arrives
//! on and the random numbers, so runs are deterministic.
//!
//! Why not built on rbpf (which runs beside it as an independent oracle, `nfcc-oracle`): rbpf's
//! interpreter works on host pointers, so the 32-bit `data`/`data_end`
//! fields of the XDP and TC contexts cannot hold them without rewriting every context load;
//! it checks only the start address of map-value accesses, and it has no atomic
//! instructions, which NIC code (statistics by atomic add) depends on. The interpreter here
//! has its own address space instead (see [`vm`]), checks every access whole, and implements
//! the full instruction set the kernel's verifier accepts for these program types.
//! [`jit`] compiles programs to native code with cranelift over the same machine state, for
//! speed; the interpreter stays the reference the JIT is tested against.
//! [`Profile::Nfp`] runs a program with the NIC's semantics: helpers the NIC lacks stop the
//! run, and `XDP_REDIRECT` becomes `XDP_ABORTED`. [`bare`] runs a program without an object
//! (the BPF conformance suite's tests) under [`Profile::Conformance`].

pub mod bare;
pub mod jit;
pub mod maps;
mod mem;
pub mod pcap;
pub mod vm;

use maps::{EmuMap, MapKind};
use std::collections::HashMap;
use vm::{Ins, RunOutput};

/// Where a program attaches, as far as its context goes: the kernel program type.
pub use nfcc_bpf::ProgType;

/// Which engine runs a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// The interpreter, the reference.
    Interpreter,
    /// Native code from the JIT.
    Jit,
}

/// Whose semantics a run has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// The host kernel.
    #[default]
    Host,
    /// A Netronome NIC's offload: only its helpers and atomics, no redirect.
    Nfp,
    /// The BPF conformance suite's runner, for bare programs ([`bare`]): r1 points at a block
    /// of memory and r2 holds its length instead of a context, helper 5 is the suite's
    /// `unwind`, and `callx` calls the helper whose id its register holds.
    Conformance,
}

/// A route of the FIB stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibRoute {
    /// The egress interface.
    pub ifindex: u32,
    /// Source MAC.
    pub smac: [u8; 6],
    /// Destination (next hop) MAC.
    pub dmac: [u8; 6],
}

/// What the caller controls about a run.
#[derive(Clone, Debug)]
pub struct Env {
    /// `bpf_ktime_get_ns`.
    pub clock_ns: u64,
    /// The interface the frame arrives on (`ingress_ifindex`, `skb->ifindex`).
    pub ifindex: u32,
    /// Its receive queue.
    pub rxq: u32,
    /// `skb->mark` on entry.
    pub mark: u32,
    /// Routes for `bpf_fib_lookup`, by destination (IPv4 as its 32-bit number).
    pub fib: HashMap<u128, FibRoute>,
    /// State of `bpf_get_prandom_u32` (xorshift; never zero).
    pub prandom: u64,
    /// Host or NIC semantics.
    pub profile: Profile,
}

impl Env {
    /// `bpf_get_prandom_u32`: the next number of the run's xorshift sequence.
    pub fn next_random(&mut self) -> u64 {
        let mut x = self.prandom;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.prandom = x;
        x & 0xffff_ffff
    }
}

impl Default for Env {
    fn default() -> Env {
        Env {
            clock_ns: 1_000_000_000,
            ifindex: 1,
            rxq: 0,
            mark: 0,
            fib: HashMap::new(),
            prandom: 0x9e37_79b9_7f4a_7c15,
            profile: Profile::Host,
        }
    }
}

/// Why an object could not be loaded or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// The ELF object could not be parsed.
    #[error("cannot read the object: {0}")]
    Parse(String),
    /// Map or call relocation failed.
    #[error("cannot relocate the object: {0}")]
    Relocate(String),
    /// A map of a kind the emulator lacks.
    #[error("map `{name}` has type {kind}, which the emulator does not implement")]
    MapKind {
        /// The map.
        name: String,
        /// Its kernel type number.
        kind: u32,
    },
    /// No program of that name.
    #[error("no program `{0}` in the object (it has: {1})")]
    NoProgram(String, String),
    /// A program type other than XDP or TC.
    #[error("program `{0}` is neither XDP nor TC; the emulator runs only those")]
    ProgramType(String),
    /// The program did something the kernel's verifier would have refused.
    #[error("instruction {insn}: {what}")]
    Fault {
        /// The instruction's index.
        insn: usize,
        /// What went wrong.
        what: String,
    },
    /// The run executed more instructions than the budget allows.
    #[error("the program ran more than {0} instructions")]
    Budget(u64),
    /// A helper the emulator does not implement.
    #[error("helper {0} is not emulated")]
    Helper(String),
    /// Under the NIC profile: something the NIC cannot do.
    #[error("the NIC cannot run this: {0}")]
    NicLacks(String),
    /// A map operation from the caller failed.
    #[error("map `{map}`: {source}")]
    Map {
        /// The map.
        map: String,
        /// Why.
        #[source]
        source: maps::MapError,
    },
    /// No map of that name.
    #[error("no map `{0}`")]
    NoMap(String),
    /// The JIT could not compile the program.
    #[error("the JIT cannot compile this program: {0}")]
    Jit(String),
}

/// The loaded programs, by name.
#[derive(Clone, Debug, Default)]
struct Programs(Vec<(String, Prog)>);

impl Programs {
    fn get(&self, name: &str) -> Option<&Prog> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Prog> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

/// A loaded program.
#[derive(Clone, Debug)]
struct Prog {
    hook: ProgType,
    insns: Vec<Ins>,
    /// Its native code, once the JIT compiled it (copies of the emulator share it).
    jit: Option<std::sync::Arc<jit::JitProgram>>,
}

/// An object loaded into the emulator: its programs and their maps.
#[derive(Clone, Debug)]
pub struct Emulator {
    /// Programs by name (an object holds a few: a scan beats hashing the name on every run).
    programs: Programs,
    /// Buffers reused from run to run.
    bufs: vm::Buffers,
    maps: Vec<EmuMap>,
    /// What runs see; change it between runs (clock, FIB, interface, profile).
    pub env: Env,
}

impl Emulator {
    /// Loads every XDP and TC program of an ELF object, with fresh maps (globals initialised
    /// from their sections).
    pub fn load(object: &[u8]) -> Result<Emulator, EmuError> {
        // e_machine 247 is EM_BPF; anything else is some other architecture's object.
        match object.get(..20) {
            Some(h) if h.starts_with(b"\x7fELF") && u16::from_le_bytes([h[18], h[19]]) != 247 => {
                return Err(EmuError::Parse(format!(
                    "an ELF file for machine {}, not eBPF (247); compile with `clang -target bpf`",
                    u16::from_le_bytes([h[18], h[19]])
                )))
            }
            _ => {}
        }
        let mut obj = aya_obj::Object::parse(object).map_err(|e| EmuError::Parse(e.to_string()))?;
        let mut names: Vec<String> = obj.maps.keys().cloned().collect();
        names.sort();
        let defs = obj.maps.clone();
        let mut maps = Vec::new();
        for name in &names {
            let m = &defs[name];
            let kind = MapKind::from_type(m.map_type()).ok_or_else(|| EmuError::MapKind {
                name: name.clone(),
                kind: m.map_type(),
            })?;
            let mut em = EmuMap::new(
                name,
                kind,
                m.key_size() as usize,
                m.value_size() as usize,
                m.max_entries() as usize,
            );
            let data = m.data();
            if !data.is_empty() && kind == MapKind::Array {
                let n = data.len().min(em.slab.len());
                em.slab[..n].copy_from_slice(&data[..n]);
            }
            maps.push(em);
        }
        // The set type follows aya-obj's features (std or hashbrown), so it is inferred.
        let text_sections = obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_maps(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as i32, &defs[n])),
            &text_sections,
        )
        .map_err(|e| EmuError::Relocate(e.to_string()))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| EmuError::Relocate(e.to_string()))?;
        let mut programs = Programs::default();
        for (name, p) in &obj.programs {
            let hook = match p.section {
                aya_obj::ProgramSection::Xdp { .. } => ProgType::Xdp,
                aya_obj::ProgramSection::SchedClassifier => ProgType::Tc,
                _ => continue,
            };
            let Some(f) = obj.functions.get(&p.function_key()) else {
                continue;
            };
            let insns = f
                .instructions
                .iter()
                .map(|i| Ins {
                    code: i.code,
                    dst: i.dst_reg(),
                    src: i.src_reg(),
                    off: i.off,
                    imm: i.imm,
                })
                .collect();
            programs.0.push((
                name.clone(),
                Prog {
                    hook,
                    insns,
                    jit: None,
                },
            ));
        }
        Ok(Emulator {
            programs,
            bufs: vm::Buffers::default(),
            maps,
            env: Env::default(),
        })
    }

    /// The names of the programs, sorted.
    pub fn programs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.programs.0.iter().map(|(n, _)| n.clone()).collect();
        v.sort();
        v
    }

    /// A program's type and its instructions as loaded: map references relocated to
    /// `ld_imm64` with source 1 (the map's index in [`Emulator::maps_mut`]) or 2 (that map's
    /// value, the offset in the second half), bpf-to-bpf calls resolved. For other executors
    /// of the same object and maps (the rbpf oracle).
    pub fn program_code(&self, program: &str) -> Option<(ProgType, &[Ins])> {
        self.programs
            .get(program)
            .map(|p| (p.hook, p.insns.as_slice()))
    }

    /// The maps, in the order programs refer to them. Their slabs never move while the
    /// emulator lives, so a value's address stays valid between runs; keep the order.
    pub fn maps_mut(&mut self) -> &mut Vec<EmuMap> {
        &mut self.maps
    }

    /// The hook a program attaches to.
    pub fn hook(&self, program: &str) -> Option<ProgType> {
        self.programs.get(program).map(|p| p.hook)
    }

    /// Runs `program` on `frame` (from its Ethernet header) with the current [`Env`].
    pub fn run(&mut self, program: &str, frame: &[u8]) -> Result<RunOutput, EmuError> {
        self.run_ref(program, frame, Runner::Interpreter)
            .map(|r| r.to_output())
    }

    /// Runs `program` on `frame` as native code from the JIT (compiled on first use), over the
    /// same checked machine as [`Emulator::run`].
    pub fn run_jit(&mut self, program: &str, frame: &[u8]) -> Result<RunOutput, EmuError> {
        self.run_ref(program, frame, Runner::Jit)
            .map(|r| r.to_output())
    }

    /// Runs `program` on `frame` once on the interpreter or the JIT, leaving the output packet
    /// in the emulator's buffers: the result borrows it until the next run. The fastest way
    /// to run packets when the output is looked at rather than kept.
    pub fn run_ref(
        &mut self,
        program: &str,
        frame: &[u8],
        runner: Runner,
    ) -> Result<vm::RunRef<'_>, EmuError> {
        self.run_times(program, frame, 1, runner)
    }

    /// Runs `program` on `frame` `repeat` times on one prepared machine, on the interpreter or
    /// the JIT, as `BPF_PROG_TEST_RUN` does with its repeat count: the frame is restored before
    /// each run, the maps and the clock carry over, and the output is the last run's. For
    /// timing the program itself apart from a run's setup.
    pub fn run_repeat(
        &mut self,
        program: &str,
        frame: &[u8],
        repeat: u32,
        runner: Runner,
    ) -> Result<RunOutput, EmuError> {
        self.run_times(program, frame, repeat.max(1), runner)
            .map(|r| r.to_output())
    }

    /// The runs behind all of the above: one program lookup, the JIT compiled on first use.
    fn run_times(
        &mut self,
        program: &str,
        frame: &[u8],
        repeat: u32,
        runner: Runner,
    ) -> Result<vm::RunRef<'_>, EmuError> {
        let found = self.programs.0.iter().position(|(n, _)| n == program);
        if let Some(i) = found {
            if runner == Runner::Jit && self.programs.0[i].1.jit.is_none() {
                self.jit_compile(program)?;
            }
        }
        let Some(p) = found.map(|i| &self.programs.0[i].1) else {
            return Err(EmuError::NoProgram(
                program.to_string(),
                self.programs().join(", "),
            ));
        };
        // Borrowed, not cloned: an `Arc` clone is two atomic operations per packet.
        let code = match runner {
            Runner::Jit => p.jit.as_deref(),
            Runner::Interpreter => None,
        };
        let o = vm::run_core(
            &p.insns,
            p.hook,
            &mut self.maps,
            &mut self.env,
            frame,
            &mut self.bufs,
            repeat,
            #[inline(always)]
            |m| match code {
                Some(c) => c.exec(m),
                None => m.exec(),
            },
        )?;
        Ok(o.view(&self.bufs))
    }

    /// Compiles `program` with the JIT now (copies of this emulator share the code).
    pub fn jit_compile(
        &mut self,
        program: &str,
    ) -> Result<std::sync::Arc<jit::JitProgram>, EmuError> {
        let shapes: Vec<jit::MapShape> = self.maps.iter().map(jit::MapShape::of).collect();
        let names = self.programs().join(", ");
        let Some(p) = self.programs.get_mut(program) else {
            return Err(EmuError::NoProgram(program.to_string(), names));
        };
        if let Some(c) = &p.jit {
            return Ok(c.clone());
        }
        let c = std::sync::Arc::new(
            jit::JitProgram::compile(&p.insns, &shapes)
                .map_err(|e| EmuError::Jit(e.to_string()))?,
        );
        p.jit = Some(c.clone());
        Ok(c)
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut EmuMap, EmuError> {
        self.maps
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| EmuError::NoMap(name.to_string()))
    }

    /// Per-rule packet counts (rules, then the default) of an nfcc policy compiled as
    /// `program`, read from its statistics map (`nfcc_bpf::layout`) — how engines learn the
    /// deciding rule, as `nfcc_runtime::Loaded::rule_counts` does in the kernel.
    pub fn rule_counts(&mut self, program: &str, rules: usize) -> Result<Vec<u64>, EmuError> {
        let map = nfcc_bpf::layout::stats_map_name(program);
        (0..=rules as u32)
            .map(|slot| {
                Ok(self
                    .map_lookup(&map, &slot.to_le_bytes())?
                    .map_or(0, |v| nfcc_bpf::layout::Counts::sum(&v).packets))
            })
            .collect()
    }

    /// Clears the deciding-slot word of an nfcc policy's packet vector (compiled as
    /// `program`) before a run; see [`Emulator::decided`].
    pub fn clear_decided(&mut self, program: &str) -> Result<bool, EmuError> {
        let map = nfcc_bpf::layout::scratch_map_name(program);
        if !self.maps.iter().any(|m| m.name == map) {
            return Ok(false);
        }
        let Some(mut v) = self.map_lookup(&map, &0u32.to_le_bytes())? else {
            return Ok(false);
        };
        let at = nfcc_bpf::layout::DECIDED_OFFSET;
        v[at..at + 4].copy_from_slice(&nfcc_bpf::layout::UNDECIDED.to_le_bytes());
        self.map_update(&map, &0u32.to_le_bytes(), &v)?;
        Ok(true)
    }

    /// The statistics slot the last run of an nfcc policy decided with, from its packet
    /// vector (`nfcc_bpf::layout::DECIDED_OFFSET`; `None` for policies without a vector, or
    /// when the run did not reach the statistics).
    pub fn decided(&mut self, program: &str) -> Result<Option<u32>, EmuError> {
        let map = nfcc_bpf::layout::scratch_map_name(program);
        if !self.maps.iter().any(|m| m.name == map) {
            return Ok(None);
        }
        Ok(self
            .map_lookup(&map, &0u32.to_le_bytes())?
            .and_then(|v| nfcc_bpf::layout::decided(&v, v.len())))
    }

    /// `name[key]`, if present (per-CPU maps: the one emulated CPU's value).
    pub fn map_lookup(&mut self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, EmuError> {
        Ok(self.map_mut(name)?.lookup(key))
    }

    /// `name[key] = value` (`BPF_ANY`).
    pub fn map_update(&mut self, name: &str, key: &[u8], value: &[u8]) -> Result<(), EmuError> {
        let m = self.map_mut(name)?;
        m.update(key, value, 0)
            .map(|_| ())
            .map_err(|source| EmuError::Map {
                map: name.to_string(),
                source,
            })
    }

    /// Removes `name[key]`.
    pub fn map_delete(&mut self, name: &str, key: &[u8]) -> Result<(), EmuError> {
        let m = self.map_mut(name)?;
        m.delete(key).map_err(|source| EmuError::Map {
            map: name.to_string(),
            source,
        })
    }

    /// Records a ring buffer or perf event array received, oldest first.
    pub fn records(&mut self, name: &str) -> Result<Vec<Vec<u8>>, EmuError> {
        Ok(self.map_mut(name)?.records.clone())
    }
}
