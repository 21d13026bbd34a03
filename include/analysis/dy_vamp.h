/* Scores of a latent trajectory: VAMP-2 at a lag and the shape of its step covariance, with the
 * small dense symmetric eigensolver they need (SPEC section 10, the d x d form).
 *
 * The latent has d <= 64 dimensions, so every matrix here is tiny: a cyclic Jacobi sweep solves it
 * exactly enough in double and needs no LAPACK. The statistics are plain sums over pairs
 * (z_t, z_{t+lag}) that each rank accumulates over its own pairs; one allreduce of DyVampSums makes
 * them global, after which every rank computes the same scores. Covariances are taken without
 * Bessel's correction and with each member's own mean removed. */
#pragma once
#include "base/dy_common.h"

#define DY_VAMP_MAX_DIM 64 /* largest latent dimension scored */

/* Sums over pairs of d-dimensional points (z0, z1), all in double; allreduce it as doubles. */
typedef struct {
  int d;                                    /* dimension; set by dy_vamp_sums_reset */
  double n;                                 /* pairs */
  double s0[DY_VAMP_MAX_DIM];               /* sum z0 */
  double s1[DY_VAMP_MAX_DIM];               /* sum z1 */
  double c00[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM]; /* (d, d) sum z0 z0^T */
  double c01[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM]; /* (d, d) sum z0 z1^T */
  double c11[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM]; /* (d, d) sum z1 z1^T */
} DyVampSums;

/* What the sums say about the latent. */
typedef struct {
  double vamp2;      /* 1 + ||C00^-1/2 C01 C11^-1/2||_F^2; NAN when C00 or C11 is singular or n < 2 */
  double step_ratio; /* smallest / largest eigenvalue of the covariance of dz = z1 - z0 (1 when d = 1) */
} DyVampScore;

/* Eigen-decomposition of the symmetric a (n, n), destroyed: eigenvalues w (n) ascending and, when v
 * is not NULL, the eigenvectors as the columns of v (n, n). n <= DY_VAMP_MAX_DIM. */
void dy_vamp_eigh(int n, double *a, double *w, double *v);
/* Zeroes the sums for dimension d (1 <= d <= DY_VAMP_MAX_DIM). */
void dy_vamp_sums_reset(DyVampSums *s, int d);
/* Adds n pairs z0 (n, d) and z1 (n, d) of dy_real to the sums. */
void dy_vamp_sums_add(DyVampSums *s, int64_t n, const dy_real *z0, const dy_real *z1);
/* Collective: sums s over comm in place. */
PetscErrorCode dy_vamp_sums_allreduce(MPI_Comm comm, DyVampSums *s);
/* The scores of the (global) sums. Eigenvalues of C00 and C11 below 1e-12 of their largest are
 * treated as singular. */
void dy_vamp_score(const DyVampSums *s, DyVampScore *score);

/* The latent's step covariance is called degenerate (a collapse) below this eigenvalue ratio. */
#define DY_VAMP_COLLAPSE_RATIO 0.05
/* ... when it stays so for this many epochs running after the warm-up. The first epochs after the
 * warm-up often start from a latent on a line that then unfolds (alanine dipeptide: below 0.02 for
 * epochs 1-2 and 0.43 at epoch 3 with the defaults; on raw inputs up to 15 epochs before a recovery). */
#define DY_VAMP_COLLAPSE_EPOCHS 5

/* When to warn of a collapsed latent, from one step ratio per epoch. */
typedef struct {
  int warned;    /* the warning has been given */
  int recovered; /* after the warning, the recovery has been noted */
  int low;       /* epochs running, after the warm-up, with the ratio below DY_VAMP_COLLAPSE_RATIO */
} DyCollapseWatch;

enum { DY_COLLAPSE_QUIET = 0, DY_COLLAPSE_WARN = 1, DY_COLLAPSE_RECOVERED = 2 };

/* What to say after an epoch whose latent has step ratio `ratio`: nothing in the warm-up (the
 * latent is still forming there; warmup is 1 for that epoch); DY_COLLAPSE_WARN once, when the
 * ratio has stayed below DY_VAMP_COLLAPSE_RATIO for DY_VAMP_COLLAPSE_EPOCHS epochs running or is
 * below it at the run's last epoch (last = 1); after a warning, DY_COLLAPSE_RECOVERED once, at the
 * first epoch whose ratio is back above twice DY_VAMP_COLLAPSE_RATIO. A latent that dips in the
 * first epochs and unfolds is no collapse; one that ends collapsed is always reported. */
int dy_collapse_watch(DyCollapseWatch *w, int warmup, int last, double ratio);
