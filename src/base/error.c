/* User-facing error reporting: see dy_common.h. */
#include "base/dy_common.h"

#include <stdio.h>
#include <string.h>

static int dy_is_user_code(PetscErrorCode n)
{
  return n == DY_ERR_INPUT || n == DY_ERR_STOPPED || n == DY_ERR_DIVERGED;
}

static PetscErrorCode dy_error_handler(MPI_Comm comm, int line, const char *fun, const char *file, PetscErrorCode n,
                                       PetscErrorType p, const char *mess, void *ctx)
{
  (void)ctx;
  if (!dy_is_user_code(n)) return PetscTraceBackErrorHandler(comm, line, fun, file, n, p, mess, NULL);
  /* A user-facing error is printed once, where it is raised; as it propagates up it is silent. */
  if (p == PETSC_ERROR_INITIAL && mess && dy_is_root(comm)) {
    fprintf(stderr, "dynae-mpi: %s: %s\n", n == DY_ERR_INPUT ? "error" : (n == DY_ERR_STOPPED ? "stopped" : "diverged"),
            mess);
    fflush(stderr);
  }
  return n;
}

PetscErrorCode dy_error_handler_install(void)
{
  PetscFunctionBegin;
  PetscCall(PetscPushErrorHandler(dy_error_handler, NULL));
  PetscFunctionReturn(0);
}

int dy_exit_code(PetscErrorCode ierr)
{
  switch (ierr) {
  case 0: return DY_EXIT_OK;
  case DY_ERR_INPUT: return DY_EXIT_INPUT;
  case DY_ERR_STOPPED: return DY_EXIT_STOPPED;
  case DY_ERR_DIVERGED: return DY_EXIT_DIVERGED;
  default: return DY_EXIT_FAILURE;
  }
}

PetscErrorCode dy_agree_error(MPI_Comm comm, int flag, PetscErrorCode code, const char *message)
{
  int rank, size, first, local;
  char buf[1024] = "";

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  local = flag ? rank : size;
  PetscCallMPI(MPI_Allreduce(&local, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == size) PetscFunctionReturn(0);
  if (rank == first && message) snprintf(buf, sizeof buf, "%s", message);
  if (first != 0) {
    if (rank == first) PetscCallMPI(MPI_Send(buf, (int)sizeof buf, MPI_CHAR, 0, 7301, comm));
    if (rank == 0) PetscCallMPI(MPI_Recv(buf, (int)sizeof buf, MPI_CHAR, first, 7301, comm, MPI_STATUS_IGNORE));
  }
  return PetscError(comm, __LINE__, PETSC_FUNCTION_NAME, __FILE__, code, PETSC_ERROR_INITIAL, "%s", buf);
}
