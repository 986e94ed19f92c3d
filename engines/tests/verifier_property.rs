//! Property test of the whole pipeline against the kernel: random policies, written as `.nf`
//! text by a small seeded generator, must check, compile, pass the kernel verifier, and decide
//! random frames exactly as the reference evaluator does.
//!
//! The generator covers every construct the compiler supports: comparisons of every field of
//! section 4 with `== != < <= > >=`, masked comparisons (`FIELD & MASK OP V`, `FIELD & MASK in
//! {...}`), `in` lists mixing values, prefixes and ranges, `in RANGE`, `in PREFIX`, `in SET` for
//! every set kind (static and dynamic, inlined and in maps), `has`, header presence atoms,
//! `over LIMITER` with keys of one to three fields, `match TABLE` (as an atom and as the
//! verdict of a rule), payload comparisons and `not`/`and`/`or` nested up to depth 4; actions
//! `count`, `mark` (tc), `set FIELD = VALUE`, `dec ip.ttl`, `sample N`, `balance POOL by
//! (FIELDS)` and every terminal the hook allows; on xdp, tc ingress and tc egress, one or two
//! policies per file. Most policies have 1-40 rules; one file in 30 has one of 100-500 rules.
//! `balance ... via fib`, `redirect` table entries, ordering comparisons of IPv6 and MAC
//! addresses, IPv6 ranges and masked prefixes or ranges are not generated: the compiler
//! refuses them with E0201. Any refusal of a generated
//! file by the checker or with E0201 fails the test as a generator bug.
//!
//! Each file is compiled twice. The object as deployed (limiters read the kernel's clock) must
//! load through `nfcc_runtime::load`: the verifier accepts 100%. The object for tests
//! (`compile_with(.., virtual_clock = true)`: limiters read a clock map that `KernelEngine`
//! sets to the evaluator's frozen clock, so buckets of any rate and burst give the same answers
//! on both) runs 20 random frames per policy, built with
//! `nfcc_dsl::testing::frame_from_literal`, on the kernel (`KernelEngine` through the `Engine`
//! trait, one reset per policy so limiter buckets carry over from frame to frame) and on
//! `nfcc_dsl::eval` (`eval::eval` on a `State`, as `EvalEngine` runs it, so that counters can
//! be read by key): verdict, deciding rule and emitted bytes must agree, and so must every
//! counter entry a frame changed. The same frames also run on the emulator
//! (`nfcc_engines::EmulatorEngine`) with the object as deployed — its
//! `bpf_ktime_get_ns` is the evaluator's clock — held to the same answers. Frames too short
//! for the kernel's test runner are run on no engine, so that limiter buckets stay in step. The evaluator's packet metadata is
//! what `BPF_PROG_TEST_RUN` gives (ifindex 1, the loopback device; queue 0; mark 0).
//!
//! A failure prints the file and the verifier log, or the frame and both answers; the failing
//! policy is then shrunk (rules, declarations, sub-predicates, list items, actions and earlier
//! frames dropped while it keeps failing the same way) and saved as the first free
//! `tests/regressions/verifier-<n>.nf`, a disagreement with a test block that replays the
//! frames and expects the evaluator's answer. `saved_regressions_still_pass` re-runs every file
//! of that directory: each must load, and its test-block frames must agree.
//!
//! `NFCC_PROP_SEED` and `NFCC_PROP_CASES` change the seed and the number of generated files.
//! Needs CAP_BPF: without it the tests print `skipped: <why>`, or fail when
//! `NFCC_REQUIRE_KERNEL=1`.

use nfcc_compiler::compile::{compile, compile_with, Compiled};
use nfcc_dsl::checked::{
    CounterId, Family, Field, Hook, Program, RuleRef, Scalar, Step, Target, Terminal,
};
use nfcc_dsl::eval::{self, Meta, State};
use nfcc_dsl::testing::{frame_from_literal, hex, Engine};
use nfcc_dsl::{check_source, CheckOptions, Severity};
use nfcc_engines::EmulatorEngine;
use nfcc_engines::KernelEngine;
use nfcc_runtime::{load, ProgType, RuntimeError};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The seed used when `NFCC_PROP_SEED` is not set.
const DEFAULT_SEED: u64 = 0x6e66_6363_7665_7269;
/// Files generated when `NFCC_PROP_CASES` is not set.
const DEFAULT_CASES: usize = 150;
/// Random frames run per policy.
const FRAMES_PER_POLICY: usize = 20;
/// At most this many regression files are written per run, one per kind of failure (see
/// `signature`), so that one systematic compiler bug does not flood the directory.
const MAX_SAVED: usize = 8;
/// The most variants the shrinker tries for one failing policy.
const SHRINK_TRIES: usize = 400;
/// The longest the shrinker works on one failing policy (each try compiles and loads it, and
/// a 500-rule program takes a while to verify).
const SHRINK_TIME: Duration = Duration::from_secs(15);
/// The interface every generated `redirect` names.
const REDIRECT_IF: &str = "eth0";

// -------------------------------------------------------------------------------------------
// Skip pattern
// -------------------------------------------------------------------------------------------

/// Returns whether the kernel can be used; prints why not (or panics when the kernel is
/// required) otherwise.
fn kernel_available(test: &str) -> bool {
    match nfcc_runtime::can_load_bpf() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var_os("NFCC_REQUIRE_KERNEL").is_some_and(|v| v == "1") {
                panic!("NFCC_REQUIRE_KERNEL=1 but {reason}");
            }
            eprintln!("skipped: {test}: {reason}");
            false
        }
    }
}

// -------------------------------------------------------------------------------------------
// Random numbers
// -------------------------------------------------------------------------------------------

/// A xorshift64* generator: small, seedable and the same on every platform.
struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    fn new(seed: u64) -> Rng {
        // SplitMix64 spreads every bit of the seed over the state (nearby seeds give unrelated
        // sequences); a zero state would stay zero forever, so it is avoided.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A random value of `bits` bits (at most 64).
    fn bits(&mut self, bits: u32) -> u128 {
        let v = u128::from(self.next());
        if bits >= 64 {
            v
        } else {
            v & ((1u128 << bits) - 1)
        }
    }
}

// -------------------------------------------------------------------------------------------
// Fields and values
// -------------------------------------------------------------------------------------------

/// A field's type as the generator sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    /// An unsigned integer of this many bits.
    Uint(u32),
    /// An IPv4 address.
    V4,
    /// An IPv6 address.
    V6,
    /// An IPv4 or IPv6 address (`ip.src`, `ip.dst`).
    Any,
    /// A MAC address.
    Mac,
}

/// Which hooks may name a field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum On {
    /// Every hook.
    All,
    /// XDP only (`pkt.rxq`).
    Xdp,
    /// TC only (`pkt.mark`).
    Tc,
}

/// Every field of the field table of section 4, with its type and the hooks that have it.
const FIELDS: &[(&str, Ty, On)] = &[
    ("pkt.len", Ty::Uint(32), On::All),
    ("pkt.ifindex", Ty::Uint(32), On::All),
    ("pkt.rxq", Ty::Uint(32), On::Xdp),
    ("pkt.mark", Ty::Uint(32), On::Tc),
    ("eth.src", Ty::Mac, On::All),
    ("eth.dst", Ty::Mac, On::All),
    ("eth.type", Ty::Uint(16), On::All),
    ("vlan.id", Ty::Uint(12), On::All),
    ("vlan.pcp", Ty::Uint(3), On::All),
    ("vlan.inner.id", Ty::Uint(12), On::All),
    ("ipv4.src", Ty::V4, On::All),
    ("ipv4.dst", Ty::V4, On::All),
    ("ipv4.proto", Ty::Uint(8), On::All),
    ("ipv4.ttl", Ty::Uint(8), On::All),
    ("ipv4.dscp", Ty::Uint(6), On::All),
    ("ipv4.ecn", Ty::Uint(2), On::All),
    ("ipv4.len", Ty::Uint(16), On::All),
    ("ipv4.id", Ty::Uint(16), On::All),
    ("ipv4.ihl", Ty::Uint(4), On::All),
    ("ipv6.src", Ty::V6, On::All),
    ("ipv6.dst", Ty::V6, On::All),
    ("ipv6.nexthdr", Ty::Uint(8), On::All),
    ("ipv6.hoplimit", Ty::Uint(8), On::All),
    ("ipv6.dscp", Ty::Uint(6), On::All),
    ("ipv6.flowlabel", Ty::Uint(20), On::All),
    ("ipv6.len", Ty::Uint(16), On::All),
    ("ip.src", Ty::Any, On::All),
    ("ip.dst", Ty::Any, On::All),
    ("ip.proto", Ty::Uint(8), On::All),
    ("ip.ttl", Ty::Uint(8), On::All),
    ("ip.dscp", Ty::Uint(6), On::All),
    ("tcp.sport", Ty::Uint(16), On::All),
    ("tcp.dport", Ty::Uint(16), On::All),
    ("tcp.flags", Ty::Uint(8), On::All),
    ("tcp.window", Ty::Uint(16), On::All),
    ("tcp.seq", Ty::Uint(32), On::All),
    ("tcp.ack", Ty::Uint(32), On::All),
    ("udp.sport", Ty::Uint(16), On::All),
    ("udp.dport", Ty::Uint(16), On::All),
    ("udp.len", Ty::Uint(16), On::All),
    ("l4.sport", Ty::Uint(16), On::All),
    ("l4.dport", Ty::Uint(16), On::All),
    ("icmp.type", Ty::Uint(8), On::All),
    ("icmp.code", Ty::Uint(8), On::All),
    ("icmpv6.type", Ty::Uint(8), On::All),
    ("icmpv6.code", Ty::Uint(8), On::All),
];

/// Key fields the brief asks for explicitly; the generator prefers them for counter and
/// limiter keys but also draws from every field.
const FAVOURITE_KEYS: &[&str] = &[
    "ip.src",
    "ip.dst",
    "l4.dport",
    "eth.src",
    "vlan.id",
    "ipv6.flowlabel",
];

