/* Distributed TICA on ScaLAPACK (see dy_tica.h for the distribution and the estimate).
 *
 * How the covariances are formed across ranks: the mean comes first (local sums, one allreduce),
 * so that the covariances are accumulated from mean-free frames and lose nothing to cancellation.
 * Then every rank walks its pairs in rounds of c = tica->chunk frames; a round's frames (D x P c,
 * rank r's frames as column block r, padded with zero columns where a rank has run out) are
 * redistributed onto the 2-D grid, where symmetric rank-c updates add them into the upper
 * triangle of a covariance. The sums do not depend on how the pairs are spread over the ranks
 * except through the order of additions, so results agree between rank counts to rounding.
 *
 * Memory. A rank's peak is set by how many distributed D x D matrices live at once, and by the
 * eigensolver's workspace. So the frames are read twice: the first pass forms C0 alone, which is
 * diagonalised (PDSYEVR, computing only the eigenvectors kept by epsilon; its workspace, unlike
 * PDSYEVD's, shrinks with the rank count) and freed; the second pass forms Ct next to the
 * whitening matrix W. Of the whitened Ct only the eigenvectors of the k leading |lambda| are
 * computed (its eigenvalues first, then the index range holding those k). At most three
 * D x D matrices (or the eigensolver's workspace in place of one) are held at any time. */
#include "analysis/dy_tica.h"
#include "analysis/dy_scalapack.h"

