/* The pairs seen by all ranks together are exactly the serial set.
 *
 *   data_pairs DIR [notarget | tiny | block]
 *
 * Rank 0 writes five trajectories of different lengths (one of exactly lag + 1 frames, one
 * shorter than the rank count at 4 ranks, float32 and float64, one chunked and compressed) and
 * their targets into DIR, then every rank loads them. Checked: the dimensions and offsets, that
 * the blocks partition every trajectory and hold the right frames, that every local pair lives
 * on its hashed rank with ids ascending and the right x0/x1/y0/y1 values, and (on rank 0) that
 * the union of all ranks' train and test ids equals the serial expectation with the same split:
 * no pair lost, duplicated or crossing trajectories. Exit code 0 when all checks pass.
 * notarget: the same without targets; tiny: only one trajectory of lag + 1 frames (one pair);
 * block: data.placement = "block", where a pair lives on the rank whose block holds its first
 * frame and no rank fetches a frame. */
#include "data_fixture.h"
#include "io/dy_data.h"
#include "base/dy_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAXTRAJ 5
#define LAG 2
#define NX 5
#define NY 2
#define SEED 12345
#define TEST_FRACTION 0.3

static int ntraj = MAXTRAJ; /* trajectories used: all, or only the first in the tiny case */
static int block_placement; /* the block mode */
static int64_t frames[MAXTRAJ] = {101, LAG + 1, 38, 7, 55};
static const char *const file_of[MAXTRAJ] = {"a.h5", "b.h5", "a.h5", "b.h5", "a.h5"};
static const char *const dset_of[MAXTRAJ] = {"/traj0", "/traj1", "/group/traj2", "/traj3", "/chunked"};
static const char *const target_of[MAXTRAJ] = {"/y0", "/y1", "/y2", "/y3", "/y4"};


static int write_inputs(const char *dir)
{
  char path[4096];
  int bad = 0;

  for (int i = 0; i < ntraj; i++) {
    const hid_t xt = (i % 2) ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, yt = (i % 2) ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;

    snprintf(path, sizeof path, "%s/%s", dir, file_of[i]);
    bad |= dy_test_write_traj(path, dset_of[i], frames[i], NX, xt, i, 0, i == 4 ? 8 : 0);
    snprintf(path, sizeof path, "%s/targets.h5", dir);
    bad |= dy_test_write_traj(path, target_of[i], frames[i], NY, yt, i, 1, 0);
  }
  return bad;
}

/* Serial expectation: trajectory and frame of pair g. */
static void locate(int64_t g, int *traj, int64_t *t)
{
  int i = 0;

  while (i < ntraj && g >= frames[i] - LAG) g -= frames[i++] - LAG;
  *traj = i < ntraj && g >= 0 ? i : -1;
  *t = g;
}

static int is_test(int64_t g) { return dy_hash_uniform(SEED, DY_STREAM_SPLIT, (uint64_t)g) < TEST_FRACTION; }

static void check_pairs(const DyPairs *p, int want_test, int rank, int size, int has_target,
                        const DyTrajBlock *block)
{
  for (int64_t k = 0; k < p->n; k++) {
    const int64_t g = p->id[k];
    int i;
    int64_t t;

    CHECK(k == 0 || p->id[k - 1] < g, "ids not ascending at %lld", (long long)k);
    CHECK(is_test(g) == want_test, "pair %lld in the wrong set", (long long)g);
    locate(g, &i, &t);
    CHECK(i >= 0, "pair id %lld out of range", (long long)g);
    if (i < 0) continue;
    if (block_placement) CHECK(t >= block[i].start && t < block[i].start + block[i].count, "pair %lld not in this rank's block",
                               (long long)g);
    else
      CHECK((int)(dy_hash_u64(SEED, DY_STREAM_SCATTER, (uint64_t)g) % (uint64_t)size) == rank,
            "pair %lld on the wrong rank", (long long)g);
    for (int f = 0; f < NX; f++) {
      CHECK(p->x0[k][f] == (dy_real)dy_test_code_x(i, t, f), "pair %lld x0[%d] = %g", (long long)g, f,
            (double)p->x0[k][f]);
      CHECK(p->x1[k][f] == (dy_real)dy_test_code_x(i, t + LAG, f), "pair %lld x1[%d] = %g", (long long)g, f,
            (double)p->x1[k][f]);
    }
    for (int f = 0; has_target && f < NY; f++) {
      CHECK(p->y0[k][f] == (dy_real)dy_test_code_y(i, t, f), "pair %lld y0[%d]", (long long)g, f);
      CHECK(p->y1[k][f] == (dy_real)dy_test_code_y(i, t + LAG, f), "pair %lld y1[%d]", (long long)g, f);
    }
  }
  if (!has_target) CHECK(p->y0 == p->x0 && p->y1 == p->x1, "y0/y1 should alias x0/x1 without targets");
}

