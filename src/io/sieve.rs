//! Data sieving: noncontiguous reads and writes through large contiguous windows.
//!
//! Many small pieces cost one I/O round trip each when done one by one; on a distributed file
//! system a round trip (0.5-1 ms) dwarfs the time to move a few hundred bytes. Sieving moves a
//! whole window instead: a write reads the window, patches the pieces in and writes it back
//! (two I/Os), a read reads the window and copies the pieces out (one I/O). [`plan`] decides
//! per access which way is cheaper; [`write()`] and [`read`] carry it out.
//!
//! Everything here is plain positional I/O on a [`File`]: no locks, no MPI. A sieved write
//! rewrites the gaps between the pieces with the bytes it just read, so it is only correct if
//! nobody else writes the window in between. [`write()`] leaves that to the caller, who must
//! hold an exclusive lock on the access's whole extent for the whole call;
//! [`write_planned`] instead runs each window's read-modify-write inside a [`WindowGuard`],
//! so a caller can lock one window at a time (as outside atomic mode, where only the
//! read-modify-write needs protecting). `docs/sieving.md` describes the design and the
//! measurements.
//!
//! The result of a sieved write is byte for byte (content and length) what writing the pieces
//! one by one, in order, would give: a window's write-back ends at its last piece, never
//! beyond, so no fill bytes land past the original end of file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::choice::choice;
use crate::error::{Error, Result};
use crate::io::coherence::ReadAt;
use crate::pieces::Pieces;

/// Default size of a write window: ROMIO's `ind_wr_buffer_size` (512 KiB).
pub const DEFAULT_WRITE_BUFFER: usize = 512 * 1024;

/// Default size of a read window: ROMIO's `ind_rd_buffer_size` (4 MiB).
pub const DEFAULT_READ_BUFFER: usize = 4 * 1024 * 1024;

/// The largest window accepted (1 GiB): a window is allocated in memory, and beyond this size
/// a larger window saves no round trip worth having.
pub const MAX_BUFFER: usize = 1 << 30;

/// How many bytes cost as much to move as one extra I/O call, in [`plan`]'s cost model.
///
/// On a distributed file system a small I/O is a network round trip of 0.5-1 ms, in which a
/// client streams roughly 50 KiB-1 MiB (100 MB/s-1 GB/s); on a local page cache a system call
/// costs 1-3 us, in which memory copies 5-30 KiB. 64 KiB sits at the low end for distributed
/// file systems, so dense accesses there are always sieved, and on a local disk it errs
/// towards sieving a little too often, which costs only memory copies.
pub const BYTES_PER_ROUND_TRIP: u64 = 64 * 1024;

choice! {
    /// Whether to sieve.
    #[derive(Default)]
    pub enum SievePolicy {
        /// Decide per access with [`plan`]'s cost model.
        Auto = "auto" (default),
        /// Always sieve (ROMIO's `enable`, and in practice its `automatic`).
        Always = "always",
        /// Never sieve: one I/O per contiguous run of pieces.
        Never = "never",
    }
}

/// Data-sieving settings of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SieveConfig {
    /// Largest write window in bytes (read, patched and written back as one).
    pub write_buffer: usize,
    /// Largest read window in bytes.
    pub read_buffer: usize,
    /// Whether writes sieve.
    pub write: SievePolicy,
    /// Whether reads sieve.
    pub read: SievePolicy,
}

impl Default for SieveConfig {
    /// ROMIO's buffer sizes ([`DEFAULT_WRITE_BUFFER`], [`DEFAULT_READ_BUFFER`]), policy
    /// [`SievePolicy::Auto`] both ways.
    fn default() -> Self {
        SieveConfig {
            write_buffer: DEFAULT_WRITE_BUFFER,
            read_buffer: DEFAULT_READ_BUFFER,
            write: SievePolicy::Auto,
            read: SievePolicy::Auto,
        }
    }
}

