//! ClassBench filter sets to `.nf`.
//!
//! A ClassBench file holds one filter per line, highest priority first:
//!
//! ```text
//! @src/len <TAB> dst/len <TAB> sport_lo : sport_hi <TAB> dport_lo : dport_hi <TAB> proto/mask <TAB> flags/mask <TAB>
//! ```
//!
//! The protocol and flags columns are `0x` hex. The flags column's high byte is the TCP flags
//! when the protocol is TCP and the ICMP type when it is ICMP; its low byte is unused (its mask
//! must be 0). Bits of a value outside its mask are ignored, as in a ternary match; that is
//! also how prefixes with host bits set are read (`10.1.2.3/8` is `10.0.0.0/8`).
//!
//! Each filter becomes one rule, `r0`, `r1`, ... in file order, so the `.nf` first-match order
//! is the ClassBench priority order. ClassBench is IPv4-only: every predicate implies `ipv4`.

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
pub enum ImportError {
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
    /// A well-formed flags column that the importer cannot express: a non-zero mask on the low
    /// byte, or a flags constraint on a protocol other than exactly TCP or ICMP.
    #[error("line {line}: unsupported flags `{text}`: {reason}")]
    UnsupportedFlags {
        /// The line number.
        line: usize,
        /// The column as written.
        text: String,
        /// What is not supported.
        reason: &'static str,
    },
}

