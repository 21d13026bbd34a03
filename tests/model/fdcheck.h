/* Central-difference gradient checker for the model tests. */
#pragma once
#include "base/dy_common.h"
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
