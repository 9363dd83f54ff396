//! Byte-range locks kept by the kernel (and, on a distributed file system, by its lock
//! manager): `fcntl` record locks behind the same [`RangeLock`] trait as the MPI one-sided
//! service, so that checks and benchmarks compare them in one harness.
//!
//! Two flavours, chosen by [`FcntlKind`]:
//!
//! * [`FcntlKind::Posix`], classic POSIX record locks (`F_SETLKW` / `F_SETLK`). They belong
//!   to the **process**: two descriptors (two [`FcntlLock`]s) of one file in one process never
//!   conflict with each other, a range locked through one of them can be unlocked or replaced
//!   through the other, and closing **any** descriptor of the file — including one opened by
//!   unrelated code, such as a plain `File::open` of the same path to read it — releases
//!   **all** the process's locks on that file. The kernel detects some deadlocks between
//!   processes and fails the request with `EDEADLK` ([`Error::Deadlock`]).
//! * [`FcntlKind::Ofd`], Linux open-file-description locks (`F_OFD_SETLKW` / `F_OFD_SETLK`,
//!   Linux 3.15 and later). They belong to the **open file description** (one `open` call;
//!   shared by `dup` and `File::try_clone`, not by a second `open`): two [`FcntlLock`]s of one
//!   path in one process conflict like two processes would, and a lock goes away only when it
//!   is unlocked or the last descriptor of its description is closed. The kernel does not
//!   look for deadlocks between OFD locks: a cycle of waiters waits forever.
//!
//! Either way a lock is only as good as the file system's support: on a local file system
//! the kernel arbitrates; across nodes the file must be on a shared file system whose lock
//! manager sees every client (GlusterFS, Lustre, NFS with a working lock daemon).
//!
//! Neither flavour is fair: when a range is released the kernel wakes the waiters and any of
//! them (or a newcomer) may win, and shared holders may keep an exclusive waiter out
//! indefinitely. [`FcntlLock::arrival_ticket`](RangeLock::arrival_ticket) is therefore
//! `None`, and the bounded-waiting promise of the one-sided service does not apply.
//!
//! References: fcntl(2), "Advisory record locking" and "Open file description locks
//! (non-POSIX)"; POSIX.1-2017 `fcntl`, `F_SETLK`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;

use super::{deadline_after, RangeLock};
use crate::error::{ensure_free, Error, Result};
use crate::range::{ByteRange, LockMode};

/// First pause of [`RangeLock::lock_timeout`]'s polling.
const FIRST_BACKOFF: Duration = Duration::from_micros(50);
/// Longest pause of [`RangeLock::lock_timeout`]'s polling.
const MAX_BACKOFF: Duration = Duration::from_millis(5);
/// How often [`RangeLock::lock_progressing`] calls its progress function while it waits.
const PROGRESS_PAUSE: Duration = Duration::from_micros(100);

/// Which kind of `fcntl` lock a [`FcntlLock`] takes. See the [module documentation](self)
/// for how they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FcntlKind {
    /// Classic POSIX record locks (`F_SETLK`, `F_SETLKW`): owned by the process, not
    /// conflicting between descriptors of one process, all dropped when any descriptor of
    /// the file is closed.
    Posix,
    /// Linux open-file-description locks (`F_OFD_SETLK`, `F_OFD_SETLKW`): owned by the open
    /// file description, conflicting between descriptions even within one process.
    Ofd,
}

impl fmt::Display for FcntlKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FcntlKind::Posix => "POSIX record lock",
            FcntlKind::Ofd => "open-file-description lock",
        })
    }
}

/// A byte-range lock on one open file, taken with `fcntl`.
///
/// Holds at most one range at a time, like every [`RangeLock`]. Ranges may lie beyond the
/// end of the file; locking does not change the file's contents or size.
///
/// Dropping a `FcntlLock` that holds a range releases it (`F_UNLCK`, a failure is reported
/// through `tracing`) and then closes the file. The explicit release matters for
/// [`FcntlKind::Ofd`]: closing only ends the lock when no other descriptor (from
/// [`FcntlLock::file`]`.try_clone()`, or inherited by a child process) still refers to the
/// same open file description. For [`FcntlKind::Posix`] closing alone would release it too —
/// together with every other POSIX lock this process holds on the file, through any
/// descriptor; that is the classic pitfall, and why one process should keep one
/// `FcntlLock` per file with POSIX locks.
pub struct FcntlLock {
    file: File,
    /// The file's name, for error messages.
    path: String,
    kind: FcntlKind,
    held: Option<(ByteRange, LockMode)>,
}

