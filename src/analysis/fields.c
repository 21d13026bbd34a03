/* Fields of the latent space on a grid; the force free energy from a Poisson problem on a DMDA.
 * The grid, the discretisation, its distribution and the null space: include/analysis/dy_fields.h. */
#include "analysis/dy_fields.h"

#include <math.h>
#include <petscblaslapack.h>
#include <petscdmda.h>
#include <petscksp.h>
#include <string.h>

#if defined(PETSC_USE_COMPLEX)
#error "the fields need a real PETSc build"
#endif

#define DY_FIELDS_MAX_POINTS ((int64_t)1 << 27) /* grid points at most (a 512^3 grid) */

static PetscLogEvent dy_ev_fields, dy_ev_solve;

static PetscErrorCode dy_fields_register_events(void)
{
  static int done = 0;
  PetscClassId cid;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(0);
  PetscCall(PetscClassIdRegister("dynae-mpi analysis", &cid));
  PetscCall(PetscLogEventRegister("DyFields", cid, &dy_ev_fields));
  PetscCall(PetscLogEventRegister("DyFieldsSolve", cid, &dy_ev_solve));
  done = 1;
  PetscFunctionReturn(0);
}

/* Collective: the axes, from the extent of every rank's points. */
static PetscErrorCode dy_fields_grid(MPI_Comm comm, int d, int64_t n, const dy_real *z, const DyFieldsOptions *opt,
                                     DyFields *f)
{
  double ext[2 * DY_FIELDS_MAX_DIM]; /* min of each axis, then minus the max */
  int64_t total = n;

  PetscFunctionBegin;
  for (int j = 0; j < 2 * d; j++) ext[j] = INFINITY;
  for (int64_t p = 0; p < n; p++)
    for (int j = 0; j < d; j++) {
      const double v = (double)z[p * d + j];
      ext[j] = DY_MIN(ext[j], v);
      ext[d + j] = DY_MIN(ext[d + j], -v);
    }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, ext, 2 * d, MPI_DOUBLE, MPI_MIN, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, comm));
  PetscCheck(total > 0, comm, PETSC_ERR_ARG_WRONG, "the fields need latent points, and there are none");
  f->npoint = 1;
  for (int j = 0; j < d; j++) {
    const double lo = ext[j], hi = -ext[d + j];
    PetscCheck(isfinite(lo) && isfinite(hi), comm, PETSC_ERR_FP, "latent axis %d is not finite (from %g to %g)", j, lo,
               hi);
    const double r = hi - lo;
    /* a single value on an axis gets a cell of width 1 around it */
    const double a = r > 0 ? lo - opt->margin * r : lo - 0.5, b = r > 0 ? hi + opt->margin * r : hi + 0.5;
    f->n[j] = opt->grid;
    f->h[j] = (b - a) / opt->grid;
    PetscCall(PetscMalloc1((size_t)opt->grid, &f->axis[j]));
    for (int i = 0; i < opt->grid; i++) f->axis[j][i] = a + (i + 0.5) * f->h[j];
    f->npoint *= opt->grid;
  }
  PetscFunctionReturn(0);
}

/* Collective: frames per cell over every rank, and -ln of it shifted to minimum 0. */
static PetscErrorCode dy_fields_histogram(MPI_Comm comm, int64_t n, const dy_real *z, DyFields *f)
{
  const int d = f->d;
  double lowest = INFINITY;

  PetscFunctionBegin;
  PetscCall(PetscCalloc1((size_t)f->npoint, &f->count));
  PetscCall(PetscMalloc1((size_t)f->npoint, &f->free_energy_hist));
  for (int64_t p = 0; p < n; p++) {
    int64_t idx = 0;
    for (int j = 0; j < d; j++) {
      const double lo = f->axis[j][0] - 0.5 * f->h[j];
      int64_t c = (int64_t)floor(((double)z[p * d + j] - lo) / f->h[j]);
      c = DY_MAX(0, DY_MIN(c, (int64_t)f->n[j] - 1)); /* the last point of an axis with no margin */
      idx = idx * f->n[j] + c;
    }
    f->count[idx]++;
  }
  /* in pieces that an int count can describe */
  for (int64_t s = 0; s < f->npoint; s += 1 << 30)
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, f->count + s, (int)DY_MIN(f->npoint - s, (int64_t)1 << 30), MPI_INT64_T,
                               MPI_SUM, comm));
  for (int64_t i = 0; i < f->npoint; i++) {
    f->free_energy_hist[i] = f->count[i] > 0 ? -log((double)f->count[i]) : NAN;
    if (f->count[i] > 0) lowest = DY_MIN(lowest, f->free_energy_hist[i]);
  }
  for (int64_t i = 0; i < f->npoint; i++) f->free_energy_hist[i] -= lowest;
  PetscFunctionReturn(0);
}

