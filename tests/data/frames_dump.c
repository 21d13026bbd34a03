/* Writes the features each rank holds after dy_data_load, for tests/data/check_frames.py.
 *
 *   frames_dump INPUT.toml OUTDIR
 *
 * Loads the input file's data (features, atoms and standardisation as it says) and writes, per
 * rank r and trajectory i, OUTDIR/traj{i}.rank{r}.bin: int64 start, count, D, then the owned rows
 * (count, D) as doubles. Rank 0 also writes OUTDIR/stats.bin: int64 D, Dy, then input_mean,
 * input_scale (D), target_mean, target_scale (Dy) as doubles, or D = Dy = 0 when standardize is off. */
#include "data_fixture.h"
#include "io/dy_config.h"
#include "io/dy_data.h"

#include <sys/stat.h>

static int dump_block(const char *dir, int i, int rank, const DyTrajBlock *b, int D)
{
  char path[4200];
  const int64_t head[3] = {b->start, b->count, D};
  FILE *fp;
  int bad = 0;

  snprintf(path, sizeof path, "%s/traj%d.rank%d.bin", dir, i, rank);
  if (!(fp = fopen(path, "wb"))) return 1;
  bad |= fwrite(head, sizeof head, 1, fp) != 1;
  for (int64_t k = 0; k < b->count * D; k++) {
    const double v = b->x[k];
    bad |= fwrite(&v, sizeof v, 1, fp) != 1;
  }
  return bad | (fclose(fp) != 0);
}

static int dump_stats(const char *dir, const DyData *data)
{
  char path[4200];
  const int on = data->input_mean != NULL;
  const int64_t head[2] = {on ? data->D : 0, on ? data->Dy : 0};
  FILE *fp;
  int bad = 0;

  snprintf(path, sizeof path, "%s/stats.bin", dir);
  if (!(fp = fopen(path, "wb"))) return 1;
  bad |= fwrite(head, sizeof head, 1, fp) != 1;
  if (on) {
    bad |= fwrite(data->input_mean, sizeof(double), (size_t)data->D, fp) != (size_t)data->D;
    bad |= fwrite(data->input_scale, sizeof(double), (size_t)data->D, fp) != (size_t)data->D;
    bad |= fwrite(data->target_mean, sizeof(double), (size_t)data->Dy, fp) != (size_t)data->Dy;
    bad |= fwrite(data->target_scale, sizeof(double), (size_t)data->Dy, fp) != (size_t)data->Dy;
  }
  return bad | (fclose(fp) != 0);
}

static PetscErrorCode run(MPI_Comm comm, const char *input, const char *dir)
{
  DyConfig cfg;
  DyData data;
  int rank, bad = 0;

  PetscFunctionBegin;
  PetscCheck(dir, comm, PETSC_ERR_ARG_WRONG, "usage: frames_dump INPUT.toml OUTDIR");
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(dy_config_load(comm, input, 0, NULL, &cfg));
  PetscCall(dy_data_load(comm, &cfg, &data));
  if (rank == 0) mkdir(dir, 0755);
  PetscCallMPI(MPI_Barrier(comm));
  for (int i = 0; i < data.ntraj; i++) bad |= dump_block(dir, i, rank, &data.block[i], data.D);
  if (rank == 0) bad |= dump_stats(dir, &data);
  CHECK(!bad, "cannot write the dump in %s", dir);
  dy_data_free(&data);
  dy_config_free(&cfg);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv) { return dy_test_main(argc, argv, "frames_dump INPUT.toml OUTDIR", run); }
