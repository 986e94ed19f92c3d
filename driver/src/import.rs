//! `nfcc import iptables|nft`: an `iptables-save` dump (with its `ipset save` sets) or an
//! `nft -j list ruleset` document as a `.nf` policy through `nfcc_import`, with the report of
//! every rule; with `--verify`, held to the original restored into netfilter
//! (`crate::verify`).

use crate::error::{read_text, DriverError};
use crate::verify::Original;
use nfcc_import::{ImportError, Imported, Report, Traversal};
use std::path::{Path, PathBuf};

/// What `nfcc import classbench` is asked.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ClassbenchRequest {
    /// The filter set (a ClassBench filter file); none with `--generate`.
    #[cfg_attr(feature = "clap", arg(required_unless_present = "generate"))]
    pub file: Option<PathBuf>,
    /// Draw a new filter set from this ClassBench parameter file (`seeds/fw3_seed`) instead
    /// of reading one.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "SEED_FILE", conflicts_with = "file")
    )]
    pub generate: Option<PathBuf>,
    /// How many filters to draw (with `--generate`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "N", default_value_t = 10_000)
    )]
    pub rules: usize,
    /// The generator's seed: the same seed gives the same set.
    #[cfg_attr(feature = "clap", arg(long, value_name = "S", default_value_t = 1))]
    pub seed: u64,
    /// Write the drawn filter set in ClassBench's format instead of the policy.
    #[cfg_attr(feature = "clap", arg(long, requires = "generate"))]
    pub filters: bool,
    /// How rules get their actions.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "drop"))]
    pub actions: crate::compile::Actions,
    /// The policy's name (default: the file's stem, or FAMILY_N_sS for a drawn set).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Write here instead of standard output.
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: Option<PathBuf>,
}

/// `nfcc import classbench`: a filter set, read or drawn from a parameter file, as `.nf`
/// text (or, with `filters`, the drawn set itself).
pub fn classbench(req: &ClassbenchRequest) -> Result<String, DriverError> {
    use nfcc_import::classbench::{classbench_to_nf, generate, ClassbenchActions};
    let (text, default_name, label) = match (&req.generate, &req.file) {
        (Some(seed_file), _) => {
            let seed = generate::Seed::parse(&read_text(seed_file)?)
                .map_err(|e| DriverError::Input(format!("{}: {e}", seed_file.display())))?;
            if req.rules == 0 {
                return Err(DriverError::Input("--rules must be at least 1".into()));
            }
            let filters = generate::generate(&seed, req.rules, req.seed);
            if filters.len() < req.rules {
                return Err(DriverError::Input(format!(
                    "{}: the parameter file makes only {} distinct filters, not {}",
                    seed_file.display(),
                    filters.len(),
                    req.rules
                )));
            }
            let text = generate::to_text(&filters);
            if req.filters {
                return Ok(text);
            }
            let family = crate::compile::policy_name_of(seed_file);
            let family = family.trim_end_matches("_seed").to_string();
            let name = format!("{family}_{}_s{}", req.rules, req.seed);
            (text, name, seed_file.display().to_string())
        }
        (None, Some(file)) => (
            read_text(file)?,
            crate::compile::policy_name_of(file),
            file.display().to_string(),
        ),
        (None, None) => {
            return Err(DriverError::Input(
                "give a ClassBench filter file, or --generate SEED_FILE".into(),
            ))
        }
    };
    let name = req.name.clone().unwrap_or(default_name);
    let acts = match req.actions {
        crate::compile::Actions::Drop => ClassbenchActions::Drop,
        crate::compile::Actions::Alternate => ClassbenchActions::Alternate,
    };
    classbench_to_nf(&text, &name, acts).map_err(|e| DriverError::Input(format!("{label}: {e}")))
}

/// What `nfcc import iptables` is asked.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct IptablesRequest {
    /// The `iptables-save` or `ip6tables-save` dump.
    pub file: PathBuf,
    /// Write the policy here (default: standard output).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: Option<PathBuf>,
    /// The filter table's chain to import.
    #[cfg_attr(feature = "clap", arg(long, default_value = "INPUT"))]
    pub chain: String,
    /// Attach the policy on XDP instead of TC ingress.
    #[cfg_attr(feature = "clap", arg(long, value_name = "xdp|tc"))]
    pub hook: Option<String>,
    /// The interface the policy will be attached to: what `-i` rules are judged against.
    #[cfg_attr(feature = "clap", arg(long))]
    pub iface: Option<String>,
    /// The sets the rules name, as `ipset save` writes them.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SETS.save"))]
    pub ipset: Option<PathBuf>,
    /// Import the rest when rules are refused; the refused ones become comments.
    #[cfg_attr(feature = "clap", arg(long))]
    pub skip_unsupported: bool,
    /// The dump is ip6tables-save's (when its header comment is gone).
    #[cfg_attr(feature = "clap", arg(long))]
    pub ipv6: bool,
    /// The policy's name (default: the file's stem).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Prove the import against the kernel's netfilter with N generated packets (root).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "10000"))]
    pub verify: Option<u64>,
}

/// What `nfcc import nft` is asked.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct NftRequest {
    /// The output of `nft -j list ruleset`.
    pub file: PathBuf,
    /// Write the policy here (default: standard output).
    #[cfg_attr(feature = "clap", arg(short, long))]
    pub output: Option<PathBuf>,
    /// The chain to import, `FAMILY/TABLE/CHAIN` (default: the filter chain hooked on input).
    #[cfg_attr(feature = "clap", arg(long))]
    pub chain: Option<String>,
    /// Attach the policy on XDP instead of TC ingress.
    #[cfg_attr(feature = "clap", arg(long, value_name = "xdp|tc"))]
    pub hook: Option<String>,
    /// The interface the policy will be attached to: what `iifname` matches are judged against.
    #[cfg_attr(feature = "clap", arg(long))]
    pub iface: Option<String>,
    /// Import the rest when rules are refused; the refused ones become comments.
    #[cfg_attr(feature = "clap", arg(long))]
    pub skip_unsupported: bool,
    /// The policy's name (default: the file's stem).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Prove the import against the kernel's nftables with N generated packets (root).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "10000"))]
    pub verify: Option<u64>,
}

