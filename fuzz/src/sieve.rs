//! `sieve_plan_and_io`: the data-sieving planner, and sieved writes and reads of a real file
//! against doing the pieces one by one.
//!
//! Checked:
//! * [`sieve::plan`] on any valid pieces (also far beyond the end of any file) with any
//!   buffer size, policy and direction does not panic, counts pieces and runs (adjacent
//!   pieces merged) correctly, obeys a forced policy, never plans more calls for sieving than
//!   piece by piece makes, and reports the access's density;
//! * [`sieve::write`] leaves the file byte for byte (content and length) as `pwrite` of
//!   each piece in order would, with stats that agree with the plan; an invalid
//!   configuration or a buffer of the wrong length is an `InvalidArgument` and writes nothing;
//! * [`sieve::write_planned`] through a reader that returns short reads and `EINTR` gives
//!   the same file, and the guard sees each write as documented: a run alone, or a
//!   read-modify-write of several runs that spans at most the write buffer, in file order,
//!   every run covered once; an error from the guard is returned;
//! * [`sieve::read`] and [`sieve::read_via`] (the same short-read reader) return exactly the
//!   bytes of the pieces, or the short read `pread` piece by piece would meet first.
//!
//! The pieces' extent is bounded (below 4 MiB) by construction. The file is one per process,
//! in `/dev/shm` when there is one, unlinked as soon as it is open.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use brlock::io::coherence::ReadAt;
use brlock::io::sieve::{
    self, Access, ExtentHeld, Io, Method, Reason, SieveConfig, SievePolicy, Stats, WindowGuard,
};
use brlock::{Error, Pieces};

use crate::gen::{edgy_usize, Bytes};

/// The name the file has in errors.
const PATH: &str = "fuzz-sieve-file";

/// The pieces' extent ends below this.
const MAX_EXTENT: u64 = 4 << 20;

/// Most pieces of one access.
const MAX_PIECES: usize = 96;

pub(crate) fn target(u: &mut Unstructured<'_>) -> Result<()> {
    plan_far(u)?;
    let case = Case::new(u)?;
    for access in [Access::Read, Access::Write] {
        for (buffer, policy) in [
            (case.cfg.read_buffer, case.cfg.read),
            (case.cfg.write_buffer, case.cfg.write),
        ] {
            check_plan(&case.pieces, buffer, policy, access);
        }
    }
    read_both_ways(u, &case)?;
    write_both_ways(u, &case)?;
    Ok(())
}

/// One access on one file.
struct Case {
    pieces: Pieces,
    initial: Vec<u8>,
    data: Vec<u8>,
    cfg: SieveConfig,
}

fn policy(u: &mut Unstructured<'_>) -> Result<SievePolicy> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => SievePolicy::Auto,
        1 => SievePolicy::Always,
        _ => SievePolicy::Never,
    })
}

/// A buffer size: usually one that makes windows of a few pieces, sometimes any (also 0 and
/// beyond [`sieve::MAX_BUFFER`], which the sieve must refuse).
fn buffer(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => edgy_usize(u)?,
        1 => sieve::DEFAULT_WRITE_BUFFER,
        2 => 1 + usize::from(u.arbitrary::<u8>()?),
        _ => 1 + usize::from(u.arbitrary::<u16>()?),
    })
}

