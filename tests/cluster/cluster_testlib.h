/* Helpers of the clustering and resampling tests: checks that count failures, test point sets,
 * ways of spreading points over ranks, the clustering invariants, and capture of error messages. */
#pragma once
#include "parallel/dy_cluster.h"
#include "base/dy_rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int dy_test_failures = 0;

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      int rank_;                                                                                                       \
      MPI_Comm_rank(MPI_COMM_WORLD, &rank_);                                                                           \
      fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", rank_, __FILE__, __LINE__, #cond);                       \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, "\n");                                                                                           \
      dy_test_failures++;                                                                                              \
    }                                                                                                                  \
  } while (0)

/* Failures over all ranks of MPI_COMM_WORLD; the exit code of a test. */
static inline int dy_test_finish(const char *name)
{
  int total = 0;
  MPI_Allreduce(&dy_test_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (dy_is_root(MPI_COMM_WORLD)) printf("%s: %s (%d failed checks)\n", name, total ? "FAILED" : "passed", total);
  return total ? 1 : 0;
}

/* The last error message raised through PETSc, for checking what the user would read. */
static char dy_test_message[2048];

static inline PetscErrorCode dy_test_capture(MPI_Comm comm, int line, const char *fun, const char *file, PetscErrorCode n,
                                      PetscErrorType p, const char *mess, void *ctx)
{
  (void)comm, (void)line, (void)fun, (void)file, (void)ctx;
  if (p == PETSC_ERROR_INITIAL) snprintf(dy_test_message, sizeof dy_test_message, "%s", mess ? mess : "");
  return n;
}

/* A mixture of Gaussian blobs of different widths and weights and a noisy ring: (n, 2). */
static inline void dy_test_points_2d(int64_t n, uint64_t seed, dy_real *z)
{
  static const double blob[5][4] = {/* x, y, sd, weight */
                                    {0.0, 0.0, 0.6, 0.30}, {4.0, 1.0, 0.3, 0.15}, {-3.0, 3.5, 1.0, 0.15},
                                    {1.5, -4.0, 0.15, 0.10}, {-5.0, -5.0, 2.0, 0.05}};
  DyRng rng;
  dy_rng_seed(&rng, seed, 77);
  for (int64_t i = 0; i < n; i++) {
    double u = dy_rng_uniform(&rng), x, y;
    int b = 0;
    while (b < 5 && u >= blob[b][3]) u -= blob[b++][3];
    if (b < 5) {
      x = blob[b][0] + blob[b][2] * dy_rng_normal(&rng);
      y = blob[b][1] + blob[b][2] * dy_rng_normal(&rng);
    } else { /* the remaining 25%: a ring of radius 7 */
      const double a = 2.0 * M_PI * dy_rng_uniform(&rng), r = 7.0 + 0.2 * dy_rng_normal(&rng);
      x = r * cos(a);
      y = r * sin(a);
    }
    z[2 * i] = (dy_real)x;
    z[2 * i + 1] = (dy_real)y;
  }
}

/* Two blobs and a helix: (n, 3). */
static inline void dy_test_points_3d(int64_t n, uint64_t seed, dy_real *z)
{
  DyRng rng;
  dy_rng_seed(&rng, seed, 78);
  for (int64_t i = 0; i < n; i++) {
    const double u = dy_rng_uniform(&rng);
    double p[3];
    if (u < 0.5) {
      const double c = u < 0.3 ? 0.0 : 3.0, sd = u < 0.3 ? 0.7 : 0.3;
      for (int j = 0; j < 3; j++) p[j] = c + sd * dy_rng_normal(&rng);
    } else {
      const double t = 4.0 * M_PI * dy_rng_uniform(&rng);
      p[0] = 4.0 * cos(t) + 0.1 * dy_rng_normal(&rng);
      p[1] = 4.0 * sin(t) + 0.1 * dy_rng_normal(&rng);
      p[2] = t - 6.0;
    }
    for (int j = 0; j < 3; j++) z[3 * i + j] = (dy_real)p[j];
  }
}

enum { DY_SPREAD_BLOCKS, DY_SPREAD_ROUND_ROBIN, DY_SPREAD_HASH, DY_SPREAD_BY_ANGLE, DY_SPREAD_LAST_RANK, DY_SPREAD_COUNT };
__attribute__((unused)) static const char *const dy_spread_name[DY_SPREAD_COUNT] = {"blocks", "round-robin", "hashed", "by-angle", "all-on-last-rank"};

/* The rank that holds global point i under a spreading pattern. */
static inline int dy_test_owner(int pattern, int64_t i, int64_t n, int d, const dy_real *z, int size)
{
  switch (pattern) {
  case DY_SPREAD_BLOCKS: return (int)(i * size / n);
  case DY_SPREAD_ROUND_ROBIN: return (int)(i % size);
  case DY_SPREAD_HASH: return (int)(dy_hash_u64(11, 12, (uint64_t)i) % (uint64_t)size);
  case DY_SPREAD_BY_ANGLE: {
    const double a = atan2((double)z[i * d + 1], (double)z[i * d]) + M_PI; /* in [0, 2 pi] */
    return DY_MIN(size - 1, (int)(a / (2.0 * M_PI) * size));
  }
  default: return size - 1;
  }
}

/* Copies this rank's points (in global order) into zl; returns their number. */
static inline int64_t dy_test_spread(MPI_Comm comm, int pattern, int d, int64_t n, const dy_real *z, dy_real *zl)
{
  int rank, size;
  int64_t m = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  for (int64_t i = 0; i < n; i++)
    if (dy_test_owner(pattern, i, n, d, z, size) == rank) memcpy(zl + m++ * d, z + i * d, (size_t)d * sizeof *z);
  return m;
}

static inline double dy_test_dist2(int d, const dy_real *x, const double *c)
{
  double s = 0.0;
  for (int i = 0; i < d; i++) s += ((double)x[i] - c[i]) * ((double)x[i] - c[i]);
  return s;
}

/* Checks the clustering result on comm: identical on every rank, centres pairwise at least d_min
 * apart, every local point within d_min of a centre, every centre one of the global points. */
static inline void dy_test_invariants(MPI_Comm comm, const char *what, int d, int64_t n_local, const dy_real *zl,
                               int64_t n, const dy_real *z, int K, const double *centers, double d_min)
{
  const double tol = 1e-9 * d_min * d_min, dmin2 = d_min * d_min;
  int K0 = K, same, far = 1, covered = 1, onpoint = 1;
  double *c0;

  MPI_Bcast(&K0, 1, MPI_INT, 0, comm);
  c0 = malloc(sizeof(double) * (size_t)DY_MAX(K0, 1) * d);
  if (K0 == K) memcpy(c0, centers, sizeof(double) * (size_t)K * d);
  MPI_Bcast(c0, K0 * d, MPI_DOUBLE, 0, comm);
  same = K0 == K && memcmp(c0, centers, sizeof(double) * (size_t)K * d) == 0;
  CHECK(same, "%s: centres differ from rank 0's (K = %d vs %d)", what, K, K0);
  free(c0);
  for (int a = 0; a < K && far; a++)
    for (int b = 0; b < a && far; b++) {
      double s = 0.0;
      for (int i = 0; i < d; i++) s += (centers[a * d + i] - centers[b * d + i]) * (centers[a * d + i] - centers[b * d + i]);
      far = s >= dmin2 - tol;
      CHECK(far, "%s: centres %d and %d are %g apart, d_min %g", what, b, a, sqrt(s), d_min);
    }
  for (int64_t p = 0; p < n_local && covered; p++) {
    double best = INFINITY;
    for (int k = 0; k < K; k++) best = fmin(best, dy_test_dist2(d, zl + p * d, centers + k * d));
    covered = best <= dmin2 + tol;
    CHECK(covered, "%s: local point %ld is %g from the nearest centre, d_min %g", what, (long)p, sqrt(best), d_min);
  }
  for (int k = 0; k < K && onpoint; k++) {
    int found = 0;
    for (int64_t p = 0; p < n && !found; p++) found = dy_test_dist2(d, z + p * d, centers + k * d) == 0.0;
    onpoint = found;
    CHECK(found, "%s: centre %d is not one of the points", what, k);
  }
}
