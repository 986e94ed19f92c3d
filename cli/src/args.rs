//! The command line's shape: subcommands and their arguments (clap derive). Requests the
//! driver defines (`LoadRequest`, the engine and mode enums) are used as they are.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nfcc_driver::bench::{BaselineChoice, GeneratorChoice};
use nfcc_driver::compile::Emit;
use nfcc_driver::conformance::ConformanceEngine;
use nfcc_driver::deploy::{LoadRequest, Mode};
use nfcc_driver::engine::EngineChoice;
use nfcc_driver::pools::PoolOp;
use nfcc_driver::run::RunEngine;
use nfcc_driver::sets::SetOp;
use std::path::PathBuf;

/// Compile, test and deploy .nf packet policies as eBPF.
#[derive(Parser, Debug)]
#[command(name = "nfcc", version, about, max_term_width = 100)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Deployment targets.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    /// The host kernel (XDP or TC).
    Host,
    /// Netronome NFP BPF offload.
    Nfp,
}

impl TargetArg {
    /// The checker's target.
    pub fn target(self) -> nfcc_driver::dsl::checked::Target {
        match self {
            TargetArg::Host => nfcc_driver::dsl::checked::Target::Host,
            TargetArg::Nfp => nfcc_driver::dsl::checked::Target::Nfp,
        }
    }

    /// The offload profile's name.
    pub fn name(self) -> &'static str {
        match self {
            TargetArg::Host => "host",
            TargetArg::Nfp => "nfp",
        }
    }
}

/// Emulator semantics for `nfcc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The host kernel.
    Host,
    /// A Netronome NIC's BPF offload.
    Nfp,
}

/// `nfcc check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The .nf files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Check against a target's limits (overrides a policy's `offload` clause).
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print one line per diagnostic instead of the source excerpt.
    #[arg(long)]
    pub short: bool,
}

/// `nfcc test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// The .nf files, or objects `nfcc compile` wrote (their test blocks run on the object).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Which engine runs the packets.
    #[arg(long, value_enum, default_value = "emulator")]
    pub engine: EngineChoice,
    /// Print every test, not only failures.
    #[arg(long, short)]
    pub verbose: bool,
    /// Also write the results as JUnit XML (for CI systems).
    #[arg(long, value_name = "OUT.xml")]
    pub junit: Option<PathBuf>,
}

/// `nfcc compile`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The .nf file.
    pub file: PathBuf,
    /// Where to write (`-` for standard output; default: the .nf path with .o, .s or .ir).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Target.
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// What to write: the ELF object, its disassembly, or the IR text.
    #[arg(long, value_enum, default_value = "elf")]
    pub emit: Emit,
    /// Print instruction count, stack, maps, (where the kernel allows) the verifier's
    /// processed instructions, and the classifier chosen for each run of rules and why.
    #[arg(long)]
    pub stats: bool,
    /// Which classifier runs of rules may get: chosen by cost (auto), none (linear: rules as
    /// code), decision trees wherever they can hold them (tree), or tuple space search
    /// (tuples, trees where tuples cannot hold a run).
    #[arg(long, value_enum, default_value = "auto")]
    pub classifier: nfcc_driver::compile::Classifier,
    /// With `--target nfp`: write the NIC stage and the host stage of the split as
    /// OUT.nic.o and OUT.host.o (see `nfcc offload-check`).
    #[arg(long)]
    pub split: bool,
    /// With --split: the policy to split when the file holds several.
    #[arg(long)]
    pub policy: Option<String>,
}

/// `nfcc run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The .nf file or BPF object (.o).
    pub file: PathBuf,
    /// Input capture (classic libpcap or pcapng, Ethernet).
    #[arg(long)]
    pub pcap: PathBuf,
    /// The engine: the emulator (no privileges), its JIT (the same, as native code), the
    /// kernel (BPF_PROG_TEST_RUN), or the reference evaluator (.nf only).
    #[arg(long, value_enum, default_value = "emulator")]
    pub engine: RunEngine,
    /// Write the packets the program lets out (pass, tx, redirect), as emitted.
    #[arg(long, value_name = "OUT.pcap")]
    pub out: Option<PathBuf>,
    /// Write one JSON line per packet: index, verdict, rule (.nf input), length.
    #[arg(long, value_name = "OUT.jsonl")]
    pub verdicts: Option<PathBuf>,
    /// The policy (or program) to run when the file holds several.
    #[arg(long)]
    pub policy: Option<String>,
    /// Run with a NIC's semantics on the emulator (helpers it lacks stop the run, redirect
    /// becomes abort); a policy marked `offload nfp` gets this by default.
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
}

