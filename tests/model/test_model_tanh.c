/* dy_tanh_forward (and dy_exp_forward) in single precision against libm in double: the largest
 * relative error over every 8th positive float from the smallest normal to the largest finite
 * one, odd symmetry, and NaN, +-inf, +-0 passed through as tanh/exp do. */
#include "nn/dy_nn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TANH_LIMIT 4e-7 /* relative; the model_precision and parity tolerances assume this */
#define EXP_LIMIT 2.5e-7

static float from_bits(uint32_t u)
{
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

int main(void)
{
  enum { CHUNK = 1 << 16, STRIDE = 8 };
  float *x = malloc(sizeof(float) * CHUNK), *y = malloc(sizeof(float) * CHUNK), *e = malloc(sizeof(float) * CHUNK);
  double worst = 0, worst_exp = 0;
  float at = 0, at_exp = 0;
  int bad = 0;
  const uint32_t lo = 0x00800000u, hi = 0x7f7fffffu; /* smallest normal .. largest finite */
  for (uint32_t u = lo; u <= hi && u >= lo;) {
    int n = 0;
    for (; n < CHUNK && u <= hi && u >= lo; n++, u += STRIDE) x[n] = from_bits(u);
    memcpy(y, x, sizeof(float) * n);
    dy_tanh_forward((size_t)n, y);
    for (int i = 0; i < n; i++) {
      const double ref = tanh((double)x[i]), err = fabs(y[i] - ref) / ref;
      if (err > worst) worst = err, at = x[i];
    }
    /* exp where it is finite and normal in float */
    int m = 0;
    for (int i = 0; i < n; i++)
      if (x[i] < 88.0f) e[m++] = x[i] > 87.0f ? -x[i] : (i & 1 ? -x[i] : x[i]);
    float *ex = malloc(sizeof(float) * (m ? m : 1));
    memcpy(ex, e, sizeof(float) * m);
    dy_exp_forward((size_t)m, ex);
    for (int i = 0; i < m; i++) {
      const double ref = exp((double)e[i]);
      if (ref < 1.2e-38) continue; /* float subnormal results */
      const double err = fabs(ex[i] - ref) / ref;
      if (err > worst_exp) worst_exp = err, at_exp = e[i];
    }
    free(ex);
  }
  printf("tanh: max relative error %.3g at %.9g (limit %.1g)\n", worst, at, TANH_LIMIT);
  printf("exp:  max relative error %.3g at %.9g (limit %.1g)\n", worst_exp, at_exp, EXP_LIMIT);
  if (worst > TANH_LIMIT || worst_exp > EXP_LIMIT) bad++;

  /* symmetry and special values, in one call each (odd lengths exercise the tail) */
  float s[11] = {0.3f, -0.3f, 5.0f, -5.0f, 1e-20f, -1e-20f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN};
  dy_tanh_forward(11, s);
  if (s[0] != -s[1] || s[2] != -s[3] || s[4] != -s[5]) printf("FAIL: tanh is not odd\n"), bad++;
  if (s[6] != 0 || signbit(s[6]) || s[7] != 0 || !signbit(s[7])) printf("FAIL: tanh(+-0) = %g, %g\n", s[6], s[7]), bad++;
  if (s[8] != 1 || s[9] != -1) printf("FAIL: tanh(+-inf) = %g, %g\n", s[8], s[9]), bad++;
  if (!isnan(s[10])) printf("FAIL: tanh(NaN) = %g\n", s[10]), bad++;
  float t[3] = {-INFINITY, INFINITY, NAN};
  dy_exp_forward(3, t);
  if (t[0] != 0 || t[1] != INFINITY || !isnan(t[2])) printf("FAIL: exp(-inf, inf, NaN) = %g %g %g\n", t[0], t[1], t[2]), bad++;
  free(x), free(y), free(e);
  if (bad) printf("FAIL\n");
  return bad ? 1 : 0;
}
