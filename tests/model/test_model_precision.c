/* The single-precision build against the double one on the same problem (default widths, both
 * diffusion modes). Built twice: the double build writes its losses and gradients to the file given,
 * the single build reads them and compares; the single build also checks its vectorised tanh. */
#include "nn/dy_model.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 100, L = 20 };

/* losses and gradients of one diffusion mode, the same problem in either precision: every input
 * is drawn in double and rounded to float */
static void run(int learned, double *losses, double *grads, size_t *nparam)
{
  DyModelShape shape = {.D = 5, .Dy = 4, .d = 2, .nhidden = {3, 3, 2, 2},
                        .hidden = {{32, 32, 32}, {32, 32, 32}, {32, 32}, {32, 32}}};
  DyModel model;
  DyWork *work;
  DyRng rng;
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(&shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, B, L, &work));
  dy_rng_seed(&rng, 5, 9);
  for (size_t i = 0; i < model.nparam; i++) model.params[i] = (float)(0.3 * (2 * dy_rng_uniform(&rng) - 1));
  dy_real x0[B * 5], x1[B * 5], y0[B * 4], y1[B * 4], theta[L * 2], eps[B * 2];
  for (int i = 0; i < B * 5; i++) x0[i] = (float)dy_rng_normal(&rng);
  for (int i = 0; i < B * 5; i++) x1[i] = (float)(x0[i] + 0.5 * dy_rng_normal(&rng));
  for (int i = 0; i < B * 4; i++) y0[i] = (float)dy_rng_normal(&rng);
  for (int i = 0; i < B * 4; i++) y1[i] = (float)dy_rng_normal(&rng);
  for (int i = 0; i < B * 2; i++) eps[i] = (float)dy_rng_normal(&rng);
  for (int l = 0; l < L; l++) {
    double v[2];
    dy_rng_unit_vector(&rng, 2, v);
    theta[2 * l] = (float)v[0];
    theta[2 * l + 1] = (float)v[1];
  }
  DyLossOptions opt = {.beta = 10, .diffusion = learned ? DY_DIFFUSION_LEARNED : DY_DIFFUSION_CONSTANT};
  DyLosses los;
  dy_model_loss_grad(&model, work, B, L, x0, x1, y0, y1, theta, eps, &opt, &los);
  losses[0] = los.rec;
  losses[1] = los.sw;
  losses[2] = los.prior;
  for (size_t i = 0; i < model.nparam; i++) grads[i] = model.grads[i];
  *nparam = model.nparam;
  dy_work_destroy(&work);
  dy_model_destroy(&model);
}

#if !defined(DY_REAL_DOUBLE)
/* Largest relative error of the in-place kernel f against ref in double over N points of [lo, hi]. */
static double worst_error(void (*f)(size_t, float *), double (*ref)(double), double lo, double hi)
{
  enum { N = 200001 };
  static float x[N];
  double worst = 0;
  for (int i = 0; i < N; i++) x[i] = (float)(lo + (hi - lo) * i / (N - 1));
  f(N, x);
  for (int i = 0; i < N; i++) {
    const double t = ref((double)(float)(lo + (hi - lo) * i / (N - 1)));
    const double e = fabs(x[i] - t) / fmax(fabs(t), 1e-30);
    if (e > worst) worst = e;
  }
  return worst;
}

/* The rational tanh's bound on this grid: 3e-7 with fused multiply-adds; 3.26e-7 measured without
 * them (a build for CPUs without FMA rounds each product of the polynomials separately). */
#if defined(__FMA__)
#define DY_TANH_BOUND 3e-7
#else
#define DY_TANH_BOUND 3.5e-7
#endif

