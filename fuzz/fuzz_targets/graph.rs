//! Fuzzes `archc graph`: parse and check an `.arch` file (errors allowed, as `--allow-errors` draws it), then
//! build, lay out and write the graph (DOT and SVG, full and collapsed). Besides panics, a layout that takes
//! more than a linear-times-log number of steps is a crash (`common::run_graph`), and so is one that takes more
//! than a generous wall-clock budget per drawn item: a super-linear step the step count does not see.
#![no_main]

mod common;

use std::time::{Duration, Instant};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let started = Instant::now();
    let size = common::run_graph(data);
    // Parsing and checking included; about 100 times what the release build needs per item, plus slack for a
    // loaded machine and the sanitizer.
    let budget = Duration::from_millis(500) + Duration::from_micros(100 * size as u64);
    let elapsed = started.elapsed();
    assert!(
        elapsed <= budget,
        "{size} graph items took {elapsed:?} (budget {budget:?})"
    );
});
