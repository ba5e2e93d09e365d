/*
 * The test node's pause container: holds a pod's namespaces and does nothing else. It blocks until SIGTERM or
 * SIGINT, then exits 0; as PID 1 of a pod that shares its PID namespace, it reaps every child that exits
 * (SIGCHLD), so no zombie is left behind. Built static (testenv/pause/image.ts), so its image needs no libc.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig) {
  (void)sig;
  stop = 1;
}

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(void) {
  sigset_t handled, waiting;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGCHLD);
  /* Blocked outside sigsuspend, so a signal arriving between the check of `stop` and the wait is not lost. */
  sigprocmask(SIG_BLOCK, &handled, &waiting);

  struct sigaction sa = {0};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);

  sigdelset(&waiting, SIGTERM);
  sigdelset(&waiting, SIGINT);
  sigdelset(&waiting, SIGCHLD);
  while (!stop) sigsuspend(&waiting);
  return 0;
}
