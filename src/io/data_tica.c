/* TICA of the inputs as read (SPEC section 10): the pairs of the trajectory blocks fed to the
 * distributed fit, and data.tica_dim, which replaces the frames by their leading TICs before the
 * pairs are formed. See dy_tica.h for the distribution and dy_data.h for the blocks. */
#include "io/dy_data.h"

#include <string.h>

PetscErrorCode dy_data_tica_compute(MPI_Comm comm, const DyConfig *cfg, const DyData *data, int lag,
                                    const char *lag_key, int k, const char *k_key, DyTicaScaling scaling, DyTica *tica)
{
  const int n = data->ntraj, D = data->D;
  int64_t longest = 0;
  DyTicaPairs *pieces;
  dy_real **fetched;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  for (int i = 0; i < n; i++) longest = DY_MAX(longest, data->frames[i]);
  if (longest <= lag)
    PetscCall(dy_input_error(comm,
                             "%s = %d leaves no pair for TICA: the longest trajectory (of %d) has %lld frames; a lag "
                             "must be below the frame count",
                             lag_key, lag, n, (long long)longest));
  PetscCall(PetscCalloc1(n, &pieces));
  PetscCall(PetscCalloc1(n, &fetched));
  for (int i = 0; i < n; i++) {
    const DyTrajBlock *b = &data->block[i];
    if (lag <= data->lag) { /* the block's own overlap holds every partner */
      pieces[i].n = DY_MAX((int64_t)0, DY_MIN(b->start + b->count, b->frames - lag) - b->start);
      pieces[i].x0 = b->x;
      pieces[i].x1 = b->x + (size_t)lag * D;
    } else {
      PetscCall(dy_tica_partners(comm, D, b->frames, b->start, b->count, b->x, lag, &pieces[i].n, &fetched[i]));
      pieces[i].x0 = b->x;
      pieces[i].x1 = fetched[i];
    }
  }
  DyTicaOptions opt = {.lag = lag, .epsilon = cfg->tica_epsilon, .scaling = scaling, .k = k, .k_key = k_key};
  ierr = dy_tica_fit(comm, D, n, pieces, &opt, tica);
  for (int i = 0; i < n; i++) PetscCall(PetscFree(fetched[i]));
  PetscCall(PetscFree(fetched));
  PetscCall(PetscFree(pieces));
  PetscCall(ierr);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_data_tica_fit(MPI_Comm comm, const DyConfig *cfg, DyData *data, int lag, const char *lag_key, int k,
                                const char *k_key)
{
  DyTica *tica;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscCalloc1(1, &tica));
  ierr = dy_data_tica_compute(comm, cfg, data, lag, lag_key, k, k_key, cfg->tica_scaling, tica);
  if (ierr) PetscCall(PetscFree(tica));
  PetscCall(ierr);
  if (data->tica) dy_tica_destroy(data->tica);
  PetscCall(PetscFree(data->tica));
  data->tica = tica;
  PetscFunctionReturn(0);
}

PetscErrorCode dy_data_tica_project(MPI_Comm comm, const DyConfig *cfg, DyData *data)
{
  const int k = cfg->tica_dim;

  PetscFunctionBegin;
  if (k <= 0) PetscFunctionReturn(0);
  PetscCall(dy_data_tica_fit(comm, cfg, data, data->lag, "data.lag", k, "data.tica_dim"));
  for (int i = 0; i < data->ntraj; i++) {
    DyTrajBlock *b = &data->block[i];
    dy_real *y;
    PetscCall(PetscMalloc1((size_t)DY_MAX(b->nread, 1) * k, &y));
    PetscCall(dy_tica_project(data->tica, k, b->nread, b->x, y));
    PetscCall(PetscFree(b->x));
    b->x = y;
  }
  data->D = k;
  if (!data->has_target) data->Dy = k;
  PetscFunctionReturn(0);
}
