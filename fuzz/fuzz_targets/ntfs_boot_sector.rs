//! Fuzz target: see `qfault::fuzzing::ntfs_boot_sector`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qfault::fuzzing::ntfs_boot_sector(data));
