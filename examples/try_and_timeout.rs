//! Lock calls that do not wait forever: `try_acquire`, which never waits, and
//! `acquire_timeout`, which gives up after a deadline. Giving up leaves nothing held and no
//! other rank waiting because of the request.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/try_and_timeout
//! ```
//!
//! Rank 0 takes bytes [0, 4096) and holds them until every other rank has tried: for them
//! `try_acquire` reports the range busy and `acquire_timeout` times out after 20 ms. Then
//! rank 0 releases, and each of them waits for the range with `acquire`.

use std::time::Duration;

use mpi::collective::CommunicatorCollectives;

use brlock::runtime::Runtime;
use brlock::{ByteRange, LockMode, RangeLock, RmaLock};

fn main() -> Result<(), brlock::Error> {
    let rt = Runtime::init()?;
    // The library logs through `tracing`; show its events on stderr, filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let world = rt.world();
    let mut lock = RmaLock::open(world, 0)?;
    let range = ByteRange::at(0, 4096)?;

    if rt.rank() == 0 {
        let held = lock.acquire(range, LockMode::Exclusive)?;
        world.barrier(); // the others try now
        world.barrier(); // they have tried
        held.unlock()?;
        println!("rank 0: held {range} while the others tried, then released it");
    } else {
        world.barrier();
        let tried = match lock.try_acquire(range, LockMode::Shared)? {
            Some(guard) => {
                guard.unlock()?;
                "taken"
            }
            None => "busy",
        };
        let timed =
            match lock.acquire_timeout(range, LockMode::Shared, Duration::from_millis(20))? {
                Some(guard) => {
                    guard.unlock()?;
                    "taken"
                }
                None => "timed out",
            };
        world.barrier();
        // Now it waits for as long as it takes (rank 0 releases right after the barrier).
        let guard = lock.acquire(range, LockMode::Shared)?;
        guard.unlock()?;
        println!(
            "rank {}: try_acquire {tried}, acquire_timeout {timed}, acquire granted",
            rt.rank()
        );
    }
    let drained = lock.shutdown()?;
    println!(
        "rank {}: leftover wake-ups: {}",
        rt.rank(),
        drained.leftover
    );
    Ok(())
}
