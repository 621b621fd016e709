#!/usr/bin/env python3
"""qfault against real images nobody here made (`make corpus`, issue 19).

Fetches pinned images (sha256-checked) into a cache outside the work tree
(`$QFAULT_CORPUS_CACHE`, default `${XDG_CACHE_HOME:-~/.cache}/qfault-corpus`):

- the blkid test images of Debian's util-linux source package
  (`tests/ts/blkid/images-{fs,pt}/*.img.xz`),
- the e2fsck test images of Debian's e2fsprogs source package
  (`tests/*/image.gz`),
- the test data of a forensic library's PyPI sdist (pytsk3: `test_data/*.raw`),
- the images in `$QFAULT_EXTERNAL_IMAGES` (default `../shared/external-images`
  beside the repository), each folder's SOURCE naming the GitHub commit it
  came from; a missing folder is fetched from there,
- derived samples (a GPT disk cut short).

For every image it compares `qfault info --json` and `qfault export` with
`qemu-img info` / `qemu-img convert -O raw` (byte equality), `qfault inspect
--json` with `blkid -p` (whole disk and each partition by offset: TYPE, LABEL,
UUID, PTTYPE, ambivalent results) and `sfdisk -J` (table, partitions, types,
PARTUUIDs), and on every NTFS volume runs `qfault inject ntfs-boot` and the
predicted commands (blkid, ntfs-3g, mount, ntfsfix, ntfsresize) on the
partition taken out of the overlay with `qemu-img convert`, comparing exit
codes, results and messages with the JSON report.

Prints an agreement table (image x check: agree / differ / known / n-a) and
exits 1 on any disagreement not listed in corpus/known-differences.txt.
Python 3 standard library only; the tools are the real ones.
"""

import argparse
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKS = ["info", "export", "blkid", "sfdisk", "ntfs-boot"]
CHUNK = 1 << 20

# Pinned sources: (name, url, sha256). Debian bookworm's versions of the
# packages the tests verify against (util-linux 2.38.1, e2fsprogs 1.47.0).
DEBIAN = "http://deb.debian.org/debian/pool/main"
ARCHIVES = {
    "util-linux": (
        f"{DEBIAN}/u/util-linux/util-linux_2.38.1.orig.tar.xz",
        "60492a19b44e6cf9a3ddff68325b333b8b52b6c59ce3ebd6a0ecaa4c5117e84f",
    ),
    "e2fsprogs": (
        f"{DEBIAN}/e/e2fsprogs/e2fsprogs_1.47.0.orig.tar.gz",
        "6667afde56eef0c6af26684974400e4d2288ea49e9441bf5e6229195d51a3578",
    ),
    # pytsk3's sdist ships its test_data images (the same file pip
    # download --no-binary :all: --no-deps pytsk3==20260715 fetches).
    "pytsk3": (
        "https://files.pythonhosted.org/packages/74/c2/"
        "3e8a2f00ffbe7024c5fd706694f85f8cc2eaaade9de2d8f220b13cb5971e/pytsk3-20260715.tar.gz",
        "50825f97cb5b9bdf3119466104d78e9bef512dd0a0ce1615aea700ad2f457b8e",
    ),
}

# Members of each archive that are images: regex -> image name template.
MEMBERS = {
    "util-linux": (r"^[^/]+/tests/ts/blkid/images-(fs|pt)/([^/]+)\.img\.xz$", "util-linux/{0}/{1}"),
    "e2fsprogs": (r"^[^/]+/tests/([^/]+)/image\.gz$", "e2fsprogs/{0}"),
    "pytsk3": (r"^[^/]+/test_data/([^/]+\.raw)$", "pytsk3/{0}"),
}

