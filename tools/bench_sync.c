/* What one gradient exchange per step costs on this machine, measured with the trainer's own step:
 * the ceiling of the step loop's speed-up at P ranks, for each way of summing the gradients.
 *
 *   mpiexec -n P bench_sync [--B 256] [--L 50] [--D 2] [--d 2] [--steps 200] [--rounds 10]
 *                           [--warmup 50]
 *
 * Every rank runs the full step of the numerical core (dy_model_loss_grad, then both Adam updates)
 * on pre-drawn inputs of its own, B pairs per rank as in training, in these ways, interleaved round
 * by round so that all see the same periods of a shared machine:
 *   alone      no communication: each rank at its own pace. Its per-step time is what a 1-rank
 *              run gets while the other cores are as busy as in a P-rank run.
 *   sync       one MPI_Allreduce of a single value after each step: every step waits for the
 *              slowest rank of that step, with no data to move.
 *   mpi        the trainer's exchange (dy_exchange.h) by MPI_Iallreduce, in place, of the gradients
 *              and the four values that travel with them, then the update from the sums;
 *   shared     the same through shared-memory slots (only when all ranks are on one node).
 * A round runs --steps steps of each. Printed: the median over rounds of the per-step times (alone:
 * the mean over ranks of each rank's own time, and separately the slowest rank's, which shows a
 * rank that is slower throughout; the others: rank 0's, all ranks finishing together),
 * and P t_alone / t_exchange for each exchange, the speed-up over 1 rank that the step loop could
 * reach here if everything else in an epoch scaled perfectly. On dedicated cores the two are nearly P; on a
 * machine whose cores are slowed at random and independently of each other (virtual machines
 * sharing a host), every step waits for the unluckiest rank and the ceiling drops below P.
 * Exit codes: 0 done, 1 failure, 2 bad arguments. */
#include "bench_common.h"
#include "parallel/dy_exchange.h"

#include <mpi.h>
#include <stdio.h>

#define NRING 16 /* pre-drawn input sets per rank, cycled through */

enum { MODE_ALONE, MODE_SYNC, MODE_MPI, MODE_SHARED, NMODES };
static const char *mode_name[NMODES] = {"alone", "sync", "mpi", "shared"};

typedef struct {
  int B, L, D, d, steps, rounds, warmup;
} SyncOptions;

static int parse_options(int argc, char **argv, SyncOptions *o)
{
  *o = (SyncOptions){.B = 256, .L = 50, .D = 2, .d = 2, .steps = 200, .rounds = 10, .warmup = 50};
  for (int i = 1; i < argc; ++i) {
    int *ival = !strcmp(argv[i], "--B")        ? &o->B
                : !strcmp(argv[i], "--L")      ? &o->L
                : !strcmp(argv[i], "--D")      ? &o->D
                : !strcmp(argv[i], "--d")      ? &o->d
                : !strcmp(argv[i], "--steps")  ? &o->steps
                : !strcmp(argv[i], "--rounds") ? &o->rounds
                : !strcmp(argv[i], "--warmup") ? &o->warmup
                                               : NULL;
    char *end = NULL;
    if (!ival || i + 1 >= argc) return -1;
    *ival = (int)strtol(argv[++i], &end, 10);
    if (*end) return -1;
  }
  return o->B >= 2 && o->L >= 1 && o->D >= 1 && o->d >= 1 && o->d <= DY_MAX_LAYERS && o->steps >= 1 &&
                 o->rounds >= 1 && o->warmup >= 0
             ? 0
             : -1;
}

typedef struct {
  DyModel m;
  DyWork *w;
  DyAdam rep, pri;
  BenchInputs ring[NRING];
  dy_real *red; /* (nparam + 4) the exchanged buffer: gradients, then count and the three losses */
  DyExchange *ex[NMODES]; /* the exchanges of MODE_MPI and MODE_SHARED (NULL: not available) */
} SyncState;

/* n steps in the given mode, from ring slot *slot on; returns this rank's seconds. */
static double run_block(SyncState *s, const SyncOptions *o, int mode, int n, int *slot)
{
  const DyLossOptions lo = {.beta = 10.0, .diffusion = DY_DIFFUSION_CONSTANT};
  const size_t np = s->m.nparam;
  double one = 1;
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int k = 0; k < n; ++k) {
    const BenchInputs *in = &s->ring[*slot];
    DyLosses l;
    *slot = (*slot + 1) % NRING;
    dy_model_loss_grad(&s->m, s->w, o->B, o->L, in->x0, in->x1, in->x0, in->x1, in->theta, in->eps, &lo, &l);
    const dy_real *g = s->m.grads;
    if (mode == MODE_SYNC) {
      MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    } else if (mode == MODE_MPI || mode == MODE_SHARED) {
      memcpy(s->red, s->m.grads, sizeof(dy_real) * np);
      s->red[np] = 1;
      s->red[np + 1] = (dy_real)l.rec;
      s->red[np + 2] = (dy_real)l.sw;
      s->red[np + 3] = (dy_real)l.prior;
      dy_exchange_start(s->ex[mode], s->red);
      dy_exchange_wait(s->ex[mode], s->red);
      const dy_real inv = 1 / s->red[np];
      for (size_t i = 0; i < np; ++i) s->red[i] *= inv;
      g = s->red;
    }
    dy_adam_update(&s->rep, s->m.params, g);
    dy_adam_update(&s->pri, s->m.params, g);
  }
  return MPI_Wtime() - t0;
}

