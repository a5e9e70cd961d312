#ifndef CFUSE_SHIM_H
#define CFUSE_SHIM_H
#define FUSE_USE_VERSION 312 /* 3.12: fuse_session_loop_mt takes the fuse_loop_cfg_* config (35 took the older struct) */
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>

/* fuse_session_loop_mt is a versioned macro Swift cannot call. */
static inline int cfuse_session_loop_mt(struct fuse_session *se, unsigned int max_threads) {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg) return -1;
    fuse_loop_cfg_set_max_threads(cfg, max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, max_threads);
    int rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return rc;
}

/* fuse_args from an argv the caller keeps alive for the session's lifetime. */
static inline struct fuse_args cfuse_args(int argc, char **argv) {
    struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
    return a;
}

/* The fuse_file_info bits Swift cannot set (bitfields). */
static inline void cfuse_fi_set_keep_cache(struct fuse_file_info *fi, int v) { fi->keep_cache = v ? 1 : 0; }
static inline void cfuse_fi_set_cache_readdir(struct fuse_file_info *fi, int v) { fi->cache_readdir = v ? 1 : 0; }

/* Capabilities negotiated in init: read-ahead size and what we want. */
static inline void cfuse_conn_configure(struct fuse_conn_info *conn, unsigned int max_readahead) {
    conn->max_readahead = max_readahead;
    if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
    conn->want &= ~FUSE_CAP_SPLICE_READ;
}
#endif
