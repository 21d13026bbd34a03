/* The BLACS and ScaLAPACK routines dynae-mpi calls, declared in one place: Debian ships the
 * libraries (libscalapack-openmpi) but no header. Every argument of the Fortran-style routines is
 * passed by address; matrices are column-major. A descriptor is the 9 integers of DESCINIT
 * (dtype, context, rows, columns, row block, column block, source row, source column, local
 * leading dimension). PDSYEVR is Fortran and takes the hidden lengths of its three character
 * arguments at the end; the PBLAS (pd*mm, pd*rk) and PDGEMR2D are C underneath and take none. */
#pragma once
#include <mpi.h>
#include <stddef.h>

#define DY_DESC_LEN 9 /* integers in a ScaLAPACK descriptor */
#define DY_DESC_CTXT 1 /* index of the BLACS context in a descriptor */
#define DY_DESC_LLD 8  /* index of the local leading dimension */

/* BLACS, C interface: a system handle for an MPI communicator, grids on it, and their shape. */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);

/* Tools: local rows (or columns) of a block-cyclic dimension, and a descriptor. */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *context, const int *lld, int *info);

/* PBLAS level 3. */
void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha, const double *a,
             const int *ia, const int *ja, const int *desca, const double *beta, double *c, const int *ic,
             const int *jc, const int *descc);
void pdsyr2k_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha, const double *a,
              const int *ia, const int *ja, const int *desca, const double *b, const int *ib, const int *jb,
              const int *descb, const double *beta, double *c, const int *ic, const int *jc, const int *descc);
void pdsymm_(const char *side, const char *uplo, const int *m, const int *n, const double *alpha, const double *a,
             const int *ia, const int *ja, const int *desca, const double *b, const int *ib, const int *jb,
             const int *descb, const double *beta, double *c, const int *ic, const int *jc, const int *descc);
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);

/* Copies sub(A) (m, n) into sub(B) between any two distributions whose contexts are both within
 * `context` (a context holding every process of both). */
void pdgemr2d_(const int *m, const int *n, const double *a, const int *ia, const int *ja, const int *desca, double *b,
               const int *ib, const int *jb, const int *descb, const int *context);

/* Symmetric eigensolver (MRRR) for all eigenvalues (range "A"), those in [vl, vu] ("V") or the
 * il-th to iu-th from the smallest ("I"), with their eigenvectors (jobz "V") or without ("N"):
 * *m eigenvalues ascending in w (on every process), the eigenvectors in Z's first *nz columns.
 * Z is n x n and distributed as A. lwork = liwork = -1 asks for the workspace sizes in work[0],
 * iwork[0]. */
void pdsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, const double *vl, const double *vu, const int *il, const int *iu, int *m,
              int *nz, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t range_len,
              size_t uplo_len);
