//! Compressing one cluster for a standalone qcow2 image, as QEMU's
//! decompressors read it back.
//!
//! Spec: `docs/interop/qcow2.txt`, "Compressed Clusters Descriptor" and the
//! header's `compression_type`. A zlib cluster is a raw deflate stream with
//! a 4 KiB window: QEMU deflates with and inflates declaring
//! `windowBits = -12` (`block/qcow2-threads.c`), so a conforming reader may
//! refuse a match further back than 4096 bytes. (QEMU itself inflates a
//! whole cluster in one call, which happens to accept longer distances.)
//! miniz_oxide's window is 32 KiB, so qfault deflates with its run-length
//! strategy (every match at distance 1), which fits any window.
//! A zstd cluster is one zstd frame (ruzstd's encoder, its fastest level).
//! Both are deterministic.

use crate::image::qcow2::header::CompressionType;
use miniz_oxide::deflate::core::{
    compress as deflate, create_comp_flags_from_zip_params, CompressionStrategy, CompressorOxide,
    TDEFLFlush, TDEFLStatus,
};

/// Deflate level (miniz's default).
const DEFLATE_LEVEL: i32 = 6;
/// Negative window bits: a raw deflate stream, no zlib header.
const RAW_DEFLATE: i32 = -12;

/// `data` (one cluster of `cs` bytes) compressed with `kind`, or `None`
/// when that would not save space: like QEMU, a compressed cluster takes
/// at most `cs - 1` bytes, otherwise the cluster is stored as it is.
pub fn compress(kind: CompressionType, data: &[u8], cs: u64) -> Option<Vec<u8>> {
    let limit = (cs as usize).checked_sub(1)?;
    let out = match kind {
        CompressionType::Zlib => {
            let flags = create_comp_flags_from_zip_params(
                DEFLATE_LEVEL,
                RAW_DEFLATE,
                CompressionStrategy::RLE as i32,
            );
            let mut c = CompressorOxide::new(flags);
            let mut out = vec![0u8; limit];
            let (status, used, written) = deflate(&mut c, data, &mut out, TDEFLFlush::Finish);
            if status != TDEFLStatus::Done || used != data.len() {
                return None;
            }
            out.truncate(written);
            out
        }
        CompressionType::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    };
    (out.len() <= limit).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::qcow2::compressed::decompress;
    use std::path::Path;

    fn cluster() -> Vec<u8> {
        let mut d = vec![0u8; 65536];
        for (i, b) in d.iter_mut().enumerate().take(30000) {
            *b = if i % 512 < 200 { 0xaa } else { (i / 700) as u8 };
        }
        d
    }

    /// `len` pseudo-random bytes (xorshift64): nothing to compress.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn both_kinds_round_trip_and_are_deterministic() {
        let d = cluster();
        for kind in [CompressionType::Zlib, CompressionType::Zstd] {
            let z = compress(kind, &d, 65536).expect("compressible");
            assert!(z.len() < d.len() / 4, "{kind:?}: {} bytes", z.len());
            assert_eq!(compress(kind, &d, 65536), Some(z.clone()));
            let mut out = Vec::new();
            decompress(Path::new("t"), kind, &z, d.len(), &mut out, 0).unwrap();
            assert_eq!(out[..d.len()], d[..]);
        }
    }

    #[test]
    fn deflate_never_matches_further_back_than_the_4k_window() {
        // Random bytes repeating every 5000: only a match 5000 bytes back
        // shrinks them, which the 4 KiB window forbids. Distance-1 matches
        // find nothing, so the cluster does not compress.
        let unit = noise(5000);
        let d: Vec<u8> = unit.iter().cycle().take(65536).copied().collect();
        assert_eq!(compress(CompressionType::Zlib, &d, 65536), None);
        // zstd has no such limit: the repeats shrink it.
        let z = compress(CompressionType::Zstd, &d, 65536).expect("zstd matches far back");
        assert!(z.len() < 16384, "{}", z.len());
    }

    #[test]
    fn incompressible_clusters_are_stored_as_they_are() {
        let noise = noise(65536);
        assert_eq!(compress(CompressionType::Zlib, &noise, 65536), None);
        assert_eq!(compress(CompressionType::Zstd, &noise, 65536), None);
    }
}
