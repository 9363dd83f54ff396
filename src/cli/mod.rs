//! The command line: what the user typed ([`Cli`]) and running it ([`run`]).
//!
//! Parsing happens before MPI is initialised, so `--help` and usage errors never start MPI.
//! Each subcommand's run function lives in its own file.

mod bench_append;
mod bench_atomic;
mod bench_lock;
mod bench_sieve;
mod check_atomicity;
mod check_lock;
mod check_noncontig;
mod check_rma;
mod collect;
mod demo;
mod info;
mod lockrun;
pub(crate) mod sysinfo;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// Byte-range locks over MPI one-sided communication.
///
/// Run it under `mpirun` (or `mpiexec`); started directly it runs as a single MPI rank.
#[derive(Debug, Parser)]
#[command(name = "brlock", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the MPI library, standard version, thread level and rank count.
    Info(InfoArgs),
    /// Validate the MPI installation (collective: every rank takes part).
    Check(CheckArgs),
    /// Ranks update overlapping ranges of one file under byte-range locks, then check that
    /// no update was lost (collective; run with `mpirun -n 4`).
    Demo(demo::DemoArgs),
    /// Measure performance (collective: every rank takes part) and print one summary (one
    /// JSON object with --json) on rank 0.
    Bench(BenchArgs),
    /// Run a command on every rank and append its output, line by line, to one shared file
    /// through one-sided communication (collective; `brlock collect --out FILE -- CMD ...`).
    Collect(collect::CollectArgs),
}

/// Options of `brlock info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `brlock check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// What to check.
    #[command(subcommand)]
    pub command: CheckCommand,
}

/// The things `brlock check` can validate.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Exercise one-sided communication (windows, passive-target epochs, put, get,
    /// accumulate, fetch-and-op) across all ranks and report which checks pass.
    Rma(RmaCheckArgs),
    /// Take byte ranges on every rank and verify mutual exclusion, the bypass bound and
    /// wake-up accounting with a checker that does not trust the lock.
    Lock(check_lock::LockCheckArgs),
    /// One rank rewrites a region while the others read it: every read must see one whole
    /// write, and none older than a write released before it began (ROMIO's atomicity test,
    /// plus staleness across client caches).
    Atomicity(check_atomicity::AtomicityCheckArgs),
    /// Every rank writes interleaved ints of one region at the same time through data
    /// sieving (read-modify-write windows): afterwards every int must hold its owner's value
    /// (ROMIO's noncontig test).
    Noncontig(check_noncontig::NoncontigCheckArgs),
}

/// Options of `brlock bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The things `brlock bench` can measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Latency of lock+unlock and throughput, for the one-sided lock service or fcntl locks,
    /// against the raw cost of the transport's epoch pair; exclusion is checked throughout.
    Lock(bench_lock::LockBenchArgs),
    /// Many ranks write small records: one-sided appends to one file, flock per batch, or one
    /// file per record; every record is checked afterwards.
    Append(bench_append::AppendBenchArgs),
    /// Overlapping 4 KiB writes and reads from every rank: atomic mode over the one-sided lock
    /// service, MPI-IO's atomic mode, or no atomicity at all.
    Atomic(bench_atomic::AtomicBenchArgs),
    /// Strided noncontiguous writes: sieved, piece by piece, or through MPI-IO with a file
    /// view; every block is read back and checked.
    Sieve(bench_sieve::SieveBenchArgs),
}

/// Options of `brlock check rma`.
#[derive(Debug, Args)]
pub struct RmaCheckArgs {
    /// Operations per rank in each check.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iters: u64,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Negative control: do the read-modify-write check with the get and the put in two
    /// separate epochs, so that concurrent increments race and updates are lost. Lost updates
    /// are then the expected outcome and do not fail the run.
    #[arg(long)]
    pub unsafe_rmw: bool,
    /// With --unsafe-rmw: microseconds to spin between the read epoch and the write epoch,
    /// widening the race window.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub spin_us: u64,
}