static int check_tanh(void)
{
  const double worst = worst_error(dy_tanh_forward, tanh, -12, 12);
  float special[4] = {NAN, INFINITY, -INFINITY, -0.0f};
  dy_tanh_forward(4, special);
  const int accurate = worst < DY_TANH_BOUND;
  const int special_ok = isnan(special[0]) && special[1] == 1 && special[2] == -1 && special[3] == 0 &&
                         signbit(special[3]);
  printf("tanh: worst relative error %.2e on [-12, 12] (bound %.2g)%s, special values %s\n", worst, DY_TANH_BOUND,
         accurate ? "" : " TOO LARGE", special_ok ? "ok" : "WRONG");
  return accurate && special_ok;
}

/* dy_exp_forward over the normal range, and its overflow, underflow and NaN */
static int check_exp(void)
{
  const double worst = worst_error(dy_exp_forward, exp, -87, 88.7);
  float special[8] = {NAN, INFINITY, -INFINITY, 0.0f, 88.8f, -120.0f, -100.0f, 1e-7f};
  dy_exp_forward(8, special);
  const int ok = worst < 2e-7 && isnan(special[0]) && isinf(special[1]) && special[2] == 0 && special[3] == 1 &&
                 isinf(special[4]) && special[5] == 0 && special[6] > 0 && special[6] < 1e-43 &&
                 special[7] == expf(1e-7f);
  printf("exp: worst relative error %.2e on [-87, 88.7], special values %s\n", worst, ok ? "ok" : "WRONG");
  return ok;
}
#endif

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  if (argc < 2) {
    fprintf(stderr, "usage: %s REFERENCE_FILE\n", argv[0]);
    PetscCall(PetscFinalize());
    return 1;
  }
  size_t np = 0;
  double losses[2][3], *grads[2];
  grads[0] = malloc(100000 * sizeof(double));
  grads[1] = malloc(100000 * sizeof(double));
  for (int m = 0; m < 2; m++) run(m, losses[m], grads[m], &np);
  int bad = 0;
#if defined(DY_REAL_DOUBLE)
  FILE *f = fopen(argv[1], "wb");
  bad = !f || fwrite(&np, sizeof np, 1, f) != 1;
  for (int m = 0; m < 2 && !bad; m++)
    bad = fwrite(losses[m], sizeof(double), 3, f) != 3 || fwrite(grads[m], sizeof(double), np, f) != np;
  if (f && fclose(f)) bad = 1;
  printf("%s reference %s\n", bad ? "FAILED to write" : "wrote", argv[1]);
#else
  bad = !check_tanh() | !check_exp();
  FILE *f = fopen(argv[1], "rb");
  size_t np_ref = 0;
  if (!f || fread(&np_ref, sizeof np_ref, 1, f) != 1 || np_ref != np) {
    printf("FAIL: cannot read a matching reference from %s\n", argv[1]);
    bad = 1;
  }
  double *ref = malloc(np * sizeof *ref), lref[3];
  for (int m = 0; m < 2 && f && !bad; m++) {
    if (fread(lref, sizeof(double), 3, f) != 3 || fread(ref, sizeof(double), np, f) != np) {
      printf("FAIL: short reference file\n");
      bad = 1;
      break;
    }
    for (int k = 0; k < 3; k++) {
      const double e = fabs(losses[m][k] - lref[k]) / fabs(lref[k]);
      printf("%s diffusion, loss %d: single %.8g double %.8g, relative difference %.2e\n",
             m ? "learned" : "constant", k, losses[m][k], lref[k], e);
      if (e > 1e-5) bad = 1;
    }
    /* gradients relative to their largest entry */
    double gmax = 0, dmax = 0;
    for (size_t i = 0; i < np; i++) {
      gmax = fmax(gmax, fabs(ref[i]));
      dmax = fmax(dmax, fabs(grads[m][i] - ref[i]));
    }
    printf("%s diffusion, gradients: max difference %.2e of max entry %.2e (%.2e)\n", m ? "learned" : "constant",
           dmax, gmax, dmax / gmax);
    if (dmax > 1e-4 * gmax) bad = 1;
  }
  if (f) fclose(f);
  free(ref);
#endif
  free(grads[0]);
  free(grads[1]);
  printf("%s\n", bad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return bad ? 1 : 0;
}
