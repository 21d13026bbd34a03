/* The training loop (SPEC sections 3-5).
 *
 * Every rank holds a random share of the training pairs. A step is the same on every rank: the
 * same bin (shared stream), the same projections theta (shared stream), then each rank draws its
 * pairs of that bin from its own members and fresh noise eps (rank stream), computes the losses
 * and gradients, and one allreduce sums the gradient buffer with the contributor count and the
 * three losses appended; every rank then applies the identical Adam updates (representation,
 * then prior), so the weights never drift apart. Two kinds of batch (train.batch):
 *   global    B = train.batch_size pairs over all ranks, split in proportion to the ranks' members
 *             of the bin (dy_sampler_plan_global); each rank scales its losses and gradients by
 *             1 / B and the sliced Wasserstein is that of the whole batch (dy_swglobal_step: the
 *             moves gathered between the forward and the backward), so the sums are the whole
 *             batch's, the same as one rank's for those pairs;
 *   per_rank  B pairs on every rank, the losses and gradients local means, divided by the
 *             contributor count after the sum; learning rates optionally scaled with P.
 * The sum is a DyExchange (dy_exchange.h: MPI_Iallreduce, or shared-memory slots when all ranks
 * are on one node). While it is under way each rank draws the next step's inputs: the same draws
 * in the same order as without the overlap, so results do not depend on it; a checkpoint taken
 * between the two steps records the streams as they were before those draws.
 *
 * Test losses are evaluated on the local test pairs in chunks of B in global-id order (so a chunk
 * is a stretch of trajectory rather than a latent bin), with theta and eps drawn from a stream
 * re-seeded every epoch: differences between epochs are then due to the model alone. Every epoch
 * but the last sees about train.test_pairs of them, a subset of stretches of trajectory drawn
 * once from the seed by pair id (so the same at any rank count) and kept for the whole run; the
 * last epoch sees them all.
 *
 * The baselines (model.type = "vae", "swae", "sdevae"; nn/dy_baseline.h) go through the same loop,
 * data, exchange, checkpoints and output, with what the method authors' code does for them: no
 * warm-up and no clustering (every epoch one bin of all pairs, so each epoch is a shuffled pass),
 * train.lr for all their nets, and their own loss and noise (dy_train_lossgrad_baseline,
 * dy_train_draw_noise). Their history's sw column holds SWAE's regulariser, the prior column the
 * KL term of the other two. */
#include "app/dy_train.h"
#include "analysis/dy_vamp.h"
#include "io/dy_checkpoint.h"
#include "parallel/dy_cluster.h"
#include "parallel/dy_exchange.h"
#include "nn/dy_model.h"
#include "nn/dy_baseline.h"
#include "io/dy_output.h"
#include "parallel/dy_resample.h"
#include "parallel/dy_swglobal.h"
#include "base/dy_rng.h"
#include "app/dy_runctl.h"
#include "app/dy_warmup.h"
#include "io/dy_trainstate.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Values appended to the gradient buffer in the allreduce: the contributor count, the losses, and
 * the ranks that caught a stop signal (so all ranks stop after the same step). */
enum { DY_RED_COUNT = 0, DY_RED_REC, DY_RED_SW, DY_RED_PRIOR, DY_RED_STOP, DY_RED_EXTRA };

/* Stream of the test-loss draws (re-seeded every epoch, plus the rank); beyond dy_rng.h's purposes. */
#define DY_STREAM_TEST_EVAL ((uint64_t)1 << 32)
/* Counter-based stream (by pair id) that picks the test pairs evaluated every epoch. */
#define DY_STREAM_TEST_SUBSET ((uint64_t)1 << 33)

/* Phases of -log_view. */
typedef enum {
  DY_EV_ENCODE = 0,
  DY_EV_CLUSTER,
  DY_EV_RESAMPLE,
  DY_EV_LOSSGRAD,
  DY_EV_ALLREDUCE,
  DY_EV_OPTIMIZER,
  DY_EV_TEST,
  DY_EV_IO,
  DY_EV_CHECKPOINT,
  DY_EV_DRAW,
  DY_EV_TEST_ALL,
  DY_NEV
} DyEvent;
static PetscLogEvent dy_events[DY_NEV];

static PetscErrorCode dy_train_register_events(void)
{
  static const char *const names[DY_NEV] = {"DyEncode",    "DyCluster",   "DyResample", "DyLossGrad",
                                            "DyAllreduce", "DyOptimizer", "DyTestLoss", "DyIO",
                                            "DyCheckpoint", "DyDraw", "DyTestLossAll"};
  static int done = 0;
  PetscClassId cid;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(0);
  PetscCall(PetscClassIdRegister("dynae-mpi", &cid));
  for (int i = 0; i < DY_NEV; i++) PetscCall(PetscLogEventRegister(names[i], cid, &dy_events[i]));
  done = 1;
  PetscFunctionReturn(0);
}

/* One step's inputs, drawn before the step that uses them. */
typedef struct {
  int nb;                 /* local pairs of the step: B, this rank's share of a global B, or 0 */
  const int *share;       /* (size) with a global batch, every rank's rows of the step (the sampler's) */
  int64_t *idx;           /* (B) the local training pairs */
  dy_real *x0, *x1;       /* (B, D) their frames */
  dy_real *ty0, *ty1;     /* (B, Dy) their targets (unused without targets) */
  const dy_real *y0, *y1; /* the targets in use: ty0, ty1, or x0, x1 */
  dy_real *theta;         /* (L, d) the projections */
  dy_real *eps;           /* (2B, d) the noise: of the prior moves (B rows), or a baseline's */
  dy_real *target;        /* (2B, d) the encoder's targets (train.warmup_target) */
} DyBatch;

