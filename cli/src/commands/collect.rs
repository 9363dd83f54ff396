//! `brlock collect`: a task farm whose output goes, line by line, into one shared file through
//! one-sided appends, with an index that is the job's checkpoint; and `brlock collect-cat`,
//! which prints what the index vouches for ([`brlock::io::append::collect`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::args::{choice, Json};
use crate::output::{emit, emit_json, report, status, write_stderr};
use brlock::io::append::collect::cat::Cat;
use brlock::io::append::collect::{Aggregate, Collect, Resume, Schedule, TaskSet};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// Options of `brlock collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The shared output file (created if missing; appended to, unless --truncate). Every rank
    /// must reach the same file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Odd ranks use this path for the output file instead: the same file through a second
    /// mount of a distributed file system (refused if it is another file).
    #[arg(long, value_name = "FILE")]
    alt_out: Option<PathBuf>,
    /// The index: where every attempt's output is and how it ended; the checkpoint of
    /// --resume. Default with --tasks or --task-file: OUT.idx.
    #[arg(long, value_name = "FILE")]
    index: Option<PathBuf>,
    /// Odd ranks use this path for the index instead (see --alt-out).
    #[arg(long, value_name = "FILE")]
    alt_index: Option<PathBuf>,
    /// The tasks: numbers and ranges, e.g. `1-5000,7000`. `{task}` in the command is the
    /// number. Without --tasks or --task-file, every rank runs the command once.
    #[arg(long, value_name = "RANGES", conflicts_with = "task_file")]
    tasks: Option<String>,
    /// The tasks: one per non-empty line of FILE. `{line}` in the command is the line (else
    /// its words are appended as arguments; without a command each line runs as `sh -c`).
    #[arg(long, value_name = "FILE")]
    task_file: Option<PathBuf>,
    /// How tasks are handed to ranks.
    #[arg(long, value_parser = choice::<Schedule>(), default_value_t = Schedule::Dynamic)]
    schedule: Schedule,
    /// Tasks a rank takes at a time with --schedule dynamic.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    chunk: u64,
    /// Tasks a rank runs at the same time.
    #[arg(long, value_name = "J", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: u64,
    /// Continue the run the index records: run exactly the tasks without a finished attempt.
    #[arg(long, conflicts_with = "resume_failed")]
    resume: bool,
    /// Like --resume, and also run again the tasks whose attempts all failed.
    #[arg(long)]
    resume_failed: bool,
    /// With --resume: continue even if the index was written for other tasks or another
    /// command.
    #[arg(long)]
    force: bool,
    /// Run a failed attempt again, at most this many times.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    retries: u32,
    /// Prefix every output line with its task and a tab.
    #[arg(long)]
    tag: bool,
    /// The tasks' stderr goes to this file (with extents in the index) instead of to this
    /// command's stderr with a `[task T rank R]` prefix.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// Odd ranks use this path for the error file instead (see --alt-out).
    #[arg(long, value_name = "FILE", requires = "errors")]
    alt_errors: Option<PathBuf>,
    /// Print a progress line on rank 0 (the default when stderr is a terminal).
    #[arg(long)]
    progress: bool,
    /// Ranks on a node funnel their batches to one writer, which writes large extents.
    #[arg(long, value_parser = choice::<Aggregate>(), default_value_t = Aggregate::Auto)]
    aggregate: Aggregate,
    /// One task per rank only: write the whole output of rank 0 first, then rank 1's, and so
    /// on (each rank's output is spooled locally until every command has ended).
    #[arg(long)]
    ordered: bool,
    /// Commit a batch once it holds this many bytes.
    #[arg(long, value_name = "N", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    batch_bytes: u64,
    /// Commit a batch once its oldest line is this many milliseconds old.
    #[arg(long, value_name = "T", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    batch_ms: u64,
    /// Directory of the spool files of --ordered (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Empty the output, index and error files first: a new run.
    #[arg(long)]
    truncate: bool,
    /// Print one JSON summary on rank 0.
    #[command(flatten)]
    output: Json,
    /// Negative control for tests: append without reserving (a racy read-write-advance of the
    /// shared pointer), so that records overwrite each other.
    #[arg(long, hide = true)]
    unsafe_no_reserve: bool,
    /// Negative control for tests: rank 1 dies right after its Nth reservation on the output
    /// file, leaving a reserved hole.
    #[arg(long, hide = true, value_name = "N")]
    unsafe_die_after_reserve: Option<u64>,
    /// The command and its arguments; `{task}`, `{attempt}`, `{rank}` and `{line}` in them
    /// are replaced. The environment has BRLOCK_RANK, BRLOCK_SIZE, BRLOCK_TASK and
    /// BRLOCK_ATTEMPT.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `collect` on every rank; rank 0 prints the summary and the failure line.
