/* The four networks of DynamicsAE: creation, initialisation, and one batch's losses and gradients
 * (SPEC sections 2 and 3) assembled from the kernels of dy_nn.h. */
#include "dy_model.h"
#include "dy_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- creation ---------------------------------------------------------------------------------- */

PetscErrorCode dy_model_create(const DyModelShape *shape, DyModel *model)
{
  PetscFunctionBeginUser;
  memset(model, 0, sizeof *model);
  PetscCheck(shape->D > 0 && shape->Dy > 0 && shape->d > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "model sizes must be positive (D %d, Dy %d, d %d)", shape->D, shape->Dy, shape->d);
  model->D = shape->D;
  model->Dy = shape->Dy;
  model->d = shape->d;
  const int nin[DY_NNETS] = {shape->D, shape->d, shape->d, shape->d};
  const int nout[DY_NNETS] = {shape->d, shape->Dy, shape->d, shape->d};
  size_t offset = 0;
  for (int k = 0; k < DY_NNETS; k++) {
    DyMlp *net = &model->net[k];
    const int nh = shape->nhidden[k];
    PetscCheck(nh >= 0 && nh < DY_MAX_LAYERS, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
               "net %d: %d hidden layers, at most %d allowed", k, nh, DY_MAX_LAYERS - 1);
    net->nlayer = nh + 1;
    net->dims[0] = nin[k];
    for (int l = 0; l < nh; l++) {
      PetscCheck(shape->hidden[k][l] > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
                 "net %d: hidden width %d of layer %d must be positive", k, shape->hidden[k][l], l);
      net->dims[l + 1] = shape->hidden[k][l];
    }
    net->dims[nh + 1] = nout[k];
    net->act = k < DY_NET_FORCE ? DY_ACT_RELU : DY_ACT_TANH;
    net->offset = offset;
    net->nparam = 0;
    for (int l = 0; l < net->nlayer; l++) net->nparam += (size_t)(net->dims[l] + 1) * net->dims[l + 1];
    offset += net->nparam;
    if (k == DY_NET_DECODER) model->nparam_rep = offset;
  }
  model->nparam = offset;
  PetscCall(PetscCalloc1(model->nparam, &model->params));
  PetscCall(PetscCalloc1(model->nparam, &model->grads));
  PetscFunctionReturn(0);
}

void dy_model_init(DyModel *model, DyRng *rng)
{
  for (int k = 0; k < DY_NNETS; k++) {
    const DyMlp *net = &model->net[k];
    dy_real *p = model->params + net->offset;
    for (int l = 0; l < net->nlayer; l++) {
      const size_t count = (size_t)(net->dims[l] + 1) * net->dims[l + 1]; /* W then b */
      const double a = 1.0 / sqrt((double)net->dims[l]);
      for (size_t i = 0; i < count; i++) *p++ = (dy_real)(-a + 2 * a * dy_rng_uniform(rng));
    }
  }
}

void dy_model_destroy(DyModel *model)
{
  PetscFree(model->params);
  PetscFree(model->grads);
  memset(model, 0, sizeof *model);
}

/* Offset of layer l's W within its net; its b follows W. */
static size_t dy_layer_offset(const DyMlp *net, int l)
{
  size_t off = 0;
  for (int k = 0; k < l; k++) off += (size_t)(net->dims[k] + 1) * net->dims[k + 1];
  return off;
}

/* --- workspace --------------------------------------------------------------------------------- */

/* Activations of one net over `cap` primal rows plus ntan blocks of tangent rows. */
typedef struct {
  const dy_real *in;               /* (rows, dims[0]) input of the current call, not owned */
  dy_real *h[DY_MAX_LAYERS + 1];   /* h[l] (rows, dims[l]), l >= 1: outputs of layer l */
  dy_real *at[DY_MAX_LAYERS + 1];  /* at[l] (ntan B, dims[l]): tangent pre-activations (log-diffusion) */
} DyNetBuf;

