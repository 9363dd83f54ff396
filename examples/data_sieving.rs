//! Data sieving: a noncontiguous write as a read-modify-write of large windows, instead of one
//! write per piece.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/data_sieving /path/to/shared/file
//! ```
//!
//! The ranks interleave 64-byte blocks (rank r owns block r of every 64 B x ranks stride) and
//! each writes its 2048 blocks with one call, twice: sieved (a window is read, patched and
//! written back under an exclusive lock, so a peer's blocks in it survive) and piece by
//! piece. Each rank prints what the two writes cost in I/O calls; after each, rank 0 reads
//! everything back and checks every block.

use mpi::collective::CommunicatorCollectives;

use brlock::io::sieve::SievePolicy;
use brlock::io::{AtomicFile, OpenOptions, ParallelFile, Pieces};
use brlock::runtime::Runtime;

const BLOCK: u64 = 64;
const BLOCKS: u64 = 2048;

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
        .unwrap_or_else(|| "brlock-sieve-example.dat".to_string());
    let (rank, ranks) = (rt.rank() as u64, rt.size() as u64);
    let pieces = Pieces::strided(rank * BLOCK, BLOCK, BLOCK * ranks, BLOCKS)?;
    let mine = vec![b'a' + (rank % 26) as u8; pieces.total_bytes() as usize];

    let mut calls = Vec::new();
    for policy in [SievePolicy::Always, SievePolicy::Never] {
        let mut options = OpenOptions::default();
        options.sieve.write = policy;
        // Collective: every rank opens the file (rank 0 creates it).
        let mut file = AtomicFile::open(world, &path, &options)?;
        if rank == 0 {
            // The whole extent exists before anyone sieves (a window never reads past it).
            file.write_at(0, &vec![0u8; (BLOCK * ranks * BLOCKS) as usize])?;
        }
        file.sync()?;
        world.barrier();
        // Every rank at once: windows of different ranks overlap.
        file.write_pieces(&pieces, &mine)?;
        let stats = file.last_noncontig().copied();
        calls.push(stats.map_or(0, |s| s.io_calls));
        file.sync()?;
        world.barrier();
        if rank == 0 {
            // Block i belongs to rank i % ranks.
            let mut all = vec![0u8; (BLOCK * ranks * BLOCKS) as usize];
            file.read_at(0, &mut all)?;
            let wrong = all
                .chunks(BLOCK as usize)
                .enumerate()
                .filter(|(i, b)| {
                    b.iter()
                        .any(|&x| x != b'a' + ((*i as u64 % ranks) % 26) as u8)
                })
                .count();
            println!(
                "rank 0: written {policy}: {wrong} of {} blocks wrong",
                BLOCKS * ranks
            );
        }
        file.close()?;
    }
    println!(
        "rank {rank}: {BLOCKS} blocks of {BLOCK} B: {} I/O calls sieved, {} piece by piece",
        calls[0], calls[1]
    );
    Ok(())
}
