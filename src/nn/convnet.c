/* The image encoder and decoder (dy_convnet.h): layer tables, initialisation, and forward and
 * backward as chains of dy_conv_* and dy_linear_* calls. */
#include "nn/dy_convnet.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <string.h>

/* Appends a layer to the table: a linear layer (k == 0) or a convolution of the image the layer
 * before left (cin, side, side). Returns the output side, or -1. */
static int dy_cnn_add(DyCnn *net, int transposed, int cin, int side, int cout, int k, int stride, int pad,
                      DyEpilogue act)
{
  DyCnnLayer *L = &net->layer[net->nlayer];
  memset(L, 0, sizeof *L);
  L->woff = net->nparam;
  L->act = act;
  if (k == 0) { /* linear: cin -> cout features */
    L->in = cin;
    L->out = cout;
    L->nw = (size_t)cin * cout;
    L->bound = 1.0 / sqrt((double)cin);
  } else {
    if (dy_conv_setup(&L->conv, transposed, cin, side, side, cout, k, stride, pad)) return -1;
    L->in = (int)dy_conv_in_len(&L->conv);
    L->out = (int)dy_conv_out_len(&L->conv);
    L->nw = dy_conv_weight_len(&L->conv);
    L->bound = 1.0 / sqrt((double)(transposed ? cout : cin) * k * k);
    const size_t wl = dy_conv_work_len(&L->conv);
    if (wl > net->maxwork) net->maxwork = wl;
  }
  L->nb = (size_t)cout;
  net->nparam += L->nw + L->nb;
  if ((size_t)L->out > net->maxfeat) net->maxfeat = (size_t)L->out;
  if ((size_t)L->in > net->maxfeat) net->maxfeat = (size_t)L->in;
  net->nlayer++;
  return k ? L->conv.hout : 0;
}

int dy_cnn_encoder(DyCnn *net, int C, int e, int d)
{
  memset(net, 0, sizeof *net);
  if (C <= 0 || d <= 0 || e < 16 || e % 16) return -1;
  static const int chan[5] = {0, 32, 32, 64, 64};
  int side = DY_CNN_SIDE;
  for (int l = 0; l < 4; l++)
    if ((side = dy_cnn_add(net, 0, l ? chan[l] : C, side, chan[l + 1], 4, 2, 1, DY_EPI_RELU)) < 0) return -1;
  if (dy_cnn_add(net, 0, 64, side, e / 16, 1, 1, 0, DY_EPI_RELU) < 0) return -1;
  dy_cnn_add(net, 0, e, 0, d, 0, 1, 0, DY_EPI_SET);
  return 0;
}

int dy_cnn_decoder(DyCnn *net, int d, int h, int Cy)
{
  memset(net, 0, sizeof *net);
  if (d <= 0 || h <= 0 || Cy <= 0) return -1;
  dy_cnn_add(net, 0, d, 0, h, 0, 1, 0, DY_EPI_RELU);
  dy_cnn_add(net, 0, h, 0, 1024, 0, 1, 0, DY_EPI_RELU);
  static const int chan[5] = {64, 64, 32, 32, 0};
  int side = 4;
  for (int l = 0; l < 4; l++)
    if ((side = dy_cnn_add(net, 1, chan[l], side, l < 3 ? chan[l + 1] : Cy, 4, 2, 1, l < 3 ? DY_EPI_RELU : DY_EPI_SET)) < 0)
      return -1;
  return side == DY_CNN_SIDE ? 0 : -1;
}

void dy_cnn_init(const DyCnn *net, dy_real *p, DyRng *rng)
{
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *L = &net->layer[l];
    const double a = L->bound;
    for (size_t i = 0; i < L->nw + L->nb; i++) *p++ = (dy_real)(-a + 2 * a * dy_rng_uniform(rng));
  }
}

/* --- workspace ------------------------------------------------------------------------------------ */

struct DyCnnWork {
  int rows;                          /* capacity */
  const dy_real *X;                  /* input of the last forward, not owned */
  dy_real *wt;                       /* (nparam) the weights transposed, (rest, first dimension) */
  dy_real *h[DY_CNN_MAX_LAYERS];     /* h[l] (rows, out of layer l), l < nlayer - 1 */
  dy_real *g0, *g1;                  /* (rows, maxfeat) ping-pong gradients */
  dy_real *cw;                       /* (maxwork) convolution workspace */
};

