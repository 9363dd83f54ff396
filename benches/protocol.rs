//! The protocol's own cost, without MPI: `LockClient` over the in-process simulated transport.
//!
//! ```sh
//! cargo bench --bench protocol
//! ```
//!
//! * uncontended: one thread locks and unlocks a range in a table of P slots; every exchange
//!   copies the whole table, as the MPI transport's gets do, so this shows how the protocol's
//!   CPU cost grows with P.
//!
//! Contended costs are dominated by scheduling and messaging; they are measured over MPI by
//! `brlock check lock`, not here.
//!
//! Prints one JSON object per configuration (and a human line on stderr). The MPI numbers come
//! from `brlock check lock` (and `brlock bench`).

use std::time::Instant;

use brlock::protocol::LockClient;
use brlock::transport::sim;
use brlock::{ByteRange, LockMode, RangeLock};

fn uncontended(ranks: usize, iters: u64) -> f64 {
    let mut transports = sim::world(ranks);
    // Only rank 0 takes part; the other slots stay idle but are read by every exchange.
    let others: Vec<_> = transports.drain(1..).collect();
    let mut lock = LockClient::new(transports.remove(0));
    let range = ByteRange::at(0, 4096).expect("valid range");
    let start = Instant::now();
    for _ in 0..iters {
        lock.lock(range, LockMode::Exclusive).expect("lock");
        lock.unlock().expect("unlock");
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    // Shutdown is collective; the idle ranks never take part, so skip it.
    std::mem::forget(lock);
    drop(others);
    ns
}

fn main() {
    for ranks in [1usize, 16, 256, 1024] {
        let iters = 200_000 / ranks as u64 + 1_000;
        let ns = uncontended(ranks, iters);
        eprintln!("uncontended, table of {ranks} slots: {ns:.0} ns per lock+unlock");
        println!(
            "{{\"bench\":\"protocol\",\"case\":\"uncontended\",\"ranks\":{ranks},\"iters\":{iters},\"ns_per_lock_unlock\":{ns:.1}}}"
        );
    }
}
