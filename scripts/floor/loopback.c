/* scripts/floor/loopback.c — the kernel's share of receiving objects over loopback TCP: N
 * request/response exchanges on one connection (a 300-byte request, SIZE bytes back), the client
 * reading each response into a 512 KiB buffer and discarding it. Prints the client's CPU seconds
 * (the server is a forked process, not counted). No HTTP parsing, no signing, no files. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floor.h"

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: loopback N SIZE\n"); return 2; }
    long n = atol(argv[1]);
    size_t size = (size_t)atol(argv[2]), bufsize = 512 * 1024;
    char req[300];
    memset(req, 'r', sizeof req);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) { perror("listen"); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(ls, NULL, NULL);
        char *out = malloc(bufsize);
        if (c < 0 || !out) _exit(1);
        memset(out, 'y', bufsize);
        for (long i = 0; i < n; i++) {
            for (size_t got = 0; got < sizeof req;) {
                ssize_t r = read(c, req + got, sizeof req - got);
                if (r <= 0) _exit(1);
                got += (size_t)r;
            }
            for (size_t off = 0; off < size;) {
                ssize_t w = write(c, out, size - off < bufsize ? size - off : bufsize);
                if (w <= 0) _exit(1);
                off += (size_t)w;
            }
        }
        _exit(0);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char *in = malloc(bufsize);
    if (s < 0 || !in || connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double c0 = cpu();
    for (long i = 0; i < n; i++) {
        if (write(s, req, sizeof req) != (ssize_t)sizeof req) { perror("write"); return 1; }
        for (size_t got = 0; got < size;) {
            ssize_t r = read(s, in, bufsize);
            if (r <= 0) { perror("read"); return 1; }
            got += (size_t)r;
        }
    }
    printf("%.3f\n", cpu() - c0);
    int st = 0;
    waitpid(pid, &st, 0);
    return 0;
}
