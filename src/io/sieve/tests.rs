//! Sieved I/O checked against the obvious implementation: one `pwrite`/`pread` per piece, in
//! order, written here independently of the module.

use super::*;
use crate::check::workload::Rng;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh path in a per-process scratch directory under the system temp dir.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("brlock-sieve-tests.{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir.join(format!("{tag}-{}", N.fetch_add(1, Ordering::Relaxed)))
}

/// Creates `path` holding `content` and opens it for reading and writing.
fn file_with(path: &Path, content: &[u8]) -> File {
    std::fs::write(path, content).expect("write initial content");
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open")
}

/// The oracle for writes: each piece with its own `pwrite`, in order.
fn write_one_by_one(file: &File, pieces: &Pieces, data: &[u8]) {
    let mut at = 0usize;
    for p in pieces {
        let n = p.len as usize;
        file.write_all_at(&data[at..at + n], p.offset)
            .expect("pwrite");
        at += n;
    }
}

/// The oracle for reads: the pieces cut out of the file's content, or (offset, wanted, got)
/// of the first piece the file does not hold entirely.
fn read_one_by_one(
    content: &[u8],
    pieces: &Pieces,
) -> std::result::Result<Vec<u8>, (u64, u64, u64)> {
    let mut out = Vec::new();
    for p in pieces {
        let len = content.len() as u64;
        if p.end() > len {
            return Err((p.offset, p.len, len.saturating_sub(p.offset)));
        }
        out.extend_from_slice(&content[p.offset as usize..p.end() as usize]);
    }
    Ok(out)
}

