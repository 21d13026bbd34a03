/* Trajectory input with Parallel HDF5 (SPEC section 5): validation, block reads, pairs, the
 * train/test split and the redistribution of pairs. See dy_data.h for the numbering. */
#include "io/dy_data.h"
#include "base/dy_rng.h"
#include "io/dy_frames.h"
#include "io/dy_standardize.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DY_MSG_MAX 2048 /* PetscError keeps at most this much of a message */
/* Rows of one collective read are capped at this many bytes per rank so that no MPI-IO request
 * of one rank exceeds what an int can count; every rank makes the same number of reads. */
#ifndef DY_READ_PIECE_BYTES /* tests shrink it to exercise several pieces */
#define DY_READ_PIECE_BYTES ((int64_t)1 << 30)
#endif
/* Frames sent in one round of the exchange of pairs' frames, in bytes per rank (a bound on the
 * send buffer, which comes on top of the data kept). */
#ifndef DY_SCATTER_PIECE_BYTES /* tests shrink it to exercise several rounds */
#define DY_SCATTER_PIECE_BYTES ((int64_t)1 << 24)
#endif
/* Opening fails on file systems without locks unless HDF5 is told not to lock. */
#define DY_LOCK_HINT " (if the file system has no file locking, set HDF5_USE_FILE_LOCKING=FALSE)"
/* The plan lists every trajectory and rank up to these counts, then only a summary. */
#define DY_PLAN_LIST_MAX 8

/* Phases of -log_view. */
static PetscLogEvent dy_ev_check, dy_ev_read, dy_ev_scatter;

static PetscErrorCode dy_data_register_events(void)
{
  static int done = 0;
  PetscClassId cid;

  PetscFunctionBegin;
  if (done) PetscFunctionReturn(0);
  PetscCall(PetscClassIdRegister("dynae-mpi data", &cid));
  PetscCall(PetscLogEventRegister("DyDataCheck", cid, &dy_ev_check));
  PetscCall(PetscLogEventRegister("DyDataRead", cid, &dy_ev_read));
  PetscCall(PetscLogEventRegister("DyDataScatter", cid, &dy_ev_scatter));
  done = 1;
  PetscFunctionReturn(0);
}

/* What rank 0 learns about one dataset before anything is read. */
typedef struct {
  int64_t frames;        /* rows */
  int64_t features;      /* features after data.atoms and data.features (inputs) */
  int64_t bytes;         /* 4 (float32) or 8 (float64) */
  DyFramesLayout layout; /* what is read: dataset, 2-D or 3-D, values per frame */
} DyEntryInfo;

/* Rank 0's verdict on the entries, broadcast before anything is read. */
typedef struct {
  int bad;                /* 1 when the data are invalid; msg says why */
  char msg[DY_MSG_MAX];   /* the user-facing message */
} DyVerdict;

/* "data.input[2]: file a.h5, dataset /x" names an entry in every message. */
static void dy_entry_label(const DyDataRef *ref, const char *key, int i, char *label, size_t len)
{
  snprintf(label, len, "%s[%d]: file %s, dataset %s", key, i, ref->file, ref->dataset);
}

static const char *dy_type_class_name(H5T_class_t c)
{
  switch (c) {
  case H5T_INTEGER: return "an integer";
  case H5T_FLOAT: return "a floating-point";
  case H5T_STRING: return "a string";
  case H5T_COMPOUND: return "a compound";
  case H5T_ENUM: return "an enum";
  case H5T_ARRAY: return "an array";
  default: return "an unsupported";
  }
}

/* Rank 0 only, serial HDF5: opens one entry and checks type and shape. Returns 1 and fills msg
 * when the entry is unusable, 0 when info is valid. Every handle is closed on every path. */
