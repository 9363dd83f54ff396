//! The one `mpirun` helper that every multi-rank test of the workspace uses (the library's,
//! the command line's and, later, the C API's), and the test file systems.
//!
//! ```text
//! use brlock_testkit::MpiRun;
//!
//! let out = MpiRun::new(4, env!("CARGO_BIN_EXE_brlock")).osc("pt2pt").arg("demo").run_ok();
//! assert_eq!(out.rank0_json()["ok"], true);
//! ```
//!
//! What it takes care of:
//!
//! * the launcher: `$BRLOCK_MPIRUN` (default `mpirun`), Open MPI or MPICH (hydra), told apart
//!   by `--version` (cached);
//! * Open MPI as root (`OMPI_ALLOW_RUN_AS_ROOT*`), more ranks than cores (`--oversubscribe`,
//!   and `--mca mpi_yield_when_idle 1`, without which busy-polling ranks starve each other:
//!   on 2 cores with 8 ranks one `MPI_Barrier` took 25 ms instead of 25 us);
//! * per-rank output: Open MPI's `--tag-output` (`[1,R]<stdout>:text`) or MPICH's
//!   `-prepend-rank` (`[R] text`) is split back into one list of lines per rank;
//! * a timeout that never hangs: the job is killed (SIGTERM to `mpirun`'s process group, then
//!   SIGKILL), and every process that carries this job's marker variable in its environment
//!   is killed as well, because Open MPI puts each rank in a process group of its own and a
//!   rank outlives an `mpirun` that was killed with SIGKILL;
//! * one job at a time per test binary (cargo runs the tests of one binary in parallel
//!   threads, and several 8-rank jobs at once on 2 cores would only thrash).
//!
//! Also: [`gluster_mounts`] (the GlusterFS test volume, started on first use), [`full_disk`]
//! (a full tmpfs for the failure tests) and [`fresh_dir`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Open MPI one-sided (`osc`) components the tests run over: `sm` (direct shared memory) and
/// `pt2pt` (emulated over point-to-point messages, the target must enter MPI to progress).
pub const OSC_COMPONENTS: &[&str] = &["sm", "pt2pt"];

/// Timeout of a job unless [`MpiRun::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variable naming the launcher (default `mpirun`).
pub const LAUNCHER_VAR: &str = "BRLOCK_MPIRUN";

/// Environment variable set to a unique value for each job; every process of the job inherits
/// it, which is how leftover processes are found in `/proc/*/environ`.
pub const MARKER_VAR: &str = "BRLOCK_TEST_JOB";

/// How long a job gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How many lines of each stream a failure message shows (the last ones).
const MESSAGE_LINES: usize = 80;

/// Which MPI implementation a launcher belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Open MPI's `mpirun` (ORTE).
    OpenMpi,
    /// MPICH's `mpirun`/`mpiexec` (hydra).
    Mpich,
}

/// The launcher tests use by default: `$BRLOCK_MPIRUN`, or `mpirun`.
pub fn default_launcher() -> String {
    std::env::var(LAUNCHER_VAR)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "mpirun".to_string())
}

/// Whether the default launcher is MPICH's (hydra).
pub fn launcher_is_mpich() -> bool {
    flavor_of(&default_launcher()) == Flavor::Mpich
}

/// The MPI implementation of `launcher`, from its `--version` output (cached per launcher).
/// Panics with a hint when the launcher cannot be run.
pub fn flavor_of(launcher: &str) -> Flavor {
    static CACHE: OnceLock<Mutex<HashMap<String, Flavor>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(f) = lock_ignoring_poison(cache).get(launcher) {
        return *f;
    }
    let out = Command::new(launcher)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run MPI launcher `{launcher} --version`: {e}\n\
                 (set {LAUNCHER_VAR} to a launcher, or run scripts/setup.sh to install Open MPI and MPICH)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let flavor = if text.contains("Open MPI") || text.contains("OpenRTE") {
        Flavor::OpenMpi
    } else if text.contains("HYDRA") || text.contains("MPICH") {
        Flavor::Mpich
    } else {
        panic!("`{launcher} --version` names neither Open MPI nor MPICH (hydra):\n{text}");
    };
    lock_ignoring_poison(cache).insert(launcher.to_string(), flavor);
    flavor
}

