//! Self-checks of the MPI-IO layer, run by `tests/mpiio.rs` under `mpirun`; also a worked
//! example of [`brlock::sys::MpiFile`].
//!
//! ```sh
//! cargo build --examples
//! mpirun -n 2 target/debug/examples/mpiio_checks sys /tmp/somedir
//! mpirun -n 2 --mca io romio321 target/debug/examples/mpiio_checks sys /tmp/somedir
//! mpirun -n 2 target/debug/examples/mpiio_checks missing /tmp/somedir
//! ```
//!
//! `sys DIR` (the [`MpiFile`] layer) and `io DIR` ([`MpiIoFile`] as a [`ParallelFile`]) run
//! their checks in `DIR` and prints one JSON object on rank 0:
//! `{"ok": bool, "ranks": P, "checks": {name: bool}, "failures": [...], "info": {...}, ...}`;
//! the exit status is 0 only if every check passed. `missing DIR` opens a file that does not
//! exist and reports the error as one line, `brlock: error: ...`, exit status 1.
//! `bench DIR` / `bench-atomic DIR` time 200 overlapping 4 KiB `MPI_File_write_at` calls per
//! rank (all at offset 0) outside or inside atomic mode, and print the mean time per write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brlock::io::mpiio::MpiIoFile;
use brlock::io::{ParallelFile, Pieces};
use brlock::runtime::Runtime;
use brlock::sys::{type_map, MpiFile, OpenMode};
use brlock::view::FileView;
use mpi::collective::CommunicatorCollectives;
use mpi::datatype::UserDatatype;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::Equivalence;
use serde_json::{json, Value};

/// Byte value of the never-written gaps.
const FILL: u8 = 0xEE;

/// Results of one run: named checks, and what went wrong.
#[derive(Default)]
struct Report {
    checks: BTreeMap<String, bool>,
    failures: Vec<String>,
    facts: BTreeMap<String, Value>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        let entry = self.checks.entry(name.to_string()).or_insert(true);
        *entry &= ok;
        if !ok {
            self.failures.push(format!("{name}: {}", detail()));
        }
    }

    fn fact(&mut self, name: &str, v: impl Into<Value>) {
        self.facts.insert(name.to_string(), v.into());
    }
}

fn main() -> ExitCode {
    let rt = match Runtime::init() {
        Ok(rt) => rt,
        Err(e) => {
            error_line(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    // The library logs through `tracing`; show its events on stderr, filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (what, dir) = match args.as_slice() {
        [what, dir] => (what.as_str(), PathBuf::from(dir)),
        _ => {
            error_line("usage: mpiio_checks sys|io|types|missing|bench|bench-atomic DIR");
            return ExitCode::from(2);
        }
    };
    let world = rt.world();
    match what {
        "missing" => {
            let path = dir.join("no-such-dir").join("no-such-file");
            let line = match MpiFile::open(world, &path, OpenMode::ReadWrite, &[]) {
                Ok(f) => {
                    let _ = f.close();
                    format!("{} opened, yet it should not exist", path.display())
                }
                Err(e) => e.to_string(),
            };
            error_line(&line);
            // Every rank reports before any exits (the launcher kills the others at the
            // first non-zero exit).
            world.barrier();
            ExitCode::FAILURE
        }
        "sys" | "io" | "types" => {
            let mut report = Report::default();
            let run = match what {
                "sys" => sys_checks(world, &dir, &mut report),
                "io" => io_checks(world, &dir, &mut report),
                _ => type_checks(&mut report),
            };
            if let Err(e) = run {
                report.check("no_errors", false, || e.to_string());
            }
            finish(world, report)
        }
        "bench" | "bench-atomic" => match bench(world, &dir, what == "bench-atomic") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error_line(&e.to_string());
                ExitCode::FAILURE
            }
        },
        other => {
            error_line(&format!("unknown check set {other:?}"));
            ExitCode::from(2)
        }
    }
}

