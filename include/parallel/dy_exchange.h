/* The per-step sum of a buffer (gradients, losses, counts) over the ranks of a communicator,
 * started before and finished after work that does not need it (the next step's draws).
 *
 * Three ways, chosen once when the trainer starts (PETSc option -dy_exchange auto|mpi|shared|hier):
 *   mpi     MPI_Iallreduce with MPI_SUM, progressed by dy_exchange_progress;
 *   shared  all ranks on one node: every rank copies its buffer into its own slot of a
 *           shared-memory window and raises a sequence number. With up to
 *           DY_EXCHANGE_FULL_MAX ranks each rank then sums all slots itself, in rank order; with
 *           more, the sum is a reduce-scatter over the slots: rank r sums its own chunk of the
 *           buffer over the P slots, in rank order, publishes it, and every rank copies the P
 *           chunks. Each rank then reads about 2n values instead of P n, which keeps the sum cheap
 *           up to DY_EXCHANGE_SHARED_MAX ranks on a node. Both orders of work add every value in
 *           rank order 0, 1, ..., P - 1, so their bits are the same: the left-to-right sum.
 *   hier    several nodes: the shared way inside each node, then MPI_Allreduce of the node sums
 *           between one leader per node (node rank 0), whose result every rank of the node copies
 *           from the leader's shared-memory area. Messages cross the network once per node
 *           rather than once per rank.
 *   auto    (default) shared when every rank is on one node and there are 2 to
 *           DY_EXCHANGE_SHARED_MAX of them, hier when the ranks span several nodes and some node
 *           holds more than one of them (and at most DY_EXCHANGE_SHARED_MAX), mpi otherwise.
 * Every way gives every rank bitwise the same sums, and the same run twice gives the same bits.
 * The ways add in different orders, so between them results differ in the last bits from 3
 * ranks on (at 2 ranks mpi and shared both compute g0 + g1, which is the same as g1 + g0). */
#pragma once
#include "base/dy_common.h"

#include <stddef.h>

/* shared: up to this many ranks on a node each rank sums all slots (one synchronisation); beyond,
 * the reduce-scatter (two synchronisations, but O(n) reads per rank) */
#define DY_EXCHANGE_FULL_MAX 4
/* auto: the shared and hierarchical ways up to this many ranks on a node */
#define DY_EXCHANGE_SHARED_MAX 128

typedef enum { DY_EXCHANGE_AUTO = 0, DY_EXCHANGE_MPI, DY_EXCHANGE_SHARED, DY_EXCHANGE_HIER } DyExchangeKind;

typedef struct DyExchange DyExchange;

/* Collective: *one_node is 1 on every rank when all ranks of comm share one node (the shared way's
 * condition); *node_size is how many ranks share this rank's node. */
PetscErrorCode dy_exchange_one_node(MPI_Comm comm, int *one_node, int *node_size);
/* Collective on comm: an exchange of n values. kind DY_EXCHANGE_SHARED on ranks that are not all
 * on one node is an input error (exit 2) that says to use -dy_exchange hier, mpi or auto. */
PetscErrorCode dy_exchange_create(MPI_Comm comm, size_t n, DyExchangeKind kind, DyExchange **ex);
/* The kind of the -dy_exchange option (auto when absent); an unknown value is an input error. */
PetscErrorCode dy_exchange_kind_from_options(MPI_Comm comm, DyExchangeKind *kind);
/* Collective: starts the sum of buf (n values); buf must not change until dy_exchange_wait. */
PetscErrorCode dy_exchange_start(DyExchange *ex, dy_real *buf);
/* Lets a started exchange advance (mpi: MPI_Test); cheap, call it between parts of other work. */
PetscErrorCode dy_exchange_progress(DyExchange *ex);
/* Finishes the exchange: buf holds the sums over all ranks, the same bits on every rank. */
PetscErrorCode dy_exchange_wait(DyExchange *ex, dy_real *buf);
/* DY_EXCHANGE_MPI, DY_EXCHANGE_SHARED or DY_EXCHANGE_HIER: the way in use, and its name "mpi",
 * "shared" or "hier". */
DyExchangeKind dy_exchange_kind(const DyExchange *ex);
const char *dy_exchange_name(const DyExchange *ex);
/* One line for the user: how the sums travel and how to choose another way. */
const char *dy_exchange_describe(const DyExchange *ex);
/* Collective. */
PetscErrorCode dy_exchange_destroy(DyExchange **ex);
