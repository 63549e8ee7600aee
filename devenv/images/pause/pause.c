/*
 * The pod sandbox's one process: it holds the pod's namespaces open and does nothing else.
 * As PID 1 of the sandbox it must reap the zombies of processes that were reparented to it,
 * and it must exit when the runtime stops the sandbox with SIGINT or SIGTERM (PID 1 has no
 * default action for them, so without handlers it would have to be SIGKILLed).
 * Built with `gcc -static`, so the image needs nothing but this file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int handle(int sig, void (*fn)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    puts("kubenova-pause");
    return 0;
  }
  if (getpid() != 1) fputs("kubenova-pause: warning: not running as PID 1\n", stderr);
  if (handle(SIGINT, on_stop, 0) || handle(SIGTERM, on_stop, 0) ||
      handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART)) {
    perror("kubenova-pause: sigaction");
    return 1;
  }
  for (;;) pause();
}
