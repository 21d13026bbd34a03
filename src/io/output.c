/* results.h5 (SPEC section 8), written collectively with Parallel HDF5.
 *
 * Every dataset is created by all ranks (metadata operations are collective in HDF5 1.10) and
 * written with one collective transfer in which each rank selects its own rows (or none). HDF5
 * handles start invalid and are closed in reverse order of opening, also on failure. */
#include "io/dy_output.h"
#include "analysis/dy_fields.h"
#include "io/dy_standardize.h"
#include "base/dy_version.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

const char *const dy_history_names[DY_NHIST] = {"epoch",       "loss_rec_train", "loss_sw_train",
                                                "loss_prior_train", "loss_rec_test", "loss_sw_test",
                                                "loss_prior_test", "bins",         "seconds",
                                                "vamp2_test"};

PetscErrorCode dy_history_create(int cap, DyHistory *hist)
{
  PetscFunctionBegin;
  hist->n = 0;
  hist->cap = DY_MAX(cap, 1);
  PetscCall(PetscCalloc1((size_t)hist->cap * DY_NHIST, &hist->rows));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_history_append(DyHistory *hist, const double *row)
{
  PetscFunctionBegin;
  if (hist->n == hist->cap) {
    double *rows;
    PetscCall(PetscMalloc1((size_t)2 * hist->cap * DY_NHIST, &rows));
    PetscCall(PetscArraycpy(rows, hist->rows, (size_t)hist->n * DY_NHIST));
    PetscCall(PetscFree(hist->rows));
    hist->rows = rows;
    hist->cap *= 2;
  }
  PetscCall(PetscArraycpy(hist->rows + (size_t)hist->n * DY_NHIST, row, DY_NHIST));
  hist->n++;
  PetscFunctionReturn(0);
}

void dy_history_destroy(DyHistory *hist)
{
  PetscFree(hist->rows);
  hist->n = hist->cap = 0;
}

PetscErrorCode dy_output_mkdir(MPI_Comm comm, const char *dir)
{
  char path[DY_PATH_MAX], msg[DY_PATH_MAX + 256] = "";
  int bad = 0;

  PetscFunctionBegin;
  if (dy_is_root(comm)) {
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
      bad = 1;
      snprintf(msg, sizeof msg, "output.dir '%s': empty or longer than %d characters", dir, DY_PATH_MAX - 1);
    } else {
      memcpy(path, dir, n + 1);
      /* Each prefix ending before a '/' is a parent; then the folder itself. */
      for (size_t i = 1; i <= n && !bad; i++) {
        if (i < n && path[i] != '/') continue;
        char saved = path[i];
        path[i] = '\0';
        struct stat st;
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
          bad = 1;
          snprintf(msg, sizeof msg, "output.dir '%s': cannot create the folder '%s': %s (choose a writable output.dir)",
                   dir, path, strerror(errno));
        } else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
          bad = 1;
          snprintf(msg, sizeof msg, "output.dir '%s': '%s' exists and is not a folder (choose another output.dir)", dir,
                   path);
        }
        path[i] = saved;
      }
    }
  }
  PetscCall(dy_agree_error(comm, bad, DY_ERR_INPUT, msg));
  PetscFunctionReturn(0);
}

/* The reconstruction is decoded and written in pieces of about this many bytes per rank. */
#ifndef DY_OUTPUT_PIECE_BYTES
#define DY_OUTPUT_PIECE_BYTES ((int64_t)1 << 24)
#endif

