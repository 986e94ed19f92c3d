//! `nfcc`: the command line. Thin by design: every command parses its arguments and calls into
//! the crates, which hold all the logic and all the tests.
//!
//! Exit codes (section 9 of the language reference): 0 success, 1 the input was wrong
//! (diagnostics printed), 2 the environment refused (including a command this build cannot
//! do yet, said in words), 3 a test or check failed.

/// Writes a line to standard output, ignoring a closed pipe (`nfcc ... | head` must not
/// panic the way `println!` does when the reader goes away).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like [`say!`] without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod bench;
mod commands;
mod deploy;
mod offload;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Compile, test and deploy .nf packet policies as eBPF.
#[derive(Parser, Debug)]
#[command(name = "nfcc", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Engines `nfcc run` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunEngineArg {
    /// The emulator.
    Emulator,
    /// The emulator's JIT (native code; the fastest engine for long captures).
    Jit,
    /// The kernel's BPF_PROG_TEST_RUN.
    Kernel,
    /// The reference evaluator (.nf input only).
    Eval,
}

/// Baselines of `nfcc bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BaselineArg {
    /// XDP drop-all in C.
    Drop,
    /// The equivalent hand-written C programs.
    C,
    /// nftables netdev ingress with the same rules.
    Nft,
}

/// Attach modes for `nfcc load`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// XDP in the driver.
    Native,
    /// XDP in the generic path.
    Generic,
    /// TC ingress.
    TcIngress,
    /// TC egress.
    TcEgress,
    /// XDP offloaded to a SmartNIC.
    Offload,
}

/// Emulator semantics for `nfcc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The host kernel.
    Host,
    /// A Netronome NIC's BPF offload.
    Nfp,
}

/// Deployment targets.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    /// The host kernel (XDP or TC).
    Host,
    /// Netronome NFP BPF offload.
    Nfp,
}

/// Engines that can run test blocks.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineArg {
    /// The reference evaluator (no compilation).
    Eval,
    /// The compiled program on nfcc's emulator (no kernel, no privileges).
    Emulator,
    /// The compiled program as native code from nfcc's cranelift JIT.
    Jit,
    /// The compiled program in the kernel (BPF_PROG_TEST_RUN).
    Kernel,
    /// Emulator and kernel, each held to the evaluator packet by packet.
    Both,
    /// Evaluator, emulator, JIT and kernel.
    All,
    /// The real path: each packet sent into a veth testbed where the policy runs in native
    /// XDP, its fate observed from outside and held to the evaluator (root).
    Testbed,
}

/// What `compile` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitArg {
    /// A BPF ELF object.
    Elf,
    /// The disassembled instructions.
    Asm,
    /// The match-action IR.
    Ir,
}