/// `Ok` if the two files hold the same bytes; else what differs first.
fn compare_files(expected: &Path, got: &Path) -> std::result::Result<(), String> {
    let e = std::fs::read(expected).expect("read expected");
    let g = std::fs::read(got).expect("read got");
    if e.len() != g.len() {
        return Err(format!("length {} instead of {}", g.len(), e.len()));
    }
    match e.iter().zip(&g).position(|(a, b)| a != b) {
        Some(i) => Err(format!("byte {i} is {} instead of {}", g[i], e[i])),
        None => Ok(()),
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

/// One random access: pieces, the initial file content (its length before, inside or after
/// the extent), the data to write, a buffer size and a policy.
struct Case {
    pieces: Pieces,
    initial: Vec<u8>,
    data: Vec<u8>,
    cfg: SieveConfig,
}

fn random_case(rng: &mut Rng) -> Case {
    let count = rng.below(40);
    let max_gap = pick(rng, &[1u64, 4, 64, 2000]);
    let max_len = pick(rng, &[1u64, 8, 100, 3000]);
    let mut at = rng.below(5000);
    let mut pairs = Vec::new();
    for _ in 0..count {
        // Gap 0 now and then: adjacent pieces, which the module merges into runs.
        at += if rng.below(4) == 0 {
            0
        } else {
            rng.below(max_gap)
        };
        let len = 1 + rng.below(max_len);
        pairs.push((at, len));
        at += len;
    }
    let pieces = Pieces::new(pairs).expect("valid pieces");
    let (start, end) = pieces.extent().map_or((0, 0), |e| (e.start(), e.end()));
    let file_len = match rng.below(5) {
        0 => 0,
        1 => rng.below(start + 1),
        2 => start + rng.below(end - start + 1),
        3 => end,
        _ => end + rng.below(3000),
    };
    let initial = random_bytes(rng, file_len as usize);
    let data = random_bytes(rng, pieces.total_bytes() as usize);
    let buffer = pick(rng, &[1usize, 2, 16, 64, 1126, 4096, DEFAULT_WRITE_BUFFER]);
    let policy = pick(
        rng,
        &[SievePolicy::Always, SievePolicy::Never, SievePolicy::Auto],
    );
    let cfg = SieveConfig {
        write_buffer: buffer,
        read_buffer: buffer,
        write: policy,
        read: policy,
    };
    Case {
        pieces,
        initial,
        data,
        cfg,
    }
}

/// Writes `case` both ways; `Err` describes how the sieved file differs from the oracle's.
fn check_write(case: &Case, fill_to_window_end: bool) -> std::result::Result<Stats, String> {
    let (a, b) = (scratch("oracle"), scratch("sieved"));
    write_one_by_one(&file_with(&a, &case.initial), &case.pieces, &case.data);
    let stats = write_impl(
        &file_with(&b, &case.initial),
        "sieved",
        &case.pieces,
        &case.data,
        &case.cfg,
        fill_to_window_end,
    )
    .map_err(|e| format!("sieved write failed: {e}"))?;
    let verdict = compare_files(&a, &b);
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    verdict.map(|()| stats)
}

#[test]
fn sieved_write_matches_piecewise_on_random_accesses() {
    let mut rng = Rng::new(0x51E7E, 0);
    let mut sieved_windows = 0;
    for i in 0..600 {
        let case = random_case(&mut rng);
        match check_write(&case, false) {
            Ok(stats) => sieved_windows += stats.windows,
            Err(why) => panic!(
                "case {i}: {why}; pieces {:?}, file length {}, config {:?}",
                case.pieces.as_slice(),
                case.initial.len(),
                case.cfg
            ),
        }
    }
    // The property is only worth something if many windows were really sieved.
    assert!(sieved_windows > 250, "only {sieved_windows} windows sieved");
}

#[test]
fn sieved_read_matches_piecewise_on_random_accesses() {
    let mut rng = Rng::new(0x51E7E, 1);
    let (mut sieved_windows, mut short_reads) = (0, 0);
    for i in 0..600 {
        let case = random_case(&mut rng);
        let path = scratch("read");
        let file = file_with(&path, &case.initial);
        let mut buf = vec![0u8; case.pieces.total_bytes() as usize];
        let got = read(&file, "read", &case.pieces, &mut buf, &case.cfg);
        let context = format!(
            "case {i}: pieces {:?}, file length {}, config {:?}",
            case.pieces.as_slice(),
            case.initial.len(),
            case.cfg
        );
        match (read_one_by_one(&case.initial, &case.pieces), got) {
            (Ok(expected), Ok(stats)) => {
                assert!(expected == buf, "{context}: different bytes");
                sieved_windows += stats.windows;
            }
            (
                Err(expected),
                Err(Error::ShortRead {
                    offset,
                    wanted,
                    got,
                    ..
                }),
            ) => {
                assert_eq!(expected, (offset, wanted, got), "{context}");
                short_reads += 1;
            }
            (expected, got) => panic!("{context}: expected {expected:?}, got {got:?}"),
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(sieved_windows > 100, "only {sieved_windows} windows sieved");
    assert!(short_reads > 50, "only {short_reads} short reads");
}

/// Pieces straddling the end of file and one beyond it after a hole, sieved through 1.1 KiB
/// windows that reach past the end of file.
fn near_eof_case() -> Case {
    let mut rng = Rng::new(7, 0);
    let pairs = (0..40)
        .map(|i| (900 + 16 * i, 4))
        .chain([(1700, 10), (1750, 3)]);
    let pieces = Pieces::new(pairs).expect("valid pieces");
    Case {
        data: random_bytes(&mut rng, pieces.total_bytes() as usize),
        pieces,
        initial: random_bytes(&mut rng, 1000),
        cfg: SieveConfig {
            write_buffer: 1126,
            write: SievePolicy::Always,
            ..SieveConfig::default()
        },
    }
}

#[test]
fn sieved_write_near_eof_matches_piecewise() {
    let case = near_eof_case();
    let stats = check_write(&case, false).unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(stats.method, Method::Sieve);
    assert!(stats.windows >= 1, "no window was sieved: {stats:?}");
    // And the file is exactly as long as the last piece makes it.
    let path = scratch("eof");
    let file = file_with(&path, &case.initial);
    write(&file, "eof", &case.pieces, &case.data, &case.cfg).expect("write");
    let len = std::fs::metadata(&path).expect("metadata").len();
    assert_eq!(len, 1753);
}

#[test]
fn negative_control_fill_to_window_end_is_caught() {
    // The checker must be able to fail: writing each window back to its full buffer length
    // writes fill bytes past the end of file.
    let case = near_eof_case();
    let why = check_write(&case, true).expect_err("the faulty write-back went unnoticed");
    assert!(why.starts_with("length "), "{why}");
    // And on random accesses it is caught often.
    let mut rng = Rng::new(0x51E7E, 2);
    let caught = (0..300)
        .map(|_| random_case(&mut rng))
        .filter(|c| check_write(c, true).is_err())
        .count();
    assert!(caught > 20, "the fault was caught only {caught} times");
}

fn strided_plan(block: u64, stride: u64, count: u64, buffer: usize, access: Access) -> Plan {
    let p = Pieces::strided(0, block, stride, count).expect("valid");
    plan(&p, buffer, SievePolicy::Auto, access)
}

#[test]
fn plan_sieves_dense_accesses() {
    let p = strided_plan(64, 256, 4096, DEFAULT_WRITE_BUFFER, Access::Write);
    assert_eq!(
        (p.method, p.reason),
        (Method::Sieve, Reason::SavesRoundTrips)
    );
    assert_eq!((p.pieces, p.runs, p.windows), (4096, 4096, 2));
    assert!((p.density - 0.25).abs() < 0.01, "{p:?}");
    assert_eq!(p.sieve_io_calls, 4);
    assert_eq!(p.piece_io_calls, 4096);
}

#[test]
fn plan_goes_piece_by_piece_for_sparse_accesses() {
    // 8 bytes every 64 KiB: a 512 KiB window holds 8 pieces and moves 1 MiB to save 6
    // round trips.
    let p = strided_plan(8, 64 << 10, 64, DEFAULT_WRITE_BUFFER, Access::Write);
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::GapsCostMore));
    // Every 1 MiB: no window holds two pieces.
    let p = strided_plan(8, 1 << 20, 64, DEFAULT_WRITE_BUFFER, Access::Write);
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::WideGaps));
    assert_eq!(p.windows, 0);
}

