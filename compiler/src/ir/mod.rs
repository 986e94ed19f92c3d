//! The match-action IR between the checked policy and eBPF: which header fields the program
//! loads (each exactly once, in the encoding its uses need), the maps it owns, and the rules as
//! trees of conditions over those fields, with their actions.
//!
//! Everything lives in arenas addressed by typed `u32` handles ([`FieldId`], [`MapId`],
//! [`CondId`]); the text printer ([`Program::to_text`]) is what snapshot tests read, and the
//! verifier ([`Program::verify`]) runs between passes in debug builds to catch a pass that left
//! a dangling handle or an action the hook cannot do.

pub mod classifier;

use nfcc_dsl::ast::{CmpOp, Span};
use nfcc_dsl::checked::{Encap, EncapKind, Field, Header, Hook, Target, Terminal};
use std::fmt::Write as _;

macro_rules! handle {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            /// The index into the owning arena.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

handle!(
    /// A loaded field.
    FieldId,
    "f"
);
handle!(
    /// A map.
    MapId,
    "m"
);
handle!(
    /// A condition.
    CondId,
    "c"
);

/// How a field's value is kept once loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// The packet's bytes as loaded (network order read as a little-endian number): equality,
    /// prefix masks and map keys work on it directly, with constants swapped at compile time.
    Raw,
    /// The numeric value (byte-swapped once at load time): needed for ordering and ranges.
    Host,
}

/// A field the program loads once, in one encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldLoad {
    /// The field (family-specific: `ip.src` with an IPv4 value is `ipv4.src` here).
    pub field: Field,
    /// Its encoding.
    pub enc: Encoding,
}

/// Map kinds the IR asks for (the code generator picks the kernel type per target).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapPurpose {
    /// Exact-match set: hash map, key = field bytes, value = 1 byte.
    ExactSet,
    /// Prefix set: LPM trie, key = 32-bit prefix length then address bytes.
    PrefixSet,
    /// Prefix set as a hash (see [`crate::prefix`]): key = 32-bit prefix length then the
    /// value's bytes with bits past the length cleared; probed once per length.
    PrefixHash,
    /// A dynamic prefix hash's length table: array of one [`crate::prefix::length_table`].
    PrefixLengths,
    /// Per-rule packet and byte counters: per-CPU array, one slot per rule plus the default.
    RuleStats,
    /// A `counter`: per-CPU LRU hash, key = key fields, value = packets and bytes (u64 each).
    Counter,
    /// A `limiter`: LRU hash, key = key fields, value = nano-tokens and last refill (u64 each).
    Limiter,
    /// Interface indices of `redirect` targets, filled at load time: array of u32.
    RedirectTargets,
    /// AF_XDP sockets by receive queue (`redirect xsk`): an XSKMAP userspace fills.
    XskSockets,
    /// A `table`: hash, key = key fields (`ip.*` tagged with its family), value = the
    /// entry's verdict for the hook (u32), then its redirect target's index (u32, 0 unless
    /// the entry redirects).
    Table,
    /// Sampled packets: a ring buffer of {rule u32, length u32, first 128 bytes}.
    Samples,
    /// A pool's Maglev lookup table: array of backend indices (a dynamic pool: two tables of
    /// slot indices, one after the other).
    Maglev,
    /// A dynamic pool's backend slots: array of `nfcc_bpf::layout::PoolBackend`.
    PoolBackends,
    /// Which of a dynamic pool's Maglev tables is live: array of one u32.
    PoolActive,
    /// A `sticky` balance's flows: LRU hash of the balance key to {slot u32, incarnation u32}.
    Flows,
    /// A run of merged equality rules (see [`crate::opt`]): hash, key = the rules' fields,
    /// value = the rule's verdict (u32) then its statistics slot (u32).
    MergedRules,
    /// A virtual clock for tests: one u64 of nanoseconds that limiters read instead of
    /// `bpf_ktime_get_ns`, so a test run is as deterministic as the evaluator.
    Clock,
    /// A classifier's decision trees (see [`crate::classify`]): nodes, each {dimension u32,
    /// threshold u32, left u32, right u32}, a leaf with dimension [`crate::ir::classifier::LEAF`],
    /// its first box in the threshold and its box count in left; all in the one value of a
    /// one-entry array where they fit (node `i` at byte `16 i`), else an array of nodes.
    ClassifierNodes,
    /// A classifier's boxes, leaf by leaf in priority order: array of {verdict u32, statistics
    /// slot u32, headers needed u32, headers forbidden u32, then per dimension lo and hi, and
    /// mask and value for a dimension some box masks (u32 each)}.
    ClassifierBoxes,
    /// A classifier's tuples (see [`crate::classify::tuples`]): hash of {tuple u32, then each
    /// dimension under the tuple's mask (u32)} to the bucket {first box u32, box count u32}.
    /// The boxes of the buckets lie in one of two halves of the boxes map, `{base, base +
    /// half}` .. `+ half`, given by the header entry {u32::MAX, 0 ...} -> {base u32, half
    /// u32} (no tuple has that id): an update in place writes the new boxes into the idle
    /// half, then each bucket at once, so a packet meets every bucket whole, old or new.
    ClassifierTuples,
    /// Which half of a classifier laid out for updates in place packets read: array of one
    /// u32, 0 or 1 (see [`Select`]). In that layout the nodes map holds two halves, the boxes
    /// map the trees' boxes half by half then the tuples' half by half, and the tuples map
    /// both halves' buckets (no header entry).
    ClassifierSelect,
}