impl Case {
    fn new(u: &mut Unstructured<'_>) -> Result<Case> {
        let count = u.int_in_range(0..=MAX_PIECES)?;
        // Sizes spread over scales (1 byte to 64 KiB), so that small, fast cases are common
        // and large ones possible.
        let scale =
            |u: &mut Unstructured<'_>| -> Result<u64> { Ok(1u64 << u.int_in_range(0u32..=16)?) };
        let mut at = match u.int_in_range(0u8..=3)? {
            0 => 0,
            _ => {
                let most = scale(u)? * 16;
                u.int_in_range(0..=most)?
            }
        };
        let (gap_max, len_max) = (scale(u)?, scale(u)?);
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            // One in four is adjacent to the previous piece: the two merge into one run.
            if !u.ratio(1u8, 4u8)? {
                at += u.int_in_range(0..=gap_max)?;
            }
            let len = if u.ratio(1u8, 16u8)? {
                0 // dropped by Pieces::new
            } else {
                u.int_in_range(1..=len_max)?
            };
            if at + len >= MAX_EXTENT {
                break;
            }
            pairs.push((at, len));
            at += len;
        }
        let pieces = Pieces::new(pairs).expect("sorted, disjoint, small pieces are valid");
        let (start, end) = pieces.extent().map_or((0, 0), |e| (e.start(), e.end()));
        // The file ends before the extent, inside it (or in a gap), at its end, or after it.
        let file_len = match u.int_in_range(0u8..=5)? {
            0 => 0,
            1 => u.int_in_range(0..=start)?,
            2 => u.int_in_range(start..=end)?,
            3 => end,
            4 => {
                // Just before or after a piece boundary.
                let p = u.choose(pieces.as_slice()).ok().copied();
                p.map_or(end, |p| {
                    let delta = u.int_in_range(0u64..=2).unwrap_or(0);
                    (p.offset + delta).saturating_sub(1).min(MAX_EXTENT)
                })
            }
            _ => end + u64::from(u.arbitrary::<u16>()?),
        };
        let mut bytes = Bytes::new(u.arbitrary()?);
        let initial = bytes.take(file_len as usize);
        let data = bytes.take(pieces.total_bytes() as usize);
        let same = u.arbitrary::<bool>()?;
        let write_buffer = buffer(u)?;
        let read_buffer = if same { write_buffer } else { buffer(u)? };
        let write = policy(u)?;
        let read = if same { write } else { policy(u)? };
        Ok(Case {
            pieces,
            initial,
            data,
            cfg: SieveConfig {
                write_buffer,
                read_buffer,
                write,
                read,
            },
        })
    }
}

/// Runs (maximal groups of adjacent pieces) as (offset, end, first byte in the buffer),
/// computed here independently of the module.
fn runs(pieces: &Pieces) -> Vec<(u64, u64, usize)> {
    let mut out: Vec<(u64, u64, usize)> = Vec::new();
    let mut at = 0usize;
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.1 == p.offset => last.1 = p.end(),
            _ => out.push((p.offset, p.end(), at)),
        }
        at += p.len as usize;
    }
    out
}

/// [`sieve::plan`] on pieces anywhere below the largest offset (no I/O is done).
fn plan_far(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(0..=32usize)?;
    let mut pairs = Vec::with_capacity(n);
    let mut at = crate::gen::edgy_u64(u)? % brlock::range::MAX_OFFSET;
    for _ in 0..n {
        let len = 1 + crate::gen::edgy_u64(u)? % (1 << 40);
        let Some(end) = at
            .checked_add(len)
            .filter(|&e| e <= brlock::range::MAX_OFFSET)
        else {
            break;
        };
        pairs.push((at, len));
        let gap = if u.arbitrary::<bool>()? {
            0
        } else {
            crate::gen::edgy_u64(u)? % (1 << 50)
        };
        match end.checked_add(gap) {
            Some(next) => at = next,
            None => break,
        }
    }
    let Ok(pieces) = Pieces::new(pairs) else {
        return Ok(());
    };
    let buffer = edgy_usize(u)?;
    let policy = policy(u)?;
    let access = if u.arbitrary::<bool>()? {
        Access::Read
    } else {
        Access::Write
    };
    check_plan(&pieces, buffer, policy, access);
    Ok(())
}

/// The plan's invariants.
fn check_plan(pieces: &Pieces, buffer: usize, policy: SievePolicy, access: Access) -> sieve::Plan {
    let plan = sieve::plan(pieces, buffer, policy, access);
    let runs = runs(pieces);
    assert_eq!(plan.pieces, pieces.len());
    assert_eq!(plan.runs, runs.len());
    assert_eq!(plan.piece_io_calls, runs.len() as u64);
    // A sieve window holds at least two runs.
    assert!(plan.windows * 2 <= plan.runs, "{plan:?}");
    assert!(plan.sieve_io_calls <= plan.piece_io_calls, "{plan:?}");
    assert!(plan.density > 0.0 && plan.density <= 1.0, "{plan:?}");
    match policy {
        SievePolicy::Always => {
            assert_eq!((plan.method, plan.reason), (Method::Sieve, Reason::Forced))
        }
        SievePolicy::Never => {
            assert_eq!((plan.method, plan.reason), (Method::Pieces, Reason::Forced))
        }
        SievePolicy::Auto => {
            assert_ne!(plan.reason, Reason::Forced);
            if runs.len() <= 1 {
                assert_eq!(
                    (plan.method, plan.reason),
                    (Method::Pieces, Reason::Contiguous)
                );
            }
            if plan.method == Method::Sieve {
                assert!(plan.windows > 0, "{plan:?}");
                assert_eq!(plan.reason, Reason::SavesRoundTrips);
            }
            if plan.windows == 0 {
                assert_eq!(plan.method, Method::Pieces);
            }
        }
    }
    // Deterministic.
    assert_eq!(sieve::plan(pieces, buffer, policy, access), plan);
    plan
}

