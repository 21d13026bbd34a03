/* Parity of the numerical core with PyTorch (tools/torch_oracle.py).
 *
 *   parity_double FIXTURE.h5 [--perturb]      (also parity_single, built against dynae_single)
 *
 * Loads the oracle's initial parameters into a DyModel and replays its steps: each step runs
 * dy_model_loss_grad on the stored batch, projections and noise, then both Adam updates. Checked:
 *   - step 0: the three losses (also from dy_model_losses), every gradient per layer tensor (W, b),
 *     the encoder and decoder outputs (dy_model_encode / dy_model_decode);
 *   - every step: the losses and, per net, the gradient; after the last step the parameters, per
 *     layer tensor, measured against how far the oracle's parameters moved.
 * Errors: "norm" = ||got - ref|| / max(||ref||, floor), "elem" = max_i |got_i - ref_i| / max(|ref_i|, floor),
 * floors as documented at each check. Tolerances (see Tolerances below) depend on the precision
 * built. Exit code 0 only when all checks pass.
 * --perturb moves one gradient element of step 0 by 10 tol (relative, with the element-wise floor)
 * before the checks and inverts the verdict: it exits 0 only when that is caught, which shows that
 * the checks do fail on a disagreement of that size. */
#include "nn/dy_model.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Tolerances. Double: everything 1e-5 (the differences measured are rounding, 1e-12 at most).
 * Single, step 0: 1e-3 for losses and gradients, except element-wise for the encoder (tol_enc_elem,
 * 2e-2): L_sw pairs the sorted projections of B moves, and at B = 256 a few neighbours in a sort
 * order are closer than float rounding, so their order flips; the gradient, which reaches only the
 * encoder, then moves by a few 1e-3 in some elements (norm-wise 1e-4). PyTorch in float32 shows the
 * same errors against float64 (3e-3 to 8e-3 on the default_constant fixture), so this is the
 * precision, not the code. Over the ten steps the float rounding of the parameters feeds back
 * through Adam, whose update m / sqrt(v) turns a small relative change of a small gradient into a
 * change of the step itself: the trajectory is held to 1e-3 for the losses and 1e-2 for the
 * parameters, measured against how far they moved (still ~1e-5 absolute; a wrong gradient of any
 * layer shows there as an O(1) error). */
#if defined(DY_REAL_DOUBLE)
static const double tol_step0 = 1e-5, tol_enc_elem = 1e-5, tol_loss = 1e-5, tol_traj = 1e-5;
#else
static const double tol_step0 = 1e-3, tol_enc_elem = 2e-2, tol_loss = 1e-3, tol_traj = 1e-2;
#endif

/* The fixture, all in double. */
typedef struct {
  int D, Dy, d, B, L, steps, diffusion;  /* sizes, DyDiffusion code */
  int activation;                         /* DyActivation of encoder and decoder */
  double beta, lr, prior_lr;             /* loss weight, learning rates */
  size_t nparam, nparam_rep;             /* parameter counts */
  int nlayer;                            /* rows of layout */
  long long layout[4 * DY_MAX_LAYERS][6]; /* net, layer, in, out, offset of W, offset of b */
  int nhidden[DY_NNETS];                 /* hidden layers per net */
  int hidden[DY_NNETS][DY_MAX_LAYERS - 1]; /* hidden widths */
  double *x0, *x1, *y0, *y1;             /* (steps, B, D) / (steps, B, Dy) */
  double *theta, *eps;                   /* (steps, L, d), (steps, B, d) */
  double *losses;                        /* (steps, 3) */
  double *grads;                         /* (steps, nparam) */
  double *p_initial, *p_final;           /* (nparam) */
  double *z0, *z1, *y0hat;               /* (B, d), (B, d), (B, Dy) at step 0 */
  double *f, *g, *dgdz, *dzp;            /* (B, d) prior nets, diagonal Jacobian, moves at step 0 */
} Fixture;

static int failures = 0;
static double worst_ratio = 0; /* largest error / tolerance seen */

