/* Benchmark of the distributed TICA (not a test): time and peak memory per rank.
 *
 *   mpiexec -n P bench_tica --D 4000 [--frames 2D] [--k 10] [--nb 64] [--json]
 *
 * One trajectory of `frames` frames of D features (single precision, as the program holds them),
 * spread over the ranks in contiguous blocks; every rank makes its own block from a counter-based
 * hash, so the data do not depend on P. Frame t is u_t + 0.8 u_{t-1} with u uniform per (t,
 * feature), so the lag-1 pairs are correlated and C0 is of full rank. It fits TICA at lag 1 with
 * k components and projects every frame, and prints the seconds of the three -log_view phases
 * (DyTicaCovariance, DyTicaEigensolve, DyTicaProjection), the peak resident memory (VmHWM of
 * /proc/self/status) of the largest rank, and what the D x D matrices of a TICA held whole by one
 * process would take (C0, Ct and the eigenvectors of C0: 3 D^2 doubles). Exit codes: 0 done,
 * 1 failure, 2 bad arguments. */
#include "analysis/dy_tica.h"
#include "base/dy_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp)
{
  fprintf(fp, "usage: mpiexec -n P bench_tica --D N [--frames F (default 2 D)] [--k K (10)] [--nb NB (64)] [--json]\n"
              "Times the distributed TICA (covariance, eigensolve, projection) and reports the peak\n"
              "memory per rank (VmHWM) against the 3 D^2 doubles one process would hold.\n");
}

/* Peak resident set of this process in bytes (VmHWM), or -1. */
static double peak_bytes(void)
{
  char line[256];
  double kb = -1;
  FILE *f = fopen("/proc/self/status", "r");

  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
  fclose(f);
  return kb < 0 ? -1 : kb * 1024.0;
}

static double event_seconds(const char *name)
{
  PetscLogEvent ev;
  PetscEventPerfInfo info;

  if (PetscLogEventGetId(name, &ev) || PetscLogEventGetPerfInfo(0, ev, &info)) return -1;
  return info.time;
}

static PetscErrorCode run(MPI_Comm comm, int D, int64_t frames, int k, int nb, int json)
{
  int size, rank;
  int64_t start, count, nread;
  dy_real *x;
  DyTica tica;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  start = frames * rank / size;
  count = frames * (rank + 1) / size - start;
  nread = DY_MIN(count + 1, frames - start); /* the block and the partner of its last frame */
  PetscCall(PetscMalloc1((size_t)DY_MAX(nread, 1) * D, &x));
  for (int64_t t = 0; t < nread; t++)
    for (int f = 0; f < D; f++) {
      const uint64_t now = (uint64_t)(start + t) * (uint64_t)D + (uint64_t)f;
      double v = dy_hash_uniform(7, 0, now) - 0.5;
      if (start + t > 0) v += 0.8 * (dy_hash_uniform(7, 0, now - (uint64_t)D) - 0.5);
      x[(size_t)t * D + f] = (dy_real)v;
    }
  DyTicaPairs pairs = {DY_MAX((int64_t)0, DY_MIN(count, frames - 1 - start)), x, x + D};
  DyTicaOptions opt = {.lag = 1, .epsilon = 1e-6, .scaling = DY_TICA_KINETIC_MAP, .k = k, .k_key = "--k", .nb = nb};
  double t0 = MPI_Wtime();
  PetscCall(dy_tica_fit(comm, D, 1, &pairs, &opt, &tica));
  dy_real *y;
  PetscCall(PetscMalloc1((size_t)DY_MAX(count, 1) * k, &y));
  PetscCall(dy_tica_project(&tica, k, count, x, y));
  double wall = MPI_Wtime() - t0, peak = peak_bytes(), peak_max, peak_min;
  PetscCallMPI(MPI_Allreduce(&peak, &peak_max, 1, MPI_DOUBLE, MPI_MAX, comm));
  PetscCallMPI(MPI_Allreduce(&peak, &peak_min, 1, MPI_DOUBLE, MPI_MIN, comm));
  const double cov = event_seconds("DyTicaCovariance"), eig = event_seconds("DyTicaEigensolve"),
               proj = event_seconds("DyTicaProjection"), whole = 3.0 * D * (double)D * sizeof(double);
  if (rank == 0) {
    if (json)
      printf("{\"ranks\": %d, \"D\": %d, \"frames\": %lld, \"k\": %d, \"kept\": %d, \"seconds\": %.3f, "
             "\"covariance\": %.3f, \"eigensolve\": %.3f, \"projection\": %.3f, \"peak_bytes_max\": %.0f, "
             "\"peak_bytes_min\": %.0f, \"whole_matrices_bytes\": %.0f, \"eigenvalue0\": %.12g}\n",
             size, D, (long long)frames, k, tica.m, wall, cov, eig, proj, peak_max, peak_min, whole,
             tica.eigenvalues[0]);
    else
      printf("ranks %d  D %d  frames %lld  kept %d  total %.2f s (covariance %.2f, eigensolve %.2f, "
             "projection %.2f)  peak per rank %.0f MiB (smallest %.0f)  3 D^2 doubles on one process %.0f MiB\n",
             size, D, (long long)frames, tica.m, wall, cov, eig, proj, peak_max / 1048576.0, peak_min / 1048576.0,
             whole / 1048576.0);
    fflush(stdout);
  }
  dy_tica_destroy(&tica);
  PetscCall(PetscFree(y));
  PetscCall(PetscFree(x));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  int D = 0, k = 10, nb = 0, json = 0;
  int64_t frames = 0;
  PetscErrorCode ierr;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--json")) {
      json = 1;
    } else if (v && !strcmp(a, "--D")) {
      D = atoi(v), i++;
    } else if (v && !strcmp(a, "--frames")) {
      frames = atoll(v), i++;
    } else if (v && !strcmp(a, "--k")) {
      k = atoi(v), i++;
    } else if (v && !strcmp(a, "--nb")) {
      nb = atoi(v), i++;
    } else {
      fprintf(stderr, "bench_tica: unknown or incomplete argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (frames == 0) frames = 2 * (int64_t)D;
  if (D < 1 || k < 1 || k > D || nb < 0 || frames < 2) {
    fprintf(stderr, "bench_tica: need --D >= 1, 1 <= --k <= D, --frames >= 2, --nb >= 0\n");
    usage(stderr);
    return 2;
  }
  if (PetscInitialize(&argc, &argv, NULL, NULL)) return 1;
  ierr = PetscLogDefaultBegin();
  if (!ierr) ierr = dy_error_handler_install();
  if (!ierr) ierr = run(PETSC_COMM_WORLD, D, frames, k, nb, json);
  if (ierr) MPI_Abort(PETSC_COMM_WORLD, 1);
  PetscFinalize();
  return 0;
}
