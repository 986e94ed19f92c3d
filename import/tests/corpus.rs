//! The corpus: dumps written by this machine's own `iptables-save` and rulesets by its
//! `nft -j list ruleset` (see `corpus/generate.sh`), each imported with refused rules
//! skipped; the policy and the report are snapshots, and the policy must check.

fn check(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let opts = nfcc_import::iptables::Options {
        name: "imported".into(),
        chain: "INPUT".into(),
        xdp: true,
        iface: Some("eth0".into()),
        // A dump's sets, when `ipset save` wrote them beside it.
        sets: std::fs::read_to_string(path.with_extension("ipset"))
            .map(|t| nfcc_import::ipset::parse(&t).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_default(),
        skip_unsupported: true,
        ipv6: false,
        source: path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
    };
    let got = nfcc_import::iptables::import(&text, &opts).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(format!("{}\n---- report\n{}", got.nf, got.report.render()));
}

#[test]
fn corpus_dumps_import() {
    insta::glob!("corpus", "*.rules", check);
}

fn check_nft(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let opts = nfcc_import::nft::Options {
        name: "imported".into(),
        chain: None,
        xdp: true,
        iface: Some("eth0".into()),
        skip_unsupported: true,
        source: path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
    };
    let got = nfcc_import::nft::import(&text, &opts).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(format!("{}\n---- report\n{}", got.nf, got.report.render()));
}

#[test]
fn corpus_rulesets_import() {
    insta::glob!("corpus", "*.json", check_nft);
}