/// `nfcc stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The deployment: the policy, or POLICY@IFACE (or give --iface).
    #[arg(value_name = "KEY", required_unless_present = "iface")]
    pub key: Option<String>,
    /// The deployment on this interface.
    #[arg(long)]
    pub iface: Option<String>,
    /// Refresh every second, busiest rules first, until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// One JSON array of rules.
    #[arg(long)]
    pub json: bool,
    /// Prometheus text (what the agent's /metrics serves), once.
    #[arg(long, conflicts_with_all = ["json", "watch"])]
    pub prometheus: bool,
}

/// `nfcc set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The operation.
    #[arg(value_enum)]
    pub op: SetOp,
    /// `KEY SET [VALUE...]`: the deployment (the policy, or POLICY@IFACE; left out with
    /// --iface), the set, and the values add and del take.
    #[arg(value_name = "KEY SET VALUE", required = true)]
    pub words: Vec<String>,
    /// The deployment on this interface (then the words start with the set).
    #[arg(long)]
    pub iface: Option<String>,
    /// Also take values from this file, one per line (`-`: standard input; `#` comments
    /// and blank lines skipped). All values are checked before any is applied.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

/// `nfcc pool`.
#[derive(Args, Debug)]
pub struct PoolArgs {
    /// The operation.
    #[arg(value_enum)]
    pub op: PoolOp,
    /// `KEY POOL [ADDR [weight W]]`: the deployment (the policy, or POLICY@IFACE; left out
    /// with --iface), the dynamic pool, and for add and del the backend.
    #[arg(value_name = "KEY POOL ADDR", required = true)]
    pub words: Vec<String>,
    /// The deployment on this interface (then the words start with the pool).
    #[arg(long)]
    pub iface: Option<String>,
}

/// `nfcc watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The deployment: the policy, or POLICY@IFACE (or give --iface).
    #[arg(value_name = "KEY", required_unless_present = "iface")]
    pub key: Option<String>,
    /// The deployment on this interface.
    #[arg(long)]
    pub iface: Option<String>,
    /// Also write the sampled frames to a pcap file.
    #[arg(long, value_name = "OUT.pcap")]
    pub pcap: Option<PathBuf>,
    /// Stop after this many samples (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
}

/// `nfcc capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The deployment: the policy, or POLICY@IFACE (or give --iface).
    #[arg(value_name = "KEY", required_unless_present = "iface")]
    pub key: Option<String>,
    /// The deployment on this interface.
    #[arg(long)]
    pub iface: Option<String>,
    /// Write the packets to a pcap file instead of printing a line each.
    #[arg(long, value_name = "OUT.pcap")]
    pub pcap: Option<PathBuf>,
    /// Stop after this many packets (default: run until interrupted or --seconds).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
}

/// `nfcc bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The .nf file (not needed with --sweep or --userspace).
    #[arg(required_unless_present_any = ["sweep", "userspace"])]
    pub file: Option<PathBuf>,
    /// Instead of a policy: frames per second delivered to userspace through an AF_XDP socket
    /// (`redirect xsk`) and through an AF_PACKET socket, on one testbed in one run.
    #[arg(long, conflicts_with = "sweep")]
    pub userspace: bool,
    /// Instead of one policy: Mpps of a blocklist from 10 to 1,000,000 entries and of a
    /// ClassBench ACL from 1 to 10,000 rules.
    #[arg(long)]
    pub sweep: bool,
    /// The ClassBench filter set for the ACL sweep.
    #[arg(
        long,
        value_name = "FILTERS",
        default_value = "../shared/bench-data/classbench/acl1_10k"
    )]
    pub filters: PathBuf,
    /// Also draw the results as an SVG chart.
    #[arg(long, value_name = "OUT.svg")]
    pub plot: Option<PathBuf>,
    /// The policy to measure when the file holds several.
    #[arg(long)]
    pub policy: Option<String>,
    /// Traffic: the frames of this pcap, cycled (default: the frames of the policy's test
    /// blocks).
    #[arg(long, value_name = "TRAFFIC.pcap")]
    pub pcap: Option<PathBuf>,
    /// How the policy is attached: native or generic XDP, or TC ingress (GRO gives the veth
    /// its NAPI there).
    #[arg(long, value_enum, default_value = "native")]
    pub mode: Mode,
    /// Sending time of each run.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Runs per subject (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Baselines to measure in the same run (repeatable; default: all three).
    #[arg(long, value_enum)]
    pub baseline: Vec<BaselineChoice>,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The traffic generator: probe fastest first (auto), or only one.
    #[arg(long, value_enum, default_value = "auto")]
    pub generator: GeneratorChoice,
    /// Also measure the firewall the policy was imported from (an `iptables-save` dump or
    /// `nft -j list ruleset` output) in the kernel, in the same run; without --pcap, the
    /// traffic is drawn from its rules.
    #[arg(long, value_name = "FILE")]
    pub original: Option<PathBuf>,
}

