/* Regular-space clustering of the latent points and their Voronoi bins (SPEC sections 4.2, 4.3, 5).
 *
 * Sizes: d latent dimension, n points (n_local: this rank's), K centres, max_centers the cap from
 * cluster.max_centers. Points z are (n, d) row-major dy_real; centres are (K, d) row-major double
 * (exact copies of the points that became centres). "Within d_min" means |z - c| <= d_min; a
 * point becomes a centre when it is strictly farther than d_min from every centre so far.
 * Distances are compared squared, all by one kernel, so every routine here takes the same
 * decision for the same pair of coordinates: the results are deterministic and, for the
 * distributed routines, bitwise identical on every rank.
 *
 * No I/O and no global state; the distributed routines are collective on the communicator
 * passed in and use only collectives on it. */
#pragma once
#include "base/dy_common.h"

/* Serial regular-space clustering, in point order. centers must hold max_centers * d doubles.
 * Needing more than max_centers centres is a DY_ERR_INPUT error (raised on PETSC_COMM_SELF)
 * telling the user to raise cluster.d_min. Non-finite coordinates are a DY_ERR_DIVERGED error. */
PetscErrorCode dy_cluster_serial(int d, int64_t n, const dy_real *z, double d_min, int max_centers, int *K,
                                 double *centers);

/* Collective on comm: exact distributed regular-space clustering of the union of every rank's
 * points. Rounds: each rank runs the serial scan over its points not yet within d_min of a merged
 * centre and proposes the centres it finds (at most `max_proposals` per round); the proposals of
 * all ranks are gathered (one allgather of counts, one allgatherv) and merged in rank order, then
 * proposal order, keeping a proposal only if it is farther than d_min from every centre kept so
 * far; points within d_min of a newly kept centre are covered. Rounds repeat until no rank
 * proposes (every point covered). Each round keeps at least one centre, so there are at most
 * max_centers + 1 rounds.
 * Guarantees over the global data: centres pairwise farther than d_min apart, every point within
 * d_min of a centre, the same K and centres (bitwise) on every rank, and on one rank exactly the
 * centres of dy_cluster_serial on the same points in the same order (also with a cap, since the
 * scan resumes where the serial algorithm would). The result on P > 1 ranks depends on how the
 * points are spread over the ranks, not on timing.
 * Errors (on every rank together): more than max_centers centres -> DY_ERR_INPUT telling the user
 * to raise cluster.d_min; non-finite coordinates on any rank -> DY_ERR_DIVERGED.
 * Cost per rank: O(n_local K d) distance work over all rounds (squared distances, vectorised over
 * centres), plus P * max_proposals * d doubles gathered per round.
 * max_proposals <= 0 picks the default dy_cluster_default_proposals(max_centers, P).
 * rounds (may be NULL) returns the number of merge rounds. centers holds max_centers * d. */
PetscErrorCode dy_cluster_regspace_rounds(MPI_Comm comm, int d, int64_t n_local, const dy_real *z, double d_min,
                                          int max_centers, int max_proposals, int *K, double *centers, int *rounds);
/* dy_cluster_regspace_rounds with the default proposal cap. Collective on comm. */
PetscErrorCode dy_cluster_regspace(MPI_Comm comm, int d, int64_t n_local, const dy_real *z, double d_min,
                                   int max_centers, int *K, double *centers);
/* Default cap on the proposals of one rank per round: all of max_centers for up to two ranks,
 * then about 2 max_centers / P (at least 16), so the gathered proposals stay about twice the
 * largest possible result however many ranks there are. */
int dy_cluster_default_proposals(int max_centers, int size);

/* Voronoi assignment: bin[i] = index of the centre nearest to z_i (ties: the lowest index).
 * Local, no communication; K >= 1 when n > 0. */
PetscErrorCode dy_cluster_assign(int d, int64_t n, const dy_real *z, int K, const double *centers, int *bin);
/* Collective on comm: counts[k] = number of points in bin k over all ranks (one allreduce). */
PetscErrorCode dy_cluster_counts(MPI_Comm comm, int64_t n_local, const int *bin, int K, int64_t *counts);
