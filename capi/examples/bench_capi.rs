//! Lock+unlock through the C API against the Rust API, in the same run: the cost of the C
//! boundary (argument conversion, `catch_unwind`, the status code), measured, not asserted.
//!
//! Every rank opens one lock service through each API, then runs rounds of `ITERS` lock+unlock
//! pairs per API, of the same 64-byte range on every rank (`same`, contended) or of a range of
//! its own (`disjoint`). Within a round the two APIs alternate in batches of 50 pairs, so
//! that both meet the same contention and the same load of the machine. A round's time per
//! pair is the mean over the ranks; the median over the rounds is reported, and the fastest
//! round of each API (the least disturbed by other load on the machine).
//!
//! Usage: mpirun -np P bench_capi [ITERS [ROUNDS]]
//! Rank 0 prints one JSON line per pattern: `{"bench":"capi_lock","ranks":P,"mpi":...,
//! "osc":...,"pattern":"same","iters":N,"rounds":R,"rust_us":..,"c_us":..,"ratio":..,"rust_min_us":..,"c_min_us":..,"ratio_min":..}`.

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
/// Lock+unlock pairs of one API between two clock readings.
const BATCH: u32 = 50;

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
        let (mut rust_us, mut c_us) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            world.barrier();
            // Batches of the two APIs interleave (alternating which goes first), so both see
            // the same contention and the same load of the machine.
            let (mut rust_s, mut c_s) = (0.0f64, 0.0f64);
            for batch in 0..iters.div_ceil(BATCH) {
                for rust_now in [batch % 2 == 0, batch % 2 != 0] {
                    let start = Instant::now();
                    if rust_now {
                        for _ in 0..BATCH {
                            // The range is built per call, as the C API must.
                            let range = ByteRange::at(offset, LEN).map_err(|e| e.to_string())?;
                            rust.lock(range, LockMode::Exclusive)
                                .and_then(|()| rust.unlock())
                                .map_err(|e| e.to_string())?;
                        }
                        rust_s += start.elapsed().as_secs_f64();
                    } else {
                        for _ in 0..BATCH {
                            // SAFETY: `c` is this rank's open handle, used by this thread only.
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
                        c_s += start.elapsed().as_secs_f64();
                    }
                }
            }
            let pairs = f64::from(iters.div_ceil(BATCH) * BATCH);
            let mine = [rust_s * 1e6 / pairs, c_s * 1e6 / pairs];
            let mut sum = [0.0f64; 2];
            world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
            let ranks = f64::from(world.size());
            rust_us.push(sum[0] / ranks);
            c_us.push(sum[1] / ranks);
        }
        let (r, c_med) = (median(&mut rust_us), median(&mut c_us));
        // The fastest round of each: the least disturbed by other load on the machine.
        let (r_min, c_min) = (rust_us[0], c_us[0]);
        if rt.rank() == 0 {
            println!(
                "{{\"bench\":\"capi_lock\",\"ranks\":{},\"mpi\":\"{}\",\"osc\":\"{}\",\
                 \"pattern\":\"{pattern}\",\"iters\":{iters},\"rounds\":{rounds},\
                 \"rust_us\":{r:.3},\"c_us\":{c_med:.3},\"ratio\":{:.4},\
                 \"rust_min_us\":{r_min:.3},\"c_min_us\":{c_min:.3},\"ratio_min\":{:.4}}}",
                world.size(),
                brlock::sys::library_name(),
                std::env::var("OMPI_MCA_osc").unwrap_or_else(|_| "default".into()),
                c_med / r,
                c_min / r_min
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
