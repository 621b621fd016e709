/* The floor of the main job (issue 16, goal 1): only what any tool must do
 * to write the flagship overlay, and nothing else.
 *
 *   floor DISK.raw OUT
 *
 * Reads the MBR (1 pread), partition 2's NTFS boot sector (1 pread) and its
 * backup at the volume's last sector, found from the boot sector's total
 * sector count (1 pread); then writes a qcow2-sized file of 5 clusters of
 * 64 KiB (the size the issue names for the overlay) to OUT.tmp beside OUT,
 * in one pwrite, fsyncs it, renames it to OUT and fsyncs the directory. No parsing beyond
 * the two fields needed, no qcow2 encoding, no verification: a lower bound,
 * not a tool. Built by `make bench` (cc -O2) into the bench cache. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR 512
#define CLUSTER (64 * 1024)
#define CLUSTERS 5

static void die(const char *what) {
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void read_at(int fd, unsigned char *buf, uint64_t off) {
    if (pread(fd, buf, SECTOR, (off_t)off) != SECTOR) die("pread");
}

int main(int argc, char **argv) {
    static unsigned char mbr[SECTOR], boot[SECTOR], backup[SECTOR];
    static unsigned char out[CLUSTERS * CLUSTER];
    if (argc != 3) {
        fprintf(stderr, "usage: floor DISK OUT\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(argv[1]);
    read_at(fd, mbr, 0);
    if (mbr[510] != 0x55 || mbr[511] != 0xaa) {
        fprintf(stderr, "floor: no MBR\n");
        return 1;
    }
    const unsigned char *entry = mbr + 446 + 16; /* partition 2 */
    uint64_t start = le(entry + 8, 4) * SECTOR;
    read_at(fd, boot, start);
    if (memcmp(boot + 3, "NTFS    ", 8) != 0) {
        fprintf(stderr, "floor: partition 2 is not NTFS\n");
        return 1;
    }
    uint64_t total = le(boot + 0x28, 8);
    read_at(fd, backup, start + total * SECTOR);
    if (memcmp(backup, boot, SECTOR) != 0) {
        fprintf(stderr, "floor: backup boot sector differs\n");
        return 1;
    }
    close(fd);

    /* Something of the right size: a header-like first cluster, the rest zero. */
    memcpy(out, "QFI\xfb", 4);
    memcpy(out + 4 * CLUSTER, mbr, SECTOR);

    size_t n = strlen(argv[2]);
    char *tmp = malloc(n + 5);
    if (!tmp) die("malloc");
    memcpy(tmp, argv[2], n);
    memcpy(tmp + n, ".tmp", 5);
    int o = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o < 0) die(tmp);
    if (pwrite(o, out, sizeof out, 0) != (ssize_t)sizeof out) die("pwrite");
    if (fsync(o) != 0) die("fsync");
    if (close(o) != 0) die("close");
    if (rename(tmp, argv[2]) != 0) die("rename");
    char *dir = dirname(strdup(argv[2]));
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) die(dir);
    if (fsync(d) != 0) die("fsync dir");
    close(d);
    return 0;
}
