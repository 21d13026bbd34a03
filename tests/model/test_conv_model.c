/* Gradient check of one DynamicsAE step with the image networks (model.network = "conv") against
 * central differences of dy_model_losses, in double precision: every layer's weight and bias of
 * the conv encoder and decoder (NPICK values of each tensor) for L_rep with the
 * prior moves frozen, on 64 x 64 images with one and with two channels (the force and
 * log-diffusion nets are the same MLPs as with model.network = "mlp"; test_model_grad checks
 * them). Fails above 1e-5 relative error, when a layer has no value off a kink, or when more
 * than half the values sit on kinks (a wrong gradient shows as an O(1) error). */
#include "nn/dy_model.h"
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A step of a bias moves thousands of pixels through their ReLUs: the step is small so that few
 * of them cross a kink within it. The round-off of the differences grows with the loss over
 * thousands of pixels, so the targets are the model's own reconstructions plus a little noise
 * (the loss stays near 10) */
#define TOL 1e-5
#define FD_STEP 1e-5
#define FD_FLOOR 1e-4
#define KINK_FLOOR 1e-3
#define KINK_TOL 1e-6
#define NPICK 6 /* values checked per weight or bias tensor */

typedef struct {
  DyModel *model;
  DyWork *work;
  int B, L;
  dy_real *x0, *x1, *y0, *y1, *theta, *eps;
  DyLossOptions opt;
} Problem;

static double objective(void *ctx)
{
  Problem *p = ctx;
  DyLosses l;
  dy_model_losses(p->model, p->work, p->B, p->L, p->x0, p->x1, p->y0, p->y1, p->theta, p->eps, &p->opt, &l);
  return l.rec + p->opt.beta * l.sw;
}

static int check_case(int C, int e, int h, int d, int B, uint64_t seed)
{
  DyModelShape shape = {.D = C * DY_CNN_SIDE * DY_CNN_SIDE, .Dy = C * DY_CNN_SIDE * DY_CNN_SIDE, .d = d,
                        .nhidden = {1, 1, 2, 2}, .hidden = {{e}, {h}, {8, 8}, {8, 8}}, .network = DY_NETWORK_CONV,
                        .channels = C};
  DyModel model;
  DyWork *work;
  DyRng rng;
  const int L = 5;
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(&shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, B, L, &work));
  dy_rng_seed(&rng, seed, 3);
  dy_model_init(&model, &rng);
  Problem p = {.model = &model, .work = work, .B = B, .L = L, .opt = {.beta = 2.0}};
  p.x0 = dy_fd_images(&rng, B, C, 0.1);
  p.x1 = dy_fd_images(&rng, B, C, 0.1);
  p.eps = malloc((size_t)B * d * sizeof *p.eps);
  for (int i = 0; i < B * d; i++) p.eps[i] = (dy_real)dy_rng_normal(&rng);
  p.theta = malloc((size_t)L * d * sizeof *p.theta);
  double v[8];
  for (int l = 0; l < L; l++) {
    dy_rng_unit_vector(&rng, d, v);
    for (int k = 0; k < d; k++) p.theta[l * d + k] = (dy_real)v[k];
  }
  DyLosses losses;
  dy_real *dzp = malloc((size_t)B * d * sizeof *dzp), *g = malloc(model.nparam * sizeof *g);
  dy_model_loss_grad(&model, work, B, L, p.x0, p.x1, p.x0, p.x1, p.theta, p.eps, &p.opt, &losses);
  DyStepView view;
  dy_work_view(&model, work, B, &view);
  memcpy(dzp, view.dzp, (size_t)B * d * sizeof *dzp);
  dy_work_set_prior_moves(work, dzp);
  const size_t ny = (size_t)B * shape.Dy;
  p.y0 = malloc(2 * ny * sizeof *p.y0);
  p.y1 = p.y0 + ny;
  for (size_t i = 0; i < 2 * ny; i++) p.y0[i] = view.y0hat[i] + (dy_real)(0.03 * dy_rng_normal(&rng));
  dy_model_loss_grad(&model, work, B, L, p.x0, p.x1, p.y0, p.y1, p.theta, p.eps, &p.opt, &losses);
  memcpy(g, model.grads, model.nparam * sizeof *g);

  int bad = 0;
  size_t kinks = 0, total = 0;
  double worst = 0;
  for (int k = 0; k < 2; k++) {
    char label[32];
    snprintf(label, sizeof label, "C=%d %s", C, k ? "decoder" : "encoder");
    dy_fd_check_cnn(objective, &p, &model, k, g, NPICK, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL, TOL, label, &worst,
                    &kinks, &total, &bad);
  }
  printf("C=%d: worst relative error %.2e\n", C, worst);
  if (kinks * 2 > total) {
    printf("FAIL C=%d: %zu of %zu values on kinks\n", C, kinks, total);
    bad++;
  }
  free(dzp), free(g), free(p.y0), free(p.x0), free(p.x1), free(p.eps), free(p.theta);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  return bad;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  int bad = check_case(1, 32, 8, 2, 2, 11);
  bad += check_case(2, 32, 5, 3, 1, 12);
  printf("%s\n", bad ? "FAILED" : "conv DynamicsAE gradients agree with central differences");
  PetscCall(PetscFinalize());
  return bad ? 1 : 0;
}
