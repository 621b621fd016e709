//! Fuzz target: see `qfault::fuzzing::vdi_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::vdi_read(data));
