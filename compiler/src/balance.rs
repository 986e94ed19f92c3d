//! The `balance` action's backend choice: FNV-1a of the key picks one of [`MAGLEV_SLOTS`]
//! slots of a pool's Maglev table. Lowering fills the table ([`maglev`]) and code generation
//! hashes the key at run time and reduces it modulo the slot count, so both depend on this
//! module rather than on each other.

use nfcc_dsl::checked as ck;

/// Slots of a Maglev table (a prime, as Maglev requires; the language fixes it so that every
/// engine picks the same backend).
pub const MAGLEV_SLOTS: usize = 65537;

/// FNV-1a, 32 bits: the hash of balance keys and of Maglev permutations.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The Maglev lookup table of a pool: slot to backend index. Each backend's permutation is
/// (offset, skip) from FNV-1a of its address as 16 big-endian bytes, and of the same bytes
/// followed by 0xff; backends take turns in order, a backend of weight W taking W turns per
/// round, each claiming the next free slot of its permutation. (Written from the language's
/// definition of `balance`, apart from the evaluator's copy, which it must agree with.)
pub fn maglev(backends: &[(ck::Scalar, u32)]) -> Vec<u32> {
    let m = MAGLEV_SLOTS as u64;
    let mut table = vec![u32::MAX; MAGLEV_SLOTS];
    if backends.is_empty() {
        return table;
    }
    let perm: Vec<(u64, u64)> = backends
        .iter()
        .map(|(a, _)| {
            let mut bytes = a.bits.to_be_bytes().to_vec();
            let offset = u64::from(fnv1a(&bytes)) % m;
            bytes.push(0xff);
            (offset, u64::from(fnv1a(&bytes)) % (m - 1) + 1)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut filled = 0;
    while filled < MAGLEV_SLOTS {
        for (i, (_, w)) in backends.iter().enumerate() {
            for _ in 0..*w {
                if filled == MAGLEV_SLOTS {
                    break;
                }
                let (offset, skip) = perm[i];
                loop {
                    let c = ((offset + next[i] * skip) % m) as usize;
                    next[i] += 1;
                    if table[c] == u32::MAX {
                        table[c] = i as u32;
                        filled += 1;
                        break;
                    }
                }
            }
        }
    }
    table
}