/* Kinds of check, for the summary line of each. */
typedef enum {
  CHK_FORWARD,    /* encoder / decoder outputs and step-0 intermediates */
  CHK_LOSS0,      /* losses of step 0 */
  CHK_GRAD_NORM,  /* step-0 gradients per tensor, norm-wise */
  CHK_GRAD_ELEM,  /* step-0 gradients per tensor, element-wise, decoder and prior nets */
  CHK_GRAD_ENC,   /* step-0 gradients per tensor, element-wise, encoder */
  CHK_TRAJ_LOSS,  /* losses of steps 1.. */
  CHK_TRAJ_GRAD,  /* gradients of steps 1.., norm-wise per net */
  CHK_FINAL_NORM, /* final parameters per tensor, norm-wise against the displacement */
  CHK_FINAL_ELEM, /* final parameters per tensor, element-wise against the displacement */
  CHK_NKIND
} CheckKind;
static const char *kind_names[CHK_NKIND] = {"forward and intermediates", "losses, step 0", "gradients, norm-wise",
                                            "gradients, element-wise", "encoder gradients, element-wise", "losses, steps 1..", "gradients, steps 1..",
                                            "final parameters, norm-wise", "final parameters, element-wise"};
static double kind_max[CHK_NKIND], kind_tol[CHK_NKIND]; /* largest error and tolerance per kind */

static PetscErrorCode read_attr(hid_t file, const char *name, hid_t type, void *value)
{
  PetscFunctionBeginUser;
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  PetscCheck(a >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "fixture: attribute '%s' missing", name);
  herr_t st = H5Aread(a, type, value);
  H5Aclose(a);
  PetscCheck(st >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "fixture: cannot read attribute '%s'", name);
  PetscFunctionReturn(0);
}

/* Reads a whole dataset of exactly n elements, converted to `type`, into buf (allocated when *buf is NULL). */
static PetscErrorCode read_data(hid_t file, const char *path, hid_t type, size_t elem, size_t n, void **buf)
{
  PetscFunctionBeginUser;
  hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
  PetscCheck(ds >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "fixture: dataset '%s' missing", path);
  hid_t sp = H5Dget_space(ds);
  hssize_t npts = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  if (npts != (hssize_t)n) H5Dclose(ds);
  PetscCheck(npts == (hssize_t)n, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "fixture: '%s' has %lld elements, expected %zu",
             path, (long long)npts, n);
  if (!*buf) PetscCall(PetscMalloc(elem * (n ? n : 1), buf));
  herr_t st = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf);
  H5Dclose(ds);
  PetscCheck(st >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "fixture: cannot read '%s'", path);
  PetscFunctionReturn(0);
}

static PetscErrorCode read_doubles(hid_t file, const char *path, size_t n, double **buf)
{
  return read_data(file, path, H5T_NATIVE_DOUBLE, sizeof(double), n, (void **)buf);
}

