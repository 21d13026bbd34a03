/* The per-step sum over ranks (see dy_exchange.h).
 *
 * Shared memory: each rank of a node owns one segment of a shared-memory window, [sequence line |
 * reduced line | final line | slot 0 | slot 1 | part 0 | part 1 | final 0 | final 1]. Exchange
 * number s uses the areas of parity s % 2:
 *   start   the rank writes its buffer into slot s % 2 and publishes s in its sequence line
 *           (release);
 *   full    (up to DY_EXCHANGE_FULL_MAX ranks, one node) once every rank has published s
 *           (acquire), each sums slot s % 2 of ranks 0..P-1 in that order;
 *   scatter (more ranks, or hier) rank r sums chunk r of the buffer over the slots in rank order
 *           into its part s % 2 and publishes s in its reduced line; the chunks are then copied
 *           from every rank's part (shared), or the node leader assembles them, allreduces the
 *           node sum with the other nodes' leaders, writes it into its final s % 2 and publishes s
 *           in its final line, from where the node's ranks copy it (hier).
 * Two parities suffice: a rank writes the areas of parity s % 2 again only in exchange s + 2, after
 * it has finished exchange s + 1, which needs every rank of the node to have published s + 1 in
 * the line it waits for (sequence, reduced or the leader's final), which each does only after it
 * finished reading everything of exchange s. */
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
  DyExchangeKind kind; /* DY_EXCHANGE_MPI, DY_EXCHANGE_SHARED or DY_EXCHANGE_HIER */
  int rank, size;
  size_t n;
  MPI_Request req;   /* mpi: the reduction in flight */
  MPI_Comm node;     /* shared, hier: the ranks of this node (comm itself for shared) */
  MPI_Comm leaders;  /* hier: node rank 0 of every node; MPI_COMM_NULL elsewhere */
  int node_rank, node_size;
  int scatter;       /* 1: reduce-scatter over the slots; 0: every rank sums all slots */
  MPI_Win win;       /* shared, hier: the window of all segments of the node */
  size_t stride;     /* values per slot, rounded up to whole cache lines */
  size_t chunk;      /* values of a rank's chunk of the buffer, whole cache lines */
  _Atomic int64_t **seqno;   /* (node_size) every rank's published sequence number */
  _Atomic int64_t **reduced; /* (node_size) every rank's published reduction of its chunk */
  _Atomic int64_t *final;    /* hier: the leader's published node-wide result */
  dy_real **slot;            /* (node_size) every rank's two slots */
  dy_real **part;            /* (node_size) every rank's two chunk sums */
  dy_real *final_sum;        /* hier: the leader's two result buffers */
  int64_t seq;               /* exchanges started, the same count on every rank */
};

static const char *const dy_exchange_names[] = {"auto", "mpi", "shared", "hier"};

PetscErrorCode dy_exchange_kind_from_options(MPI_Comm comm, DyExchangeKind *kind)
{
  char value[32] = "auto";
  PetscBool set = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(PetscOptionsGetString(NULL, NULL, "-dy_exchange", value, sizeof value, &set));
  for (int k = 0; k < 4; k++)
    if (!strcmp(value, dy_exchange_names[k])) {
      *kind = (DyExchangeKind)k;
      PetscFunctionReturn(0);
    }
  PetscCall(dy_input_error(comm, "option -dy_exchange %s: expected auto, mpi, shared or hier", value));
  PetscFunctionReturn(0);
}

/* -dy_exchange_ranks_per_node K (K > 0): treat every K consecutive ranks as one node, so that the
 * hierarchical way can be tested and measured on one machine; 0 when absent. */
static PetscErrorCode dy_exchange_ranks_per_node(MPI_Comm comm, int *per_node)
{
  PetscInt k = 0;
  PetscBool set = PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(PetscOptionsGetInt(NULL, NULL, "-dy_exchange_ranks_per_node", &k, &set));
  if (set && k < 1) PetscCall(dy_input_error(comm, "option -dy_exchange_ranks_per_node %d: must be >= 1", (int)k));
  *per_node = set ? (int)k : 0;
  PetscFunctionReturn(0);
}