/* Everything one rank needs to train; identical on every rank except the data and own stream. */
typedef struct {
  MPI_Comm comm;               /* the ranks training together */
  int rank, size;              /* as MPI says, on comm */
  const DyConfig *cfg;         /* the run's configuration */
  DyData *data;                /* this rank's pairs and trajectory blocks */
  int B, L, d, D, Dy;          /* train.batch_size, projections, latent, input and target features */
  int global;                  /* train.batch = "global": B is the batch over all ranks */
  DySwGlobal swg;              /* with global: the sliced Wasserstein of the whole batch */
  DyModel model;               /* weights and gradients, the same on every rank */
  DyWork *work;                /* workspace for B pairs and L projections */
  DyBaselineOptions base;      /* the baseline trained (type DY_BASELINE_NONE: DynamicsAE) */
  DyBaseWork *bwork;           /* with a baseline: its step's workspace (on work) */
  DyAdam rep, prior;           /* encoder+decoder and force+log-diffusion optimisers */
  DyRng shared;                /* same sequence on every rank: projections */
  DyRng own;                   /* this rank's: noise eps */
  DySampler sampler;           /* the epoch's plan of bins and this rank's draws */
  DyBatch batch[2];            /* the current step's inputs and the next one's */
  int cur;                     /* index in batch of the current step */
  int ahead;                   /* 1 when batch[1 - cur] holds the next step's inputs, drawn already */
  DyRng shared_mark, own_mark; /* with ahead: shared and own as they were before those draws */
  dy_real *red;                /* (nparam + DY_RED_EXTRA) gradients, count, losses */
  DyExchange *exchange;        /* sums red over the ranks once per step */
  dy_real *z0;                 /* (ntrain local, d) latent of the training pairs' first frames */
  int *bin;                    /* (ntrain local) bin of each training pair */
  int K;                       /* centres of the last clustering (0: none yet) */
  int kept;                    /* bins of the last clustering that are sampled */
  double *centers;             /* (max_centers, d) the last clustering's centres */
  int64_t *counts;             /* (max_centers) global training pairs per bin */
  double *quota;               /* (max_centers) well-tempered pairs per bin */
  int64_t ntest_sel;           /* local test pairs evaluated in every epoch but the last */
  int64_t *test_sel;           /* (ntest_sel) their rows in data->test, or NULL: all of them */
  dy_real *tx0, *tx1;          /* (2 B, D) frames of a chunk of test pairs */
  dy_real *ty0, *ty1;          /* (2 B, Dy) their targets (unused without targets) */
  DyWarmup warm;               /* train.warmup_target's anchors, from setup to the end of their epochs */
  int targeted;                /* the current epoch's targets: 0 none, 1 the warm-up's, 2 the anchors */
  int quiet;                   /* no progress lines (--quiet, output.quiet) */
  DyHistory hist;              /* one row per finished epoch */
  dy_real *params_epoch_start; /* (nparam) weights when the current epoch began (its bins' encoder) */
  DyTrainPosition pos;         /* where the run stands, as a checkpoint records it */
  DyTrainState state;          /* what a checkpoint saves: pointers into this struct */
  DyCollapseWatch collapse;    /* when to report a degenerate step covariance */
  int same_layout;             /* restarted from a checkpoint written at this rank count */
  int dir_ready;               /* output.dir created and locked */
  DyRunLock lock;              /* keeps other runs out of output.dir */
} DyTrainer;

/* Copies n pairs into x0, x1 (n, D) and, with targets, ty0, ty1 (n, Dy): pairs idx[0..n) of p, or
 * pairs first..first+n-1 when idx is NULL. *y0, *y1 point to the targets in use (ty or x). With
 * x1 NULL only the first frames are copied. */
static void dy_train_gather(const DyTrainer *t, const DyPairs *p, int64_t n, const int64_t *idx, int64_t first,
                            dy_real *x0, dy_real *x1, dy_real *ty0, dy_real *ty1, const dy_real **y0,
                            const dy_real **y1)
{
  const int D = t->D, Dy = t->Dy;
  const int targets = t->data->has_target;
  for (int64_t j = 0; j < n; j++) {
    const size_t r = (size_t)(idx ? idx[j] : first + j);
    memcpy(x0 + (size_t)j * D, p->x0[r], sizeof(dy_real) * D);
    if (!x1) continue;
    memcpy(x1 + (size_t)j * D, p->x1[r], sizeof(dy_real) * D);
    if (!targets) continue;
    memcpy(ty0 + (size_t)j * Dy, p->y0[r], sizeof(dy_real) * Dy);
    memcpy(ty1 + (size_t)j * Dy, p->y1[r], sizeof(dy_real) * Dy);
  }
  *y0 = targets ? ty0 : x0;
  *y1 = targets ? ty1 : x1;
}

static void dy_train_draw_theta(DyRng *rng, int L, int d, dy_real *theta)
{
  double v[64];
  for (int l = 0; l < L; l++) {
    dy_rng_unit_vector(rng, d, v);
    for (int i = 0; i < d; i++) theta[(size_t)l * d + i] = (dy_real)v[i];
  }
}

static void dy_train_draw_normals(DyRng *rng, size_t n, dy_real *eps)
{
  for (size_t i = 0; i < n; i++) eps[i] = (dy_real)dy_rng_normal(rng);
}

/* The noise of nb pairs: DynamicsAE's prior moves and the VAEs' posterior samples take standard
 * normals, SWAE its prior samples, uniform on [-1, 1]^d. */
static void dy_train_draw_noise(const DyTrainer *t, DyRng *rng, int nb, dy_real *eps)
{
  const int rows = t->base.type ? dy_baseline_noise_rows(t->base.type, nb) : nb;
  const size_t n = (size_t)rows * t->d;
  if (t->base.type != DY_BASELINE_SWAE) dy_train_draw_normals(rng, n, eps);
  else
    for (size_t i = 0; i < n; i++) eps[i] = (dy_real)(2 * dy_rng_uniform(rng) - 1);
}

/* Draws a step's inputs into b: its pairs from the sampler, theta from the shared stream (on every
 * rank, so that the stream stays in step), and with pairs their frames and eps from this rank's
 * stream. With sums under way (moving = 1) the exchange is progressed between the parts. */
static PetscErrorCode dy_train_draw_batch(DyTrainer *t, DyBatch *b, int moving)
{
  int bin;

  PetscFunctionBegin;
  PetscCall(dy_sampler_next(&t->sampler, &bin, &b->nb, b->idx));
  b->share = dy_sampler_shares(&t->sampler, bin);
  if (moving) PetscCall(dy_exchange_progress(t->exchange));
  dy_train_draw_theta(&t->shared, t->L, t->d, b->theta);
  if (b->nb > 0) {
    dy_train_gather(t, &t->data->train, b->nb, b->idx, 0, b->x0, b->x1, b->ty0, b->ty1, &b->y0, &b->y1);
    if (t->targeted) dy_warmup_gather(&t->warm, t->targeted == 1, b->nb, b->idx, b->target);
    if (moving) PetscCall(dy_exchange_progress(t->exchange));
    dy_train_draw_noise(t, &t->own, b->nb, b->eps);
  }
  PetscFunctionReturn(0);
}

/* The gradient buffer of a step from model.grads (contributed) or zeros, with the losses. */
static void dy_train_red_fill(DyTrainer *t, int contributed, const DyLosses *l)
{
  const size_t np = t->model.nparam;
  if (contributed) memcpy(t->red, t->model.grads, sizeof(dy_real) * np);
  else memset(t->red, 0, sizeof(dy_real) * np);
  t->red[np + DY_RED_COUNT] = contributed;
  t->red[np + DY_RED_REC] = (dy_real)l->rec;
  t->red[np + DY_RED_SW] = (dy_real)l->sw;
  t->red[np + DY_RED_PRIOR] = (dy_real)l->prior;
}

/* Collective: a global batch's share on this rank (see dy_swglobal_step); the batch's L_sw is
 * counted once in the sum: rank 0's when every rank has all of it, every rank's part with split. */