/// One field of a counter or limiter key, and how its bytes are produced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The raw bytes of a raw-encoded field, `width` of them.
    Raw(FieldId, u32),
    /// The big-endian bytes of a host-encoded field, `width` of them.
    Host(FieldId, u32),
    /// Constant bytes (a merged run's number, zero padding).
    Const(Vec<u8>),
    /// A field ANDed with a mask (in the field's encoding), then as `Raw` or `Host` would
    /// give it: the key of merged rules that compare `field & mask == k`.
    Masked(FieldId, u32, u128),
    /// An `ip.*` table key: a family byte (4 or 6) and 16 address bytes (IPv4 first).
    IpTagged {
        /// The raw IPv4 field.
        v4: FieldId,
        /// The raw IPv6 field.
        v6: FieldId,
    },
    /// An `ip.*` address: 16 bytes, IPv4 as `::ffff:a.b.c.d`.
    Ip {
        /// The raw IPv4 field.
        v4: FieldId,
        /// The raw IPv6 field.
        v6: FieldId,
    },
}

/// Non-terminal actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add the packet to a counter map under the key.
    Count {
        /// The counter map.
        map: MapId,
        /// The key's parts, in order.
        key: Vec<KeyPart>,
    },
    /// Set the skb mark (TC).
    Mark(u32),
    /// Rewrite a field to a constant, fixing checksums incrementally; nothing happens when the
    /// field's header is absent. `field` is family-specific for addresses (`ipv4.dst`).
    Rewrite {
        /// The field.
        field: Field,
        /// The new value (an address as its big-endian number).
        value: u128,
    },
    /// Decrement the IPv4 TTL or IPv6 hop limit, not below zero.
    DecTtl,
    /// Pick a backend of a pool by consistent hashing of the key and rewrite the
    /// destination address to it.
    Balance {
        /// The Maglev table map.
        table: MapId,
        /// The hashed key's parts.
        key: Vec<KeyPart>,
        /// Backends in table-index order: the family-specific destination field and address.
        backends: Vec<(Field, u128)>,
        /// Also rewrite the MACs from `bpf_fib_lookup` for the chosen backend; without a
        /// route the packet passes unchanged and the rule's other actions are skipped.
        via_fib: bool,
        /// Encapsulate towards the backend (outer headers of the backends' family) instead of
        /// rewriting the destination; the packet passes unchanged when its family differs.
        encap: Option<Encap>,
        /// A dynamic pool: backends read from maps (`table` holds two halves), not `backends`.
        dynamic: Option<DynPool>,
        /// `sticky`: the flow table (dynamic pools only).
        flows: Option<MapId>,
    },
    /// Send about 1 in `n` packets (chosen at random) to the sample ring.
    Sample {
        /// The rate.
        n: u32,
        /// The ring buffer.
        map: MapId,
    },
}

/// The maps of a dynamic pool besides its Maglev tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynPool {
    /// Backend slots (`nfcc_bpf::layout::PoolBackend` records).
    pub backends: MapId,
    /// Which Maglev table is live (one u32).
    pub active: MapId,
    /// Whether the backends are IPv6.
    pub v6: bool,
}

