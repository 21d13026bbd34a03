/* Forward values on a hand-computable model (D = Dy = d = 1, one hidden unit per net), the
 * encode/decode entry points, the initialisation's ranges and order, in double precision. */
#include "nn/dy_model.h"

#include <math.h>
#include <stdio.h>

static int nbad = 0;

static void expect(const char *what, double got, double want)
{
  const double err = fabs(got - want) / fmax(fabs(want), 1.0);
  if (err > 1e-13) {
    printf("FAIL %s: got %.17g, expected %.17g\n", what, got, want);
    nbad++;
  }
}

static double relu(double x) { return x > 0 ? x : 0; }

/* sorts v (n <= 8) ascending */
static void sort_small(int n, double *v)
{
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      const double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  DyModelShape shape = {.D = 1, .Dy = 1, .d = 1, .nhidden = {1, 1, 1, 1}, .hidden = {{1}, {1}, {1}, {1}}};
  DyModel model;
  DyWork *work;
  PetscCall(dy_model_create(&shape, &model));
  if (model.nparam != 16 || model.nparam_rep != 8) {
    printf("FAIL nparam %zu, nparam_rep %zu (expected 16, 8)\n", model.nparam, model.nparam_rep);
    nbad++;
  }
  /* per net: W1, b1, W2, b2 */
  const double P[16] = {1, 0, 2, 0.5, /* encoder: z = 2 relu(x) + 0.5 */
                        1.5, -0.2, -1, 0.3, /* decoder: y = -relu(1.5 z - 0.2) + 0.3 */
                        0.8, 0.1, 1.2, -0.3, /* force: f = 1.2 tanh(0.8 z + 0.1) - 0.3 */
                        0.5, -0.2, 2, 0.1}; /* log-diffusion: g = 2 tanh(0.5 z - 0.2) + 0.1 */
  for (int i = 0; i < 16; i++) model.params[i] = P[i];
  enum { B = 3, L = 2 };
  PetscCall(dy_work_create(&model, B, L, &work));
  const dy_real x0[B] = {0.3, -0.4, 1.0}, x1[B] = {0.5, 0.2, 0.7}, y0[B] = {0.1, 0.2, -0.1}, y1[B] = {0, 0.5, 0.3};
  const dy_real theta[L] = {1, -1}, eps[B] = {0.5, -1.2, 0.3};

  double z0[B], z1[B], dz[B], f[B], g[B], J[B], rec = 0, prior = 0;
  for (int n = 0; n < B; n++) {
    z0[n] = 2 * relu(x0[n]) + 0.5;
    z1[n] = 2 * relu(x1[n]) + 0.5;
    dz[n] = z1[n] - z0[n];
    const double e0 = -relu(1.5 * z0[n] - 0.2) + 0.3 - y0[n], e1 = -relu(1.5 * z1[n] - 0.2) + 0.3 - y1[n];
    rec += (e0 * e0 + e1 * e1) / B;
    f[n] = 1.2 * tanh(0.8 * z0[n] + 0.1) - 0.3;
    const double t = tanh(0.5 * z0[n] - 0.2);
    g[n] = 2 * t + 0.1;
    J[n] = 2 * 0.5 * (1 - t * t);
    const double M = exp(g[n]), r = dz[n] - M * f[n] - M * J[n];
    prior += 0.5 * (g[n] + r * r / (2 * M)) / B;
  }

  for (int learned = 0; learned < 2; learned++) {
    double dzp[B], sw = 0;
    for (int n = 0; n < B; n++) {
      const double M = exp(g[n]);
      dzp[n] = learned ? M * f[n] + M * J[n] + sqrt(2 * M) * eps[n] : f[n] + sqrt(2.0) * eps[n];
    }
    for (int l = 0; l < L; l++) {
      double a[B], b[B];
      for (int n = 0; n < B; n++) {
        a[n] = theta[l] * dz[n];
        b[n] = theta[l] * dzp[n];
      }
      sort_small(B, a);
      sort_small(B, b);
      for (int n = 0; n < B; n++) sw += (a[n] - b[n]) * (a[n] - b[n]) / (L * B);
    }
    DyLossOptions opt = {.beta = 10, .diffusion = learned ? DY_DIFFUSION_LEARNED : DY_DIFFUSION_CONSTANT};
    for (int grad = 0; grad < 2; grad++) {
      DyLosses los;
      if (grad) dy_model_loss_grad(&model, work, B, L, x0, x1, y0, y1, theta, eps, &opt, &los);
      else dy_model_losses(&model, work, B, L, x0, x1, y0, y1, theta, eps, &opt, &los);
      expect("L_rec", los.rec, rec);
      expect("L_sw", los.sw, sw);
      expect("L_prior", los.prior, prior);
      DyStepView v;
      dy_work_view(&model, work, B, &v);
      for (int n = 0; n < B; n++) {
        expect("z0", v.z0[n], z0[n]);
        expect("z1", v.z1[n], z1[n]);
        expect("dz", v.dz[n], dz[n]);
        expect("y0hat", v.y0hat[n], -relu(1.5 * z0[n] - 0.2) + 0.3);
        expect("f", v.f[n], f[n]);
        expect("g", v.g[n], g[n]);
        expect("dg/dz", v.dgdz[n], J[n]);
        expect("dzp", v.dzp[n], dzp[n]);
      }
    }
  }

  /* encode and decode in chunks larger than the workspace */
  dy_real xs[7], zs[7], ys[7];
  for (int i = 0; i < 7; i++) xs[i] = (dy_real)(0.4 * i - 1.1);
  dy_model_encode(&model, work, 7, xs, zs);
  dy_model_decode(&model, work, 7, zs, ys);
  for (int i = 0; i < 7; i++) {
    expect("encode", zs[i], 2 * relu(xs[i]) + 0.5);
    expect("decode", ys[i], -relu(1.5 * zs[i] - 0.2) + 0.3);
  }
  dy_work_destroy(&work);
  dy_model_destroy(&model);

  /* initialisation: layout order, per-layer bound 1/sqrt(fan_in) */
  DyModelShape s2 = {.D = 4, .Dy = 3, .d = 2, .nhidden = {2, 1, 1, 1}, .hidden = {{9, 5}, {6}, {7}, {3}}};
  PetscCall(dy_model_create(&s2, &model));
  DyRng rng, ref;
  dy_rng_seed(&rng, 42, DY_STREAM_INIT);
  ref = rng;
  dy_model_init(&model, &rng);
  size_t i = 0;
  for (int k = 0; k < DY_NNETS; k++) {
    if (model.net[k].offset != i) {
      printf("FAIL net %d offset %zu, expected %zu\n", k, model.net[k].offset, i);
      nbad++;
    }
    for (int l = 0; l < model.net[k].nlayer; l++) {
      const int in = model.net[k].dims[l], out = model.net[k].dims[l + 1];
      const double a = 1 / sqrt((double)in);
      for (int c = 0; c < (in + 1) * out; c++, i++) expect("init", model.params[i], -a + 2 * a * dy_rng_uniform(&ref));
    }
  }
  if (i != model.nparam || model.nparam_rep != model.net[DY_NET_FORCE].offset) {
    printf("FAIL layout: %zu parameters counted, nparam %zu, nparam_rep %zu\n", i, model.nparam, model.nparam_rep);
    nbad++;
  }
  dy_model_destroy(&model);
  printf("%s (%d failures)\n", nbad ? "FAIL" : "ok", nbad);
  PetscCall(PetscFinalize());
  return nbad ? 1 : 0;
}
