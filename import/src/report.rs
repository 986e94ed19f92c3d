//! The import report: one entry per rule of the input, saying what became of it.

/// What became of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Imported as the rule(s) of this name (a rule of a user chain becomes one rule per
    /// place it is reached from).
    Imported(Vec<String>),
    /// Refused: the construct and why it cannot be imported exactly.
    Refused {
        /// The construct, as written.
        construct: String,
        /// Why.
        reason: String,
    },
    /// Has no effect on a packet's fate here (said why); nothing to import.
    Skipped(String),
}

/// One rule of the input and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The 1-based line of the input.
    pub line: usize,
    /// The rule as written.
    pub text: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// Every rule's outcome, in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Report {
    /// How many rules were refused.
    pub fn refused(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Refused { .. }))
            .count()
    }

    /// How many rules were imported.
    pub fn imported(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Imported(_)))
            .count()
    }

    /// The report as text, a line per rule: `line N: imported as NAME` / `refused: CONSTRUCT:
    /// REASON` / `skipped: WHY`, then a summary line.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for e in &self.entries {
            let what = match &e.outcome {
                Outcome::Imported(names) => format!("imported as {}", names.join(", ")),
                Outcome::Refused { construct, reason } => {
                    format!("refused: `{construct}`: {reason}")
                }
                Outcome::Skipped(why) => format!("skipped: {why}"),
            };
            o.push_str(&format!("line {}: {what}\n    {}\n", e.line, e.text));
        }
        let skipped = self.entries.len() - self.imported() - self.refused();
        o.push_str(&format!(
            "{} rules: {} imported, {} refused, {} skipped\n",
            self.entries.len(),
            self.imported(),
            self.refused(),
            skipped
        ));
        o
    }
}
