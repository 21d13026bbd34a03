/* Convolution and transposed convolution (dy_conv.h) as im2col / col2im around the linear-layer
 * products of nn_kernels.c.
 *
 * The kernels work on channel-last images (HWC) and on weights whose trailing dimensions are
 * reordered to (k, k, C). An image is then already the "rows layout" of the products (its pixels
 * as rows, its channels as columns): no image is transposed between layers, and a row of the
 * column matrix is k runs of k C contiguous values of the large image.
 *
 * Both layers relate a "large" image (the convolution's input, the transposed convolution's
 * output) and a "small" one through the same gather: row (y, x) of the column matrix of a large
 * image holds, for every kernel offset (u, v) and large channel c, the pixel (s y - p + u,
 * s x - p + v) or 0 outside, in the order (u, v, c) of the reordered weight's trailing dimensions.
 * With the small image's pixels as rows:
 *   convolution forward     small = cols(large) W^T + b      (a linear layer, W (out, k k c))
 *   convolution backward    dW += dsmall^T cols(large), dcols = dsmall W, large += col2im(dcols)
 *   transposed forward      cols = small W (W (in, k k out)), large = b + col2im(cols)
 *   transposed backward     dcols = cols(dlarge), dW += small^T dcols, dsmall = dcols W^T.
 * Images are taken in chunks whose column matrix holds about DY_CONV_COLS values, so that a
 * chunk's products have enough rows for the blocked kernels even on the 4x4 layers, and the
 * workspace stays a few MB whatever the batch. The torch-layout entry points (NCHW images, torch
 * weights) reorder one chunk of images at a time, and the weight, in their workspace around the
 * same kernels.
 *
 * Why not a direct loop: tools/bench_conv times both on the layers of the image networks (README,
 * "Image data"); the products run near the GEMM's speed, and the gathers cost less than the
 * products. */
#include "nn/dy_conv.h"

#include <stddef.h>
#include <string.h>

#define DY_CONV_COLS (1 << 18) /* values of a chunk's column matrix (2 MB in double) */
#define DY_CONV_INLINE static inline __attribute__((always_inline))

/* The gather's sizes: large channels and image, small channels and image. */
typedef struct {
  int cl, hl, wl, cs, hs, ws;
} DyConvSides;

static DyConvSides dy_conv_sides(const DyConv *c)
{
  if (c->transposed) return (DyConvSides){c->cout, c->hout, c->wout, c->cin, c->hin, c->win};
  return (DyConvSides){c->cin, c->hin, c->win, c->cout, c->hout, c->wout};
}

int dy_conv_setup(DyConv *c, int transposed, int cin, int hin, int win, int cout, int k, int stride, int pad)
{
  memset(c, 0, sizeof *c);
  if (cin <= 0 || hin <= 0 || win <= 0 || cout <= 0 || k <= 0 || stride <= 0 || pad < 0) return -1;
  *c = (DyConv){.cin = cin, .hin = hin, .win = win, .cout = cout, .k = k, .stride = stride, .pad = pad,
                .transposed = transposed};
  if (transposed) {
    c->hout = (hin - 1) * stride - 2 * pad + k;
    c->wout = (win - 1) * stride - 2 * pad + k;
  } else {
    c->hout = hin + 2 * pad >= k ? (hin + 2 * pad - k) / stride + 1 : 0;
    c->wout = win + 2 * pad >= k ? (win + 2 * pad - k) / stride + 1 : 0;
  }
  return c->hout > 0 && c->wout > 0 ? 0 : -1;
}

size_t dy_conv_weight_len(const DyConv *c) { return (size_t)c->k * c->k * c->cin * c->cout; }
size_t dy_conv_in_len(const DyConv *c) { return (size_t)c->cin * c->hin * c->win; }
size_t dy_conv_out_len(const DyConv *c) { return (size_t)c->cout * c->hout * c->wout; }

/* Rows of the weight seen as a matrix (first dimension, rest), and its trailing channels. */
int dy_conv_weight_rows(const DyConv *c) { return c->transposed ? c->cin : c->cout; }
static int dy_conv_weight_chan(const DyConv *c) { return c->transposed ? c->cout : c->cin; }

/* Images per chunk, and the column matrix's rows (small pixels) and columns per image. */
static int dy_conv_chunk(const DyConvSides *s, int k, size_t *P, size_t *K)
{
  *P = (size_t)s->hs * s->ws;
  *K = (size_t)s->cl * k * k;
  const size_t per = *P * *K;
  return per >= DY_CONV_COLS ? 1 : (int)(DY_CONV_COLS / per);
}

