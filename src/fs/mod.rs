//! Filesystem identification (in the manner of `blkid -p`) and the NTFS boot-sector model.
