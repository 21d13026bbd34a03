/* Targets for the warm-up epoch from the leading TICs of the inputs; see app/dy_warmup.h. */
#include "app/dy_warmup.h"
#include "analysis/dy_tica.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Collective: the first d TICs of this rank's training pairs' first (which 0) or second frames
 * into y (n, d), gathered chunk frames at a time into buf; every rank makes as many calls as the
 * rank with the most pairs. */
static PetscErrorCode dy_warmup_project(MPI_Comm comm, const DyTica *tica, const DyPairs *p, int D, int d, int which,
                                        int64_t chunk, dy_real *buf, dy_real *y)
{
  const dy_real **rows = which ? p->x1 : p->x0;
  int64_t rounds = (p->n + chunk - 1) / chunk;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, comm));
  for (int64_t r = 0; r < rounds; r++) {
    const int64_t first = DY_MIN(r * chunk, p->n), nb = DY_MIN(chunk, p->n - first);
    for (int64_t j = 0; j < nb; j++) memcpy(buf + (size_t)j * D, rows[first + j], sizeof(dy_real) * D);
    PetscCall(dy_tica_project(tica, d, nb, buf, y + (size_t)first * d));
  }
  PetscFunctionReturn(0);
}

/* Collective: the scale c_i of each TIC (moves of mean square 2 over data.lag), rewriting the TICs
 * in t0, t1 into the anchors c .* (u - mean(u)); with z0, the centre and spread of the initial
 * latent for the warm-up's targets (else mean 0, scale 1). */
static PetscErrorCode dy_warmup_scale(MPI_Comm comm, const dy_real *z0, DyWarmup *w)
{
  const int d = w->d;
  const int64_t n = w->n;
  double sum[5 * 64 + 1] = {0}; /* moves^2, u, u^2, z, z^2 (d each), pairs */
  double mu[64], vt = 0, vz = 0;

  PetscFunctionBegin;
  for (int64_t j = 0; j < n; j++)
    for (int i = 0; i < d; i++) {
      const size_t k = (size_t)j * d + i;
      const double m = (double)w->t1[k] - (double)w->t0[k], u = w->t0[k], z = z0 ? z0[k] : 0;
      sum[i] += m * m;
      sum[d + i] += u;
      sum[2 * d + i] += u * u;
      sum[3 * d + i] += z;
      sum[4 * d + i] += z * z;
    }
  sum[5 * d] = (double)n;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sum, 5 * d + 1, MPI_DOUBLE, MPI_SUM, comm));
  const double N = DY_MAX(sum[5 * d], 1.0);
  for (int i = 0; i < d; i++) {
    const double msq = sum[i] / N;
    w->c[i] = msq > 0 ? sqrt(2.0 / msq) : 1.0;
    mu[i] = sum[d + i] / N;
    w->mean[i] = sum[3 * d + i] / N;
    vt += w->c[i] * w->c[i] * DY_MAX(0.0, sum[2 * d + i] / N - mu[i] * mu[i]);
    vz += DY_MAX(0.0, sum[4 * d + i] / N - w->mean[i] * w->mean[i]);
  }
  w->scale = z0 && vz > 0 && vt > 0 ? sqrt(vz / vt) : 1.0;
  for (int64_t j = 0; j < n; j++)
    for (int i = 0; i < d; i++) {
      const size_t k = (size_t)j * d + i;
      w->t0[k] = (dy_real)(w->c[i] * ((double)w->t0[k] - mu[i]));
      w->t1[k] = (dy_real)(w->c[i] * ((double)w->t1[k] - mu[i]));
    }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_warmup_create(MPI_Comm comm, const DyConfig *cfg, const DyData *data, const dy_real *z0,
                                int64_t chunk, dy_real *buf, int quiet, DyWarmup *w)
{
  const DyPairs *p = &data->train;
  const int d = cfg->latent_dim;
  DyTica tica;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  const double start = MPI_Wtime();
  memset(w, 0, sizeof *w);
  memset(&tica, 0, sizeof tica);
  PetscCheck(d <= 64 && chunk >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "dy_warmup_create: d = %d, chunk %lld", d,
             (long long)chunk);
  w->d = d;
  w->n = p->n;
  PetscCall(PetscMalloc2((size_t)DY_MAX(p->n, 1) * d, &w->t0, (size_t)DY_MAX(p->n, 1) * d, &w->t1));
  ierr = dy_data_tica_compute(comm, cfg, data, cfg->tica_lag, "tica.lag", d, "model.latent_dim", DY_TICA_SCALING_NONE,
                              &tica);
  if (!ierr) ierr = dy_warmup_project(comm, &tica, p, data->D, d, 0, chunk, buf, w->t0);
  if (!ierr) ierr = dy_warmup_project(comm, &tica, p, data->D, d, 1, chunk, buf, w->t1);
  if (!ierr) {
    for (int i = 0; i < d; i++) w->timescale[i] = tica.timescales[i];
    w->lag = tica.lag;
    /* an eigenvalue of +-1 (to rounding: a timescale of 1e9 lags or more) is no slow process but a
     * fit with too few frames for its components: whitened, some direction repeats exactly */
    for (int i = 0; i < d && !ierr; i++)
      if (fabs(tica.eigenvalues[i]) >= 1 - 1e-9)
        ierr = dy_input_error(comm,
                              "%s: train.warmup_target = \"tica\": TIC %d has the eigenvalue %.12f, a timescale "
                              "beyond any data: the fit keeps %d components of %d features from %lld pairs, too many "
                              "for the frames; raise tica.epsilon (now %g) to keep fewer, or give more frames",
                              cfg->path, i, tica.eigenvalues[i], tica.m, tica.D, (long long)tica.npairs,
                              cfg->tica_epsilon);
  }
  dy_tica_destroy(&tica);
  if (!ierr) ierr = dy_warmup_scale(comm, z0, w);
  if (ierr) dy_warmup_destroy(w);
  PetscCall(ierr);
  if (!quiet && dy_is_root(comm)) {
    printf("# warm-up target: the first %d TICs (tica.lag %d; timescales", d, w->lag);
    for (int i = 0; i < d; i++) printf("%s %.4g", i ? "," : "", w->timescale[i]);
    printf(" frames), each scaled to moves of mean square 2 over data.lag (factors");
    for (int i = 0; i < d; i++) printf("%s %.4g", i ? "," : "", w->c[i]);
    if (z0) printf("); in the warm-up scaled by %.4g to the initial latent's spread", w->scale);
    else printf(")");
    printf(" (%.1f s)\n", MPI_Wtime() - start);
    fflush(stdout);
  }
  PetscFunctionReturn(0);
}

