/* Fields of the latent space on a grid; the force free energy from a Poisson problem on a DMDA.
 * The grid, the discretisation, its distribution and the null space: include/analysis/dy_fields.h. */
#include "analysis/dy_fields.h"

#include <math.h>
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

/* The nets on this rank's points of da: force into F and log-diffusion, exponentiated, into G
 * (global vectors of the d-component DMDA). */
static PetscErrorCode dy_fields_evaluate(DM da, const DyModel *model, DyWork *work, const DyFields *f, Vec F, Vec G)
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
  PetscCall(VecRestoreArray(G, &ga));
  PetscCall(VecRestoreArray(F, &fa));
  PetscCall(PetscFree3(pts, fo, go));
  PetscFunctionReturn(0);
}

/* This rank's rows of A (the face Laplacian) and of b (minus the face divergence of the force),
 * from the ghosted force Fl of dad. */
static PetscErrorCode dy_fields_assemble(DM da, DM dad, Vec Fl, const DyFields *f, Mat A, Vec b)
{
  const int d = f->d;
  PetscInt lo[3], m[3], glo[3], gm[3], M[3] = {1, 1, 1};
  const PetscScalar *fl;
  PetscScalar *ba;

  PetscFunctionBegin;
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
        col[0] = row;
        val[0] = 0;
        for (int a = 0; a < d; a++) {
          const int c = d - 1 - a; /* the latent component along DMDA axis a */
          const double h = f->h[c];
          const PetscInt stride = a == 0 ? 1 : a == 1 ? gm[0] : gm[0] * gm[1];
          for (int dir = -1; dir <= 1; dir += 2) {
            if (idx[a] + dir < 0 || idx[a] + dir >= M[a]) continue; /* a border face: absent */
            const double face = 0.5 * (PetscRealPart(fl[here * d + c]) + PetscRealPart(fl[(here + dir * stride) * d + c]));
            col[nc] = row;
            if (a == 0) col[nc].i += dir;
            else if (a == 1) col[nc].j += dir;
            else col[nc].k += dir;
            val[nc++] = -1.0 / (h * h);
            val[0] += 1.0 / (h * h);
            rhs += dir * face / h;
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
static PetscErrorCode dy_fields_solve(MPI_Comm comm, const DyModel *model, DyWork *work, DyFields *f)
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
  PetscCall(dy_fields_evaluate(da, model, work, f, F, G));
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
                                 const DyFieldsOptions *opt, DyFields *f)
{
  const int d = model->d;

  PetscFunctionBegin;
  memset(f, 0, sizeof *f);
  PetscCheck(d >= 1 && d <= DY_FIELDS_MAX_DIM, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "the fields are computed for latent dimensions 1 to %d, not %d", DY_FIELDS_MAX_DIM, d);
  PetscCheck(opt->grid >= 2 && opt->margin >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE,
             "analysis.grid %d must be >= 2 and analysis.margin %g >= 0", opt->grid, opt->margin);
  double points = 1;
  for (int j = 0; j < d; j++) points *= opt->grid;
  PetscCheck(points <= (double)DY_FIELDS_MAX_POINTS, comm, DY_ERR_INPUT,
             "analysis.grid = %d makes %.3g grid points in %d dimensions, more than the %lld supported; lower it",
             opt->grid, points, d, (long long)DY_FIELDS_MAX_POINTS);
  PetscCall(dy_fields_register_events());
  PetscCall(PetscLogEventBegin(dy_ev_fields, 0, 0, 0, 0));
  f->d = d;
  PetscCall(dy_fields_grid(comm, d, n, z, opt, f));
  PetscCall(dy_fields_histogram(comm, n, z, f));
  PetscCall(PetscMalloc3((size_t)f->npoint * d, &f->force, (size_t)f->npoint * d, &f->diffusion, (size_t)f->npoint,
                         &f->free_energy_force));
  PetscCall(dy_fields_solve(comm, model, work, f));
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
