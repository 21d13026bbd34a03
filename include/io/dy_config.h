/* The input file (SPEC section 7): defaults, reading, --set overrides, validation, printing.
 * Options are processed in one place: dy_config_load sets the defaults, reads the TOML file,
 * applies every --set, then validates; any problem is a DY_ERR_INPUT error naming file:line and
 * the key. */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_model.h"
#include "analysis/dy_fields.h"
#include "analysis/dy_tica.h"

#include <stdio.h>

#define DY_PATH_MAX 4096
#define DY_WORD_MAX 32 /* room of a one-word key's field, e.g. model.type */

/* One trajectory (or target) entry FILE:DATASET, split at the last ':' (so FILE may hold colons),
 * with FILE resolved against the input's folder. DATASET is a path from the file's root group; a
 * missing leading '/' is added ("traj.h5:positions" means "/positions"). */
typedef struct {
  char *file;     /* path of the HDF5 file, resolved */
  char *dataset;  /* dataset path inside the file, always starting with '/', e.g. "/positions" */
  char *text;     /* the entry as written in the input file (for messages) */
} DyDataRef;

/* data.scale: with data.standardize, all features centred and divided by one common scale (the
 * root mean square of their standard deviations), or each by its own standard deviation. */
typedef enum { DY_SCALE_COMMON = 0, DY_SCALE_FEATURE = 1 } DyScale;
/* data.placement: which rank keeps each pair (see io/dy_data.h). */
typedef enum { DY_PLACEMENT_RANDOM = 0, DY_PLACEMENT_BLOCK = 1 } DyPlacement;
/* train.batch: what train.batch_size counts. */
typedef enum { DY_BATCH_PER_RANK = 0, DY_BATCH_GLOBAL = 1 } DyBatchMode;
/* train.warmup_target: what the encoder learns in the warm-up epoch */
typedef enum { DY_WARMUP_TARGET_NONE = 0, DY_WARMUP_TARGET_TICA = 1 } DyWarmupTarget;
/* train.lr_scaling: the learning rates of per-rank batches multiplied by 1, sqrt(P) or P. */
typedef enum { DY_LR_SCALING_NONE = 0, DY_LR_SCALING_SQRT = 1, DY_LR_SCALING_LINEAR = 2 } DyLrScaling;

