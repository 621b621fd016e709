//! Compressed clusters: the descriptor layout and inflating deflate or zstd.
//!
//! Spec: `docs/interop/qcow2.txt`, "Compressed Clusters Descriptor" and the
//! header's `compression_type`. QEMU stores a raw deflate stream (no zlib
//! header) or one zstd frame per cluster.

use super::header::CompressionType;
use crate::error::{Error, Result};
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
        CompressionType::Zstd => ("zstd frame", inflate_zstd(input, out).map_err(bad)?),
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

/// Inflates the zstd frame at the start of `input` (bytes after it are
/// ignored, as QEMU ignores them) into `out`, stopping when `out` is full;
/// returns the bytes produced. Each thread reuses one decompression context.
fn inflate_zstd(input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    use std::cell::RefCell;
    use zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};
    thread_local! {
        static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    }
    let invalid = |code| format!("zstd frame is invalid: {}", zstd_safe::get_error_name(code));
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(DCtx::try_create().ok_or("cannot allocate a zstd context")?),
        };
        dctx.reset(ResetDirective::SessionOnly).map_err(invalid)?;
        let mut inb = InBuffer::around(input);
        let mut outb = OutBuffer::around(out);
        loop {
            let (in_before, out_before) = (inb.pos(), outb.pos());
            let left = dctx
                .decompress_stream(&mut outb, &mut inb)
                .map_err(invalid)?;
            if left == 0 || outb.pos() == outb.capacity() {
                break;
            }
            if inb.pos() == in_before && outb.pos() == out_before {
                // No progress: the input ends inside the frame.
                return Err("zstd frame is truncated".to_string());
            }
        }
        Ok(outb.pos())
    })
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
