/* Well-tempered quotas, the epoch's bin schedule and the per-rank draws of each batch. */
#include "parallel/dy_resample.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Skipped bins may hold at most this fraction of all pairs: 1 / DY_RESAMPLE_SKIP_DENOM = 20%. */
#define DY_RESAMPLE_SKIP_DENOM 5

PetscErrorCode dy_resample_quotas(MPI_Comm comm, int K, const int64_t *counts, double gamma, int batch_size,
                                  double d_min, double *quota, int *kept)
{
  int nkept = 0;
  int64_t N = 0, skipped = 0;
  double wsum = 0.0;

  PetscFunctionBegin;
  PetscCheck(K >= 0 && batch_size >= 1 && gamma >= 1.0 && isfinite(gamma), comm, PETSC_ERR_ARG_OUTOFRANGE,
             "resampling: bad arguments K = %d, batch_size = %d, gamma = %g", K, batch_size, gamma);
  for (int k = 0; k < K; k++) {
    PetscCheck(counts[k] >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "resampling: count %" PRId64 " of bin %d is negative",
               counts[k], k);
    N += counts[k];
    if (counts[k] <= batch_size) {
      skipped += counts[k];
      quota[k] = 0.0;
    } else {
      quota[k] = pow((double)counts[k], 1.0 / gamma);
      wsum += quota[k];
      nkept++;
    }
  }
  if (N == 0) PetscCall(dy_input_error(comm, "no training pairs to resample (%d latent bins, all empty)", K));
  if (skipped * DY_RESAMPLE_SKIP_DENOM > N)
    PetscCall(dy_input_error(comm,
                             "%d of %d latent bins hold no more than train.batch_size = %d pairs and are skipped, "
                             "but they hold %" PRId64 " of the %" PRId64
                             " training pairs (%.1f%%, more than 20%%): raise cluster.d_min (now %g) for fewer, "
                             "larger bins, or lower train.batch_size",
                             K - nkept, K, batch_size, skipped, N, 100.0 * (double)skipped / (double)N, d_min));
  for (int k = 0; k < K; k++) quota[k] = (double)N * quota[k] / wsum;
  if (kept) *kept = nkept;
  PetscFunctionReturn(0);
}

int64_t dy_resample_steps(int64_t N, int size, int batch_size)
{
  const double per_step = (double)size * (double)batch_size;
  return DY_MAX((int64_t)1, (int64_t)llround((double)N / per_step));
}

