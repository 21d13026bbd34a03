/* Targets for the warm-up epoch (train.warmup_target = "tica", SPEC section 4).
 *
 * Why. The plain autoencoder of the warm-up gives the latent whatever shape the reconstruction
 * finds first, and on data whose frames overlap only with near neighbours (images of a moving
 * object) that shape is often folded or wound around a point. The later epochs' dynamics term
 * acts inside bins of the latent and cannot undo such a fold. The leading TICs of the inputs are
 * the slowest linear functions of the frames; for a diffusion they approximate the slowest
 * eigenfunctions of its generator, which are smooth and monotone along the slow coordinates, so a
 * latent started there has no fold to undo.
 *
 * What. TICA (dy_tica.h, tica.lag and tica.epsilon, no scaling) of all frames gives the first d
 * TICs u_i(x). Each is scaled by c_i so that its moves over data.lag have the mean square 2 of a
 * unit diffusion (constant diffusion's prior moves: sqrt(2) eps): c_i = sqrt(2 / mean over the
 * training pairs of (u_i(x_{t+lag}) - u_i(x_t))^2); equal moves in every direction is what an
 * isometric latent has. That gives the anchors A(x) = c .* (u(x) - mean(u)).
 *   The warm-up's targets are the anchors moved to the centre and spread of the initial encoder's
 * latent z (of the training pairs' first frames), so that the warm-up only has to rearrange the
 * latent, not to grow it by orders of magnitude at its small learning rate:
 *   target(x) = mean(z) + s A(x),  s = sqrt(sum_i var(z_i) / sum_i var(A_i))
 * (s = 1 when the initial latent has no spread). In the warm-up the encoder follows
 * sum |z - target|^2 alone, and the decoder learns to reconstruct from that latent
 * (DyLossOptions.target). At its end the latent is moved exactly to (z - mean(z)) / s, about
 * A(x) (dy_model_scale_latent). A fit of the encoder is never exact, and its error is not small
 * beside one lag's moves, which the binned epochs match to the prior's: left alone they shrink
 * the latent to fit them. So for train.target_epochs epochs after the warm-up the anchors stay in
 * L_rep with the weight loss.beta train.target_weight, falling linearly (step by step) to 0.
 *
 * Where. Every rank holds the anchors of its own training pairs (2 d values per pair); the fit is
 * distributed like model.type = "tica", and the projections go through dy_tica_project in chunks
 * of the caller's buffer, the same number of chunks on every rank. The anchors do not depend on
 * the encoder, so a restart after the warm-up rebuilds them alike. */
#pragma once
#include "base/dy_common.h"
#include "io/dy_config.h"
#include "io/dy_data.h"
#include "nn/dy_model.h"

typedef struct {
  int d;             /* latent dimension */
  int64_t n;         /* this rank's training pairs */
  dy_real *t0, *t1;  /* (n, d) anchors of each pair's frames t and t + lag */
  double scale;      /* s above (1 without the initial latent) */
  double mean[64];   /* (d) mean(z) above (0 without it) */
  double c[64];      /* (d) c_i above */
  double timescale[64]; /* (d) the TICs' implied timescales, frames */
  int lag;           /* tica.lag of the fit */
} DyWarmup;

/* Collective: fits TICA to data's frames and fills w with the anchors of data->train's pairs. z0
 * (n, d) is the initial encoder's latent of each training pair's first frame, for the warm-up's
 * targets, or NULL (a run past its warm-up); buf (chunk, D) is scratch for gathered frames. A TICA that keeps fewer than d components is a DY_ERR_INPUT error
 * naming model.latent_dim. Prints what it did on rank 0 unless quiet. */
PetscErrorCode dy_warmup_create(MPI_Comm comm, const DyConfig *cfg, const DyData *data, const dy_real *z0,
                                int64_t chunk, dy_real *buf, int quiet, DyWarmup *w);

/* The targets of nb training pairs idx[0..nb) into target (2 nb, d): the first frames' rows, then
 * the second frames'; the warm-up's (warm = 1) or the anchors. */
void dy_warmup_gather(const DyWarmup *w, int warm, int nb, const int64_t *idx, dy_real *target);

/* At the end of the warm-up: moves the model's latent from the targets' place to the scale of its
 * diffusion, z' = (z - mean) / scale (dy_model_scale_latent), so that the binned epochs start with
 * bins that resolve it. */
void dy_warmup_move(const DyWarmup *w, DyModel *model);

/* Collective: how well the latent after dy_warmup_move, z0 (n, d) of the training pairs' first
 * frames, follows their anchors a, as the fraction of their variance explained,
 * 1 - sum |z - a|^2 / sum |a - mean(a)|^2 over all ranks' pairs. */
PetscErrorCode dy_warmup_explained(MPI_Comm comm, const DyWarmup *w, const dy_real *z0, double *explained);

/* Frees the targets and zeroes the struct; safe on a zeroed one. */
void dy_warmup_destroy(DyWarmup *w);
