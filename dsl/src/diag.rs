//! Diagnostics: errors and warnings that point into `.nf` source, collected rather than thrown,
//! and rendered like rustc (file:line:col, the source line, a caret under the span, a hint).
//!
//! Every check in the front end produces a [`Diagnostic`] with a stable code (`E0xxx` for
//! errors, `W0xxx` for warnings) so that tests and users can refer to them. Rendering is our
//! own, in rustc's layout, because a 10,000-rule policy can carry thousands of warnings and
//! must render in linear time; it is plain text without colour, so snapshot tests see exactly
//! what users see.

use crate::ast::Span;
use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The policy is wrong; nothing is compiled.
    Error,
    /// The policy is accepted but probably not what was meant.
    Warning,
}

/// A labelled span inside a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One error or warning about a `.nf` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code such as `E0101`.
    pub code: &'static str,
    /// The one-line message, lowercase.
    pub message: String,
    /// The primary label first, then secondary ones.
    pub labels: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: vec![Label {
                span,
                message: String::new(),
            }],
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the primary label's text.
    pub fn with_label(mut self, message: impl Into<String>) -> Self {
        self.labels[0].message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with_note(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Sets the hint saying what to do.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The primary span.
    pub fn span(&self) -> Span {
        self.labels[0].span
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}[{}]: {}", self.code, self.message)
    }
}

/// Line starts of a source, computed once so that rendering many diagnostics of a large file
/// stays linear.
pub struct SourceMap<'a> {
    name: &'a str,
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes `source`, to be shown as `name`.
    pub fn new(name: &'a str, source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            name,
            source,
            line_starts,
        }
    }

    /// 1-based line and column of a byte offset, in logarithmic time (for callers that
    /// locate many offsets of one large file).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let (line, col) = self.locate(offset);
        (line + 1, col)
    }

    /// 0-based line index and 1-based character column of a byte offset.
    fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.source, offset.min(self.source.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let col = self.source[self.line_starts[line]..offset].chars().count() + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts[line];
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.source.len(), |e| e - 1);
        self.source[start..end].trim_end_matches('\r')
    }

    /// Renders one diagnostic like rustc: the message, `--> file:line:col`, the source line
    /// with a caret line under the span and its label, secondary labels, and the hint.
    pub fn render(&self, d: &Diagnostic, out: &mut String) {
        use std::fmt::Write as _;
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let (line, col) = self.locate(d.span().start as usize);
        let width = (self.line_starts.len()).to_string().len().max(2);
        let pad = " ".repeat(width);
        let _ = writeln!(out, "{kind}[{}]: {}", d.code, d.message);
        let _ = writeln!(out, "{pad}--> {}:{}:{}", self.name, line + 1, col);
        let _ = writeln!(out, "{pad} |");
        for (i, label) in d.labels.iter().enumerate() {
            let (l, label_col) = self.locate(label.span.start as usize);
            if i > 0 {
                let _ = writeln!(out, "{pad}::: {}:{}:{}", self.name, l + 1, label_col);
            }
            // Tabs are shown as one space each so that carets, counted in characters, line up.
            let text = self.line_text(l).replace('\t', " ");
            let _ = writeln!(out, "{:>width$} | {text}", l + 1);
            // The span may start past the shown text (a `\r` before the newline) or run over
            // several lines; carets stay within the shown line.
            let line_end = self.line_starts[l] + text.len();
            let start = (label.span.start as usize).min(line_end);
            let end = (label.span.end as usize).max(start).min(line_end);
            let (_, c) = self.locate(start);
            let (_, end_col) = self.locate(end);
            let n = end_col.saturating_sub(c).max(1);
            let mark = if i == 0 { "^" } else { "-" };
            let _ = write!(out, "{pad} | {}{}", " ".repeat(c - 1), mark.repeat(n));
            if label.message.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, " {}", label.message);
            }
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
        out.push('\n');
    }
}

/// Renders diagnostics against the file they are about: `file:line:col`, the source line, a
/// caret under the span and the hint. Plain text, no colour.
pub fn render(file_name: &str, source: &str, diags: &[Diagnostic]) -> String {
    let map = SourceMap::new(file_name, source);
    let mut out = String::new();
    for d in diags {
        map.render(d, &mut out);
    }
    out
}

/// 1-based line and column of a byte offset (columns count characters).
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A short `file:line:col: error[CODE]: message` line per diagnostic, for logs and tests that
/// do not want the full rendering.
pub fn render_short(file_name: &str, source: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let (line, col) = line_col(source, d.span().start as usize);
        out.push_str(&format!("{file_name}:{line}:{col}: {d}\n"));
    }
    out
}
