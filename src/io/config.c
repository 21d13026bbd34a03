/* The input file (SPEC section 7): one table of keys drives defaults, reading, --set overrides,
 * validation and the effective configuration printed back as TOML. */
#include "io/dy_config.h"
#include "io/dy_toml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define DY_CONFIG_MAX_BYTES (16L << 20) /* an input file is a few hundred bytes; refuse nonsense */

/* How a key's value is checked and where it is stored. */
typedef enum {
  DY_KEY_INT,    /* int field */
  DY_KEY_INT64,  /* int64_t field */
  DY_KEY_REAL,   /* double field; an integer is accepted, must be finite */
  DY_KEY_BOOL,   /* int field, 0 or 1 */
  DY_KEY_WORD,   /* one of `choices`, copied into a char[32] field */
  DY_KEY_ENUM,   /* one of `choices`, its index stored in an enum field */
  DY_KEY_PATH,   /* non-empty path: char * field resolved, `given_off` keeps it as written */
  DY_KEY_WIDTHS, /* hidden-layer widths: int array field with a count */
  DY_KEY_INDICES, /* 0-based indices, any number: int * field (malloc'd) with a count */
  DY_KEY_DATA    /* FILE:DATASET entries: DyDataRef * field with a count */
} DyKeyKind;

typedef struct {
  const char *section;        /* e.g. "train" */
  const char *name;           /* e.g. "batch_size" */
  DyKeyKind kind;             /* type and storage */
  const char *def;            /* default as TOML text; NULL: the key is required */
  double lo, hi;              /* allowed range of numbers (WIDTHS: of each width) */
  int lo_open, hi_open;       /* the bound itself is excluded */
  const char *const *choices; /* WORD, ENUM: the known words, NULL-terminated */
  int navailable;             /* WORD, ENUM: choices[0, navailable) work now, the rest come later */
  size_t off;                 /* the field in DyConfig */
  size_t count_off;           /* WIDTHS, INDICES, DATA: the count field */
  size_t given_off;           /* PATH: the as-written field */
} DyKey;

static const char *const dy_model_types[] = {"dynamicsae", "tica", "vae", "swae", "sdevae", NULL};
static const char *const dy_diffusions[] = {"constant", "learned", NULL};
static const char *const dy_activations[] = {"relu", "tanh", NULL}; /* DyActivation order */
static const char *const dy_scales[] = {"common", "feature", NULL};  /* DyScale order */
static const char *const dy_networks[] = {"mlp", "conv", NULL};      /* DyNetwork order */
static const char *const dy_tica_scalings[] = {"kinetic_map", "none", NULL}; /* DyTicaScaling order */
static const char *const dy_features[] = {"coordinates", "aligned", "distances", NULL};
static const char *const dy_placements[] = {"random", "block", NULL}; /* DyPlacement order */
static const char *const dy_batch_modes[] = {"per_rank", "global", NULL};
static const char *const dy_lr_scalings[] = {"none", "sqrt", "linear", NULL};
static const char *const dy_force_weights[] = {"density", "none", NULL}; /* DyFieldsWeight order */
static const char *const dy_warmup_targets[] = {"none", "tica", NULL};   /* DyWarmupTarget order */

