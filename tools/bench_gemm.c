/* Times the matrix products of a training step alone, shape by shape, against the core's FMA peak
 * and (where built with it) OpenBLAS on the same shapes.
 *
 *   bench_gemm [--B 64,256,1024] [--widths 32,64,128,256,512] [--D 2,30,500,4096] [--ms 20]
 *              [--no-blas] [--json]
 *
 * The peak is the best of many short bursts of a register-only FMA loop on 512-bit vectors (where
 * the compiler has them) and on 256-bit ones; percentages use the larger of the two. For every
 * B, width w and input features D, the layers of an encoder/decoder on n = 2B rows are timed:
 * first (D -> w), hidden (w -> w) and the decoder's last (w -> D); each through the three
 * products of the step:
 *   fwd   Y = relu(X W^T + b)                      dy_linear_forward with DY_EPI_RELU
 *   din   dX = (dY W) [H > 0], db += colsums(dX)   dy_linear_backward_input with DY_EPI_RELU
 *   dw    dW += dY^T X                             dy_linear_backward_weight
 * (the first layer has no din: the encoder's inputs need no gradient, and the decoder's first
 * layer has the latent dimension as input, a narrow shape of its own). Each figure is
 * the minimum over repetitions for about --ms milliseconds of the thread's CPU time. With
 * OpenBLAS: cblas_?gemm on the same operands, one thread, without the epilogues. */
#include "bench_common.h"
#include "nn/dy_nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DY_BENCH_OPENBLAS)
#include <cblas.h>
void openblas_set_num_threads(int);
#endif

static double now_s(void) { return 1e-6 * bench_cpu_us(); }

BENCH_PEAK_LOOP(peak256, 32)
BENCH_PEAK_LOOP(peak512, 64)

typedef struct {
  int nB, nw, nD;
  int B[16], w[16], D[16];
  double ms;
  int blas, json;
} Options;

static int parse_list(const char *s, int *v, int *n)
{
  *n = 0;
  while (*s && *n < 16) {
    char *end;
    const long x = strtol(s, &end, 10);
    if (end == s || x < 1 || x > 100000) return -1;
    v[(*n)++] = (int)x;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return -1;
  }
  return *n ? 0 : -1;
}

typedef struct {
  int n, in, out;
  dy_real *X, *W, *WT, *b, *Y, *dY, *dX, *db, *dW;
} Layer;

static int layer_alloc(Layer *L, int n, int in, int out)
{
  const size_t sx = (size_t)n * in, sy = (size_t)n * out, sw = (size_t)in * out;
  *L = (Layer){.n = n, .in = in, .out = out};
  L->X = aligned_alloc(64, sizeof(dy_real) * (sx + 16));
  L->dX = aligned_alloc(64, sizeof(dy_real) * (sx + 16));
  L->Y = aligned_alloc(64, sizeof(dy_real) * (sy + 16));
  L->dY = aligned_alloc(64, sizeof(dy_real) * (sy + 16));
  L->W = aligned_alloc(64, sizeof(dy_real) * (sw + 16));
  L->WT = aligned_alloc(64, sizeof(dy_real) * (sw + 16));
  L->dW = aligned_alloc(64, sizeof(dy_real) * (sw + 16));
  L->b = aligned_alloc(64, sizeof(dy_real) * (out + 16));
  L->db = aligned_alloc(64, sizeof(dy_real) * (in + 16));
  if (!L->X || !L->dX || !L->Y || !L->dY || !L->W || !L->WT || !L->dW || !L->b || !L->db) return -1;
  unsigned s = 12345;
#define FILL(p, m)                                                                                   \
  for (size_t k = 0; k < (m); ++k) s = s * 1103515245u + 12345u, (p)[k] = (dy_real)((s >> 8) % 2001) / 1000 - 1
  FILL(L->X, sx);
  FILL(L->dX, sx);
  FILL(L->dY, sy);
  FILL(L->W, sw);
  FILL(L->b, (size_t)out);
#undef FILL
  memset(L->dW, 0, sizeof(dy_real) * sw);
  memset(L->db, 0, sizeof(dy_real) * in);
  dy_transpose(out, in, L->W, L->WT);
  return 0;
}

static void layer_free(Layer *L)
{
  free(L->X), free(L->dX), free(L->Y), free(L->dY), free(L->W), free(L->WT), free(L->dW), free(L->b), free(L->db);
}

enum { P_FWD, P_DIN, P_DW, P_BLAS_FWD, P_BLAS_DIN, P_BLAS_DW };

static void run(const Layer *L, int what)
{
  const int n = L->n, in = L->in, out = L->out;
  switch (what) {
  case P_FWD: dy_linear_forward(n, in, out, L->X, L->W, L->WT, L->b, DY_EPI_RELU, L->Y); break;
  case P_DIN: dy_linear_backward_input(n, in, out, L->dY, L->W, L->WT, L->X, DY_EPI_RELU, L->dX, L->db); break;
  case P_DW: dy_linear_backward_weight(n, in, out, L->X, L->dY, L->dW); break;
#if defined(DY_BENCH_OPENBLAS)
#if defined(DY_REAL_DOUBLE)
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif
  case P_BLAS_FWD: GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1, L->X, in, L->W, in, 0, L->Y, out); break;
  case P_BLAS_DIN: GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1, L->dY, out, L->W, in, 0, L->dX, in); break;
  case P_BLAS_DW: GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1, L->dY, out, L->X, in, 1, L->dW, in); break;
