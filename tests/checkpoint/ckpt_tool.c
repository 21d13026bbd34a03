/* Test driver for checkpoint files and run locks.
 *   ckpt_tool write DIR            two checkpoints: epoch 1 then epoch 2 (prev = epoch 1)
 *   ckpt_tool read DIR EPOCH       opens DIR's newest usable checkpoint, checks it holds EPOCH's data
 *   ckpt_tool lock DIR SECONDS     takes the run lock of DIR and holds it for SECONDS
 * Exit code 0 when everything holds, the program's error codes otherwise. */
#include "io/dy_checkpoint.h"
#include "app/dy_runctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NREP 1000 /* replicated doubles */
#define ROWLEN 3  /* distributed int64 rows: (rank, epoch, i) */

static double dy_value(int64_t epoch, size_t i) { return (double)epoch * 1000.0 + (double)i * 0.5; }
static size_t dy_rows_of(int rank) { return (size_t)(rank * 2 + 1); }

static PetscErrorCode dy_write(MPI_Comm comm, const char *dir, int64_t epoch)
{
  DyCkptWriter *w;
  double rep[NREP];
  float f[7];
  int rank;
  int64_t rows[3 * 2 * 8 + 3];
  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  for (size_t i = 0; i < NREP; i++) rep[i] = dy_value(epoch, i);
  for (int i = 0; i < 7; i++) f[i] = (float)(epoch + i);
  const size_t n = dy_rows_of(rank);
  for (size_t i = 0; i < n; i++) {
    rows[i * ROWLEN + 0] = rank;
    rows[i * ROWLEN + 1] = epoch;
    rows[i * ROWLEN + 2] = (int64_t)i;
  }
  PetscCall(dy_ckpt_write_begin(comm, dir, &w));
  PetscCall(dy_ckpt_write_replicated(w, "params", DY_CKPT_DOUBLE, NREP, rep));
  PetscCall(dy_ckpt_write_replicated(w, "small", DY_CKPT_FLOAT, 7, f));
  PetscCall(dy_ckpt_write_distributed(w, "rank_state", DY_CKPT_INT64, n, ROWLEN, rows));
  PetscCall(dy_ckpt_write_int(w, "epoch", epoch));
  /* empty arrays are legal (no centres yet, no finished epoch) */
  PetscCall(dy_ckpt_write_replicated(w, "empty", DY_CKPT_DOUBLE, 0, rep));
  PetscCall(dy_ckpt_write_distributed(w, "empty_rows", DY_CKPT_INT64, 0, ROWLEN, rows));
  PetscCall(dy_ckpt_write_commit(w));
  PetscFunctionReturn(0);
}

static PetscErrorCode dy_read(MPI_Comm comm, const char *dir, int64_t expect)
{
  DyCkptReader *r;
  double rep[NREP];
  float f[7];
  int64_t epoch, rows[3 * 2 * 64 + 3];
  int rank, size, writers, bad = 0, has;
  size_t nrows, rowlen, got;
  char *used;
  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(dy_ckpt_open(comm, dir, NULL, &r, &used));
  PetscCall(dy_ckpt_read_int(r, "epoch", &epoch));
  PetscCheck(epoch == expect, comm, PETSC_ERR_PLIB, "%s: epoch %lld, expected %lld", used, (long long)epoch, (long long)expect);
  PetscCall(dy_ckpt_read_replicated(r, "params", DY_CKPT_DOUBLE, NREP, rep));
  for (size_t i = 0; i < NREP; i++) bad |= rep[i] != dy_value(expect, i);
  PetscCall(dy_ckpt_read_replicated(r, "small", DY_CKPT_FLOAT, 7, f));
  for (int i = 0; i < 7; i++) bad |= f[i] != (float)(expect + i);
  PetscCall(dy_ckpt_read_replicated(r, "empty", DY_CKPT_DOUBLE, 0, rep));
  PetscCall(dy_ckpt_read_distributed_info(r, "empty_rows", &writers, &nrows, &rowlen));
  bad |= nrows != 0 || rowlen != ROWLEN;
  PetscCall(dy_ckpt_read_block(r, "empty_rows", DY_CKPT_INT64, rank % writers, 1, &got, rows));
  bad |= got != 0;
  PetscCall(dy_ckpt_has(r, "nothing", &has));
  bad |= has;
  PetscCall(dy_ckpt_read_distributed_info(r, "rank_state", &writers, &nrows, &rowlen));
  bad |= rowlen != ROWLEN;
  /* every block, whatever our rank count, in turns of our ranks */
  for (int wr = 0; wr < writers; wr++) {
    PetscCall(dy_ckpt_read_block(r, "rank_state", DY_CKPT_INT64, wr % size == rank ? wr : rank % writers,
                                 sizeof rows / sizeof rows[0] / ROWLEN, &got, rows));
    const int mine = wr % size == rank ? wr : rank % writers;
    bad |= got != dy_rows_of(mine);
    for (size_t i = 0; i < got; i++)
      bad |= rows[i * ROWLEN] != mine || rows[i * ROWLEN + 1] != expect || rows[i * ROWLEN + 2] != (int64_t)i;
  }
  PetscCall(dy_ckpt_close(&r));
  PetscCall(PetscFree(used));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm));
  PetscCheck(!bad, comm, PETSC_ERR_PLIB, "checkpoint contents differ from what was written");
  PetscFunctionReturn(0);
}

static PetscErrorCode dy_main(int argc, char **argv)
{
  MPI_Comm comm = PETSC_COMM_WORLD;
  PetscFunctionBegin;
  PetscCheck(argc >= 3, comm, PETSC_ERR_ARG_WRONG, "usage: ckpt_tool write|read|lock DIR [N]");
  if (!strcmp(argv[1], "write")) {
    PetscCall(dy_write(comm, argv[2], 1));
    PetscCall(dy_write(comm, argv[2], 2));
    PetscCall(dy_ckpt_wait(comm));
  } else if (!strcmp(argv[1], "read")) {
    PetscCheck(argc >= 4, comm, PETSC_ERR_ARG_WRONG, "read needs the expected epoch");
    PetscCall(dy_read(comm, argv[2], atoll(argv[3])));
  } else if (!strcmp(argv[1], "lock")) {
    DyRunLock lock;
    PetscCall(dy_runlock_acquire(comm, argv[2], 0, &lock));
    if (dy_is_root(comm)) printf("locked\n"), fflush(stdout);
    if (argc >= 4) sleep((unsigned)atoi(argv[3]));
    PetscCall(dy_runlock_release(&lock));
  } else SETERRQ(comm, PETSC_ERR_ARG_WRONG, "unknown mode %s", argv[1]);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscErrorCode ierr = PetscInitialize(&argc, &argv, NULL, NULL);
  if (ierr) return 1;
  ierr = dy_error_handler_install();
  if (!ierr) ierr = dy_main(argc, argv);
  const int code = dy_exit_code(ierr);
  PetscFinalize();
  return code;
}
