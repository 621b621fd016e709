//! qcow2 header and table parsing, then reads through the fuzzed image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qfault::image::qcow2::Qcow2Image;
use qfault::image::storage::MemStorage;
use qfault::image::{Image, Layer, ReadAt};

fuzz_target!(|data: &[u8]| {
    let storage = MemStorage::new(data.to_vec(), "fuzz.qcow2");
    let Ok(q) = Qcow2Image::open(Box::new(storage)) else {
        return;
    };
    let mut image = Image::from_layer(Layer::Qcow2(Box::new(q)));
    let size = image.size();
    if size == 0 {
        return;
    }
    // Walk the map for a bounded number of extents, then read a few ranges.
    let mut pos = 0;
    for _ in 0..64 {
        if pos >= size {
            break;
        }
        match image.extent(pos, size - pos) {
            Ok(e) => pos += e.length,
            Err(_) => break,
        }
    }
    let mut buf = vec![0u8; 8192];
    for start in [0, size / 2, size.saturating_sub(8192)] {
        let len = (size - start).min(buf.len() as u64) as usize;
        let _ = image.read_at(start, &mut buf[..len]);
    }
});