static PetscErrorCode fixture_load(const char *path, Fixture *fx)
{
  PetscFunctionBeginUser;
  memset(fx, 0, sizeof *fx);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  PetscCheck(f >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot open fixture %s (written by tools/torch_oracle.py)", path);
  const struct {
    const char *name;
    int *dst;
  } ints[] = {{"D", &fx->D}, {"Dy", &fx->Dy}, {"d", &fx->d}, {"B", &fx->B}, {"L", &fx->L}, {"steps", &fx->steps},
              {"diffusion_code", &fx->diffusion}, {"activation_code", &fx->activation}};
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; ++k) PetscCall(read_attr(f, ints[k].name, H5T_NATIVE_INT, ints[k].dst));
  PetscCall(read_attr(f, "beta", H5T_NATIVE_DOUBLE, &fx->beta));
  PetscCall(read_attr(f, "lr", H5T_NATIVE_DOUBLE, &fx->lr));
  PetscCall(read_attr(f, "prior_lr", H5T_NATIVE_DOUBLE, &fx->prior_lr));
  unsigned long long np, npr;
  PetscCall(read_attr(f, "nparam", H5T_NATIVE_ULLONG, &np));
  PetscCall(read_attr(f, "nparam_rep", H5T_NATIVE_ULLONG, &npr));
  fx->nparam = (size_t)np;
  fx->nparam_rep = (size_t)npr;

  int *ip = fx->nhidden;
  PetscCall(read_data(f, "shape/nhidden", H5T_NATIVE_INT, sizeof(int), DY_NNETS, (void **)&ip));
  ip = &fx->hidden[0][0];
  PetscCall(read_data(f, "shape/hidden", H5T_NATIVE_INT, sizeof(int), DY_NNETS * (DY_MAX_LAYERS - 1), (void **)&ip));
  fx->nlayer = DY_NNETS;
  for (int k = 0; k < DY_NNETS; ++k) {
    PetscCheck(fx->nhidden[k] >= 0 && fx->nhidden[k] < DY_MAX_LAYERS, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED,
               "fixture: net %d has %d hidden layers", k, fx->nhidden[k]);
    fx->nlayer += fx->nhidden[k];
  }
  long long *lp = &fx->layout[0][0];
  PetscCall(read_data(f, "layout", H5T_NATIVE_LLONG, sizeof(long long), (size_t)fx->nlayer * 6, (void **)&lp));

  const size_t S = (size_t)fx->steps, B = (size_t)fx->B;
  PetscCall(read_doubles(f, "inputs/x0", S * B * fx->D, &fx->x0));
  PetscCall(read_doubles(f, "inputs/x1", S * B * fx->D, &fx->x1));
  PetscCall(read_doubles(f, "inputs/y0", S * B * fx->Dy, &fx->y0));
  PetscCall(read_doubles(f, "inputs/y1", S * B * fx->Dy, &fx->y1));
  PetscCall(read_doubles(f, "inputs/theta", S * fx->L * fx->d, &fx->theta));
  PetscCall(read_doubles(f, "inputs/eps", S * B * fx->d, &fx->eps));
  PetscCall(read_doubles(f, "losses", S * 3, &fx->losses));
  PetscCall(read_doubles(f, "grads", S * fx->nparam, &fx->grads));
  PetscCall(read_doubles(f, "params/initial", fx->nparam, &fx->p_initial));
  PetscCall(read_doubles(f, "params/final", fx->nparam, &fx->p_final));
  PetscCall(read_doubles(f, "step0/z0", B * fx->d, &fx->z0));
  PetscCall(read_doubles(f, "step0/z1", B * fx->d, &fx->z1));
  PetscCall(read_doubles(f, "step0/y0hat", B * fx->Dy, &fx->y0hat));
  PetscCall(read_doubles(f, "step0/f", B * fx->d, &fx->f));
  PetscCall(read_doubles(f, "step0/g", B * fx->d, &fx->g));
  PetscCall(read_doubles(f, "step0/dgdz", B * fx->d, &fx->dgdz));
  PetscCall(read_doubles(f, "step0/dzp", B * fx->d, &fx->dzp));
  H5Fclose(f);
  PetscFunctionReturn(0);
}

static PetscErrorCode fixture_free(Fixture *fx)
{
  PetscFunctionBeginUser;
  PetscCall(PetscFree(fx->x0));
  PetscCall(PetscFree(fx->x1));
  PetscCall(PetscFree(fx->y0));
  PetscCall(PetscFree(fx->y1));
  PetscCall(PetscFree(fx->theta));
  PetscCall(PetscFree(fx->eps));
  PetscCall(PetscFree(fx->losses));
  PetscCall(PetscFree(fx->grads));
  PetscCall(PetscFree(fx->p_initial));
  PetscCall(PetscFree(fx->p_final));
  PetscCall(PetscFree(fx->z0));
  PetscCall(PetscFree(fx->z1));
  PetscCall(PetscFree(fx->y0hat));
  PetscCall(PetscFree(fx->f));
  PetscCall(PetscFree(fx->g));
  PetscCall(PetscFree(fx->dgdz));
  PetscCall(PetscFree(fx->dzp));
  PetscFunctionReturn(0);
}

