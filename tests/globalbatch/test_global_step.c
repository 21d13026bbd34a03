/* A step of a global batch (train.batch = "global", SPEC 14) at P ranks against one rank holding
 * the same pairs. The pairs are spread unevenly over the ranks (rank 1 holds no member of bin 2),
 * the epoch is planned with dy_sampler_plan_global, and for several steps each rank draws its
 * share and runs dy_swglobal_step; the ranks' losses and gradients, summed, must equal those of
 * dy_model_loss_grad on one rank given the whole batch (the drawn pairs of all ranks in rank
 * order) to rounding (the products round differently for other row counts).
 * Also checked: the shares sum to the batch, a rank's share is what it drew, the rows are distinct
 * members of the step's bin, and a rank without members of the bin draws nothing.
 * Both ways of the sliced Wasserstein (-dy_sw_global gather or split) are run by the tests.
 * Exit code 0 when every check passes. */
#include "base/dy_rng.h"
#include "nn/dy_model.h"
#include "parallel/dy_resample.h"
#include "parallel/dy_swglobal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NPAIR 600
#define NBIN 3
#define DIN 3
#define NSTEP 6

static int fails = 0;
#define CHECK(cond, ...)                                                                                       \
  do {                                                                                                         \
    if (!(cond)) {                                                                                             \
      fails++;                                                                                                 \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                              \
      printf(__VA_ARGS__);                                                                                     \
      printf("\n");                                                                                            \
    }                                                                                                          \
  } while (0)

#if defined(DY_REAL_DOUBLE)
#define TOL 1e-11
#else
#define TOL 2e-4
#endif

static int bin_of(int64_t g) { return (int)(g % NBIN); }

/* Uneven owners; rank 1 holds no pair of bin 2. */
static int owner_of(int64_t g, int size)
{
  int r = (int)((g * 7 + g / 5) % size);
  if (r == 1 && bin_of(g) == 2) r = 0;
  return r;
}

static double rel_diff(double a, double b) { return fabs(a - b) / fmax(1e-300, fmax(fabs(a), fabs(b))); }

