/* Gradient check of dy_model_loss_grad against central differences of dy_model_losses, in double
 * precision: every layer's W and b of the four nets, for L_rec, L_sw, L_rep and L_prior, with
 * constant and learned diffusion, on eight model shapes; and with encoder targets (the warm-up of
 * train.warmup_target), the encoder against L_target, the decoder against L_rec, the prior nets
 * unchanged. Fails when the worst relative error exceeds
 * 1e-6 or too many parameters sit on a kink. */
#include "nn/dy_model.h"
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-6
#define FD_STEP 1e-4  /* round-off of the differences stays near 1e-11; kinks are detected */
#define FD_FLOOR 1e-4 /* below this, gradients are compared in absolute terms (1e-10): the round-off
                       * of the differences is ~1e-11 and a small ReLU kink hides below it */
#define KINK_FLOOR 1e-3
#define KINK_TOL 1e-7

enum { LOSS_REC, LOSS_SW, LOSS_REP, LOSS_PRIOR, NLOSS, LOSS_TARGET = NLOSS };
static const char *loss_names[NLOSS + 1] = {"L_rec", "L_sw", "L_rep", "L_prior", "L_target"};
static const char *net_names[DY_NNETS] = {"encoder", "decoder", "force", "logdiff"};

typedef struct {
  DyModel *model;
  DyWork *work;
  int B, L;
  dy_real *x0, *x1, *y0, *y1, *theta, *eps;
  DyLossOptions opt;
  int which; /* the loss the objective returns */
} Problem;

static double objective(void *ctx)
{
  Problem *p = ctx;
  DyLosses l;
  dy_model_losses(p->model, p->work, p->B, p->L, p->x0, p->x1, p->y0, p->y1, p->theta, p->eps, &p->opt, &l);
  switch (p->which) {
  case LOSS_REC: return l.rec;
  case LOSS_SW: return l.sw;
  case LOSS_REP: return l.rec + p->opt.beta * l.sw;
  case LOSS_TARGET: return l.target;
  default: return l.prior;
  }
}

static dy_real *normals(DyRng *rng, size_t n, double scale)
{
  dy_real *a = malloc(n * sizeof *a);
  for (size_t i = 0; i < n; i++) a[i] = (dy_real)(scale * dy_rng_normal(rng));
  return a;
}

static void grad_at(Problem *p, double beta, dy_real *out)
{
  DyLosses l;
  p->opt.beta = beta;
  dy_model_loss_grad(p->model, p->work, p->B, p->L, p->x0, p->x1, p->y0, p->y1, p->theta, p->eps, &p->opt, &l);
  memcpy(out, p->model->grads, p->model->nparam * sizeof *out);
}

