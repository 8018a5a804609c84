/*
** helpers.c -- random numbers, block patterns and small facts shared by the
** core's Criterion tests (see helpers.h).
*/
#include "helpers.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* =========================================================================
** Random numbers
** ====================================================================== */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void hkt_rng_init(hkt_rng_t *rng, uint64_t seed) {
  rng->state = splitmix64(&seed);
  if (rng->state == 0) rng->state = 1;
}

uint64_t hkt_rng_next(hkt_rng_t *rng) {
  uint64_t x = rng->state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng->state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

size_t hkt_rng_range(hkt_rng_t *rng, size_t lo, size_t hi) {
  uint64_t span = (uint64_t)(hi - lo) + 1;
  if (span == 0) return (size_t)hkt_rng_next(rng); /* the whole range */
  return lo + (size_t)(hkt_rng_next(rng) % span);
}

size_t hkt_rng_log(hkt_rng_t *rng, size_t lo, size_t hi) {
  double u = (double)(hkt_rng_next(rng) >> 11) / (double)(1ull << 53);
  double v = exp(log((double)lo) + u * (log((double)hi) - log((double)lo)));
  size_t n = (size_t)v;
  return n < lo ? lo : n > hi ? hi : n;
}

/*
** Per million draws: 600 000 of 1..128 B, 370 000 of 129..1024 B, 29 700
** medium, 280 large, 20 huge (up to 8 MiB).  The mean is near 600 B, so a
** few million operations fill and check a few GB in all.
*/
size_t hkt_rng_size(hkt_rng_t *rng) {
  uint64_t r = hkt_rng_next(rng) % 1000000;
  if (r < 600000) return hkt_rng_range(rng, 1, 128);
  if (r < 970000) return hkt_rng_range(rng, 129, HKT_SMALL_MAX);
  if (r < 999700) return hkt_rng_log(rng, HKT_SMALL_MAX + 1, HKT_MEDIUM_MAX);
  if (r < 999980) return hkt_rng_log(rng, HKT_MEDIUM_MAX + 1, HKT_LARGE_MAX);
  return hkt_rng_log(rng, HKT_LARGE_MAX + 1, 8 * HKT_MiB);
}

/* =========================================================================
** Block patterns
** ====================================================================== */

uint64_t hkt_seed(const void *p, size_t size) {
  uint64_t x = (uint64_t)(uintptr_t)p ^ ((uint64_t)size << 40) ^ size;
  return splitmix64(&x);
}

/*
** Word i of the pattern is seed + i * odd constant, written byte by byte
** through memcpy so any block alignment is fine.  The byte at offset k is
** the same whatever the block's length, so a prefix of a pattern is the
** pattern of the prefix (what realloc must keep).
*/
static inline uint64_t pattern_word(uint64_t seed, size_t i) {
  return seed + (uint64_t)i * 0xD6E8FEB86659FD93ull;
}

void hkt_fill(void *p, size_t len, uint64_t seed) {
  unsigned char *b = p;
  size_t words = len / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t w = pattern_word(seed, i);
    memcpy(b + i * 8, &w, 8);
  }
  if (len % 8) {
    uint64_t w = pattern_word(seed, words);
    memcpy(b + words * 8, &w, len % 8);
  }
}

size_t hkt_check(const void *p, size_t len, uint64_t seed) {
  const unsigned char *b = p;
  size_t words = len / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t w = pattern_word(seed, i), got;
    memcpy(&got, b + i * 8, 8);
    if (got != w) {
      for (size_t k = 0; k < 8; k++)
        if (((const unsigned char *)&got)[k] != ((const unsigned char *)&w)[k])
          return i * 8 + k;
    }
  }
  if (len % 8) {
    uint64_t w = pattern_word(seed, words);
    const unsigned char *wb = (const unsigned char *)&w;
    for (size_t k = 0; k < len % 8; k++)
      if (b[words * 8 + k] != wb[k]) return words * 8 + k;
  }
  return len;
}

size_t hkt_check_byte(const void *p, size_t len, unsigned char value) {
  const unsigned char *b = p;
  for (size_t k = 0; k < len; k++)
    if (b[k] != value) return k;
  return len;
}

/* =========================================================================
** Small facts
** ====================================================================== */

size_t hkt_small_class(size_t n, size_t granule) {
  size_t cls;
  if (n == 0) n = 1;
  if (n <= 128) {
    cls = hkt_round_up(n, 8);
  } else {
    /* 8 classes per doubling: in (2^k, 2^(k+1)] the step is 2^k / 8. */
    size_t base = 128;
    while (base * 2 < n) base *= 2;
    cls = hkt_round_up(n, base / 8);
  }
  return hkt_round_up(cls, granule);
}

size_t hkt_committed(void) {
  hak_stats_t st;
  hak_stats_get(&st);
  return st.committed;
}

size_t hkt_resident_pages(const void *p, size_t n) {
  const uintptr_t page = 4096;
  uintptr_t a = (uintptr_t)p & ~(page - 1);
  size_t pages = ((uintptr_t)p + n - a + page - 1) / page, count = 0;
  unsigned char *v = malloc(pages);
  if (v == NULL || mincore((void *)a, pages * page, v) != 0) {
    free(v);
    return SIZE_MAX;
  }
  for (size_t i = 0; i < pages; i++) count += v[i] & 1;
  free(v);
  return count;
}

void hkt_run_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) abort();
  pthread_join(t, NULL);
}

/* =========================================================================
** Programs that must stop
** ====================================================================== */

bool hkt_run_child(void (*bad)(void *), void *arg, char *out, size_t outlen) {
  int fd[2];
  if (pipe(fd) != 0) abort();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    dup2(fd[1], STDERR_FILENO);
    close(fd[0]);
    bad(arg);
    _exit(0); /* not stopped */
  }
  close(fd[1]);
  size_t len = 0;
  ssize_t got;
  while (len + 1 < outlen && (got = read(fd[0], out + len, outlen - 1 - len)) > 0)
    len += (size_t)got;
  out[len] = '\0';
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

bool hkt_names_pointer(const char *text, const void *p) {
  char hex[32];
  snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)p);
  size_t n = strlen(hex);
  for (const char *t = text; *t; t++) {
    size_t k = 0;
    while (k < n && t[k] && tolower((unsigned char)t[k]) == hex[k]) k++;
    if (k == n) return true;
  }
  return false;
}

bool hkt_mentions(const char *text, const char *word) {
  size_t n = strlen(word);
  for (const char *t = text; *t; t++)
    if (strncasecmp(t, word, n) == 0) return true;
  return false;
}