#endif
  default: break;
  }
}

/* GFLOP/s of product `what` on L: the fastest of repetitions over about ms milliseconds. */
static double time_product(const Layer *L, int what, double ms)
{
  const double flops = 2.0 * L->n * L->in * L->out;
  run(L, what);
  double best = INFINITY, start = now_s();
  int reps = 0;
  while (reps < 3 || (now_s() - start) * 1e3 < ms) {
    const double t0 = now_s();
    run(L, what);
    const double dt = now_s() - t0;
    if (dt < best) best = dt;
    ++reps;
  }
  return flops / best * 1e-9;
}

int main(int argc, char **argv)
{
  Options o = {.nB = 3, .B = {64, 256, 1024}, .nw = 5, .w = {32, 64, 128, 256, 512}, .nD = 4, .D = {2, 30, 500, 4096},
               .ms = 20, .blas = 1};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: bench_gemm [--B 64,256,1024] [--widths 32,...,512] [--D 2,30,500,4096] [--ms 20] "
             "[--no-blas] [--json]\n");
      return 0;
    }
    if (!strcmp(a, "--no-blas")) o.blas = 0;
    else if (!strcmp(a, "--json")) o.json = 1;
    else if (!strcmp(a, "--B") && val && !parse_list(val, o.B, &o.nB)) ++i;
    else if (!strcmp(a, "--widths") && val && !parse_list(val, o.w, &o.nw)) ++i;
    else if (!strcmp(a, "--D") && val && !parse_list(val, o.D, &o.nD)) ++i;
    else if (!strcmp(a, "--ms") && val && atof(val) > 0) o.ms = atof(argv[++i]);
    else {
      fprintf(stderr, "bench_gemm: unknown or incomplete option '%s'\n", a);
      return 2;
    }
  }
#if defined(DY_BENCH_OPENBLAS)
  openblas_set_num_threads(1);
#else
  o.blas = 0;
#endif
  const double p256 = peak256(), p512 = peak512(), peak = p256 > p512 ? p256 : p512;
  if (o.json) printf("{\"precision\": \"%s\", \"peak256\": %.2f, \"peak512\": %.2f, \"shapes\": [\n", DY_REAL_NAME, p256, p512);
  else {
    printf("bench_gemm (%s precision): FMA peak per core %.1f GFLOP/s on 256-bit vectors, %.1f on 512-bit "
           "(register-only loops%s); %% of %.1f\n",
           DY_REAL_NAME, p256, p512,
#if defined(__AVX512F__)
           "",
#else
           ", the compiler without AVX-512",
#endif
           peak);
    printf("%6s %6s %6s %-8s %9s %6s%s\n", "rows", "in", "out", "product", "GFLOP/s", "%peak",
           o.blas ? "  OpenBLAS GFLOP/s  %peak" : "");
  }
  double worst = INFINITY;
  int first = 1;
  for (int ib = 0; ib < o.nB; ++ib)
    for (int iw = 0; iw < o.nw; ++iw)
      for (int iD = 0; iD < o.nD; ++iD) {
        const int n = 2 * o.B[ib], w = o.w[iw], D = o.D[iD];
        /* layers: first (D -> w), hidden (w -> w, once per width), the decoder's last (w -> D) */
        const int shapes[3][2] = {{D, w}, {w, w}, {w, D}};
        for (int s = 0; s < 3; ++s) {
          if (s == 1 && iD > 0) continue;
          Layer L;
          if (layer_alloc(&L, n, shapes[s][0], shapes[s][1])) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
          }
          const int prods[3] = {P_FWD, P_DIN, P_DW};
          const char *names[3] = {"fwd", "din", "dw"};
          for (int k = 0; k < 3; ++k) {
            if (s == 0 && prods[k] == P_DIN) continue;
            const double g = time_product(&L, prods[k], o.ms);
            const double gb = o.blas ? time_product(&L, P_BLAS_FWD + (k == 0 ? 0 : k == 1 ? 1 : 2), o.ms) : 0;
            if (g < worst && L.in >= 32 && L.out >= 32) worst = g;
            if (o.json)
              printf("%s  {\"rows\": %d, \"in\": %d, \"out\": %d, \"product\": \"%s\", \"gflops\": %.2f, "
                     "\"blas_gflops\": %.2f}",
                     first ? "" : ",\n", n, L.in, L.out, names[k], g, gb);
            else if (o.blas)
              printf("%6d %6d %6d %-8s %9.1f %5.0f%%  %15.1f  %5.0f%%\n", n, L.in, L.out, names[k], g,
                     100 * g / peak, gb, 100 * gb / peak);
            else printf("%6d %6d %6d %-8s %9.1f %5.0f%%\n", n, L.in, L.out, names[k], g, 100 * g / peak);
            first = 0;
            fflush(stdout);
          }
          layer_free(&L);
        }
      }
  if (o.json) printf("\n], \"worst_gflops_min32\": %.2f}\n", worst);
  else printf("slowest product with both sides >= 32: %.1f GFLOP/s = %.0f%% of peak\n", worst, 100 * worst / peak);
  return 0;
}
