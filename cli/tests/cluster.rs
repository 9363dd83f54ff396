//! The checks across a cluster of two emulated hosts (`scripts/cluster.sh`: network
//! namespaces joined by a bridge, a GlusterFS server and one client per host), launched by
//! `scripts/cluster-mpirun`: the lock's exclusion check under `osc pt2pt` and `osc ucx` and
//! the atomicity check with ranks on both hosts, each with its negative control.
//!
//! Every test brings a cluster of its own up and down again (one at a time), under its own
//! name, directory and subnet, so that a cluster someone left up is not touched; teardown
//! runs also when the test fails, and then checks that nothing is left. Making namespaces
//! needs root and `ip netns`: without them every test FAILS with the reason, never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{workspace_root, MpiRun, RunOutput};
use serde_json::Value;

const HOSTS: usize = 2;
/// The test cluster's settings (cluster.sh's BRLOCK_CLUSTER_*), distinct from its defaults.
const NAME: &str = "brct";
const ROOT: &str = "/var/lib/brlock-cluster-test";
const SUBNET: &str = "10.213.78";
/// Bound of one `cluster.sh up` or `down` (each bounds its own waits well below this).
const SCRIPT_TIMEOUT_S: u32 = 180;
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// One cluster at a time in this binary.
static CLUSTER_LOCK: Mutex<()> = Mutex::new(());

fn script(name: &str) -> PathBuf {
    workspace_root().join("scripts").join(name)
}

