//! Randomized differential test against QEMU's own tools (issue 19, part 4).
//!
//! Each case builds a random chain with `qemu-img`/`qemu-io` and checks
//! qfault's reader (`export`, `info`, `map`) and overlay writer
//! (`inject zero|write`) against `qemu-img convert/info/map/compare/check`;
//! `tests/common/difftest.rs` says exactly what is generated and compared.
//!
//! Environment:
//! - `DIFFTEST_CASES` (default 16, about a minute on two shared cores with a
//!   debug build): how many cases;
//! - `DIFFTEST_SEED` (decimal or 0x-hex; default fixed, so `make test` is
//!   reproducible): the run's seed; case `i` gets a seed derived from it;
//! - `DIFFTEST_CASE_SEED`: run just the one case with this seed (printed on
//!   every failure);
//! - `DIFFTEST_JOBS` (default 1): cases run at once (each case's commands
//!   run one after the other; `make difftest` uses 4);
//! - `DIFFTEST_MAX_SECONDS`: start no case after this many seconds (the
//!   summary says how many ran);
//! - `DIFFTEST_KEEP=1`: keep every case's directory (and its
//!   `commands.sh`), not only the failing ones';
//! - `DIFFTEST_QFAULT`: the qfault binary to test (default: this build's;
//!   `make difftest` passes the release build).
//!
//! A failing case prints its seeds, the error, and every command it ran, and
//! keeps its directory; the test fails after all cases ran.

mod common;
#[path = "common/difftest.rs"]
mod difftest;

use difftest::{case_seed, Case, Stats};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const DEFAULT_CASES: u64 = 8;
const DEFAULT_SEED: u64 = 0x0019_d1ff_7e57_0001;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: not a number: {e}")))
}

#[test]
fn comparisons_can_fail() {
    difftest::self_test();
}

#[test]
fn qfault_agrees_with_qemu_on_random_images() {
    if !common::require_tools(&["qemu-img", "qemu-io", "truncate"]) {
        return;
    }
    let qfault = std::env::var_os("DIFFTEST_QFAULT")
        .map(PathBuf::from)
        .unwrap_or_else(common::qfault_bin);
    let seed = env_u64("DIFFTEST_SEED").unwrap_or(DEFAULT_SEED);
    let cases: Vec<(u64, u64)> = match env_u64("DIFFTEST_CASE_SEED") {
        Some(s) => vec![(0, s)],
        None => (0..env_u64("DIFFTEST_CASES").unwrap_or(DEFAULT_CASES))
            .map(|i| (i, case_seed(seed, i)))
            .collect(),
    };
    let root = std::env::temp_dir().join(format!(
        "qfault-difftest-{}-{seed:016x}",
        std::process::id()
    ));
    let keep = std::env::var_os("DIFFTEST_KEEP").is_some_and(|v| !v.is_empty());
    let jobs = env_u64("DIFFTEST_JOBS").unwrap_or(1).max(1);
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let stats = Mutex::new(Stats::default());
    let max_secs = env_u64("DIFFTEST_MAX_SECONDS");
    let ran = AtomicUsize::new(0);
    let worker = || loop {
        if max_secs.is_some_and(|m| started.elapsed().as_secs() >= m) {
            return;
        }
        let Some(&(i, s)) = cases.get(next.fetch_add(1, Ordering::SeqCst)) else {
            return;
        };
        ran.fetch_add(1, Ordering::SeqCst);
        let dir = root.join(format!("case-{i}-{s:016x}"));
        let mut case = Case::new(s, dir.clone(), qfault.clone());
        let t = Instant::now();
        let result = case.run();
        eprintln!(
            "difftest case {i} seed {s:#018x}: {} in {:.1} s",
            if result.is_ok() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        std::fs::write(dir.join("commands.sh"), &case.log).expect("write the command log");
        match result {
            Ok(()) if keep => {}
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => {
                eprintln!(
                    "\ndifftest FAILED: case {i} of DIFFTEST_SEED={seed:#x}, case seed {s:#x}\n\
                     {e}\n\
                     reproduce this case: DIFFTEST_CASE_SEED={s:#x} cargo test --test difftest \
                     qfault_agrees -- --nocapture\n\
                     case directory kept: {}\n\
                     commands it ran (also in commands.sh there; `p*.bin` are payload files):\n{}",
                    dir.display(),
                    case.log
                );
                failures.lock().unwrap().push(format!(
                    "case {i} (seed {s:#x}): {}",
                    e.lines().next().unwrap_or("")
                ));
            }
        }
        stats.lock().unwrap().merge(case.stats);
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(worker);
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let stats = stats.into_inner().unwrap();
    if failures.is_empty() && !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    let secs = started.elapsed().as_secs_f64();
    let ran = ran.into_inner();
    eprintln!(
        "difftest: {ran} of {} cases run (DIFFTEST_JOBS={jobs}), DIFFTEST_SEED={seed:#x}, {secs:.1} s, {} failed; covered:",
        cases.len(),
        failures.len()
    );
    for (k, v) in &stats.0 {
        eprintln!("  {v:6}  {k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} difftest cases failed (DIFFTEST_SEED={seed:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
