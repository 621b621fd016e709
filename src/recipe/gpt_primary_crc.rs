//! The `gpt-primary-crc` recipe: change one byte of the primary GPT
//! header's disk GUID so its CRC32 no longer matches (the CRC is not
//! recomputed). As `gpt-primary`, but parted 3.5 falls back to the backup
//! too (the signature is intact); the repair per geometry is the same (see
//! [`super::ptable`]).

use super::ptable::{self, gpt_plan, gpt_prediction, reads, typical_gpt};
use super::{Catalogue, Plan, Prediction, Recipe, Target};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::overlay::Patch;
use std::ops::RangeInclusive;

/// `gpt-primary-crc`: break the primary GPT header's CRC32.
pub struct GptPrimaryCrc;

/// The disk GUID's bytes in the header (UEFI table 5.5, DiskGUID at 56).
pub const DISK_GUID_BYTES: RangeInclusive<u64> = 56..=71;

/// Parameters of `gpt-primary-crc`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct GptPrimaryCrcParams {
    /// The header byte to change, one of the disk GUID's (56..=71).
    #[arg(long, value_name = "N", default_value_t = 56)]
    pub byte: u64,
    /// Its new value (0..=255, or 0xNN). Default: 0x00, or 0xff when the byte is already 0.
    #[arg(long, value_name = "N", value_parser = parse_byte_value)]
    pub value: Option<u8>,
}

impl Default for GptPrimaryCrcParams {
    fn default() -> Self {
        GptPrimaryCrcParams {
            byte: 56,
            value: None,
        }
    }
}

/// A byte value, decimal or `0x` hexadecimal.
fn parse_byte_value(text: &str) -> std::result::Result<u8, String> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("'{text}' is not a byte value (0..=255 or 0x00..=0xff)"))
}

impl Recipe for GptPrimaryCrc {
    type Params = GptPrimaryCrcParams;
    const NAME: &'static str = "gpt-primary-crc";
    const ABOUT: &'static str =
        "Change one byte of the primary GPT header (its CRC32 no longer matches): every tool uses the backup";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk (gpt)",
            damage: "one byte of the primary header's disk GUID changed, the header CRC32 left as it was",
            outcomes: typical_gpt(
                [
                    reads("sfdisk", ptable::SFDISK_DUMP, ptable::PRIMARY_CORRUPT),
                    reads("parted", ptable::PARTED_PRINT, ptable::PRIMARY_CORRUPT),
                ],
                ptable::MAIN_HEADER_ERROR,
            ),
            repair: Some(ptable::GPT_REPAIR),
            preconditions: [
                &ptable::GPT_PRECONDITIONS[..],
                &["the byte does not already hold the new value"],
            ]
            .concat(),
        }
    }

    fn plan(p: &GptPrimaryCrcParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        if !DISK_GUID_BYTES.contains(&p.byte) {
            return Err(Error::Usage(format!(
                "{} is not a byte of the disk GUID (header bytes {}..={})",
                p.byte,
                DISK_GUID_BYTES.start(),
                DISK_GUID_BYTES.end()
            ))
            .context("byte"));
        }
        gpt_plan(Self::NAME, disk, |s| {
            let primary = s.primary.as_ref().map_err(|e| Error::Refused(e.clone()))?;
            let old = primary.sector[p.byte as usize];
            let new = p.value.unwrap_or(if old == 0 { 0xFF } else { 0 });
            if new == old {
                return Err(Error::Refused(format!(
                    "header byte {} already holds {new:#04x}: changing it to the same value breaks nothing",
                    p.byte
                )));
            }
            Ok(vec![Patch::Data {
                offset: u64::from(s.sector_size) + p.byte,
                bytes: vec![new],
            }])
        })
    }

    fn predict(
        _: &GptPrimaryCrcParams,
        _: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        gpt_prediction(damaged)
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::Spec;

    #[test]
    fn describe_round_trips() {
        for text in ["gpt-primary-crc", "gpt-primary-crc --byte 60 --value 0x7f"] {
            let s = Spec::parse(text).unwrap();
            assert_eq!(Spec::parse(&s.describe()).unwrap(), s, "{text}");
        }
        assert!(Spec::parse("gpt-primary-crc --value 256").is_err());
    }
}
