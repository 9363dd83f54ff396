//! `brlock bench atomic`: overlapping 4 KiB writes and reads from every rank, through one of
//! the backends `check atomicity` compares.
//!
//! Workload: every rank does `--ops` accesses of 4 KiB at offsets `k * 2048` (k chosen at
//! random, seeded per rank) within a 64 KiB region, so accesses of different ranks overlap.
//! `--mix mixed` (the default) makes each access a write or a read with equal probability,
//! `writes` only writes, `reads` only reads. Each write fills its 4 KiB with one byte value.
//!
//! * `rma`: [`AtomicFile`] in atomic mode (the one-sided lock service, coherence work on
//!   distributed file systems);
//! * `mpiio`: the MPI library's MPI-IO in atomic mode (ROMIO under `--mca io romio321`,
//!   which takes fcntl locks; Open MPI 4's default ompio ignores atomic mode);
//! * `nonatomic` (alias `none`): [`AtomicFile`] with atomic mode and write sieving off: plain
//!   positional I/O, no lock, no coherence work. The floor the atomic backends are measured against.
//!
//! The timed phase runs between barriers. Per-rank latency (`us_per_op`) is the phase's wall
//! time divided by the accesses of one rank; `write_us` and `read_us` are the means of the
//! individually timed accesses of each kind over all ranks. Reads are checked as they go:
//! in atomic mode every 2 KiB-aligned half of a read must hold one byte value (each write
//! covers whole halves); reads that do not are counted as `torn_reads` (reported, not failed:
//! this is a benchmark; `brlock check atomicity` is the check).
//!
//! Without `--file`, rank 0 creates a file in the temporary directory and tells the others its
//! path (so all ranks must share that directory: one node); it is removed afterwards.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::Communicator;
use serde::Serialize;

use super::check_atomicity::{lay_out, open_backend, AtomicBackend, Opened};
use super::{emit, emit_json, library_summary, requested_osc};
use brlock::io::sieve::SievePolicy;
use brlock::io::{Coherence, OpenOptions};
use brlock::runtime::Runtime;
use brlock::workload::Rng;
use brlock::{Error, Result};

/// Bytes of one access.
const ACCESS: usize = 4096;
/// Offsets are multiples of this.
const ALIGN: u64 = 2048;
/// Bytes of the region all accesses fall in.
const REGION: u64 = 64 * 1024;
/// Longest temporary path rank 0 can hand to the others.
const PATH_MAX: usize = 4096;

/// Which accesses `bench atomic` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Writes and reads with equal probability.
    Mixed,
    /// Writes only ("atomic writes").
    Writes,
    /// Reads only.
    Reads,
}