static int dy_entry_inspect(const DyDataRef *ref, const char *label, int images, DyEntryInfo *info, char *msg,
                            size_t len)
{
  hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
  hsize_t dims[H5S_MAX_RANK];
  int bad = 1, ndims;
  size_t tsize;
  H5T_class_t tclass;

  memset(info, 0, sizeof *info);
  if (access(ref->file, R_OK) != 0) {
    snprintf(msg, len, "%s: cannot read the file (%s)", label, strerror(errno));
    return 1;
  }
#if H5_VERSION_GE(1, 12, 0)
  if (H5Fis_accessible(ref->file, H5P_DEFAULT) <= 0) {
#else
  if (H5Fis_hdf5(ref->file) <= 0) {
#endif
    snprintf(msg, len, "%s: not an HDF5 file", label);
    return 1;
  }
  if ((file = H5Fopen(ref->file, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
    snprintf(msg, len, "%s: cannot open the HDF5 file%s", label, DY_LOCK_HINT);
    goto done;
  }
  if (dy_frames_open(file, ref->dataset, label, &dset, &info->layout, msg, len)) goto done;
  if ((type = H5Dget_type(dset)) < 0 || (tclass = H5Tget_class(type)) == H5T_NO_CLASS || !(tsize = H5Tget_size(type))) {
    snprintf(msg, len, "%s: cannot read the dataset's type", label);
    goto done;
  }
  if (tclass != H5T_FLOAT || (tsize != 4 && tsize != 8)) {
    snprintf(msg, len, "%s: has %s type of %zu bytes; expected float32 or float64", label, dy_type_class_name(tclass),
             tsize);
    goto done;
  }
  if ((space = H5Dget_space(dset)) < 0 || (ndims = H5Sget_simple_extent_ndims(space)) < 0 ||
      H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    snprintf(msg, len, "%s: cannot read the dataset's shape", label);
    goto done;
  }
  if ((images ? dy_frames_image_shape : dy_frames_shape)(label, ndims, dims, &info->layout, msg, len)) goto done;
  info->frames = (int64_t)dims[0];
  info->features = info->layout.columns;
  info->bytes = (int64_t)tsize;
  bad = 0;
done:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (dset >= 0) H5Dclose(dset);
  if (file >= 0) H5Fclose(file);
  return bad;
}

/* Rank 0 only: inspects every entry (inputs 0..n-1, then targets n..2n-1) and checks that they
 * fit together. Stops at the first problem. */
static int dy_entries_validate(const DyConfig *cfg, DyEntryInfo *info, char *msg, size_t len)
{
  const int n = cfg->ntraj, lag = cfg->lag;
  char a[DY_MSG_MAX / 4], b[DY_MSG_MAX / 4];

  for (int i = 0; i < n; i++) {
    dy_entry_label(&cfg->input[i], "data.input", i, a, sizeof a);
    if (dy_entry_inspect(&cfg->input[i], a, cfg->network == DY_NETWORK_CONV, &info[i], msg, len)) return 1;
    if (dy_frames_select(cfg, a, &info[i].layout, &info[i].features, msg, len)) return 1;
  }
  for (int i = 0; i < cfg->ntarget; i++) {
    dy_entry_label(&cfg->target[i], "data.target", i, a, sizeof a);
    if (dy_entry_inspect(&cfg->target[i], a, cfg->network == DY_NETWORK_CONV, &info[n + i], msg, len)) return 1;
  }
  for (int i = 0; i < n; i++) {
    dy_entry_label(&cfg->input[i], "data.input", i, a, sizeof a);
    if (info[i].frames < (int64_t)lag + 1) {
      snprintf(msg, len, "%s: has %lld frames, fewer than data.lag + 1 = %d, so it gives no pair", a,
               (long long)info[i].frames, lag + 1);
      return 1;
    }
    if (info[i].layout.atoms != info[0].layout.atoms) {
      dy_entry_label(&cfg->input[0], "data.input", 0, b, sizeof b);
      snprintf(msg, len, "atom counts disagree: %s has %lld atoms per frame, but %s has %lld", b,
               (long long)info[0].layout.atoms, a, (long long)info[i].layout.atoms);
      return 1;
    }
    if (info[i].features != info[0].features) {
      dy_entry_label(&cfg->input[0], "data.input", 0, b, sizeof b);
      snprintf(msg, len, "feature counts disagree: %s has %lld features, but %s has %lld", b,
               (long long)info[0].features, a, (long long)info[i].features);
      return 1;
    }
  }
  for (int i = 0; i < cfg->ntarget; i++) {
    dy_entry_label(&cfg->target[i], "data.target", i, a, sizeof a);
    if (info[n + i].frames != info[i].frames) {
      dy_entry_label(&cfg->input[i], "data.input", i, b, sizeof b);
      snprintf(msg, len, "%s: has %lld frames, but its input %s has %lld", a, (long long)info[n + i].frames, b,
               (long long)info[i].frames);
      return 1;
    }
    if (info[n + i].features != info[n].features) {
      dy_entry_label(&cfg->target[0], "data.target", 0, b, sizeof b);
      snprintf(msg, len, "target feature counts disagree: %s has %lld features, but %s has %lld", b,
               (long long)info[n].features, a, (long long)info[n + i].features);
      return 1;
    }
  }
  return 0;
}

/* Balanced contiguous partition of F frames over size ranks. */
static void dy_block_range(int64_t F, int size, int rank, int64_t *start, int64_t *count)
{
  const int64_t q = F / size, r = F % size;

  *start = rank * q + DY_MIN((int64_t)rank, r);
  *count = q + (rank < r ? 1 : 0);
}

/* Collective on comm: reads rows [start, start + nrows) of one (frames, ncol) or (frames, atoms, 3)
 * dataset into buf as (nrows, ncol = lay->columns),
 * converting to dy_real, with MPI-IO and collective transfers of at most `piece` rows, npieces
 * of them on every rank (a rank with nothing left takes part with an empty selection). Returns 1
 * on this rank's failure (msg filled), 0 on success. */
static int dy_entry_read(MPI_Comm comm, const DyDataRef *ref, const DyFramesLayout *lay, const char *label,
                         int64_t start, int64_t nrows, int64_t piece, int npieces, dy_real *buf, char *msg, size_t len)
{
  hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID, dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
  hid_t dxpl = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
  const int64_t ncol = lay->columns;
  int bad = 0;

  /* Collective metadata reads: one rank reads the file's metadata and broadcasts it. */
  if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
      H5Pset_all_coll_metadata_ops(fapl, 1) < 0 ||
      (dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
    snprintf(msg, len, "%s: cannot set up parallel HDF5 access", label);
    bad = 1;
  } else if ((file = H5Fopen(ref->file, H5F_ACC_RDONLY, fapl)) < 0) {
    snprintf(msg, len, "%s: cannot open the file with MPI-IO%s", label, DY_LOCK_HINT);
    bad = 1;
  } else if ((dset = H5Dopen2(file, lay->dataset, H5P_DEFAULT)) < 0 || (fspace = H5Dget_space(dset)) < 0) {
    snprintf(msg, len, "%s: cannot open the dataset", label);
    bad = 1;
  }
  /* Every rank makes npieces collective calls even after a local failure, so nobody hangs. */
  for (int p = 0; p < npieces && dset >= 0 && fspace >= 0; p++) {
    const int64_t off = DY_MIN(nrows, p * piece), rows = DY_MIN(nrows - off, piece);
    const hsize_t fstart[4] = {(hsize_t)(start + off), 0, 0, 0}, mcount[2] = {(hsize_t)rows, (hsize_t)ncol};
    hsize_t fcount[4] = {(hsize_t)rows, (hsize_t)(lay->ndims == 3 ? lay->atoms : ncol), 3, 0};
    if (lay->image[0]) { /* (frames, H, W) or (frames, C, H, W), every pixel */
      const hsize_t img[3] = {(hsize_t)lay->image[0], (hsize_t)lay->image[1], (hsize_t)lay->image[2]};
      for (int k = 1; k < lay->ndims; k++) fcount[k] = img[k + 3 - lay->ndims];
    }
    const hsize_t one = 1;
    herr_t st;

    if (rows > 0) {
      mspace = H5Screate_simple(2, mcount, NULL);
      st = mspace < 0 ? -1 : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, fstart, NULL, fcount, NULL);
    } else {
      mspace = H5Screate_simple(1, &one, NULL);
      st = mspace < 0 || H5Sselect_none(mspace) < 0 ? -1 : H5Sselect_none(fspace);
    }
    if (st >= 0) st = H5Dread(dset, DY_H5_REAL, mspace, fspace, dxpl, buf ? buf + off * ncol : NULL);
    if (st < 0 && !bad) {
      snprintf(msg, len, "%s: reading frames [%lld, %lld) failed", label, (long long)(start + off),
               (long long)(start + off + rows));
      bad = 1;
    }
    if (mspace >= 0) H5Sclose(mspace);
    mspace = H5I_INVALID_HID;
  }
  if (fspace >= 0 && H5Sclose(fspace) < 0) bad = 1;
  if (dset >= 0 && H5Dclose(dset) < 0) bad = 1;
  if (file >= 0 && H5Fclose(file) < 0) bad = 1;
  if (dxpl >= 0) H5Pclose(dxpl);
  if (fapl >= 0) H5Pclose(fapl);
  if (bad && !msg[0]) snprintf(msg, len, "%s: closing the file failed", label);
  return bad;
}

/* First non-finite value among the owned rows (frames start..start+count-1) as a global element
 * index frame * ncol + feature, or INT64_MAX. */
static int64_t dy_first_nonfinite(const dy_real *x, int64_t start, int64_t count, int64_t ncol)
{
  for (int64_t k = 0; k < count * ncol; k++)
    if (!isfinite(x[k])) return start * ncol + k;
  return INT64_MAX;
}

/* Collective: reads every input (which = 0) or target (which = 1) block of this rank and checks
 * that its owned frames are finite; the first bad frame is agreed on with an allreduce(MIN). */
static PetscErrorCode dy_blocks_read(MPI_Comm comm, const DyConfig *cfg, const DyEntryInfo *info, int which,
                                     DyData *data)
{
  const int n = data->ntraj;
  const DyDataRef *refs = which ? cfg->target : cfg->input;
  const char *key = which ? "data.target" : "data.input";
  char label[DY_MSG_MAX / 4], msg[DY_MSG_MAX], where[64];
  int64_t *first;
  int size;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  for (int i = 0; i < n; i++) {
    DyTrajBlock *b = &data->block[i];
    dy_real **dst = which ? &b->y : &b->x;
    const DyFramesLayout *lay = &info[which * n + i].layout;
    const int64_t piece = DY_MAX((int64_t)1, DY_READ_PIECE_BYTES / (lay->columns * (int64_t)sizeof(double)));
    /* Rank 0 holds the largest block, so every rank knows how many reads it takes. */
    int64_t start0, count0, npieces;
    int bad;

    dy_block_range(b->frames, size, 0, &start0, &count0);
    npieces = (DY_MIN(count0 + data->lag, b->frames) + piece - 1) / piece;
    PetscCall(PetscMalloc1(b->nread * lay->columns, dst));
    dy_entry_label(&refs[i], key, i, label, sizeof label);
    msg[0] = 0;
    bad = dy_entry_read(comm, &refs[i], lay, label, b->start, b->nread, piece, (int)npieces, *dst, msg, sizeof msg);
    PetscCall(dy_agree_error(comm, bad, PETSC_ERR_FILE_READ, msg));
  }
  PetscCall(PetscMalloc1(n, &first));
  for (int i = 0; i < n; i++) {
    const DyTrajBlock *b = &data->block[i];
    first[i] = dy_first_nonfinite(which ? b->y : b->x, b->start, b->count, info[which * n + i].layout.columns);
  }
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, first, n, MPI_INT64_T, MPI_MIN, comm));
  for (int i = 0; i < n; i++) {
    const int narrowed = info[which * n + i].bytes > (int64_t)sizeof(dy_real);
    const DyFramesLayout *lay = &info[which * n + i].layout;

    if (first[i] == INT64_MAX) continue;
    dy_entry_label(&refs[i], key, i, label, sizeof label);
    dy_frames_where(lay, first[i] % lay->columns, where, sizeof where);
    snprintf(msg, sizeof msg, "%s: non-finite value (NaN or Inf%s) at frame %lld, %s (counting from 0)", label,
             narrowed ? ", or too large for single precision" : "", (long long)(first[i] / lay->columns), where);
    PetscCall(PetscFree(first));
    PetscCall(dy_input_error(comm, "%s", msg));
  }
  PetscCall(PetscFree(first));
  PetscFunctionReturn(0);
}

