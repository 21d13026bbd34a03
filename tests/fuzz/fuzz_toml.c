/* libFuzzer entry for the TOML reader: any bytes must parse or be refused with a "line N: ..."
 * message, never crash, read out of bounds or leak; an accepted document's tree must be whole. */
#include "io/dy_toml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Walks the tree, touching every key and string byte (so ASan sees a short buffer). */
static size_t walk(const DyTomlValue *v, int depth) {
  size_t sum = (size_t)v->line;
  if (depth > 300) abort(); /* deeper than the documented limit */
  if (v->type == DY_TOML_TABLE || v->type == DY_TOML_ARRAY)
    for (size_t i = 0; i < v->n; i++) {
      if (v->type == DY_TOML_TABLE) {
        for (size_t c = 0; c < v->key_lens[i]; c++)
          sum += (unsigned char)v->keys[i][c];
        if (v->keys[i][v->key_lens[i]] != '\0') abort();
      }
      sum += walk(v->items[i], depth + 1);
    }
  else if (v->type == DY_TOML_STRING) {
    for (size_t c = 0; c < v->len; c++)
      sum += (unsigned char)v->str[c];
    if (v->str[v->len] != '\0') abort();
  } else if (v->type >= DY_TOML_DATETIME)
    sum += strlen(v->str);
  return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a copy of exactly size bytes, without a terminating NUL: the reader must not look past it */
  char *text = malloc(size ? size : 1), err[256];
  DyTomlValue *root = NULL;

  if (!text) return 0;
  memcpy(text, data, size);
  if (dy_toml_parse(text, size, &root, err, sizeof err) == 0) {
    if (!root || root->type != DY_TOML_TABLE) abort();
    volatile size_t sink = walk(root, 0);
    (void)sink;
    dy_toml_free(root);
  } else {
    if (root || strncmp(err, "line ", 5) != 0 || strlen(err) >= sizeof err) abort();
  }
  free(text);
  return 0;
}