/// A map the program owns, with its initial contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    /// The map's name in the object (a C identifier).
    pub name: String,
    /// What it is for.
    pub purpose: MapPurpose,
    /// Key bytes.
    pub key_size: u32,
    /// Value bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// Entries to insert after loading (key, value).
    pub init: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A condition on loaded fields; each is false when its field's header is absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    /// The header is present.
    Present(Header),
    /// `(field & mask) OP k`, all in the field's encoding; `k` is 128 bits for IPv6.
    Cmp {
        /// The loaded field.
        field: FieldId,
        /// Mask applied first (in the field's encoding).
        mask: Option<u128>,
        /// Operator (only `==`/`!=` for raw fields).
        op: CmpOp,
        /// The constant, in the field's encoding.
        k: u128,
    },
    /// `lo <= field <= hi` on a host-encoded field.
    Range {
        /// The loaded field.
        field: FieldId,
        /// Lower bound.
        lo: u128,
        /// Upper bound.
        hi: u128,
    },
    /// `payload[start..end] == bytes` (`!=` when `negate`); false without an L4 payload or
    /// when the frame is shorter.
    Payload {
        /// First byte.
        start: u16,
        /// One past the last byte.
        end: u16,
        /// The bytes.
        bytes: Vec<u8>,
        /// `!=`.
        negate: bool,
    },
    /// `over LIMITER`: takes a token from the key's bucket; true when none was left.
    Over {
        /// The limiter map.
        map: MapId,
        /// The key's parts.
        key: Vec<KeyPart>,
        /// Tokens per second.
        rate: u64,
        /// Bucket size in tokens.
        burst: u64,
    },
    /// The packet's key hits an entry of a table; the entry's verdict is kept in table slot
    /// `slot` for a rule that takes its verdict from the table.
    Match {
        /// The table map.
        map: MapId,
        /// The key's parts; every key field must be present.
        key: Vec<KeyPart>,
        /// Where the hit's verdict is kept.
        slot: u32,
    },
    /// The big-endian key built from `key` (one host-order field) is in a set map.
    InMapKey {
        /// The key's one part.
        key: Vec<KeyPart>,
        /// The map.
        map: MapId,
    },
    /// The field's value has a prefix in a prefix hash, probing each length of `lengths`.
    InPrefixHash {
        /// The loaded field (raw).
        field: FieldId,
        /// The prefix hash.
        map: MapId,
        /// The lengths to probe.
        lengths: Lengths,
    },
    /// The field's bytes are a key of a set map.
    InMap {
        /// The loaded field (raw).
        field: FieldId,
        /// The map.
        map: MapId,
    },
    /// A classifier holds a box for the packet (see [`crate::classify`]): each part — a tree
    /// walked on `dims` to a leaf, or a tuple whose masked `dims` are looked up — yields a
    /// bucket of boxes tested in priority order, parts in order of their first rule, skipping
    /// the rest once a better rule matched; the best box puts its verdict and statistics slot
    /// into table slot `slot`, as a merged run's entry does.
    Classify {
        /// Every tree's nodes (children indices are absolute), when there are trees.
        nodes: Option<MapId>,
        /// Every tuple's buckets, when there are tuples.
        tuples: Option<MapId>,
        /// Every leaf's and bucket's boxes.
        boxes: MapId,
        /// The dimensions: each a host-encoded field of at most 32 bits, or several such
        /// fields of headers no packet has together (`tcp.dport` or `udp.dport`), read from
        /// the one present.
        dims: Vec<Vec<FieldId>>,
        /// The trees and tuples, in order of their first rule.
        parts: Vec<ClassifyPart>,
        /// Which dimensions some box masks (the others skip the mask test).
        masked: Vec<bool>,
        /// Where the hit's verdict and statistics slot are kept.
        slot: u32,
        /// For a classifier laid out for updates in place: the selector naming the half of its
        /// data packets read (see [`Select`]).
        select: Option<Select>,
    },
}

/// The selector of a classifier laid out in two halves (see `nfcc_bpf::room`): the half is
/// the selector map's one word; a tree part's root is node `root` of that half (a value per
/// half, or entries `half * nodes_half ..`), a tuple's key starts with `id + half * tuple_ids`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Select {
    /// The selector map ([`MapPurpose::ClassifierSelect`]).
    pub map: MapId,
    /// Nodes per half.
    pub nodes_half: u32,
    /// Tuples per half.
    pub tuple_ids: u32,
}

