/* Adam over one contiguous range of the parameter buffer, in PyTorch's formulation. */
#include "dy_model.h"

#include <math.h>
#include <string.h>

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

void dy_adam_update(DyAdam *adam, dy_real *params, const dy_real *grads)
{
  adam->step++;
  /* p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), as torch.optim.Adam does it */
  const double bc1 = 1 - pow(DY_ADAM_BETA1, (double)adam->step), bc2 = 1 - pow(DY_ADAM_BETA2, (double)adam->step);
  const dy_real step_size = (dy_real)(adam->lr / bc1), inv_sqrt_bc2 = (dy_real)(1 / sqrt(bc2));
  const dy_real b1 = (dy_real)DY_ADAM_BETA1, b2 = (dy_real)DY_ADAM_BETA2, eps = (dy_real)DY_ADAM_EPS;
  dy_real *p = params + adam->offset, *m = adam->m, *v = adam->v;
  const dy_real *g = grads + adam->offset;
  for (size_t i = 0; i < adam->n; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
#if defined(DY_REAL_DOUBLE)
    const dy_real denom = sqrt(v[i]) * inv_sqrt_bc2 + eps;
#else
    const dy_real denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
#endif
    p[i] -= step_size * m[i] / denom;
  }
}

void dy_adam_destroy(DyAdam *adam)
{
  PetscFree(adam->m);
  PetscFree(adam->v);
  memset(adam, 0, sizeof *adam);
}
