//! Room for updates in place: what a program compiled for deployment (`nfcc load`) left room
//! for, recorded in its manifest so that the next version can be compiled to the very same
//! instructions and written into the running program's maps (`nfcc load --replace`).
//!
//! A classifier laid out for updates keeps its data twice: two halves of its nodes, boxes and
//! tuple buckets, and a selector word saying which half packets read. A new version is written
//! into the idle half and the selector flipped — one aligned word, so a packet sees one whole
//! version, the old or the new. What the code holds as constants (the depth it walks, the
//! boxes a leaf may hold, where each part's rules start, the statistics slots) is recorded
//! here, so the compiler can lay a new version out within them.

/// What a program has room for.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Room {
    /// Statistics slots: the rules, vacant slots for rules to come, the default last.
    pub slots: u32,
    /// Each classifier, in the program's order.
    pub classifiers: Vec<ClassifierRoom>,
}

/// One classifier's halves (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierRoom {
    /// The selector map: one word, the half packets read (0 or 1).
    pub select: String,
    /// The nodes map (empty without trees).
    pub nodes: String,
    /// Nodes per half.
    pub nodes_half: u32,
    /// Whether a half's nodes are one map value (entry 0 and 1), or one entry per node
    /// (entries `h * nodes_half ..`).
    pub nodes_in_value: bool,
    /// The boxes map: the trees' boxes, half by half, then the tuples' boxes, half by half.
    pub boxes: String,
    /// The trees' boxes per half.
    pub tree_boxes_half: u32,
    /// The tuples' boxes per half.
    pub tuple_boxes_half: u32,
    /// The tuples map (empty without tuples): a bucket's key starts with the tuple's id plus
    /// `h * tuples`.
    pub tuples: String,
    /// Tuples per half.
    pub tuple_ids: u32,
    /// Buckets the tuples map holds, both halves' together.
    pub buckets: u32,
    /// Each part (tree or tuple), in the order the code searches them.
    pub parts: Vec<PartRoom>,
}

/// What the code holds of one part.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartRoom {
    /// Levels walked before a leaf (0 for a tuple).
    pub depth: u32,
    /// Boxes tested in a leaf or bucket.
    pub bucket: u32,
    /// A slot no box of the part comes before.
    pub first_slot: u32,
}

/// The half of a classifier's data a map entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// Read while the selector says 0.
    Lower,
    /// Read while the selector says 1.
    Upper,
}

impl Half {
    /// The half the selector word `word` names.
    pub fn of_selector(word: u32) -> Half {
        if word & 1 == 0 {
            Half::Lower
        } else {
            Half::Upper
        }
    }

    /// The other half.
    pub fn other(self) -> Half {
        match self {
            Half::Lower => Half::Upper,
            Half::Upper => Half::Lower,
        }
    }

    /// The selector word naming this half.
    pub fn selector(self) -> u32 {
        match self {
            Half::Lower => 0,
            Half::Upper => 1,
        }
    }
}

impl ClassifierRoom {
    /// The half map `map`'s entry `key` belongs to; `None` for a map that is not this
    /// classifier's halved data (or a key outside both halves).
    pub fn half_of(&self, map: &str, key: &[u8]) -> Option<Half> {
        let word = |i: usize| {
            key.get(4 * i..4 * i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
        };
        let split = |at: u32, half: u32| match at.checked_div(half) {
            Some(0) => Some(Half::Lower),
            Some(1) => Some(Half::Upper),
            _ => None,
        };
        let k = word(0)?;
        if map == self.nodes && !self.nodes.is_empty() {
            if self.nodes_in_value {
                return split(k, 1);
            }
            return split(k, self.nodes_half);
        }
        if map == self.boxes {
            let trees = 2 * self.tree_boxes_half;
            if k < trees {
                return split(k, self.tree_boxes_half);
            }
            return split(k - trees, self.tuple_boxes_half);
        }
        if map == self.tuples && !self.tuples.is_empty() {
            return split(k, self.tuple_ids);
        }
        None
    }

    /// Whether map `map` holds this classifier's halved data (or its selector).
    pub fn owns(&self, map: &str) -> bool {
        map == self.select
            || map == self.boxes
            || (!self.nodes.is_empty() && map == self.nodes)
            || (!self.tuples.is_empty() && map == self.tuples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u32) -> Vec<u8> {
        k.to_le_bytes().to_vec()
    }

    #[test]
    fn entries_fall_in_the_half_their_key_names() {
        let r = ClassifierRoom {
            select: "s".into(),
            nodes: "n".into(),
            nodes_half: 100,
            nodes_in_value: false,
            boxes: "b".into(),
            tree_boxes_half: 10,
            tuple_boxes_half: 5,
            tuples: "t".into(),
            tuple_ids: 3,
            buckets: 64,
            parts: Vec::new(),
        };
        let check = |map: &str, k: u32, want: Option<Half>| {
            assert_eq!(r.half_of(map, &key(k)), want, "{map} {k}");
        };
        check("n", 0, Some(Half::Lower));
        check("n", 99, Some(Half::Lower));
        check("n", 100, Some(Half::Upper));
        check("n", 200, None);
        check("b", 9, Some(Half::Lower));
        check("b", 10, Some(Half::Upper));
        check("b", 20, Some(Half::Lower));
        check("b", 25, Some(Half::Upper));
        check("b", 30, None);
        check("t", 2, Some(Half::Lower));
        check("t", 5, Some(Half::Upper));
        check("s", 0, None);
        let v = ClassifierRoom {
            nodes_in_value: true,
            ..r.clone()
        };
        assert_eq!(v.half_of("n", &key(1)), Some(Half::Upper));
        assert_eq!(v.half_of("n", &key(2)), None);
        assert!(r.owns("s") && r.owns("t") && !r.owns("x"));
        assert_eq!(Half::of_selector(1).other(), Half::Lower);
        assert_eq!(Half::Upper.selector(), 1);
    }
}
