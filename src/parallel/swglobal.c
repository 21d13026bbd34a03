/* The sliced-Wasserstein loss of a batch spread over the ranks (see dy_swglobal.h). */
#include "parallel/dy_swglobal.h"
#include "nn/dy_nn.h"

#include <stdlib.h>
#include <string.h>

/* Projections the sort kernel handles together (dy_sw_loss): the split way gives whole groups. */
#define DY_SW_PROJ_GROUP 4

static PetscLogEvent dy_ev_gather, dy_ev_sort, dy_ev_reduce;

static const char *const dy_swglobal_way_names[] = {"auto", "gather", "split"};

/* -dy_sw_global auto|gather|split; auto: split beyond DY_SWGLOBAL_GATHER_MAX ranks. */
static PetscErrorCode dy_swglobal_way(MPI_Comm comm, int size, DySwGlobalWay *way)
{
  char value[32] = "auto";
  PetscBool set = PETSC_FALSE;
  int k = 0;

  PetscFunctionBegin;
  PetscCall(PetscOptionsGetString(NULL, NULL, "-dy_sw_global", value, sizeof value, &set));
  while (k < 3 && strcmp(value, dy_swglobal_way_names[k])) k++;
  if (k == 3) PetscCall(dy_input_error(comm, "option -dy_sw_global %s: expected auto, gather or split", value));
  *way = k == 2 || (k == 0 && size > DY_SWGLOBAL_GATHER_MAX) ? DY_SWGLOBAL_SPLIT : DY_SWGLOBAL_GATHER;
  PetscFunctionReturn(0);
}

