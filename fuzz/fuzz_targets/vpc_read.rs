//! Fuzz target: see `qfault::fuzzing::vpc_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::vpc_read(data));