static PetscErrorCode dy_train_lossgrad_global(DyTrainer *t, const DyLossOptions *lopt, const DyBatch *b)
{
  DyLosses l;

  PetscFunctionBegin;
  PetscCall(dy_swglobal_step(&t->swg, &t->model, t->work, b->share, b->x0, b->x1, b->y0, b->y1, b->theta, b->eps,
                             lopt, dy_events[DY_EV_LOSSGRAD], &l));
  if (t->swg.way == DY_SWGLOBAL_GATHER && t->rank != 0) l.sw = 0;
  dy_train_red_fill(t, b->nb > 0, &l);
  PetscFunctionReturn(0);
}

/* Collective with a global batch: a baseline's step on this rank's rows; as for DynamicsAE, a global
 * batch's losses and gradients are scaled by 1 / B and SWAE's sliced Wasserstein is the whole
 * batch's (dy_swglobal_loss), counted once in the sum. */
static PetscErrorCode dy_train_lossgrad_baseline(DyTrainer *t, const DyBatch *b)
{
  DyLosses l = {0};
  double norm = b->nb;

  PetscFunctionBegin;
  if (t->global) {
    norm = 0;
    for (int r = 0; r < t->size; r++) norm += b->share[r];
  }
  PetscCall(PetscLogEventBegin(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
  if (b->nb > 0)
    dy_baseline_forward(&t->model, t->bwork, &t->base, b->nb, b->x0, b->x1, b->y0, b->y1, b->eps, norm, 1, &l);
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
  if (t->base.type == DY_BASELINE_SWAE && t->global) {
    const dy_real *z, *u;
    dy_real *gz;
    dy_baseline_moves(t->bwork, &z, &u, &gz);
    PetscCall(dy_swglobal_loss(&t->swg, b->share, b->theta, z, u, t->base.beta, gz, &l.sw));
    if (t->swg.way == DY_SWGLOBAL_GATHER && t->rank != 0) l.sw = 0;
  } else if (t->base.type == DY_BASELINE_SWAE && b->nb > 0)
    l.sw = dy_baseline_sw(t->bwork, b->nb, t->L, b->theta, &t->base, 1);
  PetscCall(PetscLogEventBegin(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
  if (b->nb > 0) dy_baseline_backward(&t->model, t->bwork, b->nb);
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
  dy_train_red_fill(t, b->nb > 0, &l);
  PetscFunctionReturn(0);
}

/* train.lr_scaling for per-rank batches: the learning rates of the epochs after the warm-up are
 * multiplied by 1, sqrt(P) or P, reached by a linear ramp (per step) from 1 over the first
 * train.lr_warmup_epochs of them. Depends only on the position, so a restart continues it. */
static double dy_train_lr_factor(const DyTrainer *t, int epoch, int64_t step, int64_t nsteps)
{
  const DyConfig *cfg = t->cfg;
  const double P = (double)t->size;
  const double full = cfg->lr_scaling == DY_LR_SCALING_LINEAR ? P
                      : cfg->lr_scaling == DY_LR_SCALING_SQRT ? sqrt(P)
                                                              : 1.0;
  if (epoch < 1 || full == 1.0) return 1.0;
  const double done = (double)(epoch - 1) + (double)step / (double)DY_MAX(nsteps, (int64_t)1); /* epochs */
  const double ramp = cfg->lr_warmup_epochs > 0 ? DY_MIN(1.0, done / cfg->lr_warmup_epochs) : 1.0;
  return 1.0 + (full - 1.0) * ramp;
}

/* One optimiser step on every rank with the inputs of batch[cur] (drawn already), of step `step`
 * of nsteps; draws the next step's inputs while the sums travel. Adds the globally averaged losses
 * into the position's sums; *stop is 1 on every rank when any rank caught a stop signal. */
static PetscErrorCode dy_train_step(DyTrainer *t, const DyLossOptions *epoch_lopt, int epoch, int64_t step,
                                    int64_t nsteps, int *stop)
{
  const size_t np = t->model.nparam;
  const DyBatch *b = &t->batch[t->cur];
  dy_real *red = t->red;
  int finite = 1;
  DyLossOptions step_lopt = *epoch_lopt;
  const DyLossOptions *lopt = &step_lopt;

  PetscFunctionBegin;
  if (t->targeted) {
    /* the anchors' weight falls linearly, step by step, over train.target_epochs */
    const double done = (double)(epoch - 1) + (double)step / (double)DY_MAX(nsteps, (int64_t)1);
    step_lopt.target = b->target;
    step_lopt.target_weight =
        t->targeted == 2 ? t->cfg->beta * t->cfg->target_weight * (1 - done / t->cfg->target_epochs) : 0;
  }
  if (t->base.type) PetscCall(dy_train_lossgrad_baseline(t, b));
  else if (t->global) PetscCall(dy_train_lossgrad_global(t, lopt, b));
  else {
    PetscCall(PetscLogEventBegin(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
    if (b->nb > 0) {
      DyLosses l;
      dy_model_loss_grad(&t->model, t->work, b->nb, t->L, b->x0, b->x1, b->y0, b->y1, b->theta, b->eps, lopt, &l);
      dy_train_red_fill(t, 1, &l);
    } else memset(red, 0, sizeof(dy_real) * (np + DY_RED_EXTRA));
    PetscCall(PetscLogEventEnd(dy_events[DY_EV_LOSSGRAD], 0, 0, 0, 0));
  }
  red[np + DY_RED_STOP] = dy_signal_pending() != 0;

  PetscCall(PetscLogEventBegin(dy_events[DY_EV_ALLREDUCE], 0, 0, 0, 0));
  PetscCall(dy_exchange_start(t->exchange, red));
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_ALLREDUCE], 0, 0, 0, 0));
  t->ahead = step + 1 < nsteps;
  if (t->ahead) {
    /* DyDraw, not DyAllreduce: at one rank the sum is a copy and this is all the time between */
    PetscCall(PetscLogEventBegin(dy_events[DY_EV_DRAW], 0, 0, 0, 0));
    t->shared_mark = t->shared;
    t->own_mark = t->own;
    PetscCall(dy_train_draw_batch(t, &t->batch[1 - t->cur], 1));
    PetscCall(PetscLogEventEnd(dy_events[DY_EV_DRAW], 0, 0, 0, 0));
  }
  PetscCall(PetscLogEventBegin(dy_events[DY_EV_ALLREDUCE], 0, 0, 0, 0));
  PetscCall(dy_exchange_wait(t->exchange, red));
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_ALLREDUCE], 0, 0, 0, 0));
  if (t->ahead) t->cur = 1 - t->cur;

  /* Every rank holds the same sums now, so every rank takes the same decisions below. */
  const dy_real count = red[np + DY_RED_COUNT];
  *stop = red[np + DY_RED_STOP] > 0;
  PetscCheck(count >= 1, t->comm, PETSC_ERR_PLIB, "epoch %d, step %" PRId64 ": no rank contributed to the step", epoch,
             step);
  /* per-rank batches: the mean over the contributing ranks; a global batch's shares are scaled already */
  const dy_real inv = t->global ? (dy_real)1 : (dy_real)1 / count;
  for (size_t i = 0; i < np + DY_RED_EXTRA; i++) {
    red[i] *= inv;
    finite &= isfinite(red[i]);
  }
  if (!finite) {
    char what[128]; /* PETSc's own %g formatting would print "inf." */
    snprintf(what, sizeof what, "L_rec %g, L_sw %g, L_prior %g", (double)red[np + DY_RED_REC],
             (double)red[np + DY_RED_SW], (double)red[np + DY_RED_PRIOR]);
    SETERRQ(t->comm, DY_ERR_DIVERGED,
            "epoch %d, step %" PRId64 ": the loss or its gradient is not finite (%s); lower the learning rates "
            "(train.%s, train.prior_lr) or loss.beta, or rescale the data",
            epoch, step, what, epoch == 0 ? "warmup_lr" : "lr");
  }
  t->pos.loss_sum[0] += red[np + DY_RED_REC];
  t->pos.loss_sum[1] += red[np + DY_RED_SW];
  t->pos.loss_sum[2] += red[np + DY_RED_PRIOR];

  PetscCall(PetscLogEventBegin(dy_events[DY_EV_OPTIMIZER], 0, 0, 0, 0));
  dy_adam_update(&t->rep, t->model.params, red);
  dy_adam_update(&t->prior, t->model.params, red);
  /* A finite gradient can still overflow the weights or moments: that too ends the step as a
   * divergence, so no checkpoint is ever asked to hold such a state (every rank decides alike). */
  finite = dy_trainstate_finite(&t->state);
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_OPTIMIZER], 0, 0, 0, 0));
  PetscCheck(finite, t->comm, DY_ERR_DIVERGED,
             "epoch %d, step %" PRId64 ": the weights are not finite after the optimiser's update; lower the learning "
             "rates (train.%s, train.prior_lr)",
             epoch, step, epoch == 0 ? "warmup_lr" : "lr");
  PetscFunctionReturn(0);
}