struct DyWork {
  int B, L;                   /* capacity: pairs and projections */
  int d;                      /* latent dimension (tangent blocks of the log-diffusion net) */
  void *mem;                  /* the one allocation everything below points into */
  dy_real *wt;                /* (nparam) params with every W stored transposed, (in, out) */
  DyNetBuf nb[DY_NNETS];      /* rows: encoder, decoder 2B; force B; log-diffusion (1 + d) B */
  dy_real *x;                 /* (2B, D) x0 then x1 */
  dy_real *ldf_in;            /* ((1 + d) B, d) z0 then one-hot tangent seeds */
  dy_real *dz, *dzp, *J;      /* (B, d) encoded moves, prior moves, diagonal Jacobian of g */
  dy_real *M;                 /* (B, d) diffusion exp(g), shared by sampling and likelihood */
  dy_real *gdz;               /* (B, d) gradient of beta L_sw with respect to dz */
  dy_real *dZ;                /* (2B, d) gradient with respect to z0, z1 */
  dy_real *df, *dJ;           /* (B, d) gradients of L_prior with respect to f and J */
  dy_real *dg;                /* ((1 + d) B, d) output gradient of the log-diffusion net */
  dy_real *g0, *g1;           /* (maxrows, maxwidth) ping-pong gradient scratch */
  void *sw;                   /* dy_sw_work_bytes(B, L, d) */
  const dy_real *dzp_fixed;   /* (B, d) prior moves to use instead of sampling, or NULL */
};

/* Rows of net k for B pairs. */
static int dy_net_rows(int k, int B, int d)
{
  return k <= DY_NET_DECODER ? 2 * B : k == DY_NET_FORCE ? B : (1 + d) * B;
}

/* Carves n values (64-byte aligned) from *p, or only counts them when base is NULL. */
static dy_real *dy_carve(char *base, size_t *p, size_t n)
{
  dy_real *r = base ? (dy_real *)(base + *p) : NULL;
  *p += (n * sizeof(dy_real) + 63) & ~(size_t)63;
  return r;
}

static size_t dy_work_layout(const DyModel *model, int B, int L, DyWork *w, char *base)
{
  const int d = model->d;
  size_t p = 0, maxg = 0;
  w->wt = dy_carve(base, &p, model->nparam);
  for (int k = 0; k < DY_NNETS; k++) {
    const DyMlp *net = &model->net[k];
    const size_t rows = (size_t)dy_net_rows(k, B, d);
    for (int l = 0; l <= net->nlayer; l++) {
      if (rows * net->dims[l] > maxg) maxg = rows * net->dims[l];
      if (l == 0) continue;
      w->nb[k].h[l] = dy_carve(base, &p, rows * net->dims[l]);
      if (k == DY_NET_LOGDIFF && l < net->nlayer) w->nb[k].at[l] = dy_carve(base, &p, (size_t)d * B * net->dims[l]);
    }
  }
  w->x = dy_carve(base, &p, (size_t)2 * B * model->D);
  w->ldf_in = dy_carve(base, &p, (size_t)(1 + d) * B * d);
  w->dz = dy_carve(base, &p, (size_t)B * d);
  w->dzp = dy_carve(base, &p, (size_t)B * d);
  w->J = dy_carve(base, &p, (size_t)B * d);
  w->M = dy_carve(base, &p, (size_t)B * d);
  w->gdz = dy_carve(base, &p, (size_t)B * d);
  w->dZ = dy_carve(base, &p, (size_t)2 * B * d);
  w->df = dy_carve(base, &p, (size_t)B * d);
  w->dJ = dy_carve(base, &p, (size_t)B * d);
  w->dg = dy_carve(base, &p, (size_t)(1 + d) * B * d);
  w->g0 = dy_carve(base, &p, maxg);
  w->g1 = dy_carve(base, &p, maxg);
  w->sw = dy_carve(base, &p, dy_sw_work_bytes(B, L, d) / sizeof(dy_real) + 1);
  return p;
}

