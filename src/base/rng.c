/* Random numbers: xoshiro256** seeded through splitmix64, and a counter-based mixing hash. */
#include "base/dy_rng.h"

#include <math.h>

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
  rng->spare = 0.0;
  rng->has_spare = 0;
  rng->pad_ = 0;
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

double dy_rng_normal(DyRng *rng)
{
  if (rng->has_spare) {
    rng->has_spare = 0;
    return rng->spare;
  }
  double u1, u2;
  do u1 = dy_rng_uniform(rng);
  while (u1 <= 0.0);
  u2 = dy_rng_uniform(rng);
  const double r = sqrt(-2.0 * log(u1)), a = 2.0 * M_PI * u2;
  rng->spare = r * sin(a);
  rng->has_spare = 1;
  return r * cos(a);
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
