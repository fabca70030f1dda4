//! Grouping into equivalence classes.
//!
//! A set of classes is stored as flat rows of generalised ids (one `u32` per quasi-identifier)
//! and a count per class. Grouping maps every source class's ids through per-column maps, packs
//! the results into one `u64` (mixed radix over the target cardinalities) and collects equal
//! keys: with a direct-addressed array when the key space is small, else an open-addressing
//! hash table. Sources are the table's rows (to build the bottom node), or the classes of any
//! node below the target in the lattice (a roll-up: each source class lands whole in one target
//! class, because the hierarchies are trees).
//!
//! When the key space does not fit in 64 bits, ids are combined column by column and
//! renumbered densely whenever the running product would overflow; the result is the same.
//!
//! When the privacy model looks at sensitive values (ℓ-diversity, t-closeness), each class also
//! carries a histogram per constrained sensitive attribute ([`Hist`]); a roll-up merges the
//! source classes' histograms into their target's (ARX keeps a `Distribution` per class entry
//! for the same purpose).

/// Equivalence classes of one transformation.
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    /// The transformation: one level per quasi-identifier.
    pub levels: Vec<u8>,
    /// `keys[c * q + j]`: class `c`'s generalised id for quasi-identifier `j`.
    pub keys: Vec<u32>,
    /// Records per class.
    pub counts: Vec<u32>,
    /// Per constrained sensitive attribute (in [`crate::Criteria`]'s order), each class's
    /// histogram of values; empty when no criterion looks at sensitive values, so k-anonymity
    /// alone pays nothing for them.
    pub hists: Vec<Hist>,
}

/// Histograms of one sensitive attribute, one per class, stored flat: class `c`'s
/// `(value code, records)` pairs are `entries[offsets[c]..offsets[c + 1]]`, sorted by code,
/// each code once, counts positive.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hist {
    pub offsets: Vec<u32>,
    pub entries: Vec<(u32, u32)>,
}

impl Hist {
    /// Class `c`'s histogram.
    #[inline]
    pub fn class(&self, c: usize) -> &[(u32, u32)] {
        &self.entries[self.offsets[c] as usize..self.offsets[c + 1] as usize]
    }

    /// One histogram per row (`codes[i]`, count 1), the source of the bottom node's.
    pub fn rows(codes: &[u32]) -> Self {
        Self {
            offsets: (0..=codes.len() as u32).collect(),
            entries: codes.iter().map(|&c| (c, 1)).collect(),
        }
    }

    /// Merges the source histograms into `classes` targets: source `i` goes to
    /// `mapping[i]`. Each target's entries are gathered (counting sort by target), then
    /// sorted by code and equal codes summed, so the result does not depend on the order the
    /// classes were found in.
    pub fn merge(&self, mapping: &[u32], classes: usize) -> Self {
        let mut start = vec![0u32; classes + 1];
        for (i, &t) in mapping.iter().enumerate() {
            start[t as usize + 1] += self.offsets[i + 1] - self.offsets[i];
        }
        for c in 0..classes {
            start[c + 1] += start[c];
        }
        let mut pos = start.clone();
        let mut gathered = vec![(0u32, 0u32); start[classes] as usize];
        for (i, &t) in mapping.iter().enumerate() {
            for &e in self.class(i) {
                gathered[pos[t as usize] as usize] = e;
                pos[t as usize] += 1;
            }
        }
        let mut offsets = Vec::with_capacity(classes + 1);
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(gathered.len());
        offsets.push(0u32);
        for c in 0..classes {
            let slice = &mut gathered[start[c] as usize..start[c + 1] as usize];
            slice.sort_unstable_by_key(|e| e.0);
            let first = entries.len();
            for &(code, n) in slice.iter() {
                if entries.len() > first
                    && let Some(last) = entries.last_mut()
                    && last.0 == code
                {
                    last.1 += n;
                } else {
                    entries.push((code, n));
                }
            }
            offsets.push(entries.len() as u32);
        }
        Self { offsets, entries }
    }

    fn heap_bytes(&self) -> usize {
        self.offsets.len() * 4 + self.entries.len() * 8
    }
}

impl Classes {
    /// Number of classes.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// The ids of class `c`.
    pub fn key(&self, c: usize) -> &[u32] {
        let q = self.levels.len();
        &self.keys[c * q..(c + 1) * q]
    }

    /// Approximate heap size in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.keys.len() * 4
            + self.counts.len() * 4
            + self.levels.len()
            + self.hists.iter().map(Hist::heap_bytes).sum::<usize>()
    }
}

const EMPTY: u32 = u32::MAX;
const FIB: u64 = 0x9E37_79B9_7F4A_7C15;

/// Open-addressing table from packed keys to class numbers.
struct Slots {
    slots: Vec<u32>,
    mask: usize,
    shift: u32,
}