#define DY_F(f) offsetof(DyConfig, f)
#define DY_ANY(lo_) .lo = (lo_), .hi = HUGE_VAL
/* The schema, in SPEC order (also the order of the effective configuration). */
static const DyKey dy_keys[] = {
    {"data", "input", DY_KEY_DATA, NULL, .off = DY_F(input), .count_off = DY_F(ntraj)},
    {"data", "target", DY_KEY_DATA, "[]", .off = DY_F(target), .count_off = DY_F(ntarget)},
    {"data", "lag", DY_KEY_INT, "1", DY_ANY(1), .off = DY_F(lag)},
    {"data", "test_fraction", DY_KEY_REAL, "0.2", .lo = 0, .hi = 1, .hi_open = 1, .off = DY_F(test_fraction)},
    {"data", "tica_dim", DY_KEY_INT, "0", DY_ANY(0), .off = DY_F(tica_dim)},
    {"data", "atoms", DY_KEY_INDICES, "[]", DY_ANY(0), .off = DY_F(atoms), .count_off = DY_F(natoms)},
    {"data", "features", DY_KEY_WORD, "\"coordinates\"", .choices = dy_features, .navailable = 3, .off = DY_F(features)},
    {"data", "standardize", DY_KEY_BOOL, "true", .off = DY_F(standardize)},
    {"data", "scale", DY_KEY_ENUM, "\"common\"", .choices = dy_scales, .navailable = 2, .off = DY_F(scale)},
    {"data", "placement", DY_KEY_ENUM, "\"random\"", .choices = dy_placements, .navailable = 2,
     .off = DY_F(placement)},
    {"model", "type", DY_KEY_WORD, "\"dynamicsae\"", .choices = dy_model_types, .navailable = 5, .off = DY_F(type)},
    {"model", "latent_dim", DY_KEY_INT, "2", DY_ANY(1), .off = DY_F(latent_dim)},
    {"model", "encoder", DY_KEY_WIDTHS, "[32, 32, 32]", DY_ANY(1), .off = DY_F(encoder), .count_off = DY_F(nencoder)},
    {"model", "decoder", DY_KEY_WIDTHS, "[32, 32, 32]", DY_ANY(1), .off = DY_F(decoder), .count_off = DY_F(ndecoder)},
    {"model", "prior", DY_KEY_WIDTHS, "[32, 32]", DY_ANY(1), .off = DY_F(prior), .count_off = DY_F(nprior)},
    {"model", "diffusion", DY_KEY_ENUM, "\"constant\"", .choices = dy_diffusions, .navailable = 2,
     .off = DY_F(diffusion)},
    {"model", "activation", DY_KEY_ENUM, "\"relu\"", .choices = dy_activations, .navailable = 2,
     .off = DY_F(activation)},
    {"model", "network", DY_KEY_ENUM, "\"mlp\"", .choices = dy_networks, .navailable = 2, .off = DY_F(network)},
    {"loss", "beta", DY_KEY_REAL, "10.0", DY_ANY(0), .off = DY_F(beta)},
    {"loss", "projections", DY_KEY_INT, "50", DY_ANY(1), .off = DY_F(projections)},
    /* SDE-VAE: precision of the Gaussian prior of z0; the reference code's example value */
    {"loss", "nu", DY_KEY_REAL, "0.0065", DY_ANY(0), .lo_open = 1, .off = DY_F(nu)},
    {"cluster", "d_min", DY_KEY_REAL, "5.0", DY_ANY(0), .lo_open = 1, .off = DY_F(d_min)},
    {"cluster", "gamma", DY_KEY_REAL, "2.0", DY_ANY(1), .off = DY_F(gamma)},
    {"cluster", "max_centers", DY_KEY_INT, "200", DY_ANY(1), .off = DY_F(max_centers)},
    {"tica", "lag", DY_KEY_INT, "0", DY_ANY(0), .off = DY_F(tica_lag)}, /* 0: data.lag */
    {"tica", "epsilon", DY_KEY_REAL, "1e-6", DY_ANY(0), .lo_open = 1, .off = DY_F(tica_epsilon)},
    {"tica", "scaling", DY_KEY_ENUM, "\"kinetic_map\"", .choices = dy_tica_scalings, .navailable = 2,
     .off = DY_F(tica_scaling)},
    {"train", "epochs", DY_KEY_INT, "50", DY_ANY(1), .off = DY_F(epochs)},
    {"train", "batch_size", DY_KEY_INT, "256", DY_ANY(2), .off = DY_F(batch_size)},
    {"train", "batch", DY_KEY_ENUM, "\"global\"", .choices = dy_batch_modes, .navailable = 2, .off = DY_F(batch)},
    {"train", "lr_scaling", DY_KEY_ENUM, "\"none\"", .choices = dy_lr_scalings, .navailable = 3,
     .off = DY_F(lr_scaling)},
    {"train", "lr_warmup_epochs", DY_KEY_INT, "5", DY_ANY(0), .off = DY_F(lr_warmup_epochs)},
    {"train", "lr", DY_KEY_REAL, "1e-3", DY_ANY(0), .lo_open = 1, .off = DY_F(lr)},
    {"train", "prior_lr", DY_KEY_REAL, "1e-3", DY_ANY(0), .lo_open = 1, .off = DY_F(prior_lr)},
    {"train", "warmup_lr", DY_KEY_REAL, "1e-4", DY_ANY(0), .lo_open = 1, .off = DY_F(warmup_lr)},
    {"train", "warmup_beta_scale", DY_KEY_REAL, "0.01", DY_ANY(0), .off = DY_F(warmup_beta_scale)},
    {"train", "warmup_target", DY_KEY_ENUM, "\"none\"", .choices = dy_warmup_targets, .navailable = 2,
     .off = DY_F(warmup_target)},
    {"train", "target_weight", DY_KEY_REAL, "0.01", DY_ANY(0), .off = DY_F(target_weight)},
    {"train", "target_epochs", DY_KEY_INT, "5", DY_ANY(0), .off = DY_F(target_epochs)},
    {"train", "seed", DY_KEY_INT64, "0", DY_ANY(0), .off = DY_F(seed)},
    {"train", "test_pairs", DY_KEY_INT64, "4096", DY_ANY(0), .off = DY_F(test_pairs)},
    {"output", "dir", DY_KEY_PATH, "\"results\"", .off = DY_F(dir), .given_off = DY_F(dir_given)},
    {"output", "checkpoint_every", DY_KEY_INT, "1", DY_ANY(0), .off = DY_F(checkpoint_every)},
    {"output", "checkpoint_steps", DY_KEY_INT, "0", DY_ANY(0), .off = DY_F(checkpoint_steps)},
    {"output", "results_every", DY_KEY_INT, "10", DY_ANY(0), .off = DY_F(results_every)},
    {"output", "save_reconstruction", DY_KEY_BOOL, "true", .off = DY_F(save_reconstruction)},
    {"output", "quiet", DY_KEY_BOOL, "false", .off = DY_F(quiet)},
    {"analysis", "grid", DY_KEY_INT, "64", DY_ANY(2), .off = DY_F(grid)},
    {"analysis", "margin", DY_KEY_REAL, "0.1", DY_ANY(0), .off = DY_F(margin)},
    {"analysis", "force_weight", DY_KEY_ENUM, "\"density\"", .choices = dy_force_weights, .navailable = 2,
     .off = DY_F(force_weight)},
    {"analysis", "force_refit", DY_KEY_BOOL, "true", .off = DY_F(force_refit)},
};
#define DY_NKEYS ((int)(sizeof dy_keys / sizeof dy_keys[0]))
static const char *const dy_sections[] = {"data", "model", "loss", "cluster", "tica", "train", "output", "analysis",
                                          NULL};

/* Where a value came from, for messages: "FILE:LINE: ", "FILE: " or "--set ARG: ". */
typedef struct {
  const char *file; /* the input file */
  int line;         /* line in it, 0 when there is none */
  const char *set;  /* the --set argument the value came from, or NULL */
} DyOrigin;

/* The value each key ends up with, before it is checked and stored. */
typedef struct {
  const DyTomlValue *value; /* borrowed from one of the parsed documents; NULL: not given */
  DyOrigin origin;          /* where it was given */
} DySlot;

/* State of one dy_config_load. */
typedef struct {
  MPI_Comm comm;
  const char *path;      /* input file as given */
  char *base;            /* its folder with a trailing '/', or "" */
  int ndoc;              /* parsed documents held in doc */
  DyTomlValue **doc;     /* (2 + nset): the file, the defaults, one per --set */
  DySlot slot[DY_NKEYS]; /* by key, in dy_keys order */
} DyLoad;

static PetscErrorCode dy_config_fail(MPI_Comm comm, const DyOrigin *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Raises the input error "WHERE: message" on comm (every rank calls it; rank 0 prints). */
static PetscErrorCode dy_config_fail(MPI_Comm comm, const DyOrigin *o, const char *fmt, ...) {
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (o->set) return dy_input_error(comm, "--set %s: %s", o->set, msg);
  if (o->line > 0) return dy_input_error(comm, "%s:%d: %s", o->file, o->line, msg);
  return dy_input_error(comm, "%s: %s", o->file, msg);
}

static char *dy_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

/* ---- suggestions ------------------------------------------------------------------------- */

/* Optimal-string-alignment distance (insertions, deletions, substitutions, adjacent swaps),
 * ignoring case; INT_MAX for names too long to be a typo of ours. */
static int dy_edit_distance(const char *a, const char *b) {
  enum { N = 64 };
  int na = (int)strlen(a), nb = (int)strlen(b);
  int d[N + 1][N + 1];

  if (na > N || nb > N) return INT_MAX;
  for (int i = 0; i <= na; i++)
    d[i][0] = i;
  for (int j = 0; j <= nb; j++)
    d[0][j] = j;
  for (int i = 1; i <= na; i++) {
    for (int j = 1; j <= nb; j++) {
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int v = DY_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
      v = DY_MIN(v, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]))
        v = DY_MIN(v, d[i - 2][j - 2] + 1);
      d[i][j] = v;
    }
  }
  return d[na][nb];
}

