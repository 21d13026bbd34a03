/* Adam against a hand computation of PyTorch's update, on a sub-range of a buffer. */
#include "dy_model.h"

#include <math.h>
#include <stdio.h>

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  int nbad = 0;
  DyAdam adam;
  PetscCall(dy_adam_create(1, 3, 0.1, &adam));
  dy_real p[5] = {7, 1.0, -2.0, 0.5, 9};
  double q[3] = {1.0, -2.0, 0.5}, m[3] = {0}, v[3] = {0};
  const dy_real grads[3][5] = {{5, 0.3, -1.0, 0.0}, {5, -0.2, 2.0, 1e-3}, {5, 0.4, 0.5, -4.0}};
  for (int round = 0; round < 2; round++) {
    for (int t = 1; t <= 3; t++) {
      dy_adam_update(&adam, p, grads[t - 1]);
      for (int i = 0; i < 3; i++) {
        const double g = grads[t - 1][i + 1];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        const double mhat = m[i] / (1 - pow(0.9, t)), vhat = v[i] / (1 - pow(0.999, t));
        q[i] -= 0.1 * mhat / (sqrt(vhat) + 1e-8);
        if (fabs(p[i + 1] - q[i]) > 1e-14 * fmax(1, fabs(q[i]))) {
          printf("FAIL round %d step %d param %d: %.17g, expected %.17g\n", round, t, i, (double)p[i + 1], q[i]);
          nbad++;
        }
      }
      if (adam.step != t || p[0] != 7 || p[4] != 9) {
        printf("FAIL step count %lld or parameters outside the range touched\n", (long long)adam.step);
        nbad++;
      }
    }
    /* after a reset the moments and bias corrections start over */
    dy_adam_reset(&adam);
    for (int i = 0; i < 3; i++) m[i] = v[i] = 0;
  }
  /* first step of Adam moves every parameter by lr sign(g) (up to eps) */
  dy_real p2[5] = {0, 0, 0, 0, 0};
  dy_adam_update(&adam, p2, grads[0]);
  if (fabs(p2[1] + 0.1) > 1e-7 || fabs(p2[2] - 0.1) > 1e-7 || p2[3] != 0) {
    printf("FAIL first step after reset: %g %g %g\n", (double)p2[1], (double)p2[2], (double)p2[3]);
    nbad++;
  }
  dy_adam_destroy(&adam);
  printf("%s\n", nbad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return nbad ? 1 : 0;
}