/// How `import classbench` assigns actions.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionsArg {
    /// Every rule drops.
    Drop,
    /// Rule i drops when i is even and passes when odd, so rule order matters.
    Alternate,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and check policies; print diagnostics; exit 1 on error.
    Check {
        /// The .nf files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check against a target's limits (overrides a policy's `offload` clause).
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Print one line per diagnostic instead of the source excerpt.
        #[arg(long)]
        short: bool,
    },
    /// Run the embedded tests of policies.
    Test {
        /// The .nf files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Which engine runs the packets.
        #[arg(long, value_enum, default_value = "emulator")]
        engine: EngineArg,
        /// Print every test, not only failures.
        #[arg(long, short)]
        verbose: bool,
        /// Also write the results as JUnit XML (for CI systems).
        #[arg(long, value_name = "OUT.xml")]
        junit: Option<PathBuf>,
    },
    /// Write a BPF ELF object for a policy.
    Compile {
        /// The .nf file.
        file: PathBuf,
        /// Where to write (`-` for standard output; default: the .nf path with .o, .s or .ir).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Target.
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// What to write: the ELF object, its disassembly, or the IR text.
        #[arg(long, value_enum, default_value = "elf")]
        emit: EmitArg,
        /// Print instruction count, stack, maps and (where the kernel allows) the verifier's
        /// processed instructions.
        #[arg(long)]
        stats: bool,
        /// With `--target nfp`: write the NIC stage and the host stage of the split as
        /// OUT.nic.o and OUT.host.o (see `nfcc offload-check`).
        #[arg(long)]
        split: bool,
        /// With --split: the policy to split when the file holds several.
        #[arg(long)]
        policy: Option<String>,
    },
    /// Run packets from a pcap through a policy or object.
    Run {
        /// The .nf file or BPF object (.o).
        file: PathBuf,
        /// Input pcap (classic libpcap, Ethernet).
        #[arg(long)]
        pcap: PathBuf,
        /// The engine: the emulator (no privileges), its JIT (the same, as native code), the
        /// kernel (BPF_PROG_TEST_RUN), or the reference evaluator (.nf only).
        #[arg(long, value_enum, default_value = "emulator")]
        engine: RunEngineArg,
        /// Write the packets the program lets out (pass, tx, redirect), as emitted.
        #[arg(long, value_name = "OUT.pcap")]
        out: Option<PathBuf>,
        /// Write one JSON line per packet: index, verdict, rule (.nf input), length.
        #[arg(long, value_name = "OUT.jsonl")]
        verdicts: Option<PathBuf>,
        /// The policy (or program) to run when the file holds several.
        #[arg(long)]
        policy: Option<String>,
        /// Run with a NIC's semantics on the emulator (helpers it lacks stop the run, redirect
        /// becomes abort); a policy marked `offload nfp` gets this by default.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
    },
    /// Verify, load and attach a policy on an interface.
    Load {
        /// The .nf file or object.
        file: PathBuf,
        /// The interface.
        #[arg(long)]
        iface: String,
        /// How to attach (default: native for xdp, the policy's hook for tc).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// The policy (or program) to load when the file holds several.
        #[arg(long)]
        policy: Option<String>,
        /// Swap a new version of the policy already on the interface in one step, carrying its
        /// dynamic sets and counters over.
        #[arg(long)]
        replace: bool,
    },
    /// Detach and unpin the policy of an interface.
    Unload {
        /// The interface.
        #[arg(long)]
        iface: String,
    },
    /// List what is loaded where.
    Status,
    /// Per-rule packets, bytes and rates of a loaded policy.
    Stats {
        /// The policy.
        policy: String,
        /// Refresh every second, busiest rules first, until interrupted.
        #[arg(long)]
        watch: bool,
        /// One JSON array of rules.
        #[arg(long)]
        json: bool,
    },
    /// Change a dynamic set of a loaded policy.
    Set {
        /// add, del or list.
        op: String,
        /// The policy.
        policy: String,
        /// The set.
        set: String,
        /// The values (add and del take one or more).
        values: Vec<String>,
        /// Also take values from this file, one per line (`-`: standard input; `#` comments
        /// and blank lines skipped). All values are checked before any is applied.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Print sampled packets of a loaded policy.
    Watch {
        /// The policy.
        policy: String,
        /// Also write the sampled frames to a pcap file.
        #[arg(long, value_name = "OUT.pcap")]
        pcap: Option<std::path::PathBuf>,
        /// Stop after this many samples (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Measure Mpps on a veth/netns testbed, next to baselines measured in the same run.
    Bench {
        /// The .nf file (not needed with --sweep).
        #[arg(required_unless_present = "sweep")]
        file: Option<PathBuf>,
        /// Instead of one policy: Mpps of a blocklist from 10 to 1,000,000 entries and of a
        /// ClassBench ACL from 1 to 10,000 rules.
        #[arg(long)]
        sweep: bool,
        /// The ClassBench filter set for the ACL sweep.
        #[arg(
            long,
            value_name = "FILTERS",
            default_value = "../shared/bench-data/classbench/acl1_10k"
        )]
        filters: PathBuf,
        /// Also draw the results as an SVG chart.
        #[arg(long, value_name = "OUT.svg")]
        plot: Option<PathBuf>,
        /// The policy to measure when the file holds several.
        #[arg(long)]
        policy: Option<String>,
        /// Traffic: the frames of this pcap, cycled (default: the frames of the policy's test
        /// blocks).
        #[arg(long, value_name = "TRAFFIC.pcap")]
        pcap: Option<PathBuf>,
        /// How the policy is attached (only native XDP so far).
        #[arg(long, value_enum, default_value = "native")]
        mode: ModeArg,
        /// Sending time of each run.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Runs per subject (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Baselines to measure in the same run (repeatable; default: all three).
        #[arg(long, value_enum)]
        baseline: Vec<BaselineArg>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Say which rules can run on a NIC.
    OffloadCheck {
        /// The .nf file.
        file: PathBuf,
        /// The NIC target.
        #[arg(long, value_enum, default_value = "nfp")]
        target: TargetArg,
        /// A card's firmware limits (TOML: `max_insns = 8192` and the like) over the target's
        /// conservative defaults.
        #[arg(long, value_name = "CARD.toml")]
        profile: Option<PathBuf>,
        /// The policy to check when the file holds several.
        #[arg(long)]
        policy: Option<String>,
        /// Generated packets the split is checked on (besides the test packets).
        #[arg(long, default_value_t = 100_000)]
        packets: usize,
    },
    /// Write a .nf policy from another rule format.
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
}

