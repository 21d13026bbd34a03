/* Loss kernels: reconstruction, sliced Wasserstein of one bin, Langevin prior moves and their
 * negative log-likelihood (see dy_nn.h). */
#include "nn/dy_nn.h"

#include <math.h>
#include <string.h>

double dy_sqerr_loss(int n, int w, const dy_real *Yhat, const dy_real *Y, double scale, dy_real *dYhat)
{
  const size_t m = (size_t)n * w;
  const dy_real s2 = (dy_real)(2 * scale);
  double sum = 0;
  size_t k = 0;
  /* eight elements at a time, squares summed per lane in double (independent chains) */
  double lanes[8] = {0};
  for (; k + 8 <= m; k += 8)
    for (int j = 0; j < 8; j++) {
      const dy_real e = Yhat[k + j] - Y[k + j];
      lanes[j] += (double)(e * e);
      if (dYhat) dYhat[k + j] += s2 * e;
    }
  for (int j = 0; j < 8; j++) sum += lanes[j];
  for (; k < m; k++) {
    const dy_real e = Yhat[k] - Y[k];
    sum += (double)(e * e);
    if (dYhat) dYhat[k] += s2 * e;
  }
  return sum;
}

/* --- sliced Wasserstein ----------------------------------------------------------------------------
 * Values are mapped to unsigned integers with the same order (flip all bits of negatives, the sign
 * bit of the others) and sorted as integers. */
#if defined(DY_REAL_DOUBLE)
typedef uint64_t dy_key;
#define DY_KEY_SIGN (UINT64_C(1) << 63)
#else
typedef uint32_t dy_key;
#define DY_KEY_SIGN (UINT32_C(1) << 31)
#endif

/* The projections are handled DY_SW_HALF at a time (a group) in a block of rows of DY_SW_GROUP keys:
 * row n holds the keys of a_n for the group's projections, then those of b_n, so a and b of a
 * projection sit in the same row, half a row apart (50 + 50 projections fill 13 blocks). A bitonic
 * network sorts every lane of the block at once with compare-exchanges of whole rows (no shuffles);
 * its stages go through memory a few at a time, the last three of every merge on eight rows in
 * registers. For the gradient the keys of a carry the row's slot in their low bits (the permutation
 * is what the gradient needs): after the sort, the b of every rank is sent to the slot of the a of
 * that rank, and one pass by row gives the loss and the gradient. The rare positions whose packed key
 * orders them differently from their true (value, row) are put right by a tie pass. */
#define DY_SW_GROUP 8
#define DY_SW_HALF (DY_SW_GROUP / 2)
typedef dy_key dy_kvec __attribute__((vector_size(DY_SW_GROUP * sizeof(dy_key))));   /* one row of keys */
typedef dy_real dy_rrow __attribute__((vector_size(DY_SW_GROUP * sizeof(dy_real)))); /* one row of values */

/* The sort works on 256-bit vectors, DY_SW_NKV per row (rows of doubles are wider than a register). */
typedef dy_key dy_svec __attribute__((vector_size(32)));
#define DY_SW_NKV ((int)(sizeof(dy_kvec) / sizeof(dy_svec)))

#if defined(__AVX__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && !defined(DY_REAL_DOUBLE)
static inline __attribute__((always_inline)) void dy_kminmax(dy_svec *a, dy_svec *b)
{
  const __m256i x = (__m256i)*a, y = (__m256i)*b;
  *a = (dy_svec)_mm256_min_epu32(x, y);
  *b = (dy_svec)_mm256_max_epu32(x, y);
}
#elif defined(__AVX2__)
/* 64-bit keys compared signed after flipping the sign bit */
static inline __attribute__((always_inline)) void dy_kminmax(dy_svec *a, dy_svec *b)
{
  const __m256i x = (__m256i)*a, y = (__m256i)*b, s = _mm256_set1_epi64x((long long)DY_KEY_SIGN);
  const __m256i gt = _mm256_cmpgt_epi64(_mm256_xor_si256(x, s), _mm256_xor_si256(y, s));
  *a = (dy_svec)_mm256_blendv_epi8(x, y, gt);
  *b = (dy_svec)_mm256_blendv_epi8(y, x, gt);
}
#else
static inline __attribute__((always_inline)) void dy_kminmax(dy_svec *a, dy_svec *b)
{
  const dy_svec x = *a, y = *b, m = (dy_svec)(x < y);
  *a = (x & m) | (y & ~m);
  *b = (y & m) | (x & ~m);
}
#endif