/// A program laid out for updates in place (`nfcc load`): statistics slots with room for rules
/// to come and classifiers in two halves, within the running version's room where it fits.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Updatable {
    /// The running version's room, to lay this one out within.
    pub fit: Option<nfcc_bpf::room::Room>,
    /// What this program has room for (map names as in the IR).
    pub room: nfcc_bpf::room::Room,
    /// Why this program is not laid out within `fit`, where it is not.
    pub misfits: Vec<String>,
}

/// How one part of a [`Cond::Classify`] finds a bucket of boxes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Search {
    /// A decision tree.
    Tree {
        /// Its root's index in the nodes map.
        root: u32,
        /// Nodes on a path before a leaf, at most.
        depth: u32,
    },
    /// A tuple: the key `{id, dims[d] & masks[d] ...}` looked up in the tuples map.
    Tuple {
        /// The key's first word.
        id: u32,
        /// Each dimension's mask.
        masks: Vec<u32>,
    },
}

/// One tree or tuple of a [`Cond::Classify`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassifyPart {
    /// How its bucket is found.
    pub search: Search,
    /// Boxes in a bucket (a leaf), at most.
    pub bucket: u32,
    /// The smallest statistics slot (earliest rule) of its boxes: a part whose first rule
    /// comes after an already matched one cannot do better, and is skipped.
    pub first_slot: u32,
    /// Header bits every box of the part needs: a packet without them skips the part.
    pub needs: u32,
}

/// Which prefix lengths a prefix-hash probe tries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lengths {
    /// Fixed at compile time (a static set), longest first.
    Static(Vec<u8>),
    /// Read at run time from a length table (a dynamic set).
    Table(MapId),
    /// Read at run time from a length table kept one slot per array entry, entry 0 holding
    /// the count: a dynamic set on the NIC, whose map entries are limited to a few dozen bytes.
    Entries(MapId),
}

/// A predicate tree over conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred {
    /// Constant.
    Const(bool),
    /// A condition.
    Cond(CondId),
    /// Negation.
    Not(Box<Pred>),
    /// Conjunction (short-circuit).
    And(Vec<Pred>),
    /// Disjunction (short-circuit).
    Or(Vec<Pred>),
}

/// A rule of the IR.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Its predicate.
    pub pred: Pred,
    /// Non-terminal actions, in order.
    pub actions: Vec<Action>,
    /// Its terminal; a redirect carries its index in the redirect-targets map.
    pub terminal: Terminal,
    /// The table slot whose hit supplies the verdict, for `rule NAME: match TABLE` rules.
    pub table: Option<u32>,
    /// Its index in the rule-statistics map (for a merged run, the first rule's; each entry
    /// of the run's table names its own).
    pub stats_index: u32,
    /// How many source rules this rule stands for when it is a merged run (0 otherwise); its
    /// table slot then holds the hit entry's verdict and statistics slot.
    pub merged: u32,
    /// Where it was written (for line info).
    pub span: Span,
}

/// A whole program in IR.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The policy's name (the program's function name).
    pub name: String,
    /// Where it attaches.
    pub hook: Hook,
    /// What it is compiled for.
    pub target: Target,
    /// Fields loaded, each once.
    pub fields: Vec<FieldLoad>,
    /// Maps.
    pub maps: Vec<Map>,
    /// Conditions, shared by rules.
    pub conds: Vec<Cond>,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// The default terminal and its statistics index.
    pub default: (Terminal, u32),
    /// The default's non-terminal actions.
    pub default_actions: Vec<Action>,
    /// Redirect target interface names, by index in the redirect-targets map.
    pub redirects: Vec<String>,
    /// The redirect-targets map, when there are redirects.
    pub redirect_map: Option<MapId>,
    /// The AF_XDP socket map, when a terminal is `redirect xsk`.
    pub xsk_map: Option<MapId>,
    /// The virtual clock map, when compiled for deterministic tests.
    pub clock: Option<MapId>,
    /// The rule-statistics map.
    pub stats: MapId,
    /// What the classifier pass decided per run of box rules.
    pub classifiers: Vec<crate::ir::classifier::Decision>,
    /// Set when the program is laid out for updates in place.
    pub updatable: Option<Updatable>,
}

/// A broken invariant found by [`Program::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ir verifier: {0}")]
pub struct VerifyError(pub String);

