//! Fuzzes the runtime's weight-file boundary: `archc_runtime::Weights` over arbitrary bytes, then loading every
//! tensor it lists the ways generated code does (with an expected shape, and unchecked).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::run_weights(data));
