/* The four networks of DynamicsAE: creation, initialisation, and one batch's losses and gradients
 * (SPEC sections 2 and 3) assembled from the kernels of dy_nn.h. */
#include "nn/dy_model.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- creation ---------------------------------------------------------------------------------- */

/* The image encoder and decoder of a conv shape (dy_convnet.h). */
static PetscErrorCode dy_model_cnn(const DyModelShape *shape, DyModel *model)
{
  const int side2 = DY_CNN_SIDE * DY_CNN_SIDE;
  PetscFunctionBeginUser;
  PetscCheck(shape->channels > 0 && shape->D == shape->channels * side2 && shape->Dy % side2 == 0,
             PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "conv networks need images of %d x %d pixels (D %d, Dy %d, %d channels)", DY_CNN_SIDE, DY_CNN_SIDE,
             shape->D, shape->Dy, shape->channels);
  PetscCheck(shape->nhidden[DY_NET_ENCODER] == 1 && shape->nhidden[DY_NET_DECODER] == 1, PETSC_COMM_SELF,
             PETSC_ERR_ARG_OUTOFRANGE, "conv networks take one encoder and one decoder width");
  /* the encoder's linear layer gives enc_out values: the baselines' mean and log-variance (2 d) */
  const int enc_out = shape->enc_out > 0 ? shape->enc_out : shape->d;
  PetscCheck(!dy_cnn_encoder(&model->cnn[0], shape->channels, shape->hidden[DY_NET_ENCODER][0], enc_out),
             PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "conv encoder width %d must be a positive multiple of 16",
             shape->hidden[DY_NET_ENCODER][0]);
  PetscCheck(!dy_cnn_decoder(&model->cnn[1], shape->d, shape->hidden[DY_NET_DECODER][0], shape->Dy / side2),
             PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "conv decoder width %d must be positive",
             shape->hidden[DY_NET_DECODER][0]);
  PetscFunctionReturn(0);
}

/* Whether net k is an image net. */
static int dy_is_cnn(const DyModel *model, int k) { return model->network == DY_NETWORK_CONV && k <= DY_NET_DECODER; }

