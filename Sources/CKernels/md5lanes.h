#ifndef CK_MD5LANES_H
#define CK_MD5LANES_H
/* MD5 of up to sixteen independent streams at once (RFC 1321's block function, one stream per
   32-bit SIMD lane). One MD5 stream is a chain of dependent 32-bit steps, about 750 MB/s on a
   core; eight streams in lockstep go 4-6x that in total, sixteen in 512-bit vectors (where
   AVX-512 gives one-instruction rotates and three-input logic) 1.4x eight. Written with
   Clang/GCC vector extensions, so it is SIMD on every target; x86-64 gets AVX2 and AVX-512
   builds, chosen at run time. Only the block function lives here: padding and streaming are in
   SoakCore's MD5Lanes. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef uint32_t ck_md5_v8 __attribute__((vector_size(32)));

#define CK_MD5_ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
/* `(m) + (k)` with a scalar k: the vector extensions broadcast it to every lane. */
#define CK_MD5_STEP(f, w, x, y, z, m, k, s) \
    w = w + f(x, y, z) + (m) + (uint32_t)(k); w = CK_MD5_ROTL(w, s) + x;
#define CK_MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define CK_MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define CK_MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define CK_MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define CK_MD5_ROUNDS(a, b, c, d, M) \
    CK_MD5_STEP(CK_MD5_F,a,b,c,d,M[0],0xd76aa478,7) CK_MD5_STEP(CK_MD5_F,d,a,b,c,M[1],0xe8c7b756,12) \
    CK_MD5_STEP(CK_MD5_F,c,d,a,b,M[2],0x242070db,17) CK_MD5_STEP(CK_MD5_F,b,c,d,a,M[3],0xc1bdceee,22) \
    CK_MD5_STEP(CK_MD5_F,a,b,c,d,M[4],0xf57c0faf,7) CK_MD5_STEP(CK_MD5_F,d,a,b,c,M[5],0x4787c62a,12) \
    CK_MD5_STEP(CK_MD5_F,c,d,a,b,M[6],0xa8304613,17) CK_MD5_STEP(CK_MD5_F,b,c,d,a,M[7],0xfd469501,22) \
    CK_MD5_STEP(CK_MD5_F,a,b,c,d,M[8],0x698098d8,7) CK_MD5_STEP(CK_MD5_F,d,a,b,c,M[9],0x8b44f7af,12) \
    CK_MD5_STEP(CK_MD5_F,c,d,a,b,M[10],0xffff5bb1,17) CK_MD5_STEP(CK_MD5_F,b,c,d,a,M[11],0x895cd7be,22) \
    CK_MD5_STEP(CK_MD5_F,a,b,c,d,M[12],0x6b901122,7) CK_MD5_STEP(CK_MD5_F,d,a,b,c,M[13],0xfd987193,12) \
    CK_MD5_STEP(CK_MD5_F,c,d,a,b,M[14],0xa679438e,17) CK_MD5_STEP(CK_MD5_F,b,c,d,a,M[15],0x49b40821,22) \
    CK_MD5_STEP(CK_MD5_G,a,b,c,d,M[1],0xf61e2562,5) CK_MD5_STEP(CK_MD5_G,d,a,b,c,M[6],0xc040b340,9) \
    CK_MD5_STEP(CK_MD5_G,c,d,a,b,M[11],0x265e5a51,14) CK_MD5_STEP(CK_MD5_G,b,c,d,a,M[0],0xe9b6c7aa,20) \
    CK_MD5_STEP(CK_MD5_G,a,b,c,d,M[5],0xd62f105d,5) CK_MD5_STEP(CK_MD5_G,d,a,b,c,M[10],0x02441453,9) \
    CK_MD5_STEP(CK_MD5_G,c,d,a,b,M[15],0xd8a1e681,14) CK_MD5_STEP(CK_MD5_G,b,c,d,a,M[4],0xe7d3fbc8,20) \
    CK_MD5_STEP(CK_MD5_G,a,b,c,d,M[9],0x21e1cde6,5) CK_MD5_STEP(CK_MD5_G,d,a,b,c,M[14],0xc33707d6,9) \
    CK_MD5_STEP(CK_MD5_G,c,d,a,b,M[3],0xf4d50d87,14) CK_MD5_STEP(CK_MD5_G,b,c,d,a,M[8],0x455a14ed,20) \
    CK_MD5_STEP(CK_MD5_G,a,b,c,d,M[13],0xa9e3e905,5) CK_MD5_STEP(CK_MD5_G,d,a,b,c,M[2],0xfcefa3f8,9) \
    CK_MD5_STEP(CK_MD5_G,c,d,a,b,M[7],0x676f02d9,14) CK_MD5_STEP(CK_MD5_G,b,c,d,a,M[12],0x8d2a4c8a,20) \
    CK_MD5_STEP(CK_MD5_H,a,b,c,d,M[5],0xfffa3942,4) CK_MD5_STEP(CK_MD5_H,d,a,b,c,M[8],0x8771f681,11) \
    CK_MD5_STEP(CK_MD5_H,c,d,a,b,M[11],0x6d9d6122,16) CK_MD5_STEP(CK_MD5_H,b,c,d,a,M[14],0xfde5380c,23) \
    CK_MD5_STEP(CK_MD5_H,a,b,c,d,M[1],0xa4beea44,4) CK_MD5_STEP(CK_MD5_H,d,a,b,c,M[4],0x4bdecfa9,11) \
    CK_MD5_STEP(CK_MD5_H,c,d,a,b,M[7],0xf6bb4b60,16) CK_MD5_STEP(CK_MD5_H,b,c,d,a,M[10],0xbebfbc70,23) \
    CK_MD5_STEP(CK_MD5_H,a,b,c,d,M[13],0x289b7ec6,4) CK_MD5_STEP(CK_MD5_H,d,a,b,c,M[0],0xeaa127fa,11) \
    CK_MD5_STEP(CK_MD5_H,c,d,a,b,M[3],0xd4ef3085,16) CK_MD5_STEP(CK_MD5_H,b,c,d,a,M[6],0x04881d05,23) \
    CK_MD5_STEP(CK_MD5_H,a,b,c,d,M[9],0xd9d4d039,4) CK_MD5_STEP(CK_MD5_H,d,a,b,c,M[12],0xe6db99e5,11) \
    CK_MD5_STEP(CK_MD5_H,c,d,a,b,M[15],0x1fa27cf8,16) CK_MD5_STEP(CK_MD5_H,b,c,d,a,M[2],0xc4ac5665,23) \
    CK_MD5_STEP(CK_MD5_I,a,b,c,d,M[0],0xf4292244,6) CK_MD5_STEP(CK_MD5_I,d,a,b,c,M[7],0x432aff97,10) \
    CK_MD5_STEP(CK_MD5_I,c,d,a,b,M[14],0xab9423a7,15) CK_MD5_STEP(CK_MD5_I,b,c,d,a,M[5],0xfc93a039,21) \
    CK_MD5_STEP(CK_MD5_I,a,b,c,d,M[12],0x655b59c3,6) CK_MD5_STEP(CK_MD5_I,d,a,b,c,M[3],0x8f0ccc92,10) \
    CK_MD5_STEP(CK_MD5_I,c,d,a,b,M[10],0xffeff47d,15) CK_MD5_STEP(CK_MD5_I,b,c,d,a,M[1],0x85845dd1,21) \
    CK_MD5_STEP(CK_MD5_I,a,b,c,d,M[8],0x6fa87e4f,6) CK_MD5_STEP(CK_MD5_I,d,a,b,c,M[15],0xfe2ce6e0,10) \
    CK_MD5_STEP(CK_MD5_I,c,d,a,b,M[6],0xa3014314,15) CK_MD5_STEP(CK_MD5_I,b,c,d,a,M[13],0x4e0811a1,21) \
    CK_MD5_STEP(CK_MD5_I,a,b,c,d,M[4],0xf7537e82,6) CK_MD5_STEP(CK_MD5_I,d,a,b,c,M[11],0xbd3af235,10) \
    CK_MD5_STEP(CK_MD5_I,c,d,a,b,M[2],0x2ad7d2bb,15) CK_MD5_STEP(CK_MD5_I,b,c,d,a,M[9],0xeb86d391,21)

