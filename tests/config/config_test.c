/* dy_config_load on good inputs: SPEC defaults, --set overrides of every kind, relative paths,
 * the effective configuration reading back to the same values, the model shape; and a bad input
 * failing on every rank with a single message (run at 1 and 2 ranks).
 * usage: config_test SCRATCH_DIR */
#include "io/dy_config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int nfail = 0; /* failed checks on this rank */

#define CHECK(c)                                                                                                       \
  do {                                                                                                                 \
    if (!(c)) {                                                                                                        \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                            \
      nfail++;                                                                                                         \
    }                                                                                                                  \
  } while (0)
#define CHECK_STR(a, b) CHECK(same_str((a), (b)))

static int same_str(const char *a, const char *b) {
  return a && b && !strcmp(a, b);
}

static char scratch[2048]; /* the test's folder */

/* Rank 0 writes scratch/name; everyone waits for it. Returns the full path (in a static buffer,
 * valid until the next call). */
static const char *put_file(MPI_Comm comm, const char *name, const char *text) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/%s", scratch, name);
  if (dy_is_root(comm)) {
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp)) {
      fprintf(stderr, "cannot write %s\n", path);
      nfail++;
    }
  }
  MPI_Barrier(comm);
  return path;
}

static const char *in_scratch(const char *name) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/%s", scratch, name);
  return path;
}

/* Loads and reports whether it worked, without stopping the test on an input error. */
static PetscErrorCode load(MPI_Comm comm, const char *path, int nset, const char **sets, DyConfig *cfg) {
  return dy_config_load(comm, path, nset, (char *const *)sets, cfg);
}

static void check_same_refs(const DyDataRef *a, const DyDataRef *b, int n) {
  for (int i = 0; i < n; i++) {
    CHECK_STR(a[i].file, b[i].file);
    CHECK_STR(a[i].dataset, b[i].dataset);
    CHECK_STR(a[i].text, b[i].text);
  }
}

/* Every field that the input file sets. */
static void check_same(const DyConfig *a, const DyConfig *b) {
  CHECK(a->ntraj == b->ntraj && a->ntarget == b->ntarget);
  if (a->ntraj == b->ntraj) check_same_refs(a->input, b->input, a->ntraj);
  if (a->ntarget == b->ntarget) check_same_refs(a->target, b->target, a->ntarget);
  CHECK(a->lag == b->lag && a->test_fraction == b->test_fraction);
  CHECK_STR(a->type, b->type);
  CHECK(a->latent_dim == b->latent_dim && a->diffusion == b->diffusion);
  CHECK(a->nencoder == b->nencoder && !memcmp(a->encoder, b->encoder, sizeof a->encoder));
  CHECK(a->ndecoder == b->ndecoder && !memcmp(a->decoder, b->decoder, sizeof a->decoder));
  CHECK(a->nprior == b->nprior && !memcmp(a->prior, b->prior, sizeof a->prior));
  CHECK(a->beta == b->beta && a->projections == b->projections && a->nu == b->nu);
  CHECK(a->d_min == b->d_min && a->gamma == b->gamma && a->max_centers == b->max_centers);
  CHECK(a->epochs == b->epochs && a->batch_size == b->batch_size);
  CHECK(a->lr == b->lr && a->prior_lr == b->prior_lr && a->warmup_lr == b->warmup_lr);
  CHECK(a->warmup_beta_scale == b->warmup_beta_scale && a->warmup_target == b->warmup_target && a->seed == b->seed);
  CHECK(a->target_weight == b->target_weight && a->target_epochs == b->target_epochs);
  CHECK_STR(a->dir, b->dir);
  CHECK_STR(a->dir_given, b->dir_given);
  CHECK(a->checkpoint_every == b->checkpoint_every && a->checkpoint_steps == b->checkpoint_steps);
  CHECK(a->test_pairs == b->test_pairs && a->results_every == b->results_every);
  CHECK(a->save_reconstruction == b->save_reconstruction && a->quiet == b->quiet);
  CHECK_STR(a->effective, b->effective);
}

/* cfg->effective, written next to the original input (so relative paths mean the same) and loaded
 * again, gives the same configuration. */
