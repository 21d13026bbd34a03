/* Checkpoint files: see dy_checkpoint.h. Writes are collective Parallel HDF5; verification and
 * reads go through rank 0 (checkpoints are small next to the data) and are broadcast. */
#include "io/dy_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DY_CKPT_NAME "checkpoint.h5"
#define DY_CKPT_PREV "checkpoint.prev.h5"
#define DY_CKPT_TMP "checkpoint.h5.tmp"
#define DY_CKPT_MAXSETS 256
#define DY_CKPT_MSG 9000

typedef struct {
  char name[128];   /* dataset name (no leading '/') */
  uint64_t digest;  /* digest of its bytes */
} DyCkptEntry;

struct DyCkptWriter {
  MPI_Comm comm;                         /* communicator of the writing ranks */
  int rank, size;                        /* in comm */
  char dir[4096];                        /* output folder */
  hid_t file;                            /* the temporary file */
  int nentries;                          /* datasets and attributes so far */
  DyCkptEntry entries[DY_CKPT_MAXSETS];  /* their digests, for the root digest */
};

struct DyCkptReader {
  MPI_Comm comm;  /* communicator of the reading ranks */
  int rank;       /* in comm */
  hid_t file;     /* opened read-only on rank 0 only */
};

uint64_t dy_digest(uint64_t h, const void *data, size_t nbytes)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < nbytes; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static hid_t dy_ckpt_h5type(DyCkptType t)
{
  switch (t) {
  case DY_CKPT_DOUBLE: return H5T_NATIVE_DOUBLE;
  case DY_CKPT_FLOAT: return H5T_NATIVE_FLOAT;
  case DY_CKPT_INT64: return H5T_NATIVE_INT64;
  default: return H5T_NATIVE_UINT8;
  }
}

static size_t dy_ckpt_size(DyCkptType t)
{
  static const size_t sizes[] = {sizeof(double), sizeof(float), sizeof(int64_t), 1};
  return sizes[t];
}

static void dy_ckpt_path(char *out, size_t n, const char *dir, const char *file)
{
  snprintf(out, n, "%s/%s", dir, file);
}

static PetscErrorCode dy_ckpt_add_entry(DyCkptWriter *w, const char *name, uint64_t digest)
{
  PetscFunctionBegin;
  PetscCheck(w->nentries < DY_CKPT_MAXSETS, w->comm, PETSC_ERR_PLIB, "checkpoint: more than %d arrays", DY_CKPT_MAXSETS);
  PetscCheck(strlen(name) < sizeof w->entries[0].name, w->comm, PETSC_ERR_PLIB, "checkpoint: name too long: %s", name);
  snprintf(w->entries[w->nentries].name, sizeof w->entries[0].name, "%s", name);
  w->entries[w->nentries++].digest = digest;
  PetscFunctionReturn(0);
}

