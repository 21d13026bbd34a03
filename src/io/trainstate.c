/* The training state as a checkpoint: see dy_trainstate.h. */
#include "io/dy_trainstate.h"
#include "io/dy_checkpoint.h"
#include "io/dy_standardize.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#if defined(DY_REAL_DOUBLE)
#define DY_CKPT_REAL DY_CKPT_DOUBLE
#else
#define DY_CKPT_REAL DY_CKPT_FLOAT
#endif

static int dy_all_finite(const dy_real *x, size_t n)
{
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= isfinite(x[i]);
  return ok;
}

PetscErrorCode dy_trainstate_save(MPI_Comm comm, const char *dir, const DyTrainState *st, const char *config)
{
  const DyModel *m = st->model;
  const DyTrainPosition *p = st->pos;
  DyCkptWriter *w = NULL;
  double progress[4] = {p->loss_sum[0], p->loss_sum[1], p->loss_sum[2], p->seconds};
  int finite;

  PetscFunctionBegin;
  /* The state is identical on every rank but the own stream, so this check agrees everywhere. */
  finite = dy_all_finite(m->params, m->nparam) && dy_all_finite(st->rep->m, st->rep->n) &&
           dy_all_finite(st->rep->v, st->rep->n) && dy_all_finite(st->prior->m, st->prior->n) &&
           dy_all_finite(st->prior->v, st->prior->n);
  PetscCheck(finite, comm, PETSC_ERR_FP, "epoch %lld, step %lld: refusing to checkpoint non-finite weights",
             (long long)p->epoch, (long long)p->step);
  PetscCall(dy_ckpt_write_begin(comm, dir, &w));
  PetscCall(dy_ckpt_write_int(w, "epoch", p->epoch));
  PetscCall(dy_ckpt_write_int(w, "step", p->step));
  PetscCall(dy_ckpt_write_int(w, "nsteps", p->nsteps));
  PetscCall(dy_ckpt_write_int(w, "nparam", (int64_t)m->nparam));
  PetscCall(dy_ckpt_write_int(w, "nparam_rep", (int64_t)m->nparam_rep));
  PetscCall(dy_ckpt_write_int(w, "latent_dim", m->d));
  PetscCall(dy_ckpt_write_int(w, "adam_rep_step", st->rep->step));
  PetscCall(dy_ckpt_write_int(w, "adam_prior_step", st->prior->step));
  PetscCall(dy_ckpt_write_int(w, "K", *st->K));
  PetscCall(dy_ckpt_write_int(w, "history_rows", st->hist->n));
  PetscCall(dy_ckpt_write_replicated(w, "params", DY_CKPT_REAL, m->nparam, m->params));
  PetscCall(dy_ckpt_write_replicated(w, "params_epoch_start", DY_CKPT_REAL, m->nparam, st->params_epoch_start));
  PetscCall(dy_ckpt_write_replicated(w, "adam_rep_m", DY_CKPT_REAL, st->rep->n, st->rep->m));
  PetscCall(dy_ckpt_write_replicated(w, "adam_rep_v", DY_CKPT_REAL, st->rep->n, st->rep->v));
  PetscCall(dy_ckpt_write_replicated(w, "adam_prior_m", DY_CKPT_REAL, st->prior->n, st->prior->m));
  PetscCall(dy_ckpt_write_replicated(w, "adam_prior_v", DY_CKPT_REAL, st->prior->n, st->prior->v));
  PetscCall(dy_ckpt_write_replicated(w, "rng_shared", DY_CKPT_UINT8, sizeof(DyRng), st->shared));
  PetscCall(dy_ckpt_write_distributed(w, "rng_rank", DY_CKPT_UINT8, 1, sizeof(DyRng), st->own));
  PetscCall(dy_ckpt_write_replicated(w, "epoch_progress", DY_CKPT_DOUBLE, 4, progress));
  PetscCall(dy_ckpt_write_replicated(w, "history", DY_CKPT_DOUBLE, (size_t)st->hist->n * DY_NHIST, st->hist->rows));
  PetscCall(dy_ckpt_write_replicated(w, "centers", DY_CKPT_DOUBLE, (size_t)*st->K * st->d, st->centers));
  PetscCall(dy_ckpt_write_replicated(w, "counts", DY_CKPT_INT64, (size_t)*st->K, st->counts));
  PetscCall(dy_ckpt_write_replicated(w, "config", DY_CKPT_UINT8, strlen(config), config));
  PetscCall(dy_ckpt_write_int(w, "standardize", st->data->input_mean != NULL));
  if (st->data->input_mean) {
    const DyData *dt = st->data;
    PetscCall(dy_ckpt_write_replicated(w, "input_mean", DY_CKPT_DOUBLE, (size_t)dt->D, dt->input_mean));
    PetscCall(dy_ckpt_write_replicated(w, "input_scale", DY_CKPT_DOUBLE, (size_t)dt->D, dt->input_scale));
    PetscCall(dy_ckpt_write_replicated(w, "target_mean", DY_CKPT_DOUBLE, (size_t)dt->Dy, dt->target_mean));
    PetscCall(dy_ckpt_write_replicated(w, "target_scale", DY_CKPT_DOUBLE, (size_t)dt->Dy, dt->target_scale));
  }
  PetscCall(dy_ckpt_write_commit(w));
  PetscFunctionReturn(0);
}

