/* Well-tempered quotas (formula, gamma limits, a hand-computed case, the skip rule and the 20%
 * error) and the epoch plans: the same bins on every rank, per-bin step frequencies that match the
 * quotas and the one-rank reference, per-rank draws from the right bin (without repeats while a
 * bin has enough members, nothing from a rank without members), and replay to a position. */
#include "cluster_testlib.h"
#include "parallel/dy_resample.h"

#include <stdlib.h>

static int close_rel(double a, double b, double rel) { return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)); }

/* Runs dy_resample_quotas expecting DY_ERR_INPUT; returns 1 when it came with the message. */
static int quotas_fail(int K, const int64_t *counts, int B, const char *expect)
{
  double quota[8];
  PetscPushErrorHandler(dy_test_capture, NULL);
  dy_test_message[0] = 0;
  const PetscErrorCode ierr = dy_resample_quotas(MPI_COMM_WORLD, K, counts, 2.0, B, 0.25, quota, NULL);
  PetscPopErrorHandler();
  CHECK(strstr(dy_test_message, expect) != NULL, "message '%s' lacks '%s'", dy_test_message, expect);
  return ierr == DY_ERR_INPUT;
}

static PetscErrorCode check_quotas(void)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  const int B = 10;
  const int64_t T = B; /* the skip threshold: B pairs over all ranks, whatever their number */
  int kept;
  double q[8];

  PetscFunctionBegin;
  { /* gamma = 1 keeps the counts, a huge gamma equalises them */
    const int64_t c[4] = {T + 1, 3 * T, 10 * T, 50 * T};
    const int64_t N = c[0] + c[1] + c[2] + c[3];
    PetscCall(dy_resample_quotas(comm, 4, c, 1.0, B, 0.25, q, &kept));
    CHECK(kept == 4, "kept %d of 4", kept);
    for (int k = 0; k < 4; k++) CHECK(close_rel(q[k], (double)c[k], 1e-12), "gamma 1: quota %g for count %ld", q[k], (long)c[k]);
    PetscCall(dy_resample_quotas(comm, 4, c, 1e6, B, 0.25, q, NULL));
    for (int k = 0; k < 4; k++) CHECK(close_rel(q[k], N / 4.0, 1e-4), "gamma 1e6: quota %g, expected %g", q[k], N / 4.0);
  }
  { /* gamma = 2 by hand: sqrt(100 T'), sqrt(400 T'), sqrt(900 T') are in the ratio 1 : 2 : 3 */
    const int64_t c[3] = {100 * T, 400 * T, 900 * T};
    PetscCall(dy_resample_quotas(comm, 3, c, 2.0, B, 0.25, q, NULL));
    for (int k = 0; k < 3; k++)
      CHECK(close_rel(q[k], 1400.0 * T * (k + 1) / 6.0, 1e-12), "gamma 2: quota %d = %g, expected %g", k, q[k],
            1400.0 * T * (k + 1) / 6.0);
  }
  { /* bins of no more than B pairs are skipped; the rest share all N pairs */
    const int64_t c[4] = {T / 2, T, T + 1, 100 * T};
    const double N = (double)(c[0] + c[1] + c[2] + c[3]);
    PetscCall(dy_resample_quotas(comm, 4, c, 1.0, B, 0.25, q, &kept));
    CHECK(kept == 2 && q[0] == 0.0 && q[1] == 0.0, "skip: kept %d, quotas %g %g", kept, q[0], q[1]);
    CHECK(close_rel(q[2], N * (T + 1) / (101.0 * T + 1), 1e-12) && close_rel(q[3], N * 100 * T / (101.0 * T + 1), 1e-12),
          "skip: quotas %g %g", q[2], q[3]);
  }
  { /* skipped bins may hold 20% of the pairs, not more */
    const int64_t at[2] = {T, 4 * T}, over[2] = {T, 4 * T - 1}, many[3] = {T, T, 7 * T}, none[2] = {0, 0};
    PetscCall(dy_resample_quotas(comm, 2, at, 2.0, B, 0.25, q, &kept));
    CHECK(kept == 1 && close_rel(q[1], 5.0 * T, 1e-12), "20%% exactly: kept %d, quota %g", kept, q[1]);
    CHECK(quotas_fail(2, over, B, "raise cluster.d_min (now 0.25)"), "just over 20%% skipped must fail");
    CHECK(quotas_fail(3, many, B, "(22.2%, more than 20%)"), "22%% skipped must fail");
    CHECK(quotas_fail(2, none, B, "no training pairs"), "no pairs must fail");
  }
  PetscFunctionReturn(0);
}

/* The synthetic epoch data: K bins with fixed global counts; bin 10 lives on rank 0 only, most
 * of bin 8 too (so other ranks hold fewer than B of it), bin 11 is small enough to be skipped. */
#define NBIN 12
static const int64_t bin_count[NBIN] = {6000, 4000, 3000, 2000, 1500, 1200, 800, 600, 100, 300, 150, 10};

/* This rank's pairs of the synthetic data: allocates *bin (N) and fills it for the local pairs,
 * sets *N and the quotas at gamma 2 and *n_local, the number of local pairs. */
