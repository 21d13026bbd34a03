/* Gradient check of the convolution kernels (dy_conv.h) against central differences, in double
 * precision: the objective is sum(R * layer(X)) with a fixed random R, so the backward kernels run
 * with dY = R and every gradient they add (dX, dW, db) is compared with the differences, on
 * convolutions and transposed convolutions of the image networks' kind (4x4, stride 2, padding 1;
 * 1x1) and on odd ones (3x3 stride 2 without padding, non-square images, odd channel counts), and
 * on a batch that spans several of the kernels' image chunks. The backward kernels must also add
 * (not overwrite): they run twice and the result must double. Also checked: dy_conv_forward's
 * ReLU equals max(SET, 0). */
#include "nn/dy_conv.h"
#include "base/dy_rng.h"
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-7
#define FD_STEP 1e-3 /* the objective is linear in each argument: the differences are exact up to round-off */

typedef struct {
  DyConv c;
  int n;
  dy_real *X, *W, *b, *R, *Y, *work;
} Problem;

static double objective(void *ctx)
{
  Problem *p = ctx;
  dy_conv_forward(&p->c, p->n, p->X, p->W, p->b, DY_EPI_SET, p->Y, p->work);
  double s = 0;
  const size_t m = (size_t)p->n * dy_conv_out_len(&p->c);
  for (size_t i = 0; i < m; i++) s += (double)p->R[i] * p->Y[i];
  return s;
}

static dy_real *normals(DyRng *rng, size_t n)
{
  dy_real *a = malloc(n * sizeof *a);
  for (size_t i = 0; i < n; i++) a[i] = (dy_real)dy_rng_normal(rng);
  return a;
}

static dy_real *zeros(size_t n) { return calloc(n, sizeof(dy_real)); }

/* up to 80 indices of [0, n), spread evenly with a random start */
static size_t pick(DyRng *rng, size_t n, size_t *idx)
{
  const size_t m = n < 80 ? n : 80, start = (size_t)(dy_rng_uniform(rng) * n);
  for (size_t k = 0; k < m; k++) idx[k] = (start + k * (n / m)) % n;
  return m;
}

