/* data.standardize (SPEC section 9): every input and target feature shifted and scaled to zero
 * mean and unit variance over the training frames.
 *
 * The training frames are both members of every training pair, each counted once per pair, so the
 * statistics depend only on the split, not on the rank count: each rank sums over the pairs whose
 * first frame it owns (both frames are in its block, which keeps lag frames of overlap), in double,
 * and two allreduces (the sums, then the squared deviations from the global mean) make them global.
 * A feature whose spread is below DY_STANDARDIZE_CONSTANT of its magnitude (or exactly zero) is
 * constant: it is shifted to zero and keeps its scale (scale 1), and rank 0 reports it once. The
 * statistics live in DyData (x_std = (x - mean) / scale) and are saved in every checkpoint; a
 * restarted run maps its data onto the saved ones, so it continues with the statistics it began with. */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"
#include "io/dy_data.h"

/* Relative spread below which a feature counts as constant: a few float32 rounding steps. */
#define DY_STANDARDIZE_CONSTANT 1e-5

/* Collective: computes the statistics of data's blocks (inputs, and targets when given) over the
 * training frames, stores them in data->input_mean/input_scale and target_mean/target_scale (the
 * input ones again without targets) and standardises the blocks. Call before the pairs are formed. */
PetscErrorCode dy_standardize_fit(MPI_Comm comm, const DyConfig *cfg, DyData *data);
/* Replaces data's statistics by the given ones (input D, target Dy), re-mapping every block and
 * pair already standardised with the old statistics. Local; every rank passes the same values. */
PetscErrorCode dy_standardize_restore(DyData *data, const double *input_mean, const double *input_scale,
                                      const double *target_mean, const double *target_scale);
/* rows (n, D) from standardised back to original units: rows * scale + mean. */
void dy_standardize_undo(int D, const double *mean, const double *scale, int64_t n, dy_real *rows);
