//! Records the git commit qfault is built from, for `qfault --version`
//! (`QFAULT_GIT_COMMIT`; "unknown" when not built in a git work tree).

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=QFAULT_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch refs (a
    // commit) and packed-refs; in a worktree HEAD and the refs live in
    // different directories.
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let abs = |p: String| -> PathBuf {
        let p = Path::new(&p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            here.join(p)
        }
    };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(abs) {
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(abs) {
        for p in ["refs", "packed-refs"] {
            if common.join(p).exists() {
                println!("cargo:rerun-if-changed={}", common.join(p).display());
            }
        }
    }
}
