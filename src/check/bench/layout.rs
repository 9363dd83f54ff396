//! `brlock bench layout`: what one epoch costs in bytes as the job grows, for each algorithm's
//! table layout, measured on the in-process simulation (feature `testing`), so that P can go
//! to thousands of ranks on one machine.
//!
//! For each P, one rank of a simulated world of P ranks takes and releases a range nobody
//! else wants, `iters` times; the client's own counters give the words
//! moved between it and the table window per acquire and per lock+unlock
//! ([`Stats::words`](crate::protocol::Stats::words)). The 2005 layout
//! reads every other rank's slot in every epoch, `8 (1 + 4 P)` bytes; the handoff
//! algorithm's request list reads the live requests only (`docs/protocol.md`, "Layout").

use std::fmt;

use crate::error::{Error, Result};
use crate::lock::RangeLock;
use crate::protocol::{Algorithm, LockClient};
use crate::range::{ByteRange, LockMode};
use crate::transport::sim;

/// The largest simulated world this benchmark builds.
pub const MAX_RANKS: usize = 1 << 16;

/// Settings of the layout benchmark.
#[derive(Debug, Clone)]
pub struct LayoutBench {
    /// World sizes to measure.
    pub ranks: Vec<usize>,
    /// Uncontended lock+unlock pairs per world size and algorithm.
    pub iters: u64,
}

/// One world size and algorithm.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LayoutRow {
    /// The algorithm (and so the layout).
    pub algorithm: Algorithm,
    /// Ranks of the simulated world.
    pub ranks: usize,
    /// Bytes moved per uncontended acquire.
    pub bytes_per_acquire: f64,
    /// Bytes moved per uncontended lock+unlock.
    pub bytes_per_lock_unlock: f64,
    /// Epochs per uncontended lock+unlock.
    pub epochs_per_lock_unlock: f64,
}

/// What the layout benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayoutReport {
    /// The benchmark's name, `"layout"`.
    pub bench: &'static str,
    /// Where it ran: always the simulation (no MPI), so the figures are the layouts' own.
    pub transport: &'static str,
    /// Lock+unlock pairs per row.
    pub iters: u64,
    /// One row per algorithm and world size, by algorithm then size.
    pub rows: Vec<LayoutRow>,
    /// Per algorithm: bytes per acquire at the largest size over that at the smallest.
    pub growth: Vec<(Algorithm, f64)>,
}

impl LayoutBench {
    /// Measures every size for both algorithms.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no sizes, a size of 0 or above [`MAX_RANKS`], or 0
    /// iterations; lock errors of the simulation (none expected).
    pub fn run(&self) -> Result<LayoutReport> {
        if self.ranks.is_empty() || self.iters == 0 {
            return Err(Error::InvalidArgument(
                "bench layout needs at least one world size and one iteration".into(),
            ));
        }
        if let Some(&p) = self.ranks.iter().find(|&&p| p == 0 || p > MAX_RANKS) {
            return Err(Error::InvalidArgument(format!(
                "world size {p} is not in 1..={MAX_RANKS}"
            )));
        }
        let mut rows = Vec::new();
        let mut growth = Vec::new();
        for algorithm in [Algorithm::Tr2005, Algorithm::Handoff] {
            let first = rows.len();
            for &ranks in &self.ranks {
                rows.push(measure(algorithm, ranks, self.iters)?);
            }
            let (a, b) = (&rows[first], &rows[rows.len() - 1]);
            growth.push((
                algorithm,
                b.bytes_per_acquire / a.bytes_per_acquire.max(1.0),
            ));
        }
        Ok(LayoutReport {
            bench: "layout",
            transport: "simulation",
            iters: self.iters,
            rows,
            growth,
        })
    }
}

fn measure(algorithm: Algorithm, ranks: usize, iters: u64) -> Result<LayoutRow> {
    let mut world = sim::world(ranks);
    let transport = world.swap_remove(0);
    drop(world);
    let mut client = LockClient::new(transport).with_algorithm(algorithm);
    let range = ByteRange::new(0, 4096)?;
    let mut acquire = 0;
    let before = client.stats();
    for _ in 0..iters {
        let start = client.stats().words;
        client.lock(range, LockMode::Exclusive)?;
        acquire += client.stats().words - start;
        client.unlock()?;
    }
    let after = client.stats();
    let per = |x: u64| x as f64 / iters as f64;
    Ok(LayoutRow {
        algorithm,
        ranks,
        bytes_per_acquire: 8.0 * per(acquire),
        bytes_per_lock_unlock: 8.0 * per(after.words - before.words),
        epochs_per_lock_unlock: per(after.epochs - before.epochs),
    })
}

impl fmt::Display for LayoutReport {
    /// One line per row, then the growth.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bench layout (simulation, {} uncontended lock+unlock per row):",
            self.iters
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:<8} P = {:>6}: {:>9.0} bytes per acquire, {:>9.0} per lock+unlock, \
                 {:.2} epochs",
                r.algorithm.to_string(),
                r.ranks,
                r.bytes_per_acquire,
                r.bytes_per_lock_unlock,
                r.epochs_per_lock_unlock
            )?;
        }
        let growth: Vec<String> = self
            .growth
            .iter()
            .map(|(a, g)| format!("{a} {g:.1}x"))
            .collect();
        write!(
            f,
            "  bytes per acquire, largest P over smallest: {}",
            growth.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_list_is_flat_and_the_slot_table_grows_with_p() {
        let report = LayoutBench {
            ranks: vec![16, 4096],
            iters: 3,
        }
        .run()
        .unwrap();
        let row = |a, p| {
            *report
                .rows
                .iter()
                .find(|r| r.algorithm == a && r.ranks == p)
                .unwrap()
        };
        // Uncontended, the list moves the same bytes at any P: nothing else is live.
        let (h16, h4096) = (row(Algorithm::Handoff, 16), row(Algorithm::Handoff, 4096));
        assert_eq!(h16.bytes_per_acquire, h4096.bytes_per_acquire);
        assert_eq!(h16.epochs_per_lock_unlock, 2.0);
        // The slot table: the own slot written, the others read, the ticket.
        let t = row(Algorithm::Tr2005, 4096);
        assert_eq!(t.bytes_per_acquire, 8.0 * (4.0 * 4096.0 + 1.0));
        assert!(t.bytes_per_acquire > 100.0 * h4096.bytes_per_acquire);
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |ranks: Vec<usize>, iters| LayoutBench { ranks, iters }.run().is_err();
        assert!(bad(vec![], 1));
        assert!(bad(vec![0], 1));
        assert!(bad(vec![4], 0));
        assert!(bad(vec![MAX_RANKS + 1], 1));
    }
}
