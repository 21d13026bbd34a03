#include "data_fixture.h"

#include <stdlib.h>
#include <sys/stat.h>

int dy_test_failures;

int dy_test_main(int argc, char **argv, const char *usage, PetscErrorCode (*run)(MPI_Comm, const char *, const char *))
{
  PetscErrorCode ierr;
  int all = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: %s\n", usage);
    return 1;
  }
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(dy_error_handler_install());
  ierr = run(PETSC_COMM_WORLD, argv[1], argc > 2 ? argv[2] : NULL);
  MPI_Allreduce(&dy_test_failures, &all, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD);
  if (dy_is_root(PETSC_COMM_WORLD)) printf("%s: %d failed checks\n", ierr ? "error" : "done", all);
  PetscCall(PetscFinalize());
  return ierr || all ? 1 : 0;
}

int dy_test_write(const char *path, const char *name, int ndims, const unsigned long long *dims, hid_t ftype,
                  const double *v, int chunk)
{
  hid_t file = H5I_INVALID_HID, space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
  hid_t dset = H5I_INVALID_HID;
  hsize_t hd[8], cd[8];
  size_t total = 1;
  struct stat st;
  int bad = 1;

  for (int k = 0; k < ndims; k++) {
    hd[k] = cd[k] = (hsize_t)dims[k];
    total *= (size_t)dims[k];
  }
  if (stat(path, &st) == 0) file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  else file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) goto done;
  if ((space = H5Screate_simple(ndims, hd, NULL)) < 0) goto done;
  if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) goto done;
  if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto done;
  if (chunk > 0) {
    cd[0] = (hsize_t)chunk;
    if (H5Pset_chunk(dcpl, ndims, cd) < 0 || H5Pset_deflate(dcpl, 4) < 0) goto done;
  }
  if ((dset = H5Dcreate2(file, name, ftype, space, lcpl, dcpl, H5P_DEFAULT)) < 0) goto done;
  if (total && H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) goto done;
  bad = 0;
done:
  if (dset >= 0) H5Dclose(dset);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (lcpl >= 0) H5Pclose(lcpl);
  if (space >= 0) H5Sclose(space);
  if (file >= 0 && H5Fclose(file) < 0) bad = 1;
  return bad;
}

int dy_test_write_traj(const char *path, const char *name, int64_t frames, int features, hid_t ftype, int i,
                       int target, int chunk)
{
  const unsigned long long dims[2] = {(unsigned long long)frames, (unsigned long long)features};
  double *v = malloc(sizeof(double) * (size_t)(frames * features + 1));
  int bad;

  if (!v) return 1;
  for (int64_t t = 0; t < frames; t++)
    for (int f = 0; f < features; f++)
      v[t * features + f] = target ? dy_test_code_y(i, t, f) : dy_test_code_x(i, t, f);
  bad = dy_test_write(path, name, 2, dims, ftype, v, chunk);
  free(v);
  return bad;
}
