/* Reads TOML on stdin and prints it as the tagged JSON of the toml-test corpus; exits 1 with the
 * error on stderr if the input is invalid. */
#include "io/dy_toml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_json_string(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void put_leaf(const char *type, const char *text, size_t n) {
  printf("{\"type\": \"%s\", \"value\": ", type);
  put_json_string(text, n);
  putchar('}');
}

static void put_value(const DyTomlValue *v) {
  char num[64];
  switch (v->type) {
  case DY_TOML_TABLE:
    putchar('{');
    for (size_t i = 0; i < v->n; i++) {
      if (i) putchar(',');
      put_json_string(v->keys[i], v->key_lens[i]);
      putchar(':');
      put_value(v->items[i]);
    }
    putchar('}');
    break;
  case DY_TOML_ARRAY:
    putchar('[');
    for (size_t i = 0; i < v->n; i++) {
      if (i) putchar(',');
      put_value(v->items[i]);
    }
    putchar(']');
    break;
  case DY_TOML_STRING: put_leaf("string", v->str, v->len); break;
  case DY_TOML_INTEGER:
    snprintf(num, sizeof num, "%lld", (long long)v->integer);
    put_leaf("integer", num, strlen(num));
    break;
  case DY_TOML_FLOAT:
    if (isnan(v->real))
      snprintf(num, sizeof num, "nan");
    else if (isinf(v->real))
      snprintf(num, sizeof num, "%sinf", v->real < 0 ? "-" : "");
    else
      snprintf(num, sizeof num, "%.17g", v->real);
    put_leaf("float", num, strlen(num));
    break;
  case DY_TOML_BOOL: put_leaf("bool", v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
  default: put_leaf(dy_toml_type_name(v->type), v->str, v->len); break;
  }
}

int main(void) {
  size_t cap = 1 << 16, len = 0, got;
  char *text = malloc(cap);
  if (!text) return 2;
  while ((got = fread(text + len, 1, cap - len, stdin)) > 0) {
    len += got;
    if (len == cap) {
      char *more = realloc(text, cap *= 2);
      if (!more) return 2;
      text = more;
    }
  }
  DyTomlValue *root;
  char err[256];
  if (dy_toml_parse(text, len, &root, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    free(text);
    return 1;
  }
  put_value(root);
  putchar('\n');
  dy_toml_free(root);
  free(text);
  return 0;
}
