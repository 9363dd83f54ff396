//! The `brlock` command: parse the command line, initialise MPI, run, and turn the outcome
//! into an exit code. Errors print one line, `brlock: error: ...`, on stderr.
//!
//! Everything a command does is in the library (`brlock::check`, `brlock::io`); the files
//! here only parse ([`commands`], [`args`]), turn what the user typed into the library's
//! configuration, call it and print ([`output`]). `docs/architecture.md` has the layout.

mod args;
mod commands;
mod logging;
mod output;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;

use brlock::runtime::{self, Runtime};

fn main() -> ExitCode {
    let args = match commands::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    if let Some(result) = commands::run_local(&args.command) {
        return match result {
            Ok(code) => code,
            Err(err) => {
                output::write_stderr(format!("brlock: error: {err}\n").as_bytes());
                ExitCode::FAILURE
            }
        };
    }
    let oversubscribed = yield_when_oversubscribed();
    let singleton = runtime::detect_launcher().is_none();
    if singleton {
        if let Some(problem) = runtime::singleton_problem() {
            eprintln!("brlock: error: {problem}");
            return ExitCode::FAILURE;
        }
    }
    let watchdog = singleton.then(|| Watchdog::start(SINGLETON_INIT_LIMIT));
    let rt = Runtime::init();
    drop(watchdog);
    let rt = match rt {
        Ok(rt) => rt,
        Err(err) => {
            // A launcher mismatch happens in every process, each a job of its own: the
            // launcher's rank 0 says it, once.
            if !matches!(launched_rank(), Some(r) if r != 0) {
                output::write_stderr(format!("brlock: error: {err}\n").as_bytes());
            }
            return ExitCode::FAILURE;
        }
    };
    logging::init(rt.rank());
    if let Some(local) = oversubscribed {
        tracing::info!(
            local_ranks = local,
            "more ranks than cores on this node: set Open MPI's mpi_yield_when_idle"
        );
    }
    // With several ranks, an error of this rank alone may leave the others waiting for it in a
    // collective operation: `or_abort` ends the whole job rather than leave them hanging. An
    // error every rank returned together is reported once and ends each rank normally.
    match output::or_abort(&rt, commands::run(&rt, &args.command)) {
        Ok(code) => code,
        Err(err) => {
            output::report(&rt, &err);
            ExitCode::FAILURE
        }
    }
}

/// How long MPI may take to initialise a singleton (it normally takes well under a second).
/// With more ranks on a node than cores, ranks that busy-poll inside MPI starve the ones that
/// must make progress (the home rank's one-sided epochs under `osc pt2pt`): 800 acquisitions by
/// 8 ranks on 2 cores did not finish in 120 s, and took 2.2 s with yielding. Unless the user chose, ask Open MPI to yield when idle; it reads
/// `OMPI_MCA_*` from the environment in `MPI_Init`. Returns the local rank count when set.
/// Runs before MPI and before any thread is started.
fn yield_when_oversubscribed() -> Option<usize> {
    const VAR: &str = "OMPI_MCA_mpi_yield_when_idle";
    let local: usize = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()?
        .parse()
        .ok()?;
    // The CPUs online, not `available_parallelism`: Open MPI pins each of a few ranks to one
    // core, which would make every job look oversubscribed.
    let cores = brlock::host::cpus_online()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if local <= cores || std::env::var_os(VAR).is_some() {
        return None;
    }
    std::env::set_var(VAR, "1");
    Some(local)
}

/// This process's rank as a launcher announces it in the environment (Open MPI, hydra, PMIx,
/// Slurm), before MPI is initialised; `None` without a launcher.
fn launched_rank() -> Option<u32> {
    [
        "OMPI_COMM_WORLD_RANK",
        "PMI_RANK",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

const SINGLETON_INIT_LIMIT: Duration = Duration::from_secs(30);

/// Ends the process with a one-line explanation if it is not dropped within a time limit:
/// started without a launcher, MPI initialisation must not hang silently.
struct Watchdog {
    _done: mpsc::Sender<()>,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Dropping the sender disconnects the channel and ends the wait early.
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                eprintln!(
                    "brlock: error: MPI did not initialise within {} s without a launcher; \
                     launch with `mpirun -n N brlock ...`",
                    limit.as_secs()
                );
                std::process::exit(1);
            }
        });
        Watchdog { _done: done }
    }
}

/// Reports a command-line problem: help and version go to stdout with success, anything else
/// is one line on stderr and exit code 2. Under a launcher every rank parses the same command
/// line, so only rank 0 prints: one line per job, not one per rank.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            if launched_rank().is_some_and(|r| r != 0) {
                return ExitCode::from(2);
            }
            let rendered = err.render().to_string();
            let mut lines = rendered.lines();
            let first = lines.next().unwrap_or("invalid command line");
            let mut message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            // "the following required arguments were not provided:" lists them on the
            // indented lines that follow.
            if message.ends_with(':') {
                let listed: Vec<&str> = lines
                    .take_while(|l| l.starts_with(' '))
                    .map(str::trim)
                    .collect();
                message = format!("{message} {}", listed.join(", "));
            }
            // One write: stderr is unbuffered and `eprintln!` writes its pieces separately.
            let line = format!("brlock: error: {message} (see `brlock --help`)\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            ExitCode::from(2)
        }
    }
}
