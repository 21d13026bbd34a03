/* Convolution and transposed convolution (dy_conv.h) as im2col / col2im around the linear-layer
 * products of nn_kernels.c.
 *
 * Both layers relate a "large" image (the convolution's input, the transposed convolution's
 * output) and a "small" one through the same gather: row (y, x) of the column matrix of a large
 * image holds, for every large channel c and kernel offset (u, v), the pixel (s y - p + u,
 * s x - p + v) or 0 outside, in the order (c, u, v) of a torch weight's trailing dimensions.
 * With the small image's pixels as rows (its channels as columns, "rows layout"):
 *   convolution forward     small = cols(large) W^T + b      (a linear layer, W (out, c k k))
 *   convolution backward    dW += dsmall^T cols(large), dcols = dsmall W, large += col2im(dcols)
 *   transposed forward      cols = small W (W (in, out k k)), large = b + col2im(cols)
 *   transposed backward     dcols = cols(dlarge), dW += small^T dcols, dsmall = dcols W^T.
 * Images are taken in chunks whose column matrix holds about DY_CONV_COLS values, so that a
 * chunk's products have enough rows for the blocked kernels even on the 4x4 layers, and the
 * workspace stays a few MB whatever the batch.
 *
 * Why not a direct loop: tools/bench_conv times both on the layers of the image networks (README,
 * "Image data"); the products run near the GEMM's speed, and the gather costs less than the
 * product for every layer but the first, whose product is small anyway. */
#include "nn/dy_conv.h"

#include <string.h>

#define DY_CONV_COLS (1 << 18)
#define DY_CONV_INLINE static inline __attribute__((always_inline)) /* values of a chunk's column matrix (2 MB in double) */

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

size_t dy_conv_work_len(const DyConv *c)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const size_t nb = (size_t)dy_conv_chunk(&s, c->k, &P, &K);
  return dy_conv_pad(nb * P * K) + 2 * dy_conv_pad(nb * P * s.cs);
}

/* The column matrix (hs ws, cl k k) of one large image. The kernel rows are short (k values):
 * copied by plain loops, which the compiler unrolls for the 4x4 kernels of the image nets (a
 * memcpy call per row cost more than the copy; measured with perf on tools/bench_conv). */
DY_CONV_INLINE void dy_im2col_k(const DyConvSides *s, const int k, int st, int p, const dy_real *img, dy_real *col)
{
  const size_t K = (size_t)s->cl * k * k;
  for (int y = 0; y < s->hs; y++)
    for (int x = 0; x < s->ws; x++) {
      dy_real *row = col + ((size_t)y * s->ws + x) * K;
      for (int c = 0; c < s->cl; c++)
        for (int u = 0; u < k; u++) {
          dy_real *r = row + ((size_t)c * k + u) * k;
          const int yy = st * y - p + u;
          if (yy < 0 || yy >= s->hl) {
            memset(r, 0, (size_t)k * sizeof *r);
            continue;
          }
          const dy_real *src = img + ((size_t)c * s->hl + yy) * s->wl;
          const int x0 = st * x - p;
          if (x0 >= 0 && x0 + k <= s->wl)
            for (int v = 0; v < k; v++) r[v] = src[x0 + v];
          else
            for (int v = 0; v < k; v++) r[v] = x0 + v >= 0 && x0 + v < s->wl ? src[x0 + v] : 0;
        }
    }
}

