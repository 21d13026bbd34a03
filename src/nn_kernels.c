/* Layer kernels: linear layers, ReLU, tanh and forward-mode tangents through tanh (see dy_nn.h). */
#include "dy_nn.h"

#include <math.h>
#include <string.h>

void dy_transpose(int out, int in, const dy_real *W, dy_real *WT)
{
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) WT[(size_t)i * out + o] = W[(size_t)o * in + i];
}

void dy_linear_forward(int n, int in, int out, const dy_real *X, const dy_real *WT, const dy_real *b, dy_real *Y)
{
  for (int r = 0; r < n; r++) {
    const dy_real *x = X + (size_t)r * in;
    dy_real *y = Y + (size_t)r * out;
    if (b) memcpy(y, b, (size_t)out * sizeof *y);
    else memset(y, 0, (size_t)out * sizeof *y);
    for (int i = 0; i < in; i++) {
      const dy_real xi = x[i];
      const dy_real *w = WT + (size_t)i * out;
      for (int o = 0; o < out; o++) y[o] += xi * w[o];
    }
  }
}

void dy_linear_backward_input(int n, int in, int out, const dy_real *dY, const dy_real *W, dy_real *dX)
{
  for (int r = 0; r < n; r++) {
    const dy_real *g = dY + (size_t)r * out;
    dy_real *dx = dX + (size_t)r * in;
    for (int o = 0; o < out; o++) {
      const dy_real go = g[o];
      const dy_real *w = W + (size_t)o * in;
      for (int i = 0; i < in; i++) dx[i] += go * w[i];
    }
  }
}

void dy_linear_backward_weight(int n, int in, int out, const dy_real *X, const dy_real *dY, dy_real *dW)
{
  for (int r = 0; r < n; r++) {
    const dy_real *x = X + (size_t)r * in;
    const dy_real *g = dY + (size_t)r * out;
    for (int o = 0; o < out; o++) {
      const dy_real go = g[o];
      dy_real *dw = dW + (size_t)o * in;
      for (int i = 0; i < in; i++) dw[i] += go * x[i];
    }
  }
}

void dy_linear_backward_bias(int n, int out, const dy_real *dY, dy_real *db)
{
  for (int r = 0; r < n; r++)
    for (int o = 0; o < out; o++) db[o] += dY[(size_t)r * out + o];
}

void dy_relu_forward(size_t m, dy_real *H)
{
  for (size_t k = 0; k < m; k++) H[k] = H[k] > 0 ? H[k] : 0;
}

void dy_relu_backward(size_t m, const dy_real *H, dy_real *dH)
{
  for (size_t k = 0; k < m; k++) dH[k] = H[k] > 0 ? dH[k] : 0;
}

void dy_tanh_forward(size_t m, dy_real *H)
{
#if defined(DY_REAL_DOUBLE)
  for (size_t k = 0; k < m; k++) H[k] = tanh(H[k]);
#else
  for (size_t k = 0; k < m; k++) H[k] = tanhf(H[k]);
#endif
}

void dy_tanh_backward(size_t m, const dy_real *H, dy_real *dH)
{
  for (size_t k = 0; k < m; k++) dH[k] *= 1 - H[k] * H[k];
}

void dy_tanh_tangent_forward(int B, int w, int ntan, const dy_real *Hp, dy_real *T, dy_real *A_T)
{
  const size_t m = (size_t)B * w;
  for (int j = 0; j < ntan; j++) {
    dy_real *t = T + j * m, *a = A_T + j * m;
    for (size_t k = 0; k < m; k++) {
      a[k] = t[k];
      t[k] *= 1 - Hp[k] * Hp[k];
    }
  }
}

void dy_tanh_tangent_backward(int B, int w, int ntan, const dy_real *Hp, const dy_real *A_T, dy_real *dHp, dy_real *dT)
{
  /* t = (1 - h^2) a_t, so dL/dh gains -2 h a_t dL/dt and dL/da_t = (1 - h^2) dL/dt. */
  const size_t m = (size_t)B * w;
  for (int j = 0; j < ntan; j++) {
    dy_real *dt = dT + j * m;
    const dy_real *a = A_T + j * m;
    for (size_t k = 0; k < m; k++) {
      const dy_real s = 1 - Hp[k] * Hp[k];
      dHp[k] -= 2 * Hp[k] * a[k] * dt[k];
      dt[k] *= s;
    }
  }
  for (size_t k = 0; k < m; k++) dHp[k] *= 1 - Hp[k] * Hp[k];
}
