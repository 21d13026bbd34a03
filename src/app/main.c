/* dynae-mpi: train a dynamics-constrained autoencoder on a trajectory, across MPI ranks. */
#include "app/dy_app.h"
#include "base/dy_version.h"

#include <stdio.h>

static const char help[] = "dynae-mpi: dynamics-constrained autoencoder training with MPI.\n";

int main(int argc, char **argv)
{
  DyArgs args;
  int petsc_argc = 0;
  char *petsc_argv[argc + 1];
  char **pargv = petsc_argv;

  int code = dy_args_parse(argc, argv, &args, &petsc_argc, petsc_argv);
  if (code) return code;
  if (args.help) {
    dy_args_usage(stdout);
    return 0;
  }
  if (args.version) {
    printf("dynae-mpi %s (%s precision)\n", DY_VERSION_STRING, DY_REAL_NAME);
    return 0;
  }
  PetscErrorCode ierr = PetscInitialize(&petsc_argc, &pargv, NULL, help);
  if (ierr) return DY_EXIT_FAILURE;
  ierr = dy_error_handler_install();
  if (!ierr) ierr = dy_app_run(PETSC_COMM_WORLD, &args);
  code = dy_exit_code(ierr);
  /* A failure of one rank that the others did not see cannot be finalised cleanly. */
  if (code == DY_EXIT_FAILURE) MPI_Abort(PETSC_COMM_WORLD, code);
  if (PetscFinalize()) return DY_EXIT_FAILURE;
  return code;
}
