//! `check::parse_set_item` (what `nfcc set add` parses values with) takes a fast path for
//! plain addresses and prefixes; it must give exactly what the language's parser gives, and
//! leave everything else to it.

use nfcc_dsl::check::{parse_set_item, parse_set_item_by_parser};
use nfcc_dsl::checked::SetKind;

fn check(kind: SetKind, text: &str) {
    assert_eq!(
        parse_set_item(kind, text),
        parse_set_item_by_parser(kind, text),
        "{kind:?} `{text}`"
    );
}

#[test]
fn fast_path_agrees_with_the_language() {
    let v4 = [
        "198.51.100.7",
        "198.51.100.0/24",
        "198.51.100.7/24",
        "0.0.0.0/0",
        "10.0.0.0/8",
        "1.2.3.4/32",
        "1.2.3.4/33",
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4/",
        "1.2.3.4/x",
        "2001:db8::/32",
        "",
        "10.0.0.0/08",
    ];
    let v6 = [
        "2001:db8::1",
        "2001:db8::/32",
        "2001:db8::1/32",
        "::/0",
        "::ffff:1.2.3.4",
        "::1/128",
        "2001:db8::/129",
        "fe80::1%eth0",
        "1.2.3.4",
        "2001:DB8::1",
    ];
    for kind in [SetKind::Ipv4Prefix, SetKind::Ipv4] {
        for t in v4 {
            check(kind, t);
        }
    }
    for kind in [SetKind::Ipv6Prefix, SetKind::Ipv6] {
        for t in v6 {
            check(kind, t);
        }
    }
    for t in ["53", "1..5", "70000"] {
        check(SetKind::Port, t);
    }
}
