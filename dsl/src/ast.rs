//! The syntax tree of a `.nf` file, exactly as written, with a byte span on every node.
//!
//! Nothing here is resolved: a `Path` such as `ip.src` or `tcp` may turn out to be a field, a
//! header, a named constant or a declaration; the checker (`crate::check`) decides and reports
//! what does not fit. Keeping the tree unresolved lets the checker collect every error of a
//! file in one run instead of stopping at the first.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A byte range into the source text. `u32` keeps nodes small; files over 4 GiB are refused by
/// the parser.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// First byte of the node.
    pub start: u32,
    /// One past the last byte of the node.
    pub end: u32,
}

impl Span {
    /// A span covering `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span as a `Range<usize>` for slicing the source.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// An identifier with where it was written.
#[derive(Clone, PartialEq, Eq)]
pub struct Ident {
    /// The identifier's text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} @{:?}", self.name, self.span)
    }
}

/// A dotted name such as `ip.src`, `vlan.inner.id` or `blocked`.
#[derive(Clone, PartialEq, Eq)]
pub struct Path {
    /// The dot-separated parts.
    pub parts: Vec<String>,
    /// Where the whole path was written.
    pub span: Span,
}

impl Path {
    /// The path as written, parts joined with dots.
    pub fn text(&self) -> String {
        self.parts.join(".")
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} @{:?}", self.text(), self.span)
    }
}

/// A whole `.nf` file.
#[derive(Clone, Debug, Default)]
pub struct File {
    /// Top-level `const NAME = VALUE` lines, in file order.
    pub consts: Vec<ConstDecl>,
    /// `policy` blocks, in file order.
    pub policies: Vec<Policy>,
}

/// `const NAME = VALUE`.
#[derive(Clone, Debug)]
pub struct ConstDecl {
    /// The constant's name.
    pub name: Ident,
    /// Its value.
    pub value: Value,
}

/// The hook as written: `xdp`, `tc ingress`, `tc egress` (validated by the checker).
#[derive(Clone, Debug)]
pub struct HookSpec {
    /// The hook's words.
    pub words: Vec<String>,
    /// Where the hook was written.
    pub span: Span,
}

/// `policy NAME on HOOK { ... }`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The policy's name.
    pub name: Ident,
    /// The hook it attaches to.
    pub hook: HookSpec,
    /// `offload TARGET` clauses (in the header or the body).
    pub offload: Vec<Ident>,
    /// `set` declarations.
    pub sets: Vec<SetDecl>,
    /// `table` declarations.
    pub tables: Vec<TableDecl>,
    /// `counter` declarations.
    pub counters: Vec<CounterDecl>,
    /// `limiter` declarations.
    pub limiters: Vec<LimiterDecl>,
    /// `pool` declarations.
    pub pools: Vec<PoolDecl>,
    /// Rules in file order (which is evaluation order).
    pub rules: Vec<Rule>,
    /// `default` lines; the checker requires exactly one.
    pub defaults: Vec<DefaultDecl>,
    /// `test` blocks.
    pub tests: Vec<TestBlock>,
    /// The whole block.
    pub span: Span,
}

/// A declaration option: `key ...`, `capacity N`, `rate R`, `burst B`, or a flag such as
/// `dynamic`.
#[derive(Clone, Debug)]
pub enum DeclOpt {
    /// `key FIELD` or `key (FIELD, ...)`.
    Key(Vec<Path>, Span),
    /// `NAME VALUE` for `capacity`, `rate`, `burst`.
    Valued(Ident, Value),
    /// A bare word such as `dynamic`.
    Flag(Ident),
}

/// `set NAME: KIND [, opts] [= { values }]`.
#[derive(Clone, Debug)]
pub struct SetDecl {
    /// The set's name.
    pub name: Ident,
    /// The kind's first word (`ipv4`, `port`, `u16`, ...).
    pub kind: Ident,
    /// Whether `prefix` followed the kind.
    pub prefix: Option<Span>,
    /// Options.
    pub opts: Vec<DeclOpt>,
    /// Initial contents.
    pub values: Vec<Value>,
    /// The whole declaration.
    pub span: Span,
}

/// `table NAME: key (FIELDS) -> TEMPLATE [, opts] [entries { ... }]`.
#[derive(Clone, Debug)]
pub struct TableDecl {
    /// The table's name.
    pub name: Ident,
    /// Key fields.
    pub key: Vec<Path>,
    /// The actions entries may use (`pass | drop | redirect`).
    pub template: Vec<Ident>,
    /// Options.
    pub opts: Vec<DeclOpt>,
    /// Entries.
    pub entries: Vec<TableEntry>,
    /// The whole declaration.
    pub span: Span,
}

