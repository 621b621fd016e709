//! FAT32 and exFAT base images for the recipe tests: a volume made by
//! mkfs.vfat / mkfs.exfat as partition 1 of a small MBR disk, as qcow2.

use super::{qemu_img_to_qcow2, run, sparse_file, write_at};
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes to `qcow2` a 40 MiB MBR disk whose partition 1 (at 1 MiB) holds a
/// fresh `fs` volume: `"fat32"` (mkfs.vfat -F 32, label QFAULT, one file
/// copied in with mcopy) or `"exfat"` (mkfs.exfat, label QFAULT).
pub fn fat_disk_qcow2(fs: &str, qcow2: &Path) {
    let dir = qcow2.with_extension("build");
    std::fs::create_dir_all(&dir).unwrap();
    let vol = dir.join("volume.img");
    let size: u64 = if fs == "fat32" { 36 << 20 } else { 32 << 20 };
    sparse_file(&vol, size);
    match fs {
        "fat32" => {
            run(Command::new("mkfs.vfat")
                .args(["-F", "32", "-n", "QFAULT", "-i", "51F4A0CA"])
                .arg(&vol));
            let f = dir.join("hello.txt");
            std::fs::write(&f, b"hello from qfault\n").unwrap();
            run(Command::new("mcopy")
                .arg("-i")
                .arg(&vol)
                .arg(&f)
                .arg("::hello.txt"));
        }
        "exfat" => {
            run(Command::new("mkfs.exfat").args(["-L", "QFAULT"]).arg(&vol));
        }
        other => panic!("no FAT fixture for {other}"),
    }
    let raw = dir.join("disk.raw");
    sparse_file(&raw, size + (2 << 20));
    let ptype = if fs == "fat32" { "c" } else { "7" };
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&raw)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start sfdisk");
    use std::io::Write;
    writeln!(
        child.stdin.take().unwrap(),
        "label: dos\nstart=2048, size={}, type={ptype}",
        size / 512
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    write_at(&raw, 1 << 20, &std::fs::read(&vol).unwrap());
    qemu_img_to_qcow2(&raw, qcow2, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
}