/* Collective: the global vector g of dm (natural ordering = C order) gathered into out on every rank. */
static PetscErrorCode dy_fields_gather(DM dm, Vec g, double *out)
{
  Vec nat, all;
  VecScatter sc;
  const PetscScalar *a;
  PetscInt len;

  PetscFunctionBegin;
  PetscCall(DMDACreateNaturalVector(dm, &nat));
  PetscCall(DMDAGlobalToNaturalBegin(dm, g, INSERT_VALUES, nat));
  PetscCall(DMDAGlobalToNaturalEnd(dm, g, INSERT_VALUES, nat));
  PetscCall(VecScatterCreateToAll(nat, &sc, &all));
  PetscCall(VecScatterBegin(sc, nat, all, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecScatterEnd(sc, nat, all, INSERT_VALUES, SCATTER_FORWARD));
  PetscCall(VecGetLocalSize(all, &len));
  PetscCall(VecGetArrayRead(all, &a));
  for (PetscInt i = 0; i < len; i++) out[i] = (double)PetscRealPart(a[i]);
  PetscCall(VecRestoreArrayRead(all, &a));
  PetscCall(VecScatterDestroy(&sc));
  PetscCall(VecDestroy(&all));
  PetscCall(VecDestroy(&nat));
  PetscFunctionReturn(0);
}

/* A DMDA of the grid: its axis a (x, y, z) is latent axis d-1-a. */
static PetscErrorCode dy_fields_dmda(MPI_Comm comm, const DyFields *f, DM *da)
{
  const int d = f->d;
  PetscInt M[DY_FIELDS_MAX_DIM] = {1, 1, 1};

  PetscFunctionBegin;
  for (int a = 0; a < d; a++) M[a] = f->n[d - 1 - a];
  if (d == 1) PetscCall(DMDACreate1d(comm, DM_BOUNDARY_NONE, M[0], 1, 1, NULL, da));
  else if (d == 2)
    PetscCall(DMDACreate2d(comm, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR, M[0], M[1], PETSC_DECIDE,
                           PETSC_DECIDE, 1, 1, NULL, NULL, da));
  else
    PetscCall(DMDACreate3d(comm, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR, M[0], M[1],
                           M[2], PETSC_DECIDE, PETSC_DECIDE, PETSC_DECIDE, 1, 1, NULL, NULL, NULL, da));
  PetscCall(DMSetUp(*da));
  PetscFunctionReturn(0);
}

/* Scratch of dy_fields_net: two layers of values and, for the Jacobian, of d tangents each. */
typedef struct {
  int width;         /* the widest layer */
  double *a, *b;     /* (width) values */
  double *ta, *tb;   /* (d, width) tangents */
} DyFieldsScratch;

static PetscErrorCode dy_fields_scratch_create(const DyMlp *net, int d, DyFieldsScratch *s)
{
  PetscFunctionBegin;
  s->width = d;
  for (int l = 0; l <= net->nlayer; l++) s->width = DY_MAX(s->width, net->dims[l]);
  PetscCall(PetscMalloc4((size_t)s->width, &s->a, (size_t)s->width, &s->b, (size_t)d * s->width, &s->ta,
                         (size_t)d * s->width, &s->tb));
  PetscFunctionReturn(0);
}

static void dy_fields_scratch_destroy(DyFieldsScratch *s)
{
  PetscFree4(s->a, s->b, s->ta, s->tb);
}

/* Net k of the prior (force or log-diffusion; d inputs, d outputs) at the point z, in double
 * precision: its outputs into out, with hidden non-NULL the input of its last (linear) layer,
 * dims[nlayer-1] values (z itself for a net without hidden layers), and with jdiag non-NULL the
 * diagonal of its Jacobian, by forward-mode tangents along each input axis. */
static void dy_fields_net(const DyModel *model, int k, const double *z, DyFieldsScratch *s, double *hidden,
                          double *out, double *jdiag)
{
  const DyMlp *net = &model->net[k];
  const int d = model->d;
  const dy_real *p = model->params + net->offset;
  double *a = s->a, *b = s->b, *ta = s->ta, *tb = s->tb, *t;

  for (int i = 0; i < d; i++) {
    a[i] = z[i];
    if (jdiag)
      for (int j = 0; j < d; j++) ta[j * s->width + i] = i == j;
  }
  for (int l = 0; l < net->nlayer; l++) {
    const int nin = net->dims[l], nout = net->dims[l + 1], last = l == net->nlayer - 1;
    const dy_real *W = p, *bias = p + (size_t)nout * nin;
    if (last && hidden)
      for (int i = 0; i < nin; i++) hidden[i] = a[i];
    for (int o = 0; o < nout; o++) {
      double v = (double)bias[o];
      for (int i = 0; i < nin; i++) v += (double)W[o * nin + i] * a[i];
      const double act = last ? v : net->act == DY_ACT_TANH ? tanh(v) : DY_MAX(v, 0.0);
      const double slope = last ? 1.0 : net->act == DY_ACT_TANH ? 1.0 - act * act : v > 0;
      b[o] = act;
      if (jdiag)
        for (int j = 0; j < d; j++) {
          double tv = 0;
          for (int i = 0; i < nin; i++) tv += (double)W[o * nin + i] * ta[j * s->width + i];
          tb[j * s->width + o] = slope * tv;
        }
    }
    p = bias + nout;
    t = a, a = b, b = t;
    t = ta, ta = tb, tb = t;
  }
  for (int i = 0; i < d; i++) {
    out[i] = a[i];
    if (jdiag) jdiag[i] = ta[i * s->width + i];
  }
}

/* Cholesky solve (LAPACK) of the SPD system A x = r (n x n, symmetric, A overwritten), with a
 * ridge of 1e-12 of the largest diagonal entry; returns 0 when a pivot is not positive. */
static int dy_fields_cholesky(int n, double *A, double *r)
{
  const PetscBLASInt bn = (PetscBLASInt)n, one = 1;
  PetscBLASInt info = 0;
  double big = 0;
  for (int i = 0; i < n; i++) big = DY_MAX(big, A[i * n + i]);
  if (!(big > 0)) return 0;
  for (int i = 0; i < n; i++) A[i * n + i] += 1e-12 * big;
  LAPACKpotrf_("L", &bn, A, &bn, &info);
  if (info != 0) return 0;
  LAPACKpotrs_("L", &bn, &one, A, &bn, r, &bn, &info);
  return info == 0;
}

/* Sums that do not depend on how the terms are split over the ranks (to far below a double's
 * rounding): each a pair (hi, lo) of doubles whose sum is kept exactly by TwoSum (Knuth) at every
 * addition, on a rank and in the reduction over ranks, and rounded to hi at the end. With plain
 * sums, the rounding that depends on the split, amplified by the normal equations' condition
 * number (some 1e5 on the three-well example), made the refitted force differ by 4e-9 relative
 * between 1 and 4 ranks on the test suite's run. */
static void dy_fields_twosum(double a, double b, double *s, double *e)
{
  *s = a + b;
  const double bb = *s - a;
  *e = (a - (*s - bb)) + (b - bb);
}

static void dy_fields_dd_add(double *dd, double x)
{
  double s, e;
  dy_fields_twosum(dd[0], x, &s, &e);
  dy_fields_twosum(s, dd[1] + e, &dd[0], &dd[1]);
}

/* MPI_Op on pairs (hi, lo): inout += in */
static void dy_fields_dd_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
  const double *a = in;
  double *b = inout;
  (void)type;
  for (int k = 0; k < *len; k++) {
    double s, e;
    dy_fields_twosum(a[2 * k], b[2 * k], &s, &e);
    dy_fields_twosum(s, e + a[2 * k + 1] + b[2 * k + 1], &b[2 * k], &b[2 * k + 1]);
  }
}