/* Words `at`/4 .. `at`/4+7 of eight 64-byte blocks, one block per lane, as eight vectors:
   out[j][l] is word j of lane l's block. Eight 32-byte loads and an 8x8 transpose (the
   unpack/permute sequence of AVX2), not 64 lane inserts, which stall on store forwarding. */
#define CK_MD5_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define CK_MD5_TRANSPOSE_BODY                                                                     \
    ck_md5_v8 r[8];                                                                               \
    for (int l = 0; l < 8; l++) memcpy(&r[l], q[l] + at, 32);                                       \
    ck_md5_v8 t[8], u[8];                                                                         \
    for (int k = 0; k < 8; k += 2) {                                                                \
        t[k] = CK_MD5_SHUF(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);                             \
        t[k + 1] = CK_MD5_SHUF(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);                       \
    }                                                                                               \
    for (int k = 0; k < 8; k += 4) {                                                                \
        u[k] = CK_MD5_SHUF(t[k], t[k + 2], 0, 1, 8, 9, 4, 5, 12, 13);                             \
        u[k + 1] = CK_MD5_SHUF(t[k], t[k + 2], 2, 3, 10, 11, 6, 7, 14, 15);                       \
        u[k + 2] = CK_MD5_SHUF(t[k + 1], t[k + 3], 0, 1, 8, 9, 4, 5, 12, 13);                     \
        u[k + 3] = CK_MD5_SHUF(t[k + 1], t[k + 3], 2, 3, 10, 11, 6, 7, 14, 15);                   \
    }                                                                                               \
    for (int j = 0; j < 4; j++) {                                                                   \
        out[j] = CK_MD5_SHUF(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);                           \
        out[j + 4] = CK_MD5_SHUF(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);                     \
    }

