/*
** interface.c -- the rest of glibc's malloc interface under
** LD_PRELOAD=libhakmem-override.so (tests/override/run.py runs it):
** malloc_usable_size, malloc_trim, mallinfo2 and mallinfo, malloc_stats,
** __posix_memalign, reallocf, memalign and aligned_alloc with alignments
** that are not powers of two (rounded up, as glibc 2.36 does), and requests
** no machine can back (64 TiB: NULL and ENOMEM, nothing reserved).
** Prints "interface: ok hakmem=yes" and exits 0, or says what failed.
*/
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not in glibc: from the preload, by dlsym. */
static int (*posix_memalign_)(void **out, size_t align, size_t size);
static void *(*reallocf)(void *p, size_t size);

static int failures;

#define CHECK(cond, ...)                                             \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "interface: %s:%d: ", __FILE__, __LINE__);     \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, "\n");                                         \
      failures++;                                                    \
    }                                                                \
  } while (0)

#define MiB ((size_t)1 << 20)
static const size_t NEVER = (size_t)64 << 40; /* 64 TiB */

static bool (*owns)(const void *);

/* Bytes of address space the process holds, from /proc/self/statm. */
static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
  }
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void test_usable_size(void) {
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
  const size_t sizes[] = {1, 24, 100, 1000, 40000, 3 * MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    char *p = malloc(sizes[k]);
    size_t u = malloc_usable_size(p);
    CHECK(p && owns(p) && u >= sizes[k] && u <= sizes[k] + sizes[k] / 8 + 16,
          "malloc_usable_size(malloc(%zu)) = %zu", sizes[k], u);
    memset(p, 7, u); /* all of it is the program's */
    free(p);
  }
}

static void test_memalign(void) {
  struct { size_t align, want; } cases[] = {
      {0, 16}, {1, 16}, {3, 16}, {24, 32}, {48, 64}, {100, 128}, {1000, 1024},
      {4096 + 16, 8192}, {(3u << 20), (4u << 20)},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    void *p = memalign(cases[k].align, 100);
    CHECK(p && owns(p) && (uintptr_t)p % cases[k].want == 0, "memalign(%zu, 100) = %p",
          cases[k].align, p);
    free(p);
    p = aligned_alloc(cases[k].align, 1000);
    CHECK(p && owns(p) && (uintptr_t)p % cases[k].want == 0, "aligned_alloc(%zu, 1000) = %p",
          cases[k].align, p);
    free(p);
  }
  errno = 0;
  void *p = memalign(SIZE_MAX / 2 + 2, 10);
  CHECK(p == NULL && errno == EINVAL, "memalign(SIZE_MAX / 2 + 2) = %p, errno %d", p, errno);

  p = NULL;
  int rc = posix_memalign_(&p, 4096, 5000);
  CHECK(rc == 0 && p && owns(p) && (uintptr_t)p % 4096 == 0, "__posix_memalign(4096) = %d, %p", rc, p);
  free(p);
  p = NULL;
  rc = posix_memalign_(&p, 24, 10);
  CHECK(rc == EINVAL && p == NULL, "__posix_memalign(24) = %d, %p (want EINVAL)", rc, p);
}

static void test_never(void) {
  size_t vm0 = vm_size();
  errno = 0;
  void *p = malloc(NEVER);
  CHECK(p == NULL && errno == ENOMEM, "malloc(64 TiB) = %p, errno %d", p, errno);
  errno = 0;
  p = calloc(1, NEVER);
  CHECK(p == NULL && errno == ENOMEM, "calloc(1, 64 TiB) = %p, errno %d", p, errno);
  errno = 0;
  p = memalign(4 << 20, NEVER);
  CHECK(p == NULL && errno == ENOMEM, "memalign(4 MiB, 64 TiB) = %p, errno %d", p, errno);
  p = NULL;
  int rc = posix_memalign(&p, 64, NEVER);
  CHECK(rc == ENOMEM && p == NULL, "posix_memalign(64, 64 TiB) = %d", rc);
  char *q = malloc(5 * MiB);
  memset(q, 3, 5 * MiB);
  errno = 0;
  char *r = realloc(q, NEVER);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free" /* a failed realloc keeps q */
  CHECK(r == NULL && errno == ENOMEM && q[5 * MiB - 1] == 3,
        "realloc(5 MiB block, 64 TiB) = %p, errno %d", (void *)r, errno);
  free(q);
#pragma GCC diagnostic pop
  size_t vm1 = vm_size();
  CHECK(vm1 < vm0 + 256 * MiB, "64 TiB requests left %zu MiB more address space", (vm1 - vm0) / MiB);
}

