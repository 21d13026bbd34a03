/* Distributed TICA (SPEC section 10) on ScaLAPACK.
 *
 * Distribution. All ranks of the communicator form a BLACS grid of nprow x npcol processes (as
 * square as the rank count allows); every D x D matrix (C0, Ct, the eigenvectors of C0), the
 * whitened m x m matrix and the D x k eigenvectors are 2-D block-cyclic over it with square
 * blocks of nb (default DY_TICA_NB), so a rank holds about 1/P of each and never a whole one. The
 * frames stay where they are and are read twice (C0 first, Ct once C0 is diagonalised and
 * freed, so that fewer D x D matrices live at once): each rank's pairs are cut into rounds of at
 * most `chunk` pairs (the same number of rounds on every rank); in a round the ranks' mean-free
 * frames form one
 * D x (P c) matrix whose column block r is rank r's (a 1 x P grid), which PDGEMR2D
 * redistributes onto the 2-D grid, where PDSYRK (C0) and PDSYR2K (Ct) add it in. The same
 * rounds carry the projection: PDGEMM with the eigenvectors, and PDGEMR2D back to the owners.
 * Only vectors of length D (the mean) or k (the eigenvalues) are replicated.
 *
 * Estimate (reversible, mean removed, no Bessel correction), over all N pairs (x_t, x_{t+lag}) of
 * all ranks: mu = (sum x_t + sum x_{t+lag}) / 2N; C0 = (X^T X + Y^T Y) / 2N and
 * Ct = (X^T Y + Y^T X) / 2N on the mean-free pairs. C0 = V S V^T (PDSYEVR, only the eigenpairs
 * kept); the eigenvalues below epsilon are dropped, leaving m; W = V_m S_m^{-1/2};
 * W^T Ct W = Q L Q^T (PDSYEVR, the eigenvectors of the k leading |lambda| only); the
 * eigenvalues are ordered by decreasing |lambda|, the eigenvectors are U = W Q, each column's
 * entry of largest magnitude made positive; timescales are -lag / ln|lambda| frames. The
 * projection of a frame x is (x - mu)^T U, each TIC scaled by its lambda (kinetic map) unless
 * the scaling is DY_TICA_SCALING_NONE. Everything is double precision; dy_real frames are
 * converted as they are read. */
#pragma once
#include "base/dy_common.h"

#define DY_TICA_NB 64 /* default block size of the 2-D block-cyclic distribution */

/* How projections are scaled (tica.scaling). */
typedef enum {
  DY_TICA_KINETIC_MAP = 0, /* "kinetic_map": each TIC times its eigenvalue */
  DY_TICA_SCALING_NONE     /* "none": the TICs as they are */
} DyTicaScaling;

/* One run of this rank's pairs (frames t and t + lag). */
typedef struct {
  int64_t n;         /* pairs */
  const dy_real *x0; /* (n, D) frames t */
  const dy_real *x1; /* (n, D) frames t + lag */
} DyTicaPairs;

typedef struct {
  int lag;               /* frames between the members of a pair (for the timescales), >= 1 */
  double epsilon;        /* eigenvalues of C0 below it are dropped, > 0 */
  DyTicaScaling scaling; /* of the projections */
  int k;                 /* components computed, >= 1 */
  const char *k_key;     /* the input key that asked for k, named when fewer remain */
  int nb;                /* block size of the grid; 0: DY_TICA_NB */
  int64_t chunk;         /* pairs (frames) per rank in one round; 0: 32 MiB of doubles over all ranks */
} DyTicaOptions;

/* A fitted TICA. The BLACS contexts live as long as it does. */
typedef struct {
  MPI_Comm comm;         /* the communicator of the fit (borrowed) */
  int D;                 /* features */
  int m;                 /* components kept after epsilon */
  int k;                 /* components computed */
  int lag;               /* frames */
  double epsilon;        /* as fitted */
  DyTicaScaling scaling; /* of the projections */
  int64_t npairs;        /* N, pairs of all ranks */
  int64_t chunk;         /* frames per rank in one round */
  double *mean;          /* (D) mu, on every rank */
  double *eigenvalues;   /* (k) by decreasing |lambda|, on every rank */
  double *timescales;    /* (k) -lag / ln|lambda| frames (infinite for |lambda| >= 1) */
  /* the distribution */
  int blacs;             /* 1 once the grids below exist */
  int handle;            /* BLACS system handle of comm */
  int grid;              /* context of the 2-D grid */
  int rowgrid;           /* context of the 1 x P grid (rank r: column block r) */
  int colgrid;           /* context of the P x 1 grid (rank r: row block r) */
  int nb;                /* block size on the 2-D grid */
  int udesc[9];          /* descriptor of U */
  double *u;             /* this rank's part of U (D, k), block-cyclic on the 2-D grid */
} DyTica;

/* Collective: fits TICA to this rank's runs of pairs (npieces and their lengths may differ between
 * ranks; no pair at all is a DY_ERR_INPUT error). Fewer than opt->k components kept after epsilon
 * is a DY_ERR_INPUT error naming opt->k_key and the (nearly) constant features. On success free
 * the result with dy_tica_destroy. */
PetscErrorCode dy_tica_fit(MPI_Comm comm, int D, int npieces, const DyTicaPairs *pieces, const DyTicaOptions *opt,
                           DyTica *tica);

/* Collective: the first k <= tica->k TICs of this rank's n frames x (n, D) into y (n, k), scaled
 * as tica->scaling says. n may differ between ranks (0 included). */
PetscErrorCode dy_tica_project(const DyTica *tica, int k, int64_t n, const dy_real *x, dy_real *y);

/* Collective: this rank's rows [*row0, *row0 + *nrows) of U (D, k), row-major in *rows (free with
 * PetscFree); the ranks' rows partition 0..D-1 in rank order. */
PetscErrorCode dy_tica_eigenvector_rows(const DyTica *tica, int64_t *row0, int64_t *nrows, double **rows);

/* Collective: the lag partners of this rank's frames of one trajectory of `frames` frames, which
 * the ranks hold in contiguous blocks x (count, D) starting at frame `start` (blocks in any
 * order, together all frames). Pair t = start + j, j < *npairs, is (x[j], (*x1)[j]); *x1 (free
 * with PetscFree) is fetched from whichever ranks hold the frames t + lag. */
PetscErrorCode dy_tica_partners(MPI_Comm comm, int D, int64_t frames, int64_t start, int64_t count, const dy_real *x,
                                int lag, int64_t *npairs, dy_real **x1);

/* Frees everything and leaves the struct zeroed; safe on a zeroed struct. */
void dy_tica_destroy(DyTica *tica);
