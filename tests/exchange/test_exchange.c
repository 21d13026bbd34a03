/* The per-step sum over ranks (src/exchange.c), in the way named on the command line (mpi, shared
 * or auto): every rank gets the same bits, the shared way gives exactly the left-to-right sum in
 * rank order, the MPI way the same within rounding. Each of several buffer sizes runs 300
 * exchanges of changing values with random delays on every rank between start and wait and
 * between exchanges, so that a rank that runs ahead would overwrite a buffer still being read if
 * the slots were reused too early. */
#include "parallel/dy_exchange.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NEX 300 /* exchanges per buffer size (at most; -nex N for fewer) */

static int failures;

#define CHECK(cond, ...)                                                                                              \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      if (failures < 10) {                                                                                             \
        printf("FAIL (rank %d): ", rank);                                                                              \
        printf(__VA_ARGS__);                                                                                           \
        printf("\n");                                                                                                  \
      }                                                                                                                \
      failures++;                                                                                                      \
    }                                                                                                                  \
  } while (0)

static uint64_t mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Element i of rank r's buffer in exchange e: magnitudes from 2^-12 to 2^12, so that the order of
 * the additions shows in the rounding. */
static dy_real value(int r, int e, size_t i)
{
  const uint64_t h = mix(((uint64_t)r << 48) ^ ((uint64_t)e << 24) ^ i);
  const double u = (double)(h >> 11) / 9007199254740992.0 - 0.5;
  return (dy_real)ldexp(u, (int)(h & 31) - 16 + 4);
}

static void busy_wait_us(double us)
{
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do clock_gettime(CLOCK_MONOTONIC, &t);
  while ((t.tv_sec - t0.tv_sec) * 1e6 + (t.tv_nsec - t0.tv_nsec) * 1e-3 < us);
}

static uint64_t checksum(const dy_real *x, size_t n)
{
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = (const unsigned char *)x;
  for (size_t k = 0; k < n * sizeof *x; k++) h = (h ^ p[k]) * 1099511628211ull;
  return h;
}

int main(int argc, char **argv)
{
  int rank, size;
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  DyExchangeKind kind;
  char way[16] = "";
  PetscCall(dy_exchange_kind_from_options(PETSC_COMM_WORLD, &kind));
  PetscInt nex = NEX; /* many ranks far oversubscribed take long per exchange: they run fewer */
  PetscCall(PetscOptionsGetInt(NULL, NULL, "-nex", &nex, NULL));
  nex = DY_MAX(1, DY_MIN(nex, NEX));
  const size_t sizes[] = {1, 17, 7005};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    const size_t n = sizes[s];
    DyExchange *ex;
    dy_real *buf, *fold;
    uint64_t sums[NEX], lo[NEX], hi[NEX];
    PetscCall(dy_exchange_create(PETSC_COMM_WORLD, n, kind, &ex));
    const int shared = dy_exchange_kind(ex) == DY_EXCHANGE_SHARED;
    if (kind != DY_EXCHANGE_AUTO)
      CHECK(shared == (kind == DY_EXCHANGE_SHARED), "asked %d, got %s", (int)kind, dy_exchange_name(ex));
    if (s == 0) snprintf(way, sizeof way, "%s", dy_exchange_name(ex));
    PetscCall(PetscMalloc2(n, &buf, n, &fold));
    for (int e = 0; e < nex; e++) {
      for (size_t i = 0; i < n; i++) buf[i] = value(rank, e, i);
      PetscCall(dy_exchange_start(ex, buf));
      const uint64_t h = mix(((uint64_t)e << 8) ^ (uint64_t)rank);
      busy_wait_us((double)(h % 4 == 0 ? h % 300 : 0)); /* sometimes late to collect */
      PetscCall(dy_exchange_progress(ex));
      PetscCall(dy_exchange_wait(ex, buf));
      /* the left-to-right sum in rank order, as the shared way adds */
      double worst = 0;
      for (size_t i = 0; i < n; i++) {
        dy_real f = value(0, e, i);
        double mag = fabs((double)f);
        for (int r = 1; r < size; r++) {
          f += value(r, e, i);
          mag += fabs((double)value(r, e, i));
        }
        fold[i] = f;
        const double err = fabs((double)buf[i] - (double)f) / mag;
        if (err > worst) worst = err;
      }
      if (shared) CHECK(!memcmp(buf, fold, n * sizeof *buf), "n %zu, exchange %d: not the rank-order sum", n, e);
      else
        CHECK(worst <= 4.0 * size * (sizeof(dy_real) == 4 ? 6e-8 : 1.2e-16), "n %zu, exchange %d: error %.3g", n, e,
              worst);
      sums[e] = checksum(buf, n); /* compared after the loop: no other synchronisation inside it */
      busy_wait_us((double)(mix(h) % 3 == 0 ? mix(h) % 200 : 0)); /* sometimes slow to come back */
    }
    PetscCallMPI(MPI_Allreduce(sums, lo, (int)nex, MPI_UINT64_T, MPI_MIN, PETSC_COMM_WORLD));
    PetscCallMPI(MPI_Allreduce(sums, hi, (int)nex, MPI_UINT64_T, MPI_MAX, PETSC_COMM_WORLD));
    for (int e = 0; e < nex; e++) CHECK(lo[e] == hi[e], "n %zu, exchange %d: the ranks hold different sums", n, e);
    PetscCall(PetscFree2(buf, fold));
    PetscCall(dy_exchange_destroy(&ex));
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD));
  if (rank == 0) printf("%s: %d failures (%d ranks, the %s way)\n", failures ? "FAIL" : "ok", failures, size, way);
  PetscCall(PetscFinalize());
  return failures ? 1 : 0;
}
