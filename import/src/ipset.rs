//! `ipset save` output: the sets a dump's `-m set --match-set` rules name. `hash:ip` and
//! `hash:net` sets of either family become prefix sets (an address is a full-length prefix);
//! other types are kept so a rule naming one is refused with the type.

use crate::ImportError;

/// One set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpSet {
    /// Its name.
    pub name: String,
    /// Its type (`hash:ip`, `hash:net`, ...).
    pub kind: String,
    /// IPv6 (`family inet6`).
    pub v6: bool,
    /// Its members, as written (addresses or prefixes).
    pub members: Vec<String>,
}

impl IpSet {
    /// Whether the language can hold it (as a prefix set).
    pub fn expressible(&self) -> bool {
        matches!(self.kind.as_str(), "hash:ip" | "hash:net")
    }
}

/// Every set of an `ipset save` dump, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sets(pub Vec<IpSet>);

impl Sets {
    /// The set called `name`.
    pub fn get(&self, name: &str) -> Option<&IpSet> {
        self.0.iter().find(|s| s.name == name)
    }
}

/// Reads `ipset save` text.
pub fn parse(text: &str) -> Result<Sets, ImportError> {
    let mut sets: Vec<IpSet> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = |what: String| ImportError::Syntax { line: i + 1, what };
        match w.as_slice() {
            [] => {}
            [c, ..] if c.starts_with('#') => {}
            ["create", name, kind, rest @ ..] => sets.push(IpSet {
                name: name.to_string(),
                kind: kind.to_string(),
                v6: rest.windows(2).any(|p| p == ["family", "inet6"]),
                members: Vec::new(),
            }),
            ["add", name, member, rest @ ..] => {
                if rest.contains(&"nomatch") {
                    return Err(bad(format!(
                        "`nomatch` members (exceptions inside set {name}) are not supported"
                    )));
                }
                let Some(s) = sets.iter_mut().find(|s| s.name == *name) else {
                    return Err(bad(format!("`add` to set {name} before its `create`")));
                };
                s.members.push(member.to_string());
            }
            [other, ..] => return Err(bad(format!("`{other}`: not an ipset save line"))),
        }
    }
    Ok(Sets(sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_members_are_read() {
        let s = parse(
            "create bad hash:net family inet hashsize 1024 maxelem 65536\nadd bad 10.0.0.0/8\n\
             add bad 192.0.2.1\ncreate six hash:ip family inet6\nadd six 2001:db8::1\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.0.len(), 2);
        assert_eq!(s.get("bad").map(|b| b.members.len()), Some(2));
        assert!(s.get("six").is_some_and(|x| x.v6 && x.expressible()));
        assert!(parse("add x 1.2.3.4\n").is_err());
    }
}
