#ifndef CSYS_SHIM_H
#define CSYS_SHIM_H
/* Linux calls Swift's Glibc module does not expose (GNU extensions and headers outside it). */
#include <sys/prctl.h>
#include <sys/xattr.h>
#include <sys/types.h>

int pipe2(int pipefd[2], int flags);

/* Deliver `sig` to this process when its parent dies. */
static inline int csys_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }
static inline int csys_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
static inline ssize_t csys_getxattr(const char *path, const char *name, void *value, size_t size) {
    return getxattr(path, name, value, size);
}
static inline ssize_t csys_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return fgetxattr(fd, name, value, size);
}
/* An unnamed regular file in directory `dir` (O_TMPFILE): it vanishes if never linked. */
#include <fcntl.h>
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | 0200000)
#endif
#ifndef O_DIRECT
#if defined(__aarch64__) || defined(__arm__)
#define O_DIRECT 0200000
#else
#define O_DIRECT 040000
#endif
#endif
static inline int csys_o_direct(void) { return O_DIRECT; }
static inline int csys_open_tmpfile(int dirfd, int flags, int mode) { return openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC | flags, mode); }
/* Give the open file `fd` (an O_TMPFILE) the name `path` without going through /proc
   (AT_EMPTY_PATH; needs CAP_DAC_READ_SEARCH, else ENOENT). */
#include <unistd.h>
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
static inline int csys_link_fd(int fd, int dirfd, const char *name) { return linkat(fd, "", dirfd, name, AT_EMPTY_PATH); }
/* openat2(2) (Linux 5.6): open `path` relative to `dirfd` with `resolve` flags (RESOLVE_BENEATH:
   never above `dirfd`, absolute symlinks refused). -1 with errno ENOSYS on older kernels. */
#include <sys/syscall.h>
#include <errno.h>
#include <stdint.h>
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define CSYS_RESOLVE_NO_XDEV 0x01
#define CSYS_RESOLVE_NO_MAGICLINKS 0x02
#define CSYS_RESOLVE_NO_SYMLINKS 0x04
#define CSYS_RESOLVE_BENEATH 0x08
struct csys_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
static inline int csys_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve) {
    struct csys_open_how how = { (uint64_t)(unsigned)flags, (uint64_t)(unsigned)mode, resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
#ifndef O_PATH
#define O_PATH 010000000
#endif
static inline int csys_o_path(void) { return O_PATH; }
static inline int csys_o_tmpfile(void) { return O_TMPFILE; }
/* Allocate [offset, offset+len) without writing it (mode 0: may extend the file). */
int fallocate(int fd, int mode, off_t offset, off_t len);
static inline int csys_fallocate(int fd, off_t offset, off_t len) { return fallocate(fd, 0, offset, len); }
static inline int csys_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}

/* Keep freed heap memory up to `trim` bytes instead of returning it to the kernel, and serve
   allocations below `mmap_min` from the heap (0 on success). glibc only; elsewhere a no-op. */
#if defined(__GLIBC__)
#include <malloc.h>
static inline int csys_malloc_retain(int trim, int mmap_min) {
    return (mallopt(M_TRIM_THRESHOLD, trim) && mallopt(M_MMAP_THRESHOLD, mmap_min)) ? 0 : -1;
}
#else
static inline int csys_malloc_retain(int trim, int mmap_min) { (void)trim; (void)mmap_min; return 0; }
#endif

/* CRC32C (Castagnoli), the per-block checksum of the cache. Hardware instructions where the CPU
   has them (SSE4.2 on x86-64, the CRC extension on arm64), else a bitwise loop. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
static inline uint32_t csys_crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}
#if defined(__x86_64__)
#include "crc32c_shift.h"
/* One CRC32 instruction depends on the last (3 cycles), so one stream runs at a third of the
   instruction's throughput: runs of 3 x 512 bytes are three streams side by side, joined by
   shifting the first two past the bytes that follow them (9.7 against 21 GB/s, 16 KiB calls). */
__attribute__((target("sse4.2"))) static inline uint32_t csys_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    const size_t L = CSYS_CRC32C_STRIDE;
    uint64_t c = (uint32_t)~crc;
    while (n >= 3 * L) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < L; i += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p + i, 8); memcpy(&v1, p + L + i, 8); memcpy(&v2, p + 2 * L + i, 8);
            c = __builtin_ia32_crc32di(c, v0);
            c1 = __builtin_ia32_crc32di(c1, v1);
            c2 = __builtin_ia32_crc32di(c2, v2);
        }
        c = csys_crc32c_shift(csys_crc32c_shift((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * L; n -= 3 * L;
    }
    while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = __builtin_ia32_crc32di(c, v); p += 8; n -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
static inline int csys_crc32c_has_hw(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
static inline uint32_t csys_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
    while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = __builtin_arm_crc32cd(c, v); p += 8; n -= 8; }
    while (n--) c = __builtin_arm_crc32cb(c, *p++);
    return ~c;
}
static inline int csys_crc32c_has_hw(void) { return 1; }
#else
static inline uint32_t csys_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) { return csys_crc32c_sw(crc, p, n); }
static inline int csys_crc32c_has_hw(void) { return 0; }
#endif
/* Continues `crc` (0 to start) over n bytes. */
static inline uint32_t csys_crc32c(uint32_t crc, const void *buf, size_t n, int hw) {
    return hw ? csys_crc32c_hw(crc, (const uint8_t *)buf, n) : csys_crc32c_sw(crc, (const uint8_t *)buf, n);
}

#include "md5lanes.h"

/* Whole-filesystem flush of the filesystem holding fd (one call for many files). */
int syncfs(int fd);
static inline int csys_syncfs(int fd) { return syncfs(fd); }
/* Lowers the calling thread's CPU priority to nice 19 (on Linux nice is per thread). */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline int csys_lower_thread_priority(void) { return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19); }
#endif