#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One round's frames of all ranks together: 32 MiB per buffer, so that a rank's share of the
 * round buffers (and of PBLAS's copies of them) shrinks with the rank count; at least
 * DY_TICA_CHUNK_MIN frames per rank so that the rank-K updates stay efficient. */
#define DY_TICA_CHUNK_DOUBLES ((int64_t)4 << 20)
#define DY_TICA_CHUNK_MIN 64

/* Phases of -log_view. */
static PetscLogEvent dy_ev_cov, dy_ev_eig, dy_ev_proj;

static PetscErrorCode dy_tica_register_events(void)
{
  static int done = 0;
  PetscClassId cid;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(0);
  PetscCall(PetscClassIdRegister("dynae-mpi tica", &cid));
  PetscCall(PetscLogEventRegister("DyTicaCovariance", cid, &dy_ev_cov));
  PetscCall(PetscLogEventRegister("DyTicaEigensolve", cid, &dy_ev_eig));
  PetscCall(PetscLogEventRegister("DyTicaProjection", cid, &dy_ev_proj));
  done = 1;
  PetscFunctionReturn(0);
}

/* Hands freed memory back to the system. Large blocks freed by ScaLAPACK, PBLAS or us can stay in
 * the heap (glibc raises its mmap threshold as they are freed) and would add to the next phase's
 * peak: trimmed after the covariance passes and after each eigensolve. */
static void dy_heap_trim(void)
{
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

/* ---- distributed matrices --------------------------------------------------------------- */

/* This rank's part of a block-cyclic matrix: (lr, lc), column-major, leading dimension max(1, lr). */
typedef struct {
  int desc[DY_DESC_LEN]; /* the ScaLAPACK descriptor */
  int lr, lc;            /* local rows and columns */
  double *a;             /* (lld, lc) */
} DyDmat;

/* Creates an (m, n) matrix in blocks of (mb, nb) on `context`, zeroed. */
static PetscErrorCode dy_dmat_create(int context, int m, int n, int mb, int nb, DyDmat *A)
{
  int nprow, npcol, myrow, mycol, zero = 0, info = 0, lld;

  PetscFunctionBegin;
  memset(A, 0, sizeof *A);
  Cblacs_gridinfo(context, &nprow, &npcol, &myrow, &mycol);
  A->lr = numroc_(&m, &mb, &myrow, &zero, &nprow);
  A->lc = numroc_(&n, &nb, &mycol, &zero, &npcol);
  lld = DY_MAX(1, A->lr);
  descinit_(A->desc, &m, &n, &mb, &nb, &zero, &zero, &context, &lld, &info);
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "DESCINIT failed (info %d) for a %d x %d matrix in %d x %d blocks",
             info, m, n, mb, nb);
  PetscCall(PetscCalloc1((size_t)lld * (size_t)DY_MAX(1, A->lc), &A->a));
  PetscFunctionReturn(0);
}

static void dy_dmat_free(DyDmat *A)
{
  (void)PetscFree(A->a);
  memset(A, 0, sizeof *A);
}

/* Global index (0-based) of local index l of a dimension in blocks of nb over np processes, for
 * process p (the first block on process 0). */
static int dy_global_index(int l, int nb, int p, int np)
{
  return (l / nb) * np * nb + p * nb + l % nb;
}

/* Processor grid as square as P allows: nprow <= npcol, nprow * npcol = P. */
static void dy_grid_shape(int P, int *nprow, int *npcol)
{
  int r = (int)floor(sqrt((double)P));

  while (r > 1 && P % r) r--;
  *nprow = r;
  *npcol = P / r;
}

/* Collective: PDSYEVR of the symmetric n x n matrix A (upper triangle; destroyed). range 'A': all
 * eigenvalues; 'V': those in [vl, vu]; 'I': the il-th to iu-th from the smallest (from 1). The
 * *found eigenvalues ascending in w (n, every rank); with Z (n x n, distributed as A) their
 * eigenvectors in Z's first *found columns, without (NULL) the eigenvalues only.
 *
 * With eigenvectors and range 'I', ask for at least min(n, block size) of them: PDSYEVR hands its
 * back-transformation (PDORMTR) a workspace sized by the number asked for, which falls short when
 * fewer than a block's worth are asked of a matrix wider than a block; PDORMTR then refuses, and
 * PDSYEVR returns info = 0 with the eigenvectors of the tridiagonal matrix instead of A's. */
static PetscErrorCode dy_syevr(MPI_Comm comm, int n, DyDmat *A, char range, double vl, double vu, int il, int iu,
                               double *w, int *found, DyDmat *Z)
{
  const int one = 1, query = -1;
  const char *jobz = Z ? "V" : "N";
  DyDmat *zz = Z ? Z : A; /* not referenced without eigenvectors, but its descriptor is checked */
  int info = 0, lwork, liwork, iq = 0, nz = 0;
  double wq = 0, *work = NULL;
  int *iwork = NULL;

  PetscFunctionBegin;
  *found = 0;
  pdsyevr_(jobz, &range, "U", &n, A->a, &one, &one, A->desc, &vl, &vu, &il, &iu, found, &nz, w, zz->a, &one, &one,
           zz->desc, &wq, &query, &iq, &query, &info, 1, 1, 1);
  PetscCheck(info == 0, comm, PETSC_ERR_LIB, "PDSYEVR workspace query failed (info %d)", info);
  /* The query falls short when the matrix is smaller than a block: room for a few blocks. */
  lwork = (int)DY_MIN((double)INT_MAX, 1.1 * wq + 4.0 * A->desc[5] * A->desc[5] + 1024);
  liwork = DY_MAX(iq, 1) + 64;
  PetscCall(PetscMalloc1(lwork, &work));
  PetscCall(PetscMalloc1(liwork, &iwork));
  pdsyevr_(jobz, &range, "U", &n, A->a, &one, &one, A->desc, &vl, &vu, &il, &iu, found, &nz, w, zz->a, &one, &one,
           zz->desc, work, &lwork, iwork, &liwork, &info, 1, 1, 1);
  PetscCall(PetscFree(work));
  PetscCall(PetscFree(iwork));
  dy_heap_trim();
  PetscCheck(info == 0, comm, PETSC_ERR_LIB, "PDSYEVR failed (info %d) on a %d x %d matrix", info, n, n);
  /* Process (0, 0), rank 0, always holds the first block: its count and eigenvalues for all
   * (processes without a block of A need not have them). */
  PetscCallMPI(MPI_Bcast(found, 1, MPI_INT, 0, comm));
  PetscCallMPI(MPI_Bcast(w, *found, MPI_DOUBLE, 0, comm));
  PetscFunctionReturn(0);
}

/* ---- rounds of frames ------------------------------------------------------------------- */

/* Walks a rank's runs of rows: the next up to c rows of x0 (which = 0) or x1 (which = 1). */
typedef struct {
  int npieces;
  const DyTicaPairs *pieces;
  int p;       /* current run */
  int64_t row; /* next row in it */
} DyCursor;

/* Fills the local block (D, c) of a round with the next rows, mean removed, in double; the
 * columns past the end of the data are zero. Returns the rows taken. */
static int64_t dy_round_fill(DyCursor *cur, int which, int D, int64_t c, const double *mean, double *out)
{
  int64_t j = 0;

  while (j < c && cur->p < cur->npieces) {
    const DyTicaPairs *pc = &cur->pieces[cur->p];
    const dy_real *src = which ? pc->x1 : pc->x0;
    if (cur->row >= pc->n) {
      cur->p++;
      cur->row = 0;
      continue;
    }
    const dy_real *r = src + (size_t)cur->row * D;
    double *o = out + (size_t)j * D;
    for (int f = 0; f < D; f++) o[f] = (double)r[f] - mean[f];
    cur->row++;
    j++;
  }
  if (j < c) memset(out + (size_t)j * D, 0, (size_t)(c - j) * D * sizeof(double));
  return j;
}

/* ---- the fit ---------------------------------------------------------------------------- */

/* Collective: mu and N over all ranks. */
static PetscErrorCode dy_tica_mean(DyTica *t, int npieces, const DyTicaPairs *pieces)
{
  const int D = t->D;
  double *sum;
  int64_t n = 0;

  PetscFunctionBegin;
  PetscCall(PetscCalloc1((size_t)D + 1, &sum));
  for (int p = 0; p < npieces; p++) {
    for (int64_t i = 0; i < pieces[p].n; i++) {
      const dy_real *a = pieces[p].x0 + (size_t)i * D, *b = pieces[p].x1 + (size_t)i * D;
      for (int f = 0; f < D; f++) sum[f] += (double)a[f] + (double)b[f];
    }
    n += pieces[p].n;
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sum, D, MPI_DOUBLE, MPI_SUM, t->comm));
  PetscCallMPI(MPI_Allreduce(&n, &t->npairs, 1, MPI_INT64_T, MPI_SUM, t->comm));
  for (int f = 0; f < D; f++) t->mean[f] = t->npairs ? sum[f] / (2.0 * (double)t->npairs) : 0.0;
  PetscCall(PetscFree(sum));
  PetscFunctionReturn(0);
}

