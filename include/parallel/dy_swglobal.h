/* The sliced-Wasserstein loss of a batch whose rows are spread over the ranks (SPEC 14).
 *
 * Sizes: P ranks, rank r holds share[r] rows of the step's global batch of B = sum share rows,
 * d latent dimension, L projections.
 *
 * With train.batch = "global" each rank holds only a share of the batch, B / P rows on average,
 * and the mean of per-rank distances over such small samples is not the distance of the batch:
 * the empirical W2 of n samples is biased upward, more so as n shrinks, so the loss would change
 * with P. Here every rank gathers the moves dz and the prior moves dzp of all rows, in rank order
 * (one MPI_Allgatherv of 2 B d values: 4 KB for B = 256, d = 2), runs the one-bin kernel
 * (dy_sw_loss) on the whole batch and keeps the gradient of its own rows. The loss and every
 * row's gradient are then those of one rank holding the batch in that order (to the rounding of
 * the moves, whose products round differently for other row counts), and bitwise the same on
 * every rank, so the loss needs no exchange.
 *
 * Two ways after the gather (PETSc option -dy_sw_global auto|gather|split):
 *   gather  every rank sorts all L projections of the whole batch, redundantly: O(L B log B) per
 *           rank whatever P (tools/bench_sw on one Zen 4 core: 37-44 us with the gradient for
 *           B = 256, L = 50; 2-9 us for 16-64 rows), and no further message.
 *   split   rank r sorts only its part of the projections (whole groups of the kernel's 4, so
 *           about L / P of them) for all rows, then one MPI_Reduce_scatter of B d values sums the
 *           rows' gradients back to their ranks. The sort shrinks with P, at the price of a third
 *           collective in the step; the loss is then each rank's part, summed by the caller.
 *   auto    (default) gather up to DY_SWGLOBAL_GATHER_MAX ranks, split beyond: at 8 ranks a
 *           share of the default batch is 32 rows, whose nets cost about what the whole-batch
 *           sort costs; beyond, the redundant sort would dominate the step.
 * Gathering the projections instead of the moves would move L / d times more data (25 x at
 * d = 2, L = 50) for the same sort, so it is not offered. -log_view shows DySwGather (including
 * the wait for the slowest rank), DySwSort and DySwReduce (split only). */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_model.h"

/* auto: beyond this many ranks the projections are split */
#define DY_SWGLOBAL_GATHER_MAX 8

typedef enum { DY_SWGLOBAL_GATHER = 1, DY_SWGLOBAL_SPLIT = 2 } DySwGlobalWay;

typedef struct {
  MPI_Comm comm;            /* the ranks sharing the batch */
  DySwGlobalWay way;        /* from -dy_sw_global */
  int rank, size;           /* as MPI says, on comm */
  int Bmax, L, d;           /* largest global batch, projections, latent dimension */
  dy_real *dz, *dzp, *gdz;  /* (Bmax, d) the gathered moves, prior moves, gradient */
  dy_real *send, *recv;     /* (Bmax, 2 d) one rank's dz rows then dzp rows; all ranks' in rank order */
  int *count, *displ;       /* (size) values per rank and their offsets in recv */
  void *work;               /* dy_sw_work_bytes(Bmax, L, d), 64-byte aligned */
} DySwGlobal;

/* Collective: a bad -dy_sw_global is an input error (exit 2), found before any data are read. */
PetscErrorCode dy_swglobal_check_options(MPI_Comm comm);

/* Collective: room for global batches of up to Bmax rows with L projections in d dimensions. */
PetscErrorCode dy_swglobal_create(MPI_Comm comm, int Bmax, int L, int d, DySwGlobal *sw);
/* Collective: share (size) rows per rank, the same array on every rank (sum <= Bmax, a rank's may
 * be 0); dz, dzp (share[rank], d) this rank's rows; theta (L, d). *loss = L_sw of the whole batch
 * (the same on every rank) with the gather way, this rank's part of it with split (the parts sum
 * to it); with gdz non-NULL, gdz (share[rank], d) = beta d(L_sw)/d(dz) of this rank's rows
 * (overwritten). */
PetscErrorCode dy_swglobal_loss(DySwGlobal *sw, const int *share, const dy_real *theta, const dy_real *dz,
                                const dy_real *dzp, double beta, dy_real *gdz, double *loss);
/* Collective: the losses and gradients of one step of a global batch, this rank holding nb =
 * share[rank] of its rows (possibly 0): x0, x1 (nb, D), y0, y1 (nb, Dy), eps (nb, d), theta (L, d)
 * the same on every rank. The nets forward with the losses and gradients scaled by 1 / B (B =
 * sum of share), the sliced Wasserstein of the whole batch, the nets backward. Then
 * model->grads holds this rank's part of the batch's gradient (zeros when nb = 0), losses->rec
 * and losses->prior its part of the batch's losses: their sums over the ranks are those of one
 * rank holding the whole batch in rank order. losses->sw is as *loss of dy_swglobal_loss.
 * The nets' phases are timed in the event ev_nets. */
PetscErrorCode dy_swglobal_step(DySwGlobal *sw, DyModel *model, DyWork *work, const int *share, const dy_real *x0,
                                const dy_real *x1, const dy_real *y0, const dy_real *y1, const dy_real *theta,
                                const dy_real *eps, const DyLossOptions *opt, PetscLogEvent ev_nets,
                                DyLosses *losses);
void dy_swglobal_destroy(DySwGlobal *sw);
