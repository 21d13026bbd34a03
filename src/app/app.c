/* Command line (SPEC section 6) and the top-level flow: load, check or train. */
#include "app/dy_app.h"
#include "nn/dy_baseline.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "io/dy_output.h"
#include "parallel/dy_exchange.h"
#include "parallel/dy_swglobal.h"
#include "app/dy_train.h"
#include "app/dy_runctl.h"
#include "analysis/dy_fields.h"
#include "io/dy_trainstate.h"

#include <stdio.h>
#include <string.h>

void dy_args_usage(FILE *fp)
{
  fprintf(fp,
          "usage: dynae-mpi INPUT.toml [--set section.key=value ...] [--restart [CHECKPOINT.h5]]\n"
          "                 [--check] [--analyze] [--quiet] [PETSc options such as -log_view]\n"
          "       dynae-mpi --help | --version\n"
          "\n"
          "Trains a dynamics-constrained autoencoder on the trajectories named in INPUT.toml.\n"
          "Run it under mpirun/srun to use several ranks.\n"
          "\n"
          "  --set section.key=value  override a key of the input file (repeatable); value in TOML\n"
          "                           syntax, a bare word is taken as a string\n"
          "  --restart [PATH]         resume from the newest complete checkpoint in output.dir,\n"
          "                           or from PATH (--restart=PATH, or a PATH ending in .h5)\n"
          "  --check                  validate the input file and the data, print the plan, write nothing\n"
          "  --analyze                no training: rewrite output.dir/results.h5 (latent, /model/,\n"
          "                           /fields/) from the newest checkpoint there; latent_dim 1 to 3\n"
          "  --quiet                  no per-epoch progress lines\n"
          "  --help, --version        this text; the version\n"
          "  -dy_exchange WAY         how the gradients are summed over the ranks: auto (default:\n"
          "                           shared on one node, hier across nodes, mpi with one rank\n"
          "                           per node), mpi, shared, hier\n"
          "  -dy_sw_global WAY        with train.batch = \"global\", how the batch's sliced Wasserstein\n"
          "                           is shared: auto (default: gather up to 8 ranks, split beyond),\n"
          "                           gather (every rank sorts all projections), split (a share each)\n"
          "\n"
          "Exit codes: 0 done, 2 bad input (config or data), 3 stopped by a signal (after writing\n"
          "a checkpoint once training has started), 4 training diverged, 1 anything else.\n");
}

static int dy_usage_error(const char *fmt, const char *arg)
{
  fprintf(stderr, "dynae-mpi: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see dynae-mpi --help)\n");
  return DY_EXIT_INPUT;
}

static int dy_ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int dy_args_parse(int argc, char **argv, DyArgs *args, int *petsc_argc, char **petsc_argv)
{
  memset(args, 0, sizeof *args);
  *petsc_argc = 0;
  petsc_argv[(*petsc_argc)++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) args->help = 1;
    else if (!strcmp(a, "--version")) args->version = 1;
    else if (!strcmp(a, "--check")) args->check = 1;
    else if (!strcmp(a, "--analyze")) args->analyze = 1;
    else if (!strcmp(a, "--quiet")) args->quiet = 1;
    else if (!strcmp(a, "--set") || !strncmp(a, "--set=", 6)) {
      const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return dy_usage_error("%s needs section.key=value", a);
      if (!strchr(v, '=')) return dy_usage_error("--set %s: expected section.key=value", v);
      if (args->nset == DY_MAX_SETS) return dy_usage_error("too many --set options (at most %s)", "256");
      args->sets[args->nset++] = (char *)v;
    } else if (!strcmp(a, "--restart")) {
      args->restart = 1;
      if (i + 1 < argc && dy_ends_with(argv[i + 1], ".h5")) args->restart_path = argv[++i];
    } else if (!strncmp(a, "--restart=", 10)) {
      args->restart = 1;
      args->restart_path = a + 10;
      if (!*args->restart_path) return dy_usage_error("%s: empty checkpoint path", a);
    } else if (!strncmp(a, "--", 2)) {
      return dy_usage_error("unknown option '%s'", a);
    } else if (a[0] == '-' && a[1]) {
      /* A PETSc option with its values (the words up to the next option). */
      petsc_argv[(*petsc_argc)++] = argv[i];
      while (i + 1 < argc && argv[i + 1][0] != '-' && !dy_ends_with(argv[i + 1], ".toml"))
        petsc_argv[(*petsc_argc)++] = argv[++i];
    } else if (!args->input) {
      args->input = a;
    } else {
      return dy_usage_error("more than one input file ('%s')", a);
    }
  }
  petsc_argv[*petsc_argc] = NULL;
  if (args->analyze && args->restart) return dy_usage_error("%s: --analyze and --restart exclude each other", "--analyze");
  if (!args->input && !args->help && !args->version) {
    dy_args_usage(stderr);
    return DY_EXIT_INPUT;
  }
  return 0;
}

