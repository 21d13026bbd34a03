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

PetscErrorCode dy_runlock_acquire(MPI_Comm comm, const char *dir, DyRunLock *lock)
{
  char path[4200], holder[512] = "", msg[4800] = "";
  int rank, busy = 0;
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
        lock->fd = fd;
      } else if (errno == EACCES || errno == EAGAIN) {
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        busy = 1;
        snprintf(msg, sizeof msg,
                 "the output folder %s is in use by a running dynae-mpi (%s); wait for it to finish, stop it, or choose "
                 "another output.dir",
                 dir, holder[0] ? holder : "lock file " ".dynae-mpi.lock");
        close(fd);
      } else {
        /* File systems without record locks: proceed, but say that nothing protects the folder. */
        fprintf(stderr, "dynae-mpi: warning: cannot lock %s (%s); make sure no other run uses this folder\n", path,
                strerror(errno));
        lock->fd = fd;
      }
    }
  }
  PetscCallMPI(MPI_Bcast(&busy, 1, MPI_INT, 0, comm));
  if (busy) {
    PetscCallMPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (busy == 1) PetscCall(dy_input_error(comm, "%s", msg));
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
