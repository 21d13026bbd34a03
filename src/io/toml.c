/* TOML 1.0.0 reader (see dy_toml.h).
 *
 * One pass over the text after an encoding check: the whole input must be UTF-8 and free of the
 * control characters TOML forbids everywhere, so the parser below can look at single bytes. The
 * definition rules of TOML (no key twice, a table defined once, inline tables closed, arrays of
 * tables only extended by [[header]]) are enforced with the flags kept on each table and array. */
#include "io/dy_toml.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a table or array came to exist; decides what may be added to it later. */
enum {
  DEF_IMPLICIT = 1, /* table: created as a parent by a [a.b] header, may still get its own header */
  DEF_EXPLICIT = 2, /* table: defined by its own [header] or as an element of [[header]] */
  DEF_DOTTED = 4,   /* table: created by a dotted key; sub-tables may still get headers */
  DEF_INLINE = 8,   /* table: inline { ... } (closed for good) */
  DEF_AOT = 16      /* array: array of tables created by [[header]] (static arrays are closed) */
};

/* Deepest nesting of values and longest dotted key; bounds the recursion on hostile input. */
#define TOML_MAX_DEPTH 256
#define TOML_MAX_KEY_PARTS 256

/* One entry of the parser's key index. */
typedef struct {
  const DyTomlValue *table; /* the table holding the key; NULL for an empty slot */
  size_t at;                /* position of the key in table->keys */
} Slot;

typedef struct {
  const char *s; /* the text */
  size_t len;    /* its length in bytes */
  size_t pos;    /* next byte to read */
  int line;      /* 1-based line of s[pos] */
  char *err;     /* where the first error is written */
  size_t errlen; /* size of err */
  int failed;    /* an error has been recorded */
  Slot *slots;   /* (nslots) open-addressing index of every key read so far, by (table, key) */
  size_t nslots; /* a power of two, or 0 */
  size_t nkeys;  /* occupied slots */
} Parser;

/* A growable byte buffer, always NUL-terminated once anything was added. */
typedef struct {
  char *data; /* (cap) bytes */
  size_t len; /* bytes used, excluding the NUL */
  size_t cap; /* bytes allocated */
} Buf;

/* One part of a (dotted) key. */
typedef struct {
  char *s;    /* decoded bytes, NUL-terminated */
  size_t len; /* byte length (the key may hold NUL from a \u0000 escape) */
} KeyPart;

typedef struct {
  KeyPart *part; /* (n) the parts in order */
  size_t n;      /* number of parts */
  size_t cap;    /* allocated parts */
} Key;

/* ---------------------------------------------------------------- errors and buffers */

static int fail(Parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Parser *p, int line, const char *fmt, ...) {
  if (p->failed) return -1;
  p->failed = 1;
  if (p->errlen == 0) return -1;
  int k = snprintf(p->err, p->errlen, "line %d: ", line);
  if (k >= 0 && (size_t)k < p->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int buf_add(Buf *b, const char *src, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, src, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

/* Takes the buffer's text, leaving an empty buffer; never NULL unless out of memory. */
static char *buf_take(Buf *b) {
  if (!b->data && buf_add(b, "", 0)) return NULL;
  char *d = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  return d;
}

/* Parts 0..upto of a key, joined by dots, for a message (outlen > 0): control bytes are shown as
 * '?', and a cut never splits a UTF-8 sequence. */
static void key_show(char *out, size_t outlen, const Key *k, size_t upto) {
  size_t o = 0;
  int cut = 0;
  for (size_t i = 0; i <= upto && i < k->n && !cut; i++) {
    for (size_t j = i ? 0 : 1; j <= k->part[i].len; j++) { /* j == 0: the dot before part i */
      if (o + 1 >= outlen) {
        cut = 1;
        break;
      }
      unsigned char c = j ? (unsigned char)k->part[i].s[j - 1] : '.';
      out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
  }
  if (cut) {
    while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
      o--;
    if (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0xc0) o--;
  }
  out[o] = '\0';
}

/* ---------------------------------------------------------------- values and tables */

/* A new empty value with the given definition flags; NULL (error recorded) if out of memory. */
static DyTomlValue *value_new(Parser *p, DyTomlType type, int line, unsigned flags) {
  DyTomlValue *v = calloc(1, sizeof *v);
  if (!v) {
    fail(p, line, "out of memory");
    return NULL;
  }
  v->type = type;
  v->line = line;
  v->flags = flags;
  return v;
}

void dy_toml_free(DyTomlValue *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->keys) free(v->keys[i]);
    if (v->items) dy_toml_free(v->items[i]);
  }
  free(v->keys);
  free(v->key_lens);
  free(v->key_lines);
  free(v->items);
  free(v->str);
  free(v);
}

/* Index of key in table t, or -1 (a linear search, for lookups after parsing). */
static long table_find(const DyTomlValue *t, const char *key, size_t len) {
  for (size_t i = 0; i < t->n; i++)
    if (t->key_lens[i] == len && memcmp(t->keys[i], key, len) == 0) return (long)i;
  return -1;
}

/* While parsing, keys are found through a hash index over all tables instead, so that a large
 * document (or a hostile one) does not cost time quadratic in the number of keys. */
static size_t key_hash(const DyTomlValue *t, const char *key, size_t len) {
  uint64_t h = 1469598103934665603u ^ (uint64_t)(uintptr_t)t; /* FNV-1a, seeded by the table */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 1099511628211u;
  }
  return (size_t)(h ^ (h >> 29));
}

static long index_find(const Parser *p, const DyTomlValue *t, const char *key, size_t len) {
  if (!p->nslots) return -1;
  const size_t mask = p->nslots - 1;
  for (size_t h = key_hash(t, key, len) & mask;; h = (h + 1) & mask) {
    const Slot *s = &p->slots[h];
    if (!s->table) return -1;
    if (s->table == t && t->key_lens[s->at] == len && memcmp(t->keys[s->at], key, len) == 0) return (long)s->at;
  }
}

static void index_place(Slot *slots, size_t nslots, const DyTomlValue *t, size_t at) {
  const size_t mask = nslots - 1;
  size_t h = key_hash(t, t->keys[at], t->key_lens[at]) & mask;
  while (slots[h].table)
    h = (h + 1) & mask;
  slots[h] = (Slot){t, at};
}

/* Records that key number at of table t exists; the index is kept at most half full. */
static int index_add(Parser *p, const DyTomlValue *t, size_t at) {
  if (2 * (p->nkeys + 1) > p->nslots) {
    size_t n = p->nslots ? 2 * p->nslots : 64;
    Slot *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < p->nslots; i++)
      if (p->slots[i].table) index_place(slots, n, p->slots[i].table, p->slots[i].at);
    free(p->slots);
    p->slots = slots;
    p->nslots = n;
  }
  index_place(p->slots, p->nslots, t, at);
  p->nkeys++;
  return 0;
}

