/*
** test_footprint.c -- the memory a Lua state touches: a bare state's fixed
** cost.
**
** Peak RSS is every 4 KiB page touched, so it is counted in resident pages
** (mincore), not in bytes handed out.  The bound, and what broke it before
** (docs/lua_glue.md, "Where a small script's memory goes"): the heap
** structures' 64 KiB chunk was threaded through all of its structures at
** once, so all 16 pages were resident for two heaps.
*/
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>

#include "hakl.h"
#include "helpers.h"
#include "fixture.h"

TestSuite(footprint, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define PAGE 4096

/*
** A bare state as hklua makes it (a private heap, the standard libraries):
** the pages it touches are Lua's bytes (in_use, about 28 KB) rounded to
** pages, plus, in the thread's segment, its header's first page, the
** page of the context's class and the unbumped rest of the region's second
** chunk's page; in the heap structures' chunk, the page or two holding the
** thread's heap and the state's.  Allowed: in_use rounded up plus 4 pages
** in the segment, 2 pages of heap structures.
*/
Test(footprint, a_bare_state_touches_little_more_than_its_bytes) {
  hakl_config cfg = {.private_heap = true};
  hak_heap_t *thread = hak_heap_default(); /* the first structure of its chunk */
  lua_State *L = hakl_newstate(&cfg);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  hakl_ctx *c = hakl_getctx(L);
  cr_assert_not_null(c);
  cr_assert_eq((uintptr_t)thread % PAGE, 0, "the thread's heap %p starts its chunk", (void *)thread);
  size_t pool = hkt_resident_pages(thread, 64 * 1024);
  uintptr_t seg = (uintptr_t)c->region.chunks & ~(uintptr_t)(4 * HKT_MiB - 1);
  size_t segment = hkt_resident_pages((void *)seg, 4 * HKT_MiB);
  size_t lua = (c->acct.in_use + PAGE - 1) / PAGE;
  cr_log_info("bare state: in_use %zu B (%zu pages); resident: segment %zu pages, heap structures %zu",
              c->acct.in_use, lua, segment, pool);
  cr_expect_leq(pool, 2, "the heap structures' chunk: %zu pages resident for two heaps", pool);
  cr_expect_leq(segment, lua + 4, "the thread's segment: %zu pages resident for %zu B of Lua data",
                segment, c->acct.in_use);
  hakl_close(L, NULL);
}

/*
** A class page of few blocks (7 KiB each) on the slice a large block left:
** the large block's program wrote the whole slice, so it stays resident;
** the page carves a block or two of it, and the rest was resident memory
** that nothing used (strings_build on a shared heap: three such pages held
** 64 KiB each for one block; its heap 1144 KiB against 836 with a heap of
** its own).  The page now gets the slice purged first: only what it
** carves is resident.
*/
Test(footprint, a_class_page_on_a_large_blocks_slice_keeps_only_its_blocks) {
  enum { SLICE = 64 * 1024, SMALL = 7000 };
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  char *big = hak_heap_malloc8(h, SLICE);
  cr_assert_not_null(big);
  memset(big, 1, SLICE);
  uintptr_t slice = (uintptr_t)big & ~(uintptr_t)(SLICE - 1);
  hak_free(big);
  char *small = hak_heap_malloc8(h, SMALL);
  cr_assert_not_null(small);
  /* the case this test is about: a fresh heap's only warm free slice */
  cr_assert_eq((uintptr_t)small & ~(uintptr_t)(SLICE - 1), slice,
               "the class page did not take the large block's slice (%p, block %p)", (void *)slice,
               (void *)small);
  memset(small, 2, SMALL);
  size_t resident = hkt_resident_pages((void *)slice, SLICE);
  cr_log_info("slice of a large block, now a 7 KiB class page: %zu pages resident", resident);
  cr_expect_leq(resident, 2, "%zu pages of the slice resident for one %d-byte block", resident, SMALL);
  hak_free(small);
  hak_heap_destroy(h);
}
