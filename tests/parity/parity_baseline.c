/* Parity of the baselines' step with PyTorch (tools/torch_oracle_baselines.py).
 *
 *   parity_baseline_double FIXTURE.h5 [--perturb]     (also parity_baseline_single)
 *
 * Builds the fixture's model (nn/dy_baseline.h; the image nets of nn/dy_convnet.h when the fixture's
 * network_code is 1) from its initial parameters and replays its steps:
 * dy_baseline_loss_grad on the stored frames, noise and projections, then Adam at the fixture's
 * learning rate over all parameters. Checked every step: the three losses (relative error) and the
 * gradient of each net, norm-wise ||got - ref|| / ||ref|| and element-wise with the floor 1e-3
 * ||ref||_inf; after the last step the parameters, against how far the oracle's moved. Double:
 * everything to 1e-5; single: 1e-3 for step 0, 1e-2 for the trajectory (see tests/parity/parity.c).
 * --perturb moves one gradient element of step 0 by 10 tol and inverts the verdict. */
#include "nn/dy_baseline.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DY_REAL_DOUBLE)
static const double tol0 = 1e-5, tol_traj = 1e-5;
#else
static const double tol0 = 1e-3, tol_traj = 1e-2;
#endif

static int failures = 0;
static double worst_ratio = 0;

static void check(const char *what, int step, double err, double tol)
{
  if (err / tol > worst_ratio) worst_ratio = err / tol;
  if (!(err <= tol)) {
    printf("  FAIL step %d %s: error %.3e > %.1e\n", step, what, err, tol);
    failures++;
  }
}

static double attr_d(hid_t f, const char *name)
{
  double v = NAN;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) {
    fprintf(stderr, "fixture: attribute %s missing\n", name);
    exit(1);
  }
  H5Aclose(a);
  return v;
}

/* An attribute that older fixtures lack: its value, or fallback. */
static double attr_d_or(hid_t f, const char *name, double fallback)
{
  return H5Aexists(f, name) > 0 ? attr_d(f, name) : fallback;
}

/* The whole dataset converted to `type`, of exactly n elements. */
static void *read_all(hid_t f, const char *path, hid_t type, size_t elem, size_t n)
{
  hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
  if (ds < 0) {
    fprintf(stderr, "fixture: dataset %s missing\n", path);
    exit(1);
  }
  hid_t sp = H5Dget_space(ds);
  const hssize_t npts = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  void *buf = malloc(elem * (n ? n : 1));
  if (npts != (hssize_t)n || H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    fprintf(stderr, "fixture: %s has %lld elements, expected %zu\n", path, (long long)npts, n);
    exit(1);
  }
  H5Dclose(ds);
  return buf;
}

static dy_real *read_real(hid_t f, const char *path, size_t n)
{
  double *v = read_all(f, path, H5T_NATIVE_DOUBLE, sizeof(double), n);
  dy_real *r = malloc(n * sizeof *r);
  for (size_t i = 0; i < n; i++) r[i] = (dy_real)v[i];
  free(v);
  return r;
}

