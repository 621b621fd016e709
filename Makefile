# qfault developer tasks. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# mkntfs, sfdisk, losetup and friends live in sbin; tests call them too.
export PATH := $(PATH):/sbin:/usr/sbin

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# command:package for every tool the tests and fixtures use
TOOLS := qemu-img:qemu-utils qemu-io:qemu-utils \
	ntfsfix:ntfs-3g mkntfs:ntfs-3g ntfs-3g:ntfs-3g ntfscp:ntfs-3g ntfsinfo:ntfs-3g ntfslabel:ntfs-3g ntfsresize:ntfs-3g \
	sfdisk:fdisk sgdisk:gdisk parted:parted mkfs.vfat:dosfstools mkfs.ext4:e2fsprogs e2fsck:e2fsprogs debugfs:e2fsprogs \
	blkid:util-linux losetup:util-linux mkswap:util-linux partx:util-linux setpriv:util-linux \
	mkfs.exfat:exfatprogs mkfs.xfs:xfsprogs mkfs.btrfs:btrfs-progs cryptsetup:cryptsetup-bin \
	xfs_repair:xfsprogs xfs_io:xfsprogs btrfs:btrfs-progs mount:mount umount:mount \
	genisoimage:genisoimage \
	fsck.fat:dosfstools fsck.exfat:exfatprogs mount.exfat-fuse:exfat-fuse mcopy:mtools mdir:mtools \
	script:bsdutils man:man-db groff:groff-base python3:python3 \
	cc:gcc

.PHONY: help deps test demo man lint fixtures bench fuzz corpus check-clean difftest

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the real tools the tests use (apt-get; silent when all are there)
	@missing="$$(for t in $(TOOLS); do command -v "$${t%%:*}" >/dev/null || echo "$${t#*:}"; done | sort -u | xargs)"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -ne 0 ]; then echo "deps: missing tools; run:" >&2; echo "sudo apt-get install -y $$missing" >&2; exit 1; fi; \
	echo "deps: installing $$missing"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	for t in $(TOOLS); do command -v "$${t%%:*}" >/dev/null || { echo "deps: $${t%%:*} still missing" >&2; exit 1; }; done

test: deps ## run every test (unit, integration, doc) against the real tools
	$(CARGO) test --all-targets --features fuzzing
	$(CARGO) test --doc --features fuzzing

# The demo uses the debug build `make test` uses (same profile and features),
# so `make demo && make test` on a fresh machine compiles everything once.
demo: ## build qfault, damage a copy of testdata/sample.qcow2 under target/demo/, verify it, check with ntfsfix
	$(CARGO) build --features fuzzing --bin qfault
	QFAULT=$(TARGET_DIR)/debug/qfault scripts/demo.sh

man: ## write the man pages (qfault.1, qfault-inject.1, ...) into $(TARGET_DIR)/man; read one with man -l
	$(CARGO) build --features fuzzing --bin qfault
	$(TARGET_DIR)/debug/qfault man $(TARGET_DIR)/man
	@echo "man: $(TARGET_DIR)/man/qfault.1 (man -l $(TARGET_DIR)/man/qfault.1)"

lint: ## rustfmt check, clippy (with and without the fuzzing feature) and rustdoc with warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --features fuzzing -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

fixtures: deps ## regenerate testdata/sample.qcow2 (see testdata/README.md)
	testdata/make-sample.sh

bench: deps ## qfault vs QEMU's tools, same jobs; writes bench/RESULTS.md (BENCH_QUICK=1: smoke run)
	$(CARGO) build --release
	cc -O2 -o $(TARGET_DIR)/bench-floor bench/floor.c
	python3 bench/bench.py --qfault $(TARGET_DIR)/release/qfault --floor $(TARGET_DIR)/bench-floor

fuzz: ## fuzz every target for FUZZ_SECONDS (default 600) each; crashes go to fuzz/artifacts/
	fuzz/run.sh

corpus: deps ## compare qfault with blkid, sfdisk, qemu-img, ntfs-3g and ntfsfix on real images (downloaded to ~/.cache/qfault-corpus)
	$(CARGO) build
	python3 scripts/corpus.py --qfault $(TARGET_DIR)/debug/qfault

difftest: deps ## random images vs qemu-img/qemu-io (tests/difftest.rs) with release qfault: CASES=N (default 200) SEED=S (default: new, printed) JOBS=N (default 4)
	$(CARGO) build --release
	DIFFTEST_QFAULT=$(abspath $(TARGET_DIR))/release/qfault DIFFTEST_CASES=$(or $(CASES),200) DIFFTEST_JOBS=$(or $(JOBS),4) \
	DIFFTEST_SEED=$(or $(SEED),$$(date +%s)) $(CARGO) test --test difftest qfault_agrees -- --nocapture

check-clean: ## fail if the work tree has uncommitted or untracked files
	@git status --porcelain | grep . && { echo "check-clean: work tree not clean" >&2; exit 1; } || true
