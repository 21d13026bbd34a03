/* Central-difference gradient checker (see fdcheck.h). */
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / (12 h): error O(h^4). */
static double dy_fd_derivative(DyFdFunc f, void *ctx, dy_real *xi, double h)
{
  const dy_real x0 = *xi;
  double v[4];
  const double steps[4] = {h, -h, 2 * h, -2 * h};
  for (int s = 0; s < 4; s++) {
    *xi = (dy_real)(x0 + steps[s]);
    v[s] = f(ctx);
  }
  *xi = x0;
  return (8 * (v[0] - v[1]) - (v[2] - v[3])) / (12 * h);
}

static double dy_rel(double a, double b, double floor)
{
  const double den = fabs(a) + fabs(b);
  return fabs(a - b) / (den > floor ? den : floor);
}

void dy_fd_check(DyFdFunc f, void *ctx, dy_real *x, size_t n, const size_t *idx, const dy_real *grad, double h,
                 double floor, double kink_floor, double kink_tol, DyFdStats *stats)
{
  for (size_t k = 0; k < n; k++) {
    const size_t i = idx[k];
    const double fd1 = dy_fd_derivative(f, ctx, x + i, h);
    const double fd2 = dy_fd_derivative(f, ctx, x + i, h / 2);
    if (dy_rel(fd1, fd2, kink_floor) > kink_tol) {
      if (getenv("DY_FD_VERBOSE")) fprintf(stderr, "kink %zu: fd %.12e %.12e grad %.12e\n", i, fd1, fd2, (double)grad[i]);
      stats->nkinks++;
      continue;
    }
    const double rel = dy_rel((double)grad[i], fd2, floor), err = fabs((double)grad[i] - fd2);
    if (rel > stats->max_rel) {
      stats->max_rel = rel;
      stats->worst = i;
    }
    if (err > stats->max_abs) stats->max_abs = err;
    stats->nchecked++;
  }
}

void dy_fd_check_net(DyFdFunc f, void *ctx, DyModel *model, int k, const dy_real *grad, double h, double floor,
                     double kink_floor, double kink_tol, double tol, const char *label, double *worst, size_t *nkinks,
                     size_t *ntotal, int *bad)
{
  const DyMlp *net = &model->net[k];
  size_t off = net->offset;
  size_t *idx = malloc(net->nparam * sizeof *idx);
  for (int l = 0; l < net->nlayer; l++) {
    const size_t nw = (size_t)net->dims[l] * net->dims[l + 1], nb = (size_t)net->dims[l + 1];
    for (int part = 0; part < 2; part++) {
      const size_t n = part ? nb : nw;
      for (size_t i = 0; i < n; i++) idx[i] = off + i;
      DyFdStats st = {0};
      dy_fd_check(f, ctx, model->params, n, idx, grad, h, floor, kink_floor, kink_tol, &st);
      printf("  %s layer %d %s: %4zu checked, %2zu kinks, max rel %.2e, max abs %.2e\n", label, l, part ? "b" : "W",
             st.nchecked, st.nkinks, st.max_rel, st.max_abs);
      if (st.max_rel > *worst) *worst = st.max_rel;
      if (st.max_rel > tol || st.nchecked == 0) *bad = 1;
      *nkinks += st.nkinks;
      *ntotal += n;
      off += n;
    }
  }
  free(idx);
}