/// Options of `brlock bench atomic`.
#[derive(Debug, Args)]
pub struct AtomicBenchArgs {
    /// How the file is accessed (`nonatomic`: plain I/O, no lock).
    #[arg(long, value_enum, default_value_t = AtomicBackend::Rma)]
    pub backend: AtomicBackend,
    /// The file to use (created if missing; its first 64 KiB are overwritten). Default: a
    /// file rank 0 creates in the temporary directory (single node only), removed afterwards.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The same file through another mount (another client): odd ranks use this path.
    #[arg(long, value_name = "PATH", requires = "file")]
    pub alt_file: Option<PathBuf>,
    /// Accesses per rank.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ops: u64,
    /// Which accesses to make.
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    pub mix: Mix,
    /// Shorthand for `--mix writes`.
    #[arg(long, conflicts_with = "mix")]
    pub writes_only: bool,
    /// Seed of the offsets and of the write/read choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Coherence strategy of --backend rma (default: chosen from the file system type).
    #[arg(long, value_enum)]
    pub coherence: Option<Coherence>,
    /// Print one JSON object (on rank 0) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The report (rank 0).
#[derive(Debug, Serialize)]
struct Report {
    /// Always "atomic".
    bench: &'static str,
    backend: &'static str,
    mix: Mix,
    ranks: i32,
    /// Accesses of all ranks.
    ops: u64,
    ops_per_rank: u64,
    writes: u64,
    reads: u64,
    /// Wall time of the timed phase, barrier to barrier.
    seconds: f64,
    /// `seconds` per access of one rank, in microseconds.
    us_per_op: f64,
    /// Accesses of all ranks per second.
    ops_per_s: f64,
    /// Mean time of one write (all ranks), microseconds; `None` without writes.
    write_us: Option<f64>,
    /// Mean time of one read (all ranks), microseconds; `None` without reads.
    read_us: Option<f64>,
    /// Reads with a 2 KiB half holding more than one byte value.
    torn_reads: u64,
    atomic: bool,
    /// What it ran on.
    #[serde(flatten)]
    setting: Setting,
    seed: u64,
}

/// Runs `brlock bench atomic` on every rank.
///
/// # Errors
/// I/O, MPI and lock errors; bad arguments.
pub fn run(rt: &Runtime, args: &AtomicBenchArgs) -> Result<ExitCode> {
    let world = rt.world();
    let mix = if args.writes_only {
        Mix::Writes
    } else {
        args.mix
    };
    let shared = SharedFile::resolve(rt, args.file.as_deref(), "atomic")?;
    let path = shared.path_for(rt.rank(), args.alt_file.as_deref());
    let mut options = OpenOptions {
        coherence: args.coherence,
        ..OpenOptions::default()
    };
    let atomic = args.backend != AtomicBackend::None;
    if !atomic {
        // The floor: plain positional writes. Without write sieving no rank rewrites gaps,
        // so plain writes need no lock (see `AtomicFile::write_at`).
        options.sieve.write = SievePolicy::Never;
    }
    let Opened {
        mut file,
        fs_type,
        coherence,
        io_component,
    } = open_backend(world, &path, args.backend, &options)?;
    lay_out(world, file.as_mut(), &vec![0u8; REGION as usize])?;
    if atomic {
        file.set_atomicity(true)?;
    }

    let rank = usize::try_from(rt.rank()).unwrap_or(0);
    let mut rng = Rng::new(args.seed, rank);
    let slots = (REGION - ACCESS as u64) / ALIGN + 1;
    let mut buf = vec![0u8; ACCESS];
    let mut tally = Tally::default();
    world.barrier();
    let started = Instant::now();
    for i in 0..args.ops {
        let offset = rng.below(slots) * ALIGN;
        let write = match mix {
            Mix::Writes => true,
            Mix::Reads => false,
            Mix::Mixed => rng.next_u64() & 1 == 0,
        };
        let t = Instant::now();
        if write {
            // Values 1..=255 by rank and sequence, so that overlapping writes differ.
            let value = (((rank as u64) * 97 + i) % 255 + 1) as u8;
            buf.fill(value);
            file.write_at(offset, &buf)?;
            tally.writes += 1;
            tally.write_ns += t.elapsed().as_nanos() as u64;
        } else {
            file.read_at(offset, &mut buf)?;
            tally.reads += 1;
            tally.read_ns += t.elapsed().as_nanos() as u64;
            if buf.chunks(ALIGN as usize).any(|half| !uniform(half)) {
                tally.torn += 1;
            }
        }
    }
    world.barrier();
    let seconds = started.elapsed().as_secs_f64();
    if atomic {
        file.set_atomicity(false)?;
    }
    drop(file);
    shared.remove(rt);

    let mut sums = [0u64; 5];
    world.all_reduce_into(&tally.words()[..], &mut sums[..], SystemOperation::sum());
    if rt.rank() != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let [writes, reads, write_ns, read_ns, torn] = sums;
    let ops = writes + reads;
    let mean_us = |ns: u64, n: u64| (n > 0).then(|| ns as f64 / n as f64 / 1e3);
    let report = Report {
        bench: "atomic",
        backend: backend_name(args.backend),
        mix,
        ranks: rt.size(),
        ops,
        ops_per_rank: args.ops,
        writes,
        reads,
        seconds,
        us_per_op: seconds * 1e6 / args.ops as f64,
        ops_per_s: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
        write_us: mean_us(write_ns, writes),
        read_us: mean_us(read_ns, reads),
        torn_reads: torn,
        atomic,
        setting: Setting::new(
            rt,
            &shared,
            args.alt_file.as_deref(),
            fs_type,
            coherence,
            io_component,
        ),
        seed: args.seed,
    };
    if args.json {
        emit_json(&report)?;
    } else {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        emit(&format!(
            "bench atomic: backend {}, {:?}, {} ranks x {} ops on {} ({}): {:.3} s, {:.1} us/op \
             per rank, {:.0} ops/s; write {} us, read {} us; {} torn reads",
            report.backend,
            mix,
            report.ranks,
            args.ops,
            report.setting.file,
            report.setting.fs_type,
            seconds,
            report.us_per_op,
            report.ops_per_s,
            opt(report.write_us),
            opt(report.read_us),
            torn,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The name reports use: `none` is `nonatomic` here.
fn backend_name(b: AtomicBackend) -> &'static str {
    match b {
        AtomicBackend::Rma => "rma",
        AtomicBackend::Mpiio => "mpiio",
        AtomicBackend::None => "nonatomic",
    }
}

fn uniform(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == bytes[0])
}

#[derive(Debug, Default)]
struct Tally {
    writes: u64,
    reads: u64,
    write_ns: u64,
    read_ns: u64,
    torn: u64,
}

impl Tally {
    fn words(&self) -> [u64; 5] {
        [
            self.writes,
            self.reads,
            self.write_ns,
            self.read_ns,
            self.torn,
        ]
    }
}

/// What an I/O benchmark ran on, as its report says it.
#[derive(Debug, Serialize)]
pub(super) struct Setting {
    pub(super) file: String,
    pub(super) alt_file: Option<String>,
    pub(super) fs_type: String,
    pub(super) coherence: Option<Coherence>,
    pub(super) io_component: Option<String>,
    pub(super) mpi_library: String,
    pub(super) osc: Option<String>,
}

impl Setting {
    /// The setting of a run on `shared` (odd ranks through `alt`).
    pub(super) fn new(
        rt: &Runtime,
        shared: &SharedFile,
        alt: Option<&Path>,
        fs_type: String,
        coherence: Option<Coherence>,
        io_component: Option<String>,
    ) -> Setting {
        Setting {
            file: shared.shown.clone(),
            alt_file: alt.map(|p| p.display().to_string()),
            fs_type,
            coherence,
            io_component,
            mpi_library: library_summary(rt),
            osc: requested_osc(),
        }
    }
}

/// The file an I/O benchmark works on: the one the user named, or a temporary one rank 0
/// created and told the others about.
#[derive(Debug)]
pub(super) struct SharedFile {
    /// The path of even ranks (and of all ranks without an alternative path).
    pub(super) path: PathBuf,
    /// The path as reports show it.
    pub(super) shown: String,
    /// Whether rank 0 created it (and removes it in [`SharedFile::remove`]).
    temporary: bool,
}

impl SharedFile {
    /// `file` if given; otherwise rank 0 creates `brlock-bench-<what>.<pid>` in the
    /// temporary directory and broadcasts its path. Collective.
    ///
    /// # Errors
    /// [`Error::Io`] if rank 0 cannot create the file (every rank returns an error).
    pub(super) fn resolve(rt: &Runtime, file: Option<&Path>, what: &str) -> Result<SharedFile> {
        if let Some(f) = file {
            return Ok(SharedFile {
                path: f.to_path_buf(),
                shown: f.display().to_string(),
                temporary: false,
            });
        }
        let root = rt.world().process_at_rank(0);
        let mut name = [0u8; PATH_MAX];
        let mut ok = 1u8;
        let mut failure = None;
        if rt.rank() == 0 {
            let p = std::env::temp_dir().join(format!(
                "brlock-bench-{what}.{}.{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ));
            let text = p.display().to_string();
            match std::fs::File::create(&p) {
                Ok(_) if text.len() < PATH_MAX => {
                    name[..text.len()].copy_from_slice(text.as_bytes())
                }
                Ok(_) => {
                    ok = 0;
                    failure = Some(Error::InvalidArgument(format!(
                        "temporary path {text} is too long"
                    )));
                }
                Err(source) => {
                    ok = 0;
                    failure = Some(Error::Io {
                        op: "create",
                        path: text,
                        source,
                    });
                }
            }
        }
        root.broadcast_into(&mut ok);
        if ok == 0 {
            return Err(failure.unwrap_or(Error::PeerFailed {
                op: "create the temporary file",
                ranks: "0".into(),
            }));
        }
        root.broadcast_into(&mut name[..]);
        let len = name.iter().position(|&b| b == 0).unwrap_or(PATH_MAX);
        let shown = String::from_utf8_lossy(&name[..len]).into_owned();
        Ok(SharedFile {
            path: PathBuf::from(&shown),
            shown,
            temporary: true,
        })
    }

    /// The path `rank` opens: odd ranks use `alt` if given.
    pub(super) fn path_for(&self, rank: i32, alt: Option<&Path>) -> PathBuf {
        match alt {
            Some(a) if rank % 2 == 1 => a.to_path_buf(),
            _ => self.path.clone(),
        }
    }

    /// Collective: after every rank closed the file, rank 0 removes a temporary one (a failure
    /// is only logged).
    pub(super) fn remove(&self, rt: &Runtime) {
        rt.world().barrier();
        if self.temporary && rt.rank() == 0 {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.shown, error = %e, "cannot remove the temporary file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_stay_in_the_region_and_overlap() {
        let slots = (REGION - ACCESS as u64) / ALIGN + 1;
        assert_eq!((slots - 1) * ALIGN + ACCESS as u64, REGION);
        assert!(ALIGN < ACCESS as u64);
    }

    #[test]
    fn uniform_halves() {
        assert!(uniform(&[3, 3, 3]));
        assert!(!uniform(&[3, 4, 3]));
    }
}
