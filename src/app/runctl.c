/* Run control: see dy_runctl.h. */
#include "app/dy_runctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t dy_signal_flag = 0;

static void dy_signal_handler(int signo) { dy_signal_flag = signo; }

PetscErrorCode dy_signal_install(void)
{
  struct sigaction sa;
  PetscFunctionBegin;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = dy_signal_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* interrupted system calls (I/O, MPI progress) resume */
  PetscCheck(sigaction(SIGUSR1, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0, PETSC_COMM_SELF, PETSC_ERR_SYS,
             "sigaction: %s", strerror(errno));
  PetscFunctionReturn(0);
}

int dy_signal_pending(void) { return (int)dy_signal_flag; }

void dy_signal_raise_flag(int signo) { dy_signal_flag = signo; }

PetscErrorCode dy_signal_check_before_training(MPI_Comm comm)
{
  int signo = dy_signal_pending();
  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &signo, 1, MPI_INT, MPI_MAX, comm));
  PetscCheck(!signo, comm, DY_ERR_STOPPED,
             "stopped by a signal before training started; nothing was written: run again (with --restart a run "
             "continues from its newest checkpoint, or starts from the beginning when there is none)");
  PetscFunctionReturn(0);
}

/* Rank 0: one attempt at the lock. Returns 0 when taken (the holder line written), 1 when another
 * process holds it (holder gets its line), -1 when the file system has no record locks. */
static int dy_runlock_try(int fd, char *holder, size_t len)
{
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd, F_SETLK, &fl) == 0) {
    char host[256] = "?", line[512], when[64] = "?";
    const time_t now = time(NULL);
    struct tm tm;
    gethostname(host, sizeof host - 1);
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    const int n = snprintf(line, sizeof line, "host %s, pid %ld, since %s\n", host, (long)getpid(), when);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n) fsync(fd);
    return 0;
  }
  if (errno != EACCES && errno != EAGAIN) return -1;
  ssize_t n = pread(fd, holder, len - 1, 0);
  holder[n > 0 ? n : 0] = 0;
  holder[strcspn(holder, "\n")] = 0;
  return 1;
}

/* 1 when the holder line ("host NAME, pid ...") names this host. */
static int dy_runlock_same_host(const char *holder)
{
  char host[256] = "", theirs[256] = "";
  gethostname(host, sizeof host - 1);
  return sscanf(holder, "host %255[^,]", theirs) == 1 && !strcmp(theirs, host);
}

PetscErrorCode dy_runlock_acquire(MPI_Comm comm, const char *dir, double wait, DyRunLock *lock)
{
  char path[4200], holder[512] = "", msg[4800] = "";
  int rank, busy = 0, done = 0;
  MPI_Request req;
  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  lock->fd = -1;
  snprintf(path, sizeof path, "%s/.dynae-mpi.lock", dir);
  if (rank == 0) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      busy = 2;
      snprintf(msg, sizeof msg, "cannot create the lock file %s: %s", path, strerror(errno));
    } else {
      const double start = MPI_Wtime();
      int got, waited = 0;
      /* Another process holds it: wait (polling, a tenth of a second apart) only when asked, for a
       * run on this host, while no stop signal has come. */
      while ((got = dy_runlock_try(fd, holder, sizeof holder)) == 1 && wait > 0 && dy_runlock_same_host(holder) &&
             MPI_Wtime() - start < wait && !dy_signal_pending()) {
        if (!waited) {
          printf("# output folder %s is locked by another run on this host (%s): waiting up to %.0f s for it to "
                 "end\n", dir, holder, wait);
          fflush(stdout);
        }
        waited = 1;
        usleep(100000);
      }
      if (got == 0) {
        lock->fd = fd;
        if (waited) {
          printf("# the lock was released after %.1f s\n", MPI_Wtime() - start);
          fflush(stdout);
        }
      } else if (got == 1) {
        busy = dy_signal_pending() ? 3 : 1;
        if (busy == 3)
          snprintf(msg, sizeof msg, "stopped by a signal while waiting for the output folder %s; nothing was written",
                   dir);
        else {
          char after[64] = "";
          if (waited) snprintf(after, sizeof after, "; still held after waiting %.0f s", wait);
          snprintf(msg, sizeof msg,
                   "the output folder %s is in use by a running dynae-mpi (%s%s); wait for it to finish, stop it, or "
                   "choose another output.dir", dir, holder[0] ? holder : "lock file " ".dynae-mpi.lock", after);
        }
        close(fd);
      } else {
        /* File systems without record locks: proceed, but say that nothing protects the folder. */
        fprintf(stderr, "dynae-mpi: warning: cannot lock %s (%s); make sure no other run uses this folder\n", path,
                strerror(errno));
        lock->fd = fd;
      }
    }
  }
  /* The other ranks wait for rank 0 without spinning a core each. */
  PetscCallMPI(MPI_Ibcast(&busy, 1, MPI_INT, 0, comm, &req));
  while (!done) {
    PetscCallMPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (!done) usleep(1000);
  }
  if (busy) {
    PetscCallMPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (busy == 1) PetscCall(dy_input_error(comm, "%s", msg));
    PetscCheck(busy != 3, comm, DY_ERR_STOPPED, "%s", msg);
    SETERRQ(comm, PETSC_ERR_FILE_OPEN, "%s", msg);
  }
  PetscFunctionReturn(0);
}

PetscErrorCode dy_runlock_release(DyRunLock *lock)
{
  PetscFunctionBegin;
  if (lock->fd >= 0) close(lock->fd); /* closing drops the record lock; the file stays, harmless */
  lock->fd = -1;
  PetscFunctionReturn(0);
}