/* Writes an attribute of obj: scalar uint64 or int64, same value on every rank. */
static PetscErrorCode dy_ckpt_attr64(MPI_Comm comm, hid_t obj, const char *name, hid_t type, const void *value)
{
  hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  PetscFunctionBegin;
  space = H5Screate(H5S_SCALAR);
  attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  PetscCheck(attr >= 0 && H5Awrite(attr, type, value) >= 0, comm, PETSC_ERR_FILE_WRITE, "checkpoint: cannot write attribute %s",
             name);
  H5Aclose(attr);
  H5Sclose(space);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_write_begin(MPI_Comm comm, const char *dir, DyCkptWriter **w)
{
  char path[4200];
  hid_t fapl = H5I_INVALID_HID;
  PetscFunctionBegin;
  PetscCall(dy_ckpt_wait(comm)); /* the temporary name is free again */
  PetscCall(PetscCalloc1(1, w));
  (*w)->comm = comm;
  (*w)->file = H5I_INVALID_HID;
  PetscCallMPI(MPI_Comm_rank(comm, &(*w)->rank));
  PetscCallMPI(MPI_Comm_size(comm, &(*w)->size));
  snprintf((*w)->dir, sizeof (*w)->dir, "%s", dir);
  dy_ckpt_path(path, sizeof path, dir, DY_CKPT_TMP);
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  /* Many small arrays: metadata written collectively in few large operations, in the newest
   * compact format, costs far less than one small independent write per object. */
  H5Pset_coll_metadata_write(fapl, 1);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  (*w)->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  PetscCheck((*w)->file >= 0, comm, PETSC_ERR_FILE_OPEN, "checkpoint: cannot create %s", path);
  PetscFunctionReturn(0);
}

/* Creates dataset name of dims (rows, cols) (cols == 0: 1-D), writes this rank's rows
 * [row0, row0 + nrows) collectively and attaches the digest (the same value on every rank). */
static PetscErrorCode dy_ckpt_write_rows(DyCkptWriter *w, const char *name, DyCkptType type, hsize_t rows, hsize_t cols,
                                         hsize_t row0, hsize_t nrows, const void *data, uint64_t digest)
{
  hsize_t dims[2] = {rows, cols ? cols : 1}, start[2] = {row0, 0}, count[2] = {nrows, cols ? cols : 1};
  const int nd = cols ? 2 : 1;
  hid_t space = H5I_INVALID_HID, dset = H5I_INVALID_HID, mem = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  herr_t st = -1;
  PetscFunctionBegin;
  space = H5Screate_simple(nd, dims, NULL);
  dset = H5Dcreate2(w->file, name, dy_ckpt_h5type(type), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (dset >= 0) {
    mem = H5Screate_simple(nd, count, NULL);
    if (nrows) H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    else {
      H5Sselect_none(space);
      H5Sselect_none(mem);
    }
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    /* Nothing to transfer for an empty array (and MPI-IO refuses a collective write of nothing). */
    st = rows && dims[1] ? H5Dwrite(dset, dy_ckpt_h5type(type), mem, space, dxpl, data) : 0;
    H5Pclose(dxpl);
    H5Sclose(mem);
  }
  H5Sclose(space);
  PetscCheck(st >= 0, w->comm, PETSC_ERR_FILE_WRITE, "checkpoint: cannot write dataset %s", name);
  PetscCall(dy_ckpt_attr64(w->comm, dset, "digest", H5T_NATIVE_UINT64, &digest));
  H5Dclose(dset);
  PetscCall(dy_ckpt_add_entry(w, name, digest));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_write_replicated(DyCkptWriter *w, const char *name, DyCkptType type, size_t n, const void *data)
{
  PetscFunctionBegin;
  const uint64_t digest = dy_digest(DY_DIGEST_INIT, data, n * dy_ckpt_size(type));
  PetscCall(dy_ckpt_write_rows(w, name, type, n, 0, 0, w->rank == 0 ? n : 0, data, digest));
  PetscFunctionReturn(0);
}

/* Digest of a distributed array: the digest of its blocks' digests in rank order, so that a reader
 * at any rank count can recompute it from the stored offsets. */
PetscErrorCode dy_ckpt_write_distributed(DyCkptWriter *w, const char *name, DyCkptType type, size_t nrows, size_t rowlen,
                                         const void *data)
{
  int64_t *offsets = NULL, mine = (int64_t)nrows;
  uint64_t *digests = NULL, d;
  char oname[160];
  PetscFunctionBegin;
  PetscCall(PetscMalloc2(w->size + 1, &offsets, w->size, &digests));
  offsets[0] = 0;
  PetscCallMPI(MPI_Allgather(&mine, 1, MPI_INT64_T, offsets + 1, 1, MPI_INT64_T, w->comm));
  for (int r = 0; r < w->size; r++) offsets[r + 1] += offsets[r];
  d = dy_digest(DY_DIGEST_INIT, data, nrows * rowlen * dy_ckpt_size(type));
  PetscCallMPI(MPI_Allgather(&d, 1, MPI_UINT64_T, digests, 1, MPI_UINT64_T, w->comm));
  d = dy_digest(DY_DIGEST_INIT, digests, sizeof(uint64_t) * (size_t)w->size);
  PetscCall(dy_ckpt_write_rows(w, name, type, (hsize_t)offsets[w->size], rowlen, (hsize_t)offsets[w->rank], nrows, data, d));
  snprintf(oname, sizeof oname, "%s.offsets", name);
  PetscCall(dy_ckpt_write_replicated(w, oname, DY_CKPT_INT64, (size_t)w->size + 1, offsets));
  PetscCall(PetscFree2(offsets, digests));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_write_int(DyCkptWriter *w, const char *name, int64_t value)
{
  char key[160];
  PetscFunctionBegin;
  PetscCall(dy_ckpt_attr64(w->comm, w->file, name, H5T_NATIVE_INT64, &value));
  snprintf(key, sizeof key, "@%s", name);
  PetscCall(dy_ckpt_add_entry(w, key, dy_digest(DY_DIGEST_INIT, &value, sizeof value)));
  PetscFunctionReturn(0);
}

static int dy_ckpt_entry_cmp(const void *a, const void *b)
{
  return strcmp(((const DyCkptEntry *)a)->name, ((const DyCkptEntry *)b)->name);
}

/* The root digest covers every name with its digest, in name order, so a missing, extra or
 * renamed array changes it. */
static uint64_t dy_ckpt_root_digest(DyCkptEntry *e, int n)
{
  uint64_t h = DY_DIGEST_INIT;
  qsort(e, (size_t)n, sizeof *e, dy_ckpt_entry_cmp);
  for (int i = 0; i < n; i++) {
    h = dy_digest(h, e[i].name, strlen(e[i].name) + 1);
    h = dy_digest(h, &e[i].digest, sizeof e[i].digest);
  }
  return h;
}

/* The names of all arrays, one per line, as a string attribute: a loader can then name an array
 * that went missing. */
static PetscErrorCode dy_ckpt_write_names(DyCkptWriter *w)
{
  char *list = NULL;
  size_t len = 1;
  hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  herr_t st = -1;
  PetscFunctionBegin;
  for (int i = 0; i < w->nentries; i++) len += strlen(w->entries[i].name) + 1;
  PetscCall(PetscCalloc1(len, &list));
  for (int i = 0; i < w->nentries; i++)
    strcat(strcat(list, w->entries[i].name), "\n");
  type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, len);
  space = H5Screate(H5S_SCALAR);
  attr = H5Acreate2(w->file, "arrays", type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr >= 0) st = H5Awrite(attr, type, list);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  PetscCall(PetscFree(list));
  PetscCheck(st >= 0, w->comm, PETSC_ERR_FILE_WRITE, "checkpoint: cannot write the list of arrays");
  PetscFunctionReturn(0);
}

/* fsync a file or a folder by path; returns errno or 0. */
static int dy_fsync_path(const char *path)
{
  int fd = open(path, O_RDONLY), err = 0;
  if (fd < 0) return errno;
  if (fsync(fd) && errno != EINVAL) err = errno; /* some file systems cannot sync folders */
  close(fd);
  return err;
}

/* The last step of a commit (sync the data, rename into place, sync the folder) runs on rank 0
 * in a background thread, off the training's critical path; a checkpoint counts only once it is
 * renamed, so a crash meanwhile leaves the previous one in place. At most one commit is pending:
 * the next checkpoint, and the end of the run, wait for it (dy_ckpt_wait). */
typedef struct {
  pthread_t thread;              /* the committing thread */
  int pending;                   /* a thread was started and not joined */
  char tmp[4200], cur[4200], prev[4200], dir[4096];
  int err;                       /* errno of the failed step, 0 when done */
  char msg[DY_CKPT_MSG];         /* what failed */
} DyCkptCommit;

static DyCkptCommit dy_commit;

static void *dy_ckpt_commit_thread(void *arg)
{
  DyCkptCommit *c = arg;
  int err;
  /* Data on disk first, then the renames, then the folder entry. */
  if ((err = dy_fsync_path(c->tmp))) snprintf(c->msg, sizeof c->msg, "fsync %s: %s", c->tmp, strerror(err));
  else if (access(c->cur, F_OK) == 0 && rename(c->cur, c->prev))
    snprintf(c->msg, sizeof c->msg, "rename %s: %s", c->cur, strerror(err = errno));
  else if (rename(c->tmp, c->cur)) snprintf(c->msg, sizeof c->msg, "rename %s: %s", c->tmp, strerror(err = errno));
  else dy_fsync_path(c->dir);
  c->err = err;
  return NULL;
}

PetscErrorCode dy_ckpt_wait(MPI_Comm comm)
{
  int err = 0;
  char msg[DY_CKPT_MSG] = "";
  PetscFunctionBegin;
  if (dy_commit.pending) {
    pthread_join(dy_commit.thread, NULL);
    dy_commit.pending = 0;
    err = dy_commit.err;
    memcpy(msg, dy_commit.msg, sizeof msg);
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &err, 1, MPI_INT, MPI_MAX, comm));
  if (err) {
    PetscCallMPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    SETERRQ(comm, PETSC_ERR_FILE_WRITE, "checkpoint: %s", msg);
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_write_commit(DyCkptWriter *w)
{
  int64_t version = DY_CKPT_FORMAT_VERSION, ranks = w->size;
  uint64_t root;
  int err = 0;
  PetscFunctionBegin;
  PetscCall(dy_ckpt_attr64(w->comm, w->file, "format_version", H5T_NATIVE_INT64, &version));
  PetscCall(dy_ckpt_attr64(w->comm, w->file, "ranks", H5T_NATIVE_INT64, &ranks));
  root = dy_ckpt_root_digest(w->entries, w->nentries);
  PetscCall(dy_ckpt_attr64(w->comm, w->file, "digest", H5T_NATIVE_UINT64, &root));
  PetscCall(dy_ckpt_write_names(w));
  PetscCheck(H5Fclose(w->file) >= 0, w->comm, PETSC_ERR_FILE_WRITE, "checkpoint: closing %s/%s failed", w->dir, DY_CKPT_TMP);
  w->file = H5I_INVALID_HID;
  if (w->rank == 0) {
    DyCkptCommit *c = &dy_commit;
    memset(c, 0, sizeof *c);
    dy_ckpt_path(c->tmp, sizeof c->tmp, w->dir, DY_CKPT_TMP);
    dy_ckpt_path(c->cur, sizeof c->cur, w->dir, DY_CKPT_NAME);
    dy_ckpt_path(c->prev, sizeof c->prev, w->dir, DY_CKPT_PREV);
    snprintf(c->dir, sizeof c->dir, "%s", w->dir);
    err = pthread_create(&c->thread, NULL, dy_ckpt_commit_thread, c);
    if (!err) c->pending = 1;
    else dy_ckpt_commit_thread(c); /* no thread to be had: commit in line */
  }
  PetscCall(PetscFree(w));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_write_abort(DyCkptWriter *w)
{
  char tmp[4200];
  PetscFunctionBegin;
  if (w->file >= 0) H5Fclose(w->file);
  dy_ckpt_path(tmp, sizeof tmp, w->dir, DY_CKPT_TMP);
  PetscCallMPI(MPI_Barrier(w->comm));
  if (w->rank == 0) unlink(tmp);
  PetscCall(PetscFree(w));
  PetscFunctionReturn(0);
}

/* ---- reading --------------------------------------------------------------------------------- */

/* Reads a whole dataset into a new buffer as bytes of its native type. */
static int dy_ckpt_read_all(hid_t file, const char *name, unsigned char **buf, size_t *nbytes)
{
  hid_t dset = H5Dopen2(file, name, H5P_DEFAULT), space = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mt;
  hsize_t dims[2] = {1, 1};
  int nd, ok = 0;
  if (dset < 0) return 0;
  space = H5Dget_space(dset);
  ftype = H5Dget_type(dset);
  nd = H5Sget_simple_extent_ndims(space);
  if (nd >= 1 && nd <= 2 && H5Sget_simple_extent_dims(space, dims, NULL) >= 0) {
    mt = H5Tget_native_type(ftype, H5T_DIR_ASCEND);
    *nbytes = (size_t)dims[0] * (nd == 2 ? (size_t)dims[1] : 1) * H5Tget_size(mt);
    *buf = malloc(*nbytes ? *nbytes : 1);
    ok = *buf && (*nbytes == 0 || H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) >= 0);
    if (!ok) {
      free(*buf);
      *buf = NULL;
    }
    H5Tclose(mt);
  }
  H5Tclose(ftype);
  H5Sclose(space);
  H5Dclose(dset);
  return ok;
}

static int dy_ckpt_read_attr(hid_t obj, const char *name, hid_t type, void *value)
{
  hid_t a;
  int ok;
  if (H5Aexists(obj, name) <= 0) return 0;
  a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return 0;
  ok = H5Aread(a, type, value) >= 0;
  H5Aclose(a);
  return ok;
}

/* Recomputes the digest of one array as the writer did; *digest gets the stored one. */
static int dy_ckpt_verify_dataset(hid_t file, const char *name, uint64_t *digest, char *msg, size_t msglen)
{
  unsigned char *buf = NULL, *obuf = NULL;
  size_t nbytes = 0, obytes = 0;
  uint64_t stored = 0, d;
  char oname[160];
  hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
  const int has_digest = dset >= 0 && dy_ckpt_read_attr(dset, "digest", H5T_NATIVE_UINT64, &stored);
  if (dset >= 0) H5Dclose(dset);
  if (!has_digest) {
    snprintf(msg, msglen, "dataset /%s has no digest", name);
    return 0;
  }
  if (!dy_ckpt_read_all(file, name, &buf, &nbytes)) {
    snprintf(msg, msglen, "dataset /%s cannot be read (damaged or truncated)", name);
    return 0;
  }
  snprintf(oname, sizeof oname, "%s.offsets", name);
  if (H5Lexists(file, oname, H5P_DEFAULT) > 0) {
    /* distributed: the digest of the blocks' digests */
    if (!dy_ckpt_read_all(file, oname, &obuf, &obytes) || obytes < 2 * sizeof(int64_t)) {
      snprintf(msg, msglen, "dataset /%s cannot be read (damaged or truncated)", oname);
      free(buf);
      free(obuf);
      return 0;
    }
    const int64_t *off = (const int64_t *)obuf;
    const size_t nblocks = obytes / sizeof(int64_t) - 1, rows = (size_t)off[nblocks];
    const size_t rowbytes = rows ? nbytes / rows : 0;
    uint64_t *bd = calloc(nblocks, sizeof(uint64_t));
    int sane = bd != NULL && off[0] == 0 && rows * rowbytes == nbytes;
    for (size_t b = 0; b < nblocks && sane; b++) {
      sane = off[b] <= off[b + 1] && (size_t)off[b + 1] <= rows;
      if (sane) bd[b] = dy_digest(DY_DIGEST_INIT, buf + (size_t)off[b] * rowbytes, (size_t)(off[b + 1] - off[b]) * rowbytes);
    }
    d = sane ? dy_digest(DY_DIGEST_INIT, bd, sizeof(uint64_t) * nblocks) : ~stored;
    free(bd);
    free(obuf);
  } else d = dy_digest(DY_DIGEST_INIT, buf, nbytes);
  free(buf);
  *digest = stored;
  if (d != stored) {
    snprintf(msg, msglen, "dataset /%s fails its digest (damaged)", name);
    return 0;
  }
  return 1;
}

/* Rank 0 only: the file's list of arrays and integer attributes (attribute "arrays"), each checked
 * against its digest, and the list itself against the root digest. */
static int dy_ckpt_verify_listed(hid_t file, const char *path, uint64_t root, char *msg)
{
  DyCkptEntry *e = calloc(DY_CKPT_MAXSETS, sizeof *e);
  hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID;
  char *list = NULL;
  int n = 0, ok = 0;
  if (!e || H5Aexists(file, "arrays") <= 0 || (attr = H5Aopen(file, "arrays", H5P_DEFAULT)) < 0) {
    snprintf(msg, DY_CKPT_MSG, "%s: no list of arrays (incomplete checkpoint)", path);
    free(e);
    return 0;
  }
  type = H5Aget_type(attr);
  list = calloc(H5Tget_size(type) + 1, 1);
  if (!list || H5Aread(attr, type, list) < 0) snprintf(msg, DY_CKPT_MSG, "%s: the list of arrays cannot be read", path);
  else {
    ok = 1;
    for (char *name = strtok(list, "\n"); name && ok && n < DY_CKPT_MAXSETS; name = strtok(NULL, "\n")) {
      snprintf(e[n].name, sizeof e[0].name, "%s", name);
      if (name[0] == '@') {
        int64_t val;
        ok = dy_ckpt_read_attr(file, name + 1, H5T_NATIVE_INT64, &val);
        if (!ok) snprintf(msg, DY_CKPT_MSG, "%s: attribute %s is missing", path, name + 1);
        e[n].digest = dy_digest(DY_DIGEST_INIT, &val, sizeof val);
      } else if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        snprintf(msg, DY_CKPT_MSG, "%s: dataset /%s is missing", path, name);
        ok = 0;
      } else {
        char why[512];
        ok = dy_ckpt_verify_dataset(file, name, &e[n].digest, why, sizeof why);
        if (!ok) snprintf(msg, DY_CKPT_MSG, "%s: %s", path, why);
      }
      n++;
    }
    if (ok && dy_ckpt_root_digest(e, n) != root) {
      snprintf(msg, DY_CKPT_MSG, "%s: the list of arrays does not match the file's digest (damaged)", path);
      ok = 0;
    }
  }
  free(list);
  H5Tclose(type);
  H5Aclose(attr);
  free(e);
  return ok;
}

/* Rank 0 only: checks one file whole. Returns 1 when usable; else msg says why. */
static int dy_ckpt_verify_file(const char *path, char *msg)
{
  hid_t file;
  int64_t version = 0;
  uint64_t root = 0;
  int ok = 0;
  msg[0] = 0;
  if (access(path, F_OK)) {
    snprintf(msg, DY_CKPT_MSG, "%s: no such file", path);
    return 0;
  }
  file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    snprintf(msg, DY_CKPT_MSG, "%s: not a readable HDF5 file (truncated or damaged)", path);
    return 0;
  }
  if (!dy_ckpt_read_attr(file, "format_version", H5T_NATIVE_INT64, &version) ||
      !dy_ckpt_read_attr(file, "digest", H5T_NATIVE_UINT64, &root))
    snprintf(msg, DY_CKPT_MSG, "%s: no format version or digest (incomplete checkpoint)", path);
  else if (version != DY_CKPT_FORMAT_VERSION)
    snprintf(msg, DY_CKPT_MSG, "%s: format version %lld, this program reads %d", path, (long long)version,
             DY_CKPT_FORMAT_VERSION);
  else ok = dy_ckpt_verify_listed(file, path, root, msg);
  H5Fclose(file);
  return ok;
}

PetscErrorCode dy_ckpt_open(MPI_Comm comm, const char *dir, const char *path, DyCkptReader **r, char **found_path)
{
  char cand[2][4200], why[2][DY_CKPT_MSG], used[4200] = "";
  int ncand = 0, chosen = -1, rank;
  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (path) snprintf(cand[ncand++], sizeof cand[0], "%s", path);
  else {
    dy_ckpt_path(cand[ncand++], sizeof cand[0], dir, DY_CKPT_NAME);
    dy_ckpt_path(cand[ncand++], sizeof cand[0], dir, DY_CKPT_PREV);
  }
  if (rank == 0) {
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int i = 0; i < ncand && chosen < 0; i++) {
      if (dy_ckpt_verify_file(cand[i], why[i])) chosen = i;
      else if (i + 1 < ncand) {
        fprintf(stderr, "dynae-mpi: warning: %s; falling back to %s\n", why[i], cand[i + 1]);
        fflush(stderr);
      }
    }
    H5Eset_auto2(H5E_DEFAULT, func, data);
    if (chosen >= 0) snprintf(used, sizeof used, "%s", cand[chosen]);
  }
  PetscCallMPI(MPI_Bcast(&chosen, 1, MPI_INT, 0, comm));
  if (chosen < 0) {
    char all[2 * DY_CKPT_MSG + 16] = "";
    if (rank == 0) {
      const size_t la = strlen(why[0]);
      memcpy(all, why[0], la + 1);
      if (ncand > 1) {
        memcpy(all + la, "; ", 3);
        memcpy(all + la + 2, why[1], strlen(why[1]) + 1);
      }
    }
    PetscCallMPI(MPI_Bcast(all, sizeof all, MPI_CHAR, 0, comm));
    PetscCall(dy_input_error(comm, "no usable checkpoint: %s", all));
  }
  PetscCallMPI(MPI_Bcast(used, sizeof used, MPI_CHAR, 0, comm));
  PetscCall(PetscCalloc1(1, r));
  (*r)->comm = comm;
  (*r)->rank = rank;
  (*r)->file = rank == 0 ? H5Fopen(used, H5F_ACC_RDONLY, H5P_DEFAULT) : H5I_INVALID_HID;
  if (found_path) PetscCall(PetscStrallocpy(used, found_path));
  PetscFunctionReturn(0);
}

/* Rank 0 reads rows [row0, row0 + nrows) of a dataset (all when nrows == SIZE_MAX); the status and
 * the row count are broadcast, the data is not. */
static PetscErrorCode dy_ckpt_read_rows_root(DyCkptReader *r, const char *name, DyCkptType type, size_t row0, size_t nrows,
                                             size_t capacity_elems, void *data, size_t *rows_read)
{
  int ok = 1;
  PetscFunctionBegin;
  if (r->rank == 0) {
    hid_t dset = H5Dopen2(r->file, name, H5P_DEFAULT), space = H5I_INVALID_HID, mem = H5I_INVALID_HID;
    hsize_t dims[2] = {0, 1};
    ok = dset >= 0;
    if (ok) {
      space = H5Dget_space(dset);
      int nd = H5Sget_simple_extent_ndims(space);
      H5Sget_simple_extent_dims(space, dims, NULL);
      if (nd == 1) dims[1] = 1;
      if (nrows == SIZE_MAX) nrows = (size_t)dims[0];
      hsize_t start[2] = {row0, 0}, count[2] = {nrows, dims[1]};
      ok = row0 + nrows <= dims[0] && nrows * dims[1] <= capacity_elems;
      if (ok && nrows) {
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        mem = H5Screate_simple(nd, count, NULL);
        ok = H5Dread(dset, dy_ckpt_h5type(type), mem, space, H5P_DEFAULT, data) >= 0;
        H5Sclose(mem);
      }
      H5Sclose(space);
      H5Dclose(dset);
    }
    *rows_read = nrows;
  }
  PetscCallMPI(MPI_Bcast(&ok, 1, MPI_INT, 0, r->comm));
  PetscCheck(ok, r->comm, DY_ERR_INPUT, "checkpoint: array /%s is missing or does not have the expected size", name);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_read_replicated(DyCkptReader *r, const char *name, DyCkptType type, size_t n, void *data)
{
  size_t got = 0;
  PetscFunctionBegin;
  PetscCall(dy_ckpt_read_rows_root(r, name, type, 0, SIZE_MAX, n, data, &got));
  PetscCallMPI(MPI_Bcast(&got, sizeof got, MPI_BYTE, 0, r->comm));
  PetscCheck(got == n, r->comm, DY_ERR_INPUT, "checkpoint: array /%s has %zu elements, expected %zu", name, got, n);
  PetscCallMPI(MPI_Bcast(data, (int)(n * dy_ckpt_size(type)), MPI_BYTE, 0, r->comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_read_distributed_info(DyCkptReader *r, const char *name, int *writers, size_t *nrows, size_t *rowlen)
{
  char oname[160];
  int64_t info[3] = {0, 0, 0};
  int ok = 1;
  PetscFunctionBegin;
  snprintf(oname, sizeof oname, "%s.offsets", name);
  if (r->rank == 0) {
    hid_t o = H5Dopen2(r->file, oname, H5P_DEFAULT), d = H5Dopen2(r->file, name, H5P_DEFAULT);
    ok = o >= 0 && d >= 0;
    if (ok) {
      hsize_t od, dd[2] = {0, 1};
      hid_t s = H5Dget_space(o);
      H5Sget_simple_extent_dims(s, &od, NULL);
      H5Sclose(s);
      s = H5Dget_space(d);
      H5Sget_simple_extent_dims(s, dd, NULL);
      if (H5Sget_simple_extent_ndims(s) == 1) dd[1] = 1;
      H5Sclose(s);
      info[0] = (int64_t)od - 1;
      info[1] = (int64_t)dd[0];
      info[2] = (int64_t)dd[1];
    }
    if (o >= 0) H5Dclose(o);
    if (d >= 0) H5Dclose(d);
  }
  PetscCallMPI(MPI_Bcast(&ok, 1, MPI_INT, 0, r->comm));
  PetscCheck(ok, r->comm, DY_ERR_INPUT, "checkpoint: distributed array /%s or its offsets are missing", name);
  PetscCallMPI(MPI_Bcast(info, 3, MPI_INT64_T, 0, r->comm));
  *writers = (int)info[0];
  *nrows = (size_t)info[1];
  *rowlen = (size_t)info[2];
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_read_block(DyCkptReader *r, const char *name, DyCkptType type, int writer, size_t capacity,
                                  size_t *nrows, void *data)
{
  int writers, size;
  size_t total, rowlen;
  int64_t *off = NULL;
  char oname[160];
  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(r->comm, &size));
  PetscCall(dy_ckpt_read_distributed_info(r, name, &writers, &total, &rowlen));
  PetscCheck(writer >= 0 && writer < writers, r->comm, PETSC_ERR_ARG_OUTOFRANGE, "checkpoint: block %d of /%s: written by %d ranks",
             writer, name, writers);
  PetscCall(PetscMalloc1(writers + 1, &off));
  snprintf(oname, sizeof oname, "%s.offsets", name);
  PetscCall(dy_ckpt_read_replicated(r, oname, DY_CKPT_INT64, (size_t)writers + 1, off));
  /* Each rank asks for its block in turn; rank 0 reads and sends (small arrays). */
  *nrows = (size_t)(off[writer + 1] - off[writer]);
  PetscCheck(*nrows <= capacity, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ, "checkpoint: block of /%s has %zu rows, room for %zu", name,
             *nrows, capacity);
  for (int q = 0; q < size; q++) {
    int want = writer;
    PetscCallMPI(MPI_Bcast(&want, 1, MPI_INT, q, r->comm));
    const size_t n = (size_t)(off[want + 1] - off[want]);
    const size_t bytes = n * rowlen * dy_ckpt_size(type);
    size_t got = 0;
    void *buf = data;
    if (r->rank == 0 && q != 0) PetscCall(PetscMalloc(bytes ? bytes : 1, &buf));
    PetscCall(dy_ckpt_read_rows_root(r, name, type, (size_t)off[want], n, n * rowlen, buf, &got));
    if (q != 0) {
      if (r->rank == 0) PetscCallMPI(MPI_Send(buf, (int)bytes, MPI_BYTE, q, 7311, r->comm));
      else if (r->rank == q) PetscCallMPI(MPI_Recv(data, (int)bytes, MPI_BYTE, 0, 7311, r->comm, MPI_STATUS_IGNORE));
      if (r->rank == 0) PetscCall(PetscFree(buf));
    }
  }
  PetscCall(PetscFree(off));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_read_int(DyCkptReader *r, const char *name, int64_t *value)
{
  int ok = 1;
  PetscFunctionBegin;
  if (r->rank == 0) ok = dy_ckpt_read_attr(r->file, name, H5T_NATIVE_INT64, value);
  PetscCallMPI(MPI_Bcast(&ok, 1, MPI_INT, 0, r->comm));
  PetscCheck(ok, r->comm, DY_ERR_INPUT, "checkpoint: attribute %s is missing", name);
  PetscCallMPI(MPI_Bcast(value, 1, MPI_INT64_T, 0, r->comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_has(DyCkptReader *r, const char *name, int *has)
{
  PetscFunctionBegin;
  *has = 0;
  if (r->rank == 0) *has = H5Lexists(r->file, name, H5P_DEFAULT) > 0;
  PetscCallMPI(MPI_Bcast(has, 1, MPI_INT, 0, r->comm));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_ckpt_close(DyCkptReader **r)
{
  PetscFunctionBegin;
  if (!*r) PetscFunctionReturn(0);
  if ((*r)->file >= 0) H5Fclose((*r)->file);
  PetscCall(PetscFree(*r));
  PetscFunctionReturn(0);
}
