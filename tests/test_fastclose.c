/*
** test_fastclose.c -- hakl_close without Lua's final sweep, on a state with
** a private heap or with the set of its blocks above the region: the
** finalizers run in the same order as under lua_close (with Lua's own
** allocator and with hakmem), they can still allocate, and every byte is
** released.
*/
#include <criterion/criterion.h>
#include <pthread.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(fastclose, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define MAXNOTES 4096

/* What the finalizers said, kept outside any Lua state. */
static long notes[MAXNOTES];
static size_t nnotes;

static int note(lua_State *L) {
  if (nnotes < MAXNOTES) notes[nnotes++] = (long)luaL_checkinteger(L, 1);
  return 0;
}

/* Objects with finalizers: garbage already, alive in globals, inside a
** coroutine, resurrecting, and finalizers that allocate. */
static const char *script =
  "local mt = {__gc = function(o) note(o.id) end}\n"
  "local amt = {__gc = function(o) local s = string.rep('z', 100) .. o.id; "
  "                                 local t = {s, {o.id}}; note(o.id) end}\n"
  "for i = 1, 300 do setmetatable({id = i}, mt) end\n"
  "keep = {}\n"
  "for i = 301, 700 do keep[i] = setmetatable({id = i}, i % 2 == 0 and mt or amt) end\n"
  "for i = 301, 700, 3 do keep[i] = nil end\n"
  "co = coroutine.create(function()\n"
  "  local mine = {}\n"
  "  for i = 701, 800 do mine[i] = setmetatable({id = i}, amt) end\n"
  "  coroutine.yield()\n"
  "end)\n"
  "coroutine.resume(co)\n"
  "saved = {}\n"
  "local rmt = {__gc = function(o) note(o.id); saved[#saved + 1] = o end}\n"
  "for i = 801, 850 do keep[i] = setmetatable({id = i}, rmt) end\n"
  "collectgarbage('step', 0)\n"
  "for i = 1, 20000 do keep[1000 + i] = {i, tostring(i)} end\n";

typedef enum closer { LIBC_LUA_CLOSE, HAKMEM_LUA_CLOSE, HAKMEM_FAST_CLOSE } closer;

/* Runs the script in a state of the given kind, closes it, and returns the
** finalizers' ids in the order they ran. */
static size_t finalizer_order(closer how, long *out) {
  lua_State *L;
  hakl_account final;
  if (how == LIBC_LUA_CLOSE) {
    L = luaL_newstate();
  } else {
    hakl_config cfg = {.limit = 0, .private_heap = how == HAKMEM_FAST_CLOSE};
    L = hakl_newstate(&cfg);
  }
  cr_assert_not_null(L);
  luaL_openlibs(L);
  lua_register(L, "note", note);
  cr_assert_eq(lt_run(L, script, 0), LUA_OK, "%s", lua_tostring(L, -1));
  nnotes = 0; /* only what the close runs */
  if (how == LIBC_LUA_CLOSE) {
    lua_close(L);
  } else {
    hakl_close(L, &final);
    cr_expect_eq(final.in_use, 0, "%zu B left in the account", final.in_use);
    cr_expect_eq(hakl_account_nalloc(&final), final.nfree);
  }
  memcpy(out, notes, nnotes * sizeof *out);
  return nnotes;
}

Test(fastclose, finalizers_run_in_lua_close_order) {
  static long ref[MAXNOTES], hak[MAXNOTES], fast[MAXNOTES];
  size_t nref = finalizer_order(LIBC_LUA_CLOSE, ref);
  size_t nhak = finalizer_order(HAKMEM_LUA_CLOSE, hak);
  size_t nfast = finalizer_order(HAKMEM_FAST_CLOSE, fast);
  size_t i, diff = 0;
  cr_assert_gt(nref, 400, "only %zu finalizers ran at close", nref);
  cr_expect_eq(nhak, nref, "lua_close with hakmem ran %zu finalizers, with libc %zu", nhak, nref);
  cr_expect_eq(nfast, nref, "hakl_close ran %zu finalizers, lua_close %zu", nfast, nref);
  for (i = 0; i < nref && i < nfast && i < nhak; i++)
    HKT_EXPECT(diff, ref[i] == fast[i] && ref[i] == hak[i],
               "finalizer %zu: lua_close ran %ld (hakmem: %ld), hakl_close %ld", i, ref[i],
               hak[i], fast[i]);
  HKT_EXPECT_NONE(diff, "finalizer order");
}

