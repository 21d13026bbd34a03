/* Layer kernels: linear layers, ReLU, tanh and forward-mode tangents through tanh (see dy_nn.h). */
#include "nn/dy_nn.h"

#include <math.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif


/* Vectors of 32 bytes (AVX2: 8 floats or 4 doubles) through GCC's vector extensions; the compiler
 * picks the instructions, and a machine without them still gets correct code. */
#define DY_VBYTES 32
#define DY_VL ((int)(DY_VBYTES / sizeof(dy_real)))
typedef dy_real dy_vec __attribute__((vector_size(DY_VBYTES)));
typedef dy_real dy_uvec __attribute__((vector_size(DY_VBYTES), aligned(sizeof(dy_real)), may_alias));
#define DY_INLINE static inline __attribute__((always_inline))

DY_INLINE dy_vec dy_vload(const dy_real *p) { return *(const dy_uvec *)p; }
/* v, kept in a register: for an operand used by several FMAs, the compiler would otherwise fold
 * its load into each of them (measured: 11% slower weight gradients, loads being the limit) */
DY_INLINE dy_vec dy_vreg(dy_vec v)
{
#if defined(__AVX__)
  __asm__("" : "+x"(v));
#endif
  return v;
}
DY_INLINE void dy_vstore(dy_real *p, dy_vec v) { *(dy_uvec *)p = v; }
/* all lanes x (x - 0 is exactly x, so this folds to a broadcast; 0 + x would not, for x = -0) */
DY_INLINE dy_vec dy_vbroadcast(dy_real x) { return x - (dy_vec){0}; }
DY_INLINE dy_real dy_vsum(dy_vec v)
{
  dy_real s = 0;
  for (int i = 0; i < DY_VL; i++) s += v[i];
  return s;
}

/* Same-size integer vectors for masks and bit operations. */
#if defined(DY_REAL_DOUBLE)
typedef int64_t dy_ivec __attribute__((vector_size(DY_VBYTES)));
#else
typedef int32_t dy_ivec __attribute__((vector_size(DY_VBYTES)));
#endif

#if !defined(DY_REAL_DOUBLE)

/* (expm1(r) / r) to degree 6: 1 + r/2 + r^2/6 + ... + r^6/7!, enough for |r| <= ln 2 / 2
 * (truncation 2e-8 relative). */
DY_INLINE dy_vec dy_expm1_poly(dy_vec r)
{
  dy_vec q = (dy_vec){0} + 1.0f / 5040;
  q = q * r + 1.0f / 720;
  q = q * r + 1.0f / 120;
  q = q * r + 1.0f / 24;
  q = q * r + 1.0f / 6;
  q = q * r + 0.5f;
  return q * r + 1.0f;
}

/* exp of 8 floats, ~1 ulp: 2^k exp(r) with k the nearest integer to x / ln 2 and r = x - k ln 2
 * (ln 2 in two parts). 2^k is applied as two normal factors, so results overflow to inf and
 * underflow through the subnormals to 0 as expf's do; x is clamped to [-104, 89] (NaN passes). */
DY_INLINE dy_vec dy_exp_vec(dy_vec x)
{
  const dy_ivec lo = x < -104.0f, hi = x > 89.0f; /* both false for NaN */
  const dy_vec xc = (dy_vec)(((dy_ivec)x & ~(lo | hi)) | ((dy_ivec)((dy_vec){0} - 104.0f) & lo) |
                             ((dy_ivec)((dy_vec){0} + 89.0f) & hi));
  const dy_vec t = xc * 1.44269504f;
  /* nearest integer: truncate t + 1/2 towards minus infinity */
  dy_ivec k = __builtin_convertvector(t + 0.5f, dy_ivec);
  k -= (dy_ivec)(__builtin_convertvector(k, dy_vec) > t + 0.5f) & 1;
  const dy_vec kf = __builtin_convertvector(k, dy_vec);
  const dy_vec r = (xc - kf * 0.693359375f) + kf * 2.12194440e-4f;
  const dy_ivec k1 = k >> 1, k2 = k - k1;
  return (r * dy_expm1_poly(r) + 1.0f) * (dy_vec)((k1 + 127) << 23) * (dy_vec)((k2 + 127) << 23);
}

#if !defined(__AVX__)
/* x limited to [-c, c], NaN kept */
DY_INLINE dy_vec dy_clamp(dy_vec x, float c)
{
  const dy_ivec hi = x > c, lo = x < -c;
  return (dy_vec)(((dy_ivec)x & ~(hi | lo)) | ((dy_ivec)((dy_vec){0} + c) & hi) | ((dy_ivec)((dy_vec){0} - c) & lo));
}
#endif

/* tanh of 8 floats without branches, relative error below 3.2e-7 with FMA (every float checked;
 * without FMA, in builds for older CPUs, 3.26e-7 on the test's grid of [-12, 12]):
 * x P(x^2) / Q(x^2) with P, Q of degree 4, a minimax fit of the relative error on [0, 9] (2e-8; the
 * rest is float rounding). x is clamped to [-9.5, 9.5], where the fraction exceeds 1 (and tanh
 * rounds to 1 from 9.02 on), then the result to [-1, 1]. One division and no exponent tricks: 40%
 * less time than an expm1-based formula. NaN passes (min and max return their second operand when
 * either is NaN). */
DY_INLINE dy_vec dy_tanh_vec(dy_vec x)
{
#if defined(__AVX__)
  const dy_vec xc = (dy_vec)_mm256_max_ps(_mm256_set1_ps(-9.5f), _mm256_min_ps(_mm256_set1_ps(9.5f), (__m256)x));
#else
  const dy_vec xc = dy_clamp(x, 9.5f);
#endif
  const dy_vec t = xc * xc;
  dy_vec p = (dy_vec){0} + 1.335504007e-08f;
  p = p * t + 2.060937596e-05f;
  p = p * t + 3.495606984e-03f;
  p = p * t + 1.338104188e-01f;
  p = p * t + 1.0f;
  dy_vec q = (dy_vec){0} + 7.776719071e-07f;
  q = q * t + 3.285664920e-04f;
  q = q * t + 2.587705507e-02f;
  q = q * t + 4.671435749e-01f;
  q = q * t + 1.0f;
  const dy_vec y = xc * p / q;
#if defined(__AVX__)
  return (dy_vec)_mm256_max_ps(_mm256_set1_ps(-1.0f), _mm256_min_ps(_mm256_set1_ps(1.0f), (__m256)y));
#else
  return dy_clamp(y, 1.0f);
#endif
}
#endif