/* compare-exchange of rows i < j of r (rows of DY_SW_NKV vectors) */
static inline __attribute__((always_inline)) void dy_sw_ce(dy_svec *r, int i, int j)
{
  for (int v = 0; v < DY_SW_NKV; v++) dy_kminmax(&r[i * DY_SW_NKV + v], &r[j * DY_SW_NKV + v]);
}

#define DY_CE(r, i, j) dy_sw_ce(r, i, j)

/* strides 4, 2, 1 of a merge on eight rows */
static inline __attribute__((always_inline)) void dy_sw_tail8(dy_svec *r)
{
  DY_CE(r, 0, 4), DY_CE(r, 1, 5), DY_CE(r, 2, 6), DY_CE(r, 3, 7);
  DY_CE(r, 0, 2), DY_CE(r, 1, 3), DY_CE(r, 4, 6), DY_CE(r, 5, 7);
  DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
}

/* merges of sizes 2, 4 and 8 on eight rows */
static inline __attribute__((always_inline)) void dy_sw_sort8(dy_svec *r)
{
  DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
  DY_CE(r, 0, 3), DY_CE(r, 1, 2), DY_CE(r, 4, 7), DY_CE(r, 5, 6);
  DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
  DY_CE(r, 0, 7), DY_CE(r, 1, 6), DY_CE(r, 2, 5), DY_CE(r, 3, 4);
  DY_CE(r, 0, 2), DY_CE(r, 1, 3), DY_CE(r, 4, 6), DY_CE(r, 5, 7);
  DY_CE(r, 0, 1), DY_CE(r, 2, 3), DY_CE(r, 4, 5), DY_CE(r, 6, 7);
}

/* One pass of a merge over m rows at a time (m = 2, 4 or 8, a constant) held in registers: rows
 * base + idx[a], then with `mirror` the compare-exchanges of rows a and m - 1 - a, then those at
 * index distances u = m/2 (m/4 with mirror) down to 1. Several stages cost one load and one store
 * of every row. */
static inline __attribute__((always_inline)) void dy_sw_pass(const int m, const int mirror, int P, int size,
                                                             int step, dy_svec *rows)
{
  enum { NKV = DY_SW_NKV };
  dy_svec r[8 * NKV];
  for (int b0 = 0; b0 < P; b0 += mirror ? size : m * step)
    for (int t = 0; t < step; t++) {
      int idx[8];
      for (int a = 0; a < m; a++)
        idx[a] = mirror && a >= m / 2 ? b0 + size - 1 - t - (m - 1 - a) * step : b0 + t + a * step;
      for (int a = 0; a < m; a++)
        for (int v = 0; v < NKV; v++) r[a * NKV + v] = rows[(size_t)idx[a] * NKV + v];
      if (mirror)
        for (int a = 0; a < m / 2; a++) DY_CE(r, a, m - 1 - a);
      for (int u = mirror ? m / 4 : m / 2; u >= 1; u /= 2)
        for (int a = 0; a < m; a++)
          if (!(a & u)) DY_CE(r, a, a + u);
      for (int a = 0; a < m; a++)
        for (int v = 0; v < NKV; v++) rows[(size_t)idx[a] * NKV + v] = r[a * NKV + v];
    }
}

/* Sorts every lane of rows (P, GROUP) ascending, P a power of two >= 8, whose runs of eight rows are
 * already sorted. Each merge starts by comparing mirrored rows, so every compare-exchange puts the
 * minimum first; its stages of strides >= 8 go through memory up to three at a time, the last three
 * in registers. */
static int dy_sw_merge_block(int P, dy_svec *rows)
{
  for (int size = 16; size <= P; size *= 2) {
    /* the mirror stage with the next strides down to 8: m rows spaced size / m */
    int stride; /* largest stride left after the pass */
    if (size == 16) dy_sw_pass(2, 1, P, size, 8, rows), stride = 4;
    else if (size == 32) dy_sw_pass(4, 1, P, size, 8, rows), stride = 4;
    else if (size == 64) dy_sw_pass(8, 1, P, size, 8, rows), stride = 4; /* constant offsets */
    else dy_sw_pass(8, 1, P, size, size / 8, rows), stride = size / 16;
    for (; stride >= 8;) {
      if (stride >= 32) dy_sw_pass(8, 0, P, size, stride / 4, rows), stride /= 8;
      else if (stride >= 16) dy_sw_pass(4, 0, P, size, stride / 2, rows), stride /= 4;
      else dy_sw_pass(2, 0, P, size, stride, rows), stride /= 2;
    }
    if (size == P) break; /* the last merge's registers pass is the caller's */
    for (size_t k = 0; k < (size_t)P * DY_SW_NKV; k += 8 * DY_SW_NKV) {
      dy_svec r[8 * DY_SW_NKV];
      for (int a = 0; a < 8 * DY_SW_NKV; a++) r[a] = rows[k + a];
      dy_sw_tail8(r);
      for (int a = 0; a < 8 * DY_SW_NKV; a++) rows[k + a] = r[a];
    }
  }
  return P >= 16;
}

