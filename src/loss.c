/* Loss kernels: reconstruction, sliced Wasserstein of one bin, Langevin prior moves and their
 * negative log-likelihood (see dy_nn.h). */
#include "dy_nn.h"

#include <math.h>
#include <string.h>

double dy_sqerr_loss(int n, int w, const dy_real *Yhat, const dy_real *Y, double scale, dy_real *dYhat)
{
  const size_t m = (size_t)n * w;
  const dy_real s2 = (dy_real)(2 * scale);
  double sum = 0;
  size_t k = 0;
  /* eight elements at a time, squares summed per lane in double (independent chains) */
  double lanes[8] = {0};
  for (; k + 8 <= m; k += 8)
    for (int j = 0; j < 8; j++) {
      const dy_real e = Yhat[k + j] - Y[k + j];
      lanes[j] += (double)(e * e);
      if (dYhat) dYhat[k + j] += s2 * e;
    }
  for (int j = 0; j < 8; j++) sum += lanes[j];
  for (; k < m; k++) {
    const dy_real e = Yhat[k] - Y[k];
    sum += (double)(e * e);
    if (dYhat) dYhat[k] += s2 * e;
  }
  return sum;
}

/* --- sorting of projections -------------------------------------------------------------------
 * Values are mapped to unsigned integers with the same order (flip all bits of negatives, the sign
 * bit of the others) and sorted by a least-significant-digit radix sort that carries the row index. */
#if defined(DY_REAL_DOUBLE)
typedef uint64_t dy_key;
#define DY_KEY_SIGN (UINT64_C(1) << 63)
#else
typedef uint32_t dy_key;
#define DY_KEY_SIGN (UINT32_C(1) << 31)
#endif

static inline dy_key dy_key_of(dy_real x)
{
  dy_key u;
  memcpy(&u, &x, sizeof u);
  return (u & DY_KEY_SIGN) ? ~u : (u | DY_KEY_SIGN);
}