/// The process's scratch file, already unlinked.
fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::path::Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("brlock-fuzz-sieve-{}", std::process::id()));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create the scratch file");
        std::fs::remove_file(&path).expect("unlink the scratch file");
        f
    })
}

fn set_content(content: &[u8]) {
    let f = file();
    f.set_len(0).expect("truncate");
    f.write_all_at(content, 0).expect("write initial content");
}

fn content() -> Vec<u8> {
    let f = file();
    let len = f.metadata().expect("stat").len();
    let mut out = vec![0u8; len as usize];
    f.read_exact_at(&mut out, 0).expect("read content");
    out
}

/// The file after `pwrite` of each piece in order.
fn written_one_by_one(initial: &[u8], pieces: &Pieces, data: &[u8]) -> Vec<u8> {
    let mut out = initial.to_vec();
    let mut at = 0usize;
    for p in pieces {
        let (start, end) = (p.offset as usize, p.end() as usize);
        if out.len() < end {
            out.resize(end, 0);
        }
        out[start..end].copy_from_slice(&data[at..at + p.len as usize]);
        at += p.len as usize;
    }
    out
}

/// The pieces' bytes, or (offset, wanted, got) of the first piece the file does not hold.
fn read_one_by_one(
    content: &[u8],
    pieces: &Pieces,
) -> std::result::Result<Vec<u8>, (u64, u64, u64)> {
    let len = content.len() as u64;
    let mut out = Vec::new();
    for p in pieces {
        if p.end() > len {
            return Err((p.offset, p.len, len.saturating_sub(p.offset)));
        }
        out.extend_from_slice(&content[p.offset as usize..p.end() as usize]);
    }
    Ok(out)
}

/// A reader that returns at most `chunk` bytes per call and fails every `eintr_every`-th call
/// (never if 0) with `EINTR`: what a signal or a network file system may do.
struct Choppy<'a> {
    file: &'a File,
    chunk: usize,
    eintr_every: u32,
    calls: Cell<u32>,
}

impl ReadAt for Choppy<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.calls.get().wrapping_add(1);
        self.calls.set(n);
        if self.eintr_every > 0 && n.is_multiple_of(self.eintr_every) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let len = buf.len().min(self.chunk);
        FileExt::read_at(self.file, &mut buf[..len], offset)
    }
}

fn choppy<'a>(u: &mut Unstructured<'_>, file: &'a File) -> Result<Choppy<'a>> {
    Ok(Choppy {
        file,
        chunk: 1 + usize::from(u.arbitrary::<u16>()?),
        // Never every call: read_full rightly retries EINTR for as long as it comes.
        eintr_every: match u.int_in_range(0u8..=7)? {
            n @ 2.. => u32::from(n),
            _ => 0,
        },
        calls: Cell::new(0),
    })
}

/// A buffer length: usually the right one, sometimes one off or anything small.
fn buffer_len(u: &mut Unstructured<'_>, total: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => total + 1,
        1 => total.saturating_sub(1),
        2 => usize::from(u.arbitrary::<u8>()?),
        _ => total,
    })
}

