/* Parity of the convolution kernels and of the image encoder and decoder with PyTorch
 * (tools/torch_conv_oracle.py), in double precision.
 *
 *   parity_conv FIXTURE.h5 [--perturb]
 *
 * For every layer case: dy_conv_forward's output and dy_conv_backward's dX, dW, db with dY = R
 * against torch's output and the gradients of sum(R * Y). For every net case: dy_cnn_forward's
 * output and dy_cnn_backward's parameter gradient and input gradient. Error of each array:
 * max_i |got_i - ref_i| / max(max_i |ref_i|, 1e-300), held to 1e-10 (the differences are rounding
 * of sums of a few thousand terms). --perturb moves one element of the first layer case's dW by
 * 1e-6 of its array's largest value and inverts the verdict, showing the check catches that. */
#include "nn/dy_convnet.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-10

static int failures = 0;

static double *read_all(hid_t g, const char *name, size_t *count)
{
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) {
    fprintf(stderr, "parity_conv: no dataset %s\n", name);
    exit(1);
  }
  hid_t s = H5Dget_space(d);
  const size_t n = (size_t)H5Sget_simple_extent_npoints(s);
  double *a = malloc(n * sizeof *a);
  if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) < 0) exit(1);
  H5Sclose(s);
  H5Dclose(d);
  if (count) *count = n;
  return a;
}

static int attr_int(hid_t g, const char *name)
{
  int v = 0;
  hid_t a = H5Aopen(g, name, H5P_DEFAULT);
  if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &v) < 0) {
    fprintf(stderr, "parity_conv: no attribute %s\n", name);
    exit(1);
  }
  H5Aclose(a);
  return v;
}

static double rel_err(const dy_real *got, const double *ref, size_t n)
{
  double scale = 1e-300, e = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
  for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - ref[i]));
  return e / scale;
}

static void report(const char *cas, const char *what, double err)
{
  const int bad = !(err <= TOL);
  printf("%s %-16s %-6s %.2e\n", bad ? "FAIL" : "ok  ", cas, what, err);
  failures += bad;
}

static dy_real *to_real(const double *a, size_t n)
{
  dy_real *r = malloc((n ? n : 1) * sizeof *r);
  for (size_t i = 0; i < n; i++) r[i] = (dy_real)a[i];
  return r;
}

static void *walloc(size_t values) { return aligned_alloc(64, (values * sizeof(dy_real) + 63) / 64 * 64); }

static herr_t layer_case(hid_t parent, const char *name, const H5L_info_t *info, void *perturb)
{
  (void)info;
  hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
  DyConv c;
  if (dy_conv_setup(&c, attr_int(g, "transposed"), attr_int(g, "cin"), attr_int(g, "hin"), attr_int(g, "win"),
                    attr_int(g, "cout"), attr_int(g, "k"), attr_int(g, "stride"), attr_int(g, "pad"))) {
    fprintf(stderr, "parity_conv: bad geometry in %s\n", name);
    exit(1);
  }
  const int n = attr_int(g, "n");
  size_t nx, nw, nb, ny;
  double *X = read_all(g, "X", &nx), *W = read_all(g, "W", &nw), *b = read_all(g, "b", &nb), *R = read_all(g, "R", &ny);
  double *Yr = read_all(g, "Y", NULL), *dXr = read_all(g, "dX", NULL), *dWr = read_all(g, "dW", NULL);
  double *dbr = read_all(g, "db", NULL);
  dy_real *x = to_real(X, nx), *w = to_real(W, nw), *bb = to_real(b, nb), *r = to_real(R, ny);
  dy_real *y = calloc(ny, sizeof *y), *dx = calloc(nx, sizeof *dx), *dw = calloc(nw, sizeof *dw), *db = calloc(nb, sizeof *db);
  dy_real *work = walloc(dy_conv_work_len(&c));
  dy_conv_forward(&c, n, x, w, bb, DY_EPI_SET, y, work);
  dy_conv_backward(&c, n, x, r, w, dx, dw, db, work);
  if (*(int *)perturb) {
    dw[nw / 2] += (dy_real)(1e-6 * fabs(dWr[0]) + 1e-6);
    *(int *)perturb = 0;
  }
  report(name, "Y", rel_err(y, Yr, ny));
  report(name, "dX", rel_err(dx, dXr, nx));
  report(name, "dW", rel_err(dw, dWr, nw));
  report(name, "db", rel_err(db, dbr, nb));
  free(X), free(W), free(b), free(R), free(Yr), free(dXr), free(dWr), free(dbr);
  free(x), free(w), free(bb), free(r), free(y), free(dx), free(dw), free(db), free(work);
  H5Gclose(g);
  return 0;
}

