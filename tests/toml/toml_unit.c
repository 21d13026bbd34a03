/* Unit tests of the TOML reader: the lines recorded on keys and values (the config module names
 * file:line from them), errors naming the right line, value decoding at the edges, and a mutation
 * run over a config-like document that must never crash or leak (run it under valgrind too). */
#include "io/dy_toml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      failures++;                                                                                                      \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                      \
      printf(__VA_ARGS__);                                                                                             \
      printf("\n");                                                                                                    \
    }                                                                                                                  \
  } while (0)

static DyTomlValue *parse_ok(const char *text) {
  DyTomlValue *root = NULL;
  char err[256];
  if (dy_toml_parse(text, strlen(text), &root, err, sizeof err)) {
    failures++;
    printf("FAIL: valid document rejected: %s\n---\n%s\n---\n", err, text);
    return NULL;
  }
  return root;
}

/* The document must be rejected with an error starting "line <line>: " and containing what. */
static void expect_error(const char *text, int line, const char *what) {
  DyTomlValue *root = (DyTomlValue *)&root; /* must come back NULL */
  char err[256], prefix[32];
  int rc = dy_toml_parse(text, strlen(text), &root, err, sizeof err);
  snprintf(prefix, sizeof prefix, "line %d: ", line);
  CHECK(rc != 0, "accepted invalid document:\n%s", text);
  CHECK(root == NULL, "root not NULL after an error");
  if (rc == 0) {
    dy_toml_free(root);
    return;
  }
  CHECK(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' should start with '%s'", err, prefix);
  CHECK(strstr(err, what) != NULL, "error '%s' should mention '%s'", err, what);
}

/* Whole UTF-8 sequences only (enough to check a message was not cut inside one). */
static int utf8_ok(const char *s) {
  for (const unsigned char *u = (const unsigned char *)s; *u;) {
    int n = *u < 0x80 ? 0 : *u >= 0xf0 ? 3 : *u >= 0xe0 ? 2 : *u >= 0xc0 ? 1 : -1;
    if (n < 0) return 0;
    for (u++; n > 0; n--, u++)
      if ((*u & 0xc0) != 0x80) return 0;
  }
  return 1;
}

/* Follows a dotted path of plain keys (no dots inside keys) from the root. */
static const DyTomlValue *path(const DyTomlValue *t, const char *dotted) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", dotted);
  for (char *part = strtok(buf, "."); part && t; part = strtok(NULL, "."))
    t = dy_toml_get(t, part);
  return t;
}

static void test_lines(void) {
  const char *doc = "# a config\n"                   /* 1 */
                    "title = \"run\"\n"              /* 2 */
                    "\n"                             /* 3 */
                    "[model]\n"                      /* 4 */
                    "latent = 3\n"                   /* 5 */
                    "hidden = [64,\n"                /* 6 */
                    "          64]\n"                /* 7 */
                    "note = \"\"\"first\n"           /* 8 */
                    "second\"\"\"\n"                 /* 9 */
                    "act.kind = 'tanh'  # dotted\n"  /* 10 */
                    "\r\n"                           /* 11 */
                    "[train.optim]\n"                /* 12 */
                    "lr = 1e-3\n"                    /* 13 */
                    "[train]\n"                      /* 14 */
                    "epochs = 10\n"                  /* 15 */
                    "[[stage]]\n"                    /* 16 */
                    "name = \"a\"\n"                 /* 17 */
                    "[[stage]]\n"                    /* 18 */
                    "name = \"b\"\n"                 /* 19 */
                    "inline = { x = 1, y.z = 2 }\n"; /* 20 */
  DyTomlValue *root = parse_ok(doc);
  if (!root) return;
  CHECK(root->type == DY_TOML_TABLE && root->line == 1, "root");
  CHECK(dy_toml_key_line(root, "title") == 2, "title key line %d", dy_toml_key_line(root, "title"));
  CHECK(path(root, "title")->line == 2, "title value line");
  const DyTomlValue *model = dy_toml_get(root, "model");
  CHECK(model && model->line == 4 && dy_toml_key_line(root, "model") == 4, "model table line");
  CHECK(dy_toml_key_line(model, "latent") == 5, "latent key line");
  CHECK(dy_toml_key_line(model, "hidden") == 6, "hidden key line");
  const DyTomlValue *hidden = dy_toml_get(model, "hidden");
  CHECK(hidden && hidden->n == 2 && hidden->items[0]->line == 6 && hidden->items[1]->line == 7, "array item lines");
  CHECK(dy_toml_key_line(model, "note") == 8, "multi-line string key line");
  CHECK(path(root, "model.note")->len == 12 && memcmp(path(root, "model.note")->str, "first\nsecond", 12) == 0,
        "multi-line string value");
  CHECK(dy_toml_key_line(model, "act") == 10, "dotted key parent line");
  CHECK(dy_toml_key_line(dy_toml_get(model, "act"), "kind") == 10, "dotted key line");
  const DyTomlValue *train = dy_toml_get(root, "train");
  CHECK(train && train->line == 14 && dy_toml_key_line(root, "train") == 14, "implicit then explicit table line %d",
        train ? train->line : -1);
  CHECK(dy_toml_key_line(train, "optim") == 12, "sub-table line");
  CHECK(dy_toml_key_line(dy_toml_get(train, "optim"), "lr") == 13, "key line after CR LF");
  CHECK(path(root, "train.optim.lr")->type == DY_TOML_FLOAT && path(root, "train.optim.lr")->real == 1e-3, "lr");
  CHECK(dy_toml_key_line(train, "epochs") == 15, "epochs line");
  const DyTomlValue *stage = dy_toml_get(root, "stage");
  CHECK(stage && stage->type == DY_TOML_ARRAY && stage->n == 2, "array of tables");
  if (stage && stage->n == 2) {
    CHECK(stage->items[0]->line == 16 && stage->items[1]->line == 18, "array-of-tables element lines");
    CHECK(dy_toml_key_line(stage->items[1], "name") == 19, "key line in second element");
    const DyTomlValue *in = dy_toml_get(stage->items[1], "inline");
    CHECK(in && in->line == 20 && dy_toml_key_line(in, "x") == 20 && path(in, "y.z")->line == 20, "inline lines");
  }
  CHECK(dy_toml_get(root, "missing") == NULL && dy_toml_key_line(root, "missing") == 0, "missing key");
  CHECK(dy_toml_get(path(root, "title"), "x") == NULL && dy_toml_get(NULL, "x") == NULL, "get on a non-table");
  CHECK(strcmp(dy_toml_type_name(DY_TOML_FLOAT), "float") == 0 &&
            strcmp(dy_toml_type_name(DY_TOML_DATE_LOCAL), "date-local") == 0,
        "type names");
  dy_toml_free(root);
}

