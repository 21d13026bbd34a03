/* Distributed regular-space clustering: exact at one rank (equal to the serial algorithm, also
 * over several merge rounds), the invariants at any rank count and way of spreading the points,
 * identical results on every rank, the max_centers error, Voronoi assignment and bin counts. */
#include "cluster_testlib.h"

#include <stdlib.h>

#define MAX_CENTERS 1000

static PetscErrorCode compare_to_serial(const char *name, int d, int64_t n, const dy_real *z, double d_min)
{
  static const int caps[] = {1, 3, 16, 0};
  double *cs, *c;
  int Ks, K, rounds;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(MAX_CENTERS * d, &cs, MAX_CENTERS * d, &c));
  PetscCall(dy_cluster_serial(d, n, z, d_min, MAX_CENTERS, &Ks, cs));
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    PetscCall(dy_cluster_regspace_rounds(PETSC_COMM_SELF, d, n, z, d_min, MAX_CENTERS, caps[i], &K, c, &rounds));
    CHECK(K == Ks && memcmp(c, cs, sizeof(double) * (size_t)K * d) == 0,
          "%s: one-rank clustering with cap %d gives %d centres, serial %d (or different ones)", name, caps[i], K, Ks);
    if (caps[i] == 1) CHECK(rounds == Ks, "%s: cap 1 took %d rounds for %d centres", name, rounds, Ks);
  }
  if (dy_is_root(MPI_COMM_WORLD)) printf("%s: %ld points, d_min %g: %d centres (serial)\n", name, (long)n, d_min, Ks);
  PetscCall(PetscFree2(cs, c));
  PetscFunctionReturn(0);
}

/* Every spreading pattern and a few proposal caps on MPI_COMM_WORLD. */
static PetscErrorCode check_distributed(const char *name, int d, int64_t n, const dy_real *z, double d_min)
{
  static const int caps[] = {0, 1, 5};
  MPI_Comm comm = MPI_COMM_WORLD;
  double *cs, *c;
  dy_real *zl;
  int Ks, K, rounds, size;
  char what[160];

  PetscFunctionBegin;
  MPI_Comm_size(comm, &size);
  PetscCall(PetscMalloc3(MAX_CENTERS * d, &cs, MAX_CENTERS * d, &c, n * d, &zl));
  PetscCall(dy_cluster_serial(d, n, z, d_min, MAX_CENTERS, &Ks, cs));
  for (int pattern = 0; pattern < DY_SPREAD_COUNT; pattern++) {
    const int64_t m = dy_test_spread(comm, pattern, d, n, z, zl);
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
      PetscCall(dy_cluster_regspace_rounds(comm, d, m, zl, d_min, MAX_CENTERS, caps[i], &K, c, &rounds));
      snprintf(what, sizeof what, "%s, %d ranks, %s, cap %d", name, size, dy_spread_name[pattern], caps[i]);
      dy_test_invariants(comm, what, d, m, zl, n, z, K, c, d_min);
      if (size == 1) CHECK(K == Ks && memcmp(c, cs, sizeof(double) * (size_t)K * d) == 0, "%s: not the serial result", what);
      if (dy_is_root(comm) && caps[i] == 0) printf("%s: %d centres in %d rounds\n", what, K, rounds);
    }
  }
  PetscCall(PetscFree3(cs, c, zl));
  PetscFunctionReturn(0);
}

/* More centres than max_centers: DY_ERR_INPUT telling the user to raise cluster.d_min, serially
 * and on every rank together; exactly max_centers is fine. */
static PetscErrorCode check_too_many(int d, int64_t n, const dy_real *z, double d_min)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  double *c;
  dy_real *zl;
  int K, Kmax, K2;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(MAX_CENTERS * d, &c, n * d, &zl));
  PetscCall(dy_cluster_serial(d, n, z, d_min, MAX_CENTERS, &Kmax, c));
  PetscCall(dy_cluster_serial(d, n, z, d_min, Kmax, &K, c));
  CHECK(K == Kmax, "serial with max_centers = K gives %d, expected %d", K, Kmax);
  PetscCall(PetscPushErrorHandler(dy_test_capture, NULL));
  dy_test_message[0] = 0;
  ierr = dy_cluster_serial(d, n, z, d_min, Kmax - 1, &K, c);
  PetscCall(PetscPopErrorHandler());
  CHECK(ierr == DY_ERR_INPUT, "serial with max_centers = %d < %d returned %d", Kmax - 1, Kmax, (int)ierr);
  char expect[96];
  snprintf(expect, sizeof expect, "cluster.max_centers = %d centres at cluster.d_min = %g", Kmax - 1, d_min);
  CHECK(strstr(dy_test_message, "raise cluster.d_min") && strstr(dy_test_message, expect),
        "message does not give the numbers or tell what to do: '%s'", dy_test_message);

  /* The same proposal cap in both runs makes them identical up to the overflow. */
  const int64_t m = dy_test_spread(comm, DY_SPREAD_HASH, d, n, z, zl);
  PetscCall(dy_cluster_regspace_rounds(comm, d, m, zl, d_min, MAX_CENTERS, 8, &Kmax, c, NULL));
  PetscCall(dy_cluster_regspace_rounds(comm, d, m, zl, d_min, Kmax, 8, &K2, c, NULL));
  CHECK(K2 == Kmax, "distributed with max_centers = K gives %d, expected %d", K2, Kmax);
  PetscCall(PetscPushErrorHandler(dy_test_capture, NULL));
  dy_test_message[0] = 0;
  ierr = dy_cluster_regspace_rounds(comm, d, m, zl, d_min, Kmax - 1, 8, &K2, c, NULL);
  PetscCall(PetscPopErrorHandler());
  CHECK(ierr == DY_ERR_INPUT, "distributed with max_centers = %d < %d returned %d", Kmax - 1, Kmax, (int)ierr);
  CHECK(strstr(dy_test_message, "raise cluster.d_min") != NULL, "distributed message: '%s'", dy_test_message);

  /* A non-finite latent point on one rank fails every rank together. */
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank == size - 1) zl[0] = (dy_real)NAN;
  PetscCall(PetscPushErrorHandler(dy_test_capture, NULL));
  ierr = dy_cluster_regspace(comm, d, m, zl, d_min, MAX_CENTERS, &K2, c);
  PetscCall(PetscPopErrorHandler());
  CHECK(ierr == DY_ERR_DIVERGED, "NaN latent point: returned %d", (int)ierr);
  PetscCall(PetscFree2(c, zl));
  PetscFunctionReturn(0);
}