impl Program {
    /// Checks the IR's invariants: every handle points into its arena, raw fields are only
    /// compared for (in)equality, ranges use host fields, map keys match their fields' widths,
    /// statistics indices are distinct, and every terminal is one the hook can produce.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let err = |m: String| Err(VerifyError(m));
        for (i, c) in self.conds.iter().enumerate() {
            let field = match c {
                Cond::Present(_) | Cond::Payload { .. } => continue,
                Cond::InMapKey { key, map } => {
                    self.verify_key(key)?;
                    if self.maps.get(map.index()).map(|m| m.purpose) != Some(MapPurpose::ExactSet) {
                        return err(format!("c{i}: {map} is not a set map"));
                    }
                    continue;
                }
                Cond::Match { map, key, .. } => {
                    self.verify_key(key)?;
                    if !matches!(
                        self.maps.get(map.index()).map(|m| m.purpose),
                        Some(MapPurpose::Table | MapPurpose::MergedRules)
                    ) {
                        return err(format!("c{i}: {map} is not a table map"));
                    }
                    continue;
                }
                Cond::Over { map, key, .. } => {
                    self.verify_key(key)?;
                    if self.maps.get(map.index()).map(|m| m.purpose) != Some(MapPurpose::Limiter) {
                        return err(format!("c{i}: {map} is not a limiter map"));
                    }
                    continue;
                }
                Cond::Classify {
                    nodes,
                    tuples,
                    boxes,
                    dims,
                    masked,
                    parts,
                    select,
                    ..
                } => {
                    let purpose = |m: &MapId| self.maps.get(m.index()).map(|m| m.purpose);
                    if select
                        .as_ref()
                        .is_some_and(|s| purpose(&s.map) != Some(MapPurpose::ClassifierSelect))
                    {
                        return err(format!("c{i}: the selector map has another purpose"));
                    }
                    if nodes.is_some_and(|m| purpose(&m) != Some(MapPurpose::ClassifierNodes))
                        || tuples.is_some_and(|m| purpose(&m) != Some(MapPurpose::ClassifierTuples))
                        || purpose(boxes) != Some(MapPurpose::ClassifierBoxes)
                    {
                        return err(format!("c{i}: a map of the classifier has another purpose"));
                    }
                    if dims.is_empty()
                        || dims.len() > crate::ir::classifier::MAX_DIMS
                        || masked.len() != dims.len()
                        || parts.is_empty()
                    {
                        return err(format!(
                            "c{i}: {} classifier dimensions, {} parts",
                            dims.len(),
                            parts.len()
                        ));
                    }
                    if parts.windows(2).any(|w| w[0].first_slot > w[1].first_slot) {
                        return err(format!("c{i}: parts out of rule order"));
                    }
                    for d in dims.iter().flatten() {
                        match self.fields.get(d.index()) {
                            Some(f) if f.enc == Encoding::Host && f.field.ty().bits() <= 32 => {}
                            _ => {
                                return err(format!(
                                    "c{i}: dimension {d} is not a host field of 32 bits or less"
                                ))
                            }
                        }
                    }
                    let want = crate::ir::classifier::box_size(masked);
                    if self.maps[boxes.index()].value_size != want {
                        return err(format!("c{i}: boxes of {boxes} are not {want} bytes"));
                    }
                    for part in parts {
                        match (&part.search, nodes, tuples) {
                            (Search::Tree { root, .. }, Some(n), _)
                                if *root
                                    < match select {
                                        Some(s) => s.nodes_half,
                                        None => {
                                            let m = &self.maps[n.index()];
                                            crate::ir::classifier::node_count(
                                                m.max_entries,
                                                m.value_size,
                                            )
                                        }
                                    } => {}
                            (Search::Tuple { masks, .. }, _, Some(t))
                                if masks.len() == dims.len()
                                    && self.maps[t.index()].key_size
                                        == 4 + 4 * dims.len() as u32 => {}
                            (s, _, _) => {
                                return err(format!("c{i}: {s:?} has no map that holds it"))
                            }
                        }
                    }
                    continue;
                }
                Cond::Cmp { field, .. }
                | Cond::Range { field, .. }
                | Cond::InMap { field, .. }
                | Cond::InPrefixHash { field, .. } => *field,
            };
            let Some(f) = self.fields.get(field.index()) else {
                return err(format!("c{i} uses missing field {field}"));
            };
            match c {
                Cond::Cmp { op, .. }
                    if f.enc == Encoding::Raw && !matches!(op, CmpOp::Eq | CmpOp::Ne) =>
                {
                    return err(format!("c{i} orders the raw field {field}"));
                }
                Cond::Range { .. } if f.enc != Encoding::Host => {
                    return err(format!("c{i} takes a range of the raw field {field}"));
                }
                Cond::InMap { map, .. } => {
                    let Some(m) = self.maps.get(map.index()) else {
                        return err(format!("c{i} uses missing map {map}"));
                    };
                    let width = f.field.key_width() as u32;
                    let want = match m.purpose {
                        MapPurpose::PrefixSet => width + 4,
                        _ => width,
                    };
                    if m.key_size != want || f.enc != Encoding::Raw {
                        return err(format!("c{i}: map {map} key does not fit field {field}"));
                    }
                }
                Cond::InPrefixHash { map, lengths, .. } => {
                    let width = f.field.key_width();
                    match self.maps.get(map.index()) {
                        Some(m)
                            if m.purpose == MapPurpose::PrefixHash
                                && m.key_size == crate::prefix::key_size(width)
                                && f.enc == Encoding::Raw => {}
                        _ => return err(format!("c{i}: {map} is not a prefix hash for {field}")),
                    }
                    match lengths {
                        Lengths::Static(ls) if ls.iter().all(|l| usize::from(*l) <= width * 8) => {}
                        Lengths::Table(t)
                            if self.maps.get(t.index()).is_some_and(|m| {
                                m.purpose == MapPurpose::PrefixLengths
                                    && m.value_size == crate::prefix::table_size(width)
                            }) => {}
                        Lengths::Entries(t)
                            if self.maps.get(t.index()).is_some_and(|m| {
                                m.purpose == MapPurpose::PrefixLengths
                                    && m.value_size == crate::prefix::table_stride(width) as u32
                                    && m.max_entries == crate::prefix::table_slots(width) as u32 + 1
                            }) => {}
                        _ => return err(format!("c{i}: bad prefix lengths for {field}")),
                    }
                }
                _ => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            self.verify_pred(&r.pred)?;
            self.verify_actions(&r.actions)?;
            if !seen.insert(r.stats_index) {
                return err(format!(
                    "rule {} reuses statistics slot {}",
                    r.name, r.stats_index
                ));
            }
            self.verify_terminal(&r.terminal, &r.name)?;
        }
        if !seen.insert(self.default.1) {
            return err("the default reuses a statistics slot".into());
        }
        self.verify_terminal(&self.default.0, "default")?;
        self.verify_actions(&self.default_actions)?;
        match self.maps.get(self.stats.index()) {
            Some(m)
                if m.purpose == MapPurpose::RuleStats
                    && m.max_entries as usize > self.rules.len() =>
            {
                Ok(())
            }
            _ => err("the statistics map is missing or too small".into()),
        }
    }

