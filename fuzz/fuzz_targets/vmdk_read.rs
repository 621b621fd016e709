//! Fuzz target: see `qfault::fuzzing::vmdk_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::vmdk_read(data));