/// `(v, ...) => action` in a table.
#[derive(Clone, Debug)]
pub struct TableEntry {
    /// The key values, one per key field.
    pub key: Vec<Value>,
    /// The entry's action.
    pub action: Action,
    /// The whole entry.
    pub span: Span,
}

/// `counter NAME: key ... [, capacity N]`.
#[derive(Clone, Debug)]
pub struct CounterDecl {
    /// The counter's name.
    pub name: Ident,
    /// Options (must include `key`).
    pub opts: Vec<DeclOpt>,
    /// The whole declaration.
    pub span: Span,
}

/// `limiter NAME: key ..., rate R, burst B [, capacity N]`.
#[derive(Clone, Debug)]
pub struct LimiterDecl {
    /// The limiter's name.
    pub name: Ident,
    /// Options.
    pub opts: Vec<DeclOpt>,
    /// The whole declaration.
    pub span: Span,
}

/// `pool NAME = { ADDR [weight W], ... }`.
#[derive(Clone, Debug)]
pub struct PoolDecl {
    /// The pool's name.
    pub name: Ident,
    /// Options (`dynamic`, `capacity N`).
    pub opts: Vec<DeclOpt>,
    /// Backends with optional weights.
    pub backends: Vec<(Value, Option<Value>)>,
    /// The whole declaration.
    pub span: Span,
}

/// `rule NAME: PREDICATE [=> ACTIONS]`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's name.
    pub name: Ident,
    /// Its predicate.
    pub pred: Pred,
    /// Its actions (may omit the terminal only when the predicate uses `match TABLE`).
    pub actions: Vec<Action>,
    /// The whole rule.
    pub span: Span,
}

/// `default ACTIONS`.
#[derive(Clone, Debug)]
pub struct DefaultDecl {
    /// The default's actions.
    pub actions: Vec<Action>,
    /// The whole line.
    pub span: Span,
}

/// A predicate.
#[derive(Clone, Debug)]
pub enum Pred {
    /// All must hold.
    And(Vec<Pred>, Span),
    /// One must hold.
    Or(Vec<Pred>, Span),
    /// Negation.
    Not(Box<Pred>, Span),
    /// An atom.
    Atom(Atom),
}