/// Runs a parsed command on every rank of `rt`.
///
/// # Errors
/// Whatever the command reports; an error here may have happened in the middle of a
/// collective operation (see `main`).
pub fn run(rt: &Runtime, command: &Command) -> Result<ExitCode> {
    match command {
        Command::Info(args) => info::run(rt, args),
        Command::Demo(args) => demo::run(rt, args),
        Command::Check(CheckArgs {
            command: CheckCommand::Rma(args),
        }) => check_rma::run(rt, args),
        Command::Check(CheckArgs {
            command: CheckCommand::Lock(args),
        }) => check_lock::run(rt, args),
        Command::Check(CheckArgs {
            command: CheckCommand::Atomicity(args),
        }) => check_atomicity::run(rt, args),
        Command::Check(CheckArgs {
            command: CheckCommand::Noncontig(args),
        }) => check_noncontig::run(rt, args),
        Command::Bench(BenchArgs {
            command: BenchCommand::Lock(args),
        }) => bench_lock::run(rt, args),
        Command::Bench(BenchArgs {
            command: BenchCommand::Append(args),
        }) => bench_append::run(rt, args),
        Command::Bench(BenchArgs {
            command: BenchCommand::Atomic(args),
        }) => bench_atomic::run(rt, args),
        Command::Bench(BenchArgs {
            command: BenchCommand::Sieve(args),
        }) => bench_sieve::run(rt, args),
        Command::Collect(args) => collect::run(rt, args),
    }
}

/// Prints `err` as the one line `brlock: error: ...` on stderr, naming the rank when there
/// are several.
///
/// The line is formatted first and written with one `write`: stderr is unbuffered, and
/// `eprintln!` writes each piece of its format separately, which Open MPI's `--tag-output`
/// then shows as several tagged lines.
pub fn report_error(rt: &Runtime, err: &dyn std::fmt::Display) {
    let line = if rt.size() > 1 {
        format!("brlock: error: rank {}: {err}\n", rt.rank())
    } else {
        format!("brlock: error: {err}\n")
    };
    // Nothing sensible is left to do if stderr itself fails.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// For collective commands: with several ranks, an error reports itself and ends the whole
/// job at once (`MPI_Abort`), because returning would run collective destructors (freeing a
/// window waits for every rank) while other ranks may be waiting for this one in an operation
/// that will never complete. With one rank the error is returned.
///
/// # Errors
/// `result`'s error, with a single rank.
pub fn or_abort<T>(rt: &Runtime, result: Result<T>) -> Result<T> {
    match result {
        Err(err) if rt.size() > 1 => {
            report_error(rt, &err);
            rt.abort(1)
        }
        other => other,
    }
}

/// Writes `text` and a newline to stdout and flushes.
///
/// # Errors
/// [`Error::Io`] if stdout is closed or full.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            op: "write",
            path: "<stdout>".into(),
            source,
        })
}

/// Serialises `value` as one line of JSON on stdout.
///
/// # Errors
/// As [`emit`]; serialisation of our own report types does not fail.
pub fn emit_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise the report: {e}")))?;
    emit(&text)
}

/// The Open MPI one-sided component requested through `OMPI_MCA_osc` (which `mpirun --mca
/// osc X` also sets), if any.
pub fn requested_osc() -> Option<String> {
    std::env::var("OMPI_MCA_osc").ok().filter(|s| !s.is_empty())
}

/// The MPI library's name and version: the first line of its description (MPICH's runs over
/// many lines) up to the first comma, with runs of whitespace made single spaces.
pub fn library_summary(rt: &Runtime) -> String {
    let version = rt.library_version();
    let first = version.lines().next().unwrap_or_default();
    // Open MPI's first line goes on with ", package: ..., ident: ...": keep the name.
    let name = first.split(',').next().unwrap_or_default();
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}
