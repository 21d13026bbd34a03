/* The training state as a checkpoint (SPEC sections 6 and 8): what must be saved so that a run
 * resumes exactly where it stopped, and its loading at the same or another rank count.
 *
 * Resuming inside an epoch needs that epoch's bins, which came from the encoder as it was when the
 * epoch began; rather than storing every pair's bin, the checkpoint keeps those weights
 * (params_epoch_start): the loader re-encodes with them and so rebuilds the same clustering and
 * plan, then skips the steps already done. At the same rank count every array is restored and the
 * continuation is bitwise that of an uninterrupted run. At another rank count the pairs are shared
 * out differently, so the clustering is redone on the new layout (the same centres up to the
 * merge order), the position in the epoch is carried over as a fraction of its steps, and each
 * rank's noise stream is seeded afresh from (seed, epoch, step, rank): the run continues
 * correctly but not bitwise as it would have at the old count.
 *
 * What shapes the weights is kept as a table of named entries ("model.encoder" = "[32, 16]"):
 * every checkpoint stores it (array "shape", text lines "key=value"), and a restart whose table
 * differs in any entry is refused, naming each key that differs with both values. Entries come
 * from the model where it has them (widths, feature counts, activation), else from the
 * configuration or the build. A key added later is one row of the table in trainstate.c, with the
 * value that checkpoints written before it existed implicitly hold. Checkpoints older than the
 * table itself are checked by their parameter counts and latent_dim only, with a warning. The
 * data.standardize statistics are saved too: a restarted run maps its freshly read data onto them,
 * so the model keeps seeing the inputs it was trained on whatever the new rank count makes of the
 * sums. */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_model.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "io/dy_output.h"
#include "base/dy_rng.h"

/* Where the run stands: the next step to take is `step` of epoch `epoch`. */
typedef struct {
  int64_t epoch;         /* current epoch (== epochs when the run is finished) */
  int64_t step;          /* steps of this epoch already taken */
  int64_t nsteps;        /* steps in this epoch at the writer's rank count (0 before its plan) */
  double loss_sum[3];    /* this epoch's sums of L_rec, L_sw, L_prior over the steps taken */
  double seconds;        /* this epoch's wall time so far */
} DyTrainPosition;

/* Everything the trainer owns that a checkpoint saves; pointers into the trainer's own arrays. */
typedef struct {
  DyModel *model;              /* weights (params) */
  dy_real *params_epoch_start; /* (nparam) weights when the current epoch began */
  DyAdam *rep, *prior;         /* the two optimisers: moments, step counts */
  DyRng *shared;               /* the stream shared by all ranks */
  DyRng *own;                  /* this rank's stream */
  DyHistory *hist;             /* finished epochs */
  int *K;                      /* centres of the current clustering */
  int d;                       /* latent dimension */
  int max_centers;             /* room in centers and counts */
  double *centers;             /* (max_centers, d) */
  int64_t *counts;             /* (max_centers) */
  DyTrainPosition *pos;        /* position in the run */
  const DyConfig *cfg;         /* the run's configuration (the model keys of the shape table) */
  DyData *data;                /* its data.standardize statistics are saved, and restored on loading */
} DyTrainState;

/* 1 when the weights and both optimisers' moments are finite (identical on every rank, so the
 * answer is too). */
int dy_trainstate_finite(const DyTrainState *st);

/* Collective: writes dir/checkpoint.h5 atomically (the previous becomes checkpoint.prev.h5).
 * Refuses (PETSC_ERR_FP) to write non-finite weights or moments, so a diverged state never
 * replaces the last good checkpoint. config is the effective configuration text. */
PetscErrorCode dy_trainstate_save(MPI_Comm comm, const char *dir, const DyTrainState *st, const char *config);

/* Collective: loads the newest usable checkpoint of dir (or path when not NULL) into st, whose
 * arrays are allocated for the current model, and re-maps st->data onto the saved statistics. *same_layout is 1 when the checkpoint was written at
 * this rank count (the own stream is then restored too). seed is used to seed fresh own streams
 * otherwise. A checkpoint whose shape table differs from this run's is a DY_ERR_INPUT error
 * naming the file and every key that differs, with both values. Rank 0 prints one line, "# " +
 * what + " CHECKPOINT: epoch, step, writers" (what: e.g. "resuming from"). */
PetscErrorCode dy_trainstate_load(MPI_Comm comm, const char *dir, const char *path, uint64_t seed, const char *what,
                                  DyTrainState *st, int *same_layout);

/* Collective: 1 when dir holds a checkpoint or its previous copy (usable or not). */
PetscErrorCode dy_trainstate_exists(MPI_Comm comm, const char *dir, int *exists);