/* Records one check: prints it when it fails or when verbose. */
static void verdict(CheckKind kind, const char *what, double err, double tol, int verbose)
{
  const int bad = !(err <= tol); /* NaN fails */
  if (err / tol > worst_ratio || err != err) worst_ratio = err != err ? INFINITY : err / tol;
  if (err > kind_max[kind] || err != err) kind_max[kind] = err;
  kind_tol[kind] = fmax(kind_tol[kind], tol);
  failures += bad;
  if (bad || verbose) printf("  %-40s %10.3e  (tol %.0e)%s\n", what, err, tol, bad ? "  FAIL" : "");
}

static void summary(void)
{
  printf("largest errors by kind:\n");
  for (int k = 0; k < CHK_NKIND; k++)
    if (kind_tol[k] > 0) printf("  %-32s %10.3e  (tol %.0e)\n", kind_names[k], kind_max[k], kind_tol[k]);
}

/* Norm-wise and element-wise relative errors of got against ref over n values, with floors. */
static void rel_errors(size_t n, const dy_real *got, const double *ref, double norm_floor, double elem_floor, double *norm_err,
                       double *elem_err)
{
  double num = 0, den = 0, emax = 0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = (double)got[i] - ref[i];
    num += diff * diff;
    den += ref[i] * ref[i];
    const double e = fabs(diff) / fmax(fabs(ref[i]), elem_floor);
    emax = (e > emax || e != e) ? e : emax;
  }
  *norm_err = sqrt(num) / fmax(sqrt(den), norm_floor);
  *elem_err = emax;
}

static double max_abs(size_t n, const double *v)
{
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(v[i]));
  return m;
}

static double norm2(size_t n, const double *v)
{
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += v[i] * v[i];
  return sqrt(s);
}

/* Checks the model's layout against the oracle's. */
static PetscErrorCode check_layout(const DyModel *m, const Fixture *fx)
{
  PetscFunctionBeginUser;
  PetscCheck(m->nparam == fx->nparam && m->nparam_rep == fx->nparam_rep, PETSC_COMM_SELF, PETSC_ERR_PLIB,
             "parameter counts: model %zu (%zu representation), oracle %zu (%zu)", m->nparam, m->nparam_rep, fx->nparam,
             fx->nparam_rep);
  for (int r = 0; r < fx->nlayer; ++r) {
    const long long *row = fx->layout[r];
    const DyMlp *net = &m->net[row[0]];
    const int l = (int)row[1];
    size_t off = net->offset;
    for (int j = 0; j < l; ++j) off += (size_t)net->dims[j + 1] * (net->dims[j] + 1);
    PetscCheck(l < net->nlayer && net->dims[l] == row[2] && net->dims[l + 1] == row[3] && off == (size_t)row[4] &&
                   off + (size_t)row[2] * row[3] == (size_t)row[5],
               PETSC_COMM_SELF, PETSC_ERR_PLIB, "layout of net %lld layer %d differs from torch.nn.Linear order", row[0], l);
  }
  PetscFunctionReturn(0);
}

/* Per layer tensor (W, b) of every net: gradient of step 0 against the oracle's.
 * Floors: norm-wise 1e-3 of the whole net's gradient norm (a tensor whose gradient is that small
 * is judged relative to its net), element-wise 1e-2 of the tensor's largest entry. */
