/* The image encoder and decoder (dy_convnet.h): layer tables, initialisation, and forward and
 * backward as chains of dy_conv_* and dy_linear_* calls. */
#include "nn/dy_convnet.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <string.h>

/* A reorder of (c, s) blocks, kept only when it moves something. */
static void dy_cnn_reorder(int *pc, int *ps, int c, int s)
{
  *pc = c > 1 && s > 1 ? c : 0;
  *ps = c > 1 && s > 1 ? s : 0;
}

/* Appends a layer to the table: a linear layer (k == 0) or a convolution of the image the layer
 * before left (cin, side, side). Returns the output side, or -1. */
static int dy_cnn_add(DyCnn *net, int transposed, int cin, int side, int cout, int k, int stride, int pad,
                      DyEpilogue act)
{
  DyCnnLayer *L = &net->layer[net->nlayer];
  memset(L, 0, sizeof *L);
  L->woff = net->nparam;
  L->act = act;
  L->nb = (size_t)cout;
  if (k == 0) { /* linear: cin -> cout features */
    L->in = cin;
    L->out = cout;
    L->nw = (size_t)cin * cout;
    L->bound = 1.0 / sqrt((double)cin);
    if (net->nlayer && net->layer[net->nlayer - 1].conv.k) { /* reads a convolution's (C, H W) output */
      const DyConv *pv = &net->layer[net->nlayer - 1].conv;
      dy_cnn_reorder(&L->pc, &L->ps, pv->cout, pv->hout * pv->wout);
    }
  } else {
    if (dy_conv_setup(&L->conv, transposed, cin, side, side, cout, k, stride, pad)) return -1;
    L->in = (int)dy_conv_in_len(&L->conv);
    L->out = (int)dy_conv_out_len(&L->conv);
    L->nw = dy_conv_weight_len(&L->conv);
    L->bound = 1.0 / sqrt((double)(transposed ? cout : cin) * k * k);
    const size_t wl = dy_conv_hwc_work_len(&L->conv);
    if (wl > net->maxwork) net->maxwork = wl;
    dy_cnn_reorder(&L->pc, &L->ps, transposed ? cout : cin, k * k);
    if (net->nlayer && !net->layer[net->nlayer - 1].conv.k) { /* fed by a linear layer's (C, H W) output */
      DyCnnLayer *pv = &net->layer[net->nlayer - 1];
      if (pv->pc) return -1; /* one reorder per layer */
      dy_cnn_reorder(&pv->qc, &pv->qs, cin, side * side);
    }
  }
  if (L->nw + L->nb > net->maxlayer) net->maxlayer = L->nw + L->nb;
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
  const dy_real *X;                  /* input of the last forward (channel-last), not owned unless xh */
  dy_real *wi;                       /* (nparam) the parameters in the kernels' order (DyCnnLayer) */
  dy_real *wt;                       /* (nparam) their weights transposed, (rest, first dimension) */
  dy_real *gi;                       /* (maxlayer) one reordered layer's gradient */
  dy_real *h[DY_CNN_MAX_LAYERS];     /* h[l] (rows, out of layer l), l < nlayer - 1 */
  dy_real *g0, *g1;                  /* (rows, maxfeat) ping-pong gradients */
  dy_real *cw;                       /* (maxwork) convolution workspace */
  dy_real *xh, *yh;                  /* multi-channel input and output images channel-last, or NULL */
};

/* Carves n values (64-byte aligned) from *p, or only counts them when base is NULL. */
static dy_real *dy_cnn_carve(char *base, size_t *p, size_t n)
{
  dy_real *r = base ? (dy_real *)(base + *p) : NULL;
  *p += (n * sizeof(dy_real) + 63) & ~(size_t)63;
  return r;
}

/* The net's input and output images when they have several channels (else their layout is
 * channel-last already). */
static const DyConv *dy_cnn_in_image(const DyCnn *net)
{
  const DyConv *c = &net->layer[0].conv;
  return c->k && c->cin > 1 ? c : NULL;
}

static const DyConv *dy_cnn_out_image(const DyCnn *net)
{
  const DyConv *c = &net->layer[net->nlayer - 1].conv;
  return c->k && c->cout > 1 ? c : NULL;
}

