//! Fuzzes `archc graph`: parse and check an `.arch` file (errors allowed, as `--allow-errors` draws it), then
//! build, lay out and write the graph (DOT and SVG, full and collapsed). Besides panics, a layout that takes
//! more than a linear-times-log number of steps is a crash (`common::run_graph`), and so is one that takes more
//! than a generous CPU-time budget per drawn item: a super-linear step the step count does not see.
#![no_main]

mod common;

use std::time::Duration;

/// CPU time this thread has used. Wall time is no measure on a shared machine: under a load of 9 on 2 cores a
/// 5 ms input once took 0.9 s of wall time.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call only writes it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let started = thread_cpu_time();
    let size = common::run_graph(data);
    // Parsing and checking included; about 100 times what the release build needs per item, and a second for
    // the rest.
    let budget = Duration::from_secs(1) + Duration::from_micros(100 * size as u64);
    let used = thread_cpu_time().saturating_sub(started);
    assert!(
        used <= budget,
        "{size} graph items took {used:?} of CPU time (budget {budget:?})"
    );
});
