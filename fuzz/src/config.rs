//! `config_validation`: every check's and benchmark's configuration built from arbitrary
//! field values and validated against arbitrary rank counts, and every named choice parsed
//! from arbitrary text.
//!
//! Checked:
//! * [`Check::validate`] of [`LockCheck`], [`AtomicityCheck`], [`NoncontigCheck`],
//!   [`RmaCheck`], [`Demo`], [`LockBench`], [`AtomicBench`], [`SieveBench`] and
//!   [`AppendBench`] never panics, returns `Ok` or [`Error::InvalidArgument`], gives the
//!   same answer twice, and refuses what its documentation says it refuses; their
//!   [`Check::memory`] never panics (no overflow) and is the same twice;
//! * [`TaskSet::ranges`] on any text and [`Collect::validate`] on any settings never panic;
//!   a task set's labels exist for every task;
//!   [`SieveConfig::validate`] accepts exactly buffers of 1 to `MAX_BUFFER` bytes. `validate`
//!   runs before any MPI call (the binary validates first), so no MPI is initialised here; none
//!   of these `validate`s touches MPI or the file system (each was read for that).
//! * for each [`Choice`] type ([`Pattern`], [`ModeMix`], [`Coherence`], [`SievePolicy`],
//!   [`LockBackend`], [`FileBackend`], [`AppendMethod`], [`Mix`], [`SieveMethod`]):
//!   `from_name` accepts exactly the names and aliases, `str::parse` and
//!   [`brlock::choice::parse`] accept exactly those after trimming and otherwise fail with an
//!   `InvalidArgument` that lists the names; every name round-trips through `Display`, and
//!   names are distinct, non-empty and free of surrounding whitespace.
//!
//! Not fuzzed: `Collect::open` creates files and is collective.

use std::fmt::{Debug, Display};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use arbitrary::{Result, Unstructured};
use brlock::check::atomicity::AtomicityCheck;
use brlock::check::bench::append::{AppendBench, AppendMethod};
use brlock::check::bench::atomic::{AtomicBench, Mix};
use brlock::check::bench::lock::LockBench;
use brlock::check::bench::sieve::{SieveBench, SieveMethod};
use brlock::check::demo::Demo;
use brlock::check::files::FileBackend;
use brlock::check::lock::{LockBackend, LockCheck};
use brlock::check::noncontig::NoncontigCheck;
use brlock::check::rma::RmaCheck;
use brlock::check::workload::{ModeMix, Pattern};
use brlock::check::Check;
use brlock::choice::Choice;
use brlock::io::append::collect::{Collect, TaskSet};
use brlock::io::sieve::{SieveConfig, SievePolicy, MAX_BUFFER};
use brlock::io::Coherence;
use brlock::Error;

use crate::gen::{edgy_i32, edgy_u64, edgy_usize};

pub(crate) fn target(u: &mut Unstructured<'_>) -> Result<()> {
    let ranks = edgy_i32(u)?;
    match u.int_in_range(0u8..=11)? {
        0 => lock_check(u, ranks)?,
        1 => atomicity_check(u, ranks)?,
        2 => noncontig_check(u, ranks)?,
        3 => {
            let c = RmaCheck {
                iters: edgy_u64(u)?,
                unsafe_rmw: option(u, duration)?,
            };
            validated(&c, ranks);
        }
        4 => {
            let c = Demo {
                dir: option(u, path)?,
                rounds: edgy_u64(u)?,
                no_lock: u.arbitrary()?,
            };
            validated(&c, ranks);
        }
        5 => lock_bench(u, ranks)?,
        6 => {
            let c = AtomicBench {
                backend: choice(u)?,
                file: option(u, path)?,
                alt_file: option(u, path)?,
                ops: edgy_u64(u)?,
                mix: choice(u)?,
                seed: u.arbitrary()?,
                coherence: option(u, choice)?,
            };
            validated(&c, ranks);
        }
        7 => sieve_bench(u, ranks)?,
        8 => append_bench(u, ranks)?,
        9 => sieve_config(u)?,
        10 => collect(u)?,
        _ => choices(u)?,
    }
    Ok(())
}

