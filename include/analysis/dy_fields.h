/* Fields of the latent space (SPEC section 12): the learned force and diffusion, and two free
 * energies, on a regular grid, for latent dimensions 1 to 3.
 *
 * The grid: n points per axis (analysis.grid), the centres of n equal cells covering
 * [min - m r, max + m r] on each axis, where min, max and r = max - min are those of the latent
 * points of all ranks (allreduced) and m is analysis.margin. Arrays are in C order, axis 0
 * slowest, vectors with the component last: (n_0, ..., n_{d-1}, d). The histogram counts the
 * frames of every rank in each cell (one allreduce); free_energy_hist = -ln(count), NaN where a
 * cell is empty. The force free energy is the F whose gradient best matches -f in least squares
 * on the cell faces: with f on a face the mean of its two cells, minimising
 * sum_faces w_face ((F_k - F_i) / h + f_face)^2 gives, cell by cell, the five- (seven-, three-)
 * point operator div(w grad F) equal to -div(w f) on the faces, where faces on the grid's border
 * are absent: that is the natural (Neumann) boundary condition, nothing is imposed. The face
 * weight w_face (analysis.force_weight) is 1 for "none", which makes it lap F = -div f, and for
 * "density" (the default) the mean over its two cells of (frames + 1) / (mean frames per cell):
 * the fit then follows the force where the data are, as the histogram does, and the cells with
 * few frames, where the force net has seen little and learned a weak force, count little; the
 * one frame added keeps the empty cells coupled (each face's weight positive), so the constants
 * stay the only null space and F is defined everywhere. The
 * system is solved with PETSc's KSP (conjugate gradients, Jacobi, relative tolerance 1e-12;
 * options prefix -fields_) on a DMDA of the grid distributed over the ranks: each rank evaluates
 * the force and log-diffusion nets on the points it owns, one ghost exchange brings its
 * neighbours' forces for the faces on its border, and it assembles its rows. The DMDA's x axis
 * is latent axis d-1, so its natural ordering is the C order above. The matrix is singular with
 * the constants as its null space, declared with MatNullSpace; the right-hand side sums to zero
 * (every interior face enters two rows with opposite signs) and is also projected onto the range,
 * so the system is consistent and CG returns the solution of zero mean. Both free energies are
 * then shifted to minimum 0. The results are gathered onto every rank.
 *
 * The force f on the grid is the force net's, with its output layer refitted first when
 * analysis.force_refit is on and pairs are given: the prior loss of SPEC section 3 is, with the
 * hidden layers and the log-diffusion net held fixed, a weighted least-squares problem in the
 * output layer (f_i = w_i . [h, 1], h the last hidden layer's activations, or z for a net without
 * hidden layers): sum over pairs of M_i (t_i - w_i . [h, 1])^2 / 2 with t_i = dz_i / M_i - dg_i/dz_i,
 * all at z0. Its exact minimiser replaces Adam's last iterate, which at the constant prior_lr keeps
 * a noise of its own: on the three-well example that noise gave the learned drift a mean over the
 * frames of 0.05 to 0.08 latent units per lag where the data's is 0 to within 0.003, and a tilt of
 * F across the latent. The normal equations (one (H+1)^2 system per latent axis) are summed over
 * the ranks' pairs (one allreduce, of double-double sums so that the split over the ranks does
 * not change them) and solved by Cholesky on every rank, with a ridge of 1e-12 of
 * the largest diagonal entry against hidden units that never vary. Evaluated in double precision. */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_model.h"

#define DY_FIELDS_MAX_DIM 3        /* latent dimensions the fields are computed for */
#define DY_FIELDS_WELL_SAMPLED 100 /* frames a cell needs to enter rms_difference_kT */

/* analysis.force_weight: the weight of a cell face in the least-squares fit of the force */
typedef enum { DY_FIELDS_WEIGHT_DENSITY = 0, DY_FIELDS_WEIGHT_NONE = 1 } DyFieldsWeight;

typedef struct {
  int grid;              /* points per axis, >= 2 */
  double margin;         /* fraction of the range added on each side, >= 0 */
  DyFieldsWeight weight; /* the faces' weights: the frames of their cells, or all 1 */
  int refit;             /* bool: refit the force net's output layer on the pairs first */
} DyFieldsOptions;

/* Everything of /fields/, the same on every rank. */
typedef struct {
  int d;                     /* latent dimension, 1 to DY_FIELDS_MAX_DIM */
  int n[DY_FIELDS_MAX_DIM];  /* points per axis */
  double h[DY_FIELDS_MAX_DIM]; /* cell width per axis */
  double *axis[DY_FIELDS_MAX_DIM]; /* (n[j]) cell centres */
  int64_t npoint;            /* n[0] * ... * n[d-1] */
  double *force;             /* (npoint, d) learned force f */
  double *diffusion;         /* (npoint, d) diagonal of M = exp(g) */
  int64_t *count;            /* (npoint) frames per cell, all ranks */
  double *free_energy_hist;  /* (npoint) -ln(count) in kT, minimum 0, NaN where empty */
  double *free_energy_force; /* (npoint) solution of div(w grad F) = -div(w f), minimum 0 */
  DyFieldsWeight weight;     /* the face weights w it was solved with */
  int64_t refit_pairs;       /* pairs the force's output layer was refitted on, all ranks; 0: not refitted */
  double refit_change;       /* largest change of an output-layer weight or bias by the refit */
  int64_t well_sampled;      /* cells holding >= DY_FIELDS_WELL_SAMPLED frames */
  double rms_difference_kT;  /* RMS of the two free energies over those cells, NaN when none */
  int iterations;            /* KSP iterations of the solve */
} DyFields;

/* Collective on comm: the fields of the model for the latent points z (n, d) of this rank
 * (every frame of every rank together make the histogram). z0, z1 (npair, d) are the latent of
 * this rank's pairs (the training pairs), used by the refit; with opt->refit off or no pair on any
 * rank the output layer is kept. model->d must be 1 to 3 (PETSC_ERR_ARG_OUTOFRANGE otherwise);
 * work is any workspace of the model. A solve that does not converge is an error
 * (PETSC_ERR_NOT_CONVERGED). Free with dy_fields_free. */
PetscErrorCode dy_fields_compute(MPI_Comm comm, const DyModel *model, DyWork *work, int64_t n, const dy_real *z,
                                 int64_t npair, const dy_real *z0, const dy_real *z1, const DyFieldsOptions *opt,
                                 DyFields *fields);
void dy_fields_free(DyFields *fields);
