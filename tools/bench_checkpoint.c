/* Benchmark of one checkpoint of the training state (not a test): the default model of SPEC
 * section 7 on the three-well input's sizes (2 features, latent 2), 50 epochs of history, 80
 * centres, written N times into a folder. Reports milliseconds per checkpoint (min and median over
 * the repetitions): the part on the training's critical path (the collective write) and the time
 * until the checkpoint is durable on disk (file and folder synced, renamed into place).
 *   mpiexec -n P bench_checkpoint DIR [N] */
#include "io/dy_checkpoint.h"
#include "io/dy_trainstate.h"

#include <stdlib.h>

static int dy_cmp_double(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static PetscErrorCode dy_bench(MPI_Comm comm, const char *dir, int reps)
{
  DyModelShape shape = {.D = 2, .Dy = 2, .d = 2, .nhidden = {3, 3, 2, 2}};
  DyModel model;
  DyAdam rep, prior;
  DyRng shared, own;
  DyHistory hist;
  DyTrainPosition pos = {.epoch = 7, .step = 100, .nsteps = 313};
  const DyConfig cfg = {.type = "dynamicsae"}; /* the keys of the shape table */
  int K = 80, max_centers = 200;
  double *centers, *critical, *durable;
  int64_t *counts;
  dy_real *start;
  int rank;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  for (int n = 0; n < DY_NNETS; n++)
    for (int l = 0; l < shape.nhidden[n]; l++) shape.hidden[n][l] = 32;
  PetscCall(dy_model_create(&shape, &model));
  dy_rng_seed(&shared, 1, DY_STREAM_INIT);
  dy_model_init(&model, &shared);
  PetscCall(dy_adam_create(0, model.nparam_rep, 1e-3, &rep));
  PetscCall(dy_adam_create(model.nparam_rep, model.nparam - model.nparam_rep, 1e-3, &prior));
  PetscCall(dy_history_create(50, &hist));
  for (int e = 0; e < 50; e++) {
    double row[DY_NHIST];
    for (int c = 0; c < DY_NHIST; c++) row[c] = e + 0.1 * c;
    PetscCall(dy_history_append(&hist, row));
  }
  PetscCall(PetscMalloc5((size_t)max_centers * 2, &centers, (size_t)max_centers, &counts, model.nparam, &start, reps,
                         &critical, reps, &durable));
  for (int k = 0; k < max_centers; k++) centers[2 * k] = centers[2 * k + 1] = k, counts[k] = 1000 + k;
  for (size_t i = 0; i < model.nparam; i++) start[i] = model.params[i];
  dy_rng_seed(&own, 1, DY_STREAM_RANK + (uint64_t)rank);
  DyTrainState st = {.model = &model, .params_epoch_start = start, .rep = &rep, .prior = &prior, .shared = &shared,
                     .own = &own, .hist = &hist, .K = &K, .d = 2, .max_centers = max_centers, .centers = centers,
                     .counts = counts, .pos = &pos, .cfg = &cfg};
  for (int r = 0; r < reps; r++) {
    PetscCallMPI(MPI_Barrier(comm));
    const double t0 = MPI_Wtime();
    PetscCall(dy_trainstate_save(comm, dir, &st, "[train]\nepochs = 50\n"));
    const double t1 = MPI_Wtime();
    PetscCall(dy_ckpt_wait(comm));
    const double t2 = MPI_Wtime();
    critical[r] = 1e3 * (t1 - t0);
    durable[r] = 1e3 * (t2 - t0);
  }
  qsort(critical, (size_t)reps, sizeof(double), dy_cmp_double);
  qsort(durable, (size_t)reps, sizeof(double), dy_cmp_double);
  if (rank == 0) {
    int size;
    MPI_Comm_size(comm, &size);
    printf("checkpoint of %zu parameters, %d ranks, %d repetitions, folder %s\n", model.nparam, size, reps, dir);
    printf("  on the critical path (collective write): min %.2f ms, median %.2f ms\n", critical[0], critical[reps / 2]);
    printf("  until durable (synced and renamed):      min %.2f ms, median %.2f ms\n", durable[0], durable[reps / 2]);
  }
  PetscCall(PetscFree5(centers, counts, start, critical, durable));
  dy_history_destroy(&hist);
  dy_adam_destroy(&rep);
  dy_adam_destroy(&prior);
  dy_model_destroy(&model);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscErrorCode ierr = PetscInitialize(&argc, &argv, NULL, NULL);
  if (ierr) return 1;
  if (argc < 2) {
    fprintf(stderr, "usage: bench_checkpoint DIR [REPETITIONS]\n");
    PetscFinalize();
    return 2;
  }
  ierr = dy_bench(PETSC_COMM_WORLD, argv[1], argc > 2 ? atoi(argv[2]) : 20);
  PetscFinalize();
  return ierr ? 1 : 0;
}
