/* Run control: stop requests from signals, and the lock that keeps two runs out of one folder. */
#pragma once
#include "base/dy_common.h"

/* Installs handlers for SIGUSR1 and SIGTERM that only set a flag (async-signal-safe). */
PetscErrorCode dy_signal_install(void);
/* The signal received so far on this rank (0 when none). */
int dy_signal_pending(void);
/* For tests: as if the signal had arrived. */
void dy_signal_raise_flag(int signo);

/* An advisory lock on dir/.dynae-mpi.lock, held by rank 0 for the life of the run. The lock is a
 * POSIX record lock, which the operating system drops when the process dies, so a lock left by a
 * killed run never blocks a restart; the file also records host, pid and start time for the message
 * shown to a second run. Collective; dir must exist. A folder in use by a live run is a
 * DY_ERR_INPUT error. */
typedef struct {
  int fd;  /* open lock file on rank 0, -1 elsewhere */
} DyRunLock;
PetscErrorCode dy_runlock_acquire(MPI_Comm comm, const char *dir, DyRunLock *lock);
PetscErrorCode dy_runlock_release(DyRunLock *lock);
