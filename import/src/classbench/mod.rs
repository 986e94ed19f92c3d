//! ClassBench filter sets to `.nf`, and ([`generate`]) new filter sets drawn from ClassBench's
//! parameter files.
//!
//! A ClassBench file holds one filter per line, highest priority first:
//!
//! ```text
//! @src/len <TAB> dst/len <TAB> sport_lo : sport_hi <TAB> dport_lo : dport_hi <TAB> proto/mask <TAB> flags/mask <TAB>
//! ```
//!
//! The protocol and flags columns are `0x` hex. The flags column's high byte is the TCP flags
//! when the protocol is TCP; for ICMP the high byte is the type and the low byte the code
//! (`0x0303/0xffff`, port unreachable). A flags column with no such meaning (another protocol,
//! a wildcard one, a TCP low byte) is not matched: the rule is imported without it and the
//! header comment says how many rules and which values. Bits of a value outside its mask are
//! ignored, as in a ternary match; that is also how prefixes with host bits set are read
//! (`10.1.2.3/8` is `10.0.0.0/8`).
//!
//! Each filter becomes one rule, `r0`, `r1`, ... in file order, so the `.nf` first-match order
//! is the ClassBench priority order. ClassBench is IPv4-only: every predicate implies `ipv4`.

pub mod generate;

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Which terminal action the imported rules get (ClassBench filters carry none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassbenchActions {
    /// Every rule drops.
    Drop,
    /// Rule `i` drops when `i` is even and passes when it is odd, so that a test can tell which
    /// of two neighbouring rules matched from the verdict alone.
    Alternate,
}

impl ClassbenchActions {
    /// The terminal action of rule number `index`.
    fn action(self, index: usize) -> &'static str {
        match self {
            ClassbenchActions::Drop => "drop",
            ClassbenchActions::Alternate if index.is_multiple_of(2) => "drop",
            ClassbenchActions::Alternate => "pass",
        }
    }

    /// One line for the header comment.
    fn describe(self) -> &'static str {
        match self {
            ClassbenchActions::Drop => "every rule drops",
            ClassbenchActions::Alternate => "even rules (r0, r2, ...) drop, odd rules pass",
        }
    }
}

/// Why a ClassBench file could not be imported. Line numbers are 1-based and count every line of
/// the input, blank ones included.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClassbenchError {
    /// The policy name given to the importer is not a `.nf` identifier (it is not part of the
    /// input, so it carries no line).
    #[error(
        "invalid policy name `{name}`: expected a letter or `_` followed by letters, digits or \
         `_`, and not one of `and`, `or`, `not`, `in`, `over`, `has`"
    )]
    PolicyName {
        /// The name as given.
        name: String,
    },
    /// A line does not have the six tab-separated columns of a filter.
    #[error(
        "line {line}: expected 6 tab-separated columns (src, dst, sport, dport, proto, flags), \
         found {found}: `{text}`"
    )]
    Columns {
        /// The line number.
        line: usize,
        /// How many columns the line has.
        found: usize,
        /// The whole line.
        text: String,
    },
    /// A source or destination column is not an IPv4 prefix `a.b.c.d/len` with `len` <= 32.
    #[error("line {line}: invalid ipv4 prefix `{text}`: expected a.b.c.d/len with len at most 32")]
    Prefix {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
    },
    /// A port column is not `lo : hi` with both ends in 0..=65535.
    #[error("line {line}: invalid port range `{text}`: expected `lo : hi` with ports 0 to 65535")]
    PortRange {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
    },
    /// A port range whose low end is above its high end (it would match nothing).
    #[error("line {line}: empty port range `{text}`: the low end is above the high end")]
    EmptyPortRange {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
    },
    /// The protocol column is not `0xVV/0xMM` with both at most `0xff`.
    #[error("line {line}: invalid protocol `{text}`: expected 0xVV/0xMM with both at most 0xff")]
    Proto {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
    },
    /// The flags column is not `0xVVVV/0xMMMM` with both at most `0xffff`.
    #[error(
        "line {line}: invalid flags `{text}`: expected 0xVVVV/0xMMMM with both at most 0xffff"
    )]
    Flags {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
    },
}

