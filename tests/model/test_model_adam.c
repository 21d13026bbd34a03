/* Adam against a hand computation of PyTorch's update (in double), on a sub-range of a buffer long
 * enough for the vector loop and its tail, in the precision of the build. */
#include "nn/dy_model.h"

#include <math.h>
#include <stdio.h>

enum { N = 11, OFF = 1 }; /* parameters owned, first owned */

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  const double tol = sizeof(dy_real) == sizeof(float) ? 2e-6 : 1e-14;
  int nbad = 0;
  DyAdam adam;
  PetscCall(dy_adam_create(OFF, N, 0.1, &adam));
  dy_real p[N + 2];
  double q[N], m[N] = {0}, v[N] = {0};
  for (int i = 0; i < N + 2; i++) p[i] = (dy_real)(0.25 * i - 1);
  for (int i = 0; i < N; i++) q[i] = p[i + OFF];
  dy_real grads[3][N + 2];
  for (int t = 0; t < 3; t++)
    for (int i = 0; i < N + 2; i++) grads[t][i] = (dy_real)(i == 3 ? 0.0 : sin(1.7 * i + 2.3 * t) * pow(10, -(i % 4)));
  for (int round = 0; round < 2; round++) {
    for (int t = 1; t <= 3; t++) {
      dy_adam_update(&adam, p, grads[t - 1]);
      for (int i = 0; i < N; i++) {
        const double g = grads[t - 1][i + OFF];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        const double mhat = m[i] / (1 - pow(0.9, t)), vhat = v[i] / (1 - pow(0.999, t));
        q[i] -= 0.1 * mhat / (sqrt(vhat) + 1e-8);
        if (fabs(p[i + OFF] - q[i]) > tol * fmax(1, fabs(q[i]))) {
          printf("FAIL round %d step %d param %d: %.17g, expected %.17g\n", round, t, i, (double)p[i + OFF], q[i]);
          nbad++;
        }
      }
      if (adam.step != t || p[0] != (dy_real)-1 || p[N + 1] != (dy_real)(0.25 * (N + 1) - 1)) {
        printf("FAIL step count %lld or parameters outside the range touched\n", (long long)adam.step);
        nbad++;
      }
    }
    /* after a reset the moments and bias corrections start over */
    dy_adam_reset(&adam);
    for (int i = 0; i < N; i++) m[i] = v[i] = 0;
  }
  /* the first step of Adam moves every parameter by lr sign(g) (up to eps) */
  dy_real p2[N + 2] = {0};
  dy_adam_update(&adam, p2, grads[0]);
  for (int i = 0; i < N; i++) {
    const double g = grads[0][i + OFF], want = -0.1 * g / (fabs(g) + 1e-8);
    if (fabs(p2[i + OFF] - want) > tol) {
      printf("FAIL first step after reset, param %d: %g, expected %g\n", i, (double)p2[i + OFF], want);
      nbad++;
    }
  }
  dy_adam_destroy(&adam);
  printf("%s\n", nbad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return nbad ? 1 : 0;
}