/* The test pairs of an epoch: all of them (all = 1, or no subset) or the fixed subset. */
static void dy_train_test_set(const DyTrainer *t, int all, int64_t *n, const int64_t **sel)
{
  all = all || !t->test_sel;
  *n = all ? t->data->test.n : t->ntest_sel;
  *sel = all ? NULL : t->test_sel;
}

/* Collective: this rank's mean losses over its test pairs of the epoch (all: every one), then the
 * global pair-weighted mean. */
static PetscErrorCode dy_train_test_losses(DyTrainer *t, const DyLossOptions *lopt, int all, DyLosses *mean)
{
  const DyPairs *p = &t->data->test;
  double sum[4] = {0, 0, 0, 0};
  const int64_t *sel;
  int64_t n;
  DyRng rng;

  PetscFunctionBegin;
  dy_train_test_set(t, all, &n, &sel);
  const PetscLogEvent ev = dy_events[sel ? DY_EV_TEST : DY_EV_TEST_ALL];
  PetscCall(PetscLogEventBegin(ev, 0, 0, 0, 0));
  dy_rng_seed(&rng, (uint64_t)t->cfg->seed, DY_STREAM_TEST_EVAL + (uint64_t)t->rank);
  /* the buffers of the step just done: after an epoch's last step nothing is drawn ahead */
  dy_real *theta = t->batch[t->cur].theta, *eps = t->batch[t->cur].eps;
  for (int64_t c = 0; c < n; c += t->B) {
    const int nb = (int)DY_MIN((int64_t)t->B, n - c);
    const dy_real *y0, *y1;
    DyLosses l;
    dy_train_draw_theta(&rng, t->L, t->d, theta);
    dy_train_draw_noise(t, &rng, nb, eps);
    dy_train_gather(t, p, nb, sel ? sel + c : NULL, c, t->tx0, t->tx1, t->ty0, t->ty1, &y0, &y1);
    if (t->base.type)
      dy_baseline_losses(&t->model, t->bwork, &t->base, nb, t->L, t->tx0, t->tx1, y0, y1, theta, eps, &l);
    else
      dy_model_losses(&t->model, t->work, nb, t->L, t->tx0, t->tx1, y0, y1, theta, eps, lopt, &l);
    sum[0] += nb * l.rec;
    sum[1] += nb * l.sw;
    sum[2] += nb * l.prior;
    sum[3] += nb;
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sum, 4, MPI_DOUBLE, MPI_SUM, t->comm));
  mean->rec = sum[3] > 0 ? sum[0] / sum[3] : NAN;
  mean->sw = sum[3] > 0 ? sum[1] / sum[3] : NAN;
  mean->prior = sum[3] > 0 ? sum[2] / sum[3] : NAN;
  PetscCall(PetscLogEventEnd(ev, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Collective: VAMP-2 of the latent on the test pairs of the epoch (all: every one), and a warning
 * (once per run, when dy_collapse_watch says so) when the covariance of its lag steps stays
 * degenerate. The encoder's output of the test pairs is summed locally in double, then once over
 * the ranks. */
static PetscErrorCode dy_train_vamp(DyTrainer *t, int epoch, int all, double *vamp2)
{
  const DyPairs *p = &t->data->test;
  const int64_t chunk = 2 * (int64_t)t->B;
  const int64_t *sel;
  int64_t n;
  DyVampSums *sums;
  DyVampScore score;
  dy_real *z0, *z1;

  PetscFunctionBegin;
  dy_train_test_set(t, all, &n, &sel);
  const PetscLogEvent ev = dy_events[sel ? DY_EV_TEST : DY_EV_TEST_ALL];
  PetscCall(PetscLogEventBegin(ev, 0, 0, 0, 0));
  PetscCall(PetscNew(&sums));
  PetscCall(PetscMalloc2((size_t)chunk * t->d, &z0, (size_t)chunk * t->d, &z1));
  dy_vamp_sums_reset(sums, t->d);
  for (int64_t c = 0; c < n; c += chunk) {
    const int64_t nb = DY_MIN(chunk, n - c);
    const dy_real *y0, *y1;
    dy_train_gather(t, p, nb, sel ? sel + c : NULL, c, t->tx0, t->tx1, t->ty0, t->ty1, &y0, &y1);
    dy_model_encode(&t->model, t->work, nb, t->tx0, z0);
    dy_model_encode(&t->model, t->work, nb, t->tx1, z1);
    dy_vamp_sums_add(sums, nb, z0, z1);
  }
  PetscCall(dy_vamp_sums_allreduce(t->comm, sums));
  dy_vamp_score(sums, &score);
  *vamp2 = score.vamp2;
  const int said = dy_collapse_watch(&t->collapse, epoch == 0 && !t->base.type, all, score.step_ratio);
  if (said == DY_COLLAPSE_WARN && t->rank == 0) {
    printf("# warning: after epoch %d the latent space has collapsed: its steps over data.lag on the test pairs "
           "spread along fewer than %d directions (smallest/largest variance %.3g, below %g%s). The model is not "
           "using its whole latent space; %slower cluster.d_min or model.latent_dim, or change train.seed.\n",
           epoch, t->d, score.step_ratio, DY_VAMP_COLLAPSE_RATIO,
           t->collapse.low > 1 ? " for the last epochs" : "",
           t->data->input_mean ? "" : "standardise the inputs (data.standardize = true), ");
    fflush(stdout);
  } else if (said == DY_COLLAPSE_RECOVERED && t->rank == 0) {
    printf("# note: after epoch %d the latent space has unfolded again (smallest/largest step variance %.3g)\n",
           epoch, score.step_ratio);
    fflush(stdout);
  }
  PetscCall(PetscFree2(z0, z1));
  PetscCall(PetscFree(sums));
  PetscCall(PetscLogEventEnd(ev, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* The latent z0 of every training pair's first frame with the weights the epoch began with. */
static PetscErrorCode dy_train_encode_pairs(DyTrainer *t)
{
  const int64_t n = t->data->train.n;
  dy_real *now = t->model.params;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(dy_events[DY_EV_ENCODE], 0, 0, 0, 0));
  t->model.params = t->params_epoch_start;
  /* in the encoder's own chunks of 2 B rows, gathered from the blocks */
  for (int64_t c = 0; c < n; c += 2 * (int64_t)t->B) {
    const int64_t nb = DY_MIN(2 * (int64_t)t->B, n - c);
    const dy_real *y0, *y1;
    dy_train_gather(t, &t->data->train, nb, NULL, c, t->tx0, NULL, NULL, NULL, &y0, &y1);
    dy_model_encode(&t->model, t->work, nb, t->tx0, t->z0 + (size_t)c * t->d);
  }
  t->model.params = now;
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_ENCODE], 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Collective: the bins of an epoch after the warm-up from the encoder as the epoch began (also
 * when resuming inside it): encode, cluster, assign, count, quotas. */
static PetscErrorCode dy_train_bins(DyTrainer *t)
{
  const DyConfig *cfg = t->cfg;
  const int64_t n = t->data->train.n;

  PetscFunctionBegin;
  PetscCall(dy_train_encode_pairs(t));

  PetscCall(PetscLogEventBegin(dy_events[DY_EV_CLUSTER], 0, 0, 0, 0));
  PetscCall(dy_cluster_regspace(t->comm, t->d, n, t->z0, cfg->d_min, cfg->max_centers, &t->K, t->centers));
  PetscCall(dy_cluster_assign(t->d, n, t->z0, t->K, t->centers, t->bin));
  PetscCall(dy_cluster_counts(t->comm, n, t->bin, t->K, t->counts));
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_CLUSTER], 0, 0, 0, 0));

  PetscCall(PetscLogEventBegin(dy_events[DY_EV_RESAMPLE], 0, 0, 0, 0));
  PetscCall(dy_resample_quotas(t->comm, t->K, t->counts, cfg->gamma, t->B, cfg->d_min, t->quota, &t->kept));
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_RESAMPLE], 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Collective: output.dir and its lock, taken before the first file is written (so nothing is
 * created before training has started, nor for a run that fails early); a lock held by another
 * run is waited for up to wait seconds. */
static PetscErrorCode dy_train_claim_dir(DyTrainer *t, double wait)
{
  PetscFunctionBegin;
  if (t->dir_ready) PetscFunctionReturn(0);
  PetscCall(dy_output_mkdir(t->comm, t->cfg->dir));
  PetscCall(dy_runlock_acquire(t->comm, t->cfg->dir, wait, &t->lock));
  t->dir_ready = 1;
  PetscFunctionReturn(0);
}

/* Collective: checkpoint.h5 at the current position and/or results.h5 (refreshed with every
 * checkpoint, so that it always shows the weights a restart would continue from; results > 1:
 * with /fields/). */
static PetscErrorCode dy_train_save(DyTrainer *t, int checkpoint, int results)
{
  PetscFunctionBegin;
  if (!checkpoint && !results) PetscFunctionReturn(0);
  PetscCall(dy_train_claim_dir(t, 0));
  if (checkpoint) {
    PetscCall(PetscLogEventBegin(dy_events[DY_EV_CHECKPOINT], 0, 0, 0, 0));
    /* A checkpoint holds one copy of what is replicated: rank 0's clock stands for all. */
    PetscCallMPI(MPI_Bcast(&t->pos.seconds, 1, MPI_DOUBLE, 0, t->comm));
    /* With the next step's inputs drawn already, the streams are saved as they were before those
     * draws: a restart draws them again, the same. */
    t->state.shared = t->ahead ? &t->shared_mark : &t->shared;
    t->state.own = t->ahead ? &t->own_mark : &t->own;
    PetscCall(dy_trainstate_save(t->comm, t->cfg->dir, &t->state, t->cfg->effective ? t->cfg->effective : ""));
    PetscCall(PetscLogEventEnd(dy_events[DY_EV_CHECKPOINT], 0, 0, 0, 0));
  }
  if (results) {
    const DyOutputClusters clusters = {.K = t->K, .d = t->d, .center = t->centers, .count = t->counts};
    PetscCall(PetscLogEventBegin(dy_events[DY_EV_IO], 0, 0, 0, 0));
    PetscCall(dy_output_write_results(t->comm, t->cfg, t->data, &t->model, t->work, &clusters, &t->hist, results > 1));
    PetscCall(PetscLogEventEnd(dy_events[DY_EV_IO], 0, 0, 0, 0));
  }
  PetscFunctionReturn(0);
}

/* The epochs after the warm-up that the anchors weigh in (train.warmup_target): none when their
 * weight is 0. */
static int dy_train_anchored_epochs(const DyConfig *cfg)
{
  return cfg->beta * cfg->target_weight > 0 ? cfg->target_epochs : 0;
}

/* Collective, at the first clustering after a warm-up with targets (z0 holds the latent it left,
 * as dy_warmup_move moved it): says how closely the encoder followed them. */
static PetscErrorCode dy_train_warmup_done(DyTrainer *t)
{
  double explained;

  PetscFunctionBegin;
  PetscCall(dy_warmup_explained(t->comm, &t->warm, t->z0, &explained));
  if (!t->quiet && t->rank == 0) {
    printf("# warm-up target: the latent after the warm-up explains %.1f%% of the targets' variance\n",
           100 * explained);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

/* Collective: one epoch (0 is the warm-up), from the step the position holds (non-zero after a
 * restart inside the epoch); fills its history row. */
static PetscErrorCode dy_train_epoch(DyTrainer *t, int epoch, double *row)
{
  const DyConfig *cfg = t->cfg;
  const int64_t n = t->data->train.n;
  DyTrainPosition *pos = &t->pos;
  const int resume = pos->step > 0;
  DyLossOptions lopt = {.beta = cfg->beta, .diffusion = cfg->diffusion};
  DyLosses test = {0};
  int K = 1;
  int64_t first = 0;
  double one = (double)t->data->ntrain_global;
  const double *quota = &one;
  const double start = MPI_Wtime() - pos->seconds;

  PetscFunctionBegin;
  if (!resume) {
    PetscCall(PetscArraycpy(t->params_epoch_start, t->model.params, t->model.nparam));
    pos->loss_sum[0] = pos->loss_sum[1] = pos->loss_sum[2] = 0;
  }
  if (t->base.type) {
    /* A baseline: one bin holding every pair in every epoch, train.lr for all its nets. */
    t->rep.lr = t->prior.lr = cfg->lr;
    for (int64_t i = 0; i < n; i++) t->bin[i] = 0;
  } else if (epoch == 0) {
    /* Warm-up: one bin holding every pair, gentle beta and learning rate; with targets, the
     * encoder follows them alone. */
    lopt.beta = cfg->beta * cfg->warmup_beta_scale;
    t->targeted = t->warm.t0 ? 1 : 0;
    t->rep.lr = cfg->warmup_lr;
    for (int64_t i = 0; i < n; i++) t->bin[i] = 0;
  } else {
    t->rep.lr = cfg->lr;
    if (epoch == 1 && !resume) dy_adam_reset(&t->rep);
    PetscCall(dy_train_bins(t));
    if (t->warm.t0 && epoch == 1 && !resume) PetscCall(dy_train_warmup_done(t));
    if (t->warm.t0 && epoch > dy_train_anchored_epochs(cfg)) dy_warmup_destroy(&t->warm); /* their epochs are over */
    t->targeted = t->warm.t0 ? 2 : 0;
    K = t->K;
    quota = t->quota;
  }
  PetscCall(PetscLogEventBegin(dy_events[DY_EV_RESAMPLE], 0, 0, 0, 0));
  if (t->global)
    PetscCall(dy_sampler_plan_global(t->comm, K, quota, n, t->bin, t->B, (uint64_t)cfg->seed, epoch, &t->sampler));
  else PetscCall(dy_sampler_plan(t->comm, K, quota, n, t->bin, t->B, (uint64_t)cfg->seed, epoch, &t->sampler));
  const int64_t nsteps = t->sampler.nsteps;
  if (resume) {
    /* Another number of steps in the epoch (a per-rank batch at another rank count, or another
     * batch size): keep the fraction done. A global batch keeps the steps at any rank count. */
    first = pos->nsteps <= 0 || pos->nsteps == nsteps ? pos->step
                                                      : (int64_t)llround((double)pos->step * nsteps / pos->nsteps);
    first = DY_MIN(first, nsteps);
    PetscCall(dy_sampler_seek(&t->sampler, first));
  }
  PetscCall(PetscLogEventEnd(dy_events[DY_EV_RESAMPLE], 0, 0, 0, 0));
  pos->nsteps = nsteps;

  t->ahead = 0;
  if (first < nsteps) PetscCall(dy_train_draw_batch(t, &t->batch[t->cur], 0));
  for (int64_t s = first; s < nsteps; s++) {
    int stop = 0;
    if (epoch > 0) {
      const double f = dy_train_lr_factor(t, epoch, s, nsteps);
      t->rep.lr = cfg->lr * f;
      t->prior.lr = (t->base.type ? cfg->lr : cfg->prior_lr) * f;
    }
    PetscCall(dy_train_step(t, &lopt, epoch, s, nsteps, &stop));
    pos->step = s + 1;
    pos->seconds = MPI_Wtime() - start;
    if (stop) {
      PetscCall(dy_train_save(t, 1, 1));
      PetscCall(dy_ckpt_wait(t->comm)); /* durable before the exit code says so */
      SETERRQ(t->comm, DY_ERR_STOPPED,
              "stopped by a signal after epoch %d, step %" PRId64 " of %" PRId64 "; the checkpoint is in %s: resume "
              "with --restart",
              epoch, s + 1, nsteps, t->cfg->dir);
    }
    if (cfg->checkpoint_steps > 0 && (s + 1) % cfg->checkpoint_steps == 0 && s + 1 < nsteps)
      PetscCall(dy_train_save(t, 1, 1));
  }
  const int last = epoch == cfg->epochs - 1; /* the whole test set at the end of training */
  PetscCall(dy_train_test_losses(t, &lopt, last, &test));
  row[DY_HIST_EPOCH] = epoch;
  row[DY_HIST_REC_TRAIN] = pos->loss_sum[0] / nsteps;
  row[DY_HIST_SW_TRAIN] = pos->loss_sum[1] / nsteps;
  row[DY_HIST_PRIOR_TRAIN] = pos->loss_sum[2] / nsteps;
  row[DY_HIST_REC_TEST] = test.rec;
  row[DY_HIST_SW_TEST] = test.sw;
  row[DY_HIST_PRIOR_TEST] = test.prior;
  row[DY_HIST_BINS] = epoch == 0 || t->base.type ? 0 : t->K;
  PetscCall(dy_train_vamp(t, epoch, last, &row[DY_HIST_VAMP2_TEST]));
  if (t->targeted == 1) {
    /* The warm-up fitted the latent at the initial encoder's place and spread (dy_warmup.h). */
    dy_warmup_move(&t->warm, &t->model);
    if (!t->quiet && t->rank == 0) {
      printf("# warm-up target: latent centred and scaled by %.4g to moves of mean square 2 (the encoder's and "
             "decoder's weights)\n",
             1 / t->warm.scale);
      fflush(stdout);
    }
  }
  /* Rank 0's clock for all, so that the history is the same on every rank (checkpoints rely on it). */
  row[DY_HIST_SECONDS] = MPI_Wtime() - start;
  PetscCallMPI(MPI_Bcast(&row[DY_HIST_SECONDS], 1, MPI_DOUBLE, 0, t->comm));
  PetscFunctionReturn(0);
}

/* Rank 0: one progress line. */
static void dy_train_progress(const DyTrainer *t, int epoch, int first, const double *row, double elapsed)
{
  const double sec = row[DY_HIST_SECONDS];
  /* Each pair passes two frames through the encoder (one for the single-frame baselines). */
  const double per_pair = t->base.type && !dy_baseline_uses_pairs(t->base.type) ? 1.0 : 2.0;
  const double frames = per_pair * (double)t->sampler.nsteps * (t->global ? 1 : t->size) * t->B / DY_MAX(sec, 1e-9);
  const double eta = elapsed / (epoch + 1 - first) * (t->cfg->epochs - epoch - 1);
  printf("epoch %3d/%d  train rec %.4e sw %.4e prior %.4e  test rec %.4e sw %.4e prior %.4e  VAMP-2 %.4f"
         "  bins %3d (%3d kept)  %.1f s  %.3g frames/s  ETA %.0f s\n",
         epoch, t->cfg->epochs - 1, row[DY_HIST_REC_TRAIN], row[DY_HIST_SW_TRAIN], row[DY_HIST_PRIOR_TRAIN],
         row[DY_HIST_REC_TEST], row[DY_HIST_SW_TEST], row[DY_HIST_PRIOR_TEST], row[DY_HIST_VAMP2_TEST], t->K, t->kept,
         sec, frames, eta);
  fflush(stdout);
}

/* Collective: the test pairs evaluated in every epoch but the last (train.test_pairs): stretches
 * of S = batch_size / data.test_fraction consecutive pair ids (the span of a chunk of test pairs
 * at one rank), stretch g / S taken when its counter-based uniform is below test_pairs / (all
 * test pairs). The subset depends on the seed alone, not on the rank count, and holds about
 * test_pairs pairs. Whole stretches rather than single pairs keep each chunk a stretch of
 * trajectory as with the whole set: the sliced Wasserstein of a chunk of pairs scattered over
 * the trajectory would come out systematically lower. */
static PetscErrorCode dy_train_test_subset(DyTrainer *t, int quiet)
{
  const DyPairs *p = &t->data->test;
  const int64_t want = t->cfg->test_pairs, all = t->data->ntest_global;
  const double frac = all > 0 ? (double)want / (double)all : 1.0;
  const int64_t S = DY_MAX((int64_t)1, llround(t->B / DY_MAX(t->cfg->test_fraction, 1e-9)));
  int64_t nsel[2];

  PetscFunctionBegin;
  t->test_sel = NULL;
  t->ntest_sel = p->n;
  if (want == 0 || want >= all) PetscFunctionReturn(0);
  PetscCall(PetscMalloc1((size_t)DY_MAX(p->n, (int64_t)1), &t->test_sel));
  t->ntest_sel = 0;
  for (int64_t j = 0; j < p->n; j++)
    if (dy_hash_uniform((uint64_t)t->cfg->seed, DY_STREAM_TEST_SUBSET, (uint64_t)(p->id[j] / S)) < frac)
      t->test_sel[t->ntest_sel++] = j;
  nsel[0] = t->ntest_sel;
  nsel[1] = all;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, nsel, 1, MPI_INT64_T, MPI_SUM, t->comm));
  if (t->rank == 0 && !quiet) {
    printf("# test losses and VAMP-2: %lld of the %lld test pairs every epoch (train.test_pairs, a fixed random "
           "subset), all of them in the last epoch\n",
           (long long)nsel[0], (long long)nsel[1]);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode dy_trainer_setup(MPI_Comm comm, const DyConfig *cfg, DyData *data, DyExchangeKind exchange,
                                       DyTrainer *t)
{
  DyModelShape shape;
  DyRng init;
  const int64_t n = data->train.n;

  PetscFunctionBegin;
  t->comm = comm;
  t->cfg = cfg;
  t->data = data;
  PetscCallMPI(MPI_Comm_rank(comm, &t->rank));
  PetscCallMPI(MPI_Comm_size(comm, &t->size));
  t->B = cfg->batch_size;
  t->global = cfg->batch == DY_BATCH_GLOBAL;
  t->L = cfg->projections;
  t->d = cfg->latent_dim;
  t->D = data->D;
  t->Dy = data->Dy;
  PetscCheck(t->d <= 64, comm, DY_ERR_INPUT, "%s: model.latent_dim = %d is larger than the supported 64", cfg->path,
             t->d);
  PetscCheck(data->ntrain_global > 0, comm, DY_ERR_INPUT,
             "%s: there are no training pairs (lower data.test_fraction or data.lag, or give longer trajectories)",
             cfg->path);

  dy_config_model_shape(cfg, t->D, t->Dy, &shape);
  t->base = (DyBaselineOptions){.type = dy_baseline_from_name(cfg->type), .beta = cfg->beta, .nu = cfg->nu};
  dy_baseline_shape(t->base.type, &shape);
  PetscCall(dy_model_create(&shape, &t->model));
  /* The same stream on every rank gives every rank the same initial weights. */
  dy_rng_seed(&init, (uint64_t)cfg->seed, DY_STREAM_INIT);
  dy_model_init(&t->model, &init);
  dy_rng_seed(&t->shared, (uint64_t)cfg->seed, DY_STREAM_SHARED);
  dy_rng_seed(&t->own, (uint64_t)cfg->seed, DY_STREAM_RANK + (uint64_t)t->rank);
  PetscCall(dy_work_create(&t->model, t->B, t->L, &t->work));
  if (t->base.type) PetscCall(dy_basework_create(&t->model, t->work, t->B, t->L, &t->bwork));
  if (t->global) PetscCall(dy_swglobal_create(comm, t->B, t->L, t->d, &t->swg));
  PetscCall(dy_adam_create(0, t->model.nparam_rep, cfg->warmup_lr, &t->rep));
  PetscCall(dy_adam_create(t->model.nparam_rep, t->model.nparam - t->model.nparam_rep, cfg->prior_lr, &t->prior));

  for (int k = 0; k < 2; k++) {
    DyBatch *b = &t->batch[k];
    PetscCall(PetscMalloc7((size_t)t->B, &b->idx, (size_t)t->B * t->D, &b->x0, (size_t)t->B * t->D, &b->x1,
                           (size_t)t->B * t->Dy, &b->ty0, (size_t)t->B * t->Dy, &b->ty1, (size_t)t->L * t->d, &b->theta,
                           (size_t)2 * t->B * t->d, &b->eps));
    PetscCall(PetscMalloc1((size_t)2 * t->B * t->d, &b->target));
  }
  PetscCall(PetscMalloc4((size_t)2 * t->B * t->D, &t->tx0, (size_t)2 * t->B * t->D, &t->tx1, (size_t)2 * t->B * t->Dy,
                         &t->ty0, (size_t)2 * t->B * t->Dy, &t->ty1));
  PetscCall(PetscMalloc1(t->model.nparam + DY_RED_EXTRA, &t->red));
  PetscCall(dy_exchange_create(comm, t->model.nparam + DY_RED_EXTRA, exchange, &t->exchange));
  PetscCall(PetscCalloc5((size_t)DY_MAX(n, 1) * t->d, &t->z0, (size_t)DY_MAX(n, 1), &t->bin,
                         (size_t)cfg->max_centers * t->d, &t->centers, (size_t)cfg->max_centers, &t->counts,
                         (size_t)cfg->max_centers, &t->quota));
  PetscCall(dy_history_create(cfg->epochs, &t->hist));
  PetscCall(PetscMalloc1(t->model.nparam, &t->params_epoch_start));
  PetscCall(PetscArraycpy(t->params_epoch_start, t->model.params, t->model.nparam));
  t->lock.fd = -1;
  t->state = (DyTrainState){.model = &t->model,
                            .params_epoch_start = t->params_epoch_start,
                            .rep = &t->rep,
                            .prior = &t->prior,
                            .shared = &t->shared,
                            .own = &t->own,
                            .hist = &t->hist,
                            .K = &t->K,
                            .d = t->d,
                            .max_centers = cfg->max_centers,
                            .centers = t->centers,
                            .counts = t->counts,
                            .pos = &t->pos,
                            .cfg = cfg,
                            .data = data};
  PetscFunctionReturn(0);
}

static void dy_trainer_destroy(DyTrainer *t)
{
  if (t->dir_ready) dy_runlock_release(&t->lock);
  PetscFree(t->params_epoch_start);
  dy_history_destroy(&t->hist);
  PetscFree5(t->z0, t->bin, t->centers, t->counts, t->quota);
  dy_exchange_destroy(&t->exchange);
  PetscFree(t->red);
  PetscFree(t->test_sel);
  PetscFree4(t->tx0, t->tx1, t->ty0, t->ty1);
  for (int k = 0; k < 2; k++) {
    DyBatch *b = &t->batch[k];
    PetscFree7(b->idx, b->x0, b->x1, b->ty0, b->ty1, b->theta, b->eps);
    PetscFree(b->target);
  }
  dy_warmup_destroy(&t->warm);
  dy_sampler_free(&t->sampler);
  dy_adam_destroy(&t->prior);
  dy_adam_destroy(&t->rep);
  dy_swglobal_destroy(&t->swg);
  dy_basework_destroy(&t->bwork);
  dy_work_destroy(&t->work);
  dy_model_destroy(&t->model);
}

/* Collective: the epochs from the position on; checkpoints (with results.h5) at the end of every
 * output.checkpoint_every epochs. */
static PetscErrorCode dy_train_loop(DyTrainer *t, const DyRunOptions *opt)
{
  const DyConfig *cfg = t->cfg;
  const double start = MPI_Wtime();
  const int first = (int)t->pos.epoch;

  PetscFunctionBegin;
  for (int epoch = first; epoch < cfg->epochs; epoch++) {
    double row[DY_NHIST];
    PetscCall(dy_train_epoch(t, epoch, row));
    PetscCall(dy_history_append(&t->hist, row));
    if (!opt->quiet && t->rank == 0) dy_train_progress(t, epoch, first, row, MPI_Wtime() - start);
    t->pos = (DyTrainPosition){.epoch = epoch + 1};
    /* Checkpoints at the end of epochs start with the first clustering, so that without
     * output.checkpoint_steps a run that fails there (too many centres) leaves nothing behind.
     * Step checkpoints (in dy_train_epoch) are written in the warm-up too, where a long epoch
     * is worth keeping: such a run then leaves them, and --restart with a larger cluster.d_min
     * continues from the last of them. Stop signals checkpoint at any time. */
    const int trained = t->K > 0 || t->base.type; /* past the warm-up, or a baseline (none) */
    const int saved = cfg->checkpoint_every > 0 && (epoch + 1) % cfg->checkpoint_every == 0 && trained;
    /* results.h5 every output.results_every epochs (encoding every frame costs as much as a good
     * part of an epoch); the last one follows below. */
    const int refresh = cfg->results_every > 0 && (epoch + 1) % cfg->results_every == 0 && trained &&
                        epoch + 1 < cfg->epochs;
    PetscCall(dy_train_save(t, saved, refresh));
  }
  PetscCall(dy_train_save(t, 0, t->base.type ? 1 : 2)); /* the final results.h5, with /fields/ (DynamicsAE's prior) */
  PetscCall(dy_ckpt_wait(t->comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_train_run(MPI_Comm comm, const DyConfig *cfg, DyData *data, const DyRunOptions *opt)
{
  DyTrainer t;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(dy_train_register_events());
  memset(&t, 0, sizeof t);
  t.quiet = opt->quiet;
  ierr = dy_trainer_setup(comm, cfg, data, opt->exchange, &t);
  if (!ierr) ierr = dy_train_test_subset(&t, opt->quiet);
  if (!ierr && !opt->quiet && t.rank == 0 && t.size > 1) {
    printf("# gradient sums over %d ranks: %s\n", t.size, dy_exchange_describe(t.exchange));
    if (t.global)
      printf("# batch: %d pairs per step, split over the %d ranks (train.batch = \"global\")\n", t.B, t.size);
    else
      printf("# batch: %d pairs per rank, %d per step (train.batch = \"per_rank\"; learning rates x %.4g after the "
             "warm-up)\n",
             t.B, t.B * t.size, dy_train_lr_factor(&t, 1 + cfg->lr_warmup_epochs, 0, 1));
    fflush(stdout);
  }
  if (!ierr && opt->restart) {
    /* The folder is ours from now on (the ranks of a job just killed may still hold it for a
     * moment); the checkpoint replaces the fresh initial state. */
    int exists = 1;
    ierr = dy_train_claim_dir(&t, DY_RUNLOCK_WAIT);
    /* A job requeued before its first checkpoint finds none: it starts from the beginning. */
    if (!ierr && !opt->restart_path) ierr = dy_trainstate_exists(comm, cfg->dir, &exists);
    if (!ierr && !exists && t.rank == 0) {
      printf("# --restart: no checkpoint in %s yet; starting from the beginning\n", cfg->dir);
      fflush(stdout);
    }
    if (!ierr && exists)
      ierr = dy_trainstate_load(comm, cfg->dir, opt->restart_path, (uint64_t)cfg->seed, "resuming from", &t.state,
                                &t.same_layout);
  }
  /* Epochs with targets still to run: the warm-up's come from the encoder it began with (also
   * when resuming inside it), the anchors of the epochs after it from the data alone. */
  if (!ierr && cfg->warmup_target == DY_WARMUP_TARGET_TICA && t.pos.epoch <= dy_train_anchored_epochs(cfg) &&
      !t.base.type) {
    if (t.pos.epoch == 0) ierr = dy_train_encode_pairs(&t);
    if (!ierr)
      ierr = dy_warmup_create(comm, cfg, data, t.pos.epoch == 0 ? t.z0 : NULL, 2 * (int64_t)t.B, t.tx0, opt->quiet,
                              &t.warm);
  }
  if (!ierr) ierr = dy_signal_check_before_training(comm);
  if (!ierr) ierr = dy_train_loop(&t, opt);
  dy_trainer_destroy(&t);
  PetscCall(ierr);
  PetscFunctionReturn(0);
}
