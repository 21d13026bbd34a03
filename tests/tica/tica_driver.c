/* Runs the distributed TICA on trajectories from an HDF5 file, for check_tica.py to compare.
 *
 *   tica_driver IN.h5 OUT.h5 LAG EPSILON K SCALING NB CHUNK
 *
 * IN.h5 holds /traj0 .. /traj{n-1} (frames, D) float64 and the attribute ntraj. Every rank reads
 * its contiguous block of each trajectory (blocks as unequal as the frame count allows), fetches
 * the lag partners with dy_tica_partners, fits (SCALING "kinetic_map" or "none"; NB the block
 * size, CHUNK the frames per rank in one round, 0: the defaults) and projects its own frames.
 * Rank 0 gathers everything and writes OUT.h5: /mean (D), /eigenvalues (K), /timescales (K),
 * /eigenvectors (D, K), /latent/traj{i} (frames, K), attribute kept (components after epsilon).
 * Exit codes as dynae-mpi's: 2 for bad input (e.g. K larger than what epsilon keeps). */
#include "analysis/dy_tica.h"

#if !defined(DY_REAL_DOUBLE)
#error "tica_driver reads float64 frames as dy_real: build it against dynae_double"
#endif

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads rows [start, start + count) of dataset `name` (frames, D) of float64; its frames in *F. */
static PetscErrorCode read_block(const char *path, const char *name, int rank, int size, int64_t *F, int *D,
                                 int64_t *start, int64_t *count, double **x)
{
  hid_t file, dset, space, mspace;
  hsize_t dims[2];

  PetscFunctionBegin;
  file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  PetscCheck(file >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot open %s", path);
  dset = H5Dopen2(file, name, H5P_DEFAULT);
  PetscCheck(dset >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "no %s in %s", name, path);
  space = H5Dget_space(dset);
  H5Sget_simple_extent_dims(space, dims, NULL);
  *F = (int64_t)dims[0];
  *D = (int)dims[1];
  /* Unequal blocks: rank r gets a share growing with r (rank 0 may get none of a short one). */
  {
    int64_t w = (int64_t)size * (size + 1) / 2, acc = 0;
    for (int r = 0; r < rank; r++) acc += r + 1;
    *start = *F * acc / w;
    *count = *F * (acc + rank + 1) / w - *start;
  }
  PetscCall(PetscMalloc1((size_t)DY_MAX(*count, 1) * *D, x));
  if (*count > 0) {
    hsize_t off[2] = {(hsize_t)*start, 0}, cnt[2] = {(hsize_t)*count, dims[1]};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, off, NULL, cnt, NULL);
    mspace = H5Screate_simple(2, cnt, NULL);
    PetscCheck(H5Dread(dset, H5T_NATIVE_DOUBLE, mspace, space, H5P_DEFAULT, *x) >= 0, PETSC_COMM_SELF,
               PETSC_ERR_FILE_READ, "reading %s failed", name);
    H5Sclose(mspace);
  }
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);
  PetscFunctionReturn(0);
}

static void write_array(hid_t loc, const char *name, int ndims, int64_t d0, int64_t d1, const double *v)
{
  hsize_t dims[2] = {(hsize_t)d0, (hsize_t)d1};
  hid_t space = H5Screate_simple(ndims, dims, NULL);
  hid_t dset = H5Dcreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d0 * (ndims > 1 ? d1 : 1) > 0) H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  H5Dclose(dset);
  H5Sclose(space);
}

/* Rank 0 gathers the rows (n, ncol) of every rank in rank order into *all (free with PetscFree). */
static PetscErrorCode gather_rows(MPI_Comm comm, int64_t n, int ncol, const double *v, double **all)
{
  int size, rank, mine = (int)(n * ncol), *counts = NULL, *displ = NULL, total = 0;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscCalloc1(size, &counts));
  PetscCall(PetscCalloc1(size, &displ));
  PetscCallMPI(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm));
  for (int r = 0; r < size; r++) {
    displ[r] = total;
    total += counts[r];
  }
  PetscCall(PetscMalloc1(DY_MAX(total, 1), all));
  PetscCallMPI(MPI_Gatherv(v, mine, MPI_DOUBLE, *all, counts, displ, MPI_DOUBLE, 0, comm));
  PetscCall(PetscFree(counts));
  PetscCall(PetscFree(displ));
  PetscFunctionReturn(0);
}

