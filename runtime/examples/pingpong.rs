//! How long a cache line takes to pass between two cores: two threads hand an atomic flag back and forth and
//! the round trip is timed. On a 2-vCPU virtual machine the answer moves with the host's placement of the
//! vCPUs (70–80 ns in most sittings of issue 13's session 11, 370–400 ns in others), and with it how much a
//! batch-1 network gains from its second thread, which forks and joins them several times a layer: run it
//! beside a two-thread benchmark to tell the host's state.
//!
//! ```sh
//! cargo run --release -p archc-runtime --example pingpong
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const ROUNDS: u32 = 200_000;

fn main() {
    let flag = Arc::new(AtomicBool::new(false));
    let other = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                // No `spin_loop` hint: its pause would be timed too.
                while !flag.load(Ordering::Acquire) {}
                flag.store(false, Ordering::Release);
            }
        })
    };
    let start = Instant::now();
    for _ in 0..ROUNDS {
        flag.store(true, Ordering::Release);
        while flag.load(Ordering::Acquire) {}
    }
    let elapsed = start.elapsed();
    other.join().expect("the other thread");
    println!(
        "round trip {:.1} ns",
        elapsed.as_nanos() as f64 / f64::from(ROUNDS)
    );
}