/* Makes room for one more entry in a table (with keys) or an array (without). */
static int grow(DyTomlValue *v, int with_keys) {
  if (v->n < v->cap) return 0;
  size_t cap = v->cap ? 2 * v->cap : 4;
  DyTomlValue **items = realloc(v->items, cap * sizeof *items);
  if (!items) return -1;
  v->items = items;
  if (with_keys) {
    char **keys = realloc(v->keys, cap * sizeof *keys);
    if (!keys) return -1;
    v->keys = keys;
    size_t *lens = realloc(v->key_lens, cap * sizeof *lens);
    if (!lens) return -1;
    v->key_lens = lens;
    int *lines = realloc(v->key_lines, cap * sizeof *lines);
    if (!lines) return -1;
    v->key_lines = lines;
  }
  v->cap = cap;
  return 0;
}

/* Adds key -> v to table t (the key must be new). On failure v is freed. */
static int table_put(Parser *p, DyTomlValue *t, const KeyPart *k, DyTomlValue *v, int line) {
  char *copy = malloc(k->len + 1);
  if (!copy || grow(t, 1)) {
    free(copy);
    dy_toml_free(v);
    return fail(p, line, "out of memory");
  }
  memcpy(copy, k->s, k->len + 1);
  t->keys[t->n] = copy;
  t->key_lens[t->n] = k->len;
  t->key_lines[t->n] = line;
  t->items[t->n] = v;
  t->n++;
  return index_add(p, t, t->n - 1) ? fail(p, line, "out of memory") : 0;
}

static int array_push(Parser *p, DyTomlValue *a, DyTomlValue *v) {
  if (grow(a, 0)) {
    dy_toml_free(v);
    return fail(p, p->line, "out of memory");
  }
  a->items[a->n++] = v;
  return 0;
}

/* ---------------------------------------------------------------- characters */

/* The byte k ahead of the cursor, or -1 past the end. */
static int at(const Parser *p, size_t k) {
  return p->pos + k < p->len ? (unsigned char)p->s[p->pos + k] : -1;
}

static int is_digit(int c) {
  return c >= '0' && c <= '9';
}

