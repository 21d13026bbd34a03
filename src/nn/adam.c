/* Adam over one contiguous range of the parameter buffer, in PyTorch's formulation. */
#include "nn/dy_model.h"

#include <math.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#define DY_ADAM_BETA1 0.9
#define DY_ADAM_BETA2 0.999
#define DY_ADAM_EPS 1e-8

PetscErrorCode dy_adam_create(size_t offset, size_t n, double lr, DyAdam *adam)
{
  PetscFunctionBeginUser;
  memset(adam, 0, sizeof *adam);
  adam->lr = lr;
  adam->offset = offset;
  adam->n = n;
  PetscCall(PetscCalloc1(n ? n : 1, &adam->m));
  PetscCall(PetscCalloc1(n ? n : 1, &adam->v));
  PetscFunctionReturn(0);
}

void dy_adam_reset(DyAdam *adam)
{
  adam->step = 0;
  memset(adam->m, 0, adam->n * sizeof *adam->m);
  memset(adam->v, 0, adam->n * sizeof *adam->v);
}

/* sqrt of 8 floats or 4 doubles: libm's sqrt keeps the loop scalar (errno), so use the vector
 * instruction where there is one */
typedef dy_real dy_avec __attribute__((vector_size(32)));
#define DY_AVL ((int)(32 / sizeof(dy_real)))
static inline dy_avec dy_adam_sqrt(dy_avec x)
{
#if defined(__AVX__) && defined(DY_REAL_DOUBLE)
  return (dy_avec)_mm256_sqrt_pd((__m256d)x);
#elif defined(__AVX__)
  return (dy_avec)_mm256_sqrt_ps((__m256)x);
#else
  for (int i = 0; i < DY_AVL; i++) x[i] = sqrt(x[i]);
  return x;
#endif
}

void dy_adam_update(DyAdam *adam, dy_real *params, const dy_real *grads)
{
  adam->step++;
  /* p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), as torch.optim.Adam does it */
  const double bc1 = 1 - pow(DY_ADAM_BETA1, (double)adam->step), bc2 = 1 - pow(DY_ADAM_BETA2, (double)adam->step);
  const dy_real step_size = (dy_real)(adam->lr / bc1), inv_sqrt_bc2 = (dy_real)(1 / sqrt(bc2));
  /* 1 - beta in double, then rounded, as PyTorch passes them to its float kernels */
  const dy_real b1 = (dy_real)DY_ADAM_BETA1, b2 = (dy_real)DY_ADAM_BETA2, eps = (dy_real)DY_ADAM_EPS;
  const dy_real c1 = (dy_real)(1 - DY_ADAM_BETA1), c2 = (dy_real)(1 - DY_ADAM_BETA2);
  dy_real *p = params + adam->offset, *m = adam->m, *v = adam->v;
  const dy_real *g = grads + adam->offset;
  size_t i = 0;
  for (; i + DY_AVL <= adam->n; i += DY_AVL) {
    dy_avec pv, mv, vv, gv;
    memcpy(&pv, p + i, sizeof pv);
    memcpy(&mv, m + i, sizeof mv);
    memcpy(&vv, v + i, sizeof vv);
    memcpy(&gv, g + i, sizeof gv);
    mv = b1 * mv + c1 * gv;
    vv = b2 * vv + c2 * gv * gv;
    pv -= step_size * mv / (dy_adam_sqrt(vv) * inv_sqrt_bc2 + eps);
    memcpy(p + i, &pv, sizeof pv);
    memcpy(m + i, &mv, sizeof mv);
    memcpy(v + i, &vv, sizeof vv);
  }
  for (; i < adam->n; i++) { /* the same arithmetic for the last few */
    m[i] = b1 * m[i] + c1 * g[i];
    v[i] = b2 * v[i] + c2 * g[i] * g[i];
    p[i] -= step_size * m[i] / ((dy_real)sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}

void dy_adam_destroy(DyAdam *adam)
{
  PetscFree(adam->m);
  PetscFree(adam->v);
  memset(adam, 0, sizeof *adam);
}
