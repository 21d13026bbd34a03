/* Trajectory input with Parallel HDF5 (SPEC section 5).
 *
 * Sizes: D input features, Dy target features (= D without targets), lag from the config.
 * Global pair numbering, independent of the rank count: trajectory i with F_i frames has the
 * pairs (t, t + lag), t = 0 .. F_i - lag - 1; pair g = pair_offset[i] + t with
 * pair_offset[i] = sum_{j<i} (F_j - lag). A pair is a test pair when
 * dy_hash_uniform(seed, DY_STREAM_SPLIT, g) < test_fraction, and lives on rank
 * dy_hash_u64(seed, DY_STREAM_SCATTER, g) % size after the redistribution (data.placement =
 * "random"), or on the rank whose block holds frame t ("block": nothing is fetched, a rank keeps
 * only its blocks), so the split and the union of all ranks' pairs do not depend on the rank
 * count. Local pairs are sorted by g.
 * A pair is two row pointers into the frames its rank holds: its blocks, and the frames of other
 * ranks' blocks that its pairs use, fetched once when loading (each frame once per rank), so a
 * rank keeps no frame twice. */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"
#include "analysis/dy_tica.h"

/* This rank's contiguous block of one trajectory (frames [start, start + count)), read for the
 * pairs and kept so that results can be written for every frame. Blocks of all ranks partition
 * the trajectory's frames; `x` also holds the `lag` frames of overlap after the block. */
typedef struct {
  int64_t frames;    /* F_i, global frame count */
  int64_t start;     /* first frame owned by this rank */
  int64_t count;     /* frames owned by this rank (results are written for these) */
  int64_t nread;     /* frames read: count plus up to lag overlap */
  dy_real *x;        /* (nread, D) */
  dy_real *y;        /* (nread, Dy) targets, or NULL without targets */
} DyTrajBlock;

/* A set of pairs held by this rank (training or test). */
typedef struct {
  int64_t n;                /* local pairs */
  int64_t *id;              /* (n) global pair ids g, ascending */
  const dy_real **x0, **x1; /* (n) rows of D features: frames t and t + lag, in a block or fetched */
  const dy_real **y0, **y1; /* (n) rows of their Dy targets; the arrays alias x0, x1 without targets */
} DyPairs;

typedef struct {
  int ntraj;            /* trajectories */
  int D, Dy;            /* input and target features */
  int has_target;       /* 1 when data.target was given (else y0, y1 alias x0, x1 and Dy = D) */
  int lag;              /* frames between the two members of a pair */
  DyPlacement placement; /* data.placement: where pairs live (see above) */
  char **name;          /* (ntraj) the input entries as written, FILE:DATASET, for messages */
  int64_t *frames;      /* (ntraj) global frame counts */
  int64_t *pair_offset; /* (ntraj + 1) global pair id offsets; pair_offset[ntraj] = all pairs */
  DyTrajBlock *block;   /* (ntraj) this rank's blocks */
  DyPairs train, test;  /* this rank's pairs after the split and redistribution */
  /* Frames of other ranks' blocks that this rank's pairs use, with their global frame ids (the
   * frames of the trajectories before, plus the frame); those of rank r are the rows
   * [fetched_from[r], fetched_from[r + 1]), in ascending id order. */
  int64_t nfetched;
  int64_t *fetched_id;   /* (nfetched) */
  int64_t *fetched_from; /* (size + 1) */
  dy_real *fetched_x;    /* (nfetched, D) */
  dy_real *fetched_y;    /* (nfetched, Dy) with targets, else NULL */
  int64_t ntrain_global, ntest_global; /* pairs of each kind over all ranks */
  /* data.standardize (dy_standardize.h): x_std = (x - mean) / scale; all NULL when it is off.
   * Without targets the target statistics repeat the input ones. */
  double *input_mean, *input_scale;   /* (D) */
  double *target_mean, *target_scale; /* (Dy) */
  DyTica *tica;         /* the TICA of the inputs as read (data.tica_dim > 0: the blocks hold its
                         * projections, D = tica_dim; model.type = "tica": the model), or NULL */
} DyData;

/* Collective: validates every input (and target) dataset, reads this rank's blocks with
 * collective hyperslab reads, turns them into features (dy_frames.h) and standardises them
 * (dy_standardize.h) when asked, forms the pairs, splits them and redistributes them with one
 * all-to-all. Bad data is a DY_ERR_INPUT error naming file, dataset and first bad frame; on any
 * error every rank fails together and `data` is left empty (dy_data_free is still safe). */
PetscErrorCode dy_data_load(MPI_Comm comm, const DyConfig *cfg, DyData *data);
/* Collective: prints the plan (trajectories, frames, features, pairs per rank) on rank 0. */
PetscErrorCode dy_data_print_plan(MPI_Comm comm, const DyData *data, FILE *fp);
/* Decodes a global pair id 0 <= g < pair_offset[ntraj] into (trajectory, t). */
void dy_data_pair_locate(const DyData *data, int64_t g, int *traj, int64_t *t);
/* Frees everything and zeroes the struct; safe on a zeroed or partly loaded struct. */
void dy_data_free(DyData *data);

/* Collective (src/io/data_tica.c): fits TICA (cfg's [tica] epsilon and scaling) to all pairs
 * (t, t + lag) of all trajectories, read from the blocks (partners beyond a block's overlap are
 * fetched from the ranks that hold them), with k components; lag_key and k_key name the keys in
 * messages. A lag that leaves no pair, and fewer than k components kept, are DY_ERR_INPUT errors.
 * The result becomes data->tica (freed with the data). */
PetscErrorCode dy_data_tica_fit(MPI_Comm comm, const DyConfig *cfg, DyData *data, int lag, const char *lag_key, int k,
                                const char *k_key);
/* The same fit with the given scaling into the caller's *tica (free with dy_tica_destroy), leaving
 * data->tica alone. */
PetscErrorCode dy_data_tica_compute(MPI_Comm comm, const DyConfig *cfg, const DyData *data, int lag,
                                    const char *lag_key, int k, const char *k_key, DyTicaScaling scaling, DyTica *tica);
/* Collective, the data.tica_dim hook of dy_data_load (a no-op when it is 0): fits TICA at
 * data.lag and replaces every block's frames (overlap included) by their first tica_dim TICs,
 * so that the pairs, the model and the results see D = tica_dim features. */
PetscErrorCode dy_data_tica_project(MPI_Comm comm, const DyConfig *cfg, DyData *data);