/// Converts a ClassBench filter set into one `.nf` policy named `policy_name` on `xdp`: one rule
/// per filter line, `r0`, `r1`, ... in file order, each with the terminal action `actions`
/// chooses, and `default pass`. Blank lines are skipped; the leading `@` of a line is optional.
///
/// # Errors
/// The first malformed or unsupported line, as an [`ImportError`] with its line number; or
/// [`ImportError::PolicyName`] when `policy_name` is not an identifier.
pub fn classbench_to_nf(
    input: &str,
    policy_name: &str,
    actions: ClassbenchActions,
) -> Result<String, ImportError> {
    if !is_identifier(policy_name) {
        return Err(ImportError::PolicyName {
            name: policy_name.to_owned(),
        });
    }
    let mut filters = Vec::with_capacity(input.len() / 64 + 1);
    for (i, text) in input.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        filters.push(parse_line(i + 1, text)?);
    }

    // A rule is at most ~200 bytes; the input line is ~70.
    let mut out = String::with_capacity(512 + filters.len() * 200);
    // `fmt::Write` for `String` never fails, so results of `write!` are ignored below.
    let _ = writeln!(
        out,
        "# {policy_name}: imported from a ClassBench filter set by nfcc (nfcc_dsl::import).\n\
         # {} rules, r0, r1, ... in the order of the filter lines; the first match wins.\n\
         # Actions: {}; packets no rule matches pass.\n\
         # ClassBench filters are IPv4-only, so every rule matches IPv4 packets only.",
        filters.len(),
        actions.describe(),
    );
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
    /// `icmp.type == VALUE` (mask 0xff) or `icmp.type & MASK == VALUE`.
    IcmpType { value: u8, mask: u8 },
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
            FlagsAtom::None => {}
            FlagsAtom::Tcp { value, mask } => {
                atom(out);
                out.push_str("tcp.flags & ");
                push_hex2(out, mask);
                out.push_str(" == ");
                push_hex2(out, value);
            }
            FlagsAtom::IcmpType { value, mask: 0xff } => {
                atom(out);
                out.push_str("icmp.type == ");
                push_dec(out, value.into());
            }
            FlagsAtom::IcmpType { value, mask } => {
                atom(out);
                out.push_str("icmp.type & ");
                push_hex2(out, mask);
                out.push_str(" == ");
                push_hex2(out, value);
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
fn parse_line(line: usize, text: &str) -> Result<Filter, ImportError> {
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
        return Err(ImportError::Columns {
            line,
            found,
            text: text.to_owned(),
        });
    }
    let [src, dst, sport, dport, proto, flags] = cols;
    let src = parse_prefix(src).ok_or_else(|| ImportError::Prefix {
        line,
        text: src.to_owned(),
    })?;
    let dst = parse_prefix(dst).ok_or_else(|| ImportError::Prefix {
        line,
        text: dst.to_owned(),
    })?;
    let sport = parse_ports(line, sport)?;
    let dport = parse_ports(line, dport)?;
    let proto = parse_masked(proto, 0xff)
        .map(|(v, m)| ((v & m) as u8, m as u8))
        .ok_or_else(|| ImportError::Proto {
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
fn parse_ports(line: usize, s: &str) -> Result<(u16, u16), ImportError> {
    let bad = || ImportError::PortRange {
        line,
        text: s.to_owned(),
    };
    let (lo, hi) = s.split_once(':').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(ImportError::EmptyPortRange {
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
) -> Result<FlagsAtom, ImportError> {
    let (value, mask) = parse_masked(s, 0xffff).ok_or_else(|| ImportError::Flags {
        line,
        text: s.to_owned(),
    })?;
    let unsupported = |reason| ImportError::UnsupportedFlags {
        line,
        text: s.to_owned(),
        reason,
    };
    if mask & 0xff != 0 {
        return Err(unsupported(
            "the low byte of the flags column has no meaning here; its mask must be 0x00",
        ));
    }
    let mask = (mask >> 8) as u8;
    let value = (value >> 8) as u8 & mask;
    if mask == 0 {
        return Ok(FlagsAtom::None);
    }
    match (proto, proto_mask) {
        (6, 0xff) => Ok(FlagsAtom::Tcp { value, mask }),
        (1, 0xff) => Ok(FlagsAtom::IcmpType { value, mask }),
        _ => Err(unsupported(
            "flags are only understood when the protocol is exactly tcp (0x06/0xFF, tcp flags) \
             or icmp (0x01/0xFF, icmp type)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts `input` (policy `cb`, every rule drops) and checks that the output contains
    /// `expected` and parses as `.nf`; or, when the conversion fails, that the error message
    /// contains `expected`.
    fn check(input: &str, expected: &str) {
        match classbench_to_nf(input, "cb", ClassbenchActions::Drop) {
            Ok(out) => {
                assert!(
                    out.contains(expected),
                    "expected {expected:?} in the output:\n{out}"
                );
                let (_, diags) = crate::parse::parse(&out);
                assert!(diags.is_empty(), "output does not parse: {diags:?}\n{out}");
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(expected),
                    "expected {expected:?} in the error: {msg}"
                );
            }
        }
    }

    /// A filter line from its six columns, in the file's exact layout (with the trailing tab).
    fn line(cols: [&str; 6]) -> String {
        format!("@{}\t\n", cols.join("\t"))
    }

    const ANY: &str = "0.0.0.0/0";
    const PORTS: &str = "0 : 65535";

    #[test]
    fn import_exact_hosts_and_single_ports() {
        check(
            &line([
                "176.19.181.33/32",
                "90.145.23.162/32",
                PORTS,
                "1550 : 1550",
                "0x06/0xFF",
                "0x0000/0x0000",
            ]),
            "rule r0: ipv4.src == 176.19.181.33 and ipv4.dst == 90.145.23.162 and \
             ipv4.proto == 6 and tcp.dport == 1550 => drop",
        );
    }

    #[test]
    fn import_prefixes_clear_host_bits() {
        check(
            &line([
                "10.1.2.3/8",
                "192.168.77.200/20",
                PORTS,
                PORTS,
                "0x11/0xFF",
                "0x0000/0x0000",
            ]),
            "rule r0: ipv4.src in 10.0.0.0/8 and ipv4.dst in 192.168.64.0/20 and ipv4.proto == 17 => drop",
        );
    }

    #[test]
    fn import_port_ranges_pick_the_l4_header() {
        check(
            &line([
                ANY,
                ANY,
                "1024 : 65535",
                "53 : 53",
                "0x11/0xFF",
                "0x0000/0x0000",
            ]),
            "ipv4.proto == 17 and udp.sport in 1024..65535 and udp.dport == 53 => drop",
        );
        // No protocol: the ports imply tcp or udp, and `ipv4` keeps the rule IPv4-only.
        check(
            &line([ANY, ANY, PORTS, "6000 : 6063", "0x00/0x00", "0x0000/0x0000"]),
            "rule r0: ipv4 and l4.dport in 6000..6063 => drop",
        );
        // A partial protocol mask is a masked compare, and ports use l4.
        check(
            &line([ANY, ANY, "7 : 7", PORTS, "0x06/0xFE", "0x0000/0x0000"]),
            "rule r0: ipv4.proto & 0xfe == 0x06 and l4.sport == 7 => drop",
        );
    }

    #[test]
    fn import_ports_on_a_portless_protocol_are_kept_with_a_comment() {
        check(
            &line([ANY, ANY, PORTS, "80 : 80", "0x2f/0xFF", "0x0000/0x0000"]),
            "    # r0 never matches: protocol 47 has no ports, yet the filter constrains them.\n    \
             rule r0: ipv4.proto == 47 and l4.dport == 80 => drop",
        );
    }

    #[test]
    fn import_wildcard_line_matches_all_ipv4() {
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
            "rule r0: ipv4 => drop",
        );
    }

    #[test]
    fn import_tcp_flags_and_icmp_type() {
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0200/0x1200"]),
            "rule r0: ipv4.proto == 6 and tcp.flags & 0x12 == 0x02 => drop",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x1000/0x1000"]),
            "tcp.flags & 0x10 == 0x10 => drop",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0000/0x0200"]),
            "tcp.flags & 0x02 == 0x00 => drop",
        );
        check(
            &line([
                ANY,
                "10.0.0.0/8",
                PORTS,
                PORTS,
                "0x01/0xFF",
                "0x0800/0xff00",
            ]),
            "rule r0: ipv4.dst in 10.0.0.0/8 and ipv4.proto == 1 and icmp.type == 8 => drop",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x01/0xFF", "0x0800/0xf000"]),
            "ipv4.proto == 1 and icmp.type & 0xf0 == 0x00 => drop",
        );
    }

    #[test]
    fn import_without_trailing_tab_crlf_and_blank_lines() {
        let input = "@1.2.3.4/32\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\r\n\
                     \n\
                     @0.0.0.0/0\t5.6.7.8/32\t0:65535\t22:22\t0x06/0xff\t0x0000/0x0000\n";
        check(
            input,
            "rule r0: ipv4.src == 1.2.3.4 => drop\n    rule r1: ipv4.dst == 5.6.7.8",
        );
    }

    #[test]
    fn import_errors_carry_line_and_text() {
        let good = line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]);
        check(
            &format!("{good}@1.2.3.4/32\t0.0.0.0/0\t0 : 65535\n"),
            "line 2: expected 6 tab-separated columns (src, dst, sport, dport, proto, flags), \
             found 3: `@1.2.3.4/32\t0.0.0.0/0\t0 : 65535`",
        );
        let bad_prefix = line([
            "1.2.3.4/33",
            ANY,
            PORTS,
            PORTS,
            "0x00/0x00",
            "0x0000/0x0000",
        ]);
        check(
            &format!("{good}{good}{bad_prefix}"),
            "line 3: invalid ipv4 prefix `1.2.3.4/33`",
        );
        check(
            &line([ANY, "1.2.3/24", PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
            "line 1: invalid ipv4 prefix `1.2.3/24`",
        );
        check(
            &format!(
                "\n{}",
                line([ANY, ANY, "80 : 79", PORTS, "0x06/0xFF", "0x0000/0x0000"])
            ),
            "line 2: empty port range `80 : 79`",
        );
        check(
            &line([ANY, ANY, PORTS, "0 : 65536", "0x06/0xFF", "0x0000/0x0000"]),
            "line 1: invalid port range `0 : 65536`",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0x1FF", "0x0000/0x0000"]),
            "line 1: invalid protocol `0x06/0x1FF`",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "6/255", "0x0000/0x0000"]),
            "line 1: invalid protocol `6/255`",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x0000/0x00ff"]),
            "line 1: unsupported flags `0x0000/0x00ff`: the low byte",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x11/0xFF", "0x0200/0x0200"]),
            "line 1: unsupported flags `0x0200/0x0200`: flags are only understood",
        );
        check(
            &line([ANY, ANY, PORTS, PORTS, "0x06/0xFF", "0x10000/0x0000"]),
            "line 1: invalid flags `0x10000/0x0000`",
        );
        // The variant carries the line number as a field, not only in the message.
        let err = classbench_to_nf(
            &format!("{good}\n{bad_prefix}"),
            "cb",
            ClassbenchActions::Drop,
        );
        assert_eq!(
            err,
            Err(ImportError::Prefix {
                line: 3,
                text: "1.2.3.4/33".into()
            })
        );
    }

    #[test]
    fn import_rejects_bad_policy_names() {
        for name in ["", "1abc", "a-b", "and"] {
            let err = classbench_to_nf("", name, ClassbenchActions::Drop).unwrap_err();
            assert!(
                matches!(err, ImportError::PolicyName { .. }),
                "{name}: {err}"
            );
        }
        let out = classbench_to_nf("", "_acl1", ClassbenchActions::Drop).unwrap();
        assert!(
            out.contains("policy _acl1 on xdp {\n    default pass\n}\n"),
            "{out}"
        );
    }

    #[test]
    fn import_snapshot_alternate_actions() {
        let input = [
            line([
                "176.19.181.33/32",
                "90.145.23.162/32",
                PORTS,
                "1550 : 1550",
                "0x06/0xFF",
                "0x0000/0x0200",
            ]),
            line([
                "10.0.0.0/8",
                ANY,
                "1024 : 65535",
                "53 : 53",
                "0x11/0xFF",
                "0x0000/0x0000",
            ]),
            line([
                ANY,
                "192.0.2.0/24",
                PORTS,
                PORTS,
                "0x01/0xFF",
                "0x0800/0xff00",
            ]),
            line([ANY, ANY, PORTS, "80 : 80", "0x00/0x00", "0x0000/0x0000"]),
            line([ANY, ANY, PORTS, PORTS, "0x00/0x00", "0x0000/0x0000"]),
        ]
        .concat();
        let out = classbench_to_nf(&input, "snap", ClassbenchActions::Alternate).unwrap();
        insta::assert_snapshot!(out);
    }

    #[test]
    fn import_rules_behave_on_the_reference_evaluator() {
        let input = [
            line([
                "176.19.181.33/32",
                "90.145.23.162/32",
                PORTS,
                "1550 : 1550",
                "0x06/0xFF",
                "0x0200/0x1200",
            ]),
            line([
                ANY,
                "192.0.2.0/24",
                PORTS,
                PORTS,
                "0x01/0xFF",
                "0x0800/0xff00",
            ]),
            line([
                "10.0.0.0/8",
                ANY,
                PORTS,
                "1000 : 2000",
                "0x00/0x00",
                "0x0000/0x0000",
            ]),
        ]
        .concat();
        let out = classbench_to_nf(&input, "cb", ClassbenchActions::Alternate).unwrap();
        // Test blocks go before the policy's closing brace.
        let tests = r#"
    test "r0: tcp syn to 1550 from the host" {
        send ipv4(src=176.19.181.33, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn)
        expect drop by r0
        send ipv4(src=176.19.181.33, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn|ack)
        expect pass by default
        send ipv4(src=176.19.181.34, dst=90.145.23.162) / tcp(sport=999, dport=1550, flags=syn)
        expect pass by default
    }
    test "r1: icmp echo into the /24" {
        send ipv4(src=1.2.3.4, dst=192.0.2.200) / icmp(type=8)
        expect pass by r1
        send ipv4(src=1.2.3.4, dst=192.0.2.200) / icmp(type=0)
        expect pass by default
    }
    test "r2: ports without a protocol mean tcp or udp over ipv4" {
        send ipv4(src=10.1.1.1, dst=1.2.3.4) / udp(sport=5, dport=1000)
        expect drop by r2
        send ipv4(src=10.1.1.1, dst=1.2.3.4) / tcp(sport=5, dport=2000, flags=ack)
        expect drop by r2
        send ipv4(src=10.1.1.1, dst=1.2.3.4) / tcp(sport=5, dport=2001, flags=ack)
        expect pass by default
        send ipv6(src=2001:db8::1, dst=2001:db8::2) / udp(sport=5, dport=1500)
        expect pass by default
    }
}
"#;
        let source = format!("{}{tests}", out.trim_end().strip_suffix('}').unwrap());
        let (prog, diags) = crate::check_source(&source, &crate::CheckOptions::default());
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{source}");
        let policy = &prog.expect("checked").policies[0];
        let mut engine = crate::testing::EvalEngine::default();
        for report in crate::testing::run_tests(policy, &mut engine) {
            assert!(report.passed(), "{}: {:?}", report.name, report.failures);
        }
    }

    /// A ClassBench file of the shared bench data.
    fn bench_file(name: &str) -> String {
        let path = format!(
            "{}/../../shared/bench-data/classbench/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn import_acl1_1k() {
        let acl1_1k = bench_file("acl1_1k");
        let out = classbench_to_nf(&acl1_1k, "acl1", ClassbenchActions::Drop).unwrap();
        let lines = acl1_1k.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, 942);
        assert!(out.contains("# 942 rules"), "{}", &out[..300]);
        let (file, diags) = crate::parse::parse(&out);
        assert!(diags.is_empty(), "{diags:?}");
        let rules = &file.policies[0].rules;
        assert_eq!(rules.len(), 942);
        assert_eq!(rules[941].name.name, "r941");
        let (prog, diags) = crate::check_source(&out, &crate::CheckOptions::default());
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(prog.expect("checked").policies[0].rules.len(), 942);
        check(
            &acl1_1k,
            "rule r0: ipv4.src == 176.19.181.33 and ipv4.dst == 90.145.23.162 and \
             ipv4.proto == 6 and tcp.dport == 1550 and tcp.flags & 0x02 == 0x00 => drop\n",
        );
    }

    #[test]
    fn import_every_bench_set_converts_and_parses() {
        for name in [
            "acl1_1k", "acl1_10k", "fw1_1k", "fw1_10k", "ipc1_1k", "ipc1_10k",
        ] {
            let input = bench_file(name);
            let lines = input.lines().filter(|l| !l.trim().is_empty()).count();
            let out = classbench_to_nf(&input, name, ClassbenchActions::Alternate)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (file, diags) = crate::parse::parse(&out);
            assert!(diags.is_empty(), "{name}: {diags:?}");
            assert_eq!(file.policies[0].rules.len(), lines, "{name}");
        }
    }
}