/* norm-wise and element-wise errors of got against ref (n) */
static void errors(size_t n, const dy_real *got, const double *ref, double *norm, double *elem)
{
  double num = 0, den = 0, inf = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
    den += ref[i] * ref[i];
    inf = fmax(inf, fabs(ref[i]));
  }
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - ref[i]) / fmax(fabs(ref[i]), 1e-3 * inf));
  *norm = sqrt(num) / fmax(sqrt(den), 1e-300);
  *elem = worst;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  if (argc < 2) {
    fprintf(stderr, "usage: %s FIXTURE.h5 [--perturb]\n", argv[0]);
    return 2;
  }
  const int perturb = argc > 2 && !strcmp(argv[2], "--perturb");
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 1;
  }
  const DyBaselineType type = (DyBaselineType)attr_d(f, "model_code");
  const int D = (int)attr_d(f, "D"), Dy = (int)attr_d(f, "Dy"), d = (int)attr_d(f, "d");
  const int B = (int)attr_d(f, "B"), L = (int)attr_d(f, "L"), steps = (int)attr_d(f, "steps");
  const DyBaselineOptions opt = {.type = type, .beta = attr_d(f, "beta"), .nu = attr_d(f, "nu")};
  const double lr = attr_d(f, "lr");
  DyModelShape shape = {.D = D, .Dy = Dy, .d = d, .act = (DyActivation)attr_d(f, "activation_code"),
                        .network = (DyNetwork)attr_d_or(f, "network_code", DY_NETWORK_MLP),
                        .channels = (int)attr_d_or(f, "channels", 0)};
  int *nh = read_all(f, "shape/nhidden", H5T_NATIVE_INT, sizeof(int), DY_NNETS);
  int *hid = read_all(f, "shape/hidden", H5T_NATIVE_INT, sizeof(int), DY_NNETS * (DY_MAX_LAYERS - 1));
  for (int k = 0; k < DY_NNETS; k++) {
    shape.nhidden[k] = nh[k];
    for (int l = 0; l < DY_MAX_LAYERS - 1; l++) shape.hidden[k][l] = hid[k * (DY_MAX_LAYERS - 1) + l];
  }
  DyModelShape fixture_shape = shape;
  dy_baseline_shape(type, &shape); /* the library's own idea of the baseline's nets */
  DyModel model;
  DyWork *nets;
  DyBaseWork *work;
  PetscCall(dy_model_create(&shape, &model));
  const size_t np = model.nparam;
  if (np != (size_t)attr_d(f, "nparam") || model.nparam_rep != (size_t)attr_d(f, "nparam_rep") ||
      memcmp(shape.nhidden, fixture_shape.nhidden, sizeof shape.nhidden)) {
    printf("FAIL: the model has %zu parameters (%zu in encoder and decoder), the fixture %.0f (%.0f)\n", np,
           model.nparam_rep, attr_d(f, "nparam"), attr_d(f, "nparam_rep"));
    return 1;
  }
  PetscCall(dy_work_create(&model, B, L, &nets));
  PetscCall(dy_basework_create(&model, nets, B, L, &work));
  const int R = dy_baseline_noise_rows(type, B);
  dy_real *x0 = read_real(f, "inputs/x0", (size_t)steps * B * D), *x1 = read_real(f, "inputs/x1", (size_t)steps * B * D);
  dy_real *y0 = read_real(f, "inputs/y0", (size_t)steps * B * Dy), *y1 = read_real(f, "inputs/y1", (size_t)steps * B * Dy);
  dy_real *theta = read_real(f, "inputs/theta", (size_t)steps * L * d);
  dy_real *noise = read_real(f, "inputs/noise", (size_t)steps * R * d);
  double *losses = read_all(f, "losses", H5T_NATIVE_DOUBLE, sizeof(double), (size_t)steps * 3);
  double *grads = read_all(f, "grads", H5T_NATIVE_DOUBLE, sizeof(double), (size_t)steps * np);
  double *p0 = read_all(f, "params/initial", H5T_NATIVE_DOUBLE, sizeof(double), np);
  double *p1 = read_all(f, "params/final", H5T_NATIVE_DOUBLE, sizeof(double), np);
  H5Fclose(f);
  for (size_t i = 0; i < np; i++) model.params[i] = (dy_real)p0[i];
  DyAdam rep, prior;
  PetscCall(dy_adam_create(0, model.nparam_rep, lr, &rep));
  PetscCall(dy_adam_create(model.nparam_rep, np - model.nparam_rep, lr, &prior));

  for (int s = 0; s < steps; s++) {
    DyLosses l;
    const double tol = s ? tol_traj : tol0;
    dy_baseline_loss_grad(&model, work, &opt, B, L, x0 + (size_t)s * B * D, x1 + (size_t)s * B * D,
                          y0 + (size_t)s * B * Dy, y1 + (size_t)s * B * Dy, theta + (size_t)s * L * d,
                          noise + (size_t)s * R * d, &l);
    if (perturb && s == 0) model.grads[model.nparam_rep / 2] += (dy_real)(10 * tol * fmax(fabs(grads[model.nparam_rep / 2]), 1));
    const double got[3] = {l.rec, l.sw, l.prior}, *ref = losses + 3 * s;
    for (int k = 0; k < 3; k++) check(k == 0 ? "L_rec" : k == 1 ? "L_sw" : "KL", s, fabs(got[k] - ref[k]) / fmax(fabs(ref[k]), 1e-12), tol);
    for (int k = 0; k < DY_NNETS; k++) {
      const DyMlp *net = &model.net[k];
      if (!net->nparam) continue;
      double en, ee;
      char what[64];
      errors(net->nparam, model.grads + net->offset, grads + (size_t)s * np + net->offset, &en, &ee);
      snprintf(what, sizeof what, "net %d gradient, norm-wise", k);
      check(what, s, en, tol);
      snprintf(what, sizeof what, "net %d gradient, element-wise", k);
      check(what, s, ee, s ? 10 * tol : tol);
    }
    if (s == 0)
      printf("step 0: rec %.10g sw %.10g KL %.10g (oracle %.10g %.10g %.10g)\n", l.rec, l.sw, l.prior, ref[0], ref[1],
             ref[2]);
    dy_adam_update(&rep, model.params, model.grads);
    dy_adam_update(&prior, model.params, model.grads);
  }
  /* the parameters after the steps, against the oracle's displacement */
  double num = 0, den = 0;
  for (size_t i = 0; i < np; i++) {
    num += ((double)model.params[i] - p1[i]) * ((double)model.params[i] - p1[i]);
    den += (p1[i] - p0[i]) * (p1[i] - p0[i]);
  }
  check("final parameters against the displacement", steps, sqrt(num) / fmax(sqrt(den), 1e-300), tol_traj);
  printf("%s: %d steps of model %d, worst error/tolerance %.3g: %s\n", argv[1], steps, (int)type, worst_ratio,
         failures ? "FAIL" : "ok");
  dy_adam_destroy(&rep);
  dy_adam_destroy(&prior);
  dy_basework_destroy(&work);
  dy_work_destroy(&nets);
  dy_model_destroy(&model);
  free(nh), free(hid), free(x0), free(x1), free(y0), free(y1), free(theta), free(noise), free(losses), free(grads);
  free(p0), free(p1);
  PetscCall(PetscFinalize());
  if (perturb) return failures ? 0 : 1;
  return failures ? 1 : 0;
}