/// Whether `launcher` can be run at all (for tests that want to skip rather than fail).
pub fn launcher_available(launcher: &str) -> bool {
    Command::new(launcher)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Locks `m`; a poisoned mutex is recovered explicitly.
///
/// Poisoning only means that another test thread panicked while it held the lock. Nothing
/// guarded here can be left half-updated by that: the launch lock guards `()` (its job is
/// killed and swept by [`JobGuard`]'s `Drop` during the unwinding, before the lock is
/// released), and the flavor cache is only ever inserted into whole. So the poison is
/// deliberately ignored rather than failing every later test of the binary.
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serialises launches within one test binary.
static LAUNCH_LOCK: Mutex<()> = Mutex::new(());

/// A builder for one `mpirun` job.
#[derive(Clone, Debug)]
pub struct MpiRun {
    ranks: usize,
    program: PathBuf,
    args: Vec<String>,
    osc: Option<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    launcher: String,
    yield_when_idle: Option<bool>,
    current_dir: Option<PathBuf>,
    signal_after: Option<(Duration, &'static str)>,
}

/// How long, after the launcher was sent a signal ([`MpiRun::signal_after`]) and exited, the
/// job's processes get to end on their own before the sweep kills them.
const SIGNAL_SETTLE: Duration = Duration::from_secs(5);

impl MpiRun {
    /// A job of `ranks` ranks, each running `program` (a path, or a name looked up on `PATH`).
    pub fn new(ranks: usize, program: impl Into<PathBuf>) -> Self {
        assert!(ranks > 0, "an MPI job needs at least one rank");
        MpiRun {
            ranks,
            program: program.into(),
            args: Vec::new(),
            osc: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            launcher: default_launcher(),
            yield_when_idle: None,
            current_dir: None,
            signal_after: None,
        }
    }

    /// Sends `signal` (`"INT"`, `"TERM"`, `"KILL"`) to the launcher alone `after` the start,
    /// as a user's Ctrl-C or a batch system's kill would. The job's processes then get a few
    /// seconds to end on their own; those still alive are listed in
    /// [`RunOutput::survivors`] (and killed).
    pub fn signal_after(mut self, after: Duration, signal: &'static str) -> Self {
        self.signal_after = Some((after, signal));
        self
    }

    /// Appends one argument of the program.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Appends arguments of the program.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Selects Open MPI's one-sided component (`--mca osc <component>`). Under MPICH there is
    /// no such choice: the request is recorded in [`RunOutput::notes`] and a note is printed.
    pub fn osc(mut self, component: &str) -> Self {
        self.osc = Some(component.to_string());
        self
    }

    /// Sets an environment variable for every rank.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Kills the job when it has not finished after `d` (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Uses this launcher instead of `$BRLOCK_MPIRUN`/`mpirun`.
    pub fn launcher(mut self, l: impl Into<String>) -> Self {
        self.launcher = l.into();
        self
    }

    /// Forces Open MPI's `mpi_yield_when_idle` on or off (default: on when there are more ranks
    /// than cores).
    pub fn yield_when_idle(mut self, on: bool) -> Self {
        self.yield_when_idle = Some(on);
        self
    }

    /// Runs the job in this directory.
    pub fn current_dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(d.into());
        self
    }

    /// Builds the command: launcher arguments, environment for every rank, notes.
    fn command(&self, marker: &str) -> (Command, String, Vec<String>) {
        let flavor = flavor_of(&self.launcher);
        let mut notes = Vec::new();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut argv: Vec<String> = Vec::new();
        match flavor {
            Flavor::OpenMpi => {
                env.push(("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()));
                env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()));
                argv.extend(["--oversubscribe".into(), "--tag-output".into()]);
                let cores = thread::available_parallelism().map_or(1, |n| n.get());
                if self.yield_when_idle.unwrap_or(self.ranks > cores) {
                    argv.extend(["--mca".into(), "mpi_yield_when_idle".into(), "1".into()]);
                }
                if let Some(c) = &self.osc {
                    argv.extend(["--mca".into(), "osc".into(), c.clone()]);
                }
            }
            Flavor::Mpich => {
                argv.push("-prepend-rank".into());
                if let Some(c) = &self.osc {
                    let note = format!(
                        "osc component `{c}` not applicable: the launcher `{}` is MPICH",
                        self.launcher
                    );
                    eprintln!("note: {note}");
                    notes.push(note);
                }
            }
        }
        argv.extend(["-n".into(), self.ranks.to_string()]);
        argv.push(self.program.to_string_lossy().into_owned());
        argv.extend(self.args.iter().cloned());
        env.extend(self.env.iter().cloned());

        let mut cmd = Command::new(&self.launcher);
        cmd.args(&argv)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(MARKER_VAR, marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = &self.current_dir {
            cmd.current_dir(d);
        }

        let mut line = String::new();
        for (k, v) in &env {
            let _ = write!(line, "{k}={} ", shell_quote(v));
        }
        line.push_str(&shell_quote(&self.launcher));
        for a in &argv {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        (cmd, line, notes)
    }

    /// Runs the job to completion or until its timeout; never hangs, never panics because the
    /// job failed (only if the launcher cannot be started at all).
    pub fn run(self) -> RunOutput {
        let marker = new_marker();
        let (mut cmd, command, mut notes) = self.command(&marker);
        let flavor = flavor_of(&self.launcher);

        let _serial = lock_ignoring_poison(&LAUNCH_LOCK);
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start `{command}`: {e} (is MPI installed? run scripts/setup.sh)")
        });
        let mut job = JobGuard {
            child,
            marker: marker.clone(),
            finished: false,
        };
        let stdout = spawn_reader(job.child.stdout.take().expect("stdout is piped"));
        let stderr = spawn_reader(job.child.stderr.take().expect("stderr is piped"));

        let deadline = started + self.timeout;
        let mut pause = Duration::from_millis(1);
        let mut timed_out = false;
        let mut signalled = false;
        let status = loop {
            if let Some((after, signal)) = self.signal_after {
                if !signalled && started.elapsed() >= after {
                    signalled = true;
                    send_signal(signal, &[job.child.id().to_string()]);
                    notes.push(format!(
                        "sent SIG{signal} to the launcher after {:.1} s",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            match job.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => {
                    notes.push(format!("waiting for the launcher failed: {e}"));
                    break None;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break job.terminate();
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let elapsed = started.elapsed();

        // After a signal, the job's processes may take a moment to end by themselves.
        let mut survivors = Vec::new();
        if signalled {
            let until = Instant::now() + SIGNAL_SETTLE;
            loop {
                survivors = processes_with_marker(&marker);
                if survivors.is_empty() || Instant::now() >= until {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        // Whatever the outcome, no process of this job may outlive it.
        let leftovers = kill_marked(&marker);
        if !leftovers.is_empty() {
            notes.push(format!(
                "killed {} leftover process(es) of the job: {leftovers:?}",
                leftovers.len()
            ));
        }
        job.finished = true;
        drop(job);

        // The pipes close when the last process of the job is gone; do not wait for ever on a
        // descendant that escaped the sweep and still holds one.
        let stdout = stdout.finish(Duration::from_secs(5));
        let stderr = stderr.finish(Duration::from_secs(5));

        let (by_rank, stderr_by_rank, untagged) =
            split_by_rank(flavor, self.ranks, &stdout, &stderr);
        let join = |v: Vec<Vec<String>>| v.into_iter().map(|l| l.join("\n")).collect();
        let (by_rank, stderr_by_rank) = (join(by_rank), join(stderr_by_rank));
        RunOutput {
            status,
            timed_out,
            stdout,
            stderr,
            by_rank,
            stderr_by_rank,
            untagged,
            command,
            marker,
            notes,
            elapsed,
            timeout: self.timeout,
            ranks: self.ranks,
            survivors,
        }
    }

    /// Runs the job and panics with the command, the exit status (or "timed out after X s —
    /// deadlock?") and every rank's output unless it exited with status 0.
    pub fn run_ok(self) -> RunOutput {
        let out = self.run();
        if !out.success() {
            panic!("{}", out.failure_message());
        }
        out
    }
}

/// The result of one job.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Exit status of the launcher; `None` if it could not be collected.
    pub status: Option<ExitStatus>,
    /// Whether the job was killed at its timeout.
    pub timed_out: bool,
    /// Everything the launcher wrote to stdout, rank tags included.
    pub stdout: String,
    /// Everything the launcher wrote to stderr, rank tags included.
    pub stderr: String,
    /// Stdout of each rank (index = rank): its lines with the rank tags removed, joined with
    /// `\n` (no trailing newline).
    pub by_rank: Vec<String>,
    /// Stderr of each rank, in the same form.
    pub stderr_by_rank: Vec<String>,
    /// Lines of either stream that carry no rank tag (the launcher's own messages).
    pub untagged: Vec<String>,
    /// The command line, with the environment it set, for copying into a shell.
    pub command: String,
    /// Value of [`MARKER_VAR`] in the environment of every process of this job.
    pub marker: String,
    /// Things worth knowing: an `osc` request ignored under MPICH, leftover processes killed.
    pub notes: Vec<String>,
    /// Wall time from launch until the launcher exited or was killed.
    pub elapsed: Duration,
    /// The timeout the job ran with.
    pub timeout: Duration,
    /// Number of ranks launched.
    pub ranks: usize,
    /// After [`MpiRun::signal_after`]: the job's processes (ranks and what they started)
    /// still alive a few seconds after the launcher ended.
    pub survivors: Vec<u32>,
}

impl RunOutput {
    /// Exit status 0 and no timeout.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// Stdout lines of rank `r` (none if there is no such rank).
    pub fn rank_lines(&self, r: usize) -> Vec<&str> {
        self.by_rank
            .get(r)
            .map(|s| s.lines().collect())
            .unwrap_or_default()
    }

    /// The single JSON object printed by rank 0 on stdout: one line that is a JSON object,
    /// or failing that a (pretty-printed) object starting at a line that begins with `{`.
    /// Panics with the job's output if there is none, or more than one single-line object.
    pub fn rank0_json(&self) -> serde_json::Value {
        let lines = self.rank_lines(0);
        let objects: Vec<serde_json::Value> = lines
            .iter()
            .filter(|l| l.trim_start().starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter(serde_json::Value::is_object)
            .collect();
        match objects.len() {
            1 => return objects.into_iter().next().expect("one object"),
            0 => {}
            n => panic!(
                "rank 0 printed {n} JSON objects, expected exactly one\n{}",
                self.describe()
            ),
        }
        if let Some(start) = lines.iter().position(|l| l.trim_start().starts_with('{')) {
            let text = lines[start..].join("\n");
            let mut stream =
                serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
            if let Some(Ok(v)) = stream.next() {
                if v.is_object() {
                    return v;
                }
            }
        }
        panic!(
            "rank 0 printed no JSON object on stdout\n{}",
            self.describe()
        );
    }

    /// One line saying how the job ended.
    pub fn outcome(&self) -> String {
        if self.timed_out {
            format!(
                "timed out after {:.1} s — deadlock? (the job was killed)",
                self.timeout.as_secs_f64()
            )
        } else {
            match self.status {
                Some(s) => format!("{s} after {:.1} s", self.elapsed.as_secs_f64()),
                None => "exit status unknown".to_string(),
            }
        }
    }

    /// The message `run_ok` panics with.
    pub fn failure_message(&self) -> String {
        format!("MPI job failed: {}\n{}", self.outcome(), self.report(false))
    }

    /// Command, outcome, notes and the (last lines of the) output of every rank.
    pub fn describe(&self) -> String {
        self.report(true)
    }

    fn report(&self, with_outcome: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "command: {}", self.command);
        if with_outcome {
            let _ = writeln!(s, "outcome: {}", self.outcome());
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        for r in 0..self.by_rank.len().max(self.stderr_by_rank.len()) {
            for (name, lines) in [
                ("stdout", self.by_rank.get(r)),
                ("stderr", self.stderr_by_rank.get(r)),
            ] {
                if let Some(text) = lines.filter(|t| !t.is_empty()) {
                    let _ = writeln!(s, "--- rank {r} {name} ---");
                    push_tail(&mut s, &text.lines().collect::<Vec<_>>());
                }
            }
        }
        if !self.untagged.is_empty() {
            let _ = writeln!(s, "--- launcher (untagged) ---");
            push_tail(
                &mut s,
                &self.untagged.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        if self
            .by_rank
            .iter()
            .chain(&self.stderr_by_rank)
            .all(String::is_empty)
            && self.untagged.is_empty()
        {
            let _ = writeln!(s, "(no output)");
        }
        s
    }
}

fn push_tail(s: &mut String, lines: &[&str]) {
    let skip = lines.len().saturating_sub(MESSAGE_LINES);
    if skip > 0 {
        let _ = writeln!(s, "[... {skip} earlier lines ...]");
    }
    for l in &lines[skip..] {
        let _ = writeln!(s, "{l}");
    }
}

/// Owns the launcher process; if dropped before the job finished (a panic in between), it
/// kills the job so that nothing outlives the test.
struct JobGuard {
    child: Child,
    marker: String,
    finished: bool,
}

impl JobGuard {
    /// SIGTERM to the launcher's process group (Open MPI and hydra pass it on to their ranks
    /// and kill those that ignore it), SIGKILL after [`TERM_GRACE`]. Returns the exit status.
    fn terminate(&mut self) -> Option<ExitStatus> {
        let group = format!("-{}", self.child.id());
        send_signal("TERM", std::slice::from_ref(&group));
        let until = Instant::now() + TERM_GRACE;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        send_signal("KILL", &[group]);
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.terminate();
            kill_marked(&self.marker);
        }
    }
}

/// Sends `signal` to `targets` (pids, or `-pgid` for process groups) with the shell's `kill`,
/// ignoring errors (a target may already be gone).
fn send_signal(signal: &str, targets: &[String]) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg("kill -s \"$0\" -- \"$@\"")
        .arg(signal)
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A marker unique to this job: process id, a counter and the time.
fn new_marker() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live (not zombie) processes whose environment holds `MARKER_VAR=marker`.
pub fn processes_with_marker(marker: &str) -> Vec<u32> {
    let wanted = format!("{MARKER_VAR}={marker}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Unreadable (another user's, or gone): not ours.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
        {
            continue;
        }
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        if !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every process carrying `marker` until none is left (at most ~3 s); returns the
/// pids that were found.
fn kill_marked(marker: &str) -> Vec<u32> {
    let mut killed = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let pids = processes_with_marker(marker);
        if pids.is_empty() || Instant::now() >= until {
            break;
        }
        send_signal("KILL", &pids.iter().map(u32::to_string).collect::<Vec<_>>());
        for p in pids {
            if !killed.contains(&p) {
                killed.push(p);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// A thread draining one pipe into a shared buffer, so a chatty job never blocks on a full
/// pipe and a partial result is available even if the pipe never closes.
struct Reader {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> Reader {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = mpsc::channel();
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock_ignoring_poison(&sink).extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    Reader { buf, done }
}

impl Reader {
    /// Waits up to `wait` for end of file, then returns what was read.
    fn finish(self, wait: Duration) -> String {
        let _ = self.done.recv_timeout(wait);
        let bytes = lock_ignoring_poison(&self.buf).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Splits tagged launcher output into per-rank stdout and stderr lines plus untagged lines.
fn split_by_rank(
    flavor: Flavor,
    ranks: usize,
    stdout: &str,
    stderr: &str,
) -> (Vec<Vec<String>>, Vec<Vec<String>>, Vec<String>) {
    let mut out = vec![Vec::new(); ranks];
    let mut err = vec![Vec::new(); ranks];
    let mut untagged = Vec::new();
    for (text, is_stderr) in [(stdout, false), (stderr, true)] {
        for raw in text.lines() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let pieces = match flavor {
                Flavor::OpenMpi => split_openmpi_line(line),
                Flavor::Mpich => split_mpich_line(line),
            };
            for (tag, piece) in pieces {
                match tag {
                    Some((rank, tag_is_stderr)) => {
                        let target = if tag_is_stderr.unwrap_or(is_stderr) {
                            &mut err
                        } else {
                            &mut out
                        };
                        if target.len() <= rank {
                            target.resize(rank + 1, Vec::new());
                        }
                        target[rank].push(piece.to_string());
                    }
                    None => untagged.push(piece.to_string()),
                }
            }
        }
    }
    let n = out.len().max(err.len());
    out.resize(n, Vec::new());
    err.resize(n, Vec::new());
    (out, err, untagged)
}

/// A rank and, for Open MPI, which stream the tag names (MPICH's tags do not say).
type Tag = (usize, Option<bool>);

/// Parses an Open MPI `--tag-output` tag, `[JOB,RANK]<stdout>:` or `[JOB,RANK]<stderr>:`,
/// at the start of `s`; returns the rank, whether it is stderr, and the tag's length.
fn parse_openmpi_tag(s: &str) -> Option<(usize, bool, usize)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (job, rank) = rest[..close].split_once(',')?;
    if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rank: usize = rank.parse().ok()?;
    let after = &rest[close + 1..];
    let (is_stderr, stream_len) = if after.starts_with("<stdout>:") {
        (false, "<stdout>:".len())
    } else if after.starts_with("<stderr>:") {
        (true, "<stderr>:".len())
    } else {
        return None;
    };
    Some((rank, is_stderr, 1 + close + 1 + stream_len))
}

/// Splits one line of Open MPI output at every tag. A rank's last line without a newline is
/// glued to the next rank's tag by the launcher (`[1,0]<stdout>:x[1,1]<stdout>:y`), so tags
/// are looked for anywhere in the line.
fn split_openmpi_line(line: &str) -> Vec<(Option<Tag>, &str)> {
    let mut pieces = Vec::new();
    let mut current: Option<Tag> = None;
    let mut piece_start = 0;
    let mut i = 0;
    while let Some(off) = line[i..].find('[') {
        let at = i + off;
        if let Some((rank, is_stderr, len)) = parse_openmpi_tag(&line[at..]) {
            if at > piece_start || current.is_some() {
                pieces.push((current, &line[piece_start..at]));
            }
            current = Some((rank, Some(is_stderr)));
            piece_start = at + len;
            i = piece_start;
        } else {
            i = at + 1;
        }
    }
    if piece_start < line.len() || current.is_some() || pieces.is_empty() {
        pieces.push((current, &line[piece_start..]));
    }
    pieces
}

/// Splits one line of MPICH `-prepend-rank` output: `[RANK] text` (tag at line start only).
fn split_mpich_line(line: &str) -> Vec<(Option<Tag>, &str)> {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((num, text)) = rest.split_once("] ") {
            if let Ok(rank) = num.parse::<usize>() {
                return vec![(Some((rank, None)), text)];
            }
        } else if let Some(num) = rest.strip_suffix(']') {
            // An empty line: hydra prints the tag without the space.
            if let Ok(rank) = num.parse::<usize>() {
                return vec![(Some((rank, None)), "")];
            }
        }
    }
    vec![(None, line)]
}

/// Quotes `s` for a POSIX shell if it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The workspace's top directory (where `scripts/` is).
pub fn workspace_root() -> PathBuf {
    // This crate sits one level below it.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Unit checks of the output parsers, run by `tests/harness.rs`.
pub fn parse_selftest() {
    let (out, err, untagged) = split_by_rank(
        Flavor::OpenMpi,
        3,
        "[1,0]<stdout>:hello\n[1,2]<stdout>:x [1] y\n[1,1]<stdout>:no newline[1,0]<stdout>:{\"a\":1}\nplain\n[1,1]<stdout>:\n",
        "[1,1]<stderr>:err\n",
    );
    assert_eq!(out[0], vec!["hello", "{\"a\":1}"]);
    assert_eq!(out[1], vec!["no newline", ""]);
    assert_eq!(out[2], vec!["x [1] y"]);
    assert_eq!(err[1], vec!["err"]);
    assert_eq!(untagged, vec!["plain"]);

    let (out, err, untagged) = split_by_rank(
        Flavor::Mpich,
        2,
        "[0] hello\n[1] [0] nested\n[1]\nnoise\n",
        "[1] err\n",
    );
    assert_eq!(out[0], vec!["hello"]);
    assert_eq!(out[1], vec!["[0] nested", ""]);
    assert_eq!(err[1], vec!["err"]);
    assert_eq!(untagged, vec!["noise"]);

    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("--mca"), "--mca");
}

/// The two client mounts of the test GlusterFS volume, started through `scripts/gluster.sh up`
/// (idempotent: well under a second when the volume is already up). One call per test binary
/// does the work; later calls get the same answer.
///
/// # Panics
/// If the volume cannot be started: the test fails with the script's reason. A test that needs
/// the distributed file system is never skipped silently.
pub fn gluster_mounts() -> (PathBuf, PathBuf) {
    static MOUNTS: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    let mounts = MOUNTS.get_or_init(|| {
        let stdout = script_up("gluster.sh", "the GlusterFS test volume did not start")?;
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        match lines.as_slice() {
            [.., a, b] => Ok((PathBuf::from(a.trim()), PathBuf::from(b.trim()))),
            _ => Err(format!(
                "scripts/gluster.sh up did not print two mount paths: {stdout:?}"
            )),
        }
    });
    match mounts {
        Ok(m) => m.clone(),
        Err(reason) => panic!("{reason}"),
    }
}

/// A file system with about `free` bytes free: a tmpfs at `/tmp/brlock-<name>` (mounted and
/// filled by `scripts/fulldisk.sh up DIR FREE`, emptied first on every call), for tests that
/// fill a disk in the middle of a run.
///
/// # Panics
/// As [`full_disk`].
pub fn nearly_full_disk(name: &str, free: u64) -> PathBuf {
    let dir = format!("/tmp/brlock-{name}");
    match script_up_with(
        "fulldisk.sh",
        &[&dir, &free.to_string()],
        "no nearly full disk for the test",
    ) {
        Ok(out) => PathBuf::from(out.trim()),
        Err(reason) => panic!("{reason}"),
    }
}

/// Runs `scripts/<script> up` and returns its stdout, or `failure` with the status and the
/// script's last line of stderr (its reason).
fn script_up(script: &str, failure: &str) -> Result<String, String> {
    script_up_with(script, &[], failure)
}

/// [`script_up`] with more arguments after `up`.
fn script_up_with(script: &str, args: &[&str], failure: &str) -> Result<String, String> {
    let path = workspace_root().join("scripts").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .arg("up")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("{failure} ({}): {reason}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A full file system: a 2 MiB tmpfs with no block free, mounted and filled by
/// `scripts/fulldisk.sh up` (idempotent). One call per test binary does the work.
///
/// # Panics
/// If it cannot be made (the script needs root to mount): the test fails with the script's
/// reason instead of being skipped.
pub fn full_disk() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let stdout = script_up("fulldisk.sh", "no full disk for the test")?;
        Ok(PathBuf::from(stdout.trim()))
    });
    match dir {
        Ok(d) => d.clone(),
        Err(reason) => panic!("{reason}"),
    }
}

/// A fresh directory for one test, `NAME.<pid>.<n>` under `parent` (created, world-writable
/// parents are the caller's business). Not removed afterwards, so a failure can be inspected;
/// the names never collide between runs.
pub fn fresh_dir(parent: &std::path::Path, name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("{name}.{}.{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create test directory {}: {e}", dir.display()));
    dir
}

/// The same fresh directory (see [`fresh_dir`]) through both GlusterFS client mounts: created
/// through the first, named through the second.
///
/// # Panics
/// As [`gluster_mounts`].
pub fn gluster_dirs(name: &str) -> (PathBuf, PathBuf) {
    let (a, b) = gluster_mounts();
    let dir_a = fresh_dir(&a, name);
    let dir_b = b.join(dir_a.file_name().expect("fresh_dir names a directory"));
    (dir_a, dir_b)
}

/// The target directory and profile of the running test binary (`target/<profile>/deps/X`):
/// where a test builds or installs what it needs (`scripts/install.sh --target-dir`).
///
/// # Panics
/// If the test binary is not in such a directory.
pub fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = profile_dir
        .parent()
        .expect("a target directory")
        .to_path_buf();
    (target, profile)
}

/// Example program `name` of the package in `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`),
/// built or found up to date by `cargo build --example NAME` in the target directory and
/// profile of the running test binary, once per name and test binary.
///
/// `cargo test` builds examples, but `cargo test --test X` does not, and a stale example would
/// test old code; cargo does not hold its build lock while tests run, so building here is safe
/// (about a second when nothing changed).
///
/// # Panics
/// If the build fails or the program is missing afterwards.
pub fn example(manifest_dir: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = lock_ignoring_poison(built);
    let result = built
        .entry(format!("{manifest_dir}/{name}"))
        .or_insert_with(|| build_example(manifest_dir, name));
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build_example(manifest_dir: &str, name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test binary's path: {e}"))?;
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the test binary is not in target/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("the profile directory has no parent")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "--example", name, "--target-dir"])
        .arg(target_dir)
        .current_dir(manifest_dir)
        .stdin(Stdio::null());
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building example {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        return Err(format!("{} missing after the build", path.display()));
    }
    Ok(path)
}
