/*
** forker.c -- fork in a loop while other threads allocate; run by
** tests/override/run.py with LD_PRELOAD=libhakmem-override.so.
**
** fork copies only the calling thread.  If another thread held one of the
** allocator's locks at that moment, the child would inherit it locked and
** its first allocation that needs the lock would hang; if the allocator's
** state was half-updated, the child would crash.  So: worker threads
** allocate and free without pause (some of it through a shared array, so
** remote frees are in flight too), the main thread forks again and again,
** and each child allocates, frees, starts a thread of its own, and exits 0.
** A child that does not exit within CHILD_TIMEOUT seconds is a hang: it is
** killed and counted as a failure.
**
** Output: "forker: ok forks=N hakmem=yes|no" and exit status 0, or the
** failures on stderr and exit status 1.
** Usage: forker [forks]
*/
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define TRANSFER 256
#define CHILD_TIMEOUT 20

static atomic_bool stop;
static _Atomic(void *) transfer[TRANSFER];
static bool (*owns)(const void *); /* hak_owns, when hakmem is preloaded */

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A block whose bytes all equal the low byte of its size. */
static void *make(size_t n) {
  unsigned char *p = malloc(n);
  if (p) memset(p, (int)(n & 0xff), n);
  return p;
}

static bool intact(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(n & 0xff)) return false;
  return true;
}

/* Sizes are kept in the transfer array's blocks: word 0. */
static void *make_sized(size_t n) {
  unsigned char *p = make(n);
  if (p) memcpy(p, &n, sizeof n);
  return p;
}

static void *worker(void *arg) {
  uint64_t s = (uintptr_t)arg * 2654435761u + 1;
  void *mine[64] = {0};
  size_t size[64] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t r = rng_next(&s);
    unsigned k = (unsigned)(r % 64);
    size_t n = 16 + (size_t)((r >> 8) % ((r & (63u << 20)) ? 2000 : 200000));
    if (mine[k]) {
      if (!intact(mine[k], size[k])) {
        fprintf(stderr, "forker: a worker's block changed\n");
        abort();
      }
      free(mine[k]);
    }
    mine[k] = make(n);
    size[k] = n;
    if ((r & 7) == 0) /* a block for someone else to free */
      free(atomic_exchange(&transfer[(r >> 32) % TRANSFER], make_sized(16 + (r >> 40) % 512)));
  }
  for (unsigned k = 0; k < 64; k++) free(mine[k]);
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = make(24 + (size_t)i * 40);
  for (int i = 0; i < 100; i++) free(p[i]);
  return make(100); /* freed by the child's main thread */
}

/* The child: its allocator must work after the fork, threads included. */
static int child(unsigned seed) {
  uint64_t s = seed + 1;
  void *p[256];
  size_t size[256];
  for (int i = 0; i < 256; i++) {
    size[i] = 16 + (size_t)(rng_next(&s) % ((i % 64 == 0) ? 300000 : 4000));
    p[i] = make(size[i]);
    if (!p[i]) return 3;
    if (owns && !owns(p[i])) return 4;
  }
  for (int i = 0; i < 256; i += 2) {
    void *q = realloc(p[i], size[i] * 2);
    if (!q) return 3;
    if (!intact(q, size[i])) return 5;
    memset(q, (int)((size[i] * 2) & 0xff), size[i] * 2);
    p[i] = q;
    size[i] *= 2;
  }
  pthread_t t;
  void *from_thread = NULL;
  if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 6;
  pthread_join(t, &from_thread);
  if (!from_thread || !intact(from_thread, 100)) return 7;
  free(from_thread);
  for (int i = 0; i < 256; i++) {
    if (!intact(p[i], size[i])) return 5;
    free(p[i]);
  }
  return 0;
}

/* Waits for the child; kills it after CHILD_TIMEOUT seconds. */
static int wait_child(pid_t pid) {
  struct timespec nap = {0, 1000000};
  for (long waited = 0; waited < CHILD_TIMEOUT * 1000L; waited++) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    if (r < 0) return -1;
    nanosleep(&nap, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -2;
}

int main(int argc, char **argv) {
  unsigned forks = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
  *(void **)&owns = dlsym(RTLD_DEFAULT, "hak_owns"); /* POSIX's way to a function */
  pthread_t tid[WORKERS];
  for (uintptr_t i = 0; i < WORKERS; i++)
    if (pthread_create(&tid[i], NULL, worker, (void *)(i + 1)) != 0) return 1;

  unsigned failed = 0;
  for (unsigned f = 0; f < forks; f++) {
    void *mine = make(64 + f); /* the parent allocates between forks too */
    pid_t pid = fork();
    if (pid < 0) {
      perror("forker: fork");
      failed++;
      break;
    }
    if (pid == 0) {
      int rc = child(f);
      /* exit, not _exit: the allocator's exit-time work runs too */
      exit(rc);
    }
    int rc = wait_child(pid);
    if (rc != 0) {
      if (failed < 10 && rc == -2)
        fprintf(stderr, "forker: child %u hung: killed after %d s\n", f, CHILD_TIMEOUT);
      else if (failed < 10)
        fprintf(stderr, "forker: child %u failed with status %d\n", f, rc);
      failed++;
    }
    if (!intact(mine, 64 + f)) failed++;
    free(mine);
  }
  atomic_store(&stop, true);
  for (int i = 0; i < WORKERS; i++) pthread_join(tid[i], NULL);
  for (int t = 0; t < TRANSFER; t++) free(atomic_exchange(&transfer[t], NULL));
  if (failed) {
    fprintf(stderr, "forker: %u of %u forks failed\n", failed, forks);
    return 1;
  }
  printf("forker: ok forks=%u hakmem=%s\n", forks, owns ? "yes" : "no");
  return 0;
}
