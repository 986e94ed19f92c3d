//! `nfcc import iptables`: an `iptables-save` dump (and its `ipset save` sets) as a `.nf`
//! policy through `nfcc_import`, with the report of every rule; with `--verify`, held to the
//! dump restored into netfilter (`crate::verify`).

use crate::error::{read_text, DriverError};
use nfcc_import::{ImportError, Report};
use std::path::PathBuf;

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

/// What an import produced: the policy text (an error when refused), the report, and the
/// verification when asked for.
pub struct IptablesOutcome {
    /// The policy, or why there is none.
    pub nf: Result<String, DriverError>,
    /// What became of every rule, when the dump could be read.
    pub report: Option<Report>,
    /// Netfilter against the policy (`--verify`).
    pub verified: Option<Result<crate::verify::Verified, DriverError>>,
}

/// Imports (and verifies, when asked) `req`.
pub fn iptables(req: &IptablesRequest) -> IptablesOutcome {
    match run(req) {
        Ok(i) => {
            let verified = req.verify.map(|n| {
                if req.ipset.is_some() {
                    return Err(DriverError::NotBuilt(
                        "--verify with --ipset (restoring the sets into the namespace first) is \
                         not built yet; verify a dump without set matches"
                            .into(),
                    ));
                }
                let dump = read_text(&req.file)?;
                let v6 = req.ipv6 || nfcc_import::iptables::is_v6(&dump);
                crate::verify::verify(&dump, &i.nf, &policy_name(req), req.iface.as_deref(), v6, n)
            });
            IptablesOutcome {
                nf: Ok(i.nf),
                report: Some(i.report),
                verified,
            }
        }
        Err(f) => {
            let (e, report) = *f;
            IptablesOutcome {
                nf: Err(e),
                report,
                verified: None,
            }
        }
    }
}

fn policy_name(req: &IptablesRequest) -> String {
    req.name
        .clone()
        .unwrap_or_else(|| crate::compile::policy_name_of(&req.file))
}

/// An error, and the report when there is one.
type Failure = Box<(DriverError, Option<Report>)>;

fn run(req: &IptablesRequest) -> Result<nfcc_import::Imported, Failure> {
    let plain = |e: DriverError| Box::new((e, None));
    let text = read_text(&req.file).map_err(plain)?;
    let sets = match &req.ipset {
        Some(p) => nfcc_import::ipset::parse(&read_text(p).map_err(plain)?)
            .map_err(|e| plain(DriverError::Input(format!("{}: {e}", p.display()))))?,
        None => Default::default(),
    };
    let xdp = match req.hook.as_deref() {
        None | Some("tc") | Some("tc-ingress") => false,
        Some("xdp") => true,
        Some(h) => {
            return Err(plain(DriverError::Input(format!(
                "--hook {h}: the policy goes on `xdp` or `tc` (ingress)"
            ))))
        }
    };
    let opts = nfcc_import::iptables::Options {
        name: policy_name(req),
        chain: req.chain.clone(),
        xdp,
        iface: req.iface.clone(),
        sets,
        skip_unsupported: req.skip_unsupported,
        source: req.file.display().to_string(),
        ipv6: req.ipv6,
    };
    nfcc_import::iptables::import(&text, &opts).map_err(|e| {
        let at = |e: &ImportError| format!("{}: {e}", req.file.display());
        match e {
            ImportError::Refused(r) => {
                let msg = at(&ImportError::Refused(r.clone()));
                Box::new((DriverError::Input(msg), Some(r)))
            }
            ImportError::Internal(_) => Box::new((DriverError::Failed(at(&e)), None)),
            e => Box::new((DriverError::Input(at(&e)), None)),
        }
    })
}