/// Converts a ClassBench filter set into one `.nf` policy named `policy_name` on `xdp`: one rule
/// per filter line, `r0`, `r1`, ... in file order, each with the terminal action `actions`
/// chooses, and `default pass`. Blank lines are skipped; the leading `@` of a line is optional.
///
/// # Errors
/// The first malformed or unsupported line, as an [`ClassbenchError`] with its line number; or
/// [`ClassbenchError::PolicyName`] when `policy_name` is not an identifier.
pub fn classbench_to_nf(
    input: &str,
    policy_name: &str,
    actions: ClassbenchActions,
) -> Result<String, ClassbenchError> {
    if !is_identifier(policy_name) {
        return Err(ClassbenchError::PolicyName {
            name: policy_name.to_owned(),
        });
    }
    let mut filters = Vec::with_capacity(input.len() / 64 + 1);
    // Flags columns with no meaning for the rule's protocol: (column, how many rules).
    let mut ignored: Vec<(String, usize)> = Vec::new();
    for (i, text) in input.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let f = parse_line(i + 1, text)?;
        if let FlagsAtom::Ignored = f.flags {
            let column = text
                .trim_start_matches('@')
                .split('\t')
                .nth(5)
                .unwrap_or("");
            let column = format!(
                "{column} on protocol {}",
                text.split('\t').nth(4).unwrap_or("")
            );
            match ignored.iter_mut().find(|(c, _)| *c == column) {
                Some((_, n)) => *n += 1,
                None => ignored.push((column, 1)),
            }
        }
        filters.push(f);
    }

    // A rule is at most ~200 bytes; the input line is ~70.
    let mut out = String::with_capacity(512 + filters.len() * 200);
    // `fmt::Write` for `String` never fails, so results of `write!` are ignored below.
    let _ = writeln!(
        out,
        "# {policy_name}: imported from a ClassBench filter set by nfcc (nfcc_import::classbench).\n\
         # {} rules, r0, r1, ... in the order of the filter lines; the first match wins.\n\
         # Actions: {}; packets no rule matches pass.\n\
         # ClassBench filters are IPv4-only, so every rule matches IPv4 packets only.",
        filters.len(),
        actions.describe(),
    );
    if !ignored.is_empty() {
        let rules: usize = ignored.iter().map(|(_, n)| n).sum();
        let values: Vec<String> = ignored.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        let _ = writeln!(
            out,
            "# The flags column of {rules} rule(s) is ignored: it names TCP flags (high byte) only\n\
             # for tcp and the type and code only for icmp; these rules match whatever it says:\n\
             # {}.",
            values.join(", ")
        );
    }
    let _ = writeln!(out, "policy {policy_name} on xdp {{");
    for (index, filter) in filters.iter().enumerate() {
        filter.write_rule(&mut out, index, actions.action(index));
    }
    out.push_str("    default pass\n}\n");
    Ok(out)
}

/// Whether `name` can be written where the grammar expects an identifier.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(name, "and" | "or" | "not" | "in" | "over" | "has")
}

/// One filter, values already masked.
#[derive(Clone, Copy, Debug)]
struct Filter {
    /// Source prefix (host bits cleared) and length.
    src: (Ipv4Addr, u8),
    /// Destination prefix (host bits cleared) and length.
    dst: (Ipv4Addr, u8),
    /// Inclusive source port range.
    sport: (u16, u16),
    /// Inclusive destination port range.
    dport: (u16, u16),
    /// Protocol value (masked) and mask.
    proto: (u8, u8),
    /// The flags atom, already decided from the protocol.
    flags: FlagsAtom,
}