impl SieveConfig {
    /// Checks the buffer sizes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a buffer is empty or larger than [`MAX_BUFFER`].
    pub fn validate(&self) -> Result<()> {
        for (name, size) in [
            ("write_buffer", self.write_buffer),
            ("read_buffer", self.read_buffer),
        ] {
            if size == 0 || size > MAX_BUFFER {
                return Err(Error::InvalidArgument(format!(
                    "sieve {name} of {size} bytes: must be between 1 and {MAX_BUFFER}"
                )));
            }
        }
        Ok(())
    }
}

/// The direction of an access: a sieved write costs two I/Os per window, a read one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// A read.
    Read,
    /// A write (read-modify-write per window).
    Write,
}

impl Access {
    /// I/O calls one sieve window costs.
    fn ios_per_window(self) -> u64 {
        match self {
            Access::Read => 1,
            Access::Write => 2,
        }
    }
}

/// How an access is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Through windows holding several pieces each; a window that would hold a single
    /// contiguous run is done directly.
    Sieve,
    /// One I/O per contiguous run of pieces (adjacent pieces are merged).
    Pieces,
}

/// Why [`plan`] chose its [`Method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The policy was [`SievePolicy::Always`] or [`SievePolicy::Never`].
    Forced,
    /// The access is empty or one contiguous run: nothing to sieve.
    Contiguous,
    /// Every run is at least a window long: no window could hold two of them.
    HugePieces,
    /// The gaps are so wide that no window holds two runs.
    WideGaps,
    /// Sieving is cheaper: the round trips it saves outweigh the gap bytes it moves.
    SavesRoundTrips,
    /// Piece by piece is cheaper: the gap bytes sieving would move outweigh the round trips
    /// it saves (few runs per window, or sparse ones).
    GapsCostMore,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Forced => "forced by policy",
            Reason::Contiguous => "at most one contiguous run",
            Reason::HugePieces => "every run fills a window",
            Reason::WideGaps => "no window holds two runs",
            Reason::SavesRoundTrips => "saves more round trips than the gap bytes cost",
            Reason::GapsCostMore => "gap bytes cost more than the round trips saved",
        })
    }
}

/// [`plan`]'s decision, with the numbers it was made from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Plan {
    /// The chosen method.
    pub method: Method,
    /// Why.
    pub reason: Reason,
    /// Number of pieces.
    pub pieces: usize,
    /// Number of contiguous runs (adjacent pieces merged).
    pub runs: usize,
    /// Windows holding two or more runs, which sieving would read (and for a write, write).
    pub windows: usize,
    /// Useful bytes over the bytes of the access's extent (1.0 for an empty access).
    pub density: f64,
    /// I/O calls sieving would make (windows, plus runs that are done directly).
    pub sieve_io_calls: u64,
    /// I/O calls piece by piece would make (one per run).
    pub piece_io_calls: u64,
}

/// What a [`read`] or [`write()`] did, for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// The method used.
    pub method: Method,
    /// Why it was chosen.
    pub reason: Reason,
    /// Sieve windows read (and, for writes, written back).
    pub windows: u64,
    /// Positional read and write calls made (a `write_all_at` counts as one).
    pub io_calls: u64,
    /// Bytes read from the file.
    pub bytes_read: u64,
    /// Bytes written to the file.
    pub bytes_written: u64,
}

impl Stats {
    fn new(plan: &Plan) -> Stats {
        Stats {
            method: plan.method,
            reason: plan.reason,
            windows: 0,
            io_calls: 0,
            bytes_read: 0,
            bytes_written: 0,
        }
    }
}

/// A maximal run of adjacent pieces: one contiguous range of the file, and of the caller's
/// buffer.
#[derive(Debug, Clone, Copy)]
struct Run {
    offset: u64,
    len: u64,
    /// Where the run's bytes start in the caller's buffer.
    data: usize,
}