static void check_round_trip(MPI_Comm comm, const DyConfig *cfg, const char *name) {
  DyConfig again;
  const char *path = put_file(comm, name, cfg->effective);
  CHECK(load(comm, path, 0, NULL, &again) == 0);
  check_same(cfg, &again);
  dy_config_free(&again);
}

static const char *const defaults_effective = "[data]\n"
                                              "input = [\"traj.h5:/positions\", \"/abs/t.h5:pos\", \"a:b/t.h5:/x/y\"]\n"
                                              "target = []\n"
                                              "lag = 1\n"
                                              "test_fraction = 0.2\n"
                                              "tica_dim = 0\n"
                                              "atoms = []\n"
                                              "features = \"coordinates\"\n"
                                              "standardize = true\n"
                                              "scale = \"common\"\n"
                                              "placement = \"random\"\n"
                                              "\n"
                                              "[model]\n"
                                              "type = \"dynamicsae\"\n"
                                              "latent_dim = 2\n"
                                              "encoder = [32, 32, 32]\n"
                                              "decoder = [32, 32, 32]\n"
                                              "prior = [32, 32]\n"
                                              "diffusion = \"constant\"\n"
                                              "activation = \"relu\"\n"
                                              "network = \"mlp\"\n"
                                              "\n"
                                              "[loss]\n"
                                              "beta = 10.0\n"
                                              "projections = 50\n"
                                              "nu = 0.0065\n"
                                              "\n"
                                              "[cluster]\n"
                                              "d_min = 5.0\n"
                                              "gamma = 2.0\n"
                                              "max_centers = 200\n"
                                              "\n"
                                              "[tica]\n"
                                              "lag = 1\n"
                                              "epsilon = 1e-06\n"
                                              "scaling = \"kinetic_map\"\n"
                                              "\n"
                                              "[train]\n"
                                              "epochs = 50\n"
                                              "batch_size = 256\n"
                                              "batch = \"global\"\n"
                                              "lr_scaling = \"none\"\n"
                                              "lr_warmup_epochs = 5\n"
                                              "lr = 0.001\n"
                                              "prior_lr = 0.001\n"
                                              "warmup_lr = 0.0001\n"
                                              "warmup_beta_scale = 0.01\n"
                                              "warmup_target = \"none\"\n"
                                              "target_weight = 0.01\n"
                                              "target_epochs = 5\n"
                                              "seed = 0\n"
                                              "test_pairs = 4096\n"
                                              "\n"
                                              "[output]\n"
                                              "dir = \"results\"\n"
                                              "checkpoint_every = 1\n"
                                              "checkpoint_steps = 0\n"
                                              "results_every = 10\n"
                                              "save_reconstruction = true\n"
                                              "quiet = false\n"
                                              "\n"
                                              "[analysis]\n"
                                              "grid = 64\n"
                                              "margin = 0.1\n"
                                              "force_weight = \"density\"\n"
                                              "force_refit = true\n";

/* Only data.input given: every other key takes SPEC's default; relative paths resolve against the
 * input's folder, absolute ones stay, and a path may hold ':'. */
