//! The NTFS boot-sector model and ntfsfix's rules: the input is a partition
//! whose first 512 bytes are sector 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qfault::fs::ntfs::{predict_ntfsfix, NtfsBootSector};
use qfault::image::MemDisk;

fuzz_target!(|data: &[u8]| {
    if data.len() < 512 {
        return;
    }
    if let Ok(bs) = NtfsBootSector::parse(&data[..512]) {
        let _ = bs.check();
    }
    let mut part = MemDisk(data.to_vec());
    let _ = predict_ntfsfix(&data[..512], &mut part);
    let _ = qfault::fs::ntfs::probe(&mut part);
});
