/* scripts/floor/files.c — the kernel's share of landing objects as files: creates N files of SIZE
 * bytes in DIR from a buffer in memory (open O_CREAT, one write, close), as any download client
 * must, and prints this process's CPU seconds. No network, no HTTP: a floor, not a client. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floor.h"

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: files DIR N SIZE\n"); return 2; }
    long n = atol(argv[2]);
    size_t size = (size_t)atol(argv[3]), chunk = size < (1 << 20) ? size : (1 << 20);
    char *buf = malloc(chunk), path[4096];
    if (!buf) return 1;
    memset(buf, 'x', chunk);
    double c0 = cpu();
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", argv[1], i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) { perror(path); return 1; }
        for (size_t off = 0; off < size;) {
            ssize_t w = write(fd, buf, size - off < chunk ? size - off : chunk);
            if (w <= 0) { perror("write"); return 1; }
            off += (size_t)w;
        }
        close(fd);
    }
    printf("%.3f\n", cpu() - c0);
    return 0;
}