/* Rows c..c+7 of a block from dy_sw_merge_block into r, in their final order (tail: its return). */
static inline __attribute__((always_inline)) void dy_sw_final8(const dy_kvec *rows, int c, int tail, dy_kvec *r)
{
#if defined(DY_REAL_DOUBLE) /* rows of two vectors */
  dy_svec s[8 * DY_SW_NKV];
  memcpy(s, rows + c, sizeof s);
  if (tail) dy_sw_tail8(s);
  memcpy(r, s, sizeof s);
#else
  for (int a = 0; a < 8; a++) r[a] = rows[c + a];
  if (tail) dy_sw_tail8(r);
#endif
}

/* Workspace layout of dy_sw_loss for B pairs (Bp: rounded up to 4), L projections in ng groups,
 * latent dimension d. With the gradient, the rows of a group's a live in slots: first the first two
 * rows of each set of equal rows of dz (pairs drawn twice), at slots 2 c and 2 c + 1, so that their
 * keys differ only in the lowest bit and need no tie check, then the other rows in row order; slots
 * B..Bp-1 hold zeros. */
typedef struct {
  dy_kvec *keys; /* (P, GROUP) one group's keys */
  dy_rrow *xz;   /* (B, d) rows {dz x4, dzp x4} */
  dy_rrow *trow; /* (ng, d) the groups' directions by component, {theta x2}, zero past L */
  dy_real *av;   /* (ng, Bp, HALF) a by group and slot, then a - (the b of the same rank) */
  int *slot;     /* (B) slot of each row */
  int *rowof;    /* (Bp) row of each slot, -1 past B */
  int *table;    /* (T) hash table of rows of dz: first row of a set of equal rows + 1, or 0 */
  int *ties;     /* (B HALF) sorted positions k HALF + lane whose true a is below a value before it */
} DySwWork;

/* One vector of values, 4 of them, and sums in double (see also the prior below). */
typedef dy_real dy_rvec __attribute__((vector_size(32)));
#define DY_SW_VL ((int)(32 / sizeof(dy_real)))
typedef double dy_dvec __attribute__((vector_size(32)));
typedef dy_real dy_hvec __attribute__((vector_size(4 * sizeof(dy_real)))); /* 4 lanes */
#define DY_SW_NH (DY_SW_VL / 4) /* 4-lane parts of a vector: rows of av per vector */

static int dy_pow2_at_least(int n)
{
  int p = 8;
  while (p < n) p *= 2;
  return p;
}

static size_t dy_sw_layout(int B, int L, int d, char *base, DySwWork *w)
{
#define DY_SW_SEG(field, bytes)                                                                                  \
  do {                                                                                                         \
    if (w) w->field = (void *)(base + off);                                                                    \
    off += ((size_t)(bytes) + 63) & ~(size_t)63;                                                               \
  } while (0)
  const size_t P = (size_t)dy_pow2_at_least(B), ng = (size_t)(L + DY_SW_HALF - 1) / DY_SW_HALF;
  const size_t Bp = (size_t)(B + 3) / 4 * 4;
  size_t off = 0;
  DY_SW_SEG(keys, P * sizeof(dy_kvec));
  DY_SW_SEG(xz, (size_t)B * d * sizeof(dy_rrow));
  DY_SW_SEG(trow, ng * d * sizeof(dy_rrow));
  DY_SW_SEG(av, ng * Bp * DY_SW_HALF * sizeof(dy_real));
  DY_SW_SEG(slot, (size_t)B * sizeof(int));
  DY_SW_SEG(rowof, Bp * sizeof(int));
  DY_SW_SEG(table, (size_t)dy_pow2_at_least(4 * B) * sizeof(int));
  DY_SW_SEG(ties, (size_t)B * DY_SW_HALF * sizeof(int));
#undef DY_SW_SEG
  return off;
}

size_t dy_sw_work_bytes(int B, int L, int d) { return dy_sw_layout(B, L, d, NULL, NULL); }

