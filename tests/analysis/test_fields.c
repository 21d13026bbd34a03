/* dy_fields_compute against exact answers, for latent dimensions 1, 2 and 3 at any rank count.
 *
 * The force net is linear (no hidden layer): f(z) = -K (z - c) with K symmetric positive definite
 * (off-diagonal terms included, to catch a mix-up of the axes), so F = (z - c)^T K (z - c) / 2.
 * For a quadratic F the face differences (F_k - F_i) / h equal the derivative at the face centre,
 * and the mean of a linear force over the two cells is its value there, so every face residual of
 * the least-squares problem is zero and its solution is F itself up to a constant, whatever the
 * face weights: the solve must return it to the solver's tolerance with the unweighted operator
 * and with the density-weighted one (whose weights here vary from 1 in the empty margin cells to
 * the tens of frames inside the box, so a weight applied to the matrix but not to the right-hand
 * side, or to the wrong face, shows). Each rank draws its own points (a different number per rank)
 * in a box of different widths per axis; the histogram must count all of them.
 *
 * The refit of the force's output layer: pairs whose moves are exactly the drift of the model,
 * dz = M f + M dg/dz (log-diffusion net linear and not zero, so M varies and its Jacobian term
 * counts), then the output layer is spoilt by a known amount: the refit must undo it. With the
 * linear force the free energy must again be the exact F; with a force net of one tanh hidden layer
 * the force on the grid must be the unspoilt net's, and the largest change the known one. */
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

static const double K[3][3] = {{2.0, 0.5, 0.2}, {0.5, 1.0, -0.3}, {0.2, -0.3, 1.5}}, c[3] = {0.3, -0.4, 0.1};
static const double lo[3] = {-1.0, -2.0, -0.5}, width[3] = {3.0, 2.5, 1.5};
#define MAX_POINTS (200 + 37 * 8)
#define SPOIL 0.25 /* added to the output layer's bias before the refit (its largest change) */

/* n points of this rank in the box, from a generator seeded by the rank */
static void draw(int rank, int d, int n, dy_real *z)
{
  uint64_t s = 12345u + 977u * (uint64_t)rank;
  for (int p = 0; p < n * d; p++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const double u = (double)(s >> 11) / 9007199254740992.0;
    z[p] = (dy_real)(lo[p % d] + width[p % d] * u);
  }
}

/* z1 = z0 + M f + M dg/dz at z0, the model's drift, with the log-diffusion net linear: g = G z + g0
 * (G diagonal here, so dg_i/dz_i = G_ii). */
static void drift_pairs(const DyModel *model, DyWork *work, int n, const dy_real *z0, dy_real *z1)
{
  const int d = model->d;
  const dy_real *G = model->params + model->net[DY_NET_LOGDIFF].offset;
  dy_real f[MAX_POINTS * 3], g[MAX_POINTS * 3];
  dy_model_force(model, work, n, z0, f);
  dy_model_logdiff(model, work, n, z0, g);
  for (int p = 0; p < n; p++)
    for (int i = 0; i < d; i++) {
      const double M = exp((double)g[p * d + i]);
      z1[p * d + i] = (dy_real)((double)z0[p * d + i] + M * (double)f[p * d + i] + M * (double)G[i * d + i]);
    }
}

/* case 0: unweighted, 1: density-weighted, 2: the refit of a linear force, 3: the refit of a force
 * net with a hidden layer */
