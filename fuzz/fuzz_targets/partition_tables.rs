//! MBR (with the EBR chain) and GPT parsing on a fuzzed disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qfault::image::MemDisk;

fuzz_target!(|data: &[u8]| {
    let mut disk = MemDisk(data.to_vec());
    let _ = qfault::layout::read_layout(&mut disk);
});
