/* Regular-space clustering: serial scan, exact distributed merge, Voronoi assignment. */
#include "parallel/dy_cluster.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Points per block of the assignment, which vectorises over points (two vectors of four). */
#define DY_ASSIGN_BLOCK 8
#define DY_CLUSTER_MIN_PROPOSALS 16

/* Four doubles (GCC vector extensions: the compiler picks the instructions, and a machine without
 * 256-bit vectors still gets correct code). */
typedef double dy_cv __attribute__((vector_size(32)));
typedef double dy_ucv __attribute__((vector_size(32), aligned(sizeof(double)), may_alias));
typedef int64_t dy_cvi __attribute__((vector_size(32)));
#define DY_CV_LOAD(p) (*(const dy_ucv *)(p))
#define DY_CV_SPLAT(x) ((x) - (dy_cv){0}) /* x - 0 is exactly x: a broadcast */

/* Bit j set for the lanes of m (a comparison result) that are true. */
static inline unsigned dy_cv_bits(dy_cvi m)
{
  unsigned b = 0;
  for (int j = 0; j < 4; j++) b |= (unsigned)(m[j] & 1) << j;
  return b;
}

/* A set of centres stored by coordinate so that distance loops vectorise over centres; each
 * coordinate's row is padded to a multiple of 8 centres, so blocks of 8 can be read whole. */
typedef struct {
  int d;      /* latent dimension */
  int cap;    /* capacity in centres */
  int stride; /* cap rounded up to a multiple of 8: the row length of x */
  int n;      /* centres held */
  double *x;  /* (d, stride): coordinate i of centre k is x[i * stride + k] */
} DyCentreSet;

static PetscErrorCode dy_centre_set_create(int d, int cap, DyCentreSet *s)
{
  PetscFunctionBegin;
  s->d = d;
  s->cap = cap;
  s->stride = (DY_MAX(cap, 1) + 7) / 8 * 8;
  s->n = 0;
  /* zeroed: the padding is read (then masked) */
  PetscCall(PetscCalloc1((size_t)d * s->stride, &s->x));
  PetscFunctionReturn(0);
}

static void dy_centre_set_push(DyCentreSet *s, const double *x)
{
  for (int i = 0; i < s->d; i++) s->x[(size_t)i * s->stride + s->n] = x[i];
  s->n++;
}

/* The first of the centres [k0, k1) of s within sqrt(dmin2) of x, or -1: squared distances of
 * eight centres at a time in registers, stopping at the first block with a hit. Every decision
 * of the regular-space clustering goes through this one out-of-line function, so the same
 * coordinates always give bitwise the same distances and the same answer. */
static __attribute__((noinline)) int dy_cluster_first_within(const DyCentreSet *s, const double *x, int k0, int k1,
                                                             double dmin2)
{
  const dy_cv lim = DY_CV_SPLAT(dmin2);
  for (int k = k0 & ~7; k < k1; k += 8) {
    dy_cv a = {0}, b = {0};
    for (int i = 0; i < s->d; i++) {
      const double *ci = s->x + (size_t)i * s->stride + k;
      const dy_cv xi = DY_CV_SPLAT(x[i]), ta = xi - DY_CV_LOAD(ci), tb = xi - DY_CV_LOAD(ci + 4);
      a += ta * ta;
      b += tb * tb;
    }
    unsigned hit = dy_cv_bits(a <= lim) | dy_cv_bits(b <= lim) << 4;
    /* only the lanes of [k0, k1) */
    const int lo = DY_MAX(k0 - k, 0), hi = DY_MIN(k1 - k, 8);
    hit &= ((1u << hi) - 1) & ~((1u << lo) - 1);
    if (hit) return k + __builtin_ctz(hit);
  }
  return -1;
}

static void dy_cluster_load_point(int d, const dy_real *z, int64_t p, double *x)
{
  for (int i = 0; i < d; i++) x[i] = (double)z[p * d + i];
}

/* The serial algorithm over the points idx[0..m) (or 0..m-1 when idx is NULL), appending new
 * centres to s. When a further centre is needed while s already holds `limit`, the scan stops
 * there and returns that position in the list; otherwise it returns m. When `via` is not NULL,
 * via[j] is set to the centre of s that covers scanned point j (the first within d_min, or the
 * one it became). */