/// What the flags column asks for.
#[derive(Clone, Copy, Debug)]
enum FlagsAtom {
    /// Wildcard.
    None,
    /// `tcp.flags & MASK == VALUE`.
    Tcp { value: u8, mask: u8 },
    /// `icmp.type == VALUE` (mask 0xff) or `icmp.type & MASK == VALUE`, and the same of
    /// `icmp.code` from the low byte when its mask is not 0.
    IcmpType {
        value: u8,
        mask: u8,
        code: u8,
        code_mask: u8,
    },
    /// A column with no meaning for the rule's protocol: not matched, counted in a note.
    Ignored,
}

const ANY_PORT: (u16, u16) = (0, u16::MAX);

impl Filter {
    /// Appends `    rule rINDEX: PREDICATE => ACTION` (and a comment first when the rule can
    /// never match).
    fn write_rule(&self, out: &mut String, index: usize, action: &str) {
        let (proto, proto_mask) = self.proto;
        let exact_proto = (proto_mask == 0xff).then_some(proto);
        let has_ports = self.sport != ANY_PORT || self.dport != ANY_PORT;
        let l4 = match exact_proto {
            Some(6) => "tcp",
            Some(17) => "udp",
            _ => "l4",
        };
        if has_ports {
            if let Some(p) = exact_proto.filter(|p| !matches!(p, 6 | 17)) {
                let _ = writeln!(
                    out,
                    "    # r{index} never matches: protocol {p} has no ports, yet the filter \
                     constrains them."
                );
            }
        }

        // The hot loop of a 10k-rule import: plain pushes, no `fmt` machinery.
        out.push_str("    rule r");
        push_dec(out, index);
        out.push_str(": ");
        let mut first = true;
        let mut atom = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push_str(" and ");
            }
        };
        // Every atom below but the port and flags ones reads an IPv4 header; when none of those
        // is present, say `ipv4` so that the rule still applies to IPv4 only.
        if self.src.1 == 0 && self.dst.1 == 0 && proto_mask == 0 {
            atom(out);
            out.push_str("ipv4");
        }
        for (field, (addr, len)) in [("ipv4.src", self.src), ("ipv4.dst", self.dst)] {
            if len == 0 {
                continue;
            }
            atom(out);
            out.push_str(field);
            out.push_str(if len == 32 { " == " } else { " in " });
            for (i, octet) in addr.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_dec(out, octet.into());
            }
            if len != 32 {
                out.push('/');
                push_dec(out, len.into());
            }
        }
        match proto_mask {
            0 => {}
            0xff => {
                atom(out);
                out.push_str("ipv4.proto == ");
                push_dec(out, proto.into());
            }
            m => {
                atom(out);
                out.push_str("ipv4.proto & ");
                push_hex2(out, m);
                out.push_str(" == ");
                push_hex2(out, proto);
            }
        }
        for (name, (lo, hi)) in [(".sport", self.sport), (".dport", self.dport)] {
            if (lo, hi) == ANY_PORT {
                continue;
            }
            atom(out);
            out.push_str(l4);
            out.push_str(name);
            if lo == hi {
                out.push_str(" == ");
                push_dec(out, lo.into());
            } else {
                out.push_str(" in ");
                push_dec(out, lo.into());
                out.push_str("..");
                push_dec(out, hi.into());
            }
        }
        match self.flags {
            FlagsAtom::None | FlagsAtom::Ignored => {}
            FlagsAtom::Tcp { value, mask } => {
                atom(out);
                out.push_str("tcp.flags & ");
                push_hex2(out, mask);
                out.push_str(" == ");
                push_hex2(out, value);
            }
            FlagsAtom::IcmpType {
                value,
                mask,
                code,
                code_mask,
            } => {
                for (field, v, m) in [("icmp.type", value, mask), ("icmp.code", code, code_mask)] {
                    match m {
                        0 => {}
                        0xff => {
                            atom(out);
                            out.push_str(field);
                            out.push_str(" == ");
                            push_dec(out, v.into());
                        }
                        m => {
                            atom(out);
                            out.push_str(field);
                            out.push_str(" & ");
                            push_hex2(out, m);
                            out.push_str(" == ");
                            push_hex2(out, v);
                        }
                    }
                }
            }
        }
        out.push_str(" => ");
        out.push_str(action);
        out.push('\n');
    }
}