/* Collective: the pairs dd (n of them) summed over the ranks of comm, in place. */
static PetscErrorCode dy_fields_dd_allreduce(MPI_Comm comm, double *dd, int n)
{
  MPI_Datatype pair;
  MPI_Op op;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Type_contiguous(2, MPI_DOUBLE, &pair));
  PetscCallMPI(MPI_Type_commit(&pair));
  PetscCallMPI(MPI_Op_create(dy_fields_dd_op, 1, &op));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, dd, n, pair, op, comm));
  PetscCallMPI(MPI_Op_free(&op));
  PetscCallMPI(MPI_Type_free(&pair));
  PetscFunctionReturn(0);
}

/* Collective: the refitted output layer of the force net (include/analysis/dy_fields.h) into wout,
 * (d, H + 1) with the bias last, from this rank's pairs (z0, z1); f->refit_pairs stays 0 when no
 * rank has pairs or the normal equations are singular (the trained layer is kept then). */
static PetscErrorCode dy_fields_refit(MPI_Comm comm, const DyModel *model, int64_t npair, const dy_real *z0,
                                      const dy_real *z1, DyFields *f, double *wout)
{
  const int d = model->d, k = DY_NET_FORCE;
  const DyMlp *net = &model->net[k];
  const int H = net->dims[net->nlayer - 1], P = H + 1;
  const size_t nsys = (size_t)P * (P + 1); /* one system: A (P x P), then r (P) */
  DyFieldsScratch sf, sg;
  double *sums, *h, zz[DY_FIELDS_MAX_DIM] = {0}, fo[DY_FIELDS_MAX_DIM], g[DY_FIELDS_MAX_DIM], dg[DY_FIELDS_MAX_DIM];
  int64_t total = npair;
  int ok = 1;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, comm));
  if (total == 0) PetscFunctionReturn(0);
  PetscCall(dy_fields_scratch_create(net, d, &sf));
  PetscCall(dy_fields_scratch_create(&model->net[DY_NET_LOGDIFF], d, &sg));
  PetscCall(PetscCalloc1((size_t)2 * d * nsys, &sums)); /* (hi, lo) pairs, then the sums themselves */
  PetscCall(PetscMalloc1((size_t)P, &h));
  for (int64_t n = 0; n < npair; n++) {
    for (int i = 0; i < d; i++) zz[i] = (double)z0[n * d + i];
    dy_fields_net(model, k, zz, &sf, h, fo, NULL);
    dy_fields_net(model, DY_NET_LOGDIFF, zz, &sg, NULL, g, dg);
    h[H] = 1.0;
    for (int i = 0; i < d; i++) {
      const double M = exp(g[i]), dz = (double)z1[n * d + i] - zz[i];
      double *A = sums + 2 * i * nsys, *r = A + (size_t)2 * P * P;
      /* the normal equations of sum M (t - w.h)^2 / 2: (sum M h h^T) w = sum M t h, M t = dz - M dg */
      for (int a = 0; a < P; a++) {
        const double Mh = M * h[a];
        for (int b = 0; b <= a; b++) dy_fields_dd_add(A + 2 * (a * P + b), Mh * h[b]);
        dy_fields_dd_add(r + 2 * a, (dz - M * dg[i]) * h[a]);
      }
    }
  }
  PetscCall(dy_fields_dd_allreduce(comm, sums, (int)((size_t)d * nsys)));
  for (size_t q = 0; q < (size_t)d * nsys; q++) sums[q] = sums[2 * q]; /* hi, the rounded sum */
  for (int i = 0; i < d && ok; i++) {
    double *A = sums + i * nsys, *r = A + (size_t)P * P;
    for (int a = 0; a < P; a++)
      for (int b = a + 1; b < P; b++) A[a * P + b] = A[b * P + a];
    ok = dy_fields_cholesky(P, A, r);
    for (int a = 0; a < P && ok; a++) wout[i * P + a] = r[a];
  }
  if (ok) {
    const dy_real *W = model->params + net->offset + (net->nparam - (size_t)d * P), *b = W + (size_t)d * H;
    f->refit_pairs = total;
    f->refit_change = 0;
    for (int i = 0; i < d; i++) {
      for (int a = 0; a < H; a++) f->refit_change = DY_MAX(f->refit_change, fabs(wout[i * P + a] - (double)W[i * H + a]));
      f->refit_change = DY_MAX(f->refit_change, fabs(wout[i * P + H] - (double)b[i]));
    }
  }
  PetscCall(PetscFree(h));
  PetscCall(PetscFree(sums));
  dy_fields_scratch_destroy(&sg);
  dy_fields_scratch_destroy(&sf);
  PetscFunctionReturn(0);
}