/* Allocates the row arrays of a pair set of n pairs; y0, y1 alias x0, x1 without targets. */
static PetscErrorCode dy_pairs_alloc(DyPairs *p, int64_t n, int has_target)
{
  PetscFunctionBegin;
  p->n = n;
  PetscCall(PetscMalloc1(n, &p->id));
  PetscCall(PetscMalloc1(n, &p->x0));
  PetscCall(PetscMalloc1(n, &p->x1));
  if (has_target) {
    PetscCall(PetscMalloc1(n, &p->y0));
    PetscCall(PetscMalloc1(n, &p->y1));
  } else {
    p->y0 = p->x0;
    p->y1 = p->x1;
  }
  PetscFunctionReturn(0);
}

static void dy_pairs_free(DyPairs *p)
{
  if (p->y0 != p->x0) (void)PetscFree(p->y0);
  if (p->y1 != p->x1) (void)PetscFree(p->y1);
  (void)PetscFree(p->x0);
  (void)PetscFree(p->x1);
  (void)PetscFree(p->id);
  memset(p, 0, sizeof *p);
}

/* Frames [start, start + nread) of trajectory i that rank q reads (its block and overlap). */
static void dy_block_read_range(const DyData *data, int i, int size, int q, int64_t *start, int64_t *nread)
{
  int64_t count;

  dy_block_range(data->frames[i], size, q, start, &count);
  *nread = count ? DY_MIN(count + data->lag, data->frames[i] - *start) : 0;
}