static void check_grads_step0(const DyModel *m, const Fixture *fx)
{
  static const char *names[DY_NNETS] = {"encoder", "decoder", "force", "logdiff"};
  for (int r = 0; r < fx->nlayer; ++r) {
    const long long *row = fx->layout[r];
    const DyMlp *net = &m->net[row[0]];
    const double net_norm = norm2(net->nparam, &fx->grads[net->offset]);
    for (int t = 0; t < 2; ++t) {
      const size_t off = (size_t)row[4 + t], n = t == 0 ? (size_t)(row[2] * row[3]) : (size_t)row[3];
      double en, ee;
      char what[96];
      rel_errors(n, &m->grads[off], &fx->grads[off], 1e-3 * net_norm + 1e-300, 1e-2 * max_abs(n, &fx->grads[off]) + 1e-300, &en,
                 &ee);
      snprintf(what, sizeof what, "grad %s layer %lld %s norm", names[row[0]], row[1], t ? "b" : "W");
      verdict(CHK_GRAD_NORM, what, en, tol_step0, 1);
      snprintf(what, sizeof what, "grad %s layer %lld %s elem", names[row[0]], row[1], t ? "b" : "W");
      if (row[0] == DY_NET_ENCODER) verdict(CHK_GRAD_ENC, what, ee, tol_enc_elem, 0);
      else verdict(CHK_GRAD_ELEM, what, ee, tol_step0, 0);
    }
  }
}

/* Final parameters per layer tensor, against the displacement of the oracle's: norm-wise
 * ||got - ref|| / ||ref - initial||, element-wise max |got - ref| / max |ref - initial|. */
static PetscErrorCode check_final_params(const DyModel *m, const Fixture *fx)
{
  PetscFunctionBeginUser;
  static const char *names[DY_NNETS] = {"encoder", "decoder", "force", "logdiff"};
  double *moved;
  PetscCall(PetscMalloc1(fx->nparam, &moved));
  for (size_t i = 0; i < fx->nparam; ++i) moved[i] = fx->p_final[i] - fx->p_initial[i];
  for (int r = 0; r < fx->nlayer; ++r) {
    const long long *row = fx->layout[r];
    for (int t = 0; t < 2; ++t) {
      const size_t off = (size_t)row[4 + t], n = t == 0 ? (size_t)(row[2] * row[3]) : (size_t)row[3];
      double num = 0, emax = 0;
      for (size_t i = off; i < off + n; ++i) {
        const double diff = (double)m->params[i] - fx->p_final[i];
        num += diff * diff;
        emax = fmax(emax, fabs(diff));
      }
      const double scale = norm2(n, &moved[off]), scale_max = max_abs(n, &moved[off]);
      char what[96];
      snprintf(what, sizeof what, "final %s layer %lld %s norm", names[row[0]], row[1], t ? "b" : "W");
      verdict(CHK_FINAL_NORM, what, scale > 0 ? sqrt(num) / scale : sqrt(num), tol_traj, 1);
      snprintf(what, sizeof what, "final %s layer %lld %s elem", names[row[0]], row[1], t ? "b" : "W");
      verdict(CHK_FINAL_ELEM, what, scale_max > 0 ? emax / scale_max : emax, tol_traj, 0);
    }
  }
  PetscCall(PetscFree(moved));
  PetscFunctionReturn(0);
}

/* Relative errors of the three losses of step s. L_prior (a log-likelihood) can cross zero, so
 * each loss is judged relative to max(|value|, 0.1 max over the trajectory of |value|). */
static void check_losses(const char *tag, int s, const DyLosses *got, const Fixture *fx, double tol)
{
  const double v[3] = {got->rec, got->sw, got->prior};
  const double *ref = &fx->losses[3 * s];
  static const char *names[3] = {"L_rec", "L_sw", "L_prior"};
  for (int k = 0; k < 3; ++k) {
    double scale = 0;
    for (int t = 0; t < fx->steps; ++t) scale = fmax(scale, fabs(fx->losses[3 * t + k]));
    char what[96];
    snprintf(what, sizeof what, "%s step %d %s (%.6g)", tag, s, names[k], ref[k]);
    verdict(s == 0 ? CHK_LOSS0 : CHK_TRAJ_LOSS, what, fabs(v[k] - ref[k]) / fmax(fmax(fabs(ref[k]), 0.1 * scale), 1e-300),
            tol, s == 0 || k == 2);
  }
}

static void to_real(size_t n, const double *src, dy_real *dst)
{
  for (size_t i = 0; i < n; ++i) dst[i] = (dy_real)src[i];
}