static double median(double *x, int n)
{
  qsort(x, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv)
{
  SyncOptions o;
  int rank, size, slot = 0;
  SyncState s;
  DyRng rng;

  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (parse_options(argc, argv, &o)) {
    if (rank == 0)
      fprintf(stderr, "usage: mpiexec -n P bench_sync [--B 256] [--L 50] [--D 2] [--d 2] [--steps 200] "
                      "[--rounds 10] [--warmup 50] (B >= 2, 1 <= d <= %d, steps and rounds >= 1)\n",
              DY_MAX_LAYERS);
    MPI_Finalize();
    return 2;
  }
  PetscCall(PetscInitializeNoArguments());

  const DyModelShape shape = bench_default_shape(o.D, o.d);
  memset(&s, 0, sizeof s);
  dy_rng_seed(&rng, 0, DY_STREAM_INIT);
  PetscCall(dy_model_create(&shape, &s.m));
  dy_model_init(&s.m, &rng); /* the same weights on every rank, as in training */
  PetscCall(dy_work_create(&s.m, o.B, o.L, &s.w));
  PetscCall(dy_adam_create(0, s.m.nparam_rep, 1e-3, &s.rep));
  PetscCall(dy_adam_create(s.m.nparam_rep, s.m.nparam - s.m.nparam_rep, 1e-3, &s.pri));
  dy_real *frames = malloc(sizeof(dy_real) * BENCH_NFRAMES * o.D);
  s.red = malloc(sizeof(dy_real) * (s.m.nparam + 4));
  double *times = malloc(sizeof(double) * (NMODES + 1) * o.rounds); /* and the slowest rank alone */
  int ok = frames && s.red && times;
  dy_rng_seed(&rng, 0, DY_STREAM_RANK + (uint64_t)rank); /* each rank its own pairs and noise */
  for (int k = 0; ok && k < BENCH_NFRAMES * o.D; ++k) frames[k] = (dy_real)dy_rng_normal(&rng);
  for (int r = 0; ok && r < NRING; ++r) {
    ok = !bench_inputs_alloc(&s.ring[r], o.B, o.L, o.D, o.d);
    if (ok) bench_draw_inputs(&rng, o.B, o.L, o.D, o.d, frames, &s.ring[r]);
  }
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  /* the shared way where every rank is on one node (auto picks it there up to its rank limit) */
  int node_size, one_node;
  PetscCall(dy_exchange_one_node(MPI_COMM_WORLD, &one_node, &node_size));
  PetscCall(dy_exchange_create(MPI_COMM_WORLD, s.m.nparam + 4, DY_EXCHANGE_MPI, &s.ex[MODE_MPI]));
  if (one_node) PetscCall(dy_exchange_create(MPI_COMM_WORLD, s.m.nparam + 4, DY_EXCHANGE_SHARED, &s.ex[MODE_SHARED]));
  if (!ok) {
    if (rank == 0) fprintf(stderr, "bench_sync: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  if (rank == 0)
    printf("bench_sync (%s precision): %d rank%s, B %d pairs per rank, L %d, D %d, d %d, %zu parameters; "
           "%d rounds of %d steps per mode after %d warm-up steps\n",
           DY_REAL_NAME, size, size > 1 ? "s" : "", o.B, o.L, o.D, o.d, s.m.nparam, o.rounds, o.steps, o.warmup);
  run_block(&s, &o, MODE_MPI, o.warmup, &slot);
  const int nmodes = one_node ? NMODES : MODE_SHARED;
  for (int r = 0; r < o.rounds; ++r)
    for (int mode = 0; mode < nmodes; ++mode) {
      double t = run_block(&s, &o, mode, o.steps, &slot) / o.steps * 1e6;
      /* alone: the mean of the ranks' own paces (and the slowest rank's); otherwise rank 0's (all
       * finish together) */
      if (mode == MODE_ALONE) {
        MPI_Allreduce(&t, &times[NMODES * o.rounds + r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        t /= size;
      }
      times[mode * o.rounds + r] = t;
    }

  if (rank == 0) {
    double med[NMODES], lo[NMODES], hi[NMODES];
    for (int mode = 0; mode < nmodes; ++mode) {
      double *x = times + mode * o.rounds;
      med[mode] = median(x, o.rounds); /* sorts x */
      lo[mode] = x[0];
      hi[mode] = x[o.rounds - 1];
      printf("%-10s median %8.1f us per step  (rounds %.1f to %.1f)\n", mode_name[mode], med[mode], lo[mode],
             hi[mode]);
    }
    const double slowest = median(times + NMODES * o.rounds, o.rounds);
    printf("alone, the slowest rank of each round: median %.1f us per step (%+.1f%% on the mean)\n", slowest,
           100 * (slowest / med[MODE_ALONE] - 1));
    printf("waiting for the slowest rank: %+.1f us per step (sync - alone)\n", med[MODE_SYNC] - med[MODE_ALONE]);
    for (int mode = MODE_MPI; mode < nmodes; ++mode) {
      printf("%s exchange: moving the gradients %+.1f us per step (%s - sync); ", mode_name[mode],
             med[mode] - med[MODE_SYNC], mode_name[mode]);
      printf("ceiling of the step loop's speed-up at %d ranks: %.2fx (P t_alone / t_%s; %d would be perfect)\n",
             size, size * med[MODE_ALONE] / med[mode], mode_name[mode], size);
    }
    if (!one_node) printf("shared exchange: not available, the ranks are on more than one node\n");
  }

  for (int r = 0; r < NRING; ++r) bench_inputs_free(&s.ring[r]);
  free(frames);
  free(s.red);
  free(times);
  PetscCall(dy_exchange_destroy(&s.ex[MODE_MPI]));
  PetscCall(dy_exchange_destroy(&s.ex[MODE_SHARED]));
  dy_adam_destroy(&s.rep);
  dy_adam_destroy(&s.pri);
  dy_work_destroy(&s.w);
  dy_model_destroy(&s.m);
  PetscCall(PetscFinalize());
  MPI_Finalize();
  return 0;
}
