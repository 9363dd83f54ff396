//! Lock byte ranges from every rank of an MPI job, with two independent lock services.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/lock_ranges
//! ```
//!
//! Each rank takes an exclusive range that overlaps its neighbours' on the first service
//! (think: file A, table on rank 0) and, while holding it, a shared range on the second
//! (file B, table on the last rank). Then it shows `try_lock` and `lock_timeout`, and shuts
//! both services down, which consumes every wake-up message still in flight.

use std::time::Duration;

use brlock::runtime::{init_logging, Runtime};
use brlock::transport::rma::RmaLock;
use brlock::{ByteRange, LockMode, RangeLock};

fn main() -> Result<(), brlock::Error> {
    let rt = Runtime::init()?;
    init_logging(rt.rank());
    let rank = rt.rank() as u64;

    // Collective: every rank opens both services, in the same order.
    let mut file_a = RmaLock::open(rt.world(), 0)?;
    let mut file_b = RmaLock::open(rt.world(), rt.size() - 1)?;

    // Rank r takes bytes [100 r, 100 r + 150): overlapping its neighbours' ranges.
    let range = ByteRange::at(rank * 100, 150)?;
    let a = file_a.acquire(range, LockMode::Exclusive)?;
    let b = file_b.acquire(ByteRange::at(0, 4096)?, LockMode::Shared)?;
    // ... read B, write A's range ...
    b.unlock()?;
    a.unlock()?;

    // Never blocks: either takes the range at once or reports that it is busy.
    let tried = match file_a.try_acquire(range, LockMode::Exclusive)? {
        Some(guard) => {
            guard.unlock()?;
            "taken"
        }
        None => "busy",
    };
    // Waits at most 10 ms.
    let timed = match file_a.acquire_timeout(range, LockMode::Shared, Duration::from_millis(10))? {
        Some(guard) => {
            guard.unlock()?;
            "taken"
        }
        None => "timed out",
    };

    let stats = file_a.stats();
    let drained_a = file_a.shutdown()?;
    let drained_b = file_b.shutdown()?;
    println!(
        "rank {rank}: locked {range} exclusively on A and [0, 4096) shared on B; \
         try_lock {tried}, lock_timeout {timed}; {} epochs, {} waits; \
         leftover wake-ups: {}",
        stats.epochs,
        stats.waits,
        drained_a.leftover + drained_b.leftover
    );
    Ok(())
}
