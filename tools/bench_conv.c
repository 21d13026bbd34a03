/* Times the convolution kernels of the image networks (dy_conv.h) layer by layer against the
 * core's FMA peak, and one layer against a direct (loop-nest) convolution.
 *
 *   bench_conv [--n 256] [--ms 200]
 *
 * The layers are those of the conv encoder (1 channel, width 32) and decoder (width 32, 1
 * channel) of dy_convnet.h on n images (a batch of n/2 pairs). For each: the forward (with its
 * ReLU where the net has one) and the backward (dW, db and dX; the encoder's first layer without
 * dX, as in training). GFLOP/s count 2 multiply-adds of the layer's products (the gathers and
 * scatters of im2col/col2im are not counted, so they show as lost speed). Each figure is the
 * minimum over repetitions for about --ms milliseconds of the thread's CPU time. The direct
 * convolution is the plain loop nest (output channel, input channel, kernel offset, output row,
 * output column) that a compiler vectorises along the output columns. */
#include "bench_common.h"
#include "nn/dy_convnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double now_s(void) { return 1e-6 * bench_cpu_us(); }

BENCH_PEAK_LOOP(peak256, 32)
BENCH_PEAK_LOOP(peak512, 64)

/* Y = conv(X) + b, direct: X (n, cin, hin, win), W (cout, cin, k, k). */
static void direct_conv(const DyConv *c, int n, const dy_real *X, const dy_real *W, const dy_real *b, dy_real *Y)
{
  const int k = c->k, s = c->stride, p = c->pad, ho = c->hout, wo = c->wout;
  for (int i = 0; i < n; i++)
    for (int o = 0; o < c->cout; o++) {
      dy_real *y = Y + ((size_t)i * c->cout + o) * ho * wo;
      for (int q = 0; q < ho * wo; q++) y[q] = b[o];
      for (int ch = 0; ch < c->cin; ch++) {
        const dy_real *x = X + ((size_t)i * c->cin + ch) * c->hin * c->win;
        for (int u = 0; u < k; u++)
          for (int v = 0; v < k; v++) {
            const dy_real w = W[(((size_t)o * c->cin + ch) * k + u) * k + v];
            for (int r = 0; r < ho; r++) {
              const int yy = s * r - p + u;
              if (yy < 0 || yy >= c->hin) continue;
              const int x0 = v - p, lo = x0 < 0 ? (-x0 + s - 1) / s : 0;
              int hi = (c->win - 1 - x0) / s + 1;
              if (hi > wo) hi = wo;
              const dy_real *xr = x + (size_t)yy * c->win + x0;
              dy_real *yr = y + (size_t)r * wo;
              for (int col = lo; col < hi; col++) yr[col] += w * xr[s * col];
            }
          }
      }
    }
}

typedef struct {
  const DyConv *c;
  int n, want_dx;
  DyEpilogue act;
  dy_real *X, *W, *Wp, *WT, *b, *Y, *dY, *dX, *dW, *db, *work;
} Case;

static void run(Case *t, int what)
{
  if (what == 0) dy_conv_forward_hwc(t->c, t->n, t->X, t->Wp, t->WT, t->b, t->act, t->Y, t->work);
  else if (what == 1)
    dy_conv_backward_hwc(t->c, t->n, t->X, t->dY, t->Wp, t->WT, t->want_dx ? t->dX : NULL, t->dW, t->db, t->work);
  else direct_conv(t->c, t->n, t->X, t->W, t->b, t->Y);
}

static double best_time(Case *t, int what, double ms)
{
  run(t, what);
  double best = INFINITY, start = now_s();
  int reps = 0;
  while (reps < 3 || (now_s() - start) * 1e3 < ms) {
    const double t0 = now_s();
    run(t, what);
    const double dt = now_s() - t0;
    if (dt < best) best = dt;
    ++reps;
  }
  return best;
}

static dy_real *filled(size_t n, DyRng *rng)
{
  dy_real *a = aligned_alloc(64, (n * sizeof(dy_real) + 63) / 64 * 64);
  for (size_t i = 0; i < n; i++) a[i] = (dy_real)(dy_rng_uniform(rng) - 0.5);
  return a;
}

