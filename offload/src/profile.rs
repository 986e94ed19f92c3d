//! Capability profiles: what a target's BPF runs, as typed sets and numbers, in the manner of
//! naga's `Capabilities`. `host` has everything; `nfp` is the Netronome offload of
//! ../shared/design/offload-nfp.md, its firmware limits (read from the card at run time by the
//! driver) given conservative defaults that a TOML file can override for a specific card.

use nfcc_dsl::check::Capabilities;

/// Why a profile file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A line is not `key = integer` (or a comment, blank, or `[section]`).
    #[error("line {line}: expected `key = integer`, found `{text}`")]
    Syntax {
        /// The 1-based line.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A key the profile does not have.
    #[error("line {line}: unknown limit `{key}` (known: {known})")]
    UnknownKey {
        /// The 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// The keys a profile file may set.
        known: String,
    },
}

/// What a target can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Its name (`host`, `nfp`).
    pub name: &'static str,
    /// Helpers, map kinds and context access it has (dsl's capability set).
    pub caps: Capabilities,
    /// XDP programs.
    pub xdp: bool,
    /// TC ingress classifiers.
    pub tc_ingress: bool,
    /// TC egress classifiers.
    pub tc_egress: bool,
    /// Maps per program.
    pub max_maps: u32,
    /// Entries of one map.
    pub max_map_entries: u64,
    /// Entries of all maps together.
    pub max_total_entries: u64,
    /// Bytes of key plus value per entry, rounded up to 8.
    pub max_entry_bytes: u32,
    /// Program length in the NIC's own instructions.
    pub max_insns: u32,
    /// NIC instructions per eBPF instruction, for estimates before the driver translates.
    pub insns_per_ebpf: u32,
    /// Stack bytes.
    pub stack_bytes: u32,
    /// The highest packet offset the program may touch (the firmware's inline data).
    pub packet_reach: u32,
}

impl Profile {
    /// Everything the host kernel runs.
    pub fn host() -> Profile {
        Profile {
            name: "host",
            caps: Capabilities::ALL,
            xdp: true,
            tc_ingress: true,
            tc_egress: true,
            max_maps: u32::MAX,
            max_map_entries: u64::from(u32::MAX),
            max_total_entries: u64::MAX,
            max_entry_bytes: u32::MAX,
            max_insns: 1_000_000,
            insns_per_ebpf: 1,
            stack_bytes: 512,
            packet_reach: u32::MAX,
        }
    }

    /// Netronome's nfp offload with conservative firmware limits: 64 maps, 64K entries a
    /// map and 256K in all, 64 bytes of key and value an entry, 4,096 NIC instructions
    /// (estimated as 2 per eBPF instruction), 512 stack bytes, 256 bytes of packet reach.
    pub fn nfp() -> Profile {
        Profile {
            name: "nfp",
            caps: Capabilities::of(nfcc_dsl::checked::Target::Nfp),
            xdp: true,
            // The NIC offloads cls_bpf too, but nfcc deploys NIC stages as XDP only.
            tc_ingress: false,
            tc_egress: false,
            max_maps: 64,
            max_map_entries: nfcc_dsl::check::NFP_MAX_CAPACITY,
            max_total_entries: 4 * nfcc_dsl::check::NFP_MAX_CAPACITY,
            max_entry_bytes: 64,
            max_insns: 4096,
            insns_per_ebpf: 2,
            stack_bytes: 512,
            packet_reach: 256,
        }
    }

    /// The profile named `name`.
    pub fn named(name: &str) -> Option<Profile> {
        match name {
            "host" => Some(Profile::host()),
            "nfp" => Some(Profile::nfp()),
            _ => None,
        }
    }

    /// This profile with the limits a card's TOML file sets (`key = integer` lines; a
    /// `[section]` header and `#` comments are allowed). Keys: `max_maps`, `max_map_entries`,
    /// `max_total_entries`, `max_entry_bytes`, `max_insns`, `insns_per_ebpf`, `stack_bytes`,
    /// `packet_reach`.
    pub fn with_overrides(mut self, toml: &str) -> Result<Profile, ProfileError> {
        const KEYS: &str = "max_maps, max_map_entries, max_total_entries, max_entry_bytes, max_insns, insns_per_ebpf, stack_bytes, packet_reach";
        for (i, raw) in toml.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() || (line.starts_with('[') && line.ends_with(']')) {
                continue;
            }
            let syntax = || ProfileError::Syntax {
                line: i + 1,
                text: raw.to_string(),
            };
            let (k, v) = line.split_once('=').ok_or_else(syntax)?;
            let v: u64 = v.trim().replace('_', "").parse().map_err(|_| syntax())?;
            let small = |v: u64| u32::try_from(v).map_err(|_| syntax());
            match k.trim() {
                "max_maps" => self.max_maps = small(v)?,
                "max_map_entries" => self.max_map_entries = v,
                "max_total_entries" => self.max_total_entries = v,
                "max_entry_bytes" => self.max_entry_bytes = small(v)?,
                "max_insns" => self.max_insns = small(v)?,
                "insns_per_ebpf" => self.insns_per_ebpf = small(v)?.max(1),
                "stack_bytes" => self.stack_bytes = small(v)?,
                "packet_reach" => self.packet_reach = small(v)?,
                other => {
                    return Err(ProfileError::UnknownKey {
                        line: i + 1,
                        key: other.to_string(),
                        known: KEYS.to_string(),
                    })
                }
            }
        }
        Ok(self)
    }
}
