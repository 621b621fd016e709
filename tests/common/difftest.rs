//! The generator and the comparisons of the randomized differential test
//! against QEMU's tools (issue 19, part 4; driven by `tests/difftest.rs`).
//!
//! One *case* is fully determined by its 64-bit seed (a splitmix64 stream,
//! written out here so no crate update can change what a seed means):
//!
//! 1. **Chain.** 1 to 4 layers in several directories (`a/`, `b/`, `c/d/`),
//!    bottom first: the bottom is raw (odd sizes included) or qcow2, every
//!    upper layer qcow2 made by `qemu-img create -b NAME -F FMT` with a name
//!    relative to its own directory or absolute, and a virtual size equal to,
//!    smaller or larger than its backing file's. Each qcow2 layer draws
//!    compat 0.10 or 1.1, a cluster size from 512 B to 2 MiB, extended L2
//!    (v3, clusters >= 16 KiB), zlib or zstd (v3), and gets a random list of
//!    `qemu-io` writes (pattern and file data), compressed writes
//!    (`write -c`, cluster-aligned), zero writes with and without unmap
//!    (`write -z`, `write -z -u`), discards, and internal snapshots
//!    (`qemu-img snapshot -c`, sometimes `-a` back to one) and persistent
//!    bitmaps (`qemu-img bitmap --add`, v3) between them; some are made with
//!    `preallocation=metadata`.
//! 2. **Reader.** On the top of the chain: `qfault export` equals
//!    `qemu-img convert -O raw` byte for byte (and a second export equals the
//!    first); `qfault info --json` agrees with `qemu-img info --output=json
//!    --backing-chain` ([`compare_info`] lists the fields); `qfault map
//!    --json` agrees with `qemu-img map --output=json` ([`compare_map`] says
//!    which fields are compared and why).
//! 3. **Writer.** 1 to 4 `qfault inject zero|write` overlays, each on the
//!    previous one, with a random `--cluster-size` and ranges that start or
//!    end near cluster, L2-table, backing-EOF and disk-end boundaries, are
//!    mirrored by `qemu-io write -z` / `write -s FILE` on a chain made by
//!    `qemu-img create -b … -F …`: each overlay must `qemu-img compare`
//!    identical to its mirror, `qemu-img check` clean, have the virtual and
//!    cluster size `qemu-img info` expects, and be byte-identical to the same
//!    step run again into a second directory; the last step run again onto
//!    its own output must report `unchanged`; a range past the end of the
//!    disk must exit 2 and write nothing; the last overlay goes through
//!    the reader checks of 2 (export, info, map) too.
//! 4. **Base.** Every layer of the chain is hashed before and after: qfault
//!    never writes its inputs.
//!
//! Every command a case runs is logged as a shell line (relative to the case
//! directory, `$QFAULT` for the binary under test); a failure returns that log
//! with the seed, and the harness keeps the case directory (payload files
//! included) so the log replays as it stands.
//!
//! **Extension point for other formats.** [`Kind`] is the list of layer
//! formats; VMDK, VHDX, VHD (`vpc`) and VDI layers are meant to be added as
//! one more variant each, made by `qemu-img convert -O vmdk|vhdx|vpc|vdi`
//! from a raw or qcow2 layer the generator already wrote (see
//! [`Case::make_layer`]), with their `qemu-img info` fields mapped in
//! [`compare_info`]. They are not generated yet.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A case's result: `Err` carries what disagreed (the harness adds the log).
pub type R<T> = Result<T, String>;

const K: u64 = 1024;
const M: u64 = 1024 * K;

// ---------------------------------------------------------------------------
// Randomness: splitmix64, fixed here so a seed means the same case forever.
// ---------------------------------------------------------------------------

/// One step of splitmix64 (Steele, Lea, Flood 2014).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of case `index` of a run with seed `master`.
pub fn case_seed(master: u64, index: u64) -> u64 {
    let mut s = master ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    splitmix64(&mut s)
}

/// A small deterministic generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// 64 random bits.
    pub fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }
    /// Uniform in `0..n` (0 when `n == 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

// ---------------------------------------------------------------------------
// What a case is made of
// ---------------------------------------------------------------------------

/// The qcow2 creation options of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Qcow2Opts {
    /// compat=1.1 (version 3) rather than compat=0.10 (version 2).
    pub v3: bool,
    /// Cluster size in bytes, 512 B to 2 MiB.
    pub cluster: u64,
    /// extended_l2=on (version 3, clusters of at least 16 KiB).
    pub extended_l2: bool,
    /// compression_type=zstd (version 3) rather than zlib.
    pub zstd: bool,
    /// preallocation=metadata (QEMU allows it on an overlay only with
    /// extended L2).
    pub prealloc: bool,
}

/// The format of one layer of a generated chain.
///
/// Extension point: add `Vmdk`, `Vhdx`, `Vpc`, `Vdi` here (each made by
/// `qemu-img convert -O FMT` in [`Case::make_layer`]); they can only be the
/// bottom layer or a whole single-layer case, as QEMU writes no backing name
/// into them.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A raw file (bottom layer only), of any byte size.
    Raw,
    /// A qcow2 image.
    Qcow2(Qcow2Opts),
}

impl Kind {
    /// The format name QEMU and qfault use.
    pub fn format(&self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Qcow2(_) => "qcow2",
        }
    }
}

/// One layer of a generated chain.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Path relative to the case directory.
    pub path: String,
    /// Its format and options.
    pub kind: Kind,
    /// The virtual size `qemu-img info` reports.
    pub size: u64,
    /// For raw layers, the file's byte length (the guest EOF inside the
    /// last 512-byte sector).
    pub file_len: u64,
}

