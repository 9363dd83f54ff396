//! `brlock check noncontig`: every rank writes interleaved ints of one region at once through
//! data sieving, and every lost update is counted ([`brlock::check::noncontig`]).

use std::process::ExitCode;

use clap::Args;

use crate::args::{choice, to_usize, CheckFile, Json};
use crate::output::exec;
use brlock::check::files::FileBackend;
use brlock::check::noncontig::NoncontigCheck;
use brlock::io::Coherence;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock check noncontig`.
#[derive(Debug, Args)]
pub struct NoncontigCheckArgs {
    #[command(flatten)]
    file: CheckFile,
    /// How the sieved writes reach the file (none: without a lock, the negative control;
    /// mpiio: a strided file view, ROMIO's sieving with `mpirun --mca io romio321`).
    #[arg(long, value_parser = choice::<FileBackend>(), default_value_t = FileBackend::Rma)]
    backend: FileBackend,
    /// Ints each rank writes per iteration (one noncontiguous write).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ints: u64,
    /// Iterations; each writes a region of its own.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=999_999))]
    iters: u64,
    /// Data-sieving write buffer in bytes. Small buffers make one write many windows, and so
    /// many read-modify-write cycles that can interleave with a peer's.
    #[arg(long, value_name = "BYTES", default_value_t = 1126,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    sieve_buffer: u64,
    /// Coherence strategy (default: chosen from the file system type).
    #[arg(long, value_parser = choice::<Coherence>())]
    coherence: Option<Coherence>,
    /// Odd ranks write their ints one by one (plain contiguous writes, no sieving) while even
    /// ranks sieve: a plain write that lands in a peer's window between its read and
    /// write-back must not be erased.
    #[arg(long)]
    plain_odd: bool,
    /// Negative control of --plain-odd (backend rma): plain writes take no lock, so sieved
    /// write-backs erase some of them and the check must fail.
    #[arg(long, hide = true)]
    unsafe_unlocked_plain_writes: bool,
    #[command(flatten)]
    output: Json,
}

/// Runs the check on every rank; rank 0 prints the report.
///
/// # Errors
/// I/O, MPI and lock errors.
pub fn run(rt: &Runtime, args: &NoncontigCheckArgs) -> Result<ExitCode> {
    let check = NoncontigCheck {
        file: args.file.file.clone(),
        alt_file: args.file.alt_file.clone(),
        backend: args.backend,
        ints: args.ints,
        iters: args.iters,
        sieve_buffer: to_usize(args.sieve_buffer),
        coherence: args.coherence,
        plain_odd: args.plain_odd,
        unsafe_unlocked_plain_writes: args.unsafe_unlocked_plain_writes,
    };
    exec(rt, check, args.output.json)
}
