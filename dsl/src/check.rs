//! The checker: resolves names, types values against fields, checks ranges, address families,
//! hook capabilities and declarations, and lowers the AST to [`crate::checked`].
//!
//! It never stops at the first problem: each check that fails records a diagnostic and the
//! checker carries on with a placeholder, so one run reports every error of a file. Warnings
//! (shadowed rules, always-false predicates, unused declarations) come from `crate::analysis`
//! once the file is otherwise clean.

use crate::analysis;
use crate::ast::{self, CmpOp, Path, Span, ValueKind};
use crate::checked::*;
use crate::diag::Diagnostic;
use crate::packet::{self, ArgType, ArgValue, LayerKind, LayerSpec};
use std::collections::{HashMap, HashSet};

/// What a check is run for.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// The target asked for on the command line (`--target`); a policy's own `offload`
    /// clause applies when this is `None`.
    pub target: Option<Target>,
}

/// The largest map the host target accepts (entries).
pub const HOST_MAX_CAPACITY: u64 = 1 << 24;
/// The largest map the `nfp` target accepts by default (entries); the offload profile can
/// refine this from a card's firmware limits.
pub const NFP_MAX_CAPACITY: u64 = 1 << 16;
/// The capacity of a counter, limiter or dynamic set when none is written.
pub const DEFAULT_CAPACITY: u32 = 65536;

/// A capability a policy may need from its target, in the manner of naga's `Capabilities`:
/// the checker records what each construct needs, and a target profile says what it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    /// No capabilities.
    pub const EMPTY: Capabilities = Capabilities(0);
    /// A monotonic clock (`bpf_ktime_get_ns`), needed by limiters.
    pub const CLOCK: Capabilities = Capabilities(1);
    /// Redirecting to another interface.
    pub const REDIRECT: Capabilities = Capabilities(1 << 1);
    /// FIB lookups (`balance ... via fib`).
    pub const FIB: Capabilities = Capabilities(1 << 2);
    /// Longest-prefix-match maps for dynamic prefix sets.
    pub const LPM_MAP: Capabilities = Capabilities(1 << 3);
    /// LRU maps, needed for bounded per-key counters and limiters.
    pub const LRU_MAP: Capabilities = Capabilities(1 << 4);
    /// Per-CPU maps.
    pub const PERCPU_MAP: Capabilities = Capabilities(1 << 5);
    /// A ring buffer and `bpf_xdp_load_bytes`, needed by `sample`.
    pub const RINGBUF: Capabilities = Capabilities(1 << 6);
    /// Context fields beyond the packet bounds (`pkt.ifindex`, `pkt.rxq`, `pkt.mark`) and
    /// writes to the context (`mark`).
    pub const CTX_META: Capabilities = Capabilities(1 << 7);
    /// Every capability: the host kernel.
    pub const ALL: Capabilities = Capabilities(u32::MAX);

    /// Whether every capability of `other` is in `self`.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// What a target offers.
    pub fn of(target: Target) -> Capabilities {
        match target {
            Target::Host => Capabilities::ALL,
            Target::Nfp => Capabilities::EMPTY,
        }
    }

    /// Why a construct needing `self` cannot run on a target lacking it.
    pub fn reason(self) -> &'static str {
        match self {
            Capabilities::CLOCK => "limiters need bpf_ktime_get_ns, which the NIC lacks",
            Capabilities::REDIRECT => "the NIC cannot redirect to another interface",
            Capabilities::FIB => "FIB lookups (bpf_fib_lookup) are not available on the NIC",
            Capabilities::LPM_MAP => {
                "dynamic prefix sets need an LPM trie map, which the NIC does not support"
            }
            Capabilities::LRU_MAP => {
                "per-key state needs an LRU map, which the NIC does not support"
            }
            Capabilities::PERCPU_MAP => "per-CPU maps are not supported on the NIC",
            Capabilities::RINGBUF => {
                "sampling writes to a ring buffer, which the NIC lacks (perf-event sampling on the NIC is not built yet)"
            }
            Capabilities::CTX_META => {
                "the NIC's context carries only the packet bounds: no interface, queue or mark"
            }
            _ => "the target lacks a needed capability",
        }
    }
}

/// Parses and checks a source file.
pub fn check_source(source: &str, opts: &CheckOptions) -> (Option<Program>, Vec<Diagnostic>) {
    let (file, mut diags) = crate::parse::parse(source);
    if diags.iter().any(|d| matches!(d.code, "E0002" | "E0005")) {
        return (None, diags);
    }
    let (prog, more) = check(&file, opts);
    let parse_failed = diags.iter().any(Diagnostic::is_error);
    // Rules holding an unreadable literal look always-false to the analysis; those warnings
    // would only repeat the literal's error.
    diags.extend(
        more.into_iter()
            .filter(|d| !(parse_failed && matches!(d.code, "W0001" | "W0002"))),
    );
    let has_errors = diags.iter().any(Diagnostic::is_error);
    (if has_errors { None } else { prog }, diags)
}

/// Checks a parsed file. Returns the checked program when there are no errors.
pub fn check(file: &ast::File, opts: &CheckOptions) -> (Option<Program>, Vec<Diagnostic>) {
    let mut cx = Checker {
        diags: Vec::new(),
        consts: HashMap::new(),
        resolved_consts: HashMap::new(),
        resolving: HashSet::new(),
    };
    for c in &file.consts {
        if cx.consts.contains_key(&c.name.name) {
            cx.diags.push(
                Diagnostic::error(
                    "E0107",
                    c.name.span,
                    format!("constant `{}` is defined twice", c.name.name),
                )
                .with_label("second definition")
                .with_help("rename one of them"),
            );
            continue;
        }
        cx.consts.insert(c.name.name.clone(), c.value.clone());
    }
    let mut policies = Vec::new();
    let mut seen = HashMap::new();
    for p in &file.policies {
        if let Some(prev) = seen.insert(p.name.name.clone(), p.name.span) {
            cx.diags.push(
                Diagnostic::error(
                    "E0107",
                    p.name.span,
                    format!("policy `{}` is defined twice", p.name.name),
                )
                .with_note(prev, "first defined here")
                .with_help("policy names must be unique within a file; rename one"),
            );
        }
        if let Some(pol) = cx.policy(p, opts) {
            policies.push(pol);
        }
    }
    if file.policies.is_empty() && cx.diags.is_empty() {
        cx.diags.push(
            Diagnostic::error("E0119", Span::new(0, 0), "no policy in this file")
                .with_help("add `policy NAME on xdp { ... default pass }`"),
        );
    }
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    if !has_errors {
        for p in &policies {
            analysis::warnings(p, &mut cx.diags);
        }
    }
    cx.diags.sort_by_key(|d| (d.span().start, d.severity));
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    (
        if has_errors {
            None
        } else {
            Some(Program { policies })
        },
        cx.diags,
    )
}

/// A declaration name's meaning within a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Decl {
    Set(SetId),
    Table(TableId),
    Counter(CounterId),
    Limiter(LimiterId),
    Pool(PoolId),
}

impl Decl {
    fn noun(self) -> &'static str {
        &self.what()[2..]
    }

    fn what(self) -> &'static str {
        match self {
            Decl::Set(_) => "a set",
            Decl::Table(_) => "a table",
            Decl::Counter(_) => "a counter",
            Decl::Limiter(_) => "a limiter",
            Decl::Pool(_) => "a pool",
        }
    }
}

struct Checker {
    diags: Vec<Diagnostic>,
    consts: HashMap<String, ast::Value>,
    /// Constants already resolved.
    resolved_consts: HashMap<String, Resolved>,
    /// Constants being resolved (for cycle detection).
    resolving: HashSet<String>,
}

/// Per-policy state while checking.
struct Pcx {
    hook: Hook,
    target: Target,
    target_span: Span,
    names: HashMap<String, (Decl, Span)>,
    used: HashSet<Decl>,
    sets: Vec<Set>,
    tables: Vec<Table>,
    counters: Vec<Counter>,
    limiters: Vec<Limiter>,
    pools: Vec<Pool>,
}

/// Named constants every policy can use (section 2 of the language reference), plus the
/// extension-header kinds of `ipv6ext(kind=...)`.
pub fn builtin_constant(name: &str) -> Option<u128> {
    Some(match name {
        "arp" => 0x0806,
        "vlan" => 0x8100,
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "sctp" => 132,
        "fin" => 0x01,
        "syn" => 0x02,
        "rst" => 0x04,
        "psh" => 0x08,
        "ack" => 0x10,
        "urg" => 0x20,
        "ece" => 0x40,
        "cwr" => 0x80,
        _ => return None,
    })
}

/// Ethertype constants; `ipv4`/`ipv6` name both a header and an ethertype, resolved here only
/// in value position.
fn ethertype_constant(name: &str) -> Option<u128> {
    match name {
        "ipv4" => Some(0x0800),
        "ipv6" => Some(0x86dd),
        _ => None,
    }
}

fn ext_kind(name: &str) -> Option<u128> {
    match name {
        "hop" => Some(0),
        "routing" => Some(43),
        "dest" => Some(60),
        "frag" => Some(44),
        _ => None,
    }
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|&(d, c)| d <= if c.len() <= 4 { 1 } else { 2.max(c.len() / 3) })
        .min()
        .map(|(_, c)| c)
}

/// A value resolved through constants, with the span of its use.
#[derive(Clone)]
enum Resolved {
    Scalar(Scalar),
    Prefix(Scalar, u32),
    Range(Box<(Resolved, Resolved)>),
    Bytes(Vec<u8>),
    Rate(u128),
    /// A name that is not a constant: maybe a declaration.
    Name(Path),
    Invalid,
}