static void test_error_lines(void) {
  expect_error("a = 1\nb = 2\na = 3\n", 3, "duplicate key 'a' (first defined on line 1)");
  expect_error("[t]\nx = 1\n\n[t]\n", 4, "table 't' is already defined on line 1");
  expect_error("x = 1\ns = \"abc\n", 2, "unterminated string");
  expect_error("x = 1\ns = \"\"\"abc\n\n\n", 2, "unterminated string");
  expect_error("a = [1,\n2,\n3 4]\n", 3, "expected ',' or ']' in the array opened on line 1");
  expect_error("a = \"\"\"x\ny\"\"\"\nb = nope\n", 3, "invalid value 'nope'");
  expect_error("a = 1\nb = 0x\n", 2, "invalid digits");
  expect_error("a = 9223372036854775808\n", 1, "64 bits");
  expect_error("a = -9223372036854775809\n", 1, "64 bits");
  expect_error("a = 0x8000000000000000\n", 1, "64 bits");
  expect_error("a = 1e400\n", 1, "out of the range");
  expect_error("a = 1\n\n[x]\ny = 1979-02-29\n", 4, "does not exist");
  expect_error("a = 07:60:00\n", 1, "invalid time");
  expect_error("a = 1979-05-27T07:32:00+24:00\n", 1, "offset");
  expect_error("a = \"\\uD800\"\n", 1, "not a Unicode scalar value");
  expect_error("a = \"\\U00110000\"\n", 1, "not a Unicode scalar value");
  expect_error("\n\na = \"\xc3\x28\"\n", 3, "UTF-8");
  expect_error("a = 'x\x01'\n", 1, "control character");
  expect_error("[a]\nb.c = 1\n[a.b]\n", 3, "table 'a.b' is already defined");
  expect_error("a = {b = 1}\n[a]\n", 2, "inline table");
  expect_error("a = {b = 1}\na.c = 2\n", 2, "inline table");
  expect_error("a = [1]\n[[a]]\n", 2, "already defined (as array) on line 1");
  expect_error("a = 1 b = 2\n", 1, "end of the line");
  expect_error("k\n", 1, "expected '='");
  /* errors inside a multi-line construct name the line where the problem is */
  expect_error("s = \"\"\"\nline\n\\q\"\"\"\n", 3, "invalid escape");
  /* a long non-ASCII key is cut in the message without splitting a character */
  char key[700] = "", doc[1600], err[256];
  for (int i = 0; i < 300; i++)
    strcat(key, "\xc3\xa9");
  snprintf(doc, sizeof doc, "\"%s\".x = 1\n\"%s\".x = 2\n", key, key);
  DyTomlValue *root;
  CHECK(dy_toml_parse(doc, strlen(doc), &root, err, sizeof err) != 0 && strncmp(err, "line 2: duplicate", 17) == 0,
        "long key: %s", err);
  CHECK(utf8_ok(err), "message cut inside a UTF-8 sequence");
  /* a tiny or empty error buffer must be safe */
  char small[8];
  CHECK(dy_toml_parse("a = ", 4, &root, small, sizeof small) != 0 && strlen(small) < sizeof small, "small buffer");
  CHECK(dy_toml_parse("a = ", 4, &root, NULL, 0) != 0 && root == NULL, "no buffer");
}