static PetscErrorCode synthetic_pairs(MPI_Comm comm, int B, int **bin, int64_t *n_local, int64_t *N, double *quota)
{
  int rank, size;
  int64_t m = 0, g = 0;

  PetscFunctionBegin;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *N = 0;
  for (int k = 0; k < NBIN; k++) *N += bin_count[k];
  PetscCall(PetscMalloc1(*N, bin));
  for (int k = 0; k < NBIN; k++)
    for (int64_t j = 0; j < bin_count[k]; j++, g++) {
      int owner = (int)(dy_hash_u64(5, 6, (uint64_t)g) % (uint64_t)size);
      if (k == 10 || (k == 8 && j < 90)) owner = 0;
      if (owner == rank) (*bin)[m++] = k;
    }
  *n_local = m;
  PetscCall(dy_resample_quotas(comm, NBIN, bin_count, 2.0, B, 0.25, quota, NULL));
  PetscFunctionReturn(0);
}

static int cmp_i64(const void *a, const void *b)
{
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* One epoch's checks on this rank; adds the steps per bin to steps[]. */
static PetscErrorCode check_epoch(MPI_Comm comm, DySampler *s, const int *bin, const double *quota, int64_t *steps)
{
  const int B = s->batch_size;
  int64_t drawn[NBIN] = {0}, m[NBIN] = {0}, *pairs, *sorted;
  int *sched0, k, nd;
  double total = 0.0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc3(B, &pairs, B, &sorted, s->nsteps, &sched0));
  memcpy(sched0, s->schedule, sizeof(int) * (size_t)s->nsteps);
  MPI_Bcast(sched0, (int)s->nsteps, MPI_INT, 0, comm);
  CHECK(memcmp(sched0, s->schedule, sizeof(int) * (size_t)s->nsteps) == 0, "schedule differs from rank 0's");
  while (s->step < s->nsteps) {
    PetscCall(dy_sampler_next(s, &k, &nd, pairs));
    const int64_t c = s->offset[k + 1] - s->offset[k];
    m[k]++;
    drawn[k] += nd;
    CHECK(nd == (c > 0 ? B : 0), "bin %d with %ld local members drew %d", k, (long)c, nd);
    for (int j = 0; j < nd; j++) CHECK(bin[pairs[j]] == k, "drew pair %ld of bin %d for bin %d", (long)pairs[j], bin[pairs[j]], k);
    memcpy(sorted, pairs, sizeof(int64_t) * (size_t)nd);
    qsort(sorted, (size_t)nd, sizeof *sorted, cmp_i64);
    int64_t distinct = nd > 0;
    for (int j = 1; j < nd; j++) distinct += sorted[j] != sorted[j - 1];
    CHECK(distinct == DY_MIN(c, (int64_t)nd), "bin %d (%ld local members): %ld distinct of %d", k, (long)c, (long)distinct, nd);
  }
  for (int j = 0; j < NBIN; j++) total += quota[j];
  for (int j = 0; j < NBIN; j++) {
    const double e = s->nsteps * quota[j] / total;
    CHECK(m[j] == (int64_t)floor(e) || m[j] == (int64_t)ceil(e), "bin %d: %ld steps, expected %g", j, (long)m[j], e);
    steps[j] += m[j];
  }
  PetscCall(PetscFree3(pairs, sorted, sched0));
  PetscFunctionReturn(0);
}

/* Steps per bin over many epochs agree with the quotas and with the one-rank reference, within
 * five standard deviations (a bin's steps per epoch are floor or ceil of e_k, so the variance
 * is frac(e_k) (1 - frac(e_k))); the seed is fixed, so the outcome is too. */
static void check_frequencies(int E, int64_t nsteps, const int64_t *steps, int64_t nsteps1, const int64_t *steps1,
                              const double *quota, int size, int B)
{
  double total = 0.0;
  for (int k = 0; k < NBIN; k++) total += quota[k];
  for (int k = 0; k < NBIN; k++) {
    const double e = nsteps * quota[k] / total, e1 = nsteps1 * quota[k] / total;
    const double fr = e - floor(e), fr1 = e1 - floor(e1);
    const double sd = sqrt(fr * (1 - fr) / E) / nsteps, sd1 = sqrt(fr1 * (1 - fr1) / E) / nsteps1;
    const double f = (double)steps[k] / ((double)E * nsteps), f1 = (double)steps1[k] / ((double)E * nsteps1);
    CHECK(fabs(f - quota[k] / total) <= 5 * sd + 1e-12, "bin %d at %d ranks: step fraction %g, quota share %g (sd %g)",
          k, size, f, quota[k] / total, sd);
    CHECK(fabs(f - f1) <= 5 * sqrt(sd * sd + sd1 * sd1) + 1e-12, "bin %d: step fraction %g at %d ranks, %g at one", k,
          f, size, f1);
    /* bin k contributes about N_k pairs per epoch (the steps are rounded to N / (P B)) */
    const double pairs = f * nsteps * size * B;
    CHECK(fabs(pairs - quota[k]) <= quota[k] / nsteps + 5 * sd * nsteps * size * B + 1e-9,
          "bin %d: %g pairs per epoch, quota %g", k, pairs, quota[k]);
  }
}

