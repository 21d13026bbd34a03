/* The baseline models (beta-VAE, SWAE, SDE-VAE; see nn/dy_baseline.h): their loss kernels and one
 * step assembled from DynamicsAE's nets. */
#include "nn/dy_baseline.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

DyBaselineType dy_baseline_from_name(const char *name)
{
  if (!strcmp(name, "vae")) return DY_BASELINE_VAE;
  if (!strcmp(name, "swae")) return DY_BASELINE_SWAE;
  if (!strcmp(name, "sdevae")) return DY_BASELINE_SDEVAE;
  return DY_BASELINE_NONE;
}

/* a Gaussian posterior (mean and log-variance) rather than a point */
static int dy_baseline_gaussian(DyBaselineType type) { return type == DY_BASELINE_VAE || type == DY_BASELINE_SDEVAE; }

void dy_baseline_shape(DyBaselineType type, DyModelShape *shape)
{
  if (type == DY_BASELINE_NONE) return;
  shape->enc_out = dy_baseline_gaussian(type) ? 2 * shape->d : shape->d;
  shape->nhidden[DY_NET_LOGDIFF] = -1;
  if (type != DY_BASELINE_SDEVAE) shape->nhidden[DY_NET_FORCE] = -1;
}

int dy_baseline_noise_rows(DyBaselineType type, int B) { return type == DY_BASELINE_SDEVAE ? 2 * B : B; }

int dy_baseline_uses_pairs(DyBaselineType type) { return type == DY_BASELINE_SDEVAE; }

/* --- kernels ------------------------------------------------------------------------------------ */

void dy_gauss_sample(int n, int d, const dy_real *o, const dy_real *eps, dy_real *z)
{
  for (int r = 0; r < n; r++) {
    const dy_real *mu = o + (size_t)r * 2 * d, *s = mu + d;
    for (int i = 0; i < d; i++) z[(size_t)r * d + i] = mu[i] + exp((dy_real)0.5 * s[i]) * eps[(size_t)r * d + i];
  }
}

void dy_gauss_sample_backward(int n, int d, const dy_real *o, const dy_real *eps, const dy_real *gz, dy_real *dout)
{
  /* dz/dmu = 1, dz/ds = exp(s / 2) eps / 2 */
  for (int r = 0; r < n; r++) {
    const dy_real *s = o + (size_t)r * 2 * d + d;
    dy_real *dmu = dout + (size_t)r * 2 * d, *ds = dmu + d;
    for (int i = 0; i < d; i++) {
      const dy_real g = gz[(size_t)r * d + i];
      dmu[i] += g;
      ds[i] += g * (dy_real)0.5 * exp((dy_real)0.5 * s[i]) * eps[(size_t)r * d + i];
    }
  }
}

double dy_gauss_kl(int n, int d, const dy_real *o, double scale, dy_real *dout)
{
  const dy_real sc = (dy_real)scale;
  double sum = 0;
  for (int r = 0; r < n; r++) {
    const dy_real *mu = o + (size_t)r * 2 * d, *s = mu + d;
    for (int i = 0; i < d; i++) {
      const dy_real e = exp(s[i]);
      sum += 0.5 * ((double)mu[i] * mu[i] + (double)e - 1.0 - (double)s[i]);
      if (dout) {
        dout[(size_t)r * 2 * d + i] += sc * mu[i];
        dout[(size_t)r * 2 * d + d + i] += sc * (dy_real)0.5 * (e - 1);
      }
    }
  }
  return sum;
}