typedef struct {
  /* [data] */
  int ntraj;               /* number of data.input entries */
  DyDataRef *input;        /* (ntraj) */
  int ntarget;             /* 0 or ntraj */
  DyDataRef *target;       /* (ntarget) */
  int lag;                 /* frames between the members of a pair, >= 1 */
  double test_fraction;    /* in [0, 1) */
  int tica_dim;            /* k > 0: the encoder sees the first k TICs of the inputs; 0: off */
  int natoms;              /* entries of data.atoms; 0: every atom */
  int *atoms;              /* (natoms) 0-based atom indices kept from 3-D inputs */
  char features[DY_WORD_MAX]; /* "coordinates", "aligned" or "distances" (3-D inputs) */
  int standardize;         /* bool: centre every input and target feature over the training frames and scale it */
  DyScale scale;           /* data.scale: one common scale for all features, or each its own (z-score) */
  DyPlacement placement;   /* data.placement: pairs spread at random over the ranks, or kept with their frames */
  /* [model] */
  char type[DY_WORD_MAX];  /* "dynamicsae", "tica", or a baseline "vae", "swae", "sdevae" (nn/dy_baseline.h) */
  int latent_dim;          /* d >= 1 */
  int nencoder, ndecoder, nprior;              /* hidden layer counts, >= 1 */
  int encoder[DY_MAX_LAYERS - 1];              /* hidden widths */
  int decoder[DY_MAX_LAYERS - 1];
  int prior[DY_MAX_LAYERS - 1];
  DyDiffusion diffusion;   /* "constant" or "learned" */
  DyActivation activation; /* model.activation: hidden layers of encoder and decoder, "relu" or "tanh" */
  DyNetwork network;       /* model.network: "mlp", or "conv" for 64 x 64 images (dy_convnet.h) */
  /* [loss] */
  double beta;             /* >= 0 */
  int projections;         /* L >= 1 */
  double nu;               /* sdevae: precision of the prior of z0, > 0 */
  /* [cluster] */
  double d_min;            /* > 0 */
  double gamma;            /* >= 1 */
  int max_centers;         /* >= 1 */
  /* [tica] */
  int tica_lag;            /* frames, >= 1 (0 in the file: data.lag, resolved when loading) */
  double tica_epsilon;     /* eigenvalues of C0 below it are dropped, > 0 */
  DyTicaScaling tica_scaling; /* "kinetic_map" or "none" */
  /* [train] */
  int epochs;              /* epochs in all, counting the warm-up epoch 0; >= 1 */
  int batch_size;          /* pairs per step: per rank or over all ranks (batch), >= 2 */
  DyBatchMode batch;       /* "per_rank" or "global" */
  DyLrScaling lr_scaling;  /* "none", "sqrt" or "linear" (per_rank only) */
  int lr_warmup_epochs;    /* epochs after the warm-up over which the scaling ramps up, >= 0 */
  double lr, prior_lr, warmup_lr;  /* > 0 */
  double warmup_beta_scale;        /* >= 0 */
  DyWarmupTarget warmup_target;    /* "none": the reconstruction shapes the warm-up's latent; "tica":
                                    * the encoder is fitted to the leading TICs (app/dy_warmup.h) */
  double target_weight;            /* >= 0: the anchors' weight after the warm-up, times beta */
  int target_epochs;               /* >= 0: epochs after the warm-up over which it falls to 0 */
  int64_t seed;            /* >= 0 */
  int64_t test_pairs;      /* test pairs evaluated per epoch (a fixed random subset; the last epoch
                            * and 0: all of them), >= 0 */
  /* [output] */
  char *dir;               /* output folder, resolved against the input's folder */
  char *dir_given;         /* output.dir as written (for the effective configuration) */
  int checkpoint_every;    /* epochs, >= 0 (0: never) */
  int checkpoint_steps;    /* also every N steps, 0: off */
  int results_every;       /* results.h5 refreshed every N epochs (and with step and signal
                            * checkpoints, and at the end), 0: not between epochs */
  int save_reconstruction; /* bool */
  int quiet;               /* no per-epoch progress lines */
  /* [analysis] */
  int grid;                /* grid points per latent axis of /fields/, >= 2 */
  double margin;           /* the grid extends the latent range by margin * range on each side, >= 0 */
  DyFieldsWeight force_weight; /* "density" or "none": the face weights of the force free energy's fit */
  int force_refit;         /* bool: refit the force net's output layer on the training pairs for /fields/ */
  /* provenance */
  char *path;              /* the input file as given */
  char *effective;         /* the effective configuration as TOML text (after --set) */
} DyConfig;

/* Collective on comm: rank 0 reads the file and broadcasts its text; every rank parses it, so
 * every rank fails alike. sets[i] are "section.key=value" strings from --set, applied in order
 * after the file (a later one wins); the value is in TOML syntax, but a value that is not valid
 * TOML, and any value not starting with a quote for a key that takes a string (output.dir,
 * model.type, model.diffusion), is taken as the string written: --set output.dir=2024 is the
 * folder "2024". Relative paths, also those given with --set, are resolved against the input
 * file's folder. On error (DY_ERR_INPUT, message "FILE:LINE: section.key ..." or
 * "--set ARG: ...") cfg is left empty; on success free it with dy_config_free. */
PetscErrorCode dy_config_load(MPI_Comm comm, const char *path, int nset, char *const *sets, DyConfig *cfg);
/* Writes the effective configuration (cfg->effective) to fp on rank 0 of comm. */
PetscErrorCode dy_config_print(MPI_Comm comm, const DyConfig *cfg, FILE *fp);
/* The model shape this configuration asks for, given the data's feature counts. */
void dy_config_model_shape(const DyConfig *cfg, int D, int Dy, DyModelShape *shape);
void dy_config_free(DyConfig *cfg);