static PetscErrorCode check_plans(void)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  const int B = 16, E = 300;
  int size, *bin, *sched1;
  int64_t N, n_local, steps[NBIN] = {0}, steps1[NBIN] = {0};
  double quota[NBIN];
  DySampler s;

  PetscFunctionBegin;
  MPI_Comm_size(comm, &size);
  PetscCall(synthetic_pairs(comm, B, &bin, &n_local, &N, quota));
  CHECK(quota[11] == 0.0, "bin 11 (10 pairs) must be skipped");
  const int64_t nsteps1 = dy_resample_steps(N, 1, B);
  PetscCall(PetscMalloc1(nsteps1, &sched1));
  memset(&s, 0, sizeof s);
  for (int epoch = 1; epoch <= E; epoch++) {
    DyRng ref;
    PetscCall(dy_sampler_plan(comm, NBIN, quota, n_local, bin, B, 42, epoch, &s));
    CHECK(s.nsteps == dy_resample_steps(N, size, B), "%ld steps", (long)s.nsteps);
    PetscCall(check_epoch(comm, &s, bin, quota, steps));
    dy_rng_seed(&ref, dy_hash_u64(42, 99, (uint64_t)epoch), 99);
    PetscCall(dy_resample_schedule(NBIN, quota, nsteps1, &ref, sched1));
    for (int64_t j = 0; j < nsteps1; j++) steps1[sched1[j]]++;
  }
  check_frequencies(E, s.nsteps, steps, nsteps1, steps1, quota, size, B);
  if (dy_is_root(comm)) {
    printf("%d ranks, %ld steps per epoch, over %d epochs: bin: steps (one-rank reference, scaled) quota share\n", size,
           (long)s.nsteps, E);
    for (int k = 0; k < NBIN; k++)
      printf("  %2d: %7ld (%9.1f) %.5f\n", k, (long)steps[k], (double)steps1[k] * s.nsteps / nsteps1, quota[k] / N);
  }
  PetscCall(dy_sampler_free(&s));
  PetscCall(PetscFree2(bin, sched1));
  PetscFunctionReturn(0);
}

/* A rebuilt plan moved to step j gives bitwise the batches that followed step j. */
static PetscErrorCode check_seek(void)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  const int B = 16;
  int *bin, k1, k2, n1, n2, size;
  int64_t N, n_local, a[16], b[16];
  double quota[NBIN];
  DySampler s, t;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(synthetic_pairs(comm, B, &bin, &n_local, &N, quota));
  memset(&s, 0, sizeof s);
  memset(&t, 0, sizeof t);
  PetscCall(dy_sampler_plan(comm, NBIN, quota, n_local, bin, B, 7, 3, &s));
  PetscCall(dy_sampler_plan(comm, NBIN, quota, n_local, bin, B, 7, 3, &t));
  CHECK(memcmp(s.member, t.member, sizeof(int64_t) * (size_t)n_local) == 0 &&
            memcmp(&s.local, &t.local, sizeof s.local) == 0,
        "two plans of the same epoch differ");
  PetscCall(dy_sampler_seek(&s, 37));
  PetscCall(dy_sampler_seek(&t, 20));
  PetscCall(dy_sampler_seek(&t, 37));
  for (int j = 0; j < 5; j++) {
    PetscCall(dy_sampler_next(&s, &k1, &n1, a));
    PetscCall(dy_sampler_next(&t, &k2, &n2, b));
    CHECK(k1 == k2 && n1 == n2 && memcmp(a, b, sizeof(int64_t) * (size_t)n1) == 0, "step %d after seek differs", 37 + j);
  }
  /* warm-up use: one bin of all pairs, no repeat before the rank's pairs are used up: in the first
   * n_local / B batches (all of them where the rank has enough, all but the last at one rank) */
  for (int64_t i = 0; i < n_local; i++) bin[i] = 0;
  PetscCall(dy_sampler_plan(comm, 1, (double[]){(double)N}, n_local, bin, B, 7, 0, &s));
  char *used;
  int64_t repeats = 0;
  PetscCall(PetscCalloc1(n_local, &used));
  const int64_t fresh = n_local / B < s.nsteps ? n_local / B : s.nsteps;
  CHECK(fresh >= s.nsteps - 1 || size > 1, "%ld of %ld steps checked", (long)fresh, (long)s.nsteps);
  while (s.step < fresh) {
    PetscCall(dy_sampler_next(&s, &k1, &n1, a));
    for (int j = 0; j < n1; j++) repeats += used[a[j]]++ > 0;
  }
  CHECK(fresh > 0 && repeats == 0, "warm-up epoch repeated %ld pairs in its first %ld steps", (long)repeats,
        (long)fresh);
  PetscCall(PetscFree(used));
  PetscCall(dy_sampler_free(&s));
  PetscCall(dy_sampler_free(&t));
  PetscCall(PetscFree(bin));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(check_quotas());
  PetscCall(check_plans());
  PetscCall(check_seek());
  const int rc = dy_test_finish("resample");
  PetscCall(PetscFinalize());
  return rc;
}
