//! Lock+unlock through the C API against the Rust API, in the same run: the cost of the C
//! boundary (argument conversion, `catch_unwind`, the status code), measured, not asserted.
//!
//! Every rank opens one lock service through each API, then runs rounds that alternate the
//! two (so drift in the machine's load hits both alike): `ITERS` lock+unlock pairs of the same
//! 64-byte range on every rank (`same`, contended) or of a range of its own (`disjoint`).
//! A round's time per pair is the mean over the ranks; the median over the rounds is reported.
//!
//! Usage: mpirun -np P bench_capi [ITERS [ROUNDS]]
//! Rank 0 prints one JSON line per pattern: `{"bench":"capi_lock","ranks":P,"mpi":...,
//! "osc":...,"pattern":"same","iters":N,"rounds":R,"rust_us":..,"c_us":..,"ratio":..}`.

use std::os::raw::c_int;
use std::time::Instant;

use brlock::runtime::Runtime;
use brlock::{ByteRange, LockMode, RangeLock, RmaLock};
use brlock_capi::{
    brlock_lock_close, brlock_lock_lock, brlock_lock_open, brlock_lock_t, brlock_lock_unlock,
    BRLOCK_EXCLUSIVE, BRLOCK_OK,
};
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::raw::AsRaw;
use mpi::topology::Communicator;

const LEN: u64 = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::init()?;
    let result = run(&rt);
    rt.finish(result.map_err(brlock::Error::InvalidArgument))
        .map_err(Into::into)
}

fn run(rt: &Runtime) -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let iters: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let world = rt.world();
    let mut rust = RmaLock::open(world, 0).map_err(|e| e.to_string())?;
    let mut c: *mut brlock_lock_t = std::ptr::null_mut();
    // SAFETY: the world communicator is live for the whole run; `c` is a valid out-pointer.
    let status = unsafe { brlock_lock_open(world.as_raw(), 0, &mut c) };
    if status != BRLOCK_OK {
        return Err(format!("brlock_lock_open returned {status}"));
    }
    for pattern in ["same", "disjoint"] {
        let offset = if pattern == "same" {
            0
        } else {
            u64::try_from(rt.rank()).unwrap_or(0) * LEN
        };
        let range = ByteRange::at(offset, LEN).map_err(|e| e.to_string())?;
        let (mut rust_us, mut c_us) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which API goes first.
            for first in [round % 2 == 0, round % 2 != 0] {
                world.barrier();
                let start = Instant::now();
                if first {
                    for _ in 0..iters {
                        rust.lock(range, LockMode::Exclusive)
                            .and_then(|()| rust.unlock())
                            .map_err(|e| e.to_string())?;
                    }
                } else {
                    for _ in 0..iters {
                        // SAFETY: `c` is the open handle of this rank, used by this thread only.
                        let (a, b) = unsafe {
                            (
                                brlock_lock_lock(c, offset, LEN, BRLOCK_EXCLUSIVE),
                                brlock_lock_unlock(c),
                            )
                        };
                        if a != BRLOCK_OK || b != BRLOCK_OK {
                            return Err(format!("C API lock/unlock returned {a}/{b}"));
                        }
                    }
                }
                let mine = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
                let mut sum = 0.0f64;
                world.all_reduce_into(&mine, &mut sum, SystemOperation::sum());
                let mean = sum / f64::from(world.size());
                if first { &mut rust_us } else { &mut c_us }.push(mean);
            }
        }
        let (r, c_med) = (median(&mut rust_us), median(&mut c_us));
        if rt.rank() == 0 {
            println!(
                "{{\"bench\":\"capi_lock\",\"ranks\":{},\"mpi\":\"{}\",\"osc\":\"{}\",\
                 \"pattern\":\"{pattern}\",\"iters\":{iters},\"rounds\":{rounds},\
                 \"rust_us\":{r:.3},\"c_us\":{c_med:.3},\"ratio\":{:.4}}}",
                world.size(),
                brlock::sys::library_name(),
                std::env::var("OMPI_MCA_osc").unwrap_or_else(|_| "default".into()),
                c_med / r
            );
        }
    }
    // SAFETY: `c` is this rank's open handle; every rank closes at this point.
    let status: c_int = unsafe { brlock_lock_close(&mut c) };
    if status != BRLOCK_OK {
        return Err(format!("brlock_lock_close returned {status}"));
    }
    rust.close().map_err(|e| e.to_string())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}
