//! Fuzz target: see `qfault::fuzzing::inspect_pipeline`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::inspect_pipeline(data));