/* Gathers the ids of one set to rank 0 and compares with the serial expectation. */
static PetscErrorCode check_union(MPI_Comm comm, const DyPairs *p, int want_test, int rank, int size, int64_t nall)
{
  int n = (int)p->n, *counts = NULL, *displ = NULL, total = 0;
  int64_t *ids = NULL, k = 0;

  PetscFunctionBegin;
  if (rank == 0) {
    PetscCall(PetscCalloc1(size, &counts));
    PetscCall(PetscCalloc1(size, &displ));
  }
  PetscCallMPI(MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, comm));
  if (rank == 0) {
    for (int r = 0; r < size; r++) {
      displ[r] = total;
      total += counts[r];
    }
    PetscCall(PetscMalloc1(total + 1, &ids));
  }
  PetscCallMPI(MPI_Gatherv(p->id, n, MPI_INT64_T, ids, counts, displ, MPI_INT64_T, 0, comm));
  if (rank == 0) {
    PetscCall(PetscSortInt64(total, ids));
    for (int64_t g = 0; g < nall; g++) {
      if (is_test(g) != want_test) continue;
      CHECK(k < total && ids[k] == g, "%s pair %lld missing (found %lld)", want_test ? "test" : "train",
            (long long)g, k < total ? (long long)ids[k] : -1LL);
      if (k < total && ids[k] == g) k++;
    }
    CHECK(k == total, "%d %s pairs gathered, %lld expected (duplicates or strays)", total,
          want_test ? "test" : "train", (long long)k);
    printf("%s pairs: %d over %d ranks\n", want_test ? "test" : "train", total, size);
  }
  PetscCall(PetscFree(ids));
  PetscCall(PetscFree(counts));
  PetscCall(PetscFree(displ));
  PetscFunctionReturn(0);
}