/* keys of a row of values (by pointer: rows of doubles are wider than the vector registers) */
static inline void dy_keys_of(const dy_rrow *x, dy_kvec *k)
{
  const dy_kvec u = (dy_kvec)*x, neg = u >> (8 * sizeof(dy_key) - 1); /* 1 for negatives */
  *k = u ^ (-neg | DY_KEY_SIGN);
}

/* The keys of a and b of the group with directions trow (d) (rows 0..B-1, then all ones up to P)
 * sorted in runs of eight rows; with av non-NULL also a into av (the group's (Bp, 4)) at the row's
 * slot. imask: the low key bits that hold the slot (0: none). */
static inline __attribute__((always_inline)) void dy_sw_keys(int B, int P, int d, dy_key imask, const dy_rrow *trow,
                                                             const DySwWork *w, dy_real *av)
{
  const dy_kvec hmask = {imask, imask, imask, imask}; /* row bits of the keys of a */
  for (int c0 = 0; c0 < P; c0 += 8) {
    dy_kvec r[8];
    for (int i = 0; i < 8; i++) {
      const int n = c0 + i;
      if (n >= B) {
        r[i] = ~(dy_kvec){0};
        continue;
      }
      const dy_rrow *x = w->xz + (size_t)n * d;
      dy_rrow p = trow[0] * x[0];
      for (int c = 1; c < d; c++) p += trow[c] * x[c];
      const int sl = av ? w->slot[n] : 0;
      if (av) memcpy(av + (size_t)sl * DY_SW_HALF, &p, DY_SW_HALF * sizeof(dy_real));
      dy_keys_of(&p, &r[i]);
      r[i] = (r[i] & ~hmask) | (hmask & (dy_key)sl);
    }
#if defined(DY_REAL_DOUBLE) /* rows of two vectors */
    dy_svec sr[8 * DY_SW_NKV];
    memcpy(sr, r, sizeof sr);
    dy_sw_sort8(sr);
    memcpy(w->keys + c0, sr, sizeof sr);
#else
    dy_sw_sort8(r);
    for (int i = 0; i < 8; i++) w->keys[c0 + i] = r[i];
#endif
  }
}

/* Keys of a for the tie checks, and their signed form (slots are small): in single precision the
 * whole row in one register (the lanes of b are masked off), in double its first half. */
#if defined(DY_REAL_DOUBLE)
typedef dy_key dy_fkvec __attribute__((vector_size(DY_SW_HALF * sizeof(dy_key))));
#else
typedef dy_kvec dy_fkvec;
#endif
typedef __typeof__((dy_fkvec){0} < (dy_fkvec){0}) dy_sfkvec;

/* The values of row r of sorted keys: a (first half) and b. */
static inline void dy_sw_row_values(const dy_kvec *r, dy_hvec *a, dy_hvec *b)
{
#if defined(DY_REAL_DOUBLE) /* by halves: rows of doubles are wider than the vector registers */
  for (int h = 0; h < 2; h++) {
    dy_fkvec k;
    memcpy(&k, (const char *)r + h * sizeof k, sizeof k);
    const dy_fkvec pos = k >> (8 * sizeof(dy_key) - 1); /* 1 for keys of non-negatives */
    const dy_fkvec v = k ^ ((pos - 1) | DY_KEY_SIGN);
    memcpy(h ? b : a, &v, sizeof v);
  }
#else
  const dy_kvec pos = *r >> (8 * sizeof(dy_key) - 1), v = *r ^ ((pos - 1) | DY_KEY_SIGN);
  memcpy(a, &v, sizeof *a);
  memcpy(b, (const char *)&v + sizeof *a, sizeof *b);
#endif
}

/* whether keys for the tie checks have a bit set */
static inline int dy_sw_any(dy_fkvec x)
{
#if defined(__AVX__)
  return !_mm256_testz_si256((__m256i)x, (__m256i)x);
#else
  uint64_t q[sizeof x / 8], any = 0;
  memcpy(q, &x, sizeof q);
  for (size_t h = 0; h < sizeof q / 8; h++) any |= q[h];
  return any != 0;
#endif
}

/* For one sorted group, in place: the keys of a become the places (slot HALF + lane) in av,
 * the keys of b their values. Packed keys order values equal in their upper bits (a bucket) by slot,
 * and slots are not all in row order: so at a position whose bucket continues, unless it is the
 * second of a pair of equal rows (slots below npair) or its lane is being checked, the true value
 * and row are compared with the largest (value, row) before it, and positions below go to w->ties;
 * their number is returned. nl: the lanes in use (the others hold zeros, one bucket). */