/* Element-wise against an intermediate array of the oracle; floor 1e-2 of its largest entry. */
static void check_array(const char *what, size_t n, const dy_real *got, const double *ref)
{
  double en, ee;
  rel_errors(n, got, ref, 1e-300, 1e-2 * max_abs(n, ref) + 1e-300, &en, &ee);
  verdict(CHK_FORWARD, what, ee, tol_step0, 1);
}

/* Encoder and decoder alone at the initial parameters. */
static PetscErrorCode check_forward(DyModel *m, DyWork *w, const Fixture *fx)
{
  PetscFunctionBeginUser;
  const size_t B = (size_t)fx->B;
  dy_real *x, *z, *y;
  PetscCall(PetscMalloc3(B * fx->D, &x, B * fx->d, &z, B * fx->Dy, &y));
  to_real(B * fx->D, fx->x0, x);
  dy_model_encode(m, w, (ptrdiff_t)B, x, z);
  check_array("dy_model_encode(x0) elem", B * fx->d, z, fx->z0);
  to_real(B * fx->D, fx->x1, x);
  dy_model_encode(m, w, (ptrdiff_t)B, x, z);
  check_array("dy_model_encode(x1) elem", B * fx->d, z, fx->z1);
  to_real(B * fx->d, fx->z0, z);
  dy_model_decode(m, w, (ptrdiff_t)B, z, y);
  check_array("dy_model_decode(z0) elem", B * fx->Dy, y, fx->y0hat);
  PetscCall(PetscFree3(x, z, y));
  PetscFunctionReturn(0);
}

/* Intermediates of step 0 through dy_work_view: they locate a disagreement of the losses. */
static void check_view(const DyModel *m, const DyWork *w, const Fixture *fx)
{
  DyStepView v;
  const size_t n = (size_t)fx->B * fx->d;
  dy_work_view(m, w, fx->B, &v);
  check_array("step 0 z0 elem", n, v.z0, fx->z0);
  check_array("step 0 z1 elem", n, v.z1, fx->z1);
  check_array("step 0 decoder(z0) elem", (size_t)fx->B * fx->Dy, v.y0hat, fx->y0hat);
  check_array("step 0 force f elem", n, v.f, fx->f);
  check_array("step 0 log-diffusion g elem", n, v.g, fx->g);
  check_array("step 0 dg_i/dz_i elem", n, v.dgdz, fx->dgdz);
  check_array("step 0 prior moves dzp elem", n, v.dzp, fx->dzp);
}

