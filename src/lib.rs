//! qfault: disk images with precise, known, repairable damage.
//!
//! The pipeline, one module per stage:
//!
//! - [`image`]: raw, qcow2, VMDK, VHDX, VHD and VDI images, through their
//!   whole backing chain, as one guest disk ([`image::ReadAt`], plus
//!   `Read + Seek` via [`image::Cursor`]).
//! - [`layout`]: partition tables (MBR with logical partitions, GPT).
//! - [`fs`]: filesystem probes and models (`fs::ntfs`: the boot sector,
//!   ntfsfix's rules, a volume reader).
//! - [`recipe`]: one file per recipe, one registry ([`recipe::RECIPES`]):
//!   preconditions, the guest patches and the tools' predicted outcomes.
//! - [`overlay`]: the qcow2 overlay writer (backed by the untouched base)
//!   and placement (an identical output is left alone).
//! - [`standalone`]: outputs that need no backing chain (a raw image, a
//!   reflink clone where the filesystem allows; a self-contained qcow2).
//! - [`apply`]: the one write path (plan → write → check → place) and the
//!   [`apply::Inject`] façade; [`chain`] and [`batch`] are thin layers over it.
//! - [`verify`]: what an existing overlay changes and what the tools will do.
//!
//! The base image is never written: every image of a chain is opened read-only.
//!
//! The library says what it reads and writes through the [`log`] crate, at
//! level `info` with targets under `qfault`: every manifest it reads, every
//! image file it opens (with its format), every temporary output file and its rename into place (with
//! its size), and outputs left alone because they already hold their bytes.
//! Install any `log` logger to see them (the command line's `-v` does).
//!
//! The main job, from paths (the shipped sample's partition 2 is NTFS "C"):
//!
//! ```
//! use qfault::apply::Inject;
//! use qfault::recipe::{Role, Spec, Verdict};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("broken.qcow2");
//! let spec = Spec::parse("ntfs-boot --partition 2")?;
//! let report = Inject::new("testdata/sample.qcow2", spec, &out)
//!     .absolute_backing(true)
//!     .run()?;
//! let target = &report.output.targets[0];
//! let mount = target.prediction.outcome(Role::Mount).unwrap();
//! assert_eq!((mount.result.clone(), mount.exit_code), (Verdict::Refused, 12));
//! let repair = target.prediction.outcome(Role::Repair).unwrap();
//! assert_eq!(repair.result, Verdict::Repairs);
//! # Ok::<(), qfault::Error>(())
//! ```

pub mod apply;
pub mod batch;
pub mod chain;
pub mod error;
pub mod export;
pub mod fs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod json_path;
pub mod layout;
pub mod output;
pub mod overlay;
pub mod recipe;
pub mod standalone;
pub mod units;
pub mod verify;

pub use error::{Error, Result};
