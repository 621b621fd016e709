#!/usr/bin/env bash
# The demo behind `make demo`: damage a scratch copy of testdata/sample.qcow2 so
# that partition 2 ("C") no longer mounts but ntfsfix repairs it, check the
# overlay with `qfault verify`, and, where qemu-img, ntfsfix and python3 are
# installed, repair a copy of the damaged partition with the real ntfsfix and
# print its exit code next to qfault's prediction.
# Writes only under target/demo/ (recreated on each run).
# QFAULT overrides the binary (default: target/release/qfault).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
qfault="${QFAULT:-target/release/qfault}"
[ -x "$qfault" ] || { echo "demo: $qfault not found; run: make demo" >&2; exit 1; }

demo=target/demo
rm -rf "$demo"
mkdir -p "$demo"
cp testdata/sample.qcow2 "$demo/sample.qcow2"
overlay="$demo/sample-ntfs-boot.qcow2"

step() { printf '\n$ %s\n' "$*"; }

step qfault inject ntfs-boot "$demo/sample.qcow2" -o "$overlay" --partition 2
"$qfault" inject ntfs-boot "$demo/sample.qcow2" -o "$overlay" --partition 2
echo "demo: overlay $overlay ($(stat -c %s "$overlay") bytes), backed by $demo/sample.qcow2"

step qfault verify "$overlay" --expect repairable
"$qfault" verify "$overlay" --expect repairable

missing=""
for t in qemu-img ntfsfix python3; do
    command -v "$t" >/dev/null || missing="$missing $t"
done
if [ -n "$missing" ]; then
    echo
    echo "demo: to check the prediction with the real ntfsfix, install$missing (make deps)"
    exit 0
fi

# qfault's prediction, from the report a re-run prints (it writes nothing:
# the overlay already holds these bytes).
"$qfault" -q inject ntfs-boot "$demo/sample.qcow2" -o "$overlay" --partition 2 --json >"$demo/inject.json"
read -r offset length exit_code result message < <(python3 - "$demo/inject.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["output"]["targets"][0]
fix = next(o for o in t["prediction"]["outcomes"] if o["role"] == "repair" and o["tool"] == "ntfsfix")
print(t["partition"]["offset"], t["partition"]["length"], fix["exit_code"], fix["result"], fix["message"] or "")
EOF
)

part="$demo/partition-2.raw"
step qemu-img convert -O raw --image-opts "driver=raw,offset=$offset,size=$length,file.driver=qcow2,file.file.filename=$overlay" "$part"
qemu-img convert -O raw --image-opts "driver=raw,offset=$offset,size=$length,file.driver=qcow2,file.file.filename=$overlay" "$part"
step ntfsfix "$part"
rc=0
out="$(ntfsfix "$part" 2>&1)" || rc=$?
sed 's/^/  /' <<<"$out"

echo
echo "demo: ntfsfix predicted by qfault: exit $exit_code ($result), \"$message\""
echo "demo: ntfsfix real:                exit $rc"
if [ "$rc" -eq "$exit_code" ] && grep -qF "$message" <<<"$out"; then
    echo "demo: the prediction held"
else
    echo "demo: the prediction did NOT hold" >&2
    exit 1
fi
