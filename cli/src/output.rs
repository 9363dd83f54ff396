//! What the command files share about printing: reports as text or JSON on rank 0, error lines,
//! and the exit status.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use brlock::check::{Check, Outcome, Run};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// Runs `check` on every rank in its three steps and prints what it found: settings that
/// [`Check::validate`] refuses are a usage error (status 2, one line from rank 0), a failed
/// [`Check::prepare`] is agreed (status 1, a line from each rank that failed), and the report
/// of [`Run::run`] is printed by rank 0, as text or as one JSON object with `json`.
///
/// # Errors
/// Errors of the run itself, which may have left other ranks waiting (see `main`).
pub fn exec(rt: &Runtime, check: impl Check, json: bool) -> Result<ExitCode> {
    if let Err(e) = check.validate(rt.size()) {
        return Ok(refuse_usage(rt, &e));
    }
    let prepared = match check.prepare(rt.world()) {
        Ok(prepared) => prepared,
        Err(e) => return Ok(refuse_agreed(rt, &e)),
    };
    finish(rt, &prepared.run(rt.world())?, json)
}

/// Prints this rank's errors of `outcome`, then its report (rank 0 has it) as one JSON object
/// or as its text, and turns whether this rank passed into the exit status.
///
/// # Errors
/// [`Error::Io`] if stdout is closed or full.
fn finish<R: serde::Serialize + Display>(
    rt: &Runtime,
    outcome: &Outcome<R>,
    json: bool,
) -> Result<ExitCode> {
    for e in &outcome.errors {
        report_error(rt, e);
    }
    if let Some(report) = &outcome.report {
        if json {
            emit_json(report)?;
        } else {
            emit(&report.to_string())?;
        }
    }
    Ok(status(outcome.passed))
}

/// `SUCCESS` or `FAILURE`.
pub fn status(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A configuration every rank refuses alike (it was validated before any communication):
/// rank 0 prints the one line, and every rank exits with status 2, the status of usage errors.
fn refuse_usage(rt: &Runtime, err: &Error) -> ExitCode {
    if rt.rank() == 0 {
        report_error(rt, err);
    }
    ExitCode::from(2)
}

/// A step that failed on some rank and that every rank left together (the library says which
/// of its steps are agreed): the ranks that failed print their error, the others
/// ([`Error::PeerFailed`]) stay quiet, and every rank exits with status 1. No rank is left
/// waiting, so nothing needs to end the job.
pub fn refuse_agreed(rt: &Runtime, err: &Error) -> ExitCode {
    if !matches!(err, Error::PeerFailed { .. }) {
        report_error(rt, err);
    }
    ExitCode::FAILURE
}

/// Prints `err` as the one line `brlock: error: ...` on stderr, naming the rank when there
/// are several.
///
/// The line is formatted first and written with one `write`: stderr is unbuffered, and
/// `eprintln!` writes each piece of its format separately, which Open MPI's `--tag-output`
/// then shows as several tagged lines.
pub fn report_error(rt: &Runtime, err: &dyn Display) {
    let line = if rt.size() > 1 {
        format!("brlock: error: rank {}: {err}\n", rt.rank())
    } else {
        format!("brlock: error: {err}\n")
    };
    write_stderr(line.as_bytes());
}

/// Writes `bytes` to stderr in one call; nothing sensible is left to do if stderr fails.
pub fn write_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
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
/// As [`emit`]; serialisation of the library's report types does not fail.
pub fn emit_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise the report: {e}")))?;
    emit(&text)
}
