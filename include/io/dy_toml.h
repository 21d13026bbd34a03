/* A TOML 1.0 reader. Plain C: no MPI, no PETSc; errors come back as text with the line.
 *
 * The document is a tree of DyTomlValue. Tables keep their keys in document order; every value
 * remembers the line where it was defined, so the schema layer can name file:line. Date-times are
 * recognised and validated, and kept as their text. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
  DY_TOML_TABLE,
  DY_TOML_ARRAY,
  DY_TOML_STRING,
  DY_TOML_INTEGER,
  DY_TOML_FLOAT,
  DY_TOML_BOOL,
  DY_TOML_DATETIME,       /* offset date-time, e.g. 1979-05-27T07:32:00Z */
  DY_TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
  DY_TOML_DATE_LOCAL,     /* 1979-05-27 */
  DY_TOML_TIME_LOCAL      /* 07:32:00 */
} DyTomlType;

typedef struct DyTomlValue DyTomlValue;
struct DyTomlValue {
  DyTomlType type;
  int line;            /* 1-based line where the value starts (tables: their header or first key) */
  char *str;           /* STRING: the decoded UTF-8 text, NUL-terminated (a \u0000 escape can put
                          a NUL inside: len is authoritative); date-time kinds: the text as
                          written (e.g. "1979-05-27 07:32:00z": separator and case kept) */
  size_t len;          /* STRING: byte length of str */
  int64_t integer;     /* INTEGER */
  double real;         /* FLOAT (inf and nan included) */
  int boolean;         /* BOOL: 0 or 1 */
  size_t n;            /* TABLE: number of keys; ARRAY: number of items */
  char **keys;         /* TABLE: (n) keys in document order, decoded, NUL-terminated */
  size_t *key_lens;    /* TABLE: (n) byte length of each key (a quoted key may hold a NUL) */
  int *key_lines;      /* TABLE: (n) line of each key's definition */
  DyTomlValue **items; /* TABLE: (n) values by key; ARRAY: (n) items */
  size_t cap;          /* parser bookkeeping: allocated slots of keys/items */
  unsigned flags;      /* parser bookkeeping: how the table or array was defined */
};

/* Parses text (len bytes; it need not be NUL-terminated). On success returns 0 and *root is the
 * root table (free with dy_toml_free). On error returns non-zero, *root is NULL, and err holds
 * "line N: what is wrong" (at most errlen bytes, NUL-terminated; err may be NULL if errlen is 0).
 * Never crashes on bad input. Beyond TOML 1.0 itself: integers outside int64 and floats that
 * overflow a double are errors (never clamped); values may nest at most 256 deep and a dotted key
 * have at most 256 parts. A leading UTF-8 byte order mark is skipped. */
int dy_toml_parse(const char *text, size_t len, DyTomlValue **root, char *err, size_t errlen);
void dy_toml_free(DyTomlValue *v);
/* The value of key in a table, or NULL (also when table is NULL or not a table). */
const DyTomlValue *dy_toml_get(const DyTomlValue *table, const char *key);
/* Line of key's definition in table, or 0. For a table defined by a [header] after being
 * created implicitly (e.g. by [a.b] before [a]), the line of its own header. */
int dy_toml_key_line(const DyTomlValue *table, const char *key);
/* "table", "array", "string", "integer", "float", "bool", "datetime", ... */
const char *dy_toml_type_name(DyTomlType t);
