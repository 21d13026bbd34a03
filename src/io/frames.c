/* Molecular frames in: entry forms (3-D datasets, H5MD groups, MDTraj files), data.atoms and the
 * per-frame features. See dy_frames.h. */
#include "io/dy_frames.h"
#include "analysis/dy_vamp.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* 1 when path names a group of the file (no error printed: the caller silenced HDF5). */
static int dy_frames_is_group(hid_t file, const char *path)
{
  const hid_t g = H5Lexists(file, path, H5P_DEFAULT) > 0 ? H5Gopen2(file, path, H5P_DEFAULT) : H5I_INVALID_HID;

  if (g < 0) return 0;
  H5Gclose(g);
  return 1;
}

/* 1 when path/name exists in the file. */
static int dy_frames_has(hid_t file, const char *path, const char *name, char *joined, size_t len)
{
  snprintf(joined, len, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", name);
  return H5Lexists(file, joined, H5P_DEFAULT) > 0;
}

int dy_frames_open(hid_t file, const char *path, const char *label, hid_t *dset, DyFramesLayout *lay, char *msg,
                   size_t len)
{
  char joined[DY_FRAMES_DSET_MAX];

  *dset = H5I_INVALID_HID;
  if (strlen(path) >= DY_FRAMES_DSET_MAX - 16) {
    snprintf(msg, len, "%s: the dataset path is too long", label);
    return 1;
  }
  snprintf(lay->dataset, sizeof lay->dataset, "%s", path);
  if (dy_frames_is_group(file, path)) {
    /* An H5MD position group keeps its frames in `value`. */
    if (dy_frames_has(file, path, "value", joined, sizeof joined))
      snprintf(lay->dataset, sizeof lay->dataset, "%s", joined);
    else {
      snprintf(msg, len,
               "%s: is a group without a `value` dataset (an H5MD position group, e.g. /particles/all/position, "
               "holds one; name a dataset otherwise)",
               label);
      return 1;
    }
  }
  if ((*dset = H5Dopen2(file, lay->dataset, H5P_DEFAULT)) < 0) {
    if (strcmp(lay->dataset, path))
      snprintf(msg, len, "%s: %s is not a dataset", label, lay->dataset);
    else
      snprintf(msg, len, "%s: no such dataset in the file", label);
    return 1;
  }
  return 0;
}

/* A dataset's shape as text: "(100, 64, 64)". */
static void dy_frames_shape_text(int ndims, const hsize_t *dims, char *shape, size_t len)
{
  size_t used = (size_t)snprintf(shape, len, "(");
  for (int k = 0; k < ndims && used < len; k++)
    used += (size_t)snprintf(shape + used, len - used, k ? ", %llu" : "%llu", (unsigned long long)dims[k]);
  if (used < len) snprintf(shape + used, len - used, ndims == 1 ? ",)" : ")");
}

int dy_frames_image_shape(const char *label, int ndims, const hsize_t *dims, DyFramesLayout *lay, char *msg,
                          size_t len)
{
  char shape[256];
  dy_frames_shape_text(ndims, dims, shape, sizeof shape);
  const hsize_t C = ndims == 4 ? dims[1] : 1;
  if ((ndims != 3 && ndims != 4) || dims[ndims - 1] != 64 || dims[ndims - 2] != 64 || C == 0 || C > INT_MAX / 4096) {
    snprintf(msg, len,
             "%s: has shape %s; model.network = \"conv\" needs images of 64 x 64 pixels, (frames, 64, 64) or "
             "(frames, channels, 64, 64)",
             label, shape);
    return 1;
  }
  lay->ndims = ndims;
  lay->atoms = 0;
  lay->columns = (int64_t)C * 64 * 64;
  lay->image[0] = (int)C;
  lay->image[1] = lay->image[2] = 64;
  return 0;
}

int dy_frames_shape(const char *label, int ndims, const hsize_t *dims, DyFramesLayout *lay, char *msg,
                    size_t len)
{
  char shape[256];
  dy_frames_shape_text(ndims, dims, shape, sizeof shape);
  lay->ndims = ndims;
  if (ndims == 2) {
    if (dims[1] == 0 || dims[1] > INT_MAX) {
      snprintf(msg, len, "%s: has shape %s: %s features", label, shape, dims[1] ? "too many" : "no");
      return 1;
    }
    lay->atoms = 0;
    lay->columns = (int64_t)dims[1];
    return 0;
  }
  if (ndims == 3) {
    if (dims[2] != 3) {
      snprintf(msg, len, "%s: has shape %s; a 3-D dataset must be (frames, atoms, 3), with 3 coordinates per atom",
               label, shape);
      return 1;
    }
    if (dims[1] == 0 || dims[1] > INT_MAX / 3) {
      snprintf(msg, len, "%s: has shape %s: %s atoms", label, shape, dims[1] ? "too many" : "no");
      return 1;
    }
    lay->atoms = (int64_t)dims[1];
    lay->columns = 3 * (int64_t)dims[1];
    return 0;
  }
  snprintf(msg, len, "%s: has shape %s (%d-D); expected 2-D (frames, features) or 3-D (frames, atoms, 3)", label, shape,
           ndims);
  return 1;
}

int dy_frames_select(const DyConfig *cfg, const char *label, const DyFramesLayout *lay, int64_t *features, char *msg,
                     size_t len)
{
  const int64_t na = cfg->natoms ? cfg->natoms : lay->atoms;

  if (lay->ndims != 3 || lay->image[0]) {
    if (!strcmp(cfg->features, "aligned") || !strcmp(cfg->features, "distances")) {
      snprintf(msg, len, "%s: data.features = \"%s\" needs 3-D positions (frames, atoms, 3), but the dataset is 2-D",
               label, cfg->features);
      return 1;
    }
    if (cfg->natoms) {
      snprintf(msg, len, "%s: data.atoms selects atoms of 3-D positions (frames, atoms, 3), but the dataset is 2-D",
               label);
      return 1;
    }
    *features = lay->columns;
    return 0;
  }
  for (int k = 0; k < cfg->natoms; k++)
    if (cfg->atoms[k] >= lay->atoms) {
      snprintf(msg, len, "%s: data.atoms[%d] = %d is out of range: the dataset has %lld atoms (0 to %lld)", label, k,
               cfg->atoms[k], (long long)lay->atoms, (long long)lay->atoms - 1);
      return 1;
    }
  if (!strcmp(cfg->features, "distances")) {
    if (na < 2) {
      snprintf(msg, len, "%s: data.features = \"distances\" needs at least 2 atoms, %lld selected", label,
               (long long)na);
      return 1;
    }
    if (na * (na - 1) / 2 > INT_MAX) {
      snprintf(msg, len, "%s: %lld atoms give too many distances", label, (long long)na);
      return 1;
    }
    *features = na * (na - 1) / 2;
  } else
    *features = 3 * na;
  return 0;
}

void dy_frames_where(const DyFramesLayout *lay, int64_t column, char *text, size_t len)
{
  if (lay->ndims == 3)
    snprintf(text, len, "atom %lld, coordinate %c", (long long)(column / 3), "xyz"[column % 3]);
  else
    snprintf(text, len, "feature %lld", (long long)column);
}

void dy_frames_align(int na, const double *ref, const double *ref_center, const dy_real *p, dy_real *out)
{
  double c[3] = {0, 0, 0}, s[9] = {0}, n[16], w[4], v[16], q[4], r[9];

  for (int i = 0; i < na; i++)
    for (int k = 0; k < 3; k++) c[k] += p[3 * i + k];
  for (int k = 0; k < 3; k++) c[k] /= na;
  /* s = sum over atoms of (p - c) ref^T, ref already centred. */
  for (int i = 0; i < na; i++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) s[3 * a + b] += (p[3 * i + a] - c[a]) * ref[3 * i + b];
  /* The quaternion of the best rotation is the top eigenvector of this symmetric 4 x 4 matrix. */
  const double xx = s[0], xy = s[1], xz = s[2], yx = s[3], yy = s[4], yz = s[5], zx = s[6], zy = s[7], zz = s[8];
  const double nn[16] = {xx + yy + zz, yz - zy,      zx - xz,       xy - yx,       /**/
                         yz - zy,      xx - yy - zz, xy + yx,       zx + xz,       /**/
                         zx - xz,      xy + yx,      -xx + yy - zz, yz + zy,       /**/
                         xy - yx,      zx + xz,      yz + zy,       -xx - yy + zz};
  memcpy(n, nn, sizeof n);
  dy_vamp_eigh(4, n, w, v);
  for (int k = 0; k < 4; k++) q[k] = v[4 * k + 3];
  r[0] = q[0] * q[0] + q[1] * q[1] - q[2] * q[2] - q[3] * q[3];
  r[1] = 2 * (q[1] * q[2] - q[0] * q[3]);
  r[2] = 2 * (q[1] * q[3] + q[0] * q[2]);
  r[3] = 2 * (q[1] * q[2] + q[0] * q[3]);
  r[4] = q[0] * q[0] - q[1] * q[1] + q[2] * q[2] - q[3] * q[3];
  r[5] = 2 * (q[2] * q[3] - q[0] * q[1]);
  r[6] = 2 * (q[1] * q[3] - q[0] * q[2]);
  r[7] = 2 * (q[2] * q[3] + q[0] * q[1]);
  r[8] = q[0] * q[0] - q[1] * q[1] - q[2] * q[2] + q[3] * q[3];
  for (int i = 0; i < na; i++) {
    const double x = p[3 * i] - c[0], y = p[3 * i + 1] - c[1], z = p[3 * i + 2] - c[2];
    for (int k = 0; k < 3; k++)
      out[3 * i + k] = (dy_real)(r[3 * k] * x + r[3 * k + 1] * y + r[3 * k + 2] * z + ref_center[k]);
  }
}

void dy_frames_distances(int na, const dy_real *p, dy_real *out)
{
  int64_t k = 0;

  for (int i = 0; i < na; i++)
    for (int j = i + 1; j < na; j++) {
      const double dx = (double)p[3 * i] - p[3 * j], dy = (double)p[3 * i + 1] - p[3 * j + 1];
      const double dz = (double)p[3 * i + 2] - p[3 * j + 2];
      out[k++] = (dy_real)sqrt(dx * dx + dy * dy + dz * dz);
    }
}

/* The selected atoms of one raw frame (3 * atoms values) into sel (na, 3). */
static void dy_frames_pick(const DyConfig *cfg, int64_t atoms, const dy_real *raw, dy_real *sel)
{
  if (!cfg->natoms) {
    memcpy(sel, raw, (size_t)(3 * atoms) * sizeof *sel);
    return;
  }
  for (int k = 0; k < cfg->natoms; k++) memcpy(sel + 3 * k, raw + 3 * (int64_t)cfg->atoms[k], 3 * sizeof *sel);
}

PetscErrorCode dy_frames_features(MPI_Comm comm, const DyConfig *cfg, int n, const DyFramesLayout *lay,
                                  const int64_t *nread, int D, dy_real **x)
{
  const int aligned = !strcmp(cfg->features, "aligned"), distances = !strcmp(cfg->features, "distances");
  int rank, na;
  double *ref = NULL, center[3] = {0, 0, 0};
  dy_real *sel = NULL;

  PetscFunctionBegin;
  /* 2-D inputs, and 3-D ones kept whole as coordinates, are used as read. */
  if (lay[0].ndims != 3 || lay[0].image[0] || (!cfg->natoms && !aligned && !distances)) PetscFunctionReturn(0);
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  na = cfg->natoms ? cfg->natoms : (int)lay[0].atoms;
  PetscCall(PetscMalloc1(3 * (size_t)na, &sel));
  if (aligned) {
    /* The reference: frame 0 of the first trajectory, on rank 0 at every rank count, centred. */
    PetscCall(PetscMalloc1(3 * (size_t)na, &ref));
    if (rank == 0) {
      dy_frames_pick(cfg, lay[0].atoms, x[0], sel);
      for (int i = 0; i < 3 * na; i++) ref[i] = sel[i];
    }
    PetscCallMPI(MPI_Bcast(ref, 3 * na, MPI_DOUBLE, 0, comm));
    for (int i = 0; i < na; i++)
      for (int k = 0; k < 3; k++) center[k] += ref[3 * i + k] / na;
    for (int i = 0; i < na; i++)
      for (int k = 0; k < 3; k++) ref[3 * i + k] -= center[k];
  }
  for (int t = 0; t < n; t++) {
    dy_real *out;

    PetscCall(PetscMalloc1((size_t)DY_MAX(nread[t], 1) * D, &out));
    for (int64_t f = 0; f < nread[t]; f++) {
      dy_real *row = out + f * D;
      dy_frames_pick(cfg, lay[t].atoms, x[t] + f * lay[t].columns, sel);
      if (aligned) dy_frames_align(na, ref, center, sel, row);
      else if (distances) dy_frames_distances(na, sel, row);
      else memcpy(row, sel, (size_t)D * sizeof *row);
    }
    PetscCall(PetscFree(x[t]));
    x[t] = out;
  }
  PetscCall(PetscFree(ref));
  PetscCall(PetscFree(sel));
  PetscFunctionReturn(0);
}