/* Frames per rank in one round, and the rounds every rank makes for nlocal frames of its own. */
static PetscErrorCode dy_tica_rounds(const DyTica *t, int64_t nlocal, int64_t *c, int64_t *rounds)
{
  int64_t most = nlocal;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_INT64_T, MPI_MAX, t->comm));
  *c = DY_MAX((int64_t)1, DY_MIN(t->chunk, most));
  *rounds = (most + *c - 1) / *c;
  PetscFunctionReturn(0);
}

/* Collective: adds the pairs into the upper triangle of C on the 2-D grid, mean-free: lagged = 0
 * C0 += (X^T X + Y^T Y) / 2N (one round buffer serves x_t, then x_{t+lag}); lagged = 1
 * Ct += (X^T Y + Y^T X) / 2N (both members of a round on the grid at once). */
static PetscErrorCode dy_tica_accumulate(DyTica *t, int npieces, const DyTicaPairs *pieces, int lagged, DyDmat *C)
{
  const int D = t->D, one = 1;
  const double alpha = 1.0 / (2.0 * (double)t->npairs), beta = 1.0;
  int64_t nlocal = 0, c, rounds;
  int P;
  DyDmat L, G0, G1;
  DyCursor cur0 = {npieces, pieces, 0, 0}, cur1 = {npieces, pieces, 0, 0};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(t->comm, &P));
  for (int p = 0; p < npieces; p++) nlocal += pieces[p].n;
  PetscCall(dy_tica_rounds(t, nlocal, &c, &rounds));
  PetscCheck((int64_t)P * c <= INT_MAX, t->comm, PETSC_ERR_SUP, "a round of %lld frames on %d ranks is too large",
             (long long)c, P);
  const int K = (int)(P * c), ci = (int)c;
  PetscCall(dy_dmat_create(t->rowgrid, D, K, D, ci, &L));
  PetscCall(dy_dmat_create(t->grid, D, K, t->nb, t->nb, &G0));
  if (lagged) PetscCall(dy_dmat_create(t->grid, D, K, t->nb, t->nb, &G1));
  DyDmat *Y = lagged ? &G1 : &G0; /* where x_{t+lag} lands: for C0, x_t's buffer once it is added */
  for (int64_t r = 0; r < rounds; r++) {
    dy_round_fill(&cur0, 0, D, c, t->mean, L.a);
    pdgemr2d_(&D, &K, L.a, &one, &one, L.desc, G0.a, &one, &one, G0.desc, &t->rowgrid);
    if (!lagged) pdsyrk_("U", "N", &D, &K, &alpha, G0.a, &one, &one, G0.desc, &beta, C->a, &one, &one, C->desc);
    dy_round_fill(&cur1, 1, D, c, t->mean, L.a);
    pdgemr2d_(&D, &K, L.a, &one, &one, L.desc, Y->a, &one, &one, Y->desc, &t->rowgrid);
    if (lagged)
      pdsyr2k_("U", "N", &D, &K, &alpha, G0.a, &one, &one, G0.desc, G1.a, &one, &one, G1.desc, &beta, C->a, &one, &one,
               C->desc);
    else
      pdsyrk_("U", "N", &D, &K, &alpha, G0.a, &one, &one, G0.desc, &beta, C->a, &one, &one, C->desc);
  }
  if (lagged) dy_dmat_free(&G1);
  dy_dmat_free(&G0);
  dy_dmat_free(&L);
  dy_heap_trim(); /* the rounds' buffers and PBLAS's copies of them */
  PetscFunctionReturn(0);
}

