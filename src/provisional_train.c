/* Provisional until src/train.c lands (then this file is deleted). */
#include "dy_train.h"
PetscErrorCode dy_train_run(MPI_Comm comm, const DyConfig *cfg, DyData *data, const DyRunOptions *opt)
{
  (void)data; (void)opt;
  return dy_input_error(comm, "%s: training is not in this build", cfg->path);
}
