/* The training state as a checkpoint: see dy_trainstate.h. */
#include "io/dy_trainstate.h"
#include "io/dy_checkpoint.h"
#include "io/dy_standardize.h"

#include <math.h>
#include <stdarg.h>
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

int dy_trainstate_finite(const DyTrainState *st)
{
  const DyModel *m = st->model;
  return dy_all_finite(m->params, m->nparam) && dy_all_finite(st->rep->m, st->rep->n) &&
         dy_all_finite(st->rep->v, st->rep->n) && dy_all_finite(st->prior->m, st->prior->n) &&
         dy_all_finite(st->prior->v, st->prior->n);
}

/* The shape table (see dy_trainstate.h). */
#define DY_SHAPE_MAX 32
typedef struct {
  const char *key;    /* "model.encoder", "precision", ... */
  const char *from;   /* whose value this run's is, for messages: DY_FROM_INPUT or DY_FROM_BUILD */
  const char *before; /* what checkpoints written before the entry existed hold (NULL: must be there) */
  char value[200];    /* this run's value, e.g. "[32, 16]" */
} DyShapeEntry;
typedef struct {
  int n;                            /* entries */
  DyShapeEntry e[DY_SHAPE_MAX];     /* in table order */
} DyShapeTable;
#define DY_FROM_INPUT "this input gives"
#define DY_FROM_BUILD "this build has"

static void dy_shape_add(DyShapeTable *t, const char *key, const char *from, const char *before, const char *fmt, ...)
{
  va_list ap;
  DyShapeEntry *e = &t->e[t->n++];
  e->key = key;
  e->from = from;
  e->before = before;
  va_start(ap, fmt);
  vsnprintf(e->value, sizeof e->value, fmt, ap);
  va_end(ap);
}

/* Hidden widths of a net as the input file writes them: "[32, 16]". */
static const char *dy_shape_widths(const DyMlp *net, char *buf, size_t len)
{
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int l = 1; l < net->nlayer && k < len; l++)
    k += (size_t)snprintf(buf + k, len - k, "%s%d", l > 1 ? ", " : "", net->dims[l]);
  if (k < len) snprintf(buf + k, len - k, "]");
  return buf;
}

/* This run's table: one row per key that shapes the weights (or their meaning). */
static void dy_shape_table(const DyConfig *cfg, const DyModel *m, DyShapeTable *t)
{
  char w[DY_NNETS][160];
  for (int net = 0; net < DY_NNETS; net++) dy_shape_widths(&m->net[net], w[net], sizeof w[net]);
  t->n = 0;
  dy_shape_add(t, "precision", DY_FROM_BUILD, NULL, "%s", DY_REAL_NAME);
  dy_shape_add(t, "data.input", DY_FROM_INPUT, NULL, "%d features", m->D);
  dy_shape_add(t, "data.target", DY_FROM_INPUT, NULL, "%d features", m->Dy); /* the inputs' without targets */
  dy_shape_add(t, "data.tica_dim", DY_FROM_INPUT, NULL, "%d", cfg->tica_dim); /* the encoder sees that many TICs */
  dy_shape_add(t, "model.type", DY_FROM_INPUT, NULL, "%s", cfg->type);
  dy_shape_add(t, "model.network", DY_FROM_INPUT, NULL, "%s", m->network == DY_NETWORK_CONV ? "conv" : "mlp");
  dy_shape_add(t, "model.activation", DY_FROM_INPUT, NULL, "%s",
               m->net[DY_NET_ENCODER].act == DY_ACT_TANH ? "tanh" : "relu");
  dy_shape_add(t, "model.latent_dim", DY_FROM_INPUT, NULL, "%d", m->d);
  dy_shape_add(t, "model.encoder", DY_FROM_INPUT, NULL, "%s", w[DY_NET_ENCODER]);
  dy_shape_add(t, "model.decoder", DY_FROM_INPUT, NULL, "%s", w[DY_NET_DECODER]);
  dy_shape_add(t, "model.prior", DY_FROM_INPUT, NULL, "%s", w[DY_NET_FORCE]);
  dy_shape_add(t, "model.diffusion", DY_FROM_INPUT, NULL, "%s",
               cfg->diffusion == DY_DIFFUSION_LEARNED ? "learned" : "constant");
}

/* The table as stored: "key=value" lines. */
static PetscErrorCode dy_shape_text(const DyShapeTable *t, char **text)
{
  size_t len = 1, k = 0;
  PetscFunctionBegin;
  for (int i = 0; i < t->n; i++) len += strlen(t->e[i].key) + strlen(t->e[i].value) + 2;
  PetscCall(PetscMalloc1(len, text));
  for (int i = 0; i < t->n; i++) k += (size_t)snprintf(*text + k, len - k, "%s=%s\n", t->e[i].key, t->e[i].value);
  PetscFunctionReturn(0);
}

/* The value of key in a stored table (its length in *n), or NULL. */
static const char *dy_shape_find(const char *text, const char *key, size_t *n)
{
  const size_t klen = strlen(key);
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    if ((size_t)(end - line) > klen && !strncmp(line, key, klen) && line[klen] == '=') {
      *n = (size_t)(end - line) - klen - 1;
      return line + klen + 1;
    }
    line = *end ? end + 1 : end;
  }
  return NULL;
}

/* Appends to msg every difference between this run's table and the stored one: entries that
 * differ or are missing there, and stored entries this build does not know. */