/* The rank whose block owns frame f of trajectory i (the inverse of dy_block_range). */
static int dy_block_owner(const DyData *data, int i, int size, int64_t f)
{
  const int64_t q = data->frames[i] / size, r = data->frames[i] % size;

  return (int)(f < r * (q + 1) ? f / (q + 1) : r + (f - r * (q + 1)) / q);
}

/* Global frame id of frame f of trajectory i: the frames of the trajectories before it, plus f. */
static int64_t dy_frame_id(const DyData *data, int i, int64_t f)
{
  return data->pair_offset[i] + (int64_t)i * data->lag + f;
}

/* The rank that holds pair (t, t + lag) of trajectory i: drawn by its id (data.placement =
 * "random"), or the owner of the block of its first frame ("block"), which read both frames. */
static int dy_pair_rank(const DyData *data, uint64_t seed, int i, int64_t t, int size)
{
  if (data->placement == DY_PLACEMENT_BLOCK) return dy_block_owner(data, i, size, t);
  return (int)(dy_hash_u64(seed, DY_STREAM_SCATTER, (uint64_t)(data->pair_offset[i] + t)) % (uint64_t)size);
}

/* The ranks that hold a pair with frame f of trajectory i (as its first or second member) but
 * did not read the frame: up to two, into q; returns how many. */
static int dy_frame_dests(const DyData *data, uint64_t seed, int i, int64_t f, int size, int q[2])
{
  const int64_t F = data->frames[i], lag = data->lag;
  int n = 0, cand[2], nc = 0;

  if (f < F - lag) cand[nc++] = dy_pair_rank(data, seed, i, f, size);
  if (f >= lag) cand[nc++] = dy_pair_rank(data, seed, i, f - lag, size);
  for (int c = 0; c < nc; c++) {
    int64_t s, nr;

    if (n == 1 && q[0] == cand[c]) continue;
    dy_block_read_range(data, i, size, cand[c], &s, &nr);
    if (f >= s && f < s + nr) continue; /* that rank read it */
    q[n++] = cand[c];
  }
  return n;
}

/* Visits this rank's own frames from (*ti, *tf) on, at most `most` of them, counting (pack = 0)
 * or packing (pack = 1, at sdispl + got) each one for every rank that needs it; leaves (*ti, *tf)
 * after the last frame visited. */
static void dy_frames_visit(const DyData *data, uint64_t seed, int size, int pack, int64_t most, int *ti, int64_t *tf,
                            int *scount, const int *sdispl, int *got, int64_t *sid, dy_real *sx, dy_real *sy)
{
  const int D = data->D, Dy = data->Dy;

  while (*ti < data->ntraj && most > 0) {
    const DyTrajBlock *b = &data->block[*ti];
    if (*tf < b->start) *tf = b->start;
    for (; *tf < b->start + b->count && most > 0; (*tf)++, most--) {
      const int64_t row = *tf - b->start;
      int q[2];
      const int nq = dy_frame_dests(data, seed, *ti, *tf, size, q);
      for (int k = 0; k < nq; k++) {
        if (!pack) {
          scount[q[k]]++;
          continue;
        }
        const int64_t j = sdispl[q[k]] + got[q[k]]++;
        sid[j] = dy_frame_id(data, *ti, *tf);
        memcpy(sx + j * D, b->x + row * D, (size_t)D * sizeof(dy_real));
        if (data->has_target) memcpy(sy + j * Dy, b->y + row * Dy, (size_t)Dy * sizeof(dy_real));
      }
    }
    if (*tf < b->start + b->count) break;
    (*ti)++;
    *tf = 0;
  }
}