# The external images: folder -> (GitHub repo@commit, path prefix, {file: sha256}).
EXTERNAL = {
    "dftt": (
        "sleuthkit/sleuthkit_test_data", "abcb05bd7f01313115d213dcd83826989fe93535", "from_brian/",
        {
            "1-extend-part.zip": "771cc763798ed23d85f6362de4adff503bf83c33c56c5ac8dea689a3996c8ce3",
            "10b-ntfs-autodetect.zip": "dfdad02b3d7e2e51e75ce42e612814816b1b47e184e5983f18e8856412bf650b",
            "7-undel-ntfs.zip": "be2a85eb4e4e210d0c974254483d5ecacd4ea23f1e19f2110249ba306f72b5b7",
        },
    ),
    "dfvfs": (
        "log2timeline/dfvfs", "ceb7ef3a02ec285433d185b57a8497e2ab9ca464", "test_data/",
        {
            "ext2.vmdk": "578b5f75af790030113a92c4227c6e53dad53a17e65cb491781dc75b3cef31f8",
            "windows_volume.qcow2": "73d374551074dec6c25efeee6c062be05fd90a0faad586ba541c61817c77a6dd",
        },
    ),
    "msuhanov-ntfs-samples": (
        "msuhanov/ntfs-samples", "b9b3d64cbd90884c4dc6ac909c758f233d7b60e0", "",
        {
            "ntfs-2m.raw.gz": "42589753c10c754de3f69375145296846850d173ae7c364567626897783ad65c",
            "ntfs-lastaccess.raw.gz": "e5173daef791e8dd0a6ad8d873e90384bc8b0ff48adbec4b6c377e32ec663179",
            "ntfs.tgz": "06d69d832f911bd3e09b8331d8d48e1d44a0ad82fdf034addf7d14811ed57db0",
        },
    ),
    "sleuthkit": (
        "sleuthkit/sleuthkit", "eb9fac87bf9c2fcae9ae3e8623c9dca6fc260121", "test/data/",
        {"imageformat_mmls_1.E01": "5125bbc40154a6acdf96b7aded0fc28686e9c0882afb5b95ddf2dc8345ccf44e"},
    ),
    "util-linux-upstream": (
        "util-linux/util-linux", "39465c780eed56034ed1440068a2722fc3331343", "tests/ts/blkid/images-fs/",
        {
            "bitlocker-win7.img.xz": "8b66e375a5a5d03f138d390e313c2a8bb583da6f445ac510292570fe588daa4a",
            "swap-luks.img.xz": "45d720f707bdc4cb179a32e50f2a5980e7a4897c850bc0d4f8e159971b9b4e5d",
            "udf-hdd-win7.img.xz": "498253565ab4174a66a025bb932281c6b67c1a4f48f3900ecdb111f568f5dc89",
            "udf-multi-0-417-834-genisoimage.img.xz": "d8c475c000b932d13756e885a1865123d5418fbbb7464ef16a1dc5b5d3ce82fb",
        },
    ),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(CHUNK), b""):
            h.update(b)
    return h.hexdigest()


def download(url, dest, digest):
    """Fetches url into dest once; the sha256 must match."""
    if dest.exists() and sha256(dest) == digest:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"corpus: fetching {url}")
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f, CHUNK)
    got = sha256(tmp)
    if got != digest:
        tmp.unlink()
        raise SystemExit(f"corpus: {url}: sha256 {got}, expected {digest}")
    tmp.rename(dest)
    return dest


def write_sparse(src, dest):
    """Copies a stream into dest, leaving holes for all-zero blocks."""
    tmp = dest.with_name(dest.name + ".part")
    with open(tmp, "wb") as out:
        size = 0
        for b in iter(lambda: src.read(CHUNK), b""):
            if b.count(0) == len(b):
                out.seek(len(b), os.SEEK_CUR)
            else:
                out.write(b)
            size += len(b)
        out.truncate(size)
    tmp.rename(dest)