fn read_both_ways(u: &mut Unstructured<'_>, case: &Case) -> Result<()> {
    set_content(&case.initial);
    let total = case.pieces.total_bytes() as usize;
    let expected = read_one_by_one(&case.initial, &case.pieces);
    let valid = case.cfg.validate().is_ok();
    for via in [false, true] {
        let len = buffer_len(u, total)?;
        let mut buf = vec![0xA5u8; len];
        let reader = choppy(u, file())?;
        let got = if via {
            sieve::read_via(&reader, PATH, &case.pieces, &mut buf, &case.cfg)
        } else {
            sieve::read(file(), PATH, &case.pieces, &mut buf, &case.cfg)
        };
        let context = || {
            format!(
                "read (via a short-read reader: {via}) of {:?}, file length {}, {:?}",
                case.pieces.as_slice(),
                case.initial.len(),
                case.cfg
            )
        };
        if !valid || len != total {
            assert!(
                matches!(got, Err(Error::InvalidArgument(_))),
                "{}: {got:?}",
                context()
            );
            continue;
        }
        match (&expected, got) {
            (Ok(bytes), Ok(stats)) => {
                assert!(bytes == &buf, "{}: different bytes", context());
                check_read_stats(&case.pieces, &case.cfg, &stats);
            }
            (
                Err((offset, wanted, got)),
                Err(Error::ShortRead {
                    path,
                    offset: o,
                    wanted: w,
                    got: g,
                }),
            ) => {
                assert_eq!(path, PATH);
                assert_eq!((o, w, g), (*offset, *wanted, *got), "{}", context());
            }
            (expected, got) => panic!("{}: {got:?}, expected {expected:?}", context()),
        }
    }
    // Reads change nothing.
    assert!(content() == case.initial, "a read changed the file");
    Ok(())
}

fn check_read_stats(pieces: &Pieces, cfg: &SieveConfig, stats: &Stats) {
    let plan = sieve::plan(pieces, cfg.read_buffer, cfg.read, Access::Read);
    assert_eq!((stats.method, stats.reason), (plan.method, plan.reason));
    assert_eq!(stats.bytes_written, 0);
    assert!(stats.bytes_read >= pieces.total_bytes(), "{stats:?}");
    if plan.method == Method::Pieces {
        assert_eq!(stats.windows, 0);
        assert_eq!(stats.bytes_read, pieces.total_bytes());
    } else {
        assert_eq!(stats.windows, plan.windows as u64, "{stats:?} {plan:?}");
    }
}

fn check_write_stats(case: &Case, stats: &Stats, covered: bool) {
    let plan = sieve::plan(
        &case.pieces,
        case.cfg.write_buffer,
        case.cfg.write,
        Access::Write,
    );
    assert_eq!((stats.method, stats.reason), (plan.method, plan.reason));
    let total = case.pieces.total_bytes();
    match plan.method {
        Method::Pieces => {
            assert_eq!(stats.windows, 0);
            assert_eq!(stats.bytes_read, 0);
            assert_eq!(stats.bytes_written, total);
            assert_eq!(stats.io_calls, plan.piece_io_calls);
        }
        Method::Sieve => {
            assert_eq!(stats.windows, plan.windows as u64);
            assert!(stats.bytes_written >= total);
            if let Some(e) = case.pieces.extent() {
                assert!(stats.bytes_written <= e.len(), "{stats:?}");
            }
            // A file that holds the whole extent is read with one call per window.
            if covered {
                assert_eq!(stats.io_calls, plan.sieve_io_calls, "{stats:?} {plan:?}");
            }
        }
    }
}