/* state: W*4 words, state[k * W + lane] is word k (A, B, C, D) of that lane (W = 8 or 16, the
   vector type V). Lane l consumes nblocks[l] 64-byte blocks from p[l]; a lane with fewer blocks
   than another is left unchanged for the rest (its pointer is not read past its blocks). While
   every lane has blocks left, the lanes are all live (`least`); after that a lane's mask comes
   from one vector compare: building it lane by lane through memory stalled on store forwarding
   (28% of the 8-lane kernel's samples in `soak __bench-md5`). Callers keep nblocks[l] < 2^32. */
#define CK_MD5_LANES_BODY(V, W, LOAD_M)                                                           \
    V a, b, c, d, nb;                                                                               \
    for (int l = 0; l < W; l++) {                                                                   \
        a[l] = state[l]; b[l] = state[W + l]; c[l] = state[2 * W + l]; d[l] = state[3 * W + l];     \
        nb[l] = (uint32_t)nblocks[l];                                                               \
    }                                                                                               \
    size_t most = 0, least = (size_t)-1;                                                            \
    for (int l = 0; l < W; l++) {                                                                   \
        if (nblocks[l] > most) most = nblocks[l];                                                   \
        if (nblocks[l] < least) least = nblocks[l];                                                 \
    }                                                                                               \
    static const uint8_t idle[64];                                                                  \
    for (size_t blk = 0; blk < most; blk++) {                                                       \
        const uint8_t *q[W];                                                                        \
        V live = (V)(nb > (uint32_t)blk);                                                           \
        if (blk < least) {                                                                          \
            for (int l = 0; l < W; l++) q[l] = p[l] + 64 * blk;                                     \
        } else {                                                                                    \
            for (int l = 0; l < W; l++) q[l] = blk < nblocks[l] ? p[l] + 64 * blk : idle;           \
        }                                                                                           \
        V M[16];                                                                                    \
        LOAD_M(M, q)                                                                                \
        V a0 = a, b0 = b, c0 = c, d0 = d;                                                           \
        CK_MD5_ROUNDS(a, b, c, d, M)                                                              \
        a = ((a0 + a) & live) | (a0 & ~live); b = ((b0 + b) & live) | (b0 & ~live);                \
        c = ((c0 + c) & live) | (c0 & ~live); d = ((d0 + d) & live) | (d0 & ~live);                \
    }                                                                                               \
    for (int l = 0; l < W; l++) {                                                                   \
        state[l] = a[l]; state[W + l] = b[l]; state[2 * W + l] = c[l]; state[3 * W + l] = d[l];     \
    }

#define CK_MD5_LOAD8(M, q) ck_md5_transpose(M, q, 0); ck_md5_transpose(M + 8, q, 32);
static inline void ck_md5_transpose_portable(ck_md5_v8 *out, const uint8_t *const *q, size_t at) {
    CK_MD5_TRANSPOSE_BODY
}
#define ck_md5_transpose ck_md5_transpose_portable
static inline void ck_md5x8_portable(uint32_t *state, const uint8_t *const *p, const size_t *nblocks) {
    CK_MD5_LANES_BODY(ck_md5_v8, 8, CK_MD5_LOAD8)
}
#undef ck_md5_transpose
#if defined(__x86_64__)
__attribute__((target("avx2")))
static inline void ck_md5_transpose_avx2(ck_md5_v8 *out, const uint8_t *const *q, size_t at) {
    CK_MD5_TRANSPOSE_BODY
}
#define ck_md5_transpose ck_md5_transpose_avx2
__attribute__((target("avx2")))
static inline void ck_md5x8_avx2(uint32_t *state, const uint8_t *const *p, const size_t *nblocks) {
    CK_MD5_LANES_BODY(ck_md5_v8, 8, CK_MD5_LOAD8)
}
#undef ck_md5_transpose

