/* The training loop (SPEC sections 3-5): epochs, distributed clustering, resampling, the
 * gradient allreduce, progress lines, results. */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "parallel/dy_exchange.h"

/* Options of the run that do not come from the input file. */
typedef struct {
  int quiet;                /* no per-epoch progress lines */
  int restart;              /* resume from a checkpoint */
  const char *restart_path; /* the checkpoint to resume from; NULL: newest in output.dir */
  DyExchangeKind exchange;  /* how the gradients are summed over the ranks (-dy_exchange) */
} DyRunOptions;

/* Collective on comm: trains on data as cfg says and writes cfg->dir/results.h5. */
PetscErrorCode dy_train_run(MPI_Comm comm, const DyConfig *cfg, DyData *data, const DyRunOptions *opt);
