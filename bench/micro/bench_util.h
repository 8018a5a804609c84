/*
** bench_util.h -- what every micro-benchmark shares: a seeded PRNG, a
** monotonic clock, the peak RSS, harness memory that bypasses malloc, and
** the one JSON line each run prints.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAKMEM
#define BENCH_API "hakmem"
#else
#define BENCH_API "malloc"
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

#endif /* BENCH_UTIL_H */
