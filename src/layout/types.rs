//! Readable names for common partition types, in fdisk's wording.
//!
//! MBR type bytes: the de-facto registry util-linux keeps in
//! `include/pt-mbr-partnames.h`. GPT type GUIDs: UEFI spec 2.10 table 5.9 for
//! the EFI system partition, Microsoft's and the Discoverable Partitions
//! Specification (uapi-group.org) for the rest, as util-linux's
//! `libfdisk/src/gpt.c` lists them.

use super::Guid;

/// The MBR type byte of an extended partition (CHS addressing), fdisk "Extended".
pub const MBR_EXTENDED: u8 = 0x05;
/// The MBR type byte of an extended partition (LBA), fdisk "W95 Ext'd (LBA)".
pub const MBR_EXTENDED_LBA: u8 = 0x0F;
/// The MBR type byte of a Linux extended partition.
pub const MBR_LINUX_EXTENDED: u8 = 0x85;
/// The MBR type byte of a GPT protective partition (UEFI spec 5.2.3).
pub const MBR_GPT_PROTECTIVE: u8 = 0xEE;

/// Readable name for an MBR type byte, if it is a common one.
pub fn mbr_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "FAT12",
        0x04 => "FAT16 <32M",
        MBR_EXTENDED => "Extended",
        0x06 => "FAT16",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        0x0e => "W95 FAT16 (LBA)",
        MBR_EXTENDED_LBA => "W95 Ext'd (LBA)",
        0x11 => "Hidden FAT12",
        0x17 => "Hidden HPFS/NTFS",
        0x1b => "Hidden W95 FAT32",
        0x1c => "Hidden W95 FAT32 (LBA)",
        0x27 => "Hidden NTFS WinRE",
        0x42 => "SFS",
        0x82 => "Linux swap / Solaris",
        0x83 => "Linux",
        MBR_LINUX_EXTENDED => "Linux extended",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xa6 => "OpenBSD",
        0xa8 => "Darwin UFS",
        0xa9 => "NetBSD",
        0xaf => "HFS / HFS+",
        MBR_GPT_PROTECTIVE => "GPT",
        0xef => "EFI (FAT-12/16/32)",
        0xfd => "Linux raid autodetect",
        _ => return None,
    })
}

/// True for the three extended-partition type bytes Linux follows.
pub fn is_mbr_extended(t: u8) -> bool {
    matches!(t, MBR_EXTENDED | MBR_EXTENDED_LBA | MBR_LINUX_EXTENDED)
}

/// Common GPT partition type GUIDs with fdisk's names.
const GPT_TYPES: &[(&str, &str)] = &[
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
    (
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    (
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3",
        "Microsoft LDM metadata",
    ),
    ("AF9B60A0-1431-4F62-BC68-3311714A69AD", "Microsoft LDM data"),
    (
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
        "Windows recovery environment",
    ),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home"),
    (
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux root (x86-64)",
    ),
    (
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "Linux extended boot",
    ),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
];

/// Readable name for a GPT type GUID, if it is a common one.
pub fn gpt_type_name(g: &Guid) -> Option<&'static str> {
    let text = g.to_string();
    GPT_TYPES
        .iter()
        .find(|(guid, _)| *guid == text)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(mbr_type_name(0x07), Some("HPFS/NTFS/exFAT"));
        assert_eq!(mbr_type_name(0x99), None);
        assert!(is_mbr_extended(0x05) && is_mbr_extended(0x0f) && is_mbr_extended(0x85));
        assert!(!is_mbr_extended(0x83));
        let g: Guid = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7".parse().unwrap();
        assert_eq!(gpt_type_name(&g), Some("Microsoft basic data"));
        assert_eq!(gpt_type_name(&Guid::ZERO), None);
        for (guid, _) in GPT_TYPES {
            assert!(guid.parse::<Guid>().is_ok(), "{guid}");
        }
    }
}