PetscErrorCode dy_model_create(const DyModelShape *shape, DyModel *model)
{
  PetscFunctionBeginUser;
  memset(model, 0, sizeof *model);
  PetscCheck(shape->act == DY_ACT_RELU || shape->act == DY_ACT_TANH, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "unknown hidden activation %d", (int)shape->act);
  PetscCheck(shape->D > 0 && shape->Dy > 0 && shape->d > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "model sizes must be positive (D %d, Dy %d, d %d)", shape->D, shape->Dy, shape->d);
  model->D = shape->D;
  model->Dy = shape->Dy;
  model->d = shape->d;
  model->network = shape->network;
  if (shape->network == DY_NETWORK_CONV) PetscCall(dy_model_cnn(shape, model));
  const int nin[DY_NNETS] = {shape->D, shape->d, shape->d, shape->d};
  const int nout[DY_NNETS] = {shape->enc_out > 0 ? shape->enc_out : shape->d, shape->Dy, shape->d, shape->d};
  size_t offset = 0;
  for (int k = 0; k < DY_NNETS; k++) {
    DyMlp *net = &model->net[k];
    const int nh = shape->nhidden[k];
    PetscCheck(nh >= (k > DY_NET_DECODER ? -1 : 0) && nh < DY_MAX_LAYERS, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
               "net %d: %d hidden layers, at most %d allowed", k, nh, DY_MAX_LAYERS - 1);
    net->nlayer = nh + 1; /* 0: an absent prior net */
    net->dims[0] = nin[k];
    for (int l = 0; l < nh; l++) {
      PetscCheck(shape->hidden[k][l] > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
                 "net %d: hidden width %d of layer %d must be positive", k, shape->hidden[k][l], l);
      net->dims[l + 1] = shape->hidden[k][l];
    }
    if (nh >= 0) net->dims[nh + 1] = nout[k];
    net->act = k < DY_NET_FORCE ? shape->act : DY_ACT_TANH;
    net->offset = offset;
    net->nparam = 0;
    for (int l = 0; l < net->nlayer; l++) net->nparam += (size_t)(net->dims[l] + 1) * net->dims[l + 1];
    if (dy_is_cnn(model, k)) net->nparam = model->cnn[k].nparam;
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
    if (dy_is_cnn(model, k)) {
      dy_cnn_init(&model->cnn[k], p, rng);
      continue;
    }
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

/* The layers of encoder or decoder k: each one's weight offset, weight and bias sizes (the bias
 * follows the weight); returns the layer count. */
static int dy_rep_layers(const DyModel *model, int k, size_t *woff, size_t *nw, size_t *nb)
{
  const DyMlp *net = &model->net[k];
  if (model->network == DY_NETWORK_CONV) {
    const DyCnn *c = &model->cnn[k];
    for (int l = 0; l < c->nlayer; l++) {
      woff[l] = net->offset + c->layer[l].woff;
      nw[l] = c->layer[l].nw;
      nb[l] = c->layer[l].nb;
    }
    return c->nlayer;
  }
  for (int l = 0; l < net->nlayer; l++) {
    woff[l] = net->offset + dy_layer_offset(net, l);
    nw[l] = (size_t)net->dims[l] * net->dims[l + 1];
    nb[l] = (size_t)net->dims[l + 1];
  }
  return net->nlayer;
}

/* Scales net k's output by g for an input scaled by in: layer l's weight by c_l and its bias by
 * in c_1 ... c_l, where prod c_l = g / in. The encoder (g != 1) with ReLU between its layers
 * (positively homogeneous) shares the factor out evenly, c_l = g^(1/L), so that no layer's
 * weights move far from the scale the optimiser has seen; with tanh its last layer takes it. The
 * decoder's first layer takes its factor alone: its weight shrinks while its bias stays, so that
 * the decoder can learn to depend on the latent quickly (a decoder fed a tiny latent learns to
 * ignore it; shared out, the factor would leave that in place with biases too large to move). */
static void dy_rep_scale(DyModel *model, int k, double in, double g)
{
  size_t woff[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)], nw[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)],
      nb[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)];
  const int L = dy_rep_layers(model, k, woff, nw, nb);
  const int even = g != 1 && (model->network == DY_NETWORK_CONV || model->net[k].act == DY_ACT_RELU);
  const int outer = g != 1 ? L - 1 : 0;
  double cum = in;
  for (int l = 0; l < L; l++) {
    const double c = even ? pow(g / in, 1.0 / L) : l == outer ? g / in : 1.0;
    cum *= c;
    dy_real *p = model->params + woff[l];
    for (size_t i = 0; i < nw[l]; i++) p[i] = (dy_real)(c * p[i]);
    for (size_t i = 0; i < nb[l]; i++) p[nw[l] + i] = (dy_real)(cum * p[nw[l] + i]);
  }
}

void dy_model_scale_latent(DyModel *model, double a, const double *m)
{
  const int d = model->d;
  size_t woff[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)], nw[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)],
      nb[DY_MAX(DY_MAX_LAYERS, DY_CNN_MAX_LAYERS)];
  /* encoder: a (phi(x) - m), the shift in its last bias */
  const int L = dy_rep_layers(model, DY_NET_ENCODER, woff, nw, nb);
  dy_real *b = model->params + woff[L - 1] + nw[L - 1];
  for (int i = 0; i < d; i++) b[i] = (dy_real)(b[i] - m[i]);
  dy_rep_scale(model, DY_NET_ENCODER, 1.0, a);
  /* decoder: its first layer takes z - m (W z + b = W (z - m) + b + W m), then inputs a times larger */
  dy_rep_layers(model, DY_NET_DECODER, woff, nw, nb);
  const dy_real *W = model->params + woff[0];
  b = model->params + woff[0] + nw[0];
  for (size_t r = 0; r < nb[0]; r++) {
    double shift = 0;
    for (int i = 0; i < d; i++) shift += (double)W[r * d + i] * m[i];
    b[r] = (dy_real)(b[r] + shift);
  }
  dy_rep_scale(model, DY_NET_DECODER, a, 1.0);
}

