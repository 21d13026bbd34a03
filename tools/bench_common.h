/* What the step benchmarks (bench_step, bench_sync, bench_gemm) share: the clocks, the FMA peak,
 * sorting times, the default model of SPEC section 7 and the drawing of one batch's inputs. */
#pragma once
#include "nn/dy_model.h"
#include "base/dy_rng.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NFRAMES 4096 /* pool of frames that pairs are drawn from */

/* One batch's inputs. */
typedef struct {
  dy_real *x0, *x1; /* (B, D) */
  dy_real *theta;   /* (L, d) */
  dy_real *eps;     /* (B, d) */
} BenchInputs;

static inline double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* CPU time of this thread in microseconds: bench_step and bench_gemm time by it (as
 * tools/bench_torch.py times PyTorch's), so that the periods in which a shared, oversubscribed
 * machine runs others do not count; their cache traffic still does, hence minima and medians. */
static inline double bench_cpu_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* name(): the FMA peak of one core in GFLOP/s from a register-resident loop of 12 independent
 * chains of VB-byte vectors (32 and 64: the larger is the peak; without AVX-512 the compiler
 * splits the 64-byte ones). Best of many short bursts. */
#define BENCH_PEAK_LOOP(name, VB)                                                                        \
  static double name(void)                                                                           \
  {                                                                                                  \
    typedef dy_real vreal __attribute__((vector_size(VB)));                                          \
    enum { NACC = 12, LANES = VB / sizeof(dy_real) };                                                \
    vreal acc[NACC], a, b;                                                                           \
    for (int k = 0; k < LANES; ++k) a[k] = (dy_real)0.999999, b[k] = (dy_real)1e-7;                  \
    for (int i = 0; i < NACC; ++i) acc[i] = b * (dy_real)i;                                          \
    const long iters = 100000;                                                                       \
    double best = 0;                                                                                 \
    for (int rep = 0; rep < 200; ++rep) {                                                            \
      const double t0 = bench_cpu_us();                                                                    \
      for (long it = 0; it < iters; ++it) {                                                          \
        _Pragma("GCC unroll 16") for (int i = 0; i < NACC; ++i) acc[i] = acc[i] * a + b;             \
      }                                                                                              \
      const double g = 2.0 * NACC * LANES * (double)iters / ((bench_cpu_us() - t0) * 1e3);                 \
      if (g > best) best = g;                                                                        \
    }                                                                                                \
    volatile dy_real sink = 0;                                                                       \
    for (int i = 0; i < NACC; ++i) sink += acc[i][0];                                                \
    (void)sink;                                                                                      \
    return best;                                                                                     \
  }
static inline int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The networks of SPEC section 7's defaults (hidden widths 32: three layers for the encoder and
 * decoder, two for the force and log-diffusion nets) for D input features and latent dimension d. */
static inline DyModelShape bench_default_shape(int D, int d)
{
  DyModelShape shape = {.D = D, .Dy = D, .d = d, .nhidden = {3, 3, 2, 2}};
  for (int k = 0; k < DY_NNETS; ++k)
    for (int l = 0; l < shape.nhidden[k]; ++l) shape.hidden[k][l] = 32;
  return shape;
}

/* Allocates a batch's arrays; 0 on success. */
static inline int bench_inputs_alloc(BenchInputs *in, int B, int L, int D, int d)
{
  in->x0 = malloc(sizeof(dy_real) * B * D);
  in->x1 = malloc(sizeof(dy_real) * B * D);
  in->theta = malloc(sizeof(dy_real) * L * d);
  in->eps = malloc(sizeof(dy_real) * B * d);
  return in->x0 && in->x1 && in->theta && in->eps ? 0 : -1;
}

static inline void bench_inputs_free(BenchInputs *in)
{
  free(in->x0);
  free(in->x1);
  free(in->theta);
  free(in->eps);
}

/* As the trainer draws a step's inputs: B pairs of consecutive frames from the pool frames
 * (BENCH_NFRAMES, D), L unit vectors and B x d normals. */
static inline void bench_draw_inputs(DyRng *rng, int B, int L, int D, int d, const dy_real *frames, BenchInputs *in)
{
  double v[DY_MAX_LAYERS];
  for (int n = 0; n < B; ++n) {
    const uint64_t t = dy_rng_below(rng, BENCH_NFRAMES - 1);
    memcpy(&in->x0[(size_t)n * D], &frames[t * D], sizeof(dy_real) * D);
    memcpy(&in->x1[(size_t)n * D], &frames[(t + 1) * D], sizeof(dy_real) * D);
  }
  for (int l = 0; l < L; ++l) {
    dy_rng_unit_vector(rng, d, v);
    for (int i = 0; i < d; ++i) in->theta[l * d + i] = (dy_real)v[i];
  }
  for (int k = 0; k < B * d; ++k) in->eps[k] = (dy_real)dy_rng_normal(rng);
}
