/* Times the sliced-Wasserstein loss kernel dy_sw_loss alone, without MPI.
 *
 *   bench_sw [--B 256] [--L 50] [--d 2] [--dup 0] [--reps 5000] [--warmup 200]
 *
 * Inputs (dz, dzp normal, theta unit vectors) come from a ring of pre-drawn sets, so that the timed
 * calls see changing data as in training; --dup N makes N rows of dz copies of others (pairs drawn
 * twice from the same frames, as batches drawn with replacement have). Prints the median and
 * minimum microseconds per call with the gradient (gdz) and without it. */
#include "nn/dy_nn.h"
#include "base/dy_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NRING 16 /* pre-drawn input sets cycled through */

/* microseconds on the monotonic clock */
static double clock_us(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int by_value(const void *p, const void *q)
{
  const double a = *(const double *)p, b = *(const double *)q;
  return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
  int B = 256, L = 50, d = 2, dup = 0, reps = 5000, warmup = 200;
  for (int i = 1; i < argc; ++i) {
    int *ival = !strcmp(argv[i], "--B")        ? &B
                : !strcmp(argv[i], "--L")      ? &L
                : !strcmp(argv[i], "--d")      ? &d
                : !strcmp(argv[i], "--dup")    ? &dup
                : !strcmp(argv[i], "--reps")   ? &reps
                : !strcmp(argv[i], "--warmup") ? &warmup
                                               : NULL;
    if (!ival || i + 1 >= argc) {
      fprintf(stderr, "bench_sw: unknown or incomplete option '%s'\n", argv[i]);
      return 1;
    }
    *ival = atoi(argv[++i]);
  }
  if (B < 2 || L < 1 || d < 1 || d > 64 || dup < 0 || dup >= B || reps < 1 || warmup < 0) {
    fprintf(stderr, "bench_sw: need B >= 2, L >= 1, 1 <= d <= 64, 0 <= dup < B, reps >= 1, warmup >= 0\n");
    return 1;
  }
  DyRng rng;
  dy_rng_seed(&rng, 0, 1);
  const size_t nz = (size_t)B * d, nt = (size_t)L * d;
  dy_real *dz = malloc(sizeof(dy_real) * nz * NRING), *dzp = malloc(sizeof(dy_real) * nz * NRING);
  dy_real *theta = malloc(sizeof(dy_real) * nt * NRING), *gdz = calloc(nz, sizeof(dy_real));
  double v[64], *times = malloc(sizeof(double) * reps);
  for (size_t k = 0; k < nz * NRING; ++k) dz[k] = (dy_real)dy_rng_normal(&rng), dzp[k] = (dy_real)dy_rng_normal(&rng);
  for (int r = 0; r < NRING; ++r) /* rows B - dup.. copy rows drawn from the first B - dup */
    for (int n = B - dup; n < B; ++n)
      memcpy(dz + r * nz + (size_t)n * d, dz + r * nz + dy_rng_below(&rng, B - dup) * d, sizeof(dy_real) * d);
  for (int l = 0; l < L * NRING; ++l) {
    dy_rng_unit_vector(&rng, d, v);
    for (int c = 0; c < d; ++c) theta[(size_t)l * d + c] = (dy_real)v[c];
  }
  void *work = aligned_alloc(64, (dy_sw_work_bytes(B, L, d) + 63) / 64 * 64);
  printf("dy_sw_loss, %s precision, B %d (%d repeated), L %d, d %d, %d calls\n",
         sizeof(dy_real) == 4 ? "single" : "double", B, dup, L, d, reps);
  double sink = 0;
  for (int grad = 1; grad >= 0; --grad) {
    for (int s = 0; s < warmup + reps; ++s) {
      const int r = s % NRING;
      const double t0 = clock_us();
      sink += dy_sw_loss(L, B, d, theta + r * nt, dz + r * nz, dzp + r * nz, 1.0, grad ? gdz : NULL, work);
      const double dt = clock_us() - t0;
      if (s >= warmup) times[s - warmup] = dt;
    }
    qsort(times, (size_t)reps, sizeof(double), by_value);
    printf("%-18s median %8.2f us  min %8.2f us\n", grad ? "with gradient" : "loss only", times[reps / 2], times[0]);
  }
  printf("(checksum %.6g)\n", sink + gdz[0]);
  free(dz), free(dzp), free(theta), free(gdz), free(times), free(work);
  return 0;
}
