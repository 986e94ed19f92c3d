//! Values: literals resolved through constants (user and built-in), typed against a field's
//! type — integer widths, address families, MACs — and checked for range: single values, set
//! and list members (values, prefixes, ranges) and bounded integers of declarations.

use super::{closest, Checker};
use crate::ast::{self, Path, Span, ValueKind};
use crate::checked::*;
use crate::diag::Diagnostic;

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
pub(super) fn ethertype_constant(name: &str) -> Option<u128> {
    match name {
        "ipv4" => Some(0x0800),
        "ipv6" => Some(0x86dd),
        _ => None,
    }
}

/// A value resolved through constants, with the span of its use.
#[derive(Clone)]
pub(super) enum Resolved {
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
    /// Resolves names through user constants and built-ins, without typing.
    pub(super) fn resolve(&mut self, v: &ast::Value) -> Resolved {
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
    pub(super) fn scalar(&mut self, v: &ast::Value, ty: FieldType, what: &str) -> Option<Scalar> {
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
    pub(super) fn item(&mut self, v: &ast::Value, ty: FieldType, what: &str) -> Option<Item> {
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

    pub(super) fn int_value(&mut self, v: &ast::Value, what: &str, max: u128) -> Option<u128> {
        let bits = 128 - max.leading_zeros();
        let s = self.scalar(v, FieldType::Uint(bits.max(1)), what)?;
        if s.bits > max {
            self.err("E0105", v.span, format!("{what} {} is too large", s.bits))
                .help = Some(format!("use at most {max}"));
            return None;
        }
        Some(s.bits)
    }
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