static int dy_sw_places(int B, int nl, dy_key imask, int npair, int tail, const dy_real *av, const DySwWork *w)
{
  const dy_fkvec hmask = {imask, imask, imask, imask}, cmask = hmask & ~(dy_key)1, lane = {0, 1, 2, 3};
  const dy_fkvec pend = {(dy_key)npair, (dy_key)npair, (dy_key)npair, (dy_key)npair};
  dy_fkvec use = {0}; /* lanes of a in use */
  for (int j = 0; j < nl; j++) use[j] = ~(dy_key)0;
  dy_fkvec prev = {0}, cont = {0}; /* the keys of a at the position before, the lanes checked there */
  dy_real topv[DY_SW_HALF] = {0};  /* per lane checked: the largest (value, row) so far */
  int topr[DY_SW_HALF] = {0}, nt = 0;
  const dy_key *places = (const dy_key *)w->keys;
  for (int c = 0; c < B; c += 8) {
    dy_kvec rs[8];
    dy_sw_final8(w->keys, c, tail, rs);
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) {
      const int k = c + a;
      if (k >= B) break;
      dy_fkvec ka; /* keys of a (and in single precision b, masked off below) */
      memcpy(&ka, &rs[a], sizeof ka);
      const dy_fkvec x = ka ^ prev, was = cont, pl = (ka & hmask) * DY_SW_HALF + lane;
#if defined(DY_REAL_DOUBLE)
      dy_hvec va, vb;
      dy_sw_row_values(&rs[a], &va, &vb);
      memcpy(&w->keys[k], &pl, sizeof pl);
      memcpy((char *)&w->keys[k] + sizeof pl, &vb, sizeof vb);
#else /* one store: pl is zero in the lanes of b */
      const dy_kvec pos = rs[a] >> (8 * sizeof(dy_key) - 1), amask = {~0u, ~0u, ~0u, ~0u};
      w->keys[k] = pl | ((rs[a] ^ ((pos - 1) | DY_KEY_SIGN)) & ~amask);
#endif
      prev = ka;
      const dy_fkvec pair = (dy_fkvec)((x & cmask) == 0) & (dy_fkvec)((dy_sfkvec)(ka & hmask) < (dy_sfkvec)pend);
      cont = (dy_fkvec)((x & ~hmask) == 0) & (~pair | was) & use;
      if (!k) cont = (dy_fkvec){0};
      if (!dy_sw_any(cont)) continue;
      for (int j = 0; j < nl; j++) {
        if (!cont[j]) continue;
        if (!was[j]) { /* the position before began the checks of its bucket: the largest so far */
          const dy_key pp = places[(size_t)(k - 1) * DY_SW_GROUP + j];
          topv[j] = av[pp], topr[j] = w->rowof[pp / DY_SW_HALF];
        }
        const dy_key pk = places[(size_t)k * DY_SW_GROUP + j];
        const dy_real vk = av[pk];
        const int rk = w->rowof[pk / DY_SW_HALF];
        if (vk < topv[j] || (vk == topv[j] && rk < topr[j])) w->ties[nt++] = k * DY_SW_HALF + j;
        else topv[j] = vk, topr[j] = rk;
      }
    }
  }
  return nt;
}

/* The positions in w->ties moved back in their lanes past the larger (true value, row) before them. */
static void dy_sw_ties(int nt, const DySwWork *w, const dy_real *av)
{
  enum { G = DY_SW_GROUP, H = DY_SW_HALF };
  dy_key *keys = (dy_key *)w->keys;
  for (int t = 0; t < nt; t++) {
    const int k = w->ties[t] / H, j = w->ties[t] % H;
    dy_key *K = keys + j; /* places of lane j by position, stride G */
    const dy_key x = K[(size_t)k * G];
    const dy_real vx = av[x];
    const int rx = w->rowof[x / H];
    int m = k;
    for (; m > 0; m--) {
      const dy_key y = K[(size_t)(m - 1) * G];
      if (!(av[y] > vx || (av[y] == vx && w->rowof[y / H] > rx))) break;
      K[(size_t)m * G] = y;
    }
    K[(size_t)m * G] = x;
  }
}

/* The b of rank k taken from the a of rank k in av (the group's (Bp, 4)), from the places and values
 * of dy_sw_places: av holds the errors after. */
