//! Linux filesystem fixtures: a small MBR or GPT disk whose one partition
//! (1 MiB in) holds a filesystem made by the real mkfs (or cryptsetup), as
//! a qcow2 base under a second qcow2 link.

use super::{cmd, qemu_img, run, run_any, sha256_file, sparse_file, tool_path};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the partition starts (bytes).
pub const PART_START: u64 = 1 << 20;

/// The partition table kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// MBR (DOS) label.
    Mbr,
    /// GPT label.
    Gpt,
}

/// A disk made by [`linux_disk`].
pub struct LinuxDisk {
    /// The raw disk as made.
    pub raw: PathBuf,
    /// The qcow2 base (converted from `raw`).
    pub base: PathBuf,
    /// A qcow2 link backed by `base`: what recipes are applied to.
    pub top: PathBuf,
    /// Partition 1's first byte.
    pub start: u64,
    /// Partition 1's size.
    pub size: u64,
    /// SHA-256 of partition 1's bytes as made (the volume file).
    pub volume_sha: String,
}

/// A command for a real tool found on PATH or in the sbin directories.
pub fn tool(name: &str) -> Command {
    let path = tool_path(name).unwrap_or_else(|| panic!("{name} not found"));
    Command::new(path)
}

/// Builds `dir/NAME.raw` (partition 1 at 1 MiB of `size` bytes, in a table
/// of `table` kind) with `make` creating the filesystem on a file of the
/// partition's size, then `NAME.qcow2` (base) and `NAME-top.qcow2` (a
/// link on it).
pub fn linux_disk(
    dir: &Path,
    name: &str,
    table: Table,
    size: u64,
    make: impl FnOnce(&Path),
) -> LinuxDisk {
    let vol = dir.join(format!("{name}.vol"));
    sparse_file(&vol, size);
    make(&vol);
    let volume_sha = sha256_file(&vol);
    let raw = dir.join(format!("{name}.raw"));
    sparse_file(&raw, PART_START + size + (1 << 20));
    let sectors = size / 512;
    let script = match table {
        Table::Mbr => format!("label: dos\nstart=2048, size={sectors}, type=83\n"),
        Table::Gpt => format!("label: gpt\nstart=2048, size={sectors}, type=L\n"),
    };
    let mut sf = tool("sfdisk");
    sf.arg("-q").arg(&raw);
    run_stdin(sf, &script);
    run(tool("dd")
        .arg(format!("if={}", vol.display()))
        .arg(format!("of={}", raw.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]));
    std::fs::remove_file(&vol).unwrap();
    let base = dir.join(format!("{name}.qcow2"));
    qemu_img([
        "convert".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        raw.as_os_str(),
        base.as_os_str(),
    ]);
    let top = dir.join(format!("{name}-top.qcow2"));
    super::qemu_img_create_overlay(
        &top,
        base.file_name().unwrap(),
        "qcow2",
        &[],
        &(PART_START + size + (1 << 20)).to_string(),
    );
    LinuxDisk {
        raw,
        base,
        top,
        start: PART_START,
        size,
        volume_sha,
    }
}

