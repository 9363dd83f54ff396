//! Facts about the machine: host name, cores, memory, the free space and the type of the file
//! system a path lives on (the one mount-table parser of the crate: the coherence strategy is
//! chosen from it, and reports record it).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The host name (`/proc/sys/kernel/hostname`), if readable.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The cores this process may run on (`std::thread::available_parallelism`, 1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPUs the kernel has online (`/sys/devices/system/cpu/online`, e.g. `0-1,4`), which
/// unlike [`cores`] does not shrink when the launcher binds a rank to one core.
pub fn cpus_online() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    count_cpu_list(text.trim())
}

/// The memory a new allocation can count on, in bytes: `MemAvailable` of `/proc/meminfo`
/// (free memory plus what the kernel can reclaim), or `None` if it cannot be read. Commands
/// compare what their arguments would allocate with it before allocating.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_available(&text)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn meminfo_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// How many ranks of this job the launcher placed on this node (Open MPI's
/// `OMPI_COMM_WORLD_LOCAL_SIZE`, hydra's `MPI_LOCALNRANKS`), 1 if it does not say. They share
/// the node's memory.
pub fn local_ranks() -> u64 {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `16.0 PiB`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The bytes an unprivileged writer can still write on the file system of `path`
/// (`statvfs`: available blocks times the fragment size), or `None` if it cannot be told.
pub fn available_space(path: &Path) -> Option<u64> {
    let dir = canonical_or_directory(path).ok()?;
    let st = nix::sys::statvfs::statvfs(&dir).ok()?;
    // `fsblkcnt_t` and `c_ulong` are `u64` here but narrower on some platforms.
    #[allow(clippy::useless_conversion)]
    u64::from(st.blocks_available()).checked_mul(u64::from(st.fragment_size()))
}

/// The number of CPUs in a kernel CPU list such as `0-3,6,8-9`.
fn count_cpu_list(list: &str) -> Option<usize> {
    list.split(',').try_fold(0usize, |n, part| {
        let count = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
        Some(n + count)
    })
}

/// The type of the file system holding `path` (e.g. `ext4`, `overlay`, `fuse.glusterfs`):
/// the mount whose mount point is the longest prefix of the canonical path, from
/// `/proc/self/mountinfo` (or `/proc/mounts`). A path that does not exist is looked up by its
/// directory.
///
/// # Errors
/// [`Error::Io`] naming `path` if neither it nor its directory exists (or cannot be
/// resolved); [`Error::InvalidArgument`] if no mount table is readable or none matches.
pub fn fs_type(path: &Path) -> Result<String> {
    let canonical = canonical_or_directory(path)?;
    let (table, parse): (_, fn(&str, &Path) -> Option<String>) =
        match std::fs::read_to_string("/proc/self/mountinfo") {
            Ok(text) => (text, mountinfo_fs_type),
            Err(_) => (
                std::fs::read_to_string("/proc/mounts").map_err(|source| Error::Io {
                    op: "read",
                    path: "/proc/mounts".into(),
                    source,
                })?,
                mounts_fs_type,
            ),
        };
    parse(&table, &canonical).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no mount in the mount table holds {}",
            canonical.display()
        ))
    })
}

/// `path` resolved (symbolic links, `..`), or if it does not exist, its directory resolved.
fn canonical_or_directory(path: &Path) -> Result<PathBuf> {
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            dir.canonicalize().map_err(|source| Error::Io {
                op: "resolve the directory of",
                path: path.display().to_string(),
                source,
            })
        }
        Err(source) => Err(Error::Io {
            op: "resolve",
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The file system type of the mount holding `path` in a `/proc/self/mountinfo` table:
/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
/// Of mounts on the same point the last one (the one on top) wins.
fn mountinfo_fs_type(table: &str, path: &Path) -> Option<String> {
    longest_prefix(
        table.lines().filter_map(|line| {
            let (mount, rest) = line.split_once(" - ")?;
            let point = mount.split(' ').nth(4)?;
            let fs = rest.split(' ').next()?;
            Some((unescape(point), fs))
        }),
        path,
    )
}

/// As [`mountinfo_fs_type`] for a `/proc/mounts` table: `SOURCE MOUNTPOINT FSTYPE ...`.
fn mounts_fs_type(table: &str, path: &Path) -> Option<String> {
    longest_prefix(
        table.lines().filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(1)?;
            let fs = fields.next()?;
            Some((unescape(point), fs))
        }),
        path,
    )
}

