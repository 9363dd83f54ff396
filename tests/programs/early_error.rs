//! A user's program in which one rank fails inside its own closure while it holds an
//! [`AtomicFile`] and a byte-range lock: the library-level failure test of `tests/failures.rs`.
//!
//! ```sh
//! cargo build --example early_error
//! mpirun -n 4 target/debug/examples/early_error agree /tmp/x.dat
//! ```
//!
//! Every rank opens `FILE` and a lock service, then runs the same closure: take the range
//! `0..4096` exclusively (the ranks queue for it), write this rank's mark, release. On rank 1
//! the closure returns an error while it holds the lock (the guard releases it on the way out).
//! What happens next is the mode:
//!
//! * `agree`: the documented rule. The ranks agree on the closure's outcome
//!   ([`agree_result`]) and then close the file and the lock on every rank; every rank gets
//!   the error (naming rank 1), prints `rank R: error: ...` and exits 1.
//! * `return`: rank 1 returns the error from `main` at once, dropping the file and the lock;
//!   the others go on to `close`, which is collective. The drops do not enter that call, and
//!   the [`Runtime`], finding handles dropped without their collective free, ends the job
//!   with one line: no rank waits forever.
//! * `forget` (negative control): rank 1 leaks the file and the lock with `mem::forget`, so
//!   the library cannot know, and returns normally: its `MPI_Finalize` and the others'
//!   `close` wait for each other forever. The test expects this run to hang (and kills it).

use std::process::ExitCode;

use brlock::collective::agree_result;
use brlock::io::{AtomicFile, OpenOptions, ParallelFile};
use brlock::runtime::Runtime;
use brlock::{ByteRange, Error, LockMode, RangeLock, Result, RmaLock};
use mpi::topology::Communicator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: early_error agree|return|forget FILE");
        return ExitCode::from(2);
    };
    let rt = match Runtime::init() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("early_error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rank = rt.rank();
    match run(&rt, mode, path) {
        Ok(()) => {
            println!("rank {rank}: ok");
            drop(rt);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("rank {rank}: error: {e}");
            if mode == "return" {
                // What a program unaware of the rule does: the `Runtime`'s drop sees the
                // handles dropped without their collective free and ends the job.
                drop(rt);
            } else {
                // Ends the job for an error of this rank alone; finalizes for an agreed one.
                let _ = rt.finish(Err::<(), _>(e));
            }
            ExitCode::FAILURE
        }
    }
}

fn run(rt: &Runtime, mode: &str, path: &str) -> Result<()> {
    let world = rt.world();
    let mut file = AtomicFile::open(world, path, &OpenOptions::default())?;
    file.set_atomicity(true)?;
    let mut lock = RmaLock::open(world, 0)?;
    let worked = work(world.rank(), &mut file, &mut lock);
    match mode {
        "agree" => {
            let worked = agree_result(world, "work", worked);
            let closed = file.close().and_then(|()| lock.close());
            worked.and(closed)
        }
        "return" => {
            // An early return: `file` and `lock` are dropped here on the failing rank.
            worked?;
            file.close()?;
            lock.close()
        }
        "forget" => {
            if worked.is_err() {
                std::mem::forget(file);
                std::mem::forget(lock);
                return Ok(());
            }
            file.close()?;
            lock.close()
        }
        other => Err(Error::InvalidArgument(format!("unknown mode {other}"))),
    }
}

/// The user's closure: lock, write, and on rank 1 fail while holding the lock.
fn work(rank: i32, file: &mut AtomicFile, lock: &mut RmaLock) -> Result<()> {
    let range = ByteRange::new(0, 4096)?;
    let guard = lock.acquire(range, LockMode::Exclusive)?;
    let mark = vec![u8::try_from(rank).unwrap_or(u8::MAX); 4096];
    file.write_at(0, &mark)?;
    if rank == 1 {
        return Err(Error::InvalidArgument(
            "rank 1 fails on purpose inside its closure".into(),
        ));
    }
    guard.unlock()
}
