/* Checkpoint files: atomic, verified, rank-count independent (SPEC sections 6 and 8).
 *
 * A checkpoint is one HDF5 file of named arrays, written collectively under a temporary name
 * (checkpoint.h5.tmp), flushed to disk, then renamed over checkpoint.h5 while the previous one is
 * kept as checkpoint.prev.h5. Every array carries a 64-bit digest of its bytes and the root carries
 * a digest over all of them, so a truncated or damaged file is detected on load, and the loader then
 * falls back to the previous checkpoint with a warning.
 *
 * Two kinds of arrays:
 *   - replicated: the same on every rank (weights, optimiser moments, shared random state,
 *     centres, history); written once;
 *   - distributed: each rank contributes a block of rows, concatenated in rank order (per-rank
 *     random states, sampler cursors); the block boundaries are stored as "<name>.offsets"
 *     (size + 1 int64 values), so a reader at the same rank count gets its own block back and a
 *     reader at another rank count can still read all of it.
 * Element types are the DyCkptType values; files are read back into the same type (conversion
 * float <-> double is done by HDF5 where a precision differs between writer and reader). */
#pragma once
#include "base/dy_common.h"

#include <stddef.h>

#define DY_CKPT_FORMAT_VERSION 1

typedef enum { DY_CKPT_DOUBLE = 0, DY_CKPT_FLOAT = 1, DY_CKPT_INT64 = 2, DY_CKPT_UINT8 = 3 } DyCkptType;

typedef struct DyCkptWriter DyCkptWriter;
typedef struct DyCkptReader DyCkptReader;

/* Collective: starts dir/checkpoint.h5.tmp (dir must exist). */
PetscErrorCode dy_ckpt_write_begin(MPI_Comm comm, const char *dir, DyCkptWriter **w);
/* Collective: an array of n elements, the same on every rank. */
PetscErrorCode dy_ckpt_write_replicated(DyCkptWriter *w, const char *name, DyCkptType type, size_t n, const void *data);
/* Collective: this rank's rows [offset_r, offset_r + nrows) of a (sum nrows, rowlen) array. */
PetscErrorCode dy_ckpt_write_distributed(DyCkptWriter *w, const char *name, DyCkptType type, size_t nrows, size_t rowlen,
                                         const void *data);
/* Collective: an int64 attribute of the root (epoch, step, ...). */
PetscErrorCode dy_ckpt_write_int(DyCkptWriter *w, const char *name, int64_t value);
/* Collective: writes the digests and closes the file; rank 0 then syncs it and renames it into
 * place (checkpoint.prev.h5 keeps the previous one) in the background. Frees w. On any failure the
 * previous checkpoints are untouched. */
PetscErrorCode dy_ckpt_write_commit(DyCkptWriter *w);
/* Collective: returns once the last committed checkpoint is durable and in place (a failure of
 * its background step is raised here). Call before exiting with a checkpoint promised. */
PetscErrorCode dy_ckpt_wait(MPI_Comm comm);
/* Collective: abandons a started checkpoint (removes the temporary file). Frees w. */
PetscErrorCode dy_ckpt_write_abort(DyCkptWriter *w);

/* Collective: opens and verifies a checkpoint. With path == NULL: dir/checkpoint.h5, and when it is
 * missing, truncated or fails its digest, a warning naming the problem and dir/checkpoint.prev.h5.
 * When nothing usable is found: DY_ERR_INPUT naming every file tried and why. *found_path (may be
 * NULL) receives the file used (caller frees with PetscFree). */
PetscErrorCode dy_ckpt_open(MPI_Comm comm, const char *dir, const char *path, DyCkptReader **r, char **found_path);
/* Collective: reads a replicated array of exactly n elements (DY_ERR_INPUT if the size differs). */
PetscErrorCode dy_ckpt_read_replicated(DyCkptReader *r, const char *name, DyCkptType type, size_t n, void *data);
/* Collective: the number of ranks that wrote a distributed array, and its global row count. */
PetscErrorCode dy_ckpt_read_distributed_info(DyCkptReader *r, const char *name, int *writers, size_t *nrows, size_t *rowlen);
/* Collective: reads the block the writer's rank `writer` wrote into data (*nrows set; data must
 * hold capacity rows). Used at the same rank count with writer = own rank. */
PetscErrorCode dy_ckpt_read_block(DyCkptReader *r, const char *name, DyCkptType type, int writer, size_t capacity,
                                  size_t *nrows, void *data);
/* Collective: an int64 root attribute. */
PetscErrorCode dy_ckpt_read_int(DyCkptReader *r, const char *name, int64_t *value);
/* Collective: 1 when the array exists. */
PetscErrorCode dy_ckpt_has(DyCkptReader *r, const char *name, int *has);
PetscErrorCode dy_ckpt_close(DyCkptReader **r);

/* 64-bit FNV-1a digest, continued from h (start with DY_DIGEST_INIT). */
#define DY_DIGEST_INIT 0xcbf29ce484222325ULL
uint64_t dy_digest(uint64_t h, const void *data, size_t nbytes);