/// Runs `c` with `input` on stdin; panics unless it exits 0.
pub fn run_stdin(mut c: Command, input: &str) {
    use std::io::Write;
    use std::process::Stdio;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mkfs.ext4 -q -F -E lazy_itable_init=0 [extra] VOL`.
pub fn mkfs_ext4(extra: &[&str]) -> impl FnOnce(&Path) {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    move |vol| {
        run(tool("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0"])
            .args(&extra)
            .arg(vol));
    }
}

/// An ext4 disk of 24 MiB with 1 KiB blocks: 3 block groups.
pub fn ext4_disk(dir: &Path, name: &str, table: Table) -> LinuxDisk {
    linux_disk(dir, name, table, 24 << 20, mkfs_ext4(&["-b", "1024"]))
}

/// Copies guest bytes `[start, start+size)` of `image` (through QEMU:
/// `qemu-img convert -O raw`, then `dd`) into the sparse file `out`.
pub fn qemu_extract(image: &Path, start: u64, size: u64, out: &Path) {
    let flat = out.with_extension("flat");
    qemu_img([
        "convert".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        image.as_os_str(),
        flat.as_os_str(),
    ]);
    let _ = std::fs::remove_file(out);
    run(tool("dd")
        .arg(format!("if={}", flat.display()))
        .arg(format!("of={}", out.display()))
        .args([
            format!("skip={start}"),
            format!("count={size}"),
            "iflag=skip_bytes,count_bytes".into(),
            "bs=1M".into(),
            "conv=sparse".into(),
            "status=none".into(),
        ]));
    std::fs::remove_file(&flat).unwrap();
    assert_eq!(std::fs::metadata(out).unwrap().len(), size);
}

/// A sparse copy of `src` at `dst`.
pub fn sparse_copy(src: &Path, dst: &Path) {
    run(&mut cmd(
        "cp",
        ["--sparse=always".as_ref(), src.as_os_str(), dst.as_os_str()],
    ));
}

/// Exit code and stdout+stderr of `c`.
pub fn code_and_text(c: &mut Command) -> (i32, String) {
    let out = run_any(c);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The base `dir/NAME.qcow2` for the registry conformance table
/// (`tests/recipes.rs`): `ext4` (24 MiB, 1 KiB blocks, MBR), `xfs`
/// (320 MiB, GPT), `btrfs` (130 MiB, MBR), `luks2` (32 MiB, GPT).
pub fn fixture(name: &str, dir: &Path) -> PathBuf {
    let disk = match name {
        "ext4" => ext4_disk(dir, name, Table::Mbr),
        "xfs" => linux_disk(dir, name, Table::Gpt, 320 << 20, |vol| {
            run(tool("mkfs.xfs").args(["-q", "-f"]).arg(vol));
        }),
        "btrfs" => linux_disk(dir, name, Table::Mbr, 130 << 20, |vol| {
            run(tool("mkfs.btrfs").args(["-q", "-f"]).arg(vol));
        }),
        "luks2" => linux_disk(dir, name, Table::Gpt, 32 << 20, |vol| {
            let key = vol.with_extension("key");
            std::fs::write(&key, "qfault").unwrap();
            run(tool("cryptsetup")
                .args(["luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2"])
                .args(["--pbkdf-force-iterations", "1000", "--key-file"])
                .arg(&key)
                .arg(vol));
        }),
        other => panic!("no Linux fixture named {other}"),
    };
    disk.base
}

/// Like [`linux_disk`], without a partition table: the filesystem is the
/// whole disk (partition 0).
pub fn whole_disk(dir: &Path, name: &str, size: u64, make: impl FnOnce(&Path)) -> LinuxDisk {
    let raw = dir.join(format!("{name}.raw"));
    sparse_file(&raw, size);
    make(&raw);
    let volume_sha = sha256_file(&raw);
    let base = dir.join(format!("{name}.qcow2"));
    qemu_img([
        "convert".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        raw.as_os_str(),
        base.as_os_str(),
    ]);
    let top = dir.join(format!("{name}-top.qcow2"));
    super::qemu_img_create_overlay(
        &top,
        base.file_name().unwrap(),
        "qcow2",
        &[],
        &size.to_string(),
    );
    LinuxDisk {
        raw,
        base,
        top,
        start: 0,
        size,
        volume_sha,
    }
}

/// Like [`mkfs_ext4`], then the filesystem is used: mounted through a
/// loop device (the real kernel), a directory and a few files written,
/// unmounted cleanly. The kernel updates the primary group descriptors
/// only, so the backups' counts go stale.
pub fn mkfs_ext4_used(extra: &[&str]) -> impl FnOnce(&Path) {
    let mkfs = mkfs_ext4(extra);
    move |vol| {
        mkfs(vol);
        let mnt = vol.with_extension("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        run(tool("mount").arg("-o").arg("loop").arg(vol).arg(&mnt));
        let d = mnt.join("dir");
        std::fs::create_dir(&d).unwrap();
        for i in 0..8 {
            std::fs::write(d.join(format!("f{i}")), vec![i as u8 + 1; 300 << 10]).unwrap();
        }
        run(tool("umount").arg(&mnt));
        std::fs::remove_dir(&mnt).unwrap();
    }
}

/// `debugfs -w -R REQUEST VOL`: changes the superblock as a crash or an
/// error would have left it (debugfs reseals the checksums).
pub fn debugfs_w(request: &str) -> impl FnOnce(&Path) + '_ {
    move |vol| {
        run(tool("debugfs").args(["-w", "-R", request]).arg(vol));
    }
}