static PetscErrorCode run(MPI_Comm comm, const char *dir, const char *mode)
{
  const int has_target = !(mode && !strcmp(mode, "notarget"));
  char files[MAXTRAJ][4096], targets[MAXTRAJ][4096];
  DyDataRef in[MAXTRAJ], tg[MAXTRAJ];
  DyConfig cfg;
  DyData data;
  int rank, size, bad = 0;
  int64_t nall = 0, ntest = 0, (*blocks)[2] = NULL, mine[MAXTRAJ][2];

  PetscFunctionBegin;
  block_placement = mode && !strcmp(mode, "block");
  if (mode && !strcmp(mode, "tiny")) {
    /* One pair in all: most ranks send, receive and hold nothing. */
    ntraj = 1;
    frames[0] = LAG + 1;
  }
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  if (rank == 0) {
    mkdir(dir, 0755);
    for (int i = 0; i < ntraj; i++) {
      snprintf(files[0], sizeof files[0], "%s/%s", dir, file_of[i]);
      remove(files[0]);
    }
    snprintf(files[0], sizeof files[0], "%s/targets.h5", dir);
    remove(files[0]);
    bad = write_inputs(dir);
  }
  PetscCallMPI(MPI_Bcast(&bad, 1, MPI_INT, 0, comm));
  PetscCheck(!bad, comm, PETSC_ERR_FILE_WRITE, "cannot write the test inputs in %s", dir);

  memset(&cfg, 0, sizeof cfg);
  for (int i = 0; i < ntraj; i++) {
    snprintf(files[i], sizeof files[i], "%s/%s", dir, file_of[i]);
    snprintf(targets[i], sizeof targets[i], "%s/targets.h5", dir);
    in[i] = (DyDataRef){.file = files[i], .dataset = (char *)dset_of[i], .text = NULL};
    tg[i] = (DyDataRef){.file = targets[i], .dataset = (char *)target_of[i], .text = NULL};
  }
  cfg.ntraj = ntraj;
  cfg.input = in;
  cfg.ntarget = has_target ? ntraj : 0;
  cfg.target = has_target ? tg : NULL;
  cfg.lag = LAG;
  cfg.test_fraction = TEST_FRACTION;
  cfg.seed = SEED;
  cfg.placement = block_placement ? DY_PLACEMENT_BLOCK : DY_PLACEMENT_RANDOM;
  PetscCall(dy_data_load(comm, &cfg, &data));
  PetscCall(dy_data_print_plan(comm, &data, stdout));

  /* Dimensions and numbering. */
  CHECK(data.ntraj == ntraj && data.D == NX && data.lag == LAG, "ntraj %d D %d lag %d", data.ntraj, data.D, data.lag);
  CHECK(data.has_target == has_target && data.Dy == (has_target ? NY : NX), "Dy %d", data.Dy);
  for (int i = 0; i < ntraj; i++) {
    CHECK(data.frames[i] == frames[i], "frames[%d] = %lld", i, (long long)data.frames[i]);
    CHECK(data.pair_offset[i] == nall, "pair_offset[%d] = %lld", i, (long long)data.pair_offset[i]);
    nall += frames[i] - LAG;
  }
  CHECK(data.pair_offset[ntraj] == nall, "pair_offset[ntraj] = %lld", (long long)data.pair_offset[ntraj]);
  for (int64_t g = 0; g < nall; g++) {
    int i, j;
    int64_t t, u;

    ntest += is_test(g);
    locate(g, &i, &t);
    dy_data_pair_locate(&data, g, &j, &u);
    CHECK(i == j && t == u, "pair_locate(%lld) = (%d, %lld)", (long long)g, j, (long long)u);
  }
  CHECK(data.ntest_global == ntest && data.ntrain_global == nall - ntest, "global train %lld test %lld",
        (long long)data.ntrain_global, (long long)data.ntest_global);

  /* Blocks: the right frames here, and a partition of every trajectory over the ranks. */
  for (int i = 0; i < ntraj; i++) {
    const DyTrajBlock *b = &data.block[i];

    CHECK(b->frames == frames[i], "block %d frames", i);
    CHECK(b->nread == (b->count ? DY_MIN(b->count + LAG, frames[i] - b->start) : 0), "block %d nread %lld", i,
          (long long)b->nread);
    for (int64_t r = 0; r < b->nread; r++)
      for (int f = 0; f < NX; f++)
        CHECK(b->x[r * NX + f] == (dy_real)dy_test_code_x(i, b->start + r, f), "block %d row %lld", i, (long long)r);
    for (int64_t r = 0; has_target && r < b->nread; r++)
      for (int f = 0; f < NY; f++)
        CHECK(b->y[r * NY + f] == (dy_real)dy_test_code_y(i, b->start + r, f), "block %d target row %lld", i,
              (long long)r);
    mine[i][0] = b->start;
    mine[i][1] = b->count;
  }
  if (rank == 0) PetscCall(PetscMalloc1(size * ntraj, &blocks));
  PetscCallMPI(MPI_Gather(mine, 2 * ntraj, MPI_INT64_T, blocks, 2 * ntraj, MPI_INT64_T, 0, comm));
  for (int i = 0; rank == 0 && i < ntraj; i++) {
    int64_t next = 0;
    for (int r = 0; r < size; r++) {
      CHECK(blocks[r * ntraj + i][0] == next, "traj %d: block of rank %d starts at %lld, not %lld", i, r,
            (long long)blocks[r * ntraj + i][0], (long long)next);
      next += blocks[r * ntraj + i][1];
    }
    CHECK(next == frames[i], "traj %d: blocks cover %lld frames", i, (long long)next);
  }
  PetscCall(PetscFree(blocks));

  /* Pairs: values and placement here, the union on rank 0. */
  check_pairs(&data.train, 0, rank, size, has_target, data.block);
  check_pairs(&data.test, 1, rank, size, has_target, data.block);
  if (block_placement) CHECK(data.nfetched == 0, "%lld frames fetched with block placement", (long long)data.nfetched);
  PetscCall(check_union(comm, &data.train, 0, rank, size, nall));
  PetscCall(check_union(comm, &data.test, 1, rank, size, nall));
  dy_data_free(&data);
  CHECK(data.ntraj == 0 && data.train.id == NULL, "dy_data_free leaves the struct zeroed");
  PetscFunctionReturn(0);
}

int main(int argc, char **argv) { return dy_test_main(argc, argv, "data_pairs DIR [notarget | tiny | block]", run); }
