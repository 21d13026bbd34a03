/* The linear layer's three products (nn/dy_nn.h) against plain loops in long double, over shapes
 * that reach every kernel path: outputs narrower than a vector (the latent layer), inputs of 1 to 4
 * features, the direct small-layer kernels, the packed blocked product (wide layers, widths that are
 * not a multiple of the vector length, sums longer than one block), and the weight gradients of
 * narrow layers to many outputs whose output gradient outgrows 4 MiB (the blocked product by
 * dy_linear_backward_weight's size rule). Every epilogue of the forward and input-gradient
 * products is checked, with the bias-gradient column sums. Exit code 0 when every entry agrees. */
#include "nn/dy_nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DY_REAL_DOUBLE)
#define TOL 1e-12
#else
#define TOL 2e-5
#endif

static unsigned long long state = 88172645463325252ULL;
static double uniform(void) /* in [-1, 1) */
{
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (double)(state >> 11) / 4503599627370496.0 - 1.0;
}

static dy_real *vec(size_t n, int positive_half)
{
  dy_real *v = dy_aligned_zalloc(n * sizeof(dy_real) + 64);
  for (size_t i = 0; i < n; i++) {
    const double u = uniform();
    v[i] = (dy_real)(positive_half && u < 0 ? 0 : u); /* about half zeros: a ReLU output */
  }
  return v;
}

static int bad;

/* |got - want| against TOL times the size of the sum (sum of |terms|), per entry */
static void expect(const char *what, int n, int in, int out, size_t count, const dy_real *got, const long double *want,
                   const long double *scale)
{
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    const double e = (double)fabsl((long double)got[i] - want[i]) / (double)(scale[i] + 1e-30L);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  if (!(worst <= TOL)) {
    printf("FAIL %s n %d in %d out %d: entry %zu relative error %.3g (got %.9g, want %.9Lg)\n", what, n, in, out, at,
           worst, (double)got[at], want[at]);
    bad = 1;
  }
}

