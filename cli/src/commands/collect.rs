//! `brlock collect`: every rank runs a command and its output goes, line by line, into one
//! shared file through one-sided appends ([`brlock::io::append::collect`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::args::Json;
use crate::output::{emit_json, report, status, write_stderr};
use brlock::io::append::collect::Collect;
use brlock::runtime::Runtime;
use brlock::Result;

/// Options of `brlock collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The shared output file (created if missing; appended to, unless --truncate). Every rank
    /// must reach the same file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Odd ranks use this path for the output file instead: the same file through a second
    /// mount of a distributed file system.
    #[arg(long, value_name = "FILE")]
    alt_out: Option<PathBuf>,
    /// Also record an index, one text line `RANK SEQ OFFSET LENGTH` per output line.
    #[arg(long, value_name = "FILE")]
    index: Option<PathBuf>,
    /// Odd ranks use this path for the index file instead (see --alt-out).
    #[arg(long, value_name = "FILE", requires = "index")]
    alt_index: Option<PathBuf>,
    /// Write the whole output of rank 0 first, then rank 1's, and so on (each rank's output is
    /// spooled locally until every command has ended).
    #[arg(long)]
    ordered: bool,
    /// Append a batch once it holds this many bytes.
    #[arg(long, value_name = "N", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    batch_bytes: u64,
    /// Append a batch once its oldest line is this many milliseconds old.
    #[arg(long, value_name = "T", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    batch_ms: u64,
    /// Directory of the spool files of --ordered (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Empty the output (and index) file first instead of appending after its content.
    #[arg(long)]
    truncate: bool,
    /// Print one JSON summary on rank 0.
    #[command(flatten)]
    output: Json,
    /// Negative control for tests: append without reserving (a racy read-write-advance of the
    /// shared pointer), so that records overwrite each other.
    #[arg(long, hide = true)]
    unsafe_no_reserve: bool,
    /// The command every rank runs, and its arguments; `{rank}` in them is replaced by the
    /// rank. The environment has BRLOCK_RANK and BRLOCK_SIZE.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `collect` on every rank: each rank's errors on it, rank 0's line naming every failed
/// rank, the JSON summary with `--json`, and status 1 on every rank if any failed.
///
/// # Errors
/// Errors that leave the ranks out of step (MPI failures in the end phase).
pub fn run(rt: &Runtime, args: &CollectArgs) -> Result<ExitCode> {
    let collect = Collect {
        out: args.out.clone(),
        alt_out: args.alt_out.clone(),
        index: args.index.clone(),
        alt_index: args.alt_index.clone(),
        ordered: args.ordered,
        batch_bytes: args.batch_bytes,
        batch_age: Duration::from_millis(args.batch_ms),
        spool_dir: args.spool_dir.clone(),
        truncate: args.truncate,
        unsafe_no_reserve: args.unsafe_no_reserve,
        command: args.command.clone(),
        stderr: Arc::new(write_stderr),
    };
    let outcome = collect.open(rt.world())?.run(rt.world())?;
    for e in &outcome.errors {
        report(rt, e);
    }
    if let Some(summary) = &outcome.report {
        if let Some(line) = summary.failure_line(&args.out) {
            write_stderr(format!("brlock: error: {line}\n").as_bytes());
        }
        if args.output.json {
            emit_json(summary)?;
        }
    }
    Ok(status(outcome.passed))
}
