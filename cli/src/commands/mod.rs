//! The command line: what the user typed ([`Cli`]) and running it ([`run`]).
//!
//! Parsing happens before MPI is initialised, so `--help` and usage errors never start MPI.
//! Each subcommand has its file: its options, their translation into the library's
//! configuration (checked before anything collective happens), the call, the printing. No
//! command file uses another's.

mod bench_append;
mod bench_atomic;
mod bench_layout;
mod bench_lock;
mod bench_sieve;
mod check_atomicity;
mod check_lock;
mod check_noncontig;
mod check_rma;
mod collect;
mod demo;
mod info;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use brlock::runtime::Runtime;
use brlock::Result;

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
    Info(info::InfoArgs),
    /// Validate the MPI installation and the locks (collective: every rank takes part).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Ranks update overlapping ranges of one file under byte-range locks, then check that
    /// no update was lost (collective; run with `mpirun -n 4`).
    Demo(demo::DemoArgs),
    /// Measure performance (collective: every rank takes part) and print one summary (one
    /// JSON object with --json) on rank 0.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A task farm: run many tasks on the ranks (or a command once per rank) and append their
    /// output, line by line, to one shared file through one-sided communication, with an index
    /// that is the job's checkpoint (collective; `brlock collect --out FILE --tasks 1-5000 --
    /// CMD {task}`).
    Collect(collect::CollectArgs),
    /// Print the output of a `collect` run as its index vouches for it: every task's output
    /// once, checked (`--by-task`, `--task N`, `--failed`), or the job's state (`--status`).
    /// Needs no MPI.
    CollectCat(collect::CatArgs),
}

/// Runs a command that needs no MPI, or says it needs it (`None`).
///
/// # Errors
/// Whatever the command reports.
pub fn run_local(command: &Command) -> Option<Result<ExitCode>> {
    match command {
        Command::CollectCat(args) => Some(collect::cat(args)),
        Command::Bench(BenchCommand::Layout(args)) => Some(bench_layout::run(args)),
        _ => None,
    }
}

/// The things `brlock check` can validate.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "A check exits with status 1 when it finds what it looks for (a \
    violation, a lost update, a mixed read). The negative controls --backend none and check \
    rma --unsafe-rmw find it on purpose and exit with status 0."
)]
pub enum CheckCommand {
    /// Exercise one-sided communication (windows, passive-target epochs, put, get,
    /// accumulate, fetch-and-op) across all ranks and report which checks pass.
    Rma(check_rma::RmaCheckArgs),
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

/// The things `brlock bench` can measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Latency of lock+unlock and throughput, for the one-sided lock service or fcntl locks,
    /// against the raw cost of the transport's epoch pair; exclusion is checked throughout.
    Lock(bench_lock::LockBenchArgs),
    /// Bytes each lock epoch moves as the job grows, per algorithm (the table layouts), on the
    /// in-process simulation up to thousands of ranks. Needs no MPI.
    Layout(bench_layout::LayoutBenchArgs),
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

/// Runs a parsed command on every rank of `rt`.
///
/// # Errors
/// Whatever the command reports; an error here may have happened in the middle of a
/// collective operation (see `main`).
pub fn run(rt: &Runtime, command: &Command) -> Result<ExitCode> {
    match command {
        Command::Info(args) => info::run(rt, args),
        Command::Demo(args) => demo::run(rt, args),
        Command::Check(CheckCommand::Rma(args)) => check_rma::run(rt, args),
        Command::Check(CheckCommand::Lock(args)) => check_lock::run(rt, args),
        Command::Check(CheckCommand::Atomicity(args)) => check_atomicity::run(rt, args),
        Command::Check(CheckCommand::Noncontig(args)) => check_noncontig::run(rt, args),
        Command::Bench(BenchCommand::Lock(args)) => bench_lock::run(rt, args),
        Command::Bench(BenchCommand::Append(args)) => bench_append::run(rt, args),
        Command::Bench(BenchCommand::Atomic(args)) => bench_atomic::run(rt, args),
        Command::Bench(BenchCommand::Sieve(args)) => bench_sieve::run(rt, args),
        Command::Bench(BenchCommand::Layout(args)) => bench_layout::run(args),
        Command::Collect(args) => collect::run(rt, args),
        Command::CollectCat(args) => collect::cat(args),
    }
}
