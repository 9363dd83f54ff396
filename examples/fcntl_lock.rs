//! One trait, two kinds of lock: the same read-modify-write code under the MPI one-sided lock
//! service and under the kernel's fcntl record locks (Linux open-file-description locks).
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/fcntl_lock /path/to/shared/counter
//! ```
//!
//! Every rank adds 1 to an 8-byte counter in the file, 100 times, each time under an
//! exclusive lock of the counter's bytes: first with [`RmaLock`], then with [`FcntlLock`] (on
//! a distributed file system, every fcntl lock is a round trip to its lock manager). Rank 0
//! prints the counter after each: `100 x ranks` each time, or an update was lost.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use mpi::collective::CommunicatorCollectives;

use brlock::runtime::Runtime;
use brlock::{ByteRange, FcntlKind, FcntlLock, LockMode, RangeLock, RmaLock};

const ROUNDS: u64 = 100;

/// Adds 1 to the counter at offset 0 of `file`, `ROUNDS` times, under `lock`: the same code
/// for any lock.
fn count(lock: &mut impl RangeLock, file: &File) -> Result<(), brlock::Error> {
    let range = ByteRange::at(0, 8)?;
    let io = |e| brlock::Error::Io {
        op: "read or write the counter",
        path: "(the example's file)".into(),
        source: e,
    };
    for _ in 0..ROUNDS {
        let guard = lock.acquire(range, LockMode::Exclusive)?;
        let mut bytes = [0u8; 8];
        file.read_exact_at(&mut bytes, 0).map_err(io)?;
        let next = u64::from_le_bytes(bytes) + 1;
        file.write_all_at(&next.to_le_bytes(), 0).map_err(io)?;
        guard.unlock()?;
    }
    Ok(())
}

fn main() -> Result<(), brlock::Error> {
    let rt = Runtime::init()?;
    // The library logs through `tracing`; show its events on stderr, filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let world = rt.world();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "brlock-fcntl-example.dat".to_string());
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };
    if rt.rank() == 0 {
        std::fs::write(&path, 0u64.to_le_bytes()).map_err(|source| brlock::Error::Io {
            op: "create",
            path: path.clone(),
            source,
        })?;
    }
    world.barrier();
    let file = open().map_err(|source| brlock::Error::Io {
        op: "open",
        path: path.clone(),
        source,
    })?;
    let read = |file: &File| -> Result<u64, brlock::Error> {
        let mut bytes = [0u8; 8];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|source| brlock::Error::Io {
                op: "read",
                path: path.clone(),
                source,
            })?;
        Ok(u64::from_le_bytes(bytes))
    };

    // The one-sided lock service (collective to open and to shut down).
    let mut rma = RmaLock::open(world, 0)?;
    count(&mut rma, &file)?;
    rma.shutdown()?;
    world.barrier();
    if rt.rank() == 0 {
        println!(
            "rank 0: after the one-sided lock the counter is {}",
            read(&file)?
        );
    }

    // The kernel's locks, through a descriptor of its own (one per rank, like a process).
    let mut ofd = FcntlLock::open(&path, FcntlKind::Ofd)?;
    count(&mut ofd, &file)?;
    world.barrier();
    if rt.rank() == 0 {
        println!(
            "rank 0: after the {} the counter is {} ({} expected)",
            ofd.kind(),
            read(&file)?,
            2 * ROUNDS * rt.size() as u64
        );
    }
    Ok(())
}
