/* Bad data are the user's mistake: DY_ERR_INPUT (exit code 2) on every rank together, with a
 * message naming the file, the dataset and, for non-finite values, the first bad frame.
 *
 *   data_errors DIR
 *
 * Rank 0 writes good and bad datasets into DIR; each case loads a hand-filled configuration
 * and checks the code, the message (captured by an error handler), that the struct is left
 * empty, that no HDF5 object stays open and, at the end, that nothing was written. A last good
 * case makes sure the fixture itself is sound. Non-finite values sit at frames 40 and 45 of
 * 50 (in the second rank's block at 2 ranks) and frame 30 of a target. */
#include "data_fixture.h"
#include "io/dy_data.h"
#include "base/dy_rng.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LAG 2
#define MAXREF 2
#define MAXSUB 4

typedef struct {
  const char *name;                /* what the case shows */
  int ninput, ntarget;             /* entries used */
  const char *input[MAXREF];       /* FILE:DATASET relative to DIR */
  const char *target[MAXREF];
  const char *expect[MAXSUB];      /* substrings of the message; NULL-terminated */
} ErrorCase;

/* The cases that set data.features or data.atoms (the others keep "coordinates" and all atoms). */
static const struct {
  const char *name;     /* the case */
  const char *features; /* data.features */
  int natoms;           /* data.atoms */
  int atoms[2];
} selections[] = {
  {"atom out of range", "coordinates", 2, {0, 4}},
  {"distances of 2-D", "distances", 0, {0, 0}},
  {"aligned 2-D", "aligned", 0, {0, 0}},
  {"atoms of 2-D", "coordinates", 1, {0, 0}},
  {"atom counts differ", "distances", 2, {0, 1}},
};

static const ErrorCase cases[] = {
  {"missing file", 1, 0, {"nope.h5:/x"}, {0}, {"nope.h5", "dataset /x", "cannot read the file"}},
  {"not HDF5", 1, 0, {"notes.txt:/x"}, {0}, {"notes.txt", "dataset /x", "not an HDF5 file"}},
  {"missing dataset", 1, 0, {"good.h5:/missing"}, {0}, {"good.h5", "dataset /missing", "no such dataset"}},
  {"missing group", 1, 0, {"good.h5:/nogroup/x"}, {0}, {"good.h5", "dataset /nogroup/x", "no such dataset"}},
  {"group, not dataset", 1, 0, {"good.h5:/grp"}, {0}, {"good.h5", "dataset /grp", "a group without a `value` dataset"}},
  {"1-D", 1, 0, {"good.h5:/one_d"}, {0}, {"good.h5", "dataset /one_d", "(50,) (1-D)"}},
  {"3-D", 1, 0, {"good.h5:/three_d"}, {0}, {"good.h5", "dataset /three_d", "(50, 3, 2); a 3-D dataset must be"}},
  {"atom out of range", 1, 0, {"good.h5:/pos4"}, {0}, {"dataset /pos4", "data.atoms[1] = 4 is out of range", "4 atoms"}},
  {"distances of 2-D", 1, 0, {"good.h5:/x"}, {0}, {"dataset /x", "data.features = \"distances\" needs 3-D"}},
  {"aligned 2-D", 1, 0, {"good.h5:/x"}, {0}, {"dataset /x", "data.features = \"aligned\" needs 3-D"}},
  {"atoms of 2-D", 1, 0, {"good.h5:/x"}, {0}, {"dataset /x", "data.atoms selects atoms of 3-D"}},
  {"H5MD without value", 1, 0, {"good.h5:/particles/all/position"}, {0},
   {"dataset /particles/all/position", "a group without a `value` dataset"}},
  {"atom counts differ", 2, 0, {"good.h5:/pos4", "good.h5:/particles/five/position"}, {0},
   {"atom counts disagree", "/pos4 has 4 atoms", "dataset /particles/five/position has 5"}},
  {"H5MD last dimension", 1, 0, {"good.h5:/particles/flat/position"}, {0},
   {"dataset /particles/flat/position", "(50, 4, 2); a 3-D dataset must be (frames, atoms, 3)"}},
  {"NaN in positions", 1, 0, {"good.h5:/pos_nan"}, {0}, {"dataset /pos_nan", "at frame 40, atom 2, coordinate y"}},
  {"zero features", 1, 0, {"good.h5:/zero_feat"}, {0}, {"good.h5", "dataset /zero_feat", "(50, 0): no features"}},
  {"integer type", 1, 0, {"good.h5:/int"}, {0}, {"good.h5", "dataset /int", "integer type"}},
  {"features disagree", 2, 0, {"good.h5:/x", "good.h5:/four_feat"}, {0},
   {"feature counts disagree", "dataset /x has 3", "data.input[1]: file", "dataset /four_feat has 4"}},
  {"shorter than lag + 1", 2, 0, {"good.h5:/x", "good.h5:/short"}, {0},
   {"data.input[1]", "dataset /short", "2 frames", "data.lag + 1 = 3"}},
  {"NaN", 2, 0, {"good.h5:/x", "good.h5:/nan"}, {0},
   {"data.input[1]", "dataset /nan", "non-finite", "at frame 40, feature 1"}},
  {"Inf in float64", 1, 0, {"good.h5:/inf64"}, {0}, {"dataset /inf64", "non-finite", "at frame 26, feature 2"}},
  {"target frames", 1, 1, {"good.h5:/x"}, {"good.h5:/y_short"},
   {"data.target[0]", "dataset /y_short", "49 frames", "dataset /x has 50"}},
  {"target features disagree", 2, 2, {"good.h5:/x", "good.h5:/x2"}, {"good.h5:/y", "good.h5:/y_3feat"},
   {"target feature counts disagree", "dataset /y has 2", "data.target[1]", "dataset /y_3feat has 3"}},
  {"Inf in target", 2, 2, {"good.h5:/x", "good.h5:/x2"}, {"good.h5:/inf_y", "other.h5:/y2"},
   {"data.target[0]", "dataset /inf_y", "non-finite", "at frame 30, feature 0"}},
  {"one target per input", 2, 1, {"good.h5:/x", "good.h5:/x2"}, {"good.h5:/y"}, {"data.target: 1 entry for 2"}},
  {"no training pair", 1, 0, {"good.h5:/tiny"}, {0}, {"no pair is left for training (1 of 1 drawn", "data.test_fraction = 0.2"}},
  {"good", 2, 2, {"good.h5:/x", "good.h5:/x2"}, {"good.h5:/y", "other.h5:/y2"}, {0}},
};