void dy_warmup_gather(const DyWarmup *w, int warm, int nb, const int64_t *idx, dy_real *target)
{
  const int d = w->d;
  for (int j = 0; j < nb; j++)
    for (int i = 0; i < d; i++) {
      const size_t k = (size_t)idx[j] * d + i;
      const double a0 = w->t0[k], a1 = w->t1[k];
      target[(size_t)j * d + i] = warm ? (dy_real)(w->mean[i] + w->scale * a0) : (dy_real)a0;
      target[(size_t)(nb + j) * d + i] = warm ? (dy_real)(w->mean[i] + w->scale * a1) : (dy_real)a1;
    }
}

void dy_warmup_move(const DyWarmup *w, DyModel *model) { dy_model_scale_latent(model, 1 / w->scale, w->mean); }

PetscErrorCode dy_warmup_explained(MPI_Comm comm, const DyWarmup *w, const dy_real *z0, double *explained)
{
  const int d = w->d;
  double sum[2 * 64 + 2] = {0}; /* t (d), t^2 (d), |z - t|^2, pairs */

  PetscFunctionBegin;
  for (int64_t j = 0; j < w->n; j++)
    for (int i = 0; i < d; i++) {
      const size_t k = (size_t)j * d + i;
      const double t = w->t0[k], e = (double)z0[k] - t;
      sum[i] += t;
      sum[d + i] += t * t;
      sum[2 * d] += e * e;
    }
  sum[2 * d + 1] = (double)w->n;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sum, 2 * d + 2, MPI_DOUBLE, MPI_SUM, comm));
  const double N = DY_MAX(sum[2 * d + 1], 1.0);
  double var = 0;
  for (int i = 0; i < d; i++) var += sum[d + i] - sum[i] * sum[i] / N;
  *explained = var > 0 ? 1 - sum[2 * d] / var : 0;
  PetscFunctionReturn(0);
}

void dy_warmup_destroy(DyWarmup *w)
{
  PetscFree2(w->t0, w->t1);
  memset(w, 0, sizeof *w);
}
