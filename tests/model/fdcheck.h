/* Central-difference gradient checker for the model tests. */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_baseline.h"
#include "nn/dy_model.h"

#include <stddef.h>

/* Objective evaluated at the current contents of the parameter array being checked. */
typedef double (*DyFdFunc)(void *ctx);

/* Outcome of one or more checks (accumulates across calls). */
typedef struct {
  double max_rel;      /* worst relative error |g - fd| / max(|g| + |fd|, floor) */
  double max_abs;      /* worst absolute error */
  size_t worst;        /* index of the worst parameter */
  size_t nchecked;     /* parameters compared */
  size_t nkinks;       /* parameters skipped because the objective is not smooth there */
} DyFdStats;

/* For each of the n indices idx[k] of x: a fourth-order central difference of f at step h and at h/2.
 * When the two disagree (|fd1 - fd2| / max(|fd1| + |fd2|, kink_floor) above kink_tol) the
 * objective has a kink (sort order or ReLU switch) within the stencil and the index is skipped and
 * counted; otherwise the analytic grad[idx[k]] is compared with the h/2 estimate, the relative error
 * being |g - fd| / max(|g| + |fd|, floor). x is restored exactly. */
void dy_fd_check(DyFdFunc f, void *ctx, dy_real *x, size_t n, const size_t *idx, const dy_real *grad, double h,
                 double floor, double kink_floor, double kink_tol, DyFdStats *stats);

/* dy_fd_check of every layer's W and b of net k of model against grad (the whole parameter
 * buffer's gradient), one line per tensor printed after `label`; the worst relative error is
 * raised into *worst, the parameters skipped on kinks and those tried added to *nkinks and
 * *ntotal, and *bad set when a tensor's error exceeds tol or none of it could be checked. */
void dy_fd_check_net(DyFdFunc f, void *ctx, DyModel *model, int k, const dy_real *grad, double h, double floor,
                     double kink_floor, double kink_tol, double tol, const char *label, double *worst, size_t *nkinks,
                     size_t *ntotal, int *bad);

/* The same for image net k (model->network = DY_NETWORK_CONV, k the encoder or the decoder): npick
 * values of each layer's weight and of its bias, spread over the tensor. A layer fails when its
 * error exceeds tol, when all its picked values sit on kinks (ReLU switches: a bias moves
 * thousands of pixels), or when all their gradients are zero (a dead layer, which no difference
 * would contradict); counts and *worst as above. */
void dy_fd_check_cnn(DyFdFunc f, void *ctx, DyModel *model, int k, const dy_real *grad, size_t npick, double h,
                     double floor, double kink_floor, double kink_tol, double tol, const char *label, double *worst,
                     size_t *nkinks, size_t *ntotal, int *bad);

/* n images of C channels of 64 x 64 pixels for the image nets: a smooth blob at a random place per
 * channel plus normal noise of the given scale, so that the ReLUs see a spread of values (malloc'ed). */
dy_real *dy_fd_images(DyRng *rng, int n, int C, double noise);

/* One step of a baseline (nn/dy_baseline.h) on fixed inputs, and its objective for dy_fd_check:
 * rec + beta (sw + prior) of dy_baseline_losses. */
typedef struct {
  DyModel *model;
  DyBaseWork *work;
  DyBaselineOptions opt;
  int B, L;
  dy_real *x0, *x1, *y0, *y1, *theta, *noise;
} DyFdBaseline;
double dy_fd_baseline_objective(void *ctx);
/* The step's random inputs, malloc'ed: p->noise, dy_baseline_noise_rows rows of d standard normals
 * (replaced by uniform values on [-1, 1] for swae's prior samples), and p->theta, L unit vectors. */
void dy_fd_baseline_draw(DyFdBaseline *p, DyRng *rng);
/* Whether the latent of the results (dy_model_encode of the n frames x) is the encoder's mean, its
 * first d outputs; prints the first row that differs. */
int dy_fd_latent_is_mean(const DyModel *model, DyWork *nets, int n, const dy_real *x);
/* Frees the problem's arrays (x0, x1, y0, y1, noise, theta), its workspaces and its model. */
void dy_fd_baseline_destroy(DyFdBaseline *p, DyWork **nets);