    fn verify_key(&self, key: &[KeyPart]) -> Result<(), VerifyError> {
        for k in key {
            let ids: Vec<FieldId> = match k {
                KeyPart::Raw(f, _) | KeyPart::Host(f, _) | KeyPart::Masked(f, _, _) => vec![*f],
                KeyPart::Const(_) => vec![],
                KeyPart::Ip { v4, v6 } | KeyPart::IpTagged { v4, v6 } => vec![*v4, *v6],
            };
            for f in ids {
                if f.index() >= self.fields.len() {
                    return Err(VerifyError(format!("a key uses missing field {f}")));
                }
            }
        }
        Ok(())
    }

    fn verify_actions(&self, actions: &[Action]) -> Result<(), VerifyError> {
        for a in actions {
            match a {
                Action::Count { map, key } => {
                    self.verify_key(key)?;
                    if self.maps.get(map.index()).map(|m| m.purpose) != Some(MapPurpose::Counter) {
                        return Err(VerifyError(format!("count uses {map}, not a counter map")));
                    }
                }
                Action::Mark(_) if !self.hook.is_tc() => {
                    return Err(VerifyError("mark on xdp".into()));
                }
                Action::Balance {
                    key,
                    backends,
                    encap,
                    dynamic,
                    flows,
                    ..
                } => {
                    self.verify_key(key)?;
                    let purpose = |m: &MapId| self.maps.get(m.index()).map(|m| m.purpose);
                    if let Some(d) = dynamic {
                        if purpose(&d.backends) != Some(MapPurpose::PoolBackends)
                            || purpose(&d.active) != Some(MapPurpose::PoolActive)
                        {
                            return Err(VerifyError(
                                "a dynamic pool's maps have other purposes".into(),
                            ));
                        }
                        if encap.is_none() {
                            return Err(VerifyError(
                                "balance over a dynamic pool without encap".into(),
                            ));
                        }
                    }
                    if let Some(f) = flows {
                        if dynamic.is_none() || purpose(f) != Some(MapPurpose::Flows) {
                            return Err(VerifyError("a flow table without a dynamic pool".into()));
                        }
                    }
                    if let Some(e) = encap {
                        if !std::ptr::eq(a, actions.last().unwrap_or(a)) {
                            return Err(VerifyError("an action follows balance with encap".into()));
                        }
                        let v4 = backends.iter().all(|(f, _)| *f == Field::Ipv4Dst);
                        let v6 = backends.iter().all(|(f, _)| *f == Field::Ipv6Dst);
                        if !(v4 || v6) {
                            return Err(VerifyError("encap over a pool of mixed families".into()));
                        }
                        if e.from.is_some_and(|f| {
                            (f.family == nfcc_dsl::checked::Family::V6) != v6
                                && !backends.is_empty()
                        }) {
                            return Err(VerifyError("encap source of the other family".into()));
                        }
                    }
                }
                Action::Mark(_)
                | Action::Rewrite { .. }
                | Action::DecTtl
                | Action::Sample { .. } => {}
            }
        }
        Ok(())
    }

