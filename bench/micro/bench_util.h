/*
** bench_util.h -- what every benchmark program (bench/micro, bench/threads)
** shares: the allocator under test, a seeded PRNG, a monotonic clock, the
** peak RSS, harness memory that bypasses malloc, and option parsing.
**
** Each benchmark is compiled twice: plain (it calls malloc/realloc/free, so a
** peer allocator comes in through LD_PRELOAD) and with -DBENCH_HAKMEM (it
** calls hakmem's API).  Whatever the harness itself needs comes from mmap,
** never from malloc, so that its memory is the same under every allocator
** and only the benchmarked calls reach the allocator being measured.
*/
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/*
** The allocator under test: BENCH_API names it in the JSON line;
** BENCH_MALLOC and BENCH_FREE are the general calls, BENCH_FREE_SIZED the
** free that knows the block's size (hakmem's sized free; plain free
** ignores the size).  A benchmark that needs other calls (lua_trace's
** 8-byte-aligned heap API) defines them itself.
*/
#ifdef BENCH_HAKMEM
#include "../../hakmem/hakmem.h"
#define BENCH_API "hakmem"
#define BENCH_MALLOC(n) hak_malloc(n)
#define BENCH_FREE(p) hak_free(p)
#define BENCH_FREE_SIZED(p, n) hak_free_sized((p), (n))
#else
#define BENCH_API "malloc"
#define BENCH_MALLOC(n) malloc(n)
#define BENCH_FREE(p) free(p)
#define BENCH_FREE_SIZED(p, n) ((void)(n), free(p))
#endif

/* ---------------------------------------------------------------------
** PRNG: splitmix64 seeds xoshiro256**, which is fast, has no bias worth
** measuring here, and gives the same sequence for a seed on every run.
** ------------------------------------------------------------------- */
typedef struct bench_rng_s {
  uint64_t s[4];
} bench_rng_t;

static inline uint64_t bench_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline void bench_rng_seed(bench_rng_t *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = bench_splitmix(&seed);
}

static inline uint64_t bench_rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static inline uint64_t bench_rng_next(bench_rng_t *r) {
  uint64_t *s = r->s;
  uint64_t result = bench_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = bench_rotl(s[3], 45);
  return result;
}

/*
** A uniform integer in [0, n) for n < 2^32, by multiply and shift (Lemire):
** no division in the loop, and the bias for the small n used here is
** below 2^-32.
*/
static inline uint32_t bench_rng_below(bench_rng_t *r, uint32_t n) {
  return (uint32_t)(((bench_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* True with probability num/den. */
static inline int bench_rng_chance(bench_rng_t *r, uint32_t num, uint32_t den) {
  return bench_rng_below(r, den) < num;
}

/* ---------------------------------------------------------------------
** Clock and memory figures.
** ------------------------------------------------------------------- */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
** The wall time of a run of worker threads: from the earliest start to the
** latest end, each taken by the thread itself (after the start barrier,
** after its last free).  Not the main thread's clock: a main thread that
** is not scheduled right after the barrier (a real-time policy, fewer CPUs
** than threads) would start its clock late, or after the workers finished.
** `workers` is an array of `n` structs of `size` bytes; t0_off and t1_off
** the offsets of their double start and end fields.
*/
static inline double bench_span(const void *workers, unsigned long long n, size_t size,
                                size_t t0_off, size_t t1_off) {
  double first = 0, last = 0;
  for (unsigned long long i = 0; i < n; i++) {
    const char *w = (const char *)workers + i * size;
    double t0, t1;
    memcpy(&t0, w + t0_off, sizeof t0);
    memcpy(&t1, w + t1_off, sizeof t1);
    if (i == 0 || t0 < first) first = t0;
    if (i == 0 || t1 > last) last = t1;
  }
  return last - first;
}

/*
** Peak resident set of this program in KiB.  getrusage's ru_maxrss is not
** it: Linux keeps the high-water mark of the image that called execve, so a
** child of a 15 MiB Python runner reports at least 15 MiB.  VmHWM in
** /proc/self/status belongs to the current address space only; ru_maxrss
** is the fallback where /proc is missing.
*/
static inline long bench_peak_rss_kb(void) {
  char buf[4096]; /* read(2), not stdio: no allocation to measure */
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
      buf[n] = '\0';
      const char *hwm = strstr(buf, "VmHWM:");
      if (hwm != NULL) return strtol(hwm + 6, NULL, 10);
    }
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss;
}

/* The process's system time so far, every thread's, in seconds. */
static inline double bench_sys_secs(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/*
** Harness memory: an anonymous mapping, touched only where it is used, so
** an oversized reservation costs address space and nothing else.
*/
static inline void *bench_map(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    fprintf(stderr, "bench: mmap of %zu bytes failed: %s\n", bytes,
            strerror(errno));
    exit(2);
  }
  return p;
}

static inline void bench_die(const char *bench, const char *msg,
                             unsigned long long a, unsigned long long b) {
  fprintf(stderr, "%s: FAILED: %s (%llu, %llu)\n", bench, msg, a, b);
  exit(1);
}

/*
** Starts n threads into tid[0..n): thread t runs fn(base + t * stride), so
** that each gets its own element of an array of per-thread states.
*/
static inline void bench_threads_start(const char *bench, pthread_t *tid, unsigned long long n,
                                       void *(*fn)(void *), void *base, size_t stride) {
  for (unsigned long long t = 0; t < n; t++)
    if (pthread_create(&tid[t], NULL, fn, (char *)base + t * stride) != 0)
      bench_die(bench, "pthread_create failed", t, 0);
}

/* ---------------------------------------------------------------------
** Argument parsing: "--name=value" options with unsigned values.
** ------------------------------------------------------------------- */
static inline int bench_opt(const char *arg, const char *name,
                            unsigned long long *out) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || arg[n] != '=') return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg + n + 1, &end, 0);
  if (errno != 0 || *end != '\0' || end == arg + n + 1) {
    fprintf(stderr, "bad value in %s\n", arg);
    exit(2);
  }
  *out = v;
  return 1;
}

/*
** One option of a benchmark: "--name=VALUE" stores into *value.  A table
** of them ends with a NULL name; `meta` is what the usage line shows for
** the value ("N", "T", "0|1").
*/
typedef struct bench_option_s {
  const char *name;
  const char *meta;
  unsigned long long *value;
} bench_option_t;

/*
** Reads every argument against `opts`.  Anything else prints the usage
** line, built from the table ("usage: PROG [--name=META] ..."), and
** exits with status 2; so does a bad value (bench_opt).
*/
static inline void bench_parse_options(int argc, char **argv,
                                       const bench_option_t *opts) {
  for (int i = 1; i < argc; i++) {
    const bench_option_t *o = opts;
    while (o->name != NULL && !bench_opt(argv[i], o->name, o->value)) o++;
    if (o->name != NULL) continue;
    fprintf(stderr, "usage: %s", argv[0]);
    for (o = opts; o->name != NULL; o++)
      fprintf(stderr, " [%s=%s]", o->name, o->meta);
    fprintf(stderr, "\n");
    exit(2);
  }
}

#endif /* BENCH_UTIL_H */