def unpack_stream(name, src, dest):
    """Writes src (file object) to dest, decompressing by name."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".xz"):
        src = lzma.open(src)
    elif name.endswith(".gz"):
        src = gzip.open(src)
    write_sparse(src, dest)


def from_archive(cache, key):
    url, digest = ARCHIVES[key]
    archive = download(url, cache / "downloads" / url.rsplit("/", 1)[1], digest)
    pattern, template = MEMBERS[key]
    done = cache / "images" / (key + ".done")
    out = []
    if done.exists():
        return [(n, cache / "images" / n) for n in done.read_text().split()]
    with tarfile.open(archive) as tar:
        for m in tar:
            g = re.match(pattern, m.name)
            if not g or not m.isfile():
                continue
            name = template.format(*g.groups())
            unpack_stream(m.name, tar.extractfile(m), cache / "images" / name)
            out.append((name, cache / "images" / name))
    out.sort()
    done.write_text("\n".join(n for n, _ in out) + "\n")
    return out


def external_root():
    env = os.environ.get("QFAULT_EXTERNAL_IMAGES")
    return Path(env) if env else (REPO / ".." / "shared" / "external-images").resolve()


def from_external(cache):
    root = external_root()
    out = []
    for folder, (repo, commit, prefix, files) in EXTERNAL.items():
        for fname, digest in files.items():
            src = root / folder / fname
            if not src.exists():
                url = f"https://raw.githubusercontent.com/{repo}/{commit}/{prefix}{fname}"
                try:
                    src = download(url, cache / "downloads" / folder / fname, digest)
                except (OSError, SystemExit) as e:
                    log(f"corpus: {folder}/{fname}: not in {root} and not fetched ({e})")
                    continue
            elif sha256(src) != digest:
                raise SystemExit(f"corpus: {src}: sha256 differs from the pinned {digest}")
            dest = cache / "images" / "external" / folder
            if fname.endswith(".zip"):
                with zipfile.ZipFile(src) as z:
                    for m in z.namelist():
                        if m.endswith(".dd"):
                            d = dest / Path(m).name
                            unpack_stream(m, z.open(m), d)
                            out.append((f"external/{folder}/{Path(m).name}", d))
            elif fname.endswith(".tgz"):
                with tarfile.open(src) as tar:
                    for m in tar:
                        if m.isfile() and m.name.endswith(".raw"):
                            d = dest / Path(m.name).name
                            if not d.exists():
                                dest.mkdir(parents=True, exist_ok=True)
                                m.name = d.name
                                tar.extract(m, dest)
                            out.append((f"external/{folder}/{d.name}", d))
            elif fname.endswith((".gz", ".xz")):
                d = dest / fname[:-3]
                with open(src, "rb") as f:
                    unpack_stream(fname, f, d)
                out.append((f"external/{folder}/{d.name}", d))
            else:
                out.append((f"external/{folder}/{fname}", src))
    return out


def derived(cache, images):
    """Samples cut from real ones: util-linux's gpt.img cut to 3 MiB (a GPT
    disk image cut short: backup header and the end of the table's range gone)."""
    by_name = dict(images)
    src = by_name.get("util-linux/pt/gpt")
    if src is None:
        return []
    d = cache / "images" / "derived" / "gpt-cut-3MiB"
    if not d.exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as f:
            data = f.read(3 << 20)
        d.write_bytes(data)
    return [("derived/gpt-cut-3MiB", d)]


# ---------------------------------------------------------------------------
# Running tools