static int64_t dy_cluster_scan(int d, const dy_real *z, const int64_t *idx, int64_t m, double dmin2, int limit,
                               DyCentreSet *s, double *x, int *via)
{
  for (int64_t j = 0; j < m; j++) {
    dy_cluster_load_point(d, z, idx ? idx[j] : j, x);
    int k = dy_cluster_first_within(s, x, 0, s->n, dmin2);
    if (k < 0) {
      if (s->n >= limit) return j;
      k = s->n;
      dy_centre_set_push(s, x);
    }
    if (via) via[j] = k;
  }
  return m;
}

static void dy_centre_set_copy_out(const DyCentreSet *s, double *centers)
{
  for (int k = 0; k < s->n; k++)
    for (int i = 0; i < s->d; i++) centers[(size_t)k * s->d + i] = s->x[(size_t)i * s->stride + k];
}

/* Index of the first non-finite coordinate, or -1. */
static int64_t dy_cluster_first_nonfinite(int d, int64_t n, const dy_real *z)
{
  for (int64_t p = 0; p < n * d; p++)
    if (!isfinite(z[p])) return p / d;
  return -1;
}

static PetscErrorCode dy_cluster_check_args(MPI_Comm comm, int d, int64_t n, double d_min, int max_centers)
{
  PetscFunctionBegin;
  PetscCheck(d >= 1 && n >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "clustering: bad sizes d = %d, n = %" PRId64, d, n);
  PetscCheck(d_min > 0.0 && isfinite(d_min), comm, PETSC_ERR_ARG_OUTOFRANGE, "clustering: d_min = %g must be > 0",
             d_min);
  PetscCheck(max_centers >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "clustering: max_centers = %d must be >= 1",
             max_centers);
  PetscFunctionReturn(0);
}

#define DY_CLUSTER_TOO_MANY                                                                                            \
  "regular-space clustering needs more than cluster.max_centers = %d centres at cluster.d_min = %g; raise "         \
  "cluster.d_min (fewer, larger bins) or cluster.max_centers"

PetscErrorCode dy_cluster_serial(int d, int64_t n, const dy_real *z, double d_min, int max_centers, int *K,
                                 double *centers)
{
  DyCentreSet s;
  double *x;
  int64_t stop, bad;

  PetscFunctionBegin;
  PetscCall(dy_cluster_check_args(PETSC_COMM_SELF, d, n, d_min, max_centers));
  bad = dy_cluster_first_nonfinite(d, n, z);
  PetscCheck(bad < 0, PETSC_COMM_SELF, DY_ERR_DIVERGED, "non-finite latent coordinate at point %" PRId64 " (clustering)",
             bad);
  PetscCall(dy_centre_set_create(d, max_centers, &s));
  PetscCall(PetscMalloc1(d, &x));
  stop = dy_cluster_scan(d, z, NULL, n, d_min * d_min, max_centers, &s, x, NULL);
  dy_centre_set_copy_out(&s, centers);
  *K = s.n;
  PetscCall(PetscFree(x));
  PetscCall(PetscFree(s.x));
  if (stop < n) PetscCall(dy_input_error(PETSC_COMM_SELF, DY_CLUSTER_TOO_MANY, max_centers, d_min));
  PetscFunctionReturn(0);
}

int dy_cluster_default_proposals(int max_centers, int size)
{
  const int spread = (int)((2 * (int64_t)max_centers + size - 1) / DY_MAX(size, 1));
  return DY_MIN(max_centers, DY_MAX(DY_CLUSTER_MIN_PROPOSALS, spread));
}

/* Work arrays of the distributed clustering, freed together. */
typedef struct {
  DyCentreSet kept;    /* merged centres, the result */
  DyCentreSet prop;    /* this rank's proposals of the current round */
  int64_t *idx;        /* (n_local) local points not yet covered, in their original order */
  int *via;            /* (n_local) via[j]: this round's proposal covering idx[j] locally, -1: not scanned */
  int *accepted;       /* (cap) 1 when this rank's proposal q was kept in the merge */
  int *cstart;         /* (cap + 1) proposal q's candidates are cand's [cstart[q], cstart[q + 1]) */
  DyCentreSet cand;    /* for the proposals turned down: the new centres that may cover their points */
  double *x;           /* (d) one point in double */
  double *send;        /* (cap, d) this rank's proposals, row-major */
  double *recv;        /* (P * cap, d) everybody's proposals, in rank order */
  int *nprop;          /* (P) proposals per rank this round */
  int *counts, *displs; /* (P) allgatherv layout in doubles */
} DyRegspaceWork;

