//! Disk images: raw files, qcow2 and the formats read by drivers in
//! [`driver`] (VMDK, VHDX, VHD, VDI), through the backing chain, as one guest
//! disk.
//!
//! [`open`] follows the chain and returns an [`Image`] that implements
//! [`ReadAt`]; wrap it in a [`Cursor`] for `Read + Seek`. Every file is opened
//! read-only; names found inside images are resolved and gated by the policy
//! in [`backing`] ([`BackingPolicy`], set in [`OpenOptions::backing`]).

pub mod backing;
mod chain;
pub mod driver;
pub mod lock;
pub mod qcow2;
pub mod raw;
mod read_at;
pub mod storage;
pub mod vdi;
pub mod vhdx;
pub mod vmdk;
pub mod vpc;

pub use backing::BackingPolicy;
pub use chain::{
    canonical_file, open, open_partial, BelowTop, ChainBreak, ChainExtent, Format, Image, Layer,
    LayerInfo, OpenOptions, PartialChain, DEFAULT_MAX_DEPTH,
};
pub use read_at::{check_range, BlockCache, BlockStore, Cursor, MemDisk, ReadAt, Stored, Window};