Test(fastclose, releases_every_byte) {
  size_t hak0 = lt_hak_in_use(), committed1 = 0;
  long delay = hak_option_get(HAK_OPT_PURGE_DELAY);
  int round;
  /* No purge during the test: committed memory then depends on what was
  ** touched, not on how long the rounds took (purges after a delay made it
  ** move by 6 MiB on a loaded machine). */
  hak_option_set(HAK_OPT_PURGE_DELAY, -1);
  for (round = 0; round < 9; round++) {
    hakl_config cfg = {.limit = 0, .private_heap = true};
    hakl_account final;
    lua_State *L = hakl_newstate(&cfg);
    cr_assert_not_null(L);
    luaL_openlibs(L);
    lua_register(L, "note", note);
    cr_assert_eq(lt_run(L, script, 0), LUA_OK);
    cr_assert_eq(lt_run(L, "big = {} for i = 1, 100000 do big[i] = {i, 'v' .. i} end", 0), LUA_OK);
    cr_expect_gt(lt_hak_in_use(), hak0 + 5 * HKT_MiB);
    hakl_close(L, &final);
    cr_expect_eq(final.in_use, 0);
    cr_expect_eq(lt_hak_in_use(), hak0, "round %d: hakmem holds %zu B after the close, %zu before",
                 round, lt_hak_in_use(), hak0);
    /* The pages are reused, not piled up: after four rounds to warm up,
    ** committed memory stays flat.  (It counts the destroyed heaps'
    ** segments waiting in the segment cache, and the region's chunks,
    ** which come from the thread's heap; the first rounds' placement
    ** decides how many slices those have touched: the secure build's
    ** guard slices and random carving touch more.) */
    if (round == 4) committed1 = hkt_committed();
    else if (round > 4)
      cr_expect_leq(hkt_committed(), committed1 + HKT_MiB, "round %d: committed %zu, after the warm-up %zu",
                    round, hkt_committed(), committed1);
  }
  hak_option_set(HAK_OPT_PURGE_DELAY, delay);
}

/* A state made by hakl_newstate that ran the script. */
static lua_State *scripted_state(bool private_heap) {
  hakl_config cfg = {.limit = 0, .private_heap = private_heap};
  lua_State *L = hakl_newstate(&cfg);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  lua_register(L, "note", note);
  cr_assert_eq(lt_run(L, script, 0), LUA_OK);
  return L;
}

/* What a finalizer saw of the allocator while hakl_close ran. */
static int dropping_seen, closing_seen, ctx_seen, calls_seen;

static int look(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  calls_seen++;
  dropping_seen += f == hakl_alloc_dropping;
  closing_seen += f == hakl_alloc_closing;
  ctx_seen += hakl_getctx(L) == (hakl_ctx *)ud;
  return 0;
}

/*
** A state on the thread's heap keeps the set of its blocks above the
** region (lua_glue/hakl_core.h), so hakl_close drops them as a private
** heap drops its own: finalizers run under hakl_alloc_dropping, the sweep
** is skipped, and the set's blocks are freed.  With the set incomplete
** (core_lost: no memory for it once), the whole of lua_close runs, with
** the region's frees only counted (hakl_alloc_closing).  Either way the
** account ends at zero, hakmem holds what it held before, and finalizers
** find the state's context (the module's functions need it).
*/
Test(fastclose, without_private_heap_drops_or_sweeps) {
  for (int lost = 0; lost < 2; lost++) {
    hakl_account final;
    size_t hak0 = lt_hak_in_use();
    lua_State *L = scripted_state(false);
    lua_register(L, "look", look);
    cr_assert_eq(lt_run(L, "big = {} for i = 1, 50 do big[i] = ('b'):rep(3000 + i) end "
                           "local mt = {__gc = function() look() local t = {('y'):rep(2000), {1}} end} "
                           "for i = 1, 10 do setmetatable({}, mt) end", 0), LUA_OK);
    hakl_ctx *c = hakl_getctx(L);
    cr_assert(c->core_on && c->core != NULL, "a shared state keeps the set");
    c->core_lost |= lost != 0;
    dropping_seen = closing_seen = ctx_seen = calls_seen = 0;
    hakl_close(L, &final);
    cr_expect_eq(calls_seen, 10, "lost %d", lost);
    cr_expect_eq(lost ? closing_seen : dropping_seen, 10,
                 "lost %d: %d finalizers under hakl_alloc_dropping, %d under hakl_alloc_closing", lost,
                 dropping_seen, closing_seen);
    cr_expect_eq(ctx_seen, 10, "lost %d: %d of 10 finalizers found the context", lost, ctx_seen);
    cr_expect_eq(final.in_use, 0, "lost %d", lost);
    cr_expect_eq(hakl_account_nalloc(&final), final.nfree, "lost %d", lost);
    cr_expect_eq(lt_hak_in_use(), hak0, "lost %d: hakmem holds %zu B after the close, %zu before", lost,
                 lt_hak_in_use(), hak0);
  }
}