static size_t dy_cnn_layout(const DyCnn *net, int rows, DyCnnWork *w, char *base)
{
  size_t p = (sizeof(DyCnnWork) + 63) & ~(size_t)63;
  w->rows = rows;
  w->wi = dy_cnn_carve(base, &p, net->nparam);
  w->wt = dy_cnn_carve(base, &p, net->nparam);
  w->gi = dy_cnn_carve(base, &p, net->maxlayer);
  for (int l = 0; l + 1 < net->nlayer; l++) w->h[l] = dy_cnn_carve(base, &p, (size_t)rows * net->layer[l].out);
  w->g0 = dy_cnn_carve(base, &p, (size_t)rows * net->maxfeat);
  w->g1 = dy_cnn_carve(base, &p, (size_t)rows * net->maxfeat);
  w->cw = dy_cnn_carve(base, &p, net->maxwork);
  w->xh = dy_cnn_in_image(net) ? dy_cnn_carve(base, &p, (size_t)rows * net->layer[0].in) : NULL;
  w->yh = dy_cnn_out_image(net) ? dy_cnn_carve(base, &p, (size_t)rows * net->layer[net->nlayer - 1].out) : NULL;
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
static int dy_cnn_wrows(const DyCnnLayer *L) { return L->conv.k == 0 ? L->out : dy_conv_weight_rows(&L->conv); }

/* dst = src (n values), or += with add. */
static void dy_cnn_put(size_t n, const dy_real *src, dy_real *dst, int add)
{
  if (add)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
  else memcpy(dst, src, n * sizeof *dst);
}

/* Layer L's weight and bias (torch order, at p) in the kernels' order (at q); with back, the
 * reverse, added: q (torch order) += p (kernels' order). A layer has at most one of the column
 * reorder (pc, ps) within each weight row and the row reorder (qc, qs) of whole rows and of the
 * bias (dy_cnn_add). */
static void dy_cnn_reorder_params(const DyCnnLayer *L, const dy_real *p, dy_real *q, int back)
{
  const size_t r = (size_t)dy_cnn_wrows(L), rest = L->nw / r;
  const dy_real *pb = p + L->nw;
  dy_real *qb = q + L->nw;
  if (L->pc) {
    if (back) dy_swap_inner_add(r, L->ps, L->pc, p, q);
    else dy_swap_inner(r, L->pc, L->ps, p, q);
    dy_cnn_put(L->nb, pb, qb, back);
  } else if (L->qc) {
    for (int i = 0; i < L->qc; i++)
      for (int j = 0; j < L->qs; j++) { /* torch row i qs + j is the kernels' row j qc + i */
        const size_t t = (size_t)i * L->qs + j, k = (size_t)j * L->qc + i;
        dy_cnn_put(rest, p + (back ? k : t) * rest, q + (back ? t : k) * rest, back);
      }
    if (back) dy_swap_inner_add(1, L->qs, L->qc, pb, qb);
    else dy_swap_inner(1, L->qc, L->qs, pb, qb);
  } else dy_cnn_put(L->nw + L->nb, p, q, back);
}

void dy_cnn_forward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *X, dy_real *Y)
{
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *L = &net->layer[l];
    const int r = dy_cnn_wrows(L);
    dy_cnn_reorder_params(L, p + L->woff, w->wi + L->woff, 0);
    dy_transpose(r, (int)(L->nw / (size_t)r), w->wi + L->woff, w->wt + L->woff);
  }
  const DyConv *ci = dy_cnn_in_image(net), *co = dy_cnn_out_image(net);
  if (ci) dy_swap_inner((size_t)n, ci->cin, ci->hin * ci->win, X, w->xh);
  w->X = ci ? w->xh : X;
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *L = &net->layer[l];
    const dy_real *in = l ? w->h[l - 1] : w->X, *W = w->wi + L->woff, *WT = w->wt + L->woff, *b = W + L->nw;
    dy_real *out = l + 1 < net->nlayer ? w->h[l] : co ? w->yh : Y;
    if (L->conv.k) dy_conv_forward_hwc(&L->conv, n, in, W, WT, b, L->act, out, w->cw);
    else dy_linear_forward(n, L->in, L->out, in, W, WT, b, L->act, out);
  }
  if (co) dy_swap_inner((size_t)n, co->hout * co->wout, co->cout, w->yh, Y);
}

void dy_cnn_backward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *dY, dy_real *g,
                     dy_real *dX)
{
  (void)p; /* the forward's reordered weights serve */
  const DyConv *ci = dy_cnn_in_image(net), *co = dy_cnn_out_image(net);
  const dy_real *cur = dY; /* gradient of layer l's output before its activation */
  if (co) {
    dy_swap_inner((size_t)n, co->cout, co->hout * co->wout, dY, w->yh);
    cur = w->yh;
  }
  for (int l = net->nlayer - 1; l >= 0; l--) {
    const DyCnnLayer *L = &net->layer[l];
    const dy_real *in = l ? w->h[l - 1] : w->X, *W = w->wi + L->woff, *WT = w->wt + L->woff;
    const int reordered = L->pc || L->qc;
    dy_real *dW = reordered ? w->gi : g + L->woff, *db = dW + L->nw;
    if (reordered) memset(w->gi, 0, (L->nw + L->nb) * sizeof *w->gi);
    /* the input gradient: the next ping-pong buffer, dX, or channel-last for a multi-channel dX */
    dy_real *other = cur == w->g0 ? w->g1 : w->g0, *dst = l || (dX && ci) ? other : dX;
    if (dst && dst != dX) memset(dst, 0, (size_t)n * L->in * sizeof *dst);
    if (L->conv.k) dy_conv_backward_hwc(&L->conv, n, in, cur, W, WT, dst, dW, db, w->cw);
    else {
      dy_linear_backward_weight(n, L->in, L->out, in, cur, dW);
      dy_linear_backward_bias(n, L->out, cur, db);
      if (dst) dy_linear_backward_input(n, L->in, L->out, cur, W, WT, NULL, DY_EPI_ADD, dst, NULL);
    }
    if (reordered) dy_cnn_reorder_params(L, w->gi, g + L->woff, 1);
    if (!l) {
      if (dst && dst != dX) dy_swap_inner_add((size_t)n, ci->hin * ci->win, ci->cin, dst, dX);
      break;
    }
    if (net->layer[l - 1].act == DY_EPI_RELU) dy_relu_backward((size_t)n * L->in, w->h[l - 1], dst);
    cur = dst;
  }
}
