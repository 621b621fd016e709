//! Partition-table fixtures: small GPT disks made by the real partitioners.

use super::{qemu_img_to_qcow2, run, tool_path};
use std::path::Path;
use std::process::Command;

/// Writes a 16 MiB GPT disk made by sgdisk (two partitions, fixed GUIDs)
/// as the qcow2 `path`.
pub fn sgdisk_gpt_qcow2(path: &Path) {
    let raw = path.with_extension("gpt.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let sgdisk = tool_path("sgdisk").expect("sgdisk (make deps)");
    run(Command::new(sgdisk)
        .args([
            "-U",
            "8BF973B8-29DC-42B1-B8DD-DC98A26F0B26",
            "-n",
            "1:2048:+4M",
            "-u",
            "1:279D8C81-AFCF-4453-8097-D8E0307E6702",
            "-n",
            "2:0:0",
            "-u",
            "2:075C2964-3FCB-44D5-893A-DFF4E589A5D7",
        ])
        .arg(&raw));
    qemu_img_to_qcow2(&raw, path, &[]);
    std::fs::remove_file(&raw).unwrap();
}

/// Writes a 16 MiB MBR disk made by sfdisk with an extended partition
/// holding two logical partitions as the qcow2 `path`.
pub fn sfdisk_logical_qcow2(path: &Path) {
    let raw = path.with_extension("mbr.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    sfdisk_script(
        &raw,
        "label: dos\nlabel-id: 0x406d7d49\n2048,4096,83\n6144,,5\n8192,4096,83\n14336,4096,83\n",
    );
    qemu_img_to_qcow2(&raw, path, &[]);
    std::fs::remove_file(&raw).unwrap();
}

/// Runs `sfdisk -q TARGET` with `script` on stdin; panics unless it exits 0.
pub fn sfdisk_script(target: &Path, script: &str) {
    use std::io::Write;
    let sfdisk = tool_path("sfdisk").expect("sfdisk (make deps)");
    let mut child = Command::new(sfdisk)
        .arg("-q")
        .arg(target)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sfdisk");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk {}: {}{}",
        target.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