PetscErrorCode dy_work_create(const DyModel *model, int B, int L, DyWork **work)
{
  PetscFunctionBeginUser;
  PetscCheck(B > 0 && L > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "workspace needs B > 0 and L > 0 (B %d, L %d)",
             B, L);
  DyWork *w;
  PetscCall(PetscCalloc1(1, &w));
  w->B = B;
  w->L = L;
  w->d = model->d;
  const size_t bytes = dy_work_layout(model, B, L, w, NULL);
  w->mem = aligned_alloc(64, bytes);
  if (!w->mem) {
    PetscCall(PetscFree(w));
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_MEM, "cannot allocate %zu bytes of model workspace", bytes);
  }
  memset(w->mem, 0, bytes);
  dy_work_layout(model, B, L, w, w->mem);
  *work = w;
  PetscFunctionReturn(0);
}

void dy_work_destroy(DyWork **work)
{
  if (!*work) return;
  free((*work)->mem);
  PetscFree(*work);
  *work = NULL;
}

/* --- one net, forward and backward --------------------------------------------------------------- */

static void dy_net_transpose(const DyModel *model, DyWork *w, int k)
{
  const DyMlp *net = &model->net[k];
  for (int l = 0; l < net->nlayer; l++) {
    const size_t off = net->offset + dy_layer_offset(net, l);
    dy_transpose(net->dims[l + 1], net->dims[l], model->params + off, w->wt + off);
  }
}

/* Forward of net k over n primal rows (from nb->in) and ntan blocks of n tangent rows that follow
 * them in the input (tanh nets only): layer outputs into nb->h. */
static void dy_net_forward(const DyModel *model, DyWork *w, int k, int n, int ntan)
{
  const DyMlp *net = &model->net[k];
  DyNetBuf *nb = &w->nb[k];
  for (int l = 0; l < net->nlayer; l++) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *X = l ? nb->h[l] : nb->in;
    dy_real *Y = nb->h[l + 1];
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const int last = l == net->nlayer - 1;
    const DyEpilogue act = last ? DY_EPI_SET : net->act == DY_ACT_RELU ? DY_EPI_RELU : DY_EPI_TANH;
    dy_linear_forward(n, in, out, X, W, WT, W + (size_t)out * in, act, Y);
    if (!ntan) continue;
    /* tangent pre-activations kept in at[] for the backward pass, outputs after the layer's tanh */
    dy_real *T = Y + (size_t)n * out;
    dy_linear_forward(ntan * n, in, out, X + (size_t)n * in, W, WT, NULL, DY_EPI_SET, last ? T : nb->at[l + 1]);
    if (!last) dy_tanh_tangent_forward(n, out, ntan, Y, nb->at[l + 1], T);
  }
}

/* Backward of net k: dout ((1 + ntan) n, dims[nlayer]) is the gradient of its outputs (destroyed);
 * adds the parameter gradients into model->grads and, when dinput is non-NULL, the gradient of the
 * input rows into dinput. The bias sees only the primal rows. */
static void dy_net_backward(DyModel *model, DyWork *w, int k, int n, int ntan, dy_real *dout, dy_real *dinput)
{
  const DyMlp *net = &model->net[k];
  const DyNetBuf *nb = &w->nb[k];
  const int rows = (1 + ntan) * n;
  const DyEpilogue act = net->act == DY_ACT_RELU ? DY_EPI_RELU : DY_EPI_TANH;
  dy_real *cur = dout; /* gradient of layer l's pre-activation output */
  for (int l = net->nlayer - 1; l >= 0; l--) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const dy_real *X = l ? nb->h[l] : nb->in;
    dy_linear_backward_weight(rows, in, out, X, cur, model->grads + off);
    dy_linear_backward_bias(n, out, cur, model->grads + off + (size_t)out * in);
    if (l == 0) {
      if (dinput) dy_linear_backward_input(rows, in, out, cur, W, WT, NULL, DY_EPI_ADD, dinput);
      break;
    }
    /* through the activation of layer l's input; with tangents the tanh is undone separately */
    dy_real *next = cur == w->g0 ? w->g1 : w->g0;
    dy_linear_backward_input(rows, in, out, cur, W, WT, X, ntan ? DY_EPI_SET : act, next);
    if (ntan) dy_tanh_tangent_backward(n, in, ntan, X, nb->at[l], next, next + (size_t)n * in);
    cur = next;
  }
}