/* The adjoint of dy_im2col: img (cl, hl, wl) += col2im(col). */
DY_CONV_INLINE void dy_col2im_add_k(const DyConvSides *s, const int k, int st, int p, const dy_real *col, dy_real *img)
{
  const size_t K = (size_t)s->cl * k * k;
  for (int y = 0; y < s->hs; y++)
    for (int x = 0; x < s->ws; x++) {
      const dy_real *row = col + ((size_t)y * s->ws + x) * K;
      for (int c = 0; c < s->cl; c++)
        for (int u = 0; u < k; u++) {
          const int yy = st * y - p + u;
          if (yy < 0 || yy >= s->hl) continue;
          const dy_real *r = row + ((size_t)c * k + u) * k;
          dy_real *dst = img + ((size_t)c * s->hl + yy) * s->wl;
          const int x0 = st * x - p;
          if (x0 >= 0 && x0 + k <= s->wl)
            for (int v = 0; v < k; v++) dst[x0 + v] += r[v];
          else
            for (int v = 0; v < k; v++)
              if (x0 + v >= 0 && x0 + v < s->wl) dst[x0 + v] += r[v];
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

/* One image (c, P) to rows layout (P, c), and back (add: accumulate). */
static void dy_to_rows(int c, size_t P, const dy_real *img, dy_real *m)
{
  for (int ch = 0; ch < c; ch++)
    for (size_t q = 0; q < P; q++) m[q * c + ch] = img[ch * P + q];
}

static void dy_from_rows(int c, size_t P, const dy_real *m, dy_real *img, int add)
{
  for (int ch = 0; ch < c; ch++) {
    dy_real *dst = img + ch * P;
    if (add)
      for (size_t q = 0; q < P; q++) dst[q] += m[q * c + ch];
    else
      for (size_t q = 0; q < P; q++) dst[q] = m[q * c + ch];
  }
}

void dy_relu_backward(size_t m, const dy_real *H, dy_real *dH)
{
  for (size_t i = 0; i < m; i++) dH[i] = H[i] > 0 ? dH[i] : 0;
}

void dy_conv_forward(const DyConv *c, int n, const dy_real *X, const dy_real *W, const dy_real *WT, const dy_real *b,
                     DyEpilogue act, dy_real *Y, dy_real *work)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const int chunk = dy_conv_chunk(&s, c->k, &P, &K);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c), hw = (size_t)c->hout * c->wout;
  dy_real *col = work, *mat = work + dy_conv_pad((size_t)chunk * P * K);
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int nb = DY_MIN(chunk, n - i0);
    const int rows = nb * (int)P;
    if (!c->transposed) {
      for (int i = 0; i < nb; i++) dy_im2col(&s, c->k, c->stride, c->pad, X + (i0 + i) * nin, col + i * P * K);
      dy_linear_forward(rows, (int)K, c->cout, col, W, WT, b, act, mat);
      for (int i = 0; i < nb; i++) dy_from_rows(c->cout, P, mat + i * P * c->cout, Y + (i0 + i) * nout, 0);
      continue;
    }
    for (int i = 0; i < nb; i++) dy_to_rows(c->cin, P, X + (i0 + i) * nin, mat + i * P * c->cin);
    /* cols = small W: a linear layer whose (out, in) weight is WT (out k k, in) */
    dy_linear_forward(rows, c->cin, (int)K, mat, WT, W, NULL, DY_EPI_SET, col);
    for (int i = 0; i < nb; i++) {
      dy_real *y = Y + (i0 + i) * nout;
      for (int o = 0; o < c->cout; o++)
        for (size_t q = 0; q < hw; q++) y[o * hw + q] = b ? b[o] : 0;
      dy_col2im_add(&s, c->k, c->stride, c->pad, col + i * P * K, y);
      if (act == DY_EPI_RELU)
        for (size_t q = 0; q < nout; q++) y[q] = y[q] > 0 ? y[q] : 0;
    }
  }
}

void dy_conv_backward(const DyConv *c, int n, const dy_real *X, const dy_real *dY, const dy_real *W, const dy_real *WT,
                      dy_real *dX, dy_real *dW, dy_real *db, dy_real *work)
{
  const DyConvSides s = dy_conv_sides(c);
  size_t P, K;
  const int chunk = dy_conv_chunk(&s, c->k, &P, &K);
  const size_t nin = dy_conv_in_len(c), nout = dy_conv_out_len(c), hw = (size_t)c->hout * c->wout;
  dy_real *col = work, *mat = work + dy_conv_pad((size_t)chunk * P * K);
  dy_real *mat2 = mat + dy_conv_pad((size_t)chunk * P * s.cs);
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int nb = DY_MIN(chunk, n - i0);
    const int rows = nb * (int)P;
    if (!c->transposed) {
      for (int i = 0; i < nb; i++) dy_to_rows(c->cout, P, dY + (i0 + i) * nout, mat + i * P * c->cout);
      if (db) dy_linear_backward_bias(rows, c->cout, mat, db);
      if (dW) {
        for (int i = 0; i < nb; i++) dy_im2col(&s, c->k, c->stride, c->pad, X + (i0 + i) * nin, col + i * P * K);
        dy_linear_backward_weight(rows, (int)K, c->cout, col, mat, dW);
      }
      if (dX) {
        dy_linear_backward_input(rows, (int)K, c->cout, mat, W, WT, NULL, DY_EPI_SET, col, NULL);
        for (int i = 0; i < nb; i++) dy_col2im_add(&s, c->k, c->stride, c->pad, col + i * P * K, dX + (i0 + i) * nin);
      }
      continue;
    }
    for (int i = 0; i < nb; i++) {
      const dy_real *dy = dY + (i0 + i) * nout;
      if (db)
        for (int o = 0; o < c->cout; o++) {
          dy_real t = 0;
          for (size_t q = 0; q < hw; q++) t += dy[o * hw + q];
          db[o] += t;
        }
      dy_im2col(&s, c->k, c->stride, c->pad, dy, col + i * P * K);
    }
    if (dW) {
      for (int i = 0; i < nb; i++) dy_to_rows(c->cin, P, X + (i0 + i) * nin, mat + i * P * c->cin);
      dy_linear_backward_weight(rows, (int)K, c->cin, col, mat, dW);
    }
    if (dX) {
      dy_linear_forward(rows, (int)K, c->cin, col, W, WT, NULL, DY_EPI_SET, mat2);
      for (int i = 0; i < nb; i++) dy_from_rows(c->cin, P, mat2 + i * P * c->cin, dX + (i0 + i) * nin, 1);
    }
  }
}
