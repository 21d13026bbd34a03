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
  for (size_t k = 0; k < m; k++) {
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

/* The projections are sorted DY_SW_GROUP at a time by one bitonic network whose compare-exchange
 * acts on whole rows: row n holds the keys of a_n for the group's projections, then those of b_n, so
 * every lane is an independent sort and the network vectorises without shuffles. The keys of a
 * carry the row index in their low bits (the permutation is what the gradient needs); the few pairs
 * this puts out of order (values equal in all other bits) are put right afterwards by an insertion
 * pass on the true values. */
#define DY_SW_GROUP 8
#define DY_SW_LANES (2 * DY_SW_GROUP)
typedef dy_key dy_kvec __attribute__((vector_size(32)));
#define DY_SW_NKV ((int)(DY_SW_LANES * sizeof(dy_key) / 32)) /* vectors per row */

static int dy_pow2_at_least(int n)
{
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

static inline void dy_sw_exchange(dy_key *lo, dy_key *hi)
{
  for (int v = 0; v < DY_SW_NKV; v++) {
    dy_kvec a, b;
    memcpy(&a, lo + v * (32 / sizeof(dy_key)), 32);
    memcpy(&b, hi + v * (32 / sizeof(dy_key)), 32);
    const dy_kvec m = (dy_kvec)(a < b);
    const dy_kvec mn = (a & m) | (b & ~m), mx = (b & m) | (a & ~m);
    memcpy(lo + v * (32 / sizeof(dy_key)), &mn, 32);
    memcpy(hi + v * (32 / sizeof(dy_key)), &mx, 32);
  }
}

/* Sorts every lane of rows (P, DY_SW_LANES) ascending; P a power of two. Each merge starts by
 * comparing mirrored rows so that every compare-exchange puts the minimum first. */
static void dy_sw_sort_rows(int P, dy_key *rows)
{
  for (int size = 2; size <= P; size *= 2) {
    for (int b0 = 0; b0 < P; b0 += size)
      for (int t = 0; t < size / 2; t++)
        dy_sw_exchange(rows + (size_t)(b0 + t) * DY_SW_LANES, rows + (size_t)(b0 + size - 1 - t) * DY_SW_LANES);
    for (int stride = size / 4; stride > 0; stride /= 2)
      for (int b0 = 0; b0 < P; b0 += 2 * stride)
        for (int t = 0; t < stride; t++)
          dy_sw_exchange(rows + (size_t)(b0 + t) * DY_SW_LANES, rows + (size_t)(b0 + t + stride) * DY_SW_LANES);
  }
}

size_t dy_sw_work_bytes(int B)
{
  /* key rows, true values of a for a group, one permutation */
  const size_t P = (size_t)dy_pow2_at_least(B);
  return P * DY_SW_LANES * sizeof(dy_key) + (size_t)DY_SW_GROUP * B * sizeof(dy_real) + (size_t)B * sizeof(int32_t) +
         128;
}

double dy_sw_loss(int L, int B, int d, const dy_real *theta, const dy_real *dz, const dy_real *dzp, double scale,
                  dy_real *gdz, void *work)
{
  const int P = dy_pow2_at_least(B);
  dy_key *rows = work;
  dy_real *av = (dy_real *)(rows + (size_t)P * DY_SW_LANES); /* (GROUP, B) */
  int32_t *perm = (int32_t *)(av + (size_t)DY_SW_GROUP * B);
  dy_key imask = 0;
  while ((int)imask < B - 1) imask = 2 * imask + 1;
  const dy_real gscale = (dy_real)(2 * scale / ((double)L * B));
  double sum = 0;
  for (int l0 = 0; l0 < L; l0 += DY_SW_GROUP) {
    const int ng = DY_MIN(DY_SW_GROUP, L - l0);
    for (int n = 0; n < B; n++) {
      dy_key *row = rows + (size_t)n * DY_SW_LANES;
      for (int j = 0; j < DY_SW_GROUP; j++) {
        dy_real a = 0, b = 0;
        if (j < ng) {
          const dy_real *th = theta + (size_t)(l0 + j) * d;
          for (int k = 0; k < d; k++) {
            a += th[k] * dz[(size_t)n * d + k];
            b += th[k] * dzp[(size_t)n * d + k];
          }
        }
        av[(size_t)j * B + n] = a;
        row[j] = (dy_key_of(a) & ~imask) | (dy_key)n;
        row[DY_SW_GROUP + j] = dy_key_of(b);
      }
    }
    memset(rows + (size_t)B * DY_SW_LANES, 0xff, (size_t)(P - B) * DY_SW_LANES * sizeof *rows);
    dy_sw_sort_rows(P, rows);
    for (int j = 0; j < ng; j++) {
      const dy_real *a = av + (size_t)j * B;
      for (int k = 0; k < B; k++) {
        int32_t i = (int32_t)(rows[(size_t)k * DY_SW_LANES + j] & imask), m = k;
        for (; m > 0 && a[perm[m - 1]] > a[i]; m--) perm[m] = perm[m - 1];
        perm[m] = i;
      }
      const dy_real *th = theta + (size_t)(l0 + j) * d;
      for (int k = 0; k < B; k++) {
        const dy_real e = a[perm[k]] - dy_value_of(rows[(size_t)k * DY_SW_LANES + DY_SW_GROUP + j]);
        sum += (double)(e * e);
        if (gdz) {
          dy_real *g = gdz + (size_t)perm[k] * d;
          for (int c = 0; c < d; c++) g[c] += gscale * e * th[c];
        }
      }
    }
  }
  return sum / ((double)L * B);
}

void dy_prior_sample(int B, int d, int learned, const dy_real *f, const dy_real *g, const dy_real *J, const dy_real *eps,
                     dy_real *dzp)
{
  const size_t m = (size_t)B * d;
  const dy_real sqrt2 = (dy_real)M_SQRT2;
  if (!learned) {
    for (size_t k = 0; k < m; k++) dzp[k] = f[k] + sqrt2 * eps[k];
    return;
  }
  for (size_t k = 0; k < m; k++) {
#if defined(DY_REAL_DOUBLE)
    const dy_real M = exp(g[k]), sM = sqrt(M);
#else
    const dy_real M = expf(g[k]), sM = sqrtf(M);
#endif
    dzp[k] = M * (f[k] + J[k]) + sqrt2 * sM * eps[k];
  }
}

double dy_prior_nll(int B, int d, const dy_real *dz, const dy_real *f, const dy_real *g, const dy_real *J, double scale,
                    dy_real *df, dy_real *dg, dy_real *dJ)
{
  /* Per element with s = f + J, r = dz - M s: T = (g + r^2 / (2M)) / 2, so
   * dT/ds = -r/2 and dT/dg = (1 - r s - r^2 / (2M)) / 2. */
  const size_t m = (size_t)B * d;
  const dy_real sc = (dy_real)scale;
  double sum = 0;
  for (size_t k = 0; k < m; k++) {
#if defined(DY_REAL_DOUBLE)
    const dy_real M = exp(g[k]), iM = exp(-g[k]);
#else
    const dy_real M = expf(g[k]), iM = expf(-g[k]);
#endif
    const dy_real s = f[k] + J[k], r = dz[k] - M * s, q = (dy_real)0.5 * r * r * iM;
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