/// `cluster.sh ARGS...` with the test cluster's settings, killed after SCRIPT_TIMEOUT_S.
fn cluster_sh(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", &SCRIPT_TIMEOUT_S.to_string(), "bash"])
        .arg(script("cluster.sh"))
        .args(args)
        .env("BRLOCK_CLUSTER_NAME", NAME)
        .env("BRLOCK_CLUSTER_ROOT", ROOT)
        .env("BRLOCK_CLUSTER_SUBNET", SUBNET)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run timeout/bash scripts/cluster.sh: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Why namespaces cannot be made here, if they cannot.
fn cannot_make_namespaces() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Some(format!(
            "the cluster tests need root to create network namespaces and FUSE mounts (effective uid {euid})"
        ));
    }
    let ip = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output();
    match ip {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip netns list` failed: {}", text(&o))),
        Err(e) => Some(format!(
            "cannot run `ip` (package iproute2; run scripts/setup.sh): {e}"
        )),
    }
}

/// What of the test cluster exists now: its namespaces, mounts under its root, the root.
fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    if let Ok(o) = Command::new("ip").args(["netns", "list"]).output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let ns = l.split_whitespace().next().unwrap_or("");
            if ns.starts_with(&format!("{NAME}-")) {
                left.push(format!("namespace {ns}"));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for l in mounts.lines() {
        if let Some(target) = l.split_whitespace().nth(1) {
            if target.starts_with(ROOT) {
                left.push(format!("mount {target}"));
            }
        }
    }
    if Path::new(ROOT).exists() {
        left.push(format!("directory {ROOT}"));
    }
    left
}

/// A test cluster of [`HOSTS`] hosts, up while this lives; dropping it runs `down`.
struct Cluster {
    /// The shared path: the volume as every host sees it (through its own client).
    vol: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    fn up() -> Cluster {
        let serial = CLUSTER_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = cannot_make_namespaces() {
            panic!("no cluster can be made here: {reason}");
        }
        let out = cluster_sh(&["up", &HOSTS.to_string()]);
        // From here on, the guard tears down whatever `up` made, even half of it.
        let mut cluster = Cluster {
            vol: PathBuf::new(),
            _serial: serial,
        };
        assert!(out.status.success(), "cluster.sh up failed: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let vol = stdout.lines().rev().find(|l| !l.trim().is_empty());
        cluster.vol = PathBuf::from(vol.expect("cluster.sh up printed the shared path").trim());
        cluster
    }

    /// A job of `ranks` ranks (rank r on host r mod HOSTS) running the `brlock` under test.
    fn brlock(&self, ranks: usize) -> MpiRun {
        self.job(ranks, common::binary())
    }

    fn job(&self, ranks: usize, program: impl Into<PathBuf>) -> MpiRun {
        MpiRun::new(ranks, program)
            .launcher(script("cluster-mpirun").to_string_lossy().into_owned())
            .env("BRLOCK_CLUSTER_ROOT", ROOT)
            .timeout(JOB_TIMEOUT)
    }

    /// A new file name on the shared path, in a directory made through host 1's client
    /// (outside the cluster the shared path is a read-only placeholder).
    fn file(&self, name: &str) -> String {
        let dir = common::fresh_dir(&Path::new(ROOT).join("mnt/h1"), name);
        let name = dir.file_name().expect("fresh_dir names a directory");
        self.vol
            .join(name)
            .join("data.bin")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = cluster_sh(&["down"]);
        let left = leftovers();
        let problem = if !out.status.success() {
            Some(format!("cluster.sh down failed: {}", text(&out)))
        } else if !left.is_empty() {
            Some(format!("cluster.sh down left {left:?}: {}", text(&out)))
        } else {
            None
        };
        if let Some(p) = problem {
            if std::thread::panicking() {
                eprintln!("{p}");
            } else {
                panic!("{p}");
            }
        }
    }
}

fn u(json: &Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric `{key}` in {json}"))
}

fn json_of(out: &RunOutput, what: &str) -> Value {
    assert!(out.success(), "{what}: {}", out.failure_message());
    out.rank0_json()
}

/// Ranks run on their hosts: host names h1, h2, h1, h2 in rank order, the shared path a
/// GlusterFS client whose device is the same on one host and differs between hosts, and
/// every rank's address on the cluster's subnet.
#[test]
fn ranks_run_on_their_hosts_each_through_its_client() {
    let c = Cluster::up();
    let probe = format!(
        "echo \"$(hostname) $(stat -c %d {vol}) $(stat -f -c %T {vol}) $(ip -4 -o addr show dev eth0 | awk '{{print $4}}')\"",
        vol = c.vol.display()
    );
    let out = c.job(4, "sh").args(["-c", &probe]).run_ok();
    let mut devices = Vec::new();
    for r in 0..4 {
        let line = out.rank_lines(r).join(" ");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "rank {r}: {line:?}\n{}", out.describe());
        assert_eq!(fields[0], format!("h{}", r % HOSTS + 1), "rank {r}: {line}");
        assert_eq!(fields[2], "fuseblk", "rank {r}: not a FUSE mount: {line}");
        assert_eq!(
            fields[3],
            format!("{SUBNET}.{}/24", r % HOSTS + 1),
            "rank {r}: {line}"
        );
        devices.push(fields[1].to_string());
    }
    assert_eq!(devices[0], devices[2], "h1's ranks differ: {devices:?}");
    assert_eq!(devices[1], devices[3], "h2's ranks differ: {devices:?}");
    assert_ne!(
        devices[0], devices[1],
        "h1 and h2 share one client: {devices:?}"
    );
}

/// `check lock` across two hosts under `osc`: 0 violations with the lock at 2 ranks (one per
/// host) and 4 (two per host), and the checker catches the missing lock of the control.
fn lock_across_hosts(osc: &str) {
    let c = Cluster::up();
    for (ranks, pattern, mode) in [(2, "same", "exclusive"), (4, "random", "mixed")] {
        let what = format!("osc {osc}, {ranks} ranks on {HOSTS} hosts, {pattern}/{mode}");
        let out = c
            .brlock(ranks)
            .osc(osc)
            .args(["check", "lock", "--json", "--iters", "100"])
            .args(["--pattern", pattern, "--mode", mode, "--try-percent", "10"])
            .run();
        let json = json_of(&out, &what);
        assert_eq!(json["osc"], osc, "{what}: {json}");
        assert_eq!(
            u(&json, "acquisitions"),
            100 * ranks as u64,
            "{what}: {json}"
        );
        assert_eq!(u(&json, "violations"), 0, "{what}: {json}");
        assert_eq!(u(&json, "leftover_messages"), 0, "{what}: {json}");
        assert_eq!(u(&json, "max_bypass"), 0, "{what}: {json}");
        assert_eq!(json["ok"], true, "{what}: {json}");
    }
    // The control: 4 ranks, two per host. With 2 ranks the checker's home (rank 0) is one of
    // the two racers, and under osc ucx the other's stamps wait while it spins outside MPI.
    let what = format!("osc {osc}, no lock, 4 ranks on {HOSTS} hosts");
    let out = c
        .brlock(4)
        .osc(osc)
        .args(["check", "lock", "--json", "--backend", "none"])
        .args(["--pattern", "same", "--iters", "200", "--hold-us", "200"])
        .run();
    let json = json_of(&out, &what);
    assert!(
        u(&json, "violations") > 0,
        "{what}: the checker saw no violation without a lock: {json}"
    );
    assert_eq!(json["ok"], false, "{what}: {json}");
}

#[test]
fn lock_check_across_two_hosts_osc_pt2pt() {
    lock_across_hosts("pt2pt");
}

#[test]
fn lock_check_across_two_hosts_osc_ucx() {
    lock_across_hosts("ucx");
}

/// `check atomicity` with the writer (rank 0) on h1 and readers on both hosts, every rank
/// through its own host's client at the same path: atomic mode over the lock gives 0 mixed
/// and 0 stale reads; plain I/O (the control) reads stale data across the clients.
#[test]
fn atomicity_check_across_two_hosts() {
    let c = Cluster::up();
    for extra in [&[][..], &["--noncontig"][..]] {
        let what = format!("rma {extra:?}, 4 ranks on {HOSTS} hosts");
        let out = c
            .brlock(4)
            .args(["check", "atomicity", "--json", "--backend", "rma"])
            .args(["--iters", "40", "--file", &c.file("atomic")])
            .args(extra.iter().copied())
            .run();
        let json = json_of(&out, &what);
        assert_eq!(json["fs_type"], "fuse.glusterfs", "{what}: {json}");
        assert_eq!(u(&json, "reads"), 40 * 3, "{what}: {json}");
        assert_eq!(u(&json, "mixed_reads"), 0, "{what}: {json}");
        assert_eq!(u(&json, "stale_reads"), 0, "{what}: {json}");
        assert_eq!(json["ok"], true, "{what}: {json}");
    }
    let what = format!("no atomic mode (control), 4 ranks on {HOSTS} hosts");
    let out = c
        .brlock(4)
        .args(["check", "atomicity", "--json", "--backend", "none"])
        .args(["--iters", "40", "--file", &c.file("control")])
        .run();
    let json = json_of(&out, &what);
    assert_eq!(json["fs_type"], "fuse.glusterfs", "{what}: {json}");
    assert!(
        u(&json, "mixed_reads") + u(&json, "stale_reads") > 0,
        "{what}: plain I/O across two clients showed no hazard: {json}"
    );
    assert_eq!(json["ok"], false, "{what}: {json}");
}

/// `up` twice is harmless, `up` with another size is refused while one is up, `status` says
/// up, and `down` (run by the guard) leaves nothing (checked by the guard).
#[test]
fn cluster_script_is_idempotent() {
    let c = Cluster::up();
    let again = cluster_sh(&["up", &HOSTS.to_string()]);
    assert!(again.status.success(), "second up: {}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("(all present)"),
        "second up changed something: {}",
        text(&again)
    );
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .trim_end()
            .ends_with(&*c.vol.to_string_lossy()),
        "{}",
        text(&again)
    );
    let status = cluster_sh(&["status"]);
    assert!(status.status.success(), "status: {}", text(&status));
    let other = cluster_sh(&["up", "3"]);
    assert!(!other.status.success(), "up 3 over up 2: {}", text(&other));
    let err = String::from_utf8_lossy(&other.stderr);
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("run 'cluster.sh down' first"), "{err}");
}
