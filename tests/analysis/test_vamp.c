/* The dense eigensolver and the latent scores of src/analysis/vamp.c on cases with known answers:
 * eigenpairs of a symmetric matrix; VAMP-2 = 1 + d for a latent that does not move, 1 for steps
 * uncorrelated with the start; and the step-covariance ratio of a latent whose steps all lie along
 * one line (the collapse the trainer warns about) against one that moves in every direction. The
 * sums are split over the ranks of the communicator to check that the allreduce gives the serial
 * answer. */
#include "analysis/dy_vamp.h"
#include "base/dy_rng.h"

#include <math.h>
#include <stdio.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
    }                                                                                              \
  } while (0)

static void test_eigh(void)
{
  enum { N = 6 };
  double a[N * N], a0[N * N], w[N], v[N * N];
  DyRng rng;

  dy_rng_seed(&rng, 3, 0);
  for (int i = 0; i < N; i++)
    for (int j = 0; j <= i; j++) a0[i * N + j] = a0[j * N + i] = dy_rng_uniform(&rng) - 0.5;
  for (int k = 0; k < N * N; k++) a[k] = a0[k];
  dy_vamp_eigh(N, a, w, v);
  for (int k = 0; k < N; k++) {
    double res = 0, norm = 0;
    for (int i = 0; i < N; i++) {
      double av = 0;
      for (int j = 0; j < N; j++) av += a0[i * N + j] * v[j * N + k];
      res += (av - w[k] * v[i * N + k]) * (av - w[k] * v[i * N + k]);
      norm += v[i * N + k] * v[i * N + k];
    }
    CHECK(sqrt(res) < 1e-12 && fabs(norm - 1) < 1e-12, "eigenpair %d: residual %g, norm %g", k, sqrt(res), norm);
    if (k) CHECK(w[k] >= w[k - 1], "eigenvalues not ascending: %g after %g", w[k], w[k - 1]);
  }
}

/* The scores of n pairs (z0, z1) of dimension d, each rank adding every size-th pair. */
static PetscErrorCode score_of(MPI_Comm comm, int d, int n, const dy_real *z0, const dy_real *z1, DyVampScore *s)
{
  DyVampSums *sums;
  int rank, size;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscNew(&sums));
  dy_vamp_sums_reset(sums, d);
  for (int k = rank; k < n; k += size) dy_vamp_sums_add(sums, 1, z0 + k * d, z1 + k * d);
  PetscCall(dy_vamp_sums_allreduce(comm, sums));
  dy_vamp_score(sums, s);
  PetscCall(PetscFree(sums));
  PetscFunctionReturn(0);
}

static PetscErrorCode test_scores(MPI_Comm comm)
{
  enum { N = 4000, D = 2 };
  static dy_real z0[N * D], z1[N * D];
  DyVampScore s;
  DyRng rng;

  PetscFunctionBegin;
  dy_rng_seed(&rng, 5, 0);
  /* A latent that does not move: K = I, VAMP-2 = 1 + d. */
  for (int k = 0; k < N * D; k++) z0[k] = z1[k] = (dy_real)(3 * dy_rng_uniform(&rng) - 1);
  PetscCall(score_of(comm, D, N, z0, z1, &s));
  CHECK(fabs(s.vamp2 - (1 + D)) < 1e-4, "still latent: VAMP-2 %g, expected %d", s.vamp2, 1 + D);
  /* z1 = z0 flipped in sign pattern that cancels exactly: C01 = 0 for d = 1. */
  {
    const dy_real a[4] = {1, -1, 1, -1}, b[4] = {1, -1, -1, 1};
    PetscCall(score_of(comm, 1, 4, a, b, &s));
    CHECK(fabs(s.vamp2 - 1) < 1e-12, "uncorrelated: VAMP-2 %g, expected 1", s.vamp2);
  }
  /* Steps all along (1, 2): the collapse the trainer warns about. */
  for (int k = 0; k < N; k++) {
    const double step = dy_rng_uniform(&rng) - 0.5;
    z1[k * D] = (dy_real)(z0[k * D] + step);
    z1[k * D + 1] = (dy_real)(z0[k * D + 1] + 2 * step);
  }
  PetscCall(score_of(comm, D, N, z0, z1, &s));
  CHECK(s.step_ratio < 1e-4, "steps on a line: ratio %g, expected about 0", s.step_ratio);
  CHECK(isfinite(s.vamp2) && s.vamp2 > 1 && s.vamp2 <= 1 + D + 1e-6, "steps on a line: VAMP-2 %g", s.vamp2);
  /* Steps in every direction alike: ratio near 1, far above the warning's 0.05. */
  for (int k = 0; k < N * D; k++) z1[k] = (dy_real)(z0[k] + 0.3 * (dy_rng_uniform(&rng) - 0.5));
  PetscCall(score_of(comm, D, N, z0, z1, &s));
  CHECK(s.step_ratio > 0.8, "isotropic steps: ratio %g, expected near 1", s.step_ratio);
  CHECK(s.vamp2 > 2.5 && s.vamp2 < 1 + D, "small steps: VAMP-2 %g, expected just below %d", s.vamp2, 1 + D);
  /* A latent with one constant coordinate: C00 singular, VAMP-2 undefined. */
  for (int k = 0; k < N; k++) z0[k * D + 1] = z1[k * D + 1] = 2;
  PetscCall(score_of(comm, D, N, z0, z1, &s));
  CHECK(isnan(s.vamp2) && s.step_ratio == 0, "constant coordinate: VAMP-2 %g, ratio %g", s.vamp2, s.step_ratio);
  PetscFunctionReturn(0);
}