/// Derived datatypes flattened to their byte runs, each against the runs its constructor
/// implies, and the type maps MPI forbids for filetypes refused.
fn type_checks(report: &mut Report) -> brlock::Result<()> {
    let int = i32::equivalent_datatype();
    let byte = u8::equivalent_datatype();
    let runs = |ty: &UserDatatype| {
        type_map(ty).map(|m| {
            (
                m.runs.iter().map(|p| (p.offset, p.len)).collect::<Vec<_>>(),
                m.extent,
            )
        })
    };
    let mut expect = |name: &str, ty: UserDatatype, want: (Vec<(u64, u64)>, u64)| {
        let got = runs(&ty);
        report.check(name, got.as_ref().ok() == Some(&want), || {
            format!("{got:?}, expected {want:?}")
        });
    };
    expect(
        "contiguous",
        UserDatatype::contiguous(5, &int),
        (vec![(0, 20)], 20),
    );
    // 3 blocks of 2 ints every 4 ints: the extent ends with the last block.
    expect(
        "vector",
        UserDatatype::vector(3, 2, 4, &int),
        (vec![(0, 8), (16, 8), (32, 8)], 40),
    );
    // Adjacent blocks merge; the type starts at byte 3.
    expect(
        "indexed",
        UserDatatype::indexed(&[2, 3, 1], &[3, 5, 10], &byte),
        (vec![(3, 5), (10, 1)], 8),
    );
    expect(
        "struct",
        UserDatatype::structured(&[4, 2], &[8, 100], &[byte, byte]),
        (vec![(8, 4), (100, 2)], 94),
    );
    let refused =
        |ty: UserDatatype, why: &str| type_map(&ty).is_err_and(|e| e.to_string().contains(why));
    report.check(
        "overlap_refused",
        refused(
            UserDatatype::indexed(&[2, 2], &[0, 1], &byte),
            "more than once",
        ),
        || "an indexed type covering byte 1 twice was flattened".into(),
    );
    // Blocks swapped by exactly 256 bytes: a pattern of only the position's low byte would
    // not see it.
    report.check(
        "decreasing_refused",
        refused(
            UserDatatype::structured(&[256, 256], &[256, 0], &[byte, byte]),
            "monotonically",
        ),
        || "a struct with decreasing displacements was flattened".into(),
    );
    // Rank r of 4 owning 2-int blocks of a strided view of ints from displacement 64.
    let filetype = type_map(&UserDatatype::vector(1, 2, 8, &int))?;
    let mut map = filetype.clone();
    map.extent = 32;
    let view = FileView::new(64, 4, map)?;
    let pieces: Vec<(u64, u64)> = view
        .pieces(1, 16)?
        .iter()
        .map(|p| (p.offset, p.len))
        .collect();
    report.check(
        "vector_view_access",
        pieces == [(68, 4), (96, 8), (128, 4)],
        || format!("{pieces:?}"),
    );
    Ok(())
}

/// Writes `brlock: error: LINE` to stderr in one piece (so the launcher does not split it).
fn error_line(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("brlock: error: {line}\n").as_bytes());
}

