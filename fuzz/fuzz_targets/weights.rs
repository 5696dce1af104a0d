//! Fuzzes the runtime's weight-file boundary: `archc_runtime::Weights` over arbitrary bytes, then loading every
//! tensor it lists the ways generated code does (with an expected shape, and unchecked). Any malformed file
//! must be an error, never a panic.
#![no_main]

use archc_runtime::candle_core::{DType, Device};
use archc_runtime::weights::{is_batch_norm_counter, Weights};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(weights) = Weights::from_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    let names: Vec<String> = weights.names().take(16).map(str::to_string).collect();
    for dtype in [DType::F32, DType::F16] {
        let vb = weights.var_builder(dtype, &Device::Cpu);
        for name in &names {
            let _ = vb.get_unchecked(name);
            let _ = archc_runtime::load_tensor(&vb, name, (2, 3), "statement `fuzz`");
        }
        let _ = archc_runtime::load_tensor(&vb, "absent", 4, "statement `fuzz`");
    }
    let _ = weights.unused_warning(is_batch_norm_counter);
    let _ = weights.unused_warning(|_| false);
});
