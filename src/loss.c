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

/* Sorts key (n) ascending, permuting idx (n) alongside when non-NULL; ktmp, itmp are scratch (n). */
static void dy_radix_sort(int n, dy_key *key, int32_t *idx, dy_key *ktmp, int32_t *itmp)
{
  dy_key *ks = key, *kd = ktmp;
  int32_t *is = idx, *id = itmp;
  for (unsigned shift = 0; shift < 8 * sizeof(dy_key); shift += 8) {
    int count[256] = {0};
    for (int k = 0; k < n; k++) count[(ks[k] >> shift) & 255]++;
    if (count[(ks[0] >> shift) & 255] == n) continue; /* all share this digit */
    int pos = 0;
    for (int c = 0; c < 256; c++) {
      const int t = count[c];
      count[c] = pos;
      pos += t;
    }
    for (int k = 0; k < n; k++) {
      const int p = count[(ks[k] >> shift) & 255]++;
      kd[p] = ks[k];
      if (is) id[p] = is[k];
    }
    dy_key *kt = ks;
    ks = kd;
    kd = kt;
    int32_t *it = is;
    is = id;
    id = it;
  }
  if (ks != key) {
    memcpy(key, ks, (size_t)n * sizeof *key);
    if (idx) memcpy(idx, is, (size_t)n * sizeof *idx);
  }
}

size_t dy_sw_work_bytes(int B)
{
  /* keys of a and b, one scratch key array, row indices and their scratch, values of a */
  const size_t b = (size_t)B;
  return 3 * b * sizeof(dy_key) + 2 * b * sizeof(int32_t) + b * sizeof(dy_real) + 64;
}

double dy_sw_loss(int L, int B, int d, const dy_real *theta, const dy_real *dz, const dy_real *dzp, double scale,
                  dy_real *gdz, void *work)
{
  dy_key *ka = work, *kb = ka + B, *ktmp = kb + B;
  int32_t *ia = (int32_t *)(ktmp + B), *itmp = ia + B;
  dy_real *av = (dy_real *)(itmp + B);
  const dy_real gscale = (dy_real)(2 * scale / ((double)L * B));
  double sum = 0;
  for (int l = 0; l < L; l++) {
    const dy_real *th = theta + (size_t)l * d;
    for (int n = 0; n < B; n++) {
      dy_real a = 0, b = 0;
      for (int k = 0; k < d; k++) {
        a += th[k] * dz[(size_t)n * d + k];
        b += th[k] * dzp[(size_t)n * d + k];
      }
      av[n] = a;
      ka[n] = dy_key_of(a);
      kb[n] = dy_key_of(b);
      ia[n] = n;
    }
    dy_radix_sort(B, ka, ia, ktmp, itmp);
    dy_radix_sort(B, kb, NULL, ktmp, NULL);
    for (int k = 0; k < B; k++) {
      const dy_real e = av[ia[k]] - dy_value_of(kb[k]);
      sum += (double)(e * e);
      if (gdz) {
        dy_real *g = gdz + (size_t)ia[k] * d;
        for (int c = 0; c < d; c++) g[c] += gscale * e * th[c];
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
