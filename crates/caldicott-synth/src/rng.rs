//! The crate's own deterministic randomness: SplitMix64 and the bijections built from it.
//!
//! Everything here is written out in full, on purpose, rather than taken from `rand`: the
//! output of a synthetic data set must be byte-identical on every machine and with every
//! version of every dependency, and a library RNG's stream may change in a minor release.
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
//! OOPSLA 2014; constants as in Vigna's public-domain `splitmix64.c`) is a few lines, passes
//! BigCrush, and uses only wrapping 64-bit integer arithmetic, so it is portable by
//! construction. It is not cryptographic, and nothing here needs it to be.
//!
//! Changing any constant or any draw order in this crate changes every generated data set.

/// The SplitMix64 increment: 2^64 divided by the golden ratio, made odd.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function (a variant of MurmurHash3's 64-bit finaliser).
///
/// It is a bijection on `u64`: each step (`x ^= x >> s` and multiplication by an odd
/// constant) is invertible. The crate relies on that for unique ids.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting at `seed` (any value is fine, including 0).
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A value in `0..n` by Lemire's multiply-shift (bias below 2^-50 for the small `n`
    /// used here, and, unlike rejection sampling, always exactly one draw). `n` must be > 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u32, hi: u32) -> u32 {
        debug_assert!(lo <= hi);
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// A uniformly chosen element. `items` must not be empty.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A uniformly chosen element, copied out. `items` must not be empty.
    pub(crate) fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        *self.pick(items)
    }

    /// An index chosen with probability proportional to `weights[i]` (total must be > 0).
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// A keyed permutation of `0..domain` for `domain <= 2^20`: a 4-round balanced Feistel
/// network on 20 bits with round function `mix64(half ^ key)`, restricted to the domain by
/// cycle walking (re-applying the permutation until the value falls inside the domain, which
/// yields a permutation of the domain because every cycle through a domain value returns to
/// it).
#[derive(Debug, Clone)]
pub(crate) struct SmallPermutation {
    round_keys: [u64; 4],
    domain: u32,
}

impl SmallPermutation {
    const HALF_BITS: u32 = 10;
    const HALF_MASK: u32 = (1 << Self::HALF_BITS) - 1;

    pub(crate) fn new(key: u64, domain: u32) -> Self {
        assert!(domain > 0 && domain <= 1 << (2 * Self::HALF_BITS));
        let mut keys = SplitMix64::new(key);
        let round_keys = [
            keys.next_u64(),
            keys.next_u64(),
            keys.next_u64(),
            keys.next_u64(),
        ];
        Self { round_keys, domain }
    }

    fn feistel(&self, v: u32) -> u32 {
        let (mut left, mut right) = (v >> Self::HALF_BITS, v & Self::HALF_MASK);
        for key in self.round_keys {
            let f = (mix64(u64::from(right) ^ key) as u32) & Self::HALF_MASK;
            (left, right) = (right, left ^ f);
        }
        (left << Self::HALF_BITS) | right
    }

    /// The image of `x` (which must be below the domain size).
    pub(crate) fn apply(&self, x: u32) -> u32 {
        debug_assert!(x < self.domain);
        let mut v = self.feistel(x);
        while v >= self.domain {
            v = self.feistel(v);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_stream() {
        // First outputs of Vigna's splitmix64.c seeded with 0, computed independently
        // from the reference algorithm (x += gamma; z = x; z = (z ^ z>>30) * c1; ...).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn mix64_is_injective_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u64 {
            assert!(seen.insert(mix64(i)));
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut hits = [0u32; 7];
        for _ in 0..7_000 {
            hits[r.below(7) as usize] += 1;
        }
        assert!(hits.iter().all(|h| (800..1200).contains(h)), "{hits:?}");
        for _ in 0..1_000 {
            let v = r.between(3, 5);
            assert!((3..=5).contains(&v));
        }
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut r = SplitMix64::new(9);
        for _ in 0..1_000 {
            assert_ne!(r.weighted(&[5, 0, 5]), 1);
        }
    }

    #[test]
    fn small_permutation_is_a_bijection() {
        for (key, domain) in [(0u64, 900_000u32), (42, 1 << 20), (7, 1_000), (3, 1)] {
            let p = SmallPermutation::new(key, domain);
            let mut seen = vec![false; domain as usize];
            for x in 0..domain {
                let y = p.apply(x);
                assert!(y < domain);
                assert!(!seen[y as usize], "collision for key {key}");
                seen[y as usize] = true;
            }
        }
    }
}
