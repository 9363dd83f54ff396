//! Data sieving on the GlusterFS test volume, through the public API: sieved writes and reads
//! give exactly what piece-by-piece I/O gives, end of file included. Also a timing probe
//! (ignored; run by hand):
//!
//! ```text
//! cargo test --release --test sieve -- --ignored --nocapture sieve_probe
//! ```

use brlock_testkit as common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use brlock::check::workload::Rng;
use brlock::io::sieve::{self, Method, SieveConfig, SievePolicy, Stats};
use brlock::io::Pieces;

fn open_with(path: &Path, content: &[u8]) -> File {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn bytes(rng: &mut Rng, n: u64) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Each piece with its own `pwrite`, in order.
fn write_one_by_one(file: &File, pieces: &Pieces, data: &[u8]) {
    let mut at = 0usize;
    for p in pieces {
        let n = p.len as usize;
        file.write_all_at(&data[at..at + n], p.offset)
            .expect("pwrite");
        at += n;
    }
}

fn always(buffer: usize) -> SieveConfig {
    SieveConfig {
        write_buffer: buffer,
        read_buffer: buffer,
        write: SievePolicy::Always,
        read: SievePolicy::Always,
    }
}

/// Writes `pieces` into a file of `initial` bytes both ways under `dir`, compares the files,
/// and reads the pieces back sieved.
fn check(dir: &Path, pieces: &Pieces, initial: &[u8], data: &[u8], cfg: &SieveConfig) -> Stats {
    let (a, b) = (dir.join("oracle"), dir.join("sieved"));
    write_one_by_one(&open_with(&a, initial), pieces, data);
    let file = open_with(&b, initial);
    let stats = sieve::write(&file, "sieved", pieces, data, cfg).expect("sieved write");
    let (expected, got) = (
        std::fs::read(&a).expect("read"),
        std::fs::read(&b).expect("read"),
    );
    assert_eq!(got.len(), expected.len(), "file length, {pieces:?}");
    assert!(got == expected, "file content, {pieces:?}");
    let mut back = vec![0u8; data.len()];
    sieve::read(&file, "sieved", pieces, &mut back, cfg).expect("sieved read");
    assert!(back == data, "read back, {pieces:?}");
    stats
}

#[test]
fn sieved_write_near_eof_matches_piecewise_on_glusterfs() {
    let (a, _) = common::gluster_mounts();
    let dir = common::fresh_dir(&a, "sieve-eof");
    let mut rng = Rng::new(11, 0);
    // Strided pieces across the end of file (1000), then one after a hole; 1.1 KiB windows.
    let pairs = (0..40).map(|i| (900 + 16 * i, 4)).chain([(1700, 10)]);
    let pieces = Pieces::new(pairs).expect("valid");
    let data = bytes(&mut rng, pieces.total_bytes());
    let stats = check(&dir, &pieces, &bytes(&mut rng, 1000), &data, &always(1126));
    assert_eq!(stats.method, Method::Sieve);
    assert!(stats.windows >= 1, "{stats:?}");
    assert_eq!(
        std::fs::metadata(dir.join("sieved")).expect("stat").len(),
        1710
    );
}

#[test]
fn sieved_io_on_glusterfs_matches_piecewise() {
    let (a, _) = common::gluster_mounts();
    let dir = common::fresh_dir(&a, "sieve-random");
    let mut rng = Rng::new(12, 0);
    for _ in 0..20 {
        let block = 1 + rng.below(100);
        let stride = block + rng.below(300);
        let count = 1 + rng.below(200);
        let start = rng.below(10_000);
        let pieces = Pieces::strided(start, block, stride, count).expect("valid");
        let end = pieces.extent().map_or(0, |e| e.end());
        let file_len = rng.below(end + 1000);
        let initial = bytes(&mut rng, file_len);
        let data = bytes(&mut rng, pieces.total_bytes());
        let buffer = [64, 1126, 65536][rng.below(3) as usize];
        check(&dir, &pieces, &initial, &data, &always(buffer));
    }
}

/// Seconds for `f`, best of `reps`.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn drop_cache(file: &File) {
    // Uncached reads, as a coherent reader would do after taking its lock.
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).expect("fadvise");
}

/// 4096 pieces of 64 bytes at a 256-byte stride (1 MiB extent) in a 1 MiB file, sieved and
/// piece by piece, on local disk and on GlusterFS. Cached pages are dropped before each
/// access (as a coherent locked access does); a write's time includes its `fdatasync`. Directories: `$BRLOCK_SIEVE_DIRS`
/// (colon-separated), default the system temp dir and GlusterFS mount a.
#[test]
#[ignore = "timing probe, run by hand"]
fn sieve_probe() {
    let dirs: Vec<std::path::PathBuf> = match std::env::var("BRLOCK_SIEVE_DIRS") {
        Ok(v) => v.split(':').map(Into::into).collect(),
        Err(_) => vec![std::env::temp_dir(), common::gluster_mounts().0],
    };
    let pieces = Pieces::strided(0, 64, 256, 4096).expect("valid");
    let data = vec![0xA5u8; pieces.total_bytes() as usize];
    for dir in dirs {
        let dir = common::fresh_dir(&dir, "sieve-probe");
        let path = dir.join("probe");
        let file = open_with(&path, &vec![0u8; 1 << 20]);
        file.sync_all().expect("fsync");
        for (name, policy) in [
            ("sieve", SievePolicy::Always),
            ("pieces", SievePolicy::Never),
        ] {
            let cfg = SieveConfig {
                write: policy,
                read: policy,
                ..SieveConfig::default()
            };
            let reps = if policy == SievePolicy::Never { 2 } else { 5 };
            let mut stats = None;
            let write = best_of(reps, || {
                drop_cache(&file);
                stats = Some(sieve::write(&file, "probe", &pieces, &data, &cfg).expect("write"));
                file.sync_data().expect("fsync");
            });
            let mut buf = vec![0u8; data.len()];
            let read = best_of(reps, || {
                drop_cache(&file);
                sieve::read(&file, "probe", &pieces, &mut buf, &cfg).expect("read");
            });
            println!(
                "{{\"dir\":{:?},\"method\":\"{name}\",\"write_uncached_fsync_s\":{write:.6},\"read_uncached_s\":{read:.6},\"write_stats\":{}}}",
                dir.display().to_string(),
                serde_json::to_string(&stats).expect("json"),
            );
        }
        let auto = sieve::plan(
            &pieces,
            SieveConfig::default().write_buffer,
            SievePolicy::Auto,
            sieve::Access::Write,
        );
        println!("auto plan: {}", serde_json::to_string(&auto).expect("json"));
    }
}
