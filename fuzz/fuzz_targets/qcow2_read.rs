//! Fuzz target: see `qfault::fuzzing::qcow2_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::qcow2_read(data));