/* Values of a 64-byte aligned piece of n values. */
static size_t dy_conv_pad(size_t n) { return (n * sizeof(dy_real) + 63) / 64 * 64 / sizeof(dy_real); }

size_t dy_conv_hwc_work_len(const DyConv *c)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const size_t nb = (size_t)dy_conv_chunk(&s, c->k, &P, &K);
  return dy_conv_pad(nb * P * K);
}

/* The torch-layout entry points' workspace: the kernels' own, the reordered weight, its transpose
 * and its gradient, and one chunk of input, output and input-gradient images in HWC. */
typedef struct {
  dy_real *core, *Wp, *WpT, *dWp, *x, *y, *dx;
  int chunk;
} DyConvTorchWork;

static size_t dy_conv_torch_layout(const DyConv *c, dy_real *work, DyConvTorchWork *t)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const int chunk = dy_conv_chunk(&s, c->k, &P, &K);
  const size_t len[7] = {dy_conv_hwc_work_len(c),
                         dy_conv_pad(dy_conv_weight_len(c)),
                         dy_conv_pad(dy_conv_weight_len(c)),
                         dy_conv_pad(dy_conv_weight_len(c)),
                         dy_conv_pad((size_t)chunk * dy_conv_in_len(c)),
                         dy_conv_pad((size_t)chunk * dy_conv_out_len(c)),
                         dy_conv_pad((size_t)chunk * dy_conv_in_len(c))};
  dy_real **part[7] = {&t->core, &t->Wp, &t->WpT, &t->dWp, &t->x, &t->y, &t->dx};
  size_t off = 0;
  for (int i = 0; i < 7; i++) {
    *part[i] = work ? work + off : NULL;
    off += len[i];
  }
  t->chunk = chunk;
  return off;
}

size_t dy_conv_work_len(const DyConv *c)
{
  DyConvTorchWork t;
  return dy_conv_torch_layout(c, NULL, &t);
}

void dy_swap_inner(size_t rows, int a, int b, const dy_real *src, dy_real *dst)
{
  const size_t m = (size_t)a * b;
  if (a == 1 || b == 1) {
    memcpy(dst, src, rows * m * sizeof *dst);
    return;
  }
  for (size_t r = 0; r < rows; r++) dy_transpose(a, b, src + r * m, dst + r * m);
}

void dy_swap_inner_add(size_t rows, int a, int b, const dy_real *src, dy_real *dst)
{
  const size_t m = (size_t)a * b;
  for (size_t r = 0; r < rows; r++) {
    const dy_real *s = src + r * m;
    dy_real *d = dst + r * m;
    for (int i = 0; i < a; i++)
      for (int j = 0; j < b; j++) d[(size_t)j * a + i] += s[(size_t)i * b + j];
  }
}

void dy_conv_weight_hwc(const DyConv *c, const dy_real *W, dy_real *Wp)
{
  dy_swap_inner((size_t)dy_conv_weight_rows(c), dy_conv_weight_chan(c), c->k * c->k, W, Wp);
}

void dy_conv_weight_grad_add(const DyConv *c, const dy_real *dWp, dy_real *dW)
{
  dy_swap_inner_add((size_t)dy_conv_weight_rows(c), c->k * c->k, dy_conv_weight_chan(c), dWp, dW);
}

/* n values from s to d, or zeros when s is NULL: short runs, copied by a plain loop (a memcpy
 * call per run cost more than the copy on the 4x4 layers; perf on tools/bench_conv). */
DY_CONV_INLINE void dy_conv_run(dy_real *d, const dy_real *s, size_t n)
{
  if (s)
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  else
    for (size_t i = 0; i < n; i++) d[i] = 0;
}

/* The column matrix (hs ws, k k cl) of one large HWC image. */
DY_CONV_INLINE void dy_im2col_k(const DyConvSides *s, const int k, int st, int p, const dy_real *img, dy_real *col)
{
  const size_t cl = (size_t)s->cl, K = cl * k * k;
  for (int y = 0; y < s->hs; y++)
    for (int x = 0; x < s->ws; x++) {
      dy_real *row = col + ((size_t)y * s->ws + x) * K;
      const int x0 = st * x - p;
      for (int u = 0; u < k; u++) {
        dy_real *r = row + (size_t)u * k * cl;
        const int yy = st * y - p + u;
        if (yy < 0 || yy >= s->hl) {
          dy_conv_run(r, NULL, k * cl);
          continue;
        }
        const dy_real *src = img + (size_t)yy * s->wl * cl;
        if (x0 >= 0 && x0 + k <= s->wl) dy_conv_run(r, src + (size_t)x0 * cl, k * cl);
        else
          for (int v = 0; v < k; v++)
            dy_conv_run(r + v * cl, x0 + v >= 0 && x0 + v < s->wl ? src + (size_t)(x0 + v) * cl : NULL, cl);
      }
    }
}