/* One epoch's steps with global batches of Bg pairs and latent dimension d. */
static PetscErrorCode check_case(int Bg, int d, DyDiffusion diffusion, PetscLogEvent ev)
{
  MPI_Comm comm = MPI_COMM_WORLD;
  const int L = 9;
  int rank, size;
  DyRng rng;
  DyModelShape shape = {.D = DIN, .Dy = DIN, .d = d, .nhidden = {2, 1, 2, 2}, .hidden = {{8, 6}, {7}, {5, 6}, {6, 5}}};
  DyModel model;
  DyWork *work;
  DySwGlobal sw;
  DySampler s;
  static dy_real X0[NPAIR * DIN], X1[NPAIR * DIN], EPS[NPAIR * 3];
  int64_t gid[NPAIR], idx[NPAIR], all[NPAIR];
  int bin[NPAIR], count[64], displ[64];
  int64_t n_local = 0;
  double quota[NBIN] = {0, 0, 0};
  const DyLossOptions opt = {.beta = 3.0, .diffusion = diffusion};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  dy_rng_seed(&rng, 11, 1); /* the same data on every rank; each keeps its own pairs */
  for (int i = 0; i < NPAIR * DIN; i++) X0[i] = (dy_real)dy_rng_normal(&rng);
  for (int i = 0; i < NPAIR * DIN; i++) X1[i] = X0[i] + (dy_real)(0.3 * dy_rng_normal(&rng));
  for (int i = 0; i < NPAIR * d; i++) EPS[i] = (dy_real)dy_rng_normal(&rng);
  for (int64_t g = 0; g < NPAIR; g++) {
    quota[bin_of(g)] += 1;
    if (owner_of(g, size) != rank) continue;
    gid[n_local] = g;
    bin[n_local++] = bin_of(g);
  }
  PetscCall(dy_model_create(&shape, &model));
  dy_rng_seed(&rng, 5, DY_STREAM_INIT);
  dy_model_init(&model, &rng);
  PetscCall(dy_work_create(&model, Bg, L, &work));
  PetscCall(dy_swglobal_create(comm, Bg, L, d, &sw));
  memset(&s, 0, sizeof s);
  PetscCall(dy_sampler_plan_global(comm, NBIN, quota, n_local, bin, Bg, 3, 1, &s));
  CHECK(s.nsteps == (int64_t)llround((double)NPAIR / Bg), "%ld steps for %d pairs in batches of %d", (long)s.nsteps,
        NPAIR, Bg);

  const size_t np = model.nparam;
  dy_real *x0, *x1, *eps, *theta, *sum, *ref;
  PetscCall(PetscMalloc6((size_t)Bg * DIN, &x0, (size_t)Bg * DIN, &x1, (size_t)Bg * d, &eps, (size_t)L * d, &theta, np,
                         &sum, np, &ref));
  for (int step = 0; step < DY_MIN(NSTEP, (int)s.nsteps); step++) {
    int k, nb, members = 0, total = 0;
    PetscCall(dy_sampler_next(&s, &k, &nb, idx));
    const int *share = dy_sampler_shares(&s, k);
    for (int64_t i = 0; i < n_local; i++) members += bin[i] == k;
    for (int r = 0; r < size; r++) total += share[r];
    CHECK(total == Bg, "step %d: shares sum to %d, not %d", step, total, Bg);
    CHECK(share[rank] == nb, "step %d: rank %d drew %d, its share is %d", step, rank, nb, share[rank]);
    CHECK(members > 0 || nb == 0, "step %d: rank %d holds no member of bin %d but drew %d", step, rank, k, nb);
    for (int j = 0; j < nb; j++) {
      CHECK(bin[idx[j]] == k, "step %d: pair %ld is of bin %d, not %d", step, (long)gid[idx[j]], bin[idx[j]], k);
      for (int i = 0; i < j; i++) CHECK(idx[i] != idx[j], "step %d: pair %ld drawn twice", step, (long)gid[idx[j]]);
      const int64_t g = gid[idx[j]];
      memcpy(x0 + (size_t)j * DIN, X0 + g * DIN, sizeof(dy_real) * DIN);
      memcpy(x1 + (size_t)j * DIN, X1 + g * DIN, sizeof(dy_real) * DIN);
      memcpy(eps + (size_t)j * d, EPS + g * d, sizeof(dy_real) * d);
    }
    dy_rng_seed(&rng, 100 + (uint64_t)step, 2);
    for (int l = 0; l < L; l++) {
      double v[3];
      dy_rng_unit_vector(&rng, d, v);
      for (int c = 0; c < d; c++) theta[l * d + c] = (dy_real)v[c];
    }

    /* P ranks: every rank its share, the gradients and the two local losses summed */
    DyLosses l;
    double part[3];
    PetscCall(dy_swglobal_step(&sw, &model, work, share, x0, x1, x0, x1, theta, eps, &opt, ev, &l));
    PetscCallMPI(MPI_Allreduce(model.grads, sum, (int)np, DY_MPI_REAL, MPI_SUM, comm));
    part[0] = l.rec;
    part[1] = l.prior;
    part[2] = sw.way == DY_SWGLOBAL_SPLIT ? l.sw : 0; /* split: every rank holds a part of L_sw */
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, part, 3, MPI_DOUBLE, MPI_SUM, comm));
    if (sw.way == DY_SWGLOBAL_SPLIT) l.sw = part[2];

    /* one rank: the whole batch, the ranks' pairs in rank order */
    for (int r = 0, o = 0; r < size; o += share[r], r++) count[r] = share[r], displ[r] = o;
    for (int j = 0; j < nb; j++) idx[j] = gid[idx[j]];
    PetscCallMPI(MPI_Allgatherv(idx, nb, MPI_INT64_T, all, count, displ, MPI_INT64_T, comm));
    dy_real *gx0, *gx1, *geps;
    PetscCall(PetscMalloc3((size_t)Bg * DIN, &gx0, (size_t)Bg * DIN, &gx1, (size_t)Bg * d, &geps));
    for (int j = 0; j < Bg; j++) {
      memcpy(gx0 + (size_t)j * DIN, X0 + all[j] * DIN, sizeof(dy_real) * DIN);
      memcpy(gx1 + (size_t)j * DIN, X1 + all[j] * DIN, sizeof(dy_real) * DIN);
      memcpy(geps + (size_t)j * d, EPS + all[j] * d, sizeof(dy_real) * d);
    }
    DyLosses one;
    dy_model_loss_grad(&model, work, Bg, L, gx0, gx1, gx0, gx1, theta, geps, &opt, &one);
    memcpy(ref, model.grads, sizeof(dy_real) * np);
    PetscCall(PetscFree3(gx0, gx1, geps));

    CHECK(rel_diff(l.sw, one.sw) <= TOL, "step %d: L_sw %.17g over the ranks, %.17g on one rank", step, l.sw, one.sw);
    CHECK(rel_diff(part[0], one.rec) <= TOL, "step %d: L_rec %.17g over the ranks, %.17g on one rank", step, part[0],
          one.rec);
    CHECK(rel_diff(part[1], one.prior) <= TOL, "step %d: L_prior %.17g over the ranks, %.17g on one rank", step,
          part[1], one.prior);
    for (int net = 0; net < DY_NNETS; net++) { /* per net: the largest difference against its largest gradient */
      double dmax = 0, gmax = 0;
      for (size_t i = model.net[net].offset; i < model.net[net].offset + model.net[net].nparam; i++) {
        dmax = fmax(dmax, fabs((double)sum[i] - (double)ref[i]));
        gmax = fmax(gmax, fabs((double)ref[i]));
      }
      CHECK(gmax > 0 && dmax <= TOL * gmax, "step %d, net %d: gradients differ by %.3g (largest %.3g)", step, net,
            dmax, gmax);
    }
  }
  PetscCall(PetscFree6(x0, x1, eps, theta, sum, ref));
  PetscCall(dy_sampler_free(&s));
  dy_swglobal_destroy(&sw);
  dy_work_destroy(&work);
  dy_model_destroy(&model);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscLogEvent ev;
  PetscClassId cid;
  int size;
  char way[16] = "auto";

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(PetscOptionsGetString(NULL, NULL, "-dy_sw_global", way, sizeof way, NULL));
  PetscCallMPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
  PetscCall(PetscClassIdRegister("test", &cid));
  PetscCall(PetscLogEventRegister("TestNets", cid, &ev));
  PetscCall(check_case(37, 2, DY_DIFFUSION_CONSTANT, ev)); /* uneven shares */
  PetscCall(check_case(5, 3, DY_DIFFUSION_LEARNED, ev));   /* about one row per rank, some ranks none */
  int total = 0;
  PetscCallMPI(MPI_Allreduce(&fails, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%s: %d failures (%d ranks, %s precision, -dy_sw_global %s)\n",
                        total ? "FAILED" : "ok", total, size, DY_REAL_NAME, way));
  PetscCall(PetscFinalize());
  return total != 0;
}