/// What an import produced: the policy text (an error when refused), the report, and the
/// verification when asked for.
pub struct ImportOutcome {
    /// The policy, or why there is none.
    pub nf: Result<String, DriverError>,
    /// What became of every rule, when the input could be read.
    pub report: Option<Report>,
    /// Netfilter against the policy (`--verify`).
    pub verified: Option<Result<crate::verify::Verified, DriverError>>,
}

/// An error, and the report when there is one.
type Failure = Box<(DriverError, Option<Report>)>;

fn plain(e: DriverError) -> Failure {
    Box::new((e, None))
}

fn xdp(hook: Option<&str>) -> Result<bool, Failure> {
    match hook {
        None | Some("tc") | Some("tc-ingress") => Ok(false),
        Some("xdp") => Ok(true),
        Some(h) => Err(plain(DriverError::Input(format!(
            "--hook {h}: the policy goes on `xdp` or `tc` (ingress)"
        )))),
    }
}

fn name(name: &Option<String>, file: &Path) -> String {
    name.clone()
        .unwrap_or_else(|| crate::compile::policy_name_of(file))
}

/// An importer's error as the driver's, keeping the report of a refusal.
fn failed(file: &Path, e: ImportError) -> Failure {
    let at = |e: &ImportError| format!("{}: {e}", file.display());
    match e {
        ImportError::Refused(r) => {
            let msg = at(&ImportError::Refused(r.clone()));
            Box::new((DriverError::Input(msg), Some(r)))
        }
        ImportError::Internal(_) => Box::new((DriverError::Failed(at(&e)), None)),
        e => Box::new((DriverError::Input(at(&e)), None)),
    }
}

/// The outcome of an import `got` of `text`, verified against `original` when `verify` asks.
fn outcome(
    got: Result<Imported, Failure>,
    verify: Option<u64>,
    check: impl FnOnce(&str, &Traversal, u64) -> Result<crate::verify::Verified, DriverError>,
) -> ImportOutcome {
    match got {
        Ok(i) => {
            let verified = verify.map(|n| check(&i.nf, &i.traversal, n));
            ImportOutcome {
                nf: Ok(i.nf),
                report: Some(i.report),
                verified,
            }
        }
        Err(f) => {
            let (e, report) = *f;
            ImportOutcome {
                nf: Err(e),
                report,
                verified: None,
            }
        }
    }
}

/// Imports (and verifies, when asked) an iptables dump.
pub fn iptables(req: &IptablesRequest) -> ImportOutcome {
    let text = match read_text(&req.file) {
        Ok(t) => t,
        Err(e) => return outcome(Err(plain(e)), None, |_, _, _| unreachable_verify()),
    };
    let got = (|| {
        let sets = match &req.ipset {
            Some(p) => nfcc_import::ipset::parse(&read_text(p).map_err(plain)?)
                .map_err(|e| plain(DriverError::Input(format!("{}: {e}", p.display()))))?,
            None => Default::default(),
        };
        let opts = nfcc_import::iptables::Options {
            name: name(&req.name, &req.file),
            chain: req.chain.clone(),
            xdp: xdp(req.hook.as_deref())?,
            iface: req.iface.clone(),
            sets,
            skip_unsupported: req.skip_unsupported,
            source: req.file.display().to_string(),
            ipv6: req.ipv6,
        };
        nfcc_import::iptables::import(&text, &opts).map_err(|e| failed(&req.file, e))
    })();
    let v6 = req.ipv6 || nfcc_import::iptables::is_v6(&text);
    outcome(got, req.verify, |nf, traversal, n| {
        let sets = req.ipset.as_ref().map(|p| read_text(p)).transpose()?;
        let original = Original::Iptables {
            dump: &text,
            v6,
            sets: sets.as_deref(),
        };
        crate::verify::verify(
            &original,
            (&req.chain, traversal),
            nf,
            &name(&req.name, &req.file),
            req.iface.as_deref(),
            n,
        )
    })
}

/// Imports (and verifies, when asked) an nftables ruleset.
pub fn nft(req: &NftRequest) -> ImportOutcome {
    let text = match read_text(&req.file) {
        Ok(t) => t,
        Err(e) => return outcome(Err(plain(e)), None, |_, _, _| unreachable_verify()),
    };
    let got = (|| {
        let opts = nfcc_import::nft::Options {
            name: name(&req.name, &req.file),
            chain: req.chain.clone(),
            xdp: xdp(req.hook.as_deref())?,
            iface: req.iface.clone(),
            skip_unsupported: req.skip_unsupported,
            source: req.file.display().to_string(),
        };
        nfcc_import::nft::import(&text, &opts).map_err(|e| failed(&req.file, e))
    })();
    outcome(got, req.verify, |nf, traversal, n| {
        let original = Original::Nft { json: &text };
        crate::verify::verify(
            &original,
            (req.chain.as_deref().unwrap_or("input"), traversal),
            nf,
            &name(&req.name, &req.file),
            req.iface.as_deref(),
            n,
        )
    })
}

/// The verification of an input that could not be read: never asked for.
fn unreachable_verify() -> Result<crate::verify::Verified, DriverError> {
    Err(DriverError::Failed("nothing to verify".into()))
}