static PetscErrorCode dy_regspace_work_free(DyRegspaceWork *w)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(w->kept.x));
  PetscCall(PetscFree(w->prop.x));
  PetscCall(PetscFree(w->cand.x));
  PetscCall(PetscFree5(w->idx, w->x, w->send, w->recv, w->nprop));
  PetscCall(PetscFree5(w->counts, w->displs, w->via, w->accepted, w->cstart));
  PetscFunctionReturn(0);
}

/* Merges the gathered proposals (rank order, then proposal order) into w->kept and marks which
 * of this rank's were kept; returns 1 when more than max_centers centres would be needed. Only
 * centres kept in this round need checking: a proposal is an uncovered point, so it is already
 * farther than d_min from the older ones. */
static int dy_regspace_merge(DyRegspaceWork *w, int rank, int size, int max_centers, double dmin2)
{
  const int d = w->kept.d, k_old = w->kept.n;
  int64_t q = 0;
  for (int r = 0; r < size; r++) {
    for (int j = 0; j < w->nprop[r]; j++, q++) {
      const double *x = w->recv + q * d;
      const int keep = dy_cluster_first_within(&w->kept, x, k_old, w->kept.n, dmin2) < 0;
      if (r == rank) w->accepted[j] = keep;
      if (!keep) continue;
      if (w->kept.n >= max_centers) return 1;
      dy_centre_set_push(&w->kept, x);
    }
  }
  return 0;
}

/* For every proposal of this rank turned down in the merge, the centres kept since k_old that can be
 * within d_min of a point it covers: a point within d_min of the proposal and a centre within d_min
 * of the point put the centre within 2 d_min of the proposal (a little more is allowed for
 * rounding; a spare candidate costs a distance, a missing one would change the answer). Proposal
 * q's candidates go to cand's [cstart[q], cstart[q + 1]). */
static PetscErrorCode dy_regspace_candidates(DyRegspaceWork *w, int k_old, double dmin2)
{
  const int d = w->kept.d, np = w->prop.n;
  const double r2 = 4.0 * dmin2 * 1.0001;
  int total = 0;

  PetscFunctionBegin;
  for (int pass = 0; pass < 2; pass++) { /* count, then copy */
    total = 0;
    for (int q = 0; q < np; q++) {
      w->cstart[q] = total;
      if (w->accepted[q]) continue;
      for (int k = k_old; k < w->kept.n; k++) {
        double s2 = 0;
        for (int i = 0; i < d; i++) {
          const double t = w->prop.x[(size_t)i * w->prop.stride + q] - w->kept.x[(size_t)i * w->kept.stride + k];
          s2 += t * t;
        }
        if (s2 > r2) continue;
        if (pass) {
          for (int i = 0; i < d; i++) w->x[i] = w->kept.x[(size_t)i * w->kept.stride + k];
          dy_centre_set_push(&w->cand, w->x);
        }
        total++;
      }
    }
    w->cstart[np] = total;
    if (!pass) {
      PetscCall(PetscFree(w->cand.x));
      PetscCall(dy_centre_set_create(d, total, &w->cand));
    }
  }
  PetscFunctionReturn(0);
}

/* Drops from the uncovered list the points within d_min of the centres kept since k_old. A point
 * whose own covering proposal was kept needs no distance: the scan measured it with the same
 * kernel, so the answer would be the same. One whose proposal was turned down is measured against
 * that proposal's candidates only (dy_regspace_candidates), with the same kernel: only whether
 * some centre is within d_min matters here, and no other centre can be. */
