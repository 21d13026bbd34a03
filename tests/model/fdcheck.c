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

void dy_fd_check_cnn(DyFdFunc f, void *ctx, DyModel *model, int k, const dy_real *grad, size_t npick, double h,
                     double floor, double kink_floor, double kink_tol, double tol, const char *label, double *worst,
                     size_t *nkinks, size_t *ntotal, int *bad)
{
  const DyCnn *net = &model->cnn[k];
  size_t *idx = malloc(npick * sizeof *idx);
  for (int l = 0; l < net->nlayer; l++) {
    const DyCnnLayer *Ly = &net->layer[l];
    size_t checked = 0;
    double gmax = 0;
    for (int part = 0; part < 2; part++) {
      const size_t n = part ? Ly->nb : Ly->nw, m = n < npick ? n : npick;
      const size_t off = model->net[k].offset + Ly->woff + (part ? Ly->nw : 0);
      for (size_t i = 0; i < m; i++) {
        idx[i] = off + (i * 7919) % n; /* a prime stride through the tensor */
        gmax = fmax(gmax, fabs((double)grad[idx[i]]));
      }
      DyFdStats st = {0};
      dy_fd_check(f, ctx, model->params, m, idx, grad, h, floor, kink_floor, kink_tol, &st);
      printf("%s %s layer %d %s: %2zu checked, %zu kinks, max rel %.2e, max abs %.2e\n",
             st.max_rel > tol ? "FAIL" : "  ", label, l, part ? "b" : "W", st.nchecked, st.nkinks, st.max_rel,
             st.max_abs);
      if (st.max_rel > *worst) *worst = st.max_rel;
      if (st.max_rel > tol) *bad = 1;
      checked += st.nchecked;
      *nkinks += st.nkinks;
      *ntotal += m;
    }
    if (!checked || gmax == 0) {
      printf("  FAIL %s layer %d: %s\n", label, l,
             checked ? "every gradient picked is zero (ReLUs all off: the check would say nothing)"
                     : "every value on a kink");
      *bad = 1;
    }
  }
  free(idx);
}

dy_real *dy_fd_images(DyRng *rng, int n, int C, double noise)
{
  const int side = DY_CNN_SIDE;
  dy_real *a = malloc((size_t)n * C * side * side * sizeof *a);
  for (int i = 0; i < n * C; i++) {
    const double cx = 16 + 32 * dy_rng_uniform(rng), cy = 16 + 32 * dy_rng_uniform(rng);
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        a[((size_t)i * side + y) * side + x] =
            (dy_real)(exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 50.0) + noise * dy_rng_normal(rng));
  }
  return a;
}

double dy_fd_baseline_objective(void *ctx)
{
  DyFdBaseline *p = ctx;
  DyLosses l;
  dy_baseline_losses(p->model, p->work, &p->opt, p->B, p->L, p->x0, p->x1, p->y0, p->y1, p->theta, p->noise, &l);
  return l.rec + p->opt.beta * (l.sw + l.prior);
}

void dy_fd_baseline_draw(DyFdBaseline *p, DyRng *rng)
{
  const int d = p->model->d;
  const size_t nn = (size_t)dy_baseline_noise_rows(p->opt.type, p->B) * d;
  p->noise = malloc(nn * sizeof *p->noise);
  for (size_t i = 0; i < nn; i++) p->noise[i] = (dy_real)dy_rng_normal(rng);
  if (p->opt.type == DY_BASELINE_SWAE)
    for (size_t i = 0; i < nn; i++) p->noise[i] = (dy_real)(2 * dy_rng_uniform(rng) - 1);
  p->theta = malloc((size_t)p->L * d * sizeof *p->theta);
  double *v = malloc((size_t)d * sizeof *v);
  for (int l = 0; l < p->L; l++) {
    dy_rng_unit_vector(rng, d, v);
    for (int k = 0; k < d; k++) p->theta[(size_t)l * d + k] = (dy_real)v[k];
  }
  free(v);
}

int dy_fd_latent_is_mean(const DyModel *model, DyWork *nets, int n, const dy_real *x)
{
  const int d = model->d, zo = model->net[DY_NET_ENCODER].dims[model->net[DY_NET_ENCODER].nlayer];
  dy_real *z = malloc((size_t)n * d * sizeof *z);
  dy_model_encode(model, nets, n, x, z);
  dy_model_net_prepare(model, nets);
  const dy_real *o = dy_model_net_forward(model, nets, DY_NET_ENCODER, n, x);
  int same = 1;
  for (int r = 0; r < n && same; r++)
    for (int i = 0; i < d; i++)
      if (z[(size_t)r * d + i] != o[(size_t)r * zo + i]) {
        printf("  FAIL dy_model_encode row %d differs from the encoder's mean\n", r);
        same = 0;
        break;
      }
  free(z);
  return same;
}

void dy_fd_baseline_destroy(DyFdBaseline *p, DyWork **nets)
{
  free(p->x0), free(p->x1), free(p->y0), free(p->y1), free(p->noise), free(p->theta);
  dy_basework_destroy(&p->work);
  dy_work_destroy(nets);
  dy_model_destroy(p->model);
}