static void test_defaults(MPI_Comm comm) {
  DyConfig cfg;
  DyModelShape shape;
  char want[4096];
  const char *path = put_file(
      comm, "defaults.toml",
      "# only what has no default\n[data]\ninput = [\"traj.h5:/positions\", \"/abs/t.h5:pos\", \"a:b/t.h5:/x/y\"]\n");

  CHECK(load(comm, path, 0, NULL, &cfg) == 0);
  CHECK_STR(cfg.path, path);
  CHECK(cfg.ntraj == 3 && cfg.ntarget == 0);
  if (cfg.ntraj == 3) {
    snprintf(want, sizeof want, "%s/traj.h5", scratch);
    CHECK_STR(cfg.input[0].file, want);
    CHECK_STR(cfg.input[0].dataset, "/positions");
    CHECK_STR(cfg.input[0].text, "traj.h5:/positions");
    CHECK_STR(cfg.input[1].file, "/abs/t.h5");
    CHECK_STR(cfg.input[1].dataset, "/pos");
    snprintf(want, sizeof want, "%s/a:b/t.h5", scratch);
    CHECK_STR(cfg.input[2].file, want);
    CHECK_STR(cfg.input[2].dataset, "/x/y");
  }
  CHECK(cfg.lag == 1 && cfg.test_fraction == 0.2);
  CHECK_STR(cfg.type, "dynamicsae");
  CHECK(cfg.latent_dim == 2 && cfg.diffusion == DY_DIFFUSION_CONSTANT);
  CHECK(cfg.nencoder == 3 && cfg.encoder[0] == 32 && cfg.encoder[1] == 32 && cfg.encoder[2] == 32);
  CHECK(cfg.ndecoder == 3 && cfg.decoder[0] == 32 && cfg.decoder[2] == 32);
  CHECK(cfg.nprior == 2 && cfg.prior[0] == 32 && cfg.prior[1] == 32);
  CHECK(cfg.beta == 10.0 && cfg.projections == 50 && cfg.nu == 0.0065);
  CHECK(cfg.d_min == 5.0 && cfg.gamma == 2.0 && cfg.max_centers == 200);
  CHECK(cfg.epochs == 50 && cfg.batch_size == 256);
  CHECK(cfg.lr == 1e-3 && cfg.prior_lr == 1e-3 && cfg.warmup_lr == 1e-4 && cfg.warmup_beta_scale == 0.01);
  CHECK(cfg.seed == 0);
  snprintf(want, sizeof want, "%s/results", scratch);
  CHECK_STR(cfg.dir, want);
  CHECK_STR(cfg.dir_given, "results");
  CHECK(cfg.checkpoint_every == 1 && cfg.checkpoint_steps == 0 && cfg.save_reconstruction == 1 && cfg.quiet == 0);
  CHECK(cfg.test_pairs == 4096 && cfg.results_every == 10);
  /* every key, in SPEC order, paths as written */
  CHECK_STR(cfg.effective, defaults_effective);
  if (cfg.effective && strcmp(cfg.effective, defaults_effective)) fprintf(stderr, "effective:\n%s", cfg.effective);
  check_round_trip(comm, &cfg, "defaults_effective.toml");
  /* tica.lag = 0 (the default) takes data.lag */
  CHECK(cfg.tica_lag == cfg.lag && cfg.tica_dim == 0 && cfg.tica_epsilon == 1e-6 && cfg.tica_scaling == DY_TICA_KINETIC_MAP);

  dy_config_model_shape(&cfg, 10, 7, &shape);
  CHECK(shape.D == 10 && shape.Dy == 7 && shape.d == 2);
  CHECK(shape.nhidden[DY_NET_ENCODER] == 3 && shape.nhidden[DY_NET_DECODER] == 3);
  CHECK(shape.nhidden[DY_NET_FORCE] == 2 && shape.nhidden[DY_NET_LOGDIFF] == 2);
  CHECK(shape.hidden[DY_NET_ENCODER][2] == 32 && shape.hidden[DY_NET_LOGDIFF][1] == 32);
  dy_config_free(&cfg);
  CHECK(cfg.effective == NULL && cfg.input == NULL);
}

/* Input files named by relative paths: paths resolve against the file's folder, not the working
 * directory's. */
static void test_relative_input(MPI_Comm comm) {
  DyConfig cfg;
  char cwd[4096];

  if (dy_is_root(comm)) mkdir(in_scratch("sub"), 0755);
  put_file(comm, "sub/rel.toml", "[data]\ninput = [\"../traj.h5:/x\", \"here.h5:/y\"]\n[output]\ndir = \"out/run1\"\n");
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(scratch) == 0);
  CHECK(load(comm, "sub/rel.toml", 0, NULL, &cfg) == 0);
  CHECK(cfg.ntraj == 2);
  if (cfg.ntraj == 2) {
    CHECK_STR(cfg.input[0].file, "sub/../traj.h5");
    CHECK_STR(cfg.input[1].file, "sub/here.h5");
  }
  CHECK_STR(cfg.dir, "sub/out/run1");
  CHECK_STR(cfg.dir_given, "out/run1");
  dy_config_free(&cfg);

  /* from inside the folder the paths stay as written; --set paths resolve the same way */
  CHECK(chdir("sub") == 0);
  const char *sets[] = {"data.target=[\"t.h5:/t\", \"/abs/u.h5:/u\"]", "output.dir=elsewhere"};
  CHECK(load(comm, "rel.toml", 2, sets, &cfg) == 0);
  if (cfg.ntraj == 2) CHECK_STR(cfg.input[1].file, "here.h5");
  CHECK(cfg.ntarget == 2);
  if (cfg.ntarget == 2) {
    CHECK_STR(cfg.target[0].file, "t.h5");
    CHECK_STR(cfg.target[1].file, "/abs/u.h5");
  }
  CHECK_STR(cfg.dir, "elsewhere");
  dy_config_free(&cfg);
  CHECK(chdir(cwd) == 0);

  /* an input file at the root of the file system */
  CHECK(load(comm, "/nonexistent-dynae-config.toml", 0, NULL, &cfg) == DY_ERR_INPUT);
}