impl Pred {
    /// Where the predicate was written.
    pub fn span(&self) -> Span {
        match self {
            Pred::And(_, s) | Pred::Or(_, s) | Pred::Not(_, s) => *s,
            Pred::Atom(a) => a.span,
        }
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// An atom of a predicate.
#[derive(Clone, Debug)]
pub struct Atom {
    /// What the atom says.
    pub kind: AtomKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of atoms.
#[derive(Clone, Debug)]
pub enum AtomKind {
    /// A bare name: header presence (`tcp`, `ipv6`, `frag`).
    Presence(Path),
    /// `FIELD [& MASK] OP VALUE`.
    Cmp {
        /// The field.
        field: Path,
        /// The optional mask.
        mask: Option<Value>,
        /// The operator.
        op: CmpOp,
        /// The right-hand side.
        value: Value,
    },
    /// `FIELD [& MASK] in TARGET`.
    In {
        /// The field.
        field: Path,
        /// The optional mask.
        mask: Option<Value>,
        /// A braced list, or a single value (range, prefix, set name).
        target: InTarget,
    },
    /// `FIELD has FLAGS`.
    Has {
        /// The field.
        field: Path,
        /// The flags that must all be set.
        flags: Value,
    },
    /// `over LIMITER`.
    Over(Ident),
    /// `match TABLE`.
    Match(Ident),
    /// `payload[A..B] OP BYTES`.
    Payload {
        /// First byte offset into the L4 payload.
        start: Value,
        /// One past the last byte.
        end: Value,
        /// `==` or `!=`.
        op: CmpOp,
        /// The bytes (a string or a hex byte string).
        bytes: Value,
    },
}

/// The right-hand side of `in`.
#[derive(Clone, Debug)]
pub enum InTarget {
    /// `{ v1, v2, ... }`.
    List(Vec<Value>, Span),
    /// A single value: a range, a prefix, or a name (set or constant).
    One(Value),
}

/// A value as written.
#[derive(Clone, Debug)]
pub struct Value {
    /// What it is.
    pub kind: ValueKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of values.
#[derive(Clone, Debug)]
pub enum ValueKind {
    /// A decimal integer (with its size suffix applied: K = 1024, M = 1024², G = 1024³).
    Int(u128),
    /// A `0x` literal; kept as digits because it is an integer or a byte string by context.
    Hex(String),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
    /// An IPv4 prefix (`addr/len`), `len` as written (validated by the checker).
    Prefix4(Ipv4Addr, u32),
    /// An IPv6 prefix.
    Prefix6(Ipv6Addr, u32),
    /// A MAC address.
    Mac([u8; 6]),
    /// A string, escapes decoded.
    Str(Vec<u8>),
    /// A rate in events per second (`N/s`, `N/ms`).
    Rate(u128),
    /// A name: constant, named value (`tcp`, `syn`) or declaration.
    Name(Path),
    /// `lo..hi`, inclusive.
    Range(Box<Value>, Box<Value>),
    /// `a|b|...`: the bitwise union of flags or constants.
    Union(Vec<Value>),
    /// A literal that could not be read (for example an out-of-range IPv6 group); the parser
    /// has already reported it.
    Invalid,
}

/// A terminal or non-terminal action.
#[derive(Clone, Debug)]
pub struct Action {
    /// What the action does.
    pub kind: ActionKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of actions, as written.
#[derive(Clone, Debug)]
pub enum ActionKind {
    /// A bare word: `pass`, `drop`, `tx`, `abort` (or a misspelling, reported by the checker).
    Word(Ident),
    /// `redirect "IFNAME"`.
    Redirect(Vec<u8>, Span),
    /// `redirect xsk`: to the AF_XDP socket bound on the packet's receive queue.
    RedirectXsk(Span),
    /// `count NAME`, `dec FIELD`, `sample N`, `mark N`: the word and its argument.
    WithArg(Ident, Value),
    /// `set FIELD = VALUE`.
    Set(Path, Value),
    /// `balance POOL by (FIELDS) [sticky N] [encap KIND[(PORT)] [from ADDR]] [via fib]`.
    Balance {
        /// The pool.
        pool: Ident,
        /// The hashed fields.
        by: Vec<Path>,
        /// `sticky N`: the flow table's size.
        sticky: Option<Value>,
        /// `encap ...`.
        encap: Option<EncapSpec>,
        /// `via fib` (the word after `via`).
        via: Option<Ident>,
    },
}

/// `encap ipip [from ADDR]` or `encap gue(PORT) [from ADDR]`, as written.
#[derive(Clone, Debug)]
pub struct EncapSpec {
    /// The kind (`ipip`, `gue`; others reported by the checker).
    pub kind: Ident,
    /// The value in parentheses (GUE's UDP port).
    pub port: Option<Value>,
    /// The outer source address.
    pub from: Option<Value>,
    /// The whole `encap ...` clause.
    pub span: Span,
}

/// `test "NAME" { ... }`.
#[derive(Clone, Debug)]
pub struct TestBlock {
    /// The test's name.
    pub name: String,
    /// Where the name was written.
    pub name_span: Span,
    /// Statements in order.
    pub stmts: Vec<TestStmt>,
    /// The whole block.
    pub span: Span,
}

/// A statement of a test block.
#[derive(Clone, Debug)]
pub enum TestStmt {
    /// `send [N x] PACKET`.
    Send {
        /// How many copies (1 when omitted).
        count: Option<Value>,
        /// The packet.
        packet: PacketLit,
        /// The whole statement.
        span: Span,
    },
    /// `expect [N x] VERDICT [by RULE]`.
    ExpectVerdict {
        /// How many of the last batch (all of it when omitted).
        count: Option<Value>,
        /// The verdict as written.
        verdict: VerdictLit,
        /// The rule (or `default`).
        by: Option<Ident>,
        /// The whole statement.
        span: Span,
    },
    /// `expect counter NAME[KEY] == N [packets|bytes]`.
    ExpectCounter {
        /// The counter.
        name: Ident,
        /// Key values, one per key field.
        key: Vec<Value>,
        /// The expected number.
        value: Value,
        /// `bytes` when the byte count is meant.
        bytes: bool,
        /// The whole statement.
        span: Span,
    },
    /// `expect out LAYERS`.
    ExpectOut {
        /// The fields the emitted packet must have.
        packet: PacketLit,
        /// The whole statement.
        span: Span,
    },
}

/// A verdict in an `expect`.
#[derive(Clone, Debug)]
pub enum VerdictLit {
    /// `pass`, `drop`, `tx`, `abort` (or a misspelling).
    Word(Ident),
    /// `redirect "IF"`.
    Redirect(Vec<u8>, Span),
    /// `redirect xsk`.
    RedirectXsk(Span),
}

/// A packet literal: layers joined by `/`.
#[derive(Clone, Debug)]
pub struct PacketLit {
    /// The layers, outermost first.
    pub layers: Vec<LayerLit>,
    /// The whole literal.
    pub span: Span,
}

/// One layer: `ipv4(src=1.2.3.4, ttl=3)`, `payload("x")`, `truncate(20)`.
#[derive(Clone, Debug)]
pub struct LayerLit {
    /// The layer's name.
    pub name: Ident,
    /// `name=value` arguments, and positional ones (name `None`).
    pub args: Vec<(Option<Ident>, Value)>,
    /// The whole layer.
    pub span: Span,
}