/* Raises a library error for a failed HDF5 call and jumps to the caller's cleanup. */
#define DY_H5_CHECK(expr)                                                                                              \
  do {                                                                                                                 \
    if ((expr) < 0) {                                                                                                  \
      ierr = PetscError(PETSC_COMM_SELF, __LINE__, PETSC_FUNCTION_NAME, __FILE__, PETSC_ERR_LIB, PETSC_ERROR_INITIAL,  \
                        "HDF5 call failed: %s", #expr);                                                                \
      goto cleanup;                                                                                                    \
    }                                                                                                                  \
  } while (0)

#define DY_TRY(expr)                                                                                                   \
  do {                                                                                                                 \
    ierr = (expr);                                                                                                     \
    if (ierr) goto cleanup;                                                                                            \
  } while (0)

static void dy_h5_close(hid_t *id, herr_t (*close)(hid_t))
{
  if (*id >= 0) close(*id);
  *id = H5I_INVALID_HID;
}

/* Collective: writes this rank's rows [start, start + count) of dset, of shape (nrows, ncol)
 * (ncol == 0: one-dimensional), from buf (count, ncol), in one collective transfer. */
static PetscErrorCode dy_h5_write_piece(hid_t dset, hid_t type, int64_t nrows, int ncol, int64_t start, int64_t count,
                                        const void *buf, hid_t dxpl)
{
  PetscErrorCode ierr = 0;
  hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
  const int rank = ncol > 0 ? 2 : 1;
  hsize_t dims[2] = {(hsize_t)nrows, (hsize_t)ncol};
  hsize_t off[2] = {(hsize_t)start, 0}, cnt[2] = {(hsize_t)count, (hsize_t)ncol};
  hsize_t mdims[2] = {(hsize_t)DY_MAX(count, 1), (hsize_t)ncol};

  PetscFunctionBegin;
  DY_H5_CHECK(fspace = H5Screate_simple(rank, dims, NULL));
  DY_H5_CHECK(mspace = H5Screate_simple(rank, mdims, NULL));
  if (count > 0) {
    DY_H5_CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL));
  } else {
    DY_H5_CHECK(H5Sselect_none(fspace));
    DY_H5_CHECK(H5Sselect_none(mspace));
  }
  /* An empty dataset has no storage to write to (the same decision on every rank). */
  if (nrows > 0) DY_H5_CHECK(H5Dwrite(dset, type, mspace, fspace, dxpl, buf));
cleanup:
  dy_h5_close(&mspace, H5Sclose);
  dy_h5_close(&fspace, H5Sclose);
  PetscFunctionReturn(ierr);
}