static PetscErrorCode run(const char *path, int perturb)
{
  PetscFunctionBeginUser;
  Fixture fx;
  PetscCall(fixture_load(path, &fx));
  printf("parity (%s precision) against %s: D %d Dy %d d %d, B %d L %d, %d steps, beta %g, %s diffusion, %zu parameters\n",
         DY_REAL_NAME, path, fx.D, fx.Dy, fx.d, fx.B, fx.L, fx.steps, fx.beta, fx.diffusion ? "learned" : "constant",
         fx.nparam);

  DyModelShape shape = {.D = fx.D, .Dy = fx.Dy, .d = fx.d, .act = (DyActivation)fx.activation};
  memcpy(shape.nhidden, fx.nhidden, sizeof shape.nhidden);
  memcpy(shape.hidden, fx.hidden, sizeof shape.hidden);
  DyModel m;
  DyWork *w = NULL;
  DyAdam adam_rep, adam_prior;
  PetscCall(dy_model_create(&shape, &m));
  PetscCall(check_layout(&m, &fx));
  PetscCall(dy_work_create(&m, fx.B, fx.L, &w));
  PetscCall(dy_adam_create(0, m.nparam_rep, fx.lr, &adam_rep));
  PetscCall(dy_adam_create(m.nparam_rep, m.nparam - m.nparam_rep, fx.prior_lr, &adam_prior));
  to_real(m.nparam, fx.p_initial, m.params);

  const size_t B = (size_t)fx.B;
  dy_real *x0, *x1, *y0, *y1, *theta, *eps;
  PetscCall(PetscMalloc6(B * fx.D, &x0, B * fx.D, &x1, B * fx.Dy, &y0, B * fx.Dy, &y1, (size_t)fx.L * fx.d, &theta, B * fx.d, &eps));
  PetscCall(check_forward(&m, w, &fx));

  const DyLossOptions opt = {.beta = fx.beta, .diffusion = fx.diffusion ? DY_DIFFUSION_LEARNED : DY_DIFFUSION_CONSTANT};
  for (int s = 0; s < fx.steps; ++s) {
    to_real(B * fx.D, &fx.x0[s * B * fx.D], x0);
    to_real(B * fx.D, &fx.x1[s * B * fx.D], x1);
    to_real(B * fx.Dy, &fx.y0[s * B * fx.Dy], y0);
    to_real(B * fx.Dy, &fx.y1[s * B * fx.Dy], y1);
    to_real((size_t)fx.L * fx.d, &fx.theta[(size_t)s * fx.L * fx.d], theta);
    to_real(B * fx.d, &fx.eps[s * B * fx.d], eps);
    DyLosses got;
    const double *gref = &fx.grads[(size_t)s * fx.nparam];
    if (s == 0) {
      dy_model_losses(&m, w, fx.B, fx.L, x0, x1, y0, y1, theta, eps, &opt, &got);
      check_losses("dy_model_losses", s, &got, &fx, tol_step0);
    }
    dy_model_loss_grad(&m, w, fx.B, fx.L, x0, x1, y0, y1, theta, eps, &opt, &got);
    if (s == 0) check_view(&m, w, &fx);
    if (perturb && s == 0) {
      /* the middle weight of the decoder: any disagreement of this size must fail */
      const size_t i = m.net[DY_NET_DECODER].offset + m.net[DY_NET_DECODER].nparam / 2;
      m.grads[i] = (dy_real)(m.grads[i] + 10 * tol_step0 * fmax(fabs(gref[i]), 1e-2 * max_abs(m.net[DY_NET_DECODER].nparam, &gref[m.net[DY_NET_DECODER].offset])));
      printf("  perturbed grads[%zu] on purpose\n", i);
    }
    if (s == 0) {
      check_losses("dy_model_loss_grad", s, &got, &fx, tol_step0);
      check_grads_step0(&m, &fx);
    } else {
      check_losses("trajectory", s, &got, &fx, tol_loss);
      for (int k = 0; k < DY_NNETS; ++k) {
        const DyMlp *net = &m.net[k];
        double en, ee;
        char what[96];
        rel_errors(net->nparam, &m.grads[net->offset], &gref[net->offset], 1e-300, 1e-300, &en, &ee);
        snprintf(what, sizeof what, "trajectory step %d grad net %d norm", s, k);
        verdict(CHK_TRAJ_GRAD, what, en, tol_traj, 0);
      }
    }
    dy_adam_update(&adam_rep, m.params, m.grads);
    dy_adam_update(&adam_prior, m.params, m.grads);
  }
  PetscCall(check_final_params(&m, &fx));

  PetscCall(PetscFree6(x0, x1, y0, y1, theta, eps));
  dy_adam_destroy(&adam_rep);
  dy_adam_destroy(&adam_prior);
  dy_work_destroy(&w);
  dy_model_destroy(&m);
  PetscCall(fixture_free(&fx));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--perturb"))) {
    fprintf(stderr, "usage: %s FIXTURE.h5 [--perturb]\n", argv[0]);
    return 2;
  }
  PetscCall(PetscInitializeNoArguments());
  const int perturb = argc == 3;
  PetscCall(run(argv[1], perturb));
  summary();
  printf("%s: %d check(s) failed; largest error/tolerance %.3g\n", failures ? "FAIL" : "PASS", failures, worst_ratio);
  if (perturb) printf("%s\n", failures ? "the perturbation was detected" : "ERROR: the perturbation went unnoticed");
  PetscCall(PetscFinalize());
  return (failures > 0) != perturb;
}
