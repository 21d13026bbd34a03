/* Times one full DynamicsAE training step of the numerical core, without MPI.
 *
 *   bench_step [--B 256] [--L 50] [--D 2] [--d 2] [--encoder 32,32,32] [--decoder 32,32,32]
 *              [--prior 32,32] [--diffusion constant|learned] [--reps 500] [--warmup 50] [--torch]
 *              [--torch-reps 200] [--rounds 5] [--python /usr/bin/python3] [--script tools/bench_torch.py]
 *
 * One step = dy_model_loss_grad (both losses and all gradients) + both Adam updates, by default
 * with the widths of SPEC section 7 (--encoder, --decoder, --prior: hidden widths, comma lists;
 * the prior's serve the force and log-diffusion nets). Two figures:
 *   "core": batch, theta and eps prepared beforehand (a ring of pre-drawn inputs), only the step timed;
 *   "with inputs": each timed step also gathers B pairs from a pool of frames and draws L unit
 *   vectors and B x d normals, as the trainer does per step.
 * The FLOP count is analytic (matrix products only; see step_flops). --torch also times the
 * same step in PyTorch (tools/bench_torch.py in its serve mode, on the same shapes) and prints the
 * ratios. The clock of a shared machine drifts by tens of percent over seconds, so the timed
 * steps are split into --rounds rounds (default 5 with --torch, else 1), each a block of C steps
 * with pre-drawn inputs, one with drawing, then one of PyTorch steps: both sides see the same
 * periods, and the per-round ratios show how steady the comparison is. */
#include "bench_common.h"

#include <math.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef DY_BENCH_TORCH_SCRIPT
#define DY_BENCH_TORCH_SCRIPT "tools/bench_torch.py"
#endif

#define NRING 16 /* pre-drawn input sets cycled through by the "core" figure */


typedef struct {
  int B, L, D, d;       /* batch pairs, projections, input features, latent dimension */
  DyDiffusion diffusion; /* sampling mode of the prior moves */
  int reps, warmup;     /* timed steps and untimed steps before them */
  int torch;            /* 1: also run the PyTorch script */
  int torch_reps;       /* timed PyTorch steps in all */
  int rounds;           /* blocks the timed steps are split into (0: 5 with --torch, else 1) */
  const char *python;   /* interpreter for the script */
  const char *script;   /* tools/bench_torch.py */
  char widths[3][128];  /* hidden widths of the encoder, decoder and prior as given ("32,32,32") */
} BenchOptions;

/* Hidden widths from a comma list into w (at most DY_MAX_LAYERS - 1); their count, or -1. */
static int parse_widths(const char *s, int *w)
{
  int n = 0;
  while (*s) {
    char *end;
    const long x = strtol(s, &end, 10);
    if (end == s || x < 1 || x > 65536 || n == DY_MAX_LAYERS - 1 || (*end && *end != ',')) return -1;
    w[n++] = (int)x;
    s = *end ? end + 1 : end;
  }
  return n ? n : -1;
}

/* The model's shape from the options: D inputs and outputs, latent d, the three width lists. */
static int bench_shape(const BenchOptions *o, DyModelShape *shape)
{
  *shape = (DyModelShape){.D = o->D, .Dy = o->D, .d = o->d};
  const int nets[3][2] = {{DY_NET_ENCODER, -1}, {DY_NET_DECODER, -1}, {DY_NET_FORCE, DY_NET_LOGDIFF}};
  for (int k = 0; k < 3; ++k) {
    int w[DY_MAX_LAYERS];
    const int n = parse_widths(o->widths[k], w);
    if (n < 0) return -1;
    for (int j = 0; j < 2 && nets[k][j] >= 0; ++j) {
      shape->nhidden[nets[k][j]] = n;
      memcpy(shape->hidden[nets[k][j]], w, sizeof(int) * n);
    }
  }
  return 0;
}

/* 2 * rows * sum of in*out over layers [first, nlayer): the flops of one batched product per layer. */
static double mlp_flops(const DyMlp *net, double rows, int first)
{
  double s = 0;
  for (int l = first; l < net->nlayer; ++l) s += (double)net->dims[l] * net->dims[l + 1];
  return 2.0 * rows * s;
}