static int is_bare(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

/* The text at the cursor starts with word. */
static int starts_with(const Parser *p, const char *word) {
  size_t n = strlen(word);
  return p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0;
}

static void skip_ws(Parser *p) {
  while (at(p, 0) == ' ' || at(p, 0) == '\t')
    p->pos++;
}

static void skip_comment(Parser *p) {
  if (at(p, 0) != '#') return;
  while (at(p, 0) >= 0 && at(p, 0) != '\n' && at(p, 0) != '\r')
    p->pos++;
}

static int eat_newline(Parser *p) {
  if (at(p, 0) == '\n') {
    p->pos++;
  } else if (at(p, 0) == '\r' && at(p, 1) == '\n') {
    p->pos += 2;
  } else {
    return 0;
  }
  p->line++;
  return 1;
}

/* Whitespace, newlines and comments, as allowed between array items. */
static void skip_blank(Parser *p) {
  for (;;) {
    skip_ws(p);
    skip_comment(p);
    if (!eat_newline(p)) return;
  }
}

/* The whole text must be UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) and
 * hold no control character except tab and the line ends LF and CR LF. */
static int check_encoding(Parser *p) {
  const unsigned char *s = (const unsigned char *)p->s;
  int line = 1;
  for (size_t i = 0; i < p->len;) {
    unsigned c = s[i];
    if (c < 0x80) {
      if (c == '\n') {
        line++;
      } else if (c == '\r') {
        if (i + 1 >= p->len || s[i + 1] != '\n') return fail(p, line, "carriage return not followed by a line feed");
      } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return fail(p, line, "control character U+%04X is not allowed", c);
      }
      i++;
      continue;
    }
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return fail(p, line, "invalid UTF-8 byte 0x%02X", c);
    }
    if (i + n >= p->len) return fail(p, line, "truncated UTF-8 sequence");
    if (s[i + 1] < lo || s[i + 1] > hi) return fail(p, line, "invalid UTF-8 sequence");
    for (size_t j = 2; j <= n; j++)
      if (s[i + j] < 0x80 || s[i + j] > 0xbf) return fail(p, line, "invalid UTF-8 sequence");
    i += n + 1;
  }
  return 0;
}

/* ---------------------------------------------------------------- strings */

