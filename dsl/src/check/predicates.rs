//! Predicates: a rule's condition, atom by atom — header presence, comparisons, `in` lists,
//! prefixes, ranges and sets, `has`, `over LIMITER`, `match TABLE` and payload bytes.

use super::fields::set_fits_field;
use super::values::{builtin_constant, ethertype_constant, hex_bytes, Resolved};
use super::{closest, Checker, Decl, Pcx};
use crate::ast::{self, CmpOp, ValueKind};
use crate::checked::*;
use crate::diag::Diagnostic;

impl Checker {
    pub(super) fn pred(&mut self, p: &ast::Pred, pcx: &mut Pcx) -> Expr {
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
}

/// The table a rule's terminal comes from: the first `match TABLE` in a top-level conjunction.
pub(super) fn match_table(e: &Expr) -> Option<TableId> {
    match e {
        Expr::Atom(Atom::Match(t), _) => Some(*t),
        Expr::And(parts) => parts.iter().find_map(match_table),
        _ => None,
    }
}