impl Checker {
    fn err(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, span, msg));
        let n = self.diags.len() - 1;
        &mut self.diags[n]
    }

    fn help(
        &mut self,
        code: &'static str,
        span: Span,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(code, span, msg).with_help(help));
    }

    // ---------------------------------------------------------------------------------------
    // Values
    // ---------------------------------------------------------------------------------------

    /// Resolves names through user constants and built-ins, without typing.
    fn resolve(&mut self, v: &ast::Value) -> Resolved {
        match &v.kind {
            ValueKind::Int(n) => Resolved::Scalar(Scalar::int(*n)),
            ValueKind::Hex(h) => match u128::from_str_radix(h, 16) {
                Ok(n) if h.len() <= 32 => Resolved::Scalar(Scalar::int(n)),
                _ => Resolved::Bytes(hex_bytes(h)),
            },
            ValueKind::Ipv4(a) => Resolved::Scalar(Scalar {
                family: Family::V4,
                bits: u128::from(u32::from(*a)),
            }),
            ValueKind::Ipv6(a) => Resolved::Scalar(Scalar {
                family: Family::V6,
                bits: u128::from(*a),
            }),
            ValueKind::Prefix4(a, l) => Resolved::Prefix(
                Scalar {
                    family: Family::V4,
                    bits: u128::from(u32::from(*a)),
                },
                *l,
            ),
            ValueKind::Prefix6(a, l) => Resolved::Prefix(
                Scalar {
                    family: Family::V6,
                    bits: u128::from(*a),
                },
                *l,
            ),
            ValueKind::Mac(m) => {
                let mut b = [0u8; 16];
                b[10..].copy_from_slice(m);
                Resolved::Scalar(Scalar {
                    family: Family::Mac,
                    bits: u128::from_be_bytes(b),
                })
            }
            ValueKind::Str(s) => Resolved::Bytes(s.clone()),
            ValueKind::Rate(r) => Resolved::Rate(*r),
            ValueKind::Range(lo, hi) => {
                let lo = self.resolve(lo);
                let hi = self.resolve(hi);
                Resolved::Range(Box::new((lo, hi)))
            }
            ValueKind::Union(parts) => {
                let mut acc = 0u128;
                for p in parts {
                    match self.resolve(p) {
                        Resolved::Scalar(s) if s.family == Family::Int => acc |= s.bits,
                        Resolved::Invalid => return Resolved::Invalid,
                        _ => {
                            self.help(
                                "E0103",
                                p.span,
                                "only integers and flags can be combined with `|`",
                                "write flags as `syn|ack` or integers as `0x10|0x02`",
                            );
                            return Resolved::Invalid;
                        }
                    }
                }
                Resolved::Scalar(Scalar::int(acc))
            }
            ValueKind::Name(p) => {
                if p.parts.len() == 1 {
                    let name = &p.parts[0];
                    if let Some(done) = self.resolved_consts.get(name) {
                        return done.clone();
                    }
                    if let Some(c) = self.consts.get(name).cloned() {
                        // Each constant is resolved once and remembered, so chains and
                        // repeated references cost linear time; a constant met again while it
                        // is being resolved is a cycle.
                        if !self.resolving.insert(name.clone()) {
                            self.help(
                                "E0102",
                                p.span,
                                format!("constant `{name}` refers to itself"),
                                "constants must not form a cycle",
                            );
                            return Resolved::Invalid;
                        }
                        let r = self.resolve(&c);
                        self.resolving.remove(name);
                        self.resolved_consts.insert(name.clone(), r.clone());
                        return r;
                    }
                    if let Some(n) = builtin_constant(name).or_else(|| ethertype_constant(name)) {
                        return Resolved::Scalar(Scalar::int(n));
                    }
                }
                Resolved::Name(p.clone())
            }
            ValueKind::Invalid => Resolved::Invalid,
        }
    }

    /// Types a resolved scalar against a field type; reports mismatches at `span`.
    fn fit(&mut self, s: Scalar, ty: FieldType, span: Span, what: &str) -> Option<Scalar> {
        let ok = match (ty, s.family) {
            (FieldType::Uint(bits), Family::Int) => {
                if bits < 128 && s.bits >> bits != 0 {
                    let max = (1u128 << bits) - 1;
                    self.diags.push(
                        Diagnostic::error(
                            "E0105",
                            span,
                            format!("value {} is out of range for {what}", s.bits),
                        )
                        .with_label(format!("{what} is {bits} bits"))
                        .with_help(format!("use a value from 0 to {max}")),
                    );
                    return None;
                }
                true
            }
            (FieldType::Ipv4, Family::V4)
            | (FieldType::Ipv6, Family::V6)
            | (FieldType::IpAny, Family::V4 | Family::V6)
            | (FieldType::Mac, Family::Mac) => true,
            (FieldType::Ipv4 | FieldType::Ipv6, Family::V4 | Family::V6) => {
                let fam = if s.family == Family::V4 {
                    "IPv4"
                } else {
                    "IPv6"
                };
                let d = Diagnostic::error(
                    "E0104",
                    span,
                    format!("address family mismatch: {what} takes {}, found an {fam} address", ty.describe()),
                )
                .with_label(format!("an {fam} address"))
                .with_help("compare with an address of the field's family, or use the `ip.` field, which takes both");
                self.diags.push(d);
                return None;
            }
            _ => false,
        };
        if ok {
            return Some(s);
        }
        let found = match s.family {
            Family::Int => "an integer",
            Family::V4 => "an IPv4 address",
            Family::V6 => "an IPv6 address",
            Family::Mac => "a MAC address",
        };
        let d = Diagnostic::error(
            "E0103",
            span,
            format!(
                "type mismatch: {what} takes {}, found {found}",
                ty.describe()
            ),
        )
        .with_label(found.to_string())
        .with_help(format!("write {}", ty.describe()));
        self.diags.push(d);
        None
    }

    /// A single value of a field's type (no prefixes, ranges or names of declarations).
    fn scalar(&mut self, v: &ast::Value, ty: FieldType, what: &str) -> Option<Scalar> {
        match self.resolve(v) {
            Resolved::Scalar(s) => self.fit(s, ty, v.span, what),
            Resolved::Invalid => None,
            Resolved::Prefix(..) => {
                self.help(
                    "E0103",
                    v.span,
                    format!("a prefix is not a single value of {what}"),
                    "use `FIELD in PREFIX` to test a prefix",
                );
                None
            }
            Resolved::Range(..) => {
                self.help(
                    "E0103",
                    v.span,
                    format!("a range is not a single value of {what}"),
                    "use `FIELD in LO..HI` to test a range",
                );
                None
            }
            Resolved::Bytes(_) => {
                self.help(
                    "E0103",
                    v.span,
                    format!(
                        "type mismatch: {what} takes {}, found a string",
                        ty.describe()
                    ),
                    "strings and byte strings are only compared with `payload[A..B]`",
                );
                None
            }
            Resolved::Rate(_) => {
                self.help(
                    "E0103",
                    v.span,
                    format!(
                        "type mismatch: {what} takes {}, found a rate",
                        ty.describe()
                    ),
                    "rates are only written in `limiter` declarations",
                );
                None
            }
            Resolved::Name(p) => {
                self.unknown_value_name(&p, Some(ty));
                None
            }
        }
    }

    fn unknown_value_name(&mut self, p: &Path, ty: Option<FieldType>) {
        let name = p.text();
        let mut cands: Vec<&str> = vec![
            "arp", "vlan", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "gre", "esp", "fin",
            "syn", "rst", "psh", "ack", "urg", "ece", "cwr",
        ];
        let consts: Vec<String> = self.consts.keys().cloned().collect();
        cands.extend(consts.iter().map(String::as_str));
        let mut d = Diagnostic::error("E0102", p.span, format!("unknown name `{name}`"))
            .with_label("not a constant or a named value");
        d.help = Some(match closest(&name, cands) {
            Some(c) => format!("did you mean `{c}`?"),
            None => match ty {
                Some(t) => format!(
                    "write {} or define it with `const {name} = ...`",
                    t.describe()
                ),
                None => format!("define it with `const {name} = ...` at the top of the file"),
            },
        });
        self.diags.push(d);
    }

    /// A member of a value list or set: value, prefix or range, typed against `ty`.
    fn item(&mut self, v: &ast::Value, ty: FieldType, what: &str) -> Option<Item> {
        match self.resolve(v) {
            Resolved::Prefix(s, len) => self.prefix(s, len, ty, v.span, what),
            Resolved::Range(b) => {
                let (lo, hi) = *b;
                let (lspan, hspan) = match &v.kind {
                    ValueKind::Range(lv, hv) => (lv.span, hv.span),
                    _ => (v.span, v.span),
                };
                let (Resolved::Scalar(lo), Resolved::Scalar(hi)) = (&lo, &hi) else {
                    if !matches!(lo, Resolved::Invalid) && !matches!(hi, Resolved::Invalid) {
                        self.help(
                            "E0103",
                            v.span,
                            "a range's ends must be single values",
                            "write `LO..HI` with two numbers or two addresses",
                        );
                    }
                    return None;
                };
                let lo = self.fit(*lo, ty, lspan, what)?;
                let hi = self.fit(*hi, ty, hspan, what)?;
                if lo.family != hi.family {
                    self.help(
                        "E0104",
                        v.span,
                        "a range's ends are of different families",
                        "write both ends in one address family",
                    );
                    return None;
                }
                if lo.bits > hi.bits {
                    self.err(
                        "E0105",
                        v.span,
                        format!("empty range: {lo} is greater than {hi}"),
                    )
                    .help = Some(format!("write the smaller end first: `{hi}..{lo}`"));
                    return None;
                }
                Some(if lo == hi {
                    Item::Value(lo)
                } else {
                    Item::Range(lo, hi)
                })
            }
            Resolved::Name(p) => {
                self.unknown_value_name(&p, Some(ty));
                None
            }
            _ => self.scalar(v, ty, what).map(Item::Value),
        }
    }

    fn prefix(
        &mut self,
        s: Scalar,
        len: u32,
        ty: FieldType,
        span: Span,
        what: &str,
    ) -> Option<Item> {
        let s = self.fit(s, ty, span, what)?;
        let width = family_bits(s.family);
        if len > width {
            self.err(
                "E0105",
                span,
                format!("prefix length {len} is longer than the address ({width} bits)"),
            )
            .help = Some(format!("use a length from 0 to {width}"));
            return None;
        }
        let host = width - len;
        let mask = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        if s.bits & mask != 0 {
            let net = Scalar {
                bits: s.bits & !mask,
                ..s
            };
            self.diags.push(
                Diagnostic::warning(
                    "W0004",
                    span,
                    format!("prefix has host bits set; it means {net}/{len}"),
                )
                .with_help(format!("write `{net}/{len}`")),
            );
        }
        Some(Item::Prefix(
            Scalar {
                bits: s.bits & !mask,
                ..s
            },
            len as u8,
        ))
    }

    fn int_value(&mut self, v: &ast::Value, what: &str, max: u128) -> Option<u128> {
        let bits = 128 - max.leading_zeros();
        let s = self.scalar(v, FieldType::Uint(bits.max(1)), what)?;
        if s.bits > max {
            self.err("E0105", v.span, format!("{what} {} is too large", s.bits))
                .help = Some(format!("use at most {max}"));
            return None;
        }
        Some(s.bits)
    }

    // ---------------------------------------------------------------------------------------
    // Fields
    // ---------------------------------------------------------------------------------------

    fn field(&mut self, p: &Path, pcx: &Pcx) -> Option<Field> {
        let name = p.text();
        let Some(f) = Field::from_name(&name) else {
            let mut d = Diagnostic::error("E0101", p.span, format!("unknown field `{name}`"))
                .with_label("no such field");
            if let Some(h) = Header::from_name(&name) {
                d.help = Some(format!(
                    "`{}` is a header: test its presence alone (`{}`), or name one of its fields ({})",
                    h.name(),
                    h.name(),
                    fields_of(h)
                ));
            } else {
                d.help = Some(match closest(&name, Field::ALL.iter().map(|f| f.name())) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => match p.parts.first().and_then(|h| Header::from_name(h)) {
                        Some(h) => format!("the fields of `{}` are {}", h.name(), fields_of(h)),
                        None => {
                            "see the field table in section 4 of the language reference".to_string()
                        }
                    },
                });
            }
            self.diags.push(d);
            return None;
        };
        match (f, pcx.hook) {
            (Field::PktRxq, h) if h.is_tc() => {
                self.help(
                    "E0106",
                    p.span,
                    format!("`pkt.rxq` is not available on {}", h.as_str()),
                    "the receive queue is an XDP field; attach the policy on xdp",
                );
                None
            }
            (Field::PktMark, Hook::Xdp) => {
                self.help(
                    "E0106",
                    p.span,
                    "`pkt.mark` is not available on xdp",
                    "the skb mark exists only on tc hooks",
                );
                None
            }
            (Field::PktIfindex | Field::PktRxq | Field::PktMark, _) => {
                self.needs(pcx, Capabilities::CTX_META, p.span);
                Some(f)
            }
            _ => Some(f),
        }
    }

    fn field_list(&mut self, paths: &[Path], pcx: &Pcx) -> Option<Vec<Field>> {
        let mut out = Vec::new();
        let mut ok = true;
        for p in paths {
            match self.field(p, pcx) {
                Some(f) => out.push(f),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    // ---------------------------------------------------------------------------------------
    // Policies
    // ---------------------------------------------------------------------------------------

    fn policy(&mut self, p: &ast::Policy, opts: &CheckOptions) -> Option<Policy> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let hook = match p
            .hook
            .words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["xdp"] => Some(Hook::Xdp),
            ["tc", "ingress"] => Some(Hook::TcIngress),
            ["tc", "egress"] => Some(Hook::TcEgress),
            _ => {
                self.help(
                    "E0114",
                    p.hook.span,
                    format!("unknown hook `{}`", p.hook.words.join(" ")),
                    "write `on xdp`, `on tc ingress` or `on tc egress`",
                );
                None
            }
        };
        let mut target = Target::Host;
        let mut target_span = p.name.span;
        for o in &p.offload {
            match o.name.as_str() {
                "nfp" => {
                    target = Target::Nfp;
                    target_span = o.span;
                }
                "host" => target_span = o.span,
                _ => self.help(
                    "E0116",
                    o.span,
                    format!("unknown offload target `{}`", o.name),
                    "the targets are `nfp` (Netronome BPF offload) and `host`",
                ),
            }
        }
        if let Some(t) = opts.target {
            target = t;
        }
        if target == Target::Nfp && hook.is_some_and(Hook::is_tc) {
            // NFP offloads TC cls_bpf too, so a tc hook is allowed; nothing to report.
        }
        let mut pcx = Pcx {
            hook: hook.unwrap_or(Hook::Xdp),
            target,
            target_span,
            names: HashMap::new(),
            used: HashSet::new(),
            sets: vec![],
            tables: vec![],
            counters: vec![],
            limiters: vec![],
            pools: vec![],
        };

        // Declarations first, so rules may use names declared below them.
        for s in &p.sets {
            let id = SetId(pcx.sets.len() as u32);
            self.declare(&mut pcx, &s.name, Decl::Set(id));
            let set = self.set_decl(s, &pcx);
            pcx.sets.push(set);
        }
        for t in &p.tables {
            let id = TableId(pcx.tables.len() as u32);
            self.declare(&mut pcx, &t.name, Decl::Table(id));
            let table = self.table_decl(t, &pcx);
            pcx.tables.push(table);
        }
        for c in &p.counters {
            let id = CounterId(pcx.counters.len() as u32);
            self.declare(&mut pcx, &c.name, Decl::Counter(id));
            let (key, capacity, _, _) = self.keyed_opts(&c.name, &c.opts, &pcx, false, c.span);
            pcx.counters.push(Counter {
                name: c.name.name.clone(),
                key,
                capacity,
                span: c.span,
            });
        }
        for l in &p.limiters {
            let id = LimiterId(pcx.limiters.len() as u32);
            self.declare(&mut pcx, &l.name, Decl::Limiter(id));
            let (key, capacity, rate, burst) =
                self.keyed_opts(&l.name, &l.opts, &pcx, true, l.span);
            self.needs(&pcx, Capabilities::CLOCK, l.span);
            pcx.limiters.push(Limiter {
                name: l.name.name.clone(),
                key,
                rate_per_sec: rate,
                burst,
                capacity,
                span: l.span,
            });
        }
        for pool in &p.pools {
            let id = PoolId(pcx.pools.len() as u32);
            self.declare(&mut pcx, &pool.name, Decl::Pool(id));
            let checked = self.pool_decl(pool);
            pcx.pools.push(checked);
        }

        // Rules.
        let mut rules = Vec::new();
        let mut rule_names: HashMap<&str, Span> = HashMap::new();
        for r in &p.rules {
            if r.name.name == "default" {
                self.help(
                    "E0107",
                    r.name.span,
                    "a rule cannot be named `default`",
                    "`expect ... by default` names the default action; choose another name",
                );
            }
            if let Some(prev) = rule_names.insert(&r.name.name, r.name.span) {
                self.diags.push(
                    Diagnostic::error("E0107", r.name.span, format!("rule `{}` is defined twice", r.name.name))
                        .with_label("second definition")
                        .with_note(prev, "first defined here")
                        .with_help("rule names must be unique in a policy: they name counters and `expect ... by`"),
                );
            }
            let expr = self.pred(&r.pred, &mut pcx);
            let table = match_table(&expr);
            let (actions, terminal) = self.actions(&r.actions, &mut pcx, r.span, table.is_some());
            if terminal.is_none() && table.is_none() {
                continue;
            }
            rules.push(Rule {
                name: r.name.name.clone(),
                expr,
                actions,
                terminal,
                table,
                span: r.span,
            });
        }

        // Default.
        let default = match p.defaults.as_slice() {
            [] => {
                self.help(
                    "E0108",
                    p.name.span,
                    format!("policy `{}` has no `default` action", p.name.name),
                    "add `default pass` or `default drop`: it decides packets no rule matches",
                );
                None
            }
            [d, rest @ ..] => {
                for extra in rest {
                    self.diags.push(
                        Diagnostic::error(
                            "E0109",
                            extra.span,
                            "a policy has exactly one `default`",
                        )
                        .with_label("second default")
                        .with_note(d.span, "first default here")
                        .with_help("remove one of them"),
                    );
                }
                let (actions, terminal) = self.actions(&d.actions, &mut pcx, d.span, false);
                terminal.map(|terminal| DefaultAction {
                    actions,
                    terminal,
                    span: d.span,
                })
            }
        };

        // Tests.
        let mut tests = Vec::new();
        let mut test_names: HashMap<&str, Span> = HashMap::new();
        for t in &p.tests {
            if let Some(prev) = test_names.insert(&t.name, t.name_span) {
                self.diags.push(
                    Diagnostic::error(
                        "E0107",
                        t.name_span,
                        format!("test \"{}\" is defined twice", t.name),
                    )
                    .with_note(prev, "first defined here")
                    .with_help("give each test a distinct name so failures can be told apart"),
                );
            }
            tests.push(self.test_block(t, &pcx, &rules));
        }

        // Unused declarations.
        let mut decls: Vec<(&String, &(Decl, Span))> = pcx.names.iter().collect();
        decls.sort_by_key(|(_, (_, s))| *s);
        for (name, (decl, span)) in decls {
            if !pcx.used.contains(decl) {
                self.diags.push(
                    Diagnostic::warning(
                        "W0003",
                        *span,
                        format!("{} `{name}` is never used", decl.noun()),
                    )
                    .with_help("remove it, or use it in a rule"),
                );
            }
        }

        let errors_after = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        Some(Policy {
            name: p.name.name.clone(),
            hook: hook?,
            offload: (target != Target::Host || !p.offload.is_empty()).then_some(target),
            sets: pcx.sets,
            tables: pcx.tables,
            counters: pcx.counters,
            limiters: pcx.limiters,
            pools: pcx.pools,
            rules,
            default: default?,
            tests,
            span: p.span,
        })
    }

    fn needs(&mut self, pcx: &Pcx, cap: Capabilities, span: Span) {
        if !Capabilities::of(pcx.target).contains(cap) {
            self.diags.push(
                Diagnostic::error("E0117", span, "not offloadable to the nfp target")
                    .with_label(cap.reason())
                    .with_note(pcx.target_span, "the policy is compiled for the NIC here")
                    .with_help("remove `offload nfp` (or `--target nfp`) to run on the host, or rewrite this part"),
            );
        }
    }

    fn capacity_ok(&mut self, pcx: &Pcx, n: u128, span: Span) -> u32 {
        let max = match pcx.target {
            Target::Host => HOST_MAX_CAPACITY,
            Target::Nfp => NFP_MAX_CAPACITY,
        };
        if n > u128::from(max) {
            let tname = match pcx.target {
                Target::Host => "the host",
                Target::Nfp => "the nfp target",
            };
            self.diags.push(
                Diagnostic::error(
                    "E0110",
                    span,
                    format!("capacity {n} is too large for {tname}"),
                )
                .with_label(format!("at most {max} entries"))
                .with_help(format!("use a capacity of at most {max}")),
            );
            return max as u32;
        }
        if n == 0 {
            self.help(
                "E0105",
                span,
                "capacity must be at least 1",
                "write a positive capacity",
            );
            return 1;
        }
        n as u32
    }

    fn declare(&mut self, pcx: &mut Pcx, name: &ast::Ident, d: Decl) {
        if let Some((prev, prev_span)) = pcx.names.get(&name.name) {
            let what = prev.what();
            let prev_span = *prev_span;
            self.diags.push(
                Diagnostic::error(
                    "E0107",
                    name.span,
                    format!("the name `{}` is declared twice", name.name),
                )
                .with_label(format!("{} with the same name as {what}", d.what()))
                .with_note(prev_span, "first declared here")
                .with_help(
                    "sets, tables, counters, limiters and pools share one namespace; rename one",
                ),
            );
            return;
        }
        pcx.names.insert(name.name.clone(), (d, name.span));
    }

    fn lookup(&mut self, pcx: &mut Pcx, name: &ast::Ident, want: &str) -> Option<Decl> {
        match pcx.names.get(&name.name) {
            Some((d, _)) => {
                pcx.used.insert(*d);
                Some(*d)
            }
            None => {
                let cands: Vec<&str> = pcx.names.keys().map(String::as_str).collect();
                let mut d = Diagnostic::error(
                    "E0102",
                    name.span,
                    format!("unknown {want} `{}`", name.name),
                )
                .with_label(format!("no {want} of this name"));
                d.help = Some(match closest(&name.name, cands) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "declare it in the policy: see section 5 of the language reference"
                        .to_string(),
                });
                self.diags.push(d);
                None
            }
        }
    }

    fn wrong_kind(&mut self, name: &ast::Ident, found: Decl, want: &str, help: &str) {
        self.diags.push(
            Diagnostic::error(
                "E0118",
                name.span,
                format!("`{}` is {}, not {want}", name.name, found.what()),
            )
            .with_help(help.to_string()),
        );
    }

    fn set_decl(&mut self, s: &ast::SetDecl, pcx: &Pcx) -> Set {
        let kind = match (s.kind.name.as_str(), s.prefix.is_some()) {
            ("ipv4", true) => Some(SetKind::Ipv4Prefix),
            ("ipv6", true) => Some(SetKind::Ipv6Prefix),
            ("ipv4", false) => Some(SetKind::Ipv4),
            ("ipv6", false) => Some(SetKind::Ipv6),
            ("port", false) => Some(SetKind::Port),
            ("mac", false) => Some(SetKind::Mac),
            ("u8", false) => Some(SetKind::Uint(8)),
            ("u16", false) => Some(SetKind::Uint(16)),
            ("u32", false) => Some(SetKind::Uint(32)),
            ("u64", false) => Some(SetKind::Uint(64)),
            (k, _) => {
                self.help(
                    "E0103",
                    s.kind.span.to(s.prefix.unwrap_or(s.kind.span)),
                    format!("unknown set kind `{k}{}`", if s.prefix.is_some() { " prefix" } else { "" }),
                    "set kinds are `ipv4 prefix`, `ipv6 prefix`, `ipv4`, `ipv6`, `port`, `mac`, `u8`, `u16`, `u32`, `u64`",
                );
                None
            }
        };
        let mut dynamic = false;
        let mut capacity = None;
        for o in &s.opts {
            match o {
                ast::DeclOpt::Flag(f) if f.name == "dynamic" => dynamic = true,
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    capacity = self
                        .int_value(v, "capacity", u128::from(u32::MAX))
                        .map(|c| (c, v.span));
                }
                other => self.bad_opt(other, "a set", "`capacity N` and `dynamic`"),
            }
        }
        let mut items = Vec::new();
        if let Some(kind) = kind {
            let ty = set_field_type(kind);
            let what = format!("a `{}` set", kind.describe());
            for v in &s.values {
                let Some(item) = self.item(v, ty, &what) else {
                    continue;
                };
                let ok = match (kind, item) {
                    (SetKind::Ipv4Prefix | SetKind::Ipv6Prefix, _) => true,
                    (_, Item::Prefix(..)) => false,
                    (SetKind::Ipv4 | SetKind::Ipv6 | SetKind::Mac, Item::Range(..)) => false,
                    (_, Item::Range(..)) => !dynamic,
                    _ => true,
                };
                if !ok {
                    let help = if matches!(item, Item::Prefix(..)) {
                        format!(
                            "declare the set as `{} prefix` to hold prefixes",
                            kind.describe()
                        )
                    } else if dynamic {
                        "a dynamic set holds single values; list them, or make the set static"
                            .to_string()
                    } else {
                        "list single addresses, or use a prefix set".to_string()
                    };
                    self.help(
                        "E0103",
                        v.span,
                        format!("{what} cannot hold `{item}`"),
                        help,
                    );
                    continue;
                }
                items.push(item);
            }
        }
        let capacity = match capacity {
            Some((c, span)) => {
                if c < items.len() as u128 {
                    self.help(
                        "E0105",
                        span,
                        format!(
                            "capacity {c} is smaller than the {} values listed",
                            items.len()
                        ),
                        format!("use a capacity of at least {}", items.len()),
                    );
                }
                self.capacity_ok(pcx, c, span)
            }
            None if dynamic => self.capacity_ok(
                pcx,
                u128::from(DEFAULT_CAPACITY).max(items.len() as u128),
                s.span,
            ),
            None => self.capacity_ok(pcx, (items.len() as u128).max(1), s.span),
        };
        // Dynamic prefix sets need no LPM trie on the NIC: the compiler keeps them as one hash
        // probe per prefix length, with the lengths in a table the runtime maintains.
        Set {
            name: s.name.name.clone(),
            kind: kind.unwrap_or(SetKind::Uint(64)),
            capacity,
            dynamic,
            items,
            span: s.span,
        }
    }

    fn bad_opt(&mut self, o: &ast::DeclOpt, what: &str, allowed: &str) {
        let (span, name) = match o {
            ast::DeclOpt::Key(_, s) => (*s, "key".to_string()),
            ast::DeclOpt::Valued(n, v) => (n.span.to(v.span), n.name.clone()),
            ast::DeclOpt::Flag(f) => (f.span, f.name.clone()),
        };
        self.help(
            "E0111",
            span,
            format!("`{name}` is not an option of {what}"),
            format!("{what} takes {allowed}"),
        );
    }

    fn keyed_opts(
        &mut self,
        name: &ast::Ident,
        opts: &[ast::DeclOpt],
        pcx: &Pcx,
        limiter: bool,
        span: Span,
    ) -> (Vec<Field>, u32, u64, u64) {
        let what = if limiter { "a limiter" } else { "a counter" };
        let allowed = if limiter {
            "`key FIELDS`, `rate N/s`, `burst N` and `capacity N`"
        } else {
            "`key FIELDS` and `capacity N`"
        };
        let mut key = None;
        let mut capacity = DEFAULT_CAPACITY;
        let mut rate = None;
        let mut burst = None;
        let given = |n: &str| {
            opts.iter()
                .any(|o| matches!(o, ast::DeclOpt::Valued(k, _) if k.name == n))
        };
        for o in opts {
            match o {
                ast::DeclOpt::Key(fields, _) => key = self.field_list(fields, pcx),
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    if let Some(c) = self.int_value(v, "capacity", u128::from(u32::MAX)) {
                        capacity = self.capacity_ok(pcx, c, v.span);
                    }
                }
                ast::DeclOpt::Valued(n, v) if limiter && n.name == "rate" => {
                    match self.resolve(v) {
                        Resolved::Rate(r) if (1..=1_000_000_000).contains(&r) => {
                            rate = Some(r as u64)
                        }
                        Resolved::Rate(_) => self.help(
                            "E0105",
                            v.span,
                            "rate must be between 1/s and 1000000000/s",
                            "write a rate such as `1000/s` or `10/ms`",
                        ),
                        Resolved::Invalid => {}
                        _ => self.help(
                            "E0103",
                            v.span,
                            "a rate is written `N/s` or `N/ms`",
                            "write e.g. `rate 1000/s`",
                        ),
                    }
                }
                ast::DeclOpt::Valued(n, v) if limiter && n.name == "burst" => {
                    burst = self.int_value(v, "burst", 1 << 32).map(|b| b as u64);
                    if burst == Some(0) {
                        self.help(
                            "E0105",
                            v.span,
                            "burst must be at least 1",
                            "a bucket of 0 tokens would drop everything; write `burst 1` or more",
                        );
                    }
                }
                other => self.bad_opt(other, what, allowed),
            }
        }
        let key = match key {
            Some(k) => k,
            None => {
                if !opts.iter().any(|o| matches!(o, ast::DeclOpt::Key(..))) {
                    self.help(
                        "E0111",
                        span,
                        format!("{} `{}` needs a `key`", &what[2..], name.name),
                        "add `key FIELD` or `key (FIELD, FIELD)`, e.g. `key ip.src`",
                    );
                }
                vec![]
            }
        };
        if limiter {
            if rate.is_none() && !given("rate") {
                self.help(
                    "E0111",
                    span,
                    format!("limiter `{}` needs a `rate`", name.name),
                    "add e.g. `rate 1000/s`",
                );
            }
            if burst.is_none() && !given("burst") {
                self.help(
                    "E0111",
                    span,
                    format!("limiter `{}` needs a `burst`", name.name),
                    "add e.g. `burst 100`",
                );
            }
        }
        (key, capacity, rate.unwrap_or(1), burst.unwrap_or(1))
    }

    fn table_decl(&mut self, t: &ast::TableDecl, pcx: &Pcx) -> Table {
        let key = self.field_list(&t.key, pcx).unwrap_or_default();
        if t.key.is_empty() {
            self.help(
                "E0111",
                t.name.span,
                format!("table `{}` needs a key", t.name.name),
                "write `key (FIELD, ...)`",
            );
        }
        let mut allowed = Vec::new();
        for a in &t.template {
            match a.name.as_str() {
                "pass" | "drop" | "redirect" | "tx" | "abort" => {
                    if let Some(name) = ["pass", "drop", "redirect", "tx", "abort"].into_iter().find(|n| *n == a.name) {
                        allowed.push(name);
                    }
                    self.terminal_on_hook(&a.name, a.span, pcx);
                }
                other => self.help(
                    "E0103",
                    a.span,
                    format!("`{other}` is not an action a table entry can take"),
                    "table entries take a terminal action: `pass`, `drop`, `tx`, `redirect` or `abort`",
                ),
            }
        }
        let mut capacity = None;
        for o in &t.opts {
            match o {
                ast::DeclOpt::Valued(n, v) if n.name == "capacity" => {
                    capacity = self
                        .int_value(v, "capacity", u128::from(u32::MAX))
                        .map(|c| (c, v.span));
                }
                other => self.bad_opt(other, "a table", "`capacity N`"),
            }
        }
        let mut entries: Vec<(Vec<Scalar>, Terminal)> = Vec::new();
        let mut seen: HashMap<Vec<Scalar>, Span> = HashMap::new();
        for e in &t.entries {
            if e.key.len() != key.len() && !key.is_empty() {
                self.help(
                    "E0103",
                    e.span,
                    format!(
                        "this entry has {} values but the table's key has {} fields",
                        e.key.len(),
                        key.len()
                    ),
                    format!(
                        "write one value per key field: ({})",
                        key.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            }
            let mut vals = Vec::new();
            let mut ok = true;
            for (v, f) in e.key.iter().zip(&key) {
                match self.scalar(v, f.ty(), &format!("`{}`", f.name())) {
                    Some(s) => vals.push(s),
                    None => ok = false,
                }
            }
            let term = self.terminal(&e.action, pcx);
            if let Some(term) = &term {
                if !allowed.contains(&term.name()) && !t.template.is_empty() {
                    self.help(
                        "E0103",
                        e.action.span,
                        format!("table `{}` does not allow `{}`", t.name.name, term.name()),
                        format!("its entries may use {}", allowed.join(" | ")),
                    );
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            if let Some(prev) = seen.insert(vals.clone(), e.span) {
                self.diags.push(
                    Diagnostic::error("E0107", e.span, "duplicate table entry")
                        .with_note(prev, "the same key first appears here")
                        .with_help("each key may appear once; remove one of them"),
                );
                continue;
            }
            if let Some(term) = term {
                entries.push((vals, term));
            }
        }
        let capacity = match capacity {
            Some((c, span)) => {
                if c < entries.len() as u128 {
                    self.help(
                        "E0105",
                        span,
                        format!("capacity {c} is smaller than the {} entries", entries.len()),
                        "raise the capacity",
                    );
                }
                self.capacity_ok(pcx, c, span)
            }
            None => self.capacity_ok(pcx, (entries.len() as u128).max(1024), t.span),
        };
        Table {
            name: t.name.name.clone(),
            key,
            allowed,
            capacity,
            entries,
            span: t.span,
        }
    }

    fn pool_decl(&mut self, p: &ast::PoolDecl) -> Pool {
        let mut backends = Vec::new();
        let mut family = None;
        for (addr, weight) in &p.backends {
            let Some(a) = self.scalar(addr, FieldType::IpAny, "a pool backend") else {
                continue;
            };
            match family {
                None => family = Some((a.family, addr.span)),
                Some((f, first)) if f != a.family => {
                    self.diags.push(
                        Diagnostic::error("E0104", addr.span, "a pool mixes IPv4 and IPv6 backends")
                            .with_note(first, "the first backend sets the pool's family")
                            .with_help("balance rewrites the destination address in place; use one pool per family"),
                    );
                    continue;
                }
                _ => {}
            }
            let w = match weight {
                Some(w) => match self.int_value(w, "weight", 255) {
                    Some(0) => {
                        self.help(
                            "E0105",
                            w.span,
                            "weight must be at least 1",
                            "remove the backend instead of giving it weight 0",
                        );
                        1
                    }
                    Some(w) => w as u32,
                    None => 1,
                },
                None => 1,
            };
            backends.push((a, w));
        }
        if p.backends.is_empty() {
            self.help(
                "E0111",
                p.name.span,
                format!("pool `{}` has no backends", p.name.name),
                "list at least one backend address",
            );
        }
        Pool {
            name: p.name.name.clone(),
            backends,
            span: p.span,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Predicates
    // ---------------------------------------------------------------------------------------

    fn pred(&mut self, p: &ast::Pred, pcx: &mut Pcx) -> Expr {
        match p {
            ast::Pred::And(parts, _) => {
                Expr::And(parts.iter().map(|q| self.pred(q, pcx)).collect())
            }
            ast::Pred::Or(parts, _) => Expr::Or(parts.iter().map(|q| self.pred(q, pcx)).collect()),
            ast::Pred::Not(q, _) => Expr::Not(Box::new(self.pred(q, pcx))),
            ast::Pred::Atom(a) => match self.atom(a, pcx) {
                Some(atom) => Expr::Atom(atom, a.span),
                None => Expr::Const(false),
            },
        }
    }

    fn atom(&mut self, a: &ast::Atom, pcx: &mut Pcx) -> Option<Atom> {
        match &a.kind {
            ast::AtomKind::Presence(p) => {
                let name = p.text();
                if let Some(h) = Header::from_name(&name).filter(|h| *h != Header::Pkt) {
                    return Some(Atom::Present(h));
                }
                if let Some(f) = Field::from_name(&name) {
                    self.help(
                        "E0103",
                        p.span,
                        format!("`{name}` is a field, not a condition"),
                        format!("compare it: `{} == VALUE`, `{} in SET`", f.name(), f.name()),
                    );
                    return None;
                }
                if pcx.names.contains_key(&name) {
                    self.help(
                        "E0103",
                        p.span,
                        format!("`{name}` is a declaration, not a condition"),
                        format!("test membership with `FIELD in {name}`, `over {name}` or `match {name}`"),
                    );
                    return None;
                }
                let mut d = Diagnostic::error("E0102", p.span, format!("unknown header `{name}`"))
                    .with_label("not a header, field or declaration");
                let suffix = format!(".{name}");
                let field = Field::ALL.iter().find(|f| f.name().ends_with(&suffix));
                d.help = Some(match field.map(|f| f.name()).or_else(|| closest(&name, Header::ALL.iter().map(|h| h.name()))) {
                    Some(c) if field.is_some() => format!("`{name}` is not a header; to test the field `{c}`, compare it: `{c} == VALUE`"),
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "headers are eth vlan arp ipv4 ipv6 ip tcp udp icmp icmpv6 l4 frag".to_string(),
                });
                self.diags.push(d);
                None
            }
            ast::AtomKind::Cmp {
                field,
                mask,
                op,
                value,
            } => {
                let f = self.field(field, pcx)?;
                let mask = self.mask(f, mask.as_ref())?;
                let what = format!("`{}`", f.name());
                match self.resolve(value) {
                    Resolved::Prefix(..) if matches!(op, CmpOp::Eq) => {
                        let item = self.item(value, f.ty(), &what)?;
                        Some(Atom::InList {
                            field: f,
                            mask,
                            items: vec![item],
                        })
                    }
                    Resolved::Range(..) if matches!(op, CmpOp::Eq) => {
                        self.help(
                            "E0103",
                            value.span,
                            "a range is not a single value",
                            format!("write `{} in LO..HI`", f.name()),
                        );
                        None
                    }
                    _ => {
                        let v = self.scalar(value, f.ty(), &what)?;
                        if f.ty() == FieldType::Mac && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                            // Ordering MACs is well defined as numbers; accepted.
                        }
                        Some(Atom::Cmp {
                            field: f,
                            mask,
                            op: *op,
                            value: v,
                        })
                    }
                }
            }
            ast::AtomKind::In {
                field,
                mask,
                target,
            } => {
                let f = self.field(field, pcx)?;
                let mask = self.mask(f, mask.as_ref())?;
                let what = format!("`{}`", f.name());
                match target {
                    ast::InTarget::List(values, span) => {
                        if values.is_empty() {
                            self.diags.push(
                                Diagnostic::warning("W0002", *span, "an empty list never matches")
                                    .with_help("list at least one value"),
                            );
                        }
                        let mut items = Vec::new();
                        for v in values {
                            if let Some(i) = self.item(v, f.ty(), &what) {
                                items.push(i);
                            }
                        }
                        (items.len() == values.len()).then_some(Atom::InList {
                            field: f,
                            mask,
                            items,
                        })
                    }
                    ast::InTarget::One(v) => {
                        if let ValueKind::Name(p) = &v.kind {
                            let name = p.text();
                            if p.parts.len() == 1 && !self.consts.contains_key(&name) {
                                if let Some((d, _)) = pcx.names.get(&name).copied() {
                                    pcx.used.insert(d);
                                    let Decl::Set(id) = d else {
                                        self.wrong_kind(
                                            &ast::Ident {
                                                name: name.clone(),
                                                span: p.span,
                                            },
                                            d,
                                            "a set",
                                            "`in` takes a set, a prefix, a range or `{ values }`",
                                        );
                                        return None;
                                    };
                                    if mask.is_some() {
                                        self.help(
                                            "E0103",
                                            a.span,
                                            "a masked field cannot be looked up in a set",
                                            "drop the mask or list the values with `in { ... }`",
                                        );
                                        return None;
                                    }
                                    let kind = pcx.sets[id.index()].kind;
                                    if !set_fits_field(kind, f) {
                                        self.diags.push(
                                            Diagnostic::error(
                                                "E0115",
                                                v.span,
                                                format!(
                                                    "a `{}` set cannot hold values of `{}`",
                                                    kind.describe(),
                                                    f.name()
                                                ),
                                            )
                                            .with_note(
                                                pcx.sets[id.index()].span,
                                                "the set is declared here",
                                            )
                                            .with_help(format!(
                                                "`{}` is {}; use a set of a matching kind",
                                                f.name(),
                                                f.ty().describe()
                                            )),
                                        );
                                        return None;
                                    }
                                    return Some(Atom::InSet { field: f, set: id });
                                }
                                if builtin_constant(&name).is_none()
                                    && ethertype_constant(&name).is_none()
                                {
                                    let cands: Vec<&str> =
                                        pcx.names.keys().map(String::as_str).collect();
                                    let mut d = Diagnostic::error(
                                        "E0102",
                                        p.span,
                                        format!("unknown set `{name}`"),
                                    )
                                    .with_label("no set or constant of this name");
                                    d.help = Some(match closest(&name, cands) {
                                        Some(c) => format!("did you mean `{c}`?"),
                                        None => format!(
                                            "declare it: `set {name}: ipv4 prefix = {{ ... }}`"
                                        ),
                                    });
                                    self.diags.push(d);
                                    return None;
                                }
                            }
                        }
                        let item = self.item(v, f.ty(), &what)?;
                        Some(Atom::InList {
                            field: f,
                            mask,
                            items: vec![item],
                        })
                    }
                }
            }
            ast::AtomKind::Has { field, flags } => {
                let f = self.field(field, pcx)?;
                if !matches!(f.ty(), FieldType::Uint(_)) {
                    self.help(
                        "E0103",
                        field.span,
                        format!(
                            "`has` tests bits of an integer field; `{}` is {}",
                            f.name(),
                            f.ty().describe()
                        ),
                        "use `==` or `in`",
                    );
                    return None;
                }
                let v = self.scalar(flags, f.ty(), &format!("`{}`", f.name()))?;
                Some(Atom::Has {
                    field: f,
                    bits: v.bits,
                })
            }
            ast::AtomKind::Over(name) => match self.lookup(pcx, name, "limiter")? {
                Decl::Limiter(id) => Some(Atom::Over(id)),
                d => {
                    self.wrong_kind(
                        name,
                        d,
                        "a limiter",
                        "`over` takes a limiter: `limiter NAME: key ..., rate R, burst B`",
                    );
                    None
                }
            },
            ast::AtomKind::Match(name) => match self.lookup(pcx, name, "table")? {
                Decl::Table(id) => Some(Atom::Match(id)),
                d => {
                    self.wrong_kind(
                        name,
                        d,
                        "a table",
                        "`match` takes a table; for sets write `FIELD in SET`",
                    );
                    None
                }
            },
            ast::AtomKind::Payload {
                start,
                end,
                op,
                bytes,
            } => {
                let s = self.int_value(start, "payload offset", 0xffff);
                let e = self.int_value(end, "payload offset", 0xffff);
                let (s, e) = (s?, e?);
                if e <= s {
                    self.help("E0105", start.span.to(end.span), format!("empty payload range {s}..{e}"), "payload[A..B] takes bytes A up to but not including B; B must be greater than A");
                    return None;
                }
                if e - s > 64 {
                    self.help(
                        "E0105",
                        start.span.to(end.span),
                        format!(
                            "payload range of {} bytes; at most 64 can be compared",
                            e - s
                        ),
                        "compare at most 64 bytes",
                    );
                    return None;
                }
                // A constant naming a byte string keeps its length (leading zero bytes count),
                // so follow constant names to the literal before deciding what the bytes are.
                let mut lit = bytes.clone();
                for _ in 0..=self.consts.len() {
                    match &lit.kind {
                        ValueKind::Name(p) if p.parts.len() == 1 => {
                            match self.consts.get(&p.parts[0]) {
                                Some(v) => lit = v.clone(),
                                None => break,
                            }
                        }
                        _ => break,
                    }
                }
                let b = match (&lit.kind, self.resolve(&lit)) {
                    (ValueKind::Hex(h), _) => {
                        if h.len() % 2 != 0 {
                            self.help(
                                "E0004",
                                bytes.span,
                                "a byte string has an even number of hex digits",
                                format!("write `0x0{h}`"),
                            );
                            return None;
                        }
                        hex_bytes(h)
                    }
                    (_, Resolved::Bytes(b)) => b,
                    (_, Resolved::Invalid) => return None,
                    _ => {
                        self.help(
                            "E0103",
                            bytes.span,
                            "payload bytes are a string or a byte string",
                            "write `\"GET \"` or `0x47455420`",
                        );
                        return None;
                    }
                };
                if b.len() as u128 != e - s {
                    self.help(
                        "E0105",
                        bytes.span,
                        format!(
                            "payload[{s}..{e}] is {} bytes, the value is {}",
                            e - s,
                            b.len()
                        ),
                        format!(
                            "make the range {s}..{} or the value {} bytes long",
                            s + b.len() as u128,
                            e - s
                        ),
                    );
                    return None;
                }
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    self.help(
                        "E0103",
                        a.span,
                        "payload bytes are compared with `==` or `!=`",
                        "use `==` or `!=`",
                    );
                    return None;
                }
                Some(Atom::Payload {
                    start: s as u16,
                    end: e as u16,
                    bytes: b,
                    negate: *op == CmpOp::Ne,
                })
            }
        }
    }

    fn mask(&mut self, f: Field, mask: Option<&ast::Value>) -> Option<Option<u128>> {
        let Some(m) = mask else { return Some(None) };
        if !matches!(f.ty(), FieldType::Uint(_)) {
            self.help(
                "E0103",
                m.span,
                format!(
                    "`{}` is {}; masks apply to integer fields",
                    f.name(),
                    f.ty().describe()
                ),
                "use `in PREFIX` for addresses",
            );
            return None;
        }
        self.scalar(m, f.ty(), &format!("a mask of `{}`", f.name()))
            .map(|s| Some(s.bits))
    }

    // ---------------------------------------------------------------------------------------
    // Actions
    // ---------------------------------------------------------------------------------------

    fn terminal_on_hook(&mut self, word: &str, span: Span, pcx: &Pcx) -> bool {
        let ok = match word {
            "tx" | "abort" => pcx.hook == Hook::Xdp,
            _ => true,
        };
        if !ok {
            let help = if word == "tx" {
                "tx bounces a packet out of its port, which only XDP can do; attach on xdp or use `redirect \"IF\"`"
            } else {
                "abort is XDP_ABORTED, which tc does not have; use `drop`"
            };
            self.diags.push(
                Diagnostic::error(
                    "E0106",
                    span,
                    format!("`{word}` is not allowed on {}", pcx.hook.as_str()),
                )
                .with_label(format!("not available on {}", pcx.hook.as_str()))
                .with_help(help),
            );
        }
        ok
    }

    fn terminal(&mut self, a: &ast::Action, pcx: &Pcx) -> Option<Terminal> {
        match &a.kind {
            ast::ActionKind::Word(w) => {
                let t = match w.name.as_str() {
                    "pass" => Terminal::Pass,
                    "drop" => Terminal::Drop,
                    "tx" => Terminal::Tx,
                    "abort" => Terminal::Abort,
                    "count" | "sample" | "mark" | "dec" | "redirect" | "balance" | "set" => {
                        let form = match w.name.as_str() {
                            "count" => "count COUNTER",
                            "sample" => "sample N",
                            "mark" => "mark N",
                            "dec" => "dec ip.ttl",
                            "redirect" => "redirect \"IFNAME\"",
                            "balance" => "balance POOL by (FIELDS)",
                            _ => "set FIELD = VALUE",
                        };
                        self.help(
                            "E0112",
                            w.span,
                            format!("`{}` needs an argument", w.name),
                            format!("write `{form}`"),
                        );
                        return None;
                    }
                    other => {
                        let mut d =
                            Diagnostic::error("E0102", w.span, format!("unknown action `{other}`"));
                        d.help = Some(match closest(other, ["pass", "drop", "tx", "abort", "count", "sample", "mark", "redirect", "balance", "set", "dec"]) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => "actions are pass, drop, tx, redirect \"IF\", abort, count NAME, set FIELD = V, dec ip.ttl, sample N, mark N, balance POOL by (FIELDS)".into(),
                        });
                        self.diags.push(d);
                        return None;
                    }
                };
                self.terminal_on_hook(&w.name, w.span, pcx).then_some(t)
            }
            ast::ActionKind::Redirect(name, span) => {
                let name = String::from_utf8_lossy(name).into_owned();
                if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                    self.help(
                        "E0105",
                        *span,
                        format!("`{name}` is not a valid interface name"),
                        "interface names are 1 to 15 characters without `/` or spaces",
                    );
                    return None;
                }
                self.needs(pcx, Capabilities::REDIRECT, a.span);
                Some(Terminal::Redirect(name))
            }
            _ => None,
        }
    }

    /// Checks an action list; returns the non-terminal actions and the terminal.
    fn actions(
        &mut self,
        list: &[ast::Action],
        pcx: &mut Pcx,
        span: Span,
        terminal_optional: bool,
    ) -> (Vec<Action>, Option<Terminal>) {
        let mut actions = Vec::new();
        let mut terminal: Option<(Terminal, Span)> = None;
        let mut balance_span = None;
        let mut broken = false;
        for a in list {
            let is_terminal = matches!(
                &a.kind,
                ast::ActionKind::Word(_) | ast::ActionKind::Redirect(..)
            );
            if let Some((_, tspan)) = &terminal {
                let tspan = *tspan;
                self.diags.push(
                    Diagnostic::error("E0112", a.span, "nothing may follow the terminal action")
                        .with_note(tspan, "the terminal action")
                        .with_help("the terminal (pass, drop, tx, redirect, abort) comes last and only once"),
                );
                broken = true;
                continue;
            }
            if is_terminal {
                match self.terminal(a, pcx) {
                    Some(t) => terminal = Some((t, a.span)),
                    None => broken = true,
                }
                continue;
            }
            match &a.kind {
                ast::ActionKind::WithArg(w, v) => match w.name.as_str() {
                    "count" => {
                        let ValueKind::Name(p) = &v.kind else {
                            self.help(
                                "E0103",
                                v.span,
                                "`count` takes a counter name",
                                "write `count NAME` with a declared counter",
                            );
                            broken = true;
                            continue;
                        };
                        let ident = ast::Ident {
                            name: p.text(),
                            span: p.span,
                        };
                        match self.lookup(pcx, &ident, "counter") {
                            Some(Decl::Counter(id)) => actions.push(Action::Count(id)),
                            Some(d) => {
                                self.wrong_kind(
                                    &ident,
                                    d,
                                    "a counter",
                                    "declare `counter NAME: key FIELD`",
                                );
                                broken = true;
                            }
                            None => broken = true,
                        }
                    }
                    "dec" => {
                        let ok = matches!(&v.kind, ValueKind::Name(p) if p.text() == "ip.ttl");
                        if ok {
                            actions.push(Action::DecTtl);
                        } else {
                            self.help(
                                "E0103",
                                v.span,
                                "only `ip.ttl` can be decremented",
                                "write `dec ip.ttl`: it decrements the IPv4 TTL or the IPv6 hop limit, whichever the packet has",
                            );
                            broken = true;
                        }
                    }
                    "sample" => match self.int_value(v, "sample rate", u128::from(u32::MAX)) {
                        Some(0) => {
                            self.help(
                                "E0105",
                                v.span,
                                "`sample 0` samples nothing",
                                "write `sample 1` to sample every packet",
                            );
                            broken = true;
                        }
                        Some(n) => {
                            self.needs(pcx, Capabilities::RINGBUF, a.span);
                            actions.push(Action::Sample(n as u32));
                        }
                        None => broken = true,
                    },
                    "mark" => {
                        if !pcx.hook.is_tc() {
                            self.diags.push(
                                Diagnostic::error("E0106", a.span, "`mark` is not allowed on xdp")
                                    .with_label("the skb mark exists only on tc hooks")
                                    .with_help("attach the policy on `tc ingress` or `tc egress`"),
                            );
                            broken = true;
                            continue;
                        }
                        self.needs(pcx, Capabilities::CTX_META, a.span);
                        match self.int_value(v, "mark", u128::from(u32::MAX)) {
                            Some(n) => actions.push(Action::Mark(n as u32)),
                            None => broken = true,
                        }
                    }
                    _ => broken = true,
                },
                ast::ActionKind::Set(field, v) => {
                    let Some(f) = self.field(field, pcx) else {
                        broken = true;
                        continue;
                    };
                    if !rewritable(f) {
                        self.help(
                            "E0103",
                            field.span,
                            format!("`{}` cannot be rewritten", f.name()),
                            "rewritable fields: eth.src, eth.dst, ip.src, ip.dst, l4.sport, l4.dport, ip.ttl, ip.dscp (and their ipv4./ipv6./tcp./udp. forms)",
                        );
                        broken = true;
                        continue;
                    }
                    match self.scalar(v, f.ty(), &format!("`{}`", f.name())) {
                        Some(s) => actions.push(Action::SetField(f, s)),
                        None => broken = true,
                    }
                }
                ast::ActionKind::Balance { pool, by, via } => {
                    balance_span = Some(a.span);
                    let id = match self.lookup(pcx, pool, "pool") {
                        Some(Decl::Pool(id)) => Some(id),
                        Some(d) => {
                            self.wrong_kind(
                                pool,
                                d,
                                "a pool",
                                "declare `pool NAME = { ADDR, ... }`",
                            );
                            None
                        }
                        None => None,
                    };
                    let fields = self.field_list(by, pcx);
                    let via_fib = match via {
                        None => false,
                        Some(v) if v.name == "fib" => {
                            self.needs(pcx, Capabilities::FIB, a.span);
                            true
                        }
                        Some(v) => {
                            self.help(
                                "E0102",
                                v.span,
                                format!("unknown `via {}`", v.name),
                                "the only form is `via fib`",
                            );
                            broken = true;
                            false
                        }
                    };
                    match (id, fields) {
                        (Some(pool), Some(by)) if !by.is_empty() => {
                            actions.push(Action::Balance { pool, by, via_fib })
                        }
                        (Some(_), Some(_)) => {
                            self.help(
                                "E0111",
                                a.span,
                                "`balance` needs fields to hash",
                                "write `balance POOL by (ip.src, l4.sport)`",
                            );
                            broken = true;
                        }
                        _ => broken = true,
                    }
                }
                _ => broken = true,
            }
        }
        if let (Some(bspan), Some((t, tspan))) = (balance_span, &terminal) {
            if !matches!(t, Terminal::Tx | Terminal::Redirect(_)) {
                self.diags.push(
                    Diagnostic::error(
                        "E0112",
                        *tspan,
                        format!(
                            "`balance` must end in `tx` or `redirect`, not `{}`",
                            t.name()
                        ),
                    )
                    .with_note(bspan, "the packet is rewritten for a backend here")
                    .with_help("a balanced packet leaves through `tx` (xdp) or `redirect \"IF\"`"),
                );
                broken = true;
            }
        }
        if terminal.is_none() && !terminal_optional && !broken {
            self.diags.push(
                Diagnostic::error("E0112", span, "missing terminal action")
                    .with_label("this ends without pass, drop, tx, redirect or abort")
                    .with_help("end the action list with a terminal, e.g. `=> count c, drop`"),
            );
        }
        if broken {
            // The error has been reported; a placeholder keeps the rest of the policy checked.
            return (actions, Some(Terminal::Pass));
        }
        (actions, terminal.map(|(t, _)| t))
    }

    // ---------------------------------------------------------------------------------------
    // Tests
    // ---------------------------------------------------------------------------------------

    fn test_block(&mut self, t: &ast::TestBlock, pcx: &Pcx, rules: &[Rule]) -> Test {
        let mut steps = Vec::new();
        let mut batch: Option<u32> = None;
        for s in &t.stmts {
            match s {
                ast::TestStmt::Send {
                    count,
                    packet,
                    span,
                } => {
                    let n = match count {
                        Some(c) => match self.int_value(c, "packet count", 10_000_000) {
                            Some(0) => {
                                self.help(
                                    "E0105",
                                    c.span,
                                    "`send 0 x` sends nothing",
                                    "send at least one packet",
                                );
                                1
                            }
                            Some(n) => n as u32,
                            None => 1,
                        },
                        None => 1,
                    };
                    batch = Some(n);
                    if let Some(layers) = self.packet(packet, true) {
                        steps.push(Step::Send {
                            count: n,
                            layers,
                            span: *span,
                        });
                    }
                }
                ast::TestStmt::ExpectVerdict {
                    count,
                    verdict,
                    by,
                    span,
                } => {
                    let Some(b) = batch else {
                        self.help(
                            "E0113",
                            *span,
                            "`expect` before any `send`",
                            "send a packet first: `send ipv4(...) / udp(...)`",
                        );
                        continue;
                    };
                    let n = match count {
                        Some(c) => {
                            let n = self
                                .int_value(c, "packet count", 10_000_000)
                                .map(|n| n as u32);
                            if let Some(n) = n {
                                if n > b {
                                    self.help(
                                        "E0113",
                                        c.span,
                                        format!("expects {n} packets but the last send had {b}"),
                                        format!("expect at most {b}"),
                                    );
                                }
                            }
                            n
                        }
                        None => None,
                    };
                    let v = match verdict {
                        ast::VerdictLit::Word(w) => match w.name.as_str() {
                            "pass" => Some(Terminal::Pass),
                            "drop" => Some(Terminal::Drop),
                            "tx" => Some(Terminal::Tx),
                            "abort" => Some(Terminal::Abort),
                            other => {
                                self.help(
                                    "E0113",
                                    w.span,
                                    format!("unknown verdict `{other}`"),
                                    "verdicts are pass, drop, tx, redirect \"IF\", abort",
                                );
                                None
                            }
                        },
                        ast::VerdictLit::Redirect(b, _) => {
                            Some(Terminal::Redirect(String::from_utf8_lossy(b).into_owned()))
                        }
                    };
                    let by = match by {
                        None => Some(None),
                        Some(r) if r.name == "default" => Some(Some(RuleRef::Default)),
                        Some(r) => match rules.iter().position(|x| x.name == r.name) {
                            Some(i) => Some(Some(RuleRef::Rule(RuleId(i as u32)))),
                            None => {
                                let mut d = Diagnostic::error(
                                    "E0102",
                                    r.span,
                                    format!("unknown rule `{}`", r.name),
                                );
                                d.help = Some(
                                    match closest(&r.name, rules.iter().map(|x| x.name.as_str())) {
                                        Some(c) => format!("did you mean `{c}`?"),
                                        None => "name a rule of this policy, or `default`".into(),
                                    },
                                );
                                self.diags.push(d);
                                None
                            }
                        },
                    };
                    if let (Some(v), Some(by)) = (v, by) {
                        steps.push(Step::ExpectVerdict {
                            count: n,
                            verdict: v,
                            by,
                            span: *span,
                        });
                    }
                }
                ast::TestStmt::ExpectCounter {
                    name,
                    key,
                    value,
                    bytes,
                    span,
                } => {
                    let Some((d, _)) = pcx.names.get(&name.name).copied() else {
                        self.help(
                            "E0102",
                            name.span,
                            format!("unknown counter `{}`", name.name),
                            "name a counter declared in this policy",
                        );
                        continue;
                    };
                    let Decl::Counter(id) = d else {
                        self.wrong_kind(name, d, "a counter", "`expect counter` reads a counter");
                        continue;
                    };
                    let fields = pcx.counters[id.index()].key.clone();
                    if key.len() != fields.len() {
                        self.help(
                            "E0113",
                            *span,
                            format!(
                                "counter `{}` has {} key fields, {} values given",
                                name.name,
                                fields.len(),
                                key.len()
                            ),
                            format!(
                                "write one value per key field: {}",
                                fields
                                    .iter()
                                    .map(|f| f.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        continue;
                    }
                    let mut vals = Vec::new();
                    for (v, f) in key.iter().zip(&fields) {
                        if let Some(s) = self.scalar(v, f.ty(), &format!("`{}`", f.name())) {
                            vals.push(s);
                        }
                    }
                    let n = self.int_value(value, "counter value", u128::from(u64::MAX));
                    if let (Some(n), true) = (n, vals.len() == fields.len()) {
                        steps.push(Step::ExpectCounter {
                            counter: id,
                            key: vals,
                            value: n as u64,
                            bytes: *bytes,
                            span: *span,
                        });
                    }
                }
                ast::TestStmt::ExpectOut { packet, span } => {
                    if batch.is_none() {
                        self.help(
                            "E0113",
                            *span,
                            "`expect out` before any `send`",
                            "send a packet first",
                        );
                        continue;
                    }
                    if let Some(layers) = self.packet(packet, false) {
                        steps.push(Step::ExpectOut {
                            layers,
                            span: *span,
                        });
                    }
                }
            }
        }
        Test {
            name: t.name.clone(),
            steps,
            span: t.span,
        }
    }

    /// Types a packet literal against the layer schemas of `crate::packet`.
    fn packet(&mut self, p: &ast::PacketLit, build: bool) -> Option<Vec<LayerSpec>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, l) in p.layers.iter().enumerate() {
            let Some(kind) = LayerKind::from_name(&l.name.name) else {
                let names = [
                    "eth", "vlan", "arp", "ipv4", "ipv6", "ipv6ext", "tcp", "udp", "icmp",
                    "icmpv6", "payload", "raw", "truncate",
                ];
                let mut d = Diagnostic::error(
                    "E0113",
                    l.name.span,
                    format!("unknown packet layer `{}`", l.name.name),
                );
                d.help = Some(match closest(&l.name.name, names) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("layers are {}", names.join(", ")),
                });
                self.diags.push(d);
                ok = false;
                continue;
            };
            if kind == LayerKind::Truncate && i + 1 != p.layers.len() && build {
                self.help(
                    "E0113",
                    l.span,
                    "`truncate` must be the last layer",
                    "move `truncate(N)` to the end",
                );
                ok = false;
            }
            let schema = packet::arg_schema(kind);
            let mut args = Vec::new();
            for (name, v) in &l.args {
                let key = name.as_ref().map_or("", |n| n.name.as_str());
                let Some((_, ty)) = schema.iter().find(|(n, _)| *n == key) else {
                    let span = name.as_ref().map_or(v.span, |n| n.span);
                    let names: Vec<&str> = schema
                        .iter()
                        .map(|(n, _)| *n)
                        .filter(|n| !n.is_empty())
                        .collect();
                    let msg = if key.is_empty() {
                        format!("`{}` takes no positional argument", l.name.name)
                    } else {
                        format!("`{}` has no argument `{key}`", l.name.name)
                    };
                    let help = match closest(key, names.iter().copied()) {
                        Some(c) if !key.is_empty() => format!("did you mean `{c}`?"),
                        _ if names.is_empty() => format!("write `{}(VALUE)`", l.name.name),
                        _ => format!("`{}` takes {}", l.name.name, names.join(", ")),
                    };
                    self.help("E0113", span, msg, help);
                    ok = false;
                    continue;
                };
                match self.layer_arg(v, *ty, &format!("`{}({key}=...)`", l.name.name)) {
                    Some(a) => args.push((key.to_string(), a)),
                    None => ok = false,
                }
            }
            out.push(LayerSpec { kind, args });
        }
        if !ok {
            return None;
        }
        if build {
            if let Err(e) = packet::build(&out) {
                self.help(
                    "E0113",
                    p.span,
                    format!("cannot build this packet: {e}"),
                    "fix the layers so they form a frame (e.g. `ipv4(...) / udp(...)`)",
                );
                return None;
            }
        }
        Some(out)
    }

    fn layer_arg(&mut self, v: &ast::Value, ty: ArgType, what: &str) -> Option<ArgValue> {
        match ty {
            ArgType::Uint(bits) => self
                .scalar(v, FieldType::Uint(bits), what)
                .map(|s| ArgValue::Int(s.bits)),
            ArgType::Flags => self
                .scalar(v, FieldType::Uint(8), what)
                .map(|s| ArgValue::Int(s.bits)),
            ArgType::ExtKind => {
                if let ValueKind::Name(p) = &v.kind {
                    if let Some(k) = ext_kind(&p.text()) {
                        return Some(ArgValue::Int(k));
                    }
                }
                let s = self.scalar(v, FieldType::Uint(8), what)?;
                Some(ArgValue::Int(s.bits))
            }
            ArgType::Mac => self
                .scalar(v, FieldType::Mac, what)
                .map(|s| ArgValue::Mac(mac_bytes(s.bits))),
            ArgType::Ipv4 => self
                .scalar(v, FieldType::Ipv4, what)
                .map(|s| ArgValue::Ipv4(std::net::Ipv4Addr::from(s.bits as u32))),
            ArgType::Ipv6 => self
                .scalar(v, FieldType::Ipv6, what)
                .map(|s| ArgValue::Ipv6(std::net::Ipv6Addr::from(s.bits))),
            ArgType::Bytes => match (&v.kind, self.resolve(v)) {
                (ValueKind::Hex(h), _) if h.len() % 2 == 0 => Some(ArgValue::Bytes(hex_bytes(h))),
                (ValueKind::Hex(h), _) => {
                    self.help(
                        "E0004",
                        v.span,
                        "a byte string has an even number of hex digits",
                        format!("write `0x0{h}`"),
                    );
                    None
                }
                (_, Resolved::Bytes(b)) => Some(ArgValue::Bytes(b)),
                (_, Resolved::Invalid) => None,
                _ => {
                    self.help(
                        "E0103",
                        v.span,
                        format!("{what} takes a string or a byte string"),
                        "write `\"text\"` or `0x0102`",
                    );
                    None
                }
            },
        }
    }
}

fn mac_bytes(bits: u128) -> [u8; 6] {
    let b = bits.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..]);
    m
}