static int hex_value(int c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int add_utf8(Buf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return buf_add(b, u, n);
}

/* An escape in a basic string; the cursor is on the backslash. */
static int parse_escape(Parser *p, Buf *b, int multiline) {
  int c = at(p, 1);
  const char *simple = NULL;
  switch (c) {
  case 'b': simple = "\b"; break;
  case 't': simple = "\t"; break;
  case 'n': simple = "\n"; break;
  case 'f': simple = "\f"; break;
  case 'r': simple = "\r"; break;
  case '"': simple = "\""; break;
  case '\\': simple = "\\"; break;
  default: break;
  }
  if (simple) {
    p->pos += 2;
    return buf_add(b, simple, 1) ? fail(p, p->line, "out of memory") : 0;
  }
  if (c == 'u' || c == 'U') {
    size_t ndig = c == 'u' ? 4 : 8;
    unsigned long cp = 0;
    for (size_t i = 0; i < ndig; i++) {
      int h = hex_value(at(p, 2 + i));
      if (h < 0) return fail(p, p->line, "\\%c escape needs %zu hexadecimal digits", c, ndig);
      cp = cp * 16 + (unsigned long)h;
    }
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return fail(p, p->line, "escape \\%c%0*lX is not a Unicode scalar value", c, (int)ndig, cp);
    p->pos += 2 + ndig;
    return add_utf8(b, cp) ? fail(p, p->line, "out of memory") : 0;
  }
  if (multiline) {
    /* A backslash ending a line drops it and all whitespace and newlines after it. */
    size_t k = 1;
    while (at(p, k) == ' ' || at(p, k) == '\t')
      k++;
    if (at(p, k) == '\n' || (at(p, k) == '\r' && at(p, k + 1) == '\n')) {
      p->pos += k;
      for (;;) {
        skip_ws(p);
        if (!eat_newline(p)) return 0;
      }
    }
  }
  if (c < 0x20 || c >= 0x7f) return fail(p, p->line, "invalid escape sequence after '\\'");
  return fail(p, p->line, "invalid escape sequence '\\%c'", c);
}

/* A basic or literal string, single- or multi-line (the latter only if allow_multiline); the
 * cursor is on the opening quote. The decoded bytes are appended to b. */
static int parse_string(Parser *p, Buf *b, int allow_multiline) {
  const int q = at(p, 0);
  const int line = p->line;
  const int multiline = at(p, 1) == q && at(p, 2) == q;
  if (multiline) {
    if (!allow_multiline) return fail(p, line, "a multi-line string cannot be a key");
    p->pos += 3;
    eat_newline(p); /* a newline right after the opening quotes is not part of the string */
  } else {
    p->pos++;
  }
  for (;;) {
    int c = at(p, 0);
    if (c < 0) return fail(p, line, "unterminated string");
    if (c == q) {
      if (!multiline) {
        p->pos++;
        return 0;
      }
      size_t nq = 0;
      while (at(p, nq) == q)
        nq++;
      if (nq > 5) return fail(p, p->line, "too many quotes in a row in a multi-line string");
      /* Up to two quotes may sit right before the closing three. */
      size_t keep = nq >= 3 ? nq - 3 : nq;
      const char quotes[2] = {(char)q, (char)q};
      if (buf_add(b, quotes, keep)) return fail(p, p->line, "out of memory");
      p->pos += nq;
      if (nq >= 3) return 0;
      continue;
    }
    if (c == '\n' || c == '\r') {
      if (!multiline) return fail(p, line, "unterminated string (line ends before the closing quote)");
      eat_newline(p);
      if (buf_add(b, "\n", 1)) return fail(p, p->line, "out of memory");
      continue;
    }
    if (c == '\\' && q == '"') {
      if (parse_escape(p, b, multiline)) return -1;
      continue;
    }
    /* Copy a run of ordinary bytes at once. */
    size_t start = p->pos;
    while (at(p, 0) >= 0 && at(p, 0) != q && at(p, 0) != '\n' && at(p, 0) != '\r' && !(at(p, 0) == '\\' && q == '"'))
      p->pos++;
    if (buf_add(b, p->s + start, p->pos - start)) return fail(p, p->line, "out of memory");
  }
}

/* ---------------------------------------------------------------- keys */

static void key_free(Key *k) {
  for (size_t i = 0; i < k->n; i++)
    free(k->part[i].s);
  free(k->part);
  *k = (Key){0};
}

/* A bare, quoted or dotted key into k (empty on entry); the cursor is on its first byte. */
static int parse_key(Parser *p, Key *k) {
  for (;;) {
    skip_ws(p);
    if (k->n == TOML_MAX_KEY_PARTS) return fail(p, p->line, "dotted key has more than %d parts", TOML_MAX_KEY_PARTS);
    if (k->n == k->cap) {
      size_t cap = k->cap ? 2 * k->cap : 4;
      KeyPart *part = realloc(k->part, cap * sizeof *part);
      if (!part) return fail(p, p->line, "out of memory");
      k->part = part;
      k->cap = cap;
    }
    int c = at(p, 0);
    Buf b = {0};
    if (c == '"' || c == '\'') {
      if (parse_string(p, &b, 0)) {
        free(b.data);
        return -1;
      }
    } else if (is_bare(c)) {
      size_t start = p->pos;
      while (is_bare(at(p, 0)))
        p->pos++;
      if (buf_add(&b, p->s + start, p->pos - start)) return fail(p, p->line, "out of memory");
    } else if (c < 0 || c == '\n' || c == '\r') {
      return fail(p, p->line, "expected a key before the end of the line");
    } else if (c < 0x80 && c > 0x20) {
      return fail(p, p->line, "expected a key, found '%c'", c);
    } else {
      return fail(p, p->line, "expected a key (bare keys are ASCII letters, digits, '_' and '-')");
    }
    size_t len = b.len;
    char *s = buf_take(&b);
    if (!s) return fail(p, p->line, "out of memory");
    k->part[k->n].s = s;
    k->part[k->n].len = len;
    k->n++;
    skip_ws(p);
    if (at(p, 0) != '.') return 0;
    p->pos++;
  }
}

/* ---------------------------------------------------------------- numbers and date-times */

/* Digits of the given base separated by single underscores, nothing else. */
static int digits_ok(const char *s, size_t n, int base) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '_') {
      if (i == 0 || i + 1 == n || s[i + 1] == '_') return 0;
      continue;
    }
    int d = hex_value(c);
    if (d < 0 || d >= base) return 0;
  }
  return 1;
}

/* Value of a checked digit string; -1 if it exceeds limit. */
static int digits_value(const char *s, size_t n, int base, uint64_t limit, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '_') continue;
    uint64_t d = (uint64_t)hex_value((unsigned char)s[i]);
    if (v > (limit - d) / (uint64_t)base) return -1;
    v = v * (uint64_t)base + d;
  }
  *out = v;
  return 0;
}

