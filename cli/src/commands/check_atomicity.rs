//! `brlock check atomicity`: one rank rewrites a region while the others read it, and every
//! read is judged ([`brlock::check::atomicity`]).

use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, to_usize, CheckFile, Json};
use crate::output::exec;
use brlock::check::atomicity::AtomicityCheck;
use brlock::check::files::FileBackend;
use brlock::io::Coherence;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock check atomicity`.
#[derive(Debug, Args)]
pub struct AtomicityCheckArgs {
    #[command(flatten)]
    file: CheckFile,
    /// How the file is accessed.
    #[arg(long, value_parser = choice::<FileBackend>(), default_value_t = FileBackend::Rma)]
    backend: FileBackend,
    /// Access every other int of the region (noncontiguous reads and writes).
    #[arg(long)]
    noncontig: bool,
    /// Grow the file instead: each write appends a block past the previous end, and each read
    /// reads the newest released block, past the end the reader's client last saw (the
    /// stale-size hazard of client caches). Counts short reads.
    #[arg(long, conflicts_with = "noncontig")]
    grow: bool,
    /// Writes of rank 0, and reads of every other rank.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    iters: u64,
    /// Ints in one access.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    ints: u64,
    /// Coherence strategy of --backend rma (default: chosen from the file system type).
    #[arg(long, value_parser = choice::<Coherence>())]
    coherence: Option<Coherence>,
    /// Data-sieving buffer (read and write) of --backend rma and none, in bytes. Small
    /// buffers (ROMIO's test uses about 1.1 KiB) make one noncontiguous access many windows.
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    sieve_buffer: Option<u64>,
    #[command(flatten)]
    output: Json,
}

/// Runs the check on every rank; rank 0 prints the report.
///
/// # Errors
/// I/O, MPI and lock errors.
pub fn run(rt: &Runtime, args: &AtomicityCheckArgs) -> Result<ExitCode> {
    let check = AtomicityCheck {
        file: args.file.file.clone(),
        alt_file: args.file.alt_file.clone(),
        backend: args.backend,
        noncontig: args.noncontig,
        grow: args.grow,
        iters: args.iters,
        ints: args.ints,
        coherence: args.coherence,
        sieve_buffer: args.sieve_buffer.map(to_usize),
    };
    exec(rt, check, args.output.json)
}