/* --- workspace --------------------------------------------------------------------------------- */

/* Activations of one net; the log-diffusion net's hidden layers also hold d blocks of tangent
 * rows after the primal ones. */
typedef struct {
  const dy_real *in;               /* (rows, dims[0]) input of the current call, not owned */
  dy_real *h[DY_MAX_LAYERS + 1];   /* h[l] (rows, dims[l]), l >= 1: outputs of layer l */
  dy_real *at[DY_MAX_LAYERS + 1];  /* at[l] (d B, dims[l]), 2 <= l < nlayer: tangent pre-activations (log-diffusion) */
} DyNetBuf;

struct DyWork {
  int B, L;                   /* capacity: pairs and projections */
  int d;                      /* latent dimension (tangent blocks of the log-diffusion net) */
  void *mem;                  /* the one allocation everything below points into */
  dy_real *wt;                /* (nparam) params with every W stored transposed, (in, out) */
  DyNetBuf nb[DY_NNETS];      /* rows: encoder, decoder 2B; force B; log-diffusion (1 + d) B (outputs B) */
  dy_real *x;                 /* (2B, D) x0 then x1 */
  dy_real *vec;               /* (max(B, widest layer)) a column or a row of sums in the tangent products */
  dy_real *dz, *dzp, *J;      /* (B, d) encoded moves, prior moves, diagonal Jacobian of g */
  dy_real *M;                 /* (B, d) diffusion exp(g), shared by sampling and likelihood */
  dy_real *gdz;               /* (B, d) gradient of beta L_sw with respect to dz */
  dy_real *dZ;                /* (2B, d) gradient with respect to z0, z1 */
  int targeted;               /* the last forward's targets and gradients: 0 none, 1 the encoder follows
                               * them alone (dZ holds L_target's gradient), 2 added (gZt holds it) */
  dy_real *gZt;               /* (2B, d) gradient of target_weight L_target with respect to z0, z1 */
  dy_real *df, *dJ;           /* (B, d) gradients of L_prior with respect to f and J */
  dy_real *dg;                /* (B, d) gradient of L_prior with respect to g */
  dy_real *g0, *g1;           /* (maxrows, maxwidth) ping-pong gradient scratch */
  void *sw;                   /* dy_sw_work_bytes(B, L, d) */
  const dy_real *dzp_fixed;   /* (B, d) prior moves to use instead of sampling, or NULL */
  DyCnnWork *cnn[2];          /* image encoder and decoder activations (2B rows), or NULL */
  void *cnnmem;               /* their allocation */
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
  size_t p = 0, maxg = 0, maxw = (size_t)B;
  w->wt = dy_carve(base, &p, model->nparam);
  for (int k = 0; k < DY_NNETS; k++) {
    const DyMlp *net = &model->net[k];
    const size_t rows = (size_t)dy_net_rows(k, B, d);
    for (int l = 0; l <= net->nlayer; l++) {
      if (rows * net->dims[l] > maxg) maxg = rows * net->dims[l];
      if ((size_t)net->dims[l] > maxw) maxw = (size_t)net->dims[l];
      if (l == 0) continue;
      /* the log-diffusion net's last layer gives only the diagonal of the tangents (into J) */
      w->nb[k].h[l] = dy_carve(base, &p, (k == DY_NET_LOGDIFF && l == net->nlayer ? (size_t)B : rows) * net->dims[l]);
      if (k == DY_NET_LOGDIFF && l >= 2 && l < net->nlayer) w->nb[k].at[l] = dy_carve(base, &p, (size_t)d * B * net->dims[l]);
    }
  }
  w->x = dy_carve(base, &p, (size_t)2 * B * model->D);
  w->vec = dy_carve(base, &p, maxw);
  w->dz = dy_carve(base, &p, (size_t)B * d);
  w->dzp = dy_carve(base, &p, (size_t)B * d);
  w->J = dy_carve(base, &p, (size_t)B * d);
  w->M = dy_carve(base, &p, (size_t)B * d);
  w->gdz = dy_carve(base, &p, (size_t)B * d);
  w->dZ = dy_carve(base, &p, (size_t)2 * B * d);
  w->gZt = dy_carve(base, &p, (size_t)2 * B * d);
  w->df = dy_carve(base, &p, (size_t)B * d);
  w->dJ = dy_carve(base, &p, (size_t)B * d);
  w->dg = dy_carve(base, &p, (size_t)B * d);
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
  w->mem = dy_aligned_zalloc(bytes);
  if (!w->mem) {
    PetscCall(PetscFree(w));
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_MEM, "cannot allocate %zu bytes of model workspace", bytes);
  }
  dy_work_layout(model, B, L, w, w->mem);
  if (model->network == DY_NETWORK_CONV) {
    const size_t b0 = dy_cnn_work_bytes(&model->cnn[0], 2 * B), b1 = dy_cnn_work_bytes(&model->cnn[1], 2 * B);
    w->cnnmem = aligned_alloc(64, b0 + b1);
    if (!w->cnnmem) {
      free(w->mem);
      PetscCall(PetscFree(w));
      SETERRQ(PETSC_COMM_SELF, PETSC_ERR_MEM, "cannot allocate %zu bytes of image-network workspace", b0 + b1);
    }
    w->cnn[0] = dy_cnn_work_init(&model->cnn[0], 2 * B, w->cnnmem);
    w->cnn[1] = dy_cnn_work_init(&model->cnn[1], 2 * B, (char *)w->cnnmem + b0);
  }
  *work = w;
  PetscFunctionReturn(0);
}

