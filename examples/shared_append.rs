//! Many ranks append records to one file through a shared file pointer in an MPI window.
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 4 target/debug/examples/shared_append /path/to/shared/log.txt
//! ```
//!
//! Each rank appends three lines independently (each is one atomic fetch-and-add plus one
//! positional write: lines never interleave, no file lock), then one line per rank in rank
//! order with a collective ordered append (a prefix sum, not a token passed along the ranks),
//! and closes the file, which makes everything durable.

use brlock::io::append::{AppendFile, AppendOptions};
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
        .unwrap_or_else(|| "brlock-append-example.txt".to_string());
    let rank = rt.rank();
    let options = AppendOptions::truncating(true);

    // Collective: rank 0 creates (and here empties) the file; the pointer starts at its end.
    let mut log = AppendFile::open(rt.world(), path.as_ref(), &options)?;
    for i in 0..3 {
        let at = log.append(format!("rank {rank}: record {i}\n").as_bytes())?;
        tracing::debug!(offset = at, "appended");
    }
    // Collective: rank 0's line, then rank 1's, ... in one block after everything above.
    log.append_ordered(format!("rank {rank}: in rank order\n").as_bytes())?;
    let end = log.close()?;
    if rank == 0 {
        println!(
            "{} ranks appended to {path}; it is {end} bytes long",
            rt.size()
        );
    }
    Ok(())
}