/* A file setting every key, then --set of every kind on top; the later --set wins. */
static void test_overrides(MPI_Comm comm) {
  DyConfig cfg;
  char want[4096], path[4096];
  snprintf(path, sizeof path, "%s",
           put_file(comm, "full.toml",
                    "[data]\n"
                    "input = [\"a.h5:/x\", \"b.h5:x\"]\n"
                    "target = []\n"
                    "lag = 3\n"
                    "test_fraction = 0\n"
                    "[model]\n"
                    "type = \"dynamicsae\"\n"
                    "latent_dim = 3\n"
                    "encoder = [64, 16]\n"
                    "decoder = [\n  16,\n  64,\n]\n"
                    "prior = [8]\n"
                    "diffusion = \"learned\"\n"
                    "activation = \"tanh\"\n"
                    "[loss]\n"
                    "beta = 0\n"
                    "projections = 7\n"
                    "[cluster]\n"
                    "d_min = 0.5\n"
                    "gamma = 1\n"
                    "max_centers = 9\n"
                    "[train]\n"
                    "epochs = 4\n"
                    "batch_size = 2\n"
                    "lr = 2e-3\n"
                    "prior_lr = 3e-3\n"
                    "warmup_lr = 5e-5\n"
                    "warmup_beta_scale = 0\n"
                    "warmup_target = \"tica\"\n"
                    "target_weight = 0.5\n"
                    "target_epochs = 3\n"
                    "seed = 42\n"
                    "[output]\n"
                    "dir = \"out\"\n"
                    "checkpoint_every = 0\n"
                    "checkpoint_steps = 100\n"
                    "save_reconstruction = false\n"
                    "quiet = true\n"
                    "[analysis]\n"
                    "grid = 17\n"
                    "margin = 0\n"
                    "force_weight = \"none\"\n"
                    "force_refit = false\n"));
  CHECK(load(comm, path, 0, NULL, &cfg) == 0);
  CHECK(cfg.activation == DY_ACT_TANH && cfg.grid == 17 && cfg.margin == 0.0);
  CHECK(cfg.force_weight == DY_FIELDS_WEIGHT_NONE && cfg.force_refit == 0);
  CHECK(cfg.lag == 3 && cfg.test_fraction == 0.0 && cfg.latent_dim == 3 && cfg.diffusion == DY_DIFFUSION_LEARNED);
  CHECK(cfg.nencoder == 2 && cfg.encoder[0] == 64 && cfg.encoder[1] == 16);
  CHECK(cfg.ndecoder == 2 && cfg.decoder[0] == 16 && cfg.decoder[1] == 64 && cfg.nprior == 1 && cfg.prior[0] == 8);
  CHECK(cfg.beta == 0.0 && cfg.projections == 7 && cfg.d_min == 0.5 && cfg.gamma == 1.0 && cfg.max_centers == 9);
  CHECK(cfg.epochs == 4 && cfg.batch_size == 2 && cfg.lr == 2e-3 && cfg.prior_lr == 3e-3 && cfg.warmup_lr == 5e-5);
  CHECK(cfg.warmup_beta_scale == 0.0 && cfg.warmup_target == DY_WARMUP_TARGET_TICA && cfg.seed == 42);
  CHECK(cfg.target_weight == 0.5 && cfg.target_epochs == 3);
  CHECK(cfg.checkpoint_every == 0 && cfg.checkpoint_steps == 100 && cfg.save_reconstruction == 0 && cfg.quiet == 1);
  if (cfg.ntraj == 2) CHECK_STR(cfg.input[1].dataset, "/x");
  check_round_trip(comm, &cfg, "full_effective.toml");
  dy_config_free(&cfg);

  const char *sets[] = {
      "train.epochs=7",                      /* integer */
      "train.lr=0.5",                        /* float */
      "loss.beta=3",                         /* an integer where a float is expected */
      "output.dir=run3",                     /* a bare word */
      "model.encoder=[8, 4]",                /* an array */
      "output.quiet=false",                  /* a bool */
      "model.diffusion=constant",            /* a bare word of a choice */
      "model.type=\"dynamicsae\"",           /* a quoted string */
      "data.target=[\"y.h5:/t\", 'z.h5:t']", /* an array of strings */
      "train.seed=12345678901",              /* a 64-bit seed */
      " cluster.d_min = 0.25 ",              /* spaces around key and value */
      "train.epochs=9",                      /* the later one wins */
      "train.prior_lr=0.30000000000000004",  /* needs 17 digits to read back */
      "cluster.gamma=1e300",                 /* written with an exponent */
      "train.warmup_lr=1_000e-9",            /* TOML's digit separators */
  };
  int nset = (int)(sizeof sets / sizeof sets[0]);
  CHECK(load(comm, path, nset, sets, &cfg) == 0);
  CHECK(cfg.epochs == 9 && cfg.lr == 0.5 && cfg.beta == 3.0);
  snprintf(want, sizeof want, "%s/run3", scratch);
  CHECK_STR(cfg.dir, want);
  CHECK_STR(cfg.dir_given, "run3");
  CHECK(cfg.nencoder == 2 && cfg.encoder[0] == 8 && cfg.encoder[1] == 4);
  CHECK(cfg.quiet == 0 && cfg.diffusion == DY_DIFFUSION_CONSTANT);
  CHECK(cfg.ntarget == 2);
  if (cfg.ntarget == 2) {
    CHECK_STR(cfg.target[1].dataset, "/t");
    CHECK_STR(cfg.target[1].text, "z.h5:t");
    snprintf(want, sizeof want, "%s/z.h5", scratch);
    CHECK_STR(cfg.target[1].file, want);
  }
  CHECK(cfg.seed == 12345678901LL && cfg.d_min == 0.25);
  CHECK(cfg.prior_lr == 0.30000000000000004 && cfg.gamma == 1e300 && cfg.warmup_lr == 1e-6);
  /* untouched keys keep the file's values */
  CHECK(cfg.lag == 3 && cfg.checkpoint_steps == 100 && cfg.nprior == 1 && cfg.latent_dim == 3);
  CHECK(cfg.effective && strstr(cfg.effective, "\nepochs = 9\n") && strstr(cfg.effective, "\ndir = \"run3\"\n"));
  CHECK(cfg.effective && strstr(cfg.effective, "\nprior_lr = 0.30000000000000004\n"));
  check_round_trip(comm, &cfg, "overrides_effective.toml");
  dy_config_free(&cfg);

  /* a number-like or quoted value of a string key */
  const char *sets2[] = {"output.dir=2024", "data.input=[\"q.h5:/p\"]"};
  CHECK(load(comm, path, 2, sets2, &cfg) == 0);
  CHECK_STR(cfg.dir_given, "2024");
  CHECK(cfg.ntraj == 1);
  dy_config_free(&cfg);
  const char *sets3[] = {"output.dir=\"with space/and \\\"quote\\\"\""};
  CHECK(load(comm, path, 1, sets3, &cfg) == 0);
  CHECK_STR(cfg.dir_given, "with space/and \"quote\"");
  check_round_trip(comm, &cfg, "quoted_effective.toml");
  dy_config_free(&cfg);
}