void dy_work_destroy(DyWork **work)
{
  if (!*work) return;
  free((*work)->mem);
  free((*work)->cnnmem);
  PetscFree(*work);
  *work = NULL;
}

/* --- one net, forward and backward --------------------------------------------------------------- */

static void dy_net_transpose(const DyModel *model, DyWork *w, int k)
{
  const DyMlp *net = &model->net[k];
  if (dy_is_cnn(model, k)) return; /* the image nets transpose their own weights */
  for (int l = 0; l < net->nlayer; l++) {
    const size_t off = net->offset + dy_layer_offset(net, l);
    dy_transpose(net->dims[l + 1], net->dims[l], model->params + off, w->wt + off);
  }
}

/* Forward of net k over n rows (from nb->in): layer outputs into nb->h. */
static void dy_net_forward(const DyModel *model, DyWork *w, int k, int n)
{
  const DyMlp *net = &model->net[k];
  DyNetBuf *nb = &w->nb[k];
  if (dy_is_cnn(model, k)) {
    dy_cnn_forward(&model->cnn[k], w->cnn[k], model->params + net->offset, n, nb->in, nb->h[net->nlayer]);
    return;
  }
  for (int l = 0; l < net->nlayer; l++) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const DyEpilogue act = l == net->nlayer - 1 ? DY_EPI_SET : net->act == DY_ACT_RELU ? DY_EPI_RELU : DY_EPI_TANH;
    dy_linear_forward(n, in, out, l ? nb->h[l] : nb->in, W, WT, W + (size_t)out * in, act, nb->h[l + 1]);
  }
}

/* Backward of net k over n rows: dout (n, dims[nlayer]) is the gradient of its outputs
 * (destroyed); adds the parameter gradients into model->grads and, when dinput is non-NULL, the
 * gradient of the input rows into dinput. */