/* Collective: the frames of other ranks' blocks that this rank's pairs use, each fetched once:
 * every rank sends each frame of its own blocks to the ranks that need it and did not read it,
 * in rounds of at most about DY_SCATTER_PIECE_BYTES per rank, into data->fetched_*. The frames
 * from rank r arrive in ascending id order in rows [fetched_from[r], fetched_from[r + 1]). */
static PetscErrorCode dy_frames_fetch(MPI_Comm comm, uint64_t seed, DyData *data)
{
  const int n = data->ntraj, D = data->D, Dy = data->Dy, yt = data->has_target;
  const int64_t rowb = (int64_t)((size_t)(D + (yt ? Dy : 0)) * sizeof(dy_real) + sizeof(int64_t));
  int size, rank, *scount, *sdispl, *rcount, *rdispl, *got, ti = 0;
  int64_t nown = 0, nrecv = 0, nsend = 0, window, nrounds, rounds, *recvd, tf = 0;
  int64_t *sid = NULL;
  dy_real *sx = NULL, *sy = NULL;
  char msg[256];
  MPI_Datatype xt, ytp = MPI_DATATYPE_NULL;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscCalloc5(size, &scount, size, &sdispl, size, &rcount, size, &rdispl, size, &got));
  PetscCall(PetscCalloc1(size, &recvd));
  PetscCall(PetscCalloc1(size + 1, &data->fetched_from));
  /* The counts of the whole exchange, to size the store once. */
  for (int i = 0; i < n; i++) nown += data->block[i].count;
  dy_frames_visit(data, seed, size, 0, nown, &ti, &tf, scount, NULL, NULL, NULL, NULL, NULL);
  PetscCallMPI(MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, comm));
  for (int r = 0; r < size; r++) {
    data->fetched_from[r + 1] = data->fetched_from[r] + rcount[r];
    nsend += scount[r];
  }
  nrecv = data->fetched_from[size];
  /* Displacements are ints of whole frames: fine below 2^31 frames per rank. */
  snprintf(msg, sizeof msg, "%lld frames to send and %lld to receive on rank %d exceed one all-to-all; use more ranks",
           (long long)nsend, (long long)nrecv, rank);
  PetscCall(dy_agree_error(comm, nsend > INT_MAX || nrecv > INT_MAX, PETSC_ERR_SUP, msg));
  data->nfetched = nrecv;
  PetscCall(PetscMalloc1(DY_MAX(nrecv, (int64_t)1), &data->fetched_id));
  PetscCall(PetscMalloc1(DY_MAX(nrecv, (int64_t)1) * D, &data->fetched_x));
  if (yt) PetscCall(PetscMalloc1(DY_MAX(nrecv, (int64_t)1) * Dy, &data->fetched_y));

  /* Rounds over windows of this rank's own frames (its blocks one after the other); a frame goes
   * to at most two ranks, so a round sends at most two per window frame. Every rank takes part in
   * every round, with nothing left to send if need be. */
  window = DY_MAX((int64_t)1, DY_SCATTER_PIECE_BYTES / (2 * rowb));
  rounds = (nown + window - 1) / window;
  PetscCallMPI(MPI_Allreduce(&rounds, &nrounds, 1, MPI_INT64_T, MPI_MAX, comm));
  window = DY_MIN(window, DY_MAX(nown, (int64_t)1));
  PetscCall(PetscMalloc1(2 * window, &sid));
  PetscCall(PetscMalloc1(2 * window * D, &sx));
  if (yt) PetscCall(PetscMalloc1(2 * window * Dy, &sy));
  PetscCallMPI(MPI_Type_contiguous(D, DY_MPI_REAL, &xt));
  PetscCallMPI(MPI_Type_commit(&xt));
  if (yt) {
    PetscCallMPI(MPI_Type_contiguous(Dy, DY_MPI_REAL, &ytp));
    PetscCallMPI(MPI_Type_commit(&ytp));
  }
  ti = 0;
  tf = 0;
  for (int64_t round = 0; round < nrounds; round++) {
    int ti0 = ti;
    int64_t tf0 = tf;

    for (int r = 0; r < size; r++) scount[r] = got[r] = 0;
    dy_frames_visit(data, seed, size, 0, window, &ti, &tf, scount, NULL, NULL, NULL, NULL, NULL);
    for (int r = 1; r < size; r++) sdispl[r] = sdispl[r - 1] + scount[r - 1];
    dy_frames_visit(data, seed, size, 1, window, &ti0, &tf0, NULL, sdispl, got, sid, sx, sy);
    PetscCallMPI(MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, comm));
    for (int r = 0; r < size; r++) {
      rdispl[r] = (int)(data->fetched_from[r] + recvd[r]);
      recvd[r] += rcount[r];
    }
    PetscCallMPI(MPI_Alltoallv(sid, scount, sdispl, MPI_INT64_T, data->fetched_id, rcount, rdispl, MPI_INT64_T, comm));
    PetscCallMPI(MPI_Alltoallv(sx, scount, sdispl, xt, data->fetched_x, rcount, rdispl, xt, comm));
    if (yt) PetscCallMPI(MPI_Alltoallv(sy, scount, sdispl, ytp, data->fetched_y, rcount, rdispl, ytp, comm));
  }
  PetscCallMPI(MPI_Type_free(&xt));
  if (yt) PetscCallMPI(MPI_Type_free(&ytp));
  PetscCall(PetscFree(sid));
  PetscCall(PetscFree(sx));
  PetscCall(PetscFree(sy));
  PetscCall(PetscFree(recvd));
  PetscCall(PetscFree5(scount, sdispl, rcount, rdispl, got));
  PetscFunctionReturn(0);
}