/* Collective on the node: the window of every rank's segment (see the top of this file). */
static PetscErrorCode dy_exchange_shared_setup(DyExchange *ex)
{
  MPI_Info info;
  char *mine;
  const size_t line = DY_LINE / sizeof(dy_real);

  PetscFunctionBegin;
  ex->stride = (ex->n + line - 1) / line * line;
  ex->chunk = ((ex->n + ex->node_size - 1) / ex->node_size + line - 1) / line * line;
  const size_t finals = ex->kind == DY_EXCHANGE_HIER && ex->node_rank == 0 ? 2 * ex->stride : 0;
  const size_t bytes = 3 * DY_LINE + (2 * ex->stride + 2 * ex->chunk + finals) * sizeof(dy_real);
  PetscCallMPI(MPI_Info_create(&info));
  PetscCallMPI(MPI_Info_set(info, "alloc_shared_noncontig", "true")); /* each segment near its owner */
  PetscCallMPI(MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, ex->node, &mine, &ex->win));
  PetscCallMPI(MPI_Info_free(&info));
  PetscCall(PetscMalloc4(ex->node_size, &ex->seqno, ex->node_size, &ex->reduced, ex->node_size, &ex->slot,
                         ex->node_size, &ex->part));
  for (int k = 0; k < 3; k++) atomic_init((_Atomic int64_t *)(mine + k * DY_LINE), 0);
  memset(mine + 3 * DY_LINE, 0, bytes - 3 * DY_LINE);
  for (int r = 0; r < ex->node_size; r++) {
    MPI_Aint size;
    int unit;
    char *base;
    PetscCallMPI(MPI_Win_shared_query(ex->win, r, &size, &unit, &base));
    ex->seqno[r] = (_Atomic int64_t *)base;
    ex->reduced[r] = (_Atomic int64_t *)(base + DY_LINE);
    ex->slot[r] = (dy_real *)(base + 3 * DY_LINE);
    ex->part[r] = ex->slot[r] + 2 * ex->stride;
    if (r == 0) {
      ex->final = (_Atomic int64_t *)(base + 2 * DY_LINE);
      ex->final_sum = ex->part[0] + 2 * ex->chunk;
    }
  }
  PetscCallMPI(MPI_Barrier(ex->node)); /* every segment initialised before anyone reads it */
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
  int node_size, one_node, most, per_node = 0;

  PetscFunctionBegin;
  PetscCheck(n <= INT_MAX, comm, PETSC_ERR_ARG_OUTOFRANGE, "exchange of %zu values: more than MPI can count", n);
  PetscCall(PetscCalloc1(1, &ex));
  ex->comm = comm;
  ex->n = n;
  ex->req = MPI_REQUEST_NULL;
  ex->win = MPI_WIN_NULL;
  ex->node = ex->leaders = MPI_COMM_NULL;
  PetscCallMPI(MPI_Comm_rank(comm, &ex->rank));
  PetscCallMPI(MPI_Comm_size(comm, &ex->size));
  PetscCall(dy_exchange_ranks_per_node(comm, &per_node));
  PetscCall(dy_exchange_one_node(comm, &one_node, &node_size));
  if (per_node > 0) { /* nodes of per_node consecutive ranks, as if they were apart */
    node_size = DY_MIN(per_node, ex->size - ex->rank / per_node * per_node);
    one_node = per_node >= ex->size;
  }
  PetscCallMPI(MPI_Allreduce(&node_size, &most, 1, MPI_INT, MPI_MAX, comm));
  if (kind == DY_EXCHANGE_SHARED && !one_node) {
    const int size = ex->size;
    PetscCall(PetscFree(ex));
    PetscCall(dy_input_error(comm,
                             "option -dy_exchange shared needs every rank on one node (%d of the %d ranks share "
                             "this one); use -dy_exchange hier, mpi or auto",
                             node_size, size));
  }
  if (kind == DY_EXCHANGE_AUTO) {
    if (most < 2 || most > DY_EXCHANGE_SHARED_MAX) kind = DY_EXCHANGE_MPI;
    else kind = one_node ? DY_EXCHANGE_SHARED : DY_EXCHANGE_HIER;
  }
  if (kind == DY_EXCHANGE_HIER && one_node) kind = DY_EXCHANGE_SHARED; /* one node: nothing between nodes */
  ex->kind = kind;
  if (kind != DY_EXCHANGE_MPI) {
    if (kind == DY_EXCHANGE_SHARED) PetscCallMPI(MPI_Comm_dup(comm, &ex->node));
    else if (per_node > 0) PetscCallMPI(MPI_Comm_split(comm, ex->rank / per_node, ex->rank, &ex->node));
    else PetscCallMPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, ex->rank, MPI_INFO_NULL, &ex->node));
    PetscCallMPI(MPI_Comm_rank(ex->node, &ex->node_rank));
    PetscCallMPI(MPI_Comm_size(ex->node, &ex->node_size));
    ex->scatter = kind == DY_EXCHANGE_HIER || ex->node_size > DY_EXCHANGE_FULL_MAX;
    if (kind == DY_EXCHANGE_HIER)
      PetscCallMPI(MPI_Comm_split(comm, ex->node_rank == 0 ? 0 : MPI_UNDEFINED, ex->rank, &ex->leaders));
    PetscCall(dy_exchange_shared_setup(ex));
  }
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
  memcpy(ex->slot[ex->node_rank] + (size_t)(ex->seq & 1) * ex->stride, buf, ex->n * sizeof *buf);
  atomic_store_explicit(ex->seqno[ex->node_rank], ex->seq, memory_order_release);
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