///
/// # Errors
/// Agreed errors of opening or closing the files.
pub fn run(rt: &Runtime, args: &CollectArgs) -> Result<ExitCode> {
    let tasks = match (&args.tasks, &args.task_file) {
        (Some(spec), _) => TaskSet::ranges(spec).map(Some),
        (None, Some(file)) => TaskSet::file(file).map(Some),
        (None, None) => Ok(None),
    };
    let tasks = match tasks {
        Ok(t) => t,
        Err(e) => {
            if rt.rank() == 0 {
                write_stderr(format!("brlock: error: {e}\n").as_bytes());
            }
            return Ok(ExitCode::from(2));
        }
    };
    let stop = brlock::sys::catch_stop_signals().map_err(|source| Error::Io {
        op: "catch",
        path: "SIGINT/SIGTERM".into(),
        source,
    })?;
    let show_progress = rt.rank() == 0 && (args.progress || std::io::stderr().is_terminal());
    let collect = Collect {
        alt_out: args.alt_out.clone(),
        index: args.index.clone(),
        alt_index: args.alt_index.clone(),
        errors: args.errors.clone(),
        alt_errors: args.alt_errors.clone(),
        tasks,
        schedule: args.schedule,
        chunk: args.chunk,
        jobs: usize::try_from(args.jobs).unwrap_or(1),
        resume: if args.resume_failed {
            Resume::Failed
        } else if args.resume {
            Resume::Unfinished
        } else {
            Resume::No
        },
        force: args.force,
        retries: args.retries,
        tag: args.tag,
        ordered: args.ordered,
        aggregate: args.aggregate,
        batch_bytes: args.batch_bytes,
        batch_age: Duration::from_millis(args.batch_ms),
        spool_dir: args.spool_dir.clone(),
        truncate: args.truncate,
        unsafe_no_reserve: args.unsafe_no_reserve,
        unsafe_die_after_reserve: args.unsafe_die_after_reserve,
        stderr: Arc::new(write_stderr),
        stop: Some(stop),
        progress: show_progress.then(|| {
            Arc::new(|p: &brlock::io::append::collect::Progress| {
                write_stderr(format!("{p}\n").as_bytes());
            }) as brlock::io::append::collect::ProgressSink
        }),
        ..Collect::new(args.out.clone(), args.command.clone())
    };
    // Settings that do not fit together are a usage error, the same on every rank.
    if let Err(e) = collect.validate() {
        if rt.rank() == 0 {
            write_stderr(format!("brlock: error: {e}\n").as_bytes());
        }
        return Ok(ExitCode::from(2));
    }
    let outcome = collect.open(rt.world())?.run(rt.world())?;
    for e in &outcome.errors {
        report(rt, e);
    }
    let mut stopped = None;
    if let Some(summary) = &outcome.report {
        stopped = summary.stopped_by;
        if let Some(line) = summary.failure_line(&args.out) {
            write_stderr(format!("brlock: error: {line}\n").as_bytes());
        }
        if args.output.json {
            emit_json(summary)?;
        }
    }
    // Every rank knows whether a signal stopped the run (it is agreed in the summary's
    // reduction); rank 0 has the number. 128 + signal, as a shell reports it.
    if let Some(signal) = stopped.or_else(|| {
        let s = stop.load(std::sync::atomic::Ordering::SeqCst);
        (s != 0).then_some(s)
    }) {
        return Ok(ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)));
    }
    Ok(status(outcome.passed))
}

/// Options of `brlock collect-cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The output file of the `collect` run.
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// Its index (default: OUT.idx).
    #[arg(long, value_name = "FILE")]
    index: Option<PathBuf>,
    /// Its error file, for --stderr.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// Print the tasks' stderr (from the error file) instead of their output.
    #[arg(long, requires = "errors")]
    stderr: bool,
    /// In task order instead of the order the output was written in.
    #[arg(long)]
    by_task: bool,
    /// Only this task (its number, as `{task}` was).
    #[arg(long, value_name = "N")]
    task: Option<String>,
    /// The failed tasks' output (of each one's last failed attempt).
    #[arg(long, conflicts_with = "status")]
    failed: bool,
    /// Print the job's state instead: tasks succeeded, failed, unfinished, never started.
    #[arg(long)]
    status: bool,
    /// With --status: one JSON object.
    #[command(flatten)]
    output: Json,
}

/// Prints what the index vouches for; needs no MPI.
///
/// # Errors
/// Files that cannot be read, output that does not match its record, an unknown task.
pub fn cat(args: &CatArgs) -> Result<ExitCode> {
    let index = args.index.clone().unwrap_or_else(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".idx");
        PathBuf::from(p)
    });
    let cat = Cat {
        out: args.out.clone(),
        index,
        errors: args.errors.clone(),
        stderr: args.stderr,
        by_task: args.by_task,
        task: args.task.clone(),
        failed: args.failed,
    };
    if args.status {
        let report = cat.status()?;
        if args.output.json {
            emit_json(&report)?;
        } else {
            emit(&report.to_string())?;
        }
        let done = report.succeeded == report.tasks;
        return Ok(status(done));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    cat.print(&mut out)?;
    std::io::Write::flush(&mut out).map_err(|source| Error::Io {
        op: "write",
        path: "<stdout>".into(),
        source,
    })?;
    Ok(ExitCode::SUCCESS)
}