/* The adjoint of dy_im2col: img (hl, wl, cl) += col2im(col). */
DY_CONV_INLINE void dy_col2im_add_k(const DyConvSides *s, const int k, int st, int p, const dy_real *col, dy_real *img)
{
  const size_t cl = (size_t)s->cl, K = cl * k * k;
  for (int y = 0; y < s->hs; y++)
    for (int x = 0; x < s->ws; x++) {
      const dy_real *row = col + ((size_t)y * s->ws + x) * K;
      const int x0 = st * x - p;
      /* the kernel columns v0 <= v < v1 land inside the image */
      const int v0 = x0 < 0 ? -x0 : 0, v1 = x0 + k > s->wl ? s->wl - x0 : k;
      for (int u = 0; u < k; u++) {
        const int yy = st * y - p + u;
        if (yy < 0 || yy >= s->hl) continue;
        const dy_real *r = row + (size_t)u * k * cl;
        dy_real *dst = img + ((size_t)yy * s->wl + (size_t)(x0 + v0)) * cl;
        const size_t n = (size_t)(v1 - v0) * cl;
        r += (size_t)v0 * cl;
        for (size_t i = 0; i < n; i++) dst[i] += r[i];
      }
    }
}

/* The gathers with the kernel size known at compile time for the image nets' 4 and 1. */
static void dy_im2col(const DyConvSides *s, int k, int st, int p, const dy_real *img, dy_real *col)
{
  if (k == 4) dy_im2col_k(s, 4, st, p, img, col);
  else if (k == 1) dy_im2col_k(s, 1, st, p, img, col);
  else dy_im2col_k(s, k, st, p, img, col);
}

static void dy_col2im_add(const DyConvSides *s, int k, int st, int p, const dy_real *col, dy_real *img)
{
  if (k == 4) dy_col2im_add_k(s, 4, st, p, col, img);
  else if (k == 1) dy_col2im_add_k(s, 1, st, p, col, img);
  else dy_col2im_add_k(s, k, st, p, col, img);
}

void dy_relu_backward(size_t m, const dy_real *H, dy_real *dH)
{
  for (size_t i = 0; i < m; i++) dH[i] = H[i] > 0 ? dH[i] : 0;
}

void dy_conv_forward_hwc(const DyConv *c, int n, const dy_real *X, const dy_real *Wp, const dy_real *WpT,
                         const dy_real *b, DyEpilogue act, dy_real *Y, dy_real *work)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const int chunk = dy_conv_chunk(&s, c->k, &P, &K);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c), hw = (size_t)c->hout * c->wout;
  dy_real *col = work;
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int nb = DY_MIN(chunk, n - i0);
    const int rows = nb * (int)P;
    if (!c->transposed) { /* the chunk's output is the (rows, cout) product itself */
      for (int i = 0; i < nb; i++) dy_im2col(&s, c->k, c->stride, c->pad, X + (i0 + i) * nin, col + i * P * K);
      dy_linear_forward(rows, (int)K, c->cout, col, Wp, WpT, b, act, Y + i0 * nout);
      continue;
    }
    /* cols = small W: a linear layer whose (out, in) weight is WpT (k k out, in) */
    dy_linear_forward(rows, c->cin, (int)K, X + i0 * nin, WpT, Wp, NULL, DY_EPI_SET, col);
    for (int i = 0; i < nb; i++) {
      dy_real *y = Y + (i0 + i) * nout;
      for (size_t q = 0; q < hw; q++)
        for (int o = 0; o < c->cout; o++) y[q * c->cout + o] = b ? b[o] : 0;
      dy_col2im_add(&s, c->k, c->stride, c->pad, col + i * P * K, y);
      if (act == DY_EPI_RELU)
        for (size_t q = 0; q < nout; q++) y[q] = y[q] > 0 ? y[q] : 0;
    }
  }
}

