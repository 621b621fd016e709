#!/usr/bin/env bash
# `make fuzz`: run every fuzz target for FUZZ_SECONDS (default 600) each,
# seeded from the fixtures (fuzz/make-seeds.sh). Needs cargo-fuzz (installed
# from crates.io when missing); the stable toolchain is used with
# RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes.
# Crashing inputs land in fuzz/artifacts/<target>/; copy each into
# tests/fuzz_regressions/<target>/ so `make test` (cargo test --features
# fuzzing) replays it forever. fuzz/Cargo.toml enables qfault's `fuzzing`
# feature, which exposes the entry points the targets call.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${FUZZ_SECONDS:-600}"
targets=(${FUZZ_TARGETS:-qcow2_read partition_tables ntfs_boot_sector inspect_pipeline vpc_read vdi_read vhdx_read vmdk_read})
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
./make-seeds.sh
status=0
for t in "${targets[@]}"; do
    echo "fuzz: $t for ${seconds}s"
    log="artifacts/$t.log"
    mkdir -p "artifacts/$t"
    # A VHDX's structures start at 1 MiB (log) and its blocks are 1 MiB or
    # more: its inputs need room for the seeds' BAT, metadata and one block.
    max_len=1048576
    case "$t" in vhdx_read) max_len=$((16 << 20)) ;; esac
    if ! cargo fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz: $t FAILED; see fuzz/$log and fuzz/artifacts/$t/" >&2
        status=1
    fi
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "$log" | sed "s/^/fuzz: $t /" || true
done
exit "$status"
