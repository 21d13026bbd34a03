/* Times the distributed clustering, the assignment and the bin counts on n 2-D points spread at
 * random over the ranks, and checks the clustering invariants on the result.
 * Usage: cluster_bench_cluster [n] [d_min] [repeats] */
#include "cluster_testlib.h"

#include <stdlib.h>
#include <time.h>

#define MAX_CENTERS 2000

static int cmp_double(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Processor time of this process: on a shared machine the wall time also counts other jobs. */
static double cpu_seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Median over repeats of the slowest rank's time. */
static double median(double *t, int r)
{
  qsort(t, (size_t)r, sizeof *t, cmp_double);
  return t[r / 2];
}

int main(int argc, char **argv)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  int size, K = 0, rounds = 0, *bin;
  double *c, tc[32], ta[32], pc[32], ts = 0.0;
  int64_t *counts;
  dy_real *z, *zl;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  const int64_t n = argc > 1 ? atol(argv[1]) : 200000;
  const double d_min = argc > 2 ? atof(argv[2]) : 0.4;
  const int repeats = DY_MIN(32, argc > 3 ? atoi(argv[3]) : 5);
  MPI_Comm_size(comm, &size);
  PetscCall(PetscMalloc5(n * 2, &z, n * 2, &zl, MAX_CENTERS * 2, &c, n, &bin, MAX_CENTERS, &counts));
  dy_test_points_2d(n, 3, z);
  const int64_t m = dy_test_spread(comm, DY_SPREAD_HASH, 2, n, z, zl);
  for (int r = 0; r < repeats; r++) {
    double t0, p0, dt[2];
    MPI_Barrier(comm);
    t0 = MPI_Wtime();
    p0 = cpu_seconds();
    PetscCall(dy_cluster_regspace_rounds(comm, 2, m, zl, d_min, MAX_CENTERS, 0, &K, c, &rounds));
    dt[0] = MPI_Wtime() - t0;
    dt[1] = cpu_seconds() - p0;
    MPI_Allreduce(dt, &tc[r], 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(dt + 1, &pc[r], 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Barrier(comm);
    t0 = MPI_Wtime();
    PetscCall(dy_cluster_assign(2, m, zl, K, c, bin));
    PetscCall(dy_cluster_counts(comm, m, bin, K, counts));
    dt[0] = MPI_Wtime() - t0;
    MPI_Allreduce(dt, &ta[r], 1, MPI_DOUBLE, MPI_MAX, comm);
  }
  if (dy_is_root(comm)) {
    int Ks;
    const double t0 = cpu_seconds();
    PetscCall(dy_cluster_serial(2, n, z, d_min, MAX_CENTERS, &Ks, c));
    ts = cpu_seconds() - t0;
    printf("serial algorithm on all points, rank 0: %d centres in %.4f s (processor)\n", Ks, ts);
  }
  PetscCall(dy_cluster_regspace(comm, 2, m, zl, d_min, MAX_CENTERS, &K, c));
  if (dy_is_root(comm))
    printf("%ld 2-D points on %d ranks, d_min %g: %d centres in %d rounds; clustering %.4f s (processor %.4f s), "
           "assignment + counts %.4f s (medians of %d, slowest rank)\n",
           (long)n, size, d_min, K, rounds, median(tc, repeats), median(pc, repeats), median(ta, repeats), repeats);
  dy_test_invariants(comm, "benchmark", 2, m, zl, n, z, K, c, d_min);
  PetscCall(PetscFree5(z, zl, c, bin, counts));
  const int rc = dy_test_finish("cluster benchmark");
  PetscCall(PetscFinalize());
  return rc;
}