static char captured[4096];

/* Keeps the first message of an error as it is raised (the text users would see). */
static PetscErrorCode capture(MPI_Comm comm, int line, const char *fun, const char *file, PetscErrorCode n,
                              PetscErrorType p, const char *mess, void *ctx)
{
  (void)comm; (void)line; (void)fun; (void)file; (void)ctx;
  if (p == PETSC_ERROR_INITIAL && mess) snprintf(captured, sizeof captured, "%s", mess);
  return n;
}

static int write_fixture(const char *dir)
{
  const unsigned long long d1[1] = {50}, d3[3] = {50, 3, 2}, d0[2] = {50, 0};
  double v[300];
  char good[4096], path[4096];
  int bad = 0;
  FILE *fp;

  snprintf(good, sizeof good, "%s/good.h5", dir);
  remove(good);
  snprintf(path, sizeof path, "%s/other.h5", dir);
  remove(path);
  for (int k = 0; k < 300; k++) v[k] = k;
  bad |= dy_test_write_traj(good, "/x", 50, 3, H5T_IEEE_F32LE, 0, 0, 0);
  bad |= dy_test_write_traj(good, "/x2", 20, 3, H5T_IEEE_F64LE, 1, 0, 0);
  bad |= dy_test_write_traj(good, "/y", 50, 2, H5T_IEEE_F32LE, 0, 1, 0);
  bad |= dy_test_write_traj(path, "/y2", 20, 2, H5T_IEEE_F64LE, 1, 1, 0);
  bad |= dy_test_write_traj(good, "/grp/inside", 50, 3, H5T_IEEE_F32LE, 0, 0, 0);
  bad |= dy_test_write(good, "/one_d", 1, d1, H5T_IEEE_F32LE, v, 0);
  bad |= dy_test_write(good, "/three_d", 3, d3, H5T_IEEE_F64LE, v, 0);
  bad |= dy_test_write(good, "/zero_feat", 2, d0, H5T_IEEE_F32LE, NULL, 0);
  bad |= dy_test_write_traj(good, "/int", 50, 3, H5T_STD_I32LE, 0, 0, 0);
  bad |= dy_test_write_traj(good, "/four_feat", 20, 4, H5T_IEEE_F32LE, 0, 0, 0);
  bad |= dy_test_write_traj(good, "/short", LAG, 3, H5T_IEEE_F32LE, 0, 0, 0);
  bad |= dy_test_write_traj(good, "/tiny", LAG + 1, 3, H5T_IEEE_F32LE, 0, 0, 0);
  bad |= dy_test_write_traj(good, "/y_short", 49, 2, H5T_IEEE_F32LE, 0, 1, 0);
  bad |= dy_test_write_traj(good, "/y_3feat", 20, 3, H5T_IEEE_F32LE, 0, 1, 0);
  {
    const unsigned long long d4[3] = {50, 4, 3}, d5[3] = {50, 5, 3}, d42[3] = {50, 4, 2};
    double *p = malloc(sizeof(double) * 50 * 5 * 3);

    if (!p) return 1;
    for (int k = 0; k < 50 * 5 * 3; k++) p[k] = 0.01 * k + 0.3 * (k % 3);
    bad |= dy_test_write(good, "/pos4", 3, d4, H5T_IEEE_F32LE, p, 0);
    bad |= dy_test_write(good, "/particles/five/position/value", 3, d5, H5T_IEEE_F32LE, p, 0);
    bad |= dy_test_write(good, "/particles/flat/position/value", 3, d42, H5T_IEEE_F32LE, p, 0);
    bad |= dy_test_write(good, "/particles/all/position/time", 1, d1, H5T_IEEE_F32LE, v, 0);
    p[(40 * 4 + 2) * 3 + 1] = NAN;
    bad |= dy_test_write(good, "/pos_nan", 3, d4, H5T_IEEE_F64LE, p, 0);
    free(p);
  }
  {
    const unsigned long long dx[2] = {50, 3}, dy[2] = {50, 2};
    double x[150], y[100];

    for (int k = 0; k < 150; k++) x[k] = dy_test_code_x(0, k / 3, k % 3);
    for (int k = 0; k < 100; k++) y[k] = dy_test_code_y(0, k / 2, k % 2);
    x[40 * 3 + 1] = NAN;
    x[45 * 3 + 0] = INFINITY;
    bad |= dy_test_write(good, "/nan", 2, dx, H5T_IEEE_F32LE, x, 5);
    for (int k = 0; k < 150; k++) x[k] = dy_test_code_x(0, k / 3, k % 3);
    /* Frame 26 is read by rank 0 as overlap but owned (and reported) by rank 1 at 2 ranks. */
    x[26 * 3 + 2] = -INFINITY;
    x[48 * 3 + 2] = NAN;
    bad |= dy_test_write(good, "/inf64", 2, dx, H5T_IEEE_F64LE, x, 0);
    y[30 * 2 + 0] = INFINITY;
    bad |= dy_test_write(good, "/inf_y", 2, dy, H5T_IEEE_F32LE, y, 0);
  }
  snprintf(path, sizeof path, "%s/notes.txt", dir);
  if (!(fp = fopen(path, "w"))) return 1;
  fprintf(fp, "not an HDF5 file\n");
  bad |= fclose(fp) != 0;
  return bad;
}

