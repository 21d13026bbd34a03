/* dy_fields_compute against an exact answer, for latent dimensions 1, 2 and 3 at any rank count.
 *
 * The force net is linear (no hidden layer): f(z) = -K (z - c) with K symmetric positive definite
 * (off-diagonal terms included, to catch a mix-up of the axes), so F = (z - c)^T K (z - c) / 2.
 * For a quadratic F the face differences (F_k - F_i) / h equal the derivative at the face centre,
 * and the mean of a linear force over the two cells is its value there, so the discrete least-squares
 * solution is F itself up to a constant: the solve must return it to the solver's tolerance.
 * The log-diffusion net is zero (diffusion 1). Each rank draws its own points (a different number
 * per rank) in a box of different widths per axis; the histogram must count all of them. */
#include "analysis/dy_fields.h"

#include <math.h>
#include <stdio.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      failures++;                                                                                                      \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                      \
      printf(__VA_ARGS__);                                                                                             \
      printf("\n");                                                                                                    \
    }                                                                                                                  \
  } while (0)

static PetscErrorCode check_dim(MPI_Comm comm, int d)
{
  const double K[3][3] = {{2.0, 0.5, 0.2}, {0.5, 1.0, -0.3}, {0.2, -0.3, 1.5}}, c[3] = {0.3, -0.4, 0.1};
  const double lo[3] = {-1.0, -2.0, -0.5}, width[3] = {3.0, 2.5, 1.5};
  DyModelShape shape = {.D = d, .Dy = d, .d = d};
  DyModel model;
  DyWork *work;
  DyFields f;
  const DyFieldsOptions opt = {.grid = d == 3 ? 12 : 24, .margin = 0.1};
  int rank;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(dy_model_create(&shape, &model));
  dy_real *W = model.params + model.net[DY_NET_FORCE].offset, *b = W + d * d;
  for (int i = 0; i < d; i++) {
    b[i] = 0;
    for (int j = 0; j < d; j++) {
      W[i * d + j] = (dy_real)-K[i][j];
      b[i] += (dy_real)(K[i][j] * c[j]);
    }
  }
  PetscCall(dy_work_create(&model, 16, 4, &work));
  const int n = 200 + 37 * rank;
  dy_real z[(200 + 37 * 8) * 3];
  uint64_t s = 12345u + 977u * (uint64_t)rank;
  for (int p = 0; p < n * d; p++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const double u = (double)(s >> 11) / 9007199254740992.0;
    z[p] = (dy_real)(lo[p % d] + width[p % d] * u);
  }
  PetscCall(dy_fields_compute(comm, &model, work, n, z, &opt, &f));

  int64_t total = 0, all = n;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT64_T, MPI_SUM, comm));
  for (int64_t i = 0; i < f.npoint; i++) total += f.count[i];
  CHECK(total == all, "d %d: the histogram holds %lld points of %lld", d, (long long)total, (long long)all);
  /* the exact F at the grid points, shifted to minimum 0 like the solution */
  double *exact;
  PetscCall(PetscMalloc1((size_t)f.npoint, &exact));
  double lowest = INFINITY, range = 0, worst = 0, worst_diff = 0;
  for (int64_t i = 0; i < f.npoint; i++) {
    double y[3], e = 0;
    int64_t r = i;
    for (int j = d - 1; j >= 0; j--) {
      y[j] = f.axis[j][r % f.n[j]] - c[j];
      r /= f.n[j];
    }
    for (int a = 0; a < d; a++)
      for (int q = 0; q < d; q++) e += 0.5 * y[a] * K[a][q] * y[q];
    exact[i] = e;
    lowest = DY_MIN(lowest, e);
  }
  for (int64_t i = 0; i < f.npoint; i++) range = DY_MAX(range, exact[i] - lowest);
  for (int64_t i = 0; i < f.npoint; i++) {
    worst = DY_MAX(worst, fabs(f.free_energy_force[i] - (exact[i] - lowest)));
    for (int j = 0; j < d; j++) worst_diff = DY_MAX(worst_diff, fabs(f.diffusion[i * d + j] - 1.0));
  }
  CHECK(worst <= 1e-8 * range, "d %d: free_energy_force differs from the exact F by %.3e (range %.3e)", d, worst,
        range);
  CHECK(worst_diff == 0, "d %d: the diffusion differs from 1 by %.3e", d, worst_diff);
  if (rank == 0)
    printf("d %d: %lld grid points, %d CG iterations, largest error %.2e of a range of %.3g\n", d,
           (long long)f.npoint, f.iterations, worst / range, range);
  PetscCall(PetscFree(exact));
  dy_fields_free(&f);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  int size;
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCheck(size <= 8, PETSC_COMM_WORLD, PETSC_ERR_ARG_OUTOFRANGE, "at most 8 ranks");
  for (int d = 1; d <= 3; d++) PetscCall(check_dim(PETSC_COMM_WORLD, d));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD));
  PetscCall(PetscFinalize());
  return failures ? 1 : 0;
}