void dy_conv_backward_hwc(const DyConv *c, int n, const dy_real *X, const dy_real *dY, const dy_real *Wp,
                          const dy_real *WpT, dy_real *dX, dy_real *dWp, dy_real *db, dy_real *work)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const int chunk = dy_conv_chunk(&s, c->k, &P, &K);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c), hw = (size_t)c->hout * c->wout;
  dy_real *col = work;
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int nb = DY_MIN(chunk, n - i0);
    const int rows = nb * (int)P;
    const dy_real *dy = dY + i0 * nout;
    if (!c->transposed) { /* dY's chunk is the (rows, cout) matrix of the small pixels */
      if (db) dy_linear_backward_bias(rows, c->cout, dy, db);
      if (dWp) {
        for (int i = 0; i < nb; i++) dy_im2col(&s, c->k, c->stride, c->pad, X + (i0 + i) * nin, col + i * P * K);
        dy_linear_backward_weight(rows, (int)K, c->cout, col, dy, dWp);
      }
      if (dX) {
        dy_linear_backward_input(rows, (int)K, c->cout, dy, Wp, WpT, NULL, DY_EPI_SET, col, NULL);
        for (int i = 0; i < nb; i++) dy_col2im_add(&s, c->k, c->stride, c->pad, col + i * P * K, dX + (i0 + i) * nin);
      }
      continue;
    }
    if (db) dy_linear_backward_bias(nb * (int)hw, c->cout, dy, db);
    if (!dWp && !dX) continue;
    for (int i = 0; i < nb; i++) dy_im2col(&s, c->k, c->stride, c->pad, dY + (i0 + i) * nout, col + i * P * K);
    if (dWp) dy_linear_backward_weight(rows, (int)K, c->cin, col, X + i0 * nin, dWp);
    if (dX) dy_linear_forward(rows, (int)K, c->cin, col, Wp, WpT, NULL, DY_EPI_ADD, dX + i0 * nin);
  }
}

/* --- torch layouts ------------------------------------------------------------------------------ */

/* The reordered weight and its transpose, in the workspace. */
static void dy_conv_torch_weight(const DyConv *c, const dy_real *W, DyConvTorchWork *t)
{
  const int r = dy_conv_weight_rows(c);
  dy_conv_weight_hwc(c, W, t->Wp);
  dy_transpose(r, (int)(dy_conv_weight_len(c) / (size_t)r), t->Wp, t->WpT);
}

void dy_conv_forward(const DyConv *c, int n, const dy_real *X, const dy_real *W, const dy_real *b, DyEpilogue act,
                     dy_real *Y, dy_real *work)
{
  DyConvTorchWork t;
  dy_conv_torch_layout(c, work, &t);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c);
  dy_conv_torch_weight(c, W, &t);
  for (int i0 = 0; i0 < n; i0 += t.chunk) {
    const int nb = DY_MIN(t.chunk, n - i0);
    dy_swap_inner((size_t)nb, c->cin, c->hin * c->win, X + i0 * nin, t.x);
    dy_conv_forward_hwc(c, nb, t.x, t.Wp, t.WpT, b, act, t.y, t.core);
    dy_swap_inner((size_t)nb, c->hout * c->wout, c->cout, t.y, Y + i0 * nout);
  }
}

void dy_conv_backward(const DyConv *c, int n, const dy_real *X, const dy_real *dY, const dy_real *W, dy_real *dX,
                      dy_real *dW, dy_real *db, dy_real *work)
{
  DyConvTorchWork t;
  dy_conv_torch_layout(c, work, &t);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c);
  dy_conv_torch_weight(c, W, &t);
  if (dW) memset(t.dWp, 0, dy_conv_weight_len(c) * sizeof *t.dWp);
  for (int i0 = 0; i0 < n; i0 += t.chunk) {
    const int nb = DY_MIN(t.chunk, n - i0);
    dy_swap_inner((size_t)nb, c->cin, c->hin * c->win, X + i0 * nin, t.x);
    dy_swap_inner((size_t)nb, c->cout, c->hout * c->wout, dY + i0 * nout, t.y);
    if (dX) memset(t.dx, 0, (size_t)nb * nin * sizeof *t.dx);
    dy_conv_backward_hwc(c, nb, t.x, t.y, t.Wp, t.WpT, dX ? t.dx : NULL, dW ? t.dWp : NULL, db, t.core);
    if (dX) dy_swap_inner_add((size_t)nb, c->hin * c->win, c->cin, t.dx, dX + i0 * nin);
  }
  if (dW) dy_conv_weight_grad_add(c, t.dWp, dW);
}
