//! The `iptables-save` text format: tables (`*filter` ... `COMMIT`), chain declarations
//! (`:CHAIN POLICY [packets:bytes]`) and rules (`-A CHAIN options...`), each rule split into
//! words the way the shell that `iptables-restore` emulates would split it (double quotes,
//! backslash escapes).
//!
//! Hand-written rather than a pest grammar: the format is a list of command lines whose
//! options are positional words, not a nested language; a grammar would only re-split words.

use crate::ImportError;

/// A chain of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Its name.
    pub name: String,
    /// `ACCEPT`/`DROP` for a built-in chain, `None` (written `-`) for a user chain.
    pub policy: Option<String>,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// One `-A` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The 1-based line.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// Its words after `-A CHAIN`.
    pub words: Vec<String>,
}

/// One table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// `filter`, `nat`, ...
    pub name: String,
    /// Its chains, declared order.
    pub chains: Vec<Chain>,
}

impl Table {
    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// Splits a line into words: whitespace separates, double quotes group, backslash escapes.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(chars.next().ok_or("a line ends with a backslash")?);
                any = true;
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("an unterminated quote".into());
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

/// Reads a dump.
pub fn parse(text: &str) -> Result<Vec<Table>, ImportError> {
    let mut tables: Vec<Table> = Vec::new();
    // The line of the table opened and not yet committed.
    let mut open: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        let bad = |what: String| ImportError::Syntax { line, what };
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('*') {
            if let Some(at) = open {
                return Err(bad(format!(
                    "a new table before the `COMMIT` of the table opened at line {at}"
                )));
            }
            tables.push(Table {
                name: name.to_string(),
                chains: Vec::new(),
            });
            open = Some(line);
            continue;
        }
        if t == "COMMIT" {
            open = None;
            continue;
        }
        let Some(table) = tables.last_mut().filter(|_| open.is_some()) else {
            return Err(bad("outside a table (`*filter` ... `COMMIT`)".into()));
        };
        if let Some(decl) = t.strip_prefix(':') {
            let w: Vec<&str> = decl.split_whitespace().collect();
            let (Some(name), Some(policy)) = (w.first(), w.get(1)) else {
                return Err(bad("a chain declaration needs a name and a policy".into()));
            };
            table.chains.push(Chain {
                name: name.to_string(),
                policy: (*policy != "-").then(|| policy.to_string()),
                rules: Vec::new(),
            });
            continue;
        }
        let mut w = words(t).map_err(|e| bad(e.to_string()))?;
        // `iptables-save -c` puts the counters first.
        if w.first().is_some_and(|x| x.starts_with('[')) {
            w.remove(0);
        }
        match w.as_slice() {
            [a, chain, ..] if a == "-A" || a == "--append" => {
                let chain = chain.clone();
                let Some(c) = table.chains.iter_mut().find(|c| c.name == chain) else {
                    return Err(bad(format!("a rule for the undeclared chain {chain}")));
                };
                c.rules.push(Rule {
                    line,
                    text: t.to_string(),
                    words: w[2..].to_vec(),
                });
            }
            _ => return Err(bad(format!("`{t}`: not a rule (`-A CHAIN ...`)"))),
        }
    }
    // iptables-restore applies a table only at its COMMIT: a dump cut short is refused whole,
    // as it refuses it.
    if let (Some(at), Some(table)) = (open, tables.last()) {
        return Err(ImportError::Syntax {
            line: at,
            what: format!(
                "table `{}` has no `COMMIT` (the dump was cut short?); iptables-restore refuses it too",
                table.name
            ),
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_honour_quotes_and_escapes() {
        assert_eq!(
            words(r#"-A INPUT -m comment --comment "allow \"ssh\" here" -j ACCEPT"#),
            Ok(vec![
                "-A".into(),
                "INPUT".into(),
                "-m".into(),
                "comment".into(),
                "--comment".into(),
                "allow \"ssh\" here".into(),
                "-j".into(),
                "ACCEPT".into()
            ])
        );
        assert!(words("-m comment --comment \"open").is_err());
    }

    #[test]
    fn tables_chains_and_rules_are_read() {
        let t = parse(
            "# Generated by iptables-save\n*filter\n:INPUT DROP [0:0]\n:MINE - [0:0]\n\
             [3:180] -A INPUT -p tcp -j MINE\n-A MINE -j ACCEPT\nCOMMIT\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t[0].name, "filter");
        let input = t[0]
            .chain("INPUT")
            .map(|c| (c.policy.clone(), c.rules[0].words.clone()));
        assert_eq!(
            input,
            Some((
                Some("DROP".into()),
                vec!["-p".into(), "tcp".into(), "-j".into(), "MINE".into()]
            ))
        );
        assert_eq!(t[0].chain("MINE").map(|c| c.policy.clone()), Some(None));
        assert!(parse("-A INPUT -j ACCEPT\n").is_err());
        assert!(parse("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n").is_err());
        // Cut before COMMIT: refused with the table's line, as iptables-restore refuses it.
        let cut = parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT\n");
        assert!(
            matches!(&cut, Err(ImportError::Syntax { line: 1, what }) if what.contains("no `COMMIT`")),
            "{cut:?}"
        );
        assert!(parse("*raw\n*filter\nCOMMIT\n").is_err());
    }
}