/* What a product does with its result acc before storing it at c (see DyEpilogue); h is NULL in
 * the forward direction (apply ReLU) or the layer input (multiply by the activation's derivative). */
DY_INLINE dy_vec dy_epilogue(const DyEpilogue mode, dy_vec acc, const dy_real *c, const dy_real *h)
{
  switch (mode) {
  case DY_EPI_ADD: return acc + dy_vload(c);
  case DY_EPI_RELU:
    if (h) return (dy_vec)((dy_ivec)acc & (dy_vload(h) > 0));
    return (dy_vec)((dy_ivec)acc & (acc > 0));
  case DY_EPI_TANH: { /* backward only: dy_linear_forward applies tanh itself */
    const dy_vec hv = dy_vload(h);
    return acc * (1 - hv * hv);
  }
  default: return acc;
  }
}

static dy_real dy_epilogue_scalar(DyEpilogue mode, dy_real acc, const dy_real *c, const dy_real *h)
{
  switch (mode) {
  case DY_EPI_ADD: return acc + *c;
  case DY_EPI_RELU: return h ? (*h > 0 ? acc : 0) : (acc > 0 ? acc : 0);
  case DY_EPI_TANH: return acc * (1 - *h * *h); /* backward only, as above */
  default: return acc;
  }
}

#if !defined(DY_REAL_DOUBLE)
/* 8 x 8 block of W (row stride ldw) transposed into WT (row stride ldt) in registers. */
DY_INLINE void dy_transpose8(const dy_real *W, int ldw, dy_real *WT, int ldt)
{
  const dy_ivec lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
  const dy_ivec l2 = {0, 1, 8, 9, 4, 5, 12, 13}, h2 = {2, 3, 10, 11, 6, 7, 14, 15};
  const dy_ivec l4 = {0, 1, 2, 3, 8, 9, 10, 11}, h4 = {4, 5, 6, 7, 12, 13, 14, 15};
  dy_vec r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = dy_vload(W + (size_t)i * ldw);
  for (int i = 0; i < 8; i += 2) { /* t[i]: columns 0, 1, 4, 5 of rows i, i + 1; t[i + 1]: 2, 3, 6, 7 */
    t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
    t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
  }
  for (int i = 0; i < 8; i += 4) /* u[i + c]: column c (lanes 0-3) and c + 4 (lanes 4-7) of rows i..i+3 */
    for (int h = 0; h < 2; h++) {
      u[i + 2 * h] = __builtin_shuffle(t[i + h], t[i + 2 + h], l2);
      u[i + 2 * h + 1] = __builtin_shuffle(t[i + h], t[i + 2 + h], h2);
    }
  for (int c = 0; c < 4; c++) {
    dy_vstore(WT + (size_t)c * ldt, __builtin_shuffle(u[c], u[4 + c], l4));
    dy_vstore(WT + (size_t)(c + 4) * ldt, __builtin_shuffle(u[c], u[4 + c], h4));
  }
}
#endif

void dy_transpose(int out, int in, const dy_real *W, dy_real *WT)
{
#if !defined(DY_REAL_DOUBLE)
  if (out % 8 == 0 && in % 8 == 0) {
    for (int o = 0; o < out; o += 8)
      for (int i = 0; i < in; i += 8) dy_transpose8(W + (size_t)o * in + i, in, WT + (size_t)i * out + o, out);
    return;
  }
#endif
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) WT[(size_t)i * out + o] = W[(size_t)o * in + i];
}

/* Register tiles: R rows by NV vectors of columns. Row-major operands throughout. */
enum { DY_TILE_NV = 2, DY_TILE_R = 6, DY_TILE_NV_MAX = 4 };

/* C (R, NV VL) = epilogue(bias + A (R, q) Bm (q, NV VL)); bias may be NULL; H, when non-NULL, has
 * C's layout. lda, ldb, ldc are row strides. When cs is non-NULL, the column sums of the stored
 * tile are added into cs[0, NV). */