static void dy_sw_scatter(int B, const DySwWork *w, dy_real *av)
{
  const char *rows = (const char *)w->keys;
  for (size_t k = 0; k < (size_t)B; k++)
    for (int j = 0; j < DY_SW_HALF; j++) {
      dy_key p;
      dy_real b;
      memcpy(&p, rows + k * sizeof(dy_kvec) + j * sizeof(dy_key), sizeof p);
      memcpy(&b, rows + k * sizeof(dy_kvec) + (DY_SW_HALF + j) * sizeof(dy_key), sizeof b);
      av[p] -= b;
    }
}

/* For one group sorted with exact keys: the squared errors of a and b of equal rank, summed per lane. */
static void dy_sw_sorted_errors(int B, int tail, const DySwWork *w, dy_dvec *sum)
{
  dy_dvec s = *sum;
  for (int c = 0; c < B; c += 8) {
    dy_kvec rs[8];
    dy_sw_final8(w->keys, c, tail, rs);
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) {
      if (c + a >= B) break;
      dy_hvec va, vb;
      dy_sw_row_values(&rs[a], &va, &vb);
      const dy_hvec e = va - vb;
      s += __builtin_convertvector(e * e, dy_dvec);
    }
  }
  *sum = s;
}

/* For the NH rows r of a vector of av: s[2 r + i] = the sum of the four lanes of row r in acc_i. */
static inline void dy_sw_row_sums(dy_rvec acc0, dy_rvec acc1, dy_real s[2 * DY_SW_NH])
{
#if defined(__AVX__) && !defined(DY_REAL_DOUBLE)
  const __m256 h = _mm256_hadd_ps((__m256)acc0, (__m256)acc1), h2 = _mm256_hadd_ps(h, h);
  _mm_storel_pi((__m64 *)s, _mm256_castps256_ps128(h2));
  _mm_storel_pi((__m64 *)(s + 2), _mm256_extractf128_ps(h2, 1));
#elif defined(__AVX__)
  const __m256d h = _mm256_hadd_pd((__m256d)acc0, (__m256d)acc1);
  _mm_storeu_pd(s, _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1)));
#else
  for (int r = 0; r < DY_SW_NH; r++) {
    s[2 * r] = s[2 * r + 1] = 0;
    for (int j = 0; j < 4; j++) s[2 * r] += acc0[4 * r + j], s[2 * r + 1] += acc1[4 * r + j];
  }
#endif
}

/* By slot, errors e = a - (b of the same rank): their squares summed per lane into sum, and
 * gscale e theta added to gdz (B, d), two components at a time. Two vectors of rows at once, for
 * independent sums. */
static void dy_sw_backward(int B, int d, int ng, dy_real gscale, const DySwWork *w, dy_real *gdz, dy_dvec *sum)
{
  enum { NH = DY_SW_NH, U = 2 };
  const size_t gstride = (size_t)(B + 3) / 4 * 4 * DY_SW_HALF;
  dy_dvec s = *sum;
  for (int n = 0; n < B; n += U * NH)
    for (int c0 = 0; c0 < d; c0 += 2) {
      const int c1 = c0 + 1 < d ? c0 + 1 : c0; /* a second component, or the first again */
      dy_rvec e2[U] = {{0}}, acc0[U] = {{0}}, acc1[U] = {{0}};
      for (int g = 0; g < ng; g++) {
        dy_rvec t0, t1;
        memcpy(&t0, w->trow + (size_t)g * d + c0, sizeof t0);
        memcpy(&t1, w->trow + (size_t)g * d + c1, sizeof t1);
        for (int u = 0; u < U; u++) {
          const size_t o = g * gstride + (size_t)(n + u * NH) * DY_SW_HALF;
          dy_rvec e;
          memcpy(&e, w->av + o, sizeof e);
          e2[u] += e * e;
          acc0[u] += e * t0;
          acc1[u] += e * t1;
        }
      }
      for (int u = 0; u < U; u++) {
        if (!c0)
          for (int h = 0; h < NH; h++) {
            dy_hvec part;
            memcpy(&part, (const dy_real *)&e2[u] + 4 * h, sizeof part);
            s += __builtin_convertvector(part, dy_dvec);
          }
        dy_real rs[2 * NH];
        dy_sw_row_sums(acc0[u], acc1[u], rs);
        for (int r = 0; r < NH && n + u * NH + r < B; r++) {
          const size_t o = (size_t)w->rowof[n + u * NH + r] * d;
          gdz[o + c0] += gscale * rs[2 * r];
          if (c1 != c0) gdz[o + c1] += gscale * rs[2 * r + 1];
        }
      }
    }
  *sum = s;
}

/* The slots of the rows of dz (B, d) (see DySwWork); equal rows found by hashing their bits. Returns
 * the number of slots of pairs of equal rows. */
