//! Disk images: raw files and qcow2, through the backing chain, as one guest disk.
//!
//! [`open`] follows the chain and returns an [`Image`] that implements
//! [`ReadAt`]; wrap it in a [`Cursor`] for `Read + Seek`.

pub mod raw;
mod read_at;

pub use read_at::{check_range, Cursor, MemDisk, ReadAt, Window};
