//! A plan run from outside rayon's pool when the pool has one thread: its layers run on the pool's thread,
//! where the kernels' parallel loops run inline. Run on the caller's thread, each loop was handed to the pool's
//! thread and the caller put to sleep until it finished, a sleep and a wake-up for every step (GoogLeNet at
//! one thread 26.8 → 23.8 ms, bench/RESULTS.md, *Issue 13, session 13*). In a file of its own: it sets the
//! process's global pool to one thread.

use std::sync::Mutex;

use archc_runtime::nn::{Describe, Op, Optimizations, Plan};
use candle_core::{DType, Device, Module, Result, Tensor};

/// A layer that records the rayon thread it runs on (`None`: a thread outside every pool).
struct Probe(Mutex<Vec<Option<usize>>>);

impl Module for Probe {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.lock().unwrap().push(rayon::current_thread_index());
        Ok(x.clone())
    }
}

struct Net {
    probe: Probe,
}

impl Describe for Net {
    fn describe(&self) -> Op<'_> {
        Op::chain([Op::Module(&self.probe), Op::Relu])
    }
}

#[test]
fn a_one_thread_plan_runs_its_layers_on_the_pools_thread() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("the global pool is set once, by this test alone");
    assert_eq!(rayon::current_thread_index(), None, "the test's own thread");
    let net = Net {
        probe: Probe(Mutex::new(Vec::new())),
    };
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Plan::new(Optimizations::ALL).run(&x, false, &net).unwrap();
    assert!(y.is_some(), "the plan ran the network");
    assert_eq!(*net.probe.0.lock().unwrap(), [Some(0)]);
}