/// Gathers every rank's checks (a check passes if it passed everywhere), prints the JSON on
/// rank 0, and returns the exit status.
fn finish(world: &SimpleCommunicator, report: Report) -> ExitCode {
    let ok_here = i32::from(report.checks.values().all(|&ok| ok));
    let mut ok_all = 0i32;
    world.all_reduce_into(
        &ok_here,
        &mut ok_all,
        mpi::collective::SystemOperation::min(),
    );
    for f in &report.failures {
        error_line(&format!("rank {}: check failed: {f}", world.rank()));
    }
    if world.rank() == 0 {
        let out = json!({
            "ok": ok_all == 1,
            "ranks": world.size(),
            "checks": report.checks,
            "failures": report.failures,
            "facts": report.facts,
        });
        println!("{out}");
    }
    if ok_all == 1 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Write, sync, barrier, sync: what MPI's consistency rules ask between one rank's write and
/// another rank's read outside atomic mode (MPI 3.1 §13.6.10).
fn publish(world: &SimpleCommunicator, file: &mut MpiFile) -> brlock::Result<()> {
    file.sync()?;
    world.barrier();
    file.sync()
}

/// Checks that `all` holds `block` bytes of r + 1 for each rank r in turn.
fn check_blocks(report: &mut Report, all: &[u8], block: u64) {
    let bad = all
        .iter()
        .enumerate()
        .find(|&(i, &b)| b != (i as u64 / block) as u8 + 1);
    report.check("round_trip", bad.is_none(), || format!("{bad:?}"));
}

/// The sys layer on its own: contiguous round trip, end of file, views, atomic mode, info.
fn sys_checks(world: &SimpleCommunicator, dir: &Path, report: &mut Report) -> brlock::Result<()> {
    let rank = world.rank() as u64;
    let ranks = world.size() as u64;
    let mut file = MpiFile::open(world, &dir.join("sys.dat"), OpenMode::Create, &[])?;
    let info = file.info()?;
    report.fact(
        "info",
        info.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
    );

    // Contiguous: rank r writes 1000 bytes of r + 1 at 1000 r; everyone reads everything.
    let block = 1000u64;
    let mine = vec![rank as u8 + 1; block as usize];
    let n = file.write_at(rank * block, &mine)?;
    report.check("write_count", n == mine.len(), || format!("wrote {n}"));
    publish(world, &mut file)?;
    let mut all = vec![0u8; (ranks * block) as usize];
    let n = file.read_at(0, &mut all)?;
    report.check("read_count", n == all.len(), || format!("read {n}"));
    check_blocks(report, &all, block);
    let size = file.size()?;
    report.check("size", size == ranks * block, || format!("size {size}"));

    // The end of the file: a read across it comes back short, a read beyond it empty.
    let mut buf = vec![0u8; 100];
    let n = file.read_at(size - 10, &mut buf)?;
    report.check("short_read_at_eof", n == 10, || format!("read {n}"));
    let n = file.read_at(size + 50, &mut buf)?;
    report.check("read_beyond_eof", n == 0, || format!("read {n}"));
    let n = file.read_at(0, &mut [])?;
    report.check("empty_read", n == 0, || format!("read {n}"));

    // Atomic mode round trip.
    for atomic in [true, false] {
        file.set_atomicity(atomic)?;
        let got = file.atomicity()?;
        report.check("atomicity_round_trip", got == atomic, || {
            format!("set {atomic}, got {got}")
        });
    }

    // Every rank has seen the size before rank 0 extends the file below.
    world.barrier();

    // Views: a strided one (hvector) and an irregular one (hindexed), each rank its own
    // displacement; the gaps must stay untouched.
    let base = size;
    let tile = 2 * ranks * 16;
    let strided = Pieces::strided(0, 16, tile, 8)?;
    let irregular = Pieces::new([(0, 3), (5, 1), (9, 4)])?;
    // (name, shape, start of the region, shift of each rank's displacement, region length)
    let views = [
        ("strided_view", &strided, base, 16, 8 * tile),
        ("hindexed_view", &irregular, base + 8 * tile, 13, ranks * 13),
    ];
    for (name, shape, start, shift, span) in views {
        let disp = start + rank * shift;
        if rank == 0 {
            file.write_at(start, &vec![FILL; span as usize])?;
        }
        publish(world, &mut file)?;
        file.set_view_pieces(disp, shape)?;
        let data: Vec<u8> = (0..shape.total_bytes())
            .map(|i| 0x40 + (rank as u8) * 16 + (i % 16) as u8)
            .collect();
        let n = file.write_at(0, &data)?;
        report.check(name, n == data.len(), || {
            format!("wrote {n} through the view")
        });
        let mut back = vec![0u8; data.len()];
        let n = file.read_at(0, &mut back)?;
        report.check(name, n == data.len() && back == data, || {
            format!("read back {n} bytes through the view: {back:?}")
        });
        file.reset_view()?;
        publish(world, &mut file)?;
        let mut region = vec![0u8; span as usize];
        let n = file.read_at(start, &mut region)?;
        report.check(name, n == region.len(), || {
            format!("read {n} of the region")
        });
        // Expected content: every rank's pieces, FILL elsewhere.
        let mut expected = vec![FILL; span as usize];
        for r in 0..ranks {
            let disp_r = r * shift;
            let mut i = 0u64;
            for p in shape {
                for k in 0..p.len {
                    expected[(disp_r + p.offset + k) as usize] =
                        0x40 + (r as u8) * 16 + (i % 16) as u8;
                    i += 1;
                }
            }
        }
        let diff = region.iter().zip(&expected).position(|(a, b)| a != b);
        report.check(name, diff.is_none(), || {
            format!("byte {diff:?} of the region differs (gaps must be untouched)")
        });
    }

    // A view read that runs past the end of the file: how many bytes MPI says it read.
    let end = file.size()?;
    file.set_view_pieces(end - 20, &strided)?;
    let mut buf = vec![0u8; strided.total_bytes() as usize];
    let n = file.read_at(0, &mut buf)?;
    report.fact("view_read_past_eof_count", n);
    report.fact("view_read_past_eof_asked", buf.len());
    file.reset_view()?;

    // An empty view is refused before MPI sees it.
    let empty = file.set_view_pieces(0, &Pieces::default());
    report.check(
        "empty_view_rejected",
        matches!(empty, Err(brlock::Error::InvalidArgument(_))),
        || format!("{empty:?}"),
    );
    file.close()
}

/// `MpiIoFile` through the `ParallelFile` trait: typed short reads, per-rank views with the
/// restriction to prepared pieces, and the collective agreement on atomic mode.
fn io_checks(world: &SimpleCommunicator, dir: &Path, report: &mut Report) -> brlock::Result<()> {
    let rank = world.rank() as u64;
    let ranks = world.size() as u64;
    let path = dir.join("io.dat");
    let mut file = MpiIoFile::open(world, &path, &[("romio_ds_write", "enable")])?;
    report.fact("implementation", file.implementation().name());
    report.fact(
        "ignores_atomicity",
        file.implementation().ignores_atomicity(),
    );
    let publish = |file: &mut MpiIoFile| -> brlock::Result<()> {
        file.sync()?;
        world.barrier();
        file.sync()
    };

    // Contiguous round trip and a typed short read at the end of the file.
    let block = 1000u64;
    file.write_at(rank * block, &vec![rank as u8 + 1; block as usize])?;
    publish(&mut file)?;
    let mut all = vec![0u8; (ranks * block) as usize];
    file.read_at(0, &mut all)?;
    check_blocks(report, &all, block);
    let size = file.size()?;
    let short = file.read_at(size - 10, &mut [0u8; 100]);
    report.check(
        "short_read_is_typed",
        matches!(
            short,
            Err(brlock::Error::ShortRead { offset, wanted: 100, got: 10, .. }) if offset == size - 10
        ),
        || format!("{short:?}"),
    );
    world.barrier();

    // Noncontiguous: rank r writes 4-byte ints at base + 4 r + i * 8 P, each rank from its own
    // start; the other half of each tile stays untouched.
    let base = size;
    let tile = 2 * ranks * 4;
    let count = 64;
    if rank == 0 {
        file.write_at(base, &vec![FILL; (count * tile) as usize])?;
    }
    publish(&mut file)?;
    let pieces = Pieces::strided(base + rank * 4, 4, tile, count)?;
    file.prepare_pieces(&pieces)?;
    let data: Vec<u8> = (0..pieces.total_bytes())
        .map(|i| 0x10 * (rank as u8 + 1) + (i % 4) as u8)
        .collect();
    file.write_pieces(&pieces, &data)?;
    let mut back = vec![0u8; data.len()];
    file.read_pieces(&pieces, &mut back)?;
    report.check("pieces_round_trip", back == data, || format!("{back:?}"));

    let other = Pieces::strided(base + rank * 4 + tile, 4, tile, count - 1)?;
    let wrong = file.write_pieces(&other, &data[..other.total_bytes() as usize]);
    report.check(
        "unprepared_pieces_refused",
        matches!(&wrong, Err(brlock::Error::InvalidArgument(m)) if m.contains("prepare_pieces")),
        || format!("{wrong:?}"),
    );
    let contiguous = file.read_at(0, &mut [0u8; 4]);
    report.check(
        "contiguous_refused_under_a_view",
        matches!(&contiguous, Err(brlock::Error::InvalidArgument(_))),
        || format!("{contiguous:?}"),
    );

    file.prepare_pieces(&Pieces::default())?;
    publish(&mut file)?;
    let mut region = vec![0u8; (count * tile) as usize];
    file.read_at(base, &mut region)?;
    let expected: Vec<u8> = (0..count * tile)
        .map(|k| {
            let in_tile = k % tile;
            if in_tile < ranks * 4 {
                0x10 * ((in_tile / 4) as u8 + 1) + (k % 4) as u8
            } else {
                FILL
            }
        })
        .collect();
    let diff = region.iter().zip(&expected).position(|(a, b)| a != b);
    report.check("pieces_land_and_gaps_untouched", diff.is_none(), || {
        format!("byte {diff:?} of the region differs")
    });

    // A noncontiguous read past the end of the file is a typed short read, under ROMIO too
    // (which reports the full count for noncontiguous reads).
    world.barrier();
    let end = file.size()?;
    let tail = Pieces::strided(end - 6, 4, 8, 3)?;
    file.prepare_pieces(&tail)?;
    let short = file.read_pieces(&tail, &mut [0u8; 12]);
    report.check(
        "short_read_pieces_is_typed",
        matches!(
            short,
            Err(brlock::Error::ShortRead { offset, wanted: 4, got: 0, .. }) if offset == end + 2
        ),
        || format!("end {end}: {short:?}"),
    );
    file.prepare_pieces(&Pieces::default())?;

    // Atomic mode: agreed on, and a disagreement changes nothing on any rank.
    for atomic in [true, false] {
        file.set_atomicity(atomic)?;
        report.check("atomicity_agreed", file.atomicity() == atomic, || {
            format!("set {atomic}, reads {}", file.atomicity())
        });
    }
    let disagree = file.set_atomicity(rank == 0);
    report.check(
        "atomicity_disagreement_refused",
        matches!(&disagree, Err(brlock::Error::InvalidArgument(m)) if m.contains("ranks disagree on atomic mode"))
            && !file.atomicity(),
        || format!("{disagree:?}, atomicity {}", file.atomicity()),
    );
    file.close()
}

/// Mean time of one overlapping 4 KiB write, every rank writing at offset 0 at once.
fn bench(world: &SimpleCommunicator, dir: &Path, atomic: bool) -> brlock::Result<()> {
    const WRITES: u32 = 200;
    let mut file = MpiIoFile::open(world, &dir.join("bench.dat"), &[])?;
    file.set_atomicity(atomic)?;
    let data = vec![world.rank() as u8; 4096];
    world.barrier();
    let start = std::time::Instant::now();
    for _ in 0..WRITES {
        file.write_at(0, &data)?;
    }
    let mine = start.elapsed().as_secs_f64();
    let mut slowest = 0f64;
    world.all_reduce_into(&mine, &mut slowest, mpi::collective::SystemOperation::max());
    if world.rank() == 0 {
        let out = json!({
            "implementation": file.implementation().name(),
            "atomic": atomic,
            "ranks": world.size(),
            "dir": dir.display().to_string(),
            "us_per_write": slowest / f64::from(WRITES) * 1e6,
        });
        println!("{out}");
    }
    file.close()
}