static inline dy_real dy_value_of(dy_key u)
{
  u = (u & DY_KEY_SIGN) ? (u & ~DY_KEY_SIGN) : ~u;
  dy_real x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* The projections are sorted DY_SW_GROUP at a time by a bitonic network whose compare-exchange acts
 * on whole rows: row n of a block holds the keys of a_n (or b_n) for the group's projections, so
 * every lane is an independent sort and the network needs no shuffles. The last three stages of
 * every merge work on eight rows held in registers. The keys of a carry the row index in their low
 * bits (the permutation is what the gradient needs); the rare pairs this puts out of order (values
 * equal in all other bits) are put right afterwards by an insertion pass on the true values. */
#define DY_SW_GROUP 8
typedef dy_key dy_kvec __attribute__((vector_size(32)));
#define DY_SW_NKV ((int)(DY_SW_GROUP * sizeof(dy_key) / 32)) /* vectors per row */

#if defined(__AVX2__) && !defined(DY_REAL_DOUBLE)
#include <immintrin.h>
static inline __attribute__((always_inline)) void dy_kminmax(dy_kvec *a, dy_kvec *b)
{
  const __m256i x = (__m256i)*a, y = (__m256i)*b;
  *a = (dy_kvec)_mm256_min_epu32(x, y);
  *b = (dy_kvec)_mm256_max_epu32(x, y);
}
#else
static inline __attribute__((always_inline)) void dy_kminmax(dy_kvec *a, dy_kvec *b)
{
  const dy_kvec x = *a, y = *b, m = (dy_kvec)(x < y);
  *a = (x & m) | (y & ~m);
  *b = (y & m) | (x & ~m);
}
#endif

/* compare-exchange of rows i < j of r (rows of DY_SW_NKV vectors) */
static inline __attribute__((always_inline)) void dy_sw_ce(dy_kvec *r, int i, int j)
{
  for (int v = 0; v < DY_SW_NKV; v++) dy_kminmax(&r[i * DY_SW_NKV + v], &r[j * DY_SW_NKV + v]);
}
#define DY_CE(r, i, j) dy_sw_ce(r, i, j)

static inline __attribute__((always_inline)) void dy_sw_load8(const dy_kvec *rows, dy_kvec *r)
{
  for (int k = 0; k < 8 * DY_SW_NKV; k++) r[k] = rows[k];
}

static inline __attribute__((always_inline)) void dy_sw_store8(dy_kvec *rows, const dy_kvec *r)
{
  for (int k = 0; k < 8 * DY_SW_NKV; k++) rows[k] = r[k];
}

/* strides 4, 2, 1 of a merge on eight rows */
static inline __attribute__((always_inline)) void dy_sw_tail8(dy_kvec *r)
{
  DY_CE(r, 0, 4), DY_CE(r, 1, 5), DY_CE(r, 2, 6), DY_CE(r, 3, 7);
  DY_CE(r, 0, 2), DY_CE(r, 1, 3), DY_CE(r, 4, 6), DY_CE(r, 5, 7);
  DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
}

/* One pass of a merge over m rows at a time (m = 2, 4 or 8, a constant) held in registers: rows
 * base + idx[a], then with `mirror` the compare-exchanges of rows a and m - 1 - a, then those at
 * index distances u = m/2 (m/4 with mirror) down to 1. Several stages cost one load and one store
 * of every row. */
static inline __attribute__((always_inline)) void dy_sw_pass(const int m, const int mirror, int P, int size,
                                                             int step, dy_kvec *rows)
{
  dy_kvec r[8 * DY_SW_NKV];
  for (int b0 = 0; b0 < P; b0 += mirror ? size : m * step)
    for (int t = 0; t < step; t++) {
      int idx[8];
      for (int a = 0; a < m; a++)
        idx[a] = mirror && a >= m / 2 ? b0 + size - 1 - t - (m - 1 - a) * step : b0 + t + a * step;
      for (int a = 0; a < m; a++)
        for (int v = 0; v < DY_SW_NKV; v++) r[a * DY_SW_NKV + v] = rows[(size_t)idx[a] * DY_SW_NKV + v];
      if (mirror)
        for (int a = 0; a < m / 2; a++) DY_CE(r, a, m - 1 - a);
      for (int u = mirror ? m / 4 : m / 2; u >= 1; u /= 2)
        for (int a = 0; a < m; a++)
          if (!(a & u)) DY_CE(r, a, a + u);
      for (int a = 0; a < m; a++)
        for (int v = 0; v < DY_SW_NKV; v++) rows[(size_t)idx[a] * DY_SW_NKV + v] = r[a * DY_SW_NKV + v];
    }
}

/* Sorts every lane of rows (P, GROUP) ascending, P a power of two >= 8. Each merge starts by
 * comparing mirrored rows, so every compare-exchange puts the minimum first; its stages of
 * strides >= 8 go through memory up to three at a time, the last three in registers. */
static void dy_sw_sort_block(int P, dy_kvec *rows)
{
  dy_kvec r[8 * DY_SW_NKV];
  for (int c = 0; c < P; c += 8) { /* merges of sizes 2, 4, 8 */
    dy_sw_load8(rows + (size_t)c * DY_SW_NKV, r);
    DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
    DY_CE(r, 0, 3), DY_CE(r, 1, 2), DY_CE(r, 4, 7), DY_CE(r, 5, 6);
    DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
    DY_CE(r, 0, 7), DY_CE(r, 1, 6), DY_CE(r, 2, 5), DY_CE(r, 3, 4);
    DY_CE(r, 0, 2), DY_CE(r, 1, 3), DY_CE(r, 4, 6), DY_CE(r, 5, 7);
    DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
    dy_sw_store8(rows + (size_t)c * DY_SW_NKV, r);
  }
  for (int size = 16; size <= P; size *= 2) {
    /* the mirror stage with the next strides down to 8: m rows spaced size / m */
    int stride; /* largest stride left after the pass */
    if (size == 16) dy_sw_pass(2, 1, P, size, 8, rows), stride = 4;
    else if (size == 32) dy_sw_pass(4, 1, P, size, 8, rows), stride = 4;
    else dy_sw_pass(8, 1, P, size, size / 8, rows), stride = size / 16;
    for (; stride >= 8;) {
      if (stride >= 32) dy_sw_pass(8, 0, P, size, stride / 4, rows), stride /= 8;
      else if (stride >= 16) dy_sw_pass(4, 0, P, size, stride / 2, rows), stride /= 4;
      else dy_sw_pass(2, 0, P, size, stride, rows), stride /= 2;
    }
    for (int c = 0; c < P; c += 8) {
      dy_sw_load8(rows + (size_t)c * DY_SW_NKV, r);
      dy_sw_tail8(r);
      dy_sw_store8(rows + (size_t)c * DY_SW_NKV, r);
    }
  }
}

/* Workspace layout of dy_sw_loss for B pairs, L projections (Lp: rounded up to whole groups),
 * latent dimension d. */
typedef struct {
  dy_kvec *ka, *kb; /* (P, GROUP) keys of a and b */
  dy_real *av;      /* (B, GROUP) true values of a */
  dy_real *as;      /* (B, GROUP) a in sorted order */
  dy_key *perm;     /* (B, GROUP) row of the k-th smallest a */
  dy_real *ga;      /* (B, Lp) d L_sw / d a_n for every projection, by row */
  dy_real *thT;     /* (d, Lp) the directions by component, zero past L */
} DySwWork;

static int dy_pow2_at_least(int n)
{
  int p = 8;
  while (p < n) p *= 2;
  return p;
}

static int dy_sw_lp(int L) { return (L + DY_SW_GROUP - 1) / DY_SW_GROUP * DY_SW_GROUP; }

static size_t dy_sw_layout(int B, int L, int d, char *base, DySwWork *w)
{
  const size_t P = (size_t)dy_pow2_at_least(B), G = DY_SW_GROUP, kb = P * G * sizeof(dy_key), Lp = (size_t)dy_sw_lp(L);
  const size_t rb = ((size_t)B * G * sizeof(dy_real) + 63) & ~(size_t)63;
  const size_t ib = ((size_t)B * G * sizeof(dy_key) + 63) & ~(size_t)63;
  const size_t gb = ((size_t)B * Lp * sizeof(dy_real) + 63) & ~(size_t)63;
  const size_t tb = ((size_t)d * Lp * sizeof(dy_real) + 63) & ~(size_t)63;
  if (w) {
    w->ka = (dy_kvec *)base;
    w->kb = (dy_kvec *)(base + kb);
    w->av = (dy_real *)(base + 2 * kb);
    w->as = (dy_real *)(base + 2 * kb + rb);
    w->perm = (dy_key *)(base + 2 * kb + 2 * rb);
    w->ga = (dy_real *)(base + 2 * kb + 2 * rb + ib);
    w->thT = (dy_real *)(base + 2 * kb + 2 * rb + ib + gb);
  }
  return 2 * kb + 2 * rb + ib + gb + tb;
}

size_t dy_sw_work_bytes(int B, int L, int d) { return dy_sw_layout(B, L, d, NULL, NULL); }

/* One vector of values and their keys, as dy_key_of / dy_value_of lane by lane. */
typedef dy_real dy_rvec __attribute__((vector_size(32)));
typedef dy_key dy_ukvec __attribute__((vector_size(32), aligned(sizeof(dy_key)), may_alias));
#define DY_SW_VL ((int)(32 / sizeof(dy_real)))
#define DY_SW_NVG (DY_SW_GROUP / DY_SW_VL) /* vectors per group */
/* Squared errors are summed in double, per lane, in 4-double vectors (one register each). */
typedef double dy_dvec __attribute__((vector_size(32)));
typedef dy_real dy_hvec __attribute__((vector_size(4 * sizeof(dy_real)))); /* 4 lanes */
#define DY_SW_NH (DY_SW_VL / 4) /* 4-lane parts of a vector */

static inline dy_kvec dy_keys_of(dy_rvec x)
{
  const dy_kvec u = (dy_kvec)x, neg = u >> (8 * sizeof(dy_key) - 1); /* 1 for negatives */
  return u ^ (-neg | DY_KEY_SIGN);
}

static inline dy_rvec dy_values_of(dy_kvec k)
{
  const dy_kvec pos = k >> (8 * sizeof(dy_key) - 1); /* 1 for keys of non-negatives */
  return (dy_rvec)(k ^ ((pos - 1) | DY_KEY_SIGN));
}

/* For one group: the order of a from its sorted keys ka, rows into w->perm and true values into
 * w->as. Packed keys order values equal in their upper bits by row; such rare pairs are put right
 * here by moving the value back within its lane (the rows before it are already in order). */
static void dy_sw_order(int B, dy_key imask, const dy_key *ka, const DySwWork *w)
{
  enum { G = DY_SW_GROUP };
  for (int k = 0; k < B; k++)
    for (int v = 0; v < DY_SW_NVG; v++) {
      const size_t o = (size_t)k * G + v * DY_SW_VL;
      dy_kvec pk;
      dy_rvec as;
      memcpy(&pk, ka + o, sizeof pk);
      pk &= imask;
#if defined(__AVX2__) && !defined(DY_REAL_DOUBLE)
      as = (dy_rvec)_mm256_i32gather_ps(w->av + v * DY_SW_VL, (__m256i)(pk * G + (dy_kvec){0, 1, 2, 3, 4, 5, 6, 7}), 4);
#else
      for (int j = 0; j < DY_SW_VL; j++) as[j] = w->av[(size_t)pk[j] * G + v * DY_SW_VL + j];
#endif
      memcpy(w->perm + o, &pk, sizeof pk);
      memcpy(w->as + o, &as, sizeof as);
      if (!k) continue;
      dy_rvec prev;
      memcpy(&prev, w->as + o - G, sizeof prev);
      const dy_kvec bad = (dy_kvec)(as < prev);
      uint64_t q[4];
      memcpy(q, &bad, sizeof q);
      if (!(q[0] | q[1] | q[2] | q[3])) continue;
      for (int j = 0; j < DY_SW_VL; j++) {
        if (!bad[j]) continue;
        dy_real *a = w->as + v * DY_SW_VL + j;
        dy_key *p = w->perm + v * DY_SW_VL + j;
        const dy_real x = a[(size_t)k * G];
        const dy_key i = p[(size_t)k * G];
        int m = k;
        for (; m > 0 && a[(size_t)(m - 1) * G] > x; m--) {
          a[(size_t)m * G] = a[(size_t)(m - 1) * G];
          p[(size_t)m * G] = p[(size_t)(m - 1) * G];
        }
        a[(size_t)m * G] = x;
        p[(size_t)m * G] = i;
      }
    }
}

/* For one group in the order of w->perm / w->as: the squared errors against the sorted b (summed
 * per lane into sum) and, with grad, gscale times the errors into w->ga (row, l0 + lane). */
static void dy_sw_errors(int B, int Lp, int l0, dy_real gscale, const dy_key *kb, const DySwWork *w, int grad,
                         dy_dvec sum[DY_SW_NH])
{
  enum { G = DY_SW_GROUP };
  dy_dvec s[DY_SW_NH];
  for (int h = 0; h < DY_SW_NH; h++) s[h] = sum[h];
  for (int k = 0; k < B; k++)
    for (int v = 0; v < DY_SW_NVG; v++) {
      const size_t o = (size_t)k * G + v * DY_SW_VL;
      dy_kvec keyb, pk;
      dy_rvec as;
      memcpy(&pk, w->perm + o, sizeof pk);
      memcpy(&as, w->as + o, sizeof as);
      memcpy(&keyb, kb + o, sizeof keyb);
      const dy_rvec e = as - dy_values_of(keyb), ge = gscale * e;
      const dy_rvec e2 = e * e;
      for (int h = 0; h < DY_SW_NH; h++) {
        dy_hvec part;
        memcpy(&part, (const dy_real *)&e2 + 4 * h, sizeof part);
        s[h] += __builtin_convertvector(part, dy_dvec);
      }
      if (grad)
        for (int j = 0; j < DY_SW_VL; j++) w->ga[(size_t)pk[j] * Lp + l0 + v * DY_SW_VL + j] = ge[j];
    }
  for (int h = 0; h < DY_SW_NH; h++) sum[h] = s[h];
}

double dy_sw_loss(int L, int B, int d, const dy_real *theta, const dy_real *dz, const dy_real *dzp, double scale,
                  dy_real *gdz, void *work)
{
  enum { G = DY_SW_GROUP };
  DySwWork w;
  dy_sw_layout(B, L, d, work, &w);
  const int P = dy_pow2_at_least(B), Lp = dy_sw_lp(L);
  dy_key *ka = (dy_key *)w.ka, *kb = (dy_key *)w.kb;
  dy_key imask = 0;
  while ((int)imask < B - 1) imask = 2 * imask + 1;
  const dy_real gscale = (dy_real)(2 * scale / ((double)L * B));
  /* directions by component; lanes past the last projection get zero directions, so zero a, b,
   * error and gradient */
  for (int c = 0; c < d; c++)
    for (int l = 0; l < Lp; l++) w.thT[(size_t)c * Lp + l] = l < L ? theta[(size_t)l * d + c] : 0;
  dy_dvec sumv[DY_SW_NH] = {{0}}; /* per-lane sums of squared errors */
  for (int l0 = 0; l0 < L; l0 += G) {
    for (int n = 0; n < B; n++)
      for (int v = 0; v < DY_SW_NVG; v++) {
        dy_rvec a = {0}, b = {0};
        for (int c = 0; c < d; c++) {
          dy_rvec t;
          memcpy(&t, w.thT + (size_t)c * Lp + l0 + v * DY_SW_VL, sizeof t);
          a += t * (dz[(size_t)n * d + c] - (dy_rvec){0});
          b += t * (dzp[(size_t)n * d + c] - (dy_rvec){0});
        }
        const size_t o = (size_t)n * G + v * DY_SW_VL;
        memcpy(w.av + o, &a, sizeof a);
        const dy_kvec keya = (dy_keys_of(a) & ~imask) | (dy_key)n, keyb = dy_keys_of(b);
        memcpy(ka + o, &keya, sizeof keya);
        memcpy(kb + o, &keyb, sizeof keyb);
      }
    memset(ka + (size_t)B * G, 0xff, (size_t)(P - B) * G * sizeof *ka);
    memset(kb + (size_t)B * G, 0xff, (size_t)(P - B) * G * sizeof *kb);
    dy_sw_sort_block(P, w.ka);
    dy_sw_sort_block(P, w.kb);
    /* a in sorted order with its rows, then the loss terms and d L / d a_n by row */
    dy_sw_order(B, imask, ka, &w);
    dy_sw_errors(B, Lp, l0, gscale, kb, &w, gdz != NULL, sumv);
  }
  /* back to dz through the directions: gdz (B, d) += ga (B, Lp) thT^T */
  if (gdz)
    for (int n = 0; n < B; n++)
      for (int c = 0; c < d; c++) {
        dy_rvec acc = {0};
        for (int l = 0; l < Lp; l += DY_SW_VL) {
          dy_rvec x, t;
          memcpy(&x, w.ga + (size_t)n * Lp + l, sizeof x);
          memcpy(&t, w.thT + (size_t)c * Lp + l, sizeof t);
          acc += x * t;
        }
        dy_real g = 0;
        for (int j = 0; j < DY_SW_VL; j++) g += acc[j];
        gdz[(size_t)n * d + c] += g;
      }
  double sum = 0;
  for (int h = 0; h < DY_SW_NH; h++)
    for (int j = 0; j < 4; j++) sum += sumv[h][j];
  return sum / ((double)L * B);
}

/* The prior's inputs at elements k..k+VL-1: v[0] g, v[1] M, v[2] f + J, v[3] x (eps or dz). */
static inline void dy_prior_load(size_t k, const dy_real *f, const dy_real *g, const dy_real *M, const dy_real *J,
                                 const dy_real *x, dy_rvec v[4])
{
  dy_rvec fv, jv;
  memcpy(&v[0], g + k, sizeof v[0]);
  memcpy(&v[1], M + k, sizeof v[1]);
  memcpy(&fv, f + k, sizeof fv);
  memcpy(&jv, J + k, sizeof jv);
  memcpy(&v[3], x + k, sizeof v[3]);
  v[2] = fv + jv;
}

void dy_prior_sample(int B, int d, int learned, const dy_real *f, const dy_real *g, const dy_real *M, const dy_real *J,
                     const dy_real *eps, dy_real *dzp)
{
  const size_t m = (size_t)B * d;
  const dy_real sqrt2 = (dy_real)M_SQRT2;
  if (!learned) {
    for (size_t k = 0; k < m; k++) dzp[k] = f[k] + sqrt2 * eps[k];
    return;
  }
  size_t k = 0;
  for (; k + DY_SW_VL <= m; k += DY_SW_VL) {
    dy_rvec v[4], sM;
    dy_prior_load(k, f, g, M, J, eps, v);
#if defined(DY_REAL_DOUBLE)
    for (int j = 0; j < DY_SW_VL; j++) sM[j] = sqrt(v[1][j]);
#else
    for (int j = 0; j < DY_SW_VL; j++) sM[j] = sqrtf(v[1][j]);
#endif
    const dy_rvec out = v[1] * v[2] + sqrt2 * sM * v[3];
    memcpy(dzp + k, &out, sizeof out);
  }
  for (; k < m; k++) {
#if defined(DY_REAL_DOUBLE)
    const dy_real sM = sqrt(M[k]);
#else
    const dy_real sM = sqrtf(M[k]);
#endif
    dzp[k] = M[k] * (f[k] + J[k]) + sqrt2 * sM * eps[k];
  }
}

double dy_prior_nll(int B, int d, const dy_real *dz, const dy_real *f, const dy_real *g, const dy_real *M,
                    const dy_real *J, double scale, dy_real *df, dy_real *dg, dy_real *dJ)
{
  /* Per element with s = f + J, r = dz - M s: T = (g + r^2 / (2M)) / 2, so
   * dT/ds = -r/2 and dT/dg = (1 - r s - r^2 / (2M)) / 2. */
  const size_t m = (size_t)B * d;
  const dy_real sc = (dy_real)scale;
  double sum = 0;
  size_t k = 0;
  dy_dvec sv[DY_SW_NH] = {{0}}; /* per-lane sums of the terms */
  for (; k + DY_SW_VL <= m; k += DY_SW_VL) {
    dy_rvec v[4];
    dy_prior_load(k, f, g, M, J, dz, v);
    const dy_rvec M = v[1], iM = 1 / M, s = v[2];
    const dy_rvec r = v[3] - M * s, q = (dy_real)0.5 * r * r * iM, t = (dy_real)0.5 * (v[0] + q);
    for (int h = 0; h < DY_SW_NH; h++) {
      dy_hvec part;
      memcpy(&part, (const dy_real *)&t + 4 * h, sizeof part);
      sv[h] += __builtin_convertvector(part, dy_dvec);
    }
    if (df) {
      const dy_rvec gs = -(dy_real)0.5 * sc * r, gg = (dy_real)0.5 * sc * (1 - r * s - q);
      dy_rvec x;
      memcpy(&x, df + k, sizeof x), x += gs, memcpy(df + k, &x, sizeof x);
      memcpy(&x, dJ + k, sizeof x), x += gs, memcpy(dJ + k, &x, sizeof x);
      memcpy(&x, dg + k, sizeof x), x += gg, memcpy(dg + k, &x, sizeof x);
    }
  }
  for (int h = 0; h < DY_SW_NH; h++)
    for (int j = 0; j < 4; j++) sum += sv[h][j];
  for (; k < m; k++) {
    const dy_real iM = 1 / M[k];
    const dy_real s = f[k] + J[k], r = dz[k] - M[k] * s, q = (dy_real)0.5 * r * r * iM;
    sum += (double)((dy_real)0.5 * (g[k] + q));
    if (df) {
      const dy_real gs = -(dy_real)0.5 * sc * r;
      df[k] += gs;
      dJ[k] += gs;
      dg[k] += (dy_real)0.5 * sc * (1 - r * s - q);
    }
  }
  return sum;
}