/// Appends `n` in decimal.
fn push_dec(out: &mut String, n: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

/// Appends `0xNN`.
fn push_hex2(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push_str("0x");
    out.push(char::from(DIGITS[usize::from(b >> 4)]));
    out.push(char::from(DIGITS[usize::from(b & 0xf)]));
}

/// Parses one non-blank line.
fn parse_line(line: usize, text: &str) -> Result<Filter, ClassbenchError> {
    let body = text.strip_suffix('\t').unwrap_or(text);
    let body = body.strip_prefix('@').unwrap_or(body);
    let mut cols = [""; 6];
    let mut found = 0;
    for col in body.split('\t') {
        if let Some(slot) = cols.get_mut(found) {
            *slot = col.trim();
        }
        found += 1;
    }
    if found != cols.len() {
        return Err(ClassbenchError::Columns {
            line,
            found,
            text: text.to_owned(),
        });
    }
    let [src, dst, sport, dport, proto, flags] = cols;
    let src = parse_prefix(src).ok_or_else(|| ClassbenchError::Prefix {
        line,
        text: src.to_owned(),
    })?;
    let dst = parse_prefix(dst).ok_or_else(|| ClassbenchError::Prefix {
        line,
        text: dst.to_owned(),
    })?;
    let sport = parse_ports(line, sport)?;
    let dport = parse_ports(line, dport)?;
    let proto = parse_masked(proto, 0xff)
        .map(|(v, m)| ((v & m) as u8, m as u8))
        .ok_or_else(|| ClassbenchError::Proto {
            line,
            text: proto.to_owned(),
        })?;
    let flags = parse_flags(line, flags, proto)?;
    Ok(Filter {
        src,
        dst,
        sport,
        dport,
        proto,
        flags,
    })
}

/// `a.b.c.d/len` with the host bits cleared.
fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.trim().parse().ok()?;
    let len: u8 = len.trim().parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

/// `lo : hi`.
fn parse_ports(line: usize, s: &str) -> Result<(u16, u16), ClassbenchError> {
    let bad = || ClassbenchError::PortRange {
        line,
        text: s.to_owned(),
    };
    let (lo, hi) = s.split_once(':').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(ClassbenchError::EmptyPortRange {
            line,
            text: s.to_owned(),
        });
    }
    Ok((lo, hi))
}

/// `0xVALUE/0xMASK`, both at most `max`.
fn parse_masked(s: &str, max: u32) -> Option<(u32, u32)> {
    let (v, m) = s.split_once('/')?;
    let (v, m) = (parse_hex(v.trim())?, parse_hex(m.trim())?);
    (v <= max && m <= max).then_some((v, m))
}

/// A `0x` hex number of at most 8 digits.
fn parse_hex(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The flags column, read according to the (already parsed) protocol column.
fn parse_flags(
    line: usize,
    s: &str,
    (proto, proto_mask): (u8, u8),
) -> Result<FlagsAtom, ClassbenchError> {
    let (value, mask) = parse_masked(s, 0xffff).ok_or_else(|| ClassbenchError::Flags {
        line,
        text: s.to_owned(),
    })?;
    if mask == 0 {
        return Ok(FlagsAtom::None);
    }
    let (high, low) = ((mask >> 8) as u8, mask as u8);
    let (hv, lv) = ((value >> 8) as u8 & high, value as u8 & low);
    Ok(match (proto, proto_mask) {
        // The TCP flags byte; ClassBench gives the low byte no meaning for TCP.
        (6, 0xff) if high != 0 && low == 0 => FlagsAtom::Tcp {
            value: hv,
            mask: high,
        },
        // ICMP: type, then code (`0x0303/0xffff`: port unreachable).
        (1, 0xff) => FlagsAtom::IcmpType {
            value: hv,
            mask: high,
            code: lv,
            code_mask: low,
        },
        _ => FlagsAtom::Ignored,
    })
}

#[cfg(test)]
mod tests;