/// Feature counters over a run, printed at the end so a run shows what it
/// covered.
#[derive(Default)]
pub struct Stats(pub BTreeMap<&'static str, u64>);

impl Stats {
    fn add(&mut self, key: &'static str) {
        *self.0.entry(key).or_default() += 1;
    }
    /// Adds another run's counters.
    pub fn merge(&mut self, other: Stats) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
}

/// One running case: its directory, generator, command log and counters.
pub struct Case {
    /// The case seed.
    pub seed: u64,
    /// Where every file of the case lives (commands run from here).
    pub dir: PathBuf,
    /// The qfault binary under test.
    pub qfault: PathBuf,
    /// Every command run, as shell lines relative to `dir`.
    pub log: String,
    /// What this case covered.
    pub stats: Stats,
    rng: Rng,
    payloads: u64,
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=,:+-@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The relative path from directory `from_dir` to `to` (both relative to the
/// case directory, without `..`).
fn relative(from_dir: &str, to: &str) -> String {
    let up = Path::new(from_dir).components().count();
    let mut s = "../".repeat(up);
    s.push_str(to);
    s
}

fn parent_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Case {
    /// A case for `seed` in `dir` (created), testing `qfault`.
    pub fn new(seed: u64, dir: PathBuf, qfault: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("create case directory");
        let mut log = String::new();
        let _ = writeln!(log, "# difftest case seed {seed:#018x}");
        let _ = writeln!(log, "QFAULT={}", shell_quote(&qfault.to_string_lossy()));
        let _ = writeln!(log, "cd {}", shell_quote(&dir.to_string_lossy()));
        Case {
            seed,
            dir,
            qfault,
            log,
            stats: Stats::default(),
            rng: Rng::new(seed),
            payloads: 0,
        }
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "# {text}");
    }

    /// Runs a program (from the case directory) and logs it; returns the
    /// output whatever the exit status.
    fn exec(&mut self, program: &str, args: &[String]) -> R<Output> {
        let shown = if program == "qfault" {
            "\"$QFAULT\"".to_string()
        } else {
            program.to_string()
        };
        let line: Vec<String> = std::iter::once(shown)
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect();
        let _ = writeln!(self.log, "{}", line.join(" "));
        let bin: OsString = if program == "qfault" {
            self.qfault.clone().into_os_string()
        } else {
            OsString::from(program)
        };
        let t = std::time::Instant::now();
        let out = Command::new(&bin)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("cannot start {program}: {e}"));
        let secs = t.elapsed().as_secs_f64();
        if secs >= 1.0 {
            let _ = writeln!(self.log, "# ({secs:.1} s)");
        }
        out
    }

    /// Runs a program and requires exit status 0; returns stdout.
    fn ok(&mut self, program: &str, args: &[String]) -> R<String> {
        let out = self.exec(program, args)?;
        if !out.status.success() {
            return Err(format!(
                "{program} {args:?} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn qemu_io(&mut self, format: &str, image: &str, commands: &[String]) -> R<()> {
        if commands.is_empty() {
            return Ok(());
        }
        let mut args = vec!["-f".to_string(), format.to_string()];
        for c in commands {
            args.push("-c".into());
            args.push(c.clone());
        }
        args.push(image.to_string());
        let text = self.ok("qemu-io", &args)?;
        // qemu-io reports some failures on stdout with exit status 0.
        if text.contains("failed") || text.contains("error") {
            return Err(format!("harness: qemu-io reported a failure:\n{text}"));
        }
        Ok(())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes a payload file into the case directory; returns its name.
    fn payload(&mut self, bytes: &[u8]) -> String {
        self.payloads += 1;
        let name = format!("p{}.bin", self.payloads);
        std::fs::write(self.path(&name), bytes).expect("write payload");
        let sha = sha256_hex(bytes);
        self.note(&format!(
            "{name}: {} bytes written by the harness (sha256 {sha}; kept with the case)",
            bytes.len()
        ));
        name
    }

    fn qemu_info(&mut self, image: &str, format: &str) -> R<Value> {
        let text = self.ok(
            "qemu-img",
            &sv(&["info", "--output=json", "-f", format, image]),
        )?;
        serde_json::from_str(&text).map_err(|e| format!("harness: qemu-img info JSON: {e}"))
    }

    // -----------------------------------------------------------------------
    // The whole case
    // -----------------------------------------------------------------------

    /// Runs the case: chain, reader checks, writer checks, base check.
    pub fn run(&mut self) -> R<()> {
        let chain = self.make_chain()?;
        let top = chain.last().expect("at least one layer").clone();
        let guard = BaseHashes::new(&self.dir, &chain);

        self.check_reader(&top.path, top.kind.format(), "x")?;
        self.check_injections(&chain)?;

        guard.check(&self.dir)?;
        Ok(())
    }

    // -----------------------------------------------------------------------
    // 1. The chain
    // -----------------------------------------------------------------------

    fn random_size(&mut self, raw: bool) -> u64 {
        let r = self.rng.below(100);
        let s = if r < 8 {
            self.rng.range(1, 64 * K)
        } else if r < 65 {
            self.rng.range(1, 8 * M)
        } else if r < 95 || raw {
            self.rng.range(8 * M, 40 * M)
        } else {
            // Large and sparse: crosses L2 tables of 64 KiB clusters (512 MiB).
            self.rng.range(520 * M, 1300 * M)
        };
        // Often a multiple of a round size, often any byte count.
        match self.rng.below(3) {
            0 => s,
            1 => s.div_ceil(512) * 512,
            _ => s.div_ceil(64 * K) * 64 * K,
        }
    }

    fn random_qcow2(&mut self, has_backing: bool) -> Qcow2Opts {
        let v3 = self.rng.chance(75);
        let cluster = 512u64 << self.rng.below(13);
        let extended_l2 = v3 && cluster >= 16 * K && self.rng.chance(40);
        Qcow2Opts {
            v3,
            cluster,
            extended_l2,
            zstd: v3 && self.rng.chance(40),
            prealloc: (!has_backing || extended_l2) && self.rng.chance(12),
        }
    }

    fn make_chain(&mut self) -> R<Vec<Layer>> {
        let n = self.rng.pick(&[1u64, 1, 2, 2, 3, 3, 4]);
        let dirs = ["a", "b", "c/d"];
        for d in dirs {
            std::fs::create_dir_all(self.path(d)).expect("mkdir");
        }
        let mut chain: Vec<Layer> = Vec::new();
        for i in 0..n {
            let dir = self.rng.pick(&dirs);
            let kind = if i == 0 && self.rng.chance(35) {
                Kind::Raw
            } else {
                Kind::Qcow2(self.random_qcow2(i > 0))
            };
            let ext = kind.format();
            let path = format!("{dir}/l{i}.{ext}");
            let size = match chain.last() {
                None => self.random_size(matches!(kind, Kind::Raw)),
                Some(b) => match self.rng.below(3) {
                    0 => b.size,
                    1 => self.rng.range(1, b.size),
                    _ => {
                        let more = self.random_size(false);
                        b.size + more.min(64 * M)
                    }
                },
            };
            let kind = match kind {
                // A gigabyte of preallocated (read: all data) clusters costs
                // a debug build of qfault a minute per export.
                Kind::Qcow2(o) if size > 64 * M => Kind::Qcow2(Qcow2Opts {
                    prealloc: false,
                    ..o
                }),
                k => k,
            };
            let layer = self.make_layer(path, kind, size, chain.last().cloned())?;
            self.fill_layer(&layer)?;
            chain.push(layer);
        }
        Ok(chain)
    }

    /// Creates one empty layer (on `backing` when given).
    pub fn make_layer(
        &mut self,
        path: String,
        kind: Kind,
        size: u64,
        backing: Option<Layer>,
    ) -> R<Layer> {
        match kind {
            Kind::Raw => {
                self.ok("truncate", &["-s".into(), size.to_string(), path.clone()])?;
                self.stats.add("layer raw");
                if size % 512 != 0 {
                    self.stats.add("layer raw, odd size");
                }
            }
            Kind::Qcow2(o) => {
                let mut opts = format!(
                    "compat={},cluster_size={}",
                    if o.v3 { "1.1" } else { "0.10" },
                    o.cluster
                );
                if o.extended_l2 {
                    opts.push_str(",extended_l2=on");
                    self.stats.add("layer qcow2 extended_l2");
                }
                if o.zstd {
                    opts.push_str(",compression_type=zstd");
                    self.stats.add("layer qcow2 zstd");
                }
                if o.prealloc {
                    opts.push_str(",preallocation=metadata");
                    self.stats.add("layer qcow2 preallocation=metadata");
                }
                self.stats.add(if o.v3 {
                    "layer qcow2 v3"
                } else {
                    "layer qcow2 v2"
                });
                let mut args = sv(&["create", "-q", "-f", "qcow2", "-o", &opts]);
                if let Some(b) = &backing {
                    let name = if self.rng.chance(20) {
                        self.stats.add("backing name absolute");
                        self.path(&b.path).to_string_lossy().into_owned()
                    } else {
                        relative(&parent_of(&path), &b.path)
                    };
                    if parent_of(&path) != parent_of(&b.path) {
                        self.stats.add("backing in another directory");
                    }
                    args.extend(sv(&["-b", &name, "-F", b.kind.format()]));
                }
                args.push(path.clone());
                args.push(size.to_string());
                self.ok("qemu-img", &args)?;
            }
        }
        let info = self.qemu_info(&path, kind.format())?;
        let vsize = info["virtual-size"]
            .as_u64()
            .ok_or("harness: no virtual-size")?;
        if let Some(b) = &backing {
            self.stats.add(match vsize.cmp(&b.size) {
                std::cmp::Ordering::Less => "overlay smaller than backing",
                std::cmp::Ordering::Equal => "overlay as large as backing",
                std::cmp::Ordering::Greater => "overlay larger than backing",
            });
        }
        let file_len = std::fs::metadata(self.path(&path))
            .map_err(|e| format!("harness: stat {path}: {e}"))?
            .len();
        Ok(Layer {
            path,
            kind,
            size: vsize,
            file_len,
        })
    }

    /// A random range inside `0..end`, aligned to `align` (1: any byte).
    fn layer_range(&mut self, end: u64, grain: u64) -> (u64, u64) {
        let align = self.rng.pick(&[1, 512, grain.max(512)]);
        let off = (self.rng.below(end) / align) * align;
        let len = match self.rng.below(3) {
            0 => self.rng.range(1, 4 * K),
            1 => self.rng.range(1, 3 * grain.max(4 * K)),
            _ => self.rng.range(1, M),
        };
        let len = if align > 1 {
            len.div_ceil(align) * align
        } else {
            len
        };
        (off, len.min(end - off).max(1))
    }

    /// Fills a new layer with random qemu-io operations and snapshots.
    fn fill_layer(&mut self, layer: &Layer) -> R<()> {
        let fmt = layer.kind.format();
        let (end, grain) = match layer.kind {
            Kind::Raw => (layer.file_len, 4 * K),
            Kind::Qcow2(o) => (layer.size, o.cluster),
        };
        if end == 0 {
            return Ok(());
        }
        let n = self.rng.below(10);
        let mut batch: Vec<String> = Vec::new();
        // Clusters written since creation: QEMU compresses only into
        // unallocated clusters (EIO otherwise).
        let mut touched = std::collections::BTreeSet::new();
        let mut snapshots = 0u64;
        let mut bitmaps = 0u64;
        for _ in 0..n {
            let qcow2 = matches!(layer.kind, Kind::Qcow2(_));
            let v3 = matches!(layer.kind, Kind::Qcow2(o) if o.v3);
            let op = self.rng.below(if v3 {
                10
            } else if qcow2 {
                9
            } else {
                6
            });
            let (off, len) = self.layer_range(end, grain);
            if op <= 4 {
                touched.extend(off / grain..(off + len).div_ceil(grain));
            }
            match op {
                0 | 1 => {
                    let p = self.rng.below(256);
                    batch.push(format!("write -P {p:#x} {off} {len}"));
                    self.stats.add("op write -P");
                }
                2 => {
                    let len = len.min(M);
                    let bytes = self.rng.bytes(len as usize);
                    let name = self.payload(&bytes);
                    batch.push(format!("write -s {name} {off} {len}"));
                    self.stats.add("op write -s");
                }
                3 => {
                    batch.push(format!("write -z {off} {len}"));
                    self.stats.add("op write -z");
                }
                4 => {
                    batch.push(format!("write -z -u {off} {len}"));
                    self.stats.add("op write -z -u");
                }
                5 => {
                    batch.push(format!("discard {off} {len}"));
                    self.stats.add("op discard");
                }
                6 | 7 => {
                    // Compressed: cluster-aligned, whole clusters only
                    // (QEMU fails a partial last cluster with EIO.)
                    // and only clusters not written (or preallocated) before.
                    let whole = end / grain;
                    let first = self.rng.below(whole);
                    let mut n = 0;
                    while n < self.rng.range(1, 3)
                        && first + n < whole
                        && !touched.contains(&(first + n))
                    {
                        n += 1;
                    }
                    touched.extend(first..first + n);
                    let (off, len) = (first * grain, n * grain);
                    let prealloc = matches!(layer.kind, Kind::Qcow2(o) if o.prealloc);
                    if len > 0 && !prealloc {
                        let p = self.rng.below(256);
                        if self.rng.chance(50) {
                            batch.push(format!("write -c -P {p:#x} {off} {len}"));
                        } else {
                            // Compressible text-like bytes, not one constant.
                            let mut bytes = Vec::with_capacity(len as usize);
                            let mut k = self.rng.below(1000);
                            while (bytes.len() as u64) < len {
                                bytes
                                    .extend_from_slice(format!("line {k:06} {p:02x}\n").as_bytes());
                                k += 1;
                            }
                            bytes.truncate(len as usize);
                            let name = self.payload(&bytes);
                            batch.push(format!("write -c -s {name} {off} {len}"));
                        }
                        self.stats.add("op write -c");
                    }
                }
                9 => {
                    // A persistent dirty bitmap (version 3), which later
                    // writes update.
                    let io = std::mem::take(&mut batch);
                    self.qemu_io(fmt, &layer.path, &io)?;
                    bitmaps += 1;
                    self.ok(
                        "qemu-img",
                        &sv(&["bitmap", "--add", &layer.path, &format!("b{bitmaps}")]),
                    )?;
                    self.stats.add("op bitmap --add");
                }
                _ => {
                    // An internal snapshot, then (sometimes) back to one.
                    let io = std::mem::take(&mut batch);
                    self.qemu_io(fmt, &layer.path, &io)?;
                    // (QEMU refuses -a on an image with dirty bitmaps.)
                    if snapshots > 0 && bitmaps == 0 && self.rng.chance(25) {
                        let k = self.rng.below(snapshots);
                        self.ok(
                            "qemu-img",
                            &sv(&["snapshot", "-a", &format!("s{k}"), &layer.path]),
                        )?;
                        self.stats.add("op snapshot -a");
                    } else {
                        self.ok(
                            "qemu-img",
                            &sv(&["snapshot", "-c", &format!("s{snapshots}"), &layer.path]),
                        )?;
                        snapshots += 1;
                        self.stats.add("op snapshot -c");
                    }
                }
            }
        }
        self.qemu_io(fmt, &layer.path, &batch)
    }

    // -----------------------------------------------------------------------
    // 2. Reader checks
    // -----------------------------------------------------------------------

    /// export, info and map of `image` against QEMU's tools; `tag` names the
    /// scratch files.
    fn check_reader(&mut self, image: &str, format: &str, tag: &str) -> R<()> {
        let q = format!("{tag}-qemu.raw");
        let x1 = format!("{tag}-qfault.raw");
        let x2 = format!("{tag}-qfault-again.raw");
        self.ok(
            "qemu-img",
            &sv(&["convert", "-f", format, "-O", "raw", image, &q]),
        )?;
        self.ok("qfault", &sv(&["export", image, "-o", &x1]))?;
        if let Some(d) = first_difference(&self.path(&q), &self.path(&x1))? {
            return Err(format!(
                "qfault export {image} differs from qemu-img convert -O raw: {d}"
            ));
        }
        self.ok("qfault", &sv(&["export", image, "-o", &x2]))?;
        if let Some(d) = first_difference(&self.path(&x1), &self.path(&x2))? {
            return Err(format!("qfault export {image} is not deterministic: {d}"));
        }
        for f in [&q, &x1, &x2] {
            let _ = std::fs::remove_file(self.path(f));
        }

        let theirs = self.ok(
            "qemu-img",
            &sv(&[
                "info",
                "--output=json",
                "--backing-chain",
                "-f",
                format,
                image,
            ]),
        )?;
        let ours = self.ok("qfault", &sv(&["info", "--json", image]))?;
        compare_info(
            &parse(&ours, "qfault info")?,
            &parse(&theirs, "qemu-img info")?,
        )
        .map_err(|e| format!("qfault info --json {image} disagrees with qemu-img info: {e}"))?;

        let theirs = self.ok(
            "qemu-img",
            &sv(&["map", "--output=json", "-f", format, image]),
        )?;
        let ours = self.ok("qfault", &sv(&["map", "--json", image]))?;
        compare_map(
            &parse(&ours, "qfault map")?,
            &parse(&theirs, "qemu-img map")?,
        )
        .map_err(|e| format!("qfault map --json {image} disagrees with qemu-img map: {e}"))?;
        Ok(())
    }

    // -----------------------------------------------------------------------
    // 3. Writer checks
    // -----------------------------------------------------------------------

    /// Offsets worth hitting: cluster and L2-table boundaries of the new
    /// overlay and of the top layer, every lower layer's EOF, the disk's end.
    fn boundaries(&mut self, chain: &[Layer], cluster: u64, v: u64) -> Vec<u64> {
        let mut pts = vec![0, v];
        for l in chain {
            pts.push(l.size);
            if let Kind::Raw = l.kind {
                pts.push(l.file_len);
            }
        }
        let mut grains = vec![cluster, cluster * (cluster / 8)];
        if let Kind::Qcow2(o) = chain.last().expect("layer").kind {
            grains.push(o.cluster);
            let per_l2 = if o.extended_l2 { 16 } else { 8 };
            grains.push(o.cluster * (o.cluster / per_l2));
            if o.extended_l2 {
                grains.push(o.cluster / 32);
            }
        }
        for g in grains {
            if g <= v {
                let k = self.rng.range(1, v / g);
                pts.push(k * g);
            }
        }
        pts.retain(|&p| p <= v);
        pts
    }

    fn inject_range(&mut self, chain: &[Layer], cluster: u64, v: u64, zero: bool) -> (u64, u64) {
        let pts = self.boundaries(chain, cluster, v);
        let p = self.rng.pick(&pts);
        let spread = cluster.min(64 * K);
        let delta = match self.rng.below(3) {
            0 => 0,
            1 => self.rng.range(0, 1200) as i64 - 600,
            _ => self.rng.range(0, 4 * spread) as i64 - 2 * spread as i64,
        };
        let off = (p as i64 + delta).clamp(0, v as i64 - 1) as u64;
        let cap = if zero { 64 * M } else { 4 * M };
        let len = match self.rng.below(3) {
            0 => self.rng.range(1, 1024),
            1 => self.rng.range(1, 3 * cluster),
            _ => {
                // Up to another boundary (plus or minus a little).
                let q = self.rng.pick(&pts);
                let d = self.rng.range(0, 1200) as i64 - 600;
                ((q as i64 + d) - off as i64).max(1) as u64
            }
        };
        (off, len.min(cap).min(v - off).max(1))
    }

    fn injection_payload(&mut self, len: u64) -> Vec<u8> {
        let len = len as usize;
        match self.rng.below(4) {
            0 => {
                self.stats.add("inject write: zeros");
                vec![0; len]
            }
            1 => {
                self.stats.add("inject write: one byte value");
                vec![self.rng.range(1, 255) as u8; len]
            }
            2 => {
                self.stats.add("inject write: data with zero blocks");
                let mut b = self.rng.bytes(len);
                let mut i = 0;
                while i < len {
                    let n = (self.rng.range(1, 16) as usize * 512).min(len - i);
                    if self.rng.chance(50) {
                        b[i..i + n].fill(0);
                    }
                    i += n;
                }
                b
            }
            _ => {
                self.stats.add("inject write: random");
                self.rng.bytes(len)
            }
        }
    }

    fn check_injections(&mut self, chain: &[Layer]) -> R<()> {
        let top = chain.last().expect("layer");
        let v = top.size;
        if v == 0 {
            return Ok(());
        }
        for d in ["ra", "rb", "mirror"] {
            std::fs::create_dir_all(self.path(d)).expect("mkdir");
        }
        if self.rng.chance(10) {
            // A range past the end of the disk: a usage error, nothing written.
            let off = v - self.rng.range(0, v.min(1000));
            let len = v - off + self.rng.range(1, 1000);
            let args = sv(&[
                "inject",
                "zero",
                &top.path,
                "-o",
                "ra/past-end.qcow2",
                "--offset",
                &off.to_string(),
                "--length",
                &len.to_string(),
            ]);
            let out = self.exec("qfault", &args)?;
            if out.status.code() != Some(2) || self.path("ra/past-end.qcow2").exists() {
                return Err(format!(
                    "inject zero past the end of the disk ({off}+{len} > {v}) gave {} (expected exit 2 and no overlay):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            self.stats.add("inject past the end refused");
        }
        let steps = self.rng.range(1, 4);
        let (mut prev_a, mut prev_b, mut prev_m) =
            (top.path.clone(), top.path.clone(), top.path.clone());
        let mut prev_fmt = top.kind.format();
        let mut last_args: Vec<String> = Vec::new();
        for j in 0..steps {
            let cluster = 512u64 << self.rng.below(13);
            let zero = self.rng.chance(50);
            let (off, len) = self.inject_range(chain, cluster, v, zero);
            let (a, b, m) = (
                format!("ra/o{j}.qcow2"),
                format!("rb/o{j}.qcow2"),
                format!("mirror/m{j}.qcow2"),
            );
            let mut tail: Vec<String> = sv(&["--offset", &off.to_string()]);
            let io_cmd;
            if zero {
                tail.extend(sv(&["--length", &len.to_string()]));
                io_cmd = format!("write -z {off} {len}");
                self.stats.add("inject zero");
            } else {
                let bytes = self.injection_payload(len);
                let name = self.payload(&bytes);
                tail.extend(sv(&["--from", &name]));
                io_cmd = format!("write -s {name} {off} {len}");
                self.stats.add("inject write");
            }
            tail.extend(sv(&["--cluster-size", &cluster.to_string()]));
            if j == 0 && self.rng.chance(20) {
                tail.push("--absolute-backing".into());
            }
            let op = if zero { "zero" } else { "write" };
            for (base, out) in [(&prev_a, &a), (&prev_b, &b)] {
                let mut args = sv(&["inject", op, base, "-o", out]);
                args.extend(tail.iter().cloned());
                self.ok("qfault", &args)?;
                last_args = args;
            }
            if let Some(d) = first_difference(&self.path(&a), &self.path(&b))? {
                return Err(format!(
                    "the same inject run twice gave different overlays {a} and {b}: {d}"
                ));
            }
            let name = relative("mirror", &prev_m);
            let name = name.trim_start_matches("../mirror/").to_string();
            self.ok(
                "qemu-img",
                &sv(&[
                    "create", "-q", "-f", "qcow2", "-b", &name, "-F", prev_fmt, &m,
                ]),
            )?;
            self.qemu_io("qcow2", &m, &[io_cmd])?;
            let out = self.exec("qemu-img", &sv(&["compare", &a, &m]))?;
            if !out.status.success() {
                return Err(format!(
                    "qfault's overlay {a} differs from QEMU's mirror {m} (qemu-img compare, {}):\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let out = self.exec("qemu-img", &sv(&["check", &a]))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() || !text.contains("No errors were found") {
                return Err(format!(
                    "qemu-img check {a} is not clean ({}):\n{text}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let info = self.qemu_info(&a, "qcow2")?;
            if info["virtual-size"].as_u64() != Some(v)
                || info["cluster-size"].as_u64() != Some(cluster)
            {
                return Err(format!(
                    "overlay {a}: qemu-img info says virtual size {} and cluster size {}, expected {v} and {cluster}",
                    info["virtual-size"], info["cluster-size"]
                ));
            }
            if j + 1 == steps {
                self.check_reader(&a, "qcow2", &format!("o{j}"))?;
            }
            prev_a = a;
            prev_b = b;
            prev_m = m;
            prev_fmt = "qcow2";
        }
        // The last step again onto its own output: nothing to write.
        let before = std::fs::read(self.path(&prev_a)).map_err(|e| e.to_string())?;
        last_args.push("--json".into());
        let text = self.ok("qfault", &last_args)?;
        let doc = parse(&text, "qfault inject --json")?;
        if doc["output"]["status"] != "unchanged" {
            return Err(format!(
                "re-running the last inject onto its own output gave status {} (expected \"unchanged\")",
                doc["output"]["status"]
            ));
        }
        let after = std::fs::read(self.path(&prev_a)).map_err(|e| e.to_string())?;
        if before != after {
            return Err(format!("re-running the last inject changed {prev_a}"));
        }
        Ok(())
    }
}

fn sv(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn parse(text: &str, what: &str) -> R<Value> {
    serde_json::from_str(text).map_err(|e| format!("{what}: not JSON ({e}):\n{text}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

/// The data extents of a file (`SEEK_DATA`/`SEEK_HOLE`), so sparse files of
/// a gigabyte compare in milliseconds.
fn data_extents(f: &std::fs::File, len: u64) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        // SAFETY: lseek on a file descriptor we own; no memory is touched.
        let d = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if d < 0 {
            break;
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        let h = if h < 0 { len as i64 } else { h };
        out.push((d as u64, h as u64));
        pos = h;
    }
    out
}

/// `None` when the two files have the same size and content; otherwise
/// where they first differ.
pub fn first_difference(a: &Path, b: &Path) -> R<Option<String>> {
    use std::os::unix::fs::FileExt;
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (fa, fb) = (open(a)?, open(b)?);
    let (la, lb) = (
        fa.metadata().map_err(|e| e.to_string())?.len(),
        fb.metadata().map_err(|e| e.to_string())?.len(),
    );
    if la != lb {
        return Ok(Some(format!(
            "sizes differ: {} has {la} bytes, {} has {lb}",
            a.display(),
            b.display()
        )));
    }
    let mut ranges = data_extents(&fa, la);
    ranges.extend(data_extents(&fb, lb));
    ranges.sort_unstable();
    let (mut ba, mut bb) = (vec![0u8; M as usize], vec![0u8; M as usize]);
    let mut done = 0u64; // everything below is compared
    for (s, e) in ranges {
        let mut pos = s.max(done);
        while pos < e {
            let n = (e - pos).min(M) as usize;
            fa.read_exact_at(&mut ba[..n], pos)
                .map_err(|e| e.to_string())?;
            fb.read_exact_at(&mut bb[..n], pos)
                .map_err(|e| e.to_string())?;
            if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
                return Ok(Some(format!(
                    "first difference at byte {} ({:#04x} in {}, {:#04x} in {})",
                    pos + i as u64,
                    ba[i],
                    a.display(),
                    bb[i],
                    b.display()
                )));
            }
            pos += n as u64;
        }
        done = done.max(e);
    }
    Ok(None)
}

/// Compares `qfault info --json` with `qemu-img info --output=json
/// --backing-chain`, image by image, top first: format, virtual size,
/// cluster size (qcow2), backing name and format, and for qcow2 the version
/// (compat), compression type, extended L2 and the number of snapshots.
pub fn compare_info(ours: &Value, theirs: &Value) -> R<()> {
    let ours = ours["chain"].as_array().ok_or("qfault info: no chain")?;
    let theirs = theirs.as_array().ok_or("qemu-img info: not an array")?;
    if ours.len() != theirs.len() {
        return Err(format!(
            "chain length {} (qfault) vs {} (qemu-img)",
            ours.len(),
            theirs.len()
        ));
    }
    let null = Value::Null;
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        let specific = &t["format-specific"]["data"];
        let mut pairs: Vec<(&str, Value, Value)> = vec![
            ("format", o["format"].clone(), t["format"].clone()),
            (
                "virtual size",
                o["virtual_size"].clone(),
                t["virtual-size"].clone(),
            ),
            (
                "backing file",
                o["backing_file"].clone(),
                t.get("backing-filename").unwrap_or(&null).clone(),
            ),
            (
                "backing format",
                o["backing_format"].clone(),
                t.get("backing-filename-format").unwrap_or(&null).clone(),
            ),
        ];
        if t["format"] == "qcow2" {
            pairs.push((
                "cluster size",
                o["cluster_size"].clone(),
                t["cluster-size"].clone(),
            ));
            let version = match specific["compat"].as_str() {
                Some("0.10") => Value::from(2),
                Some("1.1") => Value::from(3),
                _ => Value::Null,
            };
            pairs.push(("version (compat)", o["version"].clone(), version));
            if let Some(c) = specific.get("compression-type") {
                pairs.push(("compression type", o["compression_type"].clone(), c.clone()));
            }
            let ext = specific
                .get("extended-l2")
                .cloned()
                .unwrap_or(Value::Bool(false));
            pairs.push(("extended L2", o["extended_l2"].clone(), ext));
            let snaps = t["snapshots"].as_array().map_or(0, |s| s.len());
            pairs.push(("snapshots", o["snapshots"].clone(), Value::from(snaps)));
        }
        for (what, a, b) in pairs {
            if a != b {
                return Err(format!(
                    "chain[{i}] ({}): {what}: qfault {a}, qemu-img {b}",
                    t["filename"]
                ));
            }
        }
    }
    Ok(())
}

/// One classified range of a map.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MapRange {
    start: u64,
    end: u64,
    present: bool,
    depth: u64,
    zero: bool,
    data: bool,
    compressed: bool,
}

fn map_ranges(doc: &Value, ours: bool) -> R<Vec<MapRange>> {
    let list = if ours { &doc["extents"] } else { doc };
    let list = list.as_array().ok_or("map: no list of extents")?;
    let mut out = Vec::new();
    for e in list {
        // qemu-img names the guest offset `start` (`offset` is the host
        // offset); qfault's schema 1 calls it `offset`: take `start` first so
        // the comparison survives qfault adopting qemu-img's names.
        let start = e
            .get("start")
            .or_else(|| if ours { e.get("offset") } else { None })
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("map extent without a start: {e}"))?;
        let len = e["length"].as_u64().ok_or("map extent without a length")?;
        let flag = |k: &str| e[k].as_bool().unwrap_or(false);
        out.push(MapRange {
            start,
            end: start + len,
            present: flag("present"),
            depth: e["depth"].as_u64().unwrap_or(u64::MAX),
            zero: flag("zero"),
            data: flag("data"),
            compressed: flag("compressed"),
        });
    }
    Ok(out)
}

/// Compares `qfault map --json` with `qemu-img map --output=json` byte range
/// by byte range (both are cut at every boundary either reports, so they
/// may split ranges differently).
///
/// Compared for every byte: `present` (some layer provides it) and `data`;
/// `zero` (reads as zeros) where either says `data: false`; where
/// `present`, also `depth` (which layer, 0 = top) and `compressed`.
/// Not compared: `zero` inside data ranges (QEMU also asks the host file
/// and reports a hole inside an allocated qcow2 data cluster, as qfault's
/// own overlays leave all-zero 4 KiB blocks, as `zero: true`; qfault reports
/// the image's metadata), `depth` where nothing is present (QEMU reports the
/// bottom layer's index, qfault one past it; being aligned to qemu-img
/// now), host `offset`s and `file` names. Both must cover the disk without
/// gaps.
pub fn compare_map(ours: &Value, theirs: &Value) -> R<()> {
    let a = map_ranges(ours, true)?;
    let b = map_ranges(theirs, false)?;
    for (who, v) in [("qfault", &a), ("qemu-img", &b)] {
        let mut pos = 0;
        for r in v.iter() {
            if r.start != pos || r.end <= r.start {
                return Err(format!("{who} map has a gap or overlap at {pos}: {r:?}"));
            }
            pos = r.end;
        }
    }
    let end_a = a.last().map_or(0, |r| r.end);
    let end_b = b.last().map_or(0, |r| r.end);
    if end_a != end_b {
        return Err(format!(
            "map ends at {end_a} (qfault) vs {end_b} (qemu-img)"
        ));
    }
    let (mut i, mut j, mut pos) = (0, 0, 0);
    let mut diffs = Vec::new();
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let end = x.end.min(y.end);
        let same = x.present == y.present
            && x.data == y.data
            && (x.zero == y.zero || (x.data && y.data))
            && (!x.present || (x.depth == y.depth && x.compressed == y.compressed));
        if !same && diffs.len() < 5 {
            diffs.push(format!(
                "bytes {pos}..{end}: qfault present={} depth={} zero={} data={} compressed={}; \
                 qemu-img present={} depth={} zero={} data={} compressed={}",
                x.present,
                x.depth,
                x.zero,
                x.data,
                x.compressed,
                y.present,
                y.depth,
                y.zero,
                y.data,
                y.compressed
            ));
        }
        pos = end;
        if x.end == end {
            i += 1;
        }
        if y.end == end {
            j += 1;
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

// ---------------------------------------------------------------------------
// The base stays untouched
// ---------------------------------------------------------------------------

/// Hashes (data extents and their bytes), sizes and modification times of
/// every layer of a chain.
pub struct BaseHashes(Vec<(String, u64, Option<std::time::SystemTime>, String)>);

/// A hash of a file's size and content that reads only its data extents:
/// every non-zero 64 KiB block (on a fixed grid, so the hash does not depend
/// on how the filesystem reports extents, which changes as it writes back
/// delayed allocations and unwritten extents) with its offset.
fn hash_sparse(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;
    const B: u64 = 64 * K;
    let f = std::fs::File::open(path).expect("open layer for hashing");
    let len = f.metadata().expect("stat").len();
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; B as usize];
    let mut next = 0u64; // first block not hashed yet
    for (s, e) in data_extents(&f, len) {
        let mut blk = (s / B).max(next);
        while blk * B < e.min(len) {
            let pos = blk * B;
            let n = (len - pos).min(B) as usize;
            f.read_exact_at(&mut buf[..n], pos).expect("read layer");
            if buf[..n].iter().any(|&b| b != 0) {
                h.update(pos.to_le_bytes());
                h.update(&buf[..n]);
            }
            blk += 1;
        }
        next = next.max(blk);
    }
    sha256_hex(&h.finalize())
}

impl BaseHashes {
    /// Records every layer (paths relative to `dir`).
    pub fn new(dir: &Path, chain: &[Layer]) -> Self {
        BaseHashes(
            chain
                .iter()
                .map(|l| {
                    let p = dir.join(&l.path);
                    let m = std::fs::metadata(&p).expect("stat layer");
                    (l.path.clone(), m.len(), m.modified().ok(), hash_sparse(&p))
                })
                .collect(),
        )
    }

    /// `Err` naming the first layer whose size, mtime or content changed.
    pub fn check(&self, dir: &Path) -> R<()> {
        for (path, len, mtime, hash) in &self.0 {
            let p = dir.join(path);
            let m = std::fs::metadata(&p).map_err(|e| e.to_string())?;
            let what = if m.len() != *len {
                format!("its size changed from {len} to {}", m.len())
            } else if m.modified().ok() != *mtime {
                format!(
                    "its mtime changed from {mtime:?} to {:?}",
                    m.modified().ok()
                )
            } else if hash_sparse(&p) != *hash {
                "its content changed".to_string()
            } else {
                continue;
            };
            return Err(format!("the base layer {path} was modified: {what}"));
        }
        Ok(())
    }
}

/// Unit checks of the comparisons themselves: each must be able to fail.
pub fn self_test() {
    let d = std::env::temp_dir().join(format!("qfault-difftest-self-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::write(&a, vec![0u8; 3 * M as usize]).unwrap();
    let f = std::fs::File::create(&b).unwrap();
    f.set_len(3 * M).unwrap();
    assert_eq!(first_difference(&a, &b).unwrap(), None, "zeros equal holes");
    std::os::unix::fs::FileExt::write_all_at(&f, &[1], 2 * M + 5).unwrap();
    let d1 = first_difference(&a, &b)
        .unwrap()
        .expect("a difference in b's data");
    assert!(d1.contains("byte 2097157"), "{d1}");
    f.set_len(3 * M + 1).unwrap();
    assert!(first_difference(&a, &b)
        .unwrap()
        .unwrap()
        .contains("sizes differ"));
    std::fs::remove_dir_all(&d).unwrap();

    let ours: Value = serde_json::json!({"extents": [
        {"offset": 0, "length": 512, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false},
        {"offset": 512, "length": 512, "depth": 2, "present": false, "zero": true, "data": false, "compressed": false}]});
    let theirs: Value = serde_json::json!([
        {"start": 0, "length": 1024, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false}]);
    let e = compare_map(&ours, &theirs).expect_err("a present range against an absent one");
    assert!(e.contains("bytes 512..1024"), "{e}");
    let theirs: Value = serde_json::json!([
        {"start": 0, "length": 512, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false},
        {"start": 512, "length": 512, "depth": 1, "present": false, "zero": true, "data": false, "compressed": false}]);
    compare_map(&ours, &theirs).expect("absent ranges agree whatever their depth");

    let ours = serde_json::json!({"chain": [{"format": "qcow2", "virtual_size": 1024, "cluster_size": 512,
        "version": 3, "compression_type": "zlib", "extended_l2": false, "snapshots": 0,
        "backing_file": null, "backing_format": null}]});
    let theirs = serde_json::json!([{"format": "qcow2", "virtual-size": 1024, "cluster-size": 65536,
        "format-specific": {"data": {"compat": "1.1", "compression-type": "zlib"}}}]);
    let e = compare_info(&ours, &theirs).expect_err("cluster sizes differ");
    assert!(e.contains("cluster size"), "{e}");
}