def run(args, timeout=600, **kw):
    """Runs a command; returns (exit code, stdout, stderr)."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout, **kw)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return -1, "", f"timeout after {timeout}s"


def tool(name):
    for d in os.environ.get("PATH", "").split(":") + ["/sbin", "/usr/sbin"]:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    raise SystemExit(f"corpus: {name} not found (make deps)")


def blkid_export(path, offset=None, size=None):
    """`blkid -p -o export`: (exit code, {KEY: value})."""
    args = [tool("blkid"), "-p", "-o", "export"]
    if offset is not None:
        args += ["--offset", str(offset), "--size", str(size)]
    rc, out, _ = run(args + [str(path)])
    kv = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        kv[k] = unmangle(v)
    return rc, kv


def unmangle(v):
    """Undoes blkid's export encoding: `\\c` for shell specials, and
    `cat -v` style `M-c` (byte | 0x80) and `^c` (control) for other bytes;
    the bytes are then read as UTF-8, invalid ones as U+FFFD (as qfault
    prints labels that are not UTF-8)."""
    out = bytearray()
    i = 0
    while i < len(v):
        meta = 0
        if v.startswith("M-", i) and i + 2 < len(v):
            meta, i = 0x80, i + 2
        if v[i] == "\\" and i + 1 < len(v):
            c, i = ord(v[i + 1]), i + 2
        elif v[i] == "^" and i + 1 < len(v) and (meta or v[i + 1] in "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_?"):
            c, i = ord(v[i + 1]) ^ 0x40, i + 2
        else:
            c, i = ord(v[i]), i + 1
        out += (c | meta).to_bytes(1, "little") if c < 0x80 or meta == 0 and c < 0x100 else chr(c).encode()
    return out.decode("utf-8", "replace")


def copy_range(src, offset, length, dest):
    """Copies bytes [offset, offset+length) of src into dest, sparsely."""
    with open(src, "rb") as f, open(dest, "wb") as out:
        fd = f.fileno()
        pos = offset
        end = offset + length
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            f.seek(data)
            out.seek(data - offset)
            left = hole - data
            while left:
                b = f.read(min(CHUNK, left))
                if not b:
                    break
                out.write(b)
                left -= len(b)
            pos = hole
        out.truncate(length)


# ---------------------------------------------------------------------------
# The checks: each returns ("agree" | "n-a", detail) or ("differ", detail)


class Image:
    def __init__(self, name, path, work, qfault):
        self.name, self.path, self.work, self.qfault = name, path, work, qfault
        self.raw = None  # the guest disk as raw (qemu-img's view)
        self.inspect = None

    def qf(self, *args, timeout=600):
        return run([self.qfault, *map(str, args)], timeout=timeout)


def check_info(img):
    qrc, qout, qerr = run(["qemu-img", "info", "--output=json", str(img.path)])
    frc, fout, ferr = img.qf("info", "--json", img.path)
    if qrc != 0 and frc != 0:
        return "agree", "both refuse the file"
    if qrc != 0 or frc != 0:
        return "differ", f"qemu-img info exit {qrc}, qfault info exit {frc}: {(qerr or ferr).strip()[:200]}"
    q = json.loads(qout)
    top = json.loads(fout)["chain"][0]
    diffs = []
    if q["format"] != top["format"]:
        diffs.append(f"format {top['format']} (qemu-img: {q['format']})")
    if q["virtual-size"] != top["virtual_size"]:
        diffs.append(f"virtual size {top['virtual_size']} (qemu-img: {q['virtual-size']})")
    return ("differ", "; ".join(diffs)) if diffs else ("agree", "")


def check_export(img):
    rc, out, err = run(["qemu-img", "info", "--output=json", str(img.path)])
    if rc != 0:
        return "n-a", "qemu-img cannot open it"
    # blkid and sfdisk read a raw file as it is, anything else as QEMU
    # flattens it; the export is always compared with qemu-img convert
    # (which, like qfault, rounds a raw file up to whole 512-byte sectors).
    is_raw = json.loads(out)["format"] == "raw"
    theirs = img.work / "qemu.raw"
    rc, _, err = run(["qemu-img", "convert", "-O", "raw", str(img.path), str(theirs)])
    if rc != 0:
        return "n-a", f"qemu-img convert failed: {err.strip()[:200]}"
    img.raw = img.path if is_raw else theirs
    mine = img.work / "qfault.raw"
    rc, _, err = img.qf("export", img.path, "-o", mine, "--overwrite")
    if rc != 0:
        return "differ", f"qfault export exit {rc}: {err.strip()[:200]}"
    try:
        a, b = os.path.getsize(mine), os.path.getsize(theirs)
        if a != b:
            return "differ", f"qfault export is {a} bytes, qemu-img convert {b}"
        rc, out, err = run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(mine), str(theirs)])
        if rc != 0:
            return "differ", (out + err).strip()[:200]
        return "agree", ""
    finally:
        mine.unlink(missing_ok=True)
        if is_raw:
            theirs.unlink(missing_ok=True)


def load_inspect(img):
    rc, out, err = img.qf("inspect", "--json", img.path)
    if rc != 0:
        img.inspect = {"error": f"exit {rc}: {err.strip()[:300]}"}
    else:
        img.inspect = json.loads(out)


def pmbr_fallback(ins):
    return any("no valid GPT header" in w for w in ins.get("warnings", []))


def fs_view(part):
    """qfault's partition as blkid keys."""
    if part is None:
        return {"TYPE": None, "LABEL": None, "UUID": None, "ambivalent": False}
    return {
        "TYPE": part["filesystem"],
        "LABEL": part["label"],
        "UUID": part["uuid"],
        "ambivalent": bool(part.get("ambivalent")),
    }