static int dy_sw_slots(int B, int d, const dy_real *dz, const DySwWork *w)
{
  const int T = dy_pow2_at_least(4 * B);
  int *first = w->ties, *second = w->ties + B; /* per row: the first of its equal rows; the second */
  memset(w->table, 0, (size_t)T * sizeof(int));
  for (int n = 0; n < B; n++) {
    const dy_real *x = dz + (size_t)n * d;
    uint64_t h = 0;
    for (int c = 0; c < d; c++) {
      dy_key u;
      memcpy(&u, x + c, sizeof u);
      h = (h ^ u) * UINT64_C(0x9e3779b97f4a7c15);
    }
    int i = (int)(h >> 32) & (T - 1), same = 0;
    for (; w->table[i]; i = (i + 1) & (T - 1)) {
      const dy_real *y = dz + (size_t)(w->table[i] - 1) * d;
      same = 1;
      for (int c = 0; c < d; c++) same &= !memcmp(x + c, y + c, sizeof *x);
      if (same) break;
    }
    if (!same) w->table[i] = n + 1;
    first[n] = w->table[i] - 1, second[n] = -1;
    if (same && second[first[n]] < 0) second[first[n]] = n;
    w->slot[n] = -1;
  }
  int s = 0;
  for (int n = 0; n < B; n++)
    if (first[n] == n && second[n] >= 0) w->slot[n] = s, w->slot[second[n]] = s + 1, s += 2;
  const int npair = s;
  for (int n = 0; n < B; n++)
    if (w->slot[n] < 0) w->slot[n] = s++;
  for (int n = 0; n < B; n++) w->rowof[w->slot[n]] = n;
  for (int k = B; k < (B + 3) / 4 * 4; k++) w->rowof[k] = -1;
  return npair;
}

double dy_sw_loss(int L, int B, int d, const dy_real *theta, const dy_real *dz, const dy_real *dzp, double scale,
                  dy_real *gdz, void *work)
{
  enum { H = DY_SW_HALF };
  DySwWork w;
  dy_sw_layout(B, L, d, work, &w);
  const int P = dy_pow2_at_least(B), ng = (L + H - 1) / H;
  const size_t Bp = (size_t)(B + 3) / 4 * 4;
  dy_key imask = 0;
  int npair = 0;
  if (gdz) {
    while ((int)imask < B - 1) imask = 2 * imask + 1;
    npair = dy_sw_slots(B, d, dz, &w);
  }
  /* directions by group and component; lanes past the last projection get zero directions, so zero
   * a, b, error and gradient */
  for (int g = 0; g < ng; g++)
    for (int c = 0; c < d; c++)
      for (int j = 0; j < 2 * H; j++) {
        const int l = g * H + j % H;
        w.trow[(size_t)g * d + c][j] = l < L ? theta[(size_t)l * d + c] : 0;
      }
  for (int n = 0; n < B; n++)
    for (int c = 0; c < d; c++) {
      const dy_real x = dz[(size_t)n * d + c], y = dzp[(size_t)n * d + c];
      w.xz[(size_t)n * d + c] = (dy_rrow){x, x, x, x, y, y, y, y};
    }
  dy_dvec sumv = {0}; /* per-lane sums of squared errors */
  for (int g = 0; g < ng; g++) {
    const dy_rrow *trow = w.trow + (size_t)g * d;
    dy_real *av = gdz ? w.av + g * Bp * H : NULL;
    if (d == 2) dy_sw_keys(B, P, 2, imask, trow, &w, av); /* the common case, unrolled */
    else dy_sw_keys(B, P, d, imask, trow, &w, av);
    const int tail = dy_sw_merge_block(P, (dy_svec *)w.keys);
    if (!gdz) {
      dy_sw_sorted_errors(B, tail, &w, &sumv);
      continue;
    }
    for (size_t k = (size_t)B * H; k < Bp * H; k++) av[k] = 0; /* slots that pad the last vectors */
    const int nt = dy_sw_places(B, L - g * H < H ? L - g * H : H, imask, npair, tail, av, &w);
    dy_sw_ties(nt, &w, av);
    dy_sw_scatter(B, &w, av);
  }
  if (gdz) dy_sw_backward(B, d, ng, (dy_real)(2 * scale / ((double)L * B)), &w, gdz, &sumv);
  double sum = 0;
  for (int j = 0; j < 4; j++) sum += sumv[j];
  return sum / ((double)L * B);
}

