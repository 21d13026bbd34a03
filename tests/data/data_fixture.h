/* Helpers of the data tests: small HDF5 files written serially, and encoded frame values. */
#pragma once
#include "base/dy_common.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>

/* Failed checks on this rank; a check prints where it failed (the first 20 of them). */
extern int dy_test_failures;
#define CHECK(cond, ...)                                                                            \
  do {                                                                                              \
    if (!(cond) && dy_test_failures++ < 20) {                                                       \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                      \
      fprintf(stderr, __VA_ARGS__);                                                                 \
      fprintf(stderr, "\n");                                                                        \
    }                                                                                               \
  } while (0)

/* The main of a test program: initialises PETSc, runs run(comm, argv[1], argv[2] or NULL) on
 * PETSC_COMM_WORLD and returns 0 only when it succeeded with no failed check on any rank. */
int dy_test_main(int argc, char **argv, const char *usage, PetscErrorCode (*run)(MPI_Comm, const char *, const char *));

/* Frame values that name their place exactly in float32: trajectory i, frame t, feature f
 * (t < 4096, f < 16). Targets use the negative code so they cannot be mistaken for inputs. */
static inline double dy_test_code_x(int i, int64_t t, int f) { return (double)i * 65536.0 + (double)t * 16.0 + f; }
static inline double dy_test_code_y(int i, int64_t t, int f) { return -1.0 - dy_test_code_x(i, t, f); }

/* Writes (creating the file if needed, and any groups on the path) dataset `name` of ndims dims
 * and file type `ftype` (e.g. H5T_IEEE_F32LE) from the doubles v (may be NULL when empty).
 * chunk > 0 stores it in chunks of `chunk` rows, compressed. Returns 0 on success. */
int dy_test_write(const char *path, const char *name, int ndims, const unsigned long long *dims, hid_t ftype,
                  const double *v, int chunk);

/* Writes a 2-D (frames, features) dataset with values code(i, t, f). Returns 0 on success. */
int dy_test_write_traj(const char *path, const char *name, int64_t frames, int features, hid_t ftype, int i,
                       int target, int chunk);