/* --- encode / decode ---------------------------------------------------------------------------- */

/* Net k (encoder or decoder) over n rows in chunks of the workspace's 2B rows. */
static void dy_net_apply(const DyModel *model, DyWork *w, int k, ptrdiff_t n, const dy_real *in, dy_real *out)
{
  const DyMlp *net = &model->net[k];
  const int nin = net->dims[0], nout = net->dims[net->nlayer];
  dy_net_transpose(model, w, k);
  for (ptrdiff_t r = 0; r < n; r += 2 * w->B) {
    const int m = (int)DY_MIN((ptrdiff_t)2 * w->B, n - r);
    w->nb[k].in = in + r * nin;
    dy_net_forward(model, w, k, m, 0);
    memcpy(out + r * nout, w->nb[k].h[net->nlayer], (size_t)m * nout * sizeof *out);
  }
}

void dy_model_encode(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *x, dy_real *z)
{
  dy_net_apply(model, work, DY_NET_ENCODER, n, x, z);
}

void dy_model_decode(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *y)
{
  dy_net_apply(model, work, DY_NET_DECODER, n, z, y);
}

void dy_work_set_prior_moves(DyWork *work, const dy_real *dzp)
{
  work->dzp_fixed = dzp;
}

void dy_work_view(const DyModel *model, const DyWork *work, int B, DyStepView *view)
{
  const size_t Bd = (size_t)B * model->d;
  const dy_real *Z = work->nb[DY_NET_ENCODER].h[model->net[DY_NET_ENCODER].nlayer];
  view->z0 = Z;
  view->z1 = Z + Bd;
  view->dz = work->dz;
  view->y0hat = work->nb[DY_NET_DECODER].h[model->net[DY_NET_DECODER].nlayer];
  view->f = work->nb[DY_NET_FORCE].h[model->net[DY_NET_FORCE].nlayer];
  view->g = work->nb[DY_NET_LOGDIFF].h[model->net[DY_NET_LOGDIFF].nlayer];
  view->dgdz = work->J;
  view->dzp = work->dzp;
}

/* --- one batch ---------------------------------------------------------------------------------- */

