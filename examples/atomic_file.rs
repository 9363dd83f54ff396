//! Atomic mode and a noncontiguous access on one shared file.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/atomic_file /path/to/shared/file
//! ```
//!
//! Every rank writes a 4 KiB block that overlaps its neighbours' in atomic mode (each write
//! is all-or-nothing for every other rank), then reads every other 8-byte word of the region
//! with one noncontiguous read (one shared lock on its extent, data sieving underneath), and
//! prints which ranks' blocks it saw. Run it with the file on a distributed file system and
//! ranks on several nodes: the coherence work is chosen from the file system type.

use mpi::collective::CommunicatorCollectives;

use brlock::io::{AtomicFile, OpenOptions, ParallelFile, Pieces};
use brlock::runtime::Runtime;

fn main() -> Result<(), brlock::Error> {
    let rt = Runtime::init()?;
    // The library logs through `tracing`; show its events on stderr, filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "brlock-atomic-example.dat".to_string());
    let rank = rt.rank() as u64;
    let ranks = rt.size() as u64;

    // Collective: every rank opens the file (rank 0 creates it) and agrees on atomic mode.
    let mut file = AtomicFile::open(rt.world(), &path, &OpenOptions::default())?;
    file.set_atomicity(true)?;

    // Rank r writes bytes [2048 r, 2048 r + 4096): half of it overlaps rank r + 1's block.
    let block = vec![b'a' + (rank % 26) as u8; 4096];
    file.write_at(2048 * rank, &block)?;
    rt.world().barrier();

    // Every other 8-byte word of the whole region, in one call and under one lock.
    let region = 2048 * (ranks + 1);
    let pieces = Pieces::strided(0, 8, 16, region / 16)?;
    let mut words = vec![0u8; pieces.total_bytes() as usize];
    file.read_pieces(&pieces, &mut words)?;
    let mut seen: Vec<char> = words.iter().map(|&b| b as char).collect();
    seen.dedup();

    println!(
        "rank {rank}: wrote [{}, {}) atomically on {} (coherence {}); the region now holds \
         blocks {}",
        2048 * rank,
        2048 * rank + 4096,
        file.fs_type(),
        file.coherence(),
        seen.into_iter().collect::<String>()
    );
    file.close()
}