/// `validate(ranks)`: `Ok` or `InvalidArgument`, the same answer twice. Returns whether it
/// was accepted.
fn validated<C: Check + Debug>(c: &C, ranks: i32) -> bool {
    assert_eq!(c.memory(ranks), c.memory(ranks));
    let first = c.validate(ranks);
    let second = c.validate(ranks);
    match (&first, &second) {
        (Ok(()), Ok(())) => true,
        (Err(Error::InvalidArgument(a)), Err(Error::InvalidArgument(b))) => {
            assert_eq!(a, b, "validate({ranks}) of {c:?} changed its answer");
            assert!(!a.is_empty(), "an empty error message");
            false
        }
        _ => panic!("validate({ranks}) of {c:?}: {first:?}, then {second:?}"),
    }
}

/// `collect`'s settings: task sets from any text, and `Collect::validate` on any settings.
fn collect(u: &mut Unstructured<'_>) -> Result<()> {
    let spec: String = u.arbitrary()?;
    let tasks = match TaskSet::ranges(&spec) {
        Ok(set) => {
            let n = set.len();
            assert!(
                n > 0 && n <= brlock::io::append::collect::tasks::MAX_TASKS,
                "{spec:?}"
            );
            for i in [0, n / 2, n - 1] {
                assert!(!set.label(i).is_empty());
            }
            Some(set)
        }
        Err(e) => {
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            None
        }
    };
    let mut c = Collect::new(path(u)?, u.arbitrary()?);
    c.tasks = tasks;
    c.index = option(u, path)?;
    c.errors = option(u, path)?;
    c.ordered = u.arbitrary()?;
    c.jobs = edgy_usize(u)?;
    c.chunk = edgy_u64(u)?;
    c.batch_bytes = edgy_u64(u)?;
    c.truncate = u.arbitrary()?;
    c.resume = choice(u)?;
    let first = c.validate().map_err(|e| e.to_string());
    assert_eq!(first, c.validate().map_err(|e| e.to_string()), "{c:?}");
    if c.jobs == 0 || c.chunk == 0 {
        assert!(first.is_err(), "{c:?}");
    }
    Ok(())
}

fn option<T>(
    u: &mut Unstructured<'_>,
    f: fn(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary::<bool>()? {
        Some(f(u)?)
    } else {
        None
    })
}

fn path(u: &mut Unstructured<'_>) -> Result<PathBuf> {
    Ok(PathBuf::from(u.arbitrary::<String>()?))
}

fn duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Duration::ZERO,
        1 => Duration::MAX,
        2 => Duration::from_micros(edgy_u64(u)?),
        _ => Duration::new(edgy_u64(u)?, u.int_in_range(0..=999_999_999)?),
    })
}

fn choice<T: Choice>(u: &mut Unstructured<'_>) -> Result<T> {
    Ok(u.choose(T::ALL)?.0)
}

fn lock_check(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = LockCheck {
        backend: choice(u)?,
        pattern: choice(u)?,
        mode: choice(u)?,
        iters: edgy_u64(u)?,
        seed: u.arbitrary()?,
        hold: duration(u)?,
        file: option(u, path)?,
        home: edgy_i32(u)?,
        try_percent: edgy_u64(u)?,
        timeout: duration(u)?,
        busy_home_ms: edgy_u64(u)?,
        algorithm: choice(u)?,
        homes: edgy_usize(u)?,
        stripe: edgy_u64(u)?,
    };
    let ok = validated(&c, ranks);
    if c.file.is_some() && c.backend.fcntl_kind().is_none() {
        assert!(!ok, "a lock file with a backend that takes none: {c:?}");
    }
    assert_shards_refused(c.backend, c.homes, c.stripe, ranks, ok, &c);
    Ok(())
}

/// Shard settings the lock check and benchmark must refuse: no homes, more homes than ranks,
/// several homes for a service that has one, or an empty stripe.
fn assert_shards_refused(
    backend: LockBackend,
    homes: usize,
    stripe: u64,
    ranks: i32,
    ok: bool,
    c: &dyn Debug,
) {
    let too_many = usize::try_from(ranks.max(1)).is_ok_and(|r| homes > r);
    if homes == 0 || too_many || stripe == 0 || (homes > 1 && backend != LockBackend::Rma) {
        assert!(!ok, "accepted bad shard settings {c:?} on {ranks} ranks");
    }
}