static void check_shape(int n, int in, int out)
{
  const size_t nx = (size_t)n * in, ny = (size_t)n * out, nw = (size_t)out * in;
  dy_real *X = vec(nx, 0), *H = vec(nx, 1), *W = vec(nw, 0), *WT = vec(nw, 0), *b = vec(out, 0), *dY = vec(ny, 0);
  dy_real *Y = vec(ny, 0), *dX = vec(nx, 0), *dW = vec(nw, 0), *db = vec(in, 0);
  const size_t most = nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw);
  long double *want = malloc(most * sizeof *want), *scale = malloc(most * sizeof *scale);
  dy_real *dW0 = malloc(nw * sizeof *dW0), *db0 = malloc(in * sizeof *db0);

  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) WT[(size_t)i * out + o] = W[(size_t)o * in + i];
  /* forward, each activation */
  const DyEpilogue acts[] = {DY_EPI_SET, DY_EPI_RELU, DY_EPI_TANH};
  for (int a = 0; a < 3; a++) {
    dy_linear_forward(n, in, out, X, W, WT, b, acts[a], Y);
    for (int r = 0; r < n; r++)
      for (int o = 0; o < out; o++) {
        long double s = b[o], m = fabsl((long double)b[o]);
        for (int i = 0; i < in; i++) {
          const long double t = (long double)X[(size_t)r * in + i] * W[(size_t)o * in + i];
          s += t;
          m += fabsl(t);
        }
        const size_t k = (size_t)r * out + o;
        want[k] = acts[a] == DY_EPI_RELU ? (s > 0 ? s : 0) : acts[a] == DY_EPI_TANH ? tanhl(s) : s;
        scale[k] = m + 1;
      }
    expect(a == 0 ? "forward" : a == 1 ? "forward relu" : "forward tanh", n, in, out, ny, Y, want, scale);
  }
  /* input gradient, each epilogue, with the bias-gradient column sums */
  const DyEpilogue modes[] = {DY_EPI_SET, DY_EPI_ADD, DY_EPI_RELU, DY_EPI_TANH};
  for (int a = 0; a < 4; a++) {
    for (size_t k = 0; k < nx; k++) dX[k] = (dy_real)(0.25 * uniform());
    for (int i = 0; i < in; i++) db0[i] = db[i] = (dy_real)uniform();
    long double *prev = malloc(nx * sizeof *prev);
    for (size_t k = 0; k < nx; k++) prev[k] = dX[k];
    const int sums = modes[a] != DY_EPI_ADD; /* column sums are taken with the other modes */
    dy_linear_backward_input(n, in, out, dY, W, WT, H, modes[a], dX, sums ? db : NULL);
    for (int r = 0; r < n; r++)
      for (int i = 0; i < in; i++) {
        long double s = 0, m = 0;
        for (int o = 0; o < out; o++) {
          const long double t = (long double)dY[(size_t)r * out + o] * W[(size_t)o * in + i];
          s += t;
          m += fabsl(t);
        }
        const size_t k = (size_t)r * in + i;
        const long double h = H[k];
        want[k] = modes[a] == DY_EPI_ADD    ? prev[k] + s
                  : modes[a] == DY_EPI_RELU ? (h > 0 ? s : 0)
                  : modes[a] == DY_EPI_TANH ? s * (1 - h * h)
                                            : s;
        scale[k] = m + 1;
      }
    static const char *const names[] = {"input gradient", "input gradient add", "input gradient relu",
                                        "input gradient tanh"};
    expect(names[a], n, in, out, nx, dX, want, scale);
    if (sums) {
      long double *cs = calloc((size_t)in, sizeof *cs), *cm = calloc((size_t)in, sizeof *cm);
      for (int r = 0; r < n; r++)
        for (int i = 0; i < in; i++) {
          cs[i] += want[(size_t)r * in + i];
          cm[i] += scale[(size_t)r * in + i];
        }
      for (int i = 0; i < in; i++) cs[i] += db0[i];
      expect("bias gradient sums", n, in, out, (size_t)in, db, cs, cm);
      free(cs);
      free(cm);
    }
    free(prev);
  }
  /* weight gradient, accumulated into what dW holds */
  for (size_t k = 0; k < nw; k++) dW0[k] = dW[k] = (dy_real)uniform();
  dy_linear_backward_weight(n, in, out, X, dY, dW);
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) {
      long double s = dW0[(size_t)o * in + i], m = 1;
      for (int r = 0; r < n; r++) {
        const long double t = (long double)dY[(size_t)r * out + o] * X[(size_t)r * in + i];
        s += t;
        m += fabsl(t);
      }
      want[(size_t)o * in + i] = s;
      scale[(size_t)o * in + i] = m;
    }
  expect("weight gradient", n, in, out, nw, dW, want, scale);

  free(want);
  free(scale);
  free(dW0);
  free(db0);
  free(X);
  free(H);
  free(W);
  free(WT);
  free(b);
  free(dY);
  free(Y);
  free(dX);
  free(dW);
  free(db);
}

int main(void)
{
  /* n, in, out */
  static const int shapes[][3] = {
      {1, 1, 1},       {5, 3, 2},       {7, 2, 32},      {64, 2, 300},     {64, 4, 33},     {9, 30, 2},
      {64, 32, 32},    {65, 32, 48},    {256, 64, 64},   {33, 17, 19},     {100, 40, 24},   {257, 100, 70},
      {256, 256, 256}, {300, 513, 31},  {64, 600, 40},   {130, 48, 1000},  {1024, 32, 1100}, {700, 20, 1601},
      {300, 64, 4000}, {513, 33, 2050}, {600, 65, 1700}, {1030, 48, 1030},
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_shape(shapes[s][0], shapes[s][1], shapes[s][2]);
  printf("%s: %zu shapes\n", bad ? "FAILED" : "all products agree", sizeof shapes / sizeof shapes[0]);
  return bad;
}