/// Decodes hex digits (even count) into bytes.
pub fn hex_bytes(h: &str) -> Vec<u8> {
    h.as_bytes()
        .chunks(2)
        .map(|c| {
            let s = std::str::from_utf8(c).unwrap_or("0");
            u8::from_str_radix(s, 16).unwrap_or(0)
        })
        .collect()
}

fn fields_of(h: Header) -> String {
    Field::ALL
        .iter()
        .filter(|f| f.header() == h)
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn set_field_type(kind: SetKind) -> FieldType {
    match kind {
        SetKind::Ipv4Prefix | SetKind::Ipv4 => FieldType::Ipv4,
        SetKind::Ipv6Prefix | SetKind::Ipv6 => FieldType::Ipv6,
        SetKind::Port => FieldType::Uint(16),
        SetKind::Mac => FieldType::Mac,
        SetKind::Uint(b) => FieldType::Uint(b),
    }
}

/// Whether a set of `kind` can be tested against field `f`.
pub fn set_fits_field(kind: SetKind, f: Field) -> bool {
    match (kind, f.ty()) {
        (SetKind::Ipv4Prefix | SetKind::Ipv4, FieldType::Ipv4 | FieldType::IpAny) => true,
        (SetKind::Ipv6Prefix | SetKind::Ipv6, FieldType::Ipv6 | FieldType::IpAny) => true,
        (SetKind::Port, _) => f.is_port(),
        (SetKind::Mac, FieldType::Mac) => true,
        (SetKind::Uint(w), FieldType::Uint(b)) => b <= w,
        _ => false,
    }
}

fn rewritable(f: Field) -> bool {
    matches!(
        f,
        Field::EthSrc
            | Field::EthDst
            | Field::IpSrc
            | Field::IpDst
            | Field::Ipv4Src
            | Field::Ipv4Dst
            | Field::Ipv6Src
            | Field::Ipv6Dst
            | Field::L4Sport
            | Field::L4Dport
            | Field::TcpSport
            | Field::TcpDport
            | Field::UdpSport
            | Field::UdpDport
            | Field::IpTtl
            | Field::Ipv4Ttl
            | Field::Ipv6Hoplimit
            | Field::IpDscp
            | Field::Ipv4Dscp
            | Field::Ipv6Dscp
    )
}

/// The table a rule's terminal comes from: the first `match TABLE` in a top-level conjunction.
fn match_table(e: &Expr) -> Option<TableId> {
    match e {
        Expr::Atom(Atom::Match(t), _) => Some(*t),
        Expr::And(parts) => parts.iter().find_map(match_table),
        _ => None,
    }
}

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