/* The nets on this rank's points of da: force into F and log-diffusion, exponentiated, into G
 * (global vectors of the d-component DMDA). With wout non-NULL the force is the net's with that
 * output layer (dy_fields_refit), in double precision. */
static PetscErrorCode dy_fields_evaluate(DM da, const DyModel *model, DyWork *work, const DyFields *f,
                                         const double *wout, Vec F, Vec G)
{
  const int d = f->d;
  PetscInt lo[3], m[3];
  dy_real *pts, *fo, *go;
  PetscScalar *fa, *ga;

  PetscFunctionBegin;
  PetscCall(DMDAGetCorners(da, &lo[0], &lo[1], &lo[2], &m[0], &m[1], &m[2]));
  const int64_t nloc = (int64_t)m[0] * m[1] * m[2];
  PetscCall(PetscMalloc3((size_t)DY_MAX(nloc, 1) * d, &pts, (size_t)DY_MAX(nloc, 1) * d, &fo,
                         (size_t)DY_MAX(nloc, 1) * d, &go));
  int64_t p = 0;
  for (PetscInt k = lo[2]; k < lo[2] + m[2]; k++)
    for (PetscInt j = lo[1]; j < lo[1] + m[1]; j++)
      for (PetscInt i = lo[0]; i < lo[0] + m[0]; i++, p++) {
        const PetscInt idx[3] = {i, j, k};
        for (int a = 0; a < d; a++) pts[p * d + (d - 1 - a)] = (dy_real)f->axis[d - 1 - a][idx[a]];
      }
  dy_model_force(model, work, nloc, pts, fo);
  dy_model_logdiff(model, work, nloc, pts, go);
  PetscCall(VecGetArray(F, &fa));
  PetscCall(VecGetArray(G, &ga));
  for (int64_t q = 0; q < nloc * d; q++) {
    fa[q] = (PetscScalar)fo[q];
    ga[q] = (PetscScalar)exp((double)go[q]);
  }
  if (wout) {
    const DyMlp *net = &model->net[DY_NET_FORCE];
    const int H = net->dims[net->nlayer - 1];
    DyFieldsScratch s;
    double *h, zz[DY_FIELDS_MAX_DIM] = {0}, out[DY_FIELDS_MAX_DIM];
    PetscCall(dy_fields_scratch_create(net, d, &s));
    PetscCall(PetscMalloc1((size_t)H + 1, &h));
    for (int64_t q = 0; q < nloc; q++) {
      for (int i = 0; i < d; i++) zz[i] = (double)pts[q * d + i];
      dy_fields_net(model, DY_NET_FORCE, zz, &s, h, out, NULL);
      for (int i = 0; i < d; i++) {
        double v = wout[i * (H + 1) + H];
        for (int a = 0; a < H; a++) v += wout[i * (H + 1) + a] * h[a];
        fa[q * d + i] = (PetscScalar)v;
      }
    }
    PetscCall(PetscFree(h));
    dy_fields_scratch_destroy(&s);
  }
  PetscCall(VecRestoreArray(G, &ga));
  PetscCall(VecRestoreArray(F, &fa));
  PetscCall(PetscFree3(pts, fo, go));
  PetscFunctionReturn(0);
}

