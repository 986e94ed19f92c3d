//! The `.nfcc.policy` section of an object `nfcc compile` writes: what the program needs
//! besides its code to behave as its policy — the initial contents of its maps (set members,
//! table entries, pool backends, classifier trees and tuples), the interfaces its redirect
//! map names, its rule slots, and its stage's description as a deployment manifest holds it.
//! `nfcc load|run OBJ` read it back, so an object and its source behave the same.
//!
//! The layout (version [`VERSION`]) is the magic `NFCCPOL\0`, the version and the length
//! of a JSON header (u32, little-endian), the header (a [`PolicySection`]: per program its
//! hook, rules, stage, redirect targets and the names of the maps its entries fill), then per
//! program its entries as binary records: the map's index in that list, the key's and the
//! value's lengths (u32 each, little-endian), the key, the value. Binary, because a 10k-rule
//! classifier's boxes are tens of thousands of entries.
//! The section is not allocated (no `SHF_ALLOC`), so loaders that do not know it (libbpf,
//! bpftool, iproute2, aya) skip it — and leave the maps empty: `nfcc compile --emit
//! map-init` writes what such a loader needs to fill them.

use crate::manifest::{RuleEntry, Stage};

/// The section's name.
pub const SECTION: &str = ".nfcc.policy";

/// The section's first bytes.
pub const MAGIC: &[u8; 8] = b"NFCCPOL\0";

/// The layout's version; a reader refuses any other.
pub const VERSION: u32 = 1;

/// The section's contents.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicySection {
    /// One entry per program of the object.
    pub programs: Vec<ProgramState>,
    /// The source the object was compiled from, with the options that shape its code: what
    /// `nfcc test OBJ` runs the test blocks of (absent in objects of an older nfcc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CompiledFrom>,
}

/// Where an object came from: enough to compile it again, byte for byte, with the same nfcc.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompiledFrom {
    /// The source's name as the compiler was given it (it is in the object's line info).
    pub name: String,
    /// The `.nf` text.
    pub text: String,
    /// `--target`, when given (`host`, `nfp`).
    pub target: Option<String>,
    /// `--classifier` (`auto`, `linear`, `tree`, `tuples`).
    pub classifier: String,
}

/// What one program of the object needs besides its code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramState {
    /// The program's (and policy's) name.
    pub program: String,
    /// The policy's hook as the language writes it (`xdp`, `tc ingress`, `tc egress`).
    pub hook: String,
    /// The rules by statistics slot.
    pub rules: Vec<RuleEntry>,
    /// The program's stage as a manifest describes it (maps with roles, sets, pools).
    pub stage: Stage,
    /// Interfaces the redirect-targets map names, in slot order.
    pub redirects: Vec<String>,
    /// The maps the entries fill, by the index the records use.
    pub entry_maps: Vec<String>,
    /// How many entries follow the header for this program.
    pub entry_count: usize,
    /// Initial map entries, in the order they are written (the records after the header).
    #[serde(skip)]
    pub entries: EntryBytes,
}

/// Map entries as bytes: (map, key, value).
pub type EntryBytes = Vec<(String, Vec<u8>, Vec<u8>)>;

/// Why a section could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicySectionError {
    /// The object is not an ELF file this reader understands.
    #[error("not an elf object: {0}")]
    Elf(String),
    /// The header is not JSON of the layout.
    #[error("the {SECTION} section's header is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// Another layout, or another version of it.
    #[error("the {SECTION} section is version {found} (or not nfcc's); this nfcc reads version {VERSION} (recompile the object with this nfcc)")]
    Version {
        /// The version found (0 without the magic).
        found: u32,
    },
    /// The records end early or name a map the header does not.
    #[error("the {SECTION} section is cut short or damaged")]
    Truncated,
}

