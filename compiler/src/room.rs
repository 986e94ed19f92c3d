//! Laying a program out for updates in place (`nfcc load`; see `nfcc_bpf::room`): statistics
//! slots with room for rules to come, the default in the last slot, so that a rule more or
//! less leaves the code as it is; classifiers in two halves (`classify::halves`). Given the
//! running version's room (`nfcc load --replace`), a new version is laid out within it where
//! it fits — then it compiles to the running program's instructions and only its maps'
//! contents differ — and says why where it does not.

use crate::ir::{Program, Updatable};
use nfcc_bpf::room::Room;
use nfcc_dsl::checked::Target;

/// How a program's data is laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// In as little memory as the program needs (`nfcc compile`, test runs).
    #[default]
    Packed,
    /// With room for updates in place, within the running version's room when given.
    Updatable(Option<Room>),
}

/// Statistics slots for `used` (the rules and the default): an eighth more, at least 16 more,
/// in steps of 64.
fn slots_for(used: u32) -> u32 {
    (used + used / 8 + 16).next_multiple_of(64)
}

/// Sizes the statistics map of a lowered host program laid out by `layout` and moves the
/// default to its last slot; marks the program [`Updatable`] for the passes after.
pub fn prepare(p: &mut Program, layout: &Layout) {
    let Layout::Updatable(fit) = layout else {
        return;
    };
    if p.target != Target::Host {
        return;
    }
    let used = p.default.1 + 1;
    let mut u = Updatable {
        fit: fit.clone(),
        ..Updatable::default()
    };
    let slots = match fit.as_ref().map(|f| f.slots) {
        Some(s) if s >= used => s,
        Some(s) => {
            u.misfits.push(format!(
                "{used} statistics slots are needed, the running program has {s}"
            ));
            slots_for(used)
        }
        None => slots_for(used),
    };
    p.maps[p.stats.index()].max_entries = slots;
    p.default.1 = slots - 1;
    u.room.slots = slots;
    p.updatable = Some(u);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_room_and_keep_a_fitting_room() {
        assert_eq!(slots_for(3), 64);
        assert_eq!(slots_for(601), 704);
        assert!(slots_for(10_001) >= 10_001 + 1_250);
    }
}
