/* Command line (SPEC section 6) and the top-level flow: load, check or train. */
#include "app/dy_app.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "parallel/dy_exchange.h"
#include "app/dy_train.h"
#include "app/dy_runctl.h"

#include <stdio.h>
#include <string.h>

void dy_args_usage(FILE *fp)
{
  fprintf(fp,
          "usage: dynae-mpi INPUT.toml [--set section.key=value ...] [--restart [CHECKPOINT.h5]]\n"
          "                 [--check] [--quiet] [PETSc options such as -log_view]\n"
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
          "  --quiet                  no per-epoch progress lines\n"
          "  --help, --version        this text; the version\n"
          "  -dy_exchange WAY         how the gradients are summed over the ranks: auto (default;\n"
          "                           shared for 2 to 8 ranks on one node, else mpi), mpi, shared\n"
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
  if (!args->input && !args->help && !args->version) {
    dy_args_usage(stderr);
    return DY_EXIT_INPUT;
  }
  return 0;
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
  if (dy_is_root(comm)) {
    printf("# dynae-mpi: effective configuration (%d rank%s)\n", size, size == 1 ? "" : "s");
    fflush(stdout);
  }
  PetscCall(dy_config_print(comm, &cfg, stdout));
  PetscCall(dy_data_load(comm, &cfg, &data));
  PetscCall(dy_data_print_plan(comm, &data, stdout));
  if (!args->check) {
    DyRunOptions opt = {.quiet = args->quiet || cfg.quiet,
                        .restart = args->restart,
                        .restart_path = args->restart_path,
                        .exchange = kind};
    PetscCall(dy_train_run(comm, &cfg, &data, &opt));
  } else if (dy_is_root(comm)) {
    printf("check: the input file and the data are valid; nothing was written\n");
  }
  dy_data_free(&data);
  dy_config_free(&cfg);
  PetscFunctionReturn(0);
}