/* The weight of cell i in the face weights (include/analysis/dy_fields.h): 1, or its frames plus one
 * over the mean of that, so that the weights are near 1 whatever the number of frames. */
static double dy_fields_cell_weight(const DyFields *f, double scale, int64_t i)
{
  return f->weight == DY_FIELDS_WEIGHT_NONE ? 1.0 : ((double)f->count[i] + 1.0) * scale;
}

/* This rank's rows of A (the weighted face Laplacian, div(w grad .)) and of b (minus the weighted
 * face divergence of the force, -div(w f)), from the ghosted force Fl of dad. The histogram is
 * on every rank, so the weights of the neighbours' cells need no exchange. */
static PetscErrorCode dy_fields_assemble(DM da, DM dad, Vec Fl, const DyFields *f, Mat A, Vec b)
{
  const int d = f->d;
  PetscInt lo[3], m[3], glo[3], gm[3], M[3] = {1, 1, 1};
  const PetscScalar *fl;
  PetscScalar *ba;
  int64_t frames = 0;

  PetscFunctionBegin;
  for (int64_t i = 0; i < f->npoint; i++) frames += f->count[i];
  const double scale = (double)f->npoint / ((double)frames + (double)f->npoint);
  PetscCall(DMDAGetCorners(da, &lo[0], &lo[1], &lo[2], &m[0], &m[1], &m[2]));
  PetscCall(DMDAGetGhostCorners(dad, &glo[0], &glo[1], &glo[2], &gm[0], &gm[1], &gm[2]));
  PetscCall(DMDAGetInfo(da, NULL, &M[0], &M[1], &M[2], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
  PetscCall(VecGetArrayRead(Fl, &fl));
  PetscCall(VecGetArray(b, &ba));
  int64_t p = 0;
  for (PetscInt k = lo[2]; k < lo[2] + m[2]; k++)
    for (PetscInt j = lo[1]; j < lo[1] + m[1]; j++)
      for (PetscInt i = lo[0]; i < lo[0] + m[0]; i++, p++) {
        const PetscInt idx[3] = {i, j, k};
        MatStencil row = {.k = k, .j = j, .i = i, .c = 0}, col[1 + 2 * DY_FIELDS_MAX_DIM];
        PetscScalar val[1 + 2 * DY_FIELDS_MAX_DIM], rhs = 0;
        int nc = 1;
        const PetscInt here = ((k - glo[2]) * gm[1] + (j - glo[1])) * gm[0] + (i - glo[0]);
        const int64_t cell = ((int64_t)k * M[1] + j) * M[0] + i; /* natural = C order of f->count */
        const double w_here = dy_fields_cell_weight(f, scale, cell);
        col[0] = row;
        val[0] = 0;
        for (int a = 0; a < d; a++) {
          const int c = d - 1 - a; /* the latent component along DMDA axis a */
          const double h = f->h[c];
          const PetscInt stride = a == 0 ? 1 : a == 1 ? gm[0] : gm[0] * gm[1];
          const int64_t cstride = a == 0 ? 1 : a == 1 ? (int64_t)M[0] : (int64_t)M[0] * M[1];
          for (int dir = -1; dir <= 1; dir += 2) {
            if (idx[a] + dir < 0 || idx[a] + dir >= M[a]) continue; /* a border face: absent */
            const double face = 0.5 * (PetscRealPart(fl[here * d + c]) + PetscRealPart(fl[(here + dir * stride) * d + c]));
            const double w = 0.5 * (w_here + dy_fields_cell_weight(f, scale, cell + dir * cstride));
            col[nc] = row;
            if (a == 0) col[nc].i += dir;
            else if (a == 1) col[nc].j += dir;
            else col[nc].k += dir;
            val[nc++] = -w / (h * h);
            val[0] += w / (h * h);
            rhs += dir * w * face / h;
          }
        }
        PetscCall(MatSetValuesStencil(A, 1, &row, nc, col, val, INSERT_VALUES));
        ba[p] = rhs;
      }
  PetscCall(VecRestoreArray(b, &ba));
  PetscCall(VecRestoreArrayRead(Fl, &fl));
  PetscCall(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
  PetscFunctionReturn(0);
}

/* Collective: force, diffusion and the force free energy on the DMDA, gathered into f. */
static PetscErrorCode dy_fields_solve(MPI_Comm comm, const DyModel *model, DyWork *work, const double *wout,
                                      DyFields *f)
{
  const int d = f->d;
  DM da, dad;
  Vec F, G, Fl, b, x;
  Mat A;
  MatNullSpace nsp;
  KSP ksp;
  PC pc;
  KSPConvergedReason reason;
  PetscInt its;

  PetscFunctionBegin;
  PetscCall(dy_fields_dmda(comm, f, &da));
  PetscCall(DMDACreateCompatibleDMDA(da, d, &dad));
  PetscCall(DMCreateGlobalVector(dad, &F));
  PetscCall(VecDuplicate(F, &G));
  PetscCall(dy_fields_evaluate(da, model, work, f, wout, F, G));
  PetscCall(DMCreateLocalVector(dad, &Fl));
  PetscCall(DMGlobalToLocalBegin(dad, F, INSERT_VALUES, Fl));
  PetscCall(DMGlobalToLocalEnd(dad, F, INSERT_VALUES, Fl));
  PetscCall(DMCreateMatrix(da, &A));
  PetscCall(DMCreateGlobalVector(da, &b));
  PetscCall(VecDuplicate(b, &x));
  PetscCall(dy_fields_assemble(da, dad, Fl, f, A, b));

  PetscCall(MatNullSpaceCreate(comm, PETSC_TRUE, 0, NULL, &nsp));
  PetscCall(MatSetNullSpace(A, nsp));
  PetscCall(MatNullSpaceRemove(nsp, b)); /* zero sum up to rounding already */
  PetscCall(KSPCreate(comm, &ksp));
  PetscCall(KSPSetOptionsPrefix(ksp, "fields_"));
  PetscCall(KSPSetOperators(ksp, A, A));
  PetscCall(KSPSetType(ksp, KSPCG));
  PetscCall(KSPGetPC(ksp, &pc));
  PetscCall(PCSetType(pc, PCJACOBI));
  PetscCall(KSPSetTolerances(ksp, 1e-12, PETSC_DEFAULT, PETSC_DEFAULT, 100000));
  PetscCall(KSPSetFromOptions(ksp));
  PetscCall(PetscLogEventBegin(dy_ev_solve, 0, 0, 0, 0));
  PetscCall(KSPSolve(ksp, b, x));
  PetscCall(PetscLogEventEnd(dy_ev_solve, 0, 0, 0, 0));
  PetscCall(KSPGetConvergedReason(ksp, &reason));
  PetscCall(KSPGetIterationNumber(ksp, &its));
  f->iterations = (int)its;
  PetscCheck(reason > 0, comm, PETSC_ERR_NOT_CONVERGED,
             "the free-energy solve did not converge (%s after %d iterations; try -fields_ksp_max_it or another "
             "-fields_pc_type)",
             KSPConvergedReasons[reason], (int)f->iterations);

  PetscCall(dy_fields_gather(dad, F, f->force));
  PetscCall(dy_fields_gather(dad, G, f->diffusion));
  PetscCall(dy_fields_gather(da, x, f->free_energy_force));

  PetscCall(KSPDestroy(&ksp));
  PetscCall(MatNullSpaceDestroy(&nsp));
  PetscCall(VecDestroy(&x));
  PetscCall(VecDestroy(&b));
  PetscCall(MatDestroy(&A));
  PetscCall(VecDestroy(&Fl));
  PetscCall(VecDestroy(&G));
  PetscCall(VecDestroy(&F));
  PetscCall(DMDestroy(&dad));
  PetscCall(DMDestroy(&da));
  PetscFunctionReturn(0);
}

/* The force free energy shifted to minimum 0, and the RMS difference of the two free energies
 * over well-sampled cells after removing their count-weighted mean difference. */
static void dy_fields_compare(DyFields *f)
{
  double lowest = INFINITY, wsum = 0, dsum = 0, sq = 0;

  for (int64_t i = 0; i < f->npoint; i++) lowest = DY_MIN(lowest, f->free_energy_force[i]);
  for (int64_t i = 0; i < f->npoint; i++) f->free_energy_force[i] -= lowest;
  f->well_sampled = 0;
  for (int64_t i = 0; i < f->npoint; i++) {
    if (f->count[i] < DY_FIELDS_WELL_SAMPLED) continue;
    const double w = (double)f->count[i];
    wsum += w;
    dsum += w * (f->free_energy_hist[i] - f->free_energy_force[i]);
    f->well_sampled++;
  }
  if (f->well_sampled == 0) {
    f->rms_difference_kT = NAN;
    return;
  }
  const double shift = dsum / wsum;
  for (int64_t i = 0; i < f->npoint; i++) {
    if (f->count[i] < DY_FIELDS_WELL_SAMPLED) continue;
    const double e = f->free_energy_force[i] + shift - f->free_energy_hist[i];
    sq += e * e;
  }
  f->rms_difference_kT = sqrt(sq / (double)f->well_sampled);
}

PetscErrorCode dy_fields_compute(MPI_Comm comm, const DyModel *model, DyWork *work, int64_t n, const dy_real *z,
                                 int64_t npair, const dy_real *z0, const dy_real *z1, const DyFieldsOptions *opt,
                                 DyFields *f)
{
  const int d = model->d;
  double *wout = NULL;

  PetscFunctionBegin;
  memset(f, 0, sizeof *f);
  PetscCheck(d >= 1 && d <= DY_FIELDS_MAX_DIM, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "the fields are computed for latent dimensions 1 to %d, not %d", DY_FIELDS_MAX_DIM, d);
  PetscCheck(opt->grid >= 2 && opt->margin >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "analysis.grid %d must be >= 2 and analysis.margin %g >= 0", opt->grid, opt->margin);
  PetscCheck(opt->weight == DY_FIELDS_WEIGHT_DENSITY || opt->weight == DY_FIELDS_WEIGHT_NONE, comm,
             PETSC_ERR_ARG_OUTOFRANGE, "unknown force weight %d", (int)opt->weight);
  double points = 1;
  for (int j = 0; j < d; j++) points *= opt->grid;
  PetscCheck(points <= (double)DY_FIELDS_MAX_POINTS, comm, DY_ERR_INPUT,
             "analysis.grid = %d makes %.3g grid points in %d dimensions, more than the %lld supported; lower it",
             opt->grid, points, d, (long long)DY_FIELDS_MAX_POINTS);
  PetscCall(dy_fields_register_events());
  PetscCall(PetscLogEventBegin(dy_ev_fields, 0, 0, 0, 0));
  f->d = d;
  f->weight = opt->weight;
  PetscCall(dy_fields_grid(comm, d, n, z, opt, f));
  PetscCall(dy_fields_histogram(comm, n, z, f));
  PetscCall(PetscMalloc3((size_t)f->npoint * d, &f->force, (size_t)f->npoint * d, &f->diffusion, (size_t)f->npoint,
                         &f->free_energy_force));
  if (opt->refit) {
    const DyMlp *net = &model->net[DY_NET_FORCE];
    PetscCall(PetscMalloc1((size_t)d * (net->dims[net->nlayer - 1] + 1), &wout));
    PetscCall(dy_fields_refit(comm, model, npair, z0, z1, f, wout));
    if (f->refit_pairs == 0) PetscCall(PetscFree(wout));
  }
  PetscCall(dy_fields_solve(comm, model, work, wout, f));
  PetscCall(PetscFree(wout));
  dy_fields_compare(f);
  PetscCall(PetscLogEventEnd(dy_ev_fields, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

void dy_fields_free(DyFields *f)
{
  for (int j = 0; j < DY_FIELDS_MAX_DIM; j++) PetscFree(f->axis[j]);
  PetscFree(f->count);
  PetscFree(f->free_energy_hist);
  PetscFree3(f->force, f->diffusion, f->free_energy_force);
  memset(f, 0, sizeof *f);
}