#[test]
fn plan_goes_piece_by_piece_for_huge_and_contiguous_accesses() {
    let p = strided_plan(1 << 20, 2 << 20, 8, DEFAULT_WRITE_BUFFER, Access::Write);
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::HugePieces));
    let p = strided_plan(100, 100, 50, 16, Access::Write);
    assert_eq!(
        (p.method, p.reason, p.runs),
        (Method::Pieces, Reason::Contiguous, 1)
    );
    let p = plan(&Pieces::default(), 16, SievePolicy::Auto, Access::Read);
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::Contiguous));
}

#[test]
fn plan_needs_more_pieces_per_window_for_writes_than_for_reads() {
    // Two dense runs per window: one read saves a round trip, a read-modify-write does not.
    let p = strided_plan(64, 128, 2, 256, Access::Read);
    assert_eq!(p.method, Method::Sieve);
    let p = strided_plan(64, 128, 2, 256, Access::Write);
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::GapsCostMore));
    let p = strided_plan(64, 128, 3, 320, Access::Write);
    assert_eq!(p.method, Method::Sieve);
}

#[test]
fn plan_obeys_forcing_policies() {
    let sparse = Pieces::strided(0, 8, 1 << 20, 4).expect("valid");
    let p = plan(&sparse, 16, SievePolicy::Always, Access::Write);
    assert_eq!((p.method, p.reason), (Method::Sieve, Reason::Forced));
    let dense = Pieces::strided(0, 64, 256, 100).expect("valid");
    let p = plan(
        &dense,
        DEFAULT_WRITE_BUFFER,
        SievePolicy::Never,
        Access::Write,
    );
    assert_eq!((p.method, p.reason), (Method::Pieces, Reason::Forced));
}