/* Collective: the checkpoint's data.standardize statistics replace the ones just computed. */
static PetscErrorCode dy_trainstate_load_statistics(MPI_Comm comm, DyCkptReader *r, const char *used, DyData *dt)
{
  int64_t saved;
  double *stat;

  PetscFunctionBegin;
  PetscCall(dy_ckpt_read_int(r, "standardize", &saved));
  PetscCheck(saved == (dt->input_mean != NULL), comm, DY_ERR_INPUT,
             "%s: the checkpoint was written with data.standardize = %s: restart with that setting, or start afresh "
             "in another output.dir",
             used, saved ? "true" : "false");
  if (!saved) PetscFunctionReturn(0);
  PetscCall(PetscMalloc1(2 * ((size_t)dt->D + dt->Dy), &stat));
  PetscCall(dy_ckpt_read_replicated(r, "input_mean", DY_CKPT_DOUBLE, (size_t)dt->D, stat));
  PetscCall(dy_ckpt_read_replicated(r, "input_scale", DY_CKPT_DOUBLE, (size_t)dt->D, stat + dt->D));
  PetscCall(dy_ckpt_read_replicated(r, "target_mean", DY_CKPT_DOUBLE, (size_t)dt->Dy, stat + 2 * dt->D));
  PetscCall(dy_ckpt_read_replicated(r, "target_scale", DY_CKPT_DOUBLE, (size_t)dt->Dy, stat + 2 * dt->D + dt->Dy));
  PetscCall(dy_standardize_restore(dt, stat, stat + dt->D, stat + 2 * dt->D, stat + 2 * dt->D + dt->Dy));
  PetscCall(PetscFree(stat));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_trainstate_exists(MPI_Comm comm, const char *dir, int *exists)
{
  char a[4200], b[4200];
  PetscFunctionBegin;
  snprintf(a, sizeof a, "%s/checkpoint.h5", dir);
  snprintf(b, sizeof b, "%s/checkpoint.prev.h5", dir);
  *exists = access(a, F_OK) == 0 || access(b, F_OK) == 0;
  PetscCallMPI(MPI_Bcast(exists, 1, MPI_INT, 0, comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_trainstate_load(MPI_Comm comm, const char *dir, const char *path, uint64_t seed, DyTrainState *st,
                                  int *same_layout)
{
  DyModel *m = st->model;
  DyTrainPosition *p = st->pos;
  DyCkptReader *r = NULL;
  char *used = NULL;
  int64_t nparam, nparam_rep, d, K, rows;
  double progress[4];
  int writers, rank, size;
  size_t nrows, rowlen;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(dy_ckpt_open(comm, dir, path, &r, &used));
  PetscCall(dy_ckpt_read_int(r, "nparam", &nparam));
  PetscCall(dy_ckpt_read_int(r, "nparam_rep", &nparam_rep));
  PetscCall(dy_ckpt_read_int(r, "latent_dim", &d));
  PetscCheck(nparam == (int64_t)m->nparam && nparam_rep == (int64_t)m->nparam_rep && d == m->d, comm, DY_ERR_INPUT,
             "%s: the checkpoint is of another model (%lld parameters, latent_dim %lld; this input gives %zu and %d): "
             "restart with the model settings it was written with, or start afresh in another output.dir",
             used, (long long)nparam, (long long)d, m->nparam, m->d);
  PetscCall(dy_trainstate_load_statistics(comm, r, used, st->data));
  PetscCall(dy_ckpt_read_int(r, "epoch", &p->epoch));
  PetscCall(dy_ckpt_read_int(r, "step", &p->step));
  PetscCall(dy_ckpt_read_int(r, "nsteps", &p->nsteps));
  PetscCall(dy_ckpt_read_int(r, "adam_rep_step", &st->rep->step));
  PetscCall(dy_ckpt_read_int(r, "adam_prior_step", &st->prior->step));
  PetscCall(dy_ckpt_read_int(r, "K", &K));
  PetscCall(dy_ckpt_read_int(r, "history_rows", &rows));
  PetscCheck(K >= 0 && K <= st->max_centers, comm, DY_ERR_INPUT,
             "%s: the checkpoint has %lld centres, more than cluster.max_centers = %d", used, (long long)K,
             st->max_centers);
  PetscCall(dy_ckpt_read_replicated(r, "params", DY_CKPT_REAL, m->nparam, m->params));
  PetscCall(dy_ckpt_read_replicated(r, "params_epoch_start", DY_CKPT_REAL, m->nparam, st->params_epoch_start));
  PetscCall(dy_ckpt_read_replicated(r, "adam_rep_m", DY_CKPT_REAL, st->rep->n, st->rep->m));
  PetscCall(dy_ckpt_read_replicated(r, "adam_rep_v", DY_CKPT_REAL, st->rep->n, st->rep->v));
  PetscCall(dy_ckpt_read_replicated(r, "adam_prior_m", DY_CKPT_REAL, st->prior->n, st->prior->m));
  PetscCall(dy_ckpt_read_replicated(r, "adam_prior_v", DY_CKPT_REAL, st->prior->n, st->prior->v));
  PetscCall(dy_ckpt_read_replicated(r, "rng_shared", DY_CKPT_UINT8, sizeof(DyRng), st->shared));
  PetscCall(dy_ckpt_read_replicated(r, "epoch_progress", DY_CKPT_DOUBLE, 4, progress));
  p->loss_sum[0] = progress[0];
  p->loss_sum[1] = progress[1];
  p->loss_sum[2] = progress[2];
  p->seconds = progress[3];
  /* The history grows as needed; make room for the saved rows. */
  while (st->hist->n < rows) {
    double zero[DY_NHIST] = {0};
    PetscCall(dy_history_append(st->hist, zero));
  }
  st->hist->n = (int)rows;
  PetscCall(dy_ckpt_read_replicated(r, "history", DY_CKPT_DOUBLE, (size_t)rows * DY_NHIST, st->hist->rows));
  *st->K = (int)K;
  PetscCall(dy_ckpt_read_replicated(r, "centers", DY_CKPT_DOUBLE, (size_t)K * st->d, st->centers));
  PetscCall(dy_ckpt_read_replicated(r, "counts", DY_CKPT_INT64, (size_t)K, st->counts));
  PetscCall(dy_ckpt_read_distributed_info(r, "rng_rank", &writers, &nrows, &rowlen));
  *same_layout = writers == size;
  if (*same_layout) {
    PetscCall(dy_ckpt_read_block(r, "rng_rank", DY_CKPT_UINT8, rank, 1, &nrows, st->own));
  } else {
    /* A fresh stream per rank, different for every (epoch, step) a run may resume at. */
    const uint64_t where = dy_hash_u64(seed, (uint64_t)p->epoch, (uint64_t)p->step);
    dy_rng_seed(st->own, seed ^ where, DY_STREAM_RANK + (uint64_t)rank);
  }
  if (dy_is_root(comm)) {
    printf("# resuming from %s: epoch %lld, step %lld (written by %d rank%s%s)\n", used, (long long)p->epoch,
           (long long)p->step, writers, writers == 1 ? "" : "s", *same_layout ? "" : "; continuing at a new rank count");
    fflush(stdout);
  }
  PetscCall(dy_ckpt_close(&r));
  PetscCall(PetscFree(used));
  PetscFunctionReturn(0);
}
