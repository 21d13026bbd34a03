/* Random numbers: xoshiro256** seeded through splitmix64, and a counter-based mixing hash. */
#include "dy_rng.h"

#include <math.h>
#include <string.h>

static uint64_t dy_splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t dy_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void dy_rng_seed(DyRng *rng, uint64_t seed, uint64_t stream)
{
  /* Mix seed and stream first so that (seed, stream) and (seed', stream') with seed + stream equal
   * do not share a sequence. */
  uint64_t x = seed ^ dy_hash_u64(0x5eedULL, stream, 0);
  for (int i = 0; i < 4; i++) rng->s[i] = dy_splitmix64(&x);
  if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])) rng->s[0] = 1; /* all-zero is a fixed point */
  rng->reserved[0] = rng->reserved[1] = 0;
}

uint64_t dy_rng_u64(DyRng *rng)
{
  uint64_t *s = rng->s;
  const uint64_t result = dy_rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = dy_rotl(s[3], 45);
  return result;
}

double dy_rng_uniform(DyRng *rng) { return (double)(dy_rng_u64(rng) >> 11) * 0x1.0p-53; }

uint64_t dy_rng_below(DyRng *rng, uint64_t n)
{
  /* Rejection on the top of the range keeps it exactly uniform. */
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = dy_rng_u64(rng);
  while (r >= limit);
  return r % n;
}

/* Ziggurat of the half normal f(x) = exp(-x^2 / 2), x >= 0: 256 layers of equal area V. Layer 0
 * is the base (the rectangle [0, R] x [0, f(R)] and the tail beyond R, of width V / f(R) as one
 * strip); layer i >= 1 is the rectangle [0, x_i] x [f(x_i), f(x_(i+1))], with x_1 = R and
 * x_256 = 0. R and V are the values for which the top layer closes at f = 1. */
#define DY_ZIG_N 256
#define DY_ZIG_R 3.6541528853610088
#define DY_ZIG_V 4.92867323399e-3

static double dy_zig_x[DY_ZIG_N + 1], dy_zig_f[DY_ZIG_N + 1];

static void dy_zig_tables(void)
{
  double x = DY_ZIG_R;
  dy_zig_x[0] = DY_ZIG_V / exp(-0.5 * x * x);
  dy_zig_x[1] = x;
  for (int i = 1; i < DY_ZIG_N - 1; i++) {
    x = sqrt(-2.0 * log(DY_ZIG_V / x + exp(-0.5 * x * x)));
    dy_zig_x[i + 1] = x;
  }
  dy_zig_x[DY_ZIG_N] = 0.0;
  for (int i = 0; i <= DY_ZIG_N; i++) dy_zig_f[i] = exp(-0.5 * dy_zig_x[i] * dy_zig_x[i]);
}

/* x (>= 0) with the sign bit `sign` (0 or bit 63), without a branch on a random bit */
static inline double dy_with_sign(double x, uint64_t sign)
{
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  b ^= sign;
  memcpy(&x, &b, sizeof x);
  return x;
}

double dy_rng_normal(DyRng *rng)
{
  if (dy_zig_x[1] == 0.0) dy_zig_tables(); /* once per process (the ranks draw single-threaded) */
  for (;;) {
    /* bits 0-7: layer, bit 8: sign, bits 11-63: position in the layer */
    const uint64_t u = dy_rng_u64(rng);
    const int i = (int)(u & (DY_ZIG_N - 1));
    const uint64_t sign = (u >> 8 & 1) << 63;
    const double x = (double)(u >> 11) * 0x1.0p-53 * dy_zig_x[i];
    if (x < dy_zig_x[i + 1]) return dy_with_sign(x, sign); /* under the layer above: inside the curve */
    if (i == 0) {
      /* the tail beyond R, by exponential proposals */
      double a, b;
      do {
        a = -log1p(-dy_rng_uniform(rng)) / DY_ZIG_R;
        b = -log1p(-dy_rng_uniform(rng));
      } while (2.0 * b < a * a);
      return dy_with_sign(DY_ZIG_R + a, sign);
    }
    /* the wedge between the layer's rectangle and the curve */
    const double y = dy_zig_f[i] + dy_rng_uniform(rng) * (dy_zig_f[i + 1] - dy_zig_f[i]);
    if (y < exp(-0.5 * x * x)) return dy_with_sign(x, sign);
  }
}

void dy_rng_unit_vector(DyRng *rng, int d, double *v)
{
  double n2;
  do {
    n2 = 0.0;
    for (int i = 0; i < d; i++) {
      v[i] = dy_rng_normal(rng);
      n2 += v[i] * v[i];
    }
  } while (n2 < 1e-24);
  const double inv = 1.0 / sqrt(n2);
  for (int i = 0; i < d; i++) v[i] *= inv;
}

uint64_t dy_hash_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
  uint64_t x = seed * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL;
  uint64_t h = dy_splitmix64(&x);
  x = h ^ (stream * 0x9e3779b97f4a7c15ULL);
  h = dy_splitmix64(&x);
  x = h ^ counter;
  h = dy_splitmix64(&x);
  return dy_splitmix64(&h);
}

double dy_hash_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
  return (double)(dy_hash_u64(seed, stream, counter) >> 11) * 0x1.0p-53;
}
