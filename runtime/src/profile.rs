//! Where an inference's time goes, step by step of its [`Plan`](crate::plan::Plan): call [`start`], run the
//! model, and [`finish`] returns each step's time (its own, without the steps nested in it) and multiply-adds,
//! steps of the same kind and shape added together.
//!
//! ```no_run
//! # fn run(model: &dyn archc_runtime::candle_core::Module, x: &archc_runtime::candle_core::Tensor) -> archc_runtime::candle_core::Result<()> {
//! archc_runtime::profile::start();
//! model.forward(x)?;
//! for step in archc_runtime::profile::finish() {
//!     println!("{:>8.3} ms  {}", step.time.as_secs_f64() * 1e3, step.label);
//! }
//! # Ok(()) }
//! ```
//!
//! Only the plan's steps are timed (inference on a CPU `f32` input); candle's own ops, run in training or on
//! other devices, are not. A step's time is wall-clock time on the thread that ran it, its parallel loops
//! included; with a batch run as whole-image streams each stream's steps are counted, so the times add up to
//! the threads' time rather than the batch's. Switched off, a step costs one atomic load.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Steps of one kind and shape, added together.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the step computes: its layers, their shapes and the input's size.
    pub label: String,
    /// How many times such a step ran.
    pub calls: u64,
    /// Their time, less that of the steps nested in them (a branch inside a concatenation is a step of its own).
    pub time: Duration,
    /// Their multiply-adds (convolutions and linear layers; 0 for the other steps).
    pub macs: u64,
}

static ON: AtomicBool = AtomicBool::new(false);

/// The steps recorded since [`start`], by label; `None` when not recording.
static STEPS: Mutex<Option<HashMap<String, Step>>> = Mutex::new(None);

thread_local! {
    /// For each step being run on this thread, innermost last: the time of the steps nested in it so far.
    static NESTED: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
}

/// Starts recording, forgetting any steps recorded before.
pub fn start() {
    *STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(HashMap::new());
    ON.store(true, Ordering::Release);
}

/// Stops recording and returns the steps since [`start`], the longest first.
pub fn finish() -> Vec<Step> {
    ON.store(false, Ordering::Release);
    let steps = STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or_default();
    let mut steps: Vec<Step> = steps.into_values().collect();
    steps.sort_by_key(|step| std::cmp::Reverse(step.time));
    steps
}

/// Runs `run`; while recording, times it and adds it to the profile as what `describe` says of its result
/// (a label and the multiply-adds).
pub(crate) fn step<T, E>(
    run: impl FnOnce() -> Result<T, E>,
    describe: impl FnOnce(&T) -> (String, u64),
) -> Result<T, E> {
    let out = step_if_run(|| run().map(Some), describe)?;
    Ok(out.expect("`step_if_run` returns what `run` did"))
}

/// [`step`] for a step that may decline (`Ok(None)`: another way runs it instead), recorded only when it ran.
pub(crate) fn step_if_run<T, E>(
    run: impl FnOnce() -> Result<Option<T>, E>,
    describe: impl FnOnce(&T) -> (String, u64),
) -> Result<Option<T>, E> {
    if !ON.load(Ordering::Relaxed) {
        return run();
    }
    NESTED.with(|nested| nested.borrow_mut().push(Duration::ZERO));
    let started = Instant::now();
    let out = run();
    let elapsed = started.elapsed();
    let nested = NESTED.with(|nested| {
        let mut nested = nested.borrow_mut();
        let inner = nested.pop().unwrap_or_default();
        if let (Some(outer), Ok(Some(_))) = (nested.last_mut(), &out) {
            *outer += elapsed;
        }
        inner
    });
    if let Ok(Some(value)) = &out {
        let (label, macs) = describe(value);
        record(label, elapsed.saturating_sub(nested), macs);
    }
    out
}

fn record(label: String, time: Duration, macs: u64) {
    let mut steps = STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Stopped since the step began.
    let Some(steps) = steps.as_mut() else {
        return;
    };
    let step = steps.entry(label).or_insert_with_key(|label| Step {
        label: label.clone(),
        calls: 0,
        time: Duration::ZERO,
        macs: 0,
    });
    step.calls += 1;
    step.time += time;
    step.macs += macs;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested steps count once: the outer step's own time excludes the inner one's. (One test, so that no
    /// other test of this module records at the same time.)
    #[test]
    fn nested_steps_are_not_counted_twice() {
        start();
        let outer: Result<(), ()> = step(
            || {
                std::thread::sleep(Duration::from_millis(10));
                step(
                    || {
                        std::thread::sleep(Duration::from_millis(100));
                        Ok::<_, ()>(())
                    },
                    |_| ("inner".to_string(), 7),
                )?;
                Ok(())
            },
            |_| ("outer".to_string(), 0),
        );
        outer.unwrap();
        let failed: Result<(), &str> = step(|| Err("no"), |_| ("failed".to_string(), 1));
        assert!(failed.is_err());
        // (Other unit tests may run a plan meanwhile and add steps of their own.)
        let steps = finish();
        let find = |label: &str| steps.iter().position(|s| s.label == label);
        let (inner, outer) = (find("inner").unwrap(), find("outer").unwrap());
        assert!(inner < outer, "longest first");
        assert_eq!(find("failed"), None, "failed steps are left out");
        let (inner, outer) = (&steps[inner], &steps[outer]);
        assert_eq!((inner.calls, inner.macs), (1, 7));
        assert!(inner.time >= Duration::from_millis(100));
        assert!(outer.time >= Duration::from_millis(10));
        assert!(
            outer.time < Duration::from_millis(60),
            "the outer step's own time is its 10 ms, not 110: {:?}",
            outer.time
        );
        // Not recording: nothing is kept.
        step(|| Ok::<_, ()>(()), |_| ("after".to_string(), 0)).unwrap();
        assert!(finish().is_empty());
    }
}
