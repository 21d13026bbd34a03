/* Gradient check of the baselines' step (nn/dy_baseline.h) against central differences of their
 * losses: beta-VAE, SWAE and SDE-VAE, every layer's W and b of every net they use, on three model
 * shapes each, for the reconstruction term alone (beta = 0) and for the whole loss (beta > 0).
 * Built in both precisions: double to 1e-6, single to the few 1e-2 its differences allow. Also
 * checks that the nets a baseline does not use are absent and that the encoder's latent is the mean.
 * Fails when the worst relative error exceeds the tolerance or too many parameters sit on a kink. */
#include "nn/dy_baseline.h"
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DY_REAL_DOUBLE)
#define TOL 1e-6
#define FD_STEP 1e-4
#define FD_FLOOR 1e-4
#define KINK_FLOOR 1e-3
#define KINK_TOL 1e-7
#else /* float differences: steps large enough for float round-off, so smooth (tanh) nets only */
#define TOL 5e-2
#define FD_STEP 1e-2
#define FD_FLOOR 3e-2
#define KINK_FLOOR 3e-2
#define KINK_TOL 3e-2
#define TANH_ONLY 1
#endif

static const char *type_names[] = {"none", "vae", "swae", "sdevae"};
static const char *net_names[DY_NNETS] = {"encoder", "decoder", "force", "logdiff"};

static dy_real *normals(DyRng *rng, size_t n, double scale)
{
  dy_real *a = malloc(n * sizeof *a);
  for (size_t i = 0; i < n; i++) a[i] = (dy_real)(scale * dy_rng_normal(rng));
  return a;
}

/* Checks one case; returns the worst relative error. */
static double check_case(DyBaselineType type, DyModelShape shape, int B, int L, uint64_t seed, int *bad)
{
  DyModel model;
  DyWork *nets;
  DyBaseWork *work;
  DyRng rng;
  dy_baseline_shape(type, &shape);
#if defined(TANH_ONLY)
  shape.act = DY_ACT_TANH;
#endif
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(&shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, B, L, &nets));
  PetscCallAbort(PETSC_COMM_SELF, dy_basework_create(&model, nets, B, L, &work));
  dy_rng_seed(&rng, seed, 7);
  dy_model_init(&model, &rng);
  const int D = shape.D, Dy = shape.Dy, d = shape.d;
  /* the nets of the model: encoder outputs and absent prior nets */
  const int zo = model.net[DY_NET_ENCODER].dims[model.net[DY_NET_ENCODER].nlayer];
  if (zo != (type == DY_BASELINE_SWAE ? d : 2 * d) || model.net[DY_NET_LOGDIFF].nparam != 0 ||
      (model.net[DY_NET_FORCE].nparam != 0) != (type == DY_BASELINE_SDEVAE)) {
    printf("  wrong nets: encoder outputs %d, force %zu and log-diffusion %zu parameters\n", zo,
           model.net[DY_NET_FORCE].nparam, model.net[DY_NET_LOGDIFF].nparam);
    *bad = 1;
  }
  DyFdBaseline p = {.model = &model, .work = work, .B = B, .L = L, .opt = {.type = type, .nu = 0.3}};
  p.x0 = normals(&rng, (size_t)B * D, 1.0);
  p.x1 = normals(&rng, (size_t)B * D, 0.3);
  for (int i = 0; i < B * D; i++) p.x1[i] += p.x0[i];
  p.y0 = normals(&rng, (size_t)B * Dy, 1.0);
  p.y1 = normals(&rng, (size_t)B * Dy, 1.0);
  dy_fd_baseline_draw(&p, &rng);
  /* the latent of the results is the encoder's mean: the first d of its outputs */
  if (!dy_fd_latent_is_mean(&model, nets, B, p.x0)) *bad = 1;

  const size_t np = model.nparam;
  dy_real *g = malloc(np * sizeof *g);
  double worst = 0;
  const double betas[2] = {0.0, type == DY_BASELINE_SWAE ? 3.0 : 1.7};
  for (int ib = 0; ib < 2; ib++) {
    DyLosses l;
    p.opt.beta = betas[ib];
    dy_baseline_loss_grad(&model, work, &p.opt, B, L, p.x0, p.x1, p.y0, p.y1, p.theta, p.noise, &l);
    memcpy(g, model.grads, np * sizeof *g);
    /* the step's losses are those of the losses-only call */
    DyLosses l2;
    dy_baseline_losses(&model, work, &p.opt, B, L, p.x0, p.x1, p.y0, p.y1, p.theta, p.noise, &l2);
    /* the same up to rounding: the sort of the loss with its gradient sums in another order */
    const double rt = sizeof(dy_real) == 8 ? 1e-12 : 1e-5;
    if (fabs(l.rec - l2.rec) > rt * l.rec || fabs(l.sw - l2.sw) > rt * l.sw || fabs(l.prior - l2.prior) > rt * fabs(l.prior) || !(l.rec > 0) ||
        (type == DY_BASELINE_SWAE ? !(l.sw > 0) || l.prior != 0 : l.sw != 0)) {
      printf("  losses: rec %g sw %g prior %g, losses only: %g %g %g\n", l.rec, l.sw, l.prior, l2.rec, l2.sw, l2.prior);
      *bad = 1;
    }
    size_t nkinks = 0, ntotal = 0;
    for (int k = 0; k < DY_NNETS; k++) {
      char label[32];
      snprintf(label, sizeof label, "beta %.1f %-7s", p.opt.beta, net_names[k]);
      dy_fd_check_net(dy_fd_baseline_objective, &p, &model, k, g, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL, TOL, label,
                      &worst, &nkinks, &ntotal, bad);
    }
    if (nkinks * 4 > ntotal) {
      printf("  %zu of %zu parameters on kinks, too many to trust the check\n", nkinks, ntotal);
      *bad = 1;
    }
  }
  free(g);
  dy_fd_baseline_destroy(&p, &nets);
  return worst;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  /* the prior widths matter for sdevae's force net only */
  DyModelShape s1 = {.D = 3, .Dy = 4, .d = 2, .nhidden = {2, 2, 2, 2}, .hidden = {{6, 5}, {5, 4}, {6, 5}, {6, 5}}};
  DyModelShape s2 = {.D = 5, .Dy = 2, .d = 3, .nhidden = {1, 3, 1, 1}, .hidden = {{7}, {4, 6, 3}, {4}, {4}}};
  /* tanh encoder and decoder, d = 1, wider layers and more projections than a sort group */
  DyModelShape s3 = {.D = 4, .Dy = 4, .d = 1, .nhidden = {2, 1, 2, 2}, .hidden = {{17, 9}, {9}, {10, 8}, {10, 8}},
                     .act = DY_ACT_TANH};
  const DyModelShape *shapes[3] = {&s1, &s2, &s3};
  const int Bs[3] = {11, 13, 9}, Ls[3] = {6, 7, 10};
  int bad = 0;
  double worst = 0;
  for (int type = DY_BASELINE_VAE; type <= DY_BASELINE_SDEVAE; type++)
    for (int s = 0; s < 3; s++) {
      printf("%s, shape %d (%s)\n", type_names[type], s + 1, shapes[s]->act == DY_ACT_TANH ? "tanh" : "relu");
      const double w = check_case((DyBaselineType)type, *shapes[s], Bs[s], Ls[s], 200 + 10 * (uint64_t)type + s, &bad);
      if (w > worst) worst = w;
    }
  printf("worst relative error %.3e (tolerance %.1e): %s\n", worst, TOL, bad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return bad ? 1 : 0;
}
