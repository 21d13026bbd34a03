/* The per-step sum of a buffer (gradients, losses, counts) over the ranks of a communicator,
 * started before and finished after work that does not need it (the next step's draws).
 *
 * Two ways, chosen once when the trainer starts (PETSc option -dy_exchange auto|mpi|shared):
 *   mpi     MPI_Iallreduce with MPI_SUM, progressed by dy_exchange_progress;
 *   shared  all ranks on one node: every rank copies its buffer into its own slot of a
 *           shared-memory window and raises a sequence number; once every rank has, each one
 *           sums the slots itself, in rank order. No message protocol runs, so on a node this
 *           costs a copy and a read of P buffers (a few microseconds for the default model,
 *           against 15-40 for the allreduce measured by tools/bench_sync).
 *   auto    (default) shared when every rank is on one node and there are 2 to
 *           DY_EXCHANGE_SHARED_MAX of them, mpi otherwise.
 * Both give every rank bitwise the same sums, and the same run twice gives the same bits. The
 * two ways add in different orders, so between them results differ in the last bits from 3
 * ranks on (at 2 ranks both compute g0 + g1, which is the same as g1 + g0). */
#pragma once
#include "base/dy_common.h"

#include <stddef.h>

/* auto: beyond this many ranks on a node, reading all P slots costs more than a collective */
#define DY_EXCHANGE_SHARED_MAX 8

typedef enum { DY_EXCHANGE_AUTO = 0, DY_EXCHANGE_MPI, DY_EXCHANGE_SHARED } DyExchangeKind;

typedef struct DyExchange DyExchange;

/* Collective: *one_node is 1 on every rank when all ranks of comm share one node (the shared way's
 * condition); *node_size is how many ranks share this rank's node. */
PetscErrorCode dy_exchange_one_node(MPI_Comm comm, int *one_node, int *node_size);
/* Collective on comm: an exchange of n values. kind DY_EXCHANGE_SHARED on ranks that are not all
 * on one node is an input error (exit 2) that says to use -dy_exchange mpi or auto. */
PetscErrorCode dy_exchange_create(MPI_Comm comm, size_t n, DyExchangeKind kind, DyExchange **ex);
/* The kind of the -dy_exchange option (auto when absent); an unknown value is an input error. */
PetscErrorCode dy_exchange_kind_from_options(MPI_Comm comm, DyExchangeKind *kind);
/* Collective: starts the sum of buf (n values); buf must not change until dy_exchange_wait. */
PetscErrorCode dy_exchange_start(DyExchange *ex, dy_real *buf);
/* Lets a started exchange advance (mpi: MPI_Test); cheap, call it between parts of other work. */
PetscErrorCode dy_exchange_progress(DyExchange *ex);
/* Finishes the exchange: buf holds the sums over all ranks, the same bits on every rank. */
PetscErrorCode dy_exchange_wait(DyExchange *ex, dy_real *buf);
/* DY_EXCHANGE_MPI or DY_EXCHANGE_SHARED: the way in use, and its name "mpi" or "shared". */
DyExchangeKind dy_exchange_kind(const DyExchange *ex);
const char *dy_exchange_name(const DyExchange *ex);
/* Collective. */
PetscErrorCode dy_exchange_destroy(DyExchange **ex);
