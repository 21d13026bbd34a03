/* Provisional until src/data.c lands (then this file is deleted). */
#include "dy_data.h"
PetscErrorCode dy_data_load(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  (void)data;
  return dy_input_error(comm, "%s: the data reader is not in this build", cfg->path);
}
PetscErrorCode dy_data_print_plan(MPI_Comm comm, const DyData *data, FILE *fp) { (void)comm; (void)data; (void)fp; return 0; }
void dy_data_free(DyData *data) { (void)data; }
