/* dy_sw_loss against a plain sort, on projections full of near-ties (values a few units in the last
 * place apart, which the packed sort keys cannot tell apart and the tie pass must order) and exact
 * ties (kept in row order), with and without the gradient, in the precision of the build. */
#include "nn/dy_nn.h"
#include "base/dy_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ascending insertion sort of v (n) carrying idx */
static void sort_pairs(int n, dy_real *v, int *idx)
{
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      const dy_real t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
      const int k = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = k;
    }
}

/* pattern 0: rows repeat with period 85 (every component equal); pattern 1: components take few
 * values each, independently, so that rows of different dz tie exactly in some projections and
 * classes of equal rows hold several rows */
static int check(int B, int L, int d, uint64_t seed, int pattern)
{
  DyRng rng;
  dy_rng_seed(&rng, seed, 3);
  dy_real *dz = malloc(sizeof(dy_real) * B * d), *dzp = malloc(sizeof(dy_real) * B * d);
  dy_real *theta = malloc(sizeof(dy_real) * L * d), *g = calloc((size_t)B * d, sizeof(dy_real));
  double *gref = calloc((size_t)B * d, sizeof(double));
  /* a handful of base values, each repeated with a few ulps of difference: distinct, but equal in
   * all but the lowest bits */
  for (int n = 0; n < B; n++)
    for (int c = 0; c < d; c++) {
      const double base = pattern ? 0.25 * ((n / (1 + 3 * c)) % 4) - 0.4 : 0.1 * ((n * 7 + c) % 5) - 0.2;
      dy_real v = (dy_real)base;
      const int ulps = pattern ? (n * 5 + c) % 3 : (n * 13) % 17;
      for (int k = 0; k < ulps; k++) /* ulp offsets out of row order */
        v = sizeof v == sizeof(float) ? (dy_real)nextafterf((float)v, 10.0f) : (dy_real)nextafter((double)v, 10.0);
      dz[n * d + c] = v;
      dzp[n * d + c] = (dy_real)dy_rng_normal(&rng);
    }
  for (int l = 0; l < L; l++) { /* axis directions keep the projections exact copies of dz */
    for (int c = 0; c < d; c++) theta[l * d + c] = 0;
    theta[l * d + l % d] = (l / d) % 2 ? -1 : 1;
  }
  void *work = aligned_alloc(64, (dy_sw_work_bytes(B, L, d) + 63) / 64 * 64);
  const double loss = dy_sw_loss(L, B, d, theta, dz, dzp, 1.0, g, work);

  double ref = 0;
  dy_real *a = malloc(sizeof(dy_real) * B), *b = malloc(sizeof(dy_real) * B);
  int *ia = malloc(sizeof(int) * B), *ib = malloc(sizeof(int) * B);
  for (int l = 0; l < L; l++) {
    for (int n = 0; n < B; n++) {
      a[n] = b[n] = 0;
      for (int c = 0; c < d; c++) {
        a[n] += theta[l * d + c] * dz[n * d + c];
        b[n] += theta[l * d + c] * dzp[n * d + c];
      }
      ia[n] = ib[n] = n;
    }
    sort_pairs(B, a, ia);
    sort_pairs(B, b, ib);
    for (int k = 0; k < B; k++) {
      const double e = (double)a[k] - (double)b[k];
      ref += e * e / ((double)L * B);
      for (int c = 0; c < d; c++) gref[ia[k] * d + c] += 2 * e * theta[l * d + c] / ((double)L * B);
    }
  }
  double gerr = 0, gmax = 0;
  for (int i = 0; i < B * d; i++) {
    gerr = fmax(gerr, fabs(g[i] - gref[i]));
    gmax = fmax(gmax, fabs(gref[i]));
  }
  const double tol = sizeof(dy_real) == 4 ? 1e-5 : 1e-12;
  const double loss_only = dy_sw_loss(L, B, d, theta, dz, dzp, 1.0, NULL, work); /* sorts without rows */
  const int ok = fabs(loss - ref) <= tol * ref && fabs(loss_only - ref) <= tol * ref && gerr <= tol * gmax;
  printf("pattern %d, B %d, L %d, d %d: loss %.10g (without gradient %.10g, plain sort %.10g), gradient error %.2e "
         "of %.2e: %s\n",
         pattern, B, L, d, loss, loss_only, ref, gerr, gmax, ok ? "ok" : "FAIL");
  free(dz), free(dzp), free(theta), free(g), free(gref), free(work), free(a), free(b), free(ia), free(ib);
  return ok;
}

int main(void)
{
  int ok = 1;
  ok &= check(200, 10, 1, 1, 0);
  ok &= check(256, 50, 2, 2, 0);
  ok &= check(37, 3, 3, 3, 0);
  ok &= check(5, 9, 2, 4, 0);
  ok &= check(130, 7, 5, 5, 0);
  ok &= check(256, 50, 2, 6, 1);
  ok &= check(100, 9, 3, 7, 1);
  ok &= check(64, 4, 1, 8, 1);
  /* batch sizes at the edges of the sort's stages: the merges of 256 < B <= 512 rows end with a
   * stride-32 pass, larger ones go on; B = 2, 3 are the smallest blocks */
  static const int sizes[] = {2, 3, 255, 257, 511, 512, 1000};
  for (int i = 0; i < (int)(sizeof sizes / sizeof *sizes); i++) ok &= check(sizes[i], 5, 2, 20 + i, i % 2);
  printf("%s\n", ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}
