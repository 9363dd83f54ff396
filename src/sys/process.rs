//! The process-control calls `brlock collect` needs and the standard library lacks: catching
//! the signals that ask a job to stop, and child processes that never outlive their rank.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// The last stop signal received (`SIGINT`, `SIGTERM`, `SIGHUP`), 0 before any.
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_stop(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP.store(signal, Ordering::SeqCst);
}

/// Catches `SIGINT`, `SIGTERM` and `SIGHUP` from now on: instead of ending the process, each
/// records its number in the returned flag (0 until one arrives), for a long-running command
/// to notice, finish what it can and exit. Calling it again does no harm.
///
/// # Errors
/// The `sigaction` error.
///
/// sigaction(2).
pub fn catch_stop_signals() -> std::io::Result<&'static AtomicI32> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `libc::sigaction` is plain old data; all-zero bytes are a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = record_stop as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa_mask` is a valid sigset to initialise; `action` is a valid sigaction
        // whose handler only performs an atomic store (async-signal-safe); a null old-action
        // pointer is allowed.
        let rc = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(&STOP)
}

/// The process group the supervisor kills when its rank dies (set in the supervisor only).
static GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_group_and_exit(_: libc::c_int) {
    // Async-signal-safe: kill and _exit. The group holds the supervisor too.
    let group = GROUP.load(Ordering::SeqCst);
    // SAFETY: kill and _exit have no memory-safety preconditions and may be called from a
    // signal handler.
    unsafe {
        if group > 0 {
            libc::kill(-group, libc::SIGKILL);
        }
        libc::_exit(137);
    }
}

/// Makes what `command` starts die with this process, descendants included: a rank killed
/// with `kill -9` takes its tasks, and whatever they started, with it.
///
/// The spawned process is a small supervisor (a fork of this process that never returns to
/// Rust code): it leads a process group of its own, asks the kernel for `SIGTERM` when its
/// parent dies (`PR_SET_PDEATHSIG`), forks the command itself into the group (which then
/// `exec`s as usual), waits for it and exits as it did (the same exit code, or the same
/// signal, re-raised). On `SIGTERM` or `SIGHUP` it kills the whole group. A plain
/// `PR_SET_PDEATHSIG` on the command would reach the command only, not the processes a shell
/// command starts. [`signal_group`] with the spawned process's id reaches them all.
///
/// prctl(2) `PR_SET_PDEATHSIG`, setpgid(2), fork(2), waitpid(2).
pub fn supervise(command: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec. It makes only
    // async-signal-safe calls (setpgid, prctl, getppid, getpid, sigaction, fork, close,
    // waitpid, kill, _exit) and touches no lock or allocation: the fork of a multi-threaded
    // process may hold locks of other threads. The supervisor branch never returns: it closes
    // every descriptor but 0-2 (among them the pipe through which the standard library learns
    // of exec failures, which must not stay open in a process that does not exec) and exits
    // with the command's status.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let command = libc::fork();
            if command < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if command == 0 {
                // The command: exec continues in the standard library.
                return Ok(());
            }
            supervise_child(parent, command)
        });
    }
}

/// The supervisor of [`supervise`]: never returns.
///
/// # Safety
/// Called in a freshly forked child only, as described in [`supervise`].
unsafe fn supervise_child(parent: libc::pid_t, command: libc::pid_t) -> ! {
    // SAFETY: each call below is async-signal-safe and given valid arguments: a zeroed
    // sigaction with a handler that only calls kill and _exit, descriptors this process may
    // close, and a valid status out-pointer.
    unsafe {
        GROUP.store(libc::getpid(), Ordering::SeqCst);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = kill_group_and_exit as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        // The rank died before the prctl: nobody would signal us later.
        if libc::getppid() != parent {
            kill_group_and_exit(0);
        }
        for fd in 3..1024 {
            libc::close(fd);
        }
        let mut status: libc::c_int = 0;
        loop {
            let r = libc::waitpid(command, &mut status, 0);
            if r == command {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            // Die of the same signal, as the command did.
            let signal = libc::WTERMSIG(status);
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(127)
    }
}

/// Sends `signal` to the process group led by `pid` (a child started under [`supervise`]).
/// A group that is gone already is not an error.
///
/// # Errors
/// The `kill` error other than `ESRCH`.
///
/// kill(2).
pub fn signal_group(pid: u32, signal: i32) -> std::io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    // SAFETY: kill has no memory-safety preconditions; a negative pid names the group.
    let rc = unsafe { libc::kill(-pid, signal) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervised_children_report_their_status() {
        use std::os::unix::process::ExitStatusExt;
        let run = |script: &str| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script]);
            supervise(&mut cmd);
            cmd.spawn().expect("spawn").wait().expect("wait")
        };
        assert_eq!(run("exit 0").code(), Some(0));
        assert_eq!(run("exit 3").code(), Some(3));
        assert_eq!(run("kill -9 $$").signal(), Some(libc::SIGKILL));
        // Exec failures still surface as spawn errors.
        let mut missing = Command::new("/no/such/program");
        supervise(&mut missing);
        assert!(missing.spawn().is_err() || missing.status().map(|s| !s.success()).unwrap_or(true));
    }

    #[test]
    fn supervised_children_lead_their_group_and_can_be_signalled() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        supervise(&mut cmd);
        let mut child = cmd.spawn().expect("spawn sleep");
        signal_group(child.id(), libc::SIGKILL).expect("kill the group");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Gone already: not an error.
        signal_group(child.id(), libc::SIGTERM).expect("a gone group");
    }
}
