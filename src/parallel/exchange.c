/* The per-step sum over ranks (see dy_exchange.h).
 *
 * Shared way: each rank owns one segment of a shared-memory window, [sequence line | slot 0 |
 * slot 1]. Exchange number s writes slot s % 2 and then publishes s in the sequence line (release);
 * a reader waits until every rank has published s (acquire) and sums slot s % 2 of ranks 0..P-1 in
 * that order. Two slots suffice: a rank can start exchange s + 2 only after exchange s + 1 has
 * finished, for which every rank must have started s + 1, which each does only after it finished
 * reading exchange s. */
#include "parallel/dy_exchange.h"

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define DY_LINE 64 /* bytes of a cache line: the sequence numbers sit alone on theirs */

/* The sequence numbers are shared between processes: their atomics must not hide a lock. */
_Static_assert(sizeof(int64_t) == sizeof(long) ? ATOMIC_LONG_LOCK_FREE == 2 : ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be lock-free for the shared-memory exchange");

struct DyExchange {
  MPI_Comm comm;
  DyExchangeKind kind; /* DY_EXCHANGE_MPI or DY_EXCHANGE_SHARED */
  int rank, size;
  size_t n;
  MPI_Request req; /* mpi: the reduction in flight */
  MPI_Win win;     /* shared: the window of all segments */
  size_t stride;   /* shared: values per slot, rounded up to whole cache lines */
  _Atomic int64_t **seqno; /* shared: (size) every rank's published sequence number */
  dy_real **slot;          /* shared: (size) every rank's two slots */
  int64_t seq;             /* shared: exchanges started, the same count on every rank */
};

static const char *const dy_exchange_names[] = {"auto", "mpi", "shared"};

PetscErrorCode dy_exchange_kind_from_options(MPI_Comm comm, DyExchangeKind *kind)
{
  char value[32] = "auto";
  PetscBool set = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(PetscOptionsGetString(NULL, NULL, "-dy_exchange", value, sizeof value, &set));
  for (int k = 0; k < 3; k++)
    if (!strcmp(value, dy_exchange_names[k])) {
      *kind = (DyExchangeKind)k;
      PetscFunctionReturn(0);
    }
  PetscCall(dy_input_error(comm, "option -dy_exchange %s: expected auto, mpi or shared", value));
  PetscFunctionReturn(0);
}

/* Collective: the shared way's window and every rank's segment in it. */
static PetscErrorCode dy_exchange_shared_setup(DyExchange *ex)
{
  MPI_Info info;
  char *mine;

  PetscFunctionBegin;
  ex->stride = (ex->n * sizeof(dy_real) + DY_LINE - 1) / DY_LINE * DY_LINE / sizeof(dy_real);
  const size_t bytes = DY_LINE + 2 * ex->stride * sizeof(dy_real);
  PetscCallMPI(MPI_Info_create(&info));
  PetscCallMPI(MPI_Info_set(info, "alloc_shared_noncontig", "true")); /* each segment near its owner */
  PetscCallMPI(MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, ex->comm, &mine, &ex->win));
  PetscCallMPI(MPI_Info_free(&info));
  PetscCall(PetscMalloc2(ex->size, &ex->seqno, ex->size, &ex->slot));
  atomic_init((_Atomic int64_t *)mine, 0);
  memset(mine + DY_LINE, 0, bytes - DY_LINE);
  for (int r = 0; r < ex->size; r++) {
    MPI_Aint size;
    int unit;
    char *base;
    PetscCallMPI(MPI_Win_shared_query(ex->win, r, &size, &unit, &base));
    ex->seqno[r] = (_Atomic int64_t *)base;
    ex->slot[r] = (dy_real *)(base + DY_LINE);
  }
  PetscCallMPI(MPI_Barrier(ex->comm)); /* every segment initialised before anyone reads it */
  PetscFunctionReturn(0);
}

