//! [`AtomicFile::read_pieces_available`] under `mpirun`: a read stops at the end of the file
//! the way an MPI read does, and in atomic mode sees the size writers on other clients left
//! (run by `tests/read_available.rs`).
//!
//! ```sh
//! cargo build --example read_available
//! mpirun -n 2 target/debug/examples/read_available atomic /mnt/a/f.dat /mnt/b/f.dat
//! ```
//!
//! Rank `r` opens `FILE_A` if `r` is even and `FILE_B` if odd (the same file through two
//! clients), then: rank 0 writes 10 bytes; every rank reads the pieces `0..4, 8..12, 20..24`
//! and must get 6 bytes (4, then 2 cut at the end of the file, then nothing: the stream stops
//! at the first byte past the end) with the rest of its buffer untouched; rank 1 grows the
//! file to 30 bytes; every rank reads again and must get all 12. Prints `rank R: read N
//! then M bytes` and exits 0 only if every rank saw the right bytes.
//!
//! No rank syncs: in atomic mode a barrier between a write and a read is enough. `plain`
//! does the same outside atomic mode, where nothing refreshes a client's idea of the file:
//! the negative control (through two GlusterFS clients a read comes back short or stale,
//! from what the client cached).

use std::process::ExitCode;

use brlock::io::{AtomicFile, OpenOptions, ParallelFile};
use brlock::runtime::Runtime;
use brlock::{Pieces, Result};
use mpi::collective::CommunicatorCollectives;
use mpi::topology::Communicator;

/// Byte value of a buffer's bytes a read must leave alone.
const UNTOUCHED: u8 = 0xEE;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(a), Some(b)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: read_available atomic|plain FILE_A FILE_B");
        return ExitCode::from(2);
    };
    let rt = match Runtime::init() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("read_available: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = if rt.rank() % 2 == 0 { a } else { b };
    let outcome = run(&rt, mode == "atomic", path);
    let ok_here = i32::from(matches!(outcome, Ok(true)));
    let mut ok_all = 0;
    rt.world().all_reduce_into(
        &ok_here,
        &mut ok_all,
        mpi::collective::SystemOperation::min(),
    );
    if let Err(e) = outcome {
        println!("rank {}: error: {e}", rt.rank());
    }
    if ok_all == 1 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether both reads of this rank returned the expected bytes.
fn run(rt: &Runtime, atomic: bool, path: &str) -> Result<bool> {
    let world = rt.world();
    let rank = world.rank();
    let mut file = AtomicFile::open(world, path, &OpenOptions::default())?;
    file.set_atomicity(atomic)?;
    let first: Vec<u8> = (1..=10).collect();
    let grown: Vec<u8> = (0..30).map(|i| 0x40 + i).collect();
    if rank == 0 {
        file.write_at(0, &first)?;
    }
    // Atomic mode needs no sync between a write and another rank's read: a barrier orders
    // them (MPI 3.1 §13.6.1). Outside atomic mode MPI would ask for sync, barrier, sync; the
    // control leaves the syncs out too, so it shows what atomic mode adds.
    world.barrier();
    let pieces = Pieces::new([(0, 4), (8, 4), (20, 4)])?;
    let mut buf = vec![UNTOUCHED; 12];
    let n1 = file.read_pieces_available(&pieces, &mut buf)?;
    let mut ok =
        n1 == 6 && buf[..6] == [1, 2, 3, 4, 9, 10] && buf[6..].iter().all(|&b| b == UNTOUCHED);
    world.barrier();
    if rank == 1 {
        file.write_at(0, &grown)?;
    }
    world.barrier();
    let mut buf = vec![UNTOUCHED; 12];
    let n2 = file.read_pieces_available(&pieces, &mut buf)?;
    let want: Vec<u8> = [0..4, 8..12, 20..24]
        .into_iter()
        .flat_map(|r| grown[r].to_vec())
        .collect();
    ok &= n2 == 12 && buf == want;
    println!(
        "rank {rank}: read {n1} then {n2} bytes on {}",
        file.fs_type()
    );
    world.barrier();
    file.close()?;
    Ok(ok)
}