/* Nearest centre with ties to the lowest index; bin counts summed over ranks. */
static PetscErrorCode check_assign(int d, int64_t n, const dy_real *z, double d_min)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  const double tie_c[] = {2.0, 0.0, 0.0, 0.0, 1.0, 5.0, 0.0, 0.0};
  const dy_real tie_z[] = {1.0f, 0.0f, 1.0f, 2.5f, 0.0f, 0.0f};
  int tie_bin[3], K, *bin, *binl;
  int64_t *counts, *expect;
  double *c;
  dy_real *zl;

  PetscFunctionBegin;
  /* centres (2,0), (0,0), (1,5), (0,0) again */
  PetscCall(dy_cluster_assign(2, 3, tie_z, 4, tie_c, tie_bin));
  CHECK(tie_bin[0] == 0 && tie_bin[1] == 2 && tie_bin[2] == 1, "tie bins %d %d %d, expected 0 2 1", tie_bin[0],
        tie_bin[1], tie_bin[2]);

  PetscCall(PetscMalloc6(MAX_CENTERS * d, &c, n * d, &zl, n, &bin, n, &binl, MAX_CENTERS, &counts, MAX_CENTERS,
                         &expect));
  const int64_t m = dy_test_spread(comm, DY_SPREAD_ROUND_ROBIN, d, n, z, zl);
  PetscCall(dy_cluster_regspace(comm, d, m, zl, d_min, MAX_CENTERS, &K, c));
  PetscCall(dy_cluster_assign(d, n, z, K, c, bin));
  for (int k = 0; k < K; k++) expect[k] = 0;
  for (int64_t p = 0; p < n; p++) {
    double best = INFINITY;
    int arg = -1;
    for (int k = 0; k < K; k++) {
      const double s = dy_test_dist2(d, z + p * d, c + k * d);
      if (s < best) best = s, arg = k;
    }
    CHECK(bin[p] == arg || dy_test_dist2(d, z + p * d, c + bin[p] * d) == best, "point %ld: bin %d, nearest %d",
          (long)p, bin[p], arg);
    expect[bin[p]]++;
  }
  PetscCall(dy_cluster_assign(d, m, zl, K, c, binl));
  PetscCall(dy_cluster_counts(comm, m, binl, K, counts));
  for (int k = 0; k < K; k++) CHECK(counts[k] == expect[k], "bin %d: count %ld, expected %ld", k, (long)counts[k], (long)expect[k]);
  PetscCall(PetscFree6(c, zl, bin, binl, counts, expect));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  const int64_t n2 = 4000, n3 = 3000;
  dy_real *z2, *z3;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(PetscMalloc2(n2 * 2, &z2, n3 * 3, &z3));
  dy_test_points_2d(n2, 1, z2);
  dy_test_points_3d(n3, 2, z3);
  PetscCall(compare_to_serial("2-D", 2, n2, z2, 0.5));
  PetscCall(compare_to_serial("3-D", 3, n3, z3, 1.0));
  PetscCall(check_distributed("2-D", 2, n2, z2, 0.5));
  PetscCall(check_distributed("2-D coarse", 2, n2, z2, 2.0));
  PetscCall(check_distributed("3-D", 3, n3, z3, 1.0));
  PetscCall(check_too_many(2, n2, z2, 0.8));
  PetscCall(check_assign(2, n2, z2, 0.8));
  PetscCall(check_assign(3, n3, z3, 1.2));
  PetscCall(PetscFree2(z2, z3));
  const int rc = dy_test_finish("cluster");
  PetscCall(PetscFinalize());
  return rc;
}
