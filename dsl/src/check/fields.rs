//! Fields: names resolved to [`Field`]s, with the restrictions of the policy's hook and target
//! (`pkt.rxq` only on xdp, `pkt.mark` only on tc, context fields not on the NIC), and which
//! set kinds a field can be looked up in.

use super::{closest, Capabilities, Checker, Pcx};
use crate::ast::Path;
use crate::checked::*;
use crate::diag::Diagnostic;

impl Checker {
    pub(super) fn field(&mut self, p: &Path, pcx: &Pcx) -> Option<Field> {
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

    pub(super) fn field_list(&mut self, paths: &[Path], pcx: &Pcx) -> Option<Vec<Field>> {
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
}

fn fields_of(h: Header) -> String {
    Field::ALL
        .iter()
        .filter(|f| f.header() == h)
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
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
