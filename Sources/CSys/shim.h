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
static inline int csys_open_tmpfile(const char *dir, int flags, int mode) { return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC | flags, mode); }
static inline int csys_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}
#endif
