/* Random numbers with explicit state (no rand()).
 *
 * Two kinds:
 *   - DyRng, a seeded sequential generator (xoshiro256**) per purpose: one stream shared by all
 *     ranks (bin choice per step), one per rank (pair draws, noise), one for initialisation. Its
 *     whole state is the struct, so a checkpoint saves and restores it by value.
 *   - dy_hash_*, a counter-based hash: a value that depends only on (seed, stream, counter), so
 *     decisions such as "is pair g a test pair" do not depend on the rank count. */
#pragma once
#include <stdint.h>

/* Purposes; each gets an independent stream from the same run seed. */
enum {
  DY_STREAM_INIT = 1,       /* weight initialisation (same on every rank) */
  DY_STREAM_SPLIT = 2,      /* train/test split (counter-based, per pair) */
  DY_STREAM_SCATTER = 3,    /* destination rank of each pair (counter-based, per pair) */
  DY_STREAM_SHARED = 4,     /* per-step choices shared by all ranks (bin, projections) */
  DY_STREAM_RANK = 1000     /* DY_STREAM_RANK + rank: per-rank draws (pairs, noise) */
};

typedef struct {
  uint64_t s[4];      /* xoshiro256** state */
  double spare;       /* second Box-Muller normal, valid when has_spare */
  int32_t has_spare;  /* 1 when spare holds an unused normal */
  int32_t pad_;       /* keeps the struct 48 bytes with no implicit padding */
} DyRng;

/* Seeds rng from (seed, stream); different streams are independent for practical purposes. */
void dy_rng_seed(DyRng *rng, uint64_t seed, uint64_t stream);
/* Next 64 random bits. */
uint64_t dy_rng_u64(DyRng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double dy_rng_uniform(DyRng *rng);
/* Uniform integer in [0, n), unbiased (n > 0). */
uint64_t dy_rng_below(DyRng *rng, uint64_t n);
/* Standard normal N(0, 1) (Box-Muller; the second value is kept in the state). */
double dy_rng_normal(DyRng *rng);
/* Fills v (length d) with a unit vector uniform on the sphere S^{d-1}. */
void dy_rng_unit_vector(DyRng *rng, int d, double *v);

/* Counter-based: 64 random bits determined by (seed, stream, counter) alone. */
uint64_t dy_hash_u64(uint64_t seed, uint64_t stream, uint64_t counter);
/* Counter-based uniform double in [0, 1). */
double dy_hash_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