static int check_case(const char *name, int transposed, int cin, int hin, int win, int cout, int k, int s, int pad, int n,
                      uint64_t seed)
{
  Problem p = {.n = n};
  if (dy_conv_setup(&p.c, transposed, cin, hin, win, cout, k, s, pad)) {
    printf("FAIL %s: bad geometry\n", name);
    return 1;
  }
  DyRng rng;
  dy_rng_seed(&rng, seed, 0);
  const size_t nx = (size_t)n * dy_conv_in_len(&p.c), ny = (size_t)n * dy_conv_out_len(&p.c), nw = dy_conv_weight_len(&p.c);
  const int nb = p.c.cout;
  p.X = normals(&rng, nx);
  p.W = normals(&rng, nw);
  p.b = normals(&rng, (size_t)nb);
  p.R = normals(&rng, ny);
  p.Y = zeros(ny);
  p.work = aligned_alloc(64, (dy_conv_work_len(&p.c) * sizeof(dy_real) + 63) / 64 * 64);
  dy_real *dX = zeros(nx), *dW = zeros(nw), *db = zeros((size_t)nb);
  objective(&p);
  dy_conv_backward(&p.c, n, p.X, p.R, p.W, dX, dW, db, p.work);

  DyFdStats st[3] = {{0}};
  size_t idx[80], m;
  m = pick(&rng, nx, idx);
  dy_fd_check(objective, &p, p.X, m, idx, dX, FD_STEP, 1e-6, 1e-6, 1e-6, &st[0]);
  m = pick(&rng, nw, idx);
  dy_fd_check(objective, &p, p.W, m, idx, dW, FD_STEP, 1e-6, 1e-6, 1e-6, &st[1]);
  m = pick(&rng, (size_t)nb, idx);
  dy_fd_check(objective, &p, p.b, m, idx, db, FD_STEP, 1e-6, 1e-6, 1e-6, &st[2]);
  objective(&p);

  int bad = 0;
  const char *what[3] = {"dX", "dW", "db"};
  for (int t = 0; t < 3; t++) {
    const int fail = st[t].max_rel > TOL || st[t].nkinks > 0 || st[t].nchecked == 0;
    printf("%s %s %s: %zu checked, max rel %.2e\n", fail ? "FAIL" : "ok  ", name, what[t], st[t].nchecked, st[t].max_rel);
    bad += fail;
  }

  /* backward adds: a second call doubles every gradient */
  dy_real *dX2 = zeros(nx), *dW2 = zeros(nw), *db2 = zeros((size_t)nb);
  memcpy(dX2, dX, nx * sizeof *dX2);
  memcpy(dW2, dW, nw * sizeof *dW2);
  memcpy(db2, db, (size_t)nb * sizeof *db2);
  dy_conv_backward(&p.c, n, p.X, p.R, p.W, dX2, dW2, db2, p.work);
  double worst = 0;
  for (size_t i = 0; i < nx; i++) worst = fmax(worst, fabs(dX2[i] - 2 * dX[i]));
  for (size_t i = 0; i < nw; i++) worst = fmax(worst, fabs(dW2[i] - 2 * dW[i]));
  for (int i = 0; i < nb; i++) worst = fmax(worst, fabs(db2[i] - 2 * db[i]));
  if (worst > 1e-9) {
    printf("FAIL %s: second backward does not add (%.2e)\n", name, worst);
    bad++;
  }
  /* ReLU epilogue */
  dy_real *Yr = zeros(ny);
  dy_conv_forward(&p.c, n, p.X, p.W, p.b, DY_EPI_RELU, Yr, p.work);
  worst = 0;
  for (size_t i = 0; i < ny; i++) worst = fmax(worst, fabs(Yr[i] - (p.Y[i] > 0 ? p.Y[i] : 0)));
  if (worst > 1e-12) {
    printf("FAIL %s: ReLU forward differs from max(SET, 0) by %.2e\n", name, worst);
    bad++;
  }
  free(Yr);
  free(dX2);
  free(dW2);
  free(db2);
  free(dX);
  free(dW);
  free(db);
  free(p.X);
  free(p.W);
  free(p.b);
  free(p.R);
  free(p.Y);
  free(p.work);
  return bad;
}

int main(void)
{
  int bad = 0;
  /* the image networks' layers, on small images */
  bad += check_case("conv 4x4/2 pad 1, 3->5 ch, 8x8", 0, 3, 8, 8, 5, 4, 2, 1, 2, 1);
  bad += check_case("conv 1x1, 6->3 ch, 4x4", 0, 6, 4, 4, 3, 1, 1, 0, 3, 2);
  bad += check_case("convT 4x4/2 pad 1, 4->3 ch, 4x4", 1, 4, 4, 4, 3, 4, 2, 1, 2, 3);
  /* odd sizes: non-square, odd channels, image sizes the stride does not divide, no padding */
  bad += check_case("conv 4x4/2 pad 1, 1->7 ch, 7x9", 0, 1, 7, 9, 7, 4, 2, 1, 3, 4);
  bad += check_case("conv 3x3/2 pad 0, 5->2 ch, 9x6", 0, 5, 9, 6, 2, 3, 2, 0, 2, 5);
  bad += check_case("convT 4x4/2 pad 1, 3->1 ch, 3x5", 1, 3, 3, 5, 1, 4, 2, 1, 3, 6);
  bad += check_case("convT 3x3/2 pad 0, 2->5 ch, 5x4", 1, 2, 5, 4, 5, 3, 2, 0, 2, 7);
  /* batches across several image chunks (a chunk holds 3 of these images) */
  bad += check_case("conv 4x4/2 pad 1, 16->8 ch, 34x34, 5 images", 0, 16, 34, 34, 8, 4, 2, 1, 5, 8);
  bad += check_case("convT 4x4/2 pad 1, 8->16 ch, 17x17, 5 images", 1, 8, 17, 17, 16, 4, 2, 1, 5, 9);
  printf("%s\n", bad ? "FAILED" : "all convolution gradients agree");
  return bad ? 1 : 0;
}
