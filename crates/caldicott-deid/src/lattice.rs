//! The generalisation lattice: every vector of levels, one per quasi-identifier, each between 0
//! and its hierarchy's height. Node `n` is a successor of `m` when it is one level higher in
//! exactly one quasi-identifier. Nodes are numbered in mixed radix (quasi-identifier 0 the
//! least significant digit), so moving up one level in quasi-identifier `j` adds `radix[j]`.

use crate::error::DeidError;

/// Largest lattice searched (nodes); tags cost one byte per node.
pub(crate) const MAX_NODES: u64 = 1 << 26;

/// The lattice of full-domain generalisations.
#[derive(Debug, Clone)]
pub(crate) struct Lattice {
    heights: Vec<u8>,
    radix: Vec<u32>,
    size: u32,
}

impl Lattice {
    /// The lattice for these hierarchy heights.
    pub fn new(heights: Vec<u8>) -> Result<Self, DeidError> {
        let mut radix = Vec::with_capacity(heights.len());
        let mut size: u128 = 1;
        for &h in &heights {
            radix.push(size.min(u128::from(u32::MAX)) as u32);
            size = size.saturating_mul(u128::from(h) + 1);
        }
        if size > u128::from(MAX_NODES) {
            return Err(DeidError::LatticeTooLarge {
                nodes: size,
                max: MAX_NODES,
            });
        }
        Ok(Self {
            heights,
            radix,
            size: size as u32,
        })
    }

    /// Number of nodes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of quasi-identifiers.
    pub fn q(&self) -> usize {
        self.heights.len()
    }

    /// Hierarchy heights.
    pub fn heights(&self) -> &[u8] {
        &self.heights
    }

    /// The bottom node (no generalisation).
    pub fn bottom(&self) -> u32 {
        0
    }

    /// The top node (everything fully generalised).
    pub fn top(&self) -> u32 {
        self.size - 1
    }

    /// Highest level sum.
    pub fn max_level_sum(&self) -> u32 {
        self.heights.iter().map(|&h| u32::from(h)).sum()
    }

    /// Level of quasi-identifier `j` in `node`.
    #[inline]
    pub fn level(&self, node: u32, j: usize) -> u8 {
        ((node / self.radix[j]) % (u32::from(self.heights[j]) + 1)) as u8
    }

    /// The levels of `node`.
    pub fn levels(&self, node: u32) -> Vec<u8> {
        (0..self.q()).map(|j| self.level(node, j)).collect()
    }

    /// The node with these levels.
    pub fn node(&self, levels: &[u8]) -> u32 {
        levels
            .iter()
            .zip(&self.radix)
            .map(|(&l, &r)| u32::from(l) * r)
            .sum()
    }

    /// Sum of the levels of `node` (its height in the lattice).
    pub fn level_sum(&self, node: u32) -> u32 {
        (0..self.q()).map(|j| u32::from(self.level(node, j))).sum()
    }

    /// Direct successors (one level up in one quasi-identifier).
    pub fn successors(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.q())
            .filter(move |&j| self.level(node, j) < self.heights[j])
            .map(move |j| node + self.radix[j])
    }

    /// Direct predecessors (one level down in one quasi-identifier).
    pub fn predecessors(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.q())
            .filter(move |&j| self.level(node, j) > 0)
            .map(move |j| node - self.radix[j])
    }

    /// Whether `a <= b` in every quasi-identifier (a is `b` or below it).
    pub fn leq(a: &[u8], b: &[u8]) -> bool {
        a.iter().zip(b).all(|(x, y)| x <= y)
    }

    /// The deterministic tie-break among transformations of equal utility: lower level sum
    /// first, then lexicographically smaller levels (quasi-identifiers in input column order).
    pub fn tie_key(&self, node: u32) -> (u32, Vec<u8>) {
        (self.level_sum(node), self.levels(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adult_shape() {
        let l = Lattice::new(vec![1, 4, 1, 2, 3, 2, 2, 2, 1]).unwrap();
        assert_eq!(l.size(), 12_960);
        assert_eq!(l.max_level_sum(), 18);
        let top = l.top();
        assert_eq!(l.levels(top), vec![1, 4, 1, 2, 3, 2, 2, 2, 1]);
        assert_eq!(l.node(&l.levels(4321)), 4321);
        assert_eq!(l.successors(0).count(), 9);
        assert_eq!(l.predecessors(top).count(), 9);
        for s in l.successors(4321) {
            assert_eq!(l.level_sum(s), l.level_sum(4321) + 1);
            assert!(Lattice::leq(&l.levels(4321), &l.levels(s)));
        }
    }

    #[test]
    fn too_large_is_refused() {
        let err = Lattice::new(vec![9; 40]).unwrap_err();
        assert!(err.to_string().contains("lattice has"), "{err}");
        assert_eq!(Lattice::new(vec![]).unwrap().size(), 1);
    }
}