impl Run {
    fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// The run's bytes in the caller's buffer. `len` fits in `usize`: the buffer's length
    /// was checked against the pieces.
    fn span(&self) -> std::ops::Range<usize> {
        self.data..self.data + self.len as usize
    }
}

/// Merges adjacent pieces into runs.
fn runs(pieces: &Pieces) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut data = 0usize;
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.end() == p.offset => last.len += p.len,
            _ => out.push(Run {
                offset: p.offset,
                len: p.len,
                data,
            }),
        }
        // Cannot overflow once the caller's buffer length has been checked; plan() on its own
        // only uses the offsets.
        data = data.wrapping_add(p.len as usize);
    }
    out
}

/// Consecutive runs handled together: `runs[first..first + count]`, spanning
/// `[start, end)` of the file. One run is done directly; several are sieved.
#[derive(Debug, Clone, Copy)]
struct Window {
    first: usize,
    count: usize,
    start: u64,
    end: u64,
}

/// Groups the runs into windows of at most `buffer` bytes. A window starts at the next run
/// and takes every following run that ends within `buffer` bytes of its start; a run that
/// would straddle the limit starts the next window instead, so a window never spans more
/// than `buffer` bytes unless it is a single run (done directly, without a window buffer).
/// Gaps wider than a window are skipped, and a window ends at its last run: bytes past it
/// are never read or written.
fn windows(runs: &[Run], buffer: usize) -> Vec<Window> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let start = runs[i].offset;
        let limit = start.saturating_add(buffer as u64);
        let mut j = i + 1;
        while j < runs.len() && runs[j].end() <= limit {
            j += 1;
        }
        out.push(Window {
            first: i,
            count: j - i,
            start,
            end: runs[j - 1].end(),
        });
        i = j;
    }
    out
}

/// Decides whether sieving pays for `pieces` with windows of `buffer` bytes, and emits a
/// `tracing` debug event with the choice, the reason and the numbers.
///
/// The cost model counts I/O calls, each worth [`BYTES_PER_ROUND_TRIP`] bytes, plus the
/// bytes moved. Piece by piece makes one call per contiguous run and moves only the useful
/// bytes. Sieving makes, per window holding two or more runs, one call for a read and two
/// for a write (read, then write back), moving the whole window each time; runs alone in a
/// window are done directly. Under [`SievePolicy::Auto`], in order:
///
/// * at most one run: piece by piece ([`Reason::Contiguous`]);
/// * no window holds two runs: piece by piece ([`Reason::HugePieces`] if every run is at
///   least `buffer` long, else [`Reason::WideGaps`]);
/// * otherwise whichever costs less; a tie goes to piece by piece, which moves fewer bytes
///   ([`Reason::SavesRoundTrips`] or [`Reason::GapsCostMore`]). So a write window must hold
///   more than two runs, and a read window more than one, before sieving can win, and the
///   sparser the runs, the more of them a window must hold.
pub fn plan(pieces: &Pieces, buffer: usize, policy: SievePolicy, access: Access) -> Plan {
    let runs = runs(pieces);
    let plan = plan_runs(pieces, &runs, buffer, policy, access);
    tracing::debug!(
        ?access,
        method = ?plan.method,
        reason = %plan.reason,
        pieces = plan.pieces,
        runs = plan.runs,
        windows = plan.windows,
        density = plan.density,
        buffer,
        sieve_io_calls = plan.sieve_io_calls,
        piece_io_calls = plan.piece_io_calls,
        "data sieving plan"
    );
    plan
}