/* An integer or float token t (n bytes) into v; returns NULL or what is wrong. */
static const char *number_value(const char *t, size_t n, DyTomlValue *v) {
  if (n == 0) return "expected a number";
  size_t i = 0;
  int neg = 0;
  if (t[0] == '+' || t[0] == '-') {
    neg = t[0] == '-';
    i = 1;
  }
  const char *r = t + i;
  size_t rn = n - i;
  if (rn == 3 && (memcmp(r, "inf", 3) == 0 || memcmp(r, "nan", 3) == 0)) {
    v->type = DY_TOML_FLOAT;
    v->real = r[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
    return NULL;
  }
  if (rn >= 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'o' || r[1] == 'b')) {
    if (i) return "a sign is not allowed on hexadecimal, octal or binary integers";
    int base = r[1] == 'x' ? 16 : r[1] == 'o' ? 8 : 2;
    uint64_t u;
    if (!digits_ok(r + 2, rn - 2, base)) return "invalid digits in a hexadecimal, octal or binary integer";
    if (digits_value(r + 2, rn - 2, base, INT64_MAX, &u)) return "integer does not fit in 64 bits";
    v->type = DY_TOML_INTEGER;
    v->integer = (int64_t)u;
    return NULL;
  }
  size_t j = 0; /* end of the integer part within r */
  while (j < rn && (is_digit(r[j]) || r[j] == '_'))
    j++;
  if (!digits_ok(r, j, 10)) return "invalid number";
  if (r[0] == '0' && j > 1) return "leading zeros are not allowed";
  if (j == rn) {
    uint64_t u;
    if (digits_value(r, j, 10, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &u))
      return "integer does not fit in 64 bits";
    v->type = DY_TOML_INTEGER;
    v->integer = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
    return NULL;
  }
  size_t k = j;
  if (r[k] == '.') {
    size_t f = ++k;
    while (k < rn && (is_digit(r[k]) || r[k] == '_'))
      k++;
    if (!digits_ok(r + f, k - f, 10)) return "a decimal point must be followed by digits";
  }
  if (k < rn && (r[k] == 'e' || r[k] == 'E')) {
    size_t e = ++k;
    if (k < rn && (r[k] == '+' || r[k] == '-')) e = ++k;
    while (k < rn && (is_digit(r[k]) || r[k] == '_'))
      k++;
    if (!digits_ok(r + e, k - e, 10)) return "an exponent must have digits";
  }
  if (k != rn) return "invalid number";
  char small[64];
  char *plain = n < sizeof small ? small : malloc(n + 1);
  if (!plain) return "out of memory";
  size_t m = 0;
  for (size_t c = 0; c < n; c++)
    if (t[c] != '_') plain[m++] = t[c];
  plain[m] = '\0';
  char *end;
  double x = strtod(plain, &end); /* the token is checked above; the program keeps the C locale */
  int whole = end == plain + m;
  if (plain != small) free(plain);
  if (!whole) return "invalid float";
  if (isinf(x)) return "float is out of the range of a double";
  v->type = DY_TOML_FLOAT;
  v->real = x;
  return NULL;
}

/* n decimal digits at s; -1 if any is not a digit. */
static int fixed_digits(const char *s, size_t avail, size_t n) {
  if (avail < n) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit((unsigned char)s[i])) return -1;
    v = 10 * v + (s[i] - '0');
  }
  return v;
}

static int days_in_month(int year, int month) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

/* hh:mm:ss[.frac] at s; returns its length, or 0 if malformed or out of range. */
static size_t scan_time(const char *s, size_t avail) {
  int h = fixed_digits(s, avail, 2);
  if (h < 0 || avail < 8 || s[2] != ':' || s[5] != ':') return 0;
  int m = fixed_digits(s + 3, avail - 3, 2), sec = fixed_digits(s + 6, avail - 6, 2);
  if (m < 0 || sec < 0 || h > 23 || m > 59 || sec > 60) return 0;
  size_t i = 8;
  if (i < avail && s[i] == '.') {
    i++;
    size_t f = i;
    while (i < avail && is_digit((unsigned char)s[i]))
      i++;
    if (i == f) return 0;
  }
  return i;
}

/* A date, time, or both, with an optional offset; the cursor is on the first digit. */
static DyTomlValue *parse_datetime(Parser *p) {
  const char *s = p->s + p->pos;
  const size_t avail = p->len - p->pos;
  const int line = p->line;
  int has_date = 0, has_time = 0, has_offset = 0;
  size_t i = 0;
  if (avail >= 5 && s[4] == '-') {
    int y = fixed_digits(s, avail, 4), mo = -1, d = -1;
    if (avail >= 10 && s[7] == '-') {
      mo = fixed_digits(s + 5, avail - 5, 2);
      d = fixed_digits(s + 8, avail - 8, 2);
    }
    if (y < 0 || mo < 0 || d < 0) {
      fail(p, line, "invalid date (expected YYYY-MM-DD)");
      return NULL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
      fail(p, line, "date %.10s does not exist", s);
      return NULL;
    }
    has_date = 1;
    i = 10;
    /* A space separates date and time only if a time follows. */
    if (i < avail &&
        (s[i] == 'T' || s[i] == 't' ||
         (s[i] == ' ' && fixed_digits(s + i + 1, avail - i - 1, 2) >= 0 && avail > i + 3 && s[i + 3] == ':'))) {
      i++;
      has_time = 1;
    }
  } else {
    has_time = 1;
  }
  if (has_time) {
    size_t t = scan_time(s + i, avail - i);
    if (!t) {
      fail(p, line, "invalid time (expected hh:mm:ss with hours 00-23, minutes 00-59, seconds 00-60)");
      return NULL;
    }
    i += t;
    if (has_date && i < avail && (s[i] == 'Z' || s[i] == 'z')) {
      i++;
      has_offset = 1;
    } else if (has_date && i < avail && (s[i] == '+' || s[i] == '-')) {
      int oh = fixed_digits(s + i + 1, avail - i - 1, 2), om = -1;
      if (oh >= 0 && avail - i >= 6 && s[i + 3] == ':') om = fixed_digits(s + i + 4, avail - i - 4, 2);
      if (oh < 0 || om < 0 || oh > 23 || om > 59) {
        fail(p, line, "invalid time offset (expected +hh:mm or -hh:mm)");
        return NULL;
      }
      i += 6;
      has_offset = 1;
    }
  }
  DyTomlType type = has_offset             ? DY_TOML_DATETIME
                    : has_date && has_time ? DY_TOML_DATETIME_LOCAL
                    : has_date             ? DY_TOML_DATE_LOCAL
                                           : DY_TOML_TIME_LOCAL;
  DyTomlValue *v = value_new(p, type, line, 0);
  char *text = v ? malloc(i + 1) : NULL;
  if (!text) {
    free(v);
    fail(p, line, "out of memory");
    return NULL;
  }
  memcpy(text, s, i);
  text[i] = '\0';
  v->str = text;
  v->len = i;
  p->pos += i;
  return v;
}