/* Names in dir, sorted, as one string (to see that nothing was written). */
static void listing(const char *dir, char *out, size_t len)
{
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  size_t used = 0;

  out[0] = 0;
  for (int k = 0; k < n; k++) {
    if (used < len) used += (size_t)snprintf(out + used, len - used, "%s ", names[k]->d_name);
    free(names[k]);
  }
  if (n >= 0) free(names);
}

static void fill_ref(DyDataRef *ref, const char *dir, const char *entry, char *buf, size_t len)
{
  const char *colon = strchr(entry, ':');

  snprintf(buf, len, "%s/%.*s", dir, (int)(colon - entry), entry);
  ref->file = buf;
  ref->dataset = (char *)colon + 1;
  ref->text = (char *)entry;
}

static PetscErrorCode run(MPI_Comm comm, const char *dir, const char *unused)
{
  char before[4096], after[4096], files[2 * MAXREF][4096], outdir[4096];
  int rank, bad = 0;
  int64_t seed = 0;
  struct stat st;

  PetscFunctionBegin;
  (void)unused;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    mkdir(dir, 0755);
    bad = write_fixture(dir);
  }
  PetscCallMPI(MPI_Bcast(&bad, 1, MPI_INT, 0, comm));
  PetscCheck(!bad, comm, PETSC_ERR_FILE_WRITE, "cannot write the test inputs in %s", dir);
  listing(dir, before, sizeof before);
  /* A seed that makes pair 0 a test pair, so that /tiny (one pair) leaves nothing to train on. */
  while (dy_hash_uniform((uint64_t)seed, DY_STREAM_SPLIT, 0) >= 0.2) seed++;
  snprintf(outdir, sizeof outdir, "%s/out", dir);

  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const ErrorCase *e = &cases[c];
    const int want_error = e->expect[0] != NULL;
    DyDataRef in[MAXREF], tg[MAXREF];
    DyConfig cfg;
    DyData data;
    PetscErrorCode ierr;

    memset(&cfg, 0, sizeof cfg);
    for (int i = 0; i < e->ninput; i++) fill_ref(&in[i], dir, e->input[i], files[i], sizeof files[i]);
    for (int i = 0; i < e->ntarget; i++) fill_ref(&tg[i], dir, e->target[i], files[MAXREF + i], sizeof files[0]);
    cfg.ntraj = e->ninput;
    cfg.input = in;
    cfg.ntarget = e->ntarget;
    cfg.target = tg;
    cfg.lag = LAG;
    cfg.test_fraction = 0.2;
    cfg.seed = seed;
    cfg.dir = outdir;
    snprintf(cfg.features, sizeof cfg.features, "coordinates");
    for (size_t k = 0; k < sizeof selections / sizeof selections[0]; k++)
      if (!strcmp(selections[k].name, e->name)) {
        snprintf(cfg.features, sizeof cfg.features, "%s", selections[k].features);
        cfg.natoms = selections[k].natoms;
        cfg.atoms = (int *)selections[k].atoms;
      }
    captured[0] = 0;
    PetscCall(PetscPushErrorHandler(capture, NULL));
    ierr = dy_data_load(comm, &cfg, &data);
    PetscCall(PetscPopErrorHandler());
    if (rank == 0) printf("%-26s -> code %d, exit %d: %s\n", e->name, (int)ierr, dy_exit_code(ierr), captured);
    if (!want_error) {
      CHECK(ierr == 0, "case '%s' should load", e->name);
      CHECK(data.ntraj == 2 && data.Dy == 2 && data.train.n + data.test.n >= 0, "case '%s' loaded wrongly", e->name);
      PetscCall(dy_data_print_plan(comm, &data, stdout));
      dy_data_free(&data);
      continue;
    }
    CHECK(ierr == DY_ERR_INPUT && dy_exit_code(ierr) == 2, "case '%s': code %d", e->name, (int)ierr);
    /* The message is formatted alike on every rank; rank 0 is the one that prints it. */
    for (int k = 0; rank == 0 && k < MAXSUB && e->expect[k]; k++)
      CHECK(strstr(captured, e->expect[k]) != NULL, "case '%s': message lacks '%s'", e->name, e->expect[k]);
    CHECK(data.ntraj == 0 && data.block == NULL && data.train.n == 0, "case '%s': data not left empty", e->name);
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "case '%s': %lld HDF5 objects left open", e->name,
          (long long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
    dy_data_free(&data);
  }
  PetscCallMPI(MPI_Barrier(comm));
  listing(dir, after, sizeof after);
  CHECK(!strcmp(before, after), "files appeared: before '%s', after '%s'", before, after);
  CHECK(stat(outdir, &st) != 0, "the output folder %s was created", outdir);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv) { return dy_test_main(argc, argv, "data_errors DIR", run); }