static herr_t net_case(hid_t parent, const char *name, const H5L_info_t *info, void *unused)
{
  (void)info, (void)unused;
  hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
  const int C = attr_int(g, "C"), width = attr_int(g, "width"), d = attr_int(g, "d"), n = attr_int(g, "n");
  const int encoder = strstr(name, "encoder") != NULL;
  DyCnn net;
  if (encoder ? dy_cnn_encoder(&net, C, width, d) : dy_cnn_decoder(&net, d, width, C)) {
    fprintf(stderr, "parity_conv: bad net in %s\n", name);
    exit(1);
  }
  size_t np, nx, ny;
  double *P = read_all(g, "params", &np), *X = read_all(g, "X", &nx), *R = read_all(g, "R", &ny);
  double *Yr = read_all(g, "Y", NULL), *gr = read_all(g, "grad", NULL), *dXr = read_all(g, "dX", NULL);
  if (np != net.nparam) {
    printf("FAIL %-16s params: fixture has %zu, the net %zu\n", name, np, net.nparam);
    failures++;
  } else {
    dy_real *p = to_real(P, np), *x = to_real(X, nx), *r = to_real(R, ny);
    dy_real *y = calloc(ny, sizeof *y), *grad = calloc(np, sizeof *grad), *dx = calloc(nx, sizeof *dx);
    void *mem = aligned_alloc(64, dy_cnn_work_bytes(&net, n));
    DyCnnWork *w = dy_cnn_work_init(&net, n, mem);
    dy_cnn_forward(&net, w, p, n, x, y);
    dy_cnn_backward(&net, w, p, n, r, grad, dx);
    report(name, "Y", rel_err(y, Yr, ny));
    report(name, "grad", rel_err(grad, gr, np));
    report(name, "dX", rel_err(dx, dXr, nx));
    /* per layer too: a small layer's error must not hide under a large one's scale */
    for (int l = 0; l < net.nlayer; l++) {
      const DyCnnLayer *L = &net.layer[l];
      char what[16];
      snprintf(what, sizeof what, "dW%d", l);
      report(name, what, rel_err(grad + L->woff, gr + L->woff, L->nw));
      snprintf(what, sizeof what, "db%d", l);
      report(name, what, rel_err(grad + L->woff + L->nw, gr + L->woff + L->nw, L->nb));
    }
    free(p), free(x), free(r), free(y), free(grad), free(dx), free(mem);
  }
  free(P), free(X), free(R), free(Yr), free(gr), free(dXr);
  H5Gclose(g);
  return 0;
}

int main(int argc, char **argv)
{
#if !defined(DY_REAL_DOUBLE)
  fprintf(stderr, "parity_conv: build against the double library\n");
  return 1;
#endif
  if (argc < 2) {
    fprintf(stderr, "usage: parity_conv FIXTURE.h5 [--perturb]\n");
    return 1;
  }
  int perturb = argc > 2 && !strcmp(argv[2], "--perturb");
  const int perturbed = perturb;
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "parity_conv: cannot open %s\n", argv[1]);
    return 1;
  }
  hid_t gl = H5Gopen2(f, "layers", H5P_DEFAULT), gn = H5Gopen2(f, "nets", H5P_DEFAULT);
  H5Literate(gl, H5_INDEX_NAME, H5_ITER_INC, NULL, layer_case, &perturb);
  H5Literate(gn, H5_INDEX_NAME, H5_ITER_INC, NULL, net_case, NULL);
  H5Gclose(gl);
  H5Gclose(gn);
  H5Fclose(f);
  if (perturbed) {
    printf("%s\n", failures ? "perturbation caught" : "FAILED: perturbation not caught");
    return failures ? 0 : 1;
  }
  printf("%s\n", failures ? "FAILED" : "convolutions and image nets agree with torch");
  return failures ? 1 : 0;
}