static DyTomlValue *parse_number_or_datetime(Parser *p) {
  const int line = p->line;
  if ((fixed_digits(p->s + p->pos, p->len - p->pos, 4) >= 0 && at(p, 4) == '-') ||
      (fixed_digits(p->s + p->pos, p->len - p->pos, 2) >= 0 && at(p, 2) == ':'))
    return parse_datetime(p);
  size_t start = p->pos;
  while (is_bare(at(p, 0)) || at(p, 0) == '+' || at(p, 0) == '.')
    p->pos++;
  DyTomlValue *v = value_new(p, DY_TOML_INTEGER, line, 0);
  if (!v) return NULL;
  const char *why = number_value(p->s + start, p->pos - start, v);
  if (why) {
    int shown = p->pos - start > 40 ? 40 : (int)(p->pos - start);
    fail(p, line, "%s: '%.*s'", why, shown, p->s + start);
    free(v);
    return NULL;
  }
  return v;
}

/* ---------------------------------------------------------------- values */

static DyTomlValue *parse_value(Parser *p, int depth);
static int parse_keyval(Parser *p, DyTomlValue *table, int depth);

static DyTomlValue *parse_array(Parser *p, int depth) {
  const int line = p->line;
  DyTomlValue *a = value_new(p, DY_TOML_ARRAY, line, 0);
  if (!a) return NULL;
  p->pos++;
  for (;;) {
    skip_blank(p);
    if (at(p, 0) == ']') break;
    DyTomlValue *item = parse_value(p, depth + 1);
    if (!item || array_push(p, a, item)) goto error;
    skip_blank(p);
    if (at(p, 0) == ',') {
      p->pos++;
      continue;
    }
    if (at(p, 0) == ']') break;
    fail(p, p->line, "expected ',' or ']' in the array opened on line %d", line);
    goto error;
  }
  p->pos++;
  return a;
error:
  dy_toml_free(a);
  return NULL;
}

/* Inline tables and the tables made inside them by dotted keys are closed once read. */
static void close_inline(DyTomlValue *t) {
  t->flags |= DEF_INLINE;
  for (size_t i = 0; i < t->n; i++)
    if (t->items[i]->type == DY_TOML_TABLE && (t->items[i]->flags & DEF_DOTTED)) close_inline(t->items[i]);
}

static DyTomlValue *parse_inline_table(Parser *p, int depth) {
  const int line = p->line;
  DyTomlValue *t = value_new(p, DY_TOML_TABLE, line, DEF_EXPLICIT);
  if (!t) return NULL;
  p->pos++;
  skip_ws(p);
  if (at(p, 0) == '}') {
    p->pos++;
    close_inline(t);
    return t;
  }
  for (;;) {
    skip_ws(p);
    if (parse_keyval(p, t, depth + 1)) goto error;
    skip_ws(p);
    if (at(p, 0) == ',') {
      p->pos++;
      continue;
    }
    if (at(p, 0) == '}') break;
    if (at(p, 0) == '\n' || at(p, 0) == '\r' || at(p, 0) == '#')
      fail(p, p->line, "an inline table (opened on line %d) must be on one line", line);
    else
      fail(p, p->line, "expected ',' or '}' in the inline table opened on line %d", line);
    goto error;
  }
  p->pos++;
  close_inline(t);
  return t;
error:
  dy_toml_free(t);
  return NULL;
}