/* How many edits still count as a typo of a word of this length. */
static int dy_typo_tolerance(const char *word) {
  return DY_MAX(1, (int)strlen(word) / 3);
}

/* The known key nearest to section.name (section NULL: a key outside any section), searching all
 * sections so that a key put in the wrong one is found; NULL when nothing is close. */
static const DyKey *dy_key_suggest(const char *section, const char *name) {
  const DyKey *best = NULL;
  int best_score = INT_MAX;

  for (int k = 0; k < DY_NKEYS; k++) {
    int d = dy_edit_distance(name, dy_keys[k].name);
    if (d > dy_typo_tolerance(name)) continue;
    int score = 2 * d + (section && strcmp(section, dy_keys[k].section) != 0);
    if (score < best_score) best = &dy_keys[k], best_score = score;
  }
  return best;
}

/* The word of a NULL-terminated list nearest to word, or NULL when none is close. */
static const char *dy_word_suggest(const char *const *words, const char *word) {
  const char *best = NULL;
  int best_d = INT_MAX;

  for (int c = 0; words[c]; c++) {
    int d = dy_edit_distance(word, words[c]);
    if (d <= dy_typo_tolerance(word) && d < best_d) best = words[c], best_d = d;
  }
  return best;
}

/* What to tell about the unknown key section.name (section NULL: outside any section): the nearest
 * known key, else the keys of its section, else nothing. */
static void dy_key_hint(const char *section, const char *name, char *buf, size_t n) {
  const DyKey *k = dy_key_suggest(section, name);
  size_t w = 0;

  buf[0] = '\0';
  if (k) {
    snprintf(buf, n, " (did you mean '%s.%s'?)", k->section, k->name);
    return;
  }
  for (int i = 0; section && i < DY_NKEYS && w < n; i++)
    if (!strcmp(dy_keys[i].section, section))
      w += (size_t)snprintf(buf + w, n - w, "%s%s", w ? ", " : " (known keys of this section: ", dy_keys[i].name);
  if (w && w < n) snprintf(buf + w, n - w, ")");
}

static const DyKey *dy_key_find(const char *section, const char *name) {
  for (int k = 0; k < DY_NKEYS; k++)
    if (!strcmp(dy_keys[k].section, section) && !strcmp(dy_keys[k].name, name)) return &dy_keys[k];
  return NULL;
}

