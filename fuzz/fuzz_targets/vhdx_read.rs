//! Fuzz target: see `qfault::fuzzing::vhdx_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::vhdx_read(data));
