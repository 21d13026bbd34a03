/* dy_model_scale_latent (the end of a warm-up with targets) in double precision: after moving the
 * latent to z' = a (z - m), the encoder gives exactly that and the decoder maps z' to what it mapped
 * z to, for ReLU and tanh MLPs, nets without hidden layers and image nets; the prior nets'
 * parameters are untouched. Fails on any relative difference above 1e-11. */
#include "nn/dy_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-11

/* relative difference; NaN counts as the largest */
static double rel(double a, double b)
{
  const double r = fabs(a - b) / (fabs(a) + fabs(b) + 1e-300) * 2;
  return r == r ? r : INFINITY;
}

static int check(const char *name, const DyModelShape *shape, int n, double a)
{
  DyModel model;
  DyWork *work;
  DyRng rng;
  const int D = shape->D, Dy = shape->Dy, d = shape->d;
  int bad = 0;
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, n, 4, &work));
  dy_rng_seed(&rng, 5, 9);
  dy_model_init(&model, &rng);
  dy_real *x = malloc(sizeof *x * n * D), *z = malloc(sizeof *z * n * d), *z2 = malloc(sizeof *z2 * n * d);
  dy_real *y = malloc(sizeof *y * n * Dy), *y2 = malloc(sizeof *y2 * n * Dy);
  dy_real *before = malloc(sizeof *before * model.nparam);
  double m[64];
  for (int i = 0; i < n * D; i++) x[i] = (dy_real)dy_rng_uniform(&rng);
  for (int i = 0; i < d; i++) m[i] = dy_rng_normal(&rng);
  memcpy(before, model.params, sizeof *before * model.nparam);
  dy_model_encode(&model, work, n, x, z);
  dy_model_decode(&model, work, n, z, y);
  dy_model_scale_latent(&model, a, m);
  dy_model_encode(&model, work, n, x, z2);
  double wz = 0, wy = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < d; i++) wz = fmax(wz, rel(z2[j * d + i], a * (z[j * d + i] - m[i])));
  dy_model_decode(&model, work, n, z2, y2);
  for (int i = 0; i < n * Dy; i++) wy = fmax(wy, rel(y2[i], y[i]));
  for (size_t i = model.nparam_rep; i < model.nparam; i++) bad |= model.params[i] != before[i];
  size_t changed = 0;
  for (size_t i = 0; i < model.nparam_rep; i++) changed += model.params[i] != before[i];
  bad |= wz > TOL || wy > TOL || changed == 0;
  printf("%-5s a = %g: latent %.2e, reconstruction %.2e, %zu representation parameters changed%s\n", name, a, wz, wy,
         changed, bad ? " FAIL" : "");
  free(x), free(z), free(z2), free(y), free(y2), free(before);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  return bad;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  const DyModelShape mlp = {.D = 7, .Dy = 5, .d = 3, .nhidden = {2, 2, 2, 2}, .hidden = {{9, 6}, {4, 8}, {5, 5}, {5, 5}}};
  const DyModelShape tanh_mlp = {.D = 5, .Dy = 6, .d = 2, .nhidden = {2, 1, 1, 1}, .hidden = {{7, 6}, {9}, {5}, {5}},
                                 .act = DY_ACT_TANH};
  const DyModelShape lin = {.D = 4, .Dy = 4, .d = 2, .nhidden = {0, 0, 1, 1}, .hidden = {{0}, {0}, {5}, {5}}};
  const DyModelShape conv = {.D = DY_CNN_SIDE * DY_CNN_SIDE, .Dy = DY_CNN_SIDE * DY_CNN_SIDE, .d = 2,
                             .nhidden = {1, 1, 1, 1}, .hidden = {{32}, {16}, {8}, {8}}, .network = DY_NETWORK_CONV,
                             .channels = 1};
  int bad = 0;
  bad |= check("mlp", &mlp, 6, 37.5);
  bad |= check("mlp", &mlp, 6, 0.02);
  bad |= check("tanh", &tanh_mlp, 6, 250.0);
  bad |= check("lin", &lin, 5, 3.0);
  bad |= check("conv", &conv, 3, 1.4e4);
  printf("%s\n", bad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return bad;
}