double dy_sde_kl(int B, int d, double nu, const dy_real *o, const dy_real *f, double scale, dy_real *dout,
                 dy_real *df)
{
  /* per pair and component, with r = mu1 - mu0 - f:
   *   T = [nu (mu0^2 + e0) - ln nu + e0 + e1 + r^2 - 2 - s0 - s1] / 2,  e = exp(s)
   *   dT/dmu0 = nu mu0 - r, dT/dmu1 = r, dT/df = -r, dT/ds0 = ((1 + nu) e0 - 1) / 2, dT/ds1 = (e1 - 1) / 2 */
  const dy_real sc = (dy_real)scale, nur = (dy_real)nu;
  const double lognu = log(nu);
  double sum = 0;
  for (int n = 0; n < B; n++) {
    const dy_real *mu0 = o + (size_t)n * 2 * d, *s0 = mu0 + d;
    const dy_real *mu1 = o + (size_t)(B + n) * 2 * d, *s1 = mu1 + d;
    for (int i = 0; i < d; i++) {
      const dy_real e0 = exp(s0[i]), e1 = exp(s1[i]), r = mu1[i] - mu0[i] - f[(size_t)n * d + i];
      sum += 0.5 * (nu * ((double)mu0[i] * mu0[i] + (double)e0) - lognu + (double)e0 + (double)e1 + (double)r * r -
                    2.0 - (double)s0[i] - (double)s1[i]);
      if (!dout) continue;
      dy_real *d0 = dout + (size_t)n * 2 * d, *d1 = dout + (size_t)(B + n) * 2 * d;
      d0[i] += sc * (nur * mu0[i] - r);
      d1[i] += sc * r;
      d0[d + i] += sc * (dy_real)0.5 * ((1 + nur) * e0 - 1);
      d1[d + i] += sc * (dy_real)0.5 * (e1 - 1);
      df[(size_t)n * d + i] -= sc * r;
    }
  }
  return sum;
}

/* --- one step ----------------------------------------------------------------------------------- */

struct DyBaseWork {
  DyWork *nets;           /* the nets' activations and gradient scratch (borrowed) */
  int B, L, d, zo;        /* capacity (pairs, projections), latent dimension, encoder outputs */
  DyBaselineType type;    /* of the last forward */
  int rows;               /* frames of the last forward: B, or 2B for pairs */
  const dy_real *o;       /* (rows, zo) encoder outputs of the last forward (in nets) */
  const dy_real *f;       /* (B, d) sdevae: force at mu0 (in nets) */
  void *mem;              /* the one allocation the arrays below point into */
  dy_real *x;             /* (2B, D) sdevae: x0 then x1 */
  dy_real *noise;         /* (2B, d) the step's noise: eps, or swae's prior samples u */
  dy_real *z;             /* (2B, d) the decoder's inputs (Gaussian samples) */
  dy_real *gz;            /* (2B, d) gradient of the decoder's inputs */
  dy_real *dout;          /* (2B, zo) gradient of the encoder outputs */
  dy_real *dy;            /* (2B, Dy) gradient of the decoder outputs */
  dy_real *mu0, *dmu0;    /* (B, d) sdevae: the means of x0's frames, their gradient through f */
  dy_real *df;            /* (B, d) sdevae: gradient of f */
  void *sw;               /* dy_sw_work_bytes(B, L, d) */
};

static dy_real *dy_base_carve(char *base, size_t *p, size_t n)
{
  dy_real *r = base ? (dy_real *)(base + *p) : NULL;
  *p += (n * sizeof(dy_real) + 63) & ~(size_t)63;
  return r;
}

static size_t dy_basework_layout(const DyModel *model, int B, int L, DyBaseWork *w, char *base)
{
  const size_t B2 = 2 * (size_t)B, d = (size_t)model->d;
  const size_t zo = (size_t)model->net[DY_NET_ENCODER].dims[model->net[DY_NET_ENCODER].nlayer];
  size_t p = 0;
  w->x = dy_base_carve(base, &p, B2 * model->D);
  w->noise = dy_base_carve(base, &p, B2 * d);
  w->z = dy_base_carve(base, &p, B2 * d);
  w->gz = dy_base_carve(base, &p, B2 * d);
  w->dout = dy_base_carve(base, &p, B2 * zo);
  w->dy = dy_base_carve(base, &p, B2 * model->Dy);
  w->mu0 = dy_base_carve(base, &p, (size_t)B * d);
  w->dmu0 = dy_base_carve(base, &p, (size_t)B * d);
  w->df = dy_base_carve(base, &p, (size_t)B * d);
  w->sw = dy_base_carve(base, &p, dy_sw_work_bytes(B, L, (int)d) / sizeof(dy_real) + 1);
  return p;
}

