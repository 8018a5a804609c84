/*
** test_heap_figures.c -- hak_heap_figures: what the calling thread's heap
** holds, exact for its own blocks.
*/
#include <criterion/criterion.h>

#include "hakmem.h"
#include "fixture.h"

TestSuite(heap_figures, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

Test(heap_figures, counts_own_blocks) {
  enum { N = 5000 };
  static void *p[N];
  hak_heap_figures_t before, during, after;
  hak_heap_figures(NULL, &before);
  for (int i = 0; i < N; i++) {
    p[i] = hak_malloc(64);
    cr_assert(p[i] != NULL, "malloc");
  }
  hak_heap_figures(NULL, &during);
  cr_expect(during.in_use - before.in_use == (size_t)N * 64, "in_use grew by %zu, not %zu",
            during.in_use - before.in_use, (size_t)N * 64);
  cr_expect(during.pages > before.pages && during.segments >= 1, "pages %zu, segments %zu",
            during.pages, during.segments);
  cr_expect(during.committed >= during.in_use, "committed %zu < in use %zu", during.committed,
            during.in_use);
  for (int i = 0; i < N; i++) hak_free(p[i]);
  hak_heap_figures(NULL, &after);
  cr_expect(after.in_use == before.in_use, "in_use %zu after the frees, %zu before", after.in_use,
            before.in_use);
}

Test(heap_figures, explicit_heap) {
  hak_heap_t *h = hak_heap_new();
  hak_heap_figures_t f;
  cr_assert(h != NULL, "heap_new");
  void *a = hak_heap_malloc(h, 1000), *b = hak_heap_malloc(h, 100);
  cr_assert(a != NULL && b != NULL, "heap_malloc");
  hak_heap_figures(h, &f);
  cr_expect(f.in_use >= 1100 && f.in_use < 1100 + 256, "in_use %zu for 1100 bytes", f.in_use);
  hak_heap_destroy(h);
}
