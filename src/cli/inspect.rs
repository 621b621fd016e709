//! `qfault inspect`: the chain, the partition table and the filesystem in each partition.

use std::path::PathBuf;

/// Show the partition table and the filesystem in each partition.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk image (raw or qcow2; its backing chain is followed).
    pub image: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `qfault inspect`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("inspect is not implemented yet")
}