fn atomicity_check(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = AtomicityCheck {
        file: path(u)?,
        alt_file: option(u, path)?,
        backend: choice(u)?,
        noncontig: u.arbitrary()?,
        grow: u.arbitrary()?,
        iters: edgy_u64(u)?,
        ints: edgy_u64(u)?,
        coherence: option(u, choice)?,
        sieve_buffer: option(u, edgy_usize)?,
    };
    let ok = validated(&c, ranks);
    if ranks < 2 {
        assert!(!ok, "check atomicity accepted {ranks} ranks");
    }
    if c.grow && c.noncontig {
        assert!(!ok, "check atomicity accepted --grow with --noncontig");
    }
    Ok(())
}

fn noncontig_check(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = NoncontigCheck {
        file: path(u)?,
        alt_file: option(u, path)?,
        backend: choice(u)?,
        ints: edgy_u64(u)?,
        iters: edgy_u64(u)?,
        sieve_buffer: edgy_usize(u)?,
        coherence: option(u, choice)?,
        plain_odd: u.arbitrary()?,
        unsafe_unlocked_plain_writes: u.arbitrary()?,
    };
    let ok = validated(&c, ranks);
    if !(2..=2000).contains(&ranks) {
        assert!(!ok, "check noncontig accepted {ranks} ranks");
    }
    if c.unsafe_unlocked_plain_writes && (!c.plain_odd || c.backend != FileBackend::Rma) {
        assert!(
            !ok,
            "the unlocked-plain-writes control accepted without its conditions: {c:?}"
        );
    }
    Ok(())
}

fn lock_bench(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = LockBench {
        backend: choice(u)?,
        file: option(u, path)?,
        alt_file: option(u, path)?,
        pattern: choice(u)?,
        mode: choice(u)?,
        iters: edgy_u64(u)?,
        hold_us: edgy_u64(u)?,
        warmup: edgy_u64(u)?,
        seed: u.arbitrary()?,
        home: edgy_i32(u)?,
        algorithm: choice(u)?,
        homes: edgy_usize(u)?,
        stripe: edgy_u64(u)?,
    };
    let ok = validated(&c, ranks);
    if c.backend == LockBackend::None || !(0..ranks).contains(&c.home) {
        assert!(!ok, "bench lock accepted {c:?} on {ranks} ranks");
    }
    assert_shards_refused(c.backend, c.homes, c.stripe, ranks, ok, &c);
    Ok(())
}

fn sieve_bench(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = SieveBench {
        method: choice(u)?,
        file: option(u, path)?,
        alt_file: option(u, path)?,
        block: edgy_u64(u)?,
        stride: edgy_u64(u)?,
        count: edgy_u64(u)?,
        reps: edgy_u64(u)?,
        coherence: option(u, choice)?,
    };
    let ok = validated(&c, ranks);
    if let Ok(r) = u64::try_from(ranks) {
        if r >= 1 && c.block.checked_mul(r).is_none_or(|n| c.stride < n) {
            assert!(
                !ok,
                "bench sieve accepted overlapping blocks: {c:?} on {ranks} ranks"
            );
        }
    }
    Ok(())
}

fn append_bench(u: &mut Unstructured<'_>, ranks: i32) -> Result<()> {
    let c = AppendBench {
        method: choice(u)?,
        dir: option(u, path)?,
        alt_dir: option(u, path)?,
        records: edgy_u64(u)?,
        batch_bytes: edgy_u64(u)?,
        seed: u.arbitrary()?,
        keep: u.arbitrary()?,
        unsafe_no_reserve: u.arbitrary()?,
    };
    let ok = validated(&c, ranks);
    if c.unsafe_no_reserve && c.method != AppendMethod::Rma {
        assert!(!ok, "the no-reserve control accepted with {:?}", c.method);
    }
    Ok(())
}