def blkid_view(rc, kv):
    return {
        "TYPE": kv.get("TYPE"),
        "LABEL": kv.get("LABEL"),
        "UUID": kv.get("UUID"),
        "ambivalent": rc == 8,
    }


def compare_fs(where, mine, theirs, diffs):
    for k in ["TYPE", "LABEL", "UUID", "ambivalent"]:
        if mine[k] != theirs[k]:
            diffs.append(f"{where} {k}: qfault {mine[k]!r}, blkid {theirs[k]!r}")


def check_blkid(img):
    if img.raw is None:
        return "n-a", "no raw view (qemu-img cannot read it)"
    ins = img.inspect
    if "error" in ins:
        return "differ", f"qfault inspect {ins['error']}"
    diffs = []
    rc, kv = blkid_export(img.raw)
    table = {"dos": "dos", "gpt": "gpt", "none": None}[ins["table"]]
    if table == "dos" and pmbr_fallback(ins):
        table = "PMBR"
    if kv.get("PTTYPE") != table:
        diffs.append(f"PTTYPE: qfault {table!r}, blkid {kv.get('PTTYPE')!r}")
    parts = {p["number"]: p for p in ins["partitions"]}
    compare_fs("disk", fs_view(parts.get(0)), blkid_view(rc, kv), diffs)
    size = os.path.getsize(img.raw)
    for n, p in sorted(parts.items()):
        if n == 0 or p["role"] == "extended" or p["offset"] + p["length"] > size or p["length"] == 0:
            continue
        rc, kv = blkid_export(img.raw, p["offset"], p["length"])
        compare_fs(f"p{n}", fs_view(p), blkid_view(rc, kv), diffs)
    return ("differ", "; ".join(diffs)) if diffs else ("agree", "")


def check_sfdisk(img):
    if img.raw is None:
        return "n-a", "no raw view (qemu-img cannot read it)"
    ins = img.inspect
    if "error" in ins:
        return "differ", f"qfault inspect {ins['error']}"
    rc, out, err = run([tool("sfdisk"), "-J", str(img.raw)])
    label = None
    theirs = {}
    if rc == 0 and out.strip():
        t = json.loads(out)["partitiontable"]
        label = t["label"]
        ss = t.get("sectorsize", 512)
        # sfdisk -J prints no PARTUUID for a dos table: blkid's is the disk
        # identifier and the partition number (51a7fa17-02), none when the
        # identifier is 0.
        dos_id = int(t["id"], 16) if label == "dos" and t.get("id") else 0
        for p in t.get("partitions", []):
            n = int(re.search(r"(\d+)$", p["node"]).group(1))
            ptype = p["type"]
            uuid = p.get("uuid")
            if label == "dos" and dos_id:
                uuid = f"{dos_id:08x}-{n:02d}"
            theirs[n] = (p["start"] * ss, p["size"] * ss, ptype.upper() if "-" in ptype else int(ptype, 16), uuid)
    mine = {}
    if ins["table"] in ("dos", "gpt"):
        for p in ins["partitions"]:
            if p["number"] == 0:
                continue
            t = p["type"]
            t = int(t, 16) if t.startswith("0x") else t.upper()
            mine[p["number"]] = (p["offset"], p["length"], t, p["partuuid"])
    table = ins["table"] if ins["table"] != "none" else None
    diffs = []
    if table != label:
        diffs.append(f"table: qfault {table!r}, sfdisk {label!r}")
    elif mine != theirs:
        for n in sorted(set(mine) | set(theirs)):
            if mine.get(n) != theirs.get(n):
                diffs.append(f"p{n}: qfault {mine.get(n)}, sfdisk {theirs.get(n)}")
    return ("differ", "; ".join(diffs[:6])) if diffs else ("agree", "")