/* Collective: how many features have a variance (diagonal of C0) below epsilon, the first, and the
 * trace of C0 (a bound on its eigenvalues). */
static PetscErrorCode dy_tica_flat_features(const DyTica *t, const DyDmat *C0, int64_t *count, int64_t *first,
                                            double *trace)
{
  int nprow, npcol, myrow, mycol;
  int64_t v[2] = {0, INT64_MAX};
  double sum = 0;

  PetscFunctionBegin;
  Cblacs_gridinfo(t->grid, &nprow, &npcol, &myrow, &mycol);
  for (int j = 0; j < C0->lc; j++) {
    const int gj = dy_global_index(j, t->nb, mycol, npcol);
    for (int i = 0; i < C0->lr; i++) {
      if (dy_global_index(i, t->nb, myrow, nprow) != gj) continue;
      sum += C0->a[(size_t)j * C0->desc[DY_DESC_LLD] + i];
      if (C0->a[(size_t)j * C0->desc[DY_DESC_LLD] + i] < t->epsilon) {
        v[0]++;
        v[1] = DY_MIN(v[1], (int64_t)gj);
      }
    }
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &v[0], 1, MPI_INT64_T, MPI_SUM, t->comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &v[1], 1, MPI_INT64_T, MPI_MIN, t->comm));
  PetscCallMPI(MPI_Allreduce(&sum, trace, 1, MPI_DOUBLE, MPI_SUM, t->comm));
  *count = v[0];
  *first = v[1];
  PetscFunctionReturn(0);
}

/* An eigenvalue of the whitened Ct and its column in Q. */
typedef struct {
  double lambda;
  int col;
} DyEig;

/* Decreasing |lambda|; the larger lambda first among equal magnitudes. */
static int dy_cmp_abs_desc(const void *a, const void *b)
{
  const double x = ((const DyEig *)a)->lambda, y = ((const DyEig *)b)->lambda;
  if (fabs(x) != fabs(y)) return fabs(x) < fabs(y) ? 1 : -1;
  return (x < y) - (x > y);
}

/* Collective: flips each column of U so that its entry of largest magnitude is positive (the
 * first such entry when several tie). */
static PetscErrorCode dy_tica_fix_signs(DyTica *t)
{
  int nprow, npcol, myrow, mycol;
  const int k = t->k, lld = t->udesc[DY_DESC_LLD];
  struct {
    double v;
    int i;
  } *best;
  double *sign;
  int nlr;

  PetscFunctionBegin;
  Cblacs_gridinfo(t->grid, &nprow, &npcol, &myrow, &mycol);
  nlr = numroc_(&t->D, &t->nb, &myrow, &(int){0}, &nprow);
  PetscCall(PetscMalloc1(k, &best));
  PetscCall(PetscCalloc1(k, &sign));
  for (int j = 0; j < k; j++) {
    best[j].v = -1.0;
    best[j].i = INT_MAX;
  }
  const int nlc = numroc_(&k, &t->nb, &mycol, &(int){0}, &npcol);
  for (int jl = 0; jl < nlc; jl++) {
    const int j = dy_global_index(jl, t->nb, mycol, npcol);
    for (int il = 0; il < nlr; il++) {
      const double a = fabs(t->u[(size_t)jl * lld + il]);
      const int i = dy_global_index(il, t->nb, myrow, nprow);
      if (a > best[j].v || (a == best[j].v && i < best[j].i)) {
        best[j].v = a;
        best[j].i = i;
      }
    }
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, best, k, MPI_DOUBLE_INT, MPI_MAXLOC, t->comm));
  for (int jl = 0; jl < nlc; jl++) {
    const int j = dy_global_index(jl, t->nb, mycol, npcol);
    for (int il = 0; il < nlr; il++)
      if (dy_global_index(il, t->nb, myrow, nprow) == best[j].i) sign[j] = t->u[(size_t)jl * lld + il];
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sign, k, MPI_DOUBLE, MPI_SUM, t->comm));
  for (int jl = 0; jl < nlc; jl++) {
    const int j = dy_global_index(jl, t->nb, mycol, npcol);
    if (sign[j] < 0)
      for (int il = 0; il < nlr; il++) t->u[(size_t)jl * lld + il] = -t->u[(size_t)jl * lld + il];
  }
  PetscCall(PetscFree(sign));
  PetscCall(PetscFree(best));
  PetscFunctionReturn(0);
}

