/*
** frees.c -- a program whose frees must give memory back: it allocates,
** touches and frees 512 MiB in blocks of every size class, a few dozen
** live at a time, and fails if its peak resident set grows past 128 MiB.
**
** tests/override/run.py runs it under LD_PRELOAD=libhakmem-override.so, and
** with libhakmem.so preloaded before the override: then a call the override
** made through the PLT to hak_malloc would reach libhakmem.so's copy of the
** core, whose blocks the override's free does not recognise and drops;
** every byte allocated would stay resident.  The same happens in a program
** that exports the hak_* symbols itself (hklua, linked with -Wl,-E).
** Prints "frees: ok maxrss=N KiB" and exits 0 when memory stayed bounded.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { LIVE = 32 };                     /* blocks live at once */
#define TOTAL ((size_t)512 << 20)       /* bytes allocated in all */
#define MAXRSS_KIB ((long)128 << 10)    /* the bound on the peak */

int main(void) {
  void *live[LIVE] = {0};
  uint64_t x = 88172645463325252u; /* xorshift: sizes from 8 B to 1 MiB */
  size_t total = 0;
  for (unsigned i = 0; total < TOTAL; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t size = (size_t)8 << (x % 18);
    size += (x >> 8) % size;
    unsigned k = i % LIVE;
    free(live[k]);
    live[k] = malloc(size);
    if (!live[k]) return fprintf(stderr, "frees: malloc(%zu) failed\n", size), 1;
    memset(live[k], (int)i, size); /* resident, so a dropped free shows */
    total += size;
  }
  for (unsigned k = 0; k < LIVE; k++) free(live[k]);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  if (ru.ru_maxrss > MAXRSS_KIB) {
    fprintf(stderr, "frees: peak RSS %ld KiB after %zu MiB allocated with %d blocks live: "
            "frees did not give memory back\n", ru.ru_maxrss, total >> 20, LIVE);
    return 1;
  }
  printf("frees: ok maxrss=%ld KiB\n", ru.ru_maxrss);
  return 0;
}