DY_INLINE void dy_gemm_tile(const int R, const int NV, int q, const dy_real *A, int lda, const dy_real *Bm, int ldb,
                            dy_real *C, int ldc, const dy_real *bias, const DyEpilogue mode, const dy_real *H,
                            dy_vec *cs)
{
  dy_vec acc[DY_TILE_R][DY_TILE_NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = bias ? dy_vload(bias + v * DY_VL) : (dy_vec){0};
  for (int k = 0; k < q; k++) {
    dy_vec b[DY_TILE_NV];
    for (int v = 0; v < NV; v++) b[v] = dy_vload(Bm + (size_t)k * ldb + v * DY_VL);
    for (int r = 0; r < R; r++) {
      const dy_vec a = dy_vbroadcast(A[(size_t)r * lda + k]);
      for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) {
      const size_t o = (size_t)r * ldc + v * DY_VL;
      acc[r][v] = dy_epilogue(mode, acc[r][v], C + o, H ? H + o : NULL);
      dy_vstore(C + o, acc[r][v]);
    }
  if (cs)
    for (int v = 0; v < NV; v++) {
      dy_vec t = acc[0][v];
      for (int r = 1; r < R; r++) t += acc[r][v];
      cs[v] += t;
    }
}

/* All n rows for one block of NV vectors of columns; db (NV VL), when non-NULL, gets the column
 * sums of the block added. */
DY_INLINE void dy_gemm_cols(const int NV, int n, int q, const dy_real *A, const dy_real *Bm, int p, dy_real *C,
                            const dy_real *bias, const DyEpilogue mode, const dy_real *H, dy_real *db)
{
  dy_vec cs[DY_TILE_NV] = {{0}};
  int r = 0;
  for (; r + DY_TILE_R <= n; r += DY_TILE_R)
    dy_gemm_tile(DY_TILE_R, NV, q, A + (size_t)r * q, q, Bm, p, C + (size_t)r * p, p, bias, mode,
                 H ? H + (size_t)r * p : NULL, db ? cs : NULL);
  for (; r < n; r++)
    dy_gemm_tile(1, NV, q, A + (size_t)r * q, q, Bm, p, C + (size_t)r * p, p, bias, mode, H ? H + (size_t)r * p : NULL,
                 db ? cs : NULL);
  if (db)
    for (int v = 0; v < NV; v++) dy_vstore(db + v * DY_VL, dy_vload(db + v * DY_VL) + cs[v]);
}

/* Lane i of the result is the sum of the lanes of x[i] (a transposing reduction tree). */
DY_INLINE dy_vec dy_vsum_lanes(const dy_vec *x)
{
#if defined(DY_REAL_DOUBLE)
  const dy_ivec lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, l2 = {0, 1, 4, 5}, h2 = {2, 3, 6, 7};
  const dy_vec t0 = __builtin_shuffle(x[0], x[1], lo) + __builtin_shuffle(x[0], x[1], hi);
  const dy_vec t1 = __builtin_shuffle(x[2], x[3], lo) + __builtin_shuffle(x[2], x[3], hi);
  return __builtin_shuffle(t0, t1, l2) + __builtin_shuffle(t0, t1, h2);
#else
  /* even and odd lanes of two vectors (one vshufps each), twice: lanes 0-3 of u[0] then hold the
   * low-half sums of x[0..3], lanes 4-7 their high-half sums; then the halves are combined */
  const dy_ivec ev = {0, 2, 8, 10, 4, 6, 12, 14}, od = {1, 3, 9, 11, 5, 7, 13, 15};
  const dy_ivec l4 = {0, 1, 2, 3, 8, 9, 10, 11}, h4 = {4, 5, 6, 7, 12, 13, 14, 15};
  dy_vec t[4], u[2];
  for (int i = 0; i < 4; i++)
    t[i] = __builtin_shuffle(x[2 * i], x[2 * i + 1], ev) + __builtin_shuffle(x[2 * i], x[2 * i + 1], od);
  for (int i = 0; i < 2; i++)
    u[i] = __builtin_shuffle(t[2 * i], t[2 * i + 1], ev) + __builtin_shuffle(t[2 * i], t[2 * i + 1], od);
  return __builtin_shuffle(u[0], u[1], l4) + __builtin_shuffle(u[0], u[1], h4);
#endif
}

/* dy_gemm_narrow for p dividing VL and q a multiple of VL: R = VL / p rows at once, whose R p
 * results are VL consecutive values of C, accumulated in one vector each (lane i: row i / p,
 * column i % p) and reduced together. Returns the rows done (a multiple of R). */
DY_INLINE int dy_gemm_narrow_rows(const int p, int n, int q, const dy_real *A, const dy_real *BmT, dy_real *C,
                                  const dy_real *bias, DyEpilogue mode, const dy_real *H)
{
  const int R = DY_VL / p;
  dy_vec bv;
  for (int i = 0; i < DY_VL; i++) bv[i] = bias ? bias[i % p] : 0;
  int r0 = 0;
  for (; r0 + R <= n; r0 += R) {
    dy_vec acc[DY_VL];
    for (int i = 0; i < DY_VL; i++) acc[i] = (dy_vec){0};
    for (int k = 0; k < q; k += DY_VL) {
      dy_vec a[DY_VL], bt[DY_VL];
      for (int j = 0; j < R; j++) a[j] = dy_vload(A + (size_t)(r0 + j) * q + k);
      for (int c = 0; c < p; c++) bt[c] = dy_vreg(dy_vload(BmT + (size_t)c * q + k));
      for (int i = 0; i < DY_VL; i++) acc[i] += a[i / p] * bt[i % p];
    }
    const size_t o = (size_t)r0 * p;
    dy_vstore(C + o, dy_epilogue(mode, dy_vsum_lanes(acc) + bv, C + o, H ? H + o : NULL));
  }
  return r0;
}

/* C (n, p) for p < VL, as dot products along q with BmT (p, q): VL rows at a time, their VL
 * partial-sum vectors reduced together. */
static void dy_gemm_narrow(int n, int q, int p, const dy_real *A, const dy_real *BmT, dy_real *C, const dy_real *bias,
                           DyEpilogue mode, const dy_real *H)
{
  const int qv = q - q % DY_VL;
  int r0 = 0;
  if (q % DY_VL == 0) switch (p) { /* p constant inside, so the lanes' rows and columns are too */
    case 1: r0 = dy_gemm_narrow_rows(1, n, q, A, BmT, C, bias, mode, H); break;
    case 2: r0 = dy_gemm_narrow_rows(2, n, q, A, BmT, C, bias, mode, H); break;
    case 4: r0 = dy_gemm_narrow_rows(4, n, q, A, BmT, C, bias, mode, H); break;
    default: break;
    }
  if (q % DY_VL == 0)
    for (; r0 + DY_VL <= n; r0 += DY_VL)
      for (int c = 0; c < p; c++) {
        dy_vec acc[DY_VL];
        for (int i = 0; i < DY_VL; i++) acc[i] = (dy_vec){0};
        for (int k = 0; k < q; k += DY_VL) {
          const dy_vec bt = dy_vload(BmT + (size_t)c * q + k);
          for (int i = 0; i < DY_VL; i++) acc[i] += dy_vload(A + (size_t)(r0 + i) * q + k) * bt;
        }
        const dy_vec sums = dy_vsum_lanes(acc);
        for (int i = 0; i < DY_VL; i++) {
          const size_t o = (size_t)(r0 + i) * p + c;
          C[o] = dy_epilogue_scalar(mode, sums[i] + (bias ? bias[c] : 0), C + o, H ? H + o : NULL);
        }
      }
  for (int r = r0; r < n; r++) {
    const dy_real *a = A + (size_t)r * q;
    for (int c = 0; c < p; c++) {
      const dy_real *bt = BmT + (size_t)c * q;
      dy_vec acc = {0};
      for (int k = 0; k < qv; k += DY_VL) acc += dy_vload(a + k) * dy_vload(bt + k);
      dy_real s = dy_vsum(acc) + (bias ? bias[c] : 0);
      for (int k = qv; k < q; k++) s += a[k] * bt[k];
      const size_t o = (size_t)r * p + c;
      C[o] = dy_epilogue_scalar(mode, s, C + o, H ? H + o : NULL);
    }
  }
}

/* Columns [c, p) of dy_gemm one by one (those beyond the last full vector), their sums added
 * into db[c, p) when db is non-NULL. */
static void dy_gemm_scalar_cols(int c, int n, int q, int p, const dy_real *A, const dy_real *Bm, dy_real *C,
                                const dy_real *bias, DyEpilogue mode, const dy_real *H, dy_real *db)
{
  for (; c < p; c++) {
    dy_real cs = 0;
    for (int r = 0; r < n; r++) {
      dy_real s = bias ? bias[c] : 0;
      for (int k = 0; k < q; k++) s += A[(size_t)r * q + k] * Bm[(size_t)k * p + c];
      const size_t o = (size_t)r * p + c;
      C[o] = dy_epilogue_scalar(mode, s, C + o, H ? H + o : NULL);
      cs += C[o];
    }
    if (db) db[c] += cs;
  }
}

/* dy_gemm for p >= VL: whole vectors of columns, then the remaining columns one by one. */
DY_INLINE void dy_gemm_wide(int n, const int q, int p, const dy_real *A, const dy_real *Bm, dy_real *C,
                            const dy_real *bias, const DyEpilogue mode, const dy_real *H, dy_real *db)
{
  int c = 0;
  for (; c + DY_TILE_NV * DY_VL <= p; c += DY_TILE_NV * DY_VL)
    dy_gemm_cols(DY_TILE_NV, n, q, A, Bm + c, p, C + c, bias ? bias + c : NULL, mode, H ? H + c : NULL,
                 db ? db + c : NULL);
  for (; c + DY_VL <= p; c += DY_VL)
    dy_gemm_cols(1, n, q, A, Bm + c, p, C + c, bias ? bias + c : NULL, mode, H ? H + c : NULL, db ? db + c : NULL);
  dy_gemm_scalar_cols(c, n, q, p, A, Bm, C, bias, mode, H, db);
}

/* NV vectors of columns of C (n, p) = epilogue(bias + A (n, q) Bm (q, p)) for q <= 4 (a first
 * layer's few inputs, or the backward pass of a narrow layer): Bm's q NV vectors stay in
 * registers and the rows stream through, one row of NV vectors at a time. */
DY_INLINE void dy_gemm_short_cols(const int NV, const int q, int n, int p, const dy_real *A, const dy_real *Bm,
                                  dy_real *C, const dy_real *bias, const DyEpilogue mode, const dy_real *H, dy_real *db)
{
  dy_vec b[4][DY_TILE_NV_MAX], bv[DY_TILE_NV_MAX], cs[DY_TILE_NV_MAX] = {{0}};
  for (int v = 0; v < NV; v++) {
    bv[v] = bias ? dy_vload(bias + v * DY_VL) : (dy_vec){0};
    for (int k = 0; k < q; k++) b[k][v] = dy_vload(Bm + (size_t)k * p + v * DY_VL);
  }
  for (int r = 0; r < n; r++) {
    dy_vec acc[DY_TILE_NV_MAX];
    for (int v = 0; v < NV; v++) acc[v] = bv[v];
    for (int k = 0; k < q; k++) {
      const dy_vec a = dy_vbroadcast(A[(size_t)r * q + k]);
      for (int v = 0; v < NV; v++) acc[v] += a * b[k][v];
    }
    for (int v = 0; v < NV; v++) {
      const size_t o = (size_t)r * p + v * DY_VL;
      acc[v] = dy_epilogue(mode, acc[v], C + o, H ? H + o : NULL);
      dy_vstore(C + o, acc[v]);
      cs[v] += acc[v];
    }
  }
  if (db)
    for (int v = 0; v < NV; v++) dy_vstore(db + v * DY_VL, dy_vload(db + v * DY_VL) + cs[v]);
}

DY_INLINE void dy_gemm_short_q(const int q, int n, int p, const dy_real *A, const dy_real *Bm, dy_real *C,
                               const dy_real *bias, const DyEpilogue mode, const dy_real *H, dy_real *db)
{
  int c = 0;
  for (; c + DY_TILE_NV_MAX * DY_VL <= p; c += DY_TILE_NV_MAX * DY_VL)
    dy_gemm_short_cols(DY_TILE_NV_MAX, q, n, p, A, Bm + c, C + c, bias ? bias + c : NULL, mode, H ? H + c : NULL,
                       db ? db + c : NULL);
  for (; c + DY_VL <= p; c += DY_VL)
    dy_gemm_short_cols(1, q, n, p, A, Bm + c, C + c, bias ? bias + c : NULL, mode, H ? H + c : NULL,
                       db ? db + c : NULL);
  dy_gemm_scalar_cols(c, n, q, p, A, Bm, C, bias, mode, H, db);
}

/* dy_gemm_wide's case q <= 4 with q known inside */
DY_INLINE void dy_gemm_short(int n, int q, int p, const dy_real *A, const dy_real *Bm, dy_real *C, const dy_real *bias,
                             DyEpilogue mode, const dy_real *H, dy_real *db)
{
  switch (q) {
  case 1: dy_gemm_short_q(1, n, p, A, Bm, C, bias, mode, H, db); break;
  case 2: dy_gemm_short_q(2, n, p, A, Bm, C, bias, mode, H, db); break;
  case 3: dy_gemm_short_q(3, n, p, A, Bm, C, bias, mode, H, db); break;
  default: dy_gemm_short_q(4, n, p, A, Bm, C, bias, mode, H, db); break;
  }
}

/* --- blocked products with packed panels (wide shapes) ----------------------------------------- */

/* C (m, p) = epilogue(bias + A (m, q) Bm (q, p)) for shapes too large for one pass from L1: Bm is
 * copied a block of DY_KC rows by DY_NC columns at a time into panels of DY_NR columns, each
 * panel's rows contiguous and its last panel padded with zeros (no strided reads, which for row
 * strides of a few KB would fall into a handful of L1 sets, and no column left to scalar code);
 * the rows of C then go through in blocks whose A rows fit in L2 (DY_ABLOCK_BYTES), one panel at a
 * time staying in L1 while a block's rows pass in tiles of DY_MR rows. With A transposed (weight
 * gradients), each tile's A rows (DY_MR_T x DY_KC) are copied once and stay in L1 while the block's
 * panels stream from L2. Sums over q longer than DY_KC pass through C:
 * every block after the first starts from C, and only the last applies the epilogue and adds the
 * column sums. The buffers are per thread and need no allocation. */
enum { DY_MR = 6, DY_NR_V = 2, DY_KC = 256, DY_NC = 1024 / (int)sizeof(dy_real), DY_ABLOCK_BYTES = 256 << 10 };
/* Rows of a tile with A transposed, whose panels stream from L2: more rows per tile, fewer
 * panel loads per FMA (bench_gemm's weight gradients: 256-wide 101 -> 107 GFLOP/s, 30-feature
 * ones 58 -> 77). 12 where AVX-512 gives 32 vector registers (24 accumulators), else DY_MR. */
#if defined(__AVX512F__)
#define DY_MR_T 12
#else
#define DY_MR_T 6
#endif
#define DY_NR (DY_NR_V * DY_VL)
static _Thread_local dy_real dy_bpack[DY_KC * DY_NC] __attribute__((aligned(64)));
static _Thread_local dy_real dy_apack[DY_MR_T * DY_KC] __attribute__((aligned(64)));

/* the first m lanes at p (m >= VL: a whole vector), the others 0 */
DY_INLINE dy_vec dy_vload_part(const dy_real *p, int m)
{
  if (m >= DY_VL) return dy_vload(p);
  dy_vec v = {0};
  for (int i = 0; i < m; i++) v[i] = p[i];
  return v;
}
DY_INLINE void dy_vstore_part(dy_real *p, dy_vec v, int m)
{
  if (m >= DY_VL) dy_vstore(p, v);
  else
    for (int i = 0; i < m; i++) p[i] = v[i];
}

/* Rows [k0, k0 + kc) and columns [j0, j0 + nc) of Bm (row stride ldb) into dy_bpack. */
static void dy_pack_b(int kc, int nc, const dy_real *Bm, int ldb)
{
  dy_real *d = dy_bpack;
  for (int j = 0; j < nc; j += DY_NR, d += (size_t)kc * DY_NR) {
    const int m = nc - j;
    if (m >= DY_NR)
      for (int k = 0; k < kc; k++)
        for (int v = 0; v < DY_NR_V; v++) dy_vstore(d + k * DY_NR + v * DY_VL, dy_vload(Bm + (size_t)k * ldb + j + v * DY_VL));
    else
      for (int k = 0; k < kc; k++)
        for (int v = 0; v < DY_NR_V; v++)
          dy_vstore(d + k * DY_NR + v * DY_VL, dy_vload_part(Bm + (size_t)k * ldb + j + v * DY_VL, m - v * DY_VL));
  }
}

/* One tile: rows [0, R) of C (row stride ldc), columns [0, m) (m <= DY_NR) from a packed panel bp
 * (kc, DY_NR). Element (r, k) of A is a[r ars + k aks]. The sum starts from bias (when non-NULL)
 * plus C (with fromc); last: apply the epilogue and add the column sums into db (when non-NULL). */
DY_INLINE void dy_blocked_tile(const int R, int kc, const dy_real *a, const size_t ars, const size_t aks,
                               const dy_real *bp, dy_real *C, int ldc, int m, int fromc, int last, const dy_real *bias,
                               const DyEpilogue mode, const dy_real *H, dy_real *db)
{
  dy_vec acc[DY_MR_T][DY_NR_V]; /* DY_MR_T >= DY_MR */
  for (int v = 0; v < DY_NR_V; v++) {
    const int mv = m - v * DY_VL;
    const dy_vec b0 = bias && mv > 0 ? dy_vload_part(bias + v * DY_VL, mv) : (dy_vec){0};
    for (int r = 0; r < R; r++)
      acc[r][v] = fromc && mv > 0 ? b0 + dy_vload_part(C + (size_t)r * ldc + v * DY_VL, mv) : b0;
  }
  for (int k = 0; k < kc; k++) {
    dy_vec b[DY_NR_V];
    for (int v = 0; v < DY_NR_V; v++) b[v] = dy_vload(bp + (size_t)k * DY_NR + v * DY_VL);
    for (int r = 0; r < R; r++) {
      const dy_vec av = dy_vbroadcast(a[r * ars + k * aks]);
      for (int v = 0; v < DY_NR_V; v++) acc[r][v] += av * b[v];
    }
  }
  for (int v = 0; v < DY_NR_V; v++) {
    const int mv = m - v * DY_VL;
    if (mv <= 0) break;
    dy_vec cs = {0};
    for (int r = 0; r < R; r++) {
      const size_t o = (size_t)r * ldc + v * DY_VL;
      dy_vec x = acc[r][v];
      if (last) {
        if (mode == DY_EPI_RELU) x = (dy_vec)((dy_ivec)x & (H ? dy_vload_part(H + o, mv) > 0 : x > 0));
        else if (mode == DY_EPI_TANH) {
          const dy_vec hv = dy_vload_part(H + o, mv);
          x = x * (1 - hv * hv);
        }
        cs += x;
      }
      dy_vstore_part(C + o, x, mv);
    }
    if (last && db) dy_vstore_part(db + v * DY_VL, dy_vload_part(db + v * DY_VL, mv) + cs, mv);
  }
}

/* C (m, p) = epilogue(bias + A Bm) with Bm (q, p) of row stride ldb and A (m, q) of row stride
 * lda, or with trans its transpose: A (q, m) row-major, of row stride lda (then each tile's part
 * is first copied, DY_MR_T values per k contiguous). Mode ADD starts from C. */
DY_INLINE void dy_gemm_blocked(int m, int q, int p, const dy_real *A, int lda, const int trans, const dy_real *Bm,
                               int ldb, dy_real *C, int ldc, const dy_real *bias, const DyEpilogue mode,
                               const dy_real *H, dy_real *db)
{
  const size_t ars = trans ? 1 : (size_t)lda, aks = trans ? (size_t)lda : 1;
  for (int jc = 0; jc < p; jc += DY_NC) {
    const int nc = p - jc < DY_NC ? p - jc : DY_NC;
    for (int pc = 0; pc < q; pc += DY_KC) {
      const int kc = q - pc < DY_KC ? q - pc : DY_KC;
      const int fromc = pc > 0 || mode == DY_EPI_ADD, last = pc + kc == q;
      dy_pack_b(kc, nc, Bm + (size_t)pc * ldb + jc, ldb);
      /* C's tile at rows i.., columns jc + j.. from A's rows at a (strides rs, ks) */
#define DY_TILE_CASE(RR, MRX)                                                                            \
  case RR:                                                                                               \
    if (RR <= MRX)                                                                                       \
    dy_blocked_tile(RR, kc, a, rs, ks, dy_bpack + (size_t)j * kc, C + (size_t)i * ldc + jc + j, ldc, nc - j, fromc, \
                    last, bias && pc == 0 ? bias + jc + j : NULL, mode, H ? H + (size_t)i * ldc + jc + j : NULL,  \
                    db ? db + jc + j : NULL);                                                            \
    break
#define DY_TILE_AT(MRX)                                                                                  \
  switch (m - i >= MRX ? MRX : m - i) {                                                                  \
    DY_TILE_CASE(12, MRX); DY_TILE_CASE(11, MRX); DY_TILE_CASE(10, MRX); DY_TILE_CASE(9, MRX);           \
    DY_TILE_CASE(8, MRX); DY_TILE_CASE(7, MRX); DY_TILE_CASE(6, MRX); DY_TILE_CASE(5, MRX);              \
    DY_TILE_CASE(4, MRX); DY_TILE_CASE(3, MRX); DY_TILE_CASE(2, MRX); DY_TILE_CASE(1, MRX);              \
  }
      if (!trans) {
        /* blocks of mc rows of A stay in L2: one panel at a time in L1 while a block's rows pass */
        const size_t rs = ars, ks = aks;
        int mc = (int)(DY_ABLOCK_BYTES / ((size_t)kc * sizeof(dy_real))) / DY_MR * DY_MR;
        if (mc < DY_MR) mc = DY_MR;
        for (int ic = 0; ic < m; ic += mc) {
          const int iend = m - ic < mc ? m : ic + mc;
          for (int j = 0; j < nc; j += DY_NR)
            for (int i = ic; i < iend; i += DY_MR) {
              const dy_real *a = A + (size_t)i * ars + (size_t)pc * aks;
              DY_TILE_AT(DY_MR);
            }
        }
      } else
        for (int i = 0; i < m; i += DY_MR_T) {
          const int R = m - i >= DY_MR_T ? DY_MR_T : m - i;
          const dy_real *a = A + (size_t)i * ars + (size_t)pc * aks;
          size_t rs = ars, ks = aks;
          if (trans) { /* this tile's columns of A^T, DY_MR_T per k */
            for (int k = 0; k < kc; k++)
              for (int r = 0; r < R; r++) dy_apack[k * DY_MR_T + r] = a[r + (size_t)k * aks];
            a = dy_apack, rs = 1, ks = DY_MR_T;
          }
          for (int j = 0; j < nc; j += DY_NR) DY_TILE_AT(DY_MR_T);
        }
#undef DY_TILE_AT
#undef DY_TILE_CASE
    }
  }
}

/* Products over q with p output columns (p >= VL) that go through dy_gemm_blocked: those whose
 * operands outgrow L1 or whose columns end in a part of a vector; the others run from their
 * row-major operands directly, which for small layers costs no copies. */
static int dy_use_blocked(int q, int p) { return q > 64 || p > 64 || p % DY_VL != 0; }

/* C (n, p) = epilogue(bias + A (n, q) Bm (q, p)) with BmT (p, q) the transpose of Bm. Wide outputs
 * vectorise along p; narrow ones (p < VL, e.g. the latent layer) along q. When db is non-NULL, the
 * column sums of the stored C are added into db (p): in the tiles while C is in registers. */
DY_INLINE void dy_gemm(int n, int q, int p, const dy_real *A, const dy_real *Bm, const dy_real *BmT, dy_real *C,
                       const dy_real *bias, DyEpilogue mode, const dy_real *H, dy_real *db)
{
  if (p < DY_VL) {
    dy_gemm_narrow(n, q, p, A, BmT, C, bias, mode, H);
    if (db) dy_linear_backward_bias(n, p, C, db);
    return;
  }
  if (q <= 4) dy_gemm_short(n, q, p, A, Bm, C, bias, mode, H, db);
  else if (dy_use_blocked(q, p)) dy_gemm_blocked(n, q, p, A, q, 0, Bm, p, C, p, bias, mode, H, db);
  else dy_gemm_wide(n, q, p, A, Bm, C, bias, mode, H, db);
}

/* dy_gemm compiled separately for the forward direction (no H) and the backward one (no bias),
 * and for each epilogue (and H given or not), so that no test of them is left in the loops */
static void dy_gemm_forward(int n, int q, int p, const dy_real *A, const dy_real *Bm, const dy_real *BmT, dy_real *C,
                            const dy_real *bias, DyEpilogue mode)
{
  switch (mode) {
  case DY_EPI_RELU: dy_gemm(n, q, p, A, Bm, BmT, C, bias, DY_EPI_RELU, NULL, NULL); break;
  case DY_EPI_ADD: dy_gemm(n, q, p, A, Bm, BmT, C, bias, DY_EPI_ADD, NULL, NULL); break;
  default: dy_gemm(n, q, p, A, Bm, BmT, C, bias, DY_EPI_SET, NULL, NULL); break;
  }
}

static void dy_gemm_backward(int n, int q, int p, const dy_real *A, const dy_real *Bm, const dy_real *BmT, dy_real *C,
                             DyEpilogue mode, const dy_real *H, dy_real *db)
{
  switch (mode) {
  case DY_EPI_RELU:
    if (H) dy_gemm(n, q, p, A, Bm, BmT, C, NULL, DY_EPI_RELU, H, db);
    else dy_gemm(n, q, p, A, Bm, BmT, C, NULL, DY_EPI_RELU, NULL, db);
    break;
  case DY_EPI_TANH: dy_gemm(n, q, p, A, Bm, BmT, C, NULL, DY_EPI_TANH, H, db); break; /* H required */
  case DY_EPI_ADD: dy_gemm(n, q, p, A, Bm, BmT, C, NULL, DY_EPI_ADD, NULL, db); break;
  default: dy_gemm(n, q, p, A, Bm, BmT, C, NULL, DY_EPI_SET, NULL, db); break;
  }
}

void dy_linear_forward(int n, int in, int out, const dy_real *X, const dy_real *W, const dy_real *WT, const dy_real *b,
                       DyEpilogue act, dy_real *Y)
{
  /* tanh runs as a pass of its own: inside the tile (measured) it is slower, its temporaries and
   * constants competing with the accumulators for registers */
  dy_gemm_forward(n, in, out, X, WT, W, Y, b, act == DY_EPI_TANH ? DY_EPI_SET : act);
  if (act == DY_EPI_TANH) dy_tanh_forward((size_t)n * out, Y);
}

void dy_linear_backward_input(int n, int in, int out, const dy_real *dY, const dy_real *W, const dy_real *WT,
                              const dy_real *H, DyEpilogue mode, dy_real *dX, dy_real *db)
{
  dy_gemm_backward(n, out, in, dY, W, WT, dX, mode, H, db);
}

/* C (P, Q) += A^T B over n rows, A (n, P), B (n, Q), for a tile of RP rows of C and NV vectors
 * of its columns; with `trans` the tile is added to C^T (Q, P) instead (ldc its row stride). */
DY_INLINE void dy_gemm_tn_tile(const int RP, const int NV, int n, const dy_real *A, int P, const dy_real *B, int Q,
                               dy_real *C, int ldc, int trans)
{
  dy_vec acc[DY_TILE_R][DY_TILE_NV_MAX];
  for (int i = 0; i < RP; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = (dy_vec){0};
  for (int r = 0; r < n; r++) {
    dy_vec b[DY_TILE_NV_MAX];
    for (int v = 0; v < NV; v++) b[v] = dy_vreg(dy_vload(B + (size_t)r * Q + v * DY_VL));
    for (int i = 0; i < RP; i++) {
      const dy_vec a = dy_vbroadcast(A[(size_t)r * P + i]);
      for (int v = 0; v < NV; v++) acc[i][v] += a * b[v];
    }
  }
  for (int i = 0; i < RP; i++)
    for (int v = 0; v < NV; v++) {
      if (trans) {
        for (int l = 0; l < DY_VL; l++) C[(size_t)(v * DY_VL + l) * ldc + i] += acc[i][v][l];
      } else {
        dy_real *c = C + (size_t)i * ldc + v * DY_VL;
        dy_vstore(c, dy_vload(c) + acc[i][v]);
      }
    }
}

/* Rows of the next tile when `left` rows of C remain: 6, but 4 + 4 rather than 6 + 2 and tiles of
 * up to 3 rows at the end, so that no long run goes through a tile of one or two dependent chains. */
static int dy_tn_rows(int left) { return left >= DY_TILE_R && left != 8 ? DY_TILE_R : left >= 4 ? 4 : left; }

DY_INLINE void dy_gemm_tn_cols(const int NV, int n, const dy_real *A, int P, const dy_real *B, int Q, dy_real *C,
                               int trans)
{
  /* row i of the tile is C row i (or C^T column i) */
  const int ldc = trans ? P : Q;
  for (int i = 0; i < P;) {
    const int R = dy_tn_rows(P - i);
    const dy_real *a = A + i;
    dy_real *c = trans ? C + i : C + (size_t)i * Q;
    switch (R) {
    case 6: dy_gemm_tn_tile(6, NV, n, a, P, B, Q, c, ldc, trans); break;
    case 4: dy_gemm_tn_tile(4, NV, n, a, P, B, Q, c, ldc, trans); break;
    case 3: dy_gemm_tn_tile(3, NV, n, a, P, B, Q, c, ldc, trans); break;
    case 2: dy_gemm_tn_tile(2, NV, n, a, P, B, Q, c, ldc, trans); break;
    default: dy_gemm_tn_tile(1, NV, n, a, P, B, Q, c, ldc, trans); break;
    }
    i += R;
  }
}

/* C (P, Q) += A^T B (trans 0) or C (Q, P) += B^T A (trans 1), vectorised along Q. With few rows of
 * C (P <= 3, e.g. a latent layer) tiles are four vectors wide so that they keep enough
 * independent chains. */
static void dy_gemm_tn(int n, const dy_real *A, int P, const dy_real *B, int Q, dy_real *C, int trans)
{
  int c = 0;
  if (P <= 3)
    for (; c + DY_TILE_NV_MAX * DY_VL <= Q; c += DY_TILE_NV_MAX * DY_VL)
      dy_gemm_tn_cols(DY_TILE_NV_MAX, n, A, P, B + c, Q, trans ? C + (size_t)c * P : C + c, trans);
  for (; c + DY_TILE_NV * DY_VL <= Q; c += DY_TILE_NV * DY_VL)
    dy_gemm_tn_cols(DY_TILE_NV, n, A, P, B + c, Q, trans ? C + (size_t)c * P : C + c, trans);
  for (; c + DY_VL <= Q; c += DY_VL) dy_gemm_tn_cols(1, n, A, P, B + c, Q, trans ? C + (size_t)c * P : C + c, trans);
  for (; c < Q; c++) /* columns beyond the last full vector */
    for (int i = 0; i < P; i++) {
      dy_real s = 0;
      for (int r = 0; r < n; r++) s += A[(size_t)r * P + i] * B[(size_t)r * Q + c];
      if (trans) C[(size_t)c * P + i] += s;
      else C[(size_t)i * Q + c] += s;
    }
}

#ifndef DY_TN_BLOCKED_BYTES
#define DY_TN_BLOCKED_BYTES (4u << 20)
#endif
void dy_linear_backward_weight(int n, int in, int out, const dy_real *X, const dy_real *dY, dy_real *dW)
{
  /* dW (out, in) += dY^T X: vectorise along whichever of in, out is wider. Narrow inputs (in <= 64)
   * take the direct kernel unless dY is larger than the caches keep (4 MiB): its tiles of 6 rows
   * of dW re-read all of X, and a strided cache line of dY per row, for every tile, where the
   * blocked product reads them once per block from L1 (bench_gemm, last layers to 1024-4096
   * features at B 1024: 11-44% of the peak before, 28-61% after; below 4 MiB the direct kernel
   * is as fast or faster). */
  if (in >= DY_VL && out > 4 &&
      (in > 64 || in % DY_VL != 0 || (size_t)n * (size_t)out * sizeof(dy_real) > DY_TN_BLOCKED_BYTES))
    dy_gemm_blocked(out, n, in, dY, out, 1, X, in, dW, in, NULL, DY_EPI_ADD, NULL, NULL);
  else if (in >= DY_VL || in >= out) dy_gemm_tn(n, dY, out, X, in, dW, 0);
  else dy_gemm_tn(n, X, in, dY, out, dW, 1);
}

/* db[0, NV VL) += column sums of NV vectors of columns of dY (n, ld), in registers, two rows at a
 * time (independent chains), the odd row last. */
DY_INLINE void dy_colsum(const int NV, int n, int ld, const dy_real *dY, dy_real *db)
{
  dy_vec s[2][DY_TILE_NV_MAX];
  for (int h = 0; h < 2; h++)
    for (int v = 0; v < NV; v++) s[h][v] = (dy_vec){0};
  int r = 0;
  for (; r + 2 <= n; r += 2)
    for (int h = 0; h < 2; h++)
      for (int v = 0; v < NV; v++) s[h][v] += dy_vload(dY + (size_t)(r + h) * ld + v * DY_VL);
  for (; r < n; r++)
    for (int v = 0; v < NV; v++) s[0][v] += dy_vload(dY + (size_t)r * ld + v * DY_VL);
  for (int v = 0; v < NV; v++) dy_vstore(db + v * DY_VL, dy_vload(db + v * DY_VL) + (s[0][v] + s[1][v]));
}

void dy_linear_backward_bias(int n, int out, const dy_real *dY, dy_real *db)
{
  int c = 0;
  for (; c + DY_TILE_NV_MAX * DY_VL <= out; c += DY_TILE_NV_MAX * DY_VL)
    dy_colsum(DY_TILE_NV_MAX, n, out, dY + c, db + c);
  for (; c + DY_VL <= out; c += DY_VL) dy_colsum(1, n, out, dY + c, db + c);
  if (c == 0 && DY_VL % out == 0) {
    /* narrow (e.g. a latent layer): the rows as one flat array, lane i holding column i % out */
    const size_t m = (size_t)n * out, mv = m - m % DY_VL;
    dy_vec s0 = {0}, s1 = {0};
    size_t k = 0;
    for (; k + 2 * DY_VL <= mv; k += 2 * DY_VL) {
      s0 += dy_vload(dY + k);
      s1 += dy_vload(dY + k + DY_VL);
    }
    for (; k < mv; k += DY_VL) s0 += dy_vload(dY + k);
    s0 += s1;
    dy_real cs[DY_VL] = {0};
    for (int i = 0; i < DY_VL; i++) cs[i % out] += s0[i];
    for (; k < m; k++) cs[k % out] += dY[k];
    for (int i = 0; i < out; i++) db[i] += cs[i];
    return;
  }
  for (; c < out; c++) {
    dy_real s = 0;
    for (int r = 0; r < n; r++) s += dY[(size_t)r * out + c];
    db[c] += s;
  }
}

void dy_tanh_forward(size_t m, dy_real *H)
{
#if defined(DY_REAL_DOUBLE)
  for (size_t k = 0; k < m; k++) H[k] = tanh(H[k]);
#else
  size_t k = 0;
  for (; k + DY_VL <= m; k += DY_VL) dy_vstore(H + k, dy_tanh_vec(dy_vload(H + k)));
  if (k < m) { /* the tail through the same formula */
    dy_real tmp[DY_VL] = {0};
    memcpy(tmp, H + k, (m - k) * sizeof *tmp);
    dy_vstore(tmp, dy_tanh_vec(dy_vload(tmp)));
    memcpy(H + k, tmp, (m - k) * sizeof *tmp);
  }
#endif
}

void dy_exp_forward(size_t m, dy_real *X)
{
  size_t k = 0;
#if !defined(DY_REAL_DOUBLE)
  for (; k + DY_VL <= m; k += DY_VL) dy_vstore(X + k, dy_exp_vec(dy_vload(X + k)));
  for (; k < m; k++) X[k] = expf(X[k]);
#else
  for (; k < m; k++) X[k] = exp(X[k]);
#endif
}

/* Element (n, c) of tangent block j of A_T, (ntan B, w) or with bcast (ntan, w). */
DY_INLINE const dy_real *dy_tangent_at(const dy_real *A_T, int bcast, size_t m, int w, int j, size_t k)
{
  return bcast ? A_T + (size_t)j * w + k % (size_t)w : A_T + j * m + k;
}

void dy_tanh_tangent_forward(int B, int w, int ntan, const dy_real *Hp, const dy_real *A_T, int bcast, dy_real *T)
{
  const size_t m = (size_t)B * w;
  size_t k = 0;
  if (!bcast) /* one flat pass; with bcast a row of vectors at a time, the same A_T row for every n */
    for (; k + DY_VL <= m; k += DY_VL) {
      const dy_vec h = dy_vload(Hp + k), s = 1 - h * h;
      for (int j = 0; j < ntan; j++) dy_vstore(T + j * m + k, s * dy_vload(A_T + j * m + k));
    }
  else if (w % DY_VL == 0)
    for (; k < m; k += w)
      for (int c = 0; c < w; c += DY_VL) {
        const dy_vec h = dy_vload(Hp + k + c), s = 1 - h * h;
        for (int j = 0; j < ntan; j++) dy_vstore(T + j * m + k + c, s * dy_vload(A_T + (size_t)j * w + c));
      }
  for (; k < m; k++)
    for (int j = 0; j < ntan; j++) T[j * m + k] = (1 - Hp[k] * Hp[k]) * *dy_tangent_at(A_T, bcast, m, w, j, k);
}

/* dy_tanh_tangent_backward on the 8 elements at flat index k whose A_T values are at a + j ab */
DY_INLINE void dy_tanh_tangent_backward_vec(size_t k, size_t m, int ntan, const dy_real *Hp, const dy_real *a,
                                            size_t ab, dy_real *dHp, dy_real *dT)
{
  const dy_vec h = dy_vload(Hp + k), s = 1 - h * h, h2 = 2 * h;
  dy_vec g = dy_vload(dHp + k);
  for (int j = 0; j < ntan; j++) {
    const dy_vec dt = dy_vload(dT + j * m + k);
    g -= h2 * dy_vload(a + j * ab) * dt;
    dy_vstore(dT + j * m + k, dt * s);
  }
  dy_vstore(dHp + k, g * s);
}

void dy_tanh_tangent_backward(int B, int w, int ntan, const dy_real *Hp, const dy_real *A_T, int bcast, dy_real *dHp,
                              dy_real *dT)
{
  /* t = (1 - h^2) a_t, so dL/dh gains -2 h a_t dL/dt and dL/da_t = (1 - h^2) dL/dt; all tangents
   * of an element in one pass, vectors as in dy_tanh_tangent_forward */
  const size_t m = (size_t)B * w;
  size_t k = 0;
  if (!bcast)
    for (; k + DY_VL <= m; k += DY_VL) dy_tanh_tangent_backward_vec(k, m, ntan, Hp, A_T + k, m, dHp, dT);
  else if (w % DY_VL == 0)
    for (; k < m; k += w)
      for (int c = 0; c < w; c += DY_VL) dy_tanh_tangent_backward_vec(k + c, m, ntan, Hp, A_T + c, w, dHp, dT);
  for (; k < m; k++) {
    const dy_real s = 1 - Hp[k] * Hp[k];
    dy_real g = dHp[k];
    for (int j = 0; j < ntan; j++) {
      g -= 2 * Hp[k] * *dy_tangent_at(A_T, bcast, m, w, j, k) * dT[j * m + k];
      dT[j * m + k] *= s;
    }
    dHp[k] = g * s;
  }
}