/* Frame f of trajectory i as this rank holds it: its row in the block when the rank read it,
 * else in the fetched frames (binary search in the run of the rank that owns it); y the same
 * row's target (NULL without targets). Returns 1 when found. */
static int dy_frame_row(const DyData *data, int i, int64_t f, int size, const dy_real **x, const dy_real **y)
{
  const DyTrajBlock *b = &data->block[i];

  if (f >= b->start && f < b->start + b->nread) {
    *x = b->x + (f - b->start) * data->D;
    *y = data->has_target ? b->y + (f - b->start) * data->Dy : NULL;
    return 1;
  }
  const int q = dy_block_owner(data, i, size, f);
  const int64_t id = dy_frame_id(data, i, f);
  int64_t lo = data->fetched_from[q], hi = data->fetched_from[q + 1];
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (data->fetched_id[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= data->fetched_from[q + 1] || data->fetched_id[lo] != id) return 0;
  *x = data->fetched_x + lo * data->D;
  *y = data->has_target ? data->fetched_y + lo * data->Dy : NULL;
  return 1;
}

/* Collective: this rank's pairs (those the hash sends here) from the frames it holds, in
 * ascending pair id order, split into train and test; pair records are row pointers. The first
 * members are visited in id order: of each trajectory, the frames fetched from lower ranks, then
 * the block read here, then those fetched from higher ranks (blocks are in rank order). A first
 * pass counts, the second fills. */
static PetscErrorCode dy_pairs_build(MPI_Comm comm, uint64_t seed, double test_fraction, DyData *data)
{
  const int64_t lag = data->lag;
  int size, rank;
  int64_t *cursor, counts[2] = {0, 0};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscMalloc1(size, &cursor));
  for (int fill = 0; fill < 2; fill++) {
    if (fill) {
      PetscCall(dy_pairs_alloc(&data->train, counts[0], data->has_target));
      PetscCall(dy_pairs_alloc(&data->test, counts[1], data->has_target));
      data->train.n = data->test.n = 0;
    }
    for (int r = 0; r < size; r++) cursor[r] = data->fetched_from[r];
    for (int i = 0; i < data->ntraj; i++) {
      const DyTrajBlock *b = &data->block[i];
      const int64_t first = dy_frame_id(data, i, 0), end = dy_frame_id(data, i + 1, 0);
      for (int q = 0; q < size; q++) {
        const int own = q == rank;
        int64_t k = own ? b->start : cursor[q];
        const int64_t stop = own ? b->start + b->nread : data->fetched_from[q + 1];
        for (; k < stop && (own || data->fetched_id[k] < end); k++) {
          const int64_t t = own ? k : data->fetched_id[k] - first, g = data->pair_offset[i] + t;
          if (t >= data->frames[i] - lag || dy_pair_rank(data, seed, i, t, size) != rank) continue;
          const int is_test = dy_hash_uniform(seed, DY_STREAM_SPLIT, (uint64_t)g) < test_fraction;
          if (!fill) {
            counts[is_test]++;
            continue;
          }
          DyPairs *s = is_test ? &data->test : &data->train;
          const int64_t j = s->n++;
          const dy_real *y0, *y1;
          s->id[j] = g;
          PetscCheck(dy_frame_row(data, i, t, size, &s->x0[j], &y0) &&
                         dy_frame_row(data, i, t + lag, size, &s->x1[j], &y1),
                     PETSC_COMM_SELF, PETSC_ERR_PLIB, "rank %d lacks a frame of its pair %lld", rank, (long long)g);
          if (data->has_target) {
            s->y0[j] = y0;
            s->y1[j] = y1;
          }
        }
        if (!own) cursor[q] = k;
      }
    }
  }
  PetscCall(PetscFree(cursor));
  PetscFunctionReturn(0);
}

/* Collective: every rank's pairs, as rows of the frames it holds (its blocks, and the frames of
 * other blocks its pairs use, fetched once), split into train and test, with the global counts. */
static PetscErrorCode dy_pairs_scatter(MPI_Comm comm, uint64_t seed, double test_fraction, DyData *data)
{
  int64_t counts[2];

  PetscFunctionBegin;
  PetscCall(dy_frames_fetch(comm, seed, data));
  PetscCall(dy_pairs_build(comm, seed, test_fraction, data));
  counts[0] = data->train.n;
  counts[1] = data->test.n;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT64_T, MPI_SUM, comm));
  data->ntrain_global = counts[0];
  data->ntest_global = counts[1];
  PetscFunctionReturn(0);
}