static DyTomlValue *parse_value(Parser *p, int depth) {
  const int line = p->line;
  if (depth > TOML_MAX_DEPTH) {
    fail(p, line, "values nested more than %d deep", TOML_MAX_DEPTH);
    return NULL;
  }
  int c = at(p, 0);
  if (c == '"' || c == '\'') {
    Buf b = {0};
    DyTomlValue *v = NULL;
    if (parse_string(p, &b, 1) == 0) {
      size_t len = b.len;
      char *s = buf_take(&b);
      if (!s) fail(p, line, "out of memory");
      if (s && (v = value_new(p, DY_TOML_STRING, line, 0))) {
        v->str = s;
        v->len = len;
        return v;
      }
      free(s);
    }
    free(b.data);
    return NULL;
  }
  if (c == '[') return parse_array(p, depth);
  if (c == '{') return parse_inline_table(p, depth);
  if (c == 't' || c == 'f') {
    const char *word = c == 't' ? "true" : "false";
    size_t n = strlen(word);
    if (starts_with(p, word) && !is_bare(at(p, n))) {
      DyTomlValue *v = value_new(p, DY_TOML_BOOL, line, 0);
      if (!v) return NULL;
      v->boolean = c == 't';
      p->pos += n;
      return v;
    }
  }
  if (is_digit(c) || c == '+' || c == '-' || starts_with(p, "inf") || starts_with(p, "nan"))
    return parse_number_or_datetime(p);
  if (c < 0 || c == '\n' || c == '\r' || c == '#') {
    fail(p, line, "expected a value");
  } else {
    size_t n = 0;
    while (is_bare(at(p, n)) && n < 20)
      n++;
    if (n)
      fail(p, line, "invalid value '%.*s' (strings need quotes)", (int)n, p->s + p->pos);
    else
      fail(p, line, "expected a value");
  }
  return NULL;
}

/* ---------------------------------------------------------------- key/value pairs and headers */

static const char *kind_name(const DyTomlValue *v) {
  if (v->type == DY_TOML_TABLE && (v->flags & DEF_INLINE)) return "inline table";
  if (v->type == DY_TOML_ARRAY && (v->flags & DEF_AOT)) return "array of tables";
  return dy_toml_type_name(v->type);
}

/* key = value inside table (the current [section] or an inline table). */
static int parse_keyval(Parser *p, DyTomlValue *table, int depth) {
  const int line = p->line;
  Key k = {0};
  char shown[128];
  int rc = -1;
  if (parse_key(p, &k)) goto done;
  if (at(p, 0) != '=') {
    key_show(shown, sizeof shown, &k, k.n);
    fail(p, p->line, "expected '=' after key '%s'", shown);
    goto done;
  }
  p->pos++;
  skip_ws(p);
  DyTomlValue *t = table;
  for (size_t i = 0; i + 1 < k.n; i++) {
    long j = index_find(p, t, k.part[i].s, k.part[i].len);
    key_show(shown, sizeof shown, &k, i);
    if (j < 0) {
      DyTomlValue *sub = value_new(p, DY_TOML_TABLE, line, DEF_DOTTED);
      if (!sub || table_put(p, t, &k.part[i], sub, line)) goto done;
      t = sub;
      continue;
    }
    DyTomlValue *sub = t->items[j];
    if (sub->type != DY_TOML_TABLE || (sub->flags & (DEF_INLINE | DEF_EXPLICIT))) {
      if (sub->type == DY_TOML_TABLE && !(sub->flags & DEF_INLINE))
        fail(p, line, "table '%s' was defined by a header on line %d; dotted keys cannot add to it", shown,
             t->key_lines[j]);
      else
        fail(p, line, "key '%s' is already defined (as %s) on line %d", shown, kind_name(sub), t->key_lines[j]);
      goto done;
    }
    sub->flags = DEF_DOTTED; /* from now on no header may define it */
    t = sub;
  }
  const KeyPart *last = &k.part[k.n - 1];
  long j = index_find(p, t, last->s, last->len);
  if (j >= 0) {
    key_show(shown, sizeof shown, &k, k.n);
    fail(p, line, "duplicate key '%s' (first defined on line %d)", shown, t->key_lines[j]);
    goto done;
  }
  DyTomlValue *v = parse_value(p, depth);
  if (!v || table_put(p, t, last, v, line)) goto done;
  rc = 0;
done:
  key_free(&k);
  return rc;
}