#[test]
fn dense_write_uses_two_calls_per_window() {
    let path = scratch("stats");
    let file = file_with(&path, &[]);
    let pieces = Pieces::strided(0, 64, 256, 64).expect("valid");
    let data = vec![1u8; pieces.total_bytes() as usize];
    let cfg = SieveConfig {
        write_buffer: 4096,
        ..SieveConfig::default()
    };
    let stats = write(&file, "stats", &pieces, &data, &cfg).expect("write");
    // 64 pieces over 16 KiB - 192 bytes: windows of 16 pieces (4096 bytes up to the last
    // piece's end), each an empty read (new file) and one write.
    assert_eq!((stats.method, stats.windows), (Method::Sieve, 4));
    assert_eq!((stats.io_calls, stats.bytes_read), (8, 0));
    assert_eq!(stats.bytes_written, 4 * (15 * 256 + 64));
    let cfg = SieveConfig {
        write: SievePolicy::Never,
        ..cfg
    };
    let stats = write(&file, "stats", &pieces, &data, &cfg).expect("write");
    assert_eq!(
        (stats.windows, stats.io_calls, stats.bytes_written),
        (0, 64, 4096)
    );
}

#[test]
fn buffer_of_the_wrong_length_is_invalid() {
    let path = scratch("badbuf");
    let file = file_with(&path, &[0; 100]);
    let pieces = Pieces::strided(0, 4, 8, 3).expect("valid");
    let cfg = SieveConfig::default();
    let e = write(&file, "badbuf", &pieces, &[0; 11], &cfg).expect_err("accepted");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = read(&file, "badbuf", &pieces, &mut [0; 13], &cfg).expect_err("accepted");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn zero_and_absurd_buffer_sizes_are_invalid() {
    assert!(SieveConfig::default().validate().is_ok());
    for (w, r) in [(0, 1), (1, 0), (MAX_BUFFER + 1, 1), (1, usize::MAX)] {
        let cfg = SieveConfig {
            write_buffer: w,
            read_buffer: r,
            ..SieveConfig::default()
        };
        assert!(
            matches!(cfg.validate(), Err(Error::InvalidArgument(_))),
            "{w} {r}"
        );
    }
    let path = scratch("badcfg");
    let file = file_with(&path, &[0; 100]);
    let pieces = Pieces::strided(0, 4, 8, 3).expect("valid");
    let cfg = SieveConfig {
        write_buffer: 0,
        ..SieveConfig::default()
    };
    let e = write(&file, "badcfg", &pieces, &[0; 12], &cfg).expect_err("accepted");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn short_read_names_the_piece_that_came_up_short() {
    let path = scratch("short");
    let file = file_with(&path, &[7; 100]);
    for policy in [SievePolicy::Always, SievePolicy::Never] {
        let cfg = SieveConfig {
            read: policy,
            read_buffer: 1024,
            ..SieveConfig::default()
        };
        let straddling = Pieces::new([(10, 5), (50, 10), (95, 10), (120, 4)]).expect("valid");
        let mut buf = vec![0; 29];
        match read(&file, "short", &straddling, &mut buf, &cfg) {
            Err(Error::ShortRead {
                path,
                offset,
                wanted,
                got,
            }) => assert_eq!((path.as_str(), offset, wanted, got), ("short", 95, 10, 5)),
            other => panic!("{policy:?}: {other:?}"),
        }
        let beyond = Pieces::new([(10, 5), (120, 4)]).expect("valid");
        let mut buf = vec![0; 9];
        match read(&file, "short", &beyond, &mut buf, &cfg) {
            Err(Error::ShortRead {
                offset,
                wanted,
                got,
                ..
            }) => assert_eq!((offset, wanted, got), (120, 4, 0)),
            other => panic!("{policy:?}: {other:?}"),
        }
    }
}