static void dy_net_backward(DyModel *model, DyWork *w, int k, int n, dy_real *dout, dy_real *dinput)
{
  const DyMlp *net = &model->net[k];
  const DyNetBuf *nb = &w->nb[k];
  const DyEpilogue act = net->act == DY_ACT_RELU ? DY_EPI_RELU : DY_EPI_TANH;
  if (dy_is_cnn(model, k)) {
    dy_cnn_backward(&model->cnn[k], w->cnn[k], model->params + net->offset, n, dout, model->grads + net->offset, dinput);
    return;
  }
  dy_real *cur = dout; /* gradient of layer l's pre-activation output */
  for (int l = net->nlayer - 1; l >= 0; l--) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const dy_real *X = l ? nb->h[l] : nb->in;
    dy_linear_backward_weight(n, in, out, X, cur, model->grads + off);
    /* the bias gradients of the layers before come with the input gradients */
    if (l == net->nlayer - 1) dy_linear_backward_bias(n, out, cur, model->grads + off + (size_t)out * in);
    if (l == 0) {
      if (dinput) dy_linear_backward_input(n, in, out, cur, W, WT, NULL, DY_EPI_ADD, dinput, NULL);
      break;
    }
    dy_real *next = cur == w->g0 ? w->g1 : w->g0;
    dy_real *db = model->grads + net->offset + dy_layer_offset(net, l - 1) + (size_t)in * net->dims[l - 1];
    dy_linear_backward_input(n, in, out, cur, W, WT, X, act, next, db);
    cur = next;
  }
}

/* Log-diffusion net at z0 = nb->in (B, d) with d forward-mode tangents, block j seeded with the
 * unit vector e_j, so that J[n, j] = dg_j/dz_j. Only what J needs is computed: the first layer's
 * tangent pre-activations are the columns of W (rows of W^T, no product), the last layer gives
 * column j of block j only. Primal outputs (B, d) into h[nlayer]. */
static void dy_logdiff_forward(const DyModel *model, DyWork *w, int B)
{
  const DyMlp *net = &model->net[DY_NET_LOGDIFF];
  DyNetBuf *nb = &w->nb[DY_NET_LOGDIFF];
  const int d = model->d;
  dy_net_forward(model, w, DY_NET_LOGDIFF, B);
  for (int l = 0; l < net->nlayer; l++) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const dy_real *T = nb->h[l] + (size_t)B * in; /* (d B, in) tangents of the layer input */
    if (l == net->nlayer - 1) {
      for (int j = 0; j < d; j++) {
        const dy_real *Wj = W + (size_t)j * in; /* row j of W, the only output needed */
        if (l == 0)
          for (int n = 0; n < B; n++) w->J[(size_t)n * d + j] = Wj[j];
        else {
          dy_linear_forward(B, in, 1, T + (size_t)j * B * in, Wj, Wj, NULL, DY_EPI_SET, w->vec);
          for (int n = 0; n < B; n++) w->J[(size_t)n * d + j] = w->vec[n];
        }
      }
      break;
    }
    dy_real *Y = nb->h[l + 1];
    if (l == 0) {
      dy_tanh_tangent_forward(B, out, d, Y, WT, 1, Y + (size_t)B * out);
    } else {
      dy_linear_forward(d * B, in, out, T, W, WT, NULL, DY_EPI_SET, nb->at[l + 1]);
      dy_tanh_tangent_forward(B, out, d, Y, nb->at[l + 1], 0, Y + (size_t)B * out);
    }
  }
}

/* Backward of dy_logdiff_forward: dG (B, d) the gradient of the primal outputs (destroyed), dJ
 * (B, d) that of J; adds the parameter gradients into model->grads. The bias sees only the primal
 * rows; the first layer's weight gets, from block j's tangent rows (input e_j), the column sums of
 * their gradient in its column j. */