PetscErrorCode dy_swglobal_check_options(MPI_Comm comm)
{
  DySwGlobalWay way;
  int size;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(dy_swglobal_way(comm, size, &way));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_swglobal_create(MPI_Comm comm, int Bmax, int L, int d, DySwGlobal *sw)
{
  static int registered = 0;

  PetscFunctionBegin;
  memset(sw, 0, sizeof *sw);
  PetscCheck(Bmax > 0 && L > 0 && d > 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "global SW: bad sizes B %d, L %d, d %d",
             Bmax, L, d);
  if (!registered) {
    PetscClassId cid;
    PetscCall(PetscClassIdRegister("dynae-mpi SW", &cid));
    PetscCall(PetscLogEventRegister("DySwGather", cid, &dy_ev_gather));
    PetscCall(PetscLogEventRegister("DySwSort", cid, &dy_ev_sort));
    PetscCall(PetscLogEventRegister("DySwReduce", cid, &dy_ev_reduce));
    registered = 1;
  }
  sw->comm = comm;
  PetscCallMPI(MPI_Comm_rank(comm, &sw->rank));
  PetscCallMPI(MPI_Comm_size(comm, &sw->size));
  PetscCall(dy_swglobal_way(comm, sw->size, &sw->way));
  sw->Bmax = Bmax;
  sw->L = L;
  sw->d = d;
  PetscCall(PetscMalloc7((size_t)Bmax * d, &sw->dz, (size_t)Bmax * d, &sw->dzp, (size_t)Bmax * d, &sw->gdz,
                         (size_t)Bmax * 2 * d, &sw->send, (size_t)Bmax * 2 * d, &sw->recv, (size_t)sw->size, &sw->count,
                         (size_t)sw->size, &sw->displ));
  const size_t bytes = dy_sw_work_bytes(Bmax, L, d);
  sw->work = dy_aligned_zalloc(bytes);
  PetscCheck(sw->work, comm, PETSC_ERR_MEM, "global SW: cannot allocate %zu bytes", bytes);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_swglobal_loss(DySwGlobal *sw, const int *share, const dy_real *theta, const dy_real *dz,
                                const dy_real *dzp, double beta, dy_real *gdz, double *loss)
{
  const int d = sw->d;
  int B = 0;

  PetscFunctionBegin;
  for (int r = 0; r < sw->size; r++) {
    sw->count[r] = share[r] * 2 * d;
    sw->displ[r] = B * 2 * d;
    B += share[r];
  }
  PetscCheck(B > 0 && B <= sw->Bmax, sw->comm, PETSC_ERR_ARG_OUTOFRANGE,
             "global SW: a batch of %d rows (room for %d)", B, sw->Bmax);
  PetscCall(PetscLogEventBegin(dy_ev_gather, 0, 0, 0, 0));
  /* one message per rank: its rows of dz, then of dzp */
  const int mine = share[sw->rank], first = sw->displ[sw->rank] / 2;
  memcpy(sw->send, dz, (size_t)mine * d * sizeof *dz);
  memcpy(sw->send + (size_t)mine * d, dzp, (size_t)mine * d * sizeof *dzp);
  PetscCallMPI(MPI_Allgatherv(sw->send, 2 * mine * d, DY_MPI_REAL, sw->recv, sw->count, sw->displ, DY_MPI_REAL,
                              sw->comm));
  for (int r = 0, row = 0; r < sw->size; row += share[r], r++) {
    const dy_real *in = sw->recv + sw->displ[r];
    memcpy(sw->dz + (size_t)row * d, in, (size_t)share[r] * d * sizeof *in);
    memcpy(sw->dzp + (size_t)row * d, in + (size_t)share[r] * d, (size_t)share[r] * d * sizeof *in);
  }
  PetscCall(PetscLogEventEnd(dy_ev_gather, 0, 0, 0, 0));

  PetscCall(PetscLogEventBegin(dy_ev_sort, 0, 0, 0, 0));
  if (gdz) memset(sw->gdz, 0, (size_t)B * d * sizeof *sw->gdz);
  if (sw->way == DY_SWGLOBAL_GATHER) {
    *loss = dy_sw_loss(sw->L, B, d, theta, sw->dz, sw->dzp, beta, gdz ? sw->gdz : NULL, sw->work);
    if (gdz) memcpy(gdz, sw->gdz + (size_t)first, (size_t)mine * d * sizeof *gdz);
    PetscCall(PetscLogEventEnd(dy_ev_sort, 0, 0, 0, 0));
    PetscFunctionReturn(0);
  }
  /* split: this rank's whole groups of projections (the kernel's unit of DY_SW_PROJ_GROUP), their
   * share of the loss and of every row's gradient; the rows' gradients summed back to their ranks */
  const int ng = (sw->L + DY_SW_PROJ_GROUP - 1) / DY_SW_PROJ_GROUP;
  const int l0 = DY_SW_PROJ_GROUP * (ng * sw->rank / sw->size);
  const int l1 = DY_MIN(sw->L, DY_SW_PROJ_GROUP * (ng * (sw->rank + 1) / sw->size));
  const double w = (double)(l1 - l0) / sw->L;
  *loss = l1 > l0 ? w * dy_sw_loss(l1 - l0, B, d, theta + (size_t)l0 * d, sw->dz, sw->dzp, beta * w,
                                   gdz ? sw->gdz : NULL, sw->work)
                  : 0.0;
  PetscCall(PetscLogEventEnd(dy_ev_sort, 0, 0, 0, 0));
  PetscCall(PetscLogEventBegin(dy_ev_reduce, 0, 0, 0, 0));
  for (int r = 0; r < sw->size; r++) sw->count[r] = share[r] * d;
  if (gdz) {
    if (mine == 0) gdz = sw->send; /* a valid buffer for no values */
    PetscCallMPI(MPI_Reduce_scatter(sw->gdz, gdz, sw->count, DY_MPI_REAL, MPI_SUM, sw->comm));
  }
  PetscCall(PetscLogEventEnd(dy_ev_reduce, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_swglobal_step(DySwGlobal *sw, DyModel *model, DyWork *work, const int *share, const dy_real *x0,
                                const dy_real *x1, const dy_real *y0, const dy_real *y1, const dy_real *theta,
                                const dy_real *eps, const DyLossOptions *opt, PetscLogEvent ev_nets,
                                DyLosses *losses)
{
  const int nb = share[sw->rank];
  const dy_real *dz, *dzp;
  dy_real *gdz;
  int B = 0;

  PetscFunctionBegin;
  for (int r = 0; r < sw->size; r++) B += share[r];
  *losses = (DyLosses){0};
  PetscCall(PetscLogEventBegin(ev_nets, 0, 0, 0, 0));
  if (nb > 0) dy_model_forward(model, work, nb, x0, x1, y0, y1, eps, opt, (double)B, 1, losses);
  PetscCall(PetscLogEventEnd(ev_nets, 0, 0, 0, 0));
  dy_work_moves(work, &dz, &dzp, &gdz);
  PetscCall(dy_swglobal_loss(sw, share, theta, dz, dzp, opt->beta, gdz, &losses->sw));
  PetscCall(PetscLogEventBegin(ev_nets, 0, 0, 0, 0));
  if (nb > 0) dy_model_backward(model, work, nb);
  else memset(model->grads, 0, model->nparam * sizeof *model->grads);
  PetscCall(PetscLogEventEnd(ev_nets, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

void dy_swglobal_destroy(DySwGlobal *sw)
{
  if (!sw->dz) return;
  PetscFree7(sw->dz, sw->dzp, sw->gdz, sw->send, sw->recv, sw->count, sw->displ);
  free(sw->work);
  memset(sw, 0, sizeof *sw);
}