/* Carves n values (64-byte aligned) from *p, or only counts them when base is NULL. */
static dy_real *dy_cnn_carve(char *base, size_t *p, size_t n)
{
  dy_real *r = base ? (dy_real *)(base + *p) : NULL;
  *p += (n * sizeof(dy_real) + 63) & ~(size_t)63;
  return r;
}

static size_t dy_cnn_layout(const DyCnn *net, int rows, DyCnnWork *w, char *base)
{
  size_t p = (sizeof(DyCnnWork) + 63) & ~(size_t)63;
  w->rows = rows;
  w->wt = dy_cnn_carve(base, &p, net->nparam);
  for (int l = 0; l + 1 < net->nlayer; l++) w->h[l] = dy_cnn_carve(base, &p, (size_t)rows * net->layer[l].out);
  w->g0 = dy_cnn_carve(base, &p, (size_t)rows * net->maxfeat);
  w->g1 = dy_cnn_carve(base, &p, (size_t)rows * net->maxfeat);
  w->cw = dy_cnn_carve(base, &p, net->maxwork);
  return p;
}

size_t dy_cnn_work_bytes(const DyCnn *net, int rows)
{
  DyCnnWork w;
  return dy_cnn_layout(net, rows, &w, NULL);
}

DyCnnWork *dy_cnn_work_init(const DyCnn *net, int rows, void *mem)
{
  DyCnnWork *w = mem;
  memset(w, 0, sizeof *w);
  dy_cnn_layout(net, rows, w, mem);
  return w;
}

/* --- forward and backward --------------------------------------------------------------------------- */

/* Rows of the weight seen as a matrix (first dimension, rest). */
static int dy_cnn_wrows(const DyCnnLayer *L)
{
  return L->conv.k == 0 ? L->out : L->conv.transposed ? L->conv.cin : L->conv.cout;
}

void dy_cnn_forward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *X, dy_real *Y)
{
  w->X = X;
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *L = &net->layer[l];
    const int r = dy_cnn_wrows(L);
    dy_transpose(r, (int)(L->nw / (size_t)r), p + L->woff, w->wt + L->woff);
  }
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *L = &net->layer[l];
    const dy_real *in = l ? w->h[l - 1] : X, *W = p + L->woff, *WT = w->wt + L->woff, *b = W + L->nw;
    dy_real *out = l + 1 < net->nlayer ? w->h[l] : Y;
    if (L->conv.k) dy_conv_forward(&L->conv, n, in, W, WT, b, L->act, out, w->cw);
    else dy_linear_forward(n, L->in, L->out, in, W, WT, b, L->act, out);
  }
}

void dy_cnn_backward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *dY, dy_real *g,
                     dy_real *dX)
{
  const dy_real *cur = dY; /* gradient of layer l's output before its activation */
  for (int l = net->nlayer - 1; l >= 0; l--) {
    const DyCnnLayer *L = &net->layer[l];
    const dy_real *in = l ? w->h[l - 1] : w->X, *W = p + L->woff, *WT = w->wt + L->woff;
    dy_real *dW = g + L->woff, *db = dW + L->nw;
    dy_real *dst = l ? (cur == w->g0 ? w->g1 : w->g0) : dX;
    if (l) memset(dst, 0, (size_t)n * L->in * sizeof *dst);
    if (L->conv.k) dy_conv_backward(&L->conv, n, in, cur, W, WT, dst, dW, db, w->cw);
    else {
      dy_linear_backward_weight(n, L->in, L->out, in, cur, dW);
      dy_linear_backward_bias(n, L->out, cur, db);
      if (dst) dy_linear_backward_input(n, L->in, L->out, cur, W, WT, NULL, DY_EPI_ADD, dst, NULL);
    }
    if (!l) break;
    if (net->layer[l - 1].act == DY_EPI_RELU) dy_relu_backward((size_t)n * L->in, w->h[l - 1], dst);
    cur = dst;
  }
}