/* A bad input: DY_ERR_INPUT on every rank, cfg left empty, the message printed once (rank 0). */
static void test_bad_once(MPI_Comm comm) {
  DyConfig cfg;
  int rank, size, saved, fd;
  char name[64];
  const char *path = put_file(comm, "bad.toml", "[data]\ninput = [\"a.h5:/x\"]\n[train]\nlr = -1\n");

  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  snprintf(name, sizeof name, "stderr.%d", rank);
  fflush(stderr);
  saved = dup(2);
  fd = open(in_scratch(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  PetscErrorCode ierr = load(comm, path, 0, NULL, &cfg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  CHECK(ierr == DY_ERR_INPUT);
  CHECK(cfg.effective == NULL && cfg.input == NULL && cfg.path == NULL);
  MPI_Barrier(comm);
  if (rank == 0) {
    int nmessages = 0;
    for (int r = 0; r < size; r++) {
      char line[1024];
      snprintf(name, sizeof name, "stderr.%d", r);
      FILE *fp = fopen(in_scratch(name), "r");
      CHECK(fp != NULL);
      while (fp && fgets(line, sizeof line, fp)) {
        if (strstr(line, "bad.toml:4: train.lr must be > 0")) {
          nmessages++;
          CHECK(r == 0);
        } else
          fprintf(stderr, "unexpected output of rank %d: %s", r, line);
      }
      if (fp) fclose(fp);
    }
    CHECK(nmessages == 1);
  }
}

/* Every rank must hold the same configuration. */
static void test_ranks_agree(MPI_Comm comm) {
  DyConfig cfg;
  const char *sets[] = {"train.seed=7"};
  CHECK(load(comm, in_scratch("full.toml"), 1, sets, &cfg) == 0);
  if (cfg.effective) {
    int n = (int)strlen(cfg.effective) + 1, nmax = 0, nmin = 0;
    CHECK(MPI_Allreduce(&n, &nmax, 1, MPI_INT, MPI_MAX, comm) == MPI_SUCCESS);
    CHECK(MPI_Allreduce(&n, &nmin, 1, MPI_INT, MPI_MIN, comm) == MPI_SUCCESS);
    CHECK(nmin == nmax);
    if (nmin == nmax) {
      char *root = malloc((size_t)n);
      if (dy_is_root(comm)) memcpy(root, cfg.effective, (size_t)n);
      CHECK(MPI_Bcast(root, n, MPI_CHAR, 0, comm) == MPI_SUCCESS);
      CHECK_STR(root, cfg.effective);
      free(root);
    }
  }
  dy_config_free(&cfg);
}

/* The example inputs shipped with the program must load. */
static void test_shipped(MPI_Comm comm, int nfile, char **files) {
  for (int i = 0; i < nfile; i++) {
    DyConfig cfg;
    CHECK(load(comm, files[i], 0, NULL, &cfg) == 0);
    if (dy_is_root(comm)) printf("%s: loads (%d trajector%s)\n", files[i], cfg.ntraj, cfg.ntraj == 1 ? "y" : "ies");
    dy_config_free(&cfg);
  }
}

int main(int argc, char **argv) {
  MPI_Comm comm;
  int failures = 0, shipped = argc >= 2 && !strcmp(argv[1], "load");

  if (argc < 2 || (argc != 2 && !shipped)) {
    fprintf(stderr, "usage: config_test SCRATCH_DIR | config_test load INPUT.toml...\n");
    return 1;
  }
  snprintf(scratch, sizeof scratch, "%s", argv[1]);
  if (PetscInitialize(&argc, &argv, NULL, NULL)) return 1;
  if (dy_error_handler_install()) return 1;
  comm = PETSC_COMM_WORLD;
  if (shipped) {
    test_shipped(comm, argc - 2, argv + 2);
  } else {
    if (dy_is_root(comm)) mkdir(scratch, 0755);
    MPI_Barrier(comm);
    test_defaults(comm);
    test_relative_input(comm);
    test_overrides(comm);
    test_bad_once(comm);
    test_ranks_agree(comm);
  }

  if (MPI_Allreduce(&nfail, &failures, 1, MPI_INT, MPI_SUM, comm) != MPI_SUCCESS) failures = 1;
  if (dy_is_root(comm)) printf("config_test: %d failed check%s\n", failures, failures == 1 ? "" : "s");
  if (PetscFinalize()) return 1;
  return failures ? 1 : 0;
}