/* Waits until line >= seq: a short busy wait, then yielding (with more ranks than cores the rank
 * waited for may need this core). */
static void dy_exchange_await(_Atomic int64_t *line, int64_t seq)
{
  unsigned spins = 0;
  while (atomic_load_explicit(line, memory_order_acquire) < seq)
    if (++spins > 256) sched_yield();
}

/* out[0, m) = the sum of values [lo, lo + m) of slot parity `off` over the node's ranks, in rank
 * order (the left-to-right sum). */
static void dy_exchange_sum_slots(const DyExchange *ex, size_t off, size_t lo, size_t m, dy_real *out)
{
  memcpy(out, ex->slot[0] + off + lo, m * sizeof *out);
  for (int r = 1; r < ex->node_size; r++) {
    const dy_real *s = ex->slot[r] + off + lo;
    for (size_t i = 0; i < m; i++) out[i] += s[i];
  }
}

/* The chunk of rank r: values [lo, lo + m) of the buffer. */
static void dy_exchange_chunk(const DyExchange *ex, int r, size_t *lo, size_t *m)
{
  *lo = DY_MIN((size_t)r * ex->chunk, ex->n);
  *m = DY_MIN(ex->chunk, ex->n - *lo);
}

PetscErrorCode dy_exchange_wait(DyExchange *ex, dy_real *buf)
{
  const size_t off = (size_t)(ex->seq & 1) * ex->stride, poff = (size_t)(ex->seq & 1) * ex->chunk;
  size_t lo, m;

  PetscFunctionBegin;
  if (ex->kind == DY_EXCHANGE_MPI) {
    PetscCallMPI(MPI_Wait(&ex->req, MPI_STATUS_IGNORE));
    PetscFunctionReturn(0);
  }
  for (int r = 0; r < ex->node_size; r++) dy_exchange_await(ex->seqno[r], ex->seq);
  if (!ex->scatter) {
    dy_exchange_sum_slots(ex, off, 0, ex->n, buf);
    PetscFunctionReturn(0);
  }
  dy_exchange_chunk(ex, ex->node_rank, &lo, &m);
  dy_exchange_sum_slots(ex, off, lo, m, ex->part[ex->node_rank] + poff);
  atomic_store_explicit(ex->reduced[ex->node_rank], ex->seq, memory_order_release);
  if (ex->kind == DY_EXCHANGE_SHARED || ex->node_rank == 0) {
    for (int r = 0; r < ex->node_size; r++) {
      dy_exchange_await(ex->reduced[r], ex->seq);
      dy_exchange_chunk(ex, r, &lo, &m);
      memcpy(buf + lo, ex->part[r] + poff, m * sizeof *buf);
    }
    if (ex->kind == DY_EXCHANGE_SHARED) PetscFunctionReturn(0);
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, buf, (int)ex->n, DY_MPI_REAL, MPI_SUM, ex->leaders));
    memcpy(ex->final_sum + off, buf, ex->n * sizeof *buf);
    atomic_store_explicit(ex->final, ex->seq, memory_order_release);
    PetscFunctionReturn(0);
  }
  dy_exchange_await(ex->final, ex->seq);
  memcpy(buf, ex->final_sum + off, ex->n * sizeof *buf);
  PetscFunctionReturn(0);
}

DyExchangeKind dy_exchange_kind(const DyExchange *ex) { return ex->kind; }

const char *dy_exchange_name(const DyExchange *ex) { return dy_exchange_names[ex->kind]; }

const char *dy_exchange_describe(const DyExchange *ex)
{
  switch (ex->kind) {
  case DY_EXCHANGE_SHARED: return "shared-memory slots (one node; -dy_exchange mpi for MPI_Iallreduce)";
  case DY_EXCHANGE_HIER: return "shared-memory slots in each node, MPI_Allreduce between the nodes' leaders (hier)";
  default: return "MPI_Iallreduce";
  }
}

PetscErrorCode dy_exchange_destroy(DyExchange **ex)
{
  PetscFunctionBegin;
  if (!*ex) PetscFunctionReturn(0);
  if ((*ex)->req != MPI_REQUEST_NULL) PetscCallMPI(MPI_Wait(&(*ex)->req, MPI_STATUS_IGNORE));
  if ((*ex)->win != MPI_WIN_NULL) PetscCallMPI(MPI_Win_free(&(*ex)->win));
  if ((*ex)->node != MPI_COMM_NULL) PetscCallMPI(MPI_Comm_free(&(*ex)->node));
  if ((*ex)->leaders != MPI_COMM_NULL) PetscCallMPI(MPI_Comm_free(&(*ex)->leaders));
  PetscCall(PetscFree4((*ex)->seqno, (*ex)->reduced, (*ex)->slot, (*ex)->part));
  PetscCall(PetscFree(*ex));
  PetscFunctionReturn(0);
}
