//! Fuzz target: see `qfault::fuzzing::partition_tables`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::partition_tables(data));