/* Collective: from C0 (used up) and a second pass over the pairs for Ct to the eigenvalues and U.
 * Called inside the eigensolve event, which it leaves for the second pass. */
static PetscErrorCode dy_tica_solve(DyTica *t, const DyTicaOptions *opt, int npieces, const DyTicaPairs *pieces,
                                    DyDmat *C0)
{
  const int D = t->D, one = 1, nb = t->nb;
  const double done = 1.0, dzero = 0.0;
  int nprow, npcol, myrow, mycol, m, k, il, iu, found;
  double *s = NULL, *lambda = NULL, trace = 0;
  DyEig *order = NULL;
  DyDmat Z, Ct, T, Cw, Q, Qk;
  int64_t nflat = 0, first = 0;

  PetscFunctionBegin;
  Cblacs_gridinfo(t->grid, &nprow, &npcol, &myrow, &mycol);
  PetscCall(dy_tica_flat_features(t, C0, &nflat, &first, &trace));
  /* The eigenpairs of C0 with eigenvalues of at least epsilon, ascending: V_m S_m. The trace bounds
   * the eigenvalues of the positive semi-definite C0 from above. */
  PetscCall(PetscMalloc1(D, &s));
  PetscCall(dy_dmat_create(t->grid, D, D, nb, nb, &Z));
  PetscCall(dy_syevr(t->comm, D, C0, 'V', t->epsilon, 2.0 * fabs(trace) + 1.0, 0, 0, s, &m, &Z));
  dy_dmat_free(C0);
  t->m = m;
  if (m < opt->k) {
    char flat[256] = "";
    dy_dmat_free(&Z);
    PetscCall(PetscFree(s));
    if (nflat > 0)
      snprintf(flat, sizeof flat,
               "; %lld feature%s a variance below tica.epsilon, i.e. %s (nearly) constant and carr%s no signal (the "
               "first: feature %lld, counting from 0)",
               (long long)nflat, nflat == 1 ? " has" : "s have", nflat == 1 ? "is" : "are", nflat == 1 ? "ies" : "y",
               (long long)first);
    PetscCall(dy_input_error(t->comm,
                             "%s = %d, but TICA keeps only %d component%s: of the %d eigenvalues of the covariance C0, "
                             "%d %s below tica.epsilon = %g (linearly dependent or constant features)%s; lower %s "
                             "to at most %d",
                             opt->k_key, opt->k, m, m == 1 ? "" : "s", D, D - m, D - m == 1 ? "is" : "are", t->epsilon,
                             flat, opt->k_key, m));
  }
  k = t->k = opt->k;
  /* W = V_m S_m^{-1/2} in place: the first m columns of Z. */
  for (int jl = 0; jl < Z.lc; jl++) {
    const int j = dy_global_index(jl, nb, mycol, npcol);
    if (j >= m) continue;
    const double f = 1.0 / sqrt(s[j]);
    for (int il0 = 0; il0 < Z.lr; il0++) Z.a[(size_t)jl * Z.desc[DY_DESC_LLD] + il0] *= f;
  }
  PetscCall(PetscFree(s));
  /* Ct from the second pass (logged as covariance, not eigensolve), then Cw = W^T Ct W (m, m). */
  PetscCall(PetscLogEventEnd(dy_ev_eig, 0, 0, 0, 0));
  PetscCall(PetscLogEventBegin(dy_ev_cov, 0, 0, 0, 0));
  PetscCall(dy_dmat_create(t->grid, D, D, nb, nb, &Ct));
  PetscCall(dy_tica_accumulate(t, npieces, pieces, 1, &Ct));
  PetscCall(PetscLogEventEnd(dy_ev_cov, 0, 0, 0, 0));
  PetscCall(PetscLogEventBegin(dy_ev_eig, 0, 0, 0, 0));
  PetscCall(dy_dmat_create(t->grid, D, m, nb, nb, &T));
  pdsymm_("L", "U", &D, &m, &done, Ct.a, &one, &one, Ct.desc, Z.a, &one, &one, Z.desc, &dzero, T.a, &one, &one, T.desc);
  dy_dmat_free(&Ct);
  PetscCall(dy_dmat_create(t->grid, m, m, nb, nb, &Cw));
  pdgemm_("T", "N", &m, &m, &D, &done, Z.a, &one, &one, Z.desc, T.a, &one, &one, T.desc, &dzero, Cw.a, &one, &one,
          Cw.desc);
  dy_dmat_free(&T);
  /* The eigenvalues of Cw first (on a copy, which the solver destroys), then the eigenvectors of
   * the index range that holds the k leading |lambda| only: usually the k largest. */
  PetscCall(PetscMalloc1(m, &lambda));
  PetscCall(dy_dmat_create(t->grid, m, m, nb, nb, &Q));
  memcpy(Q.a, Cw.a, (size_t)Cw.desc[DY_DESC_LLD] * (size_t)DY_MAX(1, Cw.lc) * sizeof(double));
  PetscCall(dy_syevr(t->comm, m, &Q, 'A', 0, 0, 0, 0, lambda, &found, NULL));
  PetscCheck(found == m, t->comm, PETSC_ERR_LIB, "PDSYEVR found %d of the %d eigenvalues of the whitened Ct", found, m);
  PetscCall(PetscMalloc1(m, &order));
  for (int j = 0; j < m; j++) {
    order[j].lambda = lambda[j];
    order[j].col = j;
  }
  qsort(order, (size_t)m, sizeof *order, dy_cmp_abs_desc);
  il = m;
  iu = 1;
  for (int j = 0; j < k; j++) {
    il = DY_MIN(il, order[j].col + 1);
    iu = DY_MAX(iu, order[j].col + 1);
  }
  while (iu - il + 1 < DY_MIN(m, nb)) { /* see dy_syevr */
    if (iu < m) iu++;
    else il--;
  }
  PetscCall(dy_syevr(t->comm, m, &Cw, 'I', 0, 0, il, iu, lambda, &found, &Q));
  PetscCheck(found == iu - il + 1, t->comm, PETSC_ERR_LIB,
             "PDSYEVR found %d eigenvectors of the whitened Ct where %d were asked for", found, iu - il + 1);
  dy_dmat_free(&Cw);
  /* The k leading eigenvectors by |lambda| into Q_k, then U = W Q_k. */
  PetscCall(dy_dmat_create(t->grid, m, k, nb, nb, &Qk));
  for (int j = 0; j < k; j++) {
    const int src = order[j].col - il + 2, dst = j + 1, ncol = 1;
    pdgemr2d_(&m, &ncol, Q.a, &one, &src, Q.desc, Qk.a, &one, &dst, Qk.desc, &t->grid);
    t->eigenvalues[j] = lambda[src - 1];
    const double a = fabs(t->eigenvalues[j]);
    t->timescales[j] = a < 1.0 ? -(double)t->lag / log(a) : INFINITY;
  }
  dy_dmat_free(&Q);
  PetscCall(PetscFree(order));
  PetscCall(PetscFree(lambda));
  {
    DyDmat U;
    PetscCall(dy_dmat_create(t->grid, D, k, nb, nb, &U));
    pdgemm_("N", "N", &D, &k, &m, &done, Z.a, &one, &one, Z.desc, Qk.a, &one, &one, Qk.desc, &dzero, U.a, &one, &one,
            U.desc);
    memcpy(t->udesc, U.desc, sizeof t->udesc);
    t->u = U.a;
  }
  dy_dmat_free(&Qk);
  dy_dmat_free(&Z);
  PetscCall(dy_tica_fix_signs(t));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_tica_fit(MPI_Comm comm, int D, int npieces, const DyTicaPairs *pieces, const DyTicaOptions *opt,
                           DyTica *t)
{
  int P, nprow, npcol;
  DyDmat C0;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  memset(t, 0, sizeof *t);
  PetscCall(dy_tica_register_events());
  PetscCheck(D >= 1 && opt->k >= 1 && opt->lag >= 1 && opt->epsilon > 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "dy_tica_fit: D = %d, k = %d, lag = %d, epsilon = %g", D, opt->k, opt->lag, opt->epsilon);
  PetscCallMPI(MPI_Comm_size(comm, &P));
  t->comm = comm;
  t->D = D;
  t->lag = opt->lag;
  t->epsilon = opt->epsilon;
  t->scaling = opt->scaling;
  t->nb = opt->nb > 0 ? opt->nb : DY_TICA_NB;
  t->chunk = opt->chunk > 0 ? opt->chunk : DY_MAX((int64_t)DY_TICA_CHUNK_MIN, DY_TICA_CHUNK_DOUBLES / D / P);
  PetscCall(PetscMalloc1(D, &t->mean));
  PetscCall(PetscCalloc1(opt->k, &t->eigenvalues));
  PetscCall(PetscCalloc1(opt->k, &t->timescales));
  /* Three grids on the same processes: the 2-D one for the matrices, 1 x P and P x 1 for data
   * that stay with their ranks. A rank's place in each is its rank in comm. */
  t->handle = Csys2blacs_handle(comm);
  t->blacs = 1;
  dy_grid_shape(P, &nprow, &npcol);
  t->grid = t->rowgrid = t->colgrid = t->handle;
  Cblacs_gridinit(&t->grid, "Row", nprow, npcol);
  Cblacs_gridinit(&t->rowgrid, "Row", 1, P);
  Cblacs_gridinit(&t->colgrid, "Row", P, 1);

  PetscCall(PetscLogEventBegin(dy_ev_cov, 0, 0, 0, 0));
  PetscCall(dy_tica_mean(t, npieces, pieces));
  if (t->npairs == 0) {
    dy_tica_destroy(t);
    PetscCall(dy_input_error(comm, "TICA at lag %d: no pair (t, t + %d) in any trajectory", opt->lag, opt->lag));
  }
  PetscCall(dy_dmat_create(t->grid, D, D, t->nb, t->nb, &C0));
  PetscCall(dy_tica_accumulate(t, npieces, pieces, 0, &C0));
  PetscCall(PetscLogEventEnd(dy_ev_cov, 0, 0, 0, 0));

  PetscCall(PetscLogEventBegin(dy_ev_eig, 0, 0, 0, 0));
  ierr = dy_tica_solve(t, opt, npieces, pieces, &C0);
  PetscCall(PetscLogEventEnd(dy_ev_eig, 0, 0, 0, 0));
  dy_dmat_free(&C0);
  if (ierr) dy_tica_destroy(t);
  PetscCall(ierr);
  PetscFunctionReturn(0);
}

/* ---- using the fit ------------------------------------------------------------------------ */

PetscErrorCode dy_tica_project(const DyTica *t, int k, int64_t n, const dy_real *x, dy_real *y)
{
  const int D = t->D, one = 1;
  const double done = 1.0, dzero = 0.0;
  int P, myrank;
  int64_t c, rounds, done_rows = 0;
  DyDmat L, G, Y, Yl;
  DyTicaPairs piece = {n, x, x};
  DyCursor cur = {1, &piece, 0, 0};

  PetscFunctionBegin;
  PetscCheck(k >= 1 && k <= t->k, t->comm, PETSC_ERR_ARG_OUTOFRANGE, "dy_tica_project: k = %d of %d components", k,
             t->k);
  PetscCall(PetscLogEventBegin(dy_ev_proj, 0, 0, 0, 0));
  PetscCallMPI(MPI_Comm_size(t->comm, &P));
  PetscCallMPI(MPI_Comm_rank(t->comm, &myrank));
  PetscCall(dy_tica_rounds(t, n, &c, &rounds));
  PetscCheck((int64_t)P * c <= INT_MAX, t->comm, PETSC_ERR_SUP, "a round of %lld frames on %d ranks is too large",
             (long long)c, P);
  const int K = (int)(P * c), ci = (int)c;
  PetscCall(dy_dmat_create(t->rowgrid, D, K, D, ci, &L));
  PetscCall(dy_dmat_create(t->grid, D, K, t->nb, t->nb, &G));
  PetscCall(dy_dmat_create(t->grid, k, K, t->nb, t->nb, &Y));
  PetscCall(dy_dmat_create(t->rowgrid, k, K, k, ci, &Yl));
  for (int64_t r = 0; r < rounds; r++) {
    const int64_t got = dy_round_fill(&cur, 0, D, c, t->mean, L.a);
    pdgemr2d_(&D, &K, L.a, &one, &one, L.desc, G.a, &one, &one, G.desc, &t->rowgrid);
    /* Y^T = U^T X (k, P c): rank r's frames come back as its column block, i.e. (c, k) row-major. */
    pdgemm_("T", "N", &k, &K, &D, &done, t->u, &one, &one, t->udesc, G.a, &one, &one, G.desc, &dzero, Y.a, &one, &one,
            Y.desc);
    pdgemr2d_(&k, &K, Y.a, &one, &one, Y.desc, Yl.a, &one, &one, Yl.desc, &t->rowgrid);
    for (int64_t i = 0; i < got; i++)
      for (int j = 0; j < k; j++) {
        const double f = t->scaling == DY_TICA_KINETIC_MAP ? t->eigenvalues[j] : 1.0;
        y[(size_t)(done_rows + i) * k + j] = (dy_real)(f * Yl.a[(size_t)i * k + j]);
      }
    done_rows += got;
  }
  dy_dmat_free(&Yl);
  dy_dmat_free(&Y);
  dy_dmat_free(&G);
  dy_dmat_free(&L);
  PetscCall(PetscLogEventEnd(dy_ev_proj, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_tica_eigenvector_rows(const DyTica *t, int64_t *row0, int64_t *nrows, double **rows)
{
  const int D = t->D, k = t->k, one = 1;
  int P, nprow, npcol, myrow, mycol, mb;
  DyDmat R;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(t->comm, &P));
  mb = (D + P - 1) / P;
  PetscCall(dy_dmat_create(t->colgrid, D, k, mb, k, &R));
  pdgemr2d_(&D, &k, t->u, &one, &one, t->udesc, R.a, &one, &one, R.desc, &t->rowgrid);
  Cblacs_gridinfo(t->colgrid, &nprow, &npcol, &myrow, &mycol);
  *row0 = DY_MIN((int64_t)myrow * mb, (int64_t)D);
  *nrows = R.lr;
  PetscCall(PetscMalloc1((size_t)DY_MAX(1, R.lr) * k, rows));
  for (int i = 0; i < R.lr; i++)
    for (int j = 0; j < k; j++) (*rows)[(size_t)i * k + j] = R.a[(size_t)j * R.desc[DY_DESC_LLD] + i];
  dy_dmat_free(&R);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_tica_partners(MPI_Comm comm, int D, int64_t frames, int64_t start, int64_t count, const dy_real *x,
                                int lag, int64_t *npairs, dy_real **x1)
{
  int P;
  int64_t mine[2] = {start, count}, *all;
  int *scount, *sdispl, *rcount, *rdispl;
  MPI_Datatype row;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &P));
  PetscCall(PetscMalloc1(2 * P, &all));
  PetscCallMPI(MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, comm));
  PetscCall(PetscCalloc1(P, &scount));
  PetscCall(PetscCalloc1(P, &sdispl));
  PetscCall(PetscCalloc1(P, &rcount));
  PetscCall(PetscCalloc1(P, &rdispl));
  /* Rank q's pairs start at its frames t in [s_q, e_q) and need the frames [s_q + lag, e_q + lag). */
  for (int q = 0; q < P; q++) {
    const int64_t sq = all[2 * q], eq = DY_MIN(all[2 * q] + all[2 * q + 1], frames - lag);
    /* what I send to q: my frames within its need */
    int64_t lo = DY_MAX(sq + lag, start), hi = DY_MIN(eq + lag, start + count);
    if (eq > sq && hi > lo) {
      scount[q] = (int)(hi - lo);
      sdispl[q] = (int)(lo - start);
    }
    /* what q sends me: its frames within my need */
    const int64_t me = DY_MIN(start + count, frames - lag);
    lo = DY_MAX(start + lag, sq);
    hi = DY_MIN(me + lag, all[2 * q] + all[2 * q + 1]);
    if (me > start && hi > lo) {
      rcount[q] = (int)(hi - lo);
      rdispl[q] = (int)(lo - start - lag);
    }
  }
  *npairs = DY_MAX((int64_t)0, DY_MIN(start + count, frames - lag) - start);
  PetscCall(PetscMalloc1((size_t)DY_MAX(*npairs, 1) * D, x1));
  PetscCallMPI(MPI_Type_contiguous(D, DY_MPI_REAL, &row));
  PetscCallMPI(MPI_Type_commit(&row));
  PetscCallMPI(MPI_Alltoallv(x, scount, sdispl, row, *x1, rcount, rdispl, row, comm));
  PetscCallMPI(MPI_Type_free(&row));
  PetscCall(PetscFree(rdispl));
  PetscCall(PetscFree(rcount));
  PetscCall(PetscFree(sdispl));
  PetscCall(PetscFree(scount));
  PetscCall(PetscFree(all));
  PetscFunctionReturn(0);
}

void dy_tica_destroy(DyTica *t)
{
  (void)PetscFree(t->mean);
  (void)PetscFree(t->eigenvalues);
  (void)PetscFree(t->timescales);
  (void)PetscFree(t->u);
  if (t->blacs) {
    Cblacs_gridexit(t->grid);
    Cblacs_gridexit(t->rowgrid);
    Cblacs_gridexit(t->colgrid);
    Cfree_blacs_system_handle(t->handle);
  }
  memset(t, 0, sizeof *t);
}