static int dy_section_known(const char *name) {
  for (int s = 0; dy_sections[s]; s++)
    if (!strcmp(dy_sections[s], name)) return 1;
  return 0;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Rank 0 reads the whole file; errno of a failure, 0 on success. */
static int dy_file_slurp(const char *path, char **text, long *len) {
  FILE *fp = fopen(path, "rb");
  char *buf = NULL;
  long n = 0, cap = 0;
  int err = 0;

  *text = NULL;
  *len = 0;
  if (!fp) return errno ? errno : EIO;
  for (;;) {
    if (n == cap) {
      char *grown;
      cap = cap ? 2 * cap : 4096;
      if (cap > DY_CONFIG_MAX_BYTES + 1) {
        err = EFBIG;
        break;
      }
      if (!(grown = realloc(buf, (size_t)cap))) {
        err = ENOMEM;
        break;
      }
      buf = grown;
    }
    size_t got = fread(buf + n, 1, (size_t)(cap - n), fp);
    n += (long)got;
    if (got == 0) {
      if (ferror(fp)) err = errno ? errno : EIO;
      break;
    }
  }
  fclose(fp);
  if (err) {
    free(buf);
    return err;
  }
  *text = buf;
  *len = n;
  return 0;
}

/* Collective: rank 0 reads path, every rank receives the text (len bytes, NUL-terminated). */
static PetscErrorCode dy_config_read(MPI_Comm comm, const char *path, char **text, long *len) {
  long head[2] = {0, 0}; /* length, errno */
  char *buf = NULL;

  PetscFunctionBegin;
  if (dy_is_root(comm)) head[1] = dy_file_slurp(path, &buf, &head[0]);
  PetscCallMPI(MPI_Bcast(head, 2, MPI_LONG, 0, comm));
  if (head[1] == ENOMEM) SETERRQ(comm, PETSC_ERR_MEM, "out of memory reading %s", path);
  if (head[1] == EFBIG)
    return dy_input_error(comm, "%s: too large for an input file (more than %ld bytes)", path, DY_CONFIG_MAX_BYTES);
  if (head[1]) return dy_input_error(comm, "cannot read the input file '%s': %s", path, strerror((int)head[1]));
  if (!dy_is_root(comm))
    buf = malloc((size_t)head[0] + 1);
  else if (buf)
    buf = realloc(buf, (size_t)head[0] + 1);
  else
    buf = malloc(1);
  PetscCheck(buf, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory reading %s", path);
  PetscCallMPI(MPI_Bcast(buf, (int)head[0], MPI_CHAR, 0, comm));
  buf[head[0]] = '\0';
  *text = buf;
  *len = head[0];
  PetscFunctionReturn(0);
}

/* ---- gathering the values ---------------------------------------------------------------- */

/* Records every key of the parsed input file; unknown sections and keys are errors. */
static PetscErrorCode dy_config_take_file(DyLoad *ld, const DyTomlValue *root) {
  char hint[256];

  PetscFunctionBegin;
  for (size_t i = 0; i < root->n; i++) {
    const char *sec = root->keys[i];
    const DyTomlValue *tab = root->items[i];
    DyOrigin o = {ld->path, root->key_lines[i] ? root->key_lines[i] : tab->line, NULL};

    if (!dy_section_known(sec)) {
      if (tab->type == DY_TOML_TABLE) {
        const char *s = dy_word_suggest(dy_sections, sec);
        if (s) return dy_config_fail(ld->comm, &o, "unknown section [%s] (did you mean [%s]?)", sec, s);
        return dy_config_fail(ld->comm, &o,
                              "unknown section [%s] (the sections are [data], [model], [loss], [cluster], [tica], "
                              "[train], [output], [analysis])",
                              sec);
      }
      dy_key_hint(NULL, sec, hint, sizeof hint);
      return dy_config_fail(ld->comm, &o, "unknown key '%s' outside any section%s", sec, hint);
    }
    if (tab->type != DY_TOML_TABLE)
      return dy_config_fail(ld->comm, &o, "'%s' must be a section ([%s]), found %s", sec, sec,
                            dy_toml_type_name(tab->type));
    for (size_t j = 0; j < tab->n; j++) {
      const DyKey *k = dy_key_find(sec, tab->keys[j]);
      DyOrigin ok = {ld->path, tab->key_lines[j] ? tab->key_lines[j] : tab->items[j]->line, NULL};
      if (!k) {
        dy_key_hint(sec, tab->keys[j], hint, sizeof hint);
        return dy_config_fail(ld->comm, &ok, "unknown key '%s.%s'%s", sec, tab->keys[j], hint);
      }
      ld->slot[k - dy_keys].value = tab->items[j];
      ld->slot[k - dy_keys].origin = ok;
    }
  }
  PetscFunctionReturn(0);
}

static int dy_key_wants_string(const DyKey *k) {
  return k->kind == DY_KEY_WORD || k->kind == DY_KEY_ENUM || k->kind == DY_KEY_PATH;
}

/* Writes the len bytes of s to buf (n bytes, n >= 6 len + 1) as the body of a TOML basic string. */
static void dy_toml_escape(const char *s, size_t len, char *buf, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < len && w + 7 < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      w += (size_t)snprintf(buf + w, n - w, "\\%c", c);
    else if (c == '\n')
      w += (size_t)snprintf(buf + w, n - w, "\\n");
    else if (c == '\t')
      w += (size_t)snprintf(buf + w, n - w, "\\t");
    else if (c < 0x20 || c == 0x7f)
      w += (size_t)snprintf(buf + w, n - w, "\\u%04x", c);
    else
      buf[w++] = (char)c;
  }
  buf[w] = '\0';
}

/* Applies one --set "section.key=value". The value is TOML; a value that is not valid TOML, or
 * any unquoted value of a key that takes a string, is taken as the string written. */
static PetscErrorCode dy_config_take_set(DyLoad *ld, const char *arg) {
  const DyOrigin o = {ld->path, 0, arg};
  const char *eq = strchr(arg, '=');
  char name[128], hint[256], err[256];
  const char *value, *dot;
  const DyKey *k = NULL;
  DyTomlValue *doc;
  size_t n;

  PetscFunctionBegin;
  if (!eq) return dy_config_fail(ld->comm, &o, "expected section.key=value");
  while (*arg == ' ' || *arg == '\t')
    arg++;
  n = (size_t)(eq - arg);
  while (n && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
    n--;
  if (n >= sizeof name) n = sizeof name - 1;
  memcpy(name, arg, n);
  name[n] = '\0';
  dot = strchr(name, '.');
  if (dot) {
    char sec[128];
    memcpy(sec, name, (size_t)(dot - name));
    sec[dot - name] = '\0';
    k = dy_key_find(sec, dot + 1);
    if (!k) dy_key_hint(sec, dot + 1, hint, sizeof hint);
  } else
    dy_key_hint(NULL, name, hint, sizeof hint);
  if (!k) return dy_config_fail(ld->comm, &o, "unknown key '%s'%s", name, hint);

  value = eq + 1;
  while (*value == ' ' || *value == '\t')
    value++;
  size_t vlen = strlen(value);
  while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
    vlen--;
  size_t cap = 6 * vlen + 32; /* room for the value escaped as a TOML string */
  char *text = malloc(cap);
  PetscCheck(text, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
  int bad = 1;
  if (!dy_key_wants_string(k) || value[0] == '"' || value[0] == '\'') {
    snprintf(text, cap, "v = %.*s\n", (int)vlen, value);
    bad = dy_toml_parse(text, strlen(text), &doc, err, sizeof err);
    /* "1\nx = 2" parses, but is not one value */
    if (!bad && (doc->n != 1 || strcmp(doc->keys[0], "v"))) {
      dy_toml_free(doc);
      bad = 1;
    }
  }
  if (bad) {
    strcpy(text, "v = \"");
    dy_toml_escape(value, vlen, text + 5, cap - 8);
    strcat(text, "\"\n");
    if (dy_toml_parse(text, strlen(text), &doc, err, sizeof err)) { /* quoted, only bad UTF-8 fails */
      const char *why = strstr(err, ": ");
      free(text);
      return dy_config_fail(ld->comm, &o, "the value is not UTF-8 text (%s)", why ? why + 2 : err);
    }
  }
  free(text);
  ld->doc[ld->ndoc++] = doc;
  ld->slot[k - dy_keys].value = doc->items[0];
  ld->slot[k - dy_keys].origin = o;
  PetscFunctionReturn(0);
}

/* The defaults, as one TOML document parsed like the file so that every key goes one way. */
static PetscErrorCode dy_config_take_defaults(DyLoad *ld) {
  char text[4096], err[256];
  size_t w = 0;
  DyTomlValue *doc;

  PetscFunctionBegin;
  for (int k = 0; k < DY_NKEYS; k++)
    if (dy_keys[k].def)
      w += (size_t)snprintf(text + w, sizeof text - w, "%s.%s = %s\n", dy_keys[k].section, dy_keys[k].name,
                            dy_keys[k].def);
  PetscCheck(w < sizeof text, PETSC_COMM_SELF, PETSC_ERR_PLIB, "defaults do not fit");
  PetscCheck(!dy_toml_parse(text, w, &doc, err, sizeof err), PETSC_COMM_SELF, PETSC_ERR_PLIB, "defaults: %s", err);
  ld->doc[ld->ndoc++] = doc;
  for (int k = 0; k < DY_NKEYS; k++) {
    if (!dy_keys[k].def) continue;
    const DyTomlValue *sec = dy_toml_get(doc, dy_keys[k].section);
    ld->slot[k].value = dy_toml_get(sec, dy_keys[k].name);
    ld->slot[k].origin = (DyOrigin){ld->path, 0, NULL};
    PetscCheck(ld->slot[k].value, PETSC_COMM_SELF, PETSC_ERR_PLIB, "default of %s.%s lost", dy_keys[k].section,
               dy_keys[k].name);
  }
  PetscFunctionReturn(0);
}

/* ---- checking and storing ---------------------------------------------------------------- */

/* x as a TOML float that reads back exactly: whole numbers as "10.0", others in the fewest
 * digits that round-trip ("0.001", "1e+300", "inf"). */
static void dy_format_real(double x, char *buf, size_t n) {
  if (x == floor(x) && fabs(x) < 1e15) {
    snprintf(buf, n, "%.1f", x);
    return;
  }
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, n, "%.*g", p, x);
    if (strtod(buf, NULL) == x) break;
  }
}

/* "string \"abc\"", "integer 5", "array", ... for messages. */
static void dy_describe(const DyTomlValue *v, char *buf, size_t n) {
  switch (v->type) {
  case DY_TOML_STRING: snprintf(buf, n, "string \"%.60s%s\"", v->str, strlen(v->str) > 60 ? "..." : ""); break;
  case DY_TOML_INTEGER: snprintf(buf, n, "integer %" PRId64, v->integer); break;
  case DY_TOML_FLOAT:
    snprintf(buf, n, "float ");
    dy_format_real(v->real, buf + 6, n - 6);
    break;
  case DY_TOML_BOOL: snprintf(buf, n, "bool %s", v->boolean ? "true" : "false"); break;
  case DY_TOML_DATETIME:
  case DY_TOML_DATETIME_LOCAL:
  case DY_TOML_DATE_LOCAL:
  case DY_TOML_TIME_LOCAL: snprintf(buf, n, "%s %s", dy_toml_type_name(v->type), v->str); break;
  default: snprintf(buf, n, "%s", dy_toml_type_name(v->type)); break;
  }
}

static const char *dy_expected(const DyKey *k) {
  switch (k->kind) {
  case DY_KEY_INT:
  case DY_KEY_INT64: return "an integer";
  case DY_KEY_REAL: return "a number";
  case DY_KEY_BOOL: return "true or false";
  case DY_KEY_WORD:
  case DY_KEY_ENUM:
  case DY_KEY_PATH: return "a string";
  case DY_KEY_WIDTHS: return "an array of integers, e.g. [32, 32]";
  case DY_KEY_INDICES: return "an array of integers >= 0, e.g. [0, 4, 8]";
  case DY_KEY_DATA: return "an array of \"FILE:DATASET\" strings, e.g. [\"traj.h5:/positions\"]";
  }
  return "?";
}

/* "> 0", ">= 1" or "in [0, 1)". */
static void dy_range_text(const DyKey *k, char *buf, size_t n) {
  if (isinf(k->hi))
    snprintf(buf, n, "%s %g", k->lo_open ? ">" : ">=", k->lo);
  else
    snprintf(buf, n, "in %c%g, %g%c", k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']');
}

static int dy_in_range(const DyKey *k, double x) {
  return (k->lo_open ? x > k->lo : x >= k->lo) && (k->hi_open ? x < k->hi : x <= k->hi);
}

/* One integer of key k (`what` names it, e.g. "model.encoder[1]"); int-sized unless wide. */
static PetscErrorCode dy_check_integer(DyLoad *ld, const DyKey *k, const DyTomlValue *v, const DyOrigin *o,
                                       const char *what, int wide, int64_t *out) {
  char found[128], range[64];

  PetscFunctionBegin;
  if (v->type != DY_TOML_INTEGER) {
    dy_describe(v, found, sizeof found);
    return dy_config_fail(ld->comm, o, "%s must be an integer, found %s", what, found);
  }
  dy_range_text(k, range, sizeof range);
  if (!dy_in_range(k, (double)v->integer))
    return dy_config_fail(ld->comm, o, "%s must be %s (found %" PRId64 ")", what, range, v->integer);
  if (!wide && v->integer > INT_MAX)
    return dy_config_fail(ld->comm, o, "%s is too large (at most %d, found %" PRId64 ")", what, INT_MAX, v->integer);
  *out = v->integer;
  PetscFunctionReturn(0);
}

/* base + p, unless p is absolute or base is empty; NULL when out of memory. */
static char *dy_resolve(const char *base, const char *p) {
  size_t nb = p[0] == '/' ? 0 : strlen(base), np = strlen(p);
  char *r = malloc(nb + np + 1);
  if (!r) return NULL;
  memcpy(r, base, nb);
  memcpy(r + nb, p, np + 1);
  return r;
}

/* One FILE:DATASET entry, split at the last ':' so that FILE may hold colons. DATASET is taken
 * from the file's root group: a missing leading '/' is added. */
static PetscErrorCode dy_check_data_ref(DyLoad *ld, const DyTomlValue *v, const DyOrigin *o, const char *what,
                                        DyDataRef *ref) {
  char found[128];
  const char *colon, *ds;

  PetscFunctionBegin;
  if (v->type != DY_TOML_STRING) {
    dy_describe(v, found, sizeof found);
    return dy_config_fail(ld->comm, o, "%s must be a string \"FILE:DATASET\", found %s", what, found);
  }
  colon = strrchr(v->str, ':');
  if (!colon || colon == v->str)
    return dy_config_fail(ld->comm, o, "%s = \"%s\" is not of the form FILE:DATASET (e.g. \"traj.h5:/positions\")",
                          what, v->str);
  for (ds = colon + 1; *ds == '/';)
    ds++;
  if (!*ds)
    return dy_config_fail(ld->comm, o, "%s = \"%s\" names no dataset after the ':' (e.g. \"traj.h5:/positions\")", what,
                          v->str);
  char *file = malloc((size_t)(colon - v->str) + 1);
  PetscCheck(file, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
  memcpy(file, v->str, (size_t)(colon - v->str));
  file[colon - v->str] = '\0';
  ref->file = dy_resolve(ld->base, file);
  free(file);
  ref->text = dy_strdup(v->str);
  ref->dataset = malloc(strlen(colon + 1) + 2);
  PetscCheck(ref->file && ref->text && ref->dataset, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
  sprintf(ref->dataset, "%s%s", colon[1] == '/' ? "" : "/", colon + 1);
  PetscFunctionReturn(0);
}

static PetscErrorCode dy_check_word(DyLoad *ld, const DyKey *k, const DyTomlValue *v, const DyOrigin *o,
                                    const char *what, int *index) {
  char list[256] = "", later[256] = "";

  PetscFunctionBegin;
  for (int c = 0; k->choices[c]; c++) {
    if (!strcmp(v->str, k->choices[c])) {
      if (c >= k->navailable)
        return dy_config_fail(ld->comm, o,
                              "%s = \"%s\" is planned for a later version and not available in this one; use \"%s\"", what,
                              v->str, k->choices[0]);
      *index = c;
      PetscFunctionReturn(0);
    }
    char *l = c < k->navailable ? list : later;
    snprintf(l + strlen(l), sizeof list - strlen(l), "%s\"%s\"", l[0] ? ", " : "", k->choices[c]);
  }
  const char *s = dy_word_suggest(k->choices, v->str);
  return dy_config_fail(ld->comm, o, "%s = \"%s\" is not known: expected %s%s%s%s%s%s%s%s", what, v->str,
                        k->navailable > 1 ? "one of " : "", list, later[0] ? " (later: " : "", later,
                        later[0] ? ")" : "", s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
}

/* Where item i of the array v given at o came from (its own line when it has one), and its name
 * "what[i]" in item. */
static DyOrigin dy_item_origin(const DyOrigin *o, const DyTomlValue *v, size_t i, const char *what, char *item,
                               size_t len) {
  DyOrigin oi = *o;
  if (!oi.set && v->items[i]->line > 0) oi.line = v->items[i]->line;
  snprintf(item, len, "%s[%zu]", what, i);
  return oi;
}

/* Checks the final value of key k and stores it in cfg. */
static PetscErrorCode dy_config_store(DyLoad *ld, const DyKey *k, DyConfig *cfg) {
  const DySlot *slot = &ld->slot[k - dy_keys];
  const DyTomlValue *v = slot->value;
  const DyOrigin *o = &slot->origin;
  char *field = (char *)cfg + k->off;
  char what[96], found[128], range[64];
  int64_t i64;

  PetscFunctionBegin;
  snprintf(what, sizeof what, "%s.%s", k->section, k->name);
  dy_describe(v, found, sizeof found);
  switch (k->kind) {
  case DY_KEY_INT:
    PetscCall(dy_check_integer(ld, k, v, o, what, 0, &i64));
    *(int *)field = (int)i64;
    break;
  case DY_KEY_INT64:
    PetscCall(dy_check_integer(ld, k, v, o, what, 1, &i64));
    *(int64_t *)field = i64;
    break;
  case DY_KEY_REAL: {
    double x;
    if (v->type == DY_TOML_INTEGER)
      x = (double)v->integer;
    else if (v->type == DY_TOML_FLOAT)
      x = v->real;
    else
      return dy_config_fail(ld->comm, o, "%s must be a number, found %s", what, found);
    dy_range_text(k, range, sizeof range);
    if (v->type == DY_TOML_INTEGER)
      snprintf(found, sizeof found, "%" PRId64, v->integer);
    else
      dy_format_real(x, found, sizeof found);
    if (!isfinite(x))
      return dy_config_fail(ld->comm, o, "%s must be a finite number %s (found %s)", what, range, found);
    if (!dy_in_range(k, x)) return dy_config_fail(ld->comm, o, "%s must be %s (found %s)", what, range, found);
    *(double *)field = x;
    break;
  }
  case DY_KEY_BOOL:
    if (v->type != DY_TOML_BOOL) return dy_config_fail(ld->comm, o, "%s must be true or false, found %s", what, found);
    *(int *)field = v->boolean;
    break;
  case DY_KEY_WORD:
  case DY_KEY_ENUM: {
    int c = 0;
    if (v->type != DY_TOML_STRING) return dy_config_fail(ld->comm, o, "%s must be a string, found %s", what, found);
    PetscCall(dy_check_word(ld, k, v, o, what, &c));
    if (k->kind == DY_KEY_WORD)
      snprintf(field, DY_WORD_MAX, "%s", k->choices[c]);
    else
      *(DyDiffusion *)field = (DyDiffusion)c;
    break;
  }
  case DY_KEY_PATH:
    if (v->type != DY_TOML_STRING) return dy_config_fail(ld->comm, o, "%s must be a string, found %s", what, found);
    if (!v->str[0]) return dy_config_fail(ld->comm, o, "%s must not be empty", what);
    *(char **)field = dy_resolve(ld->base, v->str);
    *(char **)((char *)cfg + k->given_off) = dy_strdup(v->str);
    PetscCheck(*(char **)field && *(char **)((char *)cfg + k->given_off), PETSC_COMM_SELF, PETSC_ERR_MEM,
               "out of memory");
    break;
  case DY_KEY_WIDTHS: {
    int *widths = (int *)field;
    if (v->type != DY_TOML_ARRAY)
      return dy_config_fail(ld->comm, o, "%s must be %s, found %s", what, dy_expected(k), found);
    if (v->n == 0) return dy_config_fail(ld->comm, o, "%s must list at least one hidden layer width", what);
    if (v->n > DY_MAX_LAYERS - 1)
      return dy_config_fail(ld->comm, o, "%s has %zu hidden layers, at most %d are supported", what, v->n,
                            DY_MAX_LAYERS - 1);
    for (size_t i = 0; i < v->n; i++) {
      char item[128];
      DyOrigin oi = dy_item_origin(o, v, i, what, item, sizeof item);
      PetscCall(dy_check_integer(ld, k, v->items[i], &oi, item, 0, &i64));
      widths[i] = (int)i64;
    }
    *(int *)((char *)cfg + k->count_off) = (int)v->n;
    break;
  }
  case DY_KEY_INDICES: {
    int **list = (int **)field;
    if (v->type != DY_TOML_ARRAY)
      return dy_config_fail(ld->comm, o, "%s must be %s, found %s", what, dy_expected(k), found);
    if (v->n > INT_MAX) return dy_config_fail(ld->comm, o, "%s has too many entries", what);
    free(*list);
    *list = calloc(v->n ? v->n : 1, sizeof **list);
    PetscCheck(*list, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
    *(int *)((char *)cfg + k->count_off) = (int)v->n;
    for (size_t i = 0; i < v->n; i++) {
      char item[128];
      DyOrigin oi = dy_item_origin(o, v, i, what, item, sizeof item);
      PetscCall(dy_check_integer(ld, k, v->items[i], &oi, item, 0, &i64));
      (*list)[i] = (int)i64;
    }
    break;
  }
  case DY_KEY_DATA: {
    DyDataRef **refs = (DyDataRef **)field;
    if (v->type != DY_TOML_ARRAY)
      return dy_config_fail(ld->comm, o, "%s must be %s, found %s", what, dy_expected(k), found);
    if (v->n > INT_MAX) return dy_config_fail(ld->comm, o, "%s has too many entries", what);
    *refs = calloc(v->n ? v->n : 1, sizeof **refs);
    PetscCheck(*refs, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
    *(int *)((char *)cfg + k->count_off) = (int)v->n;
    for (size_t i = 0; i < v->n; i++) {
      char item[128];
      DyOrigin oi = dy_item_origin(o, v, i, what, item, sizeof item);
      PetscCall(dy_check_data_ref(ld, v->items[i], &oi, item, &(*refs)[i]));
    }
    break;
  }
  }
  PetscFunctionReturn(0);
}

/* model.network = "conv": the image nets take one encoder width, a multiple of 16 (the 1x1
 * convolution's channels times the 4 x 4 pixels left), and one decoder width; they encode frames,
 * not TICs, and TICA trains no network. DynamicsAE and the baselines take them alike. */
static PetscErrorCode dy_config_check_conv(DyLoad *ld, const DyConfig *cfg) {
  PetscFunctionBegin;
  if (cfg->network != DY_NETWORK_CONV) PetscFunctionReturn(0);
  const DySlot *enc = &ld->slot[dy_key_find("model", "encoder") - dy_keys];
  const DySlot *dec = &ld->slot[dy_key_find("model", "decoder") - dy_keys];
  const DySlot *net = &ld->slot[dy_key_find("model", "network") - dy_keys];
  if (cfg->nencoder != 1 || cfg->encoder[0] % 16)
    return dy_config_fail(ld->comm, &enc->origin,
                          "model.encoder must be one width, a multiple of 16, with model.network = \"conv\" (its "
                          "1x1 convolution has model.encoder[0] / 16 channels of 4 x 4 pixels), e.g. [32]");
  if (cfg->ndecoder != 1)
    return dy_config_fail(ld->comm, &dec->origin,
                          "model.decoder must be one width with model.network = \"conv\" (the linear layer before "
                          "the 1024 features of the transposed convolutions), e.g. [32]");
  if (cfg->tica_dim > 0 || !strcmp(cfg->type, "tica"))
    return dy_config_fail(ld->comm, &net->origin,
                          "model.network = \"conv\" encodes images: it cannot take %s", cfg->tica_dim > 0 ?
                          "TICs (remove data.tica_dim)" : "model.type = \"tica\", which trains no network");
  PetscFunctionReturn(0);
}

/* Every key: required ones present, each checked and stored; then the rules between keys. */
static PetscErrorCode dy_config_validate(DyLoad *ld, const DyTomlValue *file, DyConfig *cfg) {
  PetscFunctionBegin;
  for (int k = 0; k < DY_NKEYS; k++) {
    const DyKey *key = &dy_keys[k];
    if (!ld->slot[k].value) {
      const DyTomlValue *sec = dy_toml_get(file, key->section);
      DyOrigin o = {ld->path, sec ? dy_toml_key_line(file, key->section) : 0, NULL};
      return dy_config_fail(ld->comm, &o, "%s.%s is required%s%s%s", key->section, key->name,
                            sec ? "" : " (there is no [", sec ? "" : key->section, sec ? "" : "] section)");
    }
    PetscCall(dy_config_store(ld, key, cfg));
  }
  if (cfg->ntraj == 0) {
    const DySlot *s = &ld->slot[dy_key_find("data", "input") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "data.input is empty: name at least one trajectory, e.g. [\"traj.h5:/positions\"]");
  }
  if (cfg->batch == DY_BATCH_GLOBAL && cfg->lr_scaling != DY_LR_SCALING_NONE) {
    const DySlot *s = &ld->slot[dy_key_find("train", "lr_scaling") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "train.lr_scaling = \"%s\" is for train.batch = \"per_rank\" (a global batch is the same "
                          "at every rank count and needs no scaling): set train.batch = \"per_rank\" or "
                          "train.lr_scaling = \"none\"",
                          dy_lr_scalings[cfg->lr_scaling]);
  }
  if (cfg->placement == DY_PLACEMENT_BLOCK && cfg->batch != DY_BATCH_GLOBAL) {
    const DySlot *s = &ld->slot[dy_key_find("data", "placement") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "data.placement = \"block\" needs train.batch = \"global\": a rank's pairs are then a "
                          "stretch of trajectory, and only a global batch, split over the ranks in proportion to "
                          "their members of the step's bin, samples the bin without bias");
  }
  if (cfg->ntarget != 0 && cfg->ntarget != cfg->ntraj) {
    const DySlot *s = &ld->slot[dy_key_find("data", "target") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "data.target has %d entries but data.input has %d: give one target per input, or none",
                          cfg->ntarget, cfg->ntraj);
  }
  if (cfg->tica_lag == 0) cfg->tica_lag = cfg->lag;
  if (cfg->warmup_target != DY_WARMUP_TARGET_NONE && strcmp(cfg->type, "dynamicsae")) {
    const DySlot *s = &ld->slot[dy_key_find("train", "warmup_target") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "train.warmup_target = \"%s\" shapes DynamicsAE's warm-up epoch, and model.type = \"%s\" "
                          "has none: remove the key or set it to \"none\"",
                          dy_warmup_targets[cfg->warmup_target], cfg->type);
  }
  PetscCall(dy_config_check_conv(ld, cfg));
  if (cfg->tica_dim > 0 && !strcmp(cfg->type, "tica")) {
    const DySlot *s = &ld->slot[dy_key_find("data", "tica_dim") - dy_keys];
    return dy_config_fail(ld->comm, &s->origin,
                          "data.tica_dim = %d feeds TICs to a trained model, but model.type = \"tica\" trains none: its "
                          "latent is already the first model.latent_dim TICs; remove data.tica_dim",
                          cfg->tica_dim);
  }
  PetscFunctionReturn(0);
}

/* ---- the effective configuration ---------------------------------------------------------- */

typedef struct {
  char *s;    /* text so far, NUL-terminated */
  size_t n;   /* its length */
  size_t cap; /* bytes allocated */
  int failed; /* an allocation failed */
} DyText;

static void dy_text_add(DyText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dy_text_add(DyText *t, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int need = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
      t->failed = 1;
      return;
    }
    if (t->s && t->n + (size_t)need < t->cap) {
      t->n += (size_t)need;
      return;
    }
    size_t cap = DY_MAX(2 * t->cap, t->n + (size_t)need + 256);
    char *grown = realloc(t->s, cap);
    if (!grown) {
      t->failed = 1;
      return;
    }
    t->s = grown;
    t->cap = cap;
  }
}

static void dy_text_string(DyText *t, const char *s) {
  size_t n = 6 * strlen(s) + 1;
  char *esc = malloc(n + 8);
  if (!esc) {
    t->failed = 1;
    return;
  }
  dy_toml_escape(s, strlen(s), esc, n + 8);
  dy_text_add(t, "\"%s\"", esc);
  free(esc);
}

static void dy_text_real(DyText *t, double x) {
  char buf[40];
  dy_format_real(x, buf, sizeof buf);
  dy_text_add(t, "%s", buf);
}

static PetscErrorCode dy_config_effective(DyConfig *cfg) {
  DyText t = {0};
  const char *section = "";

  PetscFunctionBegin;
  for (int k = 0; k < DY_NKEYS; k++) {
    const DyKey *key = &dy_keys[k];
    const char *field = (const char *)cfg + key->off;
    if (strcmp(section, key->section)) dy_text_add(&t, "%s[%s]\n", section[0] ? "\n" : "", key->section);
    section = key->section;
    dy_text_add(&t, "%s = ", key->name);
    switch (key->kind) {
    case DY_KEY_INT: dy_text_add(&t, "%d", *(const int *)field); break;
    case DY_KEY_INT64: dy_text_add(&t, "%" PRId64, *(const int64_t *)field); break;
    case DY_KEY_REAL: dy_text_real(&t, *(const double *)field); break;
    case DY_KEY_BOOL: dy_text_add(&t, "%s", *(const int *)field ? "true" : "false"); break;
    case DY_KEY_WORD: dy_text_string(&t, field); break;
    case DY_KEY_ENUM: dy_text_string(&t, key->choices[*(const DyDiffusion *)field]); break;
    case DY_KEY_PATH: dy_text_string(&t, *(char *const *)((const char *)cfg + key->given_off)); break;
    case DY_KEY_WIDTHS:
    case DY_KEY_INDICES:
    case DY_KEY_DATA: {
      int n = *(const int *)((const char *)cfg + key->count_off);
      dy_text_add(&t, "[");
      for (int i = 0; i < n; i++) {
        if (i) dy_text_add(&t, ", ");
        if (key->kind == DY_KEY_WIDTHS)
          dy_text_add(&t, "%d", ((const int *)field)[i]);
        else if (key->kind == DY_KEY_INDICES)
          dy_text_add(&t, "%d", (*(int *const *)field)[i]);
        else
          dy_text_string(&t, (*(DyDataRef *const *)field)[i].text);
      }
      dy_text_add(&t, "]");
      break;
    }
    }
    dy_text_add(&t, "\n");
  }
  if (t.failed) free(t.s);
  PetscCheck(!t.failed, PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory writing the effective configuration");
  cfg->effective = t.s;
  PetscFunctionReturn(0);
}

/* ---- the interface ----------------------------------------------------------------------- */

static PetscErrorCode dy_config_load_into(DyLoad *ld, int nset, char *const *sets, DyConfig *cfg) {
  char *text = NULL, err[512];
  long len = 0;
  DyTomlValue *file = NULL;

  PetscFunctionBegin;
  PetscCall(dy_config_read(ld->comm, ld->path, &text, &len));
  int bad = dy_toml_parse(text, (size_t)len, &file, err, sizeof err);
  free(text);
  if (!bad)
    ld->doc[ld->ndoc++] = file;
  else {
    int line = 0, used = 0;
    if (sscanf(err, "line %d: %n", &line, &used) == 1 && used > 0) {
      DyOrigin o = {ld->path, line, NULL};
      return dy_config_fail(ld->comm, &o, "%s", err + used);
    }
    DyOrigin o = {ld->path, 0, NULL};
    return dy_config_fail(ld->comm, &o, "%s", err);
  }
  PetscCall(dy_config_take_defaults(ld));
  PetscCall(dy_config_take_file(ld, file));
  for (int i = 0; i < nset; i++)
    PetscCall(dy_config_take_set(ld, sets[i]));
  PetscCall(dy_config_validate(ld, file, cfg));
  PetscCall(dy_config_effective(cfg));
  PetscFunctionReturn(0);
}

PetscErrorCode dy_config_load(MPI_Comm comm, const char *path, int nset, char *const *sets, DyConfig *cfg) {
  DyLoad ld;
  const char *slash = strrchr(path, '/');
  PetscErrorCode ierr;

  PetscFunctionBegin;
  memset(cfg, 0, sizeof *cfg);
  memset(&ld, 0, sizeof ld);
  ld.comm = comm;
  ld.path = path;
  ld.base = malloc(slash ? (size_t)(slash - path) + 2 : 1);
  ld.doc = calloc((size_t)nset + 2, sizeof *ld.doc);
  cfg->path = dy_strdup(path);
  if (!ld.base || !ld.doc || !cfg->path) {
    free(ld.base);
    free(ld.doc);
    dy_config_free(cfg);
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_MEM, "out of memory");
  }
  /* the folder with its '/', so that "in.toml" resolves against "" and "/in.toml" against "/" */
  if (slash) memcpy(ld.base, path, (size_t)(slash - path) + 1);
  ld.base[slash ? slash - path + 1 : 0] = '\0';

  ierr = dy_config_load_into(&ld, nset, sets, cfg);
  for (int i = 0; i < ld.ndoc; i++)
    dy_toml_free(ld.doc[i]);
  free(ld.doc);
  free(ld.base);
  if (ierr) dy_config_free(cfg);
  PetscCall(ierr);
  PetscFunctionReturn(0);
}

PetscErrorCode dy_config_print(MPI_Comm comm, const DyConfig *cfg, FILE *fp) {
  PetscFunctionBegin;
  if (dy_is_root(comm) && cfg->effective) {
    fputs(cfg->effective, fp);
    fflush(fp);
  }
  PetscFunctionReturn(0);
}

void dy_config_model_shape(const DyConfig *cfg, int D, int Dy, DyModelShape *shape) {
  const int *widths[DY_NNETS] = {cfg->encoder, cfg->decoder, cfg->prior, cfg->prior};
  const int counts[DY_NNETS] = {cfg->nencoder, cfg->ndecoder, cfg->nprior, cfg->nprior};

  memset(shape, 0, sizeof *shape);
  shape->D = D;
  shape->Dy = Dy;
  shape->d = cfg->latent_dim;
  shape->act = cfg->activation;
  shape->network = cfg->network;
  /* the data reader took images of 64 x 64 pixels for "conv": D = channels 64 64 */
  if (cfg->network == DY_NETWORK_CONV) shape->channels = D / (DY_CNN_SIDE * DY_CNN_SIDE);
  for (int net = 0; net < DY_NNETS; net++) {
    shape->nhidden[net] = counts[net];
    memcpy(shape->hidden[net], widths[net], (size_t)counts[net] * sizeof(int));
  }
}

static void dy_data_refs_free(DyDataRef *refs, int n) {
  if (!refs) return;
  for (int i = 0; i < n; i++) {
    free(refs[i].file);
    free(refs[i].dataset);
    free(refs[i].text);
  }
  free(refs);
}

void dy_config_free(DyConfig *cfg) {
  dy_data_refs_free(cfg->input, cfg->ntraj);
  dy_data_refs_free(cfg->target, cfg->ntarget);
  free(cfg->atoms);
  free(cfg->dir);
  free(cfg->dir_given);
  free(cfg->path);
  free(cfg->effective);
  memset(cfg, 0, sizeof *cfg);
}
