/* VAMP-2 and the step covariance of a latent: see dy_vamp.h. */
#include "analysis/dy_vamp.h"

#include <math.h>
#include <string.h>

#define DY_VAMP_SWEEPS 100       /* Jacobi sweeps at most; a few suffice for d <= 64 */
#define DY_VAMP_SINGULAR 1e-12   /* eigenvalues below this fraction of the largest count as zero */

void dy_vamp_eigh(int n, double *a, double *w, double *v)
{
  if (v)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) v[i * n + j] = i == j;
  for (int sweep = 0; sweep < DY_VAMP_SWEEPS; sweep++) {
    double off = 0, diag = 0;

    for (int i = 0; i < n; i++) {
      diag += a[i * n + i] * a[i * n + i];
      for (int j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
    }
    if (off <= 1e-30 * diag || off == 0) break;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) {
        const double apq = a[p * n + q];
        double theta, t, c, s;

        if (apq == 0) continue;
        /* The rotation in the (p, q) plane that zeroes a[p][q]. */
        theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
        c = 1 / sqrt(t * t + 1);
        s = t * c;
        for (int k = 0; k < n; k++) {
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; k++) {
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        if (v)
          for (int k = 0; k < n; k++) {
            const double vkp = v[k * n + p], vkq = v[k * n + q];
            v[k * n + p] = c * vkp - s * vkq;
            v[k * n + q] = s * vkp + c * vkq;
          }
      }
  }
  for (int i = 0; i < n; i++) w[i] = a[i * n + i];
  /* Ascending order, eigenvector columns following (selection sort: n is small). */
  for (int i = 0; i < n; i++) {
    int m = i;
    for (int j = i + 1; j < n; j++)
      if (w[j] < w[m]) m = j;
    if (m == i) continue;
    const double tw = w[i];
    w[i] = w[m];
    w[m] = tw;
    if (v)
      for (int k = 0; k < n; k++) {
        const double tv = v[k * n + i];
        v[k * n + i] = v[k * n + m];
        v[k * n + m] = tv;
      }
  }
}

void dy_vamp_sums_reset(DyVampSums *s, int d)
{
  memset(s, 0, sizeof *s);
  s->d = d;
}

void dy_vamp_sums_add(DyVampSums *s, int64_t n, const dy_real *z0, const dy_real *z1)
{
  const int d = s->d;

  for (int64_t k = 0; k < n; k++) {
    const dy_real *a = z0 + k * d, *b = z1 + k * d;
    for (int i = 0; i < d; i++) {
      s->s0[i] += a[i];
      s->s1[i] += b[i];
      for (int j = 0; j < d; j++) {
        s->c00[i * d + j] += (double)a[i] * a[j];
        s->c01[i * d + j] += (double)a[i] * b[j];
        s->c11[i * d + j] += (double)b[i] * b[j];
      }
    }
  }
  s->n += (double)n;
}

PetscErrorCode dy_vamp_sums_allreduce(MPI_Comm comm, DyVampSums *s)
{
  const int d = s->d;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &s->n, 1, MPI_DOUBLE, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s->s0, d, MPI_DOUBLE, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s->s1, d, MPI_DOUBLE, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s->c00, d * d, MPI_DOUBLE, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s->c01, d * d, MPI_DOUBLE, MPI_SUM, comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s->c11, d * d, MPI_DOUBLE, MPI_SUM, comm));
  PetscFunctionReturn(0);
}

/* m (d, d) := c^-1/2 for the symmetric c (destroyed); 0 when c is singular. */
static int dy_vamp_inv_sqrt(int d, double *c, double *m)
{
  double w[DY_VAMP_MAX_DIM], v[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM];

  dy_vamp_eigh(d, c, w, v);
  if (!(w[d - 1] > 0) || w[0] <= DY_VAMP_SINGULAR * w[d - 1]) return 0;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double x = 0;
      for (int k = 0; k < d; k++) x += v[i * d + k] * v[j * d + k] / sqrt(w[k]);
      m[i * d + j] = x;
    }
  return 1;
}

void dy_vamp_score(const DyVampSums *s, DyVampScore *score)
{
  const int d = s->d;
  const double n = s->n;
  double c00[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM], c01[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM];
  double c11[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM], cdd[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM];
  double a[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM], b[DY_VAMP_MAX_DIM * DY_VAMP_MAX_DIM];
  double w[DY_VAMP_MAX_DIM], m0[DY_VAMP_MAX_DIM], m1[DY_VAMP_MAX_DIM];

  score->vamp2 = NAN;
  score->step_ratio = NAN;
  if (n < 2) return;
  for (int i = 0; i < d; i++) {
    m0[i] = s->s0[i] / n;
    m1[i] = s->s1[i] / n;
  }
  /* Mean-free covariances; dz = z1 - z0 has C_dd = C00 + C11 - C01 - C10. */
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      c00[i * d + j] = s->c00[i * d + j] / n - m0[i] * m0[j];
      c11[i * d + j] = s->c11[i * d + j] / n - m1[i] * m1[j];
      c01[i * d + j] = s->c01[i * d + j] / n - m0[i] * m1[j];
    }
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) cdd[i * d + j] = c00[i * d + j] + c11[i * d + j] - c01[i * d + j] - c01[j * d + i];
  dy_vamp_eigh(d, cdd, w, NULL);
  score->step_ratio = w[d - 1] > 0 ? DY_MAX(w[0], 0.0) / w[d - 1] : 0;

  if (!dy_vamp_inv_sqrt(d, c00, a) || !dy_vamp_inv_sqrt(d, c11, b)) return;
  /* K = C00^-1/2 C01 C11^-1/2; VAMP-2 = 1 + sum of its squared entries. */
  double f = 0;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double kij = 0;
      for (int p = 0; p < d; p++)
        for (int q = 0; q < d; q++) kij += a[i * d + p] * c01[p * d + q] * b[q * d + j];
      f += kij * kij;
    }
  score->vamp2 = 1 + f;
}

int dy_collapse_watch(DyCollapseWatch *w, int warmup, int last, double ratio)
{
  if (warmup) return DY_COLLAPSE_QUIET;
  w->low = ratio < DY_VAMP_COLLAPSE_RATIO ? w->low + 1 : 0;
  if (w->warned) {
    if (w->recovered || ratio < 2 * DY_VAMP_COLLAPSE_RATIO) return DY_COLLAPSE_QUIET;
    w->recovered = 1;
    return DY_COLLAPSE_RECOVERED;
  }
  if (w->low == 0 || (w->low < DY_VAMP_COLLAPSE_EPOCHS && !last)) return DY_COLLAPSE_QUIET;
  w->warned = 1;
  return DY_COLLAPSE_WARN;
}