/* When the trainer warns of a collapse: not in the warm-up, not for a dip of a few epochs that
 * unfolds, once for a latent that stays degenerate or ends so, and then once more when it unfolds. */
static PetscErrorCode check_collapse_watch(void)
{
  /* ratio per epoch; epoch 0 is the warm-up; the last entry is the run's last epoch */
  static const struct {
    int n;
    double r[10];
    int warn_at, recovered_at; /* epochs of the warning and of the note, -1 for none */
  } runs[] = {
    {8, {0.001, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7}, -1, -1},           /* collapsed in the warm-up only */
    {8, {0.1, 0.003, 0.02, 0.01, 0.01, 0.4, 0.6, 0.7}, -1, -1},         /* 4 epochs on a line, then unfolds */
    {8, {0.5, 0.5, 0.01, 0.02, 0.01, 0.01, 0.04, 0.01}, 6, -1},         /* stays collapsed: at its 5th epoch */
    {10, {0.1, 0.001, 0.001, 0.001, 0.001, 0.001, 0.08, 0.3, 0.5, 0.6}, 5, 7}, /* then unfolds */
    {5, {0.5, 0.5, 0.5, 0.5, 0.01}, 4, -1},                            /* ends collapsed: at the last epoch */
    {2, {0.01, 0.01}, 1, -1},                                          /* a one-epoch run after the warm-up */
  };

  PetscFunctionBegin;
  for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
    DyCollapseWatch w = {0, 0, 0};
    int warn_at = -1, recovered_at = -1, count = 0;
    for (int e = 0; e < runs[k].n; e++) {
      const int said = dy_collapse_watch(&w, e == 0, e == runs[k].n - 1, runs[k].r[e]);
      if (said == DY_COLLAPSE_WARN) warn_at = e, count++;
      if (said == DY_COLLAPSE_RECOVERED) recovered_at = e, count++;
    }
    CHECK(count == (runs[k].warn_at >= 0) + (runs[k].recovered_at >= 0) && warn_at == runs[k].warn_at &&
              recovered_at == runs[k].recovered_at,
          "collapse watch, run %zu: %d messages, warning at epoch %d, unfolded at %d; expected %d and %d", k, count,
          warn_at, recovered_at, runs[k].warn_at, runs[k].recovered_at);
  }
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  int all = 0;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  test_eigh();
  PetscCall(test_scores(PETSC_COMM_WORLD));
  PetscCall(check_collapse_watch());
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD);
  if (dy_is_root(PETSC_COMM_WORLD)) printf("test_vamp: %d failed checks\n", all);
  PetscCall(PetscFinalize());
  return all ? 1 : 0;
}
