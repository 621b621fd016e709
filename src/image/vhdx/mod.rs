//! VHDX images (Hyper-V): fixed, dynamic and differencing.
//!
//! Not read yet: [`open`] refuses with the conversion that makes the image
//! readable.

use crate::error::Result;
use crate::image::driver::{not_readable, Driver, Files};
use crate::image::storage::Storage;

/// Opens the image in `storage`.
pub fn open(storage: Box<dyn Storage>, _files: &mut dyn Files) -> Result<Box<dyn Driver>> {
    Err(not_readable(storage.path(), "a VHDX image"))
}