impl FcntlLock {
    /// Opens `path` for reading and writing, creating it (empty) if it does not exist, and
    /// returns a lock on it of the given kind. Both access modes are needed: a shared lock
    /// (`F_RDLCK`) requires a descriptor open for reading, an exclusive one (`F_WRLCK`) one
    /// open for writing.
    ///
    /// With [`FcntlKind::Posix`], do not open and close other descriptors of the same file
    /// in this process while a range is held: closing them releases this lock's range.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` if it cannot be opened read-write or created (missing
    /// directory, no permission, a directory).
    ///
    /// open(2).
    pub fn open(path: impl AsRef<Path>, kind: FcntlKind) -> Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| Error::Io {
                op: "open lock file",
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            file,
            path: path.display().to_string(),
            kind,
            held: None,
        })
    }

    /// A lock on an already open file. It must be open for reading to take shared ranges
    /// and for writing to take exclusive ones (otherwise locking fails with `EBADF`). Error
    /// messages name the file by its `/proc/self/fd` link where that is readable.
    pub fn from_file(file: File, kind: FcntlKind) -> Self {
        let fd = file.as_raw_fd();
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_or_else(
            |_| format!("<file descriptor {fd}>"),
            |p| p.display().to_string(),
        );
        Self {
            file,
            path,
            kind,
            held: None,
        }
    }

    /// The kind of lock this handle takes.
    pub fn kind(&self) -> FcntlKind {
        self.kind
    }

    /// The file's name as used in error messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The locked file, e.g. for I/O under the lock. With [`FcntlKind::Posix`], do not close
    /// a `try_clone` of it while a range is held (see the [type documentation](FcntlLock)).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// One `fcntl` lock request: `l_type` over `range`, waiting or not. Retries on `EINTR`.
    fn request(&self, range: ByteRange, l_type: libc::c_int, wait: bool) -> Result<(), Errno> {
        // Ranges end at or below i64::MAX, so with a 64-bit off_t these never fail.
        let l_start = libc::off_t::try_from(range.start()).map_err(|_| Errno::EOVERFLOW)?;
        let l_len = libc::off_t::try_from(range.len()).map_err(|_| Errno::EOVERFLOW)?;
        let fl = libc::flock {
            l_type: l_type as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start,
            l_len,
            // Must be 0 for OFD locks; ignored by F_SETLK(W).
            l_pid: 0,
        };
        loop {
            let arg = match (self.kind, wait) {
                (FcntlKind::Posix, false) => FcntlArg::F_SETLK(&fl),
                (FcntlKind::Posix, true) => FcntlArg::F_SETLKW(&fl),
                (FcntlKind::Ofd, false) => FcntlArg::F_OFD_SETLK(&fl),
                (FcntlKind::Ofd, true) => FcntlArg::F_OFD_SETLKW(&fl),
            };
            match fcntl(&self.file, arg) {
                Err(Errno::EINTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    /// The name of the `fcntl` command for error messages.
    fn command(&self, wait: bool) -> &'static str {
        match (self.kind, wait) {
            (FcntlKind::Posix, false) => "fcntl(F_SETLK) on",
            (FcntlKind::Posix, true) => "fcntl(F_SETLKW) on",
            (FcntlKind::Ofd, false) => "fcntl(F_OFD_SETLK) on",
            (FcntlKind::Ofd, true) => "fcntl(F_OFD_SETLKW) on",
        }
    }

    fn io_error(&self, wait: bool, errno: Errno) -> Error {
        Error::Io {
            op: self.command(wait),
            path: self.path.clone(),
            source: errno.into(),
        }
    }

    /// Records the range when a blocking request took it; maps its failure.
    fn waited(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        outcome: Result<(), Errno>,
    ) -> Result<()> {
        match outcome {
            Ok(()) => {
                self.held = Some((range, mode));
                Ok(())
            }
            Err(Errno::EDEADLK) => Err(Error::Deadlock {
                range,
                path: self.path.clone(),
            }),
            Err(e) => Err(self.io_error(true, e)),
        }
    }

    /// One non-blocking attempt; records the range when taken.
    fn attempt(&mut self, range: ByteRange, mode: LockMode) -> Result<bool> {
        match self.request(range, l_type(mode), false) {
            Ok(()) => {
                self.held = Some((range, mode));
                Ok(true)
            }
            // POSIX allows either for "held by someone else".
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(e) => Err(self.io_error(false, e)),
        }
    }
}

fn l_type(mode: LockMode) -> libc::c_int {
    match mode {
        LockMode::Shared => libc::F_RDLCK,
        LockMode::Exclusive => libc::F_WRLCK,
    }
}

impl RangeLock for FcntlLock {
    /// `F_SETLKW` / `F_OFD_SETLKW`, retried when a signal interrupts the wait.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`]; [`Error::Deadlock`] when the kernel finds that waiting would
    /// deadlock (POSIX locks only); [`Error::Io`] for other failures (e.g. `ENOLCK`).
    fn lock(&mut self, range: ByteRange, mode: LockMode) -> Result<()> {
        ensure_free(self.held, range)?;
        let outcome = self.request(range, l_type(mode), true);
        self.waited(range, mode, outcome)
    }

    /// A non-blocking attempt first; if the range is taken, the `F_SETLKW` wait runs on a
    /// helper thread (it makes no MPI call, so any MPI thread level will do) while this
    /// thread calls `progress` every 100 us until the kernel grants the range.
    /// The kernel's queue decides, as for [`RangeLock::lock`].
    ///
    /// # Errors
    /// As for [`RangeLock::lock`].
    fn lock_progressing(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        progress: &mut dyn FnMut(),
    ) -> Result<()> {
        ensure_free(self.held, range)?;
        if self.attempt(range, mode)? {
            return Ok(());
        }
        let this = &*self;
        let outcome = std::thread::scope(|scope| {
            let (done, granted) = mpsc::channel();
            scope.spawn(move || done.send(this.request(range, l_type(mode), true)));
            loop {
                progress();
                match granted.recv_timeout(PROGRESS_PAUSE) {
                    Ok(outcome) => break outcome,
                    Err(RecvTimeoutError::Timeout) => {}
                    // Only if the waiting thread died without an answer; the scope's join
                    // then reports its panic.
                    Err(RecvTimeoutError::Disconnected) => break Err(Errno::ECHILD),
                }
            }
        });
        self.waited(range, mode, outcome)
    }

    /// `F_SETLK` / `F_OFD_SETLK`: `EAGAIN` or `EACCES` (the range is held elsewhere) is
    /// `Ok(false)`.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`]; [`Error::Io`] for other failures.
    fn try_lock(&mut self, range: ByteRange, mode: LockMode) -> Result<bool> {
        ensure_free(self.held, range)?;
        self.attempt(range, mode)
    }

    /// `fcntl` has no timed wait, so this polls: a non-blocking attempt, then pauses that
    /// start at 50 us and double up to 5 ms between attempts, with a last attempt at the
    /// deadline. It gives up between `timeout` and about `timeout` plus one scheduling
    /// delay. Polling is not queued in the kernel: a blocked `lock` elsewhere, or a steady
    /// stream of shared holders, can keep taking the range between attempts. A timeout too
    /// large for the clock ([`deadline_after`]) waits like [`RangeLock::lock`].
    ///
    /// # Errors
    /// As for [`RangeLock::try_lock`].
    fn lock_timeout(
        &mut self,
        range: ByteRange,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<bool> {
        ensure_free(self.held, range)?;
        let Some(deadline) = deadline_after(timeout) else {
            return self.lock(range, mode).map(|()| true);
        };
        let mut pause = FIRST_BACKOFF;
        loop {
            if self.attempt(range, mode)? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// `F_UNLCK` over the held range. After a failure the range counts as still held.
    ///
    /// # Errors
    /// [`Error::NotHeld`]; [`Error::Io`] if the kernel refuses.
    fn unlock(&mut self) -> Result<()> {
        let (range, _) = self.held.ok_or(Error::NotHeld)?;
        self.request(range, libc::F_UNLCK, false)
            .map_err(|e| self.io_error(false, e))?;
        self.held = None;
        Ok(())
    }

    fn held(&self) -> Option<(ByteRange, LockMode)> {
        self.held
    }
}

impl Drop for FcntlLock {
    fn drop(&mut self) {
        if let Some((range, mode)) = self.held {
            if let Err(e) = self.unlock() {
                tracing::error!(%range, %mode, error = %e, "releasing an fcntl lock on drop failed; closing the file");
            }
        }
    }
}

impl fmt::Debug for FcntlLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcntlLock")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("held", &self.held)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::TempDir;
    use std::path::PathBuf;

    /// A fresh directory for a test's lock file, removed on drop.
    struct Scratch(TempDir);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            Scratch(TempDir::create(&format!("brlock-fcntl-{name}")).expect("a scratch directory"))
        }

        fn dir(&self) -> &std::path::Path {
            self.0.path()
        }

        fn file(&self) -> PathBuf {
            self.dir().join("lock")
        }
    }

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange::new(start, end).unwrap()
    }

    fn two_ofd(name: &str) -> (Scratch, FcntlLock, FcntlLock) {
        let dir = Scratch::new(name);
        let a = FcntlLock::open(dir.file(), FcntlKind::Ofd).unwrap();
        let b = FcntlLock::open(dir.file(), FcntlKind::Ofd).unwrap();
        (dir, a, b)
    }

    use LockMode::{Exclusive, Shared};

    #[test]
    fn fcntl_ofd_exclusive_excludes_within_one_process() {
        let (_dir, mut a, mut b) = two_ofd("excl");
        a.lock(r(0, 4096), Exclusive).unwrap();
        assert!(!b.try_lock(r(4095, 8192), Shared).unwrap());
        assert!(!b.try_lock(r(0, 1), Exclusive).unwrap());
        assert_eq!(b.held(), None);
        // Disjoint ranges are compatible, even exclusive ones.
        assert!(b.try_lock(r(4096, 8192), Exclusive).unwrap());
        assert_eq!(b.held(), Some((r(4096, 8192), Exclusive)));
        b.unlock().unwrap();
        a.unlock().unwrap();
        assert!(b.try_lock(r(0, 4096), Exclusive).unwrap());
    }

    #[test]
    fn fcntl_ofd_shared_holders_are_compatible() {
        let (_dir, mut a, mut b) = two_ofd("shared");
        a.lock(r(0, 100), Shared).unwrap();
        assert!(b.try_lock(r(50, 150), Shared).unwrap());
        let mut c = FcntlLock::open(a.path(), FcntlKind::Ofd).unwrap();
        assert!(!c.try_lock(r(99, 100), Exclusive).unwrap());
        a.unlock().unwrap();
        // Still held shared by b over [50, 150).
        assert!(!c.try_lock(r(99, 100), Exclusive).unwrap());
        assert!(c.try_lock(r(0, 50), Exclusive).unwrap());
    }

    #[test]
    fn fcntl_ofd_lock_timeout_gives_up_then_release_lets_the_other_in() {
        let (_dir, mut a, mut b) = two_ofd("timeout");
        a.lock(r(0, 10), Exclusive).unwrap();
        let timeout = Duration::from_millis(100);
        let t0 = Instant::now();
        assert!(!b.lock_timeout(r(5, 6), Shared, timeout).unwrap());
        let took = t0.elapsed();
        assert!(took >= timeout, "gave up after {took:?}");
        assert!(took < timeout + Duration::from_millis(400), "took {took:?}");
        assert_eq!(b.held(), None);

        a.unlock().unwrap();
        let t0 = Instant::now();
        assert!(b.lock_timeout(r(5, 6), Shared, timeout).unwrap());
        assert!(
            t0.elapsed() < timeout,
            "a free range waited {:?}",
            t0.elapsed()
        );
        assert_eq!(b.held(), Some((r(5, 6), Shared)));
    }

    #[test]
    fn fcntl_ofd_blocking_lock_waits_for_release() {
        let (_dir, mut a, mut b) = two_ofd("block");
        a.lock(r(0, 10), Exclusive).unwrap();
        let waiter = std::thread::spawn(move || {
            let t0 = Instant::now();
            b.lock(r(0, 10), Exclusive).unwrap();
            (t0.elapsed(), b)
        });
        std::thread::sleep(Duration::from_millis(100));
        a.unlock().unwrap();
        let (waited, b) = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(50),
            "did not wait: {waited:?}"
        );
        assert_eq!(b.held(), Some((r(0, 10), Exclusive)));
        assert!(!a.try_lock(r(9, 10), Shared).unwrap());
        // Dropping the holder releases its range.
        drop(b);
        assert!(a.try_lock(r(9, 10), Shared).unwrap());
    }

    /// The holder lets go only from inside the progress function, as a holder that needs the
    /// waiter's MPI progress does: the wait must keep calling it and then take the range.
    #[test]
    fn fcntl_ofd_lock_progressing_calls_progress_until_granted() {
        let (_dir, a, mut b) = two_ofd("progress");
        let mut holder = Some(a);
        holder.as_mut().unwrap().lock(r(0, 10), Exclusive).unwrap();
        let mut calls = 0;
        b.lock_progressing(r(5, 10), Shared, &mut || {
            calls += 1;
            if calls == 3 {
                holder.take().unwrap().unlock().unwrap();
            }
        })
        .unwrap();
        assert!(calls >= 3, "progress called {calls} times");
        assert_eq!(b.held(), Some((r(5, 10), Shared)));
        // Uncontended, it takes the range without calling progress.
        b.unlock().unwrap();
        let mut uncontended = 0;
        b.lock_progressing(r(0, 10), Exclusive, &mut || uncontended += 1)
            .unwrap();
        assert_eq!(uncontended, 0);
        assert_eq!(
            b.lock_progressing(r(0, 1), Shared, &mut || {})
                .unwrap_err()
                .to_string(),
            b.lock(r(0, 1), Shared).unwrap_err().to_string()
        );
    }

    #[test]
    fn fcntl_posix_handles_of_one_process_do_not_conflict() {
        let dir = Scratch::new("posix");
        let mut a = FcntlLock::open(dir.file(), FcntlKind::Posix).unwrap();
        let mut b = FcntlLock::open(dir.file(), FcntlKind::Posix).unwrap();
        assert_eq!(a.kind(), FcntlKind::Posix);
        a.lock(r(0, 10), Exclusive).unwrap();
        // The documented pitfall: the same process "takes" the range again.
        assert!(b.try_lock(r(0, 10), Exclusive).unwrap());
        b.unlock().unwrap();
        a.unlock().unwrap();
    }

    #[test]
    fn fcntl_huge_timeout_waits_instead_of_panicking() {
        let (_dir, mut a, mut b) = two_ofd("huge-timeout");
        assert!(a.lock_timeout(r(0, 10), Exclusive, Duration::MAX).unwrap());
        a.unlock().unwrap();
        // A free range is taken at once, whatever the timeout.
        assert!(b
            .lock_timeout(r(0, 10), Shared, Duration::from_secs(u64::MAX))
            .unwrap());
    }

    #[test]
    fn fcntl_second_lock_is_already_held_and_unlock_needs_a_range() {
        for kind in [FcntlKind::Posix, FcntlKind::Ofd] {
            let dir = Scratch::new("twice");
            let mut a = FcntlLock::open(dir.file(), kind).unwrap();
            assert!(matches!(a.unlock(), Err(Error::NotHeld)));
            a.lock(r(0, 10), Shared).unwrap();
            for result in [
                a.lock(r(20, 30), Shared).map(|()| true),
                a.try_lock(r(20, 30), Shared),
                a.lock_timeout(r(20, 30), Shared, Duration::ZERO),
            ] {
                assert!(
                    matches!(result, Err(Error::AlreadyHeld { held, .. }) if held == r(0, 10)),
                    "{kind}: {result:?}"
                );
            }
            a.unlock().unwrap();
            assert!(matches!(a.unlock(), Err(Error::NotHeld)));
        }
    }

    #[test]
    fn fcntl_bad_path_is_an_io_error_naming_it() {
        let dir = Scratch::new("badpath");
        let missing = dir.dir().join("no-such-dir").join("lock");
        let err = FcntlLock::open(&missing, FcntlKind::Ofd).unwrap_err();
        let Error::Io { path, source, .. } = &err else {
            panic!("expected Error::Io, got {err:?}");
        };
        assert_eq!(path, &missing.display().to_string());
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(!text.contains('\n'), "{text}");
        // A directory is not a lock file either.
        let err = FcntlLock::open(dir.dir(), FcntlKind::Posix).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn fcntl_from_file_needs_write_access_for_exclusive() {
        let dir = Scratch::new("fromfile");
        std::fs::write(dir.file(), b"").unwrap();
        let read_only = File::open(dir.file()).unwrap();
        let mut lock = FcntlLock::from_file(read_only, FcntlKind::Ofd);
        assert!(lock.path().ends_with("lock"), "{}", lock.path());
        assert!(lock.try_lock(r(0, 1), Shared).unwrap());
        lock.unlock().unwrap();
        let err = lock.try_lock(r(0, 1), Exclusive).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EBADF)),
            "{err:?}"
        );
        assert_eq!(lock.held(), None);
    }
}