PetscErrorCode dy_exchange_one_node(MPI_Comm comm, int *one_node, int *node_size)
{
  MPI_Comm node;
  int size;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  PetscCallMPI(MPI_Comm_size(node, node_size));
  PetscCallMPI(MPI_Comm_free(&node));
  *one_node = *node_size == size;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, one_node, 1, MPI_INT, MPI_LAND, comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_exchange_create(MPI_Comm comm, size_t n, DyExchangeKind kind, DyExchange **out)
{
  DyExchange *ex;
  int node_size, one_node;

  PetscFunctionBegin;
  PetscCheck(n <= INT_MAX, comm, PETSC_ERR_ARG_OUTOFRANGE, "exchange of %zu values: more than MPI can count", n);
  PetscCall(PetscCalloc1(1, &ex));
  ex->comm = comm;
  ex->n = n;
  ex->req = MPI_REQUEST_NULL;
  ex->win = MPI_WIN_NULL;
  PetscCallMPI(MPI_Comm_rank(comm, &ex->rank));
  PetscCallMPI(MPI_Comm_size(comm, &ex->size));
  PetscCall(dy_exchange_one_node(comm, &one_node, &node_size));
  if (kind == DY_EXCHANGE_SHARED && !one_node) {
    const int size = ex->size;
    PetscCall(PetscFree(ex));
    PetscCall(dy_input_error(comm,
                             "option -dy_exchange shared needs every rank on one node (%d of the %d ranks share "
                             "this one); use -dy_exchange mpi or auto",
                             node_size, size));
  }
  if (kind == DY_EXCHANGE_AUTO)
    kind = one_node && ex->size >= 2 && ex->size <= DY_EXCHANGE_SHARED_MAX ? DY_EXCHANGE_SHARED : DY_EXCHANGE_MPI;
  ex->kind = kind;
  if (kind == DY_EXCHANGE_SHARED) PetscCall(dy_exchange_shared_setup(ex));
  *out = ex;
  PetscFunctionReturn(0);
}

PetscErrorCode dy_exchange_start(DyExchange *ex, dy_real *buf)
{
  PetscFunctionBegin;
  if (ex->kind == DY_EXCHANGE_MPI) {
    PetscCallMPI(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)ex->n, DY_MPI_REAL, MPI_SUM, ex->comm, &ex->req));
    PetscFunctionReturn(0);
  }
  ex->seq++;
  memcpy(ex->slot[ex->rank] + (size_t)(ex->seq & 1) * ex->stride, buf, ex->n * sizeof *buf);
  atomic_store_explicit(ex->seqno[ex->rank], ex->seq, memory_order_release);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_exchange_progress(DyExchange *ex)
{
  int done;

  PetscFunctionBegin;
  if (ex->kind == DY_EXCHANGE_MPI && ex->req != MPI_REQUEST_NULL)
    PetscCallMPI(MPI_Test(&ex->req, &done, MPI_STATUS_IGNORE));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_exchange_wait(DyExchange *ex, dy_real *buf)
{
  PetscFunctionBegin;
  if (ex->kind == DY_EXCHANGE_MPI) {
    PetscCallMPI(MPI_Wait(&ex->req, MPI_STATUS_IGNORE));
    PetscFunctionReturn(0);
  }
  for (int r = 0; r < ex->size; r++) {
    unsigned spins = 0;
    /* a short busy wait, then yielding: with more ranks than cores the rank waited for may need
     * this core */
    while (atomic_load_explicit(ex->seqno[r], memory_order_acquire) < ex->seq)
      if (++spins > 256) sched_yield();
  }
  const size_t off = (size_t)(ex->seq & 1) * ex->stride, n = ex->n;
  memcpy(buf, ex->slot[0] + off, n * sizeof *buf);
  for (int r = 1; r < ex->size; r++) {
    const dy_real *s = ex->slot[r] + off;
    for (size_t i = 0; i < n; i++) buf[i] += s[i];
  }
  PetscFunctionReturn(0);
}

DyExchangeKind dy_exchange_kind(const DyExchange *ex) { return ex->kind; }

const char *dy_exchange_name(const DyExchange *ex) { return dy_exchange_names[ex->kind]; }

PetscErrorCode dy_exchange_destroy(DyExchange **ex)
{
  PetscFunctionBegin;
  if (!*ex) PetscFunctionReturn(0);
  if ((*ex)->req != MPI_REQUEST_NULL) PetscCallMPI(MPI_Wait(&(*ex)->req, MPI_STATUS_IGNORE));
  if ((*ex)->win != MPI_WIN_NULL) PetscCallMPI(MPI_Win_free(&(*ex)->win));
  PetscCall(PetscFree2((*ex)->seqno, (*ex)->slot));
  PetscCall(PetscFree(*ex));
  PetscFunctionReturn(0);
}