/* Fisher-Yates shuffles of a[0..n). */
static void dy_shuffle_i64(DyRng *rng, int64_t *a, int64_t n)
{
  for (int64_t i = n - 1; i > 0; i--) {
    const int64_t j = (int64_t)dy_rng_below(rng, (uint64_t)i + 1), t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

static void dy_shuffle_int(DyRng *rng, int *a, int64_t n)
{
  for (int64_t i = n - 1; i > 0; i--) {
    const int64_t j = (int64_t)dy_rng_below(rng, (uint64_t)i + 1);
    const int t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

PetscErrorCode dy_resample_schedule(int K, const double *quota, int64_t nsteps, DyRng *shared, int *schedule)
{
  double total = 0.0, cum = 0.0;
  int64_t pos = 0;

  PetscFunctionBegin;
  for (int k = 0; k < K; k++) {
    PetscCheck(quota[k] >= 0.0 && isfinite(quota[k]), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
               "resampling: quota %g of bin %d", quota[k], k);
    total += quota[k];
  }
  PetscCheck(total > 0.0 && nsteps >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "resampling: quotas sum to %g for %" PRId64 " steps", total, nsteps);
  /* Systematic sampling: steps sit at u, u + 1, ..., u + nsteps - 1 on the axis where bin k owns
   * [nsteps C_(k-1) / total, nsteps C_k / total), so bin k gets floor or ceil of its expected
   * share and exactly that share on average. The summation order equals the one above, so the
   * last cumulative share is exactly 1 and all steps are placed. */
  const double u = dy_rng_uniform(shared);
  for (int k = 0; k < K; k++) {
    cum += quota[k];
    const double edge = (cum / total) * (double)nsteps - u;
    const int64_t below = DY_MIN(nsteps, DY_MAX((int64_t)0, (int64_t)ceil(edge)));
    for (; pos < below; pos++) schedule[pos] = k;
  }
  PetscCheck(pos == nsteps, PETSC_COMM_SELF, PETSC_ERR_PLIB, "resampling: placed %" PRId64 " of %" PRId64 " steps",
             pos, nsteps);
  dy_shuffle_int(shared, schedule, nsteps);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_sampler_free(DySampler *s)
{
  PetscFunctionBegin;
  PetscCall(PetscFree4(s->schedule, s->offset, s->member, s->cursor));
  PetscCall(PetscFree(s->share));
  memset(s, 0, sizeof *s);
  PetscFunctionReturn(0);
}

/* Largest-remainder shares of B rows among ranks holding c[r] (size) members of a bin: share[r] =
 * floor(B c[r] / C), then one more row to the ranks with the largest remainders (ties: lower rank
 * first) until the shares sum to B. Exact integer arithmetic, so every rank computes the same. A
 * rank with c[r] = 0 has remainder 0 and never gets a row: the rows missing are fewer than the
 * ranks with a non-zero remainder. */
static void dy_resample_shares(int size, const int64_t *c, int64_t B, int *share, int64_t *rem)
{
  int64_t C = 0, given = 0;
  for (int r = 0; r < size; r++) C += c[r];
  for (int r = 0; r < size; r++) {
    share[r] = C > 0 ? (int)(B * c[r] / C) : 0;
    rem[r] = C > 0 ? B * c[r] % C : 0;
    given += share[r];
  }
  for (; C > 0 && given < B; given++) {
    int best = -1;
    for (int r = 0; r < size; r++)
      if (rem[r] > 0 && (best < 0 || rem[r] > rem[best])) best = r;
    if (best < 0) break;
    share[best]++;
    rem[best] = 0;
  }
}

static PetscErrorCode dy_sampler_plan_mode(MPI_Comm comm, int K, const double *quota, int64_t n_local,
                                           const int *bin, int batch_size, int global, uint64_t seed, int64_t epoch,
                                           DySampler *s)
{
  int rank, size;
  double total = 0.0;
  int64_t bad = -1;
  char msg[128] = "";

  PetscFunctionBegin;
  PetscCheck(K >= 1 && batch_size >= 1 && n_local >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "sampler: bad sizes K = %d, batch_size = %d", K, batch_size);
  PetscCall(dy_sampler_free(s));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  for (int k = 0; k < K; k++) total += quota[k];
  s->K = K;
  s->batch_size = batch_size;
  s->nsteps = dy_resample_steps((int64_t)llround(total), global ? 1 : size, batch_size);
  s->rank = rank;
  s->size = size;
  s->n_local = n_local;
  dy_rng_seed(&s->shared, dy_hash_u64(seed, DY_STREAM_SHARED, (uint64_t)epoch), DY_STREAM_SHARED);
  dy_rng_seed(&s->local, dy_hash_u64(seed, DY_STREAM_RANK + (uint64_t)rank, (uint64_t)epoch),
              DY_STREAM_RANK + (uint64_t)rank);
  PetscCall(PetscCalloc4(s->nsteps, &s->schedule, K + 1, &s->offset, DY_MAX(n_local, 1), &s->member, K, &s->cursor));
  PetscCall(dy_resample_schedule(K, quota, s->nsteps, &s->shared, s->schedule));

  /* Counting sort of the local pairs by bin (stable), then one shuffle per bin. */
  for (int64_t i = 0; i < n_local && bad < 0; i++)
    if (bin[i] < 0 || bin[i] >= K) bad = i;
  if (bad >= 0) snprintf(msg, sizeof msg, "sampler: bin %d of local pair %" PRId64 " is outside [0, %d)", bin[bad], bad, K);
  PetscCall(dy_agree_error(comm, bad >= 0, PETSC_ERR_ARG_OUTOFRANGE, msg));
  for (int64_t i = 0; i < n_local; i++) s->offset[bin[i] + 1]++;
  for (int k = 0; k < K; k++) s->offset[k + 1] += s->offset[k];
  for (int64_t i = 0; i < n_local; i++) s->member[s->offset[bin[i]] + s->cursor[bin[i]]++] = i;
  for (int k = 0; k < K; k++) {
    s->cursor[k] = 0;
    dy_shuffle_i64(&s->local, s->member + s->offset[k], s->offset[k + 1] - s->offset[k]);
  }
  if (global) {
    /* every rank's members of every bin, once per epoch, then every bin's shares */
    int64_t *all, *col, *rem;
    PetscCall(PetscMalloc1((size_t)K * size, &s->share));
    PetscCall(PetscMalloc3((size_t)K * size, &all, (size_t)size, &col, (size_t)size, &rem));
    for (int k = 0; k < K; k++) s->cursor[k] = s->offset[k + 1] - s->offset[k];
    PetscCallMPI(MPI_Allgather(s->cursor, K, MPI_INT64_T, all, K, MPI_INT64_T, comm));
    for (int k = 0; k < K; k++) {
      for (int r = 0; r < size; r++) col[r] = all[(size_t)r * K + k]; /* the members of bin k by rank */
      dy_resample_shares(size, col, batch_size, s->share + (size_t)k * size, rem);
    }
    PetscCall(PetscFree3(all, col, rem));
    for (int k = 0; k < K; k++) s->cursor[k] = 0;
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_sampler_plan(MPI_Comm comm, int K, const double *quota, int64_t n_local, const int *bin,
                               int batch_size, uint64_t seed, int64_t epoch, DySampler *s)
{
  PetscFunctionBegin;
  PetscCall(dy_sampler_plan_mode(comm, K, quota, n_local, bin, batch_size, 0, seed, epoch, s));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_sampler_plan_global(MPI_Comm comm, int K, const double *quota, int64_t n_local, const int *bin,
                                      int batch_size, uint64_t seed, int64_t epoch, DySampler *s)
{
  PetscFunctionBegin;
  PetscCall(dy_sampler_plan_mode(comm, K, quota, n_local, bin, batch_size, 1, seed, epoch, s));
  PetscFunctionReturn(0);
}

const int *dy_sampler_shares(const DySampler *s, int bin)
{
  return s->share ? s->share + (size_t)bin * s->size : NULL;
}

PetscErrorCode dy_sampler_next(DySampler *s, int *bin, int *ndrawn, int64_t *pairs)
{
  PetscFunctionBegin;
  PetscCheck(s->step < s->nsteps, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "sampler: step %" PRId64 " is past the epoch's %" PRId64 " steps", s->step, s->nsteps);
  const int k = s->schedule[s->step++];
  const int64_t c = s->offset[k + 1] - s->offset[k];
  /* B pairs per rank, or this rank's share of the global batch */
  const int B = s->share ? s->share[(size_t)k * s->size + s->rank] : c > 0 ? s->batch_size : 0;
  int64_t *seg = s->member + s->offset[k];
  *bin = k;
  *ndrawn = B;
  if (B == 0) PetscFunctionReturn(0);
  if (c >= B) {
    if (c - s->cursor[k] < B) { /* this pass is used up: a new order, members repeat from here */
      dy_shuffle_i64(&s->local, seg, c);
      s->cursor[k] = 0;
    }
    memcpy(pairs, seg + s->cursor[k], (size_t)B * sizeof *pairs);
    s->cursor[k] += B;
  } else if (c > 0) {
    memcpy(pairs, seg, (size_t)c * sizeof *pairs);
    for (int64_t j = c; j < B; j++) pairs[j] = seg[dy_rng_below(&s->local, (uint64_t)c)];
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_sampler_seek(DySampler *s, int64_t step)
{
  int64_t *scratch;
  int k, nd;

  PetscFunctionBegin;
  PetscCheck(step >= s->step && step <= s->nsteps, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "sampler: cannot seek from step %" PRId64 " to %" PRId64 " (epoch of %" PRId64 " steps)", s->step, step,
             s->nsteps);
  PetscCall(PetscMalloc1(s->batch_size, &scratch));
  while (s->step < step) PetscCall(dy_sampler_next(s, &k, &nd, scratch));
  PetscCall(PetscFree(scratch));
  PetscFunctionReturn(0);
}
