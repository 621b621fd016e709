//! The whole inspect pipeline on a fuzzed raw disk: partition table,
//! filesystem probes, and the ntfs-boot predictions for NTFS partitions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qfault::image::{MemDisk, Window};
use qfault::recipe::{predict::predict_ntfs, select};

fuzz_target!(|data: &[u8]| {
    let mut disk = MemDisk(data.to_vec());
    let Ok(found) = select::partitions(&mut disk) else {
        return;
    };
    for f in found.iter().filter(|f| f.fstype() == Some("ntfs")) {
        if let Ok(mut w) = Window::new(&mut disk, f.partition.start, f.partition.size) {
            let _ = predict_ntfs(&mut w, None);
        }
    }
});
