//! Test blocks: `send`/`expect` statements and their packet literals, typed against the layer
//! schemas of [`crate::packet`] (and built once, so a literal that cannot form a frame is an
//! error here rather than a test failure later).

use super::values::{hex_bytes, Resolved};
use super::{closest, Checker, Decl, Pcx};
use crate::ast::{self, ValueKind};
use crate::checked::*;
use crate::diag::Diagnostic;
use crate::packet::{self, ArgType, ArgValue, LayerKind, LayerSpec};

/// The extension-header kinds `ipv6ext(kind=...)` takes by name.
fn ext_kind(name: &str) -> Option<u128> {
    match name {
        "hop" => Some(0),
        "routing" => Some(43),
        "dest" => Some(60),
        "frag" => Some(44),
        _ => None,
    }
}

impl Checker {
    pub(super) fn test_block(&mut self, t: &ast::TestBlock, pcx: &Pcx, rules: &[Rule]) -> Test {
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
                        ast::VerdictLit::RedirectXsk(_) => Some(Terminal::Xsk),
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