/*
** The set under churn: thousands of blocks above the region made, grown
** (realloc in the core, and across the region's top), freed at random by
** the collector, some by finalizers during the close; then the drop frees
** exactly those still live: hakmem holds what it held before.
*/
Test(fastclose, shared_state_set_follows_its_blocks) {
  hakl_account final;
  size_t hak0 = lt_hak_in_use();
  lua_State *L = scripted_state(false);
  cr_assert_eq(lt_run(L, "math.randomseed(7) live = {} "
                         "for i = 1, 6000 do live[i] = ('s'):rep(1000 + i % 3000) .. i end "
                         "for r = 1, 4 do for i = 1, 6000 do "
                         "  local k = math.random(6000) "
                         "  if math.random(3) == 1 then live[k] = nil "
                         "  else live[k] = ('t'):rep(900 + math.random(5000)) end end "
                         "  collectgarbage() end "
                         "arrays = {} for i = 1, 200 do local t = {} for j = 1, i * 8 do t[j] = j end "
                         "  arrays[i] = t end "
                         "local mt = {__gc = function(o) live[o.k] = nil; arrays[o.k] = nil "
                         "  local s = ('f'):rep(4000 + o.k) end} "
                         "for k = 1, 100 do setmetatable({k = k}, mt) end", 0),
               LUA_OK, "%s", lua_tostring(L, -1));
  hakl_ctx *c = hakl_getctx(L);
  cr_assert(c->core_on && c->core != NULL && !c->core_lost);
  cr_expect_gt(c->core_count, 1000, "%zu blocks in the set", c->core_count);
  hakl_close(L, &final);
  cr_expect_eq(final.in_use, 0);
  cr_expect_eq(hakl_account_nalloc(&final), final.nfree);
  cr_expect_eq(lt_hak_in_use(), hak0, "hakmem holds %zu B after the close, %zu before", lt_hak_in_use(),
               hak0);
}

/*
** The fast close leaves lua_close once its sweep begins, and takes Lua's
** bytes out of the account then: what the host charged to the state stays
** in it, as after a plain close.  Finalizers that allocate and free run
** first; their blocks go with the heap.
*/
Test(fastclose, keeps_what_the_host_charged) {
  int priv;
  for (priv = 0; priv < 2; priv++) {
    hakl_account final;
    size_t hak0 = lt_hak_in_use();
    lua_State *L = scripted_state(priv != 0);
    cr_assert_eq(lt_run(L, "local mt = {__gc = function(o) local t = {} for i = 1, 300 do "
                           "t[i] = ('x'):rep(i) end t = nil end} "
                           "for i = 1, 20 do setmetatable({}, mt) end", 0), LUA_OK);
    cr_assert(hakl_charge(hakl_getctx(L), 4096, false));
    hakl_close(L, &final);
    cr_expect_eq(final.in_use, 4096, "private heap %d: %zu B in the account, 4096 charged", priv,
                 final.in_use);
    cr_expect_eq(hakl_account_nalloc(&final), final.nfree, "private heap %d", priv);
    cr_expect_eq(lt_hak_in_use(), hak0, "private heap %d", priv);
  }
}

/*
** A state on one thread's heap closed on another inside a remote batch
** (the runtime's collector): its blocks above the region are remote
** frees, freed in the order of their pages (hakl_core_free_all), so the
** batch chains each page's frees for one CAS.  4000 strings of 2000 bytes
** lie on about 125 pages; in the set's hash order the batch's 128-slot
** table held too few pages at a time (961 CAS per 1000 frees in
** bench/runtime close.lua).  Every byte still goes back.
*/
static lua_State *closing_state;
static hak_thread_counters_t closing_counts;

static void *close_in_batch(void *arg) {
  hak_thread_counters_t before;
  (void)arg;
  hak_thread_counters(&before);
  hak_remote_batch_begin();
  hakl_close(closing_state, NULL);
  hak_remote_batch_end();
  hak_thread_counters(&closing_counts);
  closing_counts.remote_frees -= before.remote_frees;
  closing_counts.remote_pushes -= before.remote_pushes;
  return NULL;
}

Test(fastclose, remote_close_frees_page_by_page) {
  pthread_t t;
  size_t hak0 = lt_hak_in_use();
  lua_State *L = scripted_state(false);
  cr_assert_eq(lt_run(L, "keep = {} for i = 1, 4000 do "
                         "keep[i] = ('s'):rep(1992) .. string.format('%08d', i) end", 0), LUA_OK);
  closing_state = L;
  cr_assert_eq(pthread_create(&t, NULL, close_in_batch, NULL), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_expect_geq(closing_counts.remote_frees, 4000, "%llu remote frees",
                (unsigned long long)closing_counts.remote_frees);
  cr_expect_leq(closing_counts.remote_pushes * 10, closing_counts.remote_frees,
                "%llu CAS for %llu remote frees (at most one in 10)",
                (unsigned long long)closing_counts.remote_pushes,
                (unsigned long long)closing_counts.remote_frees);
  hak_collect(false); /* takes back the thread's remote frees */
  cr_expect_eq(lt_hak_in_use(), hak0, "hakmem holds %zu B after the close, %zu before", lt_hak_in_use(),
               hak0);
}