static PetscErrorCode run(MPI_Comm comm, char **argv)
{
  const char *in = argv[1], *out = argv[2];
  DyTicaOptions opt = {.lag = atoi(argv[3]), .epsilon = atof(argv[4]), .k = atoi(argv[5]), .k_key = "k",
                       .scaling = strcmp(argv[6], "none") ? DY_TICA_KINETIC_MAP : DY_TICA_SCALING_NONE,
                       .nb = atoi(argv[7]), .chunk = atoll(argv[8])};
  int size, rank, ntraj = 0, D = 0;
  hid_t f;
  DyTica tica;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  f = H5Fopen(in, H5F_ACC_RDONLY, H5P_DEFAULT);
  PetscCheck(f >= 0, comm, PETSC_ERR_FILE_OPEN, "cannot open %s", in);
  {
    hid_t a = H5Aopen(f, "ntraj", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT, &ntraj);
    H5Aclose(a);
  }
  H5Fclose(f);

  int64_t *F, *start, *count, *np;
  double **x;
  dy_real **x1;
  DyTicaPairs *pieces;
  PetscCall(PetscMalloc1(ntraj, &F));
  PetscCall(PetscMalloc1(ntraj, &start));
  PetscCall(PetscMalloc1(ntraj, &count));
  PetscCall(PetscMalloc1(ntraj, &np));
  PetscCall(PetscMalloc1(ntraj, &x));
  PetscCall(PetscMalloc1(ntraj, &x1));
  PetscCall(PetscMalloc1(ntraj, &pieces));
  for (int i = 0; i < ntraj; i++) {
    char name[32];
    snprintf(name, sizeof name, "/traj%d", i);
    PetscCall(read_block(in, name, rank, size, &F[i], &D, &start[i], &count[i], &x[i]));
    PetscCall(dy_tica_partners(comm, D, F[i], start[i], count[i], x[i], opt.lag, &np[i], &x1[i]));
    pieces[i] = (DyTicaPairs){np[i], x[i], x1[i]};
  }
  PetscCall(dy_tica_fit(comm, D, ntraj, pieces, &opt, &tica));

  int64_t row0, nrows;
  double *rows, *all = NULL, *lat;
  hid_t file = H5I_INVALID_HID, glat = H5I_INVALID_HID;
  PetscCall(dy_tica_eigenvector_rows(&tica, &row0, &nrows, &rows));
  PetscCall(gather_rows(comm, nrows, opt.k, rows, &all));
  if (rank == 0) {
    file = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    PetscCheck(file >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create %s", out);
    write_array(file, "mean", 1, D, 0, tica.mean);
    write_array(file, "eigenvalues", 1, opt.k, 0, tica.eigenvalues);
    write_array(file, "timescales", 1, opt.k, 0, tica.timescales);
    write_array(file, "eigenvectors", 2, D, opt.k, all);
    hid_t s = H5Screate(H5S_SCALAR), a = H5Acreate2(file, "kept", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &tica.m);
    H5Aclose(a);
    H5Sclose(s);
    glat = H5Gcreate2(file, "latent", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  }
  PetscCall(PetscFree(all));
  PetscCall(PetscFree(rows));
  for (int i = 0; i < ntraj; i++) {
    char name[32];
    PetscCall(PetscMalloc1((size_t)DY_MAX(count[i], 1) * opt.k, &lat));
    PetscCall(dy_tica_project(&tica, opt.k, count[i], x[i], lat));
    PetscCall(gather_rows(comm, count[i], opt.k, lat, &all));
    snprintf(name, sizeof name, "traj%d", i);
    if (rank == 0) write_array(glat, name, 2, F[i], opt.k, all);
    PetscCall(PetscFree(all));
    PetscCall(PetscFree(lat));
    PetscCall(PetscFree(x[i]));
    PetscCall(PetscFree(x1[i]));
  }
  if (rank == 0) {
    H5Gclose(glat);
    H5Fclose(file);
  }
  dy_tica_destroy(&tica);
  PetscCall(PetscFree(F));
  PetscCall(PetscFree(start));
  PetscCall(PetscFree(count));
  PetscCall(PetscFree(np));
  PetscCall(PetscFree(x));
  PetscCall(PetscFree(x1));
  PetscCall(PetscFree(pieces));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscErrorCode ierr;
  int code;

  if (argc != 9) {
    fprintf(stderr, "usage: tica_driver IN.h5 OUT.h5 LAG EPSILON K SCALING NB CHUNK\n");
    return 2;
  }
  if (PetscInitialize(&argc, &argv, NULL, NULL)) return 1;
  ierr = dy_error_handler_install();
  if (!ierr) ierr = run(PETSC_COMM_WORLD, argv);
  code = dy_exit_code(ierr);
  if (code == DY_EXIT_FAILURE) MPI_Abort(PETSC_COMM_WORLD, code);
  if (PetscFinalize()) return 1;
  return code;
}