/* Checks one case; returns the worst relative error over all losses and groups. */
static double check_case(const DyModelShape *shape, DyDiffusion diffusion, int B, int L, uint64_t seed, int *bad)
{
  DyModel model;
  DyWork *work;
  DyRng rng;
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, B, L, &work));
  dy_rng_seed(&rng, seed, 7);
  dy_model_init(&model, &rng);
  const int D = shape->D, Dy = shape->Dy, d = shape->d;
  Problem p = {.model = &model, .work = work, .B = B, .L = L};
  p.x0 = normals(&rng, (size_t)B * D, 1.0);
  p.x1 = normals(&rng, (size_t)B * D, 0.3);
  for (int i = 0; i < B * D; i++) p.x1[i] += p.x0[i];
  p.y0 = normals(&rng, (size_t)B * Dy, 1.0);
  p.y1 = normals(&rng, (size_t)B * Dy, 1.0);
  p.eps = normals(&rng, (size_t)B * d, 1.0);
  p.theta = malloc((size_t)L * d * sizeof *p.theta);
  double v[16];
  for (int l = 0; l < L; l++) {
    dy_rng_unit_vector(&rng, d, v);
    for (int k = 0; k < d; k++) p.theta[l * d + k] = (dy_real)v[k];
  }
  p.opt.diffusion = diffusion;

  /* L_sw treats the prior moves as constants: freeze the sampled ones for the differences */
  const size_t np = model.nparam;
  dy_real *g0 = malloc(np * sizeof *g0), *g1 = malloc(np * sizeof *g1), *grep = malloc(np * sizeof *grep);
  dy_real *gsw = malloc(np * sizeof *gsw), *dzp = malloc((size_t)B * d * sizeof *dzp);
  grad_at(&p, 0.0, g0);
  DyStepView view;
  dy_work_view(&model, work, B, &view);
  memcpy(dzp, view.dzp, (size_t)B * d * sizeof *dzp);
  dy_work_set_prior_moves(work, dzp);
  grad_at(&p, 0.0, g0);
  grad_at(&p, 1.0, g1);
  grad_at(&p, 2.5, grep);
  for (size_t i = 0; i < np; i++) gsw[i] = g1[i] - g0[i];
  for (size_t i = model.nparam_rep; i < np; i++)
    if (g1[i] != g0[i] || grep[i] != g0[i]) {
      printf("  prior gradient depends on beta at parameter %zu\n", i);
      *bad = 1;
    }

  double worst = 0;
  for (int loss = 0; loss < NLOSS; loss++) {
    const dy_real *g = loss == LOSS_REC ? g0 : loss == LOSS_SW ? gsw : loss == LOSS_REP ? grep : g0;
    p.which = loss;
    p.opt.beta = loss == LOSS_REP ? 2.5 : 0.0;
    const int k0 = loss == LOSS_PRIOR ? DY_NET_FORCE : DY_NET_ENCODER;
    size_t nkinks = 0, ntotal = 0;
    for (int k = k0; k < k0 + 2; k++) {
      char label[32];
      snprintf(label, sizeof label, "%-7s %-7s", loss_names[loss], net_names[k]);
      dy_fd_check_net(objective, &p, &model, k, g, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL, TOL, label, &worst,
                      &nkinks, &ntotal, bad);
    }
    /* a near-tie in one sorted projection puts every encoder parameter on the same kink, so
     * count kinks over the loss rather than per group */
    if (nkinks * 4 > ntotal) {
      printf("  %s: %zu of %zu parameters on kinks, too many to trust the check\n", loss_names[loss], nkinks, ntotal);
      *bad = 1;
    }
  }

  /* with targets: the encoder follows L_target alone, the decoder L_rec, the prior nets as before */
  dy_real *target = normals(&rng, (size_t)2 * B * d, 0.7), *gt = malloc(np * sizeof *gt);
  p.opt.target = target;
  grad_at(&p, 2.5, gt);
  for (size_t i = model.nparam_rep; i < np; i++)
    if (gt[i] != g0[i]) {
      printf("  prior gradient changes with targets at parameter %zu\n", i);
      *bad = 1;
    }
  for (int k = DY_NET_ENCODER; k <= DY_NET_DECODER; k++) {
    size_t nkinks = 0, ntotal = 0;
    char label[32];
    p.which = k == DY_NET_ENCODER ? LOSS_TARGET : LOSS_REC;
    snprintf(label, sizeof label, "%-7s %-7s", loss_names[p.which], net_names[k]);
    dy_fd_check_net(objective, &p, &model, k, gt, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL, TOL, label, &worst,
                    &nkinks, &ntotal, bad);
    if (nkinks * 4 > ntotal) {
      printf("  %s: %zu of %zu parameters on kinks, too many to trust the check\n", label, nkinks, ntotal);
      *bad = 1;
    }
  }
  /* added with a weight (the anchor of the epochs after the warm-up): the sum of L_rep's gradient
   * and w times L_target's (both checked against differences above), to rounding */
  dy_real *ga = malloc(np * sizeof *ga);
  p.opt.target_weight = 0.7;
  grad_at(&p, 2.5, ga);
  double err = 0, big = 0; /* largest difference, relative to the largest gradient */
  for (size_t i = 0; i < np; i++) {
    const int enc = i >= model.net[DY_NET_ENCODER].offset &&
                    i < model.net[DY_NET_ENCODER].offset + model.net[DY_NET_ENCODER].nparam;
    const double want = (double)grep[i] + (enc ? 0.7 * (double)gt[i] : 0.0), e = fabs((double)ga[i] - want);
    err = fmax(err, e == e ? e : INFINITY);
    big = fmax(big, fabs(want));
  }
  const double wa = err / big;
  printf("  L_rep + 0.7 L_target against the sum of the two gradients: max difference %.2e of the largest\n", wa);
  if (!(wa < 1e-12)) {
    printf("  the anchored gradient is not the sum\n");
    *bad = 1;
  }
  free(ga);
  p.opt.target = NULL;
  p.opt.target_weight = 0;
  free(target), free(gt);
  free(g0), free(g1), free(grep), free(gsw), free(dzp);
  free(p.x0), free(p.x1), free(p.y0), free(p.y1), free(p.eps), free(p.theta);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  return worst;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  DyModelShape s1 = {.D = 3, .Dy = 4, .d = 2, .nhidden = {2, 2, 2, 2}, .hidden = {{6, 5}, {5, 4}, {6, 5}, {6, 5}}};
  DyModelShape s2 = {.D = 5, .Dy = 2, .d = 3, .nhidden = {1, 3, 3, 2}, .hidden = {{7}, {4, 6, 3}, {4, 5, 3}, {5, 4}}};
  /* widths past two vectors and L past one sort group reach every kernel path */
  DyModelShape s3 = {.D = 3, .Dy = 3, .d = 2, .nhidden = {2, 1, 2, 2}, .hidden = {{17, 9}, {9}, {10, 8}, {10, 8}}};
  /* nets without hidden layers (a linear force, log-diffusion and decoder) */
  DyModelShape s4 = {.D = 2, .Dy = 2, .d = 2, .nhidden = {1, 0, 0, 0}, .hidden = {{6}}};
  /* tanh encoder and decoder (model.activation = "tanh") */
  DyModelShape s5 = {.D = 4, .Dy = 3, .d = 2, .nhidden = {2, 2, 1, 2}, .hidden = {{8, 6}, {5, 7}, {6}, {6, 5}},
                     .act = DY_ACT_TANH};
  DyModelShape s6 = {.D = 5, .Dy = 5, .d = 3, .nhidden = {3, 1, 2, 2}, .hidden = {{9, 7, 5}, {6}, {5, 4}, {5, 4}},
                     .act = DY_ACT_TANH};
  /* inputs past one block of the blocked products' sums (DY_KC), decoder outputs past one block
   * of their columns (DY_NC) ending in part of a panel (batches past DY_KC rows: tests/parity) */
  DyModelShape s7 = {.D = 260, .Dy = 134, .d = 2, .nhidden = {1, 1, 1, 1}, .hidden = {{9}, {7}, {6}, {5}}};
  /* weight gradients through the blocked products with more output rows than one of their tiles
   * (6, or 12 with AVX-512) and a part tile at the end: 25 and 70 rows */
  DyModelShape s8 = {.D = 70, .Dy = 70, .d = 2, .nhidden = {1, 1, 1, 1}, .hidden = {{25}, {14}, {6}, {5}}};
  const DyModelShape *shapes[8] = {&s1, &s2, &s3, &s4, &s5, &s6, &s7, &s8};
  const int Bs[8] = {11, 13, 21, 9, 12, 10, 8, 11}, Ls[8] = {6, 7, 10, 3, 5, 8, 5, 6};
  /* the random draws of each shape (seed + diffusion): random points can sit within a step of a
   * ReLU kink, so each shape keeps the draws it was checked with */
  const uint64_t seeds[8] = {100, 110, 120, 130, 140, 150, 140, 180};
  int bad = 0;
  double worst = 0;
  for (int s = 0; s < 8; s++)
    for (int diff = 0; diff < 2; diff++) {
      printf("shape %d (%s), %s diffusion\n", s + 1, shapes[s]->act == DY_ACT_TANH ? "tanh" : "relu",
             diff ? "learned" : "constant");
      const double w = check_case(shapes[s], diff ? DY_DIFFUSION_LEARNED : DY_DIFFUSION_CONSTANT, Bs[s], Ls[s],
                                  seeds[s] + diff, &bad);
      if (w > worst) worst = w;
    }
  printf("worst relative error %.3e (tolerance %.1e): %s\n", worst, TOL, bad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return bad ? 1 : 0;
}