/* Matrix-product flops of one step (multiply and add counted as 2), B pairs, L projections:
 *   encoder on 2B rows: forward, weight gradients, input gradients of layers 2.. (x needs none);
 *   decoder on 2B rows: forward, weight gradients, input gradients of every layer (to z);
 *   force on B rows: forward, weight gradients, input gradients of layers 2.. (z0 is constant);
 *   log-diffusion on B rows: the same, plus d forward tangents through layers 2.. (the first
 *   layer's tangent is a column of W) and their reverse pass (weight and input products);
 *   sliced Wasserstein: both projections (B, d) x (d, L) and the one back to dz.
 * Elementwise work, sorts and Adam are not counted. */
static double step_flops(const DyModel *m, int B, int L)
{
  const DyMlp *enc = &m->net[DY_NET_ENCODER], *dec = &m->net[DY_NET_DECODER];
  const DyMlp *frc = &m->net[DY_NET_FORCE], *lgd = &m->net[DY_NET_LOGDIFF];
  double f = 0;
  f += 2 * mlp_flops(enc, 2.0 * B, 0) + mlp_flops(enc, 2.0 * B, 1);
  f += 3 * mlp_flops(dec, 2.0 * B, 0);
  f += 2 * mlp_flops(frc, B, 0) + mlp_flops(frc, B, 1);
  f += 2 * mlp_flops(lgd, B, 0) + mlp_flops(lgd, B, 1) + 3.0 * m->d * mlp_flops(lgd, B, 1);
  f += 3 * 2.0 * B * m->d * L;
  return f;
}

BENCH_PEAK_LOOP(peak_gflops_256, 32)
BENCH_PEAK_LOOP(peak_gflops_512, 64)

static double measured_peak_gflops(void)
{
  const double p256 = peak_gflops_256(), p512 = peak_gflops_512();
  return p256 > p512 ? p256 : p512;
}

/* CPU model (name, family, model number) and nominal MHz from /proc/cpuinfo. */
static void cpu_info(char *model, size_t n, double *mhz)
{
  char family[32] = "?", number[32] = "?";
  snprintf(model, n, "unknown");
  *mhz = 0;
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  int have_model = 0;
  while (fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    if (!have_model && !strncmp(line, "model name", 10)) {
      snprintf(model, n, "%s", colon + 2);
      model[strcspn(model, "\n")] = 0;
      have_model = 1;
    } else if (*mhz == 0 && !strncmp(line, "cpu MHz", 7)) {
      *mhz = atof(colon + 1);
    } else if (!strncmp(line, "cpu family", 10)) {
      snprintf(family, sizeof family, "%d", atoi(colon + 1));
    } else if (!strncmp(line, "model\t", 6)) {
      snprintf(number, sizeof number, "%d", atoi(colon + 1));
    }
  }
  fclose(f);
  const size_t len = strlen(model);
  snprintf(model + len, n - len, " (family %s, model %s)", family, number);
}

static void draw_inputs(DyRng *rng, const BenchOptions *o, const dy_real *frames, BenchInputs *in)
{
  bench_draw_inputs(rng, o->B, o->L, o->D, o->d, frames, in);
}