typedef uint32_t ck_md5_v16 __attribute__((vector_size(64)));
#define CK_MD5_AVX512 "avx2,avx512f,avx512vl"
__attribute__((target(CK_MD5_AVX512)))
static inline void ck_md5_transpose_avx512(ck_md5_v8 *out, const uint8_t *const *q, size_t at) {
    CK_MD5_TRANSPOSE_BODY
}
/* Sixteen lanes' words: two eight-lane transposes, each pair of halves joined. */
#define CK_MD5_LOAD16(M, q)                                                                       \
    ck_md5_v8 lo[16], hi[16];                                                                     \
    ck_md5_transpose_avx512(lo, q, 0); ck_md5_transpose_avx512(lo + 8, q, 32);                  \
    ck_md5_transpose_avx512(hi, q + 8, 0); ck_md5_transpose_avx512(hi + 8, q + 8, 32);          \
    for (int j = 0; j < 16; j++)                                                                    \
        M[j] = __builtin_shufflevector(lo[j], hi[j], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
__attribute__((target(CK_MD5_AVX512)))
static inline void ck_md5x16_avx512(uint32_t *state, const uint8_t *const *p, const size_t *nblocks) {
    CK_MD5_LANES_BODY(ck_md5_v16, 16, CK_MD5_LOAD16)
}
static inline int ck_md5_best_build(void) {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static inline void ck_md5x8_avx2(uint32_t *state, const uint8_t *const *p, const size_t *nblocks) {
    ck_md5x8_portable(state, p, nblocks);
}
static inline void ck_md5x16_avx512(uint32_t *state, const uint8_t *const *p, const size_t *nblocks) {
    (void)state; (void)p; (void)nblocks;  /* never called: ck_md5_best_build() is 0 */
}
static inline int ck_md5_best_build(void) { return 0; }
#endif

/* Blocks per lane per pass of a kernel: the lane masks compare 32-bit counts. */
#define CK_MD5_MAX_PASS ((size_t)1 << 30)

/* Runs the MD5 block function over sixteen lanes: state[k * 16 + l] is word k of lane l, lane l
   consumes nblocks[l] blocks from p[l]. `build` (at most ck_md5_best_build()) picks the code:
   2 runs one 512-bit pass when any of lanes 8-15 has blocks; otherwise (or with build 1 AVX2,
   0 portable) each half with blocks runs through the eight-lane kernel, so eight lanes never pay
   for sixteen. */
static inline void ck_md5x16(uint32_t *state, const uint8_t *const *p, const size_t *nblocks, int build) {
    const uint8_t *q[16];
    size_t left[16];
    for (int l = 0; l < 16; l++) { q[l] = p[l]; left[l] = nblocks[l]; }
    for (;;) {
        size_t step[16];
        int any = 0, upper = 0;
        for (int l = 0; l < 16; l++) {
            step[l] = left[l] < CK_MD5_MAX_PASS ? left[l] : CK_MD5_MAX_PASS;
            if (step[l]) { any = 1; if (l >= 8) upper = 1; }
        }
        if (!any) return;
        if (build >= 2 && upper) {
            ck_md5x16_avx512(state, q, step);
        } else {
            for (int h = 0; h < 16; h += 8) {
                int busy = 0;
                for (int l = h; l < h + 8; l++) busy |= step[l] != 0;
                if (!busy) continue;
                uint32_t s8[32];
                for (int k = 0; k < 4; k++) for (int l = 0; l < 8; l++) s8[k * 8 + l] = state[k * 16 + h + l];
                if (build >= 1) ck_md5x8_avx2(s8, q + h, step + h); else ck_md5x8_portable(s8, q + h, step + h);
                for (int k = 0; k < 4; k++) for (int l = 0; l < 8; l++) state[k * 16 + h + l] = s8[k * 8 + l];
            }
        }
        for (int l = 0; l < 16; l++) if (step[l]) { q[l] += 64 * step[l]; left[l] -= step[l]; }
    }
}
#endif