#[derive(Subcommand, Debug)]
enum ImportFormat {
    /// A ClassBench filter set (`@src/len dst/len slo : shi dlo : dhi proto/mask flags/mask`).
    Classbench {
        /// The filter set.
        file: PathBuf,
        /// How rules get their actions.
        #[arg(long, value_enum, default_value = "drop")]
        actions: ActionsArg,
        /// The policy's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check {
            files,
            target,
            deny_warnings,
            short,
        } => commands::check(&files, target, deny_warnings, short),
        Command::Test {
            files,
            engine,
            verbose,
            junit,
        } => commands::test(&files, engine, verbose, junit.as_deref()),
        Command::Import {
            format:
                ImportFormat::Classbench {
                    file,
                    actions,
                    name,
                    output,
                },
        } => commands::import_classbench(&file, actions, name, output),
        Command::Compile {
            file,
            output,
            target,
            emit,
            stats,
            split,
            policy,
        } => {
            if split {
                offload::split_compile(&file, output, target, policy.as_deref())
            } else {
                commands::compile(&file, output, target, emit, stats)
            }
        }
        Command::Run {
            file,
            pcap,
            engine,
            out,
            verdicts,
            policy,
            profile,
        } => run::run(&run::RunArgs {
            file,
            pcap,
            engine,
            out,
            verdicts,
            policy,
            nic: profile == Some(ProfileArg::Nfp),
        }),
        Command::Load {
            file,
            iface,
            mode,
            policy,
            replace,
        } => deploy::load(&file, &iface, mode, policy.as_deref(), replace),
        Command::Unload { iface } => deploy::unload(&iface),
        Command::Status => deploy::status(),
        Command::Stats {
            policy,
            watch,
            json,
        } => deploy::stats(&policy, json, watch),
        Command::Set {
            op,
            policy,
            set,
            values,
            from,
        } => deploy::set(&op, &policy, &set, values, from.as_deref()),
        Command::Watch {
            policy,
            pcap,
            count,
        } => deploy::watch(&policy, pcap.as_deref(), count),
        Command::Bench {
            file,
            sweep,
            filters,
            plot,
            policy,
            pcap,
            mode,
            seconds,
            runs,
            baseline,
            json,
        } => bench::bench(&bench::BenchArgs {
            file,
            sweep,
            filters,
            plot,
            policy,
            pcap,
            mode,
            seconds,
            runs,
            baselines: baseline,
            json,
        }),
        Command::OffloadCheck {
            file,
            target,
            profile,
            policy,
            packets,
        } => offload::check(&offload::CheckArgs {
            file,
            target: match target {
                TargetArg::Nfp => "nfp".into(),
                TargetArg::Host => "host".into(),
            },
            profile,
            policy,
            packets,
        }),
    };
    ExitCode::from(code)
}
