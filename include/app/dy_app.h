/* The program as a library call: parse the command line, load the input, check or train. */
#pragma once
#include "base/dy_common.h"

#define DY_MAX_SETS 256

/* What the command line asks for (SPEC section 6). */
typedef struct {
  const char *input;            /* the TOML input file */
  int nset;                     /* number of --set overrides */
  char *sets[DY_MAX_SETS];      /* "section.key=value" */
  int check;                    /* --check: validate and print the plan, write nothing */
  int restart;                  /* --restart given */
  const char *restart_path;     /* --restart=PATH or --restart PATH.h5; NULL: newest in output.dir */
  int quiet;                    /* --quiet: no per-epoch lines */
  int analyze;                  /* --analyze: results.h5 with /fields/ from the newest checkpoint, no training */
  int help, version;            /* --help, --version */
} DyArgs;

/* Splits argv into our arguments (args) and PETSc's (petsc_argv, which keeps argv[0] and every
 * option starting with a single '-', with its values). Returns 0, or prints a usage error to
 * stderr and returns DY_EXIT_INPUT. petsc_argv must hold argc + 1 pointers. Needs no MPI. */
int dy_args_parse(int argc, char **argv, DyArgs *args, int *petsc_argc, char **petsc_argv);
void dy_args_usage(FILE *fp);

/* Runs the program on comm after PetscInitialize. */
PetscErrorCode dy_app_run(MPI_Comm comm, const DyArgs *args);