impl PolicySection {
    /// The section's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(self).unwrap_or_default();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for p in &self.programs {
            for (m, k, v) in &p.entries {
                let idx = p.entry_maps.iter().position(|n| n == m).unwrap_or(0) as u32;
                for n in [idx, k.len() as u32, v.len() as u32] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(k);
                out.extend_from_slice(v);
            }
        }
        out
    }

    /// The section from its bytes.
    pub fn from_bytes(data: &[u8]) -> Result<PolicySection, PolicySectionError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], PolicySectionError> {
            let b = data.get(at..at + n).ok_or(PolicySectionError::Truncated)?;
            at += n;
            Ok(b)
        };
        let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if take(8)? != MAGIC {
            return Err(PolicySectionError::Version { found: 0 });
        }
        let version = u32_of(take(4)?);
        if version != VERSION {
            return Err(PolicySectionError::Version { found: version });
        }
        let len = u32_of(take(4)?) as usize;
        let mut s: PolicySection = serde_json::from_slice(take(len)?)?;
        for p in &mut s.programs {
            for _ in 0..p.entry_count {
                let idx = u32_of(take(4)?) as usize;
                let (kl, vl) = (u32_of(take(4)?) as usize, u32_of(take(4)?) as usize);
                let map = p
                    .entry_maps
                    .get(idx)
                    .cloned()
                    .ok_or(PolicySectionError::Truncated)?;
                let k = take(kl)?.to_vec();
                let v = take(vl)?.to_vec();
                p.entries.push((map, k, v));
            }
        }
        Ok(s)
    }

    /// The section of `object`, `None` when it has none (an object nfcc did not write, or an
    /// older nfcc's).
    pub fn read(object: &[u8]) -> Result<Option<PolicySection>, PolicySectionError> {
        use object::{Object, ObjectSection};
        let file =
            object::File::parse(object).map_err(|e| PolicySectionError::Elf(e.to_string()))?;
        let Some(section) = file.section_by_name(SECTION) else {
            return Ok(None);
        };
        let data = section
            .data()
            .map_err(|e| PolicySectionError::Elf(e.to_string()))?;
        PolicySection::from_bytes(data).map(Some)
    }

    /// The state of program `name`.
    pub fn program(&self, name: &str) -> Option<&ProgramState> {
        self.programs.iter().find(|p| p.program == name)
    }
}

impl ProgramState {
    /// A program's state with `entries`, the maps they fill listed once each.
    pub fn with_entries(mut self, entries: EntryBytes) -> ProgramState {
        let mut maps: Vec<String> = Vec::new();
        for (m, _, _) in &entries {
            if !maps.contains(m) {
                maps.push(m.clone());
            }
        }
        self.entry_maps = maps;
        self.entry_count = entries.len();
        self.entries = entries;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: EntryBytes) -> ProgramState {
        ProgramState {
            program: "p".into(),
            hook: "xdp".into(),
            rules: Vec::new(),
            stage: Stage {
                program_id: 0,
                program: "p".into(),
                maps: Vec::new(),
                sets: Vec::new(),
                pools: Vec::new(),
                counted_slots: None,
                code: None,
                room: None,
            },
            redirects: Vec::new(),
            entry_maps: Vec::new(),
            entry_count: 0,
            entries: Vec::new(),
        }
        .with_entries(entries)
    }

    #[test]
    fn a_section_reads_back_as_written_and_refuses_damage() {
        let entries = vec![
            ("a".to_string(), vec![0, 1], vec![0xab; 40]),
            ("b".to_string(), vec![2], Vec::new()),
            ("a".to_string(), vec![3, 4], vec![5]),
        ];
        let s = PolicySection {
            programs: vec![state(entries.clone()), state(Vec::new())],
            source: Some(CompiledFrom {
                name: "p.nf".into(),
                text: "policy p on xdp { default pass }".into(),
                target: None,
                classifier: "auto".into(),
            }),
        };
        let bytes = s.to_bytes();
        let back = PolicySection::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, s);
        assert_eq!(back.programs[0].entries, entries);
        assert_eq!(back.programs[0].entry_maps, ["a", "b"]);
        assert!(matches!(
            PolicySection::from_bytes(&bytes[..bytes.len() - 1]),
            Err(PolicySectionError::Truncated)
        ));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            PolicySection::from_bytes(&v2),
            Err(PolicySectionError::Version { found: 2 })
        ));
    }
}