/// Fields `set FIELD = VALUE` may rewrite, with their types.
const REWRITABLE: &[(&str, Ty)] = &[
    ("eth.src", Ty::Mac),
    ("eth.dst", Ty::Mac),
    ("ip.src", Ty::Any),
    ("ip.dst", Ty::Any),
    ("ipv4.src", Ty::V4),
    ("ipv4.dst", Ty::V4),
    ("ipv6.src", Ty::V6),
    ("ipv6.dst", Ty::V6),
    ("l4.sport", Ty::Uint(16)),
    ("l4.dport", Ty::Uint(16)),
    ("tcp.sport", Ty::Uint(16)),
    ("tcp.dport", Ty::Uint(16)),
    ("udp.sport", Ty::Uint(16)),
    ("udp.dport", Ty::Uint(16)),
    ("ip.ttl", Ty::Uint(8)),
    ("ipv4.ttl", Ty::Uint(8)),
    ("ipv6.hoplimit", Ty::Uint(8)),
    ("ip.dscp", Ty::Uint(6)),
    ("ipv4.dscp", Ty::Uint(6)),
    ("ipv6.dscp", Ty::Uint(6)),
];

/// Header presence atoms.
const HEADERS: &[&str] = &[
    "eth", "vlan", "arp", "ipv4", "ipv6", "ip", "tcp", "udp", "icmp", "icmpv6", "l4", "frag",
];

/// IPv4 hosts the policies and the frames share, so that rules match often.
const V4_HOSTS: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 1, 2, 3],
    [192, 0, 2, 9],
    [198, 51, 100, 7],
    [203, 0, 113, 5],
    [172, 16, 0, 1],
];

/// IPv6 hosts the policies and the frames share.
const V6_HOSTS: &[&str] = &[
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::5",
    "2001:db8::80",
    "fe80::1",
    "::1",
];

/// MAC addresses the policies and the frames share (the first two are the builder's
/// defaults).
const MACS: &[&str] = &[
    "02:00:00:00:00:01",
    "02:00:00:00:00:02",
    "02:00:00:00:00:66",
    "aa:bb:cc:dd:ee:ff",
];

/// L4 payloads the frames carry and payload atoms compare against.
const PAYLOADS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"POST /login",
    b"\xca\xfe\xba\xbe\x00\x01\x02\x03",
    b"SSH-2.0-OpenSSH",
    b"\x00\x00\x00\x00",
];

/// Interesting values of an integer field, shared by policies and frames.
fn int_pool(field: &str) -> &'static [u128] {
    match field {
        "pkt.len" => &[54, 60, 64, 74, 78, 100, 128, 1500],
        "pkt.ifindex" => &[0, 1, 2],
        "pkt.rxq" | "pkt.mark" => &[0, 1, 7],
        "eth.type" => &[0x0800, 0x86dd, 0x0806, 0x8100, 0x88b5],
        "vlan.id" | "vlan.inner.id" => &[0, 1, 100, 200, 305, 4095],
        "vlan.pcp" => &[0, 3, 5, 7],
        "ipv4.proto" | "ipv6.nexthdr" | "ip.proto" => &[1, 6, 17, 47, 58, 59, 0],
        "ipv4.ttl" | "ipv6.hoplimit" | "ip.ttl" => &[0, 1, 2, 64, 128, 255],
        "ipv4.dscp" | "ipv6.dscp" | "ip.dscp" => &[0, 8, 10, 46, 63],
        "ipv4.ecn" => &[0, 1, 2, 3],
        "ipv4.len" => &[20, 28, 40, 46, 60, 100],
        "ipv4.id" => &[0, 1, 7, 9, 0x1234],
        "ipv4.ihl" => &[0, 4, 5, 6, 15],
        "ipv6.flowlabel" => &[0, 1, 0x12345, 0xfffff],
        "ipv6.len" => &[0, 8, 20, 32, 40],
        "tcp.sport" | "tcp.dport" | "udp.sport" | "udp.dport" | "l4.sport" | "l4.dport" => {
            &[0, 22, 53, 80, 123, 443, 1024, 1234, 8080, 65535]
        }
        "tcp.flags" => &[0, 0x01, 0x02, 0x04, 0x10, 0x12, 0x18, 0x11, 0xff],
        "tcp.window" => &[0, 512, 8192, 65535],
        "tcp.seq" | "tcp.ack" => &[0, 1, 1000, 0x8000_0000, 0xffff_ffff],
        "udp.len" => &[8, 12, 20, 24, 100],
        "icmp.type" => &[0, 3, 8, 11],
        "icmpv6.type" => &[1, 128, 129, 133, 134, 135, 136],
        "icmp.code" | "icmpv6.code" => &[0, 1, 3, 4],
        _ => &[0, 1],
    }
}

/// A TCP flag's name and bit.
const TCP_FLAGS: &[(&str, u128)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

/// The named constant for a value of `field`, when the language has one.
fn constant_name(field: &str, v: u128) -> Option<String> {
    let protocols: &[(&str, u128)] = &[
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmpv6", 58),
        ("gre", 47),
        ("esp", 50),
    ];
    let ethertypes: &[(&str, u128)] = &[
        ("ipv4", 0x0800),
        ("ipv6", 0x86dd),
        ("arp", 0x0806),
        ("vlan", 0x8100),
    ];
    let table = match field {
        "ipv4.proto" | "ipv6.nexthdr" | "ip.proto" => protocols,
        "eth.type" => ethertypes,
        "tcp.flags" if v != 0 => {
            let names: Vec<&str> = TCP_FLAGS
                .iter()
                .filter(|(_, b)| v & b != 0)
                .map(|(n, _)| *n)
                .collect();
            return Some(names.join("|"));
        }
        _ => return None,
    };
    table
        .iter()
        .find(|(_, x)| *x == v)
        .map(|(n, _)| n.to_string())
}

/// An IPv4 address as text.
fn v4_text(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

/// An IPv6 address as text, in the RFC 5952 form.
fn v6_text(a: u128) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

/// Keeps the top `len` of `width` bits of `v`.
fn prefix_of(v: u128, len: u32, width: u32) -> u128 {
    if len == 0 {
        0
    } else {
        let keep = (u128::MAX >> (128 - width)) & !((1u128 << (width - len)) - 1);
        v & keep
    }
}

/// Bytes as a `.nf` string literal, escaping everything but plain printable characters.
fn string_lit(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b" /.-_:".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s.push('"');
    s
}

/// Bytes as a `.nf` byte string (`0x...`).
fn bytes_lit(bytes: &[u8]) -> String {
    format!("0x{}", hex(bytes))
}

// -------------------------------------------------------------------------------------------
// Policy generator
// -------------------------------------------------------------------------------------------

/// The kind of a declared set, as written after `set NAME:`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetKind {
    /// `ipv4 prefix`.
    V4Prefix,
    /// `ipv6 prefix`.
    V6Prefix,
    /// `ipv4`.
    V4,
    /// `ipv6`.
    V6,
    /// `port`.
    Port,
    /// `mac`.
    Mac,
    /// `u8`, `u16`, `u32` or `u64`.
    Uint(u32),
}

impl SetKind {
    /// Every set kind.
    const ALL: &'static [SetKind] = &[
        SetKind::V4Prefix,
        SetKind::V6Prefix,
        SetKind::V4,
        SetKind::V6,
        SetKind::Port,
        SetKind::Mac,
        SetKind::Uint(8),
        SetKind::Uint(16),
        SetKind::Uint(32),
        SetKind::Uint(64),
    ];

    /// The kind as written in a declaration.
    fn text(self) -> String {
        match self {
            SetKind::V4Prefix => "ipv4 prefix".into(),
            SetKind::V6Prefix => "ipv6 prefix".into(),
            SetKind::V4 => "ipv4".into(),
            SetKind::V6 => "ipv6".into(),
            SetKind::Port => "port".into(),
            SetKind::Mac => "mac".into(),
            SetKind::Uint(b) => format!("u{b}"),
        }
    }

    /// Whether `field` can be looked up in a set of this kind.
    fn fits(self, field: &str, ty: Ty) -> bool {
        match (self, ty) {
            (SetKind::V4Prefix | SetKind::V4, Ty::V4 | Ty::Any) => true,
            (SetKind::V6Prefix | SetKind::V6, Ty::V6 | Ty::Any) => true,
            (SetKind::Port, _) => field.ends_with("sport") || field.ends_with("dport"),
            (SetKind::Mac, Ty::Mac) => true,
            (SetKind::Uint(w), Ty::Uint(b)) => b <= w,
            _ => false,
        }
    }
}

/// A declared set.
struct SetDecl {
    /// Its name.
    name: String,
    /// Its kind.
    kind: SetKind,
}

/// A declared limiter.
struct LimiterDecl {
    /// Its name.
    name: String,
}

/// One generated policy, kept in parts so that the shrinker can drop rules and declarations.
#[derive(Clone, Debug)]
struct PolicyText {
    /// The policy's name.
    name: String,
    /// Its hook.
    hook: Hook,
    /// Declarations, one per line.
    decls: Vec<String>,
    /// Rules, one per line.
    rules: Vec<String>,
    /// The `default` line.
    default: String,
    /// Test blocks (regressions only).
    tests: Vec<String>,
}

impl PolicyText {
    /// The policy as `.nf` text.
    fn render(&self) -> String {
        let hook = match self.hook {
            Hook::Xdp => "xdp",
            Hook::TcIngress => "tc ingress",
            Hook::TcEgress => "tc egress",
        };
        let mut s = format!("policy {} on {hook} {{\n", self.name);
        for line in self.decls.iter().chain(&self.rules) {
            let _ = writeln!(s, "    {line}");
        }
        let _ = writeln!(s, "    {}", self.default);
        for t in &self.tests {
            s.push_str(t);
        }
        s.push_str("}\n");
        s
    }
}

/// Renders a file of policies.
fn render_file(policies: &[PolicyText]) -> String {
    let mut s = String::from("# Generated by runtime/tests/verifier_property.rs.\n");
    for p in policies {
        s.push_str(&p.render());
    }
    s
}

