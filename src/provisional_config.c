/* Provisional until src/config.c lands (then this file is deleted). */
#include "dy_config.h"
PetscErrorCode dy_config_load(MPI_Comm comm, const char *path, int nset, char *const *sets, DyConfig *cfg)
{
  (void)nset; (void)sets; (void)cfg;
  return dy_input_error(comm, "%s: the input reader is not in this build", path);
}
PetscErrorCode dy_config_print(MPI_Comm comm, const DyConfig *cfg, FILE *fp) { (void)comm; (void)cfg; (void)fp; return 0; }
void dy_config_free(DyConfig *cfg) { (void)cfg; }