static int parse_options(int argc, char **argv, BenchOptions *o)
{
  *o = (BenchOptions){.B = 256, .L = 50, .D = 2, .d = 2, .diffusion = DY_DIFFUSION_CONSTANT, .reps = 500,
                      .warmup = 50, .torch = 0, .torch_reps = 200, .rounds = 0, .python = "/usr/bin/python3", .script = DY_BENCH_TORCH_SCRIPT,
                      .widths = {"32,32,32", "32,32,32", "32,32"}};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    int *ival = !strcmp(a, "--B")        ? &o->B
                : !strcmp(a, "--L")      ? &o->L
                : !strcmp(a, "--D")      ? &o->D
                : !strcmp(a, "--d")      ? &o->d
                : !strcmp(a, "--reps")   ? &o->reps
                : !strcmp(a, "--warmup") ? &o->warmup
                : !strcmp(a, "--torch-reps") ? &o->torch_reps
                : !strcmp(a, "--rounds") ? &o->rounds
                                         : NULL;
    if (!strcmp(a, "--torch")) {
      o->torch = 1;
    } else if (ival && val) {
      *ival = atoi(val);
      ++i;
    } else if (!strcmp(a, "--diffusion") && val && (!strcmp(val, "constant") || !strcmp(val, "learned"))) {
      o->diffusion = strcmp(val, "learned") ? DY_DIFFUSION_CONSTANT : DY_DIFFUSION_LEARNED;
      ++i;
    } else if (!strcmp(a, "--python") && val) {
      o->python = argv[++i];
    } else if (!strcmp(a, "--script") && val) {
      o->script = argv[++i];
    } else if ((!strcmp(a, "--encoder") || !strcmp(a, "--decoder") || !strcmp(a, "--prior")) && val &&
               strlen(val) < sizeof o->widths[0]) {
      strcpy(o->widths[a[2] == 'e' ? 0 : a[2] == 'd' ? 1 : 2], argv[++i]);
    } else {
      fprintf(stderr, "bench_step: unknown or incomplete option '%s'\n", a);
      return 1;
    }
  }
  if (!o->rounds) o->rounds = o->torch ? 5 : 1;
  DyModelShape shape;
  if (bench_shape(o, &shape)) {
    fprintf(stderr, "bench_step: widths must be comma lists of 1 to %d positive integers\n", DY_MAX_LAYERS - 1);
    return 1;
  }
  if (o->B < 2 || o->L < 1 || o->D < 1 || o->d < 1 || o->d > DY_MAX_LAYERS || o->warmup < 0 || o->rounds < 1 ||
      o->reps < o->rounds || o->torch_reps < o->rounds) {
    fprintf(stderr,
            "bench_step: need B >= 2, L >= 1, D >= 1, 1 <= d <= %d, warmup >= 0, rounds >= 1, reps and torch-reps "
            ">= rounds\n",
            DY_MAX_LAYERS);
    return 1;
  }
  return 0;
}

/* tools/bench_torch.py in serve mode: it reads requests on `to` and answers on `from`. */
typedef struct {
  pid_t pid;  /* the interpreter's process */
  FILE *to;   /* its standard input */
  FILE *from; /* its standard output */
} TorchServer;

