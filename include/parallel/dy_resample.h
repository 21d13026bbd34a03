/* Well-tempered resampling of the latent bins and the epoch's sequence of batches (SPEC 4.4-4.5, 5).
 *
 * Sizes: K bins, N training pairs over all ranks, P ranks, B pairs per rank per step
 * (train.batch_size with train.batch = "per_rank"). The global batch of a step is P * B pairs of
 * one bin, so an epoch has about N / (P B) steps. With train.batch = "global" (see
 * dy_sampler_plan_global) the batch is B pairs over all ranks and an epoch has about N / B steps,
 * whatever P.
 *
 * Skip rule (SPEC 4.4 read literally): a bin is skipped when its GLOBAL count is <= B. So the kept
 * bins, the quotas and the 20% check do not depend on the number of ranks, and an input that runs
 * on one rank runs on any. (Skipping bins of <= P B pairs, the global batch, would guarantee every
 * rank B distinct members on average, but would drop more and more of the rarely visited bins,
 * the ones resampling exists for, as P grows, and fail at large P an input that works at small
 * P.) A kept bin may then give some ranks fewer than B members, or none: see the draws below
 * (SPEC 5).
 *
 * Quotas: N_k = N n_k^(1/gamma) / sum_j n_j^(1/gamma), j over the kept bins, N over all pairs;
 * gamma = 1 keeps the counts (when nothing is skipped), large gamma gives every kept bin N / K'.
 *
 * Epoch plan (DySampler): the steps' bins are identical on every rank: bin k gets floor or ceil of
 * e_k = S N_k / N steps (S steps in all) by systematic sampling with one uniform offset, so its
 * expected number of steps is exactly e_k and the counts sum to S, then the sequence is shuffled
 * (Fisher-Yates); both from the sampler's shared stream. Each rank then draws its B pairs of the
 * step's bin from its local members with its own stream:
 *   - c >= B local members: the next B of the bin's shuffled order (no repeats in a batch, none
 *     in the epoch until the bin's members run out; then the order is reshuffled and restarted,
 *     so members repeat only across batches);
 *   - 0 < c < B: all c members once, then B - c drawn uniformly with replacement;
 *   - c = 0: nothing (the rank does not contribute to the step).
 * The sampler's streams for an epoch are DY_STREAM_SHARED and DY_STREAM_RANK + rank seeded from
 * a hash of (seed, epoch), so a plan depends only on (seed, epoch, P, the bins of the local pairs)
 * and never replays the sequences other modules draw from the same streams.
 *
 * Checkpoints: the struct is the whole state (plain arrays, DyRng by value). A restart at the same
 * P can either restore the arrays, or rebuild the plan with dy_sampler_plan (same seed, epoch and
 * bins) and call dy_sampler_seek(step): bitwise the same batches follow. `step / nsteps` is the
 * position within the epoch at any P. */
#pragma once
#include "base/dy_common.h"
#include "base/dy_rng.h"

/* Every rank of comm calls it with the same global counts (from dy_cluster_counts) and gets the
 * same result; no communication, comm is where an error is raised. quota[k] = N_k for kept bins, 0 for skipped ones; *kept = number of kept bins (may be NULL).
 * When the skipped bins hold more than 20% of all pairs (or there are no pairs) this is a
 * DY_ERR_INPUT error naming the numbers and telling the user to raise cluster.d_min (d_min is
 * passed for the message only). gamma >= 1, batch_size >= 1. */
PetscErrorCode dy_resample_quotas(MPI_Comm comm, int K, const int64_t *counts, double gamma, int batch_size,
                                  double d_min, double *quota, int *kept);

/* Steps in an epoch of N pairs at P ranks with B pairs per rank: round(N / (P B)), at least 1. */
int64_t dy_resample_steps(int64_t N, int size, int batch_size);

/* Local: schedule[s] (nsteps) = bin of step s, drawn from `shared` as described above. Ranks
 * that pass the same quota, nsteps and shared state get the same schedule. quota[k] >= 0 with a
 * positive sum. */
PetscErrorCode dy_resample_schedule(int K, const double *quota, int64_t nsteps, DyRng *shared, int *schedule);

/* One epoch's plan and this rank's position in it. */
typedef struct {
  int K;           /* bins */
  int batch_size;  /* B: pairs drawn per rank per step (global: per step over all ranks) */
  int64_t nsteps;  /* steps in the epoch, identical on every rank */
  int64_t step;    /* steps already drawn, in [0, nsteps] */
  int *schedule;   /* (nsteps) bin of each step, identical on every rank */
  int64_t n_local; /* training pairs held by this rank */
  int64_t *offset; /* (K + 1) bin k's local members are member[offset[k] .. offset[k + 1]) */
  int64_t *member; /* (n_local) local pair indices grouped by bin, each bin in shuffled order */
  int64_t *cursor; /* (K) members of bin k already used in the current pass over its order */
  int rank, size;  /* as MPI says, on the plan's comm */
  int *share;      /* (K, size) global batches: rank r's rows of a step of bin k; NULL: per rank */
  DyRng shared;    /* shared stream, same state on every rank (the schedule) */
  DyRng local;     /* this rank's stream (member orders, draws with replacement) */
} DySampler;

/* Collective on comm: plans epoch `epoch` from the quotas of dy_resample_quotas (their sum is N)
 * and the bins of this rank's n_local pairs (bin[i] in [0, K)). Pairs of skipped bins are never
 * drawn. For an epoch without bins (the warm-up) pass K = 1, all bins 0 and quota[0] = N.
 * Frees any previous plan held in s (s must be zeroed before first use). */
PetscErrorCode dy_sampler_plan(MPI_Comm comm, int K, const double *quota, int64_t n_local, const int *bin,
                               int batch_size, uint64_t seed, int64_t epoch, DySampler *s);
/* Collective on comm: the same for a global batch of batch_size pairs per step (train.batch =
 * "global"): round(N / batch_size) steps, and each step's batch is split over the ranks in
 * proportion to their members of its bin. The ranks' members of every bin are gathered once
 * (one MPI_Allgather of K counts) and every bin's shares computed by largest remainder in exact
 * integers (ties to the lower rank), so every rank knows every rank's share; a rank holding no
 * member of a bin gets no rows of it. Shares never exceed the members when the bin holds more
 * than batch_size pairs, which dy_resample_quotas guarantees for every kept bin: the rows of a
 * step are then distinct, a stratified sample of the bin. */
PetscErrorCode dy_sampler_plan_global(MPI_Comm comm, int K, const double *quota, int64_t n_local, const int *bin,
                                      int batch_size, uint64_t seed, int64_t epoch, DySampler *s);
/* Global batches: the rows of every rank in a step of bin `bin` (size values, summing to the
 * batch); NULL for per-rank batches. */
const int *dy_sampler_shares(const DySampler *s, int bin);
/* Local: the next step. *bin = its bin (same on every rank); pairs[0 .. *ndrawn) = local pair
 * indices drawn (*ndrawn is B, or 0 when this rank holds no member of the bin; with a global batch
 * this rank's share, drawn the same way as B would be). pairs holds batch_size.
 * Calling it after the last step (s->step == s->nsteps) is an error. */
PetscErrorCode dy_sampler_next(DySampler *s, int *bin, int *ndrawn, int64_t *pairs);
/* Local: advances to position `step` (>= s->step) by replaying the draws. */
PetscErrorCode dy_sampler_seek(DySampler *s, int64_t step);
/* Frees the arrays and zeroes the struct; safe on a zeroed struct. */
PetscErrorCode dy_sampler_free(DySampler *s);