/* Collective: --analyze. The weights, clusters and history of the newest checkpoint in output.dir
 * (the optimiser and generator states are read with them and unused); results.h5 is rewritten
 * with /fields/ under the run lock of the folder. */
static PetscErrorCode dy_app_analyze(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  DyModelShape shape;
  DyModel model;
  DyWork *work = NULL;
  DyAdam rep, prior;
  DyRng shared, own;
  DyHistory hist;
  DyTrainPosition pos;
  DyRunLock lock = {.fd = -1};
  dy_real *start = NULL;
  double *centers = NULL;
  int64_t *counts = NULL;
  int exists = 0, K = 0, same = 0;

  PetscFunctionBegin;
  if (cfg->latent_dim > DY_FIELDS_MAX_DIM)
    PetscCall(dy_input_error(comm, "%s: --analyze computes the fields for model.latent_dim 1 to %d, and this model has %d",
                             cfg->path, DY_FIELDS_MAX_DIM, cfg->latent_dim));
  PetscCall(dy_trainstate_exists(comm, cfg->dir, &exists));
  if (!exists)
    PetscCall(dy_input_error(comm, "%s: --analyze needs a checkpoint, and there is none in output.dir '%s' (train first)",
                             cfg->path, cfg->dir));
  memset(&pos, 0, sizeof pos);
  dy_config_model_shape(cfg, data->D, data->Dy, &shape);
  PetscCall(dy_model_create(&shape, &model));
  PetscCall(dy_work_create(&model, cfg->batch_size, cfg->projections, &work));
  PetscCall(dy_adam_create(0, model.nparam_rep, cfg->lr, &rep));
  PetscCall(dy_adam_create(model.nparam_rep, model.nparam - model.nparam_rep, cfg->prior_lr, &prior));
  PetscCall(dy_history_create(cfg->epochs, &hist));
  PetscCall(PetscMalloc3(model.nparam, &start, (size_t)cfg->max_centers * model.d, &centers, (size_t)cfg->max_centers,
                         &counts));
  DyTrainState st = {.cfg = cfg,
                     .data = data,
                     .model = &model,
                     .params_epoch_start = start,
                     .rep = &rep,
                     .prior = &prior,
                     .shared = &shared,
                     .own = &own,
                     .hist = &hist,
                     .K = &K,
                     .d = model.d,
                     .max_centers = cfg->max_centers,
                     .centers = centers,
                     .counts = counts,
                     .pos = &pos};
  PetscCall(dy_runlock_acquire(comm, cfg->dir, 0, &lock));
  PetscCall(dy_trainstate_load(comm, cfg->dir, NULL, (uint64_t)cfg->seed, "analyzing the weights of", &st, &same));
  const DyOutputClusters clusters = {.K = K, .d = model.d, .center = centers, .count = counts};
  PetscCall(dy_output_write_results(comm, cfg, data, &model, work, &clusters, &hist, 1));
  PetscCall(dy_runlock_release(&lock));
  if (dy_is_root(comm)) {
    printf("analyze: %s/results.h5 rewritten from the weights of epoch %lld\n", cfg->dir, (long long)pos.epoch);
    fflush(stdout);
  }
  PetscCall(PetscFree3(start, centers, counts));
  dy_history_destroy(&hist);
  dy_adam_destroy(&prior);
  dy_adam_destroy(&rep);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  PetscFunctionReturn(0);
}