static void test_values(void) {
  DyTomlValue *root = parse_ok("min = -9_223_372_036_854_775_808\n"
                               "max = 0x7FFF_FFFF_FFFF_FFFF\n"
                               "oct = 0o755\n"
                               "bin = 0b1101\n"
                               "f = -6.626e-34\n"
                               "ninf = -inf\n"
                               "nan = nan\n"
                               "esc = \"a\\u0000b\\U0001F600\\t\"\n"
                               "lit = '''\n"
                               "C:\\path\\ ''x'''''\n"
                               "cont = \"\"\"one \\\n"
                               "     two\"\"\"\n"
                               "\"quoted key\" = true\n"
                               "odt = 1979-05-27 07:32:00.5z\n"
                               "t = 07:32:00\n");
  if (!root) return;
  CHECK(path(root, "min")->integer == INT64_MIN, "INT64_MIN");
  CHECK(path(root, "max")->integer == INT64_MAX, "INT64_MAX");
  CHECK(path(root, "oct")->integer == 0755 && path(root, "bin")->integer == 13, "octal, binary");
  CHECK(path(root, "f")->real == -6.626e-34, "float");
  CHECK(isinf(path(root, "ninf")->real) && path(root, "ninf")->real < 0 && isnan(path(root, "nan")->real), "inf nan");
  const DyTomlValue *esc = path(root, "esc");
  CHECK(esc->len == 8 && memcmp(esc->str, "a\0b\xf0\x9f\x98\x80\t", 8) == 0, "escapes (len %zu)", esc->len);
  CHECK(strcmp(path(root, "lit")->str, "C:\\path\\ ''x''") == 0, "literal '%s'", path(root, "lit")->str);
  CHECK(strcmp(path(root, "cont")->str, "one two") == 0, "line-ending backslash '%s'", path(root, "cont")->str);
  CHECK(path(root, "quoted key") && path(root, "quoted key")->boolean == 1, "quoted key");
  CHECK(path(root, "odt")->type == DY_TOML_DATETIME && strcmp(path(root, "odt")->str, "1979-05-27 07:32:00.5z") == 0,
        "offset date-time kept as text");
  CHECK(path(root, "t")->type == DY_TOML_TIME_LOCAL, "local time");
  dy_toml_free(root);
  /* not NUL-terminated input: parsing stops at len */
  const char text[] = {'a', ' ', '=', ' ', '1', '2'};
  char err[128];
  CHECK(dy_toml_parse(text, 5, &root, err, sizeof err) == 0 && path(root, "a")->integer == 1, "length respected");
  dy_toml_free(root);
}

/* Deterministic mutations (byte changes, insertions of TOML punctuation, truncations) of a
 * config-like document: each must parse or fail cleanly. */
static void test_mutations(int rounds) {
  static const char base[] = "# config\n"
                             "[model]\nlatent = 3\nhidden = [64, 64] # widths\nname = \"ae \\u00e9\"\n"
                             "[train.optim]\nlr = 1.5e-3\nmulti = '''\nx'''\nwhen = 1979-05-27T07:32:00Z\n"
                             "[[stage]]\nt = {a = 1, b.c = [1, {d = 2}]}\nflag = true\nh = 0xff_ff\n";
  static const char alphabet[] = "[]{}=,.\"'\\#\n\r\t 0_+-:eEzTxu\x80\xc3\xff";
  const size_t n = sizeof base - 1;
  char *buf = malloc(n + 8);
  uint64_t state = 0x9e3779b97f4a7c15u;
  int accepted = 0;
  for (int r = 0; r < rounds && buf; r++) {
    memcpy(buf, base, n);
    size_t len = n;
    int edits = 1 + r % 3;
    for (int e = 0; e < edits; e++) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* xorshift64 */
      size_t where = (size_t)(state >> 8) % len;
      char c = alphabet[(state >> 40) % (sizeof alphabet - 1)];
      switch ((state >> 56) % 3) {
      case 0: buf[where] = c; break;
      case 1:
        memmove(buf + where + 1, buf + where, len - where);
        buf[where] = c;
        len++;
        break;
      default: len = where + 1; break;
      }
    }
    DyTomlValue *root;
    char err[128];
    if (dy_toml_parse(buf, len, &root, err, sizeof err) == 0) {
      accepted++;
      dy_toml_free(root);
    } else {
      CHECK(strncmp(err, "line ", 5) == 0, "error without a line: %s", err);
    }
  }
  free(buf);
  printf("mutations: %d rounds, %d still valid\n", rounds, accepted);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20000;
  test_lines();
  test_error_lines();
  test_values();
  test_mutations(rounds);
  if (failures) {
    printf("toml_unit: %d checks FAILED\n", failures);
    return 1;
  }
  printf("toml_unit: all checks passed\n");
  return 0;
}
