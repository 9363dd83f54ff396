//! What the command files share about printing: reports as text or JSON on rank 0, error lines,
//! and the exit status.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use brlock::check::{admit, Check, Outcome, Run};
use brlock::runtime::Runtime;
use brlock::{Error, Result};

/// Runs `check` on every rank in its three steps and prints what it found: settings that
/// [`admit`] refuses (invalid, or needing more memory than the node has) are a usage error
/// (status 2, one line from rank 0), and the report of [`Run::run`] is printed by rank 0, as
/// text or as one JSON object with `json`.
///
/// # Errors
/// A failed [`Check::prepare`] (agreed by every rank), and errors of the run itself (see
/// `main` for how each kind ends the job).
pub fn exec(rt: &Runtime, check: impl Check, json: bool) -> Result<ExitCode> {
    if let Err(e) = admit(&check, rt.world()) {
        // The same refusal on every rank: one line, from rank 0.
        if rt.rank() == 0 {
            write_stderr(format!("brlock: error: {e}\n").as_bytes());
        }
        return Ok(ExitCode::from(2));
    }
    let prepared = check.prepare(rt.world())?;
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
        report(rt, e);
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

/// Reports `err` as one line on stderr: an error every rank returned together
/// ([`Error::Collective`], which names the ranks that failed and why) by rank 0 alone, any
/// other error by the rank that has it.
pub fn report(rt: &Runtime, err: &Error) {
    if !err.is_collective() {
        report_error(rt, err);
    } else if rt.rank() == 0 {
        write_stderr(format!("brlock: error: {err}\n").as_bytes());
    }
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

/// For collective commands: an error that this rank alone ran into, with several ranks,
/// reports itself and ends the whole job at once (`MPI_Abort`), because the other ranks may be
/// waiting for this one in an operation that will never complete. An error every rank
/// returned together ([`Error::Collective`]) is returned: nobody is waiting.
///
/// # Errors
/// `result`'s error, if it is collective or there is a single rank.
pub fn or_abort<T>(rt: &Runtime, result: Result<T>) -> Result<T> {
    match result {
        Err(err) if rt.size() > 1 && !err.is_collective() => {
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
