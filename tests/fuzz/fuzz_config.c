/* libFuzzer entry for the input-file schema (dy_config_load): the bytes up to the first NUL are the
 * input file, each line after it one --set argument. Any input must load or be refused as the
 * user's mistake (DY_ERR_INPUT), never crash, read out of bounds or leak. PETSc runs on one process
 * (PETSC_COMM_SELF); its error messages are silenced. */
#include "io/dy_config.h"

#include <sanitizer/lsan_interface.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], path[256]; /* the input file, in a folder of its own */

static void remove_input(void) {
  unlink(path);
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* what Open MPI allocates when it starts, and when a communicator's collectives are first used,
   * it keeps for good: not counted as leaks */
  __lsan_disable();
  setenv("OMPI_MCA_opal_signal", "", 1); /* libFuzzer, not Open MPI, reports a crash */
  if (PetscInitializeNoArguments()) abort();
  if (PetscPushErrorHandler(PetscReturnErrorHandler, NULL)) abort();
  /* in memory where there is a tmpfs (a disk file rewritten each time is slow) */
  snprintf(dir, sizeof dir, "/dev/shm/dy-fuzz-config-XXXXXX");
  if (!mkdtemp(dir)) {
    snprintf(dir, sizeof dir, "/tmp/dy-fuzz-config-XXXXXX");
    if (!mkdtemp(dir)) abort();
  }
  snprintf(path, sizeof path, "%s/in.toml", dir);
  atexit(remove_input);
  static const char warm[] = "[data]\ninput = [\"x.h5:/p\"]\n";
  LLVMFuzzerTestOneInput((const uint8_t *)warm, sizeof warm - 1);
  LLVMFuzzerTestOneInput((const uint8_t *)"[", 1);
  __lsan_enable();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  const size_t nfile = nul ? (size_t)(nul - data) : size;
  char *sets_text = NULL, *sets[64];
  int nset = 0;
  FILE *fp = fopen(path, "wb");

  if (!fp || fwrite(data, 1, nfile, fp) != nfile || fclose(fp)) abort();
  if (nul) { /* the --set arguments, one a line (at most 64) */
    const size_t n = size - nfile - 1;
    if (!(sets_text = malloc(n + 1))) return 0;
    memcpy(sets_text, nul + 1, n);
    sets_text[n] = '\0';
    for (char *s = sets_text, *e; s && nset < 64; s = e ? e + 1 : NULL) {
      if ((e = strchr(s, '\n'))) *e = '\0';
      sets[nset++] = s;
    }
  }
  DyConfig cfg;
  PetscErrorCode ierr = dy_config_load(PETSC_COMM_SELF, path, nset, sets, &cfg);
  if (ierr == 0) {
    FILE *null = fopen("/dev/null", "w");
    if (!null || dy_config_print(PETSC_COMM_SELF, &cfg, null)) abort();
    fclose(null);
    dy_config_free(&cfg);
  } else if (ierr != DY_ERR_INPUT) { /* only the user's mistake may refuse an input */
    fprintf(stderr, "fuzz_config: dy_config_load failed with PETSc error %d, not DY_ERR_INPUT\n", (int)ierr);
    abort();
  }
  free(sets_text);
  return 0;
}
