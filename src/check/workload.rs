//! Request streams for checks and benchmarks: which ranges and modes each rank asks for.
//!
//! The byte space is divided into cells of [`CELL_BYTES`]; requests cover whole cells so that
//! a checker can stamp one word per cell.

use crate::choice::choice;
use crate::range::{ByteRange, LockMode};

/// Bytes per cell.
pub const CELL_BYTES: u64 = 4096;

choice! {
    /// Which ranges the ranks ask for.
    pub enum Pattern {
        /// Each rank its own two cells: no conflicts, measures the uncontended path.
        Disjoint = "disjoint",
        /// Every rank the same four cells: maximal contention.
        Same = "same",
        /// Random runs of 1 to 8 cells anywhere: partial overlaps.
        Random = "random",
    }
}

choice! {
    /// Which modes the ranks ask for.
    pub enum ModeMix {
        /// Every request exclusive.
        Exclusive = "exclusive",
        /// Every request shared.
        Shared = "shared",
        /// Each request exclusive or shared with equal probability.
        Mixed = "mixed",
    }
}

/// A small, seedable pseudo-random generator (xorshift64*); good enough to vary workloads
/// reproducibly, not for anything else.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `rank` under `seed`: different ranks get unrelated streams.
    pub fn new(seed: u64, rank: usize) -> Rng {
        let mut s = seed ^ (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Scramble once so that nearby seeds diverge; the state must never be 0.
        s = (s ^ (s >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        Rng(s)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A stream of requests for one rank.
#[derive(Debug, Clone)]
pub struct Workload {
    pattern: Pattern,
    modes: ModeMix,
    rank: usize,
    cells: u64,
    rng: Rng,
}

impl Workload {
    /// The stream of `rank` among `ranks` ranks.
    pub fn new(pattern: Pattern, modes: ModeMix, rank: usize, ranks: usize, seed: u64) -> Self {
        Workload {
            pattern,
            modes,
            rank,
            cells: Self::cells_for(ranks),
            rng: Rng::new(seed, rank),
        }
    }

    /// How many cells the byte space has for `ranks` ranks.
    pub fn cells_for(ranks: usize) -> u64 {
        64.max(2 * ranks as u64)
    }

    /// Number of cells of the byte space.
    pub fn cells(&self) -> u64 {
        self.cells
    }

    /// The generator, for callers that need more randomness from the same stream.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The next request: its first cell, number of cells, and mode.
    pub fn next_cells(&mut self) -> (u64, u64, LockMode) {
        let (first, count) = match self.pattern {
            Pattern::Disjoint => (2 * self.rank as u64, 2),
            Pattern::Same => (0, 4),
            Pattern::Random => {
                let first = self.rng.below(self.cells);
                let count = 1 + self.rng.below(8);
                (first, count.min(self.cells - first))
            }
        };
        let mode = match self.modes {
            ModeMix::Exclusive => LockMode::Exclusive,
            ModeMix::Shared => LockMode::Shared,
            ModeMix::Mixed if self.rng.below(2) == 0 => LockMode::Exclusive,
            ModeMix::Mixed => LockMode::Shared,
        };
        (first, count, mode)
    }

    /// The byte range of `count` cells from `first`.
    pub fn range(first: u64, count: u64) -> ByteRange {
        ByteRange::at(first * CELL_BYTES, count * CELL_BYTES)
            .unwrap_or_else(|_| unreachable!("cell ranges are small and non-empty"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_in_the_byte_space() {
        for pattern in [Pattern::Disjoint, Pattern::Same, Pattern::Random] {
            for rank in 0..8 {
                let mut w = Workload::new(pattern, ModeMix::Mixed, rank, 8, 7);
                for _ in 0..1000 {
                    let (first, count, _) = w.next_cells();
                    assert!(count >= 1 && first + count <= w.cells());
                }
            }
        }
    }

    #[test]
    fn disjoint_ranks_do_not_overlap() {
        let a = Workload::new(Pattern::Disjoint, ModeMix::Exclusive, 0, 4, 1).next_cells();
        let b = Workload::new(Pattern::Disjoint, ModeMix::Exclusive, 1, 4, 1).next_cells();
        assert!(!Workload::range(a.0, a.1).overlaps(&Workload::range(b.0, b.1)));
    }
}
