/* Shared conventions of dynae-mpi: the floating-point type, error codes and messages.
 *
 * Every fallible function returns a PetscErrorCode and every call is checked with PetscCall /
 * PetscCallMPI / PetscCheck. Two kinds of failure are told apart:
 *   - the user's mistake (bad config or data): raise with DY_ERR_INPUT through dy_input_error();
 *     the message names the file, line/key or dataset, is printed once per communicator (rank 0)
 *     without a PETSc traceback, and the program exits with code 2;
 *   - anything else (a bug, a failed system call): any other PETSc code, printed with its
 *     traceback, exit code 1.
 * Errors that only one rank can see (a bad frame in its block) must first be agreed on with
 * dy_agree_error() so that every rank of the communicator fails together and nobody hangs. */
#pragma once
#include <petscsys.h>
#include <stdint.h>

#if defined(DY_REAL_DOUBLE)
typedef double dy_real;
#define DY_MPI_REAL MPI_DOUBLE
#define DY_H5_REAL H5T_NATIVE_DOUBLE
#define DY_REAL_NAME "double"
#else
typedef float dy_real;
#define DY_MPI_REAL MPI_FLOAT
#define DY_H5_REAL H5T_NATIVE_FLOAT
#define DY_REAL_NAME "single"
#endif

/* Error codes beyond PETSc's own; main() maps them to exit codes (SPEC section 6). */
#define DY_ERR_INPUT PETSC_ERR_USER_INPUT /* bad config or data: exit 2 */
#define DY_ERR_STOPPED 201                /* stopped by a signal after a checkpoint: exit 3 */
#define DY_ERR_DIVERGED 202               /* non-finite loss or gradient: exit 4 */

#define DY_EXIT_OK 0
#define DY_EXIT_FAILURE 1
#define DY_EXIT_INPUT 2
#define DY_EXIT_STOPPED 3
#define DY_EXIT_DIVERGED 4

/* Installs the error handler that prints user-facing errors (DY_ERR_INPUT, DY_ERR_STOPPED,
 * DY_ERR_DIVERGED) as one clean line "dynae-mpi: error: ..." on rank 0 of the communicator
 * passed to PetscError, and everything else with PETSc's traceback. Call after PetscInitialize. */
PetscErrorCode dy_error_handler_install(void);

/* Maps the error code returned to main() to the process exit code of SPEC section 6. */
int dy_exit_code(PetscErrorCode ierr);

/* Raise a user-facing input error on comm: use as
 *   PetscCall(dy_input_error(comm, "%s:%d: key 'train.lr' must be > 0", file, line));
 * It always returns DY_ERR_INPUT (so PetscCall propagates it). Every rank of comm must call it
 * (collective: the message is printed by rank 0 of comm only). */
#define dy_input_error(comm, ...) PetscError((comm), __LINE__, PETSC_FUNCTION_NAME, __FILE__, DY_ERR_INPUT, PETSC_ERROR_INITIAL, __VA_ARGS__)

/* Collective agreement on a locally detected error. Every rank passes its own local flag and
 * message (message may be NULL when flag == 0). If any rank has flag != 0, the message of the
 * lowest such rank is sent to rank 0 and raised with code `code` on comm on every rank
 * (printed once); otherwise returns 0. */
PetscErrorCode dy_agree_error(MPI_Comm comm, int flag, PetscErrorCode code, const char *message);

/* True when the process is rank 0 of comm. */
static inline int dy_is_root(MPI_Comm comm)
{
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank == 0;
}

#define DY_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DY_MAX(a, b) ((a) > (b) ? (a) : (b))

/* 64-byte aligned memory of at least `bytes` bytes (rounded up to 64), zeroed; NULL when out of
 * memory. Release with free(). For the SIMD kernels' workspaces. */
void *dy_aligned_zalloc(size_t bytes);
