//! `nfcc set add|del|list`: a dynamic set of a deployed policy changed live, in every stage
//! that keeps it (the host program, and an offloaded policy's NIC stage, whose copy may be laid
//! out differently), from the set layout the manifest records — never from a recompilation.

use crate::error::DriverError;
use nfcc_bpf::manifest::{SetEntry, Stage};
use nfcc_compiler::sets::{plan_entry, MapOp};
use nfcc_dsl::checked::SetKind;
use nfcc_runtime::deploy::{self, Deployment};

/// A set operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SetOp {
    /// Add values.
    Add,
    /// Remove values.
    Del,
    /// List the members.
    List,
}

/// A set's kind from the manifest's spelling of it.
fn kind_of(spelling: &str) -> Option<SetKind> {
    Some(match spelling {
        "ipv4 prefix" => SetKind::Ipv4Prefix,
        "ipv6 prefix" => SetKind::Ipv6Prefix,
        "ipv4" => SetKind::Ipv4,
        "ipv6" => SetKind::Ipv6,
        "port" => SetKind::Port,
        "mac" => SetKind::Mac,
        other => SetKind::Uint(other.strip_prefix('u')?.parse().ok()?),
    })
}

/// The set `set` as each stage of `d` keeps it.
fn stages<'a>(d: &'a Deployment, set: &str) -> Result<Vec<(&'a Stage, &'a SetEntry)>, DriverError> {
    let found: Vec<(&Stage, &SetEntry)> = d
        .manifest
        .stages()
        .filter_map(|st| st.sets.iter().find(|s| s.name == set).map(|s| (st, s)))
        .collect();
    if found.is_empty() {
        let known: Vec<String> = d
            .manifest
            .stages()
            .flat_map(|s| s.sets.iter().map(|x| x.name.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(DriverError::Input(format!(
            "policy `{}` has no set `{set}`; its sets are: {}",
            d.policy(),
            known.join(", ")
        )));
    }
    Ok(found)
}

/// The members of `set`, as the language writes them.
pub fn list(d: &Deployment, set: &str) -> Result<Vec<String>, DriverError> {
    let (stage, entry) = stages(d, set)?[0];
    let kind = kind_of(&entry.kind)
        .ok_or_else(|| DriverError::Input(format!("set kind `{}` unknown", entry.kind)))?;
    let Some(first) = entry.maps.first() else {
        return Err(DriverError::Input(format!(
            "set `{set}` is compiled into the program, not kept in a map"
        )));
    };
    let maps = deploy::stage_maps(stage)?;
    Ok(maps
        .map_keys(&first.map)?
        .iter()
        .map(|k| show_key(kind, k))
        .collect())
}

/// Adds (`add`) or removes `values` in `set`; every value is checked before any is applied
/// (a typo on line 70,000 must not leave the set half changed). Returns how many changed.
pub fn change(
    d: &Deployment,
    set: &str,
    add: bool,
    values: &[String],
) -> Result<usize, DriverError> {
    let found = stages(d, set)?;
    if values.is_empty() {
        return Err(DriverError::Input(format!(
            "`nfcc set {}` needs a value (or `--from FILE`)",
            if add { "add" } else { "del" }
        )));
    }
    let kind = kind_of(&found[0].1.kind)
        .ok_or_else(|| DriverError::Input(format!("set kind `{}` unknown", found[0].1.kind)))?;
    let mut items = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for v in values {
        match nfcc_dsl::check::parse_set_item(kind, v) {
            Ok(i) => items.push(i),
            Err(e) => bad.push(format!("`{v}`: {e}")),
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        bad.truncate(10);
        return Err(DriverError::Input(format!(
            "{}\n{n} bad value(s); nothing was changed",
            bad.join("\n")
        )));
    }
    let opened = found
        .iter()
        .map(|(st, e)| Ok((deploy::stage_maps(st)?, *e)))
        .collect::<Result<Vec<_>, DriverError>>()?;
    for (v, item) in values.iter().zip(items) {
        for (maps, entry) in &opened {
            let ops = plan_entry(entry, item, add, &mut |m, k| {
                maps.map_lookup(m, k).ok().flatten()
            })
            .map_err(|e| DriverError::Input(format!("`{v}`: {e}")))?;
            for o in ops {
                match &o {
                    MapOp::Update { map, key, value } => maps.map_update(map, key, value),
                    MapOp::Delete { map, key } => maps.map_delete(map, key).map(|_| ()),
                }
                .map_err(|e| DriverError::Environment(format!("`{v}`: {e}")))?;
            }
        }
    }
    Ok(values.len())
}

/// Values from a file (`-`: standard input), as [`values_from_text`] reads them.
pub fn values_from_path(path: &std::path::Path) -> Result<Vec<String>, DriverError> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map_err(|source| {
            DriverError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
        t
    } else {
        crate::error::read_text(path)?
    };
    Ok(values_from_text(&text))
}

/// Values from a file's text: one per line, `#` comments and blank lines skipped.
pub fn values_from_text(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A set map's key as the language writes it.
pub fn show_key(kind: SetKind, key: &[u8]) -> String {
    let prefix = matches!(kind, SetKind::Ipv4Prefix | SetKind::Ipv6Prefix);
    let (len, data) = if prefix && key.len() > 4 {
        (
            Some(u32::from_le_bytes([key[0], key[1], key[2], key[3]])),
            &key[4..],
        )
    } else {
        (None, key)
    };
    let addr = match data.len() {
        4 => std::net::Ipv4Addr::from([data[0], data[1], data[2], data[3]]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(data);
            std::net::Ipv6Addr::from(b).to_string()
        }
        6 => data
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        _ => data
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
            .to_string(),
    };
    match len {
        Some(l) if l as usize != data.len() * 8 => format!("{addr}/{l}"),
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_spelling() {
        for k in [
            SetKind::Ipv4Prefix,
            SetKind::Ipv6Prefix,
            SetKind::Ipv4,
            SetKind::Ipv6,
            SetKind::Port,
            SetKind::Mac,
            SetKind::Uint(32),
        ] {
            assert_eq!(kind_of(&k.describe()), Some(k));
        }
        assert_eq!(kind_of("float"), None);
    }

    #[test]
    fn keys_print_as_written() {
        assert_eq!(
            show_key(SetKind::Ipv4Prefix, &[24, 0, 0, 0, 192, 0, 2, 0]),
            "192.0.2.0/24"
        );
        assert_eq!(
            show_key(SetKind::Ipv4Prefix, &[32, 0, 0, 0, 10, 0, 0, 1]),
            "10.0.0.1"
        );
        assert_eq!(show_key(SetKind::Port, &[0, 53]), "53");
        assert_eq!(
            values_from_text("1.2.3.4 # x\n\n  # y\n5.6.7.8\n"),
            ["1.2.3.4", "5.6.7.8"]
        );
    }
}