fn write_both_ways(u: &mut Unstructured<'_>, case: &Case) -> Result<()> {
    let expected = written_one_by_one(&case.initial, &case.pieces, &case.data);
    let valid = case.cfg.validate().is_ok();
    let covered = case
        .pieces
        .extent()
        .is_none_or(|e| e.end() <= case.initial.len() as u64);
    let context = |how: &str| {
        format!(
            "{how} of {:?}, file length {}, {:?}",
            case.pieces.as_slice(),
            case.initial.len(),
            case.cfg
        )
    };

    // sieve::write, with the right data or a wrong length.
    set_content(&case.initial);
    let len = buffer_len(u, case.data.len())?;
    let mut data = case.data.clone();
    data.resize(len, 0x5A);
    let got = sieve::write(file(), PATH, &case.pieces, &data, &case.cfg);
    if !valid || len != case.data.len() {
        assert!(
            matches!(got, Err(Error::InvalidArgument(_))),
            "{}: {got:?}",
            context("write")
        );
        assert!(
            content() == case.initial,
            "{}: a refused write changed the file",
            context("write")
        );
    } else {
        let stats = got.unwrap_or_else(|e| panic!("{}: {e}", context("write")));
        let now = content();
        assert_eq!(
            now.len(),
            expected.len(),
            "{}: file length",
            context("write")
        );
        if let Some(i) = now.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!(
                "{}: byte {i} is {} instead of {}",
                context("write"),
                now[i],
                expected[i]
            );
        }
        check_write_stats(case, &stats, covered);
    }

    // sieve::write_planned through a short-read reader, under a guard that records each write.
    if !valid {
        return Ok(());
    }
    set_content(&case.initial);
    let plan = sieve::plan(
        &case.pieces,
        case.cfg.write_buffer,
        case.cfg.write,
        Access::Write,
    );
    let reader = choppy(u, file())?;
    let fail_at = if u.ratio(1u8, 8u8)? {
        Some(u.int_in_range(0usize..=8)?)
    } else {
        None
    };
    let mut guard = Recorder {
        calls: Vec::new(),
        fail_at,
    };
    let io = Io {
        read: &reader,
        write: file(),
    };
    let got = sieve::write_planned(
        io,
        PATH,
        &case.pieces,
        &case.data,
        &case.cfg,
        &plan,
        &mut guard,
    );
    if let Some(n) = fail_at.filter(|&n| n < guard.calls.len()) {
        match got {
            Err(Error::InvalidArgument(msg)) if msg == GUARD_FAILED => {}
            other => panic!(
                "{}: guard failed at call {n}, got {other:?}",
                context("write_planned")
            ),
        }
        assert_eq!(
            guard.calls.len(),
            n + 1,
            "write_planned went on after its guard failed"
        );
        return Ok(());
    }
    let stats = got.unwrap_or_else(|e| panic!("{}: {e}", context("write_planned")));
    assert!(
        content() == expected,
        "{}: file differs from piece by piece",
        context("write_planned")
    );
    check_write_stats(case, &stats, false);
    check_guard_calls(case, &plan, &guard.calls);

    // With ExtentHeld and the file itself, write_planned is write().
    set_content(&case.initial);
    let again = sieve::write_planned(
        Io::file(file()),
        PATH,
        &case.pieces,
        &case.data,
        &case.cfg,
        &plan,
        &mut ExtentHeld,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", context("write_planned(ExtentHeld)")));
    assert!(content() == expected);
    check_write_stats(case, &again, covered);
    Ok(())
}

const GUARD_FAILED: &str = "the fuzz guard fails here";

/// A [`WindowGuard`] that records `(start, end, rmw)` of each write and can fail one.
struct Recorder {
    calls: Vec<(u64, u64, bool)>,
    fail_at: Option<usize>,
}

impl WindowGuard for Recorder {
    fn around(
        &mut self,
        start: u64,
        end: u64,
        rmw: bool,
        io: &mut dyn FnMut() -> brlock::Result<()>,
    ) -> brlock::Result<()> {
        self.calls.push((start, end, rmw));
        if self.fail_at == Some(self.calls.len() - 1) {
            return Err(Error::InvalidArgument(GUARD_FAILED.into()));
        }
        io()
    }
}

/// The guard saw each run once: alone (`rmw` false, exactly the run) or in a
/// read-modify-write window from a run's start to a later run's end, at most the write buffer
/// long, in file order.
fn check_guard_calls(case: &Case, plan: &sieve::Plan, calls: &[(u64, u64, bool)]) {
    let runs = runs(&case.pieces);
    let mut next = 0usize;
    let mut windows = 0usize;
    for &(start, end, rmw) in calls {
        assert!(
            next < runs.len(),
            "guard call {start}..{end} after the last run"
        );
        assert_eq!(
            start, runs[next].0,
            "a guarded write does not start at run {next}"
        );
        if rmw {
            windows += 1;
            assert!(
                end - start <= case.cfg.write_buffer as u64,
                "window {start}..{end} spans more than the buffer"
            );
            let first = next;
            while next < runs.len() && runs[next].1 <= end {
                next += 1;
            }
            assert!(next - first >= 2, "a read-modify-write window of one run");
            assert_eq!(
                runs[next - 1].1,
                end,
                "window {start}..{end} does not end at a run's end"
            );
        } else {
            assert_eq!(end, runs[next].1, "a plain write is not exactly run {next}");
            next += 1;
        }
    }
    assert_eq!(next, runs.len(), "runs left unwritten");
    assert_eq!(
        windows,
        if plan.method == Method::Sieve {
            plan.windows
        } else {
            0
        }
    );
}