/// The generator of one policy.
struct Gen<'a> {
    /// The random source.
    rng: &'a mut Rng,
    /// The policy's hook.
    hook: Hook,
    /// Sets declared so far.
    sets: Vec<SetDecl>,
    /// Counter names declared so far.
    counters: Vec<String>,
    /// Limiters declared so far.
    limiters: Vec<LimiterDecl>,
    /// Table names declared so far.
    tables: Vec<String>,
    /// Pool names declared so far.
    pools: Vec<String>,
    /// Declaration lines.
    decls: Vec<String>,
    /// Generate only what the NIC target accepts (no limiters, samples, marks, redirects or
    /// context metadata).
    nic: bool,
}

impl Gen<'_> {
    /// Fields this hook may name.
    fn fields(&self) -> Vec<(&'static str, Ty)> {
        FIELDS
            .iter()
            .filter(|(_, _, on)| match on {
                On::All => true,
                On::Xdp => self.hook == Hook::Xdp,
                On::Tc => self.hook != Hook::Xdp,
            })
            .filter(|(n, _, _)| !self.nic || !matches!(*n, "pkt.ifindex" | "pkt.rxq" | "pkt.mark"))
            .map(|&(n, t, _)| (n, t))
            .collect()
    }

    /// A random field of this hook.
    fn field(&mut self) -> (&'static str, Ty) {
        let fields = self.fields();
        self.rng.pick(&fields)
    }

    /// An integer value for `field` of `bits` bits: mostly from the shared pool.
    fn int_value(&mut self, field: &str, bits: u32) -> u128 {
        let max = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let v = if self.rng.chance(75) {
            self.rng.pick(int_pool(field))
        } else {
            self.rng.bits(bits.min(64))
        };
        v & max
    }

    /// An integer as text: decimal, hex or the field's named constant.
    fn int_text(&mut self, field: &str, v: u128) -> String {
        if self.rng.chance(30) {
            if let Some(name) = constant_name(field, v) {
                return name;
            }
        }
        if self.rng.chance(25) {
            format!("{v:#x}")
        } else {
            v.to_string()
        }
    }

    /// An IPv4 address: shared or random.
    fn v4(&mut self) -> [u8; 4] {
        if self.rng.chance(80) {
            self.rng.pick(V4_HOSTS)
        } else {
            (self.rng.next() as u32).to_be_bytes()
        }
    }

    /// An IPv6 address: shared or random inside 2001:db8::/32.
    fn v6(&mut self) -> u128 {
        if self.rng.chance(80) {
            let text = self.rng.pick(V6_HOSTS);
            text.parse::<std::net::Ipv6Addr>()
                .map(u128::from)
                .unwrap_or(1)
        } else {
            (0x2001_0db8u128 << 96) | u128::from(self.rng.next())
        }
    }

    /// A MAC address as text.
    fn mac(&mut self) -> String {
        if self.rng.chance(80) {
            self.rng.pick(MACS).to_string()
        } else {
            let b = self.rng.next().to_be_bytes();
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0] & 0xfe,
                b[1],
                b[2],
                b[3],
                b[4],
                b[5]
            )
        }
    }

    /// An IPv4 prefix as text (host bits clear).
    fn v4_prefix(&mut self) -> String {
        let len = self.rng.pick(&[0u32, 8, 12, 16, 24, 25, 28, 30, 32]);
        let a = u128::from(u32::from_be_bytes(self.v4()));
        let net = prefix_of(a, len, 32) as u32;
        format!("{}/{len}", v4_text(net.to_be_bytes()))
    }

    /// An IPv6 prefix as text (host bits clear).
    fn v6_prefix(&mut self) -> String {
        let len = self.rng.pick(&[0u32, 10, 32, 48, 64, 96, 127, 128]);
        let a = self.v6();
        format!("{}/{len}", v6_text(prefix_of(a, len, 128)))
    }

    /// A single value of a field's type as text (an address family chosen for `ip.*`).
    fn value(&mut self, field: &str, ty: Ty) -> String {
        self.value_and_canonical(field, ty).0
    }

    /// A single value as text, and a canonical spelling of it (integers in decimal), so that
    /// equal values written differently (`6`, `0x6`, `tcp`) can be recognised.
    fn value_and_canonical(&mut self, field: &str, ty: Ty) -> (String, String) {
        let text = match ty {
            Ty::Uint(b) => {
                let v = self.int_value(field, b);
                return (self.int_text(field, v), v.to_string());
            }
            Ty::V4 => v4_text(self.v4()),
            Ty::V6 => v6_text(self.v6()),
            Ty::Any => {
                if self.rng.chance(60) {
                    v4_text(self.v4())
                } else {
                    v6_text(self.v6())
                }
            }
            Ty::Mac => self.mac(),
        };
        (text.clone(), text)
    }

    /// An inclusive range of a field's type as text (never IPv6: the compiler lacks those).
    fn range(&mut self, field: &str, ty: Ty) -> String {
        match ty {
            Ty::Uint(b) => {
                let (x, y) = (self.int_value(field, b), self.int_value(field, b));
                let (lo, hi) = (x.min(y), x.max(y));
                // Flag unions such as `syn|ack` cannot be range bounds: numbers only.
                if self.rng.chance(25) {
                    format!("{lo:#x}..{hi:#x}")
                } else {
                    format!("{lo}..{hi}")
                }
            }
            Ty::V4 | Ty::Any => {
                let (x, y) = (self.v4(), self.v4());
                let (lo, hi) = (x.min(y), x.max(y));
                format!("{}..{}", v4_text(lo), v4_text(hi))
            }
            Ty::Mac => {
                let (x, y) = (self.mac(), self.mac());
                let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
                format!("{lo}..{hi}")
            }
            Ty::V6 => unreachable!("the generator never asks for IPv6 ranges"),
        }
    }

    /// A prefix of an address field's family.
    fn prefix(&mut self, ty: Ty) -> String {
        match ty {
            Ty::V4 => self.v4_prefix(),
            Ty::V6 => self.v6_prefix(),
            _ => {
                if self.rng.chance(60) {
                    self.v4_prefix()
                } else {
                    self.v6_prefix()
                }
            }
        }
    }

    /// One item of an `in { ... }` list: a value, a prefix or a range the field accepts.
    fn list_item(&mut self, field: &str, ty: Ty, masked: bool) -> String {
        let roll = self.rng.below(3);
        match (ty, roll) {
            (_, _) if masked => self.value(field, ty),
            (Ty::V4 | Ty::V6 | Ty::Any, 1) => self.prefix(ty),
            (Ty::V6, 2) => self.value(field, ty),
            (_, 2) => self.range(field, ty),
            _ => self.value(field, ty),
        }
    }

    /// A mask for an integer field, as text.
    fn mask(&mut self, field: &str, bits: u32) -> (u128, String) {
        if field == "tcp.flags" && self.rng.chance(50) {
            let v = self.rng.bits(8).max(1);
            let text = constant_name(field, v).unwrap_or_else(|| v.to_string());
            return (v, text);
        }
        let v = self.rng.bits(bits.min(64)).max(1);
        (v, format!("{v:#x}"))
    }

    /// A comparison operator; `ordered` allows `< <= > >=`.
    fn op(&mut self, ordered: bool) -> &'static str {
        if ordered {
            self.rng.pick(&["==", "!=", "<", "<=", ">", ">="])
        } else {
            self.rng.pick(&["==", "!="])
        }
    }

    /// A predicate atom.
    fn atom(&mut self) -> String {
        loop {
            let roll = self.rng.below(100);
            let (field, ty) = self.field();
            match roll {
                // Header presence.
                0..=9 => return self.rng.pick(HEADERS).to_string(),
                // A comparison with a single value (or `==` a prefix).
                10..=39 => {
                    let value = if matches!(ty, Ty::V4 | Ty::V6 | Ty::Any) && self.rng.chance(20) {
                        return format!("{field} == {}", self.prefix(ty));
                    } else {
                        self.value(field, ty)
                    };
                    // Ordering comparisons of IPv6 and MAC addresses are not compiled yet.
                    let ordered = !matches!(ty, Ty::V6 | Ty::Mac) && !value.contains(':');
                    let op = self.op(ordered);
                    return format!("{field} {op} {value}");
                }
                // A masked comparison, possibly against a list of values.
                40..=49 => {
                    let Ty::Uint(bits) = ty else { continue };
                    let (m, mtext) = self.mask(field, bits);
                    let mtext = if self.rng.chance(50) || mtext.contains('|') {
                        format!("({mtext})")
                    } else {
                        mtext
                    };
                    if self.rng.chance(25) {
                        let n = self.rng.range(1, 4);
                        let items: Vec<String> =
                            (0..n).map(|_| self.list_item(field, ty, true)).collect();
                        return format!("{field} & {mtext} in {{{}}}", items.join(", "));
                    }
                    let v = self.int_value(field, bits) & m;
                    let op = self.op(true);
                    return format!("{field} & {mtext} {op} {v:#x}");
                }
                // A list mixing values, prefixes and ranges.
                50..=64 => {
                    let n = self.rng.range(0, 6);
                    let items: Vec<String> =
                        (0..n).map(|_| self.list_item(field, ty, false)).collect();
                    return format!("{field} in {{{}}}", items.join(", "));
                }
                // `in RANGE` or `in PREFIX` on its own.
                65..=71 => {
                    return match ty {
                        Ty::V6 => format!("{field} in {}", self.prefix(ty)),
                        Ty::V4 | Ty::Any if self.rng.chance(60) => {
                            format!("{field} in {}", self.prefix(ty))
                        }
                        _ => format!("{field} in {}", self.range(field, ty)),
                    };
                }
                // `in SET`.
                72..=84 => {
                    let fitting: Vec<usize> = (0..self.sets.len())
                        .filter(|&i| self.sets[i].kind.fits(field, ty))
                        .collect();
                    if fitting.is_empty() {
                        continue;
                    }
                    let i = self.rng.pick(&fitting);
                    return format!("{field} in {}", self.sets[i].name);
                }
                // `has`.
                85..=89 => {
                    let (field, bits) = if self.rng.chance(60) {
                        ("tcp.flags", 8)
                    } else {
                        match ty {
                            Ty::Uint(b) => (field, b),
                            _ => continue,
                        }
                    };
                    let v = self.rng.bits(bits.min(64)).max(1);
                    let text = constant_name(field, v)
                        .filter(|_| field == "tcp.flags")
                        .unwrap_or_else(|| format!("{v:#x}"));
                    return format!("{field} has {text}");
                }
                // `match TABLE`.
                90..=91 => {
                    if self.tables.is_empty() {
                        continue;
                    }
                    let i = self.rng.below(self.tables.len() as u64) as usize;
                    return format!("match {}", self.tables[i]);
                }
                // `over LIMITER`.
                92..=95 => {
                    if self.limiters.is_empty() {
                        continue;
                    }
                    let i = self.rng.below(self.limiters.len() as u64) as usize;
                    return format!("over {}", self.limiters[i].name);
                }
                // Payload bytes.
                _ => return self.payload_atom(),
            }
        }
    }

    /// `payload[A..B] == BYTES` (or `!=`), usually cut from a payload the frames carry.
    fn payload_atom(&mut self) -> String {
        let op = if self.rng.chance(80) { "==" } else { "!=" };
        let (start, bytes) = if self.rng.chance(75) {
            let p = self.rng.pick(PAYLOADS);
            let a = self.rng.below(p.len() as u64) as usize;
            let b = self.rng.range(a as u64 + 1, p.len() as u64) as usize;
            (a, p[a..b].to_vec())
        } else {
            let start = if self.rng.chance(80) {
                self.rng.below(32) as usize
            } else {
                self.rng.below(1500) as usize
            };
            let len = if self.rng.chance(90) {
                self.rng.range(1, 8)
            } else {
                self.rng.range(9, 64)
            };
            let bytes = (0..len).map(|_| self.rng.next() as u8).collect();
            (start, bytes)
        };
        let lit = if self.rng.chance(50) {
            string_lit(&bytes)
        } else {
            bytes_lit(&bytes)
        };
        format!("payload[{start}..{}] {op} {lit}", start + bytes.len())
    }

    /// A predicate of nesting depth at most `depth`.
    fn pred(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.chance(45) {
            return self.atom();
        }
        match self.rng.below(3) {
            0 => {
                let inner = self.pred(depth - 1);
                format!("not ({inner})")
            }
            k => {
                let n = self.rng.range(2, 3);
                let parts: Vec<String> = (0..n)
                    .map(|_| format!("({})", self.pred(depth - 1)))
                    .collect();
                parts.join(if k == 1 { " and " } else { " or " })
            }
        }
    }

    /// A key of one to three distinct fields, favouring the ones the brief names.
    fn key(&mut self) -> String {
        let n = self.rng.range(1, 3);
        let mut fields: Vec<&str> = Vec::new();
        while fields.len() < n as usize {
            let f = if self.rng.chance(60) {
                self.rng.pick(FAVOURITE_KEYS)
            } else {
                self.field().0
            };
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        if fields.len() == 1 && self.rng.chance(50) {
            fields[0].to_string()
        } else {
            format!("({})", fields.join(", "))
        }
    }

    /// Declares 0-6 sets, 0-3 counters and 0-3 limiters.
    fn declarations(&mut self) {
        for i in 0..self.rng.below(7) {
            let kind = self.rng.pick(SetKind::ALL);
            let dynamic = self.rng.chance(40);
            let n = if self.rng.chance(50) {
                self.rng.below(5)
            } else {
                self.rng.range(5, 12)
            } as usize;
            let mut items = Vec::new();
            for _ in 0..n {
                let item = match kind {
                    SetKind::V4Prefix if self.rng.chance(70) => self.v4_prefix(),
                    SetKind::V6Prefix if self.rng.chance(70) => self.v6_prefix(),
                    SetKind::V4Prefix | SetKind::V4 => v4_text(self.v4()),
                    SetKind::V6Prefix | SetKind::V6 => v6_text(self.v6()),
                    SetKind::Mac => self.mac(),
                    SetKind::Port if !dynamic && self.rng.chance(25) => {
                        self.range("l4.dport", Ty::Uint(16))
                    }
                    SetKind::Port => self.value("l4.dport", Ty::Uint(16)),
                    SetKind::Uint(b) => {
                        // Draw from the pool of a field the set fits, so lookups can hit.
                        let candidates: Vec<&str> = FIELDS
                            .iter()
                            .filter(|(f, t, _)| kind.fits(f, *t))
                            .map(|(f, _, _)| *f)
                            .collect();
                        let f = self.rng.pick(&candidates);
                        if !dynamic && self.rng.chance(20) {
                            self.range(f, Ty::Uint(b.min(32)))
                        } else {
                            let v = self.int_value(f, b.min(64));
                            self.int_text(f, v)
                        }
                    }
                };
                items.push(item);
            }
            let name = format!("s{i}");
            let mut line = format!("set {name}: {}", kind.text());
            if self.rng.chance(40) {
                let cap = items.len() as u64 + self.rng.range(0, 1000);
                let _ = write!(line, ", capacity {}", cap.max(1));
            }
            if dynamic {
                line.push_str(", dynamic");
            }
            if !items.is_empty() || self.rng.chance(50) {
                let _ = write!(line, " = {{ {} }}", items.join(", "));
            }
            self.decls.push(line);
            self.sets.push(SetDecl { name, kind });
        }
        for i in 0..self.rng.below(4) {
            let name = format!("c{i}");
            let mut line = format!("counter {name}: key {}", self.key());
            if self.rng.chance(60) {
                // At least 1024: a kernel LRU map may evict entries well before it is full,
                // and the evaluator's counters never evict.
                let cap = self.rng.pick(&[1024u32, 10000, 100_000]);
                let _ = write!(line, ", capacity {cap}");
            }
            self.decls.push(line);
            self.counters.push(name);
        }
        let limiters = if self.nic { 0 } else { self.rng.below(4) };
        for i in 0..limiters {
            let name = format!("l{i}");
            // Small buckets run dry within a policy's 20 frames, so `over` is true for some.
            let rate = if self.rng.chance(20) {
                format!("{}/ms", self.rng.range(1, 1000))
            } else {
                format!("{}/s", self.rng.range(1, 1_000_000))
            };
            let burst = if self.rng.chance(60) {
                self.rng.range(1, 8)
            } else {
                self.rng.range(9, 100_000)
            };
            let cap = self.rng.pick(&[1024u32, 10000, 100_000]);
            let key = self.key();
            self.decls.push(format!(
                "limiter {name}: key {key}, rate {rate}, burst {burst}, capacity {cap}"
            ));
            self.limiters.push(LimiterDecl { name });
        }
        if self.rng.chance(30) {
            for i in 0..self.rng.range(1, 2) {
                self.table(&format!("t{i}"));
            }
        }
        if self.rng.chance(25) {
            for i in 0..self.rng.range(1, 2) {
                self.pool(&format!("b{i}"));
            }
        }
    }

    /// Declares a pool of one to five distinct backends of one family, some weighted.
    fn pool(&mut self, name: &str) {
        let v6 = self.rng.chance(35);
        let mut backends: Vec<String> = Vec::new();
        for _ in 0..self.rng.range(1, 5) {
            let addr = if v6 {
                v6_text(self.v6())
            } else {
                v4_text(self.v4())
            };
            if backends
                .iter()
                .any(|b| b.split(' ').next() == Some(addr.as_str()))
            {
                continue;
            }
            if self.rng.chance(30) {
                let w = self.rng.range(1, 255);
                backends.push(format!("{addr} weight {w}"));
            } else {
                backends.push(addr);
            }
        }
        self.decls
            .push(format!("pool {name} = {{ {} }}", backends.join(", ")));
        self.pools.push(name.to_string());
    }

    /// Declares a table of one to three key fields and up to eight entries.
    fn table(&mut self, name: &str) {
        let n = self.rng.range(1, 3) as usize;
        let mut key: Vec<(&'static str, Ty)> = Vec::new();
        while key.len() < n {
            let f = self.field();
            if !key.iter().any(|(k, _)| *k == f.0) {
                key.push(f);
            }
        }
        let allowed: &[&str] = if self.hook == Hook::Xdp {
            &["pass", "drop", "tx", "abort"]
        } else {
            &["pass", "drop"]
        };
        let mut template: Vec<&str> = allowed
            .iter()
            .copied()
            .filter(|_| self.rng.chance(60))
            .collect();
        if template.is_empty() {
            template.push(self.rng.pick(allowed));
        }
        // Entries as (canonical key, entry text): a duplicate key is an error.
        let mut entries: Vec<(String, String)> = Vec::new();
        for _ in 0..self.rng.below(9) {
            let (values, canonical): (Vec<String>, Vec<String>) = key
                .iter()
                .map(|&(f, t)| self.value_and_canonical(f, t))
                .unzip();
            let canonical = canonical.join(", ");
            if entries.iter().any(|(c, _)| *c == canonical) {
                continue;
            }
            let bare = values.join(", ");
            let k = if values.len() == 1 && self.rng.chance(50) {
                bare.clone()
            } else {
                format!("({bare})")
            };
            let action = self.rng.pick(&template);
            entries.push((canonical, format!("{k} => {action}")));
        }
        let fields: Vec<&str> = key.iter().map(|(f, _)| *f).collect();
        let mut line = format!(
            "table {name}: key ({}) -> {}",
            fields.join(", "),
            template.join(" | ")
        );
        if self.rng.chance(40) {
            let cap = entries.len() as u64 + self.rng.range(1, 100);
            let _ = write!(line, ", capacity {cap}");
        }
        let written: Vec<&str> = entries.iter().map(|(_, e)| e.as_str()).collect();
        let _ = write!(line, " entries {{ {} }}", written.join(", "));
        self.decls.push(line);
        self.tables.push(name.to_string());
    }

    /// Non-terminal actions and a terminal the hook allows, joined as in `=> ...`.
    fn actions(&mut self) -> String {
        let mut parts = self.non_terminals();
        // On the NIC `balance` must end in `tx`, which tc lacks.
        let balance_ok = !self.nic || self.hook == Hook::Xdp;
        if !self.pools.is_empty() && balance_ok && self.rng.chance(15) {
            // `balance` rewrites the destination and must end in `tx` or `redirect`.
            let p = self.rng.below(self.pools.len() as u64) as usize;
            let key = self.key();
            let by = if key.starts_with('(') {
                key
            } else {
                format!("({key})")
            };
            parts.push(format!("balance {} by {by}", self.pools[p]));
            parts.extend(self.non_terminals());
            let terminal = if self.hook == Hook::Xdp && (self.nic || self.rng.chance(50)) {
                "tx".to_string()
            } else {
                format!("redirect \"{REDIRECT_IF}\"")
            };
            parts.push(terminal);
            return parts.join(", ");
        }
        parts.push(self.terminal());
        parts.join(", ")
    }

    /// Zero to three non-terminal actions: `count`, `mark` (tc), `set`, `dec ip.ttl` and
    /// `sample`.
    fn non_terminals(&mut self) -> Vec<String> {
        let mut parts = Vec::new();
        for _ in 0..self.rng.below(4) {
            match self.rng.below(100) {
                0..=39 if !self.counters.is_empty() => {
                    let c = self.rng.below(self.counters.len() as u64) as usize;
                    parts.push(format!("count {}", self.counters[c]));
                }
                40..=54 if self.hook != Hook::Xdp && !self.nic => {
                    let m = self.rng.pick(&[0u64, 1, 7, 0x10, 0xffff_ffff]);
                    parts.push(format!("mark {m:#x}"));
                }
                55..=84 => {
                    let (field, ty) = self.rng.pick(REWRITABLE);
                    let value = self.value(field, ty);
                    parts.push(format!("set {field} = {value}"));
                }
                85..=92 => parts.push("dec ip.ttl".into()),
                93..=99 if !self.nic => {
                    let n = self.rng.pick(&[1u32, 2, 3, 10, 100]);
                    parts.push(format!("sample {n}"));
                }
                _ => {}
            }
        }
        parts
    }

    /// A terminal the hook allows.
    fn terminal(&mut self) -> String {
        let terminals: &[&str] = if self.hook == Hook::Xdp {
            &["pass", "drop", "tx", "abort", "redirect"]
        } else {
            &["pass", "drop", "redirect"]
        };
        match self.rng.pick(terminals) {
            "redirect" if self.nic => "drop".to_string(),
            "redirect" => format!("redirect \"{REDIRECT_IF}\""),
            t => t.to_string(),
        }
    }
}

/// Generates one policy named `name` with `rules` rules on `hook`.
fn gen_policy(rng: &mut Rng, name: &str, hook: Hook, rules: usize, nic: bool) -> PolicyText {
    let mut g = Gen {
        nic,
        rng,
        hook,
        sets: Vec::new(),
        counters: Vec::new(),
        limiters: Vec::new(),
        tables: Vec::new(),
        pools: Vec::new(),
        decls: Vec::new(),
    };
    g.declarations();
    let mut lines = Vec::new();
    for i in 0..rules {
        if g.rng.chance(4) {
            // A run of equality rules on the same fields, which the compiler merges into one
            // hash lookup: first-match order, repeated keys and verdicts must survive it.
            let mut fields: Vec<(&'static str, Ty)> = Vec::new();
            for _ in 0..g.rng.range(1, 3) {
                let f = g.field();
                if !fields.iter().any(|x| x.0 == f.0) {
                    fields.push(f);
                }
            }
            for k in 0..g.rng.range(8, 24) {
                let conj: Vec<String> = fields
                    .iter()
                    .map(|(f, ty)| format!("{f} == {}", g.value(f, *ty)))
                    .collect();
                let t = g.terminal();
                lines.push(format!("rule r{i}_{k}: {} => {t}", conj.join(" and ")));
            }
            continue;
        }
        let depth = g.rng.range(0, 4) as u32;
        let pred = g.pred(depth);
        if !g.tables.is_empty() && g.rng.chance(10) {
            // A rule whose verdict comes from a table: `match T` in a top-level conjunction
            // and no terminal action.
            let t = g.rng.below(g.tables.len() as u64) as usize;
            let mut line = format!("rule r{i}: match {}", g.tables[t]);
            if g.rng.chance(50) {
                let _ = write!(line, " and ({pred})");
            }
            let actions = g.non_terminals();
            if !actions.is_empty() {
                let _ = write!(line, " => {}", actions.join(", "));
            }
            lines.push(line);
            continue;
        }
        let actions = g.actions();
        lines.push(format!("rule r{i}: {pred} => {actions}"));
    }
    let default = format!("default {}", g.actions());
    PolicyText {
        name: name.to_string(),
        hook,
        decls: g.decls,
        rules: lines,
        default,
        tests: Vec::new(),
    }
}

// -------------------------------------------------------------------------------------------
// Frame generator
// -------------------------------------------------------------------------------------------

/// A random packet literal (without `truncate`), using the shared value pools.
fn gen_frame_literal(rng: &mut Rng) -> String {
    let mut g = Gen {
        nic: false,
        rng,
        hook: Hook::Xdp,
        sets: Vec::new(),
        counters: Vec::new(),
        limiters: Vec::new(),
        tables: Vec::new(),
        pools: Vec::new(),
        decls: Vec::new(),
    };
    let mut layers: Vec<String> = Vec::new();
    let l3 = g.rng.below(100);
    let eth_type = if l3 >= 95 {
        Some(g.rng.pick(&["0x0800", "0x86dd", "0x0806", "0x1234"]))
    } else {
        None
    };
    if g.rng.chance(30) || eth_type.is_some() {
        let mut args = vec![format!("src={}", g.mac()), format!("dst={}", g.mac())];
        if let Some(t) = eth_type {
            args.push(format!("type={t}"));
        }
        layers.push(format!("eth({})", args.join(", ")));
    }
    let vlans = match g.rng.below(100) {
        0..=64 => 0,
        65..=89 => 1,
        _ => 2,
    };
    for _ in 0..vlans {
        let id = g.int_value("vlan.id", 12);
        let pcp = g.int_value("vlan.pcp", 3);
        layers.push(format!("vlan(id={id}, pcp={pcp})"));
    }
    let mut family = 0;
    match l3 {
        0..=54 => {
            family = 4;
            let mut args = vec![
                format!("src={}", v4_text(g.v4())),
                format!("dst={}", v4_text(g.v4())),
            ];
            if g.rng.chance(50) {
                args.push(format!("ttl={}", g.int_value("ipv4.ttl", 8)));
            }
            if g.rng.chance(30) {
                args.push(format!("dscp={}", g.int_value("ipv4.dscp", 6)));
                args.push(format!("ecn={}", g.rng.below(4)));
            }
            if g.rng.chance(30) {
                args.push(format!("id={}", g.int_value("ipv4.id", 16)));
            }
            if g.rng.chance(10) {
                args.push("options=0x01010101".into());
            } else if g.rng.chance(3) {
                args.push(format!("ihl={}", g.rng.pick(&[0, 3, 4])));
            }
            if g.rng.chance(10) {
                args.push(format!("frag_offset={}", g.rng.pick(&[0, 1, 10, 185])));
            }
            if g.rng.chance(5) {
                args.push("mf=1".into());
            }
            if g.rng.chance(5) {
                args.push(format!("proto={}", g.int_value("ipv4.proto", 8)));
            }
            layers.push(format!("ipv4({})", args.join(", ")));
        }
        55..=84 => {
            family = 6;
            let mut args = vec![
                format!("src={}", v6_text(g.v6())),
                format!("dst={}", v6_text(g.v6())),
            ];
            if g.rng.chance(50) {
                args.push(format!("hoplimit={}", g.int_value("ipv6.hoplimit", 8)));
            }
            if g.rng.chance(30) {
                args.push(format!("dscp={}", g.int_value("ipv6.dscp", 6)));
            }
            if g.rng.chance(40) {
                args.push(format!("flowlabel={}", g.int_value("ipv6.flowlabel", 20)));
            }
            layers.push(format!("ipv6({})", args.join(", ")));
            for _ in 0..g.rng.pick(&[0, 0, 0, 1, 2]) {
                let kind = g.rng.pick(&["hop", "routing", "dest", "frag"]);
                if kind == "frag" && g.rng.chance(40) {
                    layers.push(format!(
                        "ipv6ext(kind=frag, offset={}, more={})",
                        g.rng.pick(&[0, 1, 100]),
                        g.rng.below(2)
                    ));
                } else {
                    layers.push(format!("ipv6ext(kind={kind})"));
                }
            }
        }
        85..=89 => {
            layers.push(format!(
                "arp(op={}, spa={}, tpa={})",
                g.rng.range(1, 2),
                v4_text(g.v4()),
                v4_text(g.v4())
            ));
        }
        _ => {
            // No known L3: raw bytes after the Ethernet header (possibly announced as IP).
            let n = g.rng.below(48) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| g.rng.next() as u8).collect();
            if !bytes.is_empty() {
                layers.push(format!("raw({})", bytes_lit(&bytes)));
            }
        }
    }
    if family != 0 {
        match g.rng.below(100) {
            0..=39 => {
                let mut args = vec![
                    format!("sport={}", g.int_value("tcp.sport", 16)),
                    format!("dport={}", g.int_value("tcp.dport", 16)),
                ];
                let flags = g.int_value("tcp.flags", 8);
                args.push(format!(
                    "flags={}",
                    constant_name("tcp.flags", flags).unwrap_or_else(|| flags.to_string())
                ));
                if g.rng.chance(30) {
                    args.push(format!("window={}", g.int_value("tcp.window", 16)));
                }
                if g.rng.chance(30) {
                    args.push(format!("seq={}", g.int_value("tcp.seq", 32)));
                    args.push(format!("ack={}", g.int_value("tcp.ack", 32)));
                }
                layers.push(format!("tcp({})", args.join(", ")));
            }
            40..=74 => {
                layers.push(format!(
                    "udp(sport={}, dport={})",
                    g.int_value("udp.sport", 16),
                    g.int_value("udp.dport", 16)
                ));
            }
            75..=89 => {
                let (layer, field) = if family == 4 {
                    ("icmp", "icmp.type")
                } else {
                    ("icmpv6", "icmpv6.type")
                };
                layers.push(format!(
                    "{layer}(type={}, code={})",
                    g.int_value(field, 8),
                    g.int_value("icmp.code", 8)
                ));
            }
            _ => {}
        }
    }
    if g.rng.chance(50) {
        let p = g.rng.pick(PAYLOADS);
        let lit = if g.rng.chance(50) {
            string_lit(p)
        } else {
            bytes_lit(p)
        };
        layers.push(format!("payload({lit})"));
    }
    if layers.is_empty() {
        layers.push("eth()".into());
    }
    layers.join(" / ")
}

/// A random packet literal and the frame it builds, sometimes cut short with `truncate`.
fn gen_frame(rng: &mut Rng) -> (String, Vec<u8>) {
    loop {
        let lit = gen_frame_literal(rng);
        let frame = frame_from_literal(&lit)
            .unwrap_or_else(|e| panic!("generator bug: cannot build `{lit}`:\n{e}"));
        if rng.chance(10) && frame.len() > 14 {
            let n = rng.range(14, frame.len() as u64 - 1);
            let cut = format!("{lit} / truncate({n})");
            if let Ok(f) = frame_from_literal(&cut) {
                return (cut, f);
            }
            continue;
        }
        return (lit, frame);
    }
}

// -------------------------------------------------------------------------------------------
// Running one file
// -------------------------------------------------------------------------------------------

/// What the evaluator sees of a packet's metadata under `BPF_PROG_TEST_RUN`.
///
/// The kernel's test runner runs XDP programs on the receive queue 0 of the loopback device
/// and TC programs on an skb of the loopback device, whose index is 1 in every network
/// namespace; no mark is set.
fn test_run_meta() -> Meta {
    Meta {
        ifindex: 1,
        rxq: 0,
        mark: 0,
    }
}

/// The program kind of a hook.
fn prog_kind(hook: Hook) -> ProgType {
    match hook {
        Hook::Xdp => ProgType::Xdp,
        _ => ProgType::Tc,
    }
}

/// A failure of one generated or saved file.
#[derive(Clone, Debug)]
enum Failure {
    /// The checker refused the text (a generator bug).
    Check(String),
    /// The compiler refused with E0201 only (a generator bug: unsupported construct).
    Refused(String),
    /// The compiler failed otherwise.
    Compile(String),
    /// The kernel refused the object or a program (verifier log included).
    Load {
        /// The policy whose program failed.
        policy: String,
        /// The runtime error, displayed.
        message: String,
    },
    /// The kernel and the evaluator disagree on a frame, or the kernel engine failed.
    Disagree(Box<Disagreement>),
}

/// A frame on which the kernel and the evaluator disagree.
#[derive(Clone, Debug)]
struct Disagreement {
    /// The policy.
    policy: String,
    /// The packet literal.
    literal: String,
    /// The literals of the frames run before it on the same state (limiter buckets carry over
    /// from frame to frame), oldest first.
    before: Vec<String>,
    /// The evaluator's answer (verdict and rule name).
    eval: (Terminal, String),
    /// What differs: `verdict` (verdict or deciding rule), `bytes` (only the emitted
    /// bytes), `counter`, or `engine` (the kernel engine failed).
    kind: &'static str,
    /// What happened, in words.
    message: String,
}

impl Failure {
    /// The failure in words.
    fn describe(&self) -> String {
        match self {
            Failure::Check(m) => format!("the checker refused the generated text:\n{m}"),
            Failure::Refused(m) => format!("the compiler refused a supported construct:\n{m}"),
            Failure::Compile(m) => format!("the compiler failed:\n{m}"),
            Failure::Load { policy, message } => format!("loading `{policy}` failed: {message}"),
            Failure::Disagree(d) => format!("policy `{}`: {}", d.policy, d.message),
        }
    }
}

/// What one successful file run measured.
#[derive(Default)]
struct Measured {
    /// Programs loaded.
    programs: usize,
    /// Verified instructions of each program, when the kernel reports them.
    verified: Vec<u32>,
    /// Instructions of each program.
    insns: Vec<usize>,
    /// Frames compared.
    compared: usize,
    /// Frames the kernel's test runner cannot take.
    short: usize,
}

/// Checks `source` and compiles it twice: as deployed (limiters read the kernel's clock), and
/// for tests (limiters read a virtual clock that the kernel engine sets to the evaluator's).
fn check_and_compile(
    name: &str,
    source: &str,
    target: Option<Target>,
) -> Result<(Program, Compiled, Compiled), Failure> {
    let (program, diags) = check_source(source, &CheckOptions { target });
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    let program = match program {
        Some(p) if errors.is_empty() => p,
        _ => {
            return Err(Failure::Check(nfcc_dsl::diag::render_short(
                name, source, &diags,
            )))
        }
    };
    let refused = |diags: Vec<nfcc_dsl::Diagnostic>| {
        let text = nfcc_dsl::diag::render_short(name, source, &diags);
        if diags.iter().all(|d| d.code == "E0201") {
            Failure::Refused(text)
        } else {
            Failure::Compile(text)
        }
    };
    let deployed = compile(&program, name, source, target).map_err(refused)?;
    let tested = compile_with(&program, name, source, target, true).map_err(refused)?;
    Ok((program, deployed, tested))
}

/// The rule name of a rule reference.
fn rule_name(policy: &nfcc_dsl::checked::Policy, r: RuleRef) -> String {
    match r {
        RuleRef::Rule(id) => policy.rule(id).name.clone(),
        RuleRef::Default => "default".to_string(),
    }
}

/// Checks, compiles and loads every policy of `source`, then runs `frames[policy index]` on
/// the kernel and the evaluator. Stops at the first failure.
fn run_file(
    name: &str,
    source: &str,
    frames: &[Vec<(String, Vec<u8>)>],
    target: Option<Target>,
) -> Result<Measured, Failure> {
    let (program, compiled, tested) = check_and_compile(name, source, target)?;
    let mut m = Measured::default();
    for (pi, policy) in program.policies.iter().enumerate() {
        let cp = compiled
            .programs
            .iter()
            .find(|p| p.name == policy.name)
            .ok_or_else(|| Failure::Compile(format!("no program for `{}`", policy.name)))?;
        let loaded = load(&compiled.object, &policy.name, prog_kind(policy.hook)).map_err(
            |e: RuntimeError| Failure::Load {
                policy: policy.name.clone(),
                message: e.to_string(),
            },
        )?;
        m.programs += 1;
        m.insns.push(cp.insns);
        if let Some(v) = loaded.verified_insns() {
            m.verified.push(v);
        }
        drop(loaded);
        let Some(frames) = frames.get(pi) else {
            continue;
        };
        let mut kernel = KernelEngine::new(&tested, &policy.name).map_err(|e| Failure::Load {
            policy: policy.name.clone(),
            message: e.to_string(),
        })?;
        // The evaluator's state is kept here rather than inside an `EvalEngine` (which runs
        // the same `eval::eval` on the same `State`) so that its counters can be read by key.
        let meta = test_run_meta();
        let mut state = State::new(policy);
        kernel.reset(policy).map_err(|e| Failure::Load {
            policy: policy.name.clone(),
            message: e,
        })?;
        // The emulator runs the object as deployed (its ktime is the evaluator's clock).
        let mut emulator =
            EmulatorEngine::new(&compiled, &policy.name).map_err(|message| Failure::Load {
                policy: policy.name.clone(),
                message,
            })?;
        if target == Some(Target::Nfp) {
            emulator = emulator.with_profile(nfcc_emulator::Profile::Nfp);
        }
        emulator.reset(policy).map_err(|message| Failure::Load {
            policy: policy.name.clone(),
            message,
        })?;
        for (fi, (literal, frame)) in frames.iter().enumerate() {
            if !kernel.can_run(frame) {
                // The kernel's test runner refuses frames this short. The evaluator does not
                // run them either: a frame one engine saw and the other did not would leave
                // their limiter buckets out of step.
                m.short += 1;
                continue;
            }
            let counters_before = state.counters.clone();
            let want = eval::eval(policy, &mut state, &meta, frame);
            m.compared += 1;
            let eval_answer = (want.verdict.clone(), rule_name(policy, want.rule));
            let disagree = |kind: &'static str, message: String| {
                Failure::Disagree(Box::new(Disagreement {
                    kind,
                    policy: policy.name.clone(),
                    literal: literal.clone(),
                    before: frames[..fi].iter().map(|(l, _)| l.clone()).collect(),
                    eval: eval_answer.clone(),
                    message,
                }))
            };
            let engines: [(&str, &mut dyn Engine); 2] =
                [("kernel", &mut kernel), ("emulator", &mut emulator)];
            for (ename, engine) in engines {
                match engine.run(policy, frame) {
                    Ok(got)
                        if got.verdict == want.verdict
                            && got.rule == want.rule
                            && got.packet == want.packet => {}
                    Ok(got) => {
                        let kind = if got.verdict == want.verdict && got.rule == want.rule {
                            "bytes"
                        } else {
                            "verdict"
                        };
                        return Err(disagree(kind, format!(
                            "frame `{literal}` (hex {}): eval says {} by {} out {}, {ename} says {} by {} out {}",
                            hex(frame),
                            want.verdict,
                            rule_name(policy, want.rule),
                            hex(&want.packet),
                            got.verdict,
                            rule_name(policy, got.rule),
                            hex(&got.packet)
                        )));
                    }
                    Err(e) => {
                        return Err(disagree(
                            "engine",
                            format!(
                                "frame `{literal}` (hex {}): the {ename} engine failed: {e}",
                                hex(frame)
                            ),
                        ))
                    }
                }
                // Every counter entry the frame changed in the evaluator must read the same in
                // the kernel.
                for (ci, entries) in state.counters.iter().enumerate() {
                    let counter = &policy.counters[ci];
                    for (key, want) in entries {
                        if counters_before[ci].get(key) == Some(want) {
                            continue;
                        }
                        let scalars = key_scalars(&counter.key, key);
                        match engine.counter(policy, CounterId(ci as u32), &scalars) {
                            Ok(got) if got == *want => {}
                            Ok(got) => {
                                return Err(disagree("counter", format!(
                                    "frame `{literal}` (hex {}): counter {}[{}] (packets, bytes): eval says {want:?}, {ename} says {got:?}",
                                    hex(frame),
                                    counter.name,
                                    hex(key)
                                )))
                            }
                            Err(e) => {
                                return Err(disagree("engine", format!(
                                    "frame `{literal}`: cannot read counter {}: {e}",
                                    counter.name
                                )))
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(m)
}

/// The key values whose key bytes are `key` (as `eval::key_of_scalars` builds them): each
/// field's big-endian bytes read back as a number; 16-byte `ip.*` parts as IPv6, whose key
/// bytes are the number itself (an IPv4 address is already `::ffff:a.b.c.d` in them).
fn key_scalars(fields: &[Field], key: &[u8]) -> Vec<Scalar> {
    let mut at = 0;
    fields
        .iter()
        .map(|f| {
            let w = f.key_width();
            let bits = key
                .get(at..at + w)
                .unwrap_or(&[])
                .iter()
                .fold(0u128, |acc, b| acc << 8 | u128::from(*b));
            at += w;
            Scalar {
                family: if w == 16 { Family::V6 } else { Family::Int },
                bits,
            }
        })
        .collect()
}

// -------------------------------------------------------------------------------------------
// Shrinking and saving
// -------------------------------------------------------------------------------------------

/// What identifies a failure while shrinking: its kind, and for a verifier rejection the
/// verifier's last word (`unreachable insn N`, `BPF_END uses reserved fields`, ...) and for a
/// compiler error its message, with numbers blanked. A shrunk policy must keep failing with
/// the same signature, so that shrinking does not wander from one bug to another.
fn signature(f: &Failure) -> String {
    // Every run of digits becomes one `#`.
    let blank = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    };
    match f {
        Failure::Check(_) => "check".into(),
        Failure::Refused(_) => "refused".into(),
        Failure::Compile(m) => {
            let line = m.lines().find(|l| l.contains("error[")).unwrap_or("");
            let msg = line.split_once("error[").map_or(line, |(_, r)| r);
            format!("compile: {}", blank(msg))
        }
        Failure::Load { message, .. } => {
            let last = message
                .lines()
                .rev()
                .find(|l| {
                    !l.trim().is_empty()
                        && !l.starts_with("verification time")
                        && !l.starts_with("processed ")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("");
            // An instruction dump line (`12: (bf) r1 = r2 ; ...`) identifies less than the
            // instruction itself; keep only the instruction.
            let last = last.split(" ;").next().unwrap_or(last);
            let last = last.split_once(": ").map_or(last, |(_, r)| r);
            format!("load: {}", blank(last))
        }
        Failure::Disagree(d) => format!("disagree: {}", d.kind),
    }
}

/// The byte ranges of the contents of every balanced pair of `open`/`close` in `text`.
fn groups(text: &str, open: u8, close: u8) -> Vec<(usize, usize)> {
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for (i, &c) in text.as_bytes().iter().enumerate() {
        if c == open {
            stack.push(i + 1);
        } else if c == close {
            if let Some(start) = stack.pop() {
                out.push((start, i));
            }
        }
    }
    out
}

/// `text` split at `sep`s outside brackets (`()`, `{}`, `[]`) and strings.
fn split_top(text: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut in_str, mut start) = (0i32, false, 0);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                _ if depth == 0 && text[i..].starts_with(sep) => {
                    parts.push(text[start..i].to_string());
                    start = i + sep.len();
                    i = start;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    parts.push(text[start..].to_string());
    parts
}

/// `parts` joined by `sep`, without the one at `skip`.
fn without(parts: &[String], skip: usize, sep: &str) -> String {
    parts
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != skip)
        .map(|(_, p)| p.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Simpler variants of a piece of `.nf` text: inside the whole text and inside every
/// parenthesised group, each `and`/`or` term dropped and each `, `-separated item dropped;
/// inside every `{ ... }` list, each item dropped; and every parenthesised group on its own in
/// place of the whole text.
fn variants(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut spans = vec![(0, text.len())];
    spans.extend(groups(text, b'(', b')'));
    spans.extend(groups(text, b'{', b'}'));
    for (a, b) in spans {
        let inner = &text[a..b];
        for sep in [" and ", " or ", ", "] {
            let parts = split_top(inner, sep);
            if parts.len() > 1 {
                for skip in 0..parts.len() {
                    out.push(format!(
                        "{}{}{}",
                        &text[..a],
                        without(&parts, skip, sep),
                        &text[b..]
                    ));
                }
            }
        }
    }
    let mut subs: Vec<String> = groups(text, b'(', b')')
        .into_iter()
        .map(|(a, b)| text[a..b].to_string())
        .collect();
    subs.sort_by_key(String::len);
    out.extend(subs);
    out.sort_by_key(String::len);
    out.dedup();
    out
}

/// Simpler variants of a rule line: its predicate simplified, or one action dropped (for a
/// rule whose verdict comes from a table, possibly all of them).
fn rule_variants(rule: &str) -> Vec<String> {
    let Some((head, rest)) = rule.split_once(": ") else {
        return Vec::new();
    };
    let (pred, actions) = match rest.rsplit_once(" => ") {
        Some((p, a)) => (p, Some(a)),
        None => (rest, None),
    };
    let mut out = Vec::new();
    let tail = actions.map_or(String::new(), |a| format!(" => {a}"));
    for v in variants(pred) {
        if !v.trim().is_empty() {
            out.push(format!("{head}: {v}{tail}"));
        }
    }
    if let Some(a) = actions {
        let parts = split_top(a, ", ");
        for skip in 0..parts.len() {
            let kept = without(&parts, skip, ", ");
            if kept.is_empty() {
                out.push(format!("{head}: {pred}"));
            } else {
                out.push(format!("{head}: {pred} => {kept}"));
            }
        }
    }
    out
}

/// Shrinks a failing policy greedily to a fixed point: drops rules and declarations, and
/// replaces rules, declarations and the default by simpler variants, keeping each change after
/// which the policy still fails the same way. Runs only the frame that failed, if any.
fn shrink(policy: &PolicyText, failure: &Failure) -> (PolicyText, Failure) {
    // The frames to replay: those run before the failing one (their state may matter), then
    // the failing one. The shrinker drops earlier frames too.
    let (mut before, last) = match failure {
        Failure::Disagree(d) => (d.before.clone(), Some(d.literal.clone())),
        _ => (Vec::new(), None),
    };
    let frames_of = |before: &[String]| -> Vec<Vec<(String, Vec<u8>)>> {
        let Some(last) = &last else {
            return Vec::new();
        };
        let run = before
            .iter()
            .chain(std::iter::once(last))
            .map(|l| (l.clone(), frame_from_literal(l).unwrap_or_default()))
            .collect();
        vec![run]
    };
    let try_with = |p: &PolicyText, before: &[String]| -> Option<Failure> {
        let text = render_file(std::slice::from_ref(p));
        match run_file("shrink.nf", &text, &frames_of(before), None) {
            // A disagreement must stay on the last frame, not move to an earlier one.
            Err(Failure::Disagree(d))
                if d.before.len() == before.len()
                    && signature(&Failure::Disagree(d.clone())) == signature(failure) =>
            {
                Some(Failure::Disagree(d))
            }
            Err(Failure::Disagree(_)) => None,
            Err(f) if signature(&f) == signature(failure) => Some(f),
            _ => None,
        }
    };
    let Some(_) = try_with(policy, &before) else {
        // It does not fail on its own (it needed its neighbour in the file): keep it whole.
        return (policy.clone(), failure.clone());
    };
    // Drop earlier frames that the disagreement does not need, oldest last.
    let deadline = Instant::now() + SHRINK_TIME;
    let mut budget = SHRINK_TRIES;
    for i in (0..before.len()).rev() {
        if budget == 0 || Instant::now() > deadline {
            break;
        }
        budget -= 1;
        let mut cand = before.clone();
        cand.remove(i);
        if try_with(policy, &cand).is_some() {
            before = cand;
        }
    }
    let try_it = |p: &PolicyText| try_with(p, &before);
    let mut best = policy.clone();
    let Some(mut best_failure) = try_it(&best) else {
        return (best, failure.clone());
    };
    // Each try compiles and loads the policy; a budget keeps shrinking to seconds.
    let mut accept = |cand: PolicyText, best: &mut PolicyText| {
        if budget == 0 || Instant::now() > deadline {
            return false;
        }
        budget -= 1;
        if let Some(f) = try_it(&cand) {
            *best = cand;
            best_failure = f;
            true
        } else {
            false
        }
    };
    loop {
        let mut changed = false;
        for i in (0..best.rules.len()).rev() {
            let mut cand = best.clone();
            cand.rules.remove(i);
            changed |= accept(cand, &mut best);
        }
        for i in (0..best.decls.len()).rev() {
            let mut cand = best.clone();
            cand.decls.remove(i);
            changed |= accept(cand, &mut best);
        }
        for i in 0..best.rules.len() {
            for v in rule_variants(&best.rules[i].clone()) {
                let mut cand = best.clone();
                cand.rules[i] = v;
                if accept(cand, &mut best) {
                    changed = true;
                    break;
                }
            }
        }
        for i in 0..best.decls.len() {
            for v in variants(&best.decls[i].clone()) {
                let mut cand = best.clone();
                cand.decls[i] = v;
                if accept(cand, &mut best) {
                    changed = true;
                    break;
                }
            }
        }
        if best.default != "default pass" {
            let mut cand = best.clone();
            cand.default = "default pass".into();
            changed |= accept(cand, &mut best);
        }
        // Drop one action of the default at a time.
        let actions = best.default.trim_start_matches("default ").to_string();
        let parts = split_top(&actions, ", ");
        for skip in 0..parts.len().saturating_sub(1) {
            let mut cand = best.clone();
            cand.default = format!("default {}", without(&parts, skip, ", "));
            if accept(cand, &mut best) {
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    (best, best_failure)
}

/// The directory of saved regressions.
fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions")
}

/// Saves `text` as the first free `verifier-<n>.nf` and returns its path.
fn save_regression(text: &str) -> PathBuf {
    let dir = regressions_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let mut n = 1;
    loop {
        let path = dir.join(format!("verifier-{n}.nf"));
        if let Ok(old) = std::fs::read_to_string(&path) {
            // The same shrunk policy found again (an earlier run saved it): keep one copy.
            if regression_body(&old) == regression_body(text) {
                return path;
            }
        } else {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            return path;
        }
        n += 1;
    }
}

/// The text of a regression file for a shrunk failing policy: for a disagreement, a test block
/// sends the frame and expects the evaluator's answer, so `nfcc test --engine kernel` fails on
/// it too until the compiler is fixed.
fn regression_text(policy: &PolicyText, failure: &Failure, seed: u64) -> String {
    let mut p = policy.clone();
    if let Failure::Disagree(d) = failure {
        let (verdict, rule) = &d.eval;
        let (literal, before) = (&d.literal, &d.before);
        let expect = match verdict {
            Terminal::Redirect(i) => format!("redirect \"{i}\""),
            t => t.to_string(),
        };
        let mut test = String::from("    test \"kernel agrees with the evaluator\" {\n");
        for b in before {
            let _ = writeln!(test, "        send {b}");
        }
        let _ = writeln!(
            test,
            "        send {literal}\n        expect {expect} by {rule}\n    }}"
        );
        p.tests.push(test);
    }
    // The header says what failed: the first line of the failure and, for a verifier
    // rejection, the last lines of its log, which name the offending instruction.
    let described = failure.describe();
    let lines: Vec<&str> = described
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("processed ")
                && !l.starts_with("stack depth")
        })
        .collect();
    let mut text = format!("# Found by verifier_property (seed {seed:#x}).\n");
    let tail = lines.len().saturating_sub(3).max(1);
    for l in lines.iter().take(1).chain(lines.iter().skip(tail)) {
        let _ = writeln!(text, "# {l}");
    }
    text.push_str(&render_file(&[p]));
    text
}

/// The policy part of a regression file: everything after the leading comment lines.
fn regression_body(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with('#') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest
}

// -------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------

/// Reads an integer from the environment.
fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn generated_policies_load_and_agree_with_the_evaluator() {
    if !kernel_available("verifier property test") {
        return;
    }
    let seed = env_number("NFCC_PROP_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("NFCC_PROP_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut totals = Measured::default();
    let (mut policies, mut rules_total, mut max_rules) = (0usize, 0usize, 0usize);
    let mut generator_bugs = Vec::new();
    let mut problems = Vec::new();
    let mut saved = Vec::new();
    // Failure signatures and how often each occurred, in order of first occurrence.
    let mut kinds: Vec<(String, usize)> = Vec::new();
    // The signatures of the failures saved as regressions.
    let mut saved_kinds: Vec<String> = Vec::new();
    let hooks = [Hook::Xdp, Hook::TcIngress, Hook::TcEgress];
    let (mut nic_programs, mut nic_compared) = (0usize, 0usize);
    for case in 0..cases {
        // Most files hold one policy of 1-40 rules; one in 30 has 100-500 rules and one in
        // ten holds a second policy, so that objects with several programs load too.
        let big = case % 30 == 29;
        let count = 1 + usize::from(rng.chance(10));
        let mut texts = Vec::new();
        let mut frames = Vec::new();
        for k in 0..count {
            let rules = if big && k == 0 {
                rng.range(100, 500) as usize
            } else {
                rng.range(1, 40) as usize
            };
            let hook = rng.pick(&hooks);
            // One file in four keeps to what the NIC accepts, so NIC code is exercised too.
            let nic = case % 4 == 3;
            texts.push(gen_policy(
                &mut rng,
                &format!("p{case}_{k}"),
                hook,
                rules,
                nic,
            ));
            frames.push(
                (0..FRAMES_PER_POLICY)
                    .map(|_| gen_frame(&mut rng))
                    .collect(),
            );
            policies += 1;
            rules_total += rules;
            max_rules = max_rules.max(rules);
        }
        let source = render_file(&texts);
        let name = format!("case-{case}.nf");
        // Files the checker accepts for the NIC also run as NIC code (stack vector, atomic
        // statistics, no LPM), held to the evaluator on the same frames.
        match run_file(&name, &source, &frames, Some(Target::Nfp)) {
            Ok(m) => {
                nic_programs += m.programs;
                nic_compared += m.compared;
            }
            // Not offloadable, or more packet fields than the NIC's stack holds: refusals the
            // user is told about, not bugs.
            Err(Failure::Check(_)) => {}
            Err(Failure::Compile(m)) if m.contains("E0203") && m.contains("stack bytes") => {}
            Err(f) => problems.push(format!("{name} (nfp code): {}\n{source}", f.describe())),
        }
        match run_file(&name, &source, &frames, None) {
            Ok(m) => {
                totals.programs += m.programs;
                totals.verified.extend(m.verified);
                totals.insns.extend(m.insns);
                totals.compared += m.compared;
                totals.short += m.short;
            }
            Err(f @ (Failure::Check(_) | Failure::Refused(_))) => {
                generator_bugs.push(format!("{name}: {}\n{source}", f.describe()));
            }
            Err(f) => {
                // The whole file and failure for the first of each kind; one line for the rest,
                // which are most likely the same bug again.
                let first_of_kind = !kinds.iter().any(|(k, _)| *k == signature(&f));
                if first_of_kind {
                    eprintln!(
                        "FAILURE in {name} (seed {seed:#x}):\n{source}\n{}",
                        f.describe()
                    );
                }
                let failing = match &f {
                    Failure::Load { policy, .. } => texts.iter().find(|t| &t.name == policy),
                    Failure::Disagree(d) => texts.iter().find(|t| t.name == d.policy),
                    // A compiler error names no policy; a file of one policy shrinks as is.
                    Failure::Compile(_) if texts.len() == 1 => texts.first(),
                    _ => None,
                };
                let described = f.describe();
                let mut report = if first_of_kind {
                    format!("{name}: {described}")
                } else {
                    let line = described.lines().next().unwrap_or("");
                    format!("{name}: {line} [{}]", signature(&f))
                };
                // One regression per kind of failure: the rest are most likely the same bug.
                let new_kind = !saved_kinds.contains(&signature(&f));
                if let (Some(p), true) = (failing, new_kind && saved.len() < MAX_SAVED) {
                    saved_kinds.push(signature(&f));
                    let (small, sf) = shrink(p, &f);
                    let text = regression_text(&small, &sf, seed);
                    let path = save_regression(&text);
                    let _ = write!(
                        report,
                        "\nshrunk to ({}):\n{text}{}",
                        path.display(),
                        sf.describe()
                    );
                    saved.push(path);
                } else if first_of_kind {
                    let _ = write!(report, "\n{source}");
                }
                problems.push(report);
                match kinds.iter_mut().find(|(k, _)| *k == signature(&f)) {
                    Some((_, n)) => *n += 1,
                    None => kinds.push((signature(&f), 1)),
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let max_verified = totals.verified.iter().copied().max().unwrap_or(0);
    let max_insns = totals.insns.iter().copied().max().unwrap_or(0);
    eprintln!(
        "verifier property (seed {seed:#x}): {cases} files, {policies} policies \
         ({rules_total} rules, largest {max_rules}), {} programs loaded, max verifier \
         processed insns {max_verified}, max program insns {max_insns}; {} frames compared \
         on kernel, emulator and evaluator ({} too short for the test runner); as NIC code: {nic_programs} \
         programs, {nic_compared} frames; {:.1} s",
        totals.programs,
        totals.compared,
        totals.short,
        elapsed.as_secs_f64()
    );
    assert!(
        generator_bugs.is_empty(),
        "{} generated files were refused by the checker or with E0201 (generator bugs):\n{}",
        generator_bugs.len(),
        generator_bugs.join("\n\n")
    );
    assert!(
        problems.is_empty(),
        "{} of {cases} generated files failed (saved: {:?}); by kind:\n{}\n\n{}",
        problems.len(),
        saved,
        kinds
            .iter()
            .map(|(k, n)| format!("{n:5} x {k}"))
            .collect::<Vec<_>>()
            .join("\n"),
        problems.join("\n\n")
    );
}

#[test]
fn saved_regressions_still_pass() {
    if !kernel_available("saved verifier regressions") {
        return;
    }
    let dir = regressions_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "nf"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut problems = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let name = path.display().to_string();
        // The frames are those of the test blocks, built as `nfcc test` builds them.
        let (program, _) = check_source(&source, &CheckOptions::default());
        let frames: Vec<Vec<(String, Vec<u8>)>> = program
            .iter()
            .flat_map(|p| &p.policies)
            .map(|policy| {
                policy
                    .tests
                    .iter()
                    .flat_map(|t| &t.steps)
                    .filter_map(|s| match s {
                        Step::Send { layers, .. } => nfcc_dsl::packet::build(layers)
                            .ok()
                            .map(|f| ("(test block packet)".to_string(), f)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        if let Err(f) = run_file(&name, &source, &frames, None) {
            problems.push(format!("{name}: {}", f.describe()));
        }
    }
    eprintln!("saved verifier regressions: {} files", files.len());
    assert!(
        problems.is_empty(),
        "{} saved regressions fail:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
