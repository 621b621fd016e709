//! The shipped sample, read through the library: the qcow2 reader, windows
//! and the pure-Rust NTFS reader agree with what make-sample.sh put there.

mod common;

use qfault::fs::read_volume;
use qfault::image::{self, ReadAt, Window};
use qfault::overlay::{Patch, Preview};

/// Partition 2 ("C") of the sample, from testdata/README.md.
const C_START: u64 = 34_816 * 512;
const C_SIZE: u64 = 96_256 * 512;

#[test]
fn sample_volume_reads_and_survives_boot_sector_repair_in_memory() {
    let path = common::sample_image();
    let guard = common::BaseGuard::new(&[&path]);
    let img = image::open(&path, &Default::default()).unwrap();
    assert_eq!(img.size(), 64 << 20);
    let mut part = Window::new(img, C_START, C_SIZE).unwrap();

    let summary = read_volume(&mut part).unwrap();
    assert_eq!(summary.label.as_deref(), Some("C"));
    assert_eq!(summary.root_entries, ["hello.txt", "readme.txt"]);

    // Sector 0 zeroed: the reader must fail, as mount does.
    let zeroed = vec![Patch::Zero {
        offset: 0,
        len: 512,
    }];
    assert!(read_volume(Preview::new(&mut part, zeroed.clone())).is_err());

    // ntfsfix's repair: sector 0 := the backup at the partition's last sector.
    let backup = part.read_vec(C_SIZE - 512, 512).unwrap();
    let mut repaired = zeroed;
    repaired.push(Patch::Data {
        offset: 0,
        bytes: backup,
    });
    let after = read_volume(Preview::new(&mut part, repaired)).unwrap();
    assert_eq!(after, summary);
    guard.assert_unchanged();
}