static void dy_logdiff_backward(DyModel *model, DyWork *w, int B, dy_real *dG, const dy_real *dJ)
{
  const DyMlp *net = &model->net[DY_NET_LOGDIFF];
  const DyNetBuf *nb = &w->nb[DY_NET_LOGDIFF];
  const int d = model->d, rows = (1 + d) * B;
  dy_real *cur = dG; /* gradient of layer l's pre-activation output: B rows at the last layer, (1 + d) B before */
  for (int l = net->nlayer - 1; l >= 0; l--) {
    const int in = net->dims[l], out = net->dims[l + 1];
    const size_t off = net->offset + dy_layer_offset(net, l);
    const dy_real *W = model->params + off, *WT = w->wt + off;
    const dy_real *X = l ? nb->h[l] : nb->in;
    dy_real *dW = model->grads + off, *next = cur == w->g0 ? w->g1 : w->g0;
    const int last = l == net->nlayer - 1;
    dy_linear_backward_weight(last || l == 0 ? B : rows, in, out, X, cur, dW);
    dy_linear_backward_bias(B, out, cur, dW + (size_t)out * in);
    if (last)
      for (int j = 0; j < d; j++) { /* block j's tangent rows reach output j only, with gradient dJ[:, j] */
        for (int n = 0; n < B; n++) w->vec[n] = dJ[(size_t)n * d + j];
        if (l == 0) {
          dy_real s = 0;
          for (int n = 0; n < B; n++) s += w->vec[n];
          dW[(size_t)j * in + j] += s;
          continue;
        }
        const dy_real *Wj = W + (size_t)j * in;
        dy_linear_backward_weight(B, in, 1, X + (size_t)(1 + j) * B * in, w->vec, dW + (size_t)j * in);
        dy_linear_backward_input(B, in, 1, w->vec, Wj, Wj, NULL, DY_EPI_SET, next + (size_t)(1 + j) * B * in, NULL);
      }
    if (l == 0) {
      if (last) break;
      for (int j = 0; j < d; j++) {
        memset(w->vec, 0, (size_t)out * sizeof *w->vec);
        dy_linear_backward_bias(B, out, cur + (size_t)(1 + j) * B * out, w->vec);
        for (int o = 0; o < out; o++) dW[(size_t)o * in + j] += w->vec[o];
      }
      break;
    }
    dy_linear_backward_input(last ? B : rows, in, out, cur, W, WT, NULL, DY_EPI_SET, next, NULL);
    const int bcast = l == 1;
    dy_tanh_tangent_backward(B, in, d, X, bcast ? w->wt + net->offset : nb->at[l], bcast, next, next + (size_t)B * in);
    cur = next;
  }
}

/* --- encode / decode ---------------------------------------------------------------------------- */

/* Net k over n rows in chunks of the rows its buffers hold (2B for encoder and decoder, B for the
 * prior nets, whose primal rows come first). */