fn plan_runs(
    pieces: &Pieces,
    runs: &[Run],
    buffer: usize,
    policy: SievePolicy,
    access: Access,
) -> Plan {
    let windows = windows(runs, buffer);
    let mut sieve_windows = 0u64;
    let mut direct_runs = 0u64;
    let mut sieve_bytes = 0u64;
    for w in &windows {
        if w.count == 1 {
            direct_runs += 1;
            sieve_bytes += runs[w.first].len;
        } else {
            sieve_windows += 1;
            sieve_bytes += (w.end - w.start) * access.ios_per_window();
        }
    }
    let sieve_io_calls = sieve_windows * access.ios_per_window() + direct_runs;
    let piece_io_calls = runs.len() as u64;
    let total = pieces.total_bytes();
    let density = match pieces.extent() {
        Some(extent) => total as f64 / extent.len() as f64,
        None => 1.0,
    };
    let cost = |ios: u64, bytes: u64| {
        u128::from(ios) * u128::from(BYTES_PER_ROUND_TRIP) + u128::from(bytes)
    };
    let (method, reason) = match policy {
        SievePolicy::Always => (Method::Sieve, Reason::Forced),
        SievePolicy::Never => (Method::Pieces, Reason::Forced),
        SievePolicy::Auto if runs.len() <= 1 => (Method::Pieces, Reason::Contiguous),
        SievePolicy::Auto if sieve_windows == 0 => {
            if runs.iter().all(|r| r.len >= buffer as u64) {
                (Method::Pieces, Reason::HugePieces)
            } else {
                (Method::Pieces, Reason::WideGaps)
            }
        }
        SievePolicy::Auto if cost(sieve_io_calls, sieve_bytes) < cost(piece_io_calls, total) => {
            (Method::Sieve, Reason::SavesRoundTrips)
        }
        SievePolicy::Auto => (Method::Pieces, Reason::GapsCostMore),
    };
    Plan {
        method,
        reason,
        pieces: pieces.len(),
        runs: runs.len(),
        windows: sieve_windows as usize,
        density,
        sieve_io_calls,
        piece_io_calls,
    }
}

/// Writes `data` (the pieces' bytes back to back) to the pieces of `file`, sieving or piece
/// by piece as [`plan`] decides with `cfg.write_buffer` and `cfg.write`. `path` only names
/// the file in errors.
///
/// The file ends up exactly as if each piece had been written with `pwrite`, in order: same
/// bytes, same length. A sieved window is read, patched and written back from its first to
/// its last piece; gap bytes beyond the original end of file are written as zeros, which is
/// what the holes piece-by-piece writing leaves read as.
///
/// The caller must hold an exclusive lock on the pieces' whole extent: a sieved write
/// rewrites the gaps between pieces.
///
/// # Errors
/// [`Error::InvalidArgument`] if `data` does not hold exactly the pieces' bytes or `cfg` is
/// invalid; [`Error::Io`] (`op` "read" or "write") if the file system fails. After an error
/// some pieces may have been written.
pub fn write(
    file: &File,
    path: &str,
    pieces: &Pieces,
    data: &[u8],
    cfg: &SieveConfig,
) -> Result<Stats> {
    write_impl(file, path, pieces, data, cfg, false)
}

/// What protects each write of a sieved write ([`write_planned`]).
pub trait WindowGuard {
    /// Runs `io`, one write of the file bytes `[start, end)`, holding whatever makes it safe,
    /// and returns its result. `rmw` says whether `io` is a window's read-modify-write (it
    /// reads the window, patches the pieces in and writes the window back, gaps included) or
    /// a plain write of one run (alone in its window, or piece by piece), which rewrites no
    /// byte it was not given but can still land in a peer's window between that peer's read
    /// and write-back.
    ///
    /// # Errors
    /// `io`'s error, or the guard's own (a lock that could not be taken or released).
    fn around(
        &mut self,
        start: u64,
        end: u64,
        rmw: bool,
        io: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()>;
}

/// The guard of a caller that already holds an exclusive lock on the access's whole extent:
/// it runs each read-modify-write as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtentHeld;

impl WindowGuard for ExtentHeld {
    fn around(
        &mut self,
        _: u64,
        _: u64,
        _: bool,
        io: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        io()
    }
}

/// How [`write_planned`] reaches the file: windows are read through `read` (the file itself,
/// or a reader that bypasses the client's page cache) and written through `write`.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    /// Reads of the windows.
    pub read: &'a dyn ReadAt,
    /// Everything written.
    pub write: &'a File,
}

