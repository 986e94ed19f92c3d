//! `nfcc watch`: a deployed policy's sampled packets, each with the rule that sampled it (from
//! the manifest's rule slots), its verdict and its 5-tuple as the reference parser reads it.

use crate::error::DriverError;
use nfcc_dsl::checked::Field;
use nfcc_runtime::deploy::{Deployment, Samples};

/// One sampled packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// The rule that sampled it.
    pub rule: String,
    /// That rule's verdict.
    pub verdict: String,
    /// IP protocol, source, source port, destination, destination port (`-` when absent).
    pub tuple: [String; 5],
    /// The frame's length on the wire.
    pub len: u32,
    /// Its first bytes.
    pub bytes: Vec<u8>,
}

/// A frame's IP protocol, source, source port, destination and destination port as the
/// reference parser reads them (`-` when absent).
pub(crate) fn tuple_of(frame: &[u8]) -> [String; 5] {
    let h = nfcc_dsl::packet::parse_frame(frame);
    let meta = nfcc_dsl::eval::Meta::default();
    let get =
        |f| nfcc_dsl::eval::field_value(&h, &meta, f).map_or("-".to_string(), |v| v.to_string());
    [
        get(Field::IpProto),
        get(Field::IpSrc),
        get(Field::L4Sport),
        get(Field::IpDst),
        get(Field::L4Dport),
    ]
}

/// A deployment's sample stream.
pub struct Watcher {
    samples: Samples,
    rules: Vec<(String, String)>,
}

impl Watcher {
    /// Opens the samples of `d`.
    pub fn open(d: &Deployment) -> Result<Watcher, DriverError> {
        Ok(Watcher {
            samples: Samples::open(d)?,
            rules: d
                .manifest
                .rules
                .iter()
                .map(|r| (r.name.clone(), r.verdict.clone()))
                .collect(),
        })
    }

    /// The next sampled packet, if one is waiting.
    pub fn take(&mut self) -> Option<Watched> {
        let s = self.samples.take()?;
        let (rule, verdict) = self
            .rules
            .get(s.slot as usize)
            .cloned()
            .unwrap_or_else(|| (format!("slot {}", s.slot), "-".into()));
        Some(Watched {
            rule,
            verdict,
            tuple: tuple_of(&s.bytes),
            len: s.len,
            bytes: s.bytes,
        })
    }
}
