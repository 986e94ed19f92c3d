//! `nfcc bench --original`: an imported policy measured next to the firewall it came from,
//! in the same run — the original loaded into the testbed's namespace through each iptables
//! backend the machine has (or nftables), with traffic drawn from its rules. Checked here
//! for what it measures (every original row measured, packets counted), briefly; its figures
//! come from `nfcc bench`, not from this test.
//!
//! Needs root, bpf, clang and iptables (skips otherwise, or fails under
//! `NFCC_REQUIRE_KERNEL=1`).

use nfcc_driver::testbeds::bench::{self, Options, Row};
use std::path::Path;

fn skip(reason: &str) {
    if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
        panic!("NFCC_REQUIRE_KERNEL=1 but the original-bench test {reason}");
    }
    eprintln!("skipped: bench against the original: {reason}");
}

#[test]
fn the_original_is_measured_beside_the_import() {
    if let Err(why) = nfcc_driver::runtime::can_load_bpf() {
        return skip(&why);
    }
    // On XDP, and on TC (where the original's pass program goes on the skb path).
    measure("xdp", nfcc_driver::runtime::deploy::AttachMode::Native);
    measure("tc", nfcc_driver::runtime::deploy::AttachMode::TcIngress);
}

fn measure(hook: &str, mode: nfcc_driver::runtime::deploy::AttachMode) {
    let dump =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../import/tests/corpus/host_firewall.rules");
    let req = nfcc_driver::import::IptablesRequest {
        file: dump.clone(),
        output: None,
        chain: "INPUT".into(),
        hook: Some(hook.into()),
        iface: None,
        ipset: None,
        skip_unsupported: true,
        ipv6: false,
        name: Some("imported".into()),
        verify: None,
    };
    let nf = nfcc_driver::import::iptables(&req)
        .nf
        .unwrap_or_else(|e| panic!("{e}"));
    let (program, _) = nfcc_driver::dsl::check_source(&nf, &Default::default());
    let program = program.unwrap_or_else(|| panic!("the import does not check"));
    let policy = &program.policies[0];
    let compiled = nfcc_driver::compiler::compile::compile(&program, "imported.nf", &nf, None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ours = bench::Subject::policy(
        format!("imported (nfcc, {hook})"),
        &compiled.object,
        &compiled.programs[0],
    );
    let (originals, mix) = nfcc_driver::bench::originals(&dump).unwrap_or_else(|e| panic!("{e}"));
    assert!(!originals.is_empty() && mix.len() == 256);
    let opts = Options {
        seconds: 0.3,
        runs: 1,
        mode,
        ..Options::default()
    };
    let rows = match bench::run_against(
        &ours,
        policy,
        &mix,
        &[],
        &originals,
        opts,
        &mut |_, _, _| {},
    ) {
        Ok(r) => r.rows,
        Err(e) => return skip(&format!("the testbed: {e}")),
    };
    let measured: Vec<(&str, f64)> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Measured(m) => Some((m.label.as_str(), m.median_mpps)),
            Row::Skipped { label, why } => {
                if label.contains("original") {
                    panic!("{label} not measured: {why}");
                }
                None
            }
        })
        .collect();
    eprintln!("{measured:?}");
    assert_eq!(measured.len(), 1 + originals.len(), "{rows:?}");
    assert!(measured.iter().all(|(_, mpps)| *mpps > 0.0), "{measured:?}");
}
