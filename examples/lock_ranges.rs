//! Lock byte ranges from every rank of an MPI job, with two independent lock services.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/lock_ranges
//! ```
//!
//! Each rank takes an exclusive range that overlaps its neighbours' on the first service
//! (think: file A, table on rank 0) and, while holding it, a shared range on the second
//! (file B, table on the last rank). Then it shuts both services down, which consumes every
//! wake-up message still in flight. `try_and_timeout.rs` shows the calls that do not wait.

use brlock::runtime::Runtime;
use brlock::{ByteRange, LockMode, RangeLock, RmaLock};

fn main() -> Result<(), brlock::Error> {
    let rt = Runtime::init()?;
    // The library logs through `tracing`; show its events on stderr, filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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

    let stats = file_a.stats();
    // Collective: what is still addressed to this rank is consumed, and must be 0 after.
    let drained_a = file_a.shutdown()?;
    let drained_b = file_b.shutdown()?;
    println!(
        "rank {rank}: locked {range} exclusively on A and [0, 4096) shared on B; \
         {} epochs, {} waits; leftover wake-ups: {}",
        stats.epochs,
        stats.waits,
        drained_a.leftover + drained_b.leftover
    );
    Ok(())
}
