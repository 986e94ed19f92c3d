//! Single set values from outside a source file, as `nfcc set add` receives them: a fast path
//! for plain addresses and prefixes, and the language's own parser and checker for the rest.

use super::{check_source, CheckOptions};
use crate::checked::*;

/// The common case of [`parse_set_item`] without the parser: a plain IPv4/IPv6 address or a
/// prefix without host bits, for an address set. `None` sends everything else (and anything
/// doubtful) to the language's parser; `fast_path_agrees_with_the_language` holds the two to
/// the same answers. Bulk loads of 100,000 prefixes spend their time here.
fn fast_set_item(kind: SetKind, text: &str) -> Option<Item> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) if l.bytes().all(|b| b.is_ascii_digit()) && !l.is_empty() && l.len() <= 3 => {
            (a, Some(l.parse::<u8>().ok()?))
        }
        Some(_) => return None,
        None => (text, None),
    };
    let (family, bits, width) = match kind {
        SetKind::Ipv4Prefix | SetKind::Ipv4 => {
            // Only the dotted quad the language writes (std also takes no other form).
            let a: std::net::Ipv4Addr = addr.parse().ok()?;
            (Family::V4, u128::from(u32::from(a)), 32u8)
        }
        SetKind::Ipv6Prefix | SetKind::Ipv6 => {
            let a: std::net::Ipv6Addr = addr.parse().ok()?;
            (Family::V6, u128::from(a), 128u8)
        }
        _ => return None,
    };
    let prefix_set = matches!(kind, SetKind::Ipv4Prefix | SetKind::Ipv6Prefix);
    let scalar = Scalar { family, bits };
    match len {
        None => Some(Item::Value(scalar)),
        Some(l) if prefix_set && l <= width => {
            let host = if l == 0 {
                u128::MAX
            } else {
                (1u128 << (width - l)) - 1
            };
            // Host bits set draw a warning from the language: leave those to it.
            (bits & host == 0 || l == width).then_some(Item::Prefix(scalar, l))
        }
        Some(_) => None,
    }
}

/// Parses and checks one value for a set of `kind` — as `nfcc set add` receives it — with the
/// language's own parser and checker (a set declaration holding just that value), so a value
/// the language would refuse is refused with the same message.
pub fn parse_set_item(kind: SetKind, text: &str) -> Result<Item, String> {
    match fast_set_item(kind, text) {
        Some(item) => Ok(item),
        None => parse_set_item_by_parser(kind, text),
    }
}

/// [`parse_set_item`] always through the language's parser and checker (what the fast path is
/// tested against).
pub fn parse_set_item_by_parser(kind: SetKind, text: &str) -> Result<Item, String> {
    if text.contains(['{', '}', '\n', '#']) {
        return Err(format!("`{text}` is not a single value"));
    }
    let source = format!(
        "policy p on xdp {{\n    set s: {}, dynamic = {{ {text} }}\n    default pass\n}}\n",
        kind.describe()
    );
    let (program, diags) = check_source(&source, &CheckOptions::default());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .map(|d| match &d.help {
            Some(h) => format!("{} ({h})", d.message),
            None => d.message.clone(),
        })
        .collect();
    if !errors.is_empty() {
        return Err(format!("`{text}`: {}", errors.join("; ")));
    }
    let set = program
        .and_then(|p| p.policies.into_iter().next())
        .and_then(|p| p.sets.into_iter().next());
    match set.map(|s| s.items) {
        Some(items) if items.len() == 1 => Ok(items[0]),
        _ => Err(format!(
            "`{text}` is not a single {} value",
            kind.describe()
        )),
    }
}