/* Starts the script and echoes its header line; 0 on success. */
static int torch_start(const BenchOptions *o, TorchServer *ts)
{
  int in[2], out[2];
  char B[16], L[16], D[16], d[16];
  snprintf(B, sizeof B, "%d", o->B);
  snprintf(L, sizeof L, "%d", o->L);
  snprintf(D, sizeof D, "%d", o->D);
  snprintf(d, sizeof d, "%d", o->d);
  if (pipe(in)) return -1;
  if (pipe(out)) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  fflush(stdout);
  ts->pid = fork();
  if (ts->pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    execl(o->python, o->python, o->script, "--B", B, "--L", L, "--D", D, "--d", d, "--encoder", o->widths[0],
          "--decoder", o->widths[1], "--prior", o->widths[2], "--diffusion",
          o->diffusion == DY_DIFFUSION_LEARNED ? "learned" : "constant", "--serve", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  ts->to = fdopen(in[1], "w");
  ts->from = fdopen(out[0], "r");
  char line[512];
  if (ts->pid < 0 || !ts->to || !ts->from || !fgets(line, sizeof line, ts->from)) return -1;
  printf("  %s", line);
  return 0;
}

/* Times n PyTorch steps; appends their microseconds at times[*count]. 0 on success. */
static int torch_block(TorchServer *ts, int n, double *times, int *count)
{
  char *line = NULL, *p, *end;
  size_t cap = 0;
  int ok = fprintf(ts->to, "steps %d\n", n) > 0 && fflush(ts->to) == 0 && getline(&line, &cap, ts->from) > 0 &&
           !strncmp(line, "torch_block ", 12);
  p = ok ? line + 12 : NULL;
  for (int k = 0; ok && k < n; k++) {
    times[*count + k] = strtod(p, &end);
    ok = end != p;
    p = end;
  }
  free(line);
  if (ok) *count += n;
  return ok ? 0 : -1;
}

/* Ends the script; 0 when it exited cleanly. */
static int torch_stop(TorchServer *ts)
{
  int status = 0;
  if (ts->to) fprintf(ts->to, "quit\n"), fclose(ts->to);
  if (ts->from) fclose(ts->from);
  if (ts->pid > 0) waitpid(ts->pid, &status, 0);
  return ts->pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Times n steps after `warmup` untimed ones into times[0, n); fresh = 1 draws the inputs inside
 * the timed region. */
static void time_steps(DyModel *m, DyWork *w, DyAdam *rep, DyAdam *pri, const BenchOptions *o, BenchInputs *ring,
                       const dy_real *frames, DyRng *rng, int fresh, int warmup, int n, double *times, DyLosses *last)
{
  const DyLossOptions lo = {.beta = 10.0, .diffusion = o->diffusion};
  DyLosses losses = {0};
  for (int s = 0; s < warmup + n; ++s) {
    BenchInputs *in = &ring[s % NRING];
    double t0 = bench_cpu_us();
    if (fresh) draw_inputs(rng, o, frames, in);
    dy_model_loss_grad(m, w, o->B, o->L, in->x0, in->x1, in->x0, in->x1, in->theta, in->eps, &lo, &losses);
    dy_adam_update(rep, m->params, m->grads);
    dy_adam_update(pri, m->params, m->grads);
    double t1 = bench_cpu_us();
    if (s >= warmup) times[s - warmup] = t1 - t0;
  }
  *last = losses;
}

/* Median of x (n values) through the scratch tmp, leaving x as it is. */
static double median_of(const double *x, int n, double *tmp)
{
  memcpy(tmp, x, sizeof(double) * n);
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  return tmp[n / 2];
}

static void report(const char *what, double *times, int reps, double flops, double peak, double *median, double *min)
{
  qsort(times, (size_t)reps, sizeof(double), cmp_double);
  *median = times[reps / 2];
  *min = times[0];
  printf("%-24s median %8.1f us  min %8.1f us  GFLOP/s %6.2f (median) %6.2f (min) = %4.1f%% of peak (min)\n", what,
         *median, *min, flops / (*median * 1e3), flops / (*min * 1e3), 100.0 * flops / (*min * 1e3) / peak);
}

int main(int argc, char **argv)
{
  BenchOptions o;
  if (parse_options(argc, argv, &o)) return 2;
  PetscCall(PetscInitializeNoArguments());

  DyModelShape shape;
  bench_shape(&o, &shape); /* checked by parse_options */
  DyModel m;
  DyWork *w = NULL;
  DyAdam rep, pri;
  DyRng rng;
  dy_rng_seed(&rng, 0, DY_STREAM_INIT);
  PetscCall(dy_model_create(&shape, &m));
  dy_model_init(&m, &rng);
  PetscCall(dy_work_create(&m, o.B, o.L, &w));
  PetscCall(dy_adam_create(0, m.nparam_rep, 1e-3, &rep));
  PetscCall(dy_adam_create(m.nparam_rep, m.nparam - m.nparam_rep, 1e-3, &pri));

  dy_real *frames = malloc(sizeof(dy_real) * BENCH_NFRAMES * o.D);
  BenchInputs ring[NRING];
  double *core = malloc(sizeof(double) * o.reps), *fresh = malloc(sizeof(double) * o.reps);
  double *ttimes = malloc(sizeof(double) * o.torch_reps);
  double *tmp = malloc(sizeof(double) * (o.reps > o.torch_reps ? o.reps : o.torch_reps));
  double ratio_lo = INFINITY, ratio_hi = 0; /* per-round ratios of medians, PyTorch over C pre-drawn */
  if (!frames || !core || !fresh || !ttimes || !tmp) return 1;
  for (int k = 0; k < BENCH_NFRAMES * o.D; ++k) frames[k] = (dy_real)dy_rng_normal(&rng);
  for (int r = 0; r < NRING; ++r) {
    if (bench_inputs_alloc(&ring[r], o.B, o.L, o.D, o.d)) return 1;
    draw_inputs(&rng, &o, frames, &ring[r]);
  }

  char model[256];
  double mhz;
  cpu_info(model, sizeof model, &mhz);
  const int lanes = (int)(32 / sizeof(dy_real));
  const double nominal = mhz * 1e-3 * 2 /* FMA pipes */ * lanes * 2 /* flops per FMA */;
  const double peak = measured_peak_gflops();
  const double flops = step_flops(&m, o.B, o.L);
  printf("bench_step (%s precision): CPU \"%s\" at %.0f MHz (cpuinfo)\n", DY_REAL_NAME, model, mhz);
  printf("  peak per core: measured FMA loop %.1f GFLOP/s (the faster of 256- and 512-bit vectors; as 2 FMA pipes x "
         "%d lanes x 2 at an effective %.0f MHz); nominal at the cpuinfo clock %.1f GFLOP/s. Percentages use the "
         "measured peak; times are the thread's CPU time.\n",
         peak, lanes, peak / (4.0 * lanes) * 1e3, nominal);
  printf("  B %d, L %d, D %d, d %d, widths encoder [%s] decoder [%s] prior [%s], %s diffusion, %zu parameters, "
         "%d warm-up + %d timed steps\n",
         o.B, o.L, o.D, o.d, o.widths[0], o.widths[1], o.widths[2], o.diffusion == DY_DIFFUSION_LEARNED ? "learned" : "constant", m.nparam, o.warmup,
         o.reps);
  printf("  FLOPs per step (matrix products, analytic): %.3f M; at the measured peak they alone take %.1f us "
         "(the step's floor, before sorting and elementwise work)\n",
         flops * 1e-6, flops / (peak * 1e3));

  TorchServer ts = {0};
  if (o.torch && torch_start(&o, &ts)) {
    fprintf(stderr, "bench_step: cannot run '%s %s --serve'\n", o.python, o.script);
    torch_stop(&ts);
    return 1;
  }
  if (o.rounds > 1)
    printf("  interleaved in %d rounds: C steps with pre-drawn inputs, C steps drawing them%s\n", o.rounds,
           o.torch ? ", PyTorch steps" : "");
  double med_core, med_fresh, min_core, min_fresh;
  DyLosses last = {0};
  int ndone = 0, ntorch = 0; /* C steps timed per kind, PyTorch steps */
  for (int r = 0; r < o.rounds; ++r) {
    /* round r gets its share of the steps; the warm-up precedes the first round only */
    const int nc = o.reps * (r + 1) / o.rounds - o.reps * r / o.rounds;
    const int nt = o.torch_reps * (r + 1) / o.rounds - o.torch_reps * r / o.rounds;
    time_steps(&m, w, &rep, &pri, &o, ring, frames, &rng, 0, r ? 0 : o.warmup, nc, core + ndone, &last);
    time_steps(&m, w, &rep, &pri, &o, ring, frames, &rng, 1, 0, nc, fresh + ndone, &last);
    if (o.torch) {
      if (torch_block(&ts, nt, ttimes, &ntorch)) {
        fprintf(stderr, "bench_step: '%s %s --serve' stopped answering\n", o.python, o.script);
        torch_stop(&ts);
        return 1;
      }
      const double ratio = median_of(ttimes + ntorch - nt, nt, tmp) / median_of(core + ndone, nc, tmp);
      ratio_lo = fmin(ratio_lo, ratio);
      ratio_hi = fmax(ratio_hi, ratio);
    }
    ndone += nc;
  }
  report("step (inputs pre-drawn)", core, ndone, flops, peak, &med_core, &min_core);
  report("step + drawing inputs", fresh, ndone, flops, peak, &med_fresh, &min_fresh);
  printf("  losses of the last step (training on random frames): rec %.4g sw %.4g prior %.4g\n", last.rec, last.sw,
         last.prior);
  if (!isfinite(last.rec + last.sw + last.prior)) {
    fprintf(stderr, "bench_step: non-finite losses\n");
    torch_stop(&ts);
    return 1;
  }
  if (o.torch) {
    if (torch_stop(&ts)) {
      fprintf(stderr, "bench_step: '%s %s --serve' failed\n", o.python, o.script);
      return 1;
    }
    qsort(ttimes, (size_t)ntorch, sizeof(double), cmp_double);
    const double tmed = ttimes[ntorch / 2], tmin = ttimes[0];
    printf("%-24s median %8.1f us  min %8.1f us  (%d steps)\n", "torch float32 1 thread", tmed, tmin, ntorch);
    printf("speed-up over torch (median / median): %.1fx (pre-drawn), %.1fx (with input drawing); min / min: "
           "%.1fx (pre-drawn), %.1fx (with input drawing)\n",
           tmed / med_core, tmed / med_fresh, tmin / min_core, tmin / min_fresh);
    if (o.rounds > 1)
      printf("  per-round ratio of medians (pre-drawn): %.1fx to %.1fx over %d rounds\n", ratio_lo, ratio_hi, o.rounds);
  }

  for (int r = 0; r < NRING; ++r) bench_inputs_free(&ring[r]);
  free(frames);
  free(core);
  free(fresh);
  free(ttimes);
  free(tmp);
  dy_adam_destroy(&rep);
  dy_adam_destroy(&pri);
  dy_work_destroy(&w);
  dy_model_destroy(&m);
  PetscCall(PetscFinalize());
  return 0;
}