/// `nfcc offload-check`.
#[derive(Args, Debug)]
pub struct OffloadCheckArgs {
    /// The .nf file.
    pub file: PathBuf,
    /// The NIC target.
    #[arg(long, value_enum, default_value = "nfp")]
    pub target: TargetArg,
    /// A card's firmware limits (TOML: `max_insns = 8192` and the like) over the target's
    /// conservative defaults.
    #[arg(long, value_name = "CARD.toml")]
    pub profile: Option<PathBuf>,
    /// The policy to check when the file holds several.
    #[arg(long)]
    pub policy: Option<String>,
    /// Generated packets the split is checked on (besides the test packets).
    #[arg(long, default_value_t = 100_000)]
    pub packets: usize,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check policies; print diagnostics; exit 1 on error.
    Check(CheckArgs),
    /// Run the embedded tests of policies.
    Test(TestArgs),
    /// Write a BPF ELF object for a policy.
    Compile(CompileArgs),
    /// Run packets from a pcap through a policy or object.
    Run(RunArgs),
    /// Verify, load and attach a policy on an interface.
    Load(LoadRequest),
    /// Detach and unpin a deployment (also one whose interface is gone).
    Unload {
        /// The deployment: the policy, or POLICY@IFACE (or give --iface).
        #[arg(value_name = "KEY", required_unless_present = "iface")]
        key: Option<String>,
        /// The deployment on this interface.
        #[arg(long)]
        iface: Option<String>,
    },
    /// List what is loaded where (deployments whose interface went away are shown as gone).
    Status {
        /// Remove deployments whose interface is gone (pins and manifest).
        #[arg(long)]
        prune: bool,
    },
    /// Per-rule packets, bytes and rates of a loaded policy.
    Stats(StatsArgs),
    /// Change a dynamic set of a loaded policy.
    Set(SetArgs),
    /// Add, remove or list the backends of a loaded policy's dynamic pool.
    Pool(PoolArgs),
    /// Print sampled packets of a loaded policy.
    Watch(WatchArgs),
    /// Receive what a loaded policy hands to userspace (`redirect xsk`) on AF_XDP sockets.
    Capture(CaptureArgs),
    /// Measure Mpps on a veth/netns testbed, next to baselines measured in the same run.
    Bench(BenchArgs),
    /// Say which rules can run on a NIC.
    OffloadCheck(OffloadCheckArgs),
    /// Run the BPF ISA conformance suite (bpf_conformance `.data` files) on the emulator.
    Conformance(ConformanceArgs),
    /// Keep this node in the state a directory of bindings describes, until stopped.
    Agent(nfcc_agent::Options),
    /// Write a .nf policy from another rule format.
    Import {
        /// The format.
        #[command(subcommand)]
        format: ImportFormat,
    },
}

/// `nfcc conformance`.
#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// The directory of `.data` files.
    pub dir: PathBuf,
    /// The engines: the interpreter, the JIT, rbpf (not built yet), or all of them.
    #[arg(long, value_enum, default_value = "all")]
    pub engine: ConformanceEngine,
}

/// Formats `nfcc import` reads.
#[derive(Subcommand, Debug)]
pub enum ImportFormat {
    /// A ClassBench filter set (`@src/len dst/len slo : shi dlo : dhi proto/mask flags/mask`).
    Classbench(nfcc_driver::import::ClassbenchRequest),
    /// An `iptables-save` / `ip6tables-save` dump's filter chain (INPUT by default).
    Iptables(nfcc_driver::import::IptablesRequest),
    /// An `nft -j list ruleset` document's filter chain hooked on input.
    Nft(nfcc_driver::import::NftRequest),
}