static int64_t dy_regspace_cover(DyRegspaceWork *w, const dy_real *z, int64_t m, int k_old, double dmin2)
{
  int64_t keep = 0;
  for (int64_t j = 0; j < m; j++) {
    const int q = w->via[j];
    if (q >= 0 && w->accepted[q]) continue;
    dy_cluster_load_point(w->kept.d, z, w->idx[j], w->x);
    const int near = q >= 0 ? dy_cluster_first_within(&w->cand, w->x, w->cstart[q], w->cstart[q + 1], dmin2)
                            : dy_cluster_first_within(&w->kept, w->x, k_old, w->kept.n, dmin2);
    if (near < 0) w->idx[keep++] = w->idx[j];
  }
  return keep;
}

PetscErrorCode dy_cluster_regspace_rounds(MPI_Comm comm, int d, int64_t n_local, const dy_real *z, double d_min,
                                          int max_centers, int max_proposals, int *K, double *centers, int *rounds)
{
  DyRegspaceWork w;
  int rank, size, nround = 0, overflow = 0;
  int64_t m = n_local, bad;
  const double dmin2 = d_min * d_min;
  char msg[256];

  PetscFunctionBegin;
  PetscCall(dy_cluster_check_args(comm, d, n_local, d_min, max_centers));
  bad = dy_cluster_first_nonfinite(d, n_local, z);
  snprintf(msg, sizeof msg, "non-finite latent coordinate at local point %" PRId64 " (clustering)", bad);
  PetscCall(dy_agree_error(comm, bad >= 0, DY_ERR_DIVERGED, msg));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  const int cap = max_proposals > 0 ? DY_MIN(max_proposals, max_centers)
                                    : dy_cluster_default_proposals(max_centers, size);

  memset(&w, 0, sizeof w);
  PetscCall(dy_centre_set_create(d, max_centers, &w.kept));
  PetscCall(dy_centre_set_create(d, cap, &w.prop));
  PetscCall(PetscMalloc5(DY_MAX(n_local, 1), &w.idx, d, &w.x, (size_t)cap * d, &w.send, (size_t)size * cap * d,
                         &w.recv, size, &w.nprop));
  PetscCall(PetscMalloc5(size, &w.counts, size, &w.displs, DY_MAX(n_local, 1), &w.via, cap, &w.accepted, cap + 1,
                         &w.cstart));
  for (int64_t j = 0; j < m; j++) w.idx[j] = j;

  for (;;) {
    int total = 0;
    w.prop.n = 0;
    const int64_t stop = dy_cluster_scan(d, z, w.idx, m, dmin2, cap, &w.prop, w.x, w.via);
    for (int64_t j = stop; j < m; j++) w.via[j] = -1;
    PetscCallMPI(MPI_Allgather(&w.prop.n, 1, MPI_INT, w.nprop, 1, MPI_INT, comm));
    for (int r = 0; r < size; r++) {
      w.counts[r] = w.nprop[r] * d;
      w.displs[r] = total * d;
      total += w.nprop[r];
    }
    if (total == 0) break; /* a rank with an uncovered point always proposes it */
    nround++;
    dy_centre_set_copy_out(&w.prop, w.send);
    PetscCallMPI(MPI_Allgatherv(w.send, w.prop.n * d, MPI_DOUBLE, w.recv, w.counts, w.displs, MPI_DOUBLE, comm));
    const int k_old = w.kept.n;
    overflow = dy_regspace_merge(&w, rank, size, max_centers, dmin2);
    if (overflow) break; /* every rank sees the same proposals, so all break together */
    PetscCall(dy_regspace_candidates(&w, k_old, dmin2));
    m = dy_regspace_cover(&w, z, m, k_old, dmin2);
  }
  dy_centre_set_copy_out(&w.kept, centers);
  *K = w.kept.n;
  if (rounds) *rounds = nround;
  PetscCall(dy_regspace_work_free(&w));
  if (overflow) PetscCall(dy_input_error(comm, DY_CLUSTER_TOO_MANY, max_centers, d_min));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_cluster_regspace(MPI_Comm comm, int d, int64_t n_local, const dy_real *z, double d_min,
                                   int max_centers, int *K, double *centers)
{
  PetscFunctionBegin;
  PetscCall(dy_cluster_regspace_rounds(comm, d, n_local, z, d_min, max_centers, 0, K, centers, NULL));
  PetscFunctionReturn(0);
}

/* Nearest centre of each of eight points (coordinates xb (d, 8)) into arg: the squared distances
 * of the eight to one centre at a time in two vectors; the strict comparison in centre order
 * keeps the lowest index on ties. D is the dimension when known at compile time (0: use d). */
static inline __attribute__((always_inline)) void dy_cluster_nearest8(const int D, int d, const DyCentreSet *s,
                                                                       const double *xb, int *arg)
{
  const int dd = D ? D : d;
  dy_cv best0 = DY_CV_SPLAT(INFINITY), best1 = best0;
  dy_cvi arg0 = {0}, arg1 = {0};
  for (int k = 0; k < s->n; k++) {
    dy_cv a = {0}, b = {0};
    for (int i = 0; i < dd; i++) {
      const dy_cv c = DY_CV_SPLAT(s->x[(size_t)i * s->stride + k]);
      const dy_cv ta = DY_CV_LOAD(xb + 8 * i) - c, tb = DY_CV_LOAD(xb + 8 * i + 4) - c;
      a += ta * ta;
      b += tb * tb;
    }
    const dy_cvi kv = (dy_cvi){0} + k, c0 = a < best0, c1 = b < best1;
    best0 = (dy_cv)(((dy_cvi)a & c0) | ((dy_cvi)best0 & ~c0));
    best1 = (dy_cv)(((dy_cvi)b & c1) | ((dy_cvi)best1 & ~c1));
    arg0 = (kv & c0) | (arg0 & ~c0);
    arg1 = (kv & c1) | (arg1 & ~c1);
  }
  for (int j = 0; j < 4; j++) {
    arg[j] = (int)arg0[j];
    arg[4 + j] = (int)arg1[j];
  }
}

PetscErrorCode dy_cluster_assign(int d, int64_t n, const dy_real *z, int K, const double *centers, int *bin)
{
  DyCentreSet s;
  double *xb;

  PetscFunctionBegin;
  PetscCheck(d >= 1 && n >= 0 && (K >= 1 || n == 0), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "cluster assignment: bad sizes d = %d, n = %" PRId64 ", K = %d", d, n, K);
  PetscCall(dy_centre_set_create(d, K, &s));
  PetscCall(PetscMalloc1((size_t)d * DY_ASSIGN_BLOCK, &xb));
  for (int k = 0; k < K; k++) dy_centre_set_push(&s, centers + (size_t)k * d);
  for (int64_t p0 = 0; p0 < n; p0 += DY_ASSIGN_BLOCK) {
    const int m = (int)DY_MIN((int64_t)DY_ASSIGN_BLOCK, n - p0);
    int arg[DY_ASSIGN_BLOCK];
    /* a short last block repeats its last point */
    for (int j = 0; j < DY_ASSIGN_BLOCK; j++)
      for (int i = 0; i < d; i++) xb[(size_t)i * DY_ASSIGN_BLOCK + j] = (double)z[(p0 + DY_MIN(j, m - 1)) * d + i];
    switch (d) { /* the usual latent dimensions unrolled */
    case 1: dy_cluster_nearest8(1, d, &s, xb, arg); break;
    case 2: dy_cluster_nearest8(2, d, &s, xb, arg); break;
    case 3: dy_cluster_nearest8(3, d, &s, xb, arg); break;
    default: dy_cluster_nearest8(0, d, &s, xb, arg); break;
    }
    memcpy(bin + p0, arg, (size_t)m * sizeof *arg);
  }
  PetscCall(PetscFree(xb));
  PetscCall(PetscFree(s.x));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_cluster_counts(MPI_Comm comm, int64_t n_local, const int *bin, int K, int64_t *counts)
{
  int64_t bad = -1;
  char msg[128] = "";

  PetscFunctionBegin;
  for (int k = 0; k < K; k++) counts[k] = 0;
  for (int64_t p = 0; p < n_local; p++) {
    if (bin[p] < 0 || bin[p] >= K) {
      bad = p;
      break;
    }
    counts[bin[p]]++;
  }
  if (bad >= 0) snprintf(msg, sizeof msg, "bin %d of local point %" PRId64 " is outside [0, %d)", bin[bad], bad, K);
  PetscCall(dy_agree_error(comm, bad >= 0, PETSC_ERR_ARG_OUTOFRANGE, msg));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, counts, K, MPI_INT64_T, MPI_SUM, comm));
  PetscFunctionReturn(0);
}
