/* Run control: stop requests from signals, and the lock that keeps two runs out of one folder. */
#pragma once
#include "base/dy_common.h"

/* Installs handlers for SIGUSR1 and SIGTERM that only set a flag (async-signal-safe). Called at
 * startup, before the data are read, so that a stop requested at any time is a request and never
 * the signal's default (the end of the process). */
PetscErrorCode dy_signal_install(void);
/* Collective: DY_ERR_STOPPED when any rank has caught a stop signal, else nothing. For the time
 * before training starts, when there is nothing to save: the message says that nothing was written. */
PetscErrorCode dy_signal_check_before_training(MPI_Comm comm);
/* The signal received so far on this rank (0 when none). */
int dy_signal_pending(void);
/* For tests: as if the signal had arrived. */
void dy_signal_raise_flag(int signo);

/* An advisory lock on dir/.dynae-mpi.lock, held by rank 0 for the life of the run. The lock is a
 * POSIX record lock, which the operating system drops when the process dies, so a lock left by a
 * killed run never blocks a restart; the file also records host, pid and start time for the message
 * shown to a second run. Collective; dir must exist. A folder in use by a live run is a
 * DY_ERR_INPUT error.
 * A killed job's ranks can outlive its mpirun for a moment (Open MPI gives each rank a process
 * group of its own), holding the lock: with wait > 0 (a --restart), a lock held by a run on this
 * host is waited for up to wait seconds, announced on stdout, before it is refused. A stop signal
 * during the wait ends it with DY_ERR_STOPPED, nothing written. */
#define DY_RUNLOCK_WAIT 30.0 /* seconds a --restart waits for a lock held on its own host */
typedef struct {
  int fd;  /* open lock file on rank 0, -1 elsewhere */
} DyRunLock;
PetscErrorCode dy_runlock_acquire(MPI_Comm comm, const char *dir, double wait, DyRunLock *lock);
PetscErrorCode dy_runlock_release(DyRunLock *lock);
