//! Test workload of `brlock collect`: prints deterministic records, and verifies a collected
//! file. No MPI: it is the command every rank runs.
//!
//! ```sh
//! cargo build --release --examples
//! mpirun -n 4 target/release/brlock collect --out out.txt --index out.idx -- \
//!     target/release/examples/emit_lines --lines 10000
//! target/release/examples/emit_lines --verify out.txt --index out.idx --ranks 4 --lines 10000
//! ```
//!
//! Emitting: record `seq` of rank `$BRLOCK_RANK` (or `--rank`) for `seq` in `0..--lines`, one
//! line each, 1 to 4096 bytes of pseudo-random length (see `brlock::io::append::records`).
//! `--fail-rank R` makes rank R stop after half its lines and exit with status 3.
//!
//! Verifying (`--verify FILE`): prints one JSON object with the verdict and exits 0 when every
//! record of every rank is present exactly once and intact (and, with `--ordered`, in rank
//! order; with `--index`, every index entry points at its record), 1 otherwise. With
//! `--fail-rank R`, rank R is expected to have written half its lines.
//!
//! As a task of a task farm (`--task L`, default `$BRLOCK_TASK`): sleeps 0 to `--max-ms`
//! milliseconds and prints records `(L, 0..n)`, `n` from 0 to `--max-lines` (both functions
//! of the seed and `L`); with `--fail-percent P` about P% of the tasks exit with status 3 on
//! their first `--fail-attempts` attempts (`$BRLOCK_ATTEMPT`). `--verify FILE --tasks A-B`
//! checks that FILE (from `collect-cat --by-task`) is exactly tasks A to B's records in task
//! order.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use brlock::io::append::records::{push_line, verify, verify_index, Expected};
use clap::Parser;
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

#[derive(Debug, Parser)]
struct Args {
    /// Records per rank.
    #[arg(long, default_value_t = 1000)]
    lines: u64,
    /// Seed of the records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rank to emit as (default: $BRLOCK_RANK).
    #[arg(long)]
    rank: Option<u32>,
    /// This rank writes half its lines and then fails with exit status 3.
    #[arg(long)]
    fail_rank: Option<u32>,
    /// Verify this file instead of emitting.
    #[arg(long)]
    verify: Option<PathBuf>,
    /// With --verify: the index file to check too.
    #[arg(long, requires = "verify")]
    index: Option<PathBuf>,
    /// With --verify: number of ranks that emitted.
    #[arg(long, requires = "verify")]
    ranks: Option<u32>,
    /// With --verify: the records must be in rank order.
    #[arg(long, requires = "verify")]
    ordered: bool,
    /// Emit as task L of a task farm (default: $BRLOCK_TASK if --task-mode).
    #[arg(long)]
    task: Option<u32>,
    /// Be a task of a task farm, its label from $BRLOCK_TASK.
    #[arg(long)]
    task_mode: bool,
    /// A task prints at most this many records.
    #[arg(long, default_value_t = 20)]
    max_lines: u64,
    /// A task runs at most this many milliseconds.
    #[arg(long, default_value_t = 50)]
    max_ms: u64,
    /// About this many percent of the tasks fail (exit status 3) ...
    #[arg(long, default_value_t = 0)]
    fail_percent: u64,
    /// ... on their first this many attempts ($BRLOCK_ATTEMPT).
    #[arg(long, default_value_t = u32::MAX)]
    fail_attempts: u32,
    /// With --verify: the task range A-B whose records FILE holds, in task order.
    #[arg(long, requires = "verify")]
    tasks: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.verify {
        Some(path) => check(&args, path),
        None => emit(&args),
    }
}

/// Prints records `(who, 0..count)` on stdout; false if stdout fails.
fn print_records(seed: u64, who: u32, count: u64) -> bool {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = Vec::with_capacity(8192);
    for seq in 0..count {
        buf.clear();
        push_line(&mut buf, seed, who, seq);
        if out.write_all(&buf).is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

/// One task of a task farm.
fn emit_task(args: &Args, task: u32) -> ExitCode {
    use brlock::io::append::records::{task_fails, task_lines, task_millis};
    let attempt: u32 = std::env::var("BRLOCK_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    std::thread::sleep(std::time::Duration::from_millis(task_millis(
        args.seed,
        task,
        args.max_ms,
    )));
    let fails = task_fails(args.seed, task, args.fail_percent) && attempt <= args.fail_attempts;
    if !print_records(args.seed, task, task_lines(args.seed, task, args.max_lines)) {
        return ExitCode::FAILURE;
    }
    if fails {
        eprintln!("emit_lines: task {task} fails on purpose (attempt {attempt})");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn emit(args: &Args) -> ExitCode {
    let task = args.task.or_else(|| {
        args.task_mode
            .then(|| std::env::var("BRLOCK_TASK").ok()?.parse().ok())
            .flatten()
    });
    if let Some(task) = task {
        return emit_task(args, task);
    }
    let rank = args.rank.or_else(|| {
        std::env::var("BRLOCK_RANK")
            .ok()
            .and_then(|r| r.parse().ok())
    });
    let Some(rank) = rank else {
        eprintln!("emit_lines: no --rank and no BRLOCK_RANK in the environment");
        return ExitCode::from(2);
    };
    let failing = args.fail_rank == Some(rank);
    let count = if failing { args.lines / 2 } else { args.lines };
    if !print_records(args.seed, rank, count) {
        return ExitCode::FAILURE;
    }
    if failing {
        eprintln!("emit_lines: rank {rank} fails on purpose after {count} lines");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn check(args: &Args, path: &PathBuf) -> ExitCode {
    if let Some(range) = &args.tasks {
        let Some((a, b)) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        else {
            eprintln!("emit_lines: --tasks A-B");
            return ExitCode::from(2);
        };
        let expected = Expected::tasks(args.seed, a..=b, args.max_lines);
        let Ok(data) = std::fs::read(path) else {
            eprintln!("emit_lines: read {}", path.display());
            return ExitCode::FAILURE;
        };
        let verdict = verify(&data, &expected, true);
        println!(
            "{}",
            serde_json::json!({"ok": verdict.ok(), "file": path.display().to_string(), "records": verdict})
        );
        return if verdict.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let Some(ranks) = args.ranks else {
        eprintln!("emit_lines: --verify needs --ranks");
        return ExitCode::from(2);
    };
    let mut expected = Expected::uniform(args.seed, ranks, args.lines);
    if let Some(r) = args.fail_rank {
        if let Some(n) = expected.per_rank.get_mut(r as usize) {
            *n = args.lines / 2;
        }
    }
    // Cached pages are dropped first: a client of a distributed file system may hold stale
    // ones for bytes another client wrote.
    let read = |p: &PathBuf| {
        let fresh = std::fs::File::open(p).and_then(|mut f| {
            let _ = posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
            let mut data = Vec::new();
            f.read_to_end(&mut data).map(|_| data)
        });
        fresh.map_err(|e| {
            eprintln!("emit_lines: read {}: {e}", p.display());
        })
    };
    let Ok(data) = read(path) else {
        return ExitCode::FAILURE;
    };
    let verdict = verify(&data, &expected, args.ordered);
    let mut ok = verdict.ok();
    let index = match &args.index {
        Some(p) => {
            let Ok(text) = read(p) else {
                return ExitCode::FAILURE;
            };
            let v = verify_index(&data, &text, &expected);
            ok &= v.ok();
            Some(v)
        }
        None => None,
    };
    let report = serde_json::json!({
        "ok": ok,
        "file": path.display().to_string(),
        "records": verdict,
        "index": index,
    });
    println!("{report}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
