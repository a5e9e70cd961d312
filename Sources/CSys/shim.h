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
static inline int csys_fremovexattr(int fd, const char *name) { return fremovexattr(fd, name); }

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

/* Whole-filesystem flush of the filesystem holding fd (one call for many files). */
int syncfs(int fd);
static inline int csys_syncfs(int fd) { return syncfs(fd); }
/* Lowers the calling thread's CPU priority to nice 19 (on Linux nice is per thread). */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline int csys_lower_thread_priority(void) { return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19); }
#endif
