//! Replays every input that ever crashed qfault (kept under
//! tests/fuzz_regressions/<target>/) and a few degenerate inputs: none may
//! panic. New crashes from `make fuzz` (fuzz/artifacts/<target>/) are
//! copied here when they are fixed.
//!
//! The entry points live behind the `fuzzing` feature (`make test` enables
//! it: `cargo test --features fuzzing`). Without it only a guard test runs,
//! and it fails under CI so the replay is never skipped silently.

/// Without the feature there is nothing to replay; under CI that is a
/// mistake in the command line, not something to pass quietly.
#[cfg(not(feature = "fuzzing"))]
#[test]
fn fuzz_regressions_need_the_fuzzing_feature() {
    if std::env::var_os("CI").is_some() {
        panic!("run with --features fuzzing (make test does)");
    }
    eprintln!("fuzz regressions skipped: run with --features fuzzing (make test does)");
}

#[cfg(feature = "fuzzing")]
mod replay {
    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions")
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            run(&data);
            n += 1;
        }
        n
    }

    #[test]
    fn crashing_inputs_stay_fixed() {
        use qfault::fuzzing::*;
        let n = replay("qcow2_read", qcow2_read)
            + replay("partition_tables", partition_tables)
            + replay("ntfs_boot_sector", ntfs_boot_sector)
            + replay("inspect_pipeline", inspect_pipeline)
            + replay("vpc_read", vpc_read)
            + replay("vdi_read", vdi_read)
            + replay("vhdx_read", vhdx_read)
            + replay("vmdk_read", vmdk_read);
        // At least the inputs committed with this test (e.g. the cluster_bits = 64
        // header that once overflowed a shift): an empty replay proves nothing.
        assert!(
            n >= 1,
            "no regression inputs found under tests/fuzz_regressions/"
        );
        eprintln!("replayed {n} regression inputs");
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        use qfault::fuzzing::*;
        let mut qcow2_magic = b"QFI\xfb\0\0\0\x03".to_vec();
        qcow2_magic.resize(4096, 0xff);
        let mut vhdx_magic = b"vhdxfile".to_vec();
        vhdx_magic.resize(320 << 10, 0xff);
        for data in [
            &[][..],
            &[0u8; 1][..],
            &[0xffu8; 4096][..],
            &qcow2_magic[..],
            &vhdx_magic[..],
        ] {
            qcow2_read(data);
            partition_tables(data);
            ntfs_boot_sector(data);
            inspect_pipeline(data);
            vpc_read(data);
            vdi_read(data);
            vhdx_read(data);
            vmdk_read(data);
        }
    }
}