def run_outcomes(outcomes, part, mnt):
    """Runs the predicted commands in order on `part`; returns differences."""
    diffs = []
    for o in outcomes:
        cmd = o["command"]
        if "(PART: losetup -r)" in cmd:
            diffs.append(f"{cmd}: needs a loop device, not run")
            continue
        argv = [str(part) if a == "PART" else str(mnt) if a == "MNT" else a for a in cmd.split()]
        rc, out, err = run([tool(argv[0])] + argv[1:], timeout=600)
        text = out + err
        mounted = "MNT" in cmd.split() and rc == 0
        if mounted:
            run(["umount", str(mnt)])
        got = []
        if rc != o["exit_code"]:
            got.append(f"exit {rc} (predicted {o['exit_code']})")
        if o.get("message") and o["message"] not in text:
            got.append(f"no {o['message']!r} in its output")
        if o["role"] == "identify":
            _, kv = blkid_export(part)
            if kv.get("TYPE") != o["result"]:
                got.append(f"TYPE {kv.get('TYPE')!r} (predicted {o['result']!r})")
        if got:
            first = text.strip().splitlines()[:1]
            diffs.append(f"{o['role']} `{cmd}`: " + ", ".join(got) + (f" [{first[0][:120]}]" if first else ""))
    return diffs


def check_ntfs_boot(img):
    ins = img.inspect
    if "error" in ins:
        return "n-a", "inspect failed"
    targets = [
        p for p in ins["partitions"]
        if p["filesystem"] == "ntfs" or "ntfs" in (p.get("ambivalent") or [])
    ]
    if not targets:
        return "n-a", ""
    diffs, notes = [], []
    for p in targets:
        n = p["number"]
        ov = img.work / f"ntfs-boot-{n}.qcow2"
        args = ["inject", "ntfs-boot", img.path, "-o", ov, "--overwrite", "--partition", n, "--json"]
        if p.get("ambivalent"):
            rc, _, err = img.qf(*args)
            if rc != 3 or "ambivalent" not in err:
                diffs.append(f"p{n}: ambivalent partition not refused without --fs (exit {rc})")
            args += ["--fs", "ntfs"]
        rc, out, err = img.qf(*args)
        if rc == 3:
            notes.append(f"p{n}: qfault refuses ({err.strip()[:160]}); checked with --allow-unrepairable")
            rc, out, err = img.qf(*args, "--allow-unrepairable")
        if rc != 0:
            diffs.append(f"p{n}: qfault inject exit {rc}: {err.strip()[:200]}")
            continue
        target = json.loads(out)["output"]["targets"][0]
        disk = img.work / "ntfs-boot.raw"
        part = img.work / "part.raw"
        mnt = Path(tempfile.mkdtemp(prefix="qfault-corpus-mnt-"))
        try:
            rc, _, err = run(["qemu-img", "convert", "-O", "raw", str(ov), str(disk)])
            if rc != 0:
                diffs.append(f"p{n}: qemu-img convert of the overlay failed: {err.strip()[:160]}")
                continue
            copy_range(disk, p["offset"], p["length"], part)
            disk.unlink()
            for d in run_outcomes(target["prediction"]["outcomes"], part, mnt):
                diffs.append(f"p{n}: {d}")
        finally:
            run(["umount", str(mnt)])
            mnt.rmdir()
            for f in (disk, part, ov):
                f.unlink(missing_ok=True)
    if diffs:
        return "differ", "; ".join(diffs)
    return "agree", "; ".join(notes)