PetscErrorCode dy_basework_create(const DyModel *model, DyWork *nets, int B, int L, DyBaseWork **work)
{
  PetscFunctionBeginUser;
  PetscCheck(B > 0 && L > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "workspace needs B > 0 and L > 0 (B %d, L %d)",
             B, L);
  DyBaseWork *w;
  PetscCall(PetscCalloc1(1, &w));
  w->nets = nets;
  w->B = B;
  w->L = L;
  w->d = model->d;
  w->zo = model->net[DY_NET_ENCODER].dims[model->net[DY_NET_ENCODER].nlayer];
  const size_t bytes = dy_basework_layout(model, B, L, w, NULL);
  w->mem = dy_aligned_zalloc(bytes);
  if (!w->mem) {
    PetscCall(PetscFree(w));
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_MEM, "cannot allocate %zu bytes of model workspace", bytes);
  }
  dy_basework_layout(model, B, L, w, w->mem);
  *work = w;
  PetscFunctionReturn(0);
}

void dy_basework_destroy(DyBaseWork **work)
{
  if (!*work) return;
  free((*work)->mem);
  PetscFree(*work);
  *work = NULL;
}

void dy_baseline_forward(DyModel *model, DyBaseWork *w, const DyBaselineOptions *opt, int B, const dy_real *x0,
                         const dy_real *x1, const dy_real *y0, const dy_real *y1, const dy_real *noise, double norm,
                         int want_grad, DyLosses *losses)
{
  const int D = model->D, Dy = model->Dy, d = model->d;
  const int pairs = dy_baseline_uses_pairs(opt->type), rows = pairs ? 2 * B : B;
  const size_t nd = (size_t)rows * d;
  w->type = opt->type;
  w->rows = rows;
  *losses = (DyLosses){0};
  dy_model_net_prepare(model, w->nets);
  memcpy(w->noise, noise, nd * sizeof *w->noise);
  if (want_grad) {
    memset(w->dout, 0, (size_t)rows * w->zo * sizeof *w->dout);
    memset(w->dy, 0, (size_t)rows * Dy * sizeof *w->dy);
    memset(w->gz, 0, nd * sizeof *w->gz);
  }

  /* encoder on the frames (x0, or x0 and x1 together), decoder on the latent or its samples */
  const dy_real *in = x0;
  if (pairs) {
    memcpy(w->x, x0, (size_t)B * D * sizeof *w->x);
    memcpy(w->x + (size_t)B * D, x1, (size_t)B * D * sizeof *w->x);
    in = w->x;
  }
  w->o = dy_model_net_forward(model, w->nets, DY_NET_ENCODER, rows, in);
  const dy_real *zin = w->o; /* swae: the encoder outputs themselves */
  if (dy_baseline_gaussian(opt->type)) {
    dy_gauss_sample(rows, d, w->o, w->noise, w->z);
    zin = w->z;
  }
  const dy_real *yhat = dy_model_net_forward(model, w->nets, DY_NET_DECODER, rows, zin);
  dy_real *dy = want_grad ? w->dy : NULL;
  double rec = dy_sqerr_loss(B, Dy, yhat, y0, 1.0 / norm, dy);
  if (pairs) rec += dy_sqerr_loss(B, Dy, yhat + (size_t)B * Dy, y1, 1.0 / norm, dy ? dy + (size_t)B * Dy : NULL);
  losses->rec = rec / norm;

  /* the regularisers that need no other rows: the KL terms (swae's SW is the next phase) */
  const double kscale = opt->beta / norm;
  if (opt->type == DY_BASELINE_VAE) losses->prior = dy_gauss_kl(B, d, w->o, kscale, want_grad ? w->dout : NULL) / norm;
  if (opt->type == DY_BASELINE_SDEVAE) {
    for (int n = 0; n < B; n++) memcpy(w->mu0 + (size_t)n * d, w->o + (size_t)n * 2 * d, (size_t)d * sizeof *w->mu0);
    w->f = dy_model_net_forward(model, w->nets, DY_NET_FORCE, B, w->mu0);
    if (want_grad) memset(w->df, 0, (size_t)B * d * sizeof *w->df);
    losses->prior = dy_sde_kl(B, d, opt->nu, w->o, w->f, kscale, want_grad ? w->dout : NULL, w->df) / norm;
  }
}