static void dy_model_step(DyModel *model, DyWork *w, int B, int L, const dy_real *x0, const dy_real *x1,
                          const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                          const DyLossOptions *opt, DyLosses *losses, int want_grad)
{
  const int D = model->D, Dy = model->Dy, d = model->d;
  const size_t Bd = (size_t)B * d;
  for (int k = 0; k < DY_NNETS; k++) dy_net_transpose(model, w, k);

  /* encoder on x0 and x1 together, decoder on z0 and z1 together */
  memcpy(w->x, x0, (size_t)B * D * sizeof *w->x);
  memcpy(w->x + (size_t)B * D, x1, (size_t)B * D * sizeof *w->x);
  w->nb[DY_NET_ENCODER].in = w->x;
  dy_net_forward(model, w, DY_NET_ENCODER, 2 * B, 0);
  const dy_real *Z = w->nb[DY_NET_ENCODER].h[model->net[DY_NET_ENCODER].nlayer]; /* (2B, d) */
  const dy_real *z0 = Z, *z1 = Z + Bd;
  for (size_t k = 0; k < Bd; k++) w->dz[k] = z1[k] - z0[k];
  w->nb[DY_NET_DECODER].in = Z;
  dy_net_forward(model, w, DY_NET_DECODER, 2 * B, 0);
  const dy_real *Yhat = w->nb[DY_NET_DECODER].h[model->net[DY_NET_DECODER].nlayer]; /* (2B, Dy) */
  dy_real *dYhat = want_grad ? w->g0 : NULL;
  if (want_grad) memset(dYhat, 0, (size_t)2 * B * Dy * sizeof *dYhat);
  losses->rec = (dy_sqerr_loss(B, Dy, Yhat, y0, 1.0 / B, dYhat) +
                 dy_sqerr_loss(B, Dy, Yhat + (size_t)B * Dy, y1, 1.0 / B, dYhat ? dYhat + (size_t)B * Dy : NULL)) /
                B;

  /* force and log-diffusion at z0; the log-diffusion net also carries one tangent block per latent
   * direction, seeded with the unit vectors, so that its outputs include dg/dz */
  w->nb[DY_NET_FORCE].in = z0;
  dy_net_forward(model, w, DY_NET_FORCE, B, 0);
  memcpy(w->ldf_in, z0, Bd * sizeof *w->ldf_in);
  memset(w->ldf_in + Bd, 0, (size_t)d * Bd * sizeof *w->ldf_in);
  for (int j = 0; j < d; j++)
    for (int n = 0; n < B; n++) w->ldf_in[Bd * (1 + j) + (size_t)n * d + j] = 1;
  w->nb[DY_NET_LOGDIFF].in = w->ldf_in;
  dy_net_forward(model, w, DY_NET_LOGDIFF, B, d);
  const dy_real *f = w->nb[DY_NET_FORCE].h[model->net[DY_NET_FORCE].nlayer];
  const dy_real *G = w->nb[DY_NET_LOGDIFF].h[model->net[DY_NET_LOGDIFF].nlayer]; /* ((1 + d) B, d) */
  for (int j = 0; j < d; j++)
    for (int n = 0; n < B; n++) w->J[(size_t)n * d + j] = G[Bd * (1 + j) + (size_t)n * d + j];

  /* sliced Wasserstein against the prior moves (constants) */
  memcpy(w->M, G, Bd * sizeof *w->M);
  dy_exp_forward(Bd, w->M);
  if (w->dzp_fixed) memcpy(w->dzp, w->dzp_fixed, Bd * sizeof *w->dzp);
  else dy_prior_sample(B, d, opt->diffusion == DY_DIFFUSION_LEARNED, f, G, w->M, w->J, eps, w->dzp);
  if (want_grad) memset(w->gdz, 0, Bd * sizeof *w->gdz);
  losses->sw = dy_sw_loss(L, B, d, theta, w->dz, w->dzp, opt->beta, want_grad ? w->gdz : NULL, w->sw);

  /* prior negative log-likelihood, z0 and dz constant */
  if (want_grad) {
    memset(w->df, 0, Bd * sizeof *w->df);
    memset(w->dJ, 0, Bd * sizeof *w->dJ);
    memset(w->dg, 0, (1 + (size_t)d) * Bd * sizeof *w->dg);
  }
  losses->prior = dy_prior_nll(B, d, w->dz, f, G, w->M, w->J, 1.0 / B, want_grad ? w->df : NULL, w->dg, w->dJ) / B;
  if (!want_grad) return;

  memset(model->grads, 0, model->nparam * sizeof *model->grads);
  /* representation: decoder, then encoder with dz = z1 - z0 feeding z1 (+) and z0 (-) */
  for (size_t k = 0; k < Bd; k++) {
    w->dZ[k] = -w->gdz[k];
    w->dZ[Bd + k] = w->gdz[k];
  }
  dy_net_backward(model, w, DY_NET_DECODER, 2 * B, 0, dYhat, w->dZ);
  dy_net_backward(model, w, DY_NET_ENCODER, 2 * B, 0, w->dZ, NULL);
  /* prior: the diagonal-Jacobian gradient enters the log-diffusion net's tangent outputs */
  for (int j = 0; j < d; j++)
    for (int n = 0; n < B; n++) w->dg[Bd * (1 + j) + (size_t)n * d + j] = w->dJ[(size_t)n * d + j];
  dy_net_backward(model, w, DY_NET_FORCE, B, 0, w->df, NULL);
  dy_net_backward(model, w, DY_NET_LOGDIFF, B, d, w->dg, NULL);
}

void dy_model_loss_grad(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                        const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                        const DyLossOptions *opt, DyLosses *losses)
{
  dy_model_step(model, work, B, L, x0, x1, y0, y1, theta, eps, opt, losses, 1);
}

void dy_model_losses(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                     const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                     const DyLossOptions *opt, DyLosses *losses)
{
  dy_model_step(model, work, B, L, x0, x1, y0, y1, theta, eps, opt, losses, 0);
}
