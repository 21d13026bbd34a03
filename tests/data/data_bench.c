/* Times dy_data_load on one large trajectory (not a test; run it by hand, add -log_view for
 * the phases DyDataCheck, DyDataRead and DyDataScatter).
 *
 *   mpiexec -n P data_bench DIR FRAMESxFEATURES       e.g. data_bench /tmp/bench 200000x2
 *
 * Rank 0 writes DIR/bench_FRAMESxFEATURES.h5 (float32) when it is missing. */
#include "data_fixture.h"
#include "io/dy_data.h"

#include <stdlib.h>
#include <sys/stat.h>

static PetscErrorCode run(MPI_Comm comm, const char *dir, const char *shape)
{
  char path[4096];
  long long frames = 0;
  int features = 0, rank, bad = 0;
  struct stat st;
  DyDataRef ref;
  DyConfig cfg;
  DyData data;
  double t0, t1;

  PetscFunctionBegin;
  PetscCheck(shape && sscanf(shape, "%lldx%d", &frames, &features) == 2, comm, PETSC_ERR_ARG_WRONG,
             "expected FRAMESxFEATURES, e.g. 200000x2");
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  snprintf(path, sizeof path, "%s/bench_%s.h5", dir, shape);
  if (rank == 0 && stat(path, &st) != 0) {
    mkdir(dir, 0755);
    bad = dy_test_write_traj(path, "/x", frames, features, H5T_IEEE_F32LE, 0, 0, 0);
  }
  PetscCallMPI(MPI_Bcast(&bad, 1, MPI_INT, 0, comm));
  PetscCheck(!bad, comm, PETSC_ERR_FILE_WRITE, "cannot write %s", path);
  memset(&cfg, 0, sizeof cfg);
  ref = (DyDataRef){.file = path, .dataset = "/x", .text = NULL};
  cfg.ntraj = 1;
  cfg.input = &ref;
  cfg.lag = 1;
  cfg.test_fraction = 0.2;
  PetscCallMPI(MPI_Barrier(comm));
  t0 = MPI_Wtime();
  PetscCall(dy_data_load(comm, &cfg, &data));
  t1 = MPI_Wtime() - t0;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &t1, 1, MPI_DOUBLE, MPI_MAX, comm));
  PetscCall(dy_data_print_plan(comm, &data, stdout));
  if (rank == 0) printf("dy_data_load: %lld x %d frames in %.3f s\n", frames, features, t1);
  dy_data_free(&data);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv) { return dy_test_main(argc, argv, "data_bench DIR FRAMESxFEATURES", run); }
