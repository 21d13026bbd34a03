/* results.h5 (SPEC section 8): latent coordinates and reconstructions of every frame, the last
 * clustering, the per-epoch history and the run's provenance, written collectively with Parallel
 * HDF5 under a temporary name and renamed when complete. */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "nn/dy_model.h"

/* Columns of the per-epoch history; /history/<name> in results.h5. */
typedef enum {
  DY_HIST_EPOCH = 0,
  DY_HIST_REC_TRAIN,
  DY_HIST_SW_TRAIN,
  DY_HIST_PRIOR_TRAIN,
  DY_HIST_REC_TEST,
  DY_HIST_SW_TEST,
  DY_HIST_PRIOR_TEST,
  DY_HIST_BINS,
  DY_HIST_SECONDS,
  DY_HIST_VAMP2_TEST, /* VAMP-2 of the latent on the test pairs at data.lag (dy_vamp.h) */
  DY_NHIST
} DyHistColumn;

/* Dataset names of the columns, in DyHistColumn order. */
extern const char *const dy_history_names[DY_NHIST];

/* One row per finished epoch, identical on every rank. */
typedef struct {
  int n;          /* epochs recorded */
  int cap;        /* rows allocated */
  double *rows;   /* (cap, DY_NHIST) */
} DyHistory;

PetscErrorCode dy_history_create(int cap, DyHistory *hist);
/* Appends one row (DY_NHIST values); grows the table when needed. */
PetscErrorCode dy_history_append(DyHistory *hist, const double *row);
void dy_history_destroy(DyHistory *hist);

/* The bins of the last clustering (identical on every rank). */
typedef struct {
  int K;                 /* centres; 0 when no clustering was done (warm-up only) */
  int d;                 /* latent dimension */
  const double *center;  /* (K, d) */
  const int64_t *count;  /* (K) training pairs per bin, global */
} DyOutputClusters;

/* Collective on comm: encodes (and decodes, with cfg->save_reconstruction) the frames of this
 * rank's blocks, creates cfg->dir (mkdir -p) and writes cfg->dir/results.h5 through
 * results.h5.tmp, renamed by rank 0 once every rank has closed it: /latent, /reconstruction,
 * /clusters, /history and /model/ (SPEC sections 8 and 12). With with_fields, and a latent
 * dimension of 1 to 3, also /fields/ (dy_fields.h, the [analysis] keys) and a summary line on
 * rank 0; with a larger latent dimension a line says that the fields are skipped. `work` is any
 * workspace of the model (dy_model_encode blocks internally). model == NULL (model.type = "tica"):
 * the latent is the first cfg->latent_dim TICs of data->tica, with no reconstruction, /model/ or
 * /fields/. /tica/ is written whenever data->tica is set. */
PetscErrorCode dy_output_write_results(MPI_Comm comm, const DyConfig *cfg, const DyData *data, const DyModel *model,
                                       DyWork *work, const DyOutputClusters *clusters, const DyHistory *hist,
                                       int with_fields);

/* Collective on comm: rank 0 creates the folder and its parents (like mkdir -p); a failure is a
 * DY_ERR_INPUT error naming the folder, raised on every rank. */
PetscErrorCode dy_output_mkdir(MPI_Comm comm, const char *dir);