/* Collective: the inputs' features (data.atoms, data.features) from the raw rows just read. */
static PetscErrorCode dy_data_features(MPI_Comm comm, const DyConfig *cfg, const DyEntryInfo *info, DyData *data)
{
  const int n = data->ntraj;
  DyFramesLayout *lay;
  int64_t *nread;
  dy_real **x;

  PetscFunctionBegin;
  PetscCall(PetscMalloc3(n, &lay, n, &nread, n, &x));
  for (int i = 0; i < n; i++) {
    lay[i] = info[i].layout;
    nread[i] = data->block[i].nread;
    x[i] = data->block[i].x;
  }
  PetscCall(dy_frames_features(comm, cfg, n, lay, nread, data->D, x));
  for (int i = 0; i < n; i++) data->block[i].x = x[i];
  PetscCall(PetscFree3(lay, nread, x));
  PetscFunctionReturn(0);
}

static PetscErrorCode dy_data_load_checked(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  const int n = cfg->ntraj;
  int size, rank;
  DyEntryInfo *info;
  DyVerdict verdict;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (n < 1) PetscCall(dy_input_error(comm, "data.input: no trajectory given"));
  if (cfg->ntarget != 0 && cfg->ntarget != n)
    PetscCall(dy_input_error(comm, "data.target: %d entr%s for %d data.input entries; give one target per input or none",
                             cfg->ntarget, cfg->ntarget == 1 ? "y" : "ies", n));
  if (cfg->lag < 1) PetscCall(dy_input_error(comm, "data.lag: must be >= 1, got %d", cfg->lag));

  /* Validation: rank 0 reads only metadata, everyone learns the verdict. */
  PetscCall(PetscLogEventBegin(dy_ev_check, 0, 0, 0, 0));
  PetscCall(PetscCalloc1(2 * n, &info));
  memset(&verdict, 0, sizeof verdict);
  if (rank == 0) verdict.bad = dy_entries_validate(cfg, info, verdict.msg, sizeof verdict.msg);
  PetscCallMPI(MPI_Bcast(&verdict, (int)sizeof verdict, MPI_BYTE, 0, comm));
  PetscCall(PetscLogEventEnd(dy_ev_check, 0, 0, 0, 0));
  if (verdict.bad) {
    PetscCall(PetscFree(info));
    PetscCall(dy_input_error(comm, "%s", verdict.msg));
  }
  PetscCallMPI(MPI_Bcast(info, (int)(2 * n * sizeof *info), MPI_BYTE, 0, comm));

  data->ntraj = n;
  data->D = (int)info[0].features;
  data->has_target = cfg->ntarget > 0;
  data->Dy = data->has_target ? (int)info[n].features : data->D;
  data->lag = cfg->lag;
  data->placement = cfg->placement;
  PetscCall(PetscCalloc1(n, &data->name));
  PetscCall(PetscMalloc1(n, &data->frames));
  PetscCall(PetscMalloc1(n + 1, &data->pair_offset));
  PetscCall(PetscCalloc1(n, &data->block));
  data->pair_offset[0] = 0;
  for (int i = 0; i < n; i++) {
    DyTrajBlock *b = &data->block[i];
    char buf[DY_PATH_MAX];

    if (cfg->input[i].text) snprintf(buf, sizeof buf, "%s", cfg->input[i].text);
    else snprintf(buf, sizeof buf, "%s:%s", cfg->input[i].file, cfg->input[i].dataset);
    PetscCall(PetscStrallocpy(buf, &data->name[i]));
    data->frames[i] = info[i].frames;
    data->pair_offset[i + 1] = data->pair_offset[i] + info[i].frames - cfg->lag;
    b->frames = info[i].frames;
    dy_block_range(b->frames, size, rank, &b->start, &b->count);
    b->nread = b->count ? DY_MIN(b->count + cfg->lag, b->frames - b->start) : 0;
  }

  PetscCall(PetscLogEventBegin(dy_ev_read, 0, 0, 0, 0));
  ierr = dy_blocks_read(comm, cfg, info, 0, data);
  if (!ierr && data->has_target) ierr = dy_blocks_read(comm, cfg, info, 1, data);
  PetscCall(PetscLogEventEnd(dy_ev_read, 0, 0, 0, 0));
  /* The transforms, in order, before the pairs are formed: features, then standardisation, then
   * the TICA projection. TICs are whitened already (zero mean, unit variance over the pairs) and
   * do not depend on how the features were scaled, so with data.tica_dim (and for the TICA model)
   * the standardisation is left out: the statistics would describe features the encoder no longer
   * sees, and /tica/ stays in the features' own units. */
  const int tica = cfg->tica_dim > 0 || !strcmp(cfg->type, "tica");
  if (!ierr) ierr = dy_data_features(comm, cfg, info, data);
  if (!ierr && cfg->standardize && !tica) ierr = dy_standardize_fit(comm, cfg, data);
  PetscCall(PetscFree(info));
  PetscCall(ierr);
  PetscCall(dy_data_tica_project(comm, cfg, data)); /* data.tica_dim: the frames become their TICs */
  PetscCall(PetscLogEventBegin(dy_ev_scatter, 0, 0, 0, 0));
  PetscCall(dy_pairs_scatter(comm, (uint64_t)cfg->seed, cfg->test_fraction, data));
  PetscCall(PetscLogEventEnd(dy_ev_scatter, 0, 0, 0, 0));
  /* Caught here so that --check refuses it too. */
  if (data->ntrain_global == 0)
    PetscCall(dy_input_error(comm,
                             "data: no pair is left for training (%lld of %lld drawn as test pairs; lower "
                             "data.test_fraction = %g or data.lag, or give longer trajectories)",
                             (long long)data->ntest_global, (long long)data->pair_offset[data->ntraj],
                             cfg->test_fraction));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_data_load(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  H5E_auto2_t func = NULL;
  void *client = NULL;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  memset(data, 0, sizeof *data);
  PetscCall(dy_data_register_events());
  /* Users see our message, not HDF5's error stack; the previous handler is restored. */
  PetscCheck(H5Eget_auto2(H5E_DEFAULT, &func, &client) >= 0 && H5Eset_auto2(H5E_DEFAULT, NULL, NULL) >= 0,
             PETSC_COMM_SELF, PETSC_ERR_LIB, "cannot silence HDF5's error printing");
  ierr = dy_data_load_checked(comm, cfg, data);
  H5Eset_auto2(H5E_DEFAULT, func, client);
  if (ierr) dy_data_free(data);
  PetscCall(ierr);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_data_print_plan(MPI_Comm comm, const DyData *data, FILE *fp)
{
  int size, rank;
  int64_t local[2] = {data->train.n, data->test.n}, *all = NULL;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) PetscCall(PetscMalloc1(2 * size, &all));
  PetscCallMPI(MPI_Gather(local, 2, MPI_INT64_T, all, 2, MPI_INT64_T, 0, comm));
  if (rank != 0) PetscFunctionReturn(0);

  fprintf(fp, "# data: %d trajector%s, %d features", data->ntraj, data->ntraj == 1 ? "y" : "ies", data->D);
  if (data->has_target) fprintf(fp, ", targets with %d features", data->Dy);
  fprintf(fp, ", lag %d\n", data->lag);
  for (int i = 0; i < data->ntraj; i++) {
    if (i == DY_PLAN_LIST_MAX && data->ntraj > DY_PLAN_LIST_MAX + 1) {
      fprintf(fp, "#   ... %d more trajectories\n", data->ntraj - i - 1);
      i = data->ntraj - 1;
    }
    fprintf(fp, "#   traj %d: %s, %lld frames, %lld pair%s\n", i, data->name[i], (long long)data->frames[i],
            (long long)(data->pair_offset[i + 1] - data->pair_offset[i]),
            data->pair_offset[i + 1] - data->pair_offset[i] == 1 ? "" : "s");
  }
  fprintf(fp, "# pairs: %lld in all, %lld train, %lld test\n", (long long)data->pair_offset[data->ntraj],
          (long long)data->ntrain_global, (long long)data->ntest_global);
  if (size <= DY_PLAN_LIST_MAX) {
    fprintf(fp, "# pairs per rank (train/test):");
    for (int r = 0; r < size; r++) fprintf(fp, " %s%lld/%lld", r ? "| " : "", (long long)all[2 * r], (long long)all[2 * r + 1]);
    fprintf(fp, "\n");
  } else {
    int64_t lo[2] = {INT64_MAX, INT64_MAX}, hi[2] = {0, 0};

    for (int r = 0; r < size; r++)
      for (int k = 0; k < 2; k++) {
        lo[k] = DY_MIN(lo[k], all[2 * r + k]);
        hi[k] = DY_MAX(hi[k], all[2 * r + k]);
      }
    fprintf(fp, "# pairs per rank over %d ranks: train %lld to %lld, test %lld to %lld\n", size, (long long)lo[0],
            (long long)hi[0], (long long)lo[1], (long long)hi[1]);
  }
  fflush(fp);
  PetscCall(PetscFree(all));
  PetscFunctionReturn(0);
}

void dy_data_pair_locate(const DyData *data, int64_t g, int *traj, int64_t *t)
{
  int lo = 0, hi = data->ntraj - 1;

  /* The last trajectory i with pair_offset[i] <= g; every trajectory has at least one pair. */
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (data->pair_offset[mid] <= g) lo = mid;
    else hi = mid - 1;
  }
  *traj = lo;
  *t = g - data->pair_offset[lo];
}

void dy_data_free(DyData *data)
{
  for (int i = 0; data->block && i < data->ntraj; i++) {
    (void)PetscFree(data->block[i].x);
    (void)PetscFree(data->block[i].y);
  }
  for (int i = 0; data->name && i < data->ntraj; i++) (void)PetscFree(data->name[i]);
  dy_pairs_free(&data->train);
  dy_pairs_free(&data->test);
  (void)PetscFree(data->fetched_id);
  (void)PetscFree(data->fetched_x);
  (void)PetscFree(data->fetched_y);
  (void)PetscFree(data->fetched_from);
  if (data->tica) dy_tica_destroy(data->tica);
  (void)PetscFree(data->tica);
  (void)PetscFree(data->block);
  (void)PetscFree(data->name);
  (void)PetscFree(data->frames);
  (void)PetscFree(data->pair_offset);
  (void)PetscFree4(data->input_mean, data->input_scale, data->target_mean, data->target_scale);
  memset(data, 0, sizeof *data);
}