fn sieve_config(u: &mut Unstructured<'_>) -> Result<()> {
    let c = SieveConfig {
        write_buffer: edgy_usize(u)?,
        read_buffer: edgy_usize(u)?,
        write: choice(u)?,
        read: choice(u)?,
    };
    let fits = |b: usize| (1..=MAX_BUFFER).contains(&b);
    match c.validate() {
        Ok(()) => assert!(
            fits(c.write_buffer) && fits(c.read_buffer),
            "{c:?} accepted"
        ),
        Err(Error::InvalidArgument(_)) => {
            assert!(
                !(fits(c.write_buffer) && fits(c.read_buffer)),
                "{c:?} refused"
            )
        }
        Err(e) => panic!("{c:?}: {e:?}"),
    }
    Ok(())
}

/// Text to parse: anything, or a real name or alias, sometimes padded, cut or recased.
fn text<T: Choice>(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1u8, 3u8)? {
        return u.arbitrary();
    }
    let names: Vec<&str> = T::ALL
        .iter()
        .map(|&(_, n, _)| n)
        .chain(T::ALIASES.iter().map(|&(_, a)| a))
        .collect();
    let mut s = u.choose(&names)?.to_string();
    match u.int_in_range(0u8..=5)? {
        0 => s = format!("{}{s}{}", pad(u)?, pad(u)?),
        1 => {
            let cut = u.int_in_range(0..=s.len())?;
            s.truncate(cut);
        }
        2 => s = s.to_uppercase(),
        3 => s.push_str(&u.arbitrary::<String>()?),
        _ => {}
    }
    Ok(s)
}

fn pad(u: &mut Unstructured<'_>) -> Result<&'static str> {
    Ok(*u.choose(&["", " ", "\t", "\n", "\u{a0}", "\u{3000}", " \r\n "])?)
}

fn check_choice<T>(u: &mut Unstructured<'_>) -> Result<()>
where
    T: Choice + FromStr<Err = Error> + Display + Debug,
{
    let mut names: Vec<&str> = Vec::new();
    for &(v, name, _help) in T::ALL {
        assert!(!name.is_empty() && name.trim() == name, "name {name:?}");
        assert_eq!(T::from_name(name), Some(v), "{name}");
        assert_eq!(v.name(), name);
        assert_eq!(v.to_string(), name);
        assert_eq!(name.parse::<T>().ok(), Some(v));
        names.push(name);
    }
    for &(v, alias) in T::ALIASES {
        assert!(
            !alias.is_empty() && alias.trim() == alias,
            "alias {alias:?}"
        );
        assert_eq!(T::from_name(alias), Some(v), "{alias}");
        names.push(alias);
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a name given twice: {names:?}");

    let s = text::<T>(u)?;
    let exact = T::from_name(&s);
    match exact {
        Some(v) => assert!(
            v.name() == s || T::ALIASES.contains(&(v, s.as_str())),
            "{s:?} named {v:?}"
        ),
        None => assert!(!names.contains(&s.as_str()), "{s:?} not found"),
    }
    let trimmed = T::from_name(s.trim());
    let parsed = s.parse::<T>();
    let via = brlock::choice::parse::<T>("choice", &s);
    match (&parsed, &via) {
        (Ok(a), Ok(b)) => {
            assert_eq!(Some(*a), trimmed, "{s:?}");
            assert_eq!(a, b);
        }
        (Err(Error::InvalidArgument(a)), Err(Error::InvalidArgument(b))) => {
            assert_eq!(trimmed, None, "{s:?} refused");
            let expected = T::expected();
            assert!(
                a.contains(&expected) && b.contains(&expected),
                "{a:?} / {b:?}"
            );
        }
        _ => panic!("{s:?}: {parsed:?} / {via:?}"),
    }
    Ok(())
}

fn choices(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0u8..=8)? {
        0 => check_choice::<Pattern>(u),
        1 => check_choice::<ModeMix>(u),
        2 => check_choice::<Coherence>(u),
        3 => check_choice::<SievePolicy>(u),
        4 => check_choice::<LockBackend>(u),
        5 => check_choice::<FileBackend>(u),
        6 => check_choice::<AppendMethod>(u),
        7 => check_choice::<Mix>(u),
        _ => check_choice::<SieveMethod>(u),
    }
}
