//! Fuzzes the `.arch` front end: parse, check, render diagnostics, summarise and generate code.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::run(archc::SourceKind::Arch, data));