/* [a.b.c] or [[a.b.c]]; on success *current is the table that following keys go into. */
static int parse_header(Parser *p, DyTomlValue *root, DyTomlValue **current) {
  const int line = p->line;
  const int aot = at(p, 1) == '[';
  Key k = {0};
  char shown[128];
  int rc = -1;
  p->pos += aot ? 2 : 1;
  if (parse_key(p, &k)) goto done;
  if (at(p, 0) != ']' || (aot && at(p, 1) != ']')) {
    fail(p, line, aot ? "expected ']]' to close the array-of-tables header" : "expected ']' to close the table header");
    goto done;
  }
  p->pos += aot ? 2 : 1;
  DyTomlValue *t = root;
  for (size_t i = 0; i < k.n; i++) {
    const int final = i + 1 == k.n;
    long j = index_find(p, t, k.part[i].s, k.part[i].len);
    DyTomlValue *v;
    key_show(shown, sizeof shown, &k, i);
    if (j < 0) {
      v = value_new(p, final && aot ? DY_TOML_ARRAY : DY_TOML_TABLE, line,
                    !final ? DEF_IMPLICIT
                    : aot  ? DEF_AOT
                           : DEF_EXPLICIT);
      if (!v || table_put(p, t, &k.part[i], v, line)) goto done;
    } else {
      v = t->items[j];
      const int is_aot = v->type == DY_TOML_ARRAY && (v->flags & DEF_AOT);
      const int is_open = v->type == DY_TOML_TABLE && !(v->flags & DEF_INLINE);
      if (final && aot ? !is_aot : !(is_open || (is_aot && !final))) {
        fail(p, line, "key '%s' is already defined (as %s) on line %d", shown, kind_name(v), t->key_lines[j]);
        goto done;
      }
      if (final && !aot) {
        if (v->flags & (DEF_EXPLICIT | DEF_DOTTED)) {
          fail(p, line, "table '%s' is already defined on line %d", shown, t->key_lines[j]);
          goto done;
        }
        v->flags = DEF_EXPLICIT; /* a table so far only implied by [a.b.c] gets its own header */
        v->line = line;
        t->key_lines[j] = line;
      }
    }
    if (final && aot) {
      DyTomlValue *elem = value_new(p, DY_TOML_TABLE, line, DEF_EXPLICIT);
      if (!elem || array_push(p, v, elem)) goto done;
      v = elem;
    } else if (v->type == DY_TOML_ARRAY) {
      v = v->items[v->n - 1]; /* [a.b] after [[a]] goes into the last element of a */
    }
    t = v;
  }
  *current = t;
  rc = 0;
done:
  key_free(&k);
  return rc;
}

/* ---------------------------------------------------------------- public */

int dy_toml_parse(const char *text, size_t len, DyTomlValue **root, char *err, size_t errlen) {
  Parser p = {.s = text, .len = len, .pos = 0, .line = 1, .err = err, .errlen = errlen, .failed = 0};
  if (errlen) err[0] = '\0';
  *root = NULL;
  if (!text && len) return fail(&p, 1, "no text");
  if (check_encoding(&p)) return -1;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) p.pos = 3; /* byte order mark */
  DyTomlValue *top = value_new(&p, DY_TOML_TABLE, 1, DEF_EXPLICIT);
  if (!top) return -1;
  DyTomlValue *current = top;
  for (;;) {
    skip_ws(&p);
    int c = at(&p, 0);
    if (c < 0) break;
    if (c == '[') {
      if (parse_header(&p, top, &current)) break;
    } else if (c != '#' && c != '\n' && c != '\r') {
      if (parse_keyval(&p, current, 0)) break;
    }
    skip_ws(&p);
    skip_comment(&p);
    if (at(&p, 0) < 0) break;
    if (!eat_newline(&p)) {
      fail(&p, p.line, "expected the end of the line, found '%c'", at(&p, 0) < 0x80 ? at(&p, 0) : '?');
      break;
    }
  }
  free(p.slots);
  if (p.failed) {
    dy_toml_free(top);
    return -1;
  }
  *root = top;
  return 0;
}

const DyTomlValue *dy_toml_get(const DyTomlValue *table, const char *key) {
  if (!table || !key || table->type != DY_TOML_TABLE) return NULL;
  long j = table_find(table, key, strlen(key));
  return j < 0 ? NULL : table->items[j];
}

int dy_toml_key_line(const DyTomlValue *table, const char *key) {
  if (!table || !key || table->type != DY_TOML_TABLE) return 0;
  long j = table_find(table, key, strlen(key));
  return j < 0 ? 0 : table->key_lines[j];
}

const char *dy_toml_type_name(DyTomlType t) {
  switch (t) {
  case DY_TOML_TABLE: return "table";
  case DY_TOML_ARRAY: return "array";
  case DY_TOML_STRING: return "string";
  case DY_TOML_INTEGER: return "integer";
  case DY_TOML_FLOAT: return "float";
  case DY_TOML_BOOL: return "bool";
  case DY_TOML_DATETIME: return "datetime";
  case DY_TOML_DATETIME_LOCAL: return "datetime-local";
  case DY_TOML_DATE_LOCAL: return "date-local";
  case DY_TOML_TIME_LOCAL: return "time-local";
  }
  return "unknown";
}
