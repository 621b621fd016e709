//! `qfault export`: flatten the guest into a sparse raw file.

use super::common::{ImageOpts, Progress};
use qfault::image::ReadAt;
use std::path::PathBuf;

/// Flatten the guest disk (or one partition) into a sparse raw file (holes where it reads zeros).
///
/// The output is written to a temporary file beside OUT and renamed into
/// place, so OUT is either absent or complete.
///
/// Ranges the chain maps as zeros or unallocated, holes in the image files,
/// and 4 KiB blocks of zeros in compressed or otherwise decoded data stay
/// holes. Data stored uncompressed in raw and qcow2 files is copied by the
/// kernel (copy_file_range) without being looked at: a stored run of zeros
/// there is written out, where `qemu-img convert` leaves a hole (the bytes
/// read the same). Compressed clusters are inflated on every core.
#[derive(Debug, clap::Args)]
#[command(after_help = super::AFTER_HELP)]
pub struct Args {
    /// The image (raw, qcow2, VMDK, VHDX, VHD or VDI); its backing chain is followed.
    pub image: PathBuf,
    /// Where to write the raw file.
    #[arg(short = 'o', long = "output", value_name = "OUT", value_parser = super::common::OutputPath)]
    pub output: PathBuf,
    /// Export only this partition (as `inspect` numbers them).
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Do not flush the output to stable storage before reporting it done
    /// (like qemu-img's default output cache mode): faster, still complete or
    /// absent if qfault dies, but possibly lost or torn after a power loss.
    #[arg(long)]
    pub no_sync: bool,
    #[command(flatten)]
    pub open: ImageOpts,
}

/// Runs `qfault export`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut image = args.open.open(&args.image)?;
    let (start, len) = match args.partition {
        None => (0, image.size()),
        Some(n) => {
            let p = qfault::recipe::select::partition_by_number(&mut image, n)?;
            (p.start, p.size)
        }
    };
    let progress = Progress::bytes("export", len);
    qfault::export::export_raw(
        &mut image,
        start,
        len,
        &args.output,
        args.overwrite,
        !args.no_sync,
        &mut |d, _| progress.set(d),
    )?;
    Ok(())
}