static void dy_net_apply(const DyModel *model, DyWork *w, int k, ptrdiff_t n, const dy_real *in, dy_real *out)
{
  const DyMlp *net = &model->net[k];
  const int nin = net->dims[0], nout = net->dims[net->nlayer];
  const ptrdiff_t chunk = k <= DY_NET_DECODER ? 2 * (ptrdiff_t)w->B : w->B;
  dy_net_transpose(model, w, k);
  for (ptrdiff_t r = 0; r < n; r += chunk) {
    const int m = (int)DY_MIN(chunk, n - r);
    w->nb[k].in = in + r * nin;
    dy_net_forward(model, w, k, m);
    /* the baselines' encoder gives a mean and a log-variance: only the mean is the latent */
    const int keep = k == DY_NET_ENCODER ? model->d : nout;
    for (int i = 0; i < m; i++)
      memcpy(out + (r + i) * keep, w->nb[k].h[net->nlayer] + (size_t)i * nout, (size_t)keep * sizeof *out);
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

void dy_model_force(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *f)
{
  dy_net_apply(model, work, DY_NET_FORCE, n, z, f);
}

void dy_model_logdiff(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *g)
{
  dy_net_apply(model, work, DY_NET_LOGDIFF, n, z, g);
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

/* --- one batch, in three phases ------------------------------------------------------------------ */

void dy_model_forward(DyModel *model, DyWork *w, int B, const dy_real *x0, const dy_real *x1, const dy_real *y0,
                      const dy_real *y1, const dy_real *eps, const DyLossOptions *opt, double norm, int want_grad,
                      DyLosses *losses)
{
  const int D = model->D, Dy = model->Dy, d = model->d;
  const size_t Bd = (size_t)B * d;
  for (int k = 0; k < DY_NNETS; k++) dy_net_transpose(model, w, k);

  /* encoder on x0 and x1 together, decoder on z0 and z1 together */
  memcpy(w->x, x0, (size_t)B * D * sizeof *w->x);
  memcpy(w->x + (size_t)B * D, x1, (size_t)B * D * sizeof *w->x);
  w->nb[DY_NET_ENCODER].in = w->x;
  dy_net_forward(model, w, DY_NET_ENCODER, 2 * B);
  const dy_real *Z = w->nb[DY_NET_ENCODER].h[model->net[DY_NET_ENCODER].nlayer]; /* (2B, d) */
  const dy_real *z0 = Z, *z1 = Z + Bd;
  for (size_t k = 0; k < Bd; k++) w->dz[k] = z1[k] - z0[k];
  losses->target = 0;
  w->targeted = !opt->target || !want_grad ? 0 : opt->target_weight > 0 ? 2 : 1;
  if (opt->target) {
    /* alone: the gradient goes straight into dZ, which the backward then keeps */
    dy_real *g = w->targeted == 2 ? w->gZt : w->dZ;
    const double f = w->targeted == 2 ? opt->target_weight : 1.0;
    double sum = 0;
    for (size_t k = 0; k < 2 * Bd; k++) {
      const double e = (double)Z[k] - (double)opt->target[k];
      sum += e * e;
      if (want_grad) g[k] = (dy_real)(2 * f * e / norm);
    }
    losses->target = sum / norm;
  }
  w->nb[DY_NET_DECODER].in = Z;
  dy_net_forward(model, w, DY_NET_DECODER, 2 * B);
  const dy_real *Yhat = w->nb[DY_NET_DECODER].h[model->net[DY_NET_DECODER].nlayer]; /* (2B, Dy) */
  /* the decoder outputs' gradient waits in g0 for dy_model_backward (nothing in between uses g0) */
  dy_real *dYhat = want_grad ? w->g0 : NULL;
  if (want_grad) memset(dYhat, 0, (size_t)2 * B * Dy * sizeof *dYhat);
  losses->rec = (dy_sqerr_loss(B, Dy, Yhat, y0, 1.0 / norm, dYhat) +
                 dy_sqerr_loss(B, Dy, Yhat + (size_t)B * Dy, y1, 1.0 / norm, dYhat ? dYhat + (size_t)B * Dy : NULL)) /
                norm;

  /* force and log-diffusion at z0; the log-diffusion net also carries one tangent block per latent
   * direction, seeded with the unit vectors, for the diagonal Jacobian J = dg_i/dz_i */
  w->nb[DY_NET_FORCE].in = z0;
  dy_net_forward(model, w, DY_NET_FORCE, B);
  w->nb[DY_NET_LOGDIFF].in = z0;
  dy_logdiff_forward(model, w, B);
  const dy_real *f = w->nb[DY_NET_FORCE].h[model->net[DY_NET_FORCE].nlayer];
  const dy_real *G = w->nb[DY_NET_LOGDIFF].h[model->net[DY_NET_LOGDIFF].nlayer]; /* (B, d) */

  /* the prior moves (constants for the sliced Wasserstein of the next phase) */
  memcpy(w->M, G, Bd * sizeof *w->M);
  dy_exp_forward(Bd, w->M);
  if (w->dzp_fixed) memcpy(w->dzp, w->dzp_fixed, Bd * sizeof *w->dzp);
  else dy_prior_sample(B, d, opt->diffusion == DY_DIFFUSION_LEARNED, f, G, w->M, w->J, eps, w->dzp);
  if (want_grad) memset(w->gdz, 0, Bd * sizeof *w->gdz);

  /* prior negative log-likelihood, z0 and dz constant */
  if (want_grad) {
    memset(w->df, 0, Bd * sizeof *w->df);
    memset(w->dJ, 0, Bd * sizeof *w->dJ);
    memset(w->dg, 0, Bd * sizeof *w->dg);
  }
  losses->sw = 0;
  losses->prior =
      dy_prior_nll(B, d, w->dz, f, G, w->M, w->J, 1.0 / norm, want_grad ? w->df : NULL, w->dg, w->dJ) / norm;
}

void dy_work_moves(DyWork *work, const dy_real **dz, const dy_real **dzp, dy_real **gdz)
{
  *dz = work->dz;
  *dzp = work->dzp;
  *gdz = work->gdz;
}

double dy_model_sw(DyWork *w, int B, int L, const dy_real *theta, const DyLossOptions *opt, int want_grad)
{
  return dy_sw_loss(L, B, w->d, theta, w->dz, w->dzp, opt->beta, want_grad ? w->gdz : NULL, w->sw);
}

void dy_model_backward(DyModel *model, DyWork *w, int B)
{
  const size_t Bd = (size_t)B * model->d;
  memset(model->grads, 0, model->nparam * sizeof *model->grads);
  /* representation: decoder, then encoder with dz = z1 - z0 feeding z1 (+) and z0 (-); with
   * targets alone the encoder takes L_target's gradient, which the forward left in dZ; added, it
   * joins the others */
  if (w->targeted != 1)
    for (size_t k = 0; k < Bd; k++) {
      w->dZ[k] = -w->gdz[k];
      w->dZ[Bd + k] = w->gdz[k];
    }
  if (w->targeted == 2)
    for (size_t k = 0; k < 2 * Bd; k++) w->dZ[k] += w->gZt[k];
  dy_net_backward(model, w, DY_NET_DECODER, 2 * B, w->g0, w->targeted == 1 ? NULL : w->dZ);
  dy_net_backward(model, w, DY_NET_ENCODER, 2 * B, w->dZ, NULL);
  /* prior: force, then log-diffusion with the diagonal-Jacobian gradient on its tangents */
  dy_net_backward(model, w, DY_NET_FORCE, B, w->df, NULL);
  dy_logdiff_backward(model, w, B, w->dg, w->dJ);
}

void dy_model_loss_grad(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                        const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                        const DyLossOptions *opt, DyLosses *losses)
{
  dy_model_forward(model, work, B, x0, x1, y0, y1, eps, opt, B, 1, losses);
  losses->sw = dy_model_sw(work, B, L, theta, opt, 1);
  dy_model_backward(model, work, B);
}

void dy_model_losses(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                     const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                     const DyLossOptions *opt, DyLosses *losses)
{
  dy_model_forward(model, work, B, x0, x1, y0, y1, eps, opt, B, 0, losses);
  losses->sw = dy_model_sw(work, B, L, theta, opt, 0);
}

/* --- single nets, for models assembled elsewhere ---------------------------------------------------- */

void dy_model_net_prepare(const DyModel *model, DyWork *work)
{
  for (int k = 0; k < DY_NNETS; k++) dy_net_transpose(model, work, k);
}

const dy_real *dy_model_net_forward(const DyModel *model, DyWork *work, int k, int n, const dy_real *in)
{
  work->nb[k].in = in;
  dy_net_forward(model, work, k, n);
  return work->nb[k].h[model->net[k].nlayer];
}

void dy_model_net_backward(DyModel *model, DyWork *work, int k, int n, dy_real *dout, dy_real *dinput)
{
  dy_net_backward(model, work, k, n, dout, dinput);
}