impl<'a> Io<'a> {
    /// Reads and writes through `file`.
    pub fn file(file: &'a File) -> Io<'a> {
        Io {
            read: file,
            write: file,
        }
    }
}

/// [`write()`] with the method already decided, and each write run inside `guard`. `plan` is
/// [`plan`]`(pieces, cfg.write_buffer, cfg.write, Access::Write)`, made by a caller that needs
/// the decision first (to choose its lock) and should not pay for it, or log it, twice. With
/// [`Io::file`] and [`ExtentHeld`] this is [`write()`].
///
/// # Errors
/// As [`write()`], and the guard's errors.
pub fn write_planned(
    io: Io<'_>,
    path: &str,
    pieces: &Pieces,
    data: &[u8],
    cfg: &SieveConfig,
    plan: &Plan,
    guard: &mut dyn WindowGuard,
) -> Result<Stats> {
    cfg.validate()?;
    write_with(io, path, pieces, data, cfg, plan, false, guard)
}

/// [`write()`], with a fault for the tests' negative control: `fill_to_window_end` writes each
/// window back to `start + write_buffer`, fill bytes included, as a careless sieve would.
fn write_impl(
    file: &File,
    path: &str,
    pieces: &Pieces,
    data: &[u8],
    cfg: &SieveConfig,
    fill_to_window_end: bool,
) -> Result<Stats> {
    cfg.validate()?;
    let plan = plan(pieces, cfg.write_buffer, cfg.write, Access::Write);
    write_with(
        Io::file(file),
        path,
        pieces,
        data,
        cfg,
        &plan,
        fill_to_window_end,
        &mut ExtentHeld,
    )
}

/// The write itself, by the method `plan` chose, each window's read-modify-write inside
/// `guard`; `cfg` is valid.
#[allow(clippy::too_many_arguments)]
fn write_with(
    io: Io<'_>,
    path: &str,
    pieces: &Pieces,
    data: &[u8],
    cfg: &SieveConfig,
    plan: &Plan,
    fill_to_window_end: bool,
    guard: &mut dyn WindowGuard,
) -> Result<Stats> {
    pieces.check_buffer(data.len())?;
    let file = io.write;
    let runs = runs(pieces);
    let mut stats = Stats::new(plan);
    if plan.method == Method::Pieces {
        for run in &runs {
            guard.around(run.offset, run.end(), false, &mut || {
                write_all(file, path, run.offset, &data[run.span()], &mut stats)
            })?;
        }
        return Ok(stats);
    }
    let windows = windows(&runs, cfg.write_buffer);
    let mut scratch = Vec::new();
    for w in &windows {
        let group = &runs[w.first..w.first + w.count];
        if let [run] = group {
            guard.around(run.offset, run.end(), false, &mut || {
                write_all(file, path, run.offset, &data[run.span()], &mut stats)
            })?;
            continue;
        }
        let end = if fill_to_window_end {
            w.start.saturating_add(cfg.write_buffer as u64)
        } else {
            w.end
        };
        // At most `write_buffer` bytes: a window of several runs never spans more.
        let len = (end - w.start) as usize;
        scratch.resize(len, 0);
        guard.around(w.start, end, true, &mut || {
            let window = &mut scratch[..len];
            let got = read_full(io.read, path, w.start, window, &mut stats)?;
            // Past the end of file: zeros, as the holes piece-by-piece writes leave behind.
            window[got..].fill(0);
            for run in group {
                let at = (run.offset - w.start) as usize;
                window[at..at + run.len as usize].copy_from_slice(&data[run.span()]);
            }
            write_all(file, path, w.start, window, &mut stats)
        })?;
        stats.windows += 1;
    }
    Ok(stats)
}

/// Reads the pieces of `file` into `buf` (back to back), sieving or piece by piece as
/// [`plan`] decides with `cfg.read_buffer` and `cfg.read`. `path` only names the file in
/// errors.
///
/// In atomic mode the caller holds a shared lock on the pieces' extent; sieving needs none
/// for its own sake, as it writes nothing.
///
/// # Errors
/// [`Error::ShortRead`] naming the first piece that the file does not hold entirely;
/// [`Error::InvalidArgument`] if `buf` does not hold exactly the pieces' bytes or `cfg` is
/// invalid; [`Error::Io`] (`op` "read") if the file system fails. After an error `buf`
/// holds an unspecified mix of old and read bytes.
pub fn read(
    file: &File,
    path: &str,
    pieces: &Pieces,
    buf: &mut [u8],
    cfg: &SieveConfig,
) -> Result<Stats> {
    read_via(file, path, pieces, buf, cfg)
}

/// [`read`] through any [`ReadAt`], such as a [`crate::io::coherence::DirectReader`] that bypasses
/// the client's page cache.
///
/// # Errors
/// As [`read`].
pub fn read_via(
    file: &dyn ReadAt,
    path: &str,
    pieces: &Pieces,
    buf: &mut [u8],
    cfg: &SieveConfig,
) -> Result<Stats> {
    cfg.validate()?;
    pieces.check_buffer(buf.len())?;
    let runs = runs(pieces);
    let plan = plan(pieces, cfg.read_buffer, cfg.read, Access::Read);
    let mut stats = Stats::new(&plan);
    let windows = match plan.method {
        Method::Sieve => windows(&runs, cfg.read_buffer),
        // Every run alone: done directly.
        Method::Pieces => windows(&runs, 0),
    };
    let mut scratch = Vec::new();
    for w in &windows {
        let group = &runs[w.first..w.first + w.count];
        if let [run] = group {
            let got = read_full(file, path, run.offset, &mut buf[run.span()], &mut stats)?;
            if got < run.len as usize {
                return Err(short_read(path, pieces, run.offset + got as u64));
            }
            continue;
        }
        let len = (w.end - w.start) as usize;
        scratch.resize(len, 0);
        let got = read_full(file, path, w.start, &mut scratch[..len], &mut stats)?;
        stats.windows += 1;
        if got < len {
            return Err(short_read(path, pieces, w.start + got as u64));
        }
        for run in group {
            let at = (run.offset - w.start) as usize;
            buf[run.span()].copy_from_slice(&scratch[at..at + run.len as usize]);
        }
    }
    Ok(stats)
}

/// The error for a read that found the end of file at `eof`: it names the first piece that
/// ends beyond it (every piece before it was read in full).
fn short_read(path: &str, pieces: &Pieces, eof: u64) -> Error {
    let (offset, wanted) = pieces
        .iter()
        .find(|p| p.end() > eof)
        .map_or((eof, 0), |p| (p.offset, p.len));
    Error::ShortRead {
        path: path.to_owned(),
        offset,
        wanted,
        got: eof.saturating_sub(offset),
    }
}

/// Reads into all of `buf` from `offset`, retrying interrupted and partial reads; returns the
/// bytes read, fewer than `buf.len()` only at end of file.
fn read_full(
    file: &dyn ReadAt,
    path: &str,
    offset: u64,
    buf: &mut [u8],
    stats: &mut Stats,
) -> Result<usize> {
    let (got, calls) =
        crate::io::coherence::read_full(file, buf, offset).map_err(|source| Error::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
    stats.io_calls += calls;
    stats.bytes_read += got as u64;
    Ok(got)
}

/// Writes all of `data` at `offset` (`write_all_at` retries interrupted and partial writes).
fn write_all(file: &File, path: &str, offset: u64, data: &[u8], stats: &mut Stats) -> Result<()> {
    stats.io_calls += 1;
    file.write_all_at(data, offset)
        .map_err(|source| Error::Io {
            op: "write",
            path: path.to_owned(),
            source,
        })?;
    stats.bytes_written += data.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests;