    fn verify_pred(&self, p: &Pred) -> Result<(), VerifyError> {
        match p {
            Pred::Const(_) => Ok(()),
            Pred::Cond(c) if c.index() < self.conds.len() => Ok(()),
            Pred::Cond(c) => Err(VerifyError(format!("missing condition {c}"))),
            Pred::Not(q) => self.verify_pred(q),
            Pred::And(v) | Pred::Or(v) => v.iter().try_for_each(|q| self.verify_pred(q)),
        }
    }

    fn verify_terminal(&self, t: &Terminal, rule: &str) -> Result<(), VerifyError> {
        if self.hook.is_tc() && matches!(t, Terminal::Tx | Terminal::Abort | Terminal::Xsk) {
            return Err(VerifyError(format!("{rule}: {} on a tc hook", t.name())));
        }
        Ok(())
    }

    /// The text form: fields, maps, conditions, rules. Stable, for snapshot tests.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let target = self.target.name();
        let _ = writeln!(
            o,
            "program {} on {} for {target}",
            self.name,
            self.hook.as_str()
        );
        for (i, f) in self.fields.iter().enumerate() {
            let _ = writeln!(o, "  f{i} = load {} {:?}", f.field.name(), f.enc);
        }
        for (i, m) in self.maps.iter().enumerate() {
            let _ = writeln!(
                o,
                "  m{i} = map {} {:?} key {} value {} max {} ({} initial)",
                m.name,
                m.purpose,
                m.key_size,
                m.value_size,
                m.max_entries,
                m.init.len()
            );
        }
        for (i, c) in self.conds.iter().enumerate() {
            let text = match c {
                Cond::Present(h) => format!("present {}", h.name()),
                Cond::Cmp { field, mask, op, k } => match mask {
                    Some(m) => format!("{field} & {m:#x} {} {k:#x}", op.as_str()),
                    None => format!("{field} {} {k:#x}", op.as_str()),
                },
                Cond::Range { field, lo, hi } => format!("{field} in {lo:#x}..={hi:#x}"),
                Cond::InMap { field, map } => format!("{field} in {map}"),
                Cond::InPrefixHash {
                    field,
                    map,
                    lengths,
                } => match lengths {
                    Lengths::Static(ls) => format!(
                        "{field} in {map} probing /{}",
                        ls.iter().map(u8::to_string).collect::<Vec<_>>().join(" /")
                    ),
                    Lengths::Table(t) => format!("{field} in {map} probing lengths of {t}"),
                    Lengths::Entries(t) => {
                        format!("{field} in {map} probing lengths of {t} (a slot per entry)")
                    }
                },
                Cond::InMapKey { key, map } => format!("{} in {map}", key_text(key)),
                Cond::Payload {
                    start,
                    end,
                    bytes,
                    negate,
                } => format!(
                    "payload[{start}..{end}] {} 0x{}",
                    if *negate { "!=" } else { "==" },
                    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ),
                Cond::Match { map, key, slot } => {
                    format!("match {map} key {} slot {slot}", key_text(key))
                }
                Cond::Classify {
                    nodes,
                    tuples,
                    boxes,
                    dims,
                    parts,
                    slot,
                    select,
                    ..
                } => format!(
                    "classify ({}){}{} boxes {boxes}{} slot {slot} parts [{}]",
                    dims.iter()
                        .map(|d| d
                            .iter()
                            .map(|f| f.to_string())
                            .collect::<Vec<_>>()
                            .join("|"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    nodes.map(|m| format!(" nodes {m}")).unwrap_or_default(),
                    tuples.map(|m| format!(" tuples {m}")).unwrap_or_default(),
                    select
                        .as_ref()
                        .map(|s| format!(
                            " select {} halves of {} nodes, {} tuples",
                            s.map, s.nodes_half, s.tuple_ids
                        ))
                        .unwrap_or_default(),
                    parts
                        .iter()
                        .map(|t| match &t.search {
                            Search::Tree { root, depth } => format!(
                                "tree root {root} depth {depth} bucket {} from slot {}",
                                t.bucket, t.first_slot
                            ),
                            Search::Tuple { id, masks } => format!(
                                "tuple {id} masks {} bucket {} from slot {}",
                                masks
                                    .iter()
                                    .map(|m| format!("{m:#x}"))
                                    .collect::<Vec<_>>()
                                    .join("/"),
                                t.bucket,
                                t.first_slot
                            ),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Cond::Over {
                    map,
                    key,
                    rate,
                    burst,
                } => {
                    format!(
                        "over {map} key {} rate {rate}/s burst {burst}",
                        key_text(key)
                    )
                }
            };
            let _ = writeln!(o, "  c{i} = {text}");
        }
        for r in &self.rules {
            if r.merged > 0 {
                let _ = writeln!(
                    o,
                    "  rule {} [{} merged rules, stats from the entry]: {} => entry's verdict",
                    r.name,
                    r.merged,
                    pred_text(&r.pred),
                );
                continue;
            }
            let _ = writeln!(
                o,
                "  rule {} [stats {}]: {} => {}{}",
                r.name,
                r.stats_index,
                pred_text(&r.pred),
                actions_text(&r.actions),
                r.terminal
            );
        }
        let _ = writeln!(
            o,
            "  default [stats {}] => {}{}",
            self.default.1,
            actions_text(&self.default_actions),
            self.default.0
        );
        o
    }
}

fn key_text(key: &[KeyPart]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|k| match k {
            KeyPart::Raw(f, w) => format!("{f}:raw{w}"),
            KeyPart::Masked(f, w, m) => format!("{f}&{m:#x}:{w}"),
            KeyPart::Const(b) => format!(
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            KeyPart::Host(f, w) => format!("{f}:be{w}"),
            KeyPart::Ip { v4, v6 } => format!("ip({v4},{v6})"),
            KeyPart::IpTagged { v4, v6 } => format!("ipfam({v4},{v6})"),
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn actions_text(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::Count { map, key } => format!("count {map} {}, ", key_text(key)),
            Action::Mark(m) => format!("mark {m:#x}, "),
            Action::Rewrite { field, value } => format!("set {} = {value:#x}, ", field.name()),
            Action::DecTtl => "dec ip.ttl, ".to_string(),
            Action::Sample { n, map } => format!("sample {n} to {map}, "),
            Action::Balance {
                table,
                key,
                backends,
                via_fib,
                encap,
                dynamic,
                flows,
            } => format!(
                "balance {table} by {} over {}{}{}{}, ",
                key_text(key),
                match dynamic {
                    Some(d) => format!("slots {} selected by {}", d.backends, d.active),
                    None => format!("{} backends", backends.len()),
                },
                flows.map_or(String::new(), |f| format!(" sticky {f}")),
                encap.map_or(String::new(), |e| encap_text(&e)),
                if *via_fib { " via fib" } else { "" }
            ),
        })
        .collect()
}

fn encap_text(e: &Encap) -> String {
    let kind = match e.kind {
        EncapKind::Ipip => " encap ipip".to_string(),
        EncapKind::Gue(port) => format!(" encap gue({port})"),
    };
    match e.from {
        Some(a) => format!("{kind} from {a:#x}", a = a.bits),
        None => kind,
    }
}

fn pred_text(p: &Pred) -> String {
    match p {
        Pred::Const(b) => b.to_string(),
        Pred::Cond(c) => c.to_string(),
        Pred::Not(q) => format!("!{}", pred_text(q)),
        Pred::And(v) => format!(
            "({})",
            v.iter().map(pred_text).collect::<Vec<_>>().join(" & ")
        ),
        Pred::Or(v) => format!(
            "({})",
            v.iter().map(pred_text).collect::<Vec<_>>().join(" | ")
        ),
    }
}