static void dy_shape_compare(const DyShapeTable *t, const char *stored, char *msg, size_t len)
{
  size_t k = strlen(msg);
  for (int i = 0; i < t->n && k < len; i++) {
    const DyShapeEntry *e = &t->e[i];
    size_t n = 0;
    const char *v = dy_shape_find(stored, e->key, &n);
    if (!v && e->before) v = e->before, n = strlen(e->before);
    if (v && n == strlen(e->value) && !strncmp(v, e->value, n)) continue;
    if (v)
      k += (size_t)snprintf(msg + k, len - k, "%s%s: the checkpoint was written with %.*s, %s %s", k ? "; " : "",
                            e->key, (int)n, v, e->from, e->value);
    else
      k += (size_t)snprintf(msg + k, len - k, "%s%s: the checkpoint does not record it, %s %s", k ? "; " : "", e->key,
                            e->from, e->value);
  }
  for (const char *line = stored; *line && k < len;) {
    const char *end = strchr(line, '\n'), *eq = strchr(line, '=');
    if (!end) end = line + strlen(line);
    int known = 0;
    for (int i = 0; i < t->n && eq && eq < end; i++)
      known |= (size_t)(eq - line) == strlen(t->e[i].key) && !strncmp(line, t->e[i].key, (size_t)(eq - line));
    if (!known && end > line)
      k += (size_t)snprintf(msg + k, len - k, "%s%.*s: the checkpoint records this, which this build does not know",
                            k ? "; " : "", (int)(end - line), line);
    line = *end ? end + 1 : end;
  }
}

PetscErrorCode dy_trainstate_save(MPI_Comm comm, const char *dir, const DyTrainState *st, const char *config)
{
  const DyModel *m = st->model;
  const DyTrainPosition *p = st->pos;
  DyCkptWriter *w = NULL;
  double progress[4] = {p->loss_sum[0], p->loss_sum[1], p->loss_sum[2], p->seconds};
  DyShapeTable table;
  char *shape = NULL;

  PetscFunctionBegin;
  PetscCheck(st->cfg, comm, PETSC_ERR_ARG_NULL, "the training state's cfg is not set (the shape table needs it)");
  /* The state is identical on every rank but the own stream, so this check agrees everywhere. */
  PetscCheck(dy_trainstate_finite(st), comm, PETSC_ERR_FP,
             "epoch %lld, step %lld: refusing to checkpoint non-finite weights", (long long)p->epoch,
             (long long)p->step);
  dy_shape_table(st->cfg, m, &table);
  PetscCall(dy_shape_text(&table, &shape));
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
  PetscCall(dy_ckpt_write_int(w, "shape_bytes", (int64_t)strlen(shape)));
  PetscCall(dy_ckpt_write_replicated(w, "shape", DY_CKPT_UINT8, strlen(shape), shape));
  PetscCall(PetscFree(shape));
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

/* Collective: refuses (DY_ERR_INPUT) a checkpoint whose shape table differs from this run's. */
static PetscErrorCode dy_trainstate_check_shape(MPI_Comm comm, DyCkptReader *r, const char *used,
                                                const DyTrainState *st)
{
  DyShapeTable table;
  char *stored = NULL, msg[4096] = "";
  int64_t bytes;
  int has;

  PetscFunctionBegin;
  PetscCheck(st->cfg, comm, PETSC_ERR_ARG_NULL, "the training state's cfg is not set (the shape table needs it)");
  PetscCall(dy_ckpt_has(r, "shape", &has));
  if (!has) {
    /* Written before the table existed: the parameter counts and latent_dim are all there is. */
    if (dy_is_root(comm))
      fprintf(stderr, "dynae-mpi: warning: %s records no model shape (an older checkpoint): only its parameter counts "
                      "and latent_dim can be checked against this input\n", used);
    PetscFunctionReturn(0);
  }
  PetscCall(dy_ckpt_read_int(r, "shape_bytes", &bytes));
  PetscCheck(bytes >= 0 && bytes < (1 << 20), comm, DY_ERR_INPUT, "%s: the shape table has %lld bytes", used,
             (long long)bytes);
  PetscCall(PetscCalloc1((size_t)bytes + 1, &stored));
  PetscCall(dy_ckpt_read_replicated(r, "shape", DY_CKPT_UINT8, (size_t)bytes, stored));
  dy_shape_table(st->cfg, st->model, &table);
  dy_shape_compare(&table, stored, msg, sizeof msg);
  PetscCall(PetscFree(stored));
  PetscCheck(!msg[0], comm, DY_ERR_INPUT,
             "%s: the checkpoint is of another model: %s; restart with the settings it was written with, or start "
             "afresh in another output.dir", used, msg);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_trainstate_load(MPI_Comm comm, const char *dir, const char *path, uint64_t seed, const char *what,
                                  DyTrainState *st, int *same_layout)
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
  PetscCall(dy_trainstate_check_shape(comm, r, used, st));
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
    printf("# %s %s: epoch %lld, step %lld (written by %d rank%s%s)\n", what, used, (long long)p->epoch,
           (long long)p->step, writers, writers == 1 ? "" : "s", *same_layout ? "" : "; read at a new rank count");
    fflush(stdout);
  }
  PetscCall(dy_ckpt_close(&r));
  PetscCall(PetscFree(used));
  PetscFunctionReturn(0);
}