static PetscErrorCode check_dim(MPI_Comm comm, int d, int kind)
{
  static const char *const what[] = {"unweighted", "density-weighted", "refit, linear force", "refit, hidden layer"};
  DyModelShape shape = {.D = d, .Dy = d, .d = d};
  DyModel model;
  DyWork *work;
  DyFields f;
  const DyFieldsOptions opt = {.grid = d == 3 ? 12 : 24,
                               .margin = 0.1,
                               .weight = kind == 0 ? DY_FIELDS_WEIGHT_NONE : DY_FIELDS_WEIGHT_DENSITY,
                               .refit = kind >= 2};
  int rank;

  PetscFunctionBeginUser;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (kind == 3) {
    shape.nhidden[DY_NET_FORCE] = 1;
    shape.hidden[DY_NET_FORCE][0] = 2 * d; /* few units: tanh features of one or two inputs are near collinear */
  }
  PetscCall(dy_model_create(&shape, &model));
  const DyMlp *fnet = &model.net[DY_NET_FORCE];
  if (kind == 3) {
    DyRng rng;
    dy_rng_seed(&rng, 7, 0);
    dy_model_init(&model, &rng);
  } else {
    dy_real *W = model.params + fnet->offset, *b = W + d * d;
    for (int i = 0; i < d; i++) {
      b[i] = 0;
      for (int j = 0; j < d; j++) {
        W[i * d + j] = (dy_real)-K[i][j];
        b[i] += (dy_real)(K[i][j] * c[j]);
      }
    }
  }
  if (kind >= 2) { /* log-diffusion g = G z + g0, G diagonal */
    dy_real *G = model.params + model.net[DY_NET_LOGDIFF].offset, *g0 = G + d * d;
    for (int i = 0; i < d; i++) {
      for (int j = 0; j < d; j++) G[i * d + j] = (dy_real)(i == j ? 0.2 - 0.1 * i : 0.0);
      g0[i] = (dy_real)(0.1 * i - 0.05);
    }
  }
  PetscCall(dy_work_create(&model, 16, 4, &work));
  const int n = 200 + 37 * rank;
  dy_real z[MAX_POINTS * 3], z1[MAX_POINTS * 3];
  draw(rank, d, n, z);
  double *truth = NULL; /* kind 3: the unspoilt net's force on the grid */
  if (kind >= 2) {
    drift_pairs(&model, work, n, z, z1);
    if (kind == 3) {
      DyFields g;
      const DyFieldsOptions plain = {.grid = opt.grid, .margin = opt.margin, .weight = opt.weight, .refit = 0};
      PetscCall(dy_fields_compute(comm, &model, work, n, z, 0, NULL, NULL, &plain, &g));
      PetscCall(PetscMalloc1((size_t)g.npoint * d, &truth));
      for (int64_t q = 0; q < g.npoint * d; q++) truth[q] = g.force[q];
      dy_fields_free(&g);
    }
    dy_real *bias = model.params + fnet->offset + fnet->nparam - d;
    for (int i = 0; i < d; i++) bias[i] += (dy_real)(i == 0 ? SPOIL : -0.5 * SPOIL);
    dy_model_net_prepare(&model, work);
  }
  PetscCall(dy_fields_compute(comm, &model, work, n, z, kind >= 2 ? n : 0, z, z1, &opt, &f));

  int64_t total = 0, all = n;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT64_T, MPI_SUM, comm));
  for (int64_t i = 0; i < f.npoint; i++) total += f.count[i];
  CHECK(total == all, "d %d %s: the histogram holds %lld points of %lld", d, what[kind], (long long)total,
        (long long)all);
  CHECK(f.refit_pairs == (kind >= 2 ? all : 0), "d %d %s: refitted on %lld pairs", d, what[kind],
        (long long)f.refit_pairs);
  if (kind >= 2) /* the pairs are in single precision in the single build */
    CHECK(fabs(f.refit_change - SPOIL) <= (sizeof(dy_real) == 4 ? 1e-4 : 1e-8), "d %d %s: the refit changed the layer by %.9g, not %g",
          d, what[kind], f.refit_change, SPOIL);
  if (kind == 3) {
    double worst = 0, big = 0;
    for (int64_t q = 0; q < f.npoint * d; q++) {
      worst = DY_MAX(worst, fabs(f.force[q] - truth[q]));
      big = DY_MAX(big, fabs(truth[q]));
    }
    CHECK(worst <= 1e-8 * big, "d %d %s: the refitted force differs from the net's by %.3e (largest %.3g)", d,
          what[kind], worst, big);
    if (rank == 0) printf("d %d %s: refit change %.9f, force error %.2e of %.3g\n", d, what[kind], f.refit_change, worst, big);
    PetscCall(PetscFree(truth));
  } else {
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
      if (kind < 2)
        for (int j = 0; j < d; j++) worst_diff = DY_MAX(worst_diff, fabs(f.diffusion[i * d + j] - 1.0));
    }
    /* the refit goes through pairs and normal equations in the working precision */
    const double tol = kind == 2 && sizeof(dy_real) == 4 ? 1e-4 : 1e-8;
    CHECK(worst <= tol * range, "d %d %s: free_energy_force differs from the exact F by %.3e (range %.3e)", d,
          what[kind], worst, range);
    CHECK(worst_diff == 0, "d %d %s: the diffusion differs from 1 by %.3e", d, what[kind], worst_diff);
    if (rank == 0)
      printf("d %d %s: %lld grid points, %d CG iterations, largest error %.2e of a range of %.3g\n", d, what[kind],
             (long long)f.npoint, f.iterations, worst / range, range);
    PetscCall(PetscFree(exact));
  }
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
  for (int d = 1; d <= 3; d++)
    for (int kind = 0; kind < 4; kind++) PetscCall(check_dim(PETSC_COMM_WORLD, d, kind));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD));
  PetscCall(PetscFinalize());
  return failures ? 1 : 0;
}