int main(int argc, char **argv)
{
  int n = 256;
  double ms = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--ms")) ms = atof(argv[i + 1]);
  }
  if (n < 1 || ms <= 0) {
    fprintf(stderr, "usage: bench_conv [--n 256] [--ms 200]\n");
    return 2;
  }
  const double p256 = peak256(), p512 = peak512(), peak = p256 > p512 ? p256 : p512;
  printf("bench_conv (%s precision, %d images): FMA peak per core %.1f GFLOP/s (256-bit %.1f, 512-bit %.1f)\n",
         DY_REAL_NAME, n, peak, p256, p512);
  printf("%-8s %-28s %9s %6s %9s %6s\n", "net", "layer", "fwd GF/s", "%peak", "bwd GF/s", "%peak");
  DyCnn nets[2];
  dy_cnn_encoder(&nets[0], 1, 32, 2);
  dy_cnn_decoder(&nets[1], 2, 32, 1);
  DyRng rng;
  dy_rng_seed(&rng, 1, 0);
  double tfwd = 0, tbwd = 0, flops_all = 0;
  for (int k = 0; k < 2; k++)
    for (int l = 0; l < nets[k].nlayer; l++) {
      const DyCnnLayer *L = &nets[k].layer[l];
      if (!L->conv.k) continue;
      const DyConv *c = &L->conv;
      Case t = {.c = c, .n = n, .want_dx = !(k == 0 && l == 0), .act = L->act};
      t.X = filled((size_t)n * L->in, &rng);
      t.dX = filled((size_t)n * L->in, &rng);
      t.Y = filled((size_t)n * L->out, &rng);
      t.dY = filled((size_t)n * L->out, &rng);
      t.W = filled(L->nw, &rng);
      t.Wp = filled(L->nw, &rng);
      t.WT = filled(L->nw, &rng);
      t.dW = filled(L->nw, &rng);
      t.b = filled(L->nb, &rng);
      t.db = filled(L->nb, &rng);
      t.work = filled(dy_conv_hwc_work_len(c), &rng);
      const int r = dy_conv_weight_rows(c);
      dy_conv_weight_hwc(c, t.W, t.Wp);
      dy_transpose(r, (int)(L->nw / (size_t)r), t.Wp, t.WT);
      const double macs = (double)n * (c->transposed ? (double)c->hin * c->win : (double)c->hout * c->wout) * L->nw;
      const double f = best_time(&t, 0, ms), b = best_time(&t, 1, ms);
      const double gf = 2 * macs / f * 1e-9, gb = 2 * macs * (t.want_dx ? 2 : 1) / b * 1e-9;
      char name[64];
      snprintf(name, sizeof name, "%s %dx%dx%d -> %dx%dx%d", c->transposed ? "convT" : "conv", c->cin, c->hin, c->win,
               c->cout, c->hout, c->wout);
      printf("%-8s %-28s %9.1f %5.0f%% %9.1f %5.0f%%\n", k ? "decoder" : "encoder", name, gf, 100 * gf / peak, gb,
             100 * gb / peak);
      tfwd += f;
      tbwd += b;
      flops_all += 2 * macs * (1 + (t.want_dx ? 2 : 1));
      if (k == 0 && l == 1) { /* the direct loop nest on the encoder's second layer */
        const double d = best_time(&t, 2, ms), gd = 2 * macs / d * 1e-9;
        printf("%-8s %-28s %9.1f %5.0f%%   (direct loop nest, forward; im2col + GEMM above: %.1fx faster)\n", "",
               "  same layer, direct", gd, 100 * gd / peak, d / f);
      }
      free(t.X), free(t.dX), free(t.Y), free(t.dY), free(t.W), free(t.Wp), free(t.WT), free(t.dW), free(t.b), free(t.db);
      free(t.work);
    }
  printf("all convolutions, forward + backward: %.1f ms for %d images, %.1f GFLOP/s = %.0f%% of peak\n",
         1e3 * (tfwd + tbwd), n, flops_all / (tfwd + tbwd) * 1e-9, 100 * flops_all / (tfwd + tbwd) * 1e-9 / peak);
  return 0;
}