/* Collective: creates parent/name of shape (nrows, ncol) (ncol == 0: one-dimensional) into *dset. */
static PetscErrorCode dy_h5_create_rows(hid_t parent, const char *name, hid_t type, int64_t nrows, int ncol,
                                        hid_t *dset)
{
  PetscErrorCode ierr = 0;
  hid_t fspace = H5I_INVALID_HID;
  hsize_t dims[2] = {(hsize_t)nrows, (hsize_t)ncol};

  PetscFunctionBegin;
  DY_H5_CHECK(fspace = H5Screate_simple(ncol > 0 ? 2 : 1, dims, NULL));
  DY_H5_CHECK(*dset = H5Dcreate2(parent, name, type, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
cleanup:
  dy_h5_close(&fspace, H5Sclose);
  PetscFunctionReturn(ierr);
}

/* Collective: creates parent/name of shape (nrows, ncol) (ncol == 0: one-dimensional) and writes
 * this rank's rows [start, start + count) from buf (count, ncol), in one collective transfer. */
static PetscErrorCode dy_h5_write_rows(hid_t parent, const char *name, hid_t type, int64_t nrows, int ncol,
                                       int64_t start, int64_t count, const void *buf, hid_t dxpl)
{
  PetscErrorCode ierr = 0;
  hid_t dset = H5I_INVALID_HID;

  PetscFunctionBegin;
  DY_TRY(dy_h5_create_rows(parent, name, type, nrows, ncol, &dset));
  DY_TRY(dy_h5_write_piece(dset, type, nrows, ncol, start, count, buf, dxpl));
cleanup:
  dy_h5_close(&dset, H5Dclose);
  PetscFunctionReturn(ierr);
}

/* Collective: a scalar attribute of `obj`. */
static PetscErrorCode dy_h5_attr(hid_t obj, const char *name, hid_t type, const void *value)
{
  PetscErrorCode ierr = 0;
  hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;

  PetscFunctionBegin;
  DY_H5_CHECK(space = H5Screate(H5S_SCALAR));
  DY_H5_CHECK(attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
  DY_H5_CHECK(H5Awrite(attr, type, value));
cleanup:
  dy_h5_close(&attr, H5Aclose);
  dy_h5_close(&space, H5Sclose);
  PetscFunctionReturn(ierr);
}

/* Collective: a variable-length UTF-8 string attribute of `obj`. */
static PetscErrorCode dy_h5_attr_string(hid_t obj, const char *name, const char *value)
{
  PetscErrorCode ierr = 0;
  hid_t str = H5I_INVALID_HID;

  PetscFunctionBegin;
  DY_H5_CHECK(str = H5Tcopy(H5T_C_S1));
  DY_H5_CHECK(H5Tset_size(str, H5T_VARIABLE));
  DY_H5_CHECK(H5Tset_cset(str, H5T_CSET_UTF8));
  DY_TRY(dy_h5_attr(obj, name, str, &value));
cleanup:
  dy_h5_close(&str, H5Tclose);
  PetscFunctionReturn(ierr);
}

/* Collective: a one-dimensional int attribute of n values (n may be 0). */
static PetscErrorCode dy_h5_attr_ints(hid_t obj, const char *name, int n, const int *values)
{
  PetscErrorCode ierr = 0;
  hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  const hsize_t dims[1] = {(hsize_t)n};

  PetscFunctionBegin;
  DY_H5_CHECK(space = H5Screate_simple(1, dims, NULL));
  DY_H5_CHECK(attr = H5Acreate2(obj, name, H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT));
  if (n > 0) DY_H5_CHECK(H5Awrite(attr, H5T_NATIVE_INT, values));
cleanup:
  dy_h5_close(&attr, H5Aclose);
  dy_h5_close(&space, H5Sclose);
  PetscFunctionReturn(ierr);
}

/* Collective: parent/name of shape dims (ndim axes), written whole by rank 0 from buf. */
static PetscErrorCode dy_h5_write_whole(MPI_Comm comm, hid_t parent, const char *name, hid_t type, int ndim,
                                        const hsize_t *dims, const void *buf, hid_t dxpl)
{
  PetscErrorCode ierr = 0;
  hid_t fspace = H5I_INVALID_HID, dset = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
  hsize_t total = 1;

  PetscFunctionBegin;
  for (int i = 0; i < ndim; i++) total *= dims[i];
  DY_H5_CHECK(fspace = H5Screate_simple(ndim, dims, NULL));
  DY_H5_CHECK(dset = H5Dcreate2(parent, name, type, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  DY_H5_CHECK(mspace = H5Screate_simple(ndim, dims, NULL));
  if (!dy_is_root(comm)) {
    DY_H5_CHECK(H5Sselect_none(fspace));
    DY_H5_CHECK(H5Sselect_none(mspace));
  }
  if (total > 0) DY_H5_CHECK(H5Dwrite(dset, type, mspace, fspace, dxpl, buf));
cleanup:
  dy_h5_close(&mspace, H5Sclose);
  dy_h5_close(&dset, H5Dclose);
  dy_h5_close(&fspace, H5Sclose);
  PetscFunctionReturn(ierr);
}

/* Collective: config, version, ranks and seed as attributes of the file's root group. */
static PetscErrorCode dy_output_attributes(MPI_Comm comm, hid_t file, const DyConfig *cfg)
{
  PetscErrorCode ierr = 0;
  hid_t str = H5I_INVALID_HID;
  const char *config = cfg->effective ? cfg->effective : "", *version = DY_VERSION_STRING;
  int size;
  int64_t seed = cfg->seed;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  DY_H5_CHECK(str = H5Tcopy(H5T_C_S1));
  DY_H5_CHECK(H5Tset_size(str, H5T_VARIABLE));
  DY_H5_CHECK(H5Tset_cset(str, H5T_CSET_UTF8));
  DY_TRY(dy_h5_attr(file, "config", str, &config));
  DY_TRY(dy_h5_attr(file, "version", str, &version));
  DY_TRY(dy_h5_attr(file, "ranks", H5T_NATIVE_INT, &size));
  DY_TRY(dy_h5_attr(file, "seed", H5T_NATIVE_INT64, &seed));
cleanup:
  dy_h5_close(&str, H5Tclose);
  PetscFunctionReturn(ierr);
}

/* Collective: /reconstruction/traj{i} of one block from its latent z (count, d), decoded and
 * written in pieces of `piece` rows into y (piece, Dy), as many on every rank (npieces). */
static PetscErrorCode dy_output_reconstruction(hid_t grec, const char *name, hid_t dxpl, const DyData *data,
                                               const DyModel *model, DyWork *work, const DyTrajBlock *b,
                                               const dy_real *z, int64_t piece, int64_t npieces, dy_real *y)
{
  PetscErrorCode ierr = 0;
  hid_t dset = H5I_INVALID_HID;
  const int d = model->d, Dy = model->Dy;

  PetscFunctionBegin;
  DY_TRY(dy_h5_create_rows(grec, name, DY_H5_REAL, b->frames, Dy, &dset));
  for (int64_t p = 0; p < npieces; p++) {
    const int64_t off = DY_MIN(b->count, p * piece), m = DY_MIN(piece, b->count - off);
    if (m > 0) dy_model_decode(model, work, m, z + (size_t)off * d, y);
    /* The decoder learns standardised targets; results are in the data's own units. */
    if (m > 0 && data->target_mean) dy_standardize_undo(Dy, data->target_mean, data->target_scale, m, y);
    DY_TRY(dy_h5_write_piece(dset, DY_H5_REAL, b->frames, Dy, b->start + off, m, y, dxpl));
  }
cleanup:
  dy_h5_close(&dset, H5Dclose);
  PetscFunctionReturn(ierr);
}

/* Collective: /latent/traj{i} and, when asked, /reconstruction/traj{i} for every trajectory,
 * each rank encoding and writing the frames of its own blocks (without a model: projecting them
 * onto the TICs of data->tica). The reconstruction is decoded and written in pieces of at most
 * about DY_OUTPUT_PIECE_BYTES per rank, a multiple of the decoder's own chunks of 2 batch_size
 * rows, so that its buffer stays small next to the data. */
static PetscErrorCode dy_output_frames(MPI_Comm comm, hid_t file, hid_t dxpl, const DyConfig *cfg,
                                       const DyData *data, const DyModel *model, DyWork *work)
{
  PetscErrorCode ierr = 0;
  hid_t glat = H5I_INVALID_HID, grec = H5I_INVALID_HID;
  dy_real *z = NULL, *y = NULL;
  int64_t most = 0, piece = 1, npieces = 0;
  const int d = model ? model->d : cfg->latent_dim, Dy = model ? model->Dy : 0;
  const int recon = model && cfg->save_reconstruction;

  PetscFunctionBegin;
  for (int i = 0; i < data->ntraj; i++) most = DY_MAX(most, data->block[i].count);
  if (recon) {
    const int64_t chunk = 2 * (int64_t)cfg->batch_size;
    piece = DY_MAX((int64_t)1, DY_OUTPUT_PIECE_BYTES / (int64_t)(Dy * sizeof(dy_real)) / chunk) * chunk;
    npieces = (most + piece - 1) / piece;
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &npieces, 1, MPI_INT64_T, MPI_MAX, comm));
  }
  DY_TRY(PetscMalloc1((size_t)DY_MAX(most, 1) * d, &z));
  if (recon) DY_TRY(PetscMalloc1((size_t)DY_MAX(DY_MIN(most, piece), 1) * Dy, &y));
  DY_H5_CHECK(glat = H5Gcreate2(file, "latent", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (recon) DY_H5_CHECK(grec = H5Gcreate2(file, "reconstruction", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (int i = 0; i < data->ntraj; i++) {
    const DyTrajBlock *b = &data->block[i];
    char name[32];
    snprintf(name, sizeof name, "traj%d", i);
    if (!model) DY_TRY(dy_tica_project(data->tica, d, b->count, b->x, z)); /* model.type = "tica" */
    else if (b->count > 0) dy_model_encode(model, work, b->count, b->x, z);
    DY_TRY(dy_h5_write_rows(glat, name, DY_H5_REAL, b->frames, d, b->start, b->count, z, dxpl));
    if (recon) DY_TRY(dy_output_reconstruction(grec, name, dxpl, data, model, work, b, z, piece, npieces, y));
  }
cleanup:
  dy_h5_close(&grec, H5Gclose);
  dy_h5_close(&glat, H5Gclose);
  PetscFree(y);
  PetscFree(z);
  PetscFunctionReturn(ierr);
}

/* Collective: /clusters and /history; rank 0 holds the (replicated) values and writes them. */
static PetscErrorCode dy_output_tables(MPI_Comm comm, hid_t file, hid_t dxpl, const DyOutputClusters *clusters,
                                       const DyHistory *hist)
{
  PetscErrorCode ierr = 0;
  hid_t gclu = H5I_INVALID_HID, ghist = H5I_INVALID_HID;
  double *col = NULL;
  int64_t *icol = NULL;
  const int root = dy_is_root(comm);
  const int K = clusters ? clusters->K : 0, d = clusters ? clusters->d : 0;
  const int n = hist->n;

  PetscFunctionBegin;
  DY_H5_CHECK(gclu = H5Gcreate2(file, "clusters", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  DY_TRY(dy_h5_write_rows(gclu, "centers", H5T_NATIVE_DOUBLE, K, DY_MAX(d, 1), 0, root ? K : 0, K ? clusters->center : NULL,
                          dxpl));
  DY_TRY(dy_h5_write_rows(gclu, "counts", H5T_NATIVE_INT64, K, 0, 0, root ? K : 0, K ? clusters->count : NULL, dxpl));
  DY_H5_CHECK(ghist = H5Gcreate2(file, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  DY_TRY(PetscMalloc1((size_t)DY_MAX(n, 1), &col));
  DY_TRY(PetscMalloc1((size_t)DY_MAX(n, 1), &icol));
  for (int c = 0; c < DY_NHIST; c++) {
    const int integral = c == DY_HIST_EPOCH || c == DY_HIST_BINS;
    for (int e = 0; e < n; e++) {
      col[e] = hist->rows[(size_t)e * DY_NHIST + c];
      icol[e] = (int64_t)col[e];
    }
    DY_TRY(dy_h5_write_rows(ghist, dy_history_names[c], integral ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, n, 0, 0,
                            root ? n : 0, integral ? (const void *)icol : (const void *)col, dxpl));
  }
cleanup:
  PetscFree(icol);
  PetscFree(col);
  dy_h5_close(&ghist, H5Gclose);
  dy_h5_close(&gclu, H5Gclose);
  PetscFunctionReturn(ierr);
}

/* Collective: /model/, every net's weights in torch layout (W<l> (out, in), b<l> (out), in
 * double) and the input standardisation, so that the latent can be recomputed elsewhere. */
static PetscErrorCode dy_output_model(MPI_Comm comm, hid_t file, hid_t dxpl, const DyData *data, const DyModel *model)
{
  static const char *const net_names[DY_NNETS] = {"encoder", "decoder", "force", "logdiff"};
  PetscErrorCode ierr = 0;
  hid_t gmodel = H5I_INVALID_HID, gnet = H5I_INVALID_HID;
  double *buf = NULL;
  size_t most = (size_t)model->D;
  const hsize_t dimD[1] = {(hsize_t)model->D};

  PetscFunctionBegin;
  for (int k = 0; k < DY_NNETS; k++)
    for (int l = 0; l < model->net[k].nlayer; l++)
      most = DY_MAX(most, (size_t)model->net[k].dims[l] * model->net[k].dims[l + 1]);
  if (model->network == DY_NETWORK_CONV)
    for (int k = 0; k < 2; k++)
      for (int l = 0; l < model->cnn[k].nlayer; l++) most = DY_MAX(most, model->cnn[k].layer[l].nw);
  DY_TRY(PetscMalloc1(most, &buf));
  DY_H5_CHECK(gmodel = H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  DY_TRY(dy_h5_attr(gmodel, "D", H5T_NATIVE_INT, &model->D));
  DY_TRY(dy_h5_attr(gmodel, "Dy", H5T_NATIVE_INT, &model->Dy));
  DY_TRY(dy_h5_attr(gmodel, "latent_dim", H5T_NATIVE_INT, &model->d));
  DY_TRY(dy_h5_attr_string(gmodel, "features", "coordinates"));
  DY_TRY(dy_h5_attr_ints(gmodel, "atoms", 0, NULL));
  for (int k = 0; k < DY_NNETS; k++) {
    const DyMlp *net = &model->net[k];
    const dy_real *p = model->params + net->offset;
    DY_H5_CHECK(gnet = H5Gcreate2(gmodel, net_names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (model->network == DY_NETWORK_CONV && k <= DY_NET_DECODER) {
      /* the image nets (dy_convnet.h): layer l's weight W<l> in torch's shape, its bias b<l> */
      const DyCnn *cnn = &model->cnn[k];
      DY_TRY(dy_h5_attr_string(gnet, "network", "conv"));
      DY_TRY(dy_h5_attr(gnet, "layers", H5T_NATIVE_INT, &cnn->nlayer));
      for (int l = 0; l < cnn->nlayer; l++) {
        const DyCnnLayer *L = &cnn->layer[l];
        const DyConv *c = &L->conv;
        const hsize_t lin[2] = {(hsize_t)L->out, (hsize_t)L->in}, nb = (hsize_t)L->nb;
        const hsize_t conv[4] = {(hsize_t)(c->transposed ? c->cin : c->cout), (hsize_t)(c->transposed ? c->cout : c->cin),
                                 (hsize_t)c->k, (hsize_t)c->k};
        char name[16];
        for (size_t i = 0; i < L->nw; i++) buf[i] = (double)p[L->woff + i];
        snprintf(name, sizeof name, "W%d", l);
        DY_TRY(dy_h5_write_whole(comm, gnet, name, H5T_NATIVE_DOUBLE, c->k ? 4 : 2, c->k ? conv : lin, buf, dxpl));
        for (size_t i = 0; i < L->nb; i++) buf[i] = (double)p[L->woff + L->nw + i];
        snprintf(name, sizeof name, "b%d", l);
        DY_TRY(dy_h5_write_whole(comm, gnet, name, H5T_NATIVE_DOUBLE, 1, &nb, buf, dxpl));
      }
      dy_h5_close(&gnet, H5Gclose);
      continue;
    }
    DY_TRY(dy_h5_attr_string(gnet, "activation", net->act == DY_ACT_TANH ? "tanh" : "relu"));
    DY_TRY(dy_h5_attr(gnet, "layers", H5T_NATIVE_INT, &net->nlayer));
    for (int l = 0; l < net->nlayer; l++) {
      const int in = net->dims[l], out = net->dims[l + 1];
      const hsize_t dims[2] = {(hsize_t)out, (hsize_t)in};
      char name[16];
      for (size_t i = 0; i < (size_t)out * in; i++) buf[i] = (double)p[i];
      snprintf(name, sizeof name, "W%d", l);
      DY_TRY(dy_h5_write_whole(comm, gnet, name, H5T_NATIVE_DOUBLE, 2, dims, buf, dxpl));
      p += (size_t)out * in;
      for (int i = 0; i < out; i++) buf[i] = (double)p[i];
      snprintf(name, sizeof name, "b%d", l);
      DY_TRY(dy_h5_write_whole(comm, gnet, name, H5T_NATIVE_DOUBLE, 1, dims, buf, dxpl));
      p += out;
    }
    dy_h5_close(&gnet, H5Gclose);
  }
  for (int i = 0; i < model->D; i++) buf[i] = data->input_mean ? data->input_mean[i] : 0.0;
  DY_TRY(dy_h5_write_whole(comm, gmodel, "input_mean", H5T_NATIVE_DOUBLE, 1, dimD, buf, dxpl));
  for (int i = 0; i < model->D; i++) buf[i] = data->input_scale ? data->input_scale[i] : 1.0;
  DY_TRY(dy_h5_write_whole(comm, gmodel, "input_scale", H5T_NATIVE_DOUBLE, 1, dimD, buf, dxpl));
cleanup:
  dy_h5_close(&gnet, H5Gclose);
  dy_h5_close(&gmodel, H5Gclose);
  PetscFree(buf);
  PetscFunctionReturn(ierr);
}

/* Collective: /fields/ (SPEC section 12) from fields computed already (the same on every rank). */
static PetscErrorCode dy_output_fields(MPI_Comm comm, hid_t file, hid_t dxpl, const DyConfig *cfg, const DyFields *f)
{
  PetscErrorCode ierr = 0;
  hid_t g = H5I_INVALID_HID;
  hsize_t dims[DY_FIELDS_MAX_DIM + 1];
  const int d = f->d, min_count = DY_FIELDS_WELL_SAMPLED;
  const int64_t cells = f->well_sampled;

  PetscFunctionBegin;
  DY_H5_CHECK(g = H5Gcreate2(file, "fields", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (int j = 0; j < d; j++) {
    char name[16];
    snprintf(name, sizeof name, "axis%d", j);
    dims[j] = (hsize_t)f->n[j];
    DY_TRY(dy_h5_write_whole(comm, g, name, H5T_NATIVE_DOUBLE, 1, &dims[j], f->axis[j], dxpl));
  }
  dims[d] = (hsize_t)d;
  DY_TRY(dy_h5_write_whole(comm, g, "force", H5T_NATIVE_DOUBLE, d + 1, dims, f->force, dxpl));
  DY_TRY(dy_h5_write_whole(comm, g, "diffusion", H5T_NATIVE_DOUBLE, d + 1, dims, f->diffusion, dxpl));
  DY_TRY(dy_h5_write_whole(comm, g, "count", H5T_NATIVE_INT64, d, dims, f->count, dxpl));
  DY_TRY(dy_h5_write_whole(comm, g, "free_energy_hist", H5T_NATIVE_DOUBLE, d, dims, f->free_energy_hist, dxpl));
  DY_TRY(dy_h5_write_whole(comm, g, "free_energy_force", H5T_NATIVE_DOUBLE, d, dims, f->free_energy_force, dxpl));
  DY_TRY(dy_h5_attr(g, "rms_difference_kT", H5T_NATIVE_DOUBLE, &f->rms_difference_kT));
  DY_TRY(dy_h5_attr(g, "well_sampled_cells", H5T_NATIVE_INT64, &cells));
  DY_TRY(dy_h5_attr(g, "min_count", H5T_NATIVE_INT, &min_count));
  DY_TRY(dy_h5_attr(g, "margin", H5T_NATIVE_DOUBLE, &cfg->margin));
  DY_TRY(dy_h5_attr_string(g, "force_weight", f->weight == DY_FIELDS_WEIGHT_NONE ? "none" : "density"));
  DY_TRY(dy_h5_attr(g, "force_refit_pairs", H5T_NATIVE_INT64, &f->refit_pairs));
  DY_TRY(dy_h5_attr(g, "iterations", H5T_NATIVE_INT, &f->iterations));
cleanup:
  dy_h5_close(&g, H5Gclose);
  PetscFunctionReturn(ierr);
}

/* Collective: the fields of the latent of this rank's frames; prints one summary line. */
static PetscErrorCode dy_output_compute_fields(MPI_Comm comm, const DyConfig *cfg, const DyData *data,
                                               const DyModel *model, DyWork *work, DyFields *fields)
{
  const int d = model->d;
  const DyFieldsOptions opt = {
      .grid = cfg->grid, .margin = cfg->margin, .weight = cfg->force_weight, .refit = cfg->force_refit};
  const DyPairs *pairs = &data->train;
  int64_t n = 0, npair = opt.refit ? pairs->n : 0;
  dy_real *z, *z0, *z1;

  PetscFunctionBegin;
  for (int i = 0; i < data->ntraj; i++) n += data->block[i].count;
  PetscCall(PetscMalloc3((size_t)DY_MAX(n, 1) * d, &z, (size_t)DY_MAX(npair, 1) * d, &z0,
                         (size_t)DY_MAX(npair, 1) * d, &z1));
  n = 0;
  for (int i = 0; i < data->ntraj; i++) {
    const DyTrajBlock *b = &data->block[i];
    if (b->count > 0) dy_model_encode(model, work, b->count, b->x, z + (size_t)n * d);
    n += b->count;
  }
  /* The latent of the training pairs, for the refit of the force's output layer: one row at a
   * time, because the encoder's kernels may round a row differently by its place in a block, and
   * the blocks here depend on the number of ranks; that alone moved the refitted force by 4e-9
   * relative between 1 and 4 ranks. (--analyze of the three-well example, 160,000 pairs, one
   * rank: 1.6-1.8 s with the refit, 0.5 s without.) */
  for (int64_t p = 0; p < npair; p++) {
    dy_model_encode(model, work, 1, pairs->x0[p], z0 + (size_t)p * d);
    dy_model_encode(model, work, 1, pairs->x1[p], z1 + (size_t)p * d);
  }
  PetscErrorCode ierr = dy_fields_compute(comm, model, work, n, z, npair, z0, z1, &opt, fields);
  PetscCall(PetscFree3(z, z0, z1));
  PetscCall(ierr);
  if (dy_is_root(comm)) {
    char refit[96] = "output layer as trained";
    if (fields->refit_pairs > 0)
      snprintf(refit, sizeof refit, "output layer refitted on %lld pairs, largest change %.3g",
               (long long)fields->refit_pairs, fields->refit_change);
    char compare[96];
    if (fields->well_sampled > 0)
      snprintf(compare, sizeof compare, "RMS %.3f kT over %lld cells with >= %d frames", fields->rms_difference_kT,
               (long long)fields->well_sampled, DY_FIELDS_WELL_SAMPLED);
    else snprintf(compare, sizeof compare, "no cell holds %d frames to compare", DY_FIELDS_WELL_SAMPLED);
    printf("# fields: grid of %d^%d points; free energy from the force (%s; %s fit) against the histogram: "
           "%s (%d CG iterations)\n",
           cfg->grid, d, refit, cfg->force_weight == DY_FIELDS_WEIGHT_NONE ? "unweighted" : "density-weighted", compare,
           fields->iterations);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

/* Collective: /tica/ of SPEC section 10: mean (D), eigenvalues (k), timescales (k) from rank 0,
 * eigenvectors (D, k) each rank its rows; attributes lag, epsilon and kept (components left
 * after epsilon). */
static PetscErrorCode dy_output_tica(MPI_Comm comm, hid_t file, hid_t dxpl, const DyTica *tica)
{
  PetscErrorCode ierr = 0;
  hid_t g = H5I_INVALID_HID;
  double *rows = NULL;
  int64_t row0 = 0, nrows = 0;
  const int root = dy_is_root(comm), k = tica->k;

  PetscFunctionBegin;
  DY_TRY(dy_tica_eigenvector_rows(tica, &row0, &nrows, &rows));
  DY_H5_CHECK(g = H5Gcreate2(file, "tica", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  DY_TRY(dy_h5_attr(g, "lag", H5T_NATIVE_INT, &tica->lag));
  DY_TRY(dy_h5_attr(g, "epsilon", H5T_NATIVE_DOUBLE, &tica->epsilon));
  DY_TRY(dy_h5_attr(g, "kept", H5T_NATIVE_INT, &tica->m));
  DY_TRY(dy_h5_write_rows(g, "mean", H5T_NATIVE_DOUBLE, tica->D, 0, 0, root ? tica->D : 0, tica->mean, dxpl));
  DY_TRY(dy_h5_write_rows(g, "eigenvalues", H5T_NATIVE_DOUBLE, k, 0, 0, root ? k : 0, tica->eigenvalues, dxpl));
  DY_TRY(dy_h5_write_rows(g, "timescales", H5T_NATIVE_DOUBLE, k, 0, 0, root ? k : 0, tica->timescales, dxpl));
  DY_TRY(dy_h5_write_rows(g, "eigenvectors", H5T_NATIVE_DOUBLE, tica->D, k, row0, nrows, rows, dxpl));
cleanup:
  dy_h5_close(&g, H5Gclose);
  PetscFree(rows);
  PetscFunctionReturn(ierr);
}

/* Collective: the whole file at `path`; closes it before returning, also on failure. */
static PetscErrorCode dy_output_file(MPI_Comm comm, const char *path, const DyConfig *cfg, const DyData *data,
                                     const DyModel *model, DyWork *work, const DyOutputClusters *clusters,
                                     const DyHistory *hist, const DyFields *fields)
{
  PetscErrorCode ierr = 0;
  hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;

  PetscFunctionBegin;
  DY_H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS));
  DY_H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
  DY_H5_CHECK(file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
  DY_H5_CHECK(dxpl = H5Pcreate(H5P_DATASET_XFER));
  DY_H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
  DY_TRY(dy_output_attributes(comm, file, cfg));
  DY_TRY(dy_output_frames(comm, file, dxpl, cfg, data, model, work));
  DY_TRY(dy_output_tables(comm, file, dxpl, clusters, hist));
  if (model) DY_TRY(dy_output_model(comm, file, dxpl, data, model));
  if (fields) DY_TRY(dy_output_fields(comm, file, dxpl, cfg, fields));
  if (data->tica) DY_TRY(dy_output_tica(comm, file, dxpl, data->tica));
cleanup:
  dy_h5_close(&dxpl, H5Pclose);
  if (file >= 0 && H5Fclose(file) < 0 && !ierr)
    ierr = PetscError(PETSC_COMM_SELF, __LINE__, PETSC_FUNCTION_NAME, __FILE__, PETSC_ERR_LIB, PETSC_ERROR_INITIAL,
                      "HDF5: closing '%s' failed", path);
  dy_h5_close(&fapl, H5Pclose);
  PetscFunctionReturn(ierr);
}

PetscErrorCode dy_output_write_results(MPI_Comm comm, const DyConfig *cfg, const DyData *data, const DyModel *model,
                                       DyWork *work, const DyOutputClusters *clusters, const DyHistory *hist,
                                       int with_fields)
{
  char final[DY_PATH_MAX], tmp[DY_PATH_MAX + 8], msg[2 * DY_PATH_MAX + 128] = "";
  int bad = 0;
  DyFields fields;

  PetscFunctionBegin;
  memset(&fields, 0, sizeof fields);
  if (with_fields && model->d > DY_FIELDS_MAX_DIM && dy_is_root(comm)) {
    printf("# fields: skipped (they are computed for model.latent_dim 1 to %d, this model has %d)\n",
           DY_FIELDS_MAX_DIM, model->d);
    fflush(stdout);
  }
  with_fields = with_fields && model->d <= DY_FIELDS_MAX_DIM;
  if (with_fields) PetscCall(dy_output_compute_fields(comm, cfg, data, model, work, &fields));
  PetscCheck(snprintf(final, sizeof final, "%s/results.h5", cfg->dir) < (int)sizeof final, comm, DY_ERR_INPUT,
             "output.dir '%s' is too long", cfg->dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", final);
  PetscCall(dy_output_mkdir(comm, cfg->dir));
  PetscErrorCode ierr = dy_output_file(comm, tmp, cfg, data, model, work, clusters, hist, with_fields ? &fields : NULL);
  dy_fields_free(&fields);
  PetscCall(ierr);
  /* Every rank has closed the file: only now is it complete, and the rename makes it appear
   * whole or not at all. */
  PetscCallMPI(MPI_Barrier(comm));
  if (dy_is_root(comm) && rename(tmp, final) != 0) {
    bad = 1;
    snprintf(msg, sizeof msg, "cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
  }
  PetscCall(dy_agree_error(comm, bad, PETSC_ERR_FILE_WRITE, msg));
  PetscFunctionReturn(0);
}
