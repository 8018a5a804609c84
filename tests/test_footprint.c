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