static void test_reallocf(void) {
  char *p = reallocf(NULL, 100);
  CHECK(p && owns(p), "reallocf(NULL, 100) = %p", (void *)p);
  strcpy(p, "hakmem");
  p = reallocf(p, 100000);
  CHECK(p && strcmp(p, "hakmem") == 0, "reallocf kept the contents");
  /* a failure frees the block: live bytes drop by its size */
  struct mallinfo2 before = mallinfo2();
  errno = 0;
  char *q = reallocf(p, NEVER);
  struct mallinfo2 after = mallinfo2();
  CHECK(q == NULL && errno == ENOMEM, "reallocf(p, 64 TiB) = %p, errno %d", (void *)q, errno);
  CHECK(before.uordblks >= after.uordblks + 100000,
        "a failed reallocf did not free its block: %zu bytes live before, %zu after",
        before.uordblks, after.uordblks);
}

static void test_mallinfo_trim(void) {
  enum { N = 4096 };
  static char *blocks[N];
  struct mallinfo2 m0 = mallinfo2();
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(8000);
    memset(blocks[i], i, 8000); /* resident */
  }
  struct mallinfo2 m1 = mallinfo2();
  CHECK(m1.uordblks >= m0.uordblks + (size_t)N * 8000,
        "mallinfo2: %zu bytes live after %d blocks of 8000 (was %zu)", m1.uordblks, N, m0.uordblks);
  CHECK(m1.arena >= m1.uordblks && m1.fordblks == m1.arena - m1.uordblks,
        "mallinfo2: arena %zu, uordblks %zu, fordblks %zu", m1.arena, m1.uordblks, m1.fordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* programs still call it */
  struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
  CHECK((size_t)mi.uordblks >= (size_t)N * 8000, "mallinfo: uordblks %d", mi.uordblks);
  for (int i = 0; i < N; i++) free(blocks[i]);
  struct mallinfo2 m2 = mallinfo2();
  CHECK(m2.uordblks + (size_t)N * 8000 <= m1.uordblks, "mallinfo2: %zu live after the frees (was %zu)",
        m2.uordblks, m1.uordblks);
  int released = malloc_trim(0);
  struct mallinfo2 m3 = mallinfo2();
  CHECK(released == 1, "malloc_trim(0) = %d after freeing %d KiB", released, N * 8000 / 1024);
  CHECK(m3.arena + (size_t)N * 4000 <= m1.arena,
        "malloc_trim: %zu bytes may be resident, was %zu with the blocks", m3.arena, m1.arena);
  CHECK(malloc_trim(0) == 0, "a second malloc_trim(0) said it released memory");
}

static void test_stats(void) {
  char path[] = "/tmp/hakmem-interface-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  if (fd < 0) return;
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  malloc_stats();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char text[8192] = {0};
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  CHECK(n > 0 && strstr(text, "hakmem stats") && strstr(text, "committed"),
        "malloc_stats printed: %.200s", n > 0 ? text : "(nothing)");
}

int main(void) {
  *(void **)&owns = dlsym(RTLD_DEFAULT, "hak_owns");
  *(void **)&posix_memalign_ = dlsym(RTLD_DEFAULT, "__posix_memalign");
  *(void **)&reallocf = dlsym(RTLD_DEFAULT, "reallocf");
  if (!owns || !posix_memalign_ || !reallocf) {
    fprintf(stderr, "interface: hak_owns, __posix_memalign or reallocf not found: run me with LD_PRELOAD=libhakmem-override.so\n");
    return 1;
  }
  test_usable_size();
  test_memalign();
  test_never();
  test_reallocf();
  test_mallinfo_trim();
  test_stats();
  if (failures) {
    fprintf(stderr, "interface: %d check(s) failed\n", failures);
    return 1;
  }
  printf("interface: ok hakmem=yes\n");
  return 0;
}
