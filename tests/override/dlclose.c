/*
** dlclose.c -- a program that loads libhakmem.so with dlopen, allocates in
** a thread, closes the library while that thread still runs, and then lets
** threads exit.  hakmem registers a thread-exit destructor on a thread's
** first allocation; had dlclose unmapped the library, that thread's exit
** would call into unmapped code (a crash).  The library is linked with
** -z nodelete, so it stays, and with it every block still live.
**
**     tests/override/dlclose [path/to/libhakmem.so]
**
** Without an argument it loads the libhakmem.so of its own build directory
** (two levels above the program).  Exits 0 and prints "dlclose: ok" when
** every thread exited normally and the blocks stayed usable.
*/
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);

static malloc_fn lib_malloc;
static free_fn lib_free;

/* The thread that allocates, then waits until the library is closed. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated, closed;
static unsigned char *kept; /* a block that outlives the dlclose */

static void *holder(void *arg) {
  (void)arg;
  void *blocks[100];
  for (int i = 0; i < 100; i++) blocks[i] = lib_malloc(16 + (size_t)i * 40);
  for (int i = 0; i < 100; i += 2) lib_free(blocks[i]);
  kept = blocks[1];
  memset(kept, 0xA5, 56);
  pthread_mutex_lock(&lock);
  allocated = 1;
  pthread_cond_broadcast(&cond);
  while (!closed) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL; /* the exit runs hakmem's destructor for this thread */
}

/* Threads started after the dlclose: plain ones, and ones that allocate. */
static void *plain(void *arg) { return arg; }

static void *allocator(void *arg) {
  (void)arg;
  void *p = lib_malloc(1000);
  if (p) memset(p, 1, 1000);
  lib_free(p);
  return p ? "ok" : NULL;
}

/* Runs fn in a thread of its own; its result, or NULL if it could not run. */
static void *run_thread(void *(*fn)(void *)) {
  pthread_t t;
  void *result = NULL;
  if (pthread_create(&t, NULL, fn, "ok") != 0 || pthread_join(t, &result) != 0) return NULL;
  return result;
}

static void *open_lib(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlclose: dlopen(%s): %s\n", path, dlerror());
    exit(1);
  }
  lib_malloc = (malloc_fn)(void (*)(void))dlsym(h, "hak_malloc");
  lib_free = (free_fn)(void (*)(void))dlsym(h, "hak_free");
  if (!lib_malloc || !lib_free) {
    fprintf(stderr, "dlclose: %s has no hak_malloc/hak_free\n", path);
    exit(1);
  }
  return h;
}

int main(int argc, char **argv) {
  char path[PATH_MAX];
  if (argc > 1) {
    snprintf(path, sizeof path, "%s", argv[1]);
  } else {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) return perror("readlink /proc/self/exe"), 1;
    path[n] = '\0';
    for (int up = 0; up < 3; up++) *strrchr(path, '/') = '\0'; /* builddir/tests/override/x */
    strcat(path, "/libhakmem.so");
  }

  void *h = open_lib(path);
  pthread_t t;
  if (pthread_create(&t, NULL, holder, NULL) != 0) return perror("pthread_create"), 1;
  pthread_mutex_lock(&lock);
  while (!allocated) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);

  if (dlclose(h) != 0) return fprintf(stderr, "dlclose: dlclose: %s\n", dlerror()), 1;
  pthread_mutex_lock(&lock);
  closed = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  pthread_join(t, NULL); /* crashed here when dlclose had unmapped hakmem */

  for (int i = 0; i < 8; i++)
    if (!run_thread(plain)) return fprintf(stderr, "dlclose: a thread failed\n"), 1;
  for (size_t i = 0; i < 56; i++)
    if (kept[i] != 0xA5) return fprintf(stderr, "dlclose: a live block changed\n"), 1;

  /* Loaded again, it is the same library, still working, block included. */
  h = open_lib(path);
  for (int i = 0; i < 8; i++)
    if (!run_thread(allocator)) return fprintf(stderr, "dlclose: allocation after reopening failed\n"), 1;
  lib_free(kept);
  dlclose(h);
  for (int i = 0; i < 4; i++)
    if (!run_thread(plain)) return fprintf(stderr, "dlclose: a thread failed\n"), 1;
  printf("dlclose: ok\n");
  return 0;
}
