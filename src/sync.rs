//! The synchronisation primitives the in-process simulation is built from.
//!
//! Normally these are `std`'s. Built with `--cfg loom` they are loom's (exhaustive
//! interleavings) and with `--cfg shuttle` shuttle's (randomised schedules), so the model
//! checks in `tests/model_loom.rs` and `tests/model_shuttle.rs` run the very protocol code and
//! simulated transport that the unit tests run.

#[cfg(loom)]
pub(crate) use loom::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(all(shuttle, not(loom)))]
pub(crate) use shuttle::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
};

/// Lock a mutex, ignoring poisoning: the simulation's state stays consistent because every
/// critical section is a plain copy, and a panicking simulated rank already fails the test.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Wait on `cv` until notified or `deadline` passes. Returns the guard and whether the
/// deadline passed. Under the model checkers a deadline counts as already passed.
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> (MutexGuard<'a, T>, bool) {
    match deadline {
        None => (cv.wait(guard).unwrap_or_else(|p| p.into_inner()), false),
        Some(d) => timed_wait(cv, guard, d),
    }
}

#[cfg(not(any(loom, shuttle)))]
fn timed_wait<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: std::time::Instant,
) -> (MutexGuard<'a, T>, bool) {
    let now = std::time::Instant::now();
    if now >= deadline {
        return (guard, true);
    }
    let (guard, _) = cv
        .wait_timeout(guard, deadline - now)
        .unwrap_or_else(|p| p.into_inner());
    (guard, std::time::Instant::now() >= deadline)
}

#[cfg(any(loom, shuttle))]
fn timed_wait<'a, T>(
    _cv: &Condvar,
    guard: MutexGuard<'a, T>,
    _deadline: std::time::Instant,
) -> (MutexGuard<'a, T>, bool) {
    (guard, true)
}
