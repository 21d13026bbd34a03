/* data.standardize: statistics over the training frames, their use and their restoration. See
 * dy_standardize.h. */
#include "io/dy_standardize.h"
#include "base/dy_rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Adds each training frame's row of the blocks (xs: inputs or targets, D columns) to sum, or, when
 * mean is given, its squared deviation from mean. Returns the frames counted. */
static int64_t dy_standardize_pass(const DyConfig *cfg, const DyData *data, int targets, int D, const double *mean,
                                   double *sum)
{
  int64_t frames = 0;

  for (int i = 0; i < data->ntraj; i++) {
    const DyTrajBlock *b = &data->block[i];
    const dy_real *x = targets ? b->y : b->x;
    const int64_t tend = DY_MIN(b->start + b->count, data->frames[i] - data->lag);

    for (int64_t t = b->start; t < tend; t++) {
      const uint64_t g = (uint64_t)(data->pair_offset[i] + t);
      if (dy_hash_uniform((uint64_t)cfg->seed, DY_STREAM_SPLIT, g) < cfg->test_fraction) continue;
      for (int m = 0; m < 2; m++) {
        const dy_real *row = x + (t - b->start + m * data->lag) * D;
        if (mean)
          for (int k = 0; k < D; k++) sum[k] += ((double)row[k] - mean[k]) * ((double)row[k] - mean[k]);
        else
          for (int k = 0; k < D; k++) sum[k] += row[k];
      }
      frames += 2;
    }
  }
  return frames;
}

/* Collective: mean and scale (D) of the inputs or targets; reports the constant features. */
static PetscErrorCode dy_standardize_stats(MPI_Comm comm, const DyConfig *cfg, const DyData *data, int targets, int D,
                                           double *mean, double *scale)
{
  int64_t frames;
  int nconst = 0, first = -1;

  PetscFunctionBegin;
  memset(mean, 0, (size_t)D * sizeof *mean);
  memset(scale, 0, (size_t)D * sizeof *scale);
  frames = dy_standardize_pass(cfg, data, targets, D, NULL, mean);
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &frames, 1, MPI_INT64_T, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, mean, D, MPI_DOUBLE, MPI_SUM, comm));
  for (int k = 0; k < D; k++) mean[k] = frames ? mean[k] / (double)frames : 0;
  (void)dy_standardize_pass(cfg, data, targets, D, mean, scale);
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, scale, D, MPI_DOUBLE, MPI_SUM, comm));
  double sumvar = 0;
  for (int k = 0; k < D; k++) {
    const double sd = frames ? sqrt(scale[k] / (double)frames) : 0;
    if (sd == 0 || sd <= DY_STANDARDIZE_CONSTANT * fabs(mean[k])) {
      scale[k] = 0; /* constant: marked, set to 1 below */
      if (!nconst++) first = k;
    } else {
      scale[k] = sd;
      sumvar += sd * sd;
    }
  }
  /* data.scale = "common": one scale for every feature keeps their relative sizes (a coordinate
   * that hardly moves stays small, as in the raw data) while bringing the whole set to unit size. */
  const double common = nconst < D ? sqrt(sumvar / (double)(D - nconst)) : 1;
  for (int k = 0; k < D; k++) scale[k] = scale[k] == 0 ? 1 : (cfg->scale == DY_SCALE_COMMON ? common : scale[k]);
  if (nconst && dy_is_root(comm)) {
    printf("# data.standardize: %d of %d %s features %s constant over the training frames (the first is feature %d): "
           "shifted to zero, not scaled\n",
           nconst, D, targets ? "target" : "input", nconst == 1 ? "is" : "are", first);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

/* rows (n, D) := (rows * old_scale + old_mean - mean) / scale; old NULL: rows are in original units. */
static void dy_standardize_map(int D, const double *old_mean, const double *old_scale, const double *mean,
                               const double *scale, int64_t n, dy_real *rows)
{
  for (int64_t f = 0; f < n; f++)
    for (int k = 0; k < D; k++) {
      double v = rows[f * D + k];
      if (old_mean) v = v * old_scale[k] + old_mean[k];
      rows[f * D + k] = (dy_real)((v - mean[k]) / scale[k]);
    }
}

PetscErrorCode dy_standardize_fit(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  const int D = data->D, Dy = data->Dy;

  PetscFunctionBegin;
  PetscCall(PetscMalloc4(D, &data->input_mean, D, &data->input_scale, Dy, &data->target_mean, Dy, &data->target_scale));
  PetscCall(dy_standardize_stats(comm, cfg, data, 0, D, data->input_mean, data->input_scale));
  if (data->has_target) PetscCall(dy_standardize_stats(comm, cfg, data, 1, Dy, data->target_mean, data->target_scale));
  else {
    PetscCall(PetscArraycpy(data->target_mean, data->input_mean, D));
    PetscCall(PetscArraycpy(data->target_scale, data->input_scale, D));
  }
  for (int i = 0; i < data->ntraj; i++) {
    DyTrajBlock *b = &data->block[i];
    dy_standardize_map(D, NULL, NULL, data->input_mean, data->input_scale, b->nread, b->x);
    if (data->has_target) dy_standardize_map(Dy, NULL, NULL, data->target_mean, data->target_scale, b->nread, b->y);
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_standardize_restore(DyData *data, const double *input_mean, const double *input_scale,
                                      const double *target_mean, const double *target_scale)
{
  const int D = data->D, Dy = data->Dy, yt = data->has_target;

  PetscFunctionBegin;
  PetscCheck(data->input_mean, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONGSTATE, "the data are not standardised");
  /* The same statistics (a restart at the same rank count): nothing to map, bit for bit. */
  if (!memcmp(data->input_mean, input_mean, (size_t)D * sizeof(double)) &&
      !memcmp(data->input_scale, input_scale, (size_t)D * sizeof(double)) &&
      !memcmp(data->target_mean, target_mean, (size_t)Dy * sizeof(double)) &&
      !memcmp(data->target_scale, target_scale, (size_t)Dy * sizeof(double)))
    PetscFunctionReturn(0);
  for (int i = 0; i < data->ntraj; i++) {
    DyTrajBlock *b = &data->block[i];
    dy_standardize_map(D, data->input_mean, data->input_scale, input_mean, input_scale, b->nread, b->x);
    if (yt) dy_standardize_map(Dy, data->target_mean, data->target_scale, target_mean, target_scale, b->nread, b->y);
  }
  /* The pairs point into the blocks and the fetched frames: those are all the frames held. */
  dy_standardize_map(D, data->input_mean, data->input_scale, input_mean, input_scale, data->nfetched, data->fetched_x);
  if (yt)
    dy_standardize_map(Dy, data->target_mean, data->target_scale, target_mean, target_scale, data->nfetched,
                       data->fetched_y);
  PetscCall(PetscArraycpy(data->input_mean, input_mean, D));
  PetscCall(PetscArraycpy(data->input_scale, input_scale, D));
  PetscCall(PetscArraycpy(data->target_mean, target_mean, Dy));
  PetscCall(PetscArraycpy(data->target_scale, target_scale, Dy));
  PetscFunctionReturn(0);
}

void dy_standardize_undo(int D, const double *mean, const double *scale, int64_t n, dy_real *rows)
{
  for (int64_t f = 0; f < n; f++)
    for (int k = 0; k < D; k++) rows[f * D + k] = (dy_real)(rows[f * D + k] * scale[k] + mean[k]);
}
