//! Compressed clusters: the descriptor layout and inflating deflate or zstd.
//!
//! Spec: `docs/interop/qcow2.txt`, "Compressed Clusters Descriptor" and the
//! header's `compression_type`. QEMU stores a raw deflate stream (no zlib
//! header) or one zstd frame per cluster.

use super::header::CompressionType;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Size of the sectors in which compressed lengths are counted (spec: "512-byte sectors").
pub const COMPRESSED_SECTOR: u64 = 512;

/// Where one compressed cluster's data lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedDescriptor {
    /// File offset of the first compressed byte (not aligned).
    pub offset: u64,
    /// Upper bound of the compressed length in bytes (the stream may end earlier).
    pub len: u64,
}

impl CompressedDescriptor {
    /// Decodes bits 0-61 of a compressed L2 entry for `cluster_bits`.
    pub fn decode(entry: u64, cluster_bits: u32) -> Self {
        // x = 62 - (cluster_bits - 8): offset bits below, sector count above.
        let x = 62 - (cluster_bits - 8);
        let descriptor = entry & ((1u64 << 62) - 1);
        let offset = descriptor & ((1u64 << x) - 1);
        let additional_sectors = descriptor >> x;
        let len = (additional_sectors + 1) * COMPRESSED_SECTOR - (offset % COMPRESSED_SECTOR);
        CompressedDescriptor { offset, len }
    }
}

/// Inflates `input` into exactly `cluster` bytes, returned in `out[..cluster]`.
///
/// `out` is resized to `cluster + 1` so that a stream producing more than one
/// cluster is noticed: such a stream, or one that ends before filling the
/// cluster, is malformed.
pub fn decompress(
    path: &Path,
    kind: CompressionType,
    input: &[u8],
    cluster: usize,
    out: &mut Vec<u8>,
    guest_offset: u64,
) -> Result<()> {
    out.clear();
    out.resize(cluster + 1, 0);
    decompress_into(path, kind, input, out, guest_offset)
}

/// Inflates `input` into exactly `out.len() - 1` bytes (one cluster) at the
/// start of `out`; the last byte of `out` is scratch, there to notice a
/// stream that produces more than one cluster (then it may be overwritten).
/// Such a stream, or one that ends before filling the cluster, is
/// malformed. `out` must not be empty.
pub fn decompress_into(
    path: &Path,
    kind: CompressionType,
    input: &[u8],
    out: &mut [u8],
    guest_offset: u64,
) -> Result<()> {
    let bad = |why: String| {
        Error::malformed(
            path,
            format!("compressed cluster at guest offset {guest_offset}: {why}"),
        )
    };
    let cluster = out.len().saturating_sub(1);
    let (name, produced) = match kind {
        CompressionType::Zlib => {
            let mut d = flate2::Decompress::new(false);
            d.decompress(input, out, flate2::FlushDecompress::Finish)
                .map_err(|e| bad(format!("deflate stream is invalid: {e}")))?;
            ("deflate stream", d.total_out() as usize)
        }
        CompressionType::Zstd => {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| bad(format!("zstd frame is invalid: {e}")))?;
            let mut filled = 0;
            while filled < out.len() {
                match dec.read(&mut out[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(bad(format!("zstd frame is invalid: {e}"))),
                }
            }
            ("zstd frame", filled)
        }
    };
    if produced > cluster {
        return Err(bad(format!(
            "{name} inflates to more than one cluster ({cluster} bytes)"
        )));
    }
    if produced < cluster {
        return Err(bad(format!(
            "{name} inflates to {produced} bytes, less than the {cluster}-byte cluster"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_layout_64k() {
        // cluster_bits 16: x = 54; offset 0x12345, 3 additional sectors.
        let entry = (1u64 << 62) | (3u64 << 54) | 0x12345;
        let d = CompressedDescriptor::decode(entry, 16);
        assert_eq!(d.offset, 0x12345);
        assert_eq!(d.len, 4 * 512 - (0x12345 % 512));
    }

    #[test]
    fn deflate_round_trip_and_overflow() {
        use flate2::{write::DeflateEncoder, Compression};
        use std::io::Write;
        let path = Path::new("t");
        let data = vec![0xabu8; 1024];
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(&data).unwrap();
        let z = e.finish().unwrap();
        let mut out = Vec::new();
        decompress(path, CompressionType::Zlib, &z, 1024, &mut out, 0).unwrap();
        assert_eq!(out[..1024], data[..]);
        let err = decompress(path, CompressionType::Zlib, &z, 512, &mut out, 0).unwrap_err();
        assert!(err.to_string().contains("more than one cluster"), "{err}");
        let err = decompress(path, CompressionType::Zlib, &z, 2048, &mut out, 0).unwrap_err();
        assert!(err.to_string().contains("less than"), "{err}");
        let err = decompress(path, CompressionType::Zstd, &z, 1024, &mut out, 0).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
    }
}