impl Slots {
    fn with_capacity(n: usize) -> Self {
        let size = (n.max(8) * 2).next_power_of_two();
        Self {
            slots: vec![EMPTY; size],
            mask: size - 1,
            shift: 64 - size.trailing_zeros(),
        }
    }

    /// The class of `key`, and whether it is new (then appended to `class_keys`).
    #[inline]
    fn find_or_insert(&mut self, key: u64, class_keys: &mut Vec<u64>) -> (u32, bool) {
        let mut pos = (key.wrapping_mul(FIB) >> self.shift) as usize;
        loop {
            let s = self.slots[pos];
            if s == EMPTY {
                let c = class_keys.len() as u32;
                class_keys.push(key);
                self.slots[pos] = c;
                return (c, true);
            }
            if class_keys[s as usize] == key {
                return (s, false);
            }
            pos = (pos + 1) & self.mask;
        }
    }
}

/// The classes' keys, their counts and, when asked for, each source row's class.
pub(crate) type Grouped = (Vec<u32>, Vec<u32>, Option<Vec<u32>>);

/// Groups `n` source rows of ids (`src_keys`, `q` per row, weights `src_counts` or 1 each)
/// into classes of the target, mapping column `j` through `maps[j]` (target cardinality
/// `cards[j]`; `identity[j]` when `maps[j]` is the identity, which then is not consulted).
/// Gives up (`None`) as soon as there are more than `max_classes` classes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group(
    src_keys: &[u32],
    src_counts: Option<&[u32]>,
    q: usize,
    maps: &[&[u32]],
    identity: &[bool],
    cards: &[u32],
    want_mapping: bool,
    max_classes: usize,
) -> Option<Grouped> {
    let n = src_keys
        .len()
        .checked_div(q)
        .unwrap_or_else(|| src_counts.map_or(0, <[u32]>::len));
    let weight = |i: usize| src_counts.map_or(1, |c| c[i]);
    let mut keys: Vec<u32> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut mapping: Vec<u32> = if want_mapping {
        Vec::with_capacity(n)
    } else {
        Vec::new()
    };
    if n == 0 {
        return Some((keys, counts, want_mapping.then_some(mapping)));
    }
    if q == 0 {
        // No quasi-identifiers: everything is one class.
        let total: u64 = (0..n).map(|i| u64::from(weight(i))).sum();
        counts.push(u32::try_from(total).unwrap_or(u32::MAX));
        if want_mapping {
            mapping.resize(n, 0);
        }
        return (max_classes >= 1).then_some((keys, counts, want_mapping.then_some(mapping)));
    }
    let new_key = |i: usize, keys: &mut Vec<u32>| {
        let src = &src_keys[i * q..(i + 1) * q];
        keys.extend((0..q).map(|j| {
            if identity[j] {
                src[j]
            } else {
                maps[j][src[j] as usize]
            }
        }));
    };

    // Mixed-radix strides, if the key space fits in 64 bits.
    let mut strides = vec![0u64; q];
    let mut space: Option<u64> = Some(1);
    for j in (0..q).rev() {
        if let Some(s) = space {
            strides[j] = s;
            space = s.checked_mul(u64::from(cards[j].max(1)));
        }
    }
    // Columns that contribute to the key: identity ones read the source id directly; a
    // column generalised to a single value contributes nothing.
    let direct: Vec<(usize, u64)> = (0..q)
        .filter(|&j| identity[j] && cards[j] > 1)
        .map(|j| (j, strides[j]))
        .collect();
    let mapped: Vec<(usize, &[u32], u64)> = (0..q)
        .filter(|&j| !identity[j] && cards[j] > 1)
        .map(|j| (j, maps[j], strides[j]))
        .collect();
    let pack = |i: usize| -> u64 {
        let src = &src_keys[i * q..(i + 1) * q];
        let mut packed = 0u64;
        for &(j, stride) in &direct {
            packed += u64::from(src[j]) * stride;
        }
        for &(j, map, stride) in &mapped {
            packed += u64::from(map[src[j] as usize]) * stride;
        }
        packed
    };

    match space {
        Some(space) if space <= (2 * n as u64).max(1 << 12) => {
            // Small key space: direct addressing.
            let mut table = vec![EMPTY; space as usize];
            for i in 0..n {
                let slot = &mut table[pack(i) as usize];
                if *slot == EMPTY {
                    if counts.len() == max_classes {
                        return None;
                    }
                    *slot = counts.len() as u32;
                    counts.push(0);
                    new_key(i, &mut keys);
                }
                let c = *slot as usize;
                counts[c] += weight(i);
                if want_mapping {
                    mapping.push(c as u32);
                }
            }
        }
        Some(_) => {
            // No more than max_classes keys are ever stored, so size the table for that.
            let mut slots = Slots::with_capacity(n.min(max_classes.saturating_add(1)));
            let mut class_keys: Vec<u64> = Vec::new();
            for i in 0..n {
                let (c, new) = slots.find_or_insert(pack(i), &mut class_keys);
                if new {
                    if counts.len() == max_classes {
                        return None;
                    }
                    counts.push(0);
                    new_key(i, &mut keys);
                }
                counts[c as usize] += weight(i);
                if want_mapping {
                    mapping.push(c);
                }
            }
        }
        None => {
            // Combine column by column, renumbering densely before the product overflows.
            let id_of = |i: usize, j: usize| {
                let v = src_keys[i * q + j];
                if identity[j] { v } else { maps[j][v as usize] }
            };
            let mut ids = vec![0u64; n];
            let mut card: u64 = 1;
            for (j, &card_j) in cards.iter().enumerate() {
                let c = u64::from(card_j.max(1));
                if card.checked_mul(c).is_none() {
                    let mut slots = Slots::with_capacity(n);
                    let mut dense: Vec<u64> = Vec::new();
                    for id in ids.iter_mut() {
                        *id = u64::from(slots.find_or_insert(*id, &mut dense).0);
                    }
                    card = dense.len() as u64;
                }
                for (i, id) in ids.iter_mut().enumerate() {
                    *id = *id * c + u64::from(id_of(i, j));
                }
                card *= c;
            }
            let mut slots = Slots::with_capacity(n.min(max_classes.saturating_add(1)));
            let mut class_keys: Vec<u64> = Vec::new();
            for (i, &id) in ids.iter().enumerate() {
                let (c, new) = slots.find_or_insert(id, &mut class_keys);
                if new {
                    if counts.len() == max_classes {
                        return None;
                    }
                    counts.push(0);
                    new_key(i, &mut keys);
                }
                counts[c as usize] += weight(i);
                if want_mapping {
                    mapping.push(c);
                }
            }
        }
    }
    Some((keys, counts, want_mapping.then_some(mapping)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(keys: Vec<u32>, counts: Vec<u32>, q: usize) -> Vec<(Vec<u32>, u32)> {
        let mut v: Vec<(Vec<u32>, u32)> = counts
            .iter()
            .enumerate()
            .map(|(c, &n)| (keys[c * q..(c + 1) * q].to_vec(), n))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn histograms_merge_by_code() {
        // Rows with codes 3, 1, 3, 2, 1 into classes 0, 1, 0, 0, 1.
        let rows = Hist::rows(&[3, 1, 3, 2, 1]);
        let merged = rows.merge(&[0, 1, 0, 0, 1], 2);
        assert_eq!(merged.class(0), &[(2, 1), (3, 2)]);
        assert_eq!(merged.class(1), &[(1, 2)]);
        // And again, into one class.
        let top = merged.merge(&[0, 0], 1);
        assert_eq!(top.class(0), &[(1, 2), (2, 1), (3, 2)]);
    }

    #[test]
    fn all_three_paths_agree() {
        // 3 columns; values 0..5, mapped by halving in column 1.
        let rows: Vec<u32> = (0..60u32).flat_map(|i| [i % 5, i % 4, i % 3]).collect();
        let ident: Vec<u32> = (0..5).collect();
        let half: Vec<u32> = (0..5).map(|v| v / 2).collect();
        let maps: [&[u32]; 3] = [&ident, &half, &ident];
        let identity = [true, false, false];
        let run =
            |cards: &[u32], max: usize| group(&rows, None, 3, &maps, &identity, cards, true, max);
        let small = run(&[5, 3, 5], usize::MAX).unwrap();
        // Same with huge declared cardinalities: hash path, then overflow path.
        let hashed = run(&[5, 3, 1 << 20], usize::MAX).unwrap();
        let overflow = run(&[u32::MAX; 3], usize::MAX).unwrap();
        let classes = small.1.len();
        for cards in [[5, 3, 5], [5, 3, 1 << 20], [u32::MAX; 3]] {
            assert!(run(&cards, classes - 1).is_none());
            assert!(run(&cards, classes).is_some());
        }
        let expect = sorted(small.0.clone(), small.1.clone(), 3);
        assert_eq!(expect.iter().map(|e| e.1).sum::<u32>(), 60);
        assert_eq!(sorted(hashed.0, hashed.1, 3), expect);
        assert_eq!(sorted(overflow.0, overflow.1, 3), expect);
        // Mapping sends each row to the class with its key.
        let (keys, _, mapping) = small;
        for (i, &c) in mapping.unwrap().iter().enumerate() {
            let c = c as usize;
            assert_eq!(keys[c * 3], rows[i * 3]);
            assert_eq!(keys[c * 3 + 1], rows[i * 3 + 1] / 2);
        }
    }
}
