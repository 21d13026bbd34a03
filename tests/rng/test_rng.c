/* The generators of dy_rng.h: the normal sampler's distribution (moments, Kolmogorov-Smirnov
 * distance, the mass of both tails and of a few inner intervals), unit vectors, and the state as a
 * value (a copy continues the same sequence, also mid-pair, as a checkpoint needs). Fails on any
 * deviation beyond about five standard errors. */
#include "base/dy_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                                              \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      printf("FAIL: " __VA_ARGS__);                                                                                    \
      printf("\n");                                                                                                    \
      failures++;                                                                                                      \
    }                                                                                                                  \
  } while (0)

static int cmp_double(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* Fraction of n samples in [lo, hi) against its probability: within 5 binomial standard errors. */
static void check_mass(const char *what, const double *v, int n, double lo, double hi)
{
  int in = 0;
  for (int i = 0; i < n; i++) in += v[i] >= lo && v[i] < hi;
  const double p = normal_cdf(hi) - normal_cdf(lo), se = sqrt(p * (1 - p) / n);
  CHECK(fabs((double)in / n - p) <= 5 * se + 1e-12, "%s: fraction %.6g, expected %.6g (se %.2g)", what,
        (double)in / n, p, se);
}

static void check_normal(uint64_t seed)
{
  enum { N = 2000000 };
  double *v = malloc(N * sizeof *v);
  DyRng rng;
  dy_rng_seed(&rng, seed, 7);
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < N; i++) {
    v[i] = dy_rng_normal(&rng);
    CHECK(isfinite(v[i]), "seed %llu: sample %d is %g", (unsigned long long)seed, i, v[i]);
    s1 += v[i];
    s2 += v[i] * v[i];
    s4 += v[i] * v[i] * v[i] * v[i];
  }
  const double mean = s1 / N, var = s2 / N - mean * mean, k4 = s4 / N;
  CHECK(fabs(mean) < 5 / sqrt(N), "seed %llu: mean %.3g", (unsigned long long)seed, mean);
  CHECK(fabs(var - 1) < 5 * sqrt(2.0 / N), "seed %llu: variance %.6f", (unsigned long long)seed, var);
  CHECK(fabs(k4 - 3) < 5 * sqrt(96.0 / N), "seed %llu: fourth moment %.4f", (unsigned long long)seed, k4);
  /* both tails, a far tail, and inner intervals on either side of 0 */
  check_mass("tail > 3.6541", v, N, 3.6541528853610088, INFINITY);
  check_mass("tail < -3.6541", v, N, -INFINITY, -3.6541528853610088);
  check_mass("beyond 4.5", v, N, 4.5, INFINITY);
  check_mass("[1.3, 1.4)", v, N, 1.3, 1.4);
  check_mass("[-0.25, 0)", v, N, -0.25, 0.0);
  check_mass("[0, 0.2)", v, N, 0.0, 0.2);
  /* Kolmogorov-Smirnov distance: 1.95 / sqrt(N) is exceeded with probability ~0.001 */
  qsort(v, N, sizeof *v, cmp_double);
  double dmax = 0;
  for (int i = 0; i < N; i++) {
    const double F = normal_cdf(v[i]);
    dmax = fmax(dmax, fmax(fabs(F - (double)i / N), fabs((double)(i + 1) / N - F)));
  }
  CHECK(dmax < 1.95 / sqrt(N), "seed %llu: Kolmogorov-Smirnov distance %.3g (limit %.3g)", (unsigned long long)seed,
        dmax, 1.95 / sqrt(N));
  printf("normal, seed %llu: mean %.2e var %.5f m4 %.4f KS %.2e\n", (unsigned long long)seed, mean, var, k4, dmax);
  free(v);
}

static void check_state(void)
{
  DyRng a, b;
  dy_rng_seed(&a, 42, 3);
  for (int i = 0; i < 1001; i++) dy_rng_normal(&a);
  memcpy(&b, &a, sizeof b); /* what a checkpoint saves and restores */
  for (int i = 0; i < 1000; i++) {
    const double x = dy_rng_normal(&a), y = dy_rng_normal(&b);
    CHECK(memcmp(&x, &y, sizeof x) == 0, "copied state: draw %d differs (%g, %g)", i, x, y);
  }
  DyRng d, e;
  dy_rng_seed(&d, 42, 3);
  dy_rng_seed(&e, 42, 4);
  int same = 0;
  for (int i = 0; i < 100; i++) same += dy_rng_normal(&d) == dy_rng_normal(&e);
  CHECK(same < 5, "streams 3 and 4 of one seed agree on %d of 100 draws", same);
}

static void check_unit_vectors(void)
{
  enum { N = 200000, D = 3 };
  DyRng rng;
  dy_rng_seed(&rng, 5, 9);
  double mean[D] = {0}, zz = 0;
  for (int i = 0; i < N; i++) {
    double v[D];
    dy_rng_unit_vector(&rng, D, v);
    const double n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    CHECK(fabs(n2 - 1) < 1e-12, "unit vector %d has squared norm %.17g", i, n2);
    for (int k = 0; k < D; k++) mean[k] += v[k] / N;
    zz += v[2] * v[2] / N;
  }
  /* uniform on the sphere: zero mean, E[z^2] = 1/3 (variance of z^2 is 4/45) */
  for (int k = 0; k < D; k++) CHECK(fabs(mean[k]) < 5 * sqrt(1.0 / (3 * N)), "unit vectors: mean[%d] %.3g", k, mean[k]);
  CHECK(fabs(zz - 1.0 / 3) < 5 * sqrt(4.0 / 45 / N), "unit vectors: E[z^2] %.5f, expected 1/3", zz);
}

int main(void)
{
  check_normal(1);
  check_normal(20261128);
  check_state();
  check_unit_vectors();
  if (failures) printf("%d check(s) failed\n", failures);
  else printf("all random-number checks passed\n");
  return failures ? 1 : 0;
}