# ---------------------------------------------------------------------------


def load_known(path):
    known = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in CHECKS:
            raise SystemExit(f"{path}:{i}: want IMAGE-GLOB CHECK REASON, CHECK one of {CHECKS}")
        known.append([parts[0], parts[1], parts[2], 0])
    return known


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qfault", default=str(REPO / "target" / "debug" / "qfault"))
    ap.add_argument("--known", default=str(REPO / "corpus" / "known-differences.txt"))
    ap.add_argument("--only", help="glob: check only the images whose names match")
    ap.add_argument("--fetch-only", action="store_true", help="fetch and unpack, compare nothing")
    args = ap.parse_args()
    os.environ["PATH"] += ":/sbin:/usr/sbin"
    cache = Path(os.environ.get("QFAULT_CORPUS_CACHE") or
                 Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qfault-corpus")
    images = []
    for key in ARCHIVES:
        images += from_archive(cache, key)
    images += from_external(cache)
    images += derived(cache, images)
    if args.only:
        images = [i for i in images if fnmatch.fnmatch(i[0], args.only)]
    log(f"corpus: {len(images)} images in {cache}")
    if args.fetch_only:
        return 0
    known = load_known(Path(args.known))
    qfault = str(Path(args.qfault).resolve())
    rows = []
    failures = []
    for name, path in images:
        work = cache / "work" / re.sub(r"[^A-Za-z0-9._-]", "_", name)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        img = Image(name, path, work, qfault)
        load_inspect(img)
        cells = {}
        for check, fn in zip(CHECKS, [check_info, check_export, check_blkid, check_sfdisk, check_ntfs_boot]):
            try:
                verdict, detail = fn(img)
            except Exception as e:  # a crash in the driver is a disagreement too
                verdict, detail = "differ", f"corpus.py: {type(e).__name__}: {e}"
            if verdict == "differ":
                k = next((k for k in known if fnmatch.fnmatch(name, k[0]) and k[1] == check), None)
                if k:
                    k[3] += 1
                    verdict = "known"
                    detail = f"{detail} (known: {k[2]})"
                else:
                    failures.append((name, check, detail))
            cells[check] = (verdict, detail)
        shutil.rmtree(work)
        rows.append((name, cells))
        log(f"corpus: {name}: " + " ".join(f"{c}={cells[c][0]}" for c in CHECKS))
    width = max(len(n) for n, _ in rows) if rows else 10
    print(f"{'image':<{width}}  " + "  ".join(f"{c:<9}" for c in CHECKS))
    for name, cells in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{cells[c][0]:<9}" for c in CHECKS))
    totals = {v: sum(1 for _, c in rows for x in CHECKS if c[x][0] == v) for v in ["agree", "differ", "known", "n-a"]}
    print(f"\n{len(rows)} images: " + ", ".join(f"{n} {v}" for v, n in totals.items()))
    details = [(n, c, cells[c][1]) for n, cells in rows for c in CHECKS if cells[c][0] == "known"]
    if details:
        print("\nknown differences:")
        for n, c, d in details:
            print(f"  {n} {c}: {d}")
    stale = [k for k in known if k[3] == 0 and not args.only]
    if stale:
        print("\nknown-differences lines that matched nothing (remove them):")
        for k in stale:
            print(f"  {k[0]} {k[1]} {k[2]}")
    if failures:
        print("\nDISAGREEMENTS not in the known-differences file:")
        for n, c, d in failures:
            print(f"  {n} {c}: {d}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