fn longest_prefix<'a>(
    mounts: impl Iterator<Item = (PathBuf, &'a str)>,
    path: &Path,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for (point, fs) in mounts {
        if path.starts_with(&point) {
            let depth = point.components().count();
            if !matches!(best, Some((d, _)) if depth < d) {
                best = Some((depth, fs));
            }
        }
    }
    best.map(|(_, fs)| fs.to_string())
}

/// Undoes the kernel's octal escapes in mount tables (`\040` for a space, `\011` tab,
/// `\012` newline, `\134` backslash).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_memory() {
        let text = "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(meminfo_available(text), Some(4_096_000_000));
        assert_eq!(meminfo_available("MemTotal: 1 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots kB\n"), None);
        assert!(available_memory().is_some_and(|m| m > 0));
        assert!(available_space(Path::new("/tmp")).is_some());
    }

    #[test]
    fn shows_bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 54), "16.0 PiB");
        assert_eq!(
            human_bytes(u128::MAX),
            format!("{:.1} EiB", u128::MAX as f64 / (1u128 << 60) as f64)
        );
    }

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/a
23 22 0:22 / /proc rw,nosuid - proc proc rw
30 22 8:1 / /mnt rw shared:1 - ext4 /dev/sda1 rw
31 30 0:40 / /mnt/brlock-gluster/a rw,relatime shared:5 - fuse.glusterfs host:/brlock rw
32 30 0:41 / /mnt/with\\040space rw - tmpfs tmpfs rw
33 30 0:42 / /mnt/brlock-gluster/a rw - tmpfs tmpfs rw
";

    #[test]
    fn longest_mount_point_prefix_wins() {
        let t = |p: &str| mountinfo_fs_type(MOUNTINFO, Path::new(p));
        assert_eq!(t("/etc/passwd").as_deref(), Some("overlay"));
        assert_eq!(t("/mnt/x").as_deref(), Some("ext4"));
        assert_eq!(t("/mnt/brlock-gluster/b/f").as_deref(), Some("ext4"));
        assert_eq!(t("/mnt/with space/f").as_deref(), Some("tmpfs"));
        // Component-wise, not string, prefixes.
        assert_eq!(t("/procfoo").as_deref(), Some("overlay"));
    }

    #[test]
    fn a_later_mount_on_the_same_point_hides_the_earlier_one() {
        let t = mountinfo_fs_type(MOUNTINFO, Path::new("/mnt/brlock-gluster/a/lock"));
        assert_eq!(t.as_deref(), Some("tmpfs"));
        let without_top: String = MOUNTINFO
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        let t = mountinfo_fs_type(&without_top, Path::new("/mnt/brlock-gluster/a/lock"));
        assert_eq!(t.as_deref(), Some("fuse.glusterfs"));
    }

    #[test]
    fn proc_mounts_format() {
        let table = "overlay / overlay rw 0 0\nhost:/v /mnt/g fuse.glusterfs rw 0 0\n";
        let t = mounts_fs_type(table, Path::new("/mnt/g/lock"));
        assert_eq!(t.as_deref(), Some("fuse.glusterfs"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn this_machine_has_a_root_file_system() {
        assert!(fs_type(Path::new("/")).is_ok());
        assert!(fs_type(Path::new("/no-such-directory-brlock/x")).is_err());
    }
}
