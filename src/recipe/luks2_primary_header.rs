//! The `luks2-primary-header` recipe: zero the LUKS2 primary binary header
//! (the first 4 KiB). blkid still finds `crypto_LUKS` through the secondary
//! header, and every cryptsetup command works through it.
//!
//! The trap: on a *writable* device any cryptsetup command (`luksDump`,
//! `isLuks`, `open`, `repair`) silently rewrites the primary header from
//! the secondary (cryptsetup --debug: "Primary LUKS2 header requires
//! recovery."), with a new salt and checksum; on a read-only device
//! (`losetup -r`) it works and writes nothing. So the check is predicted
//! on a read-only device and the repair is any cryptsetup call on a
//! writable one. Verified in `shared/catalogue/luks2-primary-header.sh`
//! and `tests/linux_recipes.rs`.

use super::linux::{self, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::luks::{Luks2Header, BINARY_HEADER_SIZE, MAGIC_SECONDARY};
use crate::image::{ReadAt, Window};
use crate::overlay::Patch;

/// `luks2-primary-header`: zero the LUKS2 primary binary header.
pub struct Luks2PrimaryHeader;

/// The check: on a read-only loop device (`losetup -r`), nothing is written.
pub const CHECK_RO: &str = "cryptsetup luksDump PART (PART: losetup -r)";
/// luksDump's first line.
const DUMP: &str = "LUKS header information";

impl Recipe for Luks2PrimaryHeader {
    type Params = PartitionParams;
    const NAME: &'static str = "luks2-primary-header";
    const ABOUT: &'static str =
        "Zero the LUKS2 primary header: still found via the secondary; cryptsetup on a writable device silently rewrites it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "crypto_LUKS (LUKS2)",
            damage: "the primary binary header (4 KiB at byte 0) reads as zeros",
            outcomes: outcomes(Some("crypto_LUKS")),
            repair: Some("cryptsetup repair -q PART"),
            preconditions: vec![
                "the partition holds LUKS2 (LUKS1 has no secondary header)",
                "its secondary header (at hdr_size) is of the same container, with a correct sha256 checksum and JSON area",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "crypto_LUKS")?;
        {
            let mut part = Window::new(&mut *disk, found.partition.start, found.partition.size)?;
            let primary = Luks2Header::primary(&mut part)?.ok_or_else(|| {
                linux::refuse(
                    &found,
                    "no LUKS2 primary header (LUKS1 has no secondary to recover from)",
                )
            })?;
            let secondary = Luks2Header::read_at(&mut part, primary.hdr_size(), MAGIC_SECONDARY)?;
            let Some(secondary) = secondary
                .filter(|s| s.uuid() == primary.uuid() && s.hdr_offset() == primary.hdr_size())
            else {
                return Err(linux::refuse(
                    &found,
                    format!(
                        "no secondary header of this container at byte {}",
                        primary.hdr_size()
                    ),
                ));
            };
            if let Some(why) = secondary.corruption(&mut part, primary.hdr_size())? {
                return Err(linux::refuse(
                    &found,
                    format!(
                        "the secondary header at byte {} is corrupt ({why}): cryptsetup could not use it",
                        primary.hdr_size()
                    ),
                ));
            }
        }
        let patch = Patch::Zero {
            offset: 0,
            len: BINARY_HEADER_SIZE as u64,
        };
        linux::plan_one(Self::NAME, disk, &found, vec![patch], prediction)
    }

    fn predict(
        _: &PartitionParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        linux::predict_target(Self::NAME, target, damaged, prediction)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        linux::verify_with("crypto_LUKS", partition, now, prediction)
    }
}

fn outcomes(identified: Option<&str>) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        Outcome::new(Role::Check, "cryptsetup", CHECK_RO, Verdict::Clean, 0, DUMP),
        Outcome::new(
            Role::Repair,
            "cryptsetup",
            "cryptsetup repair -q PART",
            Verdict::Repairs,
            0,
            "",
        ),
        Outcome::new(
            Role::AfterRepair,
            "cryptsetup",
            "cryptsetup luksDump PART",
            Verdict::Clean,
            0,
            DUMP,
        ),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    if Luks2Header::primary(part)?.is_some() {
        return Err(Error::Guest("the LUKS2 primary header is intact".into()));
    }
    let Some((at, secondary)) = Luks2Header::secondary(part)? else {
        return Err(Error::Guest("no LUKS2 secondary header".into()));
    };
    if let Some(why) = secondary.corruption(part, at)? {
        return Err(Error::Guest(format!(
            "the LUKS2 secondary header at byte {at} is corrupt ({why})"
        )));
    }
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            format!(
                "the secondary header at byte {at} (UUID {}, seqid {}) stands in for the primary",
                secondary.uuid(),
                secondary.seqid()
            ),
            "trap: any cryptsetup command on a writable device (luksDump, isLuks, open, repair) silently rewrites the primary header from the secondary and exits 0; observe through a read-only device (losetup -r), where nothing is written".into(),
            "the rewritten primary gets a new salt and checksum: not byte-identical to the base".into(),
        ],
    })
}