void dy_baseline_moves(DyBaseWork *w, const dy_real **z, const dy_real **u, dy_real **gz)
{
  *z = w->o;
  *u = w->noise;
  *gz = w->gz;
}

double dy_baseline_sw(DyBaseWork *w, int B, int L, const dy_real *theta, const DyBaselineOptions *opt, int want_grad)
{
  return dy_sw_loss(L, B, w->d, theta, w->o, w->noise, opt->beta, want_grad ? w->gz : NULL, w->sw);
}

void dy_baseline_backward(DyModel *model, DyBaseWork *w, int B)
{
  const int d = model->d, rows = w->rows;
  memset(model->grads, 0, model->nparam * sizeof *model->grads);
  /* decoder: its input gradient adds to gz (swae: beta d(SW)/dz already there) */
  dy_model_net_backward(model, w->nets, DY_NET_DECODER, rows, w->dy, w->gz);
  if (!dy_baseline_gaussian(w->type)) {
    dy_model_net_backward(model, w->nets, DY_NET_ENCODER, rows, w->gz, NULL);
    return;
  }
  dy_gauss_sample_backward(rows, d, w->o, w->noise, w->gz, w->dout);
  if (w->type == DY_BASELINE_SDEVAE) { /* the force at mu0 */
    memset(w->dmu0, 0, (size_t)B * d * sizeof *w->dmu0);
    dy_model_net_backward(model, w->nets, DY_NET_FORCE, B, w->df, w->dmu0);
    for (int n = 0; n < B; n++)
      for (int i = 0; i < d; i++) w->dout[(size_t)n * 2 * d + i] += w->dmu0[(size_t)n * d + i];
  }
  dy_model_net_backward(model, w->nets, DY_NET_ENCODER, rows, w->dout, NULL);
}

void dy_baseline_loss_grad(DyModel *model, DyBaseWork *work, const DyBaselineOptions *opt, int B, int L,
                           const dy_real *x0, const dy_real *x1, const dy_real *y0, const dy_real *y1,
                           const dy_real *theta, const dy_real *noise, DyLosses *losses)
{
  dy_baseline_forward(model, work, opt, B, x0, x1, y0, y1, noise, B, 1, losses);
  if (opt->type == DY_BASELINE_SWAE) losses->sw = dy_baseline_sw(work, B, L, theta, opt, 1);
  dy_baseline_backward(model, work, B);
}

void dy_baseline_losses(DyModel *model, DyBaseWork *work, const DyBaselineOptions *opt, int B, int L,
                        const dy_real *x0, const dy_real *x1, const dy_real *y0, const dy_real *y1,
                        const dy_real *theta, const dy_real *noise, DyLosses *losses)
{
  dy_baseline_forward(model, work, opt, B, x0, x1, y0, y1, noise, B, 0, losses);
  if (opt->type == DY_BASELINE_SWAE) losses->sw = dy_baseline_sw(work, B, L, theta, opt, 0);
}
