/* Molecular frames in (SPEC section 9): the 3-D entry forms and the per-frame feature transforms.
 * An entry FILE:PATH names a 2-D dataset (frames, features), a 3-D dataset (frames, atoms, 3) or an
 * H5MD position group (PATH a group holding `value`, frames x atoms x 3). MDTraj's HDF5 files are
 * read through their /coordinates dataset, a 3-D dataset like any other. Rank 0 resolves the entry
 * and checks its shape before anything is read (DyFramesLayout travels with the rest of the
 * entry's facts); every rank then reads its own rows of all atoms, flattened to 3 * atoms values
 * per frame. The transforms work frame by frame on a rank's own block, so they cost no
 * communication but one broadcast: the reference of "aligned" (the selected atoms of frame 0 of
 * the first trajectory) lives on rank 0, which owns that frame at every rank count. data.atoms and
 * data.features apply to the inputs; 3-D targets are flattened as read. Alignment is Kabsch's
 * least-squares superposition without reflection, solved through the largest eigenvector of the 4
 * x 4 quaternion matrix (always a proper rotation). */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"

#include <hdf5.h>

#define DY_FRAMES_DSET_MAX 1024 /* room for the path of the dataset actually read */

/* How one entry's frames are stored; fixed by rank 0 and broadcast as plain bytes. */
typedef struct {
  int ndims;                        /* 2: (frames, features); 3: (frames, atoms, 3) */
  int64_t atoms;                    /* atoms per frame (3-D), 0 for 2-D */
  int64_t columns;                  /* values per frame as stored: features (2-D) or 3 * atoms */
  int image[3];                     /* channels, rows, columns of an image entry (model.network = "conv"), else 0 */
  char dataset[DY_FRAMES_DSET_MAX]; /* the dataset read: PATH, or PATH/value for an H5MD group */
} DyFramesLayout;

/* Serial: opens the dataset an entry names (following an H5MD group to its `value`) and records its path in lay->dataset. Returns 1 and fills msg
 * (starting with label) when there is no such dataset; *dset is then invalid. */
int dy_frames_open(hid_t file, const char *path, const char *label, hid_t *dset, DyFramesLayout *lay, char *msg,
                   size_t len);
/* Checks an opened entry's shape: 2-D, or 3-D with a last dimension of 3; fills ndims, atoms and
 * columns. Returns 1 and fills msg when the shape is unusable. */
int dy_frames_shape(const char *label, int ndims, const hsize_t *dims, DyFramesLayout *lay, char *msg,
                    size_t len);
/* The same check for model.network = "conv": images (frames, 64, 64) or (frames, channels, 64, 64),
 * flattened to channels * 64 * 64 features in that order (torch's); fills image[] too. */
int dy_frames_image_shape(const char *label, int ndims, const hsize_t *dims, DyFramesLayout *lay, char *msg,
                          size_t len);
/* The features an input entry gives under data.atoms and data.features: checks that they apply
 * (3-D entries only) and that every atom index is in range. Returns 1 and fills msg otherwise. */
int dy_frames_select(const DyConfig *cfg, const char *label, const DyFramesLayout *lay, int64_t *features, char *msg,
                     size_t len);
/* A value's place in a frame for messages: "feature 4" or "atom 1, coordinate y". */
void dy_frames_where(const DyFramesLayout *lay, int64_t column, char *text, size_t len);

/* Collective: turns each block of raw rows (nread[i], lay[i].columns) in x[i] into (nread[i], D)
 * features in place (reallocating x[i]), following data.atoms and data.features. Rank 0's x[0]
 * must begin with frame 0 of the first trajectory. */
PetscErrorCode dy_frames_features(MPI_Comm comm, const DyConfig *cfg, int n, const DyFramesLayout *lay,
                                  const int64_t *nread, int D, dy_real **x);

/* Kabsch superposition of one frame: writes to out (na, 3) the frame p (na, 3) rotated (no
 * reflection) and translated onto ref (na, 3), whose centroid is ref_center (3). */
void dy_frames_align(int na, const double *ref, const double *ref_center, const dy_real *p, dy_real *out);
/* All pairwise distances of p (na, 3): out (na * (na - 1) / 2) in the order (0,1), (0,2), ..., (1,2), ... */
void dy_frames_distances(int na, const dy_real *p, dy_real *out);