/* model.type = "tica": no training; the latent is the first model.latent_dim TICs of the inputs
 * at tica.lag. The fit is part of the validation, so --check runs it too (and writes nothing). */
static PetscErrorCode dy_app_tica(MPI_Comm comm, const DyConfig *cfg, DyData *data, int check)
{
  DyHistory hist;

  PetscFunctionBegin;
  PetscCall(dy_data_tica_fit(comm, cfg, data, cfg->tica_lag, "tica.lag", cfg->latent_dim, "model.latent_dim"));
  if (dy_is_root(comm)) {
    const DyTica *t = data->tica;
    printf("# tica: %lld pairs at lag %d, %d of %d components kept (epsilon %g)\n", (long long)t->npairs, t->lag, t->m,
           t->D, t->epsilon);
    for (int j = 0; j < t->k; j++)
      printf("#   TIC %d: eigenvalue %.6f, timescale %.4g frames\n", j, t->eigenvalues[j], t->timescales[j]);
    fflush(stdout);
  }
  if (check) PetscFunctionReturn(0);
  PetscCall(dy_history_create(1, &hist));
  PetscCall(dy_output_write_results(comm, cfg, data, NULL, NULL, NULL, &hist, 0));
  dy_history_destroy(&hist);
  if (dy_is_root(comm)) {
    printf("wrote %s/results.h5\n", cfg->dir);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_app_run(MPI_Comm comm, const DyArgs *args)
{
  DyConfig cfg;
  DyData data;
  int size;

  PetscFunctionBegin;
  memset(&cfg, 0, sizeof cfg);
  memset(&data, 0, sizeof data);
  PetscCallMPI(MPI_Comm_size(comm, &size));
  /* From here on a stop signal is a request (honoured before training too), never a kill. */
  if (!args->check) PetscCall(dy_signal_install());
  PetscCall(dy_config_load(comm, args->input, args->nset, args->sets, &cfg));
  DyExchangeKind kind; /* a bad -dy_exchange fails here, before the data are read (also with --check) */
  PetscCall(dy_exchange_kind_from_options(comm, &kind));
  PetscCall(dy_swglobal_check_options(comm));
  if (dy_is_root(comm)) {
    printf("# dynae-mpi: effective configuration (%d rank%s)\n", size, size == 1 ? "" : "s");
    fflush(stdout);
  }
  PetscCall(dy_config_print(comm, &cfg, stdout));
  PetscCall(dy_data_load(comm, &cfg, &data));
  PetscCall(dy_data_print_plan(comm, &data, stdout));
  if (!strcmp(cfg.type, "tica")) {
    PetscCall(dy_app_tica(comm, &cfg, &data, args->check));
  } else if (args->analyze && !args->check) {
    PetscCheck(!dy_baseline_from_name(cfg.type), comm, DY_ERR_INPUT,
               "%s: --analyze computes the fields of DynamicsAE's prior; model.type = \"%s\" has none", cfg.path,
               cfg.type);
    PetscCall(dy_app_analyze(comm, &cfg, &data));
  } else if (!args->check) {
    DyRunOptions opt = {.quiet = args->quiet || cfg.quiet,
                        .restart = args->restart,
                        .restart_path = args->restart_path,
                        .exchange = kind};
    PetscCall(dy_train_run(comm, &cfg, &data, &opt));
  }
  if (args->check && dy_is_root(comm)) printf("check: the input file and the data are valid; nothing was written\n");
  dy_data_free(&data);
  dy_config_free(&cfg);
  PetscFunctionReturn(0);
}
