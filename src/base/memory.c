/* Aligned workspace memory (see dy_common.h). */
#include "base/dy_common.h"

#include <stdlib.h>
#include <string.h>

void *dy_aligned_zalloc(size_t bytes)
{
  const size_t n = bytes ? (bytes + 63) & ~(size_t)63 : 64;
  void *p = aligned_alloc(64, n);
  if (p) memset(p, 0, n);
  return p;
}