/* The prior's inputs at elements k..k+VL-1: v[0] g, v[1] M, v[2] f + J, v[3] x (eps or dz). */
static inline void dy_prior_load(size_t k, const dy_real *f, const dy_real *g, const dy_real *M, const dy_real *J,
                                 const dy_real *x, dy_rvec v[4])
{
  dy_rvec fv, jv;
  memcpy(&v[0], g + k, sizeof v[0]);
  memcpy(&v[1], M + k, sizeof v[1]);
  memcpy(&fv, f + k, sizeof fv);
  memcpy(&jv, J + k, sizeof jv);
  memcpy(&v[3], x + k, sizeof v[3]);
  v[2] = fv + jv;
}

void dy_prior_sample(int B, int d, int learned, const dy_real *f, const dy_real *g, const dy_real *M, const dy_real *J,
                     const dy_real *eps, dy_real *dzp)
{
  const size_t m = (size_t)B * d;
  const dy_real sqrt2 = (dy_real)M_SQRT2;
  if (!learned) {
    for (size_t k = 0; k < m; k++) dzp[k] = f[k] + sqrt2 * eps[k];
    return;
  }
  size_t k = 0;
  for (; k + DY_SW_VL <= m; k += DY_SW_VL) {
    dy_rvec v[4], sM;
    dy_prior_load(k, f, g, M, J, eps, v);
#if defined(DY_REAL_DOUBLE)
    for (int j = 0; j < DY_SW_VL; j++) sM[j] = sqrt(v[1][j]);
#else
    for (int j = 0; j < DY_SW_VL; j++) sM[j] = sqrtf(v[1][j]);
#endif
    const dy_rvec out = v[1] * v[2] + sqrt2 * sM * v[3];
    memcpy(dzp + k, &out, sizeof out);
  }
  for (; k < m; k++) {
#if defined(DY_REAL_DOUBLE)
    const dy_real sM = sqrt(M[k]);
#else
    const dy_real sM = sqrtf(M[k]);
#endif
    dzp[k] = M[k] * (f[k] + J[k]) + sqrt2 * sM * eps[k];
  }
}

double dy_prior_nll(int B, int d, const dy_real *dz, const dy_real *f, const dy_real *g, const dy_real *M,
                    const dy_real *J, double scale, dy_real *df, dy_real *dg, dy_real *dJ)
{
  /* Per element with s = f + J, r = dz - M s: T = (g + r^2 / (2M)) / 2, so
   * dT/ds = -r/2 and dT/dg = (1 - r s - r^2 / (2M)) / 2. */
  const size_t m = (size_t)B * d;
  const dy_real sc = (dy_real)scale;
  double sum = 0;
  size_t k = 0;
  dy_dvec sv[DY_SW_NH] = {{0}}; /* per-lane sums of the terms */
  for (; k + DY_SW_VL <= m; k += DY_SW_VL) {
    dy_rvec v[4];
    dy_prior_load(k, f, g, M, J, dz, v);
    const dy_rvec M = v[1], iM = 1 / M, s = v[2];
    const dy_rvec r = v[3] - M * s, q = (dy_real)0.5 * r * r * iM, t = (dy_real)0.5 * (v[0] + q);
    for (int h = 0; h < DY_SW_NH; h++) {
      dy_hvec part;
      memcpy(&part, (const dy_real *)&t + 4 * h, sizeof part);
      sv[h] += __builtin_convertvector(part, dy_dvec);
    }
    if (df) {
      const dy_rvec gs = -(dy_real)0.5 * sc * r, gg = (dy_real)0.5 * sc * (1 - r * s - q);
      dy_rvec x;
      memcpy(&x, df + k, sizeof x), x += gs, memcpy(df + k, &x, sizeof x);
      memcpy(&x, dJ + k, sizeof x), x += gs, memcpy(dJ + k, &x, sizeof x);
      memcpy(&x, dg + k, sizeof x), x += gg, memcpy(dg + k, &x, sizeof x);
    }
  }
  for (int h = 0; h < DY_SW_NH; h++)
    for (int j = 0; j < 4; j++) sum += sv[h][j];
  for (; k < m; k++) {
    const dy_real iM = 1 / M[k];
    const dy_real s = f[k] + J[k], r = dz[k] - M[k] * s, q = (dy_real)0.5 * r * r * iM;
    sum += (double)((dy_real)0.5 * (g[k] + q));
    if (df) {
      const dy_real gs = -(dy_real)0.5 * sc * r;
      df[k] += gs;
      dJ[k] += gs;
      dg[k] += (dy_real)0.5 * sc * (1 - r * s - q);
    }
  }
  return sum;
}
